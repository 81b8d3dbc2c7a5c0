import contextlib
import warnings

import pytest
import torch
from torch import nn

from ganlib import speed


def test_autocast_follows_amp_and_is_a_no_op_for_fp32():
    x = torch.randn(4, 8)
    lin = nn.Linear(8, 8)
    for amp, dtype in ((True, torch.bfloat16), ("bf16", torch.bfloat16), ("fp16", torch.float16)):
        with speed.autocast(torch.device("cpu"), amp):
            assert lin(x).dtype == dtype, amp
    for amp in (False, "fp32", None):
        assert isinstance(speed.autocast("cpu", amp), contextlib.nullcontext)
        with speed.autocast("cpu", amp):
            assert lin(x).dtype == torch.float32
    with pytest.raises(ValueError, match="amp must be one of"):
        speed.autocast("cpu", "fp8")


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


def _a_gpu(monkeypatch, capability):
    """Pretend a CUDA GPU of compute capability ``capability`` (major, minor) is present."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # what torch says even on a T4


def _no_env(monkeypatch):
    monkeypatch.delenv(speed.PRECISION_VAR, raising=False)
    monkeypatch.delenv(speed.BF16_VAR, raising=False)


@pytest.mark.parametrize("capability, gpu", [((7, 0), "fp32"), ((7, 5), "fp32"), ((8, 0), "bf16"), ((8, 9), "bf16"),
                                             ((9, 0), "bf16")])
def test_the_precision_policy_by_gpu(monkeypatch, capability, gpu):
    """V100 (7.0) and T4 (7.5) emulate bf16, although torch.cuda.is_bf16_supported() says True there: fp32.
    A100 (8.0), L4 (8.9), H100 (9.0): bf16. fp16 only when asked for."""
    _no_env(monkeypatch)
    _a_gpu(monkeypatch, capability)
    assert speed.native_bf16("cuda") == (gpu == "bf16")
    assert speed.precision("cuda") == speed.precision("cuda", cpu_bf16=False) == gpu
    monkeypatch.setenv(speed.PRECISION_VAR, "fp16")
    assert speed.precision("cuda") == "fp16"
    monkeypatch.setenv(speed.PRECISION_VAR, "fp32")
    assert speed.precision("cuda") == "fp32"


def test_the_precision_policy_without_cuda(monkeypatch):
    _no_env(monkeypatch)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert not speed.native_bf16("cuda")
    for native in (False, True):  # an AVX2 laptop, then an AVX-512 BF16 / AMX machine
        monkeypatch.setattr(speed, "native_bf16", lambda device, native=native: native and torch.device(device).type == "cpu")
        assert speed.precision("cpu") == ("bf16" if native else "fp32")
        assert speed.precision("cpu", cpu_bf16=False) == "fp32"  # a lesson measured in fp32 on CPUs
        assert speed.use_bf16("cpu") == native
        assert speed.precision("mps") == speed.precision("meta") == "fp32"


def test_the_environment_overrides_the_policy_on_cuda_and_cpus(monkeypatch):
    _no_env(monkeypatch)
    monkeypatch.setattr(speed, "native_bf16", lambda device: False)
    monkeypatch.setenv(speed.BF16_VAR, "1")  # the older switch
    assert speed.precision("cpu") == speed.precision("cpu", cpu_bf16=False) == "bf16" and speed.use_bf16("cpu")
    monkeypatch.setenv(speed.PRECISION_VAR, "fp16")  # the new one wins
    assert speed.precision("cpu") == "fp16" and speed.precision("mps") == "fp32"
    monkeypatch.setattr(speed, "native_bf16", lambda device: True)
    monkeypatch.setenv(speed.PRECISION_VAR, "FP32")
    assert speed.precision("cpu") == "fp32"
    monkeypatch.delenv(speed.PRECISION_VAR)
    monkeypatch.setenv(speed.BF16_VAR, "0")
    assert speed.precision("cpu") == "fp32"
    monkeypatch.setenv(speed.BF16_VAR, "yes")
    with pytest.raises(ValueError, match="GANLIB_BF16 must be 0 or 1"):
        speed.precision("cpu")
    monkeypatch.delenv(speed.BF16_VAR)
    monkeypatch.setenv(speed.PRECISION_VAR, "half")
    with pytest.raises(ValueError, match="GANLIB_PRECISION must be one of fp32, bf16, fp16"):
        speed.precision("cpu")


def test_tune_cuda_turns_tf32_off(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark
    try:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        speed.tune_cuda()
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        assert torch.backends.cudnn.benchmark
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark = saved


def test_fp16_runs_through_a_grad_scaler_that_skips_overflowing_steps():
    """GANLIB_PRECISION=fp16's path, on the CPU: forward passes in fp16, each optimiser with its own scaler;
    the scaled loss trains D, and a step whose gradients overflow is skipped with the scale halved."""
    from ganlib import dcgan, train

    torch.manual_seed(0)
    G, D = dcgan.Generator((1, 8, 8), 8, 4), dcgan.Discriminator((1, 8, 8), 4)
    opt_G, opt_D = dcgan.optimizers(G, D)
    x = torch.rand(64, 1, 8, 8) * 2 - 1
    d_step, g_step = train.gan_steps(G, D, opt_G, opt_D, lambda n: x[:n], 16, amp="fp16")
    assert isinstance(opt_D.grad_scaler, torch.amp.GradScaler) and opt_G.grad_scaler is not opt_D.grad_scaler
    before = [p.detach().clone() for p in D.parameters()]
    logs = d_step()
    g_step()
    assert torch.isfinite(logs["loss_D"]) and any(not torch.equal(a, b) for a, b in zip(before, D.parameters()))
    scale = opt_D.grad_scaler.get_scale()
    frozen = [p.detach().clone() for p in D.parameters()]
    train.update(opt_D, D(x[:4]).float().sum() * float("inf"))  # gradients overflow: no step, smaller scale
    assert all(torch.equal(a, b) for a, b in zip(frozen, D.parameters()))
    assert opt_D.grad_scaler.get_scale() < scale


def test_fp32_and_bf16_runs_have_no_scaler():
    from ganlib import dcgan, train

    for amp in ("fp32", "bf16", True, False):
        G, D = dcgan.Generator((1, 8, 8), 8, 4), dcgan.Discriminator((1, 8, 8), 4)
        opt_G, opt_D = dcgan.optimizers(G, D)
        train.gan_steps(G, D, opt_G, opt_D, lambda n: torch.zeros(n, 1, 8, 8), 4, amp=amp)
        assert not hasattr(opt_G, "grad_scaler") and not hasattr(opt_D, "grad_scaler")


def test_the_bf16_cpu_step_matches_fp32_closely():
    """The path a native-bf16 CPU takes (autocast + channels-last) computes the same DCGAN forward as fp32,
    to bf16's precision: a layout or dtype bug would show up as an O(1) difference."""
    from ganlib import dcgan
    torch.manual_seed(0)
    G, D = dcgan.Generator((1, 28, 28), 16, 16).eval(), dcgan.Discriminator((1, 28, 28), 16).eval()
    z = torch.randn(8, 16)
    ref = D(G(z))
    G_cl, D_cl = (m.to(memory_format=torch.channels_last) for m in (G, D))
    with speed.autocast("cpu", "bf16"):
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
