"""Lesson 12, first part: pix2pix (Isola et al. 2017), paired image-to-image translation.

G* = arg min_G max_D L_cGAN(G, D) + lambda E||y - G(x)||_1, lambda = 100: G is a **U-Net** (an encoder-decoder
whose mirrored layers are joined by skips, dropout its only noise), D a **PatchGAN** that judges the
(input, output) pair patch by patch: one logit per overlapping patch, the patch being the receptive field
of the output unit (``receptive_field``). D's loss is halved, G's GAN loss is the non-saturating one
(the official code's choices). Scored against the hidden targets by ``scores``: L1, the course classifier's
accuracy on G's outputs (the FCN-score idea), course FID, and a sharpness ratio.

Lesson 12's other parts: ``ganlib.cyclegan`` (unpaired), ``ganlib.spade`` (label maps).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from . import classifier, distributed, losses, train
from .updates import frozen, update

# ---------------------------------------------------------------------------------------------
# The PatchGAN discriminator and its receptive field
# ---------------------------------------------------------------------------------------------


def patchgan_layers(n_layers: int) -> list[tuple[int, int]]:
    """(kernel, stride) of each conv of the official ``NLayerDiscriminator(n_layers)``: ``n_layers`` 4x4 convs
    of stride 2, then two of stride 1 (the last one gives the logits). ``n_layers = 0``: the pixel D's 1x1 convs."""
    if n_layers == 0:
        return [(1, 1)] * 3
    return [(4, 2)] * n_layers + [(4, 1)] * 2


def receptive_field(layers: list[tuple[int, int]]) -> int:
    """Pixels of the input one output unit sees: from the output back, rf <- (rf - 1) * stride + kernel.
    Padding does not change it. ``patchgan_layers(3)`` gives 70, pix2pix's "70 x 70 PatchGAN"."""
    rf = 1
    for kernel, stride in reversed(layers):
        rf = (rf - 1) * stride + kernel
    return rf


def patch_discriminator(in_channels: int, n_layers: int = 1, width: int = 16, norm: Callable = nn.BatchNorm2d) -> nn.Sequential:
    """The PatchGAN: ``patchgan_layers(n_layers)``, widths ``width * min(2^i, 8)``, LeakyReLU 0.2, ``norm`` on every
    hidden conv but the first, padding 1, no sigmoid: (B, in_channels, H, W) -> (B, 1, h, w) logits, one per patch.
    ``n_layers = 0`` is the pixel discriminator (1x1 convs: each logit judges one pixel)."""
    if n_layers == 0:
        return nn.Sequential(nn.Conv2d(in_channels, width, 1), nn.LeakyReLU(0.2), nn.Conv2d(width, 2 * width, 1, bias=False),
                             norm(2 * width), nn.LeakyReLU(0.2), nn.Conv2d(2 * width, 1, 1))
    widths = [width * min(2**i, 8) for i in range(n_layers + 1)]
    body: list[nn.Module] = [nn.Conv2d(in_channels, width, 4, 2, 1), nn.LeakyReLU(0.2)]
    for i, (kernel, stride) in enumerate(patchgan_layers(n_layers)[1:-1], start=1):
        body += [nn.Conv2d(widths[i - 1], widths[i], kernel, stride, 1, bias=False), norm(widths[i]), nn.LeakyReLU(0.2)]
    return nn.Sequential(*body, nn.Conv2d(widths[n_layers], 1, 4, 1, 1))


class PairDiscriminator(nn.Module):
    """pix2pix's conditional D: a PatchGAN on the input and the output stacked as channels, D(a, b)."""

    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.body(torch.cat([a, b], dim=1))  # (B, Ca + Cb, H, W) -> (B, 1, h, w)


# ---------------------------------------------------------------------------------------------
# The U-Net generator
# ---------------------------------------------------------------------------------------------


