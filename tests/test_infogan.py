import math

import pytest
import torch
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


def test_the_information_term_reaches_the_generator():
    torch.manual_seed(0)
    G, D = infogan.Generator((1, 8, 8), z_dim=4, width=4), infogan.Discriminator((1, 8, 8), width=4)
    c_cat, c_cont = infogan.sample_codes(8)
    _, q_cat, q_cont = D(G(torch.randn(8, 4), c_cat, c_cont))
    infogan.info_loss(q_cat, q_cont, c_cat, c_cont).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in G.parameters() if p.ndim > 1)
    assert D.q[1].weight.grad.abs().sum() > 0  # and Q's head


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
    assert mapping == [1, 0, 2] and abs(acc - 25 / 30) < 1e-12
    crowded = torch.tensor([[5, 5], [5, 0]])  # both codes prefer label 0: one must take label 1
    acc, mapping = infogan.matched_accuracy(crowded)
    assert sorted(mapping) == [0, 1] and abs(acc - 10 / 15) < 1e-12


def test_confusion_matrix_counts_pairs():
    m = infogan.confusion_matrix(torch.tensor([0, 0, 1, 2, 2, 2]), torch.tensor([1, 1, 0, 2, 2, 0]), 3, 3)
    assert m.tolist() == [[0, 2, 0], [1, 0, 0], [1, 0, 2]]
