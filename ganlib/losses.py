"""Adversarial losses as pure functions of the discriminator's logits.

Naming: ``d_loss_<kind>(d_real, d_fake)`` is minimised by D, ``g_loss_<kind>(d_fake)`` by G, where
``d_real = D(x_real)`` and ``d_fake = D(G(z))`` are logits (before any sigmoid) and sigma is the
logistic sigmoid. Every loss is a batch mean. We use log sigma(a) = -softplus(-a) and
log(1 - sigma(a)) = -softplus(a), which stay finite for any logit.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


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
