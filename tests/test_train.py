import copy
import math

import pytest
import torch

import toy_gan as toy
from ganlib import data, losses, train


def test_no_gradient_reaches_g_in_the_d_step():
    G, D = toy.models()
    opt_D = torch.optim.SGD(D.parameters(), 0.1)
    before = copy.deepcopy(D.state_dict())
    x_fake = G(torch.randn(8, 4))  # built with a graph back into G, as a careless lesson would
    train.discriminator_step(D, opt_D, losses.d_loss_nonsaturating, torch.randn(8, 2), x_fake)
    assert all(p.grad is None for p in G.parameters())
    assert any(not torch.equal(before[k], v) for k, v in D.state_dict().items())


def test_the_g_step_moves_g_and_leaves_d_alone():
    G, D = toy.models()
    opt_G = torch.optim.SGD(G.parameters(), 0.1)
    g_before, d_before = copy.deepcopy(G.state_dict()), copy.deepcopy(D.state_dict())
    out = train.generator_step(D, opt_G, losses.g_loss_nonsaturating, G(torch.randn(8, 4)))
    assert set(out) == {"loss_G"} and not out["loss_G"].requires_grad
    assert not torch.equal(g_before["0.weight"], G.state_dict()["0.weight"])
    toy.assert_identical(d_before, D.state_dict())


def test_ema_update_is_the_convex_combination():
    G, _ = toy.models(0)
    G_ema, _ = toy.models(1)
    G_ema.eval()
    G.train()(torch.randn(8, 4))  # changes BatchNorm's running statistics
    old = copy.deepcopy(G_ema.state_dict())
    train.ema_update(G_ema, G, beta=0.9)
    for (name, p_ema), p in zip(G_ema.named_parameters(), G.parameters()):
        torch.testing.assert_close(p_ema, 0.9 * old[name] + 0.1 * p.detach())
    torch.testing.assert_close(G_ema[1].running_mean, G[1].running_mean)  # buffers are copied
    train.ema_update(G_ema, G, beta=0.0)
    toy.assert_identical(G_ema.state_dict(), G.state_dict())


def test_fit_runs_n_critic_d_steps_per_g_step_and_logs_each_interval():
    state = toy.state()
    d_step, g_step = toy.steps(state)
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
    state = toy.state()
    flushes = []
    original = train._Meter.flush
    monkeypatch.setattr(train._Meter, "flush", lambda self: flushes.append(1) or original(self))
    train.fit(state, *toy.steps(state), steps=40, log_every=20, progress=False)
    assert len(flushes) == 2  # one host sync per 20 steps, none per step


def test_snapshots_are_taken_at_start_every_interval_and_end():
    state = toy.state()
    z = torch.randn(6, 4)
    history = train.fit(state, *toy.steps(state), steps=25, snapshot=lambda: state.G_ema(z), snapshot_every=10,
                        progress=False)
    assert [s for s, _ in history.snapshots] == [0, 10, 20, 25]
    assert history.snapshots[-1][1].shape == (6, 2) and not history.snapshots[-1][1].requires_grad


def test_a_finished_checkpoint_skips_training(tmp_path):
    state = toy.state()
    train.fit(state, *toy.steps(state), steps=5, checkpoint=tmp_path / "c.pt", progress=False)
    again = toy.state(seed=1)
    fail = lambda: pytest.fail("training ran although the checkpoint was complete")  # noqa: E731
    train.fit(again, fail, fail, steps=5, checkpoint=tmp_path / "c.pt", progress=False)
    toy.assert_identical(toy.everything(state), toy.everything(again))


def test_a_nan_loss_stops_training_with_a_clear_message():
    state = toy.state()
    d_step, g_step = toy.steps(state)
    count = {"n": 0}

    def poisoned():
        count["n"] += 1
        out = d_step()
        return {**out, "loss_D": out["loss_D"] * (float("nan") if count["n"] == 12 else 1.0)}

    with pytest.raises(train.TrainingDiverged, match=r"between steps 10 and 20: loss_D=nan"):
        train.fit(state, poisoned, g_step, steps=50, log_every=10, progress=False)


def _images(n=64, side=8):
    from ganlib import data
    gen = torch.Generator().manual_seed(0)
    return data.ImageSet(torch.rand(n, 1, side, side, generator=gen) * 2 - 1, torch.zeros(n, dtype=torch.long), ("x",), "toy")


class _TinyG(torch.nn.Module):
    z_dim = 4

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(4, 64), torch.nn.Tanh())

    def random_inputs(self, n, device=None, generator=None):
        return (torch.randn(n, 4, device=device, generator=generator),)

    def forward(self, z):
        return self.net(z).reshape(len(z), 1, 8, 8)  # (B, 64) -> (B, 1, 8, 8)


