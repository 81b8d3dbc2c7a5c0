"""Lesson 10's loss zoo: the losses (``ganlib.losses``), their theory (``ganlib.theory``) and the runs
(``ganlib.zoo``), each checked against something written out independently of the implementation."""

import pytest
import torch
import torch.nn.functional as F
from scipy.spatial.distance import cityblock
from scipy.stats import norm
from torch import nn
from torch.testing import assert_close

from ganlib import data, layers, losses, theory, train, wgan, zoo


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread for this file, restored after: these models are tiny, and on a machine whose
    cores are busy two threads spin against each other (the toy runs measured 133 s with 2, 8 s with 1)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _scores(n_real=64, n_fake=64, seed=0, scale=3.0):
    gen = torch.Generator().manual_seed(seed)
    return scale * torch.randn(n_real, generator=gen), scale * torch.randn(n_fake, generator=gen)


# --- 1. each loss against an independent computation ------------------------------------------


@pytest.mark.parametrize("a, b", [(-1.0, 1.0), (0.0, 1.0)])
def test_lsgan_d_loss_is_half_the_mse_to_targets_b_and_a(a, b):
    """LSGAN's D loss = 1/2 MSE(D(x), b) + 1/2 MSE(D(G(z)), a), with F.mse_loss, for both codings."""
    d_real, d_fake = _scores(64, 48)
    expected = 0.5 * F.mse_loss(d_real, torch.full_like(d_real, b)) + 0.5 * F.mse_loss(d_fake, torch.full_like(d_fake, a))
    assert_close(losses.d_loss_least_squares(d_real, d_fake, a=a, b=b), expected)
    if (a, b) == (-1.0, 1.0):
        assert_close(losses.d_loss_least_squares(d_real, d_fake), expected)  # the paper's coding is the default


@pytest.mark.parametrize("c", [0.0, 1.0])
def test_lsgan_g_loss_is_half_the_mse_to_target_c(c):
    """LSGAN's G loss = 1/2 MSE(D(G(z)), c) (default c = 0)."""
    _, d_fake = _scores()
    expected = 0.5 * F.mse_loss(d_fake, torch.full_like(d_fake, c))
    assert_close(losses.g_loss_least_squares(d_fake, c=c), expected)
    if c == 0.0:
        assert_close(losses.g_loss_least_squares(d_fake), expected)


def test_rsgan_losses_are_bce_with_logits_on_paired_differences():
    """RSGAN: D's loss = BCE-with-logits(C_r - C_f, 1), G's = BCE-with-logits(C_f - C_r, 1), pair by pair."""
    d_real, d_fake = _scores()
    ones = torch.ones(64)
    assert_close(losses.d_loss_relativistic(d_real, d_fake), F.binary_cross_entropy_with_logits(d_real - d_fake, ones))
    assert_close(losses.g_loss_relativistic(d_fake, d_real), F.binary_cross_entropy_with_logits(d_fake - d_real, ones))


def test_rasgan_losses_are_bce_with_logits_on_scores_minus_the_other_side_mean():
    """RaSGAN: D = 1/2 [BCE(C_r - mean C_f, 1) + BCE(C_f - mean C_r, 0)], G the same with 1 and 0 swapped,
    computed from scratch with F.binary_cross_entropy_with_logits (unequal batch sizes)."""
    d_real, d_fake = _scores(64, 40)
    bce = F.binary_cross_entropy_with_logits
    rel_r, rel_f = d_real - d_fake.mean(), d_fake - d_real.mean()
    d_expected = 0.5 * (bce(rel_r, torch.ones_like(rel_r)) + bce(rel_f, torch.zeros_like(rel_f)))
    g_expected = 0.5 * (bce(rel_f, torch.ones_like(rel_f)) + bce(rel_r, torch.zeros_like(rel_r)))
    assert_close(losses.d_loss_relativistic_average(d_real, d_fake), d_expected)
    assert_close(losses.g_loss_relativistic_average(d_fake, d_real), g_expected)


