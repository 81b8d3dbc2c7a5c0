"""BigGAN's ideas (lesson 13): truncation by resampling, orthogonal regularisation and its factor of two,
class-conditional batch norm, hierarchical z."""
import math

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from ganlib import biggan


def test_truncation_resamples_rather_than_clipping_or_scaling():
    t = 1.0
    z = biggan.truncated_normal(40_000, 4, t, generator=torch.Generator().manual_seed(0))
    assert z.abs().max() <= t
    assert (z.abs() > 0.999 * t).float().mean() < 0.002  # clipping would pile about 32% of the mass at +-t
    phi, Phi = math.exp(-t * t / 2) / math.sqrt(2 * math.pi), 0.5 * (1 + math.erf(t / math.sqrt(2)))
    var = 1 - 2 * t * phi / (2 * Phi - 1)  # the variance of N(0, 1) truncated to [-t, t]: 0.291 at t = 1
    assert abs(float(z.var()) - var) < 0.01
    with pytest.raises(ValueError):
        biggan.truncated_normal(2, 2, 0.0)


def test_the_official_ortho_gradient_is_half_the_gradient_of_the_penalty():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 6, 3).double()
    conv.weight.grad = torch.zeros_like(conv.weight)
    biggan.add_ortho_gradient(conv, strength=1.0)
    official = conv.weight.grad.clone()
    (autograd,) = torch.autograd.grad(biggan.ortho_penalty(conv.weight), conv.weight)
    assert_close(official, autograd / 2)  # code strength s = the paper's beta = s / 2
    assert conv.bias.grad is None  # vectors are left alone


def test_the_penalty_is_zero_for_orthogonal_rows_of_any_norm_and_skip_is_honoured():
    q, _ = torch.linalg.qr(torch.randn(8, 8, dtype=torch.float64))
    assert float(biggan.ortho_penalty(q[:5] * torch.arange(1, 6, dtype=torch.float64)[:, None])) < 1e-20
    emb, lin = nn.Embedding(10, 4), nn.Linear(4, 4)
    model = nn.ModuleDict({"shared": emb, "lin": lin})
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    biggan.add_ortho_gradient(model, 1e-2, skip=(emb,))
    assert (emb.weight.grad == 0).all() and (lin.weight.grad != 0).any()


def test_class_conditional_batch_norm_starts_as_batch_norm_and_reads_the_condition():
    torch.manual_seed(0)
    ccbn, bn = biggan.ClassConditionalBatchNorm(5, 7), nn.BatchNorm2d(5, affine=False)
    x, y = torch.randn(8, 5, 4, 4), torch.randn(8, 7)
    assert_close(ccbn(x, y), bn(x))
    nn.init.normal_(ccbn.gain.weight)
    nn.init.normal_(ccbn.bias.weight)
    out = ccbn(x, y)
    assert_close(out, bn(x) * (1 + y @ ccbn.gain.weight.T)[:, :, None, None] + (y @ ccbn.bias.weight.T)[:, :, None, None])


def test_hierarchical_chunks_split_z_equally():
    z = torch.arange(24.0).reshape(2, 12)
    chunks = biggan.hierarchical_chunks(z, 4)
    assert [c.shape for c in chunks] == [(2, 3)] * 4 and torch.equal(torch.cat(chunks, 1), z)
    with pytest.raises(ValueError, match="equal chunks"):
        biggan.hierarchical_chunks(z, 5)
