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


def test_uniform_is_low_plus_the_width_times_torch_rand_from_the_same_generator():
    """Lesson 11's priors: U(0, 1) (Salimans et al.'s G) and U(-1, 1) (BiGAN), the same numbers as ``torch.rand``'s
    (so a seeded run repeats), inside the bounds and spread over them."""
    u = torch.rand(4000, 3, generator=torch.Generator().manual_seed(0))
    z = latent.uniform(4000, 3, -1.0, 1.0, generator=torch.Generator().manual_seed(0))
    assert z.shape == (4000, 3) and torch.equal(z, 2 * u - 1)
    assert torch.equal(latent.uniform(4000, 3, 0.0, 1.0, generator=torch.Generator().manual_seed(0)), u)
    assert z.min() >= -1 and z.max() < 1 and abs(float(z.mean())) < 0.05 and abs(float(z.std()) - 2 / math.sqrt(12)) < 0.02
