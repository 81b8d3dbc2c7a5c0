"""The training loop used from lesson 03 on.

A lesson writes its own ``d_step()`` and ``g_step()`` (each returns a dict of scalar tensors to
log) and hands them to ``fit``, which adds what every lesson needs: ``n_critic`` D steps per G
step, an EMA of G, a progress bar, a history of losses and timings, fixed-z snapshots,
checkpoints that resume exactly (``ganlib.checkpoint``), a guard against NaN/inf losses, and a
health summary that names the classic failures.

The hot loop never synchronises with the host: logged values are summed on the device and read
back once every ``log_every`` steps.
"""

from __future__ import annotations

import copy
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from . import losses
from .checkpoint import load as load_checkpoint, save as save_checkpoint
from .speed import autocast

StepFn = Callable[[], dict[str, torch.Tensor]]


class TrainingDiverged(RuntimeError):
    """A logged loss became NaN or infinite."""


@dataclass
class History:
    """What training logged: one row per ``log_every`` steps (means over the interval)."""

    steps: list[int] = field(default_factory=list)
    values: dict[str, list[float]] = field(default_factory=dict)
    seconds: list[float] = field(default_factory=list)  # wall-clock seconds of each interval
    snapshots: list[tuple[int, torch.Tensor]] = field(default_factory=list)  # (step, samples on CPU)

    def add(self, step: int, values: dict[str, float], seconds: float) -> None:
        self.steps.append(step)
        self.seconds.append(seconds)
        for k, v in values.items():
            self.values.setdefault(k, []).append(v)

    def state_dict(self) -> dict:
        return {"steps": self.steps, "values": self.values, "seconds": self.seconds,
                "snapshots": [[s, x] for s, x in self.snapshots]}

    def load_state_dict(self, state: dict) -> None:
        self.steps, self.values, self.seconds = list(state["steps"]), dict(state["values"]), list(state["seconds"])
        self.snapshots = [(int(s), x) for s, x in state["snapshots"]]


@dataclass
class GANState:
    """Everything training changes, in one object so it can be checkpointed and resumed."""

    G: nn.Module
    D: nn.Module
    opt_G: torch.optim.Optimizer
    opt_D: torch.optim.Optimizer
    G_ema: nn.Module | None = None
    step: int = 0
    history: History = field(default_factory=History)

    @classmethod
    def with_ema(cls, G, D, opt_G, opt_D) -> "GANState":
        """A state whose ``G_ema`` starts as a frozen copy of G."""
        return cls(G, D, opt_G, opt_D, G_ema=copy.deepcopy(G).requires_grad_(False))


# ---------------------------------------------------------------------------------------------
# Steps
# ---------------------------------------------------------------------------------------------


