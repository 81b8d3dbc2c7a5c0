"""Progressive growing (lesson 13): the fades are exact at their ends, pixel norm gives unit RMS, and the
schedule's alpha is fractional, ordered stabilise -> fade -> stabilise."""
import torch
from torch.testing import assert_close

from ganlib import progressive


def test_the_grown_output_is_the_upsampled_old_one_at_alpha_0_and_the_new_branch_at_1():
    gen = torch.Generator().manual_seed(0)
    old, new = torch.randn(3, 1, 8, 8, generator=gen), torch.randn(3, 1, 16, 16, generator=gen)
    assert torch.equal(progressive.fade(old, new, 0.0), old.repeat_interleave(2, 2).repeat_interleave(2, 3))
    assert torch.equal(progressive.fade(old, new, 1.0), new)
    assert_close(progressive.fade(old, new, 0.25), 0.75 * progressive.upsample(old) + 0.25 * new)


def test_the_real_image_fade_is_the_identity_at_whole_levels_and_blocky_at_alpha_0():
    x = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    assert torch.equal(progressive.fade_reals(x, 1.0), x)
    coarse = progressive.fade_reals(x, 0.0)
    blocks = coarse.reshape(2, 1, 8, 2, 8, 2)
    assert torch.equal(blocks, blocks[:, :, :, :1, :, :1].expand_as(blocks))  # constant on each 2 x 2 block
    assert_close(coarse[:, :, ::2, ::2], torch.nn.functional.avg_pool2d(x, 2))  # its value: the block's mean


def test_pixel_norm_gives_unit_channel_rms_with_the_papers_epsilon():
    x = torch.randn(4, 16, 5, 5, generator=torch.Generator().manual_seed(2)) * 7
    rms = progressive.pixel_norm(x).square().mean(dim=1).sqrt()
    assert_close(rms, torch.ones_like(rms), atol=1e-4, rtol=0)
    small = torch.full((1, 4, 1, 1), 1e-3)  # x^2 = 1e-6: eps 1e-8 keeps the RMS within 1%, 10e-8 (a port's typo) moves it 5%
    assert abs(float(progressive.pixel_norm(small).square().mean().sqrt()) - 1) < 0.01
    assert abs(float(progressive.pixel_norm(small, eps=10e-8).square().mean().sqrt()) - 1) > 0.03


def test_the_schedule_stabilises_then_fades_each_level_with_a_fractional_alpha():
    phase, levels = 1000, 4  # 4 -> 8 -> 16 -> 32
    seen = range(0, 9000, 250)
    path = [progressive.level_and_alpha(s, phase, levels) for s in seen]
    assert path[0] == (0, 1.0) and path[3] == (0, 1.0)  # 4 x 4 first stabilises: no fade at the first level
    assert path[4:8] == [(1, 0.0), (1, 0.25), (1, 0.5), (1, 0.75)]  # then 8 x 8 fades in, alpha a float
    assert path[8] == (1, 1.0) and path[12] == (2, 0.0)
    assert path[-1] == (3, 1.0) and progressive.level_and_alpha(10**9, phase, levels) == (3, 1.0)
    levels_seen = [lvl for lvl, _ in path]
    assert levels_seen == sorted(levels_seen) and max(a for _, a in path) <= 1.0
