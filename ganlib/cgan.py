"""Conditional GANs: G(z, y) and three ways for D to use the label y.

One generator for all three: the label's embedding is concatenated with z (Mirza & Osindero 2014)
and fed to ``dcgan.Generator``. The discriminators differ:

- ``ConcatDiscriminator``: y as one-hot planes stacked onto the image channels (Mirza & Osindero);
- ``ACDiscriminator``: an unconditional real/fake head plus an auxiliary classifier head that
  predicts y (AC-GAN, Odena, Olah & Shlens 2017);
- ``ProjectionDiscriminator``: D(x, y) = psi(phi(x)) + embed(y) . phi(x) (Miyato & Koyama 2018).

All are built from ``dcgan.Discriminator``'s body (strided convolutions, batch norm, LeakyReLU).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import dcgan, losses, speed, train
from .profiles import draw
from .speed import amp_context


def check_labels(y: torch.Tensor, n_classes: int) -> torch.Tensor:
    """``y`` as int64 class indices in [0, n_classes); anything else raises an error that says why.

    Dtype and shape are metadata, checked always. The range 0 <= y < n_classes needs the values:
    on the CPU we read them (no device to wait for) and raise a ValueError naming them; on CUDA an
    asynchronous device assertion (``torch._assert_async``) queues the check instead, because reading
    ``y.min()`` of a GPU tensor copies it to the host and stalls the queue, in every G and D forward
    of every training step. Other devices rely on the embedding lookup's own index check.
    """
    if y.dtype.is_floating_point or y.dtype == torch.bool or y.ndim != 1:
        raise ValueError(f"labels must be a 1-D tensor of integer class indices, got {y.dtype} of shape {tuple(y.shape)}")
    if y.device.type == "cpu" and len(y) and (int(y.min()) < 0 or int(y.max()) >= n_classes):
        raise ValueError(f"labels must lie in [0, {n_classes}), got values from {int(y.min())} to {int(y.max())}")
    if y.device.type == "cuda":
        torch._assert_async(((y >= 0) & (y < n_classes)).all(), f"labels must lie in [0, {n_classes})")
    return y.long()


class Generator(nn.Module):
    """G(z, y) = DCGAN generator of [z, e_y]: (B, z_dim), (B,) -> (B, C, H, W).

    e_y ~ N(0, I / embed_dim) at the start, so |e_y| ~ 1 like a one-hot label while |z| ~ sqrt(z_dim):
    G begins by using z. With nn.Embedding's N(0, I) start (|e_y| ~ 7) the label's arbitrary code
    dominated G's first layer; in lesson 05 AC-GAN's class head then learned to read that code instead
    of the classes' looks (class consistency 0.3 against 0.78 with this start, same budget).
    """

    def __init__(self, shape=(1, 28, 28), n_classes: int = 10, z_dim: int = 100, width: int = 64, embed_dim: int = 50):
        super().__init__()
        self.n_classes, self.z_dim = n_classes, z_dim
        self.embed = nn.Embedding(n_classes, embed_dim)
        nn.init.normal_(self.embed.weight, 0.0, embed_dim ** -0.5)
        self.net = dcgan.Generator(shape, z_dim + embed_dim, width)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        y = check_labels(y, self.n_classes)
        return self.net(torch.cat([z, self.embed(y)], dim=1))  # (B, z_dim + embed_dim)

    def random_inputs(self, n: int, device=None, generator=None):
        """The arguments of one random batch: (z, y) with z ~ N(0, I) and uniform labels y."""
        return (draw(torch.randn, n, self.z_dim, device=device, generator=generator),
                draw(torch.randint, self.n_classes, (n,), device=device, generator=generator))


class ConcatDiscriminator(nn.Module):
    """D(x, y): the image with n_classes one-hot label planes stacked on its channels -> logit (B,)."""

    def __init__(self, shape=(1, 28, 28), n_classes: int = 10, width: int = 64):
        super().__init__()
        c, h, w = shape
        self.n_classes = n_classes
        self.net = dcgan.Discriminator((c + n_classes, h, w), width)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        y = check_labels(y, self.n_classes)
        planes = F.one_hot(y, self.n_classes).to(x.dtype)[:, :, None, None].expand(-1, -1, *x.shape[2:])  # (B, K, H, W)
        return self.net(torch.cat([x, planes], dim=1))


def _pooled_features(body: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """phi(x): D's body, then a sum over positions (B, ch, h, w) -> (B, ch), as in Miyato & Koyama."""
    return body(x).sum(dim=(2, 3))


