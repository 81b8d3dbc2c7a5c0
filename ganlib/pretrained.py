"""Trained weights that ship with the course: a lesson can show trained results in seconds.

A lesson's run has a name, its checkpoint file ``checkpoints/<lesson>/<run>.pt``, and a **recipe**:
the settings that decide what training produces (steps, batch size, width, ...). For some runs the
course ships the result, built by ``tools/weights.py`` (``make weights``) from the lesson's own
cpu-profile run and stored compactly under ``ganlib/assets/weights/<lesson>/<run>.pt``:

- the trained generator (G_ema where the run keeps one, else G) and D, compactly: small tensors in
  half precision, weight matrices and kernels as 8-bit integers with a scale per row, the two of
  over a million values (lesson 06's) as 6-bit integers with a scale per 64 (see ``_encode``);
- the run's history (losses, timings, fixed-z snapshots as 8-bit images) and step, so the lesson's
  later cells (loss curves, health, snapshots) read what training logged;
- where a later lesson measures the run along the way (lesson 04 on lesson 03's), a few of the
  generators kept during it.

Optimiser states are not shipped: a shipped run can be looked at, not resumed.

``manifest.json`` beside them pins each file by SHA-256, its recipe, and an architecture
fingerprint (a digest of every tensor's name and shape per model). ``restore`` loads a shipped run
into a ``train.GANState`` only when the run's recipe equals the shipped one; a corrupt file or an
architecture that no longer matches raises ``ShippedWeightsError`` naming the file and the fix. It
never falls back to random weights silently.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from .checkpoint import load as load_checkpoint

WEIGHTS_DIR = Path(__file__).resolve().parent / "assets" / "weights"
MANIFEST_NAME = "manifest.json"
REBUILD = ("restore it (`git checkout -- <file>` in a clone of the course, or reinstall ganlib) or rebuild it "
           "with `make weights`")


class ShippedWeightsError(RuntimeError):
    """A shipped weights file is missing, corrupt, or built for another architecture."""


def _dir(directory) -> Path:
    """``directory``, or the shipped weights' folder (read at call time, so tests can point it elsewhere)."""
    return WEIGHTS_DIR if directory is None else Path(directory)


def run_key(checkpoint: str | os.PathLike) -> str:
    """``<lesson>/<run>`` for a checkpoint path ``.../<lesson>/<run>.pt`` (``profiles.checkpoint_dir``'s layout)."""
    path = Path(checkpoint)
    return f"{path.parent.name}/{path.stem}"


def _plain(value):
    """A recipe value in JSON's terms (tuples become lists), so a recipe compares equal after a round trip."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"a recipe holds plain values (numbers, strings, lists, dicts), got {type(value).__name__}: {value!r}")


def recipe_of(steps: int, recipe: Mapping[str, Any]) -> dict:
    """The recipe as stored: plain values, with the run's number of steps."""
    return _plain({**recipe, "steps": int(steps)})


# ---------------------------------------------------------------------------------------------
# Fingerprints: what a file's tensors must look like to fit the models
# ---------------------------------------------------------------------------------------------


def fingerprint(state_dict: Mapping[str, torch.Tensor]) -> dict:
    """The architecture a state dict belongs to: its parameter count and a digest of every entry's
    name and shape (values play no part, so two trainings of one architecture share it)."""
    layout = [[name, list(t.shape)] for name, t in state_dict.items()]
    digest = hashlib.sha256(json.dumps(layout).encode()).hexdigest()[:16]
    n = sum(t.numel() for t in state_dict.values() if t.is_floating_point())
    return {"parameters": n, "layout": digest}


def _models(state) -> dict[str, nn.Module]:
    """What a shipped run holds of a state: its generator (G_ema when kept, else G) and D."""
    generator = {"G_ema": state.G_ema} if state.G_ema is not None else {"G": state.G}
    return {**generator, "D": state.D}


def sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# The manifest
# ---------------------------------------------------------------------------------------------


def manifest(directory: str | os.PathLike | None = None) -> dict[str, dict]:
    """Every shipped run by ``<lesson>/<run>``: file, sha256, bytes, recipe, fingerprint, quality, ..."""
    path = _dir(directory) / MANIFEST_NAME
    return json.loads(path.read_text())["runs"] if path.exists() else {}


def write_manifest(runs: Mapping[str, dict], directory: str | os.PathLike | None = None) -> Path:
    path = _dir(directory) / MANIFEST_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = {"about": "trained weights of the lessons' cpu-profile runs; built by tools/weights.py (make weights)",
            "runs": dict(sorted(runs.items()))}
    path.write_text(json.dumps(blob, indent=1) + "\n")
    return path


