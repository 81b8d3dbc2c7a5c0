"""Adversarial losses as pure functions of the discriminator's outputs, and the penalties on D.

Naming: ``d_loss_<kind>(d_real, d_fake)`` is minimised by D, ``g_loss_<kind>(d_fake)`` by G (a
relativistic G loss also takes ``d_real``: ``g_loss_relativistic(d_fake, d_real)``), where
``d_real = D(x_real)`` and ``d_fake = D(G(z))`` are logits (before any sigmoid) or, for a critic,
scores; sigma is the logistic sigmoid. Every loss is a batch mean. We use log sigma(a) =
-softplus(-a) and log(1 - sigma(a)) = -softplus(a), which stay finite for any logit.

**Penalties run their own fp32 forward.** ``gradient_penalty`` and ``r1_penalty`` differentiate D's
output with respect to its input and keep that graph (``create_graph=True``) so the optimiser can
differentiate the penalty again: a double backward. In bf16 the input gradient loses most of its
digits (8 bits of mantissa), and ``torch.compile`` does not support double backward; so each
penalty switches autocast off (and TF32, ``full_fp32``), casts its input to fp32 and calls the eager D
itself, whatever context the step around it uses (``ganlib.speed`` says the same for the speed habits).
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from .profiles import draw

# ---------------------------------------------------------------------------------------------
# The original game (lessons 01-06)
# ---------------------------------------------------------------------------------------------


def d_loss_minimax(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """-V(D, G) = -E[log D(x)] - E[log(1 - D(G(z)))] = E[softplus(-d_real)] + E[softplus(d_fake)].

    This is binary cross-entropy with target 1 for real and 0 for fake. D's loss is the same in
    the minimax and the non-saturating game; only G's loss differs.
    """
    return F.softplus(-d_real).mean() + F.softplus(d_fake).mean()


d_loss_nonsaturating = d_loss_minimax


def g_loss_minimax(d_fake: torch.Tensor) -> torch.Tensor:
    """E[log(1 - D(G(z)))] = -E[softplus(d_fake)]: G minimises V directly. Saturates when D wins."""
    return -F.softplus(d_fake).mean()


def g_loss_nonsaturating(d_fake: torch.Tensor) -> torch.Tensor:
    """-E[log D(G(z))] = E[softplus(-d_fake)]: Goodfellow et al.'s practical generator loss."""
    return F.softplus(-d_fake).mean()


# ---------------------------------------------------------------------------------------------
# Wasserstein (lesson 07) and hinge (lesson 08)
# ---------------------------------------------------------------------------------------------


