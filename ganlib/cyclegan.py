"""Lesson 12, second part: CycleGAN (Zhu et al. 2017), translation without pairs.

Two generators, G: A -> B and F: B -> A, two PatchGAN discriminators, D_B on B and D_A on A, and
L = L_LSGAN(G, D_B) + L_LSGAN(F, D_A) + lambda (E||F(G(a)) - a||_1 + E||G(F(b)) - b||_1)
      + 0.5 lambda (E||G(b) - b||_1 + E||F(a) - a||_1),        lambda = 10,
the last line the identity loss, its weight a *multiplier* of lambda as in the official code. D sees fakes
through an ``ImagePool`` of 50 past outputs. Naming: the official code's G_A is the paper's G, G_B is F,
D_A is D_Y (judges B), D_B is D_X; here the names follow the paper.
"""

from __future__ import annotations

import random
from pathlib import Path

import torch
from torch import nn

from . import distributed, losses, pix2pix, train
from .data import random_rows
from .updates import frozen, update


# Lesson 12's recipe: the official lambda, identity multiplier, pool, Adam and LSGAN; small widths, 32 px, batches of 16
CYCLEGAN_12 = {
    "smoke": dict(width=2, n_blocks=1, n_layers=1, d_width=4, lambda_a=10.0, lambda_b=10.0, identity=0.5, pool=50,
                  lr=2e-4, batch_size=4, steps=6, log_every=3, limit=512),
    "cpu": dict(width=8, n_blocks=3, n_layers=1, d_width=16, lambda_a=10.0, lambda_b=10.0, identity=0.5, pool=50,
                lr=2e-4, batch_size=16, steps=3000, log_every=100, limit=20_000),
}
CYCLEGAN_12["gpu"] = {**CYCLEGAN_12["cpu"], "steps": 6000, "limit": 60_000}
VARIANTS_12 = {  # Zhu et al. Table 4's ablations, as changes of the recipe (the identity term scales with the lambdas)
    "cycle": {}, "no cycle": {"lambda_a": 0.0, "lambda_b": 0.0}, "forward cycle": {"lambda_b": 0.0},
}


def residual_block(c: int) -> nn.Module:
    return nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), nn.InstanceNorm2d(c), nn.ReLU(),
                         nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), nn.InstanceNorm2d(c))


