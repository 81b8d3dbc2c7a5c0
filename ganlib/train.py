"""The training loop used from lesson 03 on.

A lesson writes its own ``d_step()`` and ``g_step()`` (each returns a dict of scalar tensors to
log) and hands them to ``fit``, which adds what every lesson needs: ``n_critic`` D steps per G
step, an EMA of G, a progress bar, a history of losses and timings, fixed-z snapshots,
checkpoints that resume exactly, and a guard against NaN/inf losses.

The hot loop never synchronises with the host: logged values are summed on the device and read
back once every ``log_every`` steps.
"""

from __future__ import annotations

import copy
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

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


def discriminator_step(D, opt_D, d_loss, x_real, x_fake) -> dict[str, torch.Tensor]:
    """One update of D on ``d_loss(D(x_real), D(x_fake))``. ``x_fake`` is detached: no gradient reaches G."""
    d_real, d_fake = D(x_real), D(x_fake.detach())
    loss = d_loss(d_real, d_fake)
    opt_D.zero_grad(set_to_none=True)
    loss.backward()
    opt_D.step()
    return {"loss_D": loss.detach(), "D(x)": torch.sigmoid(d_real.detach()).mean(),
            "D(G(z))": torch.sigmoid(d_fake.detach()).mean()}


def generator_step(D, opt_G, g_loss, x_fake) -> dict[str, torch.Tensor]:
    """One update of G on ``g_loss(D(x_fake))``; D's parameters get gradients but are not stepped."""
    loss = g_loss(D(x_fake))
    opt_G.zero_grad(set_to_none=True)
    loss.backward()
    opt_G.step()
    return {"loss_G": loss.detach()}


@torch.no_grad()
def ema_update(G_ema: nn.Module, G: nn.Module, beta: float) -> None:
    """theta_ema <- beta * theta_ema + (1 - beta) * theta; buffers (e.g. BatchNorm statistics) are copied."""
    for p_ema, p in zip(G_ema.parameters(), G.parameters()):
        p_ema.lerp_(p, 1.0 - beta)
    for b_ema, b in zip(G_ema.buffers(), G.buffers()):
        b_ema.copy_(b)


# ---------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------


def _rng_state() -> dict:
    np_state = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "python": random.getstate(),
            "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]]}


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))


def save_checkpoint(path: str | os.PathLike, state: GANState) -> None:
    """Write models, optimisers, EMA, step, history and every RNG state; atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = {"step": state.step, "G": state.G.state_dict(), "D": state.D.state_dict(),
            "opt_G": state.opt_G.state_dict(), "opt_D": state.opt_D.state_dict(),
            "G_ema": None if state.G_ema is None else state.G_ema.state_dict(),
            "history": state.history.state_dict(), "rng": _rng_state()}
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(blob, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | os.PathLike, state: GANState) -> GANState:
    """Restore ``state`` (in place) and the RNGs from ``path``, loaded with ``weights_only=True``."""
    blob = torch.load(path, map_location="cpu", weights_only=True)
    state.G.load_state_dict(blob["G"])
    state.D.load_state_dict(blob["D"])
    state.opt_G.load_state_dict(blob["opt_G"])
    state.opt_D.load_state_dict(blob["opt_D"])
    if (blob["G_ema"] is None) != (state.G_ema is None):
        raise ValueError(f"{path}: the checkpoint {'lacks' if blob['G_ema'] is None else 'has'} an EMA generator "
                         "but this state does not match; build the state the same way as when it was saved")
    if state.G_ema is not None:
        state.G_ema.load_state_dict(blob["G_ema"])
    state.step = int(blob["step"])
    state.history.load_state_dict(blob["history"])
    _set_rng_state(blob["rng"])
    return state


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
        self.sums, self.counts = {}, {}

    def add(self, values: dict[str, torch.Tensor]) -> None:
        for k, v in values.items():
            v = v.detach().float()
            self.sums[k] = self.sums[k] + v if k in self.sums else v
            self.counts[k] = self.counts.get(k, 0) + 1

    def flush(self) -> dict[str, float]:
        if not self.sums:
            return {}
        keys = list(self.sums)
        totals = torch.stack([self.sums[k] for k in keys]).cpu().tolist()  # the one sync
        means = {k: t / self.counts[k] for k, t in zip(keys, totals)}
        self.sums, self.counts = {}, {}
        return means


def _log(state: GANState, meter: _Meter, bar, since: float) -> float:
    means = meter.flush()  # host sync: also makes the interval's timing honest
    now = time.perf_counter()
    _check_finite(means, state.history.steps[-1] if state.history.steps else 0, state.step)
    state.history.add(state.step, means, now - since)
    bar.set_postfix({k: f"{v:.3g}" for k, v in means.items()}, refresh=False)
    return now


@torch.no_grad()
def _snapshot(state: GANState, snapshot: Callable[[], torch.Tensor]) -> None:
    state.history.snapshots.append((state.step, snapshot().detach().float().cpu()))


def fit(state: GANState, d_step: StepFn, g_step: StepFn, steps: int, *, n_critic: int = 1,
        ema_beta: float = 0.999, log_every: int = 50, snapshot: Callable[[], torch.Tensor] | None = None,
        snapshot_every: int = 0, checkpoint: str | os.PathLike | None = None, checkpoint_every: int = 0,
        progress: bool = True) -> History:
    """Train until ``state.step == steps``: each step runs ``d_step`` n_critic times, then ``g_step``.

    If ``checkpoint`` names an existing file, training resumes from it (and does nothing if it
    already reached ``steps``): load a checkpoint if present, else train. Checkpoints are written
    every ``checkpoint_every`` steps and at the end. ``snapshot()`` (e.g. ``G_ema(z_fixed)``) is
    recorded every ``snapshot_every`` steps. Raises ``TrainingDiverged`` if a logged value turns NaN/inf.
    """
    if checkpoint is not None and Path(checkpoint).exists():
        load_checkpoint(checkpoint, state)
        print(f"resumed from {checkpoint} at step {state.step}")
    if state.step >= steps:
        return state.history
    if snapshot is not None and snapshot_every and state.step == 0:
        _snapshot(state, snapshot)
    meter, since = _Meter(), time.perf_counter()
    bar = tqdm(total=steps, initial=state.step, disable=not progress, desc="training", dynamic_ncols=True)
    while state.step < steps:
        for _ in range(n_critic):
            meter.add(d_step())
        meter.add(g_step())
        if state.G_ema is not None:
            ema_update(state.G_ema, state.G, ema_beta)
        state.step += 1
        bar.update()
        save_now = checkpoint is not None and (state.step == steps or checkpoint_every and state.step % checkpoint_every == 0)
        if save_now or state.step % log_every == 0 or state.step == steps:
            since = _log(state, meter, bar, since)
        if snapshot is not None and snapshot_every and (state.step % snapshot_every == 0 or state.step == steps):
            _snapshot(state, snapshot)
        if save_now:
            save_checkpoint(checkpoint, state)
    bar.close()
    return state.history
