import random

import numpy as np
import pytest
import torch

from ganlib import profiles


def test_explicit_profiles_resolve_to_themselves(monkeypatch):
    monkeypatch.setenv("GANLIB_PROFILE", "gpu")  # the environment only overrides "auto"
    for name in ("smoke", "cpu", "gpu"):
        assert profiles.resolve(name) == name


def test_unknown_profile_lists_the_valid_ones():
    with pytest.raises(ValueError, match="smoke, cpu, gpu"):
        profiles.resolve("fast")


def test_auto_follows_the_environment_variable(monkeypatch):
    monkeypatch.setenv("GANLIB_PROFILE", "smoke")
    assert profiles.resolve("auto") == "smoke"
    monkeypatch.setenv("GANLIB_PROFILE", "turbo")
    with pytest.raises(ValueError, match="turbo"):
        profiles.resolve("auto")


@pytest.mark.parametrize("capability, profile", [((7, 0), "cpu"), ((7, 5), "cpu"), ((8, 0), "gpu"), ((9, 0), "gpu")])
def test_auto_picks_gpu_on_a_modern_gpu_only(monkeypatch, capability, profile):
    """A free Colab T4 (7.5) or a V100 (7.0) gets the cpu recipe on the GPU, not an hour-long gpu run."""
    monkeypatch.delenv("GANLIB_PROFILE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert profiles.resolve() == profile
    assert profiles.resolve("gpu") == "gpu"  # asked for by name: always
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert profiles.resolve() == "cpu"


def test_setup_on_an_older_gpu_says_why_it_picked_cpu(monkeypatch, capsys):
    monkeypatch.delenv("GANLIB_PROFILE", raising=False)
    monkeypatch.delenv(profiles.DEVICE_VAR, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")
    tuned = []
    monkeypatch.setattr(profiles.speed, "tune_cuda", lambda: tuned.append(True))
    monkeypatch.setattr(torch.cuda, "manual_seed_all", lambda seed: None)
    profile, device = profiles.setup("auto", seed=0)
    out = capsys.readouterr().out
    assert (profile, device.type) == ("cpu", "cuda") and tuned == [True]
    assert "Tesla T4 has compute capability 7.5" in out and "shipped weights" in out


def test_seed_everything_repeats_every_generator():
    def draw():
        return torch.randn(3), np.random.rand(3), random.random()

    profiles.seed_everything(123)
    a = draw()
    profiles.seed_everything(123)
    b = draw()
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]
    profiles.seed_everything(124)
    assert not torch.equal(draw()[0], a[0])


def test_smoke_runs_on_the_cpu(capsys):
    profile, device = profiles.setup("smoke", seed=1)
    assert (profile, device.type) == ("smoke", "cpu")
    assert "meaningless" in capsys.readouterr().out


def test_choose_applies_only_given_overrides():
    presets = {"smoke": {"steps": 10, "lr": 1e-3}, "cpu": {"steps": 1000, "lr": 1e-3}}
    assert profiles.choose(presets, "cpu", steps=None, lr=2e-4) == {"steps": 1000, "lr": 2e-4}
    with pytest.raises(ValueError, match="unknown setting"):
        profiles.choose(presets, "cpu", stepz=5)
    with pytest.raises(ValueError, match="no preset for profile 'gpu'"):
        profiles.choose(presets, "gpu")


def test_checkpoint_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("GANLIB_CHECKPOINTS", str(tmp_path))
    path = profiles.checkpoint_dir("03_dcgan")
    assert path == tmp_path / "03_dcgan" and path.is_dir()


def test_the_device_variable_overrides_auto_even_in_smoke(monkeypatch, capsys):
    monkeypatch.setenv(profiles.DEVICE_VAR, "meta")  # any device torch knows; make test-gpu sets cuda
    assert profiles.setup("smoke", seed=1)[1] == torch.device("meta")
    assert profiles.setup("smoke", seed=1, device="cpu")[1] == torch.device("cpu")  # an explicit device wins
    monkeypatch.delenv(profiles.DEVICE_VAR)
    assert profiles.setup("smoke", seed=1)[1] == torch.device("cpu")
