import math

import torch
from torch.testing import assert_close

from ganlib import latent


def test_lerp_endpoints_and_midpoint():
    z0, z1 = torch.randn(5), torch.randn(5)
    path = latent.lerp(z0, z1, torch.tensor([0.0, 0.5, 1.0]))
    assert path.shape == (3, 5)
    assert_close(path[0], z0)
    assert_close(path[2], z1)
    assert_close(path[1], (z0 + z1) / 2)


def test_slerp_on_orthogonal_unit_vectors_is_cos_and_sin():
    e0, e1 = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0])
    t = torch.linspace(0, 1, 7)
    expected = torch.stack([torch.cos(t * math.pi / 2), torch.sin(t * math.pi / 2), torch.zeros(7)], 1)
    assert_close(latent.slerp(e0, e1, t), expected)


def test_slerp_keeps_the_norm_where_lerp_shrinks_it():
    gen = torch.Generator().manual_seed(0)
    z0, z1 = torch.randn(2, 100, generator=gen)
    z1 = z1 / z1.norm() * z0.norm()  # equal norms
    t = torch.linspace(0, 1, 11)
    assert_close(latent.slerp(z0, z1, t).norm(dim=1), z0.norm().expand(11), rtol=1e-5, atol=1e-5)
    assert latent.lerp(z0, z1, t).norm(dim=1)[5] < 0.8 * z0.norm()  # near-orthogonal in 100-D: ~ 1/sqrt(2)


def test_slerp_of_parallel_vectors_falls_back_to_lerp():
    z = torch.randn(4)
    assert_close(latent.slerp(z, 2 * z, torch.tensor([0.5])), latent.lerp(z, 2 * z, torch.tensor([0.5])))
    assert_close(latent.slerp(z.reshape(2, 2), 3 * z.reshape(2, 2), [1.0])[0], 3 * z.reshape(2, 2))
