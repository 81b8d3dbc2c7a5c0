import math

import numpy as np
import pytest
import scipy.linalg
import scipy.spatial.distance
import scipy.stats
import torch

from ganlib import data, metrics


def test_true_samples_cover_every_mode_with_the_gaussian_3_sigma_rate():
    gen = torch.Generator().manual_seed(0)
    for target in (data.ring(), data.grid()):
        stats = metrics.mode_coverage(target.sample(20_000, generator=gen), target)
        assert stats.modes == stats.n_modes
        # in 2-D, P(|x - mu| < 3 sigma) = 1 - exp(-9/2) = 0.98889
        assert abs(stats.high_quality - (1 - math.exp(-4.5))) < 0.004
        assert stats.kl_uniform < 0.01


def test_a_collapsed_generator_is_caught():
    target = data.ring()
    collapsed = data.GaussianMixture(target.means[:3], 0.01).sample(3000)
    stats = metrics.mode_coverage(collapsed, target)
    assert stats.modes == 3 and stats.counts[3:].sum() == 0
    assert abs(stats.kl_uniform - math.log(8 / 3)) < 0.01  # three equal modes out of eight
    assert "3/8 modes" in str(stats)


def test_samples_between_modes_are_low_quality():
    target = data.ring()
    midpoints = (target.means + target.means.roll(1, 0)) / 2
    stats = metrics.mode_coverage(midpoints.repeat(10, 1), target)
    assert stats.high_quality == 0 and stats.modes == 0
    assert math.isnan(stats.kl_uniform) and "n/a" in str(stats)  # no histogram to compare


def test_min_count_and_shape_checks():
    target = data.ring()
    one_each = target.means.clone()
    assert metrics.mode_coverage(one_each, target).modes == 8
    assert metrics.mode_coverage(one_each, target, min_count=2).modes == 0
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        metrics.mode_coverage(torch.zeros(10, 3), target)


# --------------------------------------------------------------------------------------------
# Frechet distance, FID
# --------------------------------------------------------------------------------------------


def _random_psd(d, seed, rank=None):
    a = torch.randn(d, rank or d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return a @ a.T / d


def _frechet_via_scipy(mu1, s1, mu2, s2):
    """The textbook formula with scipy's general matrix square root of the product."""
    root = scipy.linalg.sqrtm(s1 @ s2)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(root).real)


def test_frechet_distance_of_identical_gaussians_is_zero():
    mu, sigma = torch.randn(20, dtype=torch.float64), _random_psd(20, 0)
    assert 0 <= metrics.frechet_distance(mu, sigma, mu, sigma) < 1e-10 * float(sigma.trace())


def test_frechet_distance_with_diagonal_covariances_is_the_closed_form():
    gen = torch.Generator().manual_seed(1)
    mu1, mu2 = torch.randn(2, 30, generator=gen, dtype=torch.float64)
    a, b = torch.rand(2, 30, generator=gen, dtype=torch.float64) * 3
    a[:5] = 0  # singular covariances have the same closed form
    expected = ((a.sqrt() - b.sqrt()) ** 2).sum() + ((mu1 - mu2) ** 2).sum()
    got = metrics.frechet_distance(mu1, torch.diag(a), mu2, torch.diag(b))
    assert isinstance(got, float) and abs(got - float(expected)) < 1e-10 * float(expected)


def test_frechet_distance_agrees_with_scipy_sqrtm_for_full_covariances():
    mu1, mu2 = np.random.default_rng(2).normal(size=(2, 40))
    s1, s2 = _random_psd(40, 3).numpy(), _random_psd(40, 4).numpy()
    expected = _frechet_via_scipy(mu1, s1, mu2, s2)
    assert abs(metrics.frechet_distance(mu1, s1, mu2, s2) - expected) < 1e-8 * expected  # NumPy in
    got_torch = metrics.frechet_distance(*map(torch.from_numpy, (mu1, s1, mu2, s2)))  # torch in
    assert abs(got_torch - expected) < 1e-8 * expected
    assert abs(metrics.trace_sqrt_product(s1, s2) - np.trace(scipy.linalg.sqrtm(s1 @ s2)).real) < 1e-8 * expected


