import copy
import pickle

import numpy as np
import pytest
import torch
from torch import nn

from ganlib import losses, train


class NotATensor:
    """Any class at all: a checkpoint holding one can only be read by full (unsafe) unpickling."""


def _models(seed=0):
    torch.manual_seed(seed)
    G = nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 2))
    D = nn.Sequential(nn.Linear(2, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))
    return G, D


def _state(seed=0, ema=True):
    G, D = _models(seed)
    opt_G = torch.optim.Adam(G.parameters(), 1e-3, betas=(0.5, 0.999))
    opt_D = torch.optim.Adam(D.parameters(), 1e-3, betas=(0.5, 0.999))
    return train.GANState.with_ema(G, D, opt_G, opt_D) if ema else train.GANState(G, D, opt_G, opt_D)


def _steps(state, batch=32):
    """Step functions that consume torch and numpy randomness, as real lessons do."""

    def real():
        shift = float(np.random.uniform(-0.1, 0.1))  # numpy RNG too: resume must restore it
        return torch.randn(batch, 2) * 0.5 + 1.0 + shift

    def d_step():
        with torch.no_grad():
            x_fake = state.G(torch.randn(batch, 4))
        return train.discriminator_step(state.D, state.opt_D, losses.d_loss_nonsaturating, real(), x_fake)

    def g_step():
        return train.generator_step(state.D, state.opt_G, losses.g_loss_nonsaturating, state.G(torch.randn(batch, 4)))

    return d_step, g_step


def _everything(state):
    return {"G": state.G.state_dict(), "D": state.D.state_dict(), "G_ema": state.G_ema.state_dict(),
            "opt_G": state.opt_G.state_dict()["state"], "opt_D": state.opt_D.state_dict()["state"]}