@pytest.mark.parametrize("amp", [False, True])
def test_gan_steps_train_both_players_from_device_batches(amp):
    torch.manual_seed(0)
    G, D = _TinyG(), torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 1))
    opt_G, opt_D = torch.optim.Adam(G.parameters(), 1e-2), torch.optim.Adam(D.parameters(), 1e-2)
    g0, d0 = copy.deepcopy(G.state_dict()), copy.deepcopy(D.state_dict())
    d_step, g_step = train.gan_steps(G, D, opt_G, opt_D, _images(), batch_size=16, amp=amp)
    out = {**d_step(), **g_step()}
    assert set(out) == {"loss_D", "D(x)", "D(G(z))", "loss_G"}
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in out.values())  # losses in fp32 even under bf16
    assert not torch.equal(g0["net.0.weight"], G.state_dict()["net.0.weight"])
    assert not torch.equal(d0["1.weight"], D.state_dict()["1.weight"])


def test_on_log_sees_each_logged_row():
    state = toy.state()
    seen = []
    train.fit(state, *toy.steps(state), steps=30, log_every=10, on_log=lambda s: seen.append(s.step), progress=False)
    assert seen == [10, 20, 30]


def _history(p_real, p_fake, rows=10):
    history = train.History()
    for i in range(rows):
        history.add(10 * (i + 1), {"loss_D": 1.0, "loss_G": 1.0, "D(x)": p_real, "D(G(z))": p_fake}, 0.1)
    return history


def test_health_is_quiet_for_a_balanced_run():
    h = train.health(_history(0.6, 0.4))
    assert h.warnings == [] and "no warning signs" in str(h) and abs(h.means["D(x)"] - 0.6) < 1e-9


def test_health_names_an_overpowering_discriminator():
    h = train.health(_history(0.98, 0.02))
    assert len(h.warnings) == 1 and "overpowering" in h.warnings[0]


def test_health_only_reads_the_end_of_the_run():
    history = _history(0.98, 0.02, rows=8)  # a bad start ...
    for i in range(2):
        history.add(90 + 10 * i, {"D(x)": 0.6, "D(G(z))": 0.4}, 0.1)  # ... that recovered
    assert train.health(history, window=0.2).warnings == []


def test_health_spots_collapsed_samples():
    history = _history(0.6, 0.4)
    real = torch.rand(16, 1, 8, 8)
    history.snapshots.append((100, real[:1].expand(16, 1, 8, 8).clone()))  # sixteen copies of one image
    h = train.health(history, real=real)
    assert h.diversity == 0 and "mode collapse" in h.warnings[0]
    history.snapshots.append((200, torch.rand(16, 1, 8, 8)))
    assert 0.8 < train.health(history, real=real).diversity < 1.25


def test_recalibrated_batchnorm_statistics_are_the_average_over_fresh_batches():
    torch.manual_seed(0)
    G = _TinyG()
    G.net.insert(1, torch.nn.BatchNorm1d(64))
    G.net[1].running_mean.fill_(5.0)  # stale statistics, as an EMA copy would carry
    torch.manual_seed(1)
    train.recalibrate_batchnorm(G, batches=4, batch_size=32)
    assert not G.training
    torch.manual_seed(1)
    h = torch.cat([G.net[0](torch.randn(32, 4)) for _ in range(4)])  # the same four batches
    torch.testing.assert_close(G.net[1].running_mean, h.mean(0), rtol=1e-4, atol=1e-5)
    assert G.net[1].momentum == 0.1  # restored


def test_discriminator_outputs_are_mean_probabilities_without_a_graph():
    d_real = torch.tensor([0.0, 2.0, -1.0], requires_grad=True)
    d_fake = torch.tensor([-3.0, 0.5], dtype=torch.bfloat16)
    out = train.discriminator_outputs(d_real, d_fake)
    expected_real = (0.5 + 1 / (1 + math.exp(-2.0)) + 1 / (1 + math.exp(1.0))) / 3
    expected_fake = (1 / (1 + math.exp(3.0)) + 1 / (1 + math.exp(-0.5))) / 2
    assert abs(float(out["D(x)"]) - expected_real) < 1e-6 and abs(float(out["D(G(z))"]) - expected_fake) < 1e-3
    assert not out["D(x)"].requires_grad and out["D(G(z))"].dtype == torch.float32


# --- schedules ------------------------------------------------------------------------------


def test_a_schedule_runs_each_phase_at_its_interval_in_order():
    state, order = toy.state(), []
    record = lambda name: lambda: order.append((state.step, name)) or {}  # noqa: E731
    phases = [train.Phase("D", record("D"), repeat=2), train.Phase("G", record("G")),
              train.Phase("R1", record("R1"), every=4)]
    train.fit_schedule(state, phases, steps=9, log_every=3, progress=False)
    assert [s for s, name in order if name == "R1"] == [0, 4, 8]  # keyed on state.step, as NVlabs' loop
    assert order[:4] == [(0, "D"), (0, "D"), (0, "G"), (0, "R1")] and len(order) == 9 * 3 + 3


