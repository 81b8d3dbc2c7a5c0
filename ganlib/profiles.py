"""Run profiles, seeding and device choice.

Every lesson runs in one of three profiles:

- ``smoke``: proves every code path runs, in seconds on two CPU cores; results are meaningless.
- ``cpu``:   a laptop or free Colab without GPU; minutes, results recognisably right.
- ``gpu``:   one modern GPU; at most ten minutes, results at the lesson's quality target.

``"auto"`` resolves to the environment variable ``GANLIB_PROFILE`` when it is set (that is how
``make test`` runs every notebook in ``smoke``), else ``gpu`` on a modern GPU (CUDA compute capability
>= 8.0: A100, L4, H100, RTX 30xx/40xx, where the gpu recipes' ten minutes and bf16 apply), else ``cpu``.
On an older GPU (Colab's free T4, a V100) ``auto`` picks ``cpu``: the cpu recipe, run on that GPU, with
the course's shipped weights, in minutes; the gpu recipe there would run in fp32 for up to an hour and
was never measured on such a GPU (``profile="gpu"`` still forces it).
The per-profile numbers themselves live in each notebook, where students can see them.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

from . import speed

PROFILES = ("smoke", "cpu", "gpu")
ENV_VAR = "GANLIB_PROFILE"
DEVICE_VAR = "GANLIB_DEVICE"  # overrides device "auto", e.g. cuda: how `make test-gpu` runs smoke on the GPU
CHECK_VAR = "GANLIB_DEVICE_CHECK"  # "1" without CUDA: run on ganlib.devicecheck's stand-in GPU (`make test` sets it)


def _check(name: str) -> str:
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; valid profiles are {', '.join(PROFILES)} or 'auto'")
    return name


def resolve(profile: str = "auto") -> str:
    """The concrete profile for ``profile``: an explicit name wins, ``"auto"`` consults the environment."""
    if profile != "auto":
        return _check(profile)
    env = os.environ.get(ENV_VAR, "").strip()
    if env and env != "auto":
        return _check(env)
    return "gpu" if modern_gpu() else "cpu"


def modern_gpu() -> bool:
    """Whether CUDA is present with a GPU the gpu profile is sized for: compute capability >= 8.0, where bf16
    runs natively (``speed.native_bf16``)."""
    return torch.cuda.is_available() and speed.native_bf16("cuda")


def _older_gpu_note() -> str:
    name, (major, minor) = torch.cuda.get_device_name(), torch.cuda.get_device_capability()
    return (f"\n  (auto: {name} has compute capability {major}.{minor}, below 8.0, so the cpu profile runs on it: the cpu "
            "recipe with the course's shipped weights; profile=\"gpu\" forces the gpu recipe, fp32 there, up to an hour)")


def pick_device(preference: str = "auto") -> torch.device:
    """``cuda`` if present, else Apple's ``mps``, else ``cpu``; or exactly the device asked for."""
    if preference != "auto":
        return torch.device(preference)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) so a run can be repeated."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


def draw(sampler, *args, device=None, generator=None, **kwargs) -> torch.Tensor:
    """``sampler(*args, **kwargs)`` (``torch.randn``, ``torch.rand``, ``torch.randint``, ...) drawn where
    ``generator`` lives, then moved to ``device``. A seeded CPU generator then gives the same numbers on
    every device, and a generator never draws for a device it does not live on (CUDA refuses that:
    "Expected a 'cuda' device type for generator"). Without a generator it draws on ``device`` directly."""
    where = device if generator is None else generator.device
    x = sampler(*args, device=where, generator=generator, **kwargs)
    return x if device is None else x.to(device)


def setup(profile: str = "auto", seed: int = 0, device: str = "auto") -> tuple[str, torch.device]:
    """Resolve the profile, seed everything and choose the device; print one line saying so.

    The ``smoke`` profile runs on the CPU: it is a test of the code paths, and CPU keeps it identical
    on every machine. ``GANLIB_DEVICE`` (e.g. ``cuda``) overrides ``device="auto"`` in every profile, so
    ``make test-gpu`` exercises every CUDA path in the smoke profile too. On CUDA it also calls
    ``speed.tune_cuda`` (cuDNN autotuning; TF32 off, so fp32 penalties are fp32).
    """
    asked, profile = profile, resolve(profile)
    if os.environ.get(CHECK_VAR, "").strip() == "1" and not torch.cuda.is_available():
        from . import devicecheck

        devicecheck.enable()  # `make test`: the lesson's device is a stand-in GPU on the CPU (ganlib.devicecheck)
    seed_everything(seed)
    if device == "auto":
        device = os.environ.get(DEVICE_VAR, "").strip() or "auto"
    dev = torch.device("cpu") if profile == "smoke" and device == "auto" else pick_device(device)
    if dev.type == "cuda":
        speed.tune_cuda()
    note = "  (smoke: results are meaningless)" if profile == "smoke" else ""
    if asked == "auto" and profile == "cpu" and dev.type == "cuda" and not os.environ.get(ENV_VAR, "").strip():
        note += _older_gpu_note()
    print(f"profile={profile}  device={dev}  seed={seed}  torch={torch.__version__}{note}")
    return profile, dev


def choose(presets: dict[str, dict], profile: str, **overrides) -> dict:
    """The preset of ``profile`` with every override that is not ``None`` applied.

    Lessons keep a dict of per-profile defaults in plain sight and let papermill parameters
    (which default to ``None``) override single entries.
    """
    if profile not in presets:
        raise ValueError(f"no preset for profile {profile!r}; presets exist for {', '.join(presets)}")
    unknown = set(overrides) - set(presets[profile])
    if unknown:
        raise ValueError(f"unknown setting(s) {', '.join(sorted(unknown))}; known: {', '.join(presets[profile])}")
    return {**presets[profile], **{k: v for k, v in overrides.items() if v is not None}}


def checkpoint_dir(lesson: str) -> Path:
    """Where a lesson keeps its checkpoints: ``$GANLIB_CHECKPOINTS/<lesson>``, else the course's
    ``checkpoints/<lesson>`` (git-ignored), else ``./checkpoints/<lesson>``. Created if missing."""
    if os.environ.get("GANLIB_CHECKPOINTS"):
        root = Path(os.environ["GANLIB_CHECKPOINTS"])
    else:
        course = Path(__file__).resolve().parents[1]
        root = course / "checkpoints" if (course / "notebooks").is_dir() else Path("checkpoints")
    path = root / lesson
    path.mkdir(parents=True, exist_ok=True)
    return path
