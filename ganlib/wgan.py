"""WGAN and WGAN-GP (lesson 07): critics, their optimisers and step functions that fit ``train.fit``.

A WGAN's D is a **critic**: it returns an unbounded score (no sigmoid), and the gap
E[D(x)] - E[D(G(z))] estimates the Wasserstein-1 distance when D is 1-Lipschitz (the
Kantorovich-Rubinstein dual). Two ways to keep it Lipschitz:

- **weight clipping** (Arjovsky, Chintala & Bottou 2017; martinarjovsky/WassersteinGAN): every
  parameter clamped to [-c, c] after each critic update, c = 0.01, RMSProp lr 5e-5 for both
  players, 5 critic steps per G step, and, as the official code does, **100** critic steps for the
  first 25 G steps and at every 500th (``clip_schedule``; ``warmup=False`` turns it off);
- **the gradient penalty** (Gulrajani et al. 2017; igul222/improved_wgan_training):
  lambda * E[(||grad D(x_hat)||_2 - 1)^2] at interpolates with one eps per sample
  (``losses.gradient_penalty``), lambda = 10, 5 critic steps, Adam lr 1e-4. **Betas:** we use the
  official DCGAN-style scripts' (0.5, 0.9) (gan_mnist.py, gan_cifar.py); the paper's Algorithm 1
  says (0, 0.9). ``GP_BETAS`` and ``ALGORITHM_1_BETAS`` name both.

A penalised critic takes **no batch norm**: the penalty is a sum of per-sample terms, and batch norm
makes D(x_i) depend on the other samples of the batch. Layer norm (``dcgan.down_layernorm``) or no
normalisation (``dcgan.down_plain``, the official scripts' choice) keep each score a function of
its own input; ``gp_steps`` refuses a critic with batch norm. The penalty is always taken in fp32
and eager (a double backward: no bf16, no ``torch.compile``), whatever ``amp`` says for the rest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
from torch import nn

from . import dcgan, distributed, layers, losses, train

CLIP = 0.01  # WGAN's clipping value c
CLIP_LR = 5e-5  # RMSProp, both players
N_CRITIC = 5  # critic steps per generator step (WGAN and WGAN-GP)
WARMUP_CRITIC, WARMUP_UNTIL, WARMUP_EVERY = 100, 25, 500  # official WGAN: 100 critic steps while step < 25 or step % 500 == 0
GP_WEIGHT = 10.0  # lambda
GP_LR = 1e-4
GP_BETAS = (0.5, 0.9)  # the official DCGAN-style scripts (gan_mnist.py, gan_cifar.py)
ALGORITHM_1_BETAS = (0.0, 0.9)  # the paper's Algorithm 1


# ---------------------------------------------------------------------------------------------
# Critics and toy generators
# ---------------------------------------------------------------------------------------------


def critic(shape=(1, 28, 28), width: int = 64, down: dcgan.DownBlock = dcgan.down_layernorm) -> dcgan.Discriminator:
    """DCGAN's discriminator body as a critic: ``down`` is ``dcgan.down_layernorm`` (default) or
    ``dcgan.down_plain``; its output is a score (B,), not a logit to squash."""
    return dcgan.Discriminator(shape, width, down=down)


class ToyGenerator(nn.Module):
    """Lesson 02's MLP generator (``layers.mlp``), z (B, z_dim) -> points (B, dim), with the
    ``random_inputs`` every course generator has (so ``train.fakes`` and ``fit`` can drive it).

    ``batch_norm``: BatchNorm1d after each hidden Linear, as in DCGAN's generator; ``slope``: the
    LeakyReLU's (lesson 02's 0.2; 0 is ReLU, as in the official WGAN-GP toy script). Lesson 07's toys
    use both (docs/results/cpu-2026-12-07.md). Sample in eval mode (``train.recalibrate_batchnorm``).
    """

    def __init__(self, z_dim: int = 2, dim: int = 2, hidden: int = 128, depth: int = 4, batch_norm: bool = False,
                 slope: float = 0.2):
        super().__init__()
        self.net = layers.mlp(z_dim, dim, hidden, depth, slope=slope, batch_norm=batch_norm)
        self.z_dim = z_dim

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)

    def random_inputs(self, n: int, device=None, generator=None) -> tuple[torch.Tensor]:
        return (torch.randn(n, self.z_dim, device=device, generator=generator),)


def toy_critic(dim: int = 2, hidden: int = 128, depth: int = 4) -> nn.Sequential:
    """An MLP critic for points: (B, dim) -> scores (B,); no normalisation at all.

    Its output layer starts at **zero**, so the critic starts flat and the Wasserstein term, not the
    penalty, chooses the sign of its slope. (From a random start the two-sided penalty can first grow
    the slope the wrong way; in 1-D turning it round means passing through slope 0, which the penalty
    resists, and the critic settles at E_p[f] - E_q[f] < 0: seen with lambda = 10.)
    """
    net = layers.mlp(dim, 1, hidden, depth)
    nn.init.zeros_(net[-1].weight)
    nn.init.zeros_(net[-1].bias)
    return nn.Sequential(net, nn.Flatten(0))


def has_batchnorm(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


# ---------------------------------------------------------------------------------------------
# Optimisers
# ---------------------------------------------------------------------------------------------


def clip_optimizers(G: nn.Module, D: nn.Module, lr: float = CLIP_LR):
    """WGAN's RMSProp for both players (momentum-free: the paper found momentum made the critic unstable)."""
    return torch.optim.RMSprop(G.parameters(), lr=lr), torch.optim.RMSprop(D.parameters(), lr=lr)


