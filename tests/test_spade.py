"""SPADE (lesson 12): the paper's argument as an exact check, and the layer's formula."""
import torch
from torch import nn
from torch.testing import assert_close

from ganlib import data, pix2pix, spade


def _constant_map(label: int, n_labels: int = 11, size: int = 8) -> torch.Tensor:
    m = torch.zeros(1, n_labels, size, size)
    m[:, label] = 1
    return m


def test_a_constant_label_map_through_conv_and_instance_norm_is_zero_whatever_the_label():
    """In float64: the normalised constant is 0 up to rounding, which 1 / sqrt(eps) magnifies ~300 times."""
    torch.manual_seed(0)
    conv = nn.Conv2d(11, 16, 3, padding=1, padding_mode="replicate").double()
    norm = nn.InstanceNorm2d(16, affine=True).double()  # even with a learned affine: beta alone, the same for every label
    outs = [norm(conv(_constant_map(k).double())) for k in range(11)]
    for out in outs:
        assert_close(out, norm.bias.view(1, -1, 1, 1).expand_as(out), atol=1e-9, rtol=0)


def test_through_spade_the_label_survives():
    torch.manual_seed(0)
    layer = spade.SPADE(16, 11, hidden=8)
    x = torch.randn(1, 16, 8, 8)
    outs = [layer(x, _constant_map(k)) for k in range(11)]
    gaps = [float((outs[k] - outs[0]).abs().max()) for k in range(1, 11)]
    assert min(gaps) > 1e-3, gaps


def test_spade_is_its_formula_with_the_map_resized_nearest():
    torch.manual_seed(0)
    layer = spade.SPADE(4, 3, hidden=5)
    x, m = torch.randn(2, 4, 8, 8), torch.rand(2, 3, 16, 16)
    m8 = m[..., ::2, ::2]  # nearest downsampling by 2 keeps every other pixel
    h = layer.shared(m8)
    mean, var = x.mean((2, 3), keepdim=True), x.var((2, 3), unbiased=False, keepdim=True)
    expected = (x - mean) / torch.sqrt(var + 1e-5) * (1 + layer.gamma(h)) + layer.beta(h)
    assert_close(layer(x, m), expected, atol=1e-5, rtol=1e-5)
    assert not any(p.requires_grad for p in layer.norm.parameters())  # the norm has no affine of its own


def test_the_generator_reads_the_class_of_the_map():
    torch.manual_seed(0)
    G, D = spade.networks(dict(widths=(8, 8, 4, 4), hidden=8, n_layers=1, d_width=4), 11)
    x = torch.rand(2, 1, 28, 28) * 2 - 1
    maps = data.label_maps(data.ImageSet(x, torch.tensor([0, 0]), data.FASHION_CLASSES, "t")).a
    other = data.label_maps(data.ImageSet(x, torch.tensor([5, 5]), data.FASHION_CLASSES, "t")).a
    G.eval()
    assert G(maps).shape == (2, 1, 32, 32)
    assert float((G(maps) - G(other)).abs().max()) > 1e-4  # same silhouette, another class: another image
    assert D(maps, G(maps)).shape == (2, 1, 14, 14)
    assert isinstance(D, pix2pix.PairDiscriminator)
