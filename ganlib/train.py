"""The training loop used from lesson 03 on.

A run is a **schedule**: a list of ``Phase``s, each a name, a step function and an interval keyed on
``state.step`` (as NVlabs' StyleGAN2 loop keeps its G_main / G_reg / D_main / D_reg phases). At every
step ``fit_schedule`` runs each phase that is due, in order, then updates the EMA of G. The usual
"n_critic D steps, then one G step" is the shorthand ``fit(state, d_step, g_step, steps, n_critic=...)``.
Because due-ness is read off ``state.step`` alone, no counter hides in a closure and a resumed run
does exactly what the uninterrupted one did.

The shape of a step, the example lessons 07-09 follow. A step returns a dict of scalar tensors to
log, left on the device; ``ctx`` is one autocast context built once per run, as nanoGPT does::

    ctx = speed.amp_context(device, amp, opt_G, opt_D)   # speed.precision's choice; fp32: a no-op

    def d_step():                                   # a WGAN-GP critic step
        x_real, _ = images.sample(batch_size)
        x_fake = train.fakes(G, batch_size, ctx)    # no graph back into G
        with ctx:
            d_real, d_fake = D(x_real), D(x_fake)
        loss = losses.d_loss_wasserstein(d_real.float(), d_fake.float())   # losses in fp32
        gp = losses.gradient_penalty(D, x_real, x_fake)                    # its own fp32 forward
        train.update(opt_D, loss + gp)
        return {"loss_D": loss.detach(), "penalty": gp.detach(), **train.critic_outputs(d_real, d_fake)}

    def r1_step():                                  # a lazy regulariser: its own phase
        x_real, _ = images.sample(batch_size)
        r1 = losses.r1_penalty(D, x_real, gamma)
        train.update(opt_D, r1 * 16)                # lazy: scaled by its interval
        return {"R1": r1.detach()}

    schedule = [train.Phase("D", d_step, repeat=5), train.Phase("G", g_step),
                train.Phase("R1", r1_step, every=16)]
    train.fit_schedule(state, schedule, steps, ema_beta=0.999)

(``discriminator_step`` and ``gan_steps`` below package the common case: ``gan_steps(..., d_loss=
losses.d_loss_hinge, g_loss=losses.g_loss_hinge)`` is SAGAN's; ``penalty=`` adds a regulariser.)

``fit`` adds what every lesson needs: an EMA of G (a constant beta or a function of the step), a
progress bar, a history of losses and timings, fixed-z snapshots, checkpoints that resume exactly
(``ganlib.checkpoint``, extra state included), a guard against NaN/inf losses, and a health summary
that names the classic failures of a BCE discriminator and of a critic.

The hot loop never synchronises with the host: logged values are summed on the device and read
back once every ``log_every`` steps.
"""

from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from . import distributed, pretrained as shipped
from .checkpoint import load as load_checkpoint, save as save_checkpoint
from .health import Health, check as health  # noqa: F401  (train.health: the name lessons use)
from .updates import (  # noqa: F401  the step pieces, under the names lessons use (train.gan_steps, ...)
    NO_AUTOCAST, StepFn, adam, critic_outputs, discriminator_outputs, discriminator_step, fakes, gan_steps,
    frozen, fused_adam, generator_step, lazy_adam_settings, real_sampler, update)



class TrainingDiverged(RuntimeError):
    """A logged loss became NaN or infinite."""