def test_rank_deficient_covariances_stay_finite_and_non_negative():
    gen = torch.Generator().manual_seed(5)
    for dtype in (torch.float32, torch.float64):
        f1, f2 = torch.randn(2, 10, 32, generator=gen, dtype=dtype)  # N = 10 < d = 32: rank 9
        (mu1, s1), (mu2, s2) = metrics.gaussian_stats(f1), metrics.gaussian_stats(f2)
        s1_single = torch.cov(f1.T)  # computed in the input's precision: eigenvalues ~ -1e-7
        for d2 in (metrics.frechet_distance(mu1, s1, mu2, s2), metrics.frechet_distance(mu1, s1_single, mu2, s2)):
            assert math.isfinite(d2) and d2 > 0
        assert 0 <= metrics.frechet_distance(mu1, s1_single, mu1, s1_single) < 1e-5 * float(s1.trace())


def test_frechet_distance_refuses_what_is_not_a_covariance():
    eye = torch.eye(2)
    with pytest.raises(ValueError, match="positive semi-definite"):
        metrics.frechet_distance(torch.zeros(2), torch.diag(torch.tensor([1.0, -1.0])), torch.zeros(2), eye)
    swap, signs = torch.tensor([[0.0, 1.0], [1.0, 0.0]]), torch.diag(torch.tensor([1.0, -1.0]))
    assert np.abs(np.linalg.eigvals((swap @ signs).numpy()).imag).max() == 1  # product has eigenvalues +-i
    with pytest.raises(ValueError, match="positive semi-definite"):
        metrics.frechet_distance(torch.zeros(2), swap, torch.zeros(2), signs)
    with pytest.raises(ValueError, match="symmetric"):
        metrics.frechet_distance(torch.zeros(2), torch.tensor([[1.0, 1.0], [0.0, 1.0]]), torch.zeros(2), eye)
    with pytest.raises(ValueError, match="imaginary"):
        metrics.frechet_distance(torch.zeros(2), eye + 0.5j * swap, torch.zeros(2), eye)
    with pytest.raises(ValueError, match=r"\(d, d\)"):
        metrics.frechet_distance(torch.zeros(3), eye, torch.zeros(2), eye)
    rounded = eye.to(torch.complex128) + 1e-12j  # round-off imaginary parts are dropped
    assert metrics.frechet_distance(torch.zeros(2), rounded, torch.ones(2), eye) == pytest.approx(2.0)


def test_gaussian_stats_are_numpys_mean_and_unbiased_cov():
    f = torch.randn(500, 8, generator=torch.Generator().manual_seed(6))
    mu, sigma = metrics.gaussian_stats(f)
    assert mu.dtype == sigma.dtype == torch.float64
    f = f.double().numpy()
    assert np.allclose(mu.numpy(), f.mean(axis=0)) and np.allclose(sigma.numpy(), np.cov(f.T))  # ddof = 1


def test_fid_of_a_set_with_itself_is_zero_and_a_shift_adds_its_squared_length():
    f = torch.randn(2000, 16, generator=torch.Generator().manual_seed(7)) * torch.linspace(0.1, 2, 16)
    assert metrics.fid(f, f) < 1e-8
    shift = torch.linspace(-1, 1, 16)
    assert metrics.fid(f, f + shift) == pytest.approx(float((shift.double() ** 2).sum()), rel=1e-5)


# --------------------------------------------------------------------------------------------
# KID
# --------------------------------------------------------------------------------------------


def _mmd2_by_definition(x, y):
    """Unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3, summing over pairs one at a time."""
    k = lambda a, b: (float(np.dot(a, b)) / len(a) + 1) ** 3  # noqa: E731
    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_mmd2_unbiased_matches_the_pairwise_definition():
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(25, 6)), rng.normal(0.3, 1.2, size=(30, 6))
    got = float(metrics.mmd2_unbiased(torch.from_numpy(x), torch.from_numpy(y)))
    assert got == pytest.approx(_mmd2_by_definition(x, y), rel=1e-10)
    x25, y25 = torch.from_numpy(x[:25]), torch.from_numpy(y[:25])
    mean, std = metrics.kid(x25, y25, n_subsets=2, subset_size=25)  # each subset is a whole set, reordered
    assert mean == pytest.approx(float(metrics.mmd2_unbiased(x25, y25)), rel=1e-12) and std < 1e-12