def update(opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    """One optimiser step on ``loss``: clear gradients (to None), backpropagate, step."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def discriminator_outputs(d_real: torch.Tensor, d_fake: torch.Tensor) -> dict[str, torch.Tensor]:
    """What every D step logs besides its loss: mean sigmoid(D) on real and on fake logits, detached and
    left on the device (``fit`` reads them back once per log interval; ``health`` reads them)."""
    return {"D(x)": torch.sigmoid(d_real.detach().float()).mean(), "D(G(z))": torch.sigmoid(d_fake.detach().float()).mean()}


def discriminator_step(D, opt_D, d_loss, x_real, x_fake, amp: bool = False) -> dict[str, torch.Tensor]:
    """One update of D on ``d_loss(D(x_real), D(x_fake))``. ``x_fake`` is detached: no gradient reaches G.

    With ``amp`` the forward passes run in bf16 autocast; the loss is always taken in fp32.
    """
    with autocast(x_real.device, amp):
        d_real, d_fake = D(x_real), D(x_fake.detach())
    loss = d_loss(d_real.float(), d_fake.float())
    update(opt_D, loss)
    return {"loss_D": loss.detach(), **discriminator_outputs(d_real, d_fake)}


def generator_step(D, opt_G, g_loss, x_fake, amp: bool = False) -> dict[str, torch.Tensor]:
    """One update of G on ``g_loss(D(x_fake))``; D's parameters get gradients but are not stepped."""
    with autocast(x_fake.device, amp):
        d_fake = D(x_fake)
    loss = g_loss(d_fake.float())
    update(opt_G, loss)
    return {"loss_G": loss.detach()}


def gan_steps(G, D, opt_G, opt_D, images, batch_size: int, *, d_loss=losses.d_loss_nonsaturating,
              g_loss=losses.g_loss_nonsaturating, amp: bool = False) -> tuple[StepFn, StepFn]:
    """``d_step`` and ``g_step`` for ``fit``, for an unconditional image GAN.

    Real batches are drawn by indexing the device-resident ``images`` (``data.ImageSet``), noise
    is drawn on the device, and nothing is copied to the host. ``G`` must have a ``z_dim``.
    """
    device = images.x.device

    def d_step():
        x_real, _ = images.sample(batch_size)
        with torch.no_grad(), autocast(device, amp):
            x_fake = G(torch.randn(batch_size, G.z_dim, device=device))
        return discriminator_step(D, opt_D, d_loss, x_real, x_fake, amp)

    def g_step():
        with autocast(device, amp):
            x_fake = G(torch.randn(batch_size, G.z_dim, device=device))
        return generator_step(D, opt_G, g_loss, x_fake, amp)

    return d_step, g_step


@torch.no_grad()
def ema_update(G_ema: nn.Module, G: nn.Module, beta: float) -> None:
    """theta_ema <- beta * theta_ema + (1 - beta) * theta; buffers (e.g. BatchNorm statistics) are copied."""
    for p_ema, p in zip(G_ema.parameters(), G.parameters()):
        p_ema.lerp_(p, 1.0 - beta)
    for b_ema, b in zip(G_ema.buffers(), G.buffers()):
        b_ema.copy_(b)


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
        """Means since the last flush, and the wall-clock seconds they took (honest: after the sync)."""
        keys = list(self.sums)
        totals = torch.stack([self.sums[k] for k in keys]).cpu().tolist() if keys else []  # the one sync
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


def fit(state: GANState, d_step: StepFn, g_step: StepFn, steps: int, *, n_critic: int = 1,
        ema_beta: float = 0.999, log_every: int = 50, snapshot: Callable[[], torch.Tensor] | None = None,
        snapshot_every: int = 0, checkpoint: str | os.PathLike | None = None, checkpoint_every: int = 0,
        on_log: Callable[[GANState], None] | None = None, progress: bool = True) -> History:
    """Train until ``state.step == steps``: each step runs ``d_step`` n_critic times, then ``g_step``.

    If ``checkpoint`` names an existing file, training resumes from it (and does nothing if it
    already reached ``steps``): load a checkpoint if present, else train. Checkpoints are written
    every ``checkpoint_every`` steps and at the end. ``snapshot()`` (e.g. ``G_ema(z_fixed)``) is
    recorded every ``snapshot_every`` steps; ``on_log(state)`` runs after each logged row.
    Raises ``TrainingDiverged`` if a logged value turns NaN or infinite.
    """
    if checkpoint is not None and Path(checkpoint).exists():
        load_checkpoint(checkpoint, state)
        print(f"resumed from {checkpoint} at step {state.step} of {steps}")
    if state.step >= steps:
        return state.history
    if snapshot is not None and snapshot_every and state.step == 0:
        _snapshot(state, snapshot)
    meter = _Meter()
    bar = tqdm(total=steps, initial=state.step, disable=not progress, desc="training", dynamic_ncols=True)
    while state.step < steps:
        for _ in range(n_critic):
            meter.add(d_step())
        meter.add(g_step())
        if state.G_ema is not None:
            ema_update(state.G_ema, state.G, ema_beta)
        state.step += 1
        bar.update()
        save_now = checkpoint is not None and _due(state.step, checkpoint_every, steps)
        if save_now or _due(state.step, log_every, steps):
            _log(state, meter, bar)
            if on_log is not None:
                on_log(state)
        if snapshot is not None and snapshot_every and _due(state.step, snapshot_every, steps):
            _snapshot(state, snapshot)
        if save_now:
            save_checkpoint(checkpoint, state)
    bar.close()
    return state.history


# ---------------------------------------------------------------------------------------------
# Health
# ---------------------------------------------------------------------------------------------


def _diversity(x: torch.Tensor) -> float:
    """Mean pairwise L2 distance between the samples of a batch (B, ...)."""
    flat = x.reshape(len(x), -1).float()
    return float(torch.pdist(flat).mean())


@dataclass
class Health:
    """What the end of a run looks like, and which classic failures it shows."""

    means: dict[str, float]
    diversity: float | None  # last snapshot's diversity relative to real data (1 = as diverse)
    warnings: list[str]

    def __str__(self) -> str:
        lines = ["end of training: " + ", ".join(f"{k} {v:.3g}" for k, v in self.means.items())]
        if self.diversity is not None:
            lines.append(f"fixed-z samples are {self.diversity:.2f}x as diverse as real data")
        lines += [f"WARNING: {w}" for w in self.warnings] or ["no warning signs"]
        return "\n".join(lines)


def health(history: History, real: torch.Tensor | None = None, window: float = 0.2) -> Health:
    """Check the last ``window`` of the logged history for the classic failure signatures.

    - D overpowering G: D(x) -> 1 and D(G(z)) -> 0, so the generator's gradient vanishes;
    - D collapsing: D(G(z)) above D(x) for long, i.e. D no longer tells real from fake;
    - mode collapse: the last fixed-z snapshot far less diverse than a real batch ``real``.
    """
    rows = max(1, int(round(len(history.steps) * window)))
    means = {k: float(np.mean(v[-rows:])) for k, v in history.values.items()}
    warnings = []
    p_real, p_fake = means.get("D(x)"), means.get("D(G(z))")
    if p_real is not None and p_fake is not None:
        if p_real > 0.9 and p_fake < 0.1:
            warnings.append("D is overpowering G (D(x) near 1, D(G(z)) near 0): G's gradient vanishes. "
                            "Lower D's learning rate, raise G's, or regularise D.")
        if p_fake > p_real + 0.1:
            warnings.append("D rates fakes above real data: D has collapsed or is far too weak.")
    ratio = None
    if real is not None and history.snapshots:
        fake = history.snapshots[-1][1]
        ratio = _diversity(fake) / _diversity(real[: len(fake)].cpu())
        if ratio < 0.5:
            warnings.append(f"fixed-z samples are only {ratio:.2f}x as diverse as real data: likely mode collapse.")
    return Health(means, ratio, warnings)


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