@dataclass
class History:
    """What training logged: one row per ``log_every`` steps (means over the interval).

    Every key has one value per row, aligned with ``steps``: a key not logged in an interval (a
    phase that runs every 16 steps, logged every 10) holds NaN there. ``series(key)`` drops those.
    """

    steps: list[int] = field(default_factory=list)
    values: dict[str, list[float]] = field(default_factory=dict)
    seconds: list[float] = field(default_factory=list)  # wall-clock seconds of each interval
    snapshots: list[tuple[int, torch.Tensor]] = field(default_factory=list)  # (step, samples on CPU)

    def add(self, step: int, values: dict[str, float], seconds: float) -> None:
        rows = len(self.steps)
        self.steps.append(step)
        self.seconds.append(seconds)
        for k, v in values.items():
            self.values.setdefault(k, [math.nan] * rows).append(v)  # a new key: NaN in the rows before
        for column in self.values.values():
            if len(column) == rows:
                column.append(math.nan)  # a key this interval did not log

    def series(self, key: str) -> tuple[list[int], list[float]]:
        """(steps, values) of ``key`` at the rows where it was logged."""
        pairs = [(s, v) for s, v in zip(self.steps, self.values[key]) if not math.isnan(v)]
        return [s for s, _ in pairs], [v for _, v in pairs]

    def pace(self, quantile: float = 0.1) -> float:
        """Seconds per step when the run had its cores to itself, read off the logged intervals: their
        ``quantile`` (default the fastest 10%) of seconds per step. Other work on the same machine only
        ever slows an interval down, so the fast end of the intervals is the run's own speed."""
        if not self.steps:
            raise ValueError("an empty history has no pace")
        per_step = [s / (b - a) for s, a, b in zip(self.seconds, [0, *self.steps], self.steps) if b > a]
        return float(torch.tensor(per_step, dtype=torch.float64).quantile(quantile))

    def minutes(self, steps: list[int]) -> list[float]:
        """Training minutes at ``steps``, at the run's ``pace``: what a run would take on its cores alone."""
        pace = self.pace()
        return [step * pace / 60 for step in steps]

    def logged_minutes(self, steps: list[int]) -> list[float]:
        """Training minutes at ``steps`` as logged: the wall-clock seconds summed up to each step's row,
        busy stretches included."""
        logged, total = {}, 0.0
        for step, seconds in zip(self.steps, self.seconds):
            total += seconds
            logged[step] = total / 60
        missing = [s for s in steps if s not in logged]
        if missing:
            raise KeyError(f"steps {missing[:3]} were not logged: the history has rows at {self.steps[:3]} ...")
        return [logged[s] for s in steps]

    def state_dict(self) -> dict:
        return {"steps": self.steps, "values": self.values, "seconds": self.seconds,
                "snapshots": [[s, x] for s, x in self.snapshots]}

    def load_state_dict(self, state: dict) -> None:
        self.steps, self.values, self.seconds = list(state["steps"]), dict(state["values"]), list(state["seconds"])
        self.snapshots = [(int(s), x) for s, x in state["snapshots"]]


@dataclass
class GANState:
    """Everything training changes, in one object so it can be checkpointed and resumed.

    ``extras`` holds whatever else a recipe must carry across a resume, by name: tensors (restored
    in place, e.g. StyleGAN2's path-length mean) or objects with ``state_dict``/``load_state_dict``
    (e.g. a learning-rate schedule). Buffers of G and D (such as StyleGAN's w_avg) need no extra:
    they are in the models' state dicts.
    """

    G: nn.Module
    D: nn.Module
    opt_G: torch.optim.Optimizer
    opt_D: torch.optim.Optimizer
    G_ema: nn.Module | None = None
    step: int = 0
    history: History = field(default_factory=History)
    extras: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def with_ema(cls, G, D, opt_G, opt_D, **kwargs) -> "GANState":
        """A state whose ``G_ema`` starts as a frozen copy of G."""
        return cls(G, D, opt_G, opt_D, G_ema=copy.deepcopy(G).requires_grad_(False), **kwargs)


@torch.no_grad()
def ema_update(G_ema: nn.Module, G: nn.Module, beta: float) -> None:
    """theta_ema <- beta * theta_ema + (1 - beta) * theta; buffers (BatchNorm statistics, StyleGAN's
    w_avg) are copied."""
    for p_ema, p in zip(G_ema.parameters(), G.parameters()):
        p_ema.lerp_(p, 1.0 - beta)
    for b_ema, b in zip(G_ema.buffers(), G.buffers()):
        b_ema.copy_(b)


def ema_half_life(batch_size: int, half_life_images: float, ramp: float | None = None) -> Callable[[int], float]:
    """StyleGAN2's EMA as a function of the step: beta = 0.5^(B / h), h = half_life_images, or with
    ``ramp``, h = min(half_life_images, ramp * B * step) so a short run's average does not lag."""
    def beta(step: int) -> float:
        h = half_life_images if ramp is None else min(half_life_images, ramp * batch_size * step)
        return 0.5 ** (batch_size / max(h, 1e-8))
    return beta