def test_fit_is_the_shorthand_for_the_classic_schedule():
    d, g = (lambda: {}), (lambda: {})
    assert train.schedule(d, g, n_critic=5) == [train.Phase("D", d, repeat=5), train.Phase("G", g)]
    with pytest.raises(ValueError, match="every and repeat"):
        train.Phase("bad", d, every=0)


def test_a_sparse_key_keeps_the_history_aligned_with_steps_end_to_end():
    from ganlib import viz
    state = toy.state()
    d_step, g_step = toy.steps(state)
    lazy = lambda: {"R1": torch.tensor(float(state.step))}  # noqa: E731
    phases = [*train.schedule(d_step, g_step), train.Phase("R1", lazy, every=16)]
    history = train.fit_schedule(state, phases, steps=40, log_every=10, progress=False)
    assert history.steps == [10, 20, 30, 40] and all(len(v) == 4 for v in history.values.values())
    assert math.isnan(history.values["R1"][2])  # no R1 step between 20 and 30
    assert history.series("R1") == ([10, 20, 40], [0.0, 16.0, 32.0])
    assert viz.loss_curves(history) is not None  # plots the sparse key without raising


def test_a_key_that_appears_late_is_back_filled_with_nan():
    history = train.History()
    history.add(10, {"a": 1.0}, 0.1)
    history.add(20, {"a": 2.0, "b": 5.0}, 0.1)
    assert history.values["a"] == [1.0, 2.0] and math.isnan(history.values["b"][0]) and history.values["b"][1] == 5.0


def test_ema_beta_may_be_a_function_of_the_step():
    state = toy.state()
    betas = []
    beta = lambda step: betas.append(step) or 0.0  # noqa: E731  beta 0: G_ema copies G at every step
    train.fit(state, *toy.steps(state), steps=5, ema_beta=beta, progress=False)
    assert betas == [0, 1, 2, 3, 4]
    toy.assert_identical(state.G_ema.state_dict(), state.G.state_dict())


def test_ema_half_life_and_its_ramp_follow_stylegan2():
    beta = train.ema_half_life(batch_size=32, half_life_images=10_000)
    assert abs(beta(0) ** (10_000 / 32) - 0.5) < 1e-12  # after half_life images the old average weighs 1/2
    ramped = train.ema_half_life(batch_size=32, half_life_images=10_000, ramp=0.05)
    assert abs(ramped(100) - 0.5 ** (32 / (0.05 * 32 * 100))) < 1e-12 and ramped(10**6) == beta(0)
    assert ramped(1) < ramped(100) < ramped(10**6)  # the average lags less early in the run


def test_adam_sets_separate_learning_rates_for_ttur_and_lazy_settings_are_stylegan2s():
    G, D = toy.models()
    opt_G, opt_D = train.adam(G, D, lr_G=1e-4, lr_D=4e-4, betas=(0.0, 0.9))
    assert opt_G.param_groups[0]["lr"] == 1e-4 and opt_D.param_groups[0]["lr"] == 4e-4
    assert opt_D.param_groups[0]["betas"] == (0.0, 0.9)
    lr, betas = train.lazy_adam_settings(0.0025, (0.0, 0.99), every=16)
    assert abs(lr - 0.0025 * 16 / 17) < 1e-15 and betas == (0.0, 0.99 ** (16 / 17))


def test_adam_is_fused_on_the_cpu_and_takes_the_for_each_step():
    G, D = toy.models()
    opt_G, _ = train.adam(G, D, lr_G=1e-3)
    assert opt_G.param_groups[0]["fused"] is True  # the CPU has a fused kernel (8x faster on two cores)
    reference = copy.deepcopy(G)
    opt_ref = torch.optim.Adam(reference.parameters(), lr=1e-3, betas=(0.5, 0.999), foreach=True)
    torch.manual_seed(0)
    for _ in range(5):
        x = torch.randn(32, 4)
        for model, opt in ((G, opt_G), (reference, opt_ref)):
            train.update(opt, model(x).square().mean())
    for p, q in zip(G.parameters(), reference.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_fakes_draw_from_random_inputs_without_a_graph():
    G = _TinyG()
    x = train.fakes(G, 5)
    assert x.shape == (5, 1, 8, 8) and not x.requires_grad
    z = torch.zeros(2, 4)
    torch.testing.assert_close(train.fakes(G, 2, inputs=(z,)), G(z).detach())


def test_a_penalty_joins_the_d_step_and_is_logged():
    G, D = _TinyG(), torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 1))
    opt_G, opt_D = train.adam(G, D, 1e-3)
    d_step, _ = train.gan_steps(G, D, opt_G, opt_D, _images(), 16, d_loss=losses.d_loss_wasserstein,
                                g_loss=losses.g_loss_wasserstein, penalty=losses.gradient_penalty,
                                outputs=train.critic_outputs)
    w = D[1].weight.detach().clone()  # before the step's update
    out = d_step()
    assert set(out) == {"loss_D", "penalty", "critic(x)", "critic(G(z))", "W1 estimate"}
    torch.testing.assert_close(out["W1 estimate"], -out["loss_D"])
    torch.testing.assert_close(out["penalty"], 10 * (w.norm() - 1) ** 2, rtol=1e-4, atol=1e-5)  # a linear critic


