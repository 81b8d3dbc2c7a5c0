"""Metrics. For now: mode coverage on toy mixtures (VEEGAN/PacGAN protocol)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .data import GaussianMixture


@dataclass
class ModeStats:
    """How a set of samples covers the components of a Gaussian mixture."""

    modes: int  # components with at least ``min_count`` high-quality samples
    n_modes: int  # components in the mixture
    high_quality: float  # fraction of samples within ``threshold`` stds of their nearest mean
    kl_uniform: float  # KL(histogram of high-quality samples over modes || uniform), nats; NaN if none
    counts: torch.Tensor  # (K,) high-quality samples per mode

    def __str__(self) -> str:
        kl = "n/a (no high-quality samples)" if math.isnan(self.kl_uniform) else f"{self.kl_uniform:.3f}"
        return f"{self.modes}/{self.n_modes} modes, {100 * self.high_quality:.1f}% high quality, KL to uniform {kl}"


@torch.no_grad()
def mode_coverage(x: torch.Tensor, target: GaussianMixture, threshold: float = 3.0,
                  min_count: int = 1) -> ModeStats:
    """Assign each sample to its nearest component, measured in that component's stds.

    A sample is *high quality* if it lies within ``threshold`` stds of that mean; a mode is
    *covered* if at least ``min_count`` high-quality samples land on it. PacGAN evaluates 2,500
    samples with threshold 3 and min_count 1. The KL term compares how the high-quality samples
    spread over the modes with the uniform spread of the (equal-weight) target; it is undefined
    (NaN) when no sample is high quality.
    """
    if x.ndim != 2 or x.shape[1] != target.dim:
        raise ValueError(f"expected samples of shape (n, {target.dim}), got {tuple(x.shape)}")
    means, stds = target.means.to(x.device), target.stds.to(x.device)
    dist = torch.cdist(x.float(), means) / stds  # (n, K), in units of each component's std
    nearest_dist, nearest = dist.min(dim=1)
    good = nearest_dist < threshold
    k = len(means)
    counts = torch.bincount(nearest[good], minlength=k).cpu()
    p = counts.double() / counts.sum()
    kl = float(torch.where(p > 0, p * torch.log(p * k), torch.zeros_like(p)).sum()) if counts.sum() else math.nan
    return ModeStats(int((counts >= min_count).sum()), k, float(good.float().mean()), kl, counts)