class UNet(nn.Module):
    """pix2pix's G at small scale. Down: 4x4 convs of stride 2 with LeakyReLU 0.2 and batch norm (none on the
    outermost and the innermost). Up: ReLU, a 4x4 transposed conv of stride 2, batch norm, dropout 0.5 in the
    ``n_dropout`` innermost blocks; the last one ends in tanh. With ``skips`` each up block also reads the
    mirrored down block's output (concatenated channels); without, it is the same encoder-decoder, narrower
    inputs only. ``widths`` has one entry per level: 32 px and 5 levels reach 1 x 1, as unet_256 does at 256."""

    def __init__(self, in_channels: int, out_channels: int, widths=(16, 32, 32, 32, 32), skips: bool = True,
                 n_dropout: int = 2, dropout: float = 0.5):
        super().__init__()
        self.skips, n = skips, len(widths)
        self.down = nn.ModuleList()
        for i, (c_in, c_out) in enumerate(zip((in_channels, *widths[:-1]), widths)):
            norm = nn.Identity() if i in (0, n - 1) else nn.BatchNorm2d(c_out)
            act = nn.Identity() if i == 0 else nn.LeakyReLU(0.2)  # the activation precedes each conv but the first
            self.down.append(nn.Sequential(act, nn.Conv2d(c_in, c_out, 4, 2, 1, bias=i in (0, n - 1)), norm))
        self.up = nn.ModuleList()
        for i in reversed(range(n)):  # innermost first; block i undoes down block i
            c_in = widths[i] * (2 if skips and i < n - 1 else 1)
            c_out = out_channels if i == 0 else widths[i - 1]
            tail = [nn.Tanh()] if i == 0 else [nn.BatchNorm2d(c_out)] + ([nn.Dropout(dropout)] if n - 1 - i < n_dropout else [])
            self.up.append(nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=i == 0), *tail))

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        h, outs = a, []
        for block in self.down:
            h = block(h)
            outs.append(h)  # (B, widths[i], H / 2^(i+1), W / 2^(i+1))
        for j, block in enumerate(self.up):
            if self.skips and j > 0:
                h = torch.cat([h, outs[-1 - j]], dim=1)  # the mirrored down block's output beside the way up
            h = block(h)
        return h


def unet(in_channels: int, out_channels: int, widths=(16, 32, 32, 32, 32)) -> UNet:
    return UNet(in_channels, out_channels, widths, skips=True)


def encoder_decoder(in_channels: int, out_channels: int, widths=(16, 32, 32, 32, 32)) -> UNet:
    """The U-Net without its skips: everything G knows of the input passes through the 1 x 1 bottleneck."""
    return UNet(in_channels, out_channels, widths, skips=False)


def init_weights(model: nn.Module, std: float = 0.02) -> nn.Module:
    """pix2pix's initialisation: conv weights N(0, 0.02), norm scales N(1, 0.02), biases 0."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, std)
        elif isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, std)
        if getattr(m, "bias", None) is not None:
            nn.init.zeros_(m.bias)
    return model


def test_mode(G: nn.Module, mode: str) -> nn.Module:
    """A copy of G set up for a test pass: ``"train"`` (dropout on, batch norm from the test batch: the paper's
    choice), ``"eval"`` (no dropout, running statistics: ``G.eval()``, what users expect) or ``"dropout"``
    (running statistics, dropout on). A copy, because a train-mode pass updates batch norm's running statistics
    even under ``torch.no_grad()``: testing the trained G itself in train mode would change what its eval mode reads."""
    if mode not in ("train", "eval", "dropout"):
        raise ValueError(f"mode must be 'train', 'eval' or 'dropout', got {mode!r}")
    G = copy.deepcopy(G).train(mode == "train").requires_grad_(False)
    for m in G.modules():
        if isinstance(m, nn.Dropout) and mode == "dropout":
            m.train()
    return G


# ---------------------------------------------------------------------------------------------
# Losses, steps, runs
# ---------------------------------------------------------------------------------------------


def d_loss_pix2pix(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """(BCE(D(a, b), 1) + BCE(D(a, G(a)), 0)) / 2 over every patch logit: the D loss halved "to slow D"."""
    return 0.5 * losses.d_loss_nonsaturating(d_real, d_fake)


def g_loss_pix2pix(d_fake: torch.Tensor, b_fake: torch.Tensor, b: torch.Tensor, l1_weight: float = 100.0,
                   gan_weight: float = 1.0) -> torch.Tensor:
    """gan_weight * BCE(D(a, G(a)), 1) + l1_weight * mean |b - G(a)|: the paper's objective at weights (1, 100)."""
    gan = losses.g_loss_nonsaturating(d_fake) if gan_weight else d_fake.new_zeros(())
    return gan_weight * gan + l1_weight * (b_fake - b).abs().mean()