def test_ralsgan_losses_are_half_the_mse_of_shifted_scores_to_plus_and_minus_one():
    """RaLSGAN: D = 1/2 [MSE(C_r - mean C_f, +1) + MSE(C_f - mean C_r, -1)]; G = 1/2 [MSE(C_f - mean C_r, +1)
    + MSE(C_r - mean C_f, -1)], with F.mse_loss (unequal batch sizes)."""
    d_real, d_fake = _scores(64, 40)
    rel_r, rel_f = d_real - d_fake.mean(), d_fake - d_real.mean()
    plus, minus = lambda t: torch.ones_like(t), lambda t: -torch.ones_like(t)
    d_expected = 0.5 * (F.mse_loss(rel_r, plus(rel_r)) + F.mse_loss(rel_f, minus(rel_f)))
    g_expected = 0.5 * (F.mse_loss(rel_f, plus(rel_f)) + F.mse_loss(rel_r, minus(rel_r)))
    assert_close(losses.d_loss_relativistic_average_ls(d_real, d_fake), d_expected)
    assert_close(losses.g_loss_relativistic_average_ls(d_fake, d_real), g_expected)


def test_energy_losses_match_an_explicit_per_sample_loop():
    """EBGAN: D = (1/N) sum_i e_real_i + (1/M) sum_j max(0, m - e_fake_j); G = (1/M) sum_j e_fake_j, in Python loops."""
    gen = torch.Generator().manual_seed(1)
    e_real, e_fake = 2 * torch.rand(10, generator=gen).double(), 2 * torch.rand(7, generator=gen).double()
    margin = 1.1
    real_term = sum(float(e) for e in e_real) / len(e_real)
    fake_term = sum(max(0.0, margin - float(e)) for e in e_fake) / len(e_fake)
    assert_close(losses.d_loss_energy(e_real, e_fake, margin), torch.tensor(real_term + fake_term, dtype=torch.float64))
    assert_close(losses.g_loss_energy(e_fake), torch.tensor(sum(float(e) for e in e_fake) / 7, dtype=torch.float64))


# --- 2. symmetry: G's relativistic loss is D's with the roles swapped ----------------------------


@pytest.mark.parametrize("d_loss, g_loss", [
    (losses.d_loss_relativistic, losses.g_loss_relativistic),
    (losses.d_loss_relativistic_average, losses.g_loss_relativistic_average),
    (losses.d_loss_relativistic_average_ls, losses.g_loss_relativistic_average_ls),
])
def test_relativistic_g_loss_is_d_loss_with_real_and_fake_swapped(d_loss, g_loss):
    """g_loss(d_fake=A, d_real=B) == d_loss(d_real=A, d_fake=B), and differs from d_loss on the unswapped scores."""
    a, b = _scores(seed=2)
    assert_close(g_loss(a, b), d_loss(a, b))
    assert not torch.allclose(g_loss(a, b), d_loss(b, a))  # the swap matters: these are not symmetric functions


# --- 3. RaSGAN's G keeps the real term (PyTorch-GAN #52) ------------------------------------------


def test_rasgan_g_loss_has_a_gradient_wrt_the_real_scores_in_closed_form():
    """d/dr_k of RaSGAN's G loss = 1/(2N) [mean_i sigmoid(mean r - f_i) + sigmoid(r_k - mean f)] != 0
    (autograd vs the closed form), while the plain non-saturating G loss, the one PyTorch-GAN #52's
    code ended up using, has no gradient wrt d_real at all."""
    d_real, d_fake = _scores(32, 32, seed=3)
    d_real = d_real.double().requires_grad_(True)
    d_fake = d_fake.double()
    (grad,) = torch.autograd.grad(losses.g_loss_relativistic_average(d_fake, d_real), d_real)
    r, f, n = d_real.detach(), d_fake, len(d_real)
    expected = (torch.sigmoid(r.mean() - f).mean() + torch.sigmoid(r - f.mean())) / (2 * n)
    assert_close(grad, expected)
    assert grad.abs().min() > 1e-4
    (plain,) = torch.autograd.grad(losses.g_loss_nonsaturating(d_fake.requires_grad_(True)) + 0 * d_real.sum(), d_real)
    assert_close(plain, torch.zeros_like(plain))


# --- 4. AlexiaJM/RelativisticGAN #2: mean(fake) against each real in both terms --------------------


