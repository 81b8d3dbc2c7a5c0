"""StyleGAN (Karras, Laine & Aila 2019) and StyleGAN2 (Karras et al. 2020), small enough for a laptop.

G = synthesis(mapping(z)): the mapping network turns z into an intermediate latent w, one copy
per layer (``ws``: (B, num_ws, w_dim)); the synthesis network starts from a learned 4 x 4 constant
and lets each w steer one layer through a modulated convolution (``stylegan_layers``), with noise
for the stochastic details. Images leave G through a toRGB at every resolution, upsampled and
summed (the "skip" G). D is residual, with minibatch standard deviation before its last layers.

What we keep from the official code (NVlabs/stylegan2-ada-pytorch) and what we change:

- kept: equalised lr, mapping lr x 0.01, w_avg (beta 0.995) and truncation, modulation/demodulation
  (eps 1e-8), noise strengths from 0, skip G, **residual D**, **style mixing (p = 0.9)**, the
  non-saturating loss with lazy R1 (every 16 D steps, lr and betas corrected), an EMA of G with
  its ramp-up, path-length regularisation (optional, every 4 G steps);
- the official 32 px ``cifar`` config drops path length, style mixing and the residual D, and uses
  512 channels at every resolution. We keep mixing (the lesson's mixing grid needs a G trained for
  it) and the residual D (the StyleGAN2 paper's choice), and make the network narrow for CPUs;
- bilinear upsampling and 2 x 2 average pooling replace the [1, 3, 3, 1] FIR filters;
- resolutions are powers of two: Fashion-MNIST's 28 x 28 is padded to 32 x 32 (``pad_images``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from . import data, distributed, losses, speed, train
from .profiles import draw
from .layers import MinibatchStd
from .stylegan_layers import (EqualConv2d, EqualLinear, MappingNetwork, ModulatedConv, adain,  # noqa: F401 (adain)
                              mix, to_rgb, truncate, upsample)


@dataclass
class StyleGANConfig:
    """Every knob of the model and its training; defaults are the course's cpu profile.

    Official values from NVlabs/stylegan2-ada-pytorch (train.py ``cifar`` spec unless said otherwise).
    """

    resolution: int = 32            # official cifar: 32 (a power of two)
    img_channels: int = 1           # Fashion-MNIST 1; cifar: 3
    channel_base: int = 512         # feature maps at resolution r: min(channel_base // r, channel_max),
    channel_max: int = 64           #   here 64-64-32-16 at 4-8-16-32 px; cifar: 32768 and 512 (512 everywhere)
    z_dim: int = 128                # official: 512
    w_dim: int = 128                # official: 512
    mapping_layers: int = 2         # cifar: 2; paper and the stylegan2 config: 8
    mapping_lr_mul: float = 0.01    # official: 0.01 (networks.py MappingNetwork lr_multiplier)
    mixing_prob: float = 0.9        # paper / stylegan2 config: 0.9; cifar: 0 (we keep mixing)
    w_avg_beta: float = 0.995       # official: 0.995
    mbstd_group: int = 4            # official: min(4, N); cifar: mbstd 32
    r1_gamma: float = 0.01          # cifar: 0.01; stylegan2 config: 10 (at 1024 px)
    r1_every: int = 16              # official D_reg_interval: 16
    pl_weight: float = 0.0          # stylegan2 config: 2; cifar: 0 (off: see path_length_penalty)
    pl_every: int = 4               # official G_reg_interval: 4
    pl_decay: float = 0.01          # official pl_decay: 0.01
    pl_batch_shrink: int = 2        # official pl_batch_shrink: 2
    ema_half_life_images: float = 500_000  # cifar: ema 500 kimg
    ema_ramp: float | None = 0.05   # cifar: ramp 0.05 (the half-life never exceeds 5% of the images seen)
    lr: float = 0.0025              # cifar: 0.0025; stylegan2: 0.002
    betas: tuple[float, float] = (0.0, 0.99)  # official
    eps: float = 1e-8               # official

    def __post_init__(self):
        if self.resolution < 4 or self.resolution & (self.resolution - 1):
            raise ValueError(f"resolution must be a power of two >= 4, got {self.resolution}; "
                             "pad the images (pad_images)")

    def channels(self, r: int) -> int:
        """Feature maps at resolution r: min(channel_base // r, channel_max), as officially."""
        return min(self.channel_base // r, self.channel_max)

    @property
    def resolutions(self) -> list[int]:
        """4, 8, ..., resolution."""
        return [2 ** k for k in range(2, int(math.log2(self.resolution)) + 1)]


def pad_images(x: torch.Tensor, size: int = 32, value: float = -1.0) -> torch.Tensor:
    """Pad (B, C, H, W) images symmetrically to (B, C, size, size) with ``value`` (-1: black, the background):
    ``data.pad``. StyleGAN's resolutions are powers of two, so Fashion-MNIST's 28 becomes 32."""
    return data.pad(x, size, value)


def crop_images(x: torch.Tensor, size: int = 28) -> torch.Tensor:
    """The centre size x size of (B, C, H, W) images: undoes ``pad_images`` (e.g. for a 28 px classifier)."""
    top, left = (x.shape[-2] - size) // 2, (x.shape[-1] - size) // 2
    return x[..., top:top + size, left:left + size]


def pad_to_32(x: torch.Tensor) -> torch.Tensor:
    """``pad_images(x, 32)``: Fashion-MNIST 28 x 28 -> 32 x 32, padded with -1."""
    return pad_images(x, 32)


# ---------------------------------------------------------------------------------------------
# Generator
# ---------------------------------------------------------------------------------------------


class SynthesisNetwork(nn.Module):
    """ws (B, num_ws, w_dim) -> images (B, C, R, R), from a learned 4 x 4 constant.

    Layers: one conv at 4 x 4, then (upsampling conv, conv) at each doubling; a toRGB per
    resolution reads the w of the next conv, so num_ws = 2 log2(R) - 2 (8 at 32 px), as officially.
    ``w_resolutions[i]`` is the resolution of the convolution that ws[:, i] steers.
    """

    def __init__(self, cfg: StyleGANConfig):
        super().__init__()
        ch, steps = cfg.channels, len(cfg.resolutions) - 1
        self.const = nn.Parameter(torch.randn(ch(4), 4, 4))
        convs = [ModulatedConv(ch(4), ch(4), cfg.w_dim)]
        for r in cfg.resolutions[1:]:
            convs += [ModulatedConv(ch(r // 2), ch(r), cfg.w_dim, up=True), ModulatedConv(ch(r), ch(r), cfg.w_dim)]
        self.convs = nn.ModuleList(convs)
        self.to_rgbs = nn.ModuleList([to_rgb(ch(r), cfg.img_channels, cfg.w_dim) for r in cfg.resolutions])
        self.num_ws = len(convs) + 1
        self.w_resolutions = [4] + [4 * 2 ** (i // 2 + 1) for i in range(2 * steps)] + [cfg.resolution]

    def noise_shapes(self, n: int) -> list[tuple[int, int, int, int]]:
        """The shape (n, 1, H, W) of each conv layer's noise input, in order."""
        return [(n, 1, r, r) for r in self.w_resolutions[:-1]]

    def forward(self, ws: torch.Tensor, noise: list[torch.Tensor | None] | None = None) -> torch.Tensor:
        noise = [None] * len(self.convs) if noise is None else noise
        x = self.const[None].expand(len(ws), -1, -1, -1)  # (B, C, 4, 4)
        x = self.convs[0](x, ws[:, 0], noise[0])
        img = self.to_rgbs[0](x, ws[:, 1])  # (B, img_channels, 4, 4)
        for i, rgb in enumerate(self.to_rgbs[1:]):
            j = 2 * i + 1
            x = self.convs[j](x, ws[:, j], noise[j])  # (B, C, 2H, 2W)
            x = self.convs[j + 1](x, ws[:, j + 1], noise[j + 1])
            img = upsample(img) + rgb(x, ws[:, j + 2])  # skip G: the images are summed across resolutions
        return img


class Generator(nn.Module):
    """G(z) = synthesis(mapping(z)); also G(ws) for (B, num_ws, w_dim) latents from ``mapping``.

    In training mode a batch mixes styles with probability ``mixing_prob``: one crossover k per
    batch, uniform in [1, num_ws), w1 = mapping(z) before k and w2 = mapping(z2) from k on
    (z2 drawn afresh; the second call leaves w_avg alone). In eval mode G never mixes.
    ``psi`` truncates toward w_avg (on the first ``cutoff`` layers); ``noise`` is one map per conv
    layer (``random_noise``) or None to draw it. As officially there is no tanh: images are about
    [-1, 1]; clamp them before showing or measuring.
    """

    def __init__(self, cfg: StyleGANConfig | None = None):
        super().__init__()
        cfg = cfg or StyleGANConfig()
        self.cfg, self.z_dim, self.mixing_prob = cfg, cfg.z_dim, cfg.mixing_prob
        self.synthesis = SynthesisNetwork(cfg)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(cfg.z_dim, cfg.w_dim, self.num_ws, cfg.mapping_layers, cfg.mapping_lr_mul,
                                      cfg.w_avg_beta)

    mix = staticmethod(mix)

    def styles(self, z: torch.Tensor, psi: float = 1.0, cutoff: int | None = None) -> torch.Tensor:
        """ws for z: ``mapping(z, psi)``, style-mixed with probability ``mixing_prob`` in training mode."""
        ws = self.mapping(z, psi, cutoff)  # (B, num_ws, w_dim)
        if self.training and self.mixing_prob > 0 and torch.rand(()) < self.mixing_prob:  # CPU draws: no device sync
            crossover = int(torch.randint(1, self.num_ws, ()))
            ws = mix(ws, self.mapping(torch.randn_like(z), psi, cutoff, update_w_avg=False), crossover)
        return ws

    def forward(self, z_or_ws: torch.Tensor, psi: float = 1.0, noise: list | None = None,
                cutoff: int | None = None) -> torch.Tensor:
        if z_or_ws.ndim == 3:  # ws (B, num_ws, w_dim)
            ws = truncate(z_or_ws, self.mapping.w_avg.to(z_or_ws.dtype), psi, cutoff)
        else:
            ws = self.styles(z_or_ws, psi, cutoff)
        return self.synthesis(ws, noise)

    def random_inputs(self, n: int, device=None, generator=None) -> tuple[torch.Tensor]:
        """The arguments of one random batch: (z,) with z ~ N(0, I)."""
        return (draw(torch.randn, n, self.z_dim, device=device, generator=generator),)

    def random_noise(self, n: int, device=None, generator=None) -> list[torch.Tensor]:
        """One noise map (n, 1, H, W) per conv layer, for ``G(z, noise=...)``: fixed noise, or resampled."""
        return [draw(torch.randn, s, device=device, generator=generator) for s in self.synthesis.noise_shapes(n)]


def use_fused_modconv(G: nn.Module, fused: bool | None) -> nn.Module:
    """Set every modulated conv's path: True grouped conv, False activation scaling, None official
    (grouped in eval only). On CPUs the activation-scaling path is the faster one in training."""
    for m in G.modules():
        if isinstance(m, ModulatedConv):
            m.fused = fused
    return G


# ---------------------------------------------------------------------------------------------
# Discriminator
# ---------------------------------------------------------------------------------------------


class DBlock(nn.Module):
    """Residual: (conv3x3 -> pool -> conv3x3, plus pool -> conv1x1) * sqrt(1/2): resolution halved.

    (The official block convolves, then downsamples with its FIR filter; pooling first is 4x cheaper.)
    """

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv0 = EqualConv2d(c_in, c_in, 3, activation=True)
        self.conv1 = EqualConv2d(c_in, c_out, 3, activation=True)
        self.skip = EqualConv2d(c_in, c_out, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.skip(F.avg_pool2d(x, 2))  # (B, O, H/2, W/2)
        x = self.conv1(F.avg_pool2d(self.conv0(x), 2))  # (B, O, H/2, W/2)
        return (x + y) * math.sqrt(0.5)  # the sum of two unit-variance branches back to unit variance


class Discriminator(nn.Module):
    """Images (B, C, R, R) -> logits (B,): fromRGB, residual blocks down to 4 x 4, minibatch std, conv, fc, fc."""

    def __init__(self, cfg: StyleGANConfig | None = None):
        super().__init__()
        cfg = cfg or StyleGANConfig()
        ch, c = cfg.channels, cfg.channels(4)
        self.from_rgb = EqualConv2d(cfg.img_channels, ch(cfg.resolution), 1, activation=True)
        self.blocks = nn.Sequential(*[DBlock(ch(r), ch(r // 2)) for r in reversed(cfg.resolutions[1:])])
        self.mbstd = MinibatchStd(cfg.mbstd_group)
        self.conv = EqualConv2d(c + 1, c, 3, activation=True)
        self.fc = EqualLinear(c * 16, c, activation=True)
        self.out = EqualLinear(c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.from_rgb(x))  # (B, C, 4, 4)
        x = self.conv(self.mbstd(x))  # (B, C + 1, 4, 4) -> (B, C, 4, 4)
        return self.out(self.fc(x.flatten(1))).squeeze(1)  # (B, C*16) -> (B,)


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------

LESSON_09 = {  # lesson 09's training settings per profile (kept for the deck): StyleGAN2 at 32 x 32; R1's gamma
    # is 0.1, ten times the official 32 px value (set for CIFAR-10): it lowered FID in all four pairs tried on
    # Fashion-MNIST (two seeds, 1,500 and 3,000 steps: docs/results/cpu-2026-12-09-speed.md)
    "smoke": dict(steps=16, batch_size=8, channel_base=512, channel_max=16, z_dim=32, r1_gamma=0.1, limit=512, log_every=4),
    "cpu": dict(steps=1500, batch_size=32, channel_base=512, channel_max=64, z_dim=128, r1_gamma=0.1, limit=None, log_every=50),
    "gpu": dict(steps=20_000, batch_size=64, channel_base=8192, channel_max=256, z_dim=256, r1_gamma=0.1, limit=None,
                log_every=250),
}
LONG_09 = dict(LESSON_09["cpu"], steps=24_000, log_every=250)  # the long run the course ships: the cpu recipe, 16x the steps
LONG_09_RUN = "fashion_mnist32-long-seed0-c64-b32"  # its name (checkpoint, shipped weights)
DCGAN_LONG_09 = dict(batch_size=64, width=64, log_every=100, limit=None, steps=40_000)  # lesson 03's cpu recipe, 8x longer
DCGAN_LONG_09_RUN = "fashion_mnist-long-seed0-w64-b64"  # trained beside LONG_09, one thread each: FID against minutes


def lesson_config(recipe: dict) -> StyleGANConfig:
    """The networks' config of a ``LESSON_09`` recipe (or a run's stored recipe): widths, z = w, R1's gamma
    (0.01, the official 32 px value, in recipes that do not name it)."""
    return StyleGANConfig(channel_base=recipe["channel_base"], channel_max=recipe["channel_max"],
                          z_dim=recipe["z_dim"], w_dim=recipe["z_dim"], r1_gamma=recipe.get("r1_gamma", 0.01))


def optimizers(G: nn.Module, D: nn.Module, cfg: StyleGANConfig | None = None):
    """Adam(lr, betas (0, 0.99), eps 1e-8) for both; a player with a lazy regulariser every k steps
    gets lr * c and beta^c, c = k / (k + 1) (``train.lazy_adam_settings``): D always (R1), G only
    when path length is on (the official code corrects G's too, even where the cifar config never
    runs the regulariser). Fused kernels where torch has them."""
    cfg, fused = cfg or StyleGANConfig(), train.fused_adam(G)

    def adam(model, every):
        lr, betas = train.lazy_adam_settings(cfg.lr, cfg.betas, every) if every else (cfg.lr, cfg.betas)
        return torch.optim.Adam(model.parameters(), lr=lr, betas=betas, eps=cfg.eps, fused=fused)

    return adam(G, cfg.pl_every if cfg.pl_weight > 0 else 0), adam(D, cfg.r1_every)


def path_length_penalty(G: Generator, z: torch.Tensor, pl_mean: torch.Tensor, decay: float = 0.01) -> torch.Tensor:
    """Path-length regularisation (StyleGAN2 §3.2): E[(||J_w^T y||_2 - a)^2], y ~ N(0, I) / sqrt(H W).

    J_w is the Jacobian of the image with respect to ws: a step in w should move the image by the
    same amount whatever the direction and wherever w is, so G is a smooth, well-conditioned map
    (better perceptual path length; easier to invert). ||J_w^T y|| is one autograd call (the
    gradient of sum(x * y) w.r.t. ws), its square summed over w_dim and averaged over layers; the
    target a is a running mean of the lengths, ``pl_mean`` <- lerp(pl_mean, mean length, decay),
    updated in place (keep it in ``state.extras["pl_mean"]`` so a resume restores it). fp32,
    graph kept: the caller multiplies by pl_weight and the interval, and backpropagates.
    """
    ws = G.styles(z)  # (B, num_ws, w_dim), mixed in training as in G's main phase
    x = G.synthesis(ws)  # (B, C, H, W)
    y = torch.randn_like(x) / math.sqrt(x.shape[2] * x.shape[3])
    (grad,) = torch.autograd.grad((x * y).sum(), ws, create_graph=True)  # (B, num_ws, w_dim)
    lengths = grad.square().sum(dim=2).mean(dim=1).sqrt()  # (B,)
    a = pl_mean.lerp(lengths.mean(), decay)
    pl_mean.copy_(a.detach())
    return (lengths - a).square().mean()


def ema_beta(cfg: StyleGANConfig, batch_size: int):
    """G_ema's beta as a function of the step: half-life ``cfg.ema_half_life_images`` with its ramp."""
    return train.ema_half_life(batch_size, cfg.ema_half_life_images, cfg.ema_ramp)


def make_state(cfg: StyleGANConfig | None = None, device="cpu") -> train.GANState:
    """G, D, their optimisers, G_ema (eval mode: never mixes, never moves w_avg) and extras["pl_mean"]."""
    cfg = cfg or StyleGANConfig()
    G, D = Generator(cfg).to(device), Discriminator(cfg).to(device)
    state = train.GANState.with_ema(G, D, *optimizers(G, D, cfg), extras={"pl_mean": torch.zeros((), device=device)})
    state.G_ema.eval()
    return state


def main_phases(state: train.GANState, images, batch_size: int, amp: str | bool = False) -> list[train.Phase]:
    """D main and G main, both non-saturating, with G in training mode (styles mixed, w_avg tracked);
    forward passes in ``amp``'s arithmetic (``speed.precision``), losses in fp32."""
    G, D, device = state.G, state.D, images.x.device
    ctx = speed.amp_context(device, amp, state.opt_G, state.opt_D)

    def d_main():
        x_real, _ = images.sample(batch_size)
        x_fake = train.fakes(G, batch_size, ctx)  # no graph back into G
        return train.discriminator_step(D, state.opt_D, losses.d_loss_nonsaturating, x_real, x_fake, ctx)

    def g_main():
        with ctx:
            x_fake = G(*G.random_inputs(batch_size, device))
        return train.generator_step(D, state.opt_G, losses.g_loss_nonsaturating, x_fake, ctx)

    return [train.Phase("D", d_main), train.Phase("G", g_main)]


def r1_phase(state: train.GANState, images, batch_size: int, cfg: StyleGANConfig) -> train.Phase:
    """Lazy R1 every ``r1_every`` steps on real images only, fp32, its loss times the interval."""
    def d_r1():
        x_real, _ = images.sample(batch_size)
        r1 = losses.r1_penalty(state.D, x_real, cfg.r1_gamma)
        train.update(state.opt_D, r1 * cfg.r1_every)
        return {"R1": r1.detach()}
    return train.Phase("R1", d_r1, every=cfg.r1_every)


def path_length_phase(state: train.GANState, batch_size: int, cfg: StyleGANConfig) -> train.Phase:
    """Lazy path length every ``pl_every`` steps on batch / pl_batch_shrink, fp32, loss x weight x interval;
    the running target is ``state.extras["pl_mean"]``."""
    G = state.G

    def g_pl():
        (z,) = G.random_inputs(max(batch_size // cfg.pl_batch_shrink, 1), next(G.parameters()).device)
        pl = path_length_penalty(G, z, state.extras["pl_mean"], cfg.pl_decay)
        train.update(state.opt_G, pl * cfg.pl_weight * cfg.pl_every)
        return {"path_length": pl.detach(), "pl_mean": state.extras["pl_mean"].clone()}
    return train.Phase("PL", g_pl, every=cfg.pl_every)


def stylegan_phases(state: train.GANState, images, batch_size: int, cfg: StyleGANConfig,
                    amp: str | bool = False) -> list[train.Phase]:
    """The schedule: D main, G main, R1 every ``r1_every`` steps, path length every ``pl_every`` if
    ``pl_weight`` > 0. Run it with ``train.fit_schedule(state, phases, steps, ema_beta=ema_beta(cfg, B))``."""
    phases = [*main_phases(state, images, batch_size, amp), r1_phase(state, images, batch_size, cfg)]
    return phases + [path_length_phase(state, batch_size, cfg)] if cfg.pl_weight > 0 else phases


def train_stylegan(images, recipe: dict, *, directory, run: str, z_fixed: torch.Tensor, amp: str | bool = False,
                   keep_every: int = 0, progress: bool = True, pretrained: bool = False) -> train.GANState:
    """Lesson 09's training in one call: the networks of ``lesson_config(recipe)``, ``stylegan_phases``
    for ``recipe["steps"]``, checkpoint ``<run>.pt`` in ``directory`` (resumed if present), snapshots of
    G_ema(z_fixed), and G_ema kept every ``keep_every`` steps (``dcgan.keep_generators``: the points of
    an FID-through-training curve). ``recipe``/``pretrained``: as ``train.fit_schedule``'s. Under torchrun
    (``python -m ganlib.launch 09``) ``batch_size`` is the global batch: each rank takes its share, and
    minibatch standard deviation groups form within it; the EMA's half-life counts global images."""
    from .dcgan import keep_generators

    cfg, steps, device = lesson_config(recipe), recipe["steps"], images.x.device
    state = make_state(cfg, device)
    use_fused_modconv(state.G_ema, False if device.type == "cpu" else None)  # on CPUs the cheaper path
    batch = distributed.local_batch(recipe["batch_size"])  # the global batch, split across torchrun's ranks
    if batch % min(cfg.mbstd_group, batch):
        raise ValueError(f"each rank's batch ({batch}) must split into minibatch-std groups of {cfg.mbstd_group}")
    phases = stylegan_phases(state, images, batch, cfg, amp=amp)
    train.fit_schedule(state, phases, steps, ema_beta=ema_beta(cfg, recipe["batch_size"]), log_every=recipe["log_every"],
                       snapshot=lambda: state.G_ema(z_fixed).clamp(-1, 1), snapshot_every=max(steps // 5, 1),
                       checkpoint=Path(directory) / f"{run}.pt", checkpoint_every=max(steps // 4, 1),
                       on_log=keep_generators(directory, run, keep_every), progress=progress,
                       recipe=recipe, pretrained=pretrained)
    return state
