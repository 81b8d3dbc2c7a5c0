"""Speed habits (COURSE_DESIGN section 8), each harmless where it does not apply, and the course's one
precision policy.

**Precision** (``precision``): every lesson and deck asks ``speed.precision(device)`` which arithmetic its
forward passes use, and passes the answer as ``amp`` to the training steps:

=============================================  =========  ==============================================
device                                         default    why
=============================================  =========  ==============================================
CUDA, compute capability >= 8.0 (A100, H100,   ``bf16``   bf16 tensor cores; bf16 keeps fp32's range,
L4, RTX 30xx/40xx)                                        so no loss scaling
CUDA, compute capability 7.x (T4, V100)        ``fp32``   bf16 is only emulated there (cuDNN has no bf16
                                                          convolutions); fp16 with a ``GradScaler`` is an
                                                          opt-in, ``GANLIB_PRECISION=fp16``, not yet
                                                          measured on such a GPU
CPU with AVX-512 BF16 or AMX                   ``bf16``   lesson 03's step about 2x faster on two cores,
                                                          FID and class check unchanged (two seeds:
                                                          docs/results/cpu-2026-12-speed.md); fp32 for a
                                                          lesson that asks ``cpu_bf16=False``
other CPUs, Apple ``mps``, anything else       ``fp32``   emulated bf16 is slower than fp32; mps never
                                                          measured here
=============================================  =========  ==============================================

``GANLIB_PRECISION`` (``fp32``, ``bf16`` or ``fp16``) overrides the default on CUDA and CPUs in every lesson
(the older ``GANLIB_BF16=0``/``1`` still means fp32/bf16). Whatever the choice, **penalties run in fp32**:
a gradient penalty, R1 or path length differentiates twice, which half precision rounds away, so
``ganlib.losses`` switches autocast off around them; and ``tune_cuda`` (which ``profiles.setup`` calls on
CUDA) turns TF32 off, as NVlabs' StyleGAN2 does by default (``allow_tf32=False``), so fp32 stays fp32 on
Ampere and later GPUs too (their main passes get tensor cores from bf16 instead).

The other habits:

- ``autocast`` / ``amp_context``: the autocast context of a run, built once and reused (the steps in
  ``ganlib.train`` do). Under fp16 ``amp_context`` also gives each optimiser a ``torch.amp.GradScaler``,
  which ``train.update`` then uses (the scaler's state is not checkpointed: a resumed fp16 run starts
  its scale afresh, which costs a few skipped steps);
- ``channels_last``: the memory layout tensor cores and oneDNN's CPU kernels prefer for convolutions
  (applied where bf16 is native, where it was measured to pay or tensor cores want it);
- ``maybe_compile``: ``torch.compile`` as an opt-in that falls back to eager if compiling fails.

Fused Adam is ``train.adam`` (``fused=True`` on CUDA and CPU), which every model's ``optimizers`` calls.
"""

from __future__ import annotations

import contextlib
import os
import warnings

import torch
from torch import nn

PRECISION_VAR = "GANLIB_PRECISION"  # "fp32" | "bf16" | "fp16": overrides the policy on CUDA and CPUs
BF16_VAR = "GANLIB_BF16"  # the older switch: "0" means fp32, "1" bf16 (GANLIB_PRECISION wins)
PRECISIONS = ("fp32", "bf16", "fp16")
BF16_CAPABILITY = (8, 0)  # Ampere: the first CUDA GPUs with bf16 tensor cores


