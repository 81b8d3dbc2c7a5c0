import math

import pytest
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
