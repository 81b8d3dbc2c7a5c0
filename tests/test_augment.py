"""DiffAugment's ops and StyleGAN2-ADA's controller (lesson 13): what each op does, that G's gradient flows
through it, and the controller's official step."""
import pytest
import torch

from ganlib import augment


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_brightness_adds_one_constant_per_image_and_contrast_keeps_the_mean():
    x = torch.rand(16, 1, 8, 8, generator=_gen()) * 2 - 1
    shift = augment.brightness(x, _gen(1)) - x
    per_image = shift.flatten(1)
    assert torch.allclose(per_image, per_image[:, :1].expand_as(per_image))
    assert per_image.abs().max() <= 0.5 and per_image[:, 0].std() > 0.1
    c = augment.contrast(x, _gen(2))
    torch.testing.assert_close(c.mean((1, 2, 3)), x.mean((1, 2, 3)))
    assert torch.equal(augment.saturation(x, _gen(3)), x)  # one channel: the channel mean is the image


def test_translation_is_an_integer_shift_within_an_eighth_with_zero_fill():
    x = torch.rand(12, 1, 16, 16, generator=_gen()) + 1  # positive: a zero is fill, not content
    out = augment.translation(x, _gen(4))
    for i in range(len(x)):
        found = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                 if torch.equal(out[i], _shifted(x[i], dy, dx))]
        assert len(found) == 1, i
    assert not torch.equal(out, x)


def _shifted(img, dy, dx):
    """img (C, H, W) read at (row + dy, col + dx), zero where that falls outside."""
    C, H, W = img.shape
    out = torch.zeros_like(img)
    for r in range(H):
        for c in range(W):
            if 0 <= r + dy < H and 0 <= c + dx < W:
                out[:, r, c] = img[:, r + dy, c + dx]
    return out


def test_cutout_zeroes_one_square_of_half_the_side_clipped_at_the_border():
    x = torch.ones(64, 1, 16, 16)
    out = augment.cutout(x, _gen(5))
    zeros = (out == 0)[:, 0]
    for z in zeros:
        rows, cols = z.any(1).nonzero().flatten(), z.any(0).nonzero().flatten()
        assert z[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()  # one filled rectangle
        assert len(rows) <= 8 and len(cols) <= 8 and int(z.sum()) == len(rows) * len(cols)
    assert (zeros.flatten(1).sum(1) == 64).float().mean() > 0.15  # whole when the centre is 4-12 in both: (9/17)^2 = 28%


def test_every_op_passes_gradients_and_cutout_none_inside_its_square():
    for name in ("color", "translation", "cutout"):
        x = (torch.rand(4, 1, 16, 16, generator=_gen()) + 1).requires_grad_()
        out = augment.diff_augment(x, name, generator=_gen(6))
        (g,) = torch.autograd.grad(out.square().sum(), x)
        assert torch.isfinite(g).all() and g.abs().sum() > 0, name
        if name == "cutout":
            assert (g[out == 0] == 0).all() and (g[out != 0] != 0).all()


def test_probability_zero_is_the_identity_and_the_policy_is_checked():
    x = torch.rand(8, 1, 8, 8, generator=_gen())
    assert torch.equal(augment.diff_augment(x, p=0.0, generator=_gen(7)), x)
    half = augment.diff_augment(x, "cutout", p=0.5, generator=_gen(8))
    changed = (half != x).flatten(1).any(1).float().mean()
    assert 0 < changed < 1
    with pytest.raises(ValueError, match="unknown augmentation"):
        augment.diff_augment(x, "flip")


def test_the_controller_moves_by_the_official_step_and_never_below_zero():
    ada = augment.AdaptiveP()  # target 0.6, every 4 minibatches, 500 kimg
    step = 64 * 4 / (500 * 1000)
    assert ada.step_size(64) == step
    assert ada.update(0.9, 64) == pytest.approx(step)
    assert ada.update(0.9, 64) == pytest.approx(2 * step)
    assert ada.update(0.6, 64) == pytest.approx(2 * step)  # at the target: no move
    assert ada.update(0.1, 64) == pytest.approx(step)
    for _ in range(5):
        ada.update(-1.0, 64)
    assert ada.p == 0.0
    other = augment.AdaptiveP()
    ada.update(1.0, 64)
    other.load_state_dict(ada.state_dict())
    assert other.p == ada.p


def test_the_overfitting_signal_is_the_mean_sign():
    assert float(augment.overfitting_signal(torch.tensor([2.0, 0.5, -1.0, 3.0]))) == 0.5


def test_the_leak_detector_finds_cutouts_grey_squares_and_not_the_black_background():
    x = torch.full((4, 1, 32, 32), -1.0)
    x[1, :, 5:15, 8:18] = 0.0  # a 10 x 10 mid-grey square
    x[2, :, 5:14, 8:18] = 0.0  # 9 rows: too small
    x[3, :, 4:20, 4:20] = 0.02  # grey within the tolerance
    assert augment.grey_patch_share(x) == 0.5
    cut = augment.cutout(torch.full((200, 1, 32, 32), -1.0), _gen(9))
    assert augment.grey_patch_share(cut) > 0.5  # what a G that learned cutout would draw
