"""DCGAN (Radford, Metz & Chintala, ICLR 2016): convolutional G and D sized from the image shape.

The paper's guidelines, each visible below:

- no pooling: D downsamples with strided convolutions, G upsamples with fractionally-strided
  (transposed) convolutions, so both learn their own resampling;
- batch normalisation in both, except G's output layer and D's input layer;
- no fully connected hidden layers: z is projected straight to a small spatial map;
- ReLU in G with tanh on the output (images live in [-1, 1]); LeakyReLU(0.2) in D;
- weights from N(0, 0.02); Adam with lr 2e-4 and beta1 = 0.5 (``optimizers``).

Sizes: an image of side H starts at a base map of side H / 2^k between 4 and 7 (28 -> 7, 32 -> 4,
64 -> 4) and doubles k times. ``width`` is the channel count next to the image; it doubles at each
halving of the resolution, as in the paper's 64 x 64 model (1024-512-256-128 for width 128).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from . import speed, train
from .profiles import draw
from .pretrained import kept_generators as shipped_kept_generators
from .layers import refresh_spectral_norm

UpBlock = Callable[[int, int], nn.Module]


def base_size(size: int) -> int:
    """Halve ``size`` until it is at most 7: the side of G's first feature map and D's last one."""
    if size < 8:
        raise ValueError(f"image side {size} is too small for DCGAN (need at least 8)")
    side = size
    while side > 7:
        if side % 2:
            raise ValueError(f"image side {size} cannot be halved down to 4..7; use e.g. 28, 32 or 64")
        side //= 2
    return side


def _levels(shape) -> tuple[int, int, int]:
    c, h, w = shape
    if h != w:
        raise ValueError(f"DCGAN expects square images, got {h} x {w}")
    base = base_size(h)
    return c, base, int(math.log2(h // base))


def up_transposed(c_in: int, c_out: int) -> nn.Module:
    """Double the resolution with a 4x4 transposed convolution, stride 2: (H-1)*2 - 2 + 4 = 2H."""
    return nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=False)


def up_resize_conv(c_in: int, c_out: int) -> nn.Module:
    """Double the resolution by nearest-neighbour resizing, then a 3x3 convolution (Odena et al. 2016).

    Every output pixel sees the same number of inputs, so no checkerboard pattern is built in.
    """
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c_out, 3, padding=1, bias=False))


class Generator(nn.Module):
    """z (B, z_dim) -> images (B, C, H, W) in [-1, 1]."""

    def __init__(self, shape=(1, 28, 28), z_dim: int = 100, width: int = 64, up: UpBlock = up_transposed):
        super().__init__()
        c, base, levels = _levels(shape)
        ch = width * 2 ** (levels - 1)
        layers = [nn.ConvTranspose2d(z_dim, ch, base, bias=False), nn.BatchNorm2d(ch), nn.ReLU(True)]  # (B, ch, base, base)
        for _ in range(levels - 1):
            layers += [up(ch, ch // 2), nn.BatchNorm2d(ch // 2), nn.ReLU(True)]
            ch //= 2
        layers += [up(ch, c), nn.Tanh()]  # no batch norm on the output layer
        self.net = nn.Sequential(*layers)
        self.z_dim = z_dim
        self.apply(init_weights)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.reshape(len(z), -1, 1, 1))  # (B, z_dim) -> (B, z_dim, 1, 1)

    def random_inputs(self, n: int, device=None, generator=None) -> tuple[torch.Tensor]:
        """The arguments of one random batch: (z,) with z ~ N(0, I)."""
        return (draw(torch.randn, n, self.z_dim, device=device, generator=generator),)


def down_batchnorm(c_in: int, c_out: int, kernel: int = 4, stride: int = 2, padding: int = 1,
                   norm: bool = True) -> list[nn.Module]:
    """A strided convolution, then batch norm if ``norm`` (DCGAN's D; the conv drops its bias before BN)."""
    conv = nn.Conv2d(c_in, c_out, kernel, stride, padding, bias=not norm)
    return [conv, nn.BatchNorm2d(c_out)] if norm else [conv]


def down_layernorm(c_in: int, c_out: int, kernel: int = 4, stride: int = 2, padding: int = 1,
                   norm: bool = True) -> list[nn.Module]:
    """A strided convolution, then layer norm over (C, H, W) of each sample (``GroupNorm`` with one group).

    Per-sample normalisation keeps D(x_i) a function of x_i alone, which a gradient penalty needs.
    """
    conv = nn.Conv2d(c_in, c_out, kernel, stride, padding)
    return [conv, nn.GroupNorm(1, c_out)] if norm else [conv]


def down_plain(c_in: int, c_out: int, kernel: int = 4, stride: int = 2, padding: int = 1,
               norm: bool = True) -> list[nn.Module]:
    """A strided convolution with no normalisation at all (WGAN-GP's DCGAN critic)."""
    return [nn.Conv2d(c_in, c_out, kernel, stride, padding)]


def down_spectral(c_in: int, c_out: int, kernel: int = 4, stride: int = 2, padding: int = 1,
                  norm: bool = True) -> list[nn.Module]:
    """A strided convolution divided by its spectral norm (Miyato et al. 2018), for every layer (``norm``
    is ignored: spectral normalisation replaces batch norm)."""
    return [nn.utils.parametrizations.spectral_norm(nn.Conv2d(c_in, c_out, kernel, stride, padding))]


DownBlock = Callable[..., list[nn.Module]]


class Discriminator(nn.Module):
    """images (B, C, H, W) -> logits (B,).

    ``down`` builds each layer: ``down_batchnorm`` (the paper's), ``down_layernorm``, ``down_plain``
    or ``down_spectral``. The input layer and the head are built with ``norm=False``.
    """

    def __init__(self, shape=(1, 28, 28), width: int = 64, down: DownBlock = down_batchnorm):
        super().__init__()
        c, base, levels = _levels(shape)
        layers = [*down(c, width, norm=False), nn.LeakyReLU(0.2, True)]  # no normalisation on the input
        ch = width
        for _ in range(levels - 1):
            layers += [*down(ch, 2 * ch), nn.LeakyReLU(0.2, True)]
            ch *= 2
        self.body = nn.Sequential(*layers)  # (B, ch, base, base): reused by conditional and InfoGAN heads
        (self.head,) = down(ch, 1, base, 1, 0, norm=False)  # one layer, (B, 1, 1, 1): the same keys whatever ``down``
        self.features = ch
        self.apply(init_weights)
        refresh_spectral_norm(self)  # down_spectral: u converged on the weights init_weights replaced

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x)).flatten()  # (B, 1, 1, 1) -> (B,)


