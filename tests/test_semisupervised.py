"""Lesson 11's semi-supervised GAN: the K+1-class D's losses (``ganlib.losses``), the label split and the steps
(``ganlib.semisupervised``), each checked against something written out independently of the implementation,
and the public bug classes as regressions."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from ganlib import data, losses, semisupervised


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _logits(n=32, k=10, seed=0, scale=4.0):
    return scale * torch.randn(n, k, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# --- the K+1-class discriminator ---------------------------------------------------------------


def test_the_fake_logit_fixed_at_zero_gives_d_as_z_over_z_plus_one():
    """softmax over [l_1..l_K, 0]: p(fake | x) = 1/(Z+1), so D(x) = 1 - p(fake) = Z/(Z+1) = sigma(logsumexp l)."""
    l = _logits()
    p = torch.softmax(losses.k_plus_one_logits(l), dim=1)
    assert p.shape == (32, 11) and torch.equal(losses.k_plus_one_logits(l)[:, -1], torch.zeros(32, dtype=l.dtype))
    Z = l.exp().sum(dim=1)
    assert_close(1 - p[:, -1], Z / (Z + 1))
    assert_close(torch.sigmoid(losses.real_logit(l)), Z / (Z + 1))


def test_the_class_posterior_given_real_is_the_k_way_softmax():
    """p(y | x, real) = p(y | x) / (1 - p(fake | x)) over the K+1 classes equals softmax over the K logits alone,
    so the supervised loss is an ordinary K-way cross-entropy."""
    l, y = _logits(), torch.randint(10, (32,), generator=torch.Generator().manual_seed(1))
    p = torch.softmax(losses.k_plus_one_logits(l), dim=1)
    assert_close(p[:, :10] / (1 - p[:, 10:]), torch.softmax(l, dim=1))
    expected = -torch.log(p[torch.arange(32), y] / (1 - p[:, 10])).mean()
    assert_close(losses.d_loss_supervised(l, y), expected)


def test_the_unsupervised_loss_is_half_the_gan_loss_on_d_equal_z_over_z_plus_one():
    """L_unsup = -1/2 (E log D(x) + E log(1 - D(G(z)))), D = Z/(Z+1) by explicit sums, and the form of Salimans
    et al.'s code, 1/2 [-LSE(l_unl) + softplus(LSE(l_unl)) + softplus(LSE(l_fake))] (openai/improved-gan #25, #27:
    the two are one loss; a port without the 1/2 or with log D for fakes is not)."""
    l_real, l_fake = _logits(seed=2), _logits(seed=3, n=24)
    D_real, D_fake = (Z / (Z + 1) for Z in (l_real.exp().sum(1), l_fake.exp().sum(1)))
    naive = -0.5 * (D_real.log().mean() + (1 - D_fake).log().mean())
    lse_r, lse_f = torch.logsumexp(l_real, 1), torch.logsumexp(l_fake, 1)
    code = 0.5 * (-lse_r.mean() + F.softplus(lse_r).mean() + F.softplus(lse_f).mean())
    got = losses.d_loss_unsupervised(l_real, l_fake)
    assert_close(got.double(), naive, atol=1e-6, rtol=1e-6)
    assert_close(got.double(), code, atol=1e-6, rtol=1e-6)


def test_the_unsupervised_loss_stays_finite_where_the_naive_form_does_not():
    """Logits of 200: Z = sum exp l overflows fp32, so Z/(Z+1) is NaN; through logsumexp and softplus the loss is ~0."""
    l = torch.full((4, 10), 200.0)
    Z = l.exp().sum(1)
    assert torch.isnan(Z / (Z + 1)).all()
    assert 0 <= float(losses.d_loss_unsupervised(l, -l)) < 1e-6


def test_feature_matching_compares_batch_means_squared():
    """||mean f_real - mean f_fake||^2 / F; zero for any two batches with equal means, even of different samples;
    the gradient reaches the fakes' features only through their mean: 2 (m_fake - m_real) / (F B) each."""
    f_real, f_fake = torch.randn(16, 5, dtype=torch.float64), torch.randn(8, 5, dtype=torch.float64, requires_grad=True)
    expected = ((f_real.mean(0) - f_fake.mean(0)) ** 2).sum() / 5
    got = losses.feature_matching(f_real, f_fake)
    assert_close(got.double(), expected)
    (grad,) = torch.autograd.grad(got, f_fake)
    assert_close(grad.double(), (2 * (f_fake.mean(0) - f_real.mean(0)) / (5 * 8)).expand(8, 5).detach(), atol=1e-6, rtol=1e-5)
    shifted = f_real - f_real.mean(0) + torch.arange(5.0, dtype=torch.float64)
    other = torch.randn(16, 5, dtype=torch.float64)
    assert float(losses.feature_matching(shifted, other - other.mean(0) + torch.arange(5.0, dtype=torch.float64))) < 1e-12


