"""pix2pix (lesson 12): the PatchGAN's receptive field, the U-Net's skips, dropout as the only noise, the losses."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.testing import assert_close

from ganlib import data, pix2pix


@pytest.mark.parametrize("n_layers, rf", [(0, 1), (1, 16), (2, 34), (3, 70), (4, 142), (5, 286)])
def test_receptive_field_is_the_papers(n_layers, rf):
    assert pix2pix.receptive_field(pix2pix.patchgan_layers(n_layers)) == rf


@pytest.mark.parametrize("n_layers", [1, 2, 3])
def test_receptive_field_is_what_autograd_sees(n_layers):
    """Independent of the formula: the input pixels a central output logit depends on span exactly rf pixels."""
    torch.manual_seed(0)
    D = pix2pix.patch_discriminator(1, n_layers, width=2, norm=lambda c: nn.Identity())
    for m in D.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.uniform_(m.weight, 0.1, 1.0)  # positive weights: no cancellation hides a dependence
    D.eval()
    x = torch.rand(1, 1, 180, 180, requires_grad=True)
    out = D(x)
    i, j = out.shape[-2] // 2, out.shape[-1] // 2
    (grad,) = torch.autograd.grad(out[0, 0, i, j], x)
    rows = grad[0, 0].abs().sum(1).nonzero()
    assert int(rows.max() - rows.min() + 1) == pix2pix.receptive_field(pix2pix.patchgan_layers(n_layers))


@pytest.mark.parametrize("n_layers, side", [(0, 32), (1, 14), (2, 6)])
def test_patch_map_sizes_on_32_pixels(n_layers, side):
    D = pix2pix.PairDiscriminator(pix2pix.patch_discriminator(2, n_layers, 8))
    assert D(torch.zeros(3, 1, 32, 32), torch.zeros(3, 1, 32, 32)).shape == (3, 1, side, side)


def _bottleneck_replaced(G, value):
    """G with its innermost down block's output replaced by ``value``."""
    return G.down[-1].register_forward_hook(lambda m, inp, out: value.expand_as(out))


def test_the_encoder_decoder_knows_the_input_only_through_its_bottleneck_and_the_unet_does_not():
    torch.manual_seed(0)
    a1, a2 = torch.rand(2, 1, 32, 32) * 2 - 1, torch.rand(2, 1, 32, 32) * 2 - 1
    for make, same in ((pix2pix.encoder_decoder, True), (pix2pix.unet, False)):
        G = pix2pix.init_weights(make(1, 1)).eval()
        outs = G.down[0](a1)
        for block in G.down[1:]:
            outs = block(outs)
        assert outs.shape[-2:] == (1, 1)  # 5 levels take 32 px to 1 x 1, as unet_256 does 256
        hook = _bottleneck_replaced(G, torch.ones(1, 32, 1, 1))
        with torch.no_grad():
            equal = torch.allclose(G(a1), G(a2))
        hook.remove()
        assert equal == same


def test_dropout_is_the_only_noise_and_test_modes_say_which():
    torch.manual_seed(0)
    G = pix2pix.init_weights(pix2pix.unet(1, 1))
    a = torch.rand(8, 1, 32, 32) * 2 - 1
    G(a)  # running statistics from one batch
    with torch.no_grad():
        for mode, random in (("train", True), ("dropout", True), ("eval", False)):
            G_test = pix2pix.test_mode(G, mode)
            assert (not torch.equal(G_test(a), G_test(a))) == random, mode
        assert not torch.equal(pix2pix.test_mode(G, "train")(a[:4]), pix2pix.test_mode(G, "eval")(a[:4]))
        G0 = pix2pix.test_mode(pix2pix.init_weights(pix2pix.UNet(1, 1, n_dropout=0)), "train")
        assert torch.equal(G0(a), G0(a))  # without dropout, train mode is deterministic: no z, no noise
    with pytest.raises(ValueError, match="mode must be"):
        pix2pix.test_mode(G, "test")