def _critic_history(w1, grad_norm=None):
    history = train.History()
    for i, w in enumerate(w1):
        row = {"loss_D": -w, "W1 estimate": w, **({} if grad_norm is None else {"grad norm": grad_norm})}
        history.add(10 * (i + 1), row, 0.1)
    return history


def test_health_checks_a_critic_by_its_own_signals():
    calm = train.health(_critic_history([0.5, 2.0, 1.5, 1.0, 0.8, 0.7, 0.6, 0.6, 0.5, 0.5], grad_norm=1.05))
    assert calm.warnings == [] and "W1 estimate" in str(calm) and "interpolates" in str(calm)
    exploding = train.health(_critic_history([0.5, 1.0, 1.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]))
    assert len(exploding.warnings) == 1 and "exploding" in exploding.warnings[0]
    loose = train.health(_critic_history([1.0] * 10, grad_norm=4.0))
    assert len(loose.warnings) == 1 and "far from 1" in loose.warnings[0]
    assert "D(x) against D(G(z))" not in loose.checked  # no sigmoid is read into a critic's scores


def test_health_says_when_it_had_nothing_to_check():
    history = train.History()
    history.add(10, {"loss_D": 1.0, "loss_G": 1.0}, 0.1)
    h = train.health(history)
    assert h.checked == [] and "no warning signs" not in str(h) and "checked: nothing" in str(h)


def test_g_step_freezes_d_and_computes_the_same_update():
    """G's step gives D's weights no gradient (it would throw them away) and moves G exactly as the unfrozen
    step does; afterwards D trains again."""
    from ganlib import cgan, dcgan

    torch.manual_seed(0)
    G, D = dcgan.Generator((1, 28, 28), 8, 4), dcgan.Discriminator((1, 28, 28), 4)
    G2, D2 = copy.deepcopy(G), copy.deepcopy(D)
    opt_G, opt_G2 = dcgan.optimizers(G, D)[0], dcgan.optimizers(G2, D2)[0]
    z = torch.randn(6, 8)
    train.generator_step(D, opt_G, losses.g_loss_nonsaturating, G(z))
    assert all(p.grad is None for p in D.parameters()) and all(p.requires_grad for p in D.parameters())
    loss = losses.g_loss_nonsaturating(D2(G2(z)).float())  # the unfrozen step, by hand
    train.update(opt_G2, loss)
    assert all(p.grad is not None for p in D2.parameters())
    for a, b in zip(G.parameters(), G2.parameters()):
        torch.testing.assert_close(a, b)
    C, CD = cgan.Generator((1, 28, 28), 10, 8, 4), cgan.ProjectionDiscriminator((1, 28, 28), 10, 4)
    d_step, g_step = cgan.conditional_steps(C, CD, *dcgan.optimizers(C, CD),
                                             data.ImageSet(torch.zeros(8, 1, 28, 28), torch.arange(8) % 10, tuple("abcdefghij"), "x"), 4)
    g_step()
    assert all(p.grad is None for p in CD.parameters()), "the conditional G step freezes the module behind its lambda"
    d_step()
    assert any(p.grad is not None for p in CD.parameters())


def test_history_pace_reads_the_runs_own_speed_past_busy_stretches():
    history = train.History()
    step = 0
    for i in range(20):  # 100 steps per row at 0.2 s/step; every fourth row slowed 2.5x by other work on the machine
        step += 100
        history.add(step, {"loss": 1.0}, seconds=100 * 0.2 * (2.5 if i % 4 == 0 else 1.0))
    assert abs(history.pace() - 0.2) < 1e-12
    assert history.minutes([500, 2000]) == pytest.approx([500 * 0.2 / 60, 2000 * 0.2 / 60])
    logged = history.logged_minutes([500, 2000])  # wall clock: the busy rows count in full
    assert logged == pytest.approx([(2 * 50 + 3 * 20) / 60, (5 * 50 + 15 * 20) / 60])
    assert logged[1] > history.minutes([2000])[0]
    with pytest.raises(KeyError, match="not logged"):
        history.logged_minutes([150])
    with pytest.raises(ValueError, match="empty"):
        train.History().pace()
