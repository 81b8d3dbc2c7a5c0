"""Lesson 11's BiGAN: its swapped-label loss (``ganlib.losses``), the (G, E) player, the joint D and their steps,
and what the lesson measures of E (``ganlib.bigan``), each checked against something written out independently
of the implementation, and the public bug classes as regressions."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.testing import assert_close

from ganlib import bigan, data, losses


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _logits(n=32, k=10, seed=0, scale=4.0):
    return scale * torch.randn(n, k, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# --- BiGAN / ALI -----------------------------------------------------------------------------------


def test_the_bidirectional_loss_is_ds_loss_with_the_labels_swapped():
    d_real, d_fake = _logits(n=20, k=1, seed=4).flatten(), _logits(n=20, k=1, seed=5).flatten()
    expected = (F.binary_cross_entropy_with_logits(d_real, torch.zeros_like(d_real))
                + F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake)))
    assert_close(losses.g_loss_bidirectional(d_real, d_fake), expected)
    assert_close(losses.g_loss_bidirectional(d_real, d_fake), losses.d_loss_minimax(d_fake, d_real))


def test_bigan_steps_train_the_encoder_through_the_real_pair_and_leave_d_alone():
    """The G step moves G *and* E (a port that detaches E(x) trains no encoder) and not D; the D step moves only D."""
    torch.manual_seed(0)
    GE, D = bigan.toy_bigan(hidden=16, depth=2)
    opts = torch.optim.Adam(GE.parameters(), 1e-2), torch.optim.Adam(D.parameters(), 1e-2)
    d_step, g_step = bigan.bidirectional_steps(GE, D, *opts, data.grid(), 64)
    snap = lambda m: [p.detach().clone() for p in m.parameters()]
    E0, G0, D0 = snap(GE.encoder), snap(GE.generator), snap(D)
    d_step()
    assert all(torch.equal(a, b) for a, b in zip(E0 + G0, snap(GE.encoder) + snap(GE.generator)))
    assert not all(torch.equal(a, b) for a, b in zip(D0, snap(D)))
    D1 = snap(D)
    g_step()
    assert all(torch.equal(a, b) for a, b in zip(D1, snap(D)))
    assert not any(torch.equal(a, b) for a, b in zip(E0, snap(GE.encoder)))
    assert not any(torch.equal(a, b) for a, b in zip(G0, snap(GE.generator)))


def test_the_joint_d_sees_the_pair_so_a_swapped_code_changes_its_verdict():
    torch.manual_seed(0)
    _, D = bigan.toy_bigan(hidden=16, depth=2)
    x, z = torch.randn(8, 2), torch.randn(8, 2)
    assert D(x, z).shape == (8,)
    assert not torch.allclose(D(x, z), D(x, z.flip(0)))


def test_image_bigan_shapes_and_its_uniform_prior():
    GE, D = bigan.image_bigan(width=16)
    (z,) = GE.random_inputs(64)
    assert z.shape == (64, 50) and z.min() >= -1 and z.max() <= 1 and z.min() < -0.5 and z.max() > 0.5
    x = GE(z)
    assert x.shape == (64, 1, 28, 28) and x.abs().max() <= 1
    assert GE.encode(x).shape == (64, 50) and GE.reconstruct(x).shape == x.shape and D(x, z).shape == (64,)


# --- what lesson 11 measures -----------------------------------------------------------------------


def test_the_probe_fits_scipys_optimum_of_the_same_objective_and_separates_what_is_separable():
    """``fit_logistic``'s weights reach the objective's minimum as SciPy's L-BFGS-B finds it on the same function
    written in NumPy; separable classes are classified perfectly, overlapping ones mostly."""
    from scipy.optimize import minimize

    gen = torch.Generator().manual_seed(0)
    centres = 3 * torch.randn(3, 4, generator=gen, dtype=torch.float64)
    y = torch.arange(300) % 3
    f = centres[y] + torch.randn(300, 4, generator=gen, dtype=torch.float64)
    assert bigan.linear_probe(f[:200], y[:200], f[200:], y[200:]) > 0.9
    sep = centres[y] * 10 + 0.1 * torch.randn(300, 4, generator=gen, dtype=torch.float64)
    assert bigan.linear_probe(sep[:200], y[:200], sep[200:], y[200:]) == 1.0

    a, yy, lam = f[:200].numpy(), y[:200].numpy(), 1e-2

    def objective(theta):  # cross-entropy + lam/2 ||W||^2, in NumPy
        W, b = theta[:12].reshape(4, 3), theta[12:]
        z = a @ W + b
        z = z - z.max(1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(1, keepdims=True))
        return -logp[np.arange(200), yy].mean() + lam / 2 * (W ** 2).sum()

    best = minimize(objective, np.zeros(15), method="L-BFGS-B", options={"maxiter": 2000, "gtol": 1e-10}).fun
    W, b = bigan.fit_logistic(f[:200], y[:200], 3, weight_decay=lam)
    assert abs(objective(np.concatenate([W.flatten().numpy(), b.numpy()])) - best) < 1e-6


def test_reconstruction_ratio_is_one_for_an_uninformative_encoder_and_small_for_a_perfect_one():
    x = torch.rand(64, 1, 8, 8) * 2 - 1
    identity = bigan.GeneratorEncoder(nn.Unflatten(1, (1, 8, 8)), nn.Flatten())
    assert bigan.reconstruction_ratio(identity, x) == 0.0
    mean_image = bigan.GeneratorEncoder(nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.Unflatten(1, (1, 8, 8))),
                                        nn.Flatten())
    with torch.no_grad():
        mean_image.generator[1].weight.zero_()
        mean_image.generator[1].bias.copy_(x.mean(0).flatten())
    assert 0.8 < bigan.reconstruction_ratio(mean_image, x) < 1.2
