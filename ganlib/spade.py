"""Lesson 12, third part: SPADE (Park et al. 2019), spatially-adaptive normalisation.

A normalisation layer with a learned affine transform removes what it normalises: fed a label map that is
constant (one class everywhere), conv + instance norm outputs exactly zero whatever the class, so a
generator that reads its label map only at the input can lose it ("washes away" the semantics). SPADE puts
the map back at every normalisation:

    SPADE(x, m) = norm(x) * (1 + gamma(m)) + beta(m),

norm without parameters, m resized (nearest) to x's size, gamma and beta from a small conv net on m
(a shared conv + ReLU, then one conv each). The generator here starts from the map at 4 x 4 and grows it
with SPADE residual blocks; the lesson trains it, and a U-Net on the same map, with pix2pix's objective.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import pix2pix


# Lesson 12's mask task: a SPADE G against a U-Net G (pix2pix's, on the 11-channel map), one objective (pix2pix's)
SPADE_12 = {
    "smoke": dict(generator="spade", widths=(4, 4, 4, 4), hidden=4, n_layers=1, d_width=4, l1_weight=100.0,
                  gan_weight=1.0, lr=2e-4, batch_size=8, steps=6, log_every=3, limit=512),
    "cpu": dict(generator="spade", widths=(32, 32, 16, 8), hidden=16, n_layers=1, d_width=16, l1_weight=100.0,
                gan_weight=1.0, lr=2e-4, batch_size=32, steps=1500, log_every=100, limit=10_000),
}
SPADE_12["gpu"] = {**SPADE_12["cpu"], "steps": 6000, "batch_size": 64, "limit": 30_000}
UNET_MASKS_12 = {profile: {**pix2pix.PIX2PIX_12[profile], **{k: r[k] for k in ("batch_size", "steps", "log_every", "limit")}}
                 for profile, r in SPADE_12.items()}  # the baseline: pix2pix's U-Net at the SPADE run's budget


class SPADE(nn.Module):
    """norm(x) * (1 + gamma(m)) + beta(m); ``norm``: a parameter-free normalisation of ``channels`` channels."""

    def __init__(self, channels: int, label_channels: int, hidden: int = 32, norm=nn.InstanceNorm2d):
        super().__init__()
        self.norm = norm(channels, affine=False)
        self.shared = nn.Sequential(nn.Conv2d(label_channels, hidden, 3, padding=1), nn.ReLU())
        self.gamma = nn.Conv2d(hidden, channels, 3, padding=1)
        self.beta = nn.Conv2d(hidden, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        m = F.interpolate(m, size=x.shape[-2:], mode="nearest")  # (B, L, H, W) at x's resolution
        h = self.shared(m)
        return self.norm(x) * (1 + self.gamma(h)) + self.beta(h)


class SPADEBlock(nn.Module):
    """SPADE -> LeakyReLU -> conv3 -> SPADE -> LeakyReLU -> conv3, plus a shortcut (a SPADE and a 1x1 conv when
    the channels change): NVlabs' SPADEResnetBlock without its spectral norm."""

    def __init__(self, c_in: int, c_out: int, label_channels: int, hidden: int = 32):
        super().__init__()
        c_mid = min(c_in, c_out)
        self.norm_0, self.conv_0 = SPADE(c_in, label_channels, hidden), nn.Conv2d(c_in, c_mid, 3, padding=1)
        self.norm_1, self.conv_1 = SPADE(c_mid, label_channels, hidden), nn.Conv2d(c_mid, c_out, 3, padding=1)
        self.learned_shortcut = c_in != c_out
        if self.learned_shortcut:
            self.norm_s, self.conv_s = SPADE(c_in, label_channels, hidden), nn.Conv2d(c_in, c_out, 1, bias=False)

    def forward(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        shortcut = self.conv_s(self.norm_s(x, m)) if self.learned_shortcut else x
        h = self.conv_0(F.leaky_relu(self.norm_0(x, m), 0.2))
        return shortcut + self.conv_1(F.leaky_relu(self.norm_1(h, m), 0.2))


class SPADEGenerator(nn.Module):
    """The label map m (B, L, 32, 32) -> an image (B, 1, 32, 32). The map, resized to 4 x 4, goes through a conv
    (SPADE's G without its VAE starts from the downsampled map); then a SPADE block and a 2x nearest upsampling
    per resolution, 4 -> 8 -> 16 -> 32, channels ``widths``; then LeakyReLU, a conv to one channel, tanh."""

    def __init__(self, label_channels: int, out_channels: int = 1, widths=(32, 32, 16, 8), hidden: int = 32, start: int = 4):
        super().__init__()
        self.start = start
        self.head = nn.Conv2d(label_channels, widths[0], 3, padding=1)
        self.blocks = nn.ModuleList(SPADEBlock(c_in, c_out, label_channels, hidden)
                                    for c_in, c_out in zip(widths, (*widths[1:], widths[-1])))
        self.out = nn.Conv2d(widths[-1], out_channels, 3, padding=1)

    def forward(self, m: torch.Tensor) -> torch.Tensor:
        h = self.head(F.interpolate(m, size=(self.start, self.start), mode="nearest"))  # (B, widths[0], 4, 4)
        for i, block in enumerate(self.blocks):
            h = block(h, m)
            if i < len(self.blocks) - 1:
                h = F.interpolate(h, scale_factor=2, mode="nearest")
        return torch.tanh(self.out(F.leaky_relu(h, 0.2)))


def networks(recipe: dict, in_channels: int, out_channels: int = 1):
    """``pix2pix.networks``'s counterpart for ``pix2pix.train_pix2pix(..., make_networks=spade.networks)``: a SPADE G
    (``recipe["widths"]``, ``recipe["hidden"]``) and pix2pix's pair D on the (map, image) pair."""
    G = SPADEGenerator(in_channels, out_channels, tuple(recipe["widths"]), recipe["hidden"])
    D = pix2pix.PairDiscriminator(pix2pix.patch_discriminator(in_channels + out_channels, recipe["n_layers"], recipe["d_width"]))
    return pix2pix.init_weights(G), pix2pix.init_weights(D)
