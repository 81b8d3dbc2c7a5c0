import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from ganlib import data, infogan


def test_codes_follow_the_papers_distributions():
    gen = torch.Generator().manual_seed(0)
    c_cat, c_cont = infogan.sample_codes(100_000, 10, 2, generator=gen)
    counts = torch.bincount(c_cat, minlength=10).float() / len(c_cat)
    assert (counts - 0.1).abs().max() < 0.005  # uniform categorical
    assert c_cont.min() >= -1 and c_cont.max() <= 1  # U(-1, 1)
    assert_close(c_cont.mean(0), torch.zeros(2), atol=0.01, rtol=0)
    assert_close(c_cont.var(0), torch.full((2,), 1 / 3), atol=0.01, rtol=0)  # variance of U(-1, 1)


def test_code_vector_is_one_hot_then_continuous():
    v = infogan.code_vector(torch.tensor([2, 0]), torch.tensor([[0.5, -1.0], [0.0, 0.25]]), 3)
    assert torch.equal(v, torch.tensor([[0.0, 0.0, 1.0, 0.5, -1.0], [1.0, 0.0, 0.0, 0.0, 0.25]]))


def test_shapes():
    G, D = infogan.Generator((1, 28, 28), z_dim=8, width=8), infogan.Discriminator((1, 28, 28), width=8)
    c_cat, c_cont = infogan.sample_codes(4)
    s, q_cat, q_cont = D(G(torch.randn(4, 8), c_cat, c_cont))
    assert s.shape == (4,) and q_cat.shape == (4, 10) and q_cont.shape == (4, 2)


def test_info_loss_is_the_negative_log_likelihood_up_to_constants():
    torch.manual_seed(0)
    logits, mean = torch.randn(5, 4), torch.randn(5, 2)
    c_cat, c_cont = torch.tensor([0, 3, 1, 1, 2]), torch.rand(5, 2) * 2 - 1
    nll_cat = -torch.log_softmax(logits, 1)[torch.arange(5), c_cat].mean()
    gauss = torch.distributions.Normal(mean, 1.0)
    nll_cont = -gauss.log_prob(c_cont).sum(1).mean() - math.log(2 * math.pi)  # minus the constant 2 * log(2 pi)/2
    assert_close(infogan.info_loss(logits, mean, c_cat, c_cont), nll_cat + nll_cont)


def test_the_mutual_information_bound_is_log_k_for_a_perfect_q():
    c = torch.arange(10)
    perfect = torch.full((10, 10), -50.0).scatter(1, c[:, None], 50.0)
    assert abs(float(infogan.mutual_information_bound(perfect, c, 10)) - math.log(10)) < 1e-6
    assert abs(float(infogan.mutual_information_bound(torch.zeros(10, 10), c, 10))) < 1e-6  # a blind Q


class RecordingGenerator(infogan.Generator):
    """An InfoGAN generator that keeps the inputs of its last call, so a test can redo that call."""

    def forward(self, z, c_cat, c_cont):
        self.inputs = (z, c_cat, c_cont)
        return super().forward(z, c_cat, c_cont)


def _toy_run(lr=0.0):
    """G, D and their steps on 8 x 8 noise images; plain SGD so that lr = 0 leaves every weight as it is."""
    torch.manual_seed(0)
    images = data.ImageSet(torch.rand(64, 1, 8, 8) * 2 - 1, torch.zeros(64, dtype=torch.long), ("x",), "toy")
    G, D = RecordingGenerator((1, 8, 8), z_dim=4, width=4), infogan.Discriminator((1, 8, 8), width=4)
    opt_G, opt_D = torch.optim.SGD(G.parameters(), lr), torch.optim.SGD(D.parameters(), lr)
    return G, D, infogan.infogan_steps(G, D, opt_G, opt_D, images, 16)


