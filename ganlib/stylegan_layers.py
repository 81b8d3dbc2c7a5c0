"""The layers of StyleGAN and StyleGAN2, in plain PyTorch (no custom CUDA or C++ ops).

- **Equalised learning rate** (Karras et al. 2018): a weight is stored as N(0, 1) / lr_mul and
  multiplied by lr_mul / sqrt(fan_in) **in every forward pass**, so Adam's step (about lr, whatever
  the weight's scale) is the same relative step in every layer. Scaling once at initialisation
  gives the same first forward pass and a different optimiser (a bug class of public ports).
  Biases are scaled by lr_mul; the mapping network uses lr_mul = 0.01.
- **AdaIN** (StyleGAN): normalise each feature map of each sample, then scale and shift it by the style.
- **Mapping** z -> w, the running mean w_avg, **truncation** toward it and **style mixing** (per-layer ws).
- **Modulation / demodulation** (StyleGAN2): scale the conv weight's input channels by the style s,
  w'_oikl = s_i w_oikl, then divide each output channel by sigma_o = sqrt(sum_ikl w'_oikl^2 + 1e-8).
  For unit-variance inputs the outputs have unit variance again: the statistics AdaIN enforced
  on the data are now an expectation built into the weights, so no feature map can be normalised
  away and the "droplet" artefacts AdaIN provoked disappear.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LRELU_GAIN = math.sqrt(2)  # keeps the second moment of a unit-variance input through lrelu(0.2)


def lrelu(x: torch.Tensor) -> torch.Tensor:
    """sqrt(2) * leaky_relu(x, 0.2): StyleGAN's activation with its gain."""
    return F.leaky_relu(x, 0.2) * LRELU_GAIN


def normalize_2nd_moment(z: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """z / sqrt(mean_j z_j^2 + eps) per sample ("pixel norm" on the latent): (B, z_dim)."""
    return z * (z.square().mean(dim=1, keepdim=True) + eps).rsqrt()


class EqualLinear(nn.Module):
    """y = x (lr_mul W / sqrt(in))^T + lr_mul b, W stored as N(0, 1) / lr_mul; lrelu if ``activation``."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, bias_init: float = 0.0,
                 lr_mul: float = 1.0, activation: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init))) if bias else None
        self.weight_gain = lr_mul / math.sqrt(in_features)  # applied at run time, never folded into the weight
        self.lr_mul, self.activation = lr_mul, activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias * self.lr_mul
        x = F.linear(x, self.weight * self.weight_gain, bias)
        return lrelu(x) if self.activation else x


class EqualConv2d(nn.Module):
    """A k x k convolution (same padding) with weight lr_mul W / sqrt(in k k) at run time; lrelu if ``activation``."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, bias: bool = True, lr_mul: float = 1.0,
                 activation: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel, kernel) / lr_mul)
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = lr_mul / math.sqrt(in_channels * kernel * kernel)
        self.lr_mul, self.activation, self.padding = lr_mul, activation, kernel // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias * self.lr_mul
        x = F.conv2d(x, self.weight * self.weight_gain, bias, padding=self.padding)
        return lrelu(x) if self.activation else x


# ---------------------------------------------------------------------------------------------
# StyleGAN: AdaIN
# ---------------------------------------------------------------------------------------------