# ---------------------------------------------------------------------------------------------
# Schedules
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Phase:
    """Part of a training step: ``fn()`` runs ``repeat`` times at every step s with s % every == 0."""

    name: str
    fn: StepFn
    every: int = 1
    repeat: int = 1

    def __post_init__(self):
        if self.every < 1 or self.repeat < 1:
            raise ValueError(f"phase {self.name!r}: every and repeat must be >= 1, got {self.every} and {self.repeat}")

    def due(self, step: int) -> bool:
        return step % self.every == 0


def schedule(d_step: StepFn, g_step: StepFn, n_critic: int = 1) -> list[Phase]:
    """The classic schedule: ``n_critic`` D steps, then one G step, at every step."""
    return [Phase("D", d_step, repeat=n_critic), Phase("G", g_step)]


# ---------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------


def _check_finite(means: dict[str, float], start: int, end: int) -> None:
    bad = {k: v for k, v in means.items() if not np.isfinite(v)}
    if bad:
        names = ", ".join(f"{k}={v}" for k, v in bad.items())
        raise TrainingDiverged(
            f"training diverged between steps {start} and {end}: {names}. Typical causes: a learning rate "
            "too high, a missing normalisation, or a loss taking log(0). Lower the learning rate or "
            "restart from the last checkpoint.")


class _Meter:
    """Sums logged tensors on the device; ``flush`` reads them back once (one host sync)."""

    def __init__(self):
        self.sums, self.counts, self.since = {}, {}, time.perf_counter()

    def add(self, values: dict[str, torch.Tensor]) -> None:
        for k, v in values.items():
            v = v.detach().float()
            self.sums[k] = self.sums[k] + v if k in self.sums else v
            self.counts[k] = self.counts.get(k, 0) + 1

    def flush(self) -> tuple[dict[str, float], float]:
        """Means since the last flush (over ranks too, under torchrun), and the wall-clock seconds they took
        (honest: after the sync)."""
        keys = list(self.sums)  # the same keys, in the same order, on every rank: the same steps ran
        totals = distributed.mean(torch.stack([self.sums[k] for k in keys])).cpu().tolist() if keys else []  # the one sync
        means = {k: t / self.counts[k] for k, t in zip(keys, totals)}
        now = time.perf_counter()
        seconds, self.sums, self.counts, self.since = now - self.since, {}, {}, now
        return means, seconds


def _log(state: GANState, meter: _Meter, bar) -> None:
    means, seconds = meter.flush()
    _check_finite(means, state.history.steps[-1] if state.history.steps else 0, state.step)
    state.history.add(state.step, means, seconds)
    bar.set_postfix({k: f"{v:.3g}" for k, v in means.items()}, refresh=False)


@torch.no_grad()
def _snapshot(state: GANState, snapshot: Callable[[], torch.Tensor]) -> None:
    state.history.snapshots.append((state.step, snapshot().detach().float().cpu()))


def _due(step: int, every: int, last: int) -> bool:
    return step == last or (every > 0 and step % every == 0)


def _one_step(state: GANState, phases: list[Phase], meter: _Meter, ema_beta) -> None:
    """Every phase due at ``state.step``, in order, then the EMA of G; then the step counts as done."""
    for phase in phases:
        if phase.due(state.step):
            for _ in range(phase.repeat):
                meter.add(phase.fn())
    if state.G_ema is not None:
        ema_update(state.G_ema, state.G, ema_beta(state.step) if callable(ema_beta) else ema_beta)
    state.step += 1


def fit(state: GANState, d_step: StepFn, g_step: StepFn, steps: int, *, n_critic: int = 1, **options) -> History:
    """Train until ``state.step == steps``: each step runs ``d_step`` n_critic times, then ``g_step``.

    The shorthand for ``fit_schedule(state, schedule(d_step, g_step, n_critic), steps, **options)``.
    """
    return fit_schedule(state, schedule(d_step, g_step, n_critic), steps, **options)