LESSON_07 = {  # lesson 07's WGAN-GP run on Fashion-MNIST, per profile (steps are G updates; kept for the deck)
    "smoke": dict(steps=4, batch_size=16, width=8, limit=1024, log_every=1),
    "cpu": dict(steps=600, batch_size=64, width=32, limit=None, log_every=30),
    "gpu": dict(steps=5000, batch_size=64, width=64, limit=None, log_every=100),
}
LONG_07 = dict(LESSON_07["cpu"], steps=8000, log_every=100)  # the long run the course ships: the cpu recipe, 13x longer
LONG_07_RUN = "fashion_mnist-wgan_gp-long-seed0-8000"  # its name (checkpoint, shipped weights)


def gp_optimizers(G: nn.Module, D: nn.Module, lr: float = GP_LR, betas=GP_BETAS):
    """WGAN-GP's Adam for both players: lr 1e-4, betas (0.5, 0.9) (pass ``ALGORITHM_1_BETAS`` for the paper's)."""
    return train.adam(G, D, lr, lr, betas)


# ---------------------------------------------------------------------------------------------
# Steps
# ---------------------------------------------------------------------------------------------


def clip_steps(G, D, opt_G, opt_D, real, batch_size: int, *, c: float = CLIP, amp: str | bool = False):
    """``d_step`` and ``g_step`` of WGAN with weight clipping, for ``fit`` (use ``clip_schedule``
    for n_critic and the warm-up): the critic maximises E[D(x)] - E[D(G(z))], then every parameter
    is clamped to [-c, c]; G minimises -E[D(G(z))]. ``real``: anything ``train.real_sampler`` takes.
    The critic logs its scores and the W1 estimate."""
    d_step, g_step = train.gan_steps(G, D, opt_G, opt_D, real, batch_size, d_loss=losses.d_loss_wasserstein,
                                     g_loss=losses.g_loss_wasserstein, outputs=train.critic_outputs, amp=amp)

    def clipped_d_step():
        logs = d_step()
        losses.clip_weights(D, c)  # after the update: the constraint holds for the next forward
        return logs

    return clipped_d_step, g_step


def gp_steps(G, D, opt_G, opt_D, real, batch_size: int, *, weight: float = GP_WEIGHT, amp: str | bool = False):
    """``d_step`` and ``g_step`` of WGAN-GP, for ``fit(..., n_critic=5)``: the critic minimises
    E[D(G(z))] - E[D(x)] + lambda * E[(||grad D(x_hat)|| - 1)^2] (``losses.gradient_penalty``, fp32,
    eager). Refuses a critic with batch norm. Logs ``loss_D`` (without the penalty), ``penalty`` and
    the W1 estimate."""
    if has_batchnorm(D):
        raise ValueError("a gradient-penalty critic must not use batch norm (the penalty is per sample): "
                         "build it with dcgan.down_layernorm or dcgan.down_plain")

    def penalty(D_, x_real, x_fake):
        return losses.gradient_penalty(D_, x_real, x_fake, weight)

    return train.gan_steps(G, D, opt_G, opt_D, real, batch_size, d_loss=losses.d_loss_wasserstein,
                           g_loss=losses.g_loss_wasserstein, penalty=penalty, outputs=train.critic_outputs, amp=amp)


def gp_state(shape, width: int, device, z_dim: int = 100) -> train.GANState:
    """Lesson 07's WGAN-GP players, untrained: lesson 03's G, a layer-norm critic, ``gp_optimizers``, an EMA
    of G (what ``train_wgan_gp`` trains; a finished run loads into it)."""
    G = dcgan.Generator(shape, z_dim, width).to(device)
    D = critic(shape, width, dcgan.down_layernorm).to(device)
    return train.GANState.with_ema(G, D, *gp_optimizers(G, D))


