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
from .speed import autocast


def sample_codes(n: int, n_categories: int = 10, n_continuous: int = 2, device=None, generator=None):
    """(c_cat (n,) uniform over categories, c_cont (n, n_continuous) uniform on [-1, 1])."""
    c_cat = torch.randint(n_categories, (n,), device=device, generator=generator)
    c_cont = torch.rand(n, n_continuous, device=device, generator=generator) * 2 - 1
    return c_cat, c_cont


def code_vector(c_cat: torch.Tensor, c_cont: torch.Tensor, n_categories: int) -> torch.Tensor:
    """[one_hot(c_cat), c_cont]: what G receives besides z, shape (n, n_categories + n_continuous)."""
    return torch.cat([F.one_hot(c_cat, n_categories).to(c_cont.dtype), c_cont], dim=1)


class Generator(nn.Module):
    """G(z, c_cat, c_cont) = DCGAN generator of [z, one_hot(c_cat), c_cont]."""

    def __init__(self, shape=(1, 28, 28), z_dim: int = 62, n_categories: int = 10, n_continuous: int = 2,
                 width: int = 64):
        super().__init__()
        self.z_dim, self.n_categories, self.n_continuous = z_dim, n_categories, n_continuous
        self.net = dcgan.Generator(shape, z_dim + n_categories + n_continuous, width)

    def forward(self, z, c_cat, c_cont):
        return self.net(torch.cat([z, code_vector(c_cat, c_cont, self.n_categories)], dim=1))

    def random_inputs(self, n: int, device=None, generator=None):
        """The arguments of one random batch: (z, c_cat, c_cont), drawn as in training."""
        z = torch.randn(n, self.z_dim, device=device, generator=generator)
        return (z, *sample_codes(n, self.n_categories, self.n_continuous, device, generator))


class Discriminator(nn.Module):
    """D and Q on one body: x -> (real/fake logit (B,), category logits (B, K), continuous means (B, L))."""

    def __init__(self, shape=(1, 28, 28), n_categories: int = 10, n_continuous: int = 2, width: int = 64,
                 hidden: int = 128):
        super().__init__()
        base = dcgan.Discriminator(shape, width)
        self.body, self.head = base.body, base.head
        flat = base.features * dcgan.base_size(shape[1]) ** 2
        self.q = nn.Sequential(nn.Flatten(), nn.Linear(flat, hidden), nn.BatchNorm1d(hidden), nn.LeakyReLU(0.2),
                               nn.Linear(hidden, n_categories + n_continuous))
        self.n_categories = n_categories

    def forward(self, x):
        h = self.body(x)  # (B, ch, base, base)
        q = self.q(h)  # (B, K + L)
        return self.head(h).flatten(), q[:, : self.n_categories], q[:, self.n_categories :]


def info_loss(cat_logits, cont_mean, c_cat, c_cont, continuous_weight: float = 1.0) -> torch.Tensor:
    """-E[log Q(c | x)] up to constants: cross-entropy for the categorical code plus
    ``continuous_weight`` * (c - mu)^2 / 2 for the unit-variance Gaussian of each continuous code."""
    return F.cross_entropy(cat_logits, c_cat) + continuous_weight * 0.5 * (cont_mean - c_cont).square().sum(1).mean()


def mutual_information_bound(cat_logits, c_cat, n_categories: int) -> torch.Tensor:
    """The lower bound on I(c_cat; x) in nats: H(c_cat) - CE = log K + E[log Q(c_cat | x)]; at most log K."""
    return math.log(n_categories) - F.cross_entropy(cat_logits, c_cat)


def optimizers(G: nn.Module, D: nn.Module, lr_G: float = 1e-3, lr_D: float = 2e-4, betas=(0.5, 0.999)):
    """Adam as in the paper's App. C: lr 1e-3 for G, 2e-4 for D (whose optimiser also holds Q: they
    share the body), beta1 = 0.5 (``train.adam``; fused on CUDA)."""
    return train.adam(G, D, lr_G, lr_D, betas)


def infogan_steps(G, D, opt_G, opt_D, images, batch_size: int, *, info_weight: float = 1.0,
                  continuous_weight: float = 1.0, amp: bool = False):
    """InfoGAN's steps. D's optimiser also holds Q (they share the body): the D step trains D on the
    GAN loss and Q on the information loss of detached fakes; the G step trains G on the GAN loss plus
    ``info_weight`` times the information loss, whose gradient reaches G through Q."""
    device, ctx = images.x.device, autocast(images.x.device, amp)

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
        with ctx:
            s_fake, q_cat, q_cont = D(G(z, c_cat, c_cont))
        adv = losses.g_loss_nonsaturating(s_fake.float())
        info = info_loss(q_cat.float(), q_cont.float(), c_cat, c_cont, continuous_weight)
        train.update(opt_G, adv + info_weight * info)
        return {"loss_G": adv.detach()}

    return d_step, g_step


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