def _start(state: GANState, steps: int, checkpoint, recipe, pretrained: bool) -> bool:
    """Load the shipped run (``pretrained``) or resume ``checkpoint``; True if nothing is left to train."""
    if pretrained:
        if checkpoint is None or recipe is None:
            raise ValueError("pretrained=True needs the run's checkpoint path and recipe, which name the shipped run")
        if shipped.restore(checkpoint, state, steps, recipe):
            return True
    if checkpoint is not None and Path(checkpoint).exists():
        load_checkpoint(checkpoint, state)
        if distributed.is_main():
            print(f"resumed from {checkpoint} at step {state.step} of {steps}")
    return state.step >= steps


def fit_schedule(state: GANState, phases: list[Phase], steps: int, *, ema_beta: float | Callable[[int], float] = 0.999,
                 log_every: int = 50, snapshot: Callable[[], torch.Tensor] | None = None, snapshot_every: int = 0,
                 checkpoint: str | os.PathLike | None = None, checkpoint_every: int = 0,
                 on_log: Callable[[GANState], None] | None = None, progress: bool = True,
                 recipe: dict | None = None, pretrained: bool = False) -> History:
    """Train until ``state.step == steps``, running at each step every phase that is due, in order.

    ``ema_beta`` is a number or a function of the step (``ema_half_life``). If ``checkpoint`` names an
    existing file, training resumes from it (and does nothing if it already reached ``steps``): load a
    checkpoint if present, else train. Checkpoints are written every ``checkpoint_every`` steps and at
    the end. ``snapshot()`` (e.g. ``G_ema(z_fixed)``) is recorded every ``snapshot_every`` steps;
    ``on_log(state)`` runs after each logged row. Raises ``TrainingDiverged`` if a logged value turns
    NaN or infinite.

    Under torchrun (``ganlib.distributed``) the same call trains on every rank: a fresh run starts from
    rank 0's models with a random stream per rank, gradients are averaged at each optimiser step, logged
    values are means over ranks (a NaN on one rank stops all of them), and rank 0 alone shows progress,
    runs ``on_log`` and writes the checkpoint (with every rank's RNG state).

    ``recipe`` (the settings that decide what the run produces) is stored in the checkpoint; with
    ``pretrained=True`` the weights the course ships for this checkpoint's run are loaded instead of
    training, when their recipe equals this one (``ganlib.pretrained``; nothing is written then).
    """
    if _start(state, steps, checkpoint, recipe, pretrained):
        return state.history
    if state.step == 0:  # under torchrun: rank 0's models everywhere, then a random stream per rank
        distributed.broadcast(state.G, state.D, state.G_ema)
        distributed.reseed_per_rank()
    if snapshot is not None and snapshot_every and state.step == 0:
        _snapshot(state, snapshot)
    meter = _Meter()
    bar = tqdm(total=steps, initial=state.step, disable=not progress or not distributed.is_main(), desc="training",
               dynamic_ncols=True)
    while state.step < steps:
        _one_step(state, phases, meter, ema_beta)
        bar.update()
        save_now = checkpoint is not None and _due(state.step, checkpoint_every, steps)
        if save_now or _due(state.step, log_every, steps):
            _log(state, meter, bar)
            if on_log is not None and distributed.is_main():
                on_log(state)
        if snapshot is not None and snapshot_every and _due(state.step, snapshot_every, steps):
            _snapshot(state, snapshot)
        if save_now:
            save_checkpoint(checkpoint, state, meta=None if recipe is None else {"recipe": shipped.recipe_of(steps, recipe)})
    bar.close()
    return state.history


@torch.no_grad()
def recalibrate_batchnorm(G: nn.Module, batches: int = 20, batch_size: int = 256) -> nn.Module:
    """Re-estimate G's BatchNorm running statistics from its own outputs, then switch to eval mode.

    An EMA generator averages weights but inherits running statistics measured on the raw G;
    "standing statistics" (Brock et al. 2019) recompute them as a plain average over ``batches``
    batches of fresh inputs, drawn by ``G.random_inputs(n, device)`` (every course generator has it).
    """
    norms = [m for m in G.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    device = next(G.parameters()).device
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # None: a cumulative average over all batches seen
    G.train()
    for _ in range(batches):
        G(*G.random_inputs(batch_size, device))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    return G.eval()
