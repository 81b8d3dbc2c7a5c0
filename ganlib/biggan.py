"""Lesson 13, BigGAN's ideas at small scale (Brock, Donahue & Simonyan 2019).

- **Truncation by resampling** (``truncated_normal``): z ~ N(0, I) with every component beyond the threshold
  drawn again, not clipped (which piles mass at +-t) nor scaled (which is another distribution).
- **Orthogonal regularisation** R(W) = beta ||W W^T (.) (1 - I)||_F^2 over each weight reshaped to (out, -1)
  (``ortho_penalty``). The official ``utils.ortho`` adds ``strength * 2 (W W^T (.) (1 - I)) W`` to the gradient
  directly (``add_ortho_gradient``): that is *half* the gradient of ||W W^T (.) (1 - I)||_F^2, so the code's
  strength s is the paper's beta = s / 2 (a test holds the factor).
- **Class-conditional batch norm** (``ClassConditionalBatchNorm``): batch norm without its affine, then a gain
  1 + linear(y) and a bias linear(y), y the shared class embedding joined with a chunk of z.
"""

from __future__ import annotations

import torch
from torch import nn

from .profiles import draw


def truncated_normal(n: int, dim: int, threshold: float, device=None, generator=None) -> torch.Tensor:
    """(n, dim) draws of N(0, 1) conditioned on |z| <= threshold: entries beyond it are drawn again until none is."""
    if threshold <= 0:
        raise ValueError(f"the truncation threshold must be positive, got {threshold}")
    z = draw(torch.randn, n, dim, device=device, generator=generator)
    outside = z.abs() > threshold
    while bool(outside.any()):  # P(|z| > t) < 1, so this ends; each round redraws only the outliers
        z = torch.where(outside, draw(torch.randn, n, dim, device=device, generator=generator), z)
        outside = z.abs() > threshold
    return z


def _off_diagonal_gram(W: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(W reshaped (out, -1), its Gram matrix W W^T with the diagonal zeroed)."""
    W = W.reshape(W.shape[0], -1)
    gram = W @ W.T
    return W, gram * (1 - torch.eye(len(gram), device=W.device, dtype=W.dtype))


def ortho_penalty(W: torch.Tensor) -> torch.Tensor:
    """||W W^T (.) (1 - I)||_F^2: zero when the rows (filters) are orthogonal, whatever their norms."""
    return _off_diagonal_gram(W)[1].square().sum()


@torch.no_grad()
def add_ortho_gradient(model: nn.Module, strength: float = 1e-4, skip: tuple[nn.Module, ...] = ()) -> None:
    """BigGAN-PyTorch's ``utils.ortho``: after backward, add strength * 2 (W W^T (.) (1 - I)) W to the gradient of every
    parameter with two or more dimensions, except those of the modules in ``skip`` (the shared embedding)."""
    skipped = {id(p) for m in skip for p in m.parameters()}
    for p in model.parameters():
        if p.dim() < 2 or p.grad is None or id(p) in skipped:
            continue
        W, off = _off_diagonal_gram(p)
        p.grad += (strength * 2 * off @ W).reshape(p.shape)


class ClassConditionalBatchNorm(nn.Module):
    """BN(x) * (1 + gain(y)) + bias(y): batch norm without affine, its scale and shift linear in the condition y
    (B, cond_dim). The linear maps start at zero, so at initialisation this is plain batch norm."""

    def __init__(self, channels: int, cond_dim: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.gain, self.bias = nn.Linear(cond_dim, channels, bias=False), nn.Linear(cond_dim, channels, bias=False)
        nn.init.zeros_(self.gain.weight)
        nn.init.zeros_(self.bias.weight)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        gain, bias = 1 + self.gain(y)[:, :, None, None], self.bias(y)[:, :, None, None]  # (B, C, 1, 1)
        return self.norm(x) * gain + bias


def hierarchical_chunks(z: torch.Tensor, n_chunks: int) -> list[torch.Tensor]:
    """BigGAN's hierarchical z: split (B, dim_z) into ``n_chunks`` equal chunks, the first for G's input layer and one
    per block (each joined with the shared class embedding)."""
    if z.shape[1] % n_chunks:
        raise ValueError(f"dim_z = {z.shape[1]} does not split into {n_chunks} equal chunks")
    return list(z.chunk(n_chunks, dim=1))
