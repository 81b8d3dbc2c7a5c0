import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from ganlib import cgan, data


def _images(n=64):
    gen = torch.Generator().manual_seed(0)
    return data.ImageSet(torch.rand(n, 1, 8, 8, generator=gen) * 2 - 1, torch.arange(n) % 3, ("a", "b", "c"), "toy")


@pytest.mark.parametrize("make_D", [cgan.ConcatDiscriminator, cgan.ProjectionDiscriminator])
def test_generator_and_conditional_discriminators_have_the_right_shapes(make_D):
    G, D = cgan.Generator((1, 28, 28), 10, z_dim=16, width=8), make_D((1, 28, 28), 10, width=8)
    y = torch.tensor([0, 3, 9, 9])
    x = G(torch.randn(4, 16), y)
    assert x.shape == (4, 1, 28, 28) and D(x, y).shape == (4,)


def test_acgan_discriminator_returns_a_logit_and_class_logits():
    s, c = cgan.ACDiscriminator((3, 32, 32), 10, width=8)(torch.randn(5, 3, 32, 32))
    assert s.shape == (5,) and c.shape == (5, 10)


@pytest.mark.parametrize("bad, message", [(torch.tensor([0, 10]), r"\[0, 10\).*0 to 10"),
                                         (torch.tensor([-1, 2]), r"\[0, 10\)"),
                                         (torch.tensor([0.0, 1.0]), "integer class indices"),
                                         (torch.tensor([[1, 2]]), "1-D")])
def test_a_wrong_label_is_refused_with_a_reason(bad, message):
    G = cgan.Generator((1, 28, 28), 10, z_dim=4, width=4)
    with pytest.raises(ValueError, match=message):
        G(torch.randn(len(bad), 4), bad)
    with pytest.raises(ValueError, match=message):
        cgan.ProjectionDiscriminator((1, 28, 28), 10, width=4)(torch.randn(len(bad), 1, 28, 28), bad)


def test_the_concatenated_label_planes_are_one_hot():
    D = cgan.ConcatDiscriminator((1, 8, 8), 3, width=4)
    seen = {}
    D.net.body[0].register_forward_hook(lambda m, inp, out: seen.setdefault("x", inp[0]))
    D(torch.zeros(2, 1, 8, 8), torch.tensor([2, 0]))
    planes = seen["x"][:, 1:]  # (B, 3, 8, 8)
    assert torch.equal(planes[:, :, 3, 5], torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]))
    assert torch.equal(planes.amin(dim=(2, 3)), planes.amax(dim=(2, 3)))  # constant over the image


def test_projection_term_equals_its_formula():
    torch.manual_seed(0)
    D = cgan.ProjectionDiscriminator((1, 8, 8), 4, width=4).eval()
    x, y = torch.randn(6, 1, 8, 8), torch.tensor([0, 1, 2, 3, 1, 0])
    phi = D.body(x).sum(dim=(2, 3))  # global sum pooling
    expected = phi @ D.psi.weight[0] + D.psi.bias[0] + (D.embed.weight[y] * phi).sum(1)
    assert_close(D(x, y), expected)
    other = torch.tensor([1, 2, 3, 0, 2, 1])  # a different label changes only the projection term
    assert_close(D(x, y) - D(x, other), ((D.embed.weight[y] - D.embed.weight[other]) * phi).sum(1))


def test_class_grid_puts_classes_in_rows_and_z_in_columns():
    torch.manual_seed(0)
    G = cgan.Generator((1, 8, 8), 3, z_dim=4, width=4).eval()
    z = torch.randn(2, 4)
    grid = cgan.class_grid(G, z, 3)
    assert grid.shape == (6, 1, 8, 8)
    assert_close(grid[3], G(z[1:2], torch.tensor([1]))[0])  # class 1, column 1


@pytest.mark.parametrize("kind", ["concat", "projection", "acgan"])
def test_steps_train_both_players(kind):
    torch.manual_seed(0)
    images = _images()
    G = cgan.Generator((1, 8, 8), 3, z_dim=4, width=4)
    D = {"concat": cgan.ConcatDiscriminator, "projection": cgan.ProjectionDiscriminator,
         "acgan": cgan.ACDiscriminator}[kind]((1, 8, 8), 3, width=4)
    opt_G, opt_D = torch.optim.Adam(G.parameters(), 1e-2), torch.optim.Adam(D.parameters(), 1e-2)
    steps = cgan.acgan_steps if kind == "acgan" else cgan.conditional_steps
    d_step, g_step = steps(G, D, opt_G, opt_D, images, 16)
    g0, d0 = G.embed.weight.clone(), [p.clone() for p in D.parameters()]
    out = {**d_step(), **g_step()}
    assert all(torch.isfinite(v) for v in out.values())
    assert not torch.equal(g0, G.embed.weight)  # the label embedding of G learns
    assert any(not torch.equal(a, b) for a, b in zip(d0, D.parameters()))
    if kind == "acgan":
        assert {"loss_class_D", "loss_class_G"} <= set(out)