def d_loss_wasserstein(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """-(E[D(x)] - E[D(G(z))]): the critic maximises the Kantorovich-Rubinstein estimate of W1.

    Its negative, E[D(x)] - E[D(G(z))], is the W1 estimate a WGAN logs (Arjovsky et al. 2017).
    The scores are unbounded: no sigmoid, no margin.
    """
    return d_fake.mean() - d_real.mean()


def g_loss_wasserstein(d_fake: torch.Tensor) -> torch.Tensor:
    """-E[D(G(z))]: G moves its samples up the critic's slope."""
    return -d_fake.mean()


def d_loss_hinge(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """E[relu(1 - D(x))] + E[relu(1 + D(G(z)))] (Lim & Ye 2017; SN-GAN, SAGAN, BigGAN).

    Scores beyond the margin (D(x) > 1, D(G(z)) < -1) cost nothing and give no gradient.
    """
    return F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()


def g_loss_hinge(d_fake: torch.Tensor) -> torch.Tensor:
    """-E[D(G(z))]: the generator's side of the hinge game (the same form as the Wasserstein one)."""
    return -d_fake.mean()


# ---------------------------------------------------------------------------------------------
# The loss zoo (lesson 10): least squares, relativistic, energy-based
# ---------------------------------------------------------------------------------------------


def d_loss_least_squares(d_real: torch.Tensor, d_fake: torch.Tensor, a: float = -1.0, b: float = 1.0) -> torch.Tensor:
    """1/2 E[(D(x) - b)^2] + 1/2 E[(D(G(z)) - a)^2] (LSGAN, Mao et al. 2017, eq. 2).

    D's raw score, **no sigmoid** (a sigmoid before the square brings saturation back). The paper's
    coding for its chi-squared result is a = -1, b = 1 (with c = 0 for G); many ports use a = 0, b = c = 1.
    """
    return 0.5 * ((d_real - b) ** 2).mean() + 0.5 * ((d_fake - a) ** 2).mean()


def g_loss_least_squares(d_fake: torch.Tensor, c: float = 0.0) -> torch.Tensor:
    """1/2 E[(D(G(z)) - c)^2]: G pulls its scores to c, from either side, with a force linear in the gap."""
    return 0.5 * ((d_fake - c) ** 2).mean()


def _relativistic(c_r: torch.Tensor, c_f: torch.Tensor) -> torch.Tensor:
    """-E[log sigmoid(C(x_r) - C(x_f))] over pairs (x_r, x_f): the RSGAN term, real judged against fake."""
    return F.softplus(-(c_r - c_f)).mean()


def d_loss_relativistic(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """-E[log sigmoid(C(x_r) - C(x_f))] (RSGAN, Jolicoeur-Martineau 2019): each real paired with one fake."""
    return _relativistic(d_real, d_fake)


def g_loss_relativistic(d_fake: torch.Tensor, d_real: torch.Tensor) -> torch.Tensor:
    """-E[log sigmoid(C(x_f) - C(x_r))]: D's loss with real and fake swapped. G needs the real scores."""
    return _relativistic(d_fake, d_real)


def d_loss_relativistic_average(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """RaSGAN's D: -1/2 E[log sigmoid(C(x_r) - E C(x_f))] - 1/2 E[log(1 - sigmoid(C(x_f) - E C(x_r)))].

    Each real is compared with the **average fake** and each fake with the average real. (The first
    public release compared E C(x_f) with each real in both terms: AlexiaJM/RelativisticGAN #2.)
    """
    return 0.5 * (F.softplus(-(d_real - d_fake.mean())).mean() + F.softplus(d_fake - d_real.mean()).mean())


def g_loss_relativistic_average(d_fake: torch.Tensor, d_real: torch.Tensor) -> torch.Tensor:
    """RaSGAN's G: D's loss with real and fake swapped. It keeps the real term, so G also learns to
    make reals look less real than the average fake, not only fakes more real."""
    return d_loss_relativistic_average(d_fake, d_real)


def d_loss_relativistic_average_ls(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """RaLSGAN's D: 1/2 E[(C(x_r) - E C(x_f) - 1)^2] + 1/2 E[(C(x_f) - E C(x_r) + 1)^2] (targets +-1)."""
    return 0.5 * (((d_real - d_fake.mean() - 1) ** 2).mean() + ((d_fake - d_real.mean() + 1) ** 2).mean())


def g_loss_relativistic_average_ls(d_fake: torch.Tensor, d_real: torch.Tensor) -> torch.Tensor:
    """RaLSGAN's G: D's loss with real and fake swapped (both terms, as in RaSGAN)."""
    return d_loss_relativistic_average_ls(d_fake, d_real)


def d_loss_energy(e_real: torch.Tensor, e_fake: torch.Tensor, margin: float) -> torch.Tensor:
    """E[D(x)] + E[relu(m - D(G(z)))] (EBGAN, Zhao et al. 2017): D(x) >= 0 is an energy, low on data.

    The hinge is **per sample** (a port that applies it to the batch mean lets a few very bad fakes
    pay for the rest). At the equilibrium p_g = p_data this loss is m.
    """
    return e_real.mean() + F.relu(margin - e_fake).mean()


def g_loss_energy(e_fake: torch.Tensor) -> torch.Tensor:
    """E[D(G(z))]: G lowers the energy of its samples (plus ``pulling_away`` in EBGAN-PT)."""
    return e_fake.mean()


def pulling_away(s: torch.Tensor) -> torch.Tensor:
    """f_PT = 1 / (N (N - 1)) sum_{i != j} (s_i^T s_j / (|s_i| |s_j|))^2 over a batch of codes s (N, K).

    **Squared** cosines: unsquared, opposite codes cancel similar ones, and a collapsed batch of n pairs
    (s, -s) would score -1 / (2n - 1), near 0. Orthogonal codes give 0, identical ones 1.
    """
    n = len(s)
    unit = F.normalize(s.flatten(1), dim=1)  # (N, K)
    cos2 = (unit @ unit.T) ** 2  # (N, N), ones on the diagonal
    return (cos2.sum() - cos2.diagonal().sum()) / (n * (n - 1))


# ---------------------------------------------------------------------------------------------
# GANs that infer and classify (lesson 11): the K+1-class D and the joint (x, z) D
# ---------------------------------------------------------------------------------------------


def _fp32_at_least(t: torch.Tensor) -> torch.Tensor:
    """bf16/fp16 outputs in fp32 for the loss; fp32 and fp64 as they are."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def k_plus_one_logits(logits: torch.Tensor) -> torch.Tensor:
    """(B, K) class logits -> (B, K+1): the fake class's logit appended, **fixed at 0** (Salimans et al.
    2016): a softmax over K+1 logits is over-parameterised, so one of them can be pinned."""
    return torch.cat([logits, logits.new_zeros(len(logits), 1)], dim=1)


def real_logit(logits: torch.Tensor) -> torch.Tensor:
    """The logit of D(x) = 1 - p(fake | x) = Z / (Z + 1), Z = sum_k exp l_k(x): log Z = logsumexp_k l_k(x)."""
    return torch.logsumexp(logits, dim=1)


def d_loss_supervised(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """-E log p(y | x, y < K+1) on the labelled batch: cross-entropy over the K real classes only."""
    return F.cross_entropy(_fp32_at_least(logits), y)


def d_loss_unsupervised(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """1/2 (-E_x log D(x) - E_z log(1 - D(G(z)))) with D(x) = sigma(logsumexp l(x)): the GAN's D loss on the
    real logit of unlabelled data and fakes, halved as in Salimans et al.'s code
    (1/2 [-LSE(l_unl) + softplus(LSE(l_unl)) + softplus(LSE(l_fake))], since softplus(a) - a = softplus(-a))."""
    return d_loss_minimax(real_logit(_fp32_at_least(logits_real)), real_logit(_fp32_at_least(logits_fake))) / 2


def feature_matching(f_real: torch.Tensor, f_fake: torch.Tensor) -> torch.Tensor:
    """|| E f(x) - E f(G(z)) ||^2 / F: G matches the batch means of D's F hidden features (Salimans et al.
    2016; the MNIST script's squared distance, averaged over features)."""
    return (_fp32_at_least(f_real).mean(dim=0) - _fp32_at_least(f_fake).mean(dim=0)).square().mean()


def g_loss_bidirectional(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """BiGAN/ALI's loss for the pair (G, E): D's loss with the labels swapped, -E log(1 - D(x, E(x))) -
    E log D(G(z), z), where d_real = D(x, E(x)) and d_fake = D(G(z), z) are logits; E learns through the
    first term, G through the second (the non-saturating form of Dumoulin et al. 2017)."""
    return d_loss_minimax(d_fake, d_real)


# ---------------------------------------------------------------------------------------------
# Penalties (lessons 07 and 09): their own fp32 forward, graph kept for the double backward
# ---------------------------------------------------------------------------------------------


def _input_gradient(D: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """d(sum_i D(x)_i)/dx in fp32 with the graph kept, D called outside any autocast: (B, ...) like x.

    The sum over the batch gives each sample its own gradient when D(x)_i depends on x_i alone: true
    for every D without batch norm (one more reason a penalised critic takes none) and without
    minibatch standard deviation. StyleGAN2's D has minibatch std; its R1 is defined, as here, as the
    gradient of the batch sum, which then mixes the samples of a group (the official code does the same).
    """
    D = getattr(D, "_orig_mod", D)  # the eager module behind a torch.compile wrapper: double backward does not compile
    x = _fp32_at_least(x.detach()).requires_grad_(True)  # fp32, or float64 where a test or a study asks for it
    with torch.autocast(x.device.type, enabled=False), full_fp32():  # the gradient's graph is recorded here too
        (grad,) = torch.autograd.grad(_fp32_at_least(D(x)).sum(), x, create_graph=True)
    return grad


@contextlib.contextmanager
def full_fp32():
    """TF32 off for CUDA matrix products and convolutions inside the block, restored after: a penalty's
    forward pass and first backward are fp32 even where ``speed.tune_cuda`` was never called (the second
    backward, in the optimiser's step, follows the global flags, which ``tune_cuda`` turns off)."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def interpolates(x_real: torch.Tensor, x_fake: torch.Tensor, generator: torch.Generator | None = None):
    """x_hat = eps * x_real + (1 - eps) * x_fake with **one** eps ~ U[0, 1] per sample, shape (B, 1, 1, ...).

    A single eps for the whole batch, or one per pixel, samples the wrong set (both bug classes
    are in public code); returns (x_hat, eps).
    """
    if x_real.shape != x_fake.shape:
        raise ValueError(f"real and fake batches differ in shape: {tuple(x_real.shape)} vs {tuple(x_fake.shape)}")
    eps = draw(torch.rand, len(x_real), *([1] * (x_real.ndim - 1)), device=x_real.device, generator=generator)
    x_real, x_fake = x_real.detach().float(), x_fake.detach().float()
    return eps * x_real + (1 - eps) * x_fake, eps


def gradient_norms(D: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """||grad_x D(x)||_2 per sample, the norm over **all** non-batch dimensions: shape (B,)."""
    grad = _input_gradient(D, x)
    return grad.reshape(len(grad), -1).norm(dim=1)  # (B, C, H, W) -> (B, C*H*W) -> (B,)


def gradient_penalty(D: nn.Module, x_real: torch.Tensor, x_fake: torch.Tensor, weight: float = 10.0,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al. 2017): lambda * E[(||grad D(x_hat)||_2 - 1)^2] at the interpolates
    x_hat = eps x + (1 - eps) x~ (``interpolates``), lambda = ``weight`` (the paper's 10).

    The penalty is taken at interpolates, never at the real samples alone, and is two-sided.
    The result keeps its graph: ``backward()`` on it reaches D's parameters (double backward).
    """
    x_hat, _ = interpolates(x_real, x_fake, generator)
    return weight * (gradient_norms(D, x_hat) - 1).square().mean()


def r1_penalty(D: nn.Module, x_real: torch.Tensor, gamma: float = 10.0) -> torch.Tensor:
    """R1 (Mescheder et al. 2018): gamma/2 * E[||grad_x D(x)||^2] on **real** images only.

    StyleGAN2's official ``cifar`` config uses gamma = 0.01; ``stylegan2`` uses 10. Lazily every
    k D steps, the caller multiplies by k (``train.lazy``).
    """
    grad = _input_gradient(D, x_real)
    return gamma / 2 * grad.square().reshape(len(grad), -1).sum(dim=1).mean()


@torch.no_grad()
def clip_weights(D: nn.Module, c: float = 0.01) -> None:
    """WGAN's Lipschitz constraint by force: every parameter of D clamped to [-c, c] after its update."""
    for p in D.parameters():
        p.clamp_(-c, c)
