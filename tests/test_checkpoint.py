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
