"""SAGAN (Zhang, Goodfellow, Metaxas & Odena, ICML 2019) at 28 x 28 and 32 x 32, built on ``dcgan``.

What SAGAN adds to a DCGAN, each a separate piece so an ablation can add them one at a time:

- spectral normalisation (``layers.spectral_norm``) on every layer of **both** G and D (SN-GAN puts
  it in D only); G keeps its batch norm, D has none;
- one self-attention block (``layers.SelfAttention``) in G and in D, after the block whose feature
  map is the largest below the image (14 x 14 for 28 px, 16 x 16 for 32 px): the paper's ablation
  (ImageNet 128 px, Table 1) finds attention helps at 32-64 px maps and not at 8-16 px;
- the hinge loss (``losses.d_loss_hinge``, ``losses.g_loss_hinge``); ``train.gan_steps`` runs it as is;
- two time-scales (TTUR, Heusel et al. 2017): lr_D = 4e-4, lr_G = 1e-4, beta1 = 0, one D step per
  G step (``optimizers``).

beta2: the paper says 0.9; the official TensorFlow code leaves Adam's default 0.999 (so does the
SAGAN script of BigGAN-PyTorch). ``optimizers`` defaults to the paper's 0.9, the value SN-GAN and
WGAN-GP also pair with beta1 = 0: a second-moment memory of about 10 steps instead of 1000 follows
the gradient scale of a moving opponent sooner. Pass ``betas=(0.0, 0.999)`` for the official code.

The ablation's variants (the lesson's table), each built from keyword arguments:
DCGAN = ``dcgan.Generator`` + ``dcgan.Discriminator``; + SN in D = ``Discriminator(attention_at=None)``;
+ hinge and TTUR = the same models with ``optimizers`` and the hinge losses; SAGAN = ``Generator()`` +
``Discriminator()``. ``Generator(attention_at=None)`` is the SN generator without attention.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch
from torch import nn

from . import dcgan, distributed, layers, losses, train

LARGEST = "largest"  # attention_at's default: the largest feature map below the image


def attention_side(shape, attention_at=LARGEST) -> int | None:
    """The side of the feature map the attention block follows: ``LARGEST`` -> half the image side
    (the largest map below it in ``dcgan``'s layout), an int -> that side, None -> no attention."""
    return shape[-1] // 2 if attention_at == LARGEST else attention_at


@torch.no_grad()
def _probe(net: nn.Sequential, x: torch.Tensor) -> list[torch.Size]:
    """Each layer's output shape for input ``x``, in eval mode (no batch-norm or power-iteration update)."""
    was, shapes = net.training, []
    net.eval()
    for layer in net:
        x = layer(x)
        shapes.append(x.shape)  # (1, C, H, W) after this layer
    net.train(was)
    return shapes


def with_attention(net: nn.Sequential, x: torch.Tensor, side: int | None, image_side: int) -> nn.Sequential:
    """``net`` with a ``layers.SelfAttention`` after the last layer whose output map is ``side`` x ``side``
    (``x``: an example input); ``net`` itself if ``side`` is None. Only maps below the image qualify."""
    if side is None:
        return net
    shapes = _probe(net, x)
    found = [i for i, s in enumerate(shapes) if s[-1] == side]
    if not found or side >= image_side:
        sides = sorted({s[-1] for s in shapes if s[-1] < image_side})
        raise ValueError(f"no {side} x {side} feature map below the image to attend over; choose one of {sides}")
    i = found[-1]
    return nn.Sequential(*net[: i + 1], layers.SelfAttention(shapes[i][1]), *net[i + 1:])


class Generator(dcgan.Generator):
    """z (B, z_dim) -> images (B, C, H, W) in [-1, 1]: ``dcgan.Generator`` with spectral norm on every
    layer (batch norm kept, as in SAGAN) and self-attention after the ``attention_at`` map.

    ``attention_at``: ``LARGEST`` (default; 14 for 28 px, 16 for 32 px), a map side, or None.
    ``z_dim`` defaults to dcgan's 100 so the ablation changes one thing at a time (official SAGAN: 128).
    """

    def __init__(self, shape=(1, 28, 28), z_dim: int = 100, width: int = 64, up: dcgan.UpBlock = dcgan.up_transposed,
                 attention_at=LARGEST):
        super().__init__(shape, z_dim, width, up)  # weights ~ N(0, 0.02), then SN registers u on them
        layers.spectral_norm_all(self.net)
        self.attention_at = attention_side(shape, attention_at)
        self.net = with_attention(self.net, torch.zeros(1, z_dim, 1, 1), self.attention_at, shape[-1])


class Discriminator(dcgan.Discriminator):
    """images (B, C, H, W) -> scores (B,): ``dcgan.Discriminator(down=dcgan.down_spectral)`` (spectral norm
    on every layer, no batch norm) with self-attention after the ``attention_at`` map (as ``Generator``)."""

    def __init__(self, shape=(1, 28, 28), width: int = 64, attention_at=LARGEST):
        super().__init__(shape, width, down=dcgan.down_spectral)
        self.attention_at = attention_side(shape, attention_at)
        self.body = with_attention(self.body, torch.zeros(1, *shape), self.attention_at, shape[-1])


LESSON_08 = {  # lesson 08's training settings per profile, one budget for every variant (kept for the deck)
    "smoke": dict(steps=12, batch_size=16, width=8, limit=1024, log_every=4),
    "cpu": dict(steps=1000, batch_size=64, width=32, limit=None, log_every=50),
    "gpu": dict(steps=10_000, batch_size=64, width=64, limit=None, log_every=250),
}
LONG_08 = dict(LESSON_08["cpu"], steps=10_000, log_every=250)  # the long runs the course ships: the cpu recipe, 10x longer


def run_name(dataset: str, profile: str, seed: int, width: int, batch_size: int, variant: str) -> str:
    """The name lesson 08 gives a run of its ablation (its checkpoint, its shipped weights); the deck uses it too.
    ``variant``: "DCGAN", "+ SN in D", "+ hinge, TTUR" or "SAGAN"."""
    tag = variant.replace("+ ", "").replace(", ", "-").replace(" ", "_")
    return f"{dataset}-{profile}-seed{seed}-w{width}-b{batch_size}-{tag}"


def optimizers(G: nn.Module, D: nn.Module, betas=(0.0, 0.9)):
    """TTUR: Adam with lr_G = 1e-4, lr_D = 4e-4, beta1 = 0; beta2 = 0.9 (the paper; 0.999 in the
    official code, see the module docstring). Use with one D step per G step."""
    return train.adam(G, D, lr_G=1e-4, lr_D=4e-4, betas=betas)


def attention_block(model: nn.Module) -> layers.SelfAttention | None:
    """The model's self-attention block, or None."""
    return next((m for m in model.modules() if isinstance(m, layers.SelfAttention)), None)


@torch.no_grad()
def attention_maps(model: nn.Module, *inputs) -> tuple[torch.Tensor, torch.Tensor]:
    """``(model(*inputs), beta)`` from one forward, beta of shape (B, H, W, h, w): ``beta[b, i, j]`` is
    the heat map (h x w, the pooled key grid; it sums to 1) of where query pixel (i, j) attends.

    Call it in eval mode for samples to show (batch norm on running statistics, u left alone).
    """
    block, found = attention_block(model), {}
    if block is None:
        raise ValueError("this model has no self-attention block (built with attention_at=None?)")

    def ask(module, args, kwargs):
        return args, {**kwargs, "return_attention": True}

    def keep(module, args, kwargs, output):
        y, found["beta"] = output
        found["shape"] = args[0].shape  # (B, C, H, W) of the block's input
        return y

    hooks = [block.register_forward_pre_hook(ask, with_kwargs=True), block.register_forward_hook(keep, with_kwargs=True)]
    try:
        out = model(*inputs)
    finally:
        for hook in hooks:
            hook.remove()
    B, _, H, W = found["shape"]
    h, w = (H // 2, W // 2) if block.pool else (H, W)
    return out, found["beta"].reshape(B, H, W, h, w)  # (B, HW, hw) -> (B, H, W, h, w)


# ---------------------------------------------------------------------------------------------
# Lesson 08's ablation, kept here for its deck and its long runs
# ---------------------------------------------------------------------------------------------


def hinge_outputs(d_real: torch.Tensor, d_fake: torch.Tensor) -> dict[str, torch.Tensor]:
    """What a hinge D's step logs: its mean scores, and the share of samples past the margin."""
    r, f = d_real.detach().float(), d_fake.detach().float()
    return {"score(x)": r.mean(), "score(G(z))": f.mean(), "past margin": ((r > 1).float().mean() + (f < -1).float().mean()) / 2}


def logging_sigmas(d_step, state: train.GANState, every: int):
    """``d_step``, plus sigma of every weight of D (``layers.sigmas``) once per logged row of ``fit``."""
    def step():
        logs = d_step()
        if (state.step + 1) % every == 0:  # the last D step before fit logs this row
            device = next(state.D.parameters()).device  # fit stacks every logged value on one device
            logs.update({f"sigma {k}": torch.tensor(v, device=device) for k, v in layers.sigmas(state.D).items()})
        return logs
    return step


VARIANTS = {  # the ablation, one idea at a time: name -> (G, D, optimisers, hinge loss?)
    "DCGAN": (dcgan.Generator, dcgan.Discriminator, dcgan.optimizers, False),
    "+ SN in D": (dcgan.Generator, functools.partial(Discriminator, attention_at=None), dcgan.optimizers, False),
    "+ hinge, TTUR": (dcgan.Generator, functools.partial(Discriminator, attention_at=None), optimizers, True),
    "SAGAN": (Generator, Discriminator, optimizers, True),
}


def variant_state(name: str, shape, width: int, device="cpu", z_dim: int = 100) -> train.GANState:
    """An untrained ``train.GANState`` of ``VARIANTS[name]`` on ``device``: G, D, their optimisers, G_ema (seed first)."""
    make_G, make_D, make_opt, _ = VARIANTS[name]
    G, D = make_G(shape, z_dim, width).to(device), make_D(shape, width).to(device)
    return train.GANState.with_ema(G, D, *make_opt(G, D))


def train_variant(name: str, images, recipe: dict, seed: int, *, directory, run: str, z_dim: int = 100,
                  amp: str | bool = False, keep_every: int = 0, pretrained: bool = False) -> train.GANState:
    """One run of the ablation (``VARIANTS[name]``) seeded with ``seed``: one D step per G step, EMA 0.995,
    sigma of D logged, checkpoint ``<run>.pt`` in ``directory`` (resumed if present), G_ema kept every
    ``keep_every`` steps (0: none). ``recipe``: steps, batch_size, width, limit, log_every."""
    torch.manual_seed(seed)
    state = variant_state(name, images.shape, recipe["width"], images.x.device, z_dim)
    kind = dict(d_loss=losses.d_loss_hinge, g_loss=losses.g_loss_hinge, outputs=hinge_outputs) if VARIANTS[name][3] else {}
    d_step, g_step = train.gan_steps(state.G, state.D, state.opt_G, state.opt_D, images, distributed.local_batch(recipe["batch_size"]),
                                     amp=amp, **kind)
    train.fit(state, logging_sigmas(d_step, state, recipe["log_every"]), g_step, recipe["steps"], ema_beta=0.995,
              log_every=recipe["log_every"], checkpoint=Path(directory) / f"{run}.pt",
              checkpoint_every=recipe["steps"] // 2, progress=False, on_log=dcgan.keep_generators(directory, run, keep_every),
              recipe=recipe, pretrained=pretrained)
    return state