class ProjectionDiscriminator(nn.Module):
    """D(x, y) = psi(phi(x)) + <embed(y), phi(x)>: an unconditional score plus a class-matching term."""

    def __init__(self, shape=(1, 28, 28), n_classes: int = 10, width: int = 64):
        super().__init__()
        self.n_classes = n_classes
        base = dcgan.Discriminator(shape, width)
        self.body, ch = base.body, base.features
        self.psi = nn.Linear(ch, 1)
        self.embed = nn.Embedding(n_classes, ch)
        nn.init.normal_(self.embed.weight, 0.0, 0.02)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        y = check_labels(y, self.n_classes)
        phi = _pooled_features(self.body, x)  # (B, ch)
        return self.psi(phi).flatten() + (self.embed(y) * phi).sum(dim=1)


class ACDiscriminator(nn.Module):
    """AC-GAN's D(x) -> (real/fake logit (B,), class logits (B, n_classes)); it never sees y."""

    def __init__(self, shape=(1, 28, 28), n_classes: int = 10, width: int = 64):
        super().__init__()
        base = dcgan.Discriminator(shape, width)
        self.body, self.head = base.body, base.head
        self.classify = nn.Linear(base.features * dcgan.base_size(shape[1]) ** 2, n_classes)

    def forward(self, x: torch.Tensor):
        h = self.body(x)  # (B, ch, base, base)
        return self.head(h).flatten(), self.classify(h.flatten(1))


# ---------------------------------------------------------------------------------------------
# Training steps for train.fit
# ---------------------------------------------------------------------------------------------


def conditional_steps(G, D, opt_G, opt_D, images, batch_size: int, *, amp: str | bool = False):
    """Steps for a D(x, y) that returns a logit (concatenation, projection); non-saturating loss.

    D sees real images with their labels and fakes made *for the same labels*, so the only way to
    tell them apart is the image; G is trained on fresh uniform labels.
    """
    device, ctx = images.x.device, amp_context(images.x.device, amp, opt_G, opt_D)

    def d_step():
        x_real, y = images.sample(batch_size)
        z, _ = G.random_inputs(batch_size, device)
        x_fake = train.fakes(G, batch_size, ctx, inputs=(z, y))  # fakes for the real batch's labels
        return train.discriminator_step(lambda x: D(x, y), opt_D, losses.d_loss_nonsaturating, x_real, x_fake, ctx)

    def g_step():
        z, y = G.random_inputs(batch_size, device)
        with ctx:
            x_fake = G(z, y)
        return train.generator_step(lambda x: D(x, y), opt_G, losses.g_loss_nonsaturating, x_fake, ctx, freeze=D)

    return d_step, g_step


def acgan_steps(G, D, opt_G, opt_D, images, batch_size: int, *, amp: str | bool = False):
    """AC-GAN's steps (Odena et al. 2017): D maximises L_S + L_C, G maximises L_C - L_S.

    L_S is the usual real/fake log-likelihood (non-saturating for G); L_C the log-likelihood of the
    correct class, on real *and* generated images, for both players.
    """
    device, ctx = images.x.device, amp_context(images.x.device, amp, opt_G, opt_D)

    def d_step():
        x_real, y_real = images.sample(batch_size)
        z, y_fake = G.random_inputs(batch_size, device)
        x_fake = train.fakes(G, batch_size, ctx, inputs=(z, y_fake))
        with ctx:
            (s_real, c_real), (s_fake, c_fake) = D(x_real), D(x_fake)
        adv = losses.d_loss_nonsaturating(s_real.float(), s_fake.float())
        cls = F.cross_entropy(c_real.float(), y_real) + F.cross_entropy(c_fake.float(), y_fake)
        train.update(opt_D, adv + cls)
        return {"loss_D": adv.detach(), "loss_class_D": cls.detach(), **train.discriminator_outputs(s_real, s_fake)}

    def g_step():
        z, y = G.random_inputs(batch_size, device)
        with train.frozen(D), ctx:  # no gradient for D's weights in G's step
            s_fake, c_fake = D(G(z, y))
        adv, cls = losses.g_loss_nonsaturating(s_fake.float()), F.cross_entropy(c_fake.float(), y)
        train.update(opt_G, adv + cls)
        return {"loss_G": adv.detach(), "loss_class_G": cls.detach()}

    return d_step, g_step