def test_feature_matching_is_not_the_squared_distance_per_sample():
    """Matching means, not samples: the squared mean distance, never the mean squared distance (a G that matched
    each fake to one real would collapse)."""
    f_real, f_fake = torch.randn(16, 5), torch.randn(16, 5)
    assert losses.feature_matching(f_real, f_fake) < F.mse_loss(f_fake, f_real) / 4


# --- the label split: never more labels than stated ------------------------------------------------


def _images(n=600, classes=10, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return data.ImageSet(torch.rand(n, 1, 8, 8, generator=gen) * 2 - 1, torch.arange(n) % classes,
                         tuple(str(c) for c in range(classes)), "toy")


def test_split_keeps_exactly_per_class_labels_of_each_class_and_is_fixed_by_its_seed():
    images = _images()
    split = semisupervised.split_labels(images, 7, seed=3)
    assert split.n_labels == 70 and torch.equal(split.y_labelled.bincount(), torch.full((10,), 7))
    assert len(split.indices.unique()) == 70
    assert torch.equal(split.y_labelled, images.y[split.indices]) and torch.equal(split.x_labelled, images.x[split.indices])
    assert torch.equal(split.x_unlabelled, images.x)  # every image, the labelled ones included (Salimans et al.'s code)
    assert torch.equal(semisupervised.split_labels(images, 7, seed=3).indices, split.indices)  # the same set every epoch
    assert not torch.equal(semisupervised.split_labels(images, 7, seed=4).indices, split.indices)
    with pytest.raises(ValueError, match="fewer than per_class"):
        semisupervised.split_labels(images, 61, seed=0)


def _train_ssl(split, steps=3):
    torch.manual_seed(0)
    G, D = semisupervised.MLPGenerator((1, 8, 8), 8, (16,)), semisupervised.ClassifierD((1, 8, 8), (16, 16))
    opts = torch.optim.Adam(G.parameters(), 1e-3), torch.optim.Adam(D.parameters(), 1e-3)
    d_step, g_step = semisupervised.semi_supervised_steps(G, D, *opts, split, 16)
    for _ in range(steps):
        d_step(), g_step()
    return torch.cat([p.detach().flatten() for p in D.parameters()])


def test_training_reads_no_label_outside_the_split():
    """The regression for the public leaks (all labels used: clvrai/SSGAN-Tensorflow #3; new labelled images drawn
    every epoch: LDOUBLEV/semi-supervised-GAN #6; 100 labelled images per *batch*: eli5168/improved_gan_pytorch #2):
    after the split, every other label can be destroyed and training is bit-for-bit the same."""
    images = _images()
    split = semisupervised.split_labels(images, 5, seed=0)
    before = _train_ssl(split)
    keep = torch.zeros(len(images), dtype=torch.bool)
    keep[split.indices] = True
    images.y[~keep] = (images.y[~keep] + 1 + torch.randint(9, (int((~keep).sum()),))) % 10  # every other label wrong
    assert torch.equal(_train_ssl(split), before)
    assert not hasattr(split, "y") and not any(isinstance(v, data.ImageSet) for v in vars(split).values())


def test_semi_supervised_steps_use_both_losses_and_g_matches_features():
    images = _images()
    split = semisupervised.split_labels(images, 5, seed=0)
    G, D = semisupervised.MLPGenerator((1, 8, 8), 8, (16,)), semisupervised.ClassifierD((1, 8, 8), (16, 16))
    opts = torch.optim.Adam(G.parameters(), 1e-3), torch.optim.Adam(D.parameters(), 1e-3)
    d_step, g_step = semisupervised.semi_supervised_steps(G, D, *opts, split, 16)
    out = d_step()
    assert set(out) == {"loss_sup", "loss_unsup"} and math.isfinite(float(out["loss_unsup"]))
    assert 0 < float(out["loss_sup"]) and 0 < float(out["loss_unsup"])
    D0 = [p.detach().clone() for p in D.parameters()]
    assert set(g_step()) == {"loss_G"}
    assert all(torch.equal(a, b) for a, b in zip(D0, D.parameters()))


def test_gaussian_noise_only_while_training():
    noise = semisupervised.GaussianNoise(0.5)
    x = torch.zeros(1000)
    assert 0.45 < float(noise(x).std()) < 0.55
    assert torch.equal(noise.eval()(x), x)


# --- the lesson's runs ------------------------------------------------------------------------------


def test_the_shipped_semi_supervised_runs_match_the_lessons_recipe():
    """SSL_11 as it is, no key left out: a recipe that differs from the shipped one makes the lesson retrain four
    8,000-step runs instead (the baseline's settings, in SSL_11 once, did)."""
    from ganlib import pretrained

    runs = {k: e for k, e in pretrained.manifest().items() if k.startswith("11_infer_classify/fashion_mnist-ssl")}
    assert len(runs) == 4
    recipe = semisupervised.SSL_11["cpu"]
    for key, entry in runs.items():
        assert entry["recipe"] == pretrained.recipe_of(recipe["steps"], recipe), key


def test_the_gan_run_hands_fit_the_lessons_recipe_unchanged_and_it_names_the_shipped_run(monkeypatch, tmp_path):
    """What ``train_semi_supervised`` passes to ``train.fit`` is the recipe it was given, and with the lesson's cpu
    recipe that finds the shipped run (``fit`` is recorded, not run: a miss would train for minutes)."""
    from ganlib import pretrained

    seen = {}
    monkeypatch.setattr(semisupervised.train, "fit", lambda state, d_step, g_step, steps, **kw: seen.update(steps=steps, **kw))
    images = data.ImageSet(torch.zeros(100, 1, 28, 28), torch.arange(100) % 10, tuple("0123456789"), "toy")
    recipe = semisupervised.SSL_11["cpu"]
    semisupervised.train_semi_supervised(semisupervised.split_labels(images, 10, 0), 0, recipe,
                                         directory=tmp_path / "11_infer_classify", pretrained=True)
    assert seen["recipe"] == recipe and seen["pretrained"] is True
    entry, why = pretrained.lookup(seen["checkpoint"], seen["steps"], seen["recipe"])
    assert entry is not None and entry["file"] == "11_infer_classify/fashion_mnist-ssl-10pc-draw0-8000.pt", why


def test_the_baseline_takes_the_gan_runs_network_and_batch_and_its_own_presets_steps_and_learning_rate(monkeypatch):
    assert set(semisupervised.SSL_BASELINE_11) == set(semisupervised.SSL_11)  # the same profiles
    made, supervised_step = [], semisupervised.supervised_step

    def counted(D, opt, split, batch_size):  # supervised_step, recording its optimiser's lr, its batch and its calls
        step = supervised_step(D, opt, split, batch_size)
        made.append({"lr": opt.param_groups[0]["lr"], "batch_size": batch_size, "steps": 0})

        def run():
            made[-1]["steps"] += 1
            return step()
        return run

    monkeypatch.setattr(semisupervised, "supervised_step", counted)
    recipe = dict(semisupervised.SSL_11["smoke"], d_widths=[16, 12])
    D = semisupervised.train_supervised(semisupervised.split_labels(_images(), 5, seed=0), 0, recipe, {"steps": 7, "lr": 0.25})
    assert made == [{"lr": 0.25, "batch_size": recipe["batch_size"], "steps": 7}]
    assert not D.training and [m.out_features for m in D.modules() if isinstance(m, torch.nn.Linear)] == [16, 12, 10]
