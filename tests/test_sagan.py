import copy

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from ganlib import data, dcgan, layers, losses, sagan, train


def _models(shape=(1, 28, 28), width=8, **kwargs):
    torch.manual_seed(0)
    return sagan.Generator(shape, z_dim=16, width=width, **kwargs), sagan.Discriminator(shape, width=width, **kwargs)


def _attention_input_side(model, *inputs):
    seen = []
    hook = sagan.attention_block(model).register_forward_pre_hook(lambda m, args: seen.append(args[0].shape))
    model(*inputs)
    hook.remove()
    return seen[0][-1]


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_shapes_for_28_and_32_px(shape):
    G, D = _models(shape)
    x = G(*G.random_inputs(5))
    assert x.shape == (5, *shape) and x.abs().max() <= 1
    assert D(x).shape == (5,)
    assert isinstance(G, dcgan.Generator) and isinstance(D, dcgan.Discriminator)  # built on dcgan, not copied


def test_every_weight_layer_of_g_and_d_is_spectrally_normalised():
    G, D = _models()
    for model in (G, D):
        weights = [m for m in model.modules() if isinstance(m, layers.WEIGHT_LAYERS)]
        assert len(weights) >= 6 and all(layers.is_spectral_normalised(m) for m in weights)
        assert all(len(m.parametrizations.weight) == 1 for m in weights)  # once, not stacked
    assert any(isinstance(m, nn.BatchNorm2d) for m in G.modules())  # SAGAN's G keeps batch norm ...
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) for m in D.modules())  # ... its D has none


@pytest.mark.parametrize("shape,side", [((1, 28, 28), 14), ((3, 32, 32), 16)])
def test_attention_sits_at_the_largest_map_below_the_image(shape, side):
    G, D = _models(shape)
    assert G.attention_at == D.attention_at == side
    assert _attention_input_side(G, *G.random_inputs(2)) == side
    assert _attention_input_side(D, torch.randn(2, *shape)) == side
    assert sagan.attention_block(G).theta.in_channels == 8  # the map's channels: width next to the image
    for seq, activation in ((G.net, nn.ReLU), (D.body, nn.LeakyReLU)):
        i = next(i for i, m in enumerate(seq) if isinstance(m, layers.SelfAttention))
        assert isinstance(seq[i - 1], activation)  # after the whole block (conv, norm, activation)


def test_attention_can_be_moved_or_left_out():
    G, D = _models(attention_at=7)
    assert _attention_input_side(G, *G.random_inputs(2)) == 7 and _attention_input_side(D, torch.randn(2, 1, 28, 28)) == 7
    G, D = _models(attention_at=None)
    assert sagan.attention_block(G) is None and sagan.attention_block(D) is None
    assert all(layers.is_spectral_normalised(m) for m in G.modules() if isinstance(m, layers.WEIGHT_LAYERS))
    with pytest.raises(ValueError, match="choose one of"):
        sagan.Generator((1, 28, 28), width=8, attention_at=28)  # the image itself is not a feature map
    with pytest.raises(ValueError, match="choose one of"):
        sagan.Discriminator((1, 28, 28), width=8, attention_at=5)


def test_sigma_is_one_per_layer_after_a_forward_in_training_mode():
    G, D = _models()
    G.train(), D.train()
    D(G(*G.random_inputs(4)))
    for model in (G, D):
        s = layers.sigmas(model)
        assert len(s) >= 6 and all(0.99 < v < 1.05 for v in s.values()), s
    plain = dcgan.Discriminator((1, 28, 28), width=8)
    assert max(layers.sigmas(plain).values()) > 1.5 or min(layers.sigmas(plain).values()) < 0.5  # without SN: anything


def test_the_optimisers_are_ttur():
    G, D = _models()
    opt_G, opt_D = sagan.optimizers(G, D)
    assert opt_G.defaults["lr"] == 1e-4 and opt_D.defaults["lr"] == 4e-4
    assert opt_G.defaults["betas"] == opt_D.defaults["betas"] == (0.0, 0.9)  # the paper's beta2
    assert sagan.optimizers(G, D, betas=(0.0, 0.999))[1].defaults["betas"] == (0.0, 0.999)  # the official code's
    assert {id(p) for g in opt_D.param_groups for p in g["params"]} == {id(p) for p in D.parameters()}


def test_three_hinge_steps_through_fit_train_both_players():
    G, D = _models()
    gen = torch.Generator().manual_seed(0)
    images = data.ImageSet(torch.rand(32, 1, 28, 28, generator=gen) * 2 - 1, torch.zeros(32, dtype=torch.long), ("x",), "toy")
    opt_G, opt_D = sagan.optimizers(G, D)
    state = train.GANState(G, D, opt_G, opt_D)
    before_G, before_D = copy.deepcopy(G.state_dict()), copy.deepcopy(D.state_dict())
    d_step, g_step = train.gan_steps(G, D, opt_G, opt_D, images, 8, d_loss=losses.d_loss_hinge, g_loss=losses.g_loss_hinge)
    history = train.fit(state, d_step, g_step, 3, log_every=1, progress=False)
    assert state.step == 3 and history.steps == [1, 2, 3]
    assert all(torch.isfinite(torch.tensor(history.values[k])).all() for k in ("loss_D", "loss_G"))
    for model, before in ((G, before_G), (D, before_D)):
        moved = [k for k, v in model.state_dict().items() if k.endswith("original") and not torch.equal(v, before[k])]
        assert len(moved) == sum(k.endswith("original") for k in before)  # every weight of both players moved
    assert sagan.attention_block(G).gamma != 0 and sagan.attention_block(D).gamma != 0  # attention opens


def test_attention_maps_come_from_one_ordinary_forward():
    G, _ = _models()
    G.eval()
    (z,) = G.random_inputs(3, generator=torch.Generator().manual_seed(1))
    x, beta = sagan.attention_maps(G, z)
    assert beta.shape == (3, 14, 14, 7, 7)  # per query pixel of the 14 x 14 map, a heat map over 7 x 7 keys
    assert_close(beta.sum((-2, -1)), torch.ones(3, 14, 14))
    assert torch.equal(x, G(z))  # the hooks changed nothing and are gone
    block = sagan.attention_block(G)
    assert not block._forward_hooks and not block._forward_pre_hooks
    with pytest.raises(ValueError, match="no self-attention"):
        sagan.attention_maps(_models(attention_at=None)[0], z)


def test_a_saved_state_dict_restores_the_power_iteration_vectors():
    G, D = _models()
    D.train()(torch.randn(2, 1, 28, 28))
    G2, D2 = _models()
    D2.load_state_dict(D.state_dict())
    x = torch.randn(4, 1, 28, 28)
    assert torch.equal(D.eval()(x), D2.eval()(x))
