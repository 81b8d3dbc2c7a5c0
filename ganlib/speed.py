"""Speed habits (COURSE_DESIGN section 8), each harmless where it does not apply.

- ``use_bf16``: whether a run should use bf16 autocast on its device: on CUDA, and on CPUs that
  execute bf16 natively (AVX-512 BF16 or AMX, ``native_bf16``), where lesson 03's DCGAN step is
  about 2x faster on two cores (1.7x at 64 x 64) and its FID and class check are unchanged
  (two seeds each: docs/results/cpu-2026-12-speed.md). Elsewhere fp32: a CPU
  without those instructions emulates bf16 (slower than fp32), and on Apple's ``mps`` the course
  stays in fp32 (bf16 there depends on the macOS version and was never measured here).
  ``GANLIB_BF16=0`` (or ``1``) overrides the choice in every lesson that asks it;
- ``autocast``: bf16 mixed precision for forward passes. Build it once per run and reuse it (the
  steps in ``ganlib.train`` do). Losses are taken in fp32; **penalties never run under it**: a
  gradient penalty or R1 differentiates twice, which bf16 rounds away and ``torch.compile`` cannot
  trace, so ``ganlib.losses``' penalties switch autocast off and call the eager module themselves;
- ``tune_cuda``: cuDNN autotuning and TF32 matrix products;
- ``channels_last``: the memory layout tensor cores and oneDNN's CPU kernels prefer for convolutions
  (applied on CUDA and on CPUs with native bf16, where it was measured to pay);
- ``maybe_compile``: ``torch.compile`` as an opt-in that falls back to eager if compiling fails.

Fused Adam is ``train.adam`` (``fused=True`` on CUDA and CPU), which every model's ``optimizers`` calls.
"""

from __future__ import annotations

import contextlib
import os
import warnings

import torch
from torch import nn


BF16_VAR = "GANLIB_BF16"  # "0": fp32 everywhere; "1": bf16 autocast on any CUDA or CPU device


def native_bf16(device) -> bool:
    """Whether ``device`` executes bf16 matrix products in hardware: a CUDA GPU that supports bf16, or a
    CPU with AVX-512 BF16 or AMX (e.g. AMD Zen 4+, Intel Cooper Lake and Sapphire Rapids+)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # torch >= 2.1
        return any(getattr(torch.cpu, name, lambda: False)() for name in probes)
    return False


def use_bf16(device) -> bool:
    """The course's default for a run's ``amp``: bf16 autocast where the device runs bf16 natively
    (``native_bf16``), fp32 elsewhere; the environment variable ``GANLIB_BF16`` ("0" or "1") overrides."""
    device = torch.device(device)
    forced = os.environ.get(BF16_VAR, "").strip()
    if forced not in ("", "0", "1"):
        raise ValueError(f"{BF16_VAR} must be 0 or 1, got {forced!r}")
    if forced:
        return forced == "1" and device.type in ("cuda", "cpu")
    return native_bf16(device)


def autocast(device: torch.device, enabled: bool = True):
    """A bf16 autocast context on ``device`` if ``enabled`` (CUDA, or CPU to test the path), else a no-op."""
    device = torch.device(device)
    if not enabled or device.type not in ("cuda", "cpu"):
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def tune_cuda() -> None:
    """Let cuDNN pick the fastest convolution kernels and allow TF32 matmuls (no effect without CUDA)."""
    if torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True
        torch.set_float32_matmul_precision("high")


def channels_last(x):
    """A module or 4-D tensor in channels-last layout on CUDA or a CPU with native bf16; else unchanged.

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
