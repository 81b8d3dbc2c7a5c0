"""Speed habits for CUDA (COURSE_DESIGN section 8), each harmless where it does not apply.

- ``autocast``: bf16 mixed precision for forward passes. Build it once per run and reuse it (the
  steps in ``ganlib.train`` do). Losses are taken in fp32; **penalties never run under it**: a
  gradient penalty or R1 differentiates twice, which bf16 rounds away and ``torch.compile`` cannot
  trace, so ``ganlib.losses``' penalties switch autocast off and call the eager module themselves;
- ``tune_cuda``: cuDNN autotuning and TF32 matrix products;
- ``channels_last``: the memory layout tensor cores prefer for convolutions;
- ``maybe_compile``: ``torch.compile`` as an opt-in that falls back to eager if compiling fails.

Fused Adam is ``train.adam`` (``fused=True`` on CUDA and CPU), which every model's ``optimizers`` calls.
"""

from __future__ import annotations

import contextlib
import warnings

import torch
from torch import nn


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
    """A module or 4-D tensor in channels-last layout on CUDA; returned unchanged elsewhere."""
    on_cuda = x.is_cuda if isinstance(x, torch.Tensor) else any(p.is_cuda for p in x.parameters())
    return x.to(memory_format=torch.channels_last) if on_cuda else x


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
