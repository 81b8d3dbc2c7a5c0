"""InfoGAN (Chen et al. 2016): latent codes c that G must keep recoverable from its images.

G gets [z, c]; Q(c | x) is a small head on D's body (sharing the body makes Q nearly free, and
its features are already tuned to images). Besides the GAN game, G and Q maximise the variational
lower bound on the mutual information I(c; G(z, c)):

    L_I(G, Q) = E_{c ~ p(c), x ~ G(z, c)} [log Q(c | x)] + H(c)  <=  I(c; G(z, c)),

i.e. both minimise the information loss -E[log Q(c | x)]. Codes follow the paper's MNIST setup:
one categorical code, uniform over 10 values, and continuous codes uniform on [-1, 1]; Q models each
continuous code as a Gaussian with unit variance, so its log-likelihood is -(c - mu)^2 / 2 + const.
The paper's App. C trains with Adam (beta1 0.5), lr 1e-3 for G and 2e-4 for D and Q, lambda = 1.

Reading the codes back: ``predict_category`` (Q's arg-max on real images), ``confusion_matrix`` and
``matched_accuracy`` (Hungarian matching of categories to labels), ``traversal`` (the paper's figures).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from . import dcgan, losses, train
from .profiles import draw
from .speed import amp_context


def sample_codes(n: int, n_categories: int = 10, n_continuous: int = 2, device=None, generator=None):
    """(c_cat (n,) uniform over categories, c_cont (n, n_continuous) uniform on [-1, 1])."""
    c_cat = draw(torch.randint, n_categories, (n,), device=device, generator=generator)
    c_cont = draw(torch.rand, n, n_continuous, device=device, generator=generator) * 2 - 1
    return c_cat, c_cont


def code_vector(c_cat: torch.Tensor, c_cont: torch.Tensor, n_categories: int) -> torch.Tensor:
    """[one_hot(c_cat), c_cont]: what G receives besides z, shape (n, n_categories + n_continuous)."""
    return torch.cat([F.one_hot(c_cat, n_categories).to(c_cont.dtype), c_cont], dim=1)


class CodedGenerator(nn.Module):
    """G(z, c_cat, c_cont) = net([z, one_hot(c_cat), c_cont]): what every InfoGAN generator here shares."""

    def __init__(self, net: nn.Module, z_dim: int, n_categories: int, n_continuous: int):
        super().__init__()
        self.z_dim, self.n_categories, self.n_continuous = z_dim, n_categories, n_continuous
        self.net = net

    def forward(self, z, c_cat, c_cont):
        return self.net(torch.cat([z, code_vector(c_cat, c_cont, self.n_categories)], dim=1))

    def noise(self, n: int, device=None, generator=None) -> torch.Tensor:
        """z for n images, (n, z_dim): N(0, I), lesson 03's noise."""
        return draw(torch.randn, n, self.z_dim, device=device, generator=generator)

    def random_inputs(self, n: int, device=None, generator=None):
        """The arguments of one random batch: (z, c_cat, c_cont), drawn as in training."""
        z = self.noise(n, device, generator)
        return (z, *sample_codes(n, self.n_categories, self.n_continuous, device, generator))


class Generator(CodedGenerator):
    """G(z, c_cat, c_cont) = lesson 03's DCGAN generator of [z, one_hot(c_cat), c_cont]."""

    def __init__(self, shape=(1, 28, 28), z_dim: int = 62, n_categories: int = 10, n_continuous: int = 2,
                 width: int = 64):
        super().__init__(dcgan.Generator(shape, z_dim + n_categories + n_continuous, width), z_dim, n_categories,
                         n_continuous)


class CodedDiscriminator(nn.Module):
    """D and Q on one body: x -> (real/fake logit (B,), category logits (B, K), continuous means (B, L)).
    ``body`` computes the shared features once; ``head`` gives D's logit, ``q`` gives Q's K + L outputs."""

    def __init__(self, body: nn.Module, head: nn.Module, q: nn.Module, n_categories: int):
        super().__init__()
        self.body, self.head, self.q, self.n_categories = body, head, q, n_categories

    def forward(self, x):
        h = self.body(x)  # the shared features, computed once
        q = self.q(h)  # (B, K + L)
        return self.head(h).flatten(), q[:, : self.n_categories], q[:, self.n_categories :]


