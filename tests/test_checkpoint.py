import copy
import pickle

import numpy as np
import pytest
import torch

import toy_gan as toy
from ganlib import checkpoint, train


class NotATensor:
    """Any class at all: a checkpoint holding one can only be read by full (unsafe) unpickling."""


def test_checkpoint_round_trip(tmp_path):
    state = toy.state()
    train.fit(state, *toy.steps(state), steps=7, log_every=5, progress=False)
    checkpoint.save(tmp_path / "c.pt", state)
    fresh = checkpoint.load(tmp_path / "c.pt", toy.state(seed=5))
    toy.assert_identical(toy.everything(state), toy.everything(fresh))
    assert fresh.step == 7 and fresh.history.steps == [5, 7]


def test_resume_reproduces_the_uninterrupted_run_exactly(tmp_path):
    torch.manual_seed(0), np.random.seed(0)
    straight = toy.state()
    train.fit(straight, *toy.steps(straight), steps=30, log_every=5, progress=False)

    torch.manual_seed(0), np.random.seed(0)
    first = toy.state()
    path = tmp_path / "run.pt"
    train.fit(first, *toy.steps(first), steps=15, log_every=5, checkpoint=path, progress=False)
    torch.manual_seed(99), np.random.seed(99)  # whatever happens in between must not matter
    second = toy.state(seed=3)
    train.fit(second, *toy.steps(second), steps=30, log_every=5, checkpoint=path, progress=False)

    toy.assert_identical(toy.everything(straight), toy.everything(second))
    assert second.history.steps == straight.history.steps
    assert second.history.values == straight.history.values


def test_checkpoints_load_with_weights_only(tmp_path):
    state = toy.state()
    checkpoint.save(tmp_path / "c.pt", state)
    blob = torch.load(tmp_path / "c.pt", weights_only=True)
    blob["history"]["values"] = {"loss": NotATensor()}
    torch.save(blob, tmp_path / "evil.pt")
    with pytest.raises(pickle.UnpicklingError):
        checkpoint.load(tmp_path / "evil.pt", toy.state())


def test_ema_mismatch_is_reported(tmp_path):
    checkpoint.save(tmp_path / "c.pt", toy.state(ema=False))
    with pytest.raises(ValueError, match="EMA"):
        checkpoint.load(tmp_path / "c.pt", toy.state(ema=True))


def _lazy_run(state, steps, path=None):
    """A run with a lazy phase that keeps its own running mean in ``state.extras`` (as StyleGAN2's pl_mean)."""
    d_step, g_step = toy.steps(state)

    def lazy():
        x = torch.randn(8, 2)
        state.extras["mean"].lerp_(state.D(x).mean().detach(), 0.1)
        return {"lazy": state.extras["mean"].clone()}

    phases = [*train.schedule(d_step, g_step), train.Phase("lazy", lazy, every=4)]
    return train.fit_schedule(state, phases, steps, log_every=3, checkpoint=path, progress=False)


def test_resume_with_a_lazy_phase_and_extra_state_is_exact(tmp_path):
    torch.manual_seed(0), np.random.seed(0)
    straight = toy.state(extras={"mean": torch.zeros(())})
    _lazy_run(straight, 22)

    torch.manual_seed(0), np.random.seed(0)
    first = toy.state(extras={"mean": torch.zeros(())})
    _lazy_run(first, 9, tmp_path / "lazy.pt")  # stops between two lazy steps (8 and 12)
    torch.manual_seed(7), np.random.seed(7)
    second = toy.state(seed=2, extras={"mean": torch.full((), 9.0)})
    _lazy_run(second, 22, tmp_path / "lazy.pt")

    toy.assert_identical(toy.everything(straight), toy.everything(second))
    assert torch.equal(straight.extras["mean"], second.extras["mean"]) and float(second.extras["mean"]) != 0
    assert np.isnan(second.history.values["lazy"][3])  # steps 9-11 ran no lazy step
    np.testing.assert_array_equal(second.history.values["lazy"], straight.history.values["lazy"])


def test_extras_that_do_not_match_are_reported(tmp_path):
    checkpoint.save(tmp_path / "c.pt", toy.state(extras={"pl_mean": torch.zeros(())}))
    with pytest.raises(ValueError, match="extras"):
        checkpoint.load(tmp_path / "c.pt", toy.state())
