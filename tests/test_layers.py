import pytest
import torch
from torch import nn
from torch.testing import assert_close

from ganlib import layers


def test_mlp_has_the_requested_shape_and_returns_logits():
    net = layers.mlp(2, 1, hidden=16, depth=3)
    assert sum(isinstance(m, nn.Linear) for m in net) == 4
    assert isinstance(net[-1], nn.Linear)  # no squashing: D outputs logits
    assert net(torch.randn(5, 2)).shape == (5, 1)


def test_minibatch_std_appends_the_mean_feature_std():
    x = torch.randn(8, 3, 4, 4)
    out = layers.MinibatchStd()(x)
    expected = x.std(dim=0, unbiased=False).mean()  # one group: the whole batch
    assert out.shape == (8, 4, 4, 4)
    assert_close(out[:, :3], x)
    assert_close(out[:, 3], torch.full((8, 4, 4), float(expected)), atol=1e-4, rtol=1e-4)


def test_minibatch_std_groups_are_strided_like_stylegan():
    x = torch.randn(6, 5)
    out = layers.MinibatchStd(group_size=3)(x)
    for i in range(2):  # samples i, i+2, i+4 form group i
        members = x[i::2]
        assert_close(out[i::2, 5], members.std(0, unbiased=False).mean().expand(3), atol=1e-4, rtol=1e-4)


def test_a_collapsed_batch_has_zero_std_feature():
    out = layers.MinibatchStd()(torch.ones(4, 2).mul(3.0))
    assert out[:, 2].max() < 1e-3


def test_minibatch_std_rejects_an_indivisible_batch():
    with pytest.raises(ValueError, match="not divisible"):
        layers.MinibatchStd(group_size=4)(torch.randn(6, 2))