def train_wgan_gp(images, recipe: dict, *, directory, run: str, z_dim: int = 100, amp: str | bool = False,
                  keep_every: int | None = None, progress: bool = True, pretrained: bool = False) -> train.GANState:
    """Lesson 07's WGAN-GP on images in one call (seed torch first): lesson 03's G, a layer-norm critic
    (``critic(..., dcgan.down_layernorm)``), ``gp_optimizers``, N_CRITIC critic steps per G step, an EMA of
    G (beta 0.995), checkpoint ``<run>.pt`` (resumed if present) and G_ema kept every ``keep_every`` steps
    (default: a tenth of the run). ``recipe``: batch_size, width, limit, log_every, steps. Under torchrun
    (``python -m ganlib.launch 07``) ``batch_size`` is the global batch: each rank takes its share."""
    steps = recipe["steps"]
    state = gp_state(images.shape, recipe["width"], images.x.device, z_dim)
    G, D, opt_G, opt_D = state.G, state.D, state.opt_G, state.opt_D
    batch = distributed.local_batch(recipe["batch_size"])  # the global batch, split across torchrun's ranks
    d_step, g_step = gp_steps(G, D, opt_G, opt_D, images, batch, amp=amp)
    keep = max(steps // 10, 1) if keep_every is None else keep_every
    train.fit(state, d_step, g_step, steps, n_critic=N_CRITIC, ema_beta=0.995, log_every=recipe["log_every"],
              checkpoint=Path(directory) / f"{run}.pt", checkpoint_every=max(steps // 4, 1), progress=progress,
              on_log=dcgan.keep_generators(directory, run, keep), recipe={k: v for k, v in recipe.items() if k != "steps"},
              pretrained=pretrained)
    return state


# ---------------------------------------------------------------------------------------------
# Schedules
# ---------------------------------------------------------------------------------------------


class Warmup(train.Phase):
    """A phase due while ``step < until`` and at every ``every``-th step (official WGAN's extra critic steps)."""

    def __init__(self, name: str, fn, until: int, every: int, repeat: int):
        super().__init__(name, fn, every=every, repeat=repeat)
        object.__setattr__(self, "until", until)

    def due(self, step: int) -> bool:
        return step < self.until or step % self.every == 0


def clip_schedule(d_step, g_step, n_critic: int = N_CRITIC, warmup: bool = True) -> list[train.Phase]:
    """WGAN's schedule: ``n_critic`` critic steps per G step and, with ``warmup``, as the official code,
    100 in all for the first 25 G steps and at every 500th. Keyed on ``state.step``: resumes exactly."""
    phases = [train.Phase("D", d_step, repeat=n_critic)]
    if warmup:
        phases.append(Warmup("D warm-up", d_step, WARMUP_UNTIL, WARMUP_EVERY, WARMUP_CRITIC - n_critic))
    return phases + [train.Phase("G", g_step)]


def linear_decay(state: train.GANState, optimizers, steps: int, start: float = 0.5) -> train.Phase:
    """A phase that sets every optimiser's learning rate to its initial value times
    min(1, (steps - step) / ((1 - start) * steps)): constant, then linearly to 0 over the last
    ``1 - start`` of the run (lesson 02's decay). A function of ``state.step`` only: resumes exactly."""
    base = [[g["lr"] for g in opt.param_groups] for opt in optimizers]

    def set_lr():
        factor = min(1.0, (steps - state.step) / max((1 - start) * steps, 1e-8))
        for opt, lrs in zip(optimizers, base):
            for g, lr in zip(opt.param_groups, lrs):
                g["lr"] = lr * factor
        return {}

    return train.Phase("lr", set_lr)


# ---------------------------------------------------------------------------------------------
# A critic between two fixed distributions (the 1-D check)
# ---------------------------------------------------------------------------------------------


def fit_critic(D: nn.Module, sample_p: Callable[[int], torch.Tensor], sample_q: Callable[[int], torch.Tensor],
               steps: int, *, batch_size: int = 256, weight: float = GP_WEIGHT, lr: float = 1e-3,
               betas=GP_BETAS) -> list[float]:
    """Train a critic D to maximise E_p[D] - E_q[D] under the gradient penalty (no generator): D then
    approximates the Kantorovich-Rubinstein potential and ``w1_estimate`` the W1 distance.
    Returns the W1 estimate of each step's batch."""
    opt = torch.optim.Adam(D.parameters(), lr=lr, betas=betas)
    gaps = []
    for _ in range(steps):
        x_p, x_q = sample_p(batch_size), sample_q(batch_size)
        d_p, d_q = D(x_p), D(x_q)
        loss = losses.d_loss_wasserstein(d_p, d_q) + losses.gradient_penalty(D, x_p, x_q, weight)
        train.update(opt, loss)
        gaps.append((d_p.mean() - d_q.mean()).detach())  # left on the device: one read at the end
    return torch.stack(gaps).tolist()


@torch.no_grad()
def w1_estimate(D: nn.Module, x_p: torch.Tensor, x_q: torch.Tensor) -> float:
    """E_p[D] - E_q[D] on the given samples: the critic's estimate of W1(p, q)."""
    return float(D(x_p).mean() - D(x_q).mean())