def test_rasgan_d_loss_is_not_the_first_release_bug():
    """The buggy release used (mean C_f - C_r) where (C_f - mean C_r) belongs; ganlib's loss equals the
    correct formula and differs from the buggy one on random scores."""
    d_real, d_fake = _scores(64, 64, seed=4)
    d_real, d_fake = 1 + 0.5 * d_real, -1 + d_fake  # reals tight, fakes spread: where the two formulas part
    bce = F.binary_cross_entropy_with_logits
    ones, zeros = torch.ones(64), torch.zeros(64)
    buggy = 0.5 * (bce(d_real - d_fake.mean(), ones) + bce(d_fake.mean() - d_real, zeros))
    correct = 0.5 * (bce(d_real - d_fake.mean(), ones) + bce(d_fake - d_real.mean(), zeros))
    ours = losses.d_loss_relativistic_average(d_real, d_fake)
    assert_close(ours, correct)
    assert (ours - buggy).abs() > 1e-2


# --- 5. no sigmoid before LSGAN's square ---------------------------------------------------------


@pytest.mark.parametrize("c", [0.0, 1.0])
def test_lsgan_g_gradient_does_not_saturate_without_a_sigmoid(c):
    """At a score of -10 a sigmoid before the MSE leaves G a gradient < 1e-3; ganlib's g_loss_least_squares
    gives (d - c) / N, the closed form of d/dd_k 1/2 mean (d - c)^2."""
    n = 4
    d = torch.full((n,), -10.0, dtype=torch.float64, requires_grad=True)
    (sigmoid_grad,) = torch.autograd.grad(0.5 * ((torch.sigmoid(d) - c) ** 2).mean(), d)
    (ours,) = torch.autograd.grad(losses.g_loss_least_squares(d, c=c), d)
    assert sigmoid_grad.abs().max() < 1e-3
    assert_close(ours, torch.full_like(d, (-10.0 - c) / n))
    assert ours.abs().min() > 1.0


# --- 6. the pulling-away term --------------------------------------------------------------------


def test_pulling_away_is_zero_for_orthogonal_codes_and_one_for_identical_codes():
    """f_PT = 0 for the rows of the identity (orthogonal), 1 for a batch of one code repeated (at any scale)."""
    assert_close(losses.pulling_away(torch.eye(5)), torch.tensor(0.0))
    s = torch.tensor([0.3, -1.2, 2.0])
    same = torch.stack([s, 2 * s, 0.5 * s, s])
    assert_close(losses.pulling_away(same), torch.tensor(1.0))


def test_pulling_away_is_squared_so_opposite_codes_do_not_cancel():
    """A collapsed batch of codes s and -s: squared cosines give 1; unsquared ones (the port bug, written here)
    cancel: exactly 0 for 10 copies of s and 6 of -s ((10 - 6)^2 = 10 + 6), and -1/(2n - 1) ~ 0 for n pairs."""
    gen = torch.Generator().manual_seed(5)
    s = torch.randn(8, generator=gen, dtype=torch.float64)

    def unsquared(codes):
        unit = F.normalize(codes, dim=1)
        cos = unit @ unit.T
        n = len(codes)
        return (cos.sum() - cos.diagonal().sum()) / (n * (n - 1))

    mixed = torch.stack([s] * 10 + [-s] * 6)
    assert_close(losses.pulling_away(mixed), torch.tensor(1.0, dtype=torch.float64))
    assert_close(unsquared(mixed), torch.tensor(0.0, dtype=torch.float64), rtol=0, atol=1e-12)
    pairs = torch.stack([s, -s] * 32)
    assert_close(losses.pulling_away(pairs), torch.tensor(1.0, dtype=torch.float64))
    assert_close(unsquared(pairs), torch.tensor(-1 / 63, dtype=torch.float64))


def test_pulling_away_matches_a_double_loop_over_distinct_pairs():
    """f_PT = 1/(N(N-1)) sum_{i != j} (s_i.s_j / (|s_i||s_j|))^2, as a Python double loop on random codes."""
    gen = torch.Generator().manual_seed(6)
    codes = torch.randn(7, 5, generator=gen, dtype=torch.float64)
    total = 0.0
    for i in range(7):
        for j in range(7):
            if i != j:
                total += (float(codes[i] @ codes[j]) / (float(codes[i].norm()) * float(codes[j].norm()))) ** 2
    assert_close(losses.pulling_away(codes), torch.tensor(total / 42, dtype=torch.float64))
    assert_close(losses.pulling_away(codes.reshape(7, 5, 1, 1)), torch.tensor(total / 42, dtype=torch.float64))


