"""The latent space: uniform draws (lesson 11's priors), and paths through it: linear and spherical
interpolation (White 2016)."""

from __future__ import annotations

import torch

from .profiles import draw


def uniform(n: int, dim: int, low: float = -1.0, high: float = 1.0, device=None, generator=None) -> torch.Tensor:
    """n latents z ~ U(low, high)^dim, shape (n, dim): ``low + (high - low) * torch.rand``, drawn where ``generator``
    lives and moved to ``device`` (``profiles.draw``)."""
    return low + (high - low) * draw(torch.rand, n, dim, device=device, generator=generator)


def lerp(z0: torch.Tensor, z1: torch.Tensor, t) -> torch.Tensor:
    """(1 - t) z0 + t z1 for each t; ``t`` of shape (T,) gives (T, *z0.shape)."""
    t = torch.as_tensor(t, dtype=z0.dtype, device=z0.device).reshape(-1, *[1] * z0.ndim)  # (T, 1, ...)
    return (1 - t) * z0 + t * z1


def slerp(z0: torch.Tensor, z1: torch.Tensor, t) -> torch.Tensor:
    """sin((1 - t) W) / sin W * z0 + sin(t W) / sin W * z1, with W the angle between z0 and z1.

    For z ~ N(0, I) in d dimensions almost all mass lies near the sphere of radius sqrt(d); the
    midpoint of a straight line between two samples has norm about sqrt(d / 2), a region G never
    saw in training. Spherical interpolation follows the arc instead. Falls back to ``lerp`` when
    z0 and z1 are (nearly) parallel.
    """
    a, b = z0.flatten(), z1.flatten()
    cos = torch.dot(a, b) / (a.norm() * b.norm())
    omega = torch.arccos(cos.clamp(-1, 1))
    if omega.abs() < 1e-4:
        return lerp(z0, z1, t)
    t = torch.as_tensor(t, dtype=z0.dtype, device=z0.device).reshape(-1, *[1] * z0.ndim)  # (T, 1, ...)
    return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega)