def lookup(checkpoint, steps: int, recipe: Mapping[str, Any], directory=None) -> tuple[dict | None, str]:
    """(the manifest entry of the run at ``checkpoint`` if its recipe equals this run's, why not otherwise)."""
    key = run_key(checkpoint)
    entry = manifest(directory).get(key)
    if entry is None:
        return None, f"no shipped weights for {key}"
    wanted = recipe_of(steps, recipe)
    differ = sorted(k for k in set(wanted) | set(entry["recipe"]) if wanted.get(k) != entry["recipe"].get(k))
    if differ:
        shown = ", ".join(f"{k}={entry['recipe'].get(k)!r} (this run: {wanted.get(k)!r})" for k in differ)
        return None, f"the shipped weights of {key} were trained with {shown}"
    return entry, "match"


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def _verified_blob(entry: dict, directory) -> tuple[Path, dict]:
    path = _dir(directory) / entry["file"]
    if not path.exists():
        raise ShippedWeightsError(f"{path} is listed in the manifest but missing; {REBUILD.replace('<file>', str(path))}")
    digest = sha256(path)
    if digest != entry["sha256"]:
        raise ShippedWeightsError(f"{path} is corrupt: its SHA-256 is {digest[:12]}..., the manifest says "
                                  f"{entry['sha256'][:12]}...; {REBUILD.replace('<file>', str(path))}")
    blob = torch.load(path, map_location="cpu", weights_only=True)
    return path, {**blob, "models": {name: _expanded(sd) for name, sd in blob["models"].items()},
                  "kept": {step: _expanded(sd) for step, sd in blob.get("kept", {}).items()}}


def _load_model(path: Path, name: str, model: nn.Module, saved: Mapping[str, torch.Tensor], expected: dict) -> None:
    mine = fingerprint(model.state_dict())
    if mine != expected or fingerprint(saved) != expected:
        raise ShippedWeightsError(
            f"{path}: the shipped {name} has {expected['parameters']:,} parameters (layout {expected['layout']}), this "
            f"run's {name} has {mine['parameters']:,} (layout {mine['layout']}): the architecture changed since the "
            f"weights were built; {REBUILD.replace('<file>', str(path))}, or pass pretrained=False to train")
    current = model.state_dict()
    model.load_state_dict({k: v.to(current[k].dtype) for k, v in saved.items()})  # to the model's dtype


def load_into(entry: dict, state, directory=None) -> Path:
    """Verify the shipped file of ``entry`` (SHA-256, fingerprints) and load it into ``state``:
    models, step, history, extras. The generator not shipped (G when G_ema is) becomes a copy of the
    shipped one, so no model of the state keeps random weights."""
    path, blob = _verified_blob(entry, directory)
    models = _models(state)
    if set(models) != set(blob["models"]):
        raise ShippedWeightsError(f"{path} holds {sorted(blob['models'])}, this run has {sorted(models)}; "
                                  f"{REBUILD.replace('<file>', str(path))}")
    for name, model in models.items():
        _load_model(path, name, model, blob["models"][name], entry["fingerprint"][name])
    if state.G_ema is not None:
        state.G.load_state_dict(state.G_ema.state_dict())
    state.step = int(blob["step"])
    state.history.load_state_dict(_unpacked_history(blob["history"]))
    for name, value in getattr(state, "extras", {}).items():
        if isinstance(value, torch.Tensor) and name in blob["extras"]:
            with torch.no_grad():
                value.copy_(blob["extras"][name])
    return path


def shipped_steps(checkpoint, directory=None) -> int | None:
    """How many steps the shipped run at ``checkpoint`` trained, or None if none is shipped: for a run
    whose length was decided while training (lesson 09's DCGAN trains until it matches StyleGAN's minutes)."""
    entry = manifest(directory).get(run_key(checkpoint))
    return None if entry is None else int(entry["recipe"]["steps"])


def load_model(key: str, name: str, model: nn.Module, directory=None) -> nn.Module:
    """Load one model (``"G_ema"``, ``"G"`` or ``"D"``) of the shipped run ``key`` into ``model``, verified."""
    entry = manifest(directory).get(key)
    if entry is None:
        raise ShippedWeightsError(f"no shipped weights for {key}; shipped: {', '.join(manifest(directory)) or 'none'}")
    path, blob = _verified_blob(entry, directory)
    if name not in blob["models"]:
        raise ShippedWeightsError(f"{path} holds {sorted(blob['models'])}, not {name}")
    _load_model(path, name, model, blob["models"][name], entry["fingerprint"][name])
    return model


