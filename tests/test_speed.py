import contextlib
import warnings

import pytest
import torch
from torch import nn

from ganlib import speed


def test_autocast_is_bf16_when_enabled_and_a_no_op_otherwise():
    x = torch.randn(4, 8)
    lin = nn.Linear(8, 8)
    with speed.autocast(torch.device("cpu"), enabled=True):
        assert lin(x).dtype == torch.bfloat16
    assert isinstance(speed.autocast("cpu", enabled=False), contextlib.nullcontext)
    with speed.autocast("cpu", enabled=False):
        assert lin(x).dtype == torch.float32


def test_channels_last_leaves_cpu_tensors_and_modules_alone():
    x, conv = torch.randn(2, 3, 4, 4), nn.Conv2d(3, 3, 1)
    assert speed.channels_last(x) is x and speed.channels_last(conv) is conv


class _Refuses(nn.Module):
    """A module whose compilation fails, as on a machine without a compiler toolchain."""

    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm1d(3)

    def forward(self, x):
        return self.bn(x)


def test_maybe_compile_falls_back_cleanly(monkeypatch):
    def broken(module, **kwargs):
        raise RuntimeError("no C++ compiler found")

    monkeypatch.setattr(torch, "compile", broken)
    m = _Refuses()
    before = m.bn.running_mean.clone()
    with pytest.warns(UserWarning, match="continuing in eager mode"):
        out = speed.maybe_compile(m, torch.randn(8, 3) + 5)
    assert out is m
    assert torch.equal(m.bn.running_mean, before)  # the probe left no trace


def test_maybe_compile_probe_leaves_no_trace(monkeypatch):
    monkeypatch.setattr(torch, "compile", lambda module, **kw: module)  # "compiles" instantly
    m = _Refuses()
    before = [b.clone() for b in m.buffers()]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert speed.maybe_compile(m, torch.randn(8, 3) + 5) is m
    assert all(torch.equal(a, b) for a, b in zip(before, m.buffers()))
    assert all(p.grad is None for p in m.parameters())
