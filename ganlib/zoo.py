"""Lesson 10's loss zoo: the same G and D trained with different answers to "what does D compute?".

The losses themselves are pure functions in ``ganlib.losses``; this module holds what a loss needs
beyond them: a step whose G loss also sees the real scores (the relativistic losses), EBGAN's
autoencoder discriminator and its steps, and the lesson's runs (one recipe for every loss, so a
table of them compares losses and nothing else).

    LOSSES[name]   -> Loss(d_loss, g_loss, relativistic)   for "GAN", "LSGAN", "RaSGAN", "RaLSGAN"
    "EBGAN"        -> an AutoencoderD and ``energy_steps`` (margin, pulling-away weight)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from . import dcgan, distributed, layers, losses, train, wgan
from .speed import autocast
from .updates import frozen, real_sampler, update


@dataclass(frozen=True)
class Loss:
    d_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    g_loss: Callable[..., torch.Tensor]
    relativistic: bool = False  # G's loss takes (d_fake, d_real): its step scores a real batch too


LOSSES = {
    "GAN": Loss(losses.d_loss_nonsaturating, losses.g_loss_nonsaturating),
    "LSGAN": Loss(losses.d_loss_least_squares, losses.g_loss_least_squares),
    "RaSGAN": Loss(losses.d_loss_relativistic_average, losses.g_loss_relativistic_average, relativistic=True),
    "RaLSGAN": Loss(losses.d_loss_relativistic_average_ls, losses.g_loss_relativistic_average_ls, relativistic=True),
}
NAMES = (*LOSSES, "EBGAN")  # the lesson's table, in this order
PT_WEIGHT = 0.1  # lambda_PT (Zhao et al. 2017)


def score_outputs(d_real: torch.Tensor, d_fake: torch.Tensor) -> dict[str, torch.Tensor]:
    """What any of these D steps logs: the mean raw scores (logits, least-squares scores or energies)."""
    return {"score(x)": d_real.detach().float().mean(), "score(G(z))": d_fake.detach().float().mean()}


def relativistic_steps(G, D, opt_G, opt_D, real, batch_size: int, *, d_loss, g_loss, amp: str | bool = False):
    """``d_step`` and ``g_step`` for a loss whose G side needs D's scores of real data (RSGAN, RaGANs).

    D's step is ``train.gan_steps``'s. G's step draws a real batch too and minimises ``g_loss(D(G(z)), D(x))``
    with D frozen: D(x) then carries no gradient, but the *average* fake score inside the real term does.
    """
    d_step, _ = train.gan_steps(G, D, opt_G, opt_D, real, batch_size, d_loss=d_loss, outputs=score_outputs, amp=amp)
    device = next(G.parameters()).device
    sample, ctx = real_sampler(real, device), autocast(device, amp)  # gan_steps gave the optimisers their scalers

    def g_step():
        x_real = sample(batch_size)
        with ctx:
            x_fake = G(*G.random_inputs(batch_size, device))
        with frozen(D), ctx:
            d_real, d_fake = D(x_real), D(x_fake)
        loss = g_loss(d_fake.float(), d_real.float())
        update(opt_G, loss)
        return {"loss_G": loss.detach()}

    return d_step, g_step


class AutoencoderD(nn.Module):
    """EBGAN's discriminator: x -> code s = Enc(x) -> Dec(s); its output is the energy
    D(x) = mean over pixels (or coordinates) of (Dec(Enc(x)) - x)^2, one number >= 0 per sample."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder

    def energy_and_code(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.encoder(x).flatten(1)  # (B, K)
        error = (self.decoder(s).float() - x.float()) ** 2  # same shape as x
        return error.flatten(1).mean(dim=1), s  # (B,), (B, K)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.energy_and_code(x)[0]


class ImageEncoder(nn.Module):
    """Lesson 03's D body, then a convolution over its last map to ``code`` numbers instead of one logit."""

    def __init__(self, shape=(1, 28, 28), width: int = 64, code: int = 64):
        super().__init__()
        d = dcgan.Discriminator(shape, width)
        self.body = d.body  # (B, C, base, base)
        self.head = nn.Conv2d(d.features, code, dcgan.base_size(shape[-1]))  # (B, code, 1, 1)
        dcgan.init_weights(self.head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def image_autoencoder(shape=(1, 28, 28), width: int = 64, code: int = 64) -> AutoencoderD:
    """EBGAN's D from lesson 03's blocks: ``ImageEncoder``, and lesson 03's G as the decoder."""
    return AutoencoderD(ImageEncoder(shape, width, code), dcgan.Generator(shape, code, width))


def toy_autoencoder(dim: int = 2, hidden: int = 128, depth: int = 4, code: int = 16) -> AutoencoderD:
    """An MLP autoencoder for points, as deep in total as lesson 02's toy D (half the layers each side)."""
    half = max(depth // 2, 1)
    return AutoencoderD(layers.mlp(dim, code, hidden, half), layers.mlp(code, dim, hidden, half))


def energy_steps(G, D: AutoencoderD, opt_G, opt_D, real, batch_size: int, *, margin: float,
                 pt_weight: float = PT_WEIGHT, amp: str | bool = False):
    """EBGAN's steps: D minimises ``losses.d_loss_energy`` (per-sample margin ``margin``; the step is
    ``train.gan_steps``'s), G minimises its samples' energy plus ``pt_weight`` times the pulling-away term of
    their codes (EBGAN-PT)."""
    d_loss = functools.partial(losses.d_loss_energy, margin=margin)
    d_step, _ = train.gan_steps(G, D, opt_G, opt_D, real, batch_size, d_loss=d_loss, outputs=score_outputs, amp=amp)
    device = next(G.parameters()).device
    ctx = autocast(device, amp)  # gan_steps gave the optimisers their scalers

    def g_step():
        with ctx:
            x_fake = G(*G.random_inputs(batch_size, device))
        with frozen(D), ctx:
            e_fake, s = D.energy_and_code(x_fake)
        pt = losses.pulling_away(s.float())
        loss = losses.g_loss_energy(e_fake.float()) + pt_weight * pt
        update(opt_G, loss)
        return {"loss_G": loss.detach(), "pulling-away": pt.detach()}

    return d_step, g_step


def steps_for(name: str, G, D, opt_G, opt_D, real, batch_size: int, *, margin: float, amp: str | bool = False):
    """The ``d_step`` / ``g_step`` pair of loss ``name`` (one of ``NAMES``)."""
    if name == "EBGAN":
        return energy_steps(G, D, opt_G, opt_D, real, batch_size, margin=margin, amp=amp)
    loss = LOSSES[name]
    if loss.relativistic:
        return relativistic_steps(G, D, opt_G, opt_D, real, batch_size, d_loss=loss.d_loss, g_loss=loss.g_loss, amp=amp)
    return train.gan_steps(G, D, opt_G, opt_D, real, batch_size, d_loss=loss.d_loss, g_loss=loss.g_loss,
                           outputs=score_outputs, amp=amp)


# ---------------------------------------------------------------------------------------------
# The lesson's runs: one recipe for every loss
# ---------------------------------------------------------------------------------------------

TOYS_10 = {  # lesson 02's networks, Adam 3e-4 (0.5, 0.999), one D step; margin: EBGAN's m on squared distances
    "smoke": dict(toy_steps=30, toy_hidden=32, toy_depth=2, toy_batch=128, lr=3e-4, margin=0.1, log_every=10),
    "cpu": dict(toy_steps=6000, toy_hidden=128, toy_depth=4, toy_batch=256, lr=3e-4, margin=0.1, log_every=300),
    "gpu": dict(toy_steps=6000, toy_hidden=128, toy_depth=4, toy_batch=256, lr=3e-4, margin=0.1, log_every=300),
}
IMAGES_10 = {  # lesson 03's DCGAN at lesson 08's budget, Adam 2e-4 (0.5, 0.999); EBGAN's m on per-pixel MSE
    "smoke": dict(steps=8, batch_size=16, width=8, limit=1024, margin=0.1, log_every=4),
    "cpu": dict(steps=1000, batch_size=64, width=32, limit=None, margin=0.1, log_every=50),
    "gpu": dict(steps=10_000, batch_size=64, width=64, limit=None, margin=0.1, log_every=250),
}


def toy_name(toy: str, loss: str, seed: int, recipe: dict) -> str:
    """The run's checkpoint and shipped-weights name, e.g. ``toy-ring-LSGAN-seed0-3000``."""
    return f"toy-{toy}-{loss}-seed{seed}-{recipe['toy_steps']}"


def image_name(dataset: str, loss: str, seed: int, recipe: dict) -> str:
    return f"{dataset}-{loss}-seed{seed}-w{recipe['width']}-b{recipe['batch_size']}-{recipe['steps']}"


def train_toy(loss: str, target, toy: str, seed: int, recipe: dict, *, directory, pretrained: bool = False) -> train.GANState:
    """One toy run of ``loss`` on ``target`` (``data.ring()`` or ``data.grid()``), seeded, checkpointed in
    ``directory`` under ``toy_name`` (resumed if present; ``pretrained``: the shipped run loads)."""
    torch.manual_seed(seed)
    h, depth = recipe["toy_hidden"], recipe["toy_depth"]
    G = wgan.ToyGenerator(2, 2, h, depth)
    D = toy_autoencoder(2, h, depth) if loss == "EBGAN" else nn.Sequential(layers.mlp(2, 1, h, depth), nn.Flatten(0))
    opts = train.adam(G, D, recipe["lr"], betas=(0.5, 0.999))
    state = train.GANState(G, D, *opts)
    d_step, g_step = steps_for(loss, G, D, *opts, target, recipe["toy_batch"], margin=recipe["margin"])
    train.fit(state, d_step, g_step, recipe["toy_steps"], log_every=recipe["log_every"], progress=False,
              checkpoint=Path(directory) / f"{toy_name(toy, loss, seed, recipe)}.pt", recipe=recipe, pretrained=pretrained)
    return state


def image_state(loss: str, shape, width: int, device="cpu", z_dim: int = 100) -> train.GANState:
    """Lesson 03's G and D (an autoencoder D of the same blocks for EBGAN), DCGAN's Adam, and G_ema."""
    G = dcgan.Generator(shape, z_dim, width).to(device)
    D = (image_autoencoder(shape, width) if loss == "EBGAN" else dcgan.Discriminator(shape, width)).to(device)
    return train.GANState.with_ema(G, D, *dcgan.optimizers(G, D))


def train_images(loss: str, images, seed: int, recipe: dict, *, directory, run: str, amp: str | bool = False,
                 pretrained: bool = False) -> train.GANState:
    """One image run of ``loss``: EMA 0.995, one D step per G step, checkpoint ``<run>.pt`` in ``directory``."""
    torch.manual_seed(seed)
    state = image_state(loss, images.shape, recipe["width"], images.x.device)
    d_step, g_step = steps_for(loss, state.G, state.D, state.opt_G, state.opt_D, images,
                               distributed.local_batch(recipe["batch_size"]), margin=recipe["margin"], amp=amp)
    train.fit(state, d_step, g_step, recipe["steps"], ema_beta=0.995, log_every=recipe["log_every"], progress=False,
              checkpoint=Path(directory) / f"{run}.pt", checkpoint_every=recipe["steps"] // 2, recipe=recipe,
              pretrained=pretrained)
    return state
