"""Adversarial losses as pure functions of the discriminator's outputs, and the penalties on D.

Naming: ``d_loss_<kind>(d_real, d_fake)`` is minimised by D, ``g_loss_<kind>(d_fake)`` by G, where
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
    x = x.detach().float().requires_grad_(True)
    with torch.autocast(x.device.type, enabled=False), full_fp32():  # the gradient's graph is recorded here too
        (grad,) = torch.autograd.grad(D(x).float().sum(), x, create_graph=True)
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