def adain(x: torch.Tensor, y_s: torch.Tensor, y_b: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """AdaIN(x, y) = y_s (x - mu(x)) / sigma(x) + y_b, mu and sigma per sample and channel over (H, W).

    x: (B, C, H, W); y_s, y_b: (B, C), the style's scale and bias (StyleGAN: an affine map of w).
    Each feature map's mean and spread are thrown away and replaced: a map can only carry relative
    information, which is what StyleGAN's G circumvented with a strong local spike (a droplet).
    """
    mu = x.mean(dim=(2, 3), keepdim=True)  # (B, C, 1, 1)
    sigma = (x.var(dim=(2, 3), keepdim=True, unbiased=False) + eps).sqrt()  # (B, C, 1, 1)
    return y_s[:, :, None, None] * (x - mu) / sigma + y_b[:, :, None, None]


# ---------------------------------------------------------------------------------------------
# StyleGAN2: modulated convolution
# ---------------------------------------------------------------------------------------------


def demodulation(weight: torch.Tensor, s: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """1 / sigma_bo = rsqrt(sum_{i,k,l} (s_bi w_oikl)^2 + eps) per sample b and output channel o: (B, O).

    The sum factors: sum_i s_bi^2 (sum_kl w_oikl^2), a (B, I) @ (I, O) product, so the per-sample
    weights (B, O, I, k, k) are never built (the official code builds them: at lesson 09's size on
    the CPU that made a training step 1.11x and sampling 1.38x slower, docs/results/cpu-2026-12-09-speed.md).
    """
    return (s.square() @ weight.square().sum(dim=(2, 3)).T + eps).rsqrt()


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, s: torch.Tensor, demodulate: bool = True,
                     padding: int | None = None) -> torch.Tensor:
    """The fused path: one grouped convolution with a weight per sample, w'_boikl = s_bi w_oikl / sigma_bo.

    x: (B, I, H, W); weight: (O, I, k, k) (already scaled by its equalised-lr gain); s: (B, I).
    The batch becomes the groups: an input of 1 sample with B*I channels, convolved with B*O filters
    in B groups, gives each sample its own filters.
    """
    b, c_in, h, w_ = x.shape
    c_out, _, k, _ = weight.shape
    w = weight[None] * s[:, None, :, None, None]  # (B, O, I, k, k)
    if demodulate:
        w = w * demodulation(weight, s)[:, :, None, None, None]
    x = x.reshape(1, b * c_in, h, w_)  # (1, B*I, H, W)
    out = F.conv2d(x, w.reshape(b * c_out, c_in, k, k), padding=k // 2 if padding is None else padding, groups=b)
    return out.reshape(b, c_out, *out.shape[2:])  # (1, B*O, H', W') -> (B, O, H', W')


def modulated_conv2d_nonfused(x: torch.Tensor, weight: torch.Tensor, s: torch.Tensor, demodulate: bool = True,
                              padding: int | None = None) -> torch.Tensor:
    """The same result with a shared weight: conv(x * s, w) / sigma, scaling activations instead of weights.

    Linearity makes the two equal: scaling input channel i by s_i before the convolution is
    scaling the weights' input channel i; dividing output channel o afterwards is demodulating.
    """
    k = weight.shape[-1]
    out = F.conv2d(x * s[:, :, None, None], weight, padding=k // 2 if padding is None else padding)  # (B, O, H', W')
    if demodulate:
        out = out * demodulation(weight, s)[:, :, None, None]
    return out


def upsample(x: torch.Tensor) -> torch.Tensor:
    """x2 bilinear upsampling (the official code uses a [1, 3, 3, 1] FIR filter; for teaching this is as good)."""
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


class ModulatedConv(nn.Module):
    """A StyleGAN2 synthesis layer: [x2 upsample], modulated conv by s = affine(w), + noise, + bias, lrelu.

    The style's affine map starts with bias 1, so every s_i starts near 1. The noise is one channel
    (B, 1, H, W) scaled by a learned scalar strength that starts at 0. ``fused`` chooses the
    grouped-convolution path (None: as the official code, grouped in eval, activation scaling in training).
    """

    def __init__(self, c_in: int, c_out: int, w_dim: int, kernel: int = 3, up: bool = False,
                 demodulate: bool = True, activation: bool = True, noise: bool = True):
        super().__init__()
        self.affine = EqualLinear(w_dim, c_in, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(c_out, c_in, kernel, kernel))
        self.weight_gain = 1 / math.sqrt(c_in * kernel * kernel)  # equalised lr, at run time
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.noise_strength = nn.Parameter(torch.zeros(())) if noise else None
        self.up, self.demodulate, self.activation = up, demodulate, activation
        self.fused: bool | None = None

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        if self.up:
            x = upsample(x)  # (B, I, 2H, 2W)
        s = self.affine(w)  # (B, I)
        fused = (not self.training) if self.fused is None else self.fused
        conv = modulated_conv2d if fused else modulated_conv2d_nonfused
        x = conv(x, self.weight * self.weight_gain, s, self.demodulate)  # (B, O, H, W)
        if self.noise_strength is not None:
            if noise is None:
                noise = torch.randn(len(x), 1, *x.shape[2:], device=x.device, dtype=x.dtype)  # (B, 1, H, W)
            x = x + noise * self.noise_strength
        x = x + self.bias[None, :, None, None]
        return lrelu(x) if self.activation else x


def to_rgb(c_in: int, img_channels: int, w_dim: int) -> ModulatedConv:
    """toRGB: a 1x1 modulated convolution, not demodulated, no noise, no activation."""
    return ModulatedConv(c_in, img_channels, w_dim, kernel=1, demodulate=False, activation=False, noise=False)


# ---------------------------------------------------------------------------------------------
# Mapping, truncation, mixing
# ---------------------------------------------------------------------------------------------


def truncate(ws: torch.Tensor, w_avg: torch.Tensor, psi: float = 1.0, cutoff: int | None = None) -> torch.Tensor:
    """The truncation trick, w' = w_avg + psi (w - w_avg), on the first ``cutoff`` layers (all if None).

    psi = 1 returns ``ws`` itself; psi = 0 maps every w to w_avg. ws: (B, num_ws, w_dim).
    """
    if psi == 1:
        return ws
    truncated = w_avg + psi * (ws - w_avg)
    if cutoff is None:
        return truncated
    return torch.cat([truncated[:, :cutoff], ws[:, cutoff:]], dim=1)


def mix(ws1: torch.Tensor, ws2: torch.Tensor, crossover: int, stop: int | None = None) -> torch.Tensor:
    """Style mixing: ws1's layers, except those in [crossover, stop) which come from ws2 (stop None: to the end).

    ``mix(ws1, ws2, k)`` is training's mixing (w1 before layer k, w2 from k on); ``mix(ws1, ws2, 0, k)``
    takes the coarse styles (layers below k) from ws2. ws: (B, num_ws, w_dim).
    """
    stop = ws1.shape[1] if stop is None else stop
    return torch.cat([ws1[:, :crossover], ws2[:, crossover:stop], ws1[:, stop:]], dim=1)


class MappingNetwork(nn.Module):
    """z -> w = MLP(z / rms(z)), broadcast to ``num_ws`` layers; tracks w_avg for truncation.

    In training mode every call (unless ``update_w_avg=False``) moves the buffer w_avg toward the
    batch mean: w_avg <- lerp(mean_b w_b, w_avg, beta). In eval mode w_avg never moves.
    """

    def __init__(self, z_dim: int, w_dim: int, num_ws: int, layers: int = 8, lr_mul: float = 0.01,
                 w_avg_beta: float = 0.995):
        super().__init__()
        dims = [z_dim] + [w_dim] * layers
        self.net = nn.Sequential(*[EqualLinear(a, b, lr_mul=lr_mul, activation=True) for a, b in zip(dims, dims[1:])])
        self.register_buffer("w_avg", torch.zeros(w_dim))
        self.num_ws, self.w_avg_beta = num_ws, w_avg_beta

    def forward(self, z: torch.Tensor, psi: float = 1.0, cutoff: int | None = None,
                update_w_avg: bool = True) -> torch.Tensor:
        w = self.net(normalize_2nd_moment(z))  # (B, w_dim)
        if self.training and update_w_avg:
            with torch.no_grad():
                self.w_avg.copy_(w.detach().float().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        ws = w[:, None, :].expand(-1, self.num_ws, -1)  # (B, w_dim) -> (B, num_ws, w_dim)
        return truncate(ws, self.w_avg.to(ws.dtype), psi, cutoff)
