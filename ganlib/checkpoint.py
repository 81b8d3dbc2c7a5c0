"""Checkpoints that resume a GAN run exactly: models, optimisers, EMA, step, history and every RNG.

Works on any object with the fields of ``train.GANState`` (G, D, opt_G, opt_D, G_ema, step,
history, extras). ``extras`` carries a recipe's own state by name: tensors are saved and restored in
place, anything else through its ``state_dict``/``load_state_dict``. Files are written atomically and read back with ``torch.load(weights_only=True)``, which
refuses to unpickle arbitrary objects.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

from . import distributed


def rng_state() -> dict:
    """The state of every random generator a lesson uses: torch (CPU and CUDA), Python, NumPy."""
    np_state = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "python": random.getstate(),
            "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]]}


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))


def _extra_state(value):
    return value.detach().clone() if isinstance(value, torch.Tensor) else value.state_dict()


def _load_extras(path, extras: dict, saved: dict) -> None:
    if set(extras) != set(saved):
        raise ValueError(f"{path}: the checkpoint carries extras {sorted(saved)} but this state has {sorted(extras)}; "
                         "build the state the same way as when it was saved")
    for name, value in extras.items():
        if isinstance(value, torch.Tensor):
            with torch.no_grad():
                value.copy_(saved[name])
        else:
            value.load_state_dict(saved[name])


def save(path: str | os.PathLike, state, meta: dict | None = None) -> None:
    """Write models, optimisers, EMA, step, history and every RNG state; atomically. ``meta``: plain
    values describing the run (``train.fit_schedule`` stores the recipe there, for ``ganlib.pretrained``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = {"step": state.step, "G": state.G.state_dict(), "D": state.D.state_dict(),
            "opt_G": state.opt_G.state_dict(), "opt_D": state.opt_D.state_dict(),
            "G_ema": None if state.G_ema is None else state.G_ema.state_dict(),
            "history": state.history.state_dict(), "rng": rng_state(),
            "extras": {k: _extra_state(v) for k, v in getattr(state, "extras", {}).items()}, "meta": meta}
    if distributed.active():  # every rank's random stream; rank 0 writes, the others wait for the file
        blob["rng_ranks"] = distributed.gather(blob["rng"])
    if distributed.is_main():
        tmp = path.with_suffix(path.suffix + ".tmp")
        torch.save(blob, tmp)
        os.replace(tmp, path)
    distributed.barrier()


def load(path: str | os.PathLike, state):
    """Restore ``state`` (in place) and the RNGs from ``path``; returns ``state``."""
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if (blob["G_ema"] is None) != (state.G_ema is None):
        raise ValueError(f"{path}: the checkpoint {'lacks' if blob['G_ema'] is None else 'has'} an EMA generator "
                         "but this state does not match; build the state the same way as when it was saved")
    state.G.load_state_dict(blob["G"])
    state.D.load_state_dict(blob["D"])
    state.opt_G.load_state_dict(blob["opt_G"])
    state.opt_D.load_state_dict(blob["opt_D"])
    if state.G_ema is not None:
        state.G_ema.load_state_dict(blob["G_ema"])
    state.step = int(blob["step"])
    state.history.load_state_dict(blob["history"])
    _load_extras(path, getattr(state, "extras", {}), blob.get("extras", {}))
    set_rng_state(_own_rng(path, blob))
    return state


def _own_rng(path, blob) -> dict:
    """This rank's RNG state: under torchrun, the one this rank saved (a run resumed on N ranks continues
    each rank's stream); in one process, rank 0's."""
    if not distributed.active():
        return blob["rng"]
    saved = blob.get("rng_ranks") or [blob["rng"]]
    if len(saved) != distributed.world():
        raise ValueError(f"{path} was written by {len(saved)} rank(s), this run has {distributed.world()}: resume it "
                         f"with --nproc_per_node x nodes = {len(saved)}, or load it in one process")
    return saved[distributed.rank()]