def test_the_acgan_g_step_rewards_the_requested_class():
    torch.manual_seed(0)
    G, D = cgan.Generator((1, 8, 8), 3, z_dim=4, width=4), cgan.ACDiscriminator((1, 8, 8), 3, width=4)
    opt_G = torch.optim.SGD(G.parameters(), lr=0.0)
    _, g_step = cgan.acgan_steps(G, D, opt_G, torch.optim.SGD(D.parameters(), lr=0.0), _images(), 16)
    torch.manual_seed(1)
    out = g_step()
    torch.manual_seed(1)
    z, y = G.random_inputs(16)  # the step's draws, in its order
    s, c = D(G(z, y))
    assert_close(out["loss_class_G"], F.cross_entropy(c, y).detach())


@pytest.mark.parametrize("make_D", [cgan.ConcatDiscriminator, cgan.ProjectionDiscriminator])
def test_the_forward_pass_never_reads_label_values_off_the_cpu(make_D):
    # Meta tensors have shapes but no values: reading one (int(y.min()), .item()) raises. On a GPU
    # such a read would be a host sync in every training step.
    G, D = cgan.Generator((1, 28, 28), 10, z_dim=8, width=4).to("meta"), make_D((1, 28, 28), 10, width=4).to("meta")
    y = torch.tensor([0, 3, 9], device="meta")
    assert D(G(torch.randn(3, 8, device="meta"), y), y).shape == (3,)
    with pytest.raises(ValueError, match="1-D"):  # metadata is still checked everywhere
        G(torch.randn(1, 8, device="meta"), y[None])


def test_balanced_labels_give_every_class_equally_often():
    y = cgan.balanced_labels(30, 3)
    assert y.dtype == torch.int64 and torch.equal(torch.bincount(y), torch.tensor([10, 10, 10]))
    assert torch.equal(cgan.balanced_labels(5, 3), torch.tensor([0, 1, 2, 0, 1]))


def test_generate_draws_fresh_z_for_each_label_in_batches():
    torch.manual_seed(0)
    G = cgan.Generator((1, 8, 8), 3, z_dim=4, width=4).eval()
    y = torch.tensor([2, 0, 1, 1, 2])
    x = cgan.generate(G, y, batch_size=2, generator=torch.Generator().manual_seed(5))
    z = torch.randn(5, 4, generator=torch.Generator().manual_seed(5))
    assert_close(x, G(z, y).detach())
    assert not torch.equal(x[3], x[2])  # same label, different z


def test_class_consistency_on_hand_made_probabilities():
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4], [0.6, 0.3, 0.1]])
    assert cgan.class_consistency(probs, torch.tensor([0, 1, 2, 1])) == 0.75  # the last one is seen as class 0
    assert cgan.class_consistency(probs, torch.tensor([2, 2, 0, 2])) == 0.0


def test_per_class_compares_fakes_for_class_k_with_reals_of_class_k():
    y_real, y_fake = torch.tensor([0, 1, 2, 0, 1, 2]), torch.tensor([2, 2, 1, 1, 0, 0])
    f_real = y_real[:, None].float() * torch.ones(1, 4)  # class k's real features are all k
    f_fake = 10 * y_fake[:, None].float() * torch.ones(1, 4)  # fakes asked for class k are all 10 k
    gaps = cgan.per_class(lambda a, b: float((b.mean(0) - a.mean(0)).mean()), f_real, y_real, f_fake, y_fake, 3)
    assert gaps == [0.0, 9.0, 18.0]


def test_train_cgan_starts_every_variant_from_the_same_generator_and_resumes(tmp_path):
    images = _images()
    states = {}
    for make_D in (cgan.ConcatDiscriminator, cgan.ACDiscriminator):
        torch.manual_seed(0)
        make_steps = cgan.acgan_steps if make_D is cgan.ACDiscriminator else cgan.conditional_steps
        states[make_D] = cgan.train_cgan(make_D, images, 0, checkpoint=None, make_steps=make_steps, width=4, z_dim=4,
                                         progress=False)
    G_a, G_b = (s.G.state_dict() for s in states.values())
    assert all(torch.equal(G_a[k], G_b[k]) for k in G_a)
    torch.manual_seed(0)
    ckpt = tmp_path / "ac.pt"
    trained = cgan.train_cgan(cgan.ACDiscriminator, images, 3, checkpoint=ckpt, make_steps=cgan.acgan_steps, width=4,
                              z_dim=4, log_every=1, progress=False)
    assert trained.step == 3 and "loss_class_D" in trained.history.values  # AC-GAN's steps, as asked
    torch.manual_seed(1)  # another seed: only the checkpoint can make the weights equal
    again = cgan.train_cgan(cgan.ACDiscriminator, images, 3, checkpoint=ckpt, make_steps=cgan.acgan_steps, width=4,
                            z_dim=4, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(trained.G_ema.parameters(), again.G_ema.parameters()))


def test_the_label_embedding_starts_with_the_norm_of_a_one_hot_vector():
    torch.manual_seed(0)
    G = cgan.Generator((1, 28, 28), 1000, z_dim=100, width=4, embed_dim=400)
    norms = G.embed.weight.detach().norm(dim=1)  # E|e_y|^2 = embed_dim * (1 / embed_dim) = 1
    assert abs(float(norms.square().mean()) - 1) < 0.02 and float(norms.std()) < 0.1