# --- 7. EBGAN's margin is per sample ---------------------------------------------------------------


def test_energy_d_loss_applies_the_margin_per_sample_not_to_the_batch_mean():
    """With fakes [0.2, 0.5, 3.0] and m = 1: per sample mean(relu(m - e)) = (0.8 + 0.5 + 0) / 3; the port's
    relu(m - mean e) = relu(1 - 1.2333) = 0 lets the one very bad fake pay for the others."""
    e_real, e_fake, m = torch.tensor([0.1, 0.3]), torch.tensor([0.2, 0.5, 3.0]), 1.0
    per_sample = 0.2 + (0.8 + 0.5 + 0.0) / 3
    batch_mean_bug = e_real.mean() + F.relu(m - e_fake.mean())
    ours = losses.d_loss_energy(e_real, e_fake, m)
    assert_close(ours, torch.tensor(per_sample))
    assert (ours - batch_mean_bug).abs() > 0.4


# --- 8. theory on a 1-D grid ---------------------------------------------------------------------

X = torch.linspace(-6, 6, 2001, dtype=torch.float64)
DX = float(X[1] - X[0])


def _density(values):
    p = torch.as_tensor(values, dtype=torch.float64)
    return p / (p.sum() * DX)


P = _density(0.4 * norm.pdf(X, -2, 0.6) + 0.6 * norm.pdf(X, 1.5, 1.0))
Q = _density(0.7 * norm.pdf(X, 0.5, 1.3) + 0.3 * norm.pdf(X, -3, 0.4))


def _pointwise(loss, candidates, p, q, *args):
    """loss(d, p_i, q_i, dx, ...) for every grid point i and every candidate d: shape (points, candidates)."""
    one = lambda d, pi, qi: loss(d, pi, qi, DX, *args)  # noqa: E731
    return torch.vmap(torch.vmap(one, in_dims=(0, None, None)), in_dims=(None, 0, 0))(candidates, p, q)


@pytest.mark.parametrize("a, b", [(-1.0, 1.0), (0.0, 1.0)])
def test_least_squares_optimal_d_is_the_pointwise_argmin_of_d_loss(a, b):
    """D* = argmin over a dense grid of candidate values (spacing h) of the pointwise least_squares_d_loss,
    to within h; the midpoint (a + b) / 2 where both densities vanish."""
    candidates = torch.linspace(a - 0.5, b + 0.5, 2001, dtype=torch.float64)
    h = float(candidates[1] - candidates[0])
    values = _pointwise(lambda d, p, q, dx: theory.least_squares_d_loss(d, p, q, dx, a=a, b=b), candidates, P, Q)
    best = candidates[values.argmin(dim=1)]
    assert_close(theory.optimal_discriminator_least_squares(P, Q, a=a, b=b), best, rtol=0, atol=h)
    zero = torch.zeros(3, dtype=torch.float64)
    assert_close(theory.optimal_discriminator_least_squares(zero, zero, a=a, b=b), torch.full_like(zero, (a + b) / 2))


@pytest.mark.parametrize("a, b, c", [(-1.0, 1.0, 0.0), (0.0, 2.0, 1.0)])
def test_twice_least_squares_g_value_is_the_pearson_chi2_of_mao_et_al(a, b, c):
    """With b - c = 1 and b - a = 2: 2 C(G) = integral (p - q)^2 / (p + q) dx (summed directly) =
    pearson_chi2(2q, p + q); C(G) is also D's least-squares loss at D* with its target b replaced by c
    on both terms, i.e. 1/2 integral (p + q)(D* - c)^2, here recomputed from the argmin-checked D*."""
    direct = ((P - Q) ** 2 / (P + Q)).sum() * DX
    value = theory.least_squares_g_value(P, Q, DX, a=a, b=b, c=c)
    assert_close(2 * value, direct)
    assert_close(theory.pearson_chi2(2 * Q, P + Q, DX), direct)
    assert direct > 0.1  # the two mixtures are far enough apart for the check to bite
    assert_close(theory.least_squares_g_value(P, P, DX, a=a, b=b, c=c), torch.tensor(0.0, dtype=torch.float64))


