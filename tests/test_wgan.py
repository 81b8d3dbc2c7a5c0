"""ganlib.wgan: critics, WGAN-clip and WGAN-GP steps through train.fit, schedules, the 1-D W1 check."""

import numpy as np
import pytest
import scipy.stats
import torch
from torch import nn
from torch.testing import assert_close

from ganlib import data, dcgan, losses, train, wgan

SHAPE = (1, 28, 28)


def test_critic_is_the_dcgan_body_without_batch_norm():
    for down, norm in ((dcgan.down_layernorm, nn.GroupNorm), (dcgan.down_plain, None)):
        D = wgan.critic(SHAPE, 8, down=down)
        assert isinstance(D, dcgan.Discriminator) and not wgan.has_batchnorm(D)
        assert (norm is None) == (not any(isinstance(m, nn.GroupNorm) for m in D.modules()))
        assert D(torch.randn(3, *SHAPE)).shape == (3,)
        assert not any(isinstance(m, nn.Sigmoid) for m in D.modules()), "a critic returns scores"
    assert wgan.has_batchnorm(dcgan.Discriminator(SHAPE, 8))


def test_critic_scores_depend_on_their_own_sample_only():
    """What the per-sample penalty needs: changing x_j leaves D(x_i) alone (layer norm: yes)."""
    D = wgan.critic(SHAPE, 8)
    x = torch.randn(4, *SHAPE)
    y = x.clone()
    y[1:] = torch.randn(3, *SHAPE)
    assert_close(D(x)[0], D(y)[0])


def test_the_constants_are_the_papers_and_the_official_codes():
    assert (wgan.CLIP, wgan.CLIP_LR, wgan.N_CRITIC) == (0.01, 5e-5, 5)
    assert (wgan.GP_WEIGHT, wgan.GP_LR, wgan.GP_BETAS, wgan.ALGORITHM_1_BETAS) == (10.0, 1e-4, (0.5, 0.9), (0.0, 0.9))
    G, D = wgan.ToyGenerator(hidden=8, depth=1), wgan.toy_critic(hidden=8, depth=1)
    opt_G, opt_D = wgan.clip_optimizers(G, D)
    assert isinstance(opt_D, torch.optim.RMSprop) and opt_D.param_groups[0]["lr"] == 5e-5
    assert opt_D.param_groups[0]["momentum"] == 0
    opt_G, opt_D = wgan.gp_optimizers(G, D)
    assert isinstance(opt_D, torch.optim.Adam)
    assert opt_D.param_groups[0]["lr"] == 1e-4 and opt_D.param_groups[0]["betas"] == (0.5, 0.9)


def _toy(kind, seed=0, hidden=16):
    torch.manual_seed(seed)
    G, D = wgan.ToyGenerator(hidden=hidden, depth=2), wgan.toy_critic(hidden=hidden, depth=2)
    opts = wgan.clip_optimizers(G, D) if kind == "clip" else wgan.gp_optimizers(G, D)
    steps = wgan.clip_steps if kind == "clip" else wgan.gp_steps
    return G, D, opts, steps(G, D, *opts, data.ring(), 32)


def test_clip_step_clamps_every_critic_parameter_and_leaves_g_alone():
    G, D, (opt_G, opt_D), (d_step, g_step) = _toy("clip")
    with torch.no_grad():
        for p in D.parameters():
            p.mul_(100)  # far outside [-c, c]
    g_before = [p.clone() for p in G.parameters()]
    logs = d_step()
    assert all(p.abs().max() <= wgan.CLIP + 1e-12 for p in D.parameters())
    assert any(p.abs().max() == wgan.CLIP for p in D.parameters())
    assert all(torch.equal(a, b) for a, b in zip(g_before, G.parameters())), "the critic step must not move G"
    assert all(p.grad is None for p in G.parameters()), "no gradient may reach G in the critic step"
    assert set(logs) == {"loss_D", "critic(x)", "critic(G(z))", "W1 estimate"}
    assert_close(logs["W1 estimate"], -logs["loss_D"])
    d_before = [p.clone() for p in D.parameters()]
    assert set(g_step()) == {"loss_G"}
    assert all(torch.equal(a, b) for a, b in zip(d_before, D.parameters())), "the G step must not move D"


def test_gp_step_adds_the_penalty_and_reaches_no_generator_gradient():
    G, D, (opt_G, opt_D), (d_step, _) = _toy("gp")
    logs = d_step()
    assert set(logs) == {"loss_D", "penalty", "critic(x)", "critic(G(z))", "W1 estimate"}
    assert logs["penalty"] >= 0 and all(p.grad is None for p in G.parameters())
    assert all(p.grad is not None for p in D.parameters())


def test_a_batchnorm_toy_generator_trains_with_the_penalty_its_critic_cannot_have():
    G, D = wgan.ToyGenerator(hidden=8, depth=2, batch_norm=True), wgan.toy_critic(hidden=8, depth=2)
    assert wgan.has_batchnorm(G) and not wgan.has_batchnorm(D) and not wgan.has_batchnorm(wgan.ToyGenerator(hidden=8))
    opt_G, opt_D = wgan.gp_optimizers(G, D)
    d_step, g_step = wgan.gp_steps(G, D, opt_G, opt_D, data.ring(), 16)
    before = G.net[1].running_mean.clone()
    d_step(), g_step()  # G's batch norm is fine: the penalty differentiates the critic, per sample
    assert not torch.equal(G.net[1].running_mean, before)