def _nll_by_the_formula(q_cat, q_cont, c_cat, c_cont):
    """-E[log Q(c | x)] from torch.distributions, without the constant log(2 pi) / 2 per continuous code."""
    log_q = torch.distributions.Categorical(logits=q_cat).log_prob(c_cat)
    log_q = log_q + torch.distributions.Normal(q_cont, 1.0).log_prob(c_cont).sum(1) + c_cont.shape[1] * math.log(2 * math.pi) / 2
    return -log_q.mean()


def test_the_information_term_reaches_the_generator():
    torch.manual_seed(0)
    G, D = infogan.Generator((1, 8, 8), z_dim=4, width=4), infogan.Discriminator((1, 8, 8), width=4)
    c_cat, c_cont = infogan.sample_codes(8)
    _, q_cat, q_cont = D(G(torch.randn(8, 4), c_cat, c_cont))
    infogan.info_loss(q_cat, q_cont, c_cat, c_cont).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in G.parameters() if p.ndim > 1)
    assert D.q[1].weight.grad.abs().sum() > 0  # and Q's head


def test_the_generator_step_minimises_the_gan_loss_plus_the_information_loss():
    G, D, (_, g_step) = _toy_run()
    g_step()  # SGD with lr 0: the gradients stay in .grad, the weights do not move
    params = [p for p in G.parameters()]
    s_fake, q_cat, q_cont = D(G(*G.inputs))  # the same call again (train-mode batch norm: same output)
    adv = F.softplus(-s_fake).mean()  # -log sigmoid(D(G(z, c))), the non-saturating G loss
    expected = torch.autograd.grad(adv + _nll_by_the_formula(q_cat, q_cont, *G.inputs[1:]), params)
    adv_only = torch.autograd.grad(F.softplus(-D(G(*G.inputs))[0]).mean(), params)
    for p, g, g_adv in zip(params, expected, adv_only):
        assert_close(p.grad, g)  # the sign: G *minimises* the information loss, with lambda = 1
    assert any((p.grad - g_adv).abs().max() > 1e-6 for p, g_adv in zip(params, adv_only))  # the info term counts


def test_the_discriminator_step_trains_q_on_the_fakes_and_leaves_g_alone():
    G, D, (d_step, _) = _toy_run()
    d_step()
    assert all(p.grad is None for p in G.parameters())  # the fakes were detached
    _, q_cat, q_cont = D(G(*G.inputs).detach())
    q_params = list(D.q.parameters())
    expected = torch.autograd.grad(_nll_by_the_formula(q_cat, q_cont, *G.inputs[1:]), q_params)
    for p, g in zip(q_params, expected):
        assert p.grad.abs().sum() > 0
        assert_close(p.grad, g)  # Q minimises the same information loss


def test_the_papers_optimisers_and_q_moves_with_d():
    G, D = infogan.Generator((1, 8, 8), z_dim=4, width=4), infogan.Discriminator((1, 8, 8), width=4)
    opt_G, opt_D = infogan.optimizers(G, D)
    assert opt_G.param_groups[0]["lr"] == 1e-3 and opt_D.param_groups[0]["lr"] == 2e-4  # App. C
    assert opt_G.param_groups[0]["betas"][0] == 0.5
    held = {id(p) for p in opt_D.param_groups[0]["params"]}
    assert {id(p) for p in D.q.parameters()} <= held and {id(p) for p in D.body.parameters()} <= held
    assert not held & {id(p) for p in G.parameters()}


def test_both_g_and_q_lower_the_information_loss():
    torch.manual_seed(0)
    images = data.ImageSet(torch.rand(64, 1, 8, 8) * 2 - 1, torch.zeros(64, dtype=torch.long), ("x",), "toy")
    G, D = infogan.Generator((1, 8, 8), z_dim=4, width=8), infogan.Discriminator((1, 8, 8), width=8)
    opt_G = torch.optim.Adam(G.parameters(), 1e-3, betas=(0.5, 0.999))
    opt_D = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999))
    d_step, g_step = infogan.infogan_steps(G, D, opt_G, opt_D, images, 32)
    first = [d_step()["loss_info"] for _ in range(1)][0]
    for _ in range(150):
        last = d_step()["loss_info"]
        g_step()
    assert last < 0.5 * first  # the codes became recoverable: G encodes them, Q decodes them


