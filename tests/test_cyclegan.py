"""CycleGAN (lesson 12): the image pool, the losses' targets and weights, resuming with the pools."""
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.testing import assert_close

from ganlib import cyclegan, data


def test_the_pool_returns_its_inputs_while_filling_then_about_half_old_ones():
    pool = cyclegan.ImagePool(50, seed=0)
    first = torch.randn(50, 1, 4, 4, requires_grad=True) * 1.0
    assert torch.equal(pool.query(first), first.detach())
    assert not pool.query(torch.randn(1, 1, 4, 4, requires_grad=True)).requires_grad  # stored and returned: detached
    n, old = 2000, 0
    for _ in range(n // 10):
        new = torch.randn(10, 1, 4, 4) + 100  # far from every earlier image: an old one is recognisable
        out = pool.query(new)
        old += int((out.flatten(1).mean(1) < 50).sum())
        pool.images = [im - 100 if im.mean() > 50 else im for im in pool.images]  # mark everything stored as old
    # binomial(2000, 1/2): mean 1000, sd 22.4; 5 sd either side
    assert abs(old - n / 2) < 5 * math.sqrt(n / 4), old


def test_a_pool_of_size_zero_is_the_identity_and_the_pool_state_round_trips():
    x = torch.randn(5, 1, 2, 2)
    assert cyclegan.ImagePool(0).query(x) is x
    a, b = cyclegan.ImagePool(4, seed=3), cyclegan.ImagePool(4, seed=9)
    a.query(torch.randn(6, 1, 2, 2))
    b.load_state_dict(a.state_dict())
    q = torch.randn(20, 1, 2, 2)
    assert torch.equal(a.query(q), b.query(q))


def test_the_losses_are_the_official_codes():
    torch.manual_seed(0)
    d_real, d_fake = torch.randn(4, 1, 14, 14), torch.randn(4, 1, 14, 14)
    assert_close(cyclegan.d_loss_cycle(d_real, d_fake),
                 (F.mse_loss(d_real, torch.ones_like(d_real)) + F.mse_loss(d_fake, torch.zeros_like(d_fake))) / 2)
    assert_close(cyclegan.g_loss_cycle(d_fake), F.mse_loss(d_fake, torch.ones_like(d_fake)))


def test_identity_loss_compares_each_generator_with_its_own_input():
    """With G the identity map, G's identity term is 0 whatever the images: it compares G(b) with b (the swapped
    target of a known port, G(a) against b, would not be)."""
    GF = cyclegan.Translators(nn.Identity(), nn.Conv2d(1, 1, 1))
    a, b = torch.randn(3, 1, 8, 8), torch.randn(3, 1, 8, 8)
    idt_g, idt_f = cyclegan.identity_losses(GF, a, b)
    assert float(idt_g) == 0.0 and float(idt_f) > 0
    a_fake, b_fake = torch.randn(3, 1, 8, 8), torch.randn(3, 1, 8, 8)  # F(b) and G(a)
    cyc_a, cyc_b = cyclegan.cycle_losses(cyclegan.Translators(nn.Identity(), nn.Identity()), a, b, a_fake, b_fake)
    assert_close(cyc_a, (b_fake - a).abs().mean())  # F(G(a)) against a
    assert_close(cyc_b, (a_fake - b).abs().mean())  # G(F(b)) against b


def test_the_resnet_generator_keeps_the_size_and_the_probe_reads_identities():
    G = cyclegan.ResnetGenerator(1, 1, width=4, n_blocks=2)
    assert G(torch.zeros(2, 1, 32, 32)).shape == (2, 1, 32, 32)
    a, partner = torch.rand(6, 1, 32, 32), torch.rand(6, 1, 32, 32)
    probe = cyclegan.steganography_probe(cyclegan.Translators(nn.Identity(), nn.Identity()), a, partner, noise=0.0)
    assert probe["cycle"] == 0.0 and probe["cycle with noise"] == 0.0
    assert_close(probe["from the partner"], float((partner - a).abs().mean()))
    assert_close(probe["high-frequency ratio"], 1.0 * float(cyclegan.high_frequency(a).mean() / cyclegan.high_frequency(partner).mean()))


def test_high_frequency_closed_forms():
    assert_close(cyclegan.high_frequency(torch.full((2, 1, 6, 6), 0.7)), torch.zeros(2))
    checker = ((torch.arange(34)[:, None] + torch.arange(34)[None, :]) % 2 * 2.0 - 1)[None, None]
    # inside: the 3x3 mean of a +-1 checkerboard is c/9, so x - blur = 8c/9 and its square 64/81
    inner = (checker - F.avg_pool2d(F.pad(checker, (1, 1, 1, 1), mode="replicate"), 3, 1))[..., 1:-1, 1:-1]
    assert_close(inner.square().mean(), torch.tensor(64 / 81))
    assert abs(float(cyclegan.high_frequency(checker)) - 64 / 81) < 0.05  # the border's replicate padding aside


RECIPE = dict(width=2, n_blocks=1, n_layers=1, d_width=4, lr=2e-4, batch_size=4, steps=4, log_every=1,
              lambda_a=10.0, lambda_b=10.0, identity=0.5, pool=3)


def test_a_run_resumes_exactly_with_its_pools(tmp_path):
    torch.manual_seed(1)
    x = torch.rand(32, 1, 28, 28) * 2 - 1
    task = data.unpaired_halves(data.edges_to_garments(data.ImageSet(x, torch.randint(10, (32,)), data.FASHION_CLASSES, "t")))
    short = cyclegan.train_cyclegan(task, "full", 0, {**RECIPE, "steps": 2}, directory=tmp_path / "a")
    (tmp_path / "a" / "unpaired-full-seed0-2.pt").rename(tmp_path / "a" / "unpaired-full-seed0-4.pt")
    resumed = cyclegan.train_cyclegan(task, "full", 0, RECIPE, directory=tmp_path / "a")
    whole = cyclegan.train_cyclegan(task, "full", 0, RECIPE, directory=tmp_path / "b")
    assert short.step == 2 and resumed.step == whole.step == 4
    assert len(resumed.extras["pool_a"].images) == 3
    for p, q in zip([*resumed.G.state_dict().values(), *resumed.D.state_dict().values()],
                    [*whole.G.state_dict().values(), *whole.D.state_dict().values()]):
        assert torch.equal(p, q)
