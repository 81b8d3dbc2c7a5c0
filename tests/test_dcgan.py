import pytest
import torch
from torch import nn

from ganlib import dcgan


@pytest.mark.parametrize("shape,base", [((1, 28, 28), 7), ((3, 32, 32), 4), ((3, 64, 64), 4), ((1, 8, 8), 4)])
def test_generator_and_discriminator_fit_each_dataset_size(shape, base):
    assert dcgan.base_size(shape[1]) == base
    G, D = dcgan.Generator(shape, z_dim=16, width=8), dcgan.Discriminator(shape, width=8)
    x = G(torch.randn(5, 16))
    assert x.shape == (5, *shape) and x.abs().max() <= 1  # tanh output: images in [-1, 1]
    assert D(x).shape == (5,)  # one logit per image


def test_the_paper_64px_model_has_the_paper_channel_widths():
    G = dcgan.Generator((3, 64, 64), z_dim=100, width=128)
    convs = [m for m in G.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [c.out_channels for c in convs] == [1024, 512, 256, 128, 3]
    assert convs[0].kernel_size == (4, 4)  # z projected to a 4 x 4 map, no hidden fully connected layer


def test_transposed_convolution_doubles_the_resolution():
    up = dcgan.up_transposed(3, 2)
    for side in (4, 7, 16):
        assert up(torch.randn(1, 3, side, side)).shape[-1] == (side - 1) * 2 - 2 * 1 + 4 == 2 * side
    assert dcgan.up_resize_conv(3, 2)(torch.randn(1, 3, 7, 7)).shape == (1, 2, 14, 14)


def test_guidelines_batch_norm_placement_and_activations():
    G, D = dcgan.Generator((1, 28, 28), width=8), dcgan.Discriminator((1, 28, 28), width=8)
    g_layers, d_layers = list(G.net), list(D.body)
    assert isinstance(g_layers[-1], nn.Tanh) and isinstance(g_layers[-2], nn.ConvTranspose2d)  # no BN at the output
    assert isinstance(d_layers[1], nn.LeakyReLU) and d_layers[1].negative_slope == 0.2  # no BN at the input
    assert any(isinstance(m, nn.ReLU) for m in G.modules()) and not any(isinstance(m, nn.LeakyReLU) for m in G.modules())
    assert not any(isinstance(m, (nn.MaxPool2d, nn.AvgPool2d, nn.Linear)) for m in [*G.modules(), *D.modules()])


def test_initialisation_statistics():
    torch.manual_seed(0)
    G = dcgan.Generator((3, 64, 64), width=64)
    w = torch.cat([m.weight.detach().flatten() for m in G.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))])
    assert abs(float(w.mean())) < 1e-3 and abs(float(w.std()) - 0.02) < 5e-4
    bn = torch.cat([m.weight.detach() for m in G.modules() if isinstance(m, nn.BatchNorm2d)])
    assert abs(float(bn.mean()) - 1) < 5e-3 and abs(float(bn.std()) - 0.02) < 5e-3


@pytest.mark.parametrize("bad", [(1, 28, 30), (1, 30, 30), (1, 4, 4)])
def test_unsupported_shapes_are_refused_with_a_reason(bad):
    with pytest.raises(ValueError, match="square|halved|too small"):
        dcgan.Generator(bad)


def test_optimizers_follow_the_paper():
    G, D = dcgan.Generator((1, 28, 28), width=8), dcgan.Discriminator((1, 28, 28), width=8)
    opt_G, opt_D = dcgan.optimizers(G, D)
    for opt in (opt_G, opt_D):
        assert opt.defaults["lr"] == 2e-4 and opt.defaults["betas"] == (0.5, 0.999)