def test_a_train_mode_test_pass_leaves_the_trained_g_alone():
    """A train-mode pass updates batch norm's running statistics even under no_grad; test_mode works on a copy."""
    torch.manual_seed(0)
    G = pix2pix.init_weights(pix2pix.unet(1, 1))
    G(torch.rand(8, 1, 32, 32) * 2 - 1)
    before = {k: v.clone() for k, v in G.state_dict().items()}
    with torch.no_grad():
        pix2pix.translate(pix2pix.test_mode(G, "train"), torch.rand(40, 1, 32, 32), batch_size=4)
        G_raw = copy.deepcopy(G).train()
        G_raw(torch.rand(4, 1, 32, 32))
    assert all(torch.equal(v, before[k]) for k, v in G.state_dict().items())
    assert not all(torch.equal(v, before[k]) for k, v in G_raw.state_dict().items())  # what a bare train() pass does


def test_losses_are_the_papers():
    torch.manual_seed(0)
    d_real, d_fake = torch.randn(4, 1, 14, 14), torch.randn(4, 1, 14, 14)
    b, b_fake = torch.rand(4, 1, 32, 32), torch.rand(4, 1, 32, 32)
    bce = F.binary_cross_entropy_with_logits
    assert_close(pix2pix.d_loss_pix2pix(d_real, d_fake),
                 (bce(d_real, torch.ones_like(d_real)) + bce(d_fake, torch.zeros_like(d_fake))) / 2)
    assert_close(pix2pix.g_loss_pix2pix(d_fake, b_fake, b), bce(d_fake, torch.ones_like(d_fake)) + 100 * F.l1_loss(b_fake, b))
    assert_close(pix2pix.g_loss_pix2pix(d_fake, b_fake, b, 100.0, 0.0), 100 * F.l1_loss(b_fake, b))


def _pairs(n=64):
    torch.manual_seed(1)
    x = torch.rand(n, 1, 28, 28) * 2 - 1
    return data.edges_to_garments(data.ImageSet(x, torch.randint(10, (n,)), data.FASHION_CLASSES, "toy"))


RECIPE = dict(generator="unet", n_layers=1, l1_weight=100.0, gan_weight=1.0, widths=(4, 8, 8, 8, 8), d_width=4,
              lr=2e-4, batch_size=8, steps=4, log_every=2)


def test_the_d_step_sends_no_gradient_to_g_and_d_judges_the_pair():
    torch.manual_seed(0)
    G, D = pix2pix.networks(RECIPE)
    opt_G, opt_D = torch.optim.Adam(G.parameters()), torch.optim.Adam(D.parameters())
    d_step, g_step = pix2pix.pix2pix_steps(G, D, opt_G, opt_D, _pairs(), 8, 100.0, 1.0)
    d_step()
    assert all(p.grad is None for p in G.parameters())
    assert D.body[0].in_channels == 2  # input and output stacked: a conditional D
    before = [p.grad.clone() for p in D.parameters()]
    g_step()
    assert all(torch.equal(p.grad, g) for p, g in zip(D.parameters(), before))  # D frozen in G's step


def test_l1_only_trains_no_d_and_a_run_resumes_exactly(tmp_path):
    pairs = _pairs()
    state = pix2pix.train_pix2pix(pairs, "L1", 0, {**RECIPE, "gan_weight": 0.0}, directory=tmp_path)
    assert state.step == 4 and "loss_D" not in state.history.values
    short = pix2pix.train_pix2pix(pairs, "full", 0, {**RECIPE, "steps": 2, "log_every": 1}, directory=tmp_path / "a")
    (tmp_path / "a" / "edges-full-seed0-2.pt").rename(tmp_path / "a" / "edges-full-seed0-4.pt")
    resumed = pix2pix.train_pix2pix(pairs, "full", 0, {**RECIPE, "log_every": 1}, directory=tmp_path / "a")
    whole = pix2pix.train_pix2pix(pairs, "full", 0, {**RECIPE, "log_every": 1}, directory=tmp_path / "b")
    assert short.step == 2 and resumed.step == whole.step == 4
    for p, q in zip(resumed.G.state_dict().values(), whole.G.state_dict().values()):
        assert torch.equal(p, q)


def test_sharpness_closed_forms():
    checker = (torch.arange(8)[:, None] + torch.arange(8)[None, :]) % 2 * 2.0 - 1  # +-1 alternating
    assert_close(pix2pix.sharpness(checker[None, None]), torch.tensor([2.0]))
    assert_close(pix2pix.sharpness(torch.full((2, 1, 8, 8), 0.3)), torch.zeros(2))
    ramp = torch.arange(8.0)[None, None, None, :].expand(1, 1, 8, 8) / 7  # horizontal steps of 1/7, no vertical
    assert_close(pix2pix.sharpness(ramp), torch.tensor([0.5 / 7]))