def test_kid_is_unbiased_for_one_distribution_and_positive_for_a_shifted_one():
    gen = torch.Generator().manual_seed(9)
    x, y = torch.randn(2, 4000, 16, generator=gen)
    mean, std = metrics.kid(x, y, n_subsets=200, subset_size=100, generator=gen)
    # 0 within 4 standard errors of a 200-subset mean; the biased V-statistic, which keeps the
    # i = j terms, would sit near 2 (E k(x, x) - E k(x, y)) / 100 ~ 0.15 here, about 7 stds up
    assert abs(mean) < 4 * std / math.sqrt(200) and std < 0.05
    shifted_mean, shifted_std = metrics.kid(x, y + 0.5, n_subsets=200, subset_size=100, generator=gen)
    assert shifted_mean > 5 * shifted_std  # every single subset already tells the two apart
    with pytest.raises(ValueError, match="subset_size"):
        metrics.kid(x[:50], y, subset_size=100)


# --------------------------------------------------------------------------------------------
# Inception Score
# --------------------------------------------------------------------------------------------


def test_inception_score_is_one_for_uniform_and_c_for_confident_balanced_predictions():
    assert metrics.inception_score(torch.full((1000, 10), 0.1)) == pytest.approx((1.0, 0.0), abs=1e-12)
    for c in (2, 10, 37):
        one_hot = torch.eye(c)[torch.arange(c * 50) % c]  # every split holds each class equally often
        assert metrics.inception_score(one_hot, splits=5) == pytest.approx((c, 0.0), abs=1e-9)


def test_inception_score_matches_scipy_entropy():
    p = np.random.default_rng(10).dirichlet(np.full(10, 0.3), size=600)
    splits = np.split(p, 3)
    scores = [np.exp(np.mean(scipy.stats.entropy(s.T, s.mean(0)[:, None]))) for s in splits]
    assert metrics.inception_score(p, splits=3) == pytest.approx((np.mean(scores), np.std(scores)), rel=1e-10)


# --------------------------------------------------------------------------------------------
# Precision and recall
# --------------------------------------------------------------------------------------------


def test_knn_radii_and_manifold_membership_match_brute_force():
    rng = np.random.default_rng(11)
    x, q = rng.normal(size=(300, 5)).astype(np.float32), rng.normal(size=(200, 5)).astype(np.float32)
    dist = scipy.spatial.distance.cdist(x, x)
    radii = np.sort(dist, axis=1)[:, 3]  # column 0 is the point itself
    got = metrics.knn_radii(torch.from_numpy(x), k=3, chunk=64)
    assert np.allclose(got.numpy(), radii, rtol=1e-4)
    inside = (scipy.spatial.distance.cdist(q, x) <= radii).any(axis=1)
    assert np.array_equal(metrics.in_manifold(torch.from_numpy(q), torch.from_numpy(x), got, chunk=64).numpy(), inside)


def test_precision_recall_of_identical_far_and_partial_sets():
    gen = torch.Generator().manual_seed(12)
    real = torch.randn(2000, 8, generator=gen)
    assert metrics.precision_recall(real, real.clone()) == (1.0, 1.0)
    assert metrics.precision_recall(real, real + 100) == (0.0, 0.0)
    centres = 20 * torch.eye(8)[:4]  # four well-separated clusters, 1000 points each
    real = centres[torch.arange(4000) % 4] + torch.randn(4000, 8, generator=gen)
    full = centres[torch.arange(4000) % 4] + torch.randn(4000, 8, generator=gen)
    part = centres[0] + torch.randn(1000, 8, generator=gen)  # only one of the four
    (p_full, r_full), (p_part, r_part) = metrics.precision_recall(real, full), metrics.precision_recall(real, part)
    assert p_full > 0.85 and r_full > 0.85  # < 1: in 8-D, samples in the tails miss the k-NN balls
    assert abs(p_part - p_full) < 0.03  # the fakes are just as realistic ...
    assert abs(r_part - r_full / 4) < 0.03  # ... but cover a quarter of the data


def test_roughness_of_a_checkerboard_a_ramp_and_a_constant():
    board = (torch.arange(8)[:, None] + torch.arange(8)[None, :]) % 2 * 2.0 - 1  # +-1 alternating
    assert metrics.roughness(board[None, None]) == 2.0
    ramp = torch.arange(8.0)[None, :].expand(8, 8) / 7  # rises 1/7 along rows, constant down columns
    assert abs(metrics.roughness(ramp[None, None]) - (1 / 7) / 2) < 1e-12
    assert metrics.roughness(torch.full((2, 1, 5, 5), 0.3)) == 0.0