def _stored_weight(module: nn.Module) -> torch.Tensor:
    """The weight parameter itself: under spectral norm ``module.weight`` is computed from ``original``."""
    if nn.utils.parametrize.is_parametrized(module, "weight"):
        return module.parametrizations.weight.original
    return module.weight


def init_weights(module: nn.Module) -> None:
    """Convolutions ~ N(0, 0.02) as in the paper; batch-norm scales ~ N(1, 0.02), shifts 0 (pytorch/examples)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(_stored_weight(module), 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def optimizers(G: nn.Module, D: nn.Module, lr: float = 2e-4, betas=(0.5, 0.999)):
    """The paper's Adam for both players: lr 2e-4, beta1 0.5 (``train.adam``: fused kernels)."""
    return train.adam(G, D, lr, lr, betas)


# ---------------------------------------------------------------------------------------------
# Lesson 03's run, kept for lesson 04 and the decks
# ---------------------------------------------------------------------------------------------

LESSON_03 = {  # lesson 03's training settings per profile (steps are G updates; limit: first images only)
    "smoke": dict(steps=40, batch_size=32, width=16, limit=2048, log_every=4),
    "cpu": dict(steps=5_000, batch_size=64, width=64, limit=None, log_every=100),
    "gpu": dict(steps=20_000, batch_size=128, width=64, limit=None, log_every=250),
}


def run_name(dataset: str, profile: str, seed: int) -> str:
    """The name lesson 03 gives a run (its checkpoint and kept generators): ``<dataset>-<profile>-seed<seed>``."""
    return f"{dataset}-{profile}-seed{seed}"



def generator_path(directory, run: str, step: int) -> Path:
    """Where ``keep_generators`` saves G_ema's weights at ``step``."""
    return Path(directory) / f"{run}-G_ema-{step:06d}.pt"


def keep_generators(directory, run: str, every: int):
    """An ``on_log`` hook for ``train.fit`` that saves G_ema's weights every ``every`` steps."""
    def keep(state):
        if every and state.step % every == 0:
            Path(directory).mkdir(parents=True, exist_ok=True)
            torch.save(state.G_ema.state_dict(), generator_path(directory, run, state.step))
    return keep


def saved_generators(directory, run: str) -> dict[int, Path]:
    """The weights ``keep_generators`` saved for ``run``, by step."""
    found = Path(directory).glob(f"{run}-G_ema-[0-9][0-9][0-9][0-9][0-9][0-9].pt")
    return dict(sorted((int(p.stem.rsplit("-", 1)[1]), p) for p in found))


def kept_weights(directory, run: str, steps: int, recipe: dict, pretrained: bool = False, device=None,
                 weights_dir=None) -> dict[int, dict]:
    """{step: G_ema's state dict} along ``run``: those ``keep_generators`` saved in ``directory``, else,
    with ``pretrained``, those the course ships from that run when ``steps`` and ``recipe`` match
    (``pretrained.kept_generators``; ``weights_dir``: where the shipped files are); {} if neither.
    Load one with ``G.load_state_dict(weights[step])``."""
    saved = saved_generators(directory, run)
    if saved:
        return {step: torch.load(path, map_location=device, weights_only=True) for step, path in saved.items()}
    if pretrained:
        return shipped_kept_generators(Path(directory) / f"{run}.pt", steps, recipe, weights_dir) or {}
    return {}


def train_dcgan(images, steps: int, *, directory, run: str, batch_size: int = 64, width: int = 64,
                z_dim: int = 100, log_every: int = 100, amp: str | bool = False, progress: bool = True,
                recipe: dict | None = None, pretrained: bool = False, keep_every: int | None = None):
    """Lesson 03's recipe in one call: DCGAN with EMA (beta 0.995), checkpoint ``<run>.pt`` (resumed if
    present) and G_ema kept every ``keep_every`` steps (default: every tenth of the run).
    ``recipe``/``pretrained``: as ``train.fit_schedule``'s (the course's shipped weights). Returns the
    ``train.GANState``."""
    G = speed.channels_last(Generator(images.shape, z_dim, width).to(images.x.device))
    D = speed.channels_last(Discriminator(images.shape, width).to(images.x.device))
    opt_G, opt_D = optimizers(G, D)
    state = train.GANState.with_ema(G, D, opt_G, opt_D)
    d_step, g_step = train.gan_steps(G, D, opt_G, opt_D, images, batch_size, amp=amp)
    train.fit(state, d_step, g_step, steps, ema_beta=0.995, log_every=log_every,
              checkpoint=Path(directory) / f"{run}.pt", checkpoint_every=steps // 4,
              on_log=keep_generators(directory, run, steps // 10 if keep_every is None else keep_every), progress=progress, recipe=recipe,
              pretrained=pretrained)
    return state