def test_pearson_chi2_matches_the_gaussian_closed_form():
    """chi^2(N(m1, s1^2) || N(m2, s2^2)) = s2^2 / (s1 sqrt(2 s2^2 - s1^2)) exp((m1 - m2)^2 / (2 s2^2 - s1^2)) - 1
    (for 2 s2^2 > s1^2), on a wide grid; unequal widths make it asymmetric, so the argument order is checked."""
    x = torch.linspace(-15, 15, 30001, dtype=torch.float64)
    dx = float(x[1] - x[0])
    m1, m2, s1, s2 = 0.6, -0.4, 0.9, 1.2
    p, q = torch.as_tensor(norm.pdf(x, m1, s1)), torch.as_tensor(norm.pdf(x, m2, s2))
    v = 2 * s2**2 - s1**2
    expected = torch.tensor(s2**2 / (s1 * v**0.5), dtype=torch.float64) * torch.exp(torch.tensor((m1 - m2) ** 2 / v)) - 1
    assert_close(theory.pearson_chi2(p, q, dx), expected, rtol=1e-6, atol=1e-8)
    assert (theory.pearson_chi2(q, p, dx) - expected).abs() > 0.05
    zero = torch.zeros(4, dtype=torch.float64)
    assert_close(theory.pearson_chi2(zero, zero, 1.0), torch.tensor(0.0, dtype=torch.float64))


def test_total_variation_matches_scipy_and_the_one_sided_integral():
    """TV = 1/2 cityblock(p, q) dx (scipy) = integral over {p > q} of (p - q) dx = 1 - integral min(p, q) dx."""
    tv = theory.total_variation(P, Q, DX)
    assert_close(tv, torch.tensor(0.5 * cityblock(P.numpy(), Q.numpy()) * DX, dtype=torch.float64))
    assert_close(tv, torch.where(P > Q, P - Q, torch.zeros_like(P)).sum() * DX)
    assert_close(tv, 1 - torch.minimum(P, Q).sum() * DX)
    assert 0.1 < tv < 1


@pytest.mark.parametrize("margin", [1.0, 2.5])
def test_optimal_energy_d_loss_is_the_minimum_over_candidate_energies(margin):
    """min over D >= 0 of energy_d_loss, taken pointwise over a candidate grid on [0, 2m] (0 and m on it),
    summed over the points, equals optimal_energy_d_loss; with p_g = p_data it equals m."""
    candidates = torch.linspace(0, 2 * margin, 401, dtype=torch.float64)  # step m / 200: 0 and m are candidates
    for p, q in ((P, Q), (P, P)):
        values = _pointwise(theory.energy_d_loss, candidates, p, q, margin)
        assert_close(theory.optimal_energy_d_loss(p, q, DX, margin), values.min(dim=1).values.sum())
    assert_close(theory.optimal_energy_d_loss(P, P, DX, margin), torch.tensor(margin, dtype=torch.float64))
    assert theory.optimal_energy_d_loss(P, Q, DX, margin) < margin - 0.1


# --- 9. the autoencoder discriminator ------------------------------------------------------------


def test_autoencoder_energy_is_the_mean_squared_reconstruction_error():
    """A projection autoencoder (keep the first 2 of 3 coordinates) has energy x_3^2 / 3, in closed form;
    toy_autoencoder's energies are >= 0, one per sample, = mean over coordinates of (Dec(Enc(x)) - x)^2."""
    enc, dec = nn.Linear(3, 2, bias=False), nn.Linear(2, 3, bias=False)
    with torch.no_grad():
        enc.weight.copy_(torch.tensor([[1.0, 0, 0], [0, 1, 0]]))
        dec.weight.copy_(enc.weight.T)
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(6, 3, generator=gen)
    energy, code = zoo.AutoencoderD(enc, dec).energy_and_code(x)
    assert_close(energy, x[:, 2] ** 2 / 3)
    assert_close(code, x[:, :2])
    torch.manual_seed(7)
    D = zoo.toy_autoencoder(2, 16, 2, code=5)
    x = torch.randn(9, 2, generator=gen)
    e = D(x)
    assert e.shape == (9,) and (e >= 0).all()
    with torch.no_grad():
        by_hand = torch.stack([((D.decoder(D.encoder(xi[None])) - xi) ** 2).sum() / 2 for xi in x])
    assert_close(e.detach(), by_hand)
    assert D.energy_and_code(x)[1].shape == (9, 5)


