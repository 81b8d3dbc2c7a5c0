import math

import pytest
import torch
from scipy.spatial.distance import jensenshannon
from scipy.stats import entropy, norm
from torch.testing import assert_close

from ganlib import data, theory

X = torch.linspace(-12, 12, 24001, dtype=torch.float64)
DX = float(X[1] - X[0])
PAIRS = {  # (p_data, p_g) on the grid
    "gaussians": (norm.pdf(X, 0, 1), norm.pdf(X, 1.5, 0.7)),
    "mixture vs gaussian": (0.3 * norm.pdf(X, -2, 0.5) + 0.7 * norm.pdf(X, 2, 1), norm.pdf(X, 0, 2)),
    "equal": (norm.pdf(X, 0.3, 1.2), norm.pdf(X, 0.3, 1.2)),
    "nearly disjoint": (norm.pdf(X, -6, 0.3), norm.pdf(X, 6, 0.3)),
}


def _t(a):
    return torch.as_tensor(a, dtype=torch.float64)


@pytest.mark.parametrize("name", PAIRS)
def test_value_at_optimal_d_is_minus_log4_plus_2_jsd(name):
    p, q = PAIRS[name]
    jsd_scipy = jensenshannon(p, q) ** 2  # scipy returns the square root of JSD, natural log
    assert_close(theory.optimal_value(_t(p), _t(q), DX), _t(-math.log(4) + 2 * jsd_scipy), rtol=0, atol=1e-6)
    assert_close(theory.js_divergence(_t(p), _t(q), DX), _t(jsd_scipy), rtol=0, atol=1e-6)


def test_optimal_discriminator_is_the_density_ratio_and_one_half_when_equal():
    p, q = _t(norm.pdf(X, 0, 1)), _t(norm.pdf(X, 1, 1))
    d = theory.optimal_discriminator(p, q)
    assert_close(d, p / (p + q))
    assert_close(theory.optimal_discriminator(p, p), torch.full_like(p, 0.5))
    zero = torch.zeros(3, dtype=torch.float64)
    assert_close(theory.optimal_discriminator(zero, zero), torch.full_like(zero, 0.5))


def test_no_discriminator_beats_d_star():
    p, q = _t(PAIRS["gaussians"][0]), _t(PAIRS["gaussians"][1])
    d_star = theory.optimal_discriminator(p, q)
    best = theory.optimal_value(p, q, DX)
    inner = (p > 1e-12) & (q > 1e-12)  # where D* is not rounded to exactly 0 or 1
    assert_close(theory.value_function(d_star[inner], p[inner], q[inner], DX),
                 theory.optimal_value(p[inner], q[inner], DX))
    gen = torch.Generator().manual_seed(0)
    for scale in (0.2, 0.05, 0.01):
        bump = scale * torch.randn(len(X), generator=gen, dtype=torch.float64)
        d = torch.sigmoid(torch.logit(d_star.clamp(1e-12, 1 - 1e-12)) + bump)
        assert theory.value_function(d, p, q, DX) < best


def test_kl_matches_scipy_and_the_gaussian_closed_form():
    m1, s1, m2, s2 = 0.5, 0.8, -0.3, 1.4
    p, q = _t(norm.pdf(X, m1, s1)), _t(norm.pdf(X, m2, s2))
    closed = math.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5
    assert_close(theory.kl_divergence(p, q, DX), _t(closed), rtol=0, atol=1e-6)
    assert_close(theory.kl_divergence(p, q, DX), _t(entropy(p, q)), rtol=0, atol=1e-6)
    assert theory.kl_divergence(p, torch.zeros_like(p), DX) == math.inf


def test_works_with_ganlib_densities_in_two_dimensions():
    ticks = torch.linspace(-4, 7, 441)  # wide enough to hold both densities' mass
    pts = torch.cartesian_prod(ticks, ticks)
    area = float(ticks[1] - ticks[0]) ** 2
    p, q = data.gaussian([0.0, 0.0], 0.5).density(pts).double(), data.gaussian([3.0, 0.0], 0.5).density(pts).double()
    assert_close(theory.optimal_value(p, q, area), _t(-math.log(4) + 2 * jensenshannon(p, q) ** 2), rtol=0, atol=1e-5)


def test_generator_gradients_match_autograd():
    logits = torch.linspace(-8, 8, 101, dtype=torch.float64, requires_grad=True)
    d = torch.sigmoid(logits)
    (g_sat,) = torch.autograd.grad(torch.log(1 - d).sum(), logits)
    (g_ns,) = torch.autograd.grad((-torch.log(torch.sigmoid(logits))).sum(), logits)
    closed = theory.g_loss_gradients(d.detach())
    assert_close(closed["saturating"], g_sat)
    assert_close(closed["nonsaturating"], g_ns)
    # the point of the lesson: when D rejects fakes (D -> 0), only the non-saturating loss still pushes
    assert closed["saturating"][0].abs() < 1e-3 and closed["nonsaturating"][0].abs() > 0.999