def test_matched_accuracy_on_a_hand_made_confusion_matrix():
    confusion = torch.tensor([[0, 8, 2],  # code 0 is mostly label 1
                              [9, 1, 0],  # code 1 is label 0
                              [1, 1, 8]])  # code 2 is label 2
    acc, mapping = infogan.matched_accuracy(confusion)
    assert mapping == [1, 0, 2] and abs(acc - 25 / 30) < 1e-12  # 8 + 9 + 8 of 30; the next best is 12 of 30
    crowded = torch.tensor([[5, 5], [5, 0]])  # both codes prefer label 0: one must take label 1
    acc, mapping = infogan.matched_accuracy(crowded)
    assert mapping == [1, 0] and abs(acc - 10 / 15) < 1e-12  # 5 + 5; the identity gets 5 + 0
    greedy_trap = torch.tensor([[9, 8], [8, 1]])  # greedy takes the 9 and is left with the 1: 10 of 26
    acc, mapping = infogan.matched_accuracy(greedy_trap)
    assert mapping == [1, 0] and abs(acc - 16 / 26) < 1e-12
    extra_code = torch.tensor([[4, 0], [3, 1], [0, 2]])  # three codes, two labels: code 1 is left out
    acc, mapping = infogan.matched_accuracy(extra_code)
    assert mapping == [0, -1, 1] and abs(acc - 6 / 10) < 1e-12


def test_matched_accuracy_is_the_best_of_all_permutations():
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        confusion = torch.randint(0, 50, (5, 5), generator=gen)
        best = max(sum(int(confusion[i, p[i]]) for i in range(5)) for p in itertools.permutations(range(5)))
        acc, mapping = infogan.matched_accuracy(confusion)
        assert abs(acc - best / int(confusion.sum())) < 1e-12 and sorted(mapping) == list(range(5))


def test_confusion_matrix_counts_pairs():
    m = infogan.confusion_matrix(torch.tensor([0, 0, 1, 2, 2, 2]), torch.tensor([1, 1, 0, 2, 2, 0]), 3, 3)
    assert m.tolist() == [[0, 2, 0], [1, 0, 0], [1, 0, 2]]


def test_the_category_q_predicts_is_the_argmax_of_its_logits():
    torch.manual_seed(0)
    D = infogan.Discriminator((1, 8, 8), width=4).eval()
    x = torch.randn(7, 1, 8, 8)
    assert torch.equal(infogan.predict_category(D, x, batch_size=3), D(x)[1].argmax(1))


def test_a_traversal_has_one_row_per_category_and_sweeps_one_continuous_code():
    torch.manual_seed(0)
    G = RecordingGenerator((1, 8, 8), z_dim=4, n_categories=3, n_continuous=2, width=4).eval()
    z, values = torch.randn(4), torch.tensor([-1.0, 0.0, 1.0, 0.5])
    images = infogan.traversal(G, z, values, code=1)
    _, c_cat, c_cont = G.inputs
    assert images.shape == (12, 1, 8, 8)
    assert c_cat.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert torch.equal(c_cont[:, 1], values.repeat(3)) and torch.equal(c_cont[:, 0], torch.zeros(12))
    with torch.no_grad():  # row 2, column 3: category 2 with code 1 at 0.5, drawn directly
        assert_close(images[2 * 4 + 3], G(z[None], torch.tensor([2]), torch.tensor([[0.0, 0.5]]))[0])


# The paper's MNIST networks (Chen et al. 2016, Table 1; openai/InfoGAN's regularized_gan.py)

def _layers(module, kinds):
    return [m for m in module.modules() if isinstance(m, kinds)]