def test_gp_refuses_a_batchnorm_critic():
    G = wgan.ToyGenerator(hidden=8, depth=1)
    D = nn.Sequential(nn.Linear(2, 8), nn.BatchNorm1d(8), nn.Linear(8, 1), nn.Flatten(0))
    with pytest.raises(ValueError, match="batch norm"):
        wgan.gp_steps(G, D, *wgan.gp_optimizers(G, D), data.ring(), 8)


def test_gp_penalty_of_the_step_is_the_library_penalty():
    """The logged penalty is losses.gradient_penalty at lambda = 10 for the same batch and eps."""
    G, D, _, _ = _toy("gp")
    x_real, x_fake = data.ring().sample(16), torch.randn(16, 2)
    torch.manual_seed(5)
    expected = losses.gradient_penalty(D, x_real, x_fake, 10.0)
    torch.manual_seed(5)
    x_hat, eps = losses.interpolates(x_real, x_fake)
    mine = 10 * (losses.gradient_norms(D, x_hat) - 1).square().mean()
    assert_close(mine, expected)


def test_clip_schedule_follows_the_official_warmup():
    calls = []
    phases = wgan.clip_schedule(lambda: calls.append("D") or {}, lambda: calls.append("G") or {})
    counts = []
    for step in (0, 24, 25, 499, 500):
        calls.clear()
        for phase in phases:
            if phase.due(step):
                for _ in range(phase.repeat):
                    phase.fn()
        counts.append((calls.count("D"), calls.count("G")))
    assert counts == [(100, 1), (100, 1), (5, 1), (5, 1), (100, 1)]
    assert [p.name for p in wgan.clip_schedule(None, None, warmup=False)] == ["D", "G"]


@pytest.mark.parametrize("kind", ["clip", "gp"])
def test_steps_fit_train_fit_and_resume_exactly(kind, tmp_path):
    """Both recipes run through train.fit, log critic signals, and a resumed run equals an uninterrupted one."""
    def run(stops):
        ckpt = tmp_path / f"{kind}-{len(stops)}.pt"
        for stop in stops:
            torch.manual_seed(100 + stop)  # a resumed run restores the RNG from the checkpoint
            G, D, (opt_G, opt_D), (d_step, g_step) = _toy(kind)
            state = train.GANState(G, D, opt_G, opt_D)
            phases = wgan.clip_schedule(d_step, g_step) if kind == "clip" else train.schedule(d_step, g_step, 5)
            train.fit_schedule(state, phases, stop, log_every=5, checkpoint=ckpt, progress=False)
        return state
    whole, parts = run([30]), run([12, 30])
    assert whole.step == parts.step == 30
    for a, b in zip(whole.G.parameters(), parts.G.parameters()):
        assert_close(a, b)
    assert "W1 estimate" in whole.history.values and np.isfinite(whole.history.values["W1 estimate"]).all()


def test_linear_decay_holds_then_falls_to_zero():
    G, D = wgan.ToyGenerator(hidden=8, depth=1), wgan.toy_critic(hidden=8, depth=1)
    opts = wgan.gp_optimizers(G, D)
    state = train.GANState(G, D, *opts)
    phase = wgan.linear_decay(state, opts, 100)
    seen = []
    for step in (0, 50, 75, 99):
        state.step = step
        phase.fn()
        seen.append(opts[0].param_groups[0]["lr"])
    assert_close(torch.tensor(seen), torch.tensor([1e-4, 1e-4, 0.5e-4, 0.02e-4]), rtol=1e-6, atol=1e-12)


def test_image_critic_trains_through_fit_with_wgan_gp():
    torch.manual_seed(0)
    images = data.ImageSet(torch.rand(64, *SHAPE) * 2 - 1, torch.zeros(64, dtype=torch.long), ("x",), "noise")
    G, D = dcgan.Generator(SHAPE, 8, 8), wgan.critic(SHAPE, 8, dcgan.down_plain)
    opt_G, opt_D = wgan.gp_optimizers(G, D)
    state = train.GANState.with_ema(G, D, opt_G, opt_D)
    history = train.fit(state, *wgan.gp_steps(G, D, opt_G, opt_D, images, 8), 3, n_critic=5, log_every=1, progress=False)
    assert len(history.steps) == 3 and {"penalty", "W1 estimate", "loss_G"} <= set(history.values)


def test_a_penalised_critic_estimates_w1_in_1d():
    """N(0, 1) against N(1.5, 0.5^2): the critic's gap is within 10% of scipy's W1 on the same samples, and
    divided by its largest slope (its Lipschitz constant) it is a lower bound."""
    torch.manual_seed(0)
    D = wgan.toy_critic(dim=1, hidden=32, depth=2)
    p = lambda n: torch.randn(n, 1)  # noqa: E731
    q = lambda n: 1.5 + 0.5 * torch.randn(n, 1)  # noqa: E731
    wgan.fit_critic(D, p, q, 600)
    x_p, x_q = p(20_000), q(20_000)
    exact = scipy.stats.wasserstein_distance(x_p.flatten().numpy(), x_q.flatten().numpy())
    estimate = wgan.w1_estimate(D, x_p, x_q)
    assert abs(estimate - exact) < 0.1 * exact, (estimate, exact)
    slopes = losses.gradient_norms(D, torch.linspace(-3, 4, 701)[:, None]).detach()
    assert estimate / slopes.max() <= exact + 0.02
    assert abs(slopes[200:500].mean() - 1) < 0.15  # slope about 1 between the two means