class Discriminator(CodedDiscriminator):
    """Lesson 03's DCGAN body and head, with Q as a second head: one hidden layer of ``hidden`` units."""

    def __init__(self, shape=(1, 28, 28), n_categories: int = 10, n_continuous: int = 2, width: int = 64,
                 hidden: int = 128):
        base = dcgan.Discriminator(shape, width)
        flat = base.features * dcgan.base_size(shape[1]) ** 2
        q = nn.Sequential(nn.Flatten(), nn.Linear(flat, hidden), nn.BatchNorm1d(hidden), nn.LeakyReLU(0.2),
                          nn.Linear(hidden, n_categories + n_continuous))
        super().__init__(base.body, base.head, q, n_categories)


# The paper's MNIST networks (Chen et al. 2016, Table 1; openai/InfoGAN, models/regularized_gan.py). The
# defaults are the paper's sizes: 64 and 128 channels, a fully connected layer of 1024. Weights ~ N(0, 0.02)
# as in the reference code, and its 62 noise variables z ~ U(-1, 1) like the codes. One departure, lesson
# 03's convention: G ends in tanh (images in [-1, 1]) where the reference code models pixels as
# Bernoulli means (a sigmoid).
PAPER_SLOPE = 0.1  # LeakyReLU's slope in the paper's D (App. C); the reference code's default is 0.01


def _quarter(shape) -> tuple[int, int]:
    c, h, w = shape
    if h != w or h % 4:
        raise ValueError(f"the paper's InfoGAN networks need square images with a side divisible by 4, got {h} x {w}")
    return c, h // 4


