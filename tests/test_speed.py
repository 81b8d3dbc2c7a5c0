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


def test_channels_last_only_where_bf16_is_native(monkeypatch):
    x, conv = torch.randn(2, 3, 4, 4), nn.Conv2d(3, 3, 1)
    monkeypatch.setattr(speed, "native_bf16", lambda device: False)  # an AVX2 laptop
    assert speed.channels_last(x) is x and speed.channels_last(conv) is conv
    monkeypatch.setattr(speed, "native_bf16", lambda device: torch.device(device).type == "cpu")
    assert speed.channels_last(x).is_contiguous(memory_format=torch.channels_last)
    assert not speed.channels_last(x).is_contiguous()
    assert speed.channels_last(conv).weight.is_contiguous(memory_format=torch.channels_last)
    assert speed.channels_last(nn.ReLU()) is not None  # a module without parameters is fine


def test_native_bf16_follows_the_cpu_probes(monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert not speed.native_bf16("cpu")
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    assert speed.native_bf16("cpu")
    assert not speed.native_bf16("meta")  # and so not on mps or any other device


def test_use_bf16_defaults_to_native_and_obeys_the_environment(monkeypatch):
    monkeypatch.delenv(speed.BF16_VAR, raising=False)
    monkeypatch.setattr(speed, "native_bf16", lambda device: False)
    assert not speed.use_bf16("cpu")
    monkeypatch.setattr(speed, "native_bf16", lambda device: True)
    assert speed.use_bf16("cpu")
    monkeypatch.setenv(speed.BF16_VAR, "0")
    assert not speed.use_bf16("cpu")
    monkeypatch.setattr(speed, "native_bf16", lambda device: False)
    monkeypatch.setenv(speed.BF16_VAR, "1")
    assert speed.use_bf16("cpu") and not speed.use_bf16("meta")  # forced, where autocast exists
    monkeypatch.setenv(speed.BF16_VAR, "yes")
    with pytest.raises(ValueError, match="GANLIB_BF16 must be 0 or 1"):
        speed.use_bf16("cpu")


def test_the_bf16_cpu_step_matches_fp32_closely():
    """The path a native-bf16 CPU takes (autocast + channels-last) computes the same DCGAN forward as fp32,
    to bf16's precision: a layout or dtype bug would show up as an O(1) difference."""
    from ganlib import dcgan
    torch.manual_seed(0)
    G, D = dcgan.Generator((1, 28, 28), 16, 16).eval(), dcgan.Discriminator((1, 28, 28), 16).eval()
    z = torch.randn(8, 16)
    ref = D(G(z))
    G_cl, D_cl = (m.to(memory_format=torch.channels_last) for m in (G, D))
    with speed.autocast("cpu", True):
        out = D_cl(G_cl(z))
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), ref, atol=0.05 * ref.abs().max().item(), rtol=0.05)


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