def kept_generators(checkpoint, steps: int, recipe: Mapping[str, Any], directory=None) -> dict[int, dict] | None:
    """The generators shipped from along the run at ``checkpoint`` (by step, state dicts,
    verified), when its recipe matches; None otherwise. Load one with ``G.load_state_dict(sd)``, which
    converts to G's dtype."""
    entry, _ = lookup(checkpoint, steps, recipe, directory)
    if entry is None or not entry.get("kept"):
        return None
    path, blob = _verified_blob(entry, directory)
    kept = {**blob["kept"], int(blob["step"]): blob["models"]["G_ema"]}  # the last one is the run's G_ema
    expected = entry["fingerprint"]["G_ema"]
    if any(fingerprint(sd) != expected for sd in kept.values()):
        raise ShippedWeightsError(f"{path}: a kept generator does not match G_ema's layout; {REBUILD.replace('<file>', str(path))}")
    return dict(sorted(kept.items()))


def restore(checkpoint, state, steps: int, recipe: Mapping[str, Any], directory=None) -> bool:
    """Load the shipped run for ``checkpoint`` into ``state`` if its recipe equals ``recipe`` (plus
    ``steps``); print one line saying what happened. Returns whether it loaded."""
    entry, why = lookup(checkpoint, steps, recipe, directory)
    if entry is None:
        print(f"pretrained: {why}")
        return False
    load_into(entry, state, directory)
    _say_loaded(entry, state, "skipping training (pretrained=False trains)")
    return True


def _say_loaded(entry: dict, state, then: str) -> None:
    where = f"{entry['minutes']:.1f} min on {entry['device']}" if "minutes" in entry else "the course's run"
    print(f"pretrained: loaded the shipped weights {entry['file']} ({state.step} steps, trained in {where}); {then}")


def lesson_run(checkpoint, state, steps: int, recipe: Mapping[str, Any], directory=None) -> str | None:
    """A lesson's finished run, for a deck: the shipped weights when their recipe matches, else the
    lab's own finished checkpoint at ``checkpoint``. Loads it into ``state`` and says which it was
    (``"shipped weights"`` or ``"lab checkpoint"``); None (``state`` untouched) when neither exists."""
    entry, _ = lookup(checkpoint, steps, recipe, directory)
    if entry is not None:
        load_into(entry, state, directory)
        _say_loaded(entry, state, "nothing trained")
        return "shipped weights"
    if Path(checkpoint).exists() and torch.load(checkpoint, map_location="cpu", weights_only=True)["step"] >= steps:
        load_checkpoint(checkpoint, state)
        return "lab checkpoint"
    return None


# ---------------------------------------------------------------------------------------------
# Building (tools/weights.py)
# ---------------------------------------------------------------------------------------------


# How a tensor is stored, by its size: a vector or a small kernel in half precision; a weight matrix
# or kernel of INT8_MIN values or more as 8-bit integers with one scale per output row (dim 0); one
# of PACKED_MIN or more (only lesson 06's FC-1024 layers, 6.4 M values each) as 6-bit integers with
# one scale per GROUP consecutive values. Every shipped run is measured against its lesson's bar in
# this form (tools/weights.py, tests/test_shipped.py).
INT8_MIN, PACKED_MIN, PACKED_BITS, GROUP = 4096, 1 << 20, 6, 64
PACKED_TOP = 2 ** (PACKED_BITS - 1) - 1  # levels -31..31


def _pack_bits(levels: torch.Tensor, bits: int) -> torch.Tensor:
    """Unsigned integers below 2**bits, (n,) with n divisible by 8, as n * bits / 8 bytes."""
    words = (levels.long().reshape(-1, 8) << (bits * torch.arange(8))).sum(1)  # 8 values per 8*bits-bit word
    return ((words[:, None] >> (8 * torch.arange(bits))) & 255).to(torch.uint8).flatten()


def _unpack_bits(packed: torch.Tensor, bits: int) -> torch.Tensor:
    words = (packed.long().reshape(-1, bits) << (8 * torch.arange(bits))).sum(1)
    return ((words[:, None] >> (bits * torch.arange(8))) & (2**bits - 1)).flatten()


def _encode(t: torch.Tensor):
    t = t.detach().cpu()
    if not t.is_floating_point():
        return t
    if t.dim() < 2 or t.numel() < INT8_MIN:
        return t.half()
    shape = list(t.shape)
    if t.numel() >= PACKED_MIN and t.numel() % GROUP == 0:
        top = PACKED_TOP
        groups = t.float().reshape(-1, GROUP)
        scale = (groups.abs().amax(1, keepdim=True) / top).half().float().clamp_min(1e-12)
        levels = (groups / scale).round().clamp(-top, top) + top
        return {"packed": _pack_bits(levels, PACKED_BITS), "scale": scale.half(), "shape": shape}
    rows = t.float().reshape(shape[0], -1)
    scale = rows.abs().amax(1, keepdim=True).clamp_min(1e-12) / 127
    return {"int8": (rows / scale).round().clamp(-127, 127).to(torch.int8), "scale": scale, "shape": shape}


