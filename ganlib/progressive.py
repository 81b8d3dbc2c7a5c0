"""Lesson 13, progressive growing (Karras, Aila, Laine & Lehtinen 2018): the pieces that make a resolution grow.

Training starts at 4 x 4 and adds a resolution at a time. A new level is **faded in**: G's output is
lerp(upsample(toRGB_old(h)), toRGB_new(block(h)), alpha) (``fade``), D's input mirrors it, and, as the
official ``process_reals`` does, the **real images are faded too** (``fade_reals``): blended with their 2 x 2
box-downsampled-then-upsampled version, so D compares like with like. alpha runs 0 -> 1 over a fade phase,
then stays 1 while the level stabilises (``level_and_alpha``). Pixel norm (``pixel_norm``) normalises every G
feature vector to unit RMS over channels.

Known bugs of public ports, each a test: alpha stuck at 0 (an integer division) or at 1, the fade and
stabilise phases swapped at the first level, pixel norm's epsilon written 10e-8.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pixel_norm(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """x / sqrt(mean over channels of x^2 + eps): each pixel's feature vector (dim 1) at unit RMS."""
    return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + eps)


def upsample(x: torch.Tensor) -> torch.Tensor:
    """2x nearest-neighbour upsampling: each pixel becomes a 2 x 2 block."""
    return F.interpolate(x, scale_factor=2, mode="nearest")


def downsample(x: torch.Tensor) -> torch.Tensor:
    """2 x 2 box filter: the mean of each block."""
    return F.avg_pool2d(x, 2)


def fade(old: torch.Tensor, new: torch.Tensor, alpha: float) -> torch.Tensor:
    """G's output while a level fades in: (1 - alpha) upsample(old) + alpha new, old at half new's resolution."""
    return torch.lerp(upsample(old), new, alpha)


def fade_reals(x: torch.Tensor, alpha: float) -> torch.Tensor:
    """The real images D sees during the same fade: (1 - alpha) upsample(downsample(x)) + alpha x. The identity at
    alpha = 1 (a whole level); at alpha = 0, exactly what the previous level's G could draw, upsampled."""
    return torch.lerp(upsample(downsample(x)), x, alpha)


def level_and_alpha(images_seen: int, phase_images: int, levels: int) -> tuple[int, float]:
    """Where a run is after ``images_seen`` real images: (level, alpha). Level 0 (4 x 4) stabilises for one phase;
    each later level fades in for one phase (alpha 0 -> 1, fractional) and then stabilises for one (alpha 1).
    Past the last level's phases the run stays there at alpha 1."""
    phase = images_seen // phase_images  # 0: level 0 stable; 1: level 1 fading; 2: level 1 stable; ...
    if phase == 0:
        return 0, 1.0
    level = min((phase + 1) // 2, levels - 1)
    if phase % 2 == 1 and (phase + 1) // 2 <= levels - 1:
        return level, (images_seen - phase * phase_images) / phase_images  # a float: no integer division
    return level, 1.0