def test_the_papers_discriminator_is_its_table():
    D = infogan.PaperDiscriminator((1, 28, 28))
    convs = _layers(D.body, torch.nn.Conv2d)
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride) for c in convs] == [
        (1, 64, (4, 4), (2, 2)), (64, 128, (4, 4), (2, 2))]
    fc = _layers(D.body, torch.nn.Linear)
    assert [(f.in_features, f.out_features) for f in fc] == [(128 * 7 * 7, 1024)]  # the shared FC-1024
    norms = [type(m).__name__ for m in D.body if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d))]
    assert norms == ["BatchNorm2d", "BatchNorm1d"]  # after the second conv and the FC: none on the input layer
    assert isinstance(D.body[1], torch.nn.LeakyReLU) and isinstance(D.body[2], torch.nn.Conv2d)
    slopes = {m.negative_slope for m in D.modules() if isinstance(m, torch.nn.LeakyReLU)}
    assert slopes == {0.1}  # App. C's leaky rate, in D's body and Q's head
    assert (D.head.in_features, D.head.out_features) == (1024, 1)  # D: FC 1 on the shared features
    q_fc = _layers(D.q, torch.nn.Linear)
    assert [(f.in_features, f.out_features) for f in q_fc] == [(1024, 128), (128, 12)]  # Q: FC 128, BN, LReLU, FC
    assert any(isinstance(m, torch.nn.BatchNorm1d) for m in D.q)
    s, q_cat, q_cont = D(torch.randn(5, 1, 28, 28))
    assert s.shape == (5,) and q_cat.shape == (5, 10) and q_cont.shape == (5, 2)


def test_the_papers_generator_is_its_table():
    G = infogan.PaperGenerator((1, 28, 28))
    fc = _layers(G.net, torch.nn.Linear)
    assert [(f.in_features, f.out_features) for f in fc] == [(74, 1024), (1024, 7 * 7 * 128)]  # 62 + 10 + 2 in
    ups = _layers(G.net, torch.nn.ConvTranspose2d)
    assert [(u.in_channels, u.out_channels, u.kernel_size, u.stride) for u in ups] == [
        (128, 64, (4, 4), (2, 2)), (64, 1, (4, 4), (2, 2))]
    assert len(_layers(G.net, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d))) == 3  # every layer but the output
    assert isinstance(G.net[-1], torch.nn.Tanh)
    x = G(*G.random_inputs(6))
    assert x.shape == (6, 1, 28, 28) and x.abs().max() <= 1


def test_the_papers_noise_is_uniform_like_the_reference_code():
    z = infogan.PaperGenerator((1, 28, 28), width=8, hidden=32).noise(50_000, generator=torch.Generator().manual_seed(0))
    assert z.shape == (50_000, 62) and z.min() >= -1 and z.max() <= 1
    assert_close(z.var(), torch.tensor(1 / 3), atol=0.005, rtol=0)  # U(-1, 1), not N(0, 1)
    dcgan_z = infogan.Generator((1, 28, 28), width=8).noise(50_000, generator=torch.Generator().manual_seed(0))
    assert_close(dcgan_z.var(), torch.tensor(1.0), atol=0.02, rtol=0)


@pytest.mark.parametrize("architecture", ["paper", "dcgan"])
def test_the_information_term_reaches_every_generator_weight_of_both_architectures(architecture):
    torch.manual_seed(0)
    G, D = infogan.networks(architecture, (1, 28, 28), 8, 10, 2, width=8)
    z, c_cat, c_cont = G.random_inputs(8)
    _, q_cat, q_cont = D(G(z, c_cat, c_cont))
    infogan.info_loss(q_cat, q_cont, c_cat, c_cont).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in G.parameters() if p.ndim > 1)
    assert all(p.grad is not None for p in D.q.parameters())


def test_unknown_architectures_and_shapes_are_refused():
    with pytest.raises(ValueError, match="architecture must be one of"):
        infogan.networks("resnet", (1, 28, 28), 62, 10, 2, 64)
    with pytest.raises(ValueError, match="divisible by 4"):
        infogan.PaperDiscriminator((1, 30, 30))