def _decode(v) -> torch.Tensor:
    """A stored tensor back as a tensor (float32 where it was quantised)."""
    if isinstance(v, torch.Tensor):
        return v
    if "int8" in v:
        return (v["int8"].float() * v["scale"]).reshape(v["shape"])
    levels = _unpack_bits(v["packed"], PACKED_BITS).float().reshape(-1, GROUP) - PACKED_TOP
    return (levels * v["scale"].float()).reshape(v["shape"])


def _compact(state_dict: Mapping[str, torch.Tensor]) -> dict:
    return {k: _encode(v) for k, v in state_dict.items()}


def _expanded(state_dict: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    return {k: _decode(v) for k, v in state_dict.items()}


def _history(history: dict) -> dict:
    """The history with its snapshots (images in [-1, 1]) stored as 8-bit levels: enough to look at."""
    to_uint8 = lambda x: ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)  # noqa: E731
    return {**history, "snapshots": [[s, to_uint8(x)] for s, x in history["snapshots"]]}


def _unpacked_history(history: dict) -> dict:
    return {**history, "snapshots": [[s, x.float() / 127.5 - 1] for s, x in history["snapshots"]]}


def _kept(checkpoint: Path, steps: int, kept: tuple[float, ...]) -> dict[int, dict]:
    """The generators ``dcgan.keep_generators`` saved beside ``checkpoint`` at the fractions ``kept`` of the
    run (the end of the run is the shipped G_ema itself, so it is not stored twice)."""
    found = {int(p.stem.rsplit("-", 1)[1]): p for p in checkpoint.parent.glob(f"{checkpoint.stem}-G_ema-*.pt")}
    wanted = sorted({round(steps * f) for f in kept} - {steps})
    missing = [s for s in wanted if s not in found]
    if missing:
        raise ValueError(f"{checkpoint}: no kept generators at steps {missing} (kept: {sorted(found)})")
    return {s: _compact(torch.load(found[s], map_location="cpu", weights_only=True)) for s in wanted}


def finished_run(blob: dict) -> bool:
    """Whether a loaded checkpoint is a finished run with a recipe (what ``pack`` ships): not a kept
    generator's file, not a run stopped before its recipe's steps, not a run without a recipe."""
    recipe = (blob.get("meta") or {}).get("recipe")
    return "step" in blob and bool(recipe) and blob["step"] == recipe["steps"]


def with_column(history: dict, key: str, values: Mapping[int, float]) -> dict:
    """A history (``train.History.state_dict()``) with one more column, ``values`` by step at its logged steps
    and NaN elsewhere: e.g. the FID of the generators kept along a run, measured after it."""
    missing = sorted(set(values) - set(history["steps"]))
    if missing:
        raise ValueError(f"steps {missing} were not logged (logged: {history['steps'][:3]} ...)")
    column = [float(values.get(step, float("nan"))) for step in history["steps"]]
    return {**history, "values": {**history["values"], key: column}}


def pack(checkpoint: str | os.PathLike, directory=None, kept: tuple[float, ...] = (),
         columns: Mapping[str, Mapping[int, float]] | None = None, **about) -> tuple[str, dict]:
    """Write the compact shipped file of a finished local checkpoint (one ``train.fit_schedule`` wrote
    with a recipe) under ``directory``; return (its key, its manifest entry). ``kept``: at which fractions
    of the run the generators kept along it (``dcgan.keep_generators``) are shipped too, e.g. (0.1, 0.3);
    the run's end comes with them. ``columns``: history columns measured after training, by step
    (``with_column``). ``about``: e.g. minutes, device, stored in the entry."""
    checkpoint = Path(checkpoint)
    full = torch.load(checkpoint, map_location="cpu", weights_only=True)
    meta = full.get("meta") or {}
    if not finished_run(full):
        raise ValueError(f"{checkpoint} is not a finished run with a recipe (step {full.get('step')}, meta {meta})")
    names = ["G_ema"] if full["G_ema"] is not None else ["G"]
    models = {name: _compact(full[name]) for name in names + ["D"]}
    key = run_key(checkpoint)
    out = _dir(directory) / f"{key}.pt"
    out.parent.mkdir(parents=True, exist_ok=True)
    extras = {k: v.half() if v.is_floating_point() else v for k, v in full["extras"].items() if isinstance(v, torch.Tensor)}
    kept_models = _kept(checkpoint, full["step"], kept)
    history = full["history"]
    for name, values in (columns or {}).items():
        history = with_column(history, name, values)
    torch.save({"step": full["step"], "models": models, "history": _history(history), "extras": extras,
                "kept": kept_models}, out)
    entry = {"file": f"{key}.pt", "sha256": sha256(out), "bytes": out.stat().st_size, "recipe": meta["recipe"],
             "fingerprint": {name: fingerprint(full[name]) for name in models},
             "kept": sorted(kept_models) + [full["step"]] if kept else [], **about}
    return key, entry