def test_image_autoencoder_shapes_and_per_sample_energy():
    """image_autoencoder((1, 28, 28), 8): (4, 1, 28, 28) -> energies (4,) >= 0 = the per-image mean squared
    error, codes (4, 64); in eval mode changing one image leaves the other images' energies unchanged."""
    torch.manual_seed(8)
    D = zoo.image_autoencoder((1, 28, 28), 8).eval()
    gen = torch.Generator().manual_seed(8)
    x = torch.rand(4, 1, 28, 28, generator=gen) * 2 - 1
    with torch.no_grad():
        energy, code = D.energy_and_code(x)
        assert energy.shape == (4,) and code.shape == (4, 64) and (energy >= 0).all()
        recon = D.decoder(D.encoder(x).reshape(4, 64))
        assert_close(energy, ((recon - x) ** 2).sum(dim=(1, 2, 3)) / (28 * 28))
        changed = x.clone()
        changed[2] = 1.0  # a blank white image: a different squared norm, so a different reconstruction error
        new = D(changed)
    assert_close(new[[0, 1, 3]], energy[[0, 1, 3]])
    assert (new[2] - energy[2]).abs() > 1e-2


# --- 10. the steps: each updates its own player only ------------------------------------------------


def _params(module):
    return [p.detach().clone() for p in module.parameters()]


def _same(before, module):
    return all(torch.equal(a, b) for a, b in zip(before, module.parameters()))


def _toy_players(energy: bool):
    torch.manual_seed(9)
    G = wgan.ToyGenerator(2, 2, 16, 2)
    D = zoo.toy_autoencoder(2, 16, 2) if energy else nn.Sequential(layers.mlp(2, 1, 16, 2), nn.Flatten(0))
    return G, D, train.adam(G, D, 1e-3)


@pytest.mark.parametrize("name", ["RaSGAN", "RaLSGAN", "EBGAN"])
def test_g_step_leaves_d_alone_and_d_step_leaves_g_alone(name):
    """relativistic_steps / energy_steps: one g_step changes G and not D (D frozen, its flags restored); one
    d_step changes D and not G."""
    G, D, (opt_G, opt_D) = _toy_players(name == "EBGAN")
    if name == "EBGAN":
        d_step, g_step = zoo.energy_steps(G, D, opt_G, opt_D, data.ring(), 32, margin=1.0)
    else:
        loss = zoo.LOSSES[name]
        d_step, g_step = zoo.relativistic_steps(G, D, opt_G, opt_D, data.ring(), 32, d_loss=loss.d_loss, g_loss=loss.g_loss)
    g0, d0 = _params(G), _params(D)
    logs = g_step()
    assert torch.isfinite(logs["loss_G"])
    assert _same(d0, D) and not _same(g0, G)
    assert all(p.grad is None for p in D.parameters())  # frozen: G's backward left D no gradient at all
    assert all(p.requires_grad for p in D.parameters())
    g1, d1 = _params(G), _params(D)
    logs = d_step()
    assert torch.isfinite(logs["loss_D"])
    assert _same(g1, G) and not _same(d1, D)


def test_relativistic_g_step_minimises_g_loss_of_fake_and_real_scores():
    """relativistic_steps' g_step returns g_loss(D(G(z)), D(x)) for a real batch it drew: a recording g_loss
    sees fakes scored with grad into G and real scores with none into D, both of batch size."""
    G, D, (opt_G, opt_D) = _toy_players(False)
    seen = {}

    def g_loss(d_fake, d_real):
        seen["fake"], seen["real"] = d_fake, d_real
        return losses.g_loss_relativistic_average(d_fake, d_real)

    _, g_step = zoo.relativistic_steps(G, D, opt_G, opt_D, data.ring(), 32, d_loss=losses.d_loss_relativistic_average,
                                       g_loss=g_loss)
    logs = g_step()
    assert seen["fake"].shape == seen["real"].shape == (32,)
    assert seen["fake"].requires_grad and not seen["real"].requires_grad
    assert_close(logs["loss_G"], losses.g_loss_relativistic_average(seen["fake"], seen["real"]).detach())


