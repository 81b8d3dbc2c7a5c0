"""Building blocks shared by several lessons' models."""

from __future__ import annotations

import torch
from torch import nn


def mlp(in_dim: int, out_dim: int, hidden: int = 128, depth: int = 3, slope: float = 0.2) -> nn.Sequential:
    """``depth`` hidden layers of width ``hidden`` with LeakyReLU(slope), then a linear output.

    Used as G (z -> x) and D (x -> logit) on toy data; the output layer has no activation, so
    a discriminator built this way returns logits.
    """
    layers, width = [], in_dim
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.LeakyReLU(slope)]
        width = hidden
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


class MinibatchStd(nn.Module):
    """Append one feature: the average standard deviation of the features across the batch.

    Salimans et al. (2016) and Karras et al. (2018) let D look at batch statistics, so a batch
    of near-identical fakes (mode collapse) is easy to spot. For input (B, F, ...) the output is
    (B, F + 1, ...); the statistic is computed over groups of ``group_size`` samples.
    """

    def __init__(self, group_size: int = 0):
        super().__init__()
        self.group_size = group_size  # 0: the whole batch is one group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        g = b if self.group_size <= 0 else min(self.group_size, b)
        if b % g:
            raise ValueError(f"batch size {b} is not divisible by the group size {g}")
        y = x.reshape(g, b // g, *x.shape[1:])  # (G, B/G, F, ...): sample i is in group i % (B/G)
        std = (y.var(dim=0, unbiased=False) + 1e-8).sqrt()  # (B/G, F, ...)
        stat = std.reshape(b // g, -1).mean(dim=1)  # (B/G,): one number per group
        extra = stat.repeat(g).reshape(b, 1, *([1] * (x.ndim - 2))).expand(b, 1, *x.shape[2:])
        return torch.cat([x, extra], dim=1)