def pix2pix_steps(G, D, opt_G, opt_D, pairs, batch_size: int, l1_weight: float, gan_weight: float):
    """``d_step`` and ``g_step`` for ``train.fit`` on aligned pairs (``data.Pairs``); without a GAN term
    (``gan_weight`` 0) D is not trained and G's step is plain L1 regression."""
    def d_step():
        a, b = pairs.sample(batch_size)
        with torch.no_grad():
            b_fake = G(a)
        d_real, d_fake = D(a, b), D(a, b_fake)
        loss = d_loss_pix2pix(d_real, d_fake)
        update(opt_D, loss)
        return {"loss_D": loss.detach(), "D(a,b)": torch.sigmoid(d_real).mean().detach(),
                "D(a,G(a))": torch.sigmoid(d_fake).mean().detach()}

    def g_step():
        a, b = pairs.sample(batch_size)
        b_fake = G(a)
        with frozen(D):
            d_fake = D(a, b_fake) if gan_weight else b_fake.new_zeros(())
        loss = g_loss_pix2pix(d_fake, b_fake, b, l1_weight, gan_weight)
        update(opt_G, loss)
        return {"loss_G": loss.detach(), "L1": (b_fake - b).abs().mean().detach()}

    return (d_step if gan_weight else (lambda: {})), g_step


GENERATORS = {"unet": unet, "encoder-decoder": encoder_decoder}

# Lesson 12's recipe (the paper's lambda, Adam and init; small widths, 32 px, batches instead of batch 1) and its
# ablations, each a change of the recipe: the losses (Isola et al. Table 1), the skips (Fig. 5), the patch (Table 2).
PIX2PIX_12 = {
    "smoke": dict(generator="unet", widths=(4, 8, 8, 8, 8), n_layers=1, d_width=4, l1_weight=100.0, gan_weight=1.0,
                  lr=2e-4, batch_size=8, steps=6, log_every=3, limit=512),
    "cpu": dict(generator="unet", widths=(16, 32, 32, 32, 32), n_layers=1, d_width=16, l1_weight=100.0, gan_weight=1.0,
                lr=2e-4, batch_size=32, steps=1500, log_every=100, limit=20_000),
}
PIX2PIX_12["gpu"] = {**PIX2PIX_12["cpu"], "steps": 6000, "batch_size": 64, "limit": 60_000}
VARIANTS_12 = {  # name -> what changes in the recipe
    "L1+cGAN": {}, "L1": {"gan_weight": 0.0}, "cGAN": {"l1_weight": 0.0},
    "encoder-decoder": {"generator": "encoder-decoder"}, "pixel D": {"n_layers": 0}, "image D": {"n_layers": 2},
}


def networks(recipe: dict, in_channels: int = 1, out_channels: int = 1) -> tuple[nn.Module, PairDiscriminator]:
    """G (``recipe["generator"]``: ``"unet"`` or ``"encoder-decoder"``) and the pair D (``recipe["n_layers"]``), initialised."""
    G = GENERATORS[recipe["generator"]](in_channels, out_channels, tuple(recipe["widths"]))
    D = PairDiscriminator(patch_discriminator(in_channels + out_channels, recipe["n_layers"], recipe["d_width"]))
    return init_weights(G), init_weights(D)