def test_the_recipe_keeps_generators_and_resumes(tmp_path):
    from ganlib import data
    gen = torch.Generator().manual_seed(0)
    images = data.ImageSet(torch.rand(64, 1, 8, 8, generator=gen) * 2 - 1, torch.zeros(64, dtype=torch.long), ("x",), "toy")
    torch.manual_seed(0)
    state = dcgan.train_dcgan(images, 20, directory=tmp_path, run="r", batch_size=8, width=4, z_dim=8,
                              log_every=2, progress=False)
    kept = dcgan.saved_generators(tmp_path, "r")
    assert list(kept) == [2, 4, 6, 8, 10, 12, 14, 16, 18, 20] and state.step == 20
    G = dcgan.Generator((1, 8, 8), 8, 4)
    G.load_state_dict(torch.load(kept[20], weights_only=True))
    for a, b in zip(G.parameters(), state.G_ema.parameters()):
        assert torch.equal(a, b)
    again = dcgan.train_dcgan(images, 20, directory=tmp_path, run="r", batch_size=8, width=4, z_dim=8, progress=False)
    assert again.step == 20 and torch.equal(again.G.net[0].weight, state.G.net[0].weight)  # loaded, not retrained
    assert dcgan.saved_generators(tmp_path, "other") == {}


def test_random_inputs_feed_every_course_generator():
    from ganlib import cgan, infogan
    for G in (dcgan.Generator((1, 8, 8), 6, 4), cgan.Generator((1, 8, 8), 3, 6, 4), infogan.Generator((1, 8, 8), 6, 10, 2, 4)):
        args = G.random_inputs(5, generator=torch.Generator().manual_seed(0))
        assert G(*args).shape == (5, 1, 8, 8)
        again = G.random_inputs(5, generator=torch.Generator().manual_seed(0))
        assert all(torch.equal(a, b) for a, b in zip(args, again))  # reproducible with a generator


@pytest.mark.parametrize("down", [dcgan.down_batchnorm, dcgan.down_layernorm, dcgan.down_plain, dcgan.down_spectral])
def test_every_down_block_builds_a_discriminator_of_the_same_shape(down):
    D = dcgan.Discriminator((1, 28, 28), width=8, down=down)
    assert D(torch.randn(4, 1, 28, 28)).shape == (4,)
    has_bn = any(isinstance(m, nn.BatchNorm2d) for m in D.modules())
    assert has_bn == (down is dcgan.down_batchnorm)


@pytest.mark.parametrize("down", [dcgan.down_layernorm, dcgan.down_plain, dcgan.down_spectral])
def test_critics_without_batch_norm_score_each_sample_on_its_own(down):
    torch.manual_seed(0)
    D = dcgan.Discriminator((1, 28, 28), width=8, down=down).eval()  # eval: spectral norm's u stays put between calls
    x = torch.randn(6, 1, 28, 28)
    alone = torch.stack([D(x[i : i + 1])[0] for i in range(6)])
    torch.testing.assert_close(D(x), alone, rtol=1e-5, atol=1e-5)  # what a per-sample gradient penalty needs
    D_bn = dcgan.Discriminator((1, 28, 28), width=8).train()
    assert not torch.allclose(D_bn(x), torch.stack([D_bn(x[i : i + 2])[0] for i in range(6)]))  # batch norm mixes samples


def test_the_default_discriminator_keeps_its_layers_and_initialisation():
    torch.manual_seed(0)
    D = dcgan.Discriminator((1, 28, 28), width=8)
    assert [type(m).__name__ for m in D.body] == ["Conv2d", "LeakyReLU", "Conv2d", "BatchNorm2d", "LeakyReLU"]
    assert isinstance(D.head, nn.Conv2d) and D.head.bias is not None and D.body[2].bias is None
    torch.manual_seed(0)
    D_sn = dcgan.Discriminator((1, 28, 28), width=8, down=dcgan.down_spectral)
    stored = D_sn.head.parametrizations.weight.original
    assert abs(float(stored.detach().std()) - 0.02) < 0.01  # N(0, 0.02) reached the stored weight under spectral norm


def test_a_spectral_discriminator_starts_with_unit_sigma_in_every_layer():
    from ganlib import layers
    torch.manual_seed(0)
    D = dcgan.Discriminator((1, 28, 28), width=8, down=dcgan.down_spectral)
    sigma = layers.sigmas(D)  # true largest singular values of the effective weights, u left alone
    assert len(sigma) == 3 and all(abs(s - 1) < 0.05 for s in sigma.values()), sigma  # u re-converged after init