class PaperGenerator(CodedGenerator):
    """The paper's G: FC 1024, BN, ReLU; FC (H/4)^2 * 128, BN, ReLU; 4x4 up-conv 64, stride 2, BN, ReLU;
    4x4 up-conv to C channels, stride 2; tanh. ``width`` = 64 and ``hidden`` = 1024 are the paper's."""

    def __init__(self, shape=(1, 28, 28), z_dim: int = 62, n_categories: int = 10, n_continuous: int = 2,
                 width: int = 64, hidden: int = 1024):
        c, q = _quarter(shape)
        net = nn.Sequential(
            nn.Linear(z_dim + n_categories + n_continuous, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(True),
            nn.Linear(hidden, 2 * width * q * q, bias=False), nn.BatchNorm1d(2 * width * q * q), nn.ReLU(True),
            nn.Unflatten(1, (2 * width, q, q)),  # (B, 128, 7, 7) for MNIST
            dcgan.up_transposed(2 * width, width), nn.BatchNorm2d(width), nn.ReLU(True),  # (B, 64, 14, 14)
            nn.ConvTranspose2d(width, c, 4, stride=2, padding=1), nn.Tanh())  # (B, C, 28, 28)
        super().__init__(net, z_dim, n_categories, n_continuous)
        self.apply(dcgan.init_weights)

    def noise(self, n: int, device=None, generator=None) -> torch.Tensor:
        """z for n images, (n, z_dim): U(-1, 1), as in the reference code (``Uniform(62)``)."""
        return draw(torch.rand, n, self.z_dim, device=device, generator=generator) * 2 - 1


class PaperDiscriminator(CodedDiscriminator):
    """The paper's D and Q: a shared body of 4x4 conv 64, stride 2, LReLU; 4x4 conv 128, stride 2, BN,
    LReLU; FC 1024, BN, LReLU (slope 0.1). D's head: FC 1. Q's head: FC 128, BN, LReLU, FC K + L."""

    def __init__(self, shape=(1, 28, 28), n_categories: int = 10, n_continuous: int = 2, width: int = 64,
                 hidden: int = 1024, q_hidden: int = 128, slope: float = PAPER_SLOPE):
        c, q = _quarter(shape)
        body = nn.Sequential(
            nn.Conv2d(c, width, 4, 2, 1), nn.LeakyReLU(slope, True),  # no batch norm on the input layer
            nn.Conv2d(width, 2 * width, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * width), nn.LeakyReLU(slope, True),
            nn.Flatten(), nn.Linear(2 * width * q * q, hidden, bias=False), nn.BatchNorm1d(hidden),
            nn.LeakyReLU(slope, True))  # (B, 1024): what D's head and Q's head both read
        q_head = nn.Sequential(nn.Linear(hidden, q_hidden, bias=False), nn.BatchNorm1d(q_hidden),
                               nn.LeakyReLU(slope, True), nn.Linear(q_hidden, n_categories + n_continuous))
        super().__init__(body, nn.Linear(hidden, 1), q_head, n_categories)
        self.apply(dcgan.init_weights)


ARCHITECTURES = {"paper": (PaperGenerator, PaperDiscriminator), "dcgan": (Generator, Discriminator)}


def networks(architecture: str, shape, z_dim: int, n_categories: int, n_continuous: int, width: int):
    """(G, D) of one architecture: "paper" (the paper's MNIST networks, ``width`` channels in the first
    layer of D and the last of G) or "dcgan" (lesson 03's body)."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {sorted(ARCHITECTURES)}, got {architecture!r}")
    G_cls, D_cls = ARCHITECTURES[architecture]
    return G_cls(shape, z_dim, n_categories, n_continuous, width), D_cls(shape, n_categories, n_continuous, width)


def info_loss(cat_logits, cont_mean, c_cat, c_cont, continuous_weight: float = 1.0) -> torch.Tensor:
    """-E[log Q(c | x)] up to constants: cross-entropy for the categorical code plus
    ``continuous_weight`` * (c - mu)^2 / 2 for the unit-variance Gaussian of each continuous code."""
    return F.cross_entropy(cat_logits, c_cat) + continuous_weight * 0.5 * (cont_mean - c_cont).square().sum(1).mean()


def mutual_information_bound(cat_logits, c_cat, n_categories: int) -> torch.Tensor:
    """The lower bound on I(c_cat; x) in nats: H(c_cat) - CE = log K + E[log Q(c_cat | x)]; at most log K."""
    return math.log(n_categories) - F.cross_entropy(cat_logits, c_cat)


def optimizers(G: nn.Module, D: nn.Module, lr_G: float = 1e-3, lr_D: float = 2e-4, betas=(0.5, 0.999)):
    """Adam as in the paper's App. C: lr 1e-3 for G, 2e-4 for D (whose optimiser also holds Q: they
    share the body), beta1 = 0.5 (``train.adam``: fused kernels)."""
    return train.adam(G, D, lr_G, lr_D, betas)


def infogan_steps(G, D, opt_G, opt_D, images, batch_size: int, *, info_weight: float = 1.0,
                  continuous_weight: float = 1.0, amp: str | bool = False):
    """InfoGAN's steps. D's optimiser also holds Q (they share the body): the D step trains D on the
    GAN loss and Q on the information loss of detached fakes; the G step trains G on the GAN loss plus
    ``info_weight`` times the information loss, whose gradient reaches G through Q."""
    device, ctx = images.x.device, amp_context(images.x.device, amp, opt_G, opt_D)

    def d_step():
        x_real, _ = images.sample(batch_size)
        z, c_cat, c_cont = G.random_inputs(batch_size, device)
        x_fake = train.fakes(G, batch_size, ctx, inputs=(z, c_cat, c_cont))
        with ctx:
            (s_real, _, _), (s_fake, q_cat, q_cont) = D(x_real), D(x_fake)
        adv = losses.d_loss_nonsaturating(s_real.float(), s_fake.float())
        info = info_loss(q_cat.float(), q_cont.float(), c_cat, c_cont, continuous_weight)
        train.update(opt_D, adv + info_weight * info)
        return {"loss_D": adv.detach(), "loss_info": info.detach(), **train.discriminator_outputs(s_real, s_fake),
                "MI bound": mutual_information_bound(q_cat.detach().float(), c_cat, G.n_categories)}

    def g_step():
        z, c_cat, c_cont = G.random_inputs(batch_size, device)
        with train.frozen(D), ctx:  # the gradient reaches G through D and Q; their weights get none here
            s_fake, q_cat, q_cont = D(G(z, c_cat, c_cont))
        adv = losses.g_loss_nonsaturating(s_fake.float())
        info = info_loss(q_cat.float(), q_cont.float(), c_cat, c_cont, continuous_weight)
        train.update(opt_G, adv + info_weight * info)
        return {"loss_G": adv.detach()}

    return d_step, g_step


# ---------------------------------------------------------------------------------------------
# Lesson 06's run, kept for its deck
# ---------------------------------------------------------------------------------------------

LESSON_06 = {  # lesson 06's training settings per profile (steps are G updates; limit: first images only)
    "smoke": dict(architecture="paper", steps=24, batch_size=32, width=8, limit=1024, log_every=3),
    "cpu": dict(architecture="paper", steps=4000, batch_size=64, width=64, limit=None, log_every=100),
    "gpu": dict(architecture="paper", steps=10_000, batch_size=128, width=64, limit=None, log_every=250),
}


def run_name(dataset: str, profile: str, seed: int, architecture: str, width: int, batch_size: int,
             info_weight: float) -> str:
    """The name lesson 06 gives a run (its checkpoint): every setting that changes the trained model but
    the number of steps (a longer run resumes a shorter one)."""
    return f"{dataset}-{profile}-seed{seed}-{architecture}-width{width}-batch{batch_size}-lambda{info_weight:g}"


def matched_accuracy(confusion: torch.Tensor) -> tuple[float, list[int]]:
    """Accuracy after the best one-to-one matching of codes (rows) to labels (columns), by the
    Hungarian algorithm on the confusion matrix: max over injective maps pi of sum_i N[i, pi(i)] / sum N.
    Returns (accuracy, label assigned to each code)."""
    from scipy.optimize import linear_sum_assignment

    counts = torch.as_tensor(confusion, dtype=torch.float64)
    rows, cols = linear_sum_assignment(counts.numpy(), maximize=True)
    mapping = [-1] * counts.shape[0]  # -1: a code left without a label (more codes than labels)
    for r, c in zip(rows, cols):
        mapping[r] = int(c)
    return float(counts[rows, cols].sum() / counts.sum()), mapping


def confusion_matrix(codes: torch.Tensor, labels: torch.Tensor, n_codes: int, n_labels: int) -> torch.Tensor:
    """Counts (n_codes, n_labels): how often code i was predicted for an image of label j."""
    return torch.bincount(codes * n_labels + labels, minlength=n_codes * n_labels).reshape(n_codes, n_labels).cpu()


@torch.no_grad()
def predict_category(D, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """argmax_k Q(c_cat = k | x) for each image: the category Q reads from x, shape (N,)."""
    return torch.cat([D(chunk)[1].argmax(1) for chunk in x.split(batch_size)])


@torch.no_grad()
def traversal(G, z: torch.Tensor, values: torch.Tensor, code: int) -> torch.Tensor:
    """G at one fixed z (z_dim,) for every (category k, value v) pair, category-major: row k has
    c_cat = k and continuous code ``code`` = v for each v in ``values`` (the other continuous codes 0).
    Shape (K * V, C, H, W)."""
    K, V = G.n_categories, len(values)
    c_cat = torch.arange(K, device=z.device).repeat_interleave(V)  # (K * V,): 0 0 .. 0 1 1 ..
    c_cont = torch.zeros(K * V, G.n_continuous, device=z.device)
    c_cont[:, code] = values.to(z.device).repeat(K)  # v0 v1 .. v0 v1 ..
    return G(z.expand(K * V, -1), c_cat, c_cont)