def _assert_identical(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _assert_identical(a[k], b[k])
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    else:
        assert a == b


def test_no_gradient_reaches_g_in_the_d_step():
    G, D = _models()
    opt_D = torch.optim.SGD(D.parameters(), 0.1)
    before = copy.deepcopy(D.state_dict())
    x_fake = G(torch.randn(8, 4))  # built with a graph back into G, as a careless lesson would
    train.discriminator_step(D, opt_D, losses.d_loss_nonsaturating, torch.randn(8, 2), x_fake)
    assert all(p.grad is None for p in G.parameters())
    assert any(not torch.equal(before[k], v) for k, v in D.state_dict().items())


def test_the_g_step_moves_g_and_leaves_d_alone():
    G, D = _models()
    opt_G = torch.optim.SGD(G.parameters(), 0.1)
    g_before, d_before = copy.deepcopy(G.state_dict()), copy.deepcopy(D.state_dict())
    out = train.generator_step(D, opt_G, losses.g_loss_nonsaturating, G(torch.randn(8, 4)))
    assert set(out) == {"loss_G"} and not out["loss_G"].requires_grad
    assert not torch.equal(g_before["0.weight"], G.state_dict()["0.weight"])
    _assert_identical(d_before, D.state_dict())


def test_ema_update_is_the_convex_combination():
    G, _ = _models(0)
    G_ema, _ = _models(1)
    G_ema.eval()
    G.train()(torch.randn(8, 4))  # changes BatchNorm's running statistics
    old = copy.deepcopy(G_ema.state_dict())
    train.ema_update(G_ema, G, beta=0.9)
    for (name, p_ema), p in zip(G_ema.named_parameters(), G.parameters()):
        torch.testing.assert_close(p_ema, 0.9 * old[name] + 0.1 * p.detach())
    torch.testing.assert_close(G_ema[1].running_mean, G[1].running_mean)  # buffers are copied
    train.ema_update(G_ema, G, beta=0.0)
    _assert_identical(G_ema.state_dict(), G.state_dict())


def test_fit_runs_n_critic_d_steps_per_g_step_and_logs_each_interval():
    state = _state()
    d_step, g_step = _steps(state)
    calls = {"d": 0, "g": 0}

    def counted(fn, key):
        def wrapped():
            calls[key] += 1
            return fn()
        return wrapped

    history = train.fit(state, counted(d_step, "d"), counted(g_step, "g"), steps=25, n_critic=3,
                        log_every=10, progress=False)
    assert calls == {"d": 75, "g": 25} and state.step == 25
    assert history.steps == [10, 20, 25]
    assert set(history.values) == {"loss_D", "D(x)", "D(G(z))", "loss_G"} and len(history.seconds) == 3


def test_logged_values_are_read_back_once_per_interval(monkeypatch):
    state = _state()
    flushes = []
    original = train._Meter.flush
    monkeypatch.setattr(train._Meter, "flush", lambda self: flushes.append(1) or original(self))
    train.fit(state, *_steps(state), steps=40, log_every=20, progress=False)
    assert len(flushes) == 2  # one host sync per 20 steps, none per step


def test_snapshots_are_taken_at_start_every_interval_and_end():
    state = _state()
    z = torch.randn(6, 4)
    history = train.fit(state, *_steps(state), steps=25, snapshot=lambda: state.G_ema(z), snapshot_every=10,
                        progress=False)
    assert [s for s, _ in history.snapshots] == [0, 10, 20, 25]
    assert history.snapshots[-1][1].shape == (6, 2) and not history.snapshots[-1][1].requires_grad


def test_checkpoint_round_trip(tmp_path):
    state = _state()
    train.fit(state, *_steps(state), steps=7, log_every=5, progress=False)
    train.save_checkpoint(tmp_path / "c.pt", state)
    fresh = train.load_checkpoint(tmp_path / "c.pt", _state(seed=5))
    _assert_identical(_everything(state), _everything(fresh))
    assert fresh.step == 7 and fresh.history.steps == [5, 7]


def test_resume_reproduces_the_uninterrupted_run_exactly(tmp_path):
    torch.manual_seed(0), np.random.seed(0)
    straight = _state()
    train.fit(straight, *_steps(straight), steps=30, log_every=5, progress=False)

    torch.manual_seed(0), np.random.seed(0)
    first = _state()
    path = tmp_path / "run.pt"
    train.fit(first, *_steps(first), steps=15, log_every=5, checkpoint=path, progress=False)
    torch.manual_seed(99), np.random.seed(99)  # whatever happens in between must not matter
    second = _state(seed=3)
    train.fit(second, *_steps(second), steps=30, log_every=5, checkpoint=path, progress=False)

    _assert_identical(_everything(straight), _everything(second))
    assert second.history.steps == straight.history.steps
    assert second.history.values == straight.history.values


def test_a_finished_checkpoint_skips_training(tmp_path):
    state = _state()
    train.fit(state, *_steps(state), steps=5, checkpoint=tmp_path / "c.pt", progress=False)
    again = _state(seed=1)
    fail = lambda: pytest.fail("training ran although the checkpoint was complete")  # noqa: E731
    train.fit(again, fail, fail, steps=5, checkpoint=tmp_path / "c.pt", progress=False)
    _assert_identical(_everything(state), _everything(again))


def test_checkpoints_load_with_weights_only(tmp_path):
    state = _state()
    train.save_checkpoint(tmp_path / "c.pt", state)
    blob = torch.load(tmp_path / "c.pt", weights_only=True)
    blob["history"]["values"] = {"loss": NotATensor()}
    torch.save(blob, tmp_path / "evil.pt")
    with pytest.raises(pickle.UnpicklingError):
        train.load_checkpoint(tmp_path / "evil.pt", _state())


def test_ema_mismatch_is_reported(tmp_path):
    train.save_checkpoint(tmp_path / "c.pt", _state(ema=False))
    with pytest.raises(ValueError, match="EMA"):
        train.load_checkpoint(tmp_path / "c.pt", _state(ema=True))


def test_a_nan_loss_stops_training_with_a_clear_message():
    state = _state()
    d_step, g_step = _steps(state)
    count = {"n": 0}

    def poisoned():
        count["n"] += 1
        out = d_step()
        return {**out, "loss_D": out["loss_D"] * (float("nan") if count["n"] == 12 else 1.0)}

    with pytest.raises(train.TrainingDiverged, match=r"between steps 10 and 20: loss_D=nan"):
        train.fit(state, poisoned, g_step, steps=50, log_every=10, progress=False)