def native_bf16(device) -> bool:
    """Whether ``device`` executes bf16 matrix products in hardware: a CUDA GPU of compute capability
    >= 8.0, or a CPU with AVX-512 BF16 or AMX (e.g. AMD Zen 4+, Intel Cooper Lake and Sapphire Rapids+).

    Not ``torch.cuda.is_bf16_supported()``: it also says True on a T4 or V100 (sm 7.x), where bf16 runs
    emulated and cuDNN has no bf16 convolutions, so every conv would take a slow fallback kernel."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.get_device_capability(device) >= BF16_CAPABILITY
    if device.type == "cpu":
        probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # torch >= 2.1
        return any(getattr(torch.cpu, name, lambda: False)() for name in probes)
    return False


def _forced() -> str | None:
    """The precision the environment asks for, or None."""
    chosen = os.environ.get(PRECISION_VAR, "").strip().lower()
    if chosen and chosen not in PRECISIONS:
        raise ValueError(f"{PRECISION_VAR} must be one of {', '.join(PRECISIONS)}, got {chosen!r}")
    old = os.environ.get(BF16_VAR, "").strip()
    if old not in ("", "0", "1"):
        raise ValueError(f"{BF16_VAR} must be 0 or 1, got {old!r}")
    return chosen or {"0": "fp32", "1": "bf16"}.get(old)


def precision(device, cpu_bf16: bool = True) -> str:
    """The arithmetic of a run's forward passes on ``device``: ``"bf16"``, ``"fp16"`` or ``"fp32"`` (the
    table in this module's docstring). ``cpu_bf16=False``: fp32 on every CPU, for a lesson whose claims
    were measured in fp32 and not re-checked under bf16 there. ``GANLIB_PRECISION`` overrides both on
    CUDA and CPUs; other devices always get fp32."""
    device = torch.device(device)
    if device.type not in ("cuda", "cpu"):
        return "fp32"
    forced = _forced()
    if forced:
        return forced
    if device.type == "cpu" and not cpu_bf16:
        return "fp32"
    return "bf16" if native_bf16(device) else "fp32"


def use_bf16(device) -> bool:
    """Whether ``precision(device)`` is bf16 (benchmarks and studies ask it this way)."""
    return precision(device) == "bf16"


AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def _name(amp) -> str:
    """A run's ``amp`` as a precision name: True is bf16, False or None fp32 (the course's older booleans)."""
    name = {True: "bf16", False: "fp32", None: "fp32"}.get(amp, amp) if not isinstance(amp, str) else amp
    if name not in PRECISIONS:
        raise ValueError(f"amp must be one of {', '.join(PRECISIONS)} (or a bool), got {amp!r}")
    return name


def autocast(device, amp=True):
    """The autocast context of ``amp`` (``"bf16"``/True, ``"fp16"``; ``"fp32"``/False: a no-op) on a CUDA
    or CPU ``device``; a no-op on any other device."""
    device, name = torch.device(device), _name(amp)
    if name == "fp32" or device.type not in ("cuda", "cpu"):
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=AUTOCAST_DTYPES[name])


def amp_context(device, amp, *optimizers):
    """``autocast(device, amp)``; under fp16 each optimiser also gets a ``GradScaler`` (``train.update`` scales
    its loss, unscales and skips a step whose gradients overflowed): fp16's range is too short for raw
    gradients. The steps of every model family build their context with it."""
    device = torch.device(device)
    if _name(amp) == "fp16" and device.type in ("cuda", "cpu"):
        for opt in optimizers:
            opt.grad_scaler = torch.amp.GradScaler(device.type)
    return autocast(device, amp)


def tune_cuda() -> None:
    """On CUDA: cuDNN autotuning on, and TF32 off for matrix products and convolutions, so that what runs
    in fp32 (the penalties, and every pass of an fp32 run) is fp32, as NVlabs' StyleGAN2 does by default
    (``allow_tf32=False``). No effect without CUDA. ``profiles.setup`` calls it."""
    if torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False


def channels_last(x):
    """A module or 4-D tensor in channels-last layout where bf16 is native (``native_bf16``: CUDA sm >= 8.0,
    CPUs with AVX-512 BF16 or AMX); else unchanged.

    On this course's 2-core AMD EPYC (AVX-512 BF16) it made lesson 03's DCGAN step 1.15x faster in fp32
    and 1.06x faster under bf16 autocast; on other CPUs it was never measured, so it is not applied."""
    if isinstance(x, torch.Tensor):
        device = x.device
    else:
        first = next(iter(x.parameters()), None)
        device = torch.device("meta") if first is None else first.device  # no parameters: nothing to lay out
    return x.to(memory_format=torch.channels_last) if native_bf16(device) else x


def maybe_compile(module: nn.Module, example: torch.Tensor) -> nn.Module:
    """``torch.compile(module)`` if it compiles and runs forward and backward on ``example``; else ``module``.

    The probe leaves no trace: gradients are cleared and buffers (BatchNorm statistics) restored.
    """
    buffers = [b.clone() for b in module.buffers()]
    try:
        compiled = torch.compile(module)
        compiled(example).float().sum().backward()
    except Exception as err:  # no compiler toolchain, unsupported op, ...
        warnings.warn(f"torch.compile failed ({type(err).__name__}: {err}); continuing in eager mode", stacklevel=2)
        compiled = module
    module.zero_grad(set_to_none=True)
    with torch.no_grad():
        for b, saved in zip(module.buffers(), buffers):
            b.copy_(saved)
    return compiled