def run_name(task: str, variant: str, seed: int, recipe: dict) -> str:
    """``<task>-<variant>-seed<seed>-<steps>``, the variant's spaces and '+' as '-' (file names): edges-L1-cGAN-seed0-1500."""
    slug = variant.replace("+", "-").replace(" ", "-")
    return f"{task}-{slug}-seed{seed}-{recipe['steps']}"


def train_pix2pix(pairs, variant: str, seed: int, recipe: dict, *, directory, task: str = "edges",
                  make_networks=networks, pretrained: bool = False, progress: bool = False) -> train.GANState:
    """Train one pix2pix run on ``pairs`` (``data.Pairs``) with Adam (lr, 0.5, 0.999) and the recipe's weights:
    ``recipe`` holds ``generator``, ``n_layers``, ``l1_weight``, ``gan_weight``, ``widths``, ``d_width``, ``lr``,
    ``batch_size``, ``steps``, ``log_every``. ``make_networks(recipe, Ca, Cb)`` builds (G, D) (lesson 12's SPADE
    runs pass ``spade.networks``). The run is ``<directory>/<task>-<variant>-seed<seed>-<steps>.pt``."""
    torch.manual_seed(seed)
    G, D = (m.to(pairs.a.device) for m in make_networks(recipe, pairs.a.shape[1], pairs.b.shape[1]))
    opts = train.adam(G, D, recipe["lr"], betas=(0.5, 0.999))
    state = train.GANState(G, D, *opts)
    steps = pix2pix_steps(G, D, *opts, pairs, distributed.local_batch(recipe["batch_size"]), recipe["l1_weight"],
                          recipe["gan_weight"])
    train.fit(state, *steps, recipe["steps"], log_every=recipe["log_every"], progress=progress,
              checkpoint=Path(directory) / f"{run_name(task, variant, seed, recipe)}.pt",
              checkpoint_every=recipe["steps"] // 2, recipe=recipe, pretrained=pretrained)
    return state


# ---------------------------------------------------------------------------------------------
# Scores against the hidden targets
# ---------------------------------------------------------------------------------------------


def sharpness(x: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between neighbouring pixels (horizontal and vertical), per image: (B,)."""
    dx, dy = (x[..., :, 1:] - x[..., :, :-1]).abs(), (x[..., 1:, :] - x[..., :-1, :]).abs()
    return dx.flatten(1).mean(1) / 2 + dy.flatten(1).mean(1) / 2


@torch.no_grad()
def scores(b_fake: torch.Tensor, b: torch.Tensor, y: torch.Tensor, clf, f_real: torch.Tensor) -> dict[str, float]:
    """What lesson 12 measures of outputs ``b_fake`` (N, 1, 32, 32) against their hidden targets ``b`` of classes ``y``:
    ``L1`` (mean |b_fake - b|), ``accuracy`` (the course classifier on the central 28 x 28 of b_fake names y),
    ``FID`` (course features against ``f_real``), ``sharpness`` (mean neighbour difference of b_fake over b's)."""
    crop = b_fake[..., 2:30, 2:30]  # undo data.pad: the classifier reads 28 x 28
    quality = classifier.sample_quality(clf, crop, f_real, y)
    return {"L1": float((b_fake - b).abs().mean()), "accuracy": quality["consistency"], "FID": quality["FID"],
            "sharpness": float(sharpness(b_fake).mean() / sharpness(b).mean())}


def translate(G: nn.Module, a: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """G(a) in batches, without gradients, in whatever mode G is in (``test_mode``)."""
    with torch.no_grad():
        return torch.cat([G(chunk) for chunk in a.split(batch_size)])