class ResnetGenerator(nn.Module):
    """CycleGAN's G at small scale: c7s1-w, two stride-2 downs (2w, 4w), ``n_blocks`` residual blocks at 4w,
    two stride-2 ups, c7s1-out with tanh; reflection padding, instance norm, no dropout."""

    def __init__(self, in_channels: int = 1, out_channels: int = 1, width: int = 8, n_blocks: int = 3):
        super().__init__()
        w = width
        self.head = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(in_channels, w, 7), nn.InstanceNorm2d(w), nn.ReLU(),
                                  nn.Conv2d(w, 2 * w, 3, 2, 1), nn.InstanceNorm2d(2 * w), nn.ReLU(),
                                  nn.Conv2d(2 * w, 4 * w, 3, 2, 1), nn.InstanceNorm2d(4 * w), nn.ReLU())  # (B, 4w, H/4, W/4)
        self.blocks = nn.ModuleList(residual_block(4 * w) for _ in range(n_blocks))
        self.tail = nn.Sequential(nn.ConvTranspose2d(4 * w, 2 * w, 3, 2, 1, output_padding=1), nn.InstanceNorm2d(2 * w), nn.ReLU(),
                                  nn.ConvTranspose2d(2 * w, w, 3, 2, 1, output_padding=1), nn.InstanceNorm2d(w), nn.ReLU(),
                                  nn.ReflectionPad2d(3), nn.Conv2d(w, out_channels, 7), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.head(x)
        for block in self.blocks:
            h = h + block(h)  # x + F(x)
        return self.tail(h)


class Translators(nn.Module):
    """The two generators as one model (one optimiser, one checkpoint entry): calling it is G (A -> B)."""

    def __init__(self, G: nn.Module, F: nn.Module):
        super().__init__()
        self.G, self.F = G, F

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        return self.G(a)


class Discriminators(nn.Module):
    """D_A (judges domain A, F's outputs) and D_B (judges domain B, G's outputs)."""

    def __init__(self, D_A: nn.Module, D_B: nn.Module):
        super().__init__()
        self.D_A, self.D_B = D_A, D_B


class ImagePool:
    """The official ``ImagePool(50)``: until ``size`` images are stored, each query image is stored and returned;
    after, each is, with probability 1/2, swapped for a random stored one (returned, the new one stored in its
    place), else returned as is. D learns from a history of G's outputs, not only the latest ones. Stored images
    are detached. Draws from Python's ``random`` seeded by ``seed`` (its state is in ``state_dict``)."""

    def __init__(self, size: int = 50, seed: int = 0):
        self.size, self.images, self.rng = size, [], random.Random(seed)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            if len(self.images) < self.size:
                self.images.append(image)
                out.append(image)
            elif self.rng.random() < 0.5:
                i = self.rng.randrange(self.size)
                out.append(self.images[i])
                self.images[i] = image
            else:
                out.append(image)
        return torch.stack(out)

    def state_dict(self) -> dict:
        return {"images": torch.stack(self.images) if self.images else torch.empty(0), "rng": list(self.rng.getstate()[1])}

    def load_state_dict(self, state: dict) -> None:
        self.images = list(state["images"])
        self.rng.setstate((3, tuple(int(v) for v in state["rng"]), None))


def d_loss_cycle(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """(MSE(D(real), 1) + MSE(D(fake), 0)) / 2: LSGAN with a = 0, b = 1, halved as in the official code."""
    return losses.d_loss_least_squares(d_real, d_fake, a=0.0, b=1.0)


def g_loss_cycle(d_fake: torch.Tensor) -> torch.Tensor:
    """MSE(D(G(a)), 1): the official G loss, twice ``losses.g_loss_least_squares(d_fake, c=1)``."""
    return 2 * losses.g_loss_least_squares(d_fake, c=1.0)


def cycle_losses(GF: "Translators", a: torch.Tensor, b: torch.Tensor, a_fake: torch.Tensor, b_fake: torch.Tensor):
    """(||F(G(a)) - a||_1, ||G(F(b)) - b||_1): the forward and the backward cycle, from G(a) and F(b)."""
    return (GF.F(b_fake) - a).abs().mean(), (GF.G(a_fake) - b).abs().mean()


def identity_losses(GF: "Translators", a: torch.Tensor, b: torch.Tensor):
    """(||G(b) - b||_1, ||F(a) - a||_1): each generator fed an image of its *target* domain should return it
    (a port that compared G(a) with b instead trained G towards the wrong images)."""
    return (GF.G(b) - b).abs().mean(), (GF.F(a) - a).abs().mean()


def networks(recipe: dict, channels: int = 1) -> tuple[Translators, Discriminators]:
    G = Translators(*(ResnetGenerator(channels, channels, recipe["width"], recipe["n_blocks"]) for _ in range(2)))
    D = Discriminators(*(pix2pix.patch_discriminator(channels, recipe["n_layers"], recipe["d_width"], nn.InstanceNorm2d)
                         for _ in range(2)))
    return pix2pix.init_weights(G), pix2pix.init_weights(D)


def cycle_steps(GF: Translators, DD: Discriminators, opt_G, opt_D, task, batch_size: int, recipe: dict, pools):
    """One step of both generators (the full objective with ``recipe``'s ``lambda_a`` (forward cycle, a -> b -> a),
    ``lambda_b`` (backward cycle) and ``identity``), then one of both discriminators on pooled fakes."""
    G, F, (pool_a, pool_b), last = GF.G, GF.F, pools, {}  # last: the G step's batches, for the D step
    la, lb, idt = recipe["lambda_a"], recipe["lambda_b"], recipe["identity"]

    def g_step():
        (a,), (b,) = random_rows(batch_size, task.a), random_rows(batch_size, task.b)  # unpaired: two draws
        b_fake, a_fake = G(a), F(b)
        with frozen(DD):
            gan = g_loss_cycle(DD.D_B(b_fake)) + g_loss_cycle(DD.D_A(a_fake))
        cycle_a, cycle_b = cycle_losses(GF, a, b, a_fake, b_fake)
        identity = 0.0
        if idt:  # weights as the official code: G's identity term by lambda_b, F's by lambda_a, times ``identity``
            idt_g, idt_f = identity_losses(GF, a, b)
            identity = idt * (lb * idt_g + la * idt_f)
        loss = gan + la * cycle_a + lb * cycle_b + identity
        update(opt_G, loss)
        last.update(a=a, b=b, a_fake=a_fake.detach(), b_fake=b_fake.detach())
        return {"loss_G": loss.detach(), "GAN": gan.detach(), "cycle a": cycle_a.detach(), "cycle b": cycle_b.detach()}

    def d_step():
        loss = d_loss_cycle(DD.D_A(last["a"]), DD.D_A(pool_a.query(last["a_fake"]))) + \
            d_loss_cycle(DD.D_B(last["b"]), DD.D_B(pool_b.query(last["b_fake"])))
        update(opt_D, loss)
        return {"loss_D": loss.detach()}

    return [train.Phase("G", g_step), train.Phase("D", d_step)]


def train_cyclegan(task, variant: str, seed: int, recipe: dict, *, directory, pretrained: bool = False,
                   progress: bool = False) -> train.GANState:
    """Train one CycleGAN run on ``task`` (``data.Unpaired``: reads ``a`` and ``b`` only) with Adam (lr, 0.5, 0.999);
    the run is ``<directory>/unpaired-<variant>-seed<seed>-<steps>.pt``. The pools are checkpointed with the run."""
    torch.manual_seed(seed)
    GF, DD = (m.to(task.a.device) for m in networks(recipe, task.a.shape[1]))
    opts = train.adam(GF, DD, recipe["lr"], betas=(0.5, 0.999))
    pools = (ImagePool(recipe["pool"], seed), ImagePool(recipe["pool"], seed + 1))
    state = train.GANState(GF, DD, *opts, extras={"pool_a": pools[0], "pool_b": pools[1]})
    phases = cycle_steps(GF, DD, *opts, task, distributed.local_batch(recipe["batch_size"]), recipe, pools)
    train.fit_schedule(state, phases, recipe["steps"], log_every=recipe["log_every"], progress=progress,
                       checkpoint=Path(directory) / f"{pix2pix.run_name('unpaired', variant, seed, recipe)}.pt",
                       checkpoint_every=recipe["steps"] // 2, recipe=recipe, pretrained=pretrained)
    return state


# ---------------------------------------------------------------------------------------------
# Steganography: what G hides in its outputs for F to read back
# ---------------------------------------------------------------------------------------------


def high_frequency(x: torch.Tensor) -> torch.Tensor:
    """Per image, the mean square of x minus its 3 x 3 box blur: the energy of the finest detail, (B,)."""
    blur = nn.functional.avg_pool2d(nn.functional.pad(x, (1, 1, 1, 1), mode="replicate"), 3, 1)
    return (x - blur).square().flatten(1).mean(1)


@torch.no_grad()
def steganography_probe(GF: Translators, a: torch.Tensor, partner: torch.Tensor, noise: float = 0.02,
                        seed: int = 0) -> dict[str, float]:
    """How much of ``a`` survives in G(a) beyond what its true garment ``partner`` carries. ``cycle``: L1 of
    F(G(a)) to a; ``cycle with noise``: the same after N(0, noise^2) is added to G(a) (a faint signal is
    drowned by it); ``from the partner``: L1 of F(partner) to a (what a garment alone tells F); the
    high-frequency energy of G(a) over that of the partners."""
    G, F = GF.G, GF.F
    b_fake = G(a)
    eps = torch.randn(b_fake.shape, generator=torch.Generator().manual_seed(seed)).to(b_fake)
    l1 = lambda x: float((x - a).abs().mean())  # noqa: E731
    return {"cycle": l1(F(b_fake)), "cycle with noise": l1(F(b_fake + noise * eps)), "from the partner": l1(F(partner)),
            "high-frequency ratio": float(high_frequency(b_fake).mean() / high_frequency(partner).mean())}