@torch.no_grad()
def class_grid(G, z: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Images for every (class, z) pair, class-major: (n_classes * len(z), C, H, W). Row = class, column = z."""
    y = torch.arange(n_classes, device=z.device).repeat_interleave(len(z))  # (K * N,)
    return G(z.repeat(n_classes, 1), y)


def balanced_labels(n: int, n_classes: int, device=None) -> torch.Tensor:
    """y_i = i mod n_classes, i < n: every class equally often (exactly n / n_classes times if it divides)."""
    return torch.arange(n, device=device) % n_classes


@torch.no_grad()
def generate(G, y: torch.Tensor, batch_size: int = 1000, generator=None) -> torch.Tensor:
    """G(z, y) with fresh z ~ N(0, I) for every label in y, ``batch_size`` at a time: (len(y), C, H, W)."""
    z, _ = G.random_inputs(len(y), generator=generator)  # drawn on the CPU: the same z on every device
    z = z.to(y.device)
    return torch.cat([G(zb, yb) for zb, yb in zip(z.split(batch_size), y.split(batch_size))])


def class_consistency(probs: torch.Tensor, y: torch.Tensor) -> float:
    """(1/N) sum_i [argmax_k p(k | x_i) = y_i]: how often a classifier sees the class that was asked for."""
    return float((probs.argmax(dim=1) == y.to(probs.device)).double().mean())


def per_class(metric, f_real, y_real, f_fake, y_fake, n_classes: int) -> list:
    """[metric(f_real[y_real == k], f_fake[y_fake == k]) for k < n_classes]: e.g. per-class FID.

    Compares the fakes made *for* class k with the real images *of* class k, so a generator that
    draws a good image of the wrong class is penalised.
    """
    y_real, y_fake = y_real.to(f_real.device), y_fake.to(f_fake.device)
    return [metric(f_real[y_real == k], f_fake[y_fake == k]) for k in range(n_classes)]


LESSON_05 = {  # lesson 05's training settings per profile, one budget for all three variants (kept for the deck)
    "smoke": dict(steps=30, batch_size=32, width=8, limit=2048, log_every=5),
    "cpu": dict(steps=3000, batch_size=64, width=32, limit=None, log_every=100),
    "gpu": dict(steps=10_000, batch_size=128, width=64, limit=None, log_every=250),
}


def run_name(profile: str, seed: int, width: int, make_D) -> str:
    """The name lesson 05 gives a variant's run (its checkpoint, its shipped weights); the deck uses it too."""
    return f"fashion_mnist-{profile}-seed{seed}-w{width}-{make_D.__name__}"


def make_state(make_D, images, width: int = 64, z_dim: int = 100) -> train.GANState:
    """Lesson 05's models and optimisers: ``Generator`` (built first), D = make_D(shape, n_classes, width),
    Adam (2e-4, 0.5), an EMA of G; on the images' device, channels-last where that pays."""
    device, n_classes = images.x.device, len(images.classes)
    G = speed.channels_last(Generator(images.shape, n_classes, z_dim, width).to(device))
    D = speed.channels_last(make_D(images.shape, n_classes, width).to(device))
    return train.GANState.with_ema(G, D, *dcgan.optimizers(G, D))


def train_cgan(make_D, images, steps: int, *, checkpoint, make_steps=conditional_steps, batch_size: int = 64,
               width: int = 64, z_dim: int = 100, log_every: int = 100, snapshot_z=None, amp: str | bool = False,
               progress: bool = True, recipe: dict | None = None, pretrained: bool = False) -> train.GANState:
    """One run of lesson 05's recipe: ``Generator`` and D = make_D(shape, n_classes, width), Adam (2e-4, 0.5),
    EMA of G (beta 0.995), the steps ``make_steps`` builds (``conditional_steps`` for a D(x, y),
    ``acgan_steps`` for an ``ACDiscriminator``); the checkpoint is resumed if present. G is built first:
    seed before each call and every variant starts from the same G. ``snapshot_z`` (N, z_dim) records
    ``class_grid`` of G_ema four times. ``recipe``/``pretrained``: as ``train.fit_schedule``'s (the course's
    shipped weights). Returns the state."""
    state = make_state(make_D, images, width, z_dim)
    d_step, g_step = make_steps(state.G, state.D, state.opt_G, state.opt_D, images, batch_size, amp=amp)
    snapshot = None if snapshot_z is None else (lambda: class_grid(state.G_ema, snapshot_z, len(images.classes)))
    train.fit(state, d_step, g_step, steps, ema_beta=0.995, log_every=log_every, snapshot=snapshot,
              snapshot_every=max(steps // 4, 1), checkpoint=checkpoint, checkpoint_every=max(steps // 4, 1),
              progress=progress, recipe=recipe, pretrained=pretrained)
    return state