def test_losses_table():
    """The lesson's table: GAN, LSGAN, RaSGAN, RaLSGAN, EBGAN in this order; only the Ra losses are relativistic."""
    assert zoo.NAMES == ("GAN", "LSGAN", "RaSGAN", "RaLSGAN", "EBGAN")
    assert [zoo.LOSSES[n].relativistic for n in zoo.NAMES[:4]] == [False, False, True, True]
    assert zoo.LOSSES["LSGAN"].d_loss is losses.d_loss_least_squares
    assert zoo.LOSSES["RaLSGAN"].g_loss is losses.g_loss_relativistic_average_ls


def test_run_names():
    """toy_name follows its docstring's example; image_name spells out width, batch and steps."""
    assert zoo.toy_name("ring", "LSGAN", 0, {"toy_steps": 3000}) == "toy-ring-LSGAN-seed0-3000"
    recipe = {"width": 8, "batch_size": 16, "steps": 12}
    assert zoo.image_name("mnist", "EBGAN", 1, recipe) == "mnist-EBGAN-seed1-w8-b16-12"


# --- 11. the toy runs ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", zoo.NAMES)
def test_train_toy_runs_and_resumes_from_its_checkpoint(name, tmp_path):
    """train_toy on the smoke recipe trains to toy_steps, writes toy_name's checkpoint, and a second call
    (pretrained=False) resumes from it: the same step, history rows, the same weights, no training."""
    recipe = zoo.TOYS_10["smoke"]
    state = zoo.train_toy(name, data.ring(), "ring", 0, recipe, directory=tmp_path, pretrained=False)
    assert state.step == recipe["toy_steps"]
    assert (tmp_path / f"{zoo.toy_name('ring', name, 0, recipe)}.pt").exists()
    steps, every = recipe["toy_steps"], recipe["log_every"]
    assert state.history.steps == sorted({*range(every, steps + 1, every), steps})  # every log_every steps, and the last
    assert all(torch.isfinite(torch.tensor(v)).all() for v in state.history.values.values())
    resumed = zoo.train_toy(name, data.ring(), "ring", 0, recipe, directory=tmp_path, pretrained=False)
    assert resumed.step == recipe["toy_steps"] and len(resumed.history.steps) > 0
    assert resumed.history.steps == state.history.steps
    assert all(torch.equal(a, b) for a, b in zip(state.G.state_dict().values(), resumed.G.state_dict().values()))


def test_rasgan_d_objective_on_a_grid_is_the_batch_loss_in_expectation_and_log_2_bounds_it_at_p_equal_q():
    """theory.relativistic_average_d_loss integrates losses.d_loss_relativistic_average: for two uniform
    distributions on grid points it equals the batch loss on exactly those points; at p = q no critic
    goes below log 2 (random critics), a constant one reaches it; at p != q an optimised critic goes below."""
    import math

    x = torch.linspace(-4, 4, 81, dtype=torch.float64)
    dx = float(x[1] - x[0])
    p = torch.exp(-0.5 * (x + 1) ** 2)
    q = torch.exp(-0.5 * ((x - 1) / 0.7) ** 2)
    p, q = p / (p.sum() * dx), q / (q.sum() * dx)
    c = torch.sin(x) + 0.3 * x
    real_at, fake_at = torch.arange(0, 40), torch.arange(25, 65)  # uniform on 40 points each: masses 1/40
    p_u, q_u = torch.zeros_like(x), torch.zeros_like(x)
    p_u[real_at], q_u[fake_at] = 1 / (40 * dx), 1 / (40 * dx)
    batch = losses.d_loss_relativistic_average(c[real_at], c[fake_at])  # the training loss on those batches
    assert_close(theory.relativistic_average_d_loss(c, p_u, q_u, dx), batch)
    gen = torch.Generator().manual_seed(0)
    for _ in range(50):
        assert float(theory.relativistic_average_d_loss(3 * torch.randn(81, generator=gen, dtype=torch.float64), p, p, dx)) >= math.log(2) - 1e-12
    assert_close(theory.relativistic_average_d_loss(torch.full_like(x, 2.0), p, p, dx), torch.tensor(math.log(2), dtype=torch.float64))
    critic = torch.zeros(81, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([critic], lr=0.1)
    for _ in range(300):
        opt.zero_grad()
        theory.relativistic_average_d_loss(critic, p, q, dx).backward()
        opt.step()
    assert float(theory.relativistic_average_d_loss(critic.detach(), p, q, dx)) < math.log(2) - 0.05
