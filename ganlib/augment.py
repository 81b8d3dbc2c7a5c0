"""Lesson 13, GANs with little data: differentiable augmentation and an adaptive augmentation probability.

DiffAugment (Zhao et al. 2020): replace every D(x) by D(T(x)), for real *and* generated images, in the D step
*and* the G step, with T differentiable so G's gradient flows through it. Its three ops, per sample, as the
official ``DiffAugment_pytorch.py``:

- ``color``: brightness x + U(-1/2, 1/2); saturation (x - mean_c) U(0, 2) + mean_c; contrast (x - mean) U(1/2, 3/2) + mean;
- ``translation``: an integer shift of up to 1/8 of the side in each direction, zero-filled;
- ``cutout``: a square of half the side, at a random centre, set to zero.

In images scaled to [-1, 1], zero is **mid-grey**, not the black background: a G that learns cutout from
augmented reals only draws grey squares, which ``grey_patch_share`` detects.

StyleGAN2-ADA (Karras et al. 2020) adapts the augmentation probability p: every ``interval`` minibatches,
p += sign(r_t - target) * batch * interval / (kimg * 1000), clamped at 0, with r_t = E[sign D(x_real)]
(``overfitting_signal``) and target 0.6 (``AdaptiveP``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .profiles import draw


def _uniform(x: torch.Tensor, generator, *shape) -> torch.Tensor:
    """U(0, 1) of shape (B, *shape), one draw per sample, on x's device and dtype."""
    return draw(torch.rand, x.shape[0], *shape, device=x.device, generator=generator).to(x.dtype)


def brightness(x: torch.Tensor, generator=None) -> torch.Tensor:
    return x + (_uniform(x, generator, 1, 1, 1) - 0.5)


def saturation(x: torch.Tensor, generator=None) -> torch.Tensor:
    """A no-op on one-channel images (the channel mean is the image): kept for the official policy."""
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * (_uniform(x, generator, 1, 1, 1) * 2) + mean


def contrast(x: torch.Tensor, generator=None) -> torch.Tensor:
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_uniform(x, generator, 1, 1, 1) + 0.5) + mean


def translation(x: torch.Tensor, generator=None, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by integers (dy, dx) drawn from [-s, s], s = int(side * ratio + 0.5), filling with zeros."""
    B, _, H, W = x.shape
    sy, sx = int(H * ratio + 0.5), int(W * ratio + 0.5)
    dy = (_uniform(x, generator) * (2 * sy + 1)).long().clamp(max=2 * sy) - sy  # (B,) in [-sy, sy]
    dx = (_uniform(x, generator) * (2 * sx + 1)).long().clamp(max=2 * sx) - sx
    rows = (torch.arange(H, device=x.device)[None] + dy[:, None] + 1).clamp(0, H + 1)  # (B, H) into the padded image
    cols = (torch.arange(W, device=x.device)[None] + dx[:, None] + 1).clamp(0, W + 1)
    padded = F.pad(x, (1, 1, 1, 1))  # the zero border every out-of-range index lands on
    b = torch.arange(B, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[b, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def cutout(x: torch.Tensor, generator=None, ratio: float = 0.5) -> torch.Tensor:
    """Zero a square of int(side * ratio + 0.5) pixels whose centre is uniform over the image (clipped at the border)."""
    B, _, H, W = x.shape
    size = int(H * ratio + 0.5), int(W * ratio + 0.5)
    oy = (_uniform(x, generator) * (H + 1 - size[0] % 2)).long()  # (B,) the official offsets
    ox = (_uniform(x, generator) * (W + 1 - size[1] % 2)).long()
    ys = torch.arange(H, device=x.device)[None] - (oy[:, None] - size[0] // 2)  # (B, H) position inside the square
    xs = torch.arange(W, device=x.device)[None] - (ox[:, None] - size[1] // 2)
    inside = ((ys >= 0) & (ys < size[0]))[:, :, None] & ((xs >= 0) & (xs < size[1]))[:, None, :]  # (B, H, W)
    return x * (~inside)[:, None].to(x.dtype)


POLICIES = {"color": (brightness, saturation, contrast), "translation": (translation,), "cutout": (cutout,)}


def diff_augment(x: torch.Tensor, policy: str = "color,translation,cutout", p: float = 1.0, generator=None) -> torch.Tensor:
    """T(x): the ops of ``policy`` in order, each applied to each image with probability ``p`` (1: DiffAugment; an
    ``AdaptiveP``'s p: ADA-style). Differentiable in x."""
    for name in filter(None, policy.split(",")):
        if name not in POLICIES:
            raise ValueError(f"unknown augmentation {name!r}; choose from {', '.join(POLICIES)}")
        for op in POLICIES[name]:
            if p >= 1:
                x = op(x, generator)
            elif p > 0:
                keep = _uniform(x, generator, 1, 1, 1) >= p  # (B, 1, 1, 1): these images skip the op
                x = torch.where(keep, x, op(x, generator))
    return x


def overfitting_signal(d_real: torch.Tensor) -> torch.Tensor:
    """r_t = E[sign D(x_real)] (logits): 0 when D cannot tell, 1 when every real image is called real."""
    return torch.sign(d_real.detach()).mean()


class AdaptiveP:
    """StyleGAN2-ADA's controller of the augmentation probability p."""

    def __init__(self, target: float = 0.6, interval: int = 4, kimg: float = 500.0, p: float = 0.0):
        self.target, self.interval, self.kimg, self.p = target, interval, kimg, p

    def step_size(self, batch_size: int) -> float:
        """How far p moves per update: batch * interval / (kimg * 1000) (in images: it takes kimg thousand
        images of a persistent sign to move p from 0 to 1)."""
        return batch_size * self.interval / (self.kimg * 1000)

    def update(self, r_t: float, batch_size: int) -> float:
        """p += sign(r_t - target) * step_size, never below 0 (the official clamps only there); returns p."""
        sign = (r_t > self.target) - (r_t < self.target)
        self.p = max(self.p + sign * self.step_size(batch_size), 0.0)
        return self.p

    def state_dict(self) -> dict:
        return {"p": self.p}

    def load_state_dict(self, state: dict) -> None:
        self.p = float(state["p"])


def grey_patch_share(x: torch.Tensor, size: int = 10, tol: float = 0.05) -> float:
    """The share of images (B, C, H, W) holding a ``size`` x ``size`` square where every pixel is within ``tol`` of 0
    (mid-grey): cutout's mark, which neither the black background (-1) nor a garment's smooth grey usually makes."""
    flat = (x.abs() < tol).all(dim=1, keepdim=True).to(x.dtype)  # (B, 1, H, W)
    full = F.avg_pool2d(flat, size, stride=1) > 1 - 1e-6  # windows entirely grey
    return float(full.flatten(1).any(dim=1).to(x.dtype).mean())
