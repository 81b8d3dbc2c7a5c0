import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ganlib import data, losses, stylegan, stylegan_layers as sl, stylegan_look, train
from ganlib.layers import MinibatchStd

TINY = stylegan.StyleGANConfig(resolution=16, channel_base=64, channel_max=8, z_dim=16, w_dim=16, mapping_layers=2)


def tiny_g(seed=0, **changes):
    torch.manual_seed(seed)
    return stylegan.Generator(stylegan.StyleGANConfig(**{**TINY.__dict__, **changes}))


# --- modulated convolution -----------------------------------------------------------------------


def per_sample_modconv(x, weight, s, demodulate):
    """The definition, one sample at a time: scale the weights by the style, [normalise], convolve."""
    outs = []
    for x_b, s_b in zip(x, s):
        w = weight * s_b[None, :, None, None]  # (O, I, k, k): input channel i scaled by s_i
        if demodulate:
            w = w / torch.sqrt((w ** 2).sum(dim=(1, 2, 3), keepdim=True) + 1e-8)
        outs.append(F.conv2d(x_b[None], w, padding=weight.shape[-1] // 2))
    return torch.cat(outs)


@pytest.mark.parametrize("demodulate,kernel", [(True, 3), (False, 1), (False, 3)])
def test_grouped_modulated_conv_equals_the_per_sample_loop(demodulate, kernel):
    torch.manual_seed(0)
    x, weight, s = torch.randn(5, 6, 8, 8), torch.randn(4, 6, kernel, kernel), torch.randn(5, 6)
    expected = per_sample_modconv(x, weight, s, demodulate)
    torch.testing.assert_close(sl.modulated_conv2d(x, weight, s, demodulate), expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(sl.modulated_conv2d_nonfused(x, weight, s, demodulate), expected, rtol=1e-4, atol=1e-5)


def test_the_layer_gives_the_same_output_on_both_paths():
    torch.manual_seed(0)
    layer = sl.ModulatedConv(6, 4, w_dim=5, up=True)
    x, w, noise = torch.randn(3, 6, 4, 4), torch.randn(3, 5), torch.randn(3, 1, 8, 8)
    layer.fused = True
    fused = layer(x, w, noise)
    layer.fused = False
    torch.testing.assert_close(layer(x, w, noise), fused, rtol=1e-4, atol=1e-5)
    assert fused.shape == (3, 4, 8, 8)


def test_demodulation_restores_unit_variance():
    torch.manual_seed(0)
    x = torch.randn(16, 64, 12, 12)  # unit-variance inputs
    weight, s = torch.randn(32, 64, 3, 3), 3 * torch.rand(16, 64) + 0.1  # styles far from 1
    out = sl.modulated_conv2d(x, weight, s, demodulate=True, padding=0)  # no zero padding: no border effect
    raw = sl.modulated_conv2d(x, weight, s, demodulate=False, padding=0)
    assert abs(out.var().item() - 1) < 0.05  # 16 * 32 * 100 outputs: the sampling error is ~1%
    assert raw.var().item() > 10  # without demodulation the scale follows the weights and styles


def test_demodulation_sums_over_input_channels_and_kernel_for_each_sample_and_output():
    weight, s = torch.randn(4, 3, 3, 3), torch.rand(2, 3) + 0.5
    expected = torch.stack([torch.stack([(weight[o] * s[b][:, None, None]).square().sum().add(1e-8).rsqrt()
                                         for o in range(4)]) for b in range(2)])
    torch.testing.assert_close(sl.demodulation(weight, s), expected)


def test_adain_gives_each_feature_map_the_style_mean_and_std():
    torch.manual_seed(0)
    x, y_s, y_b = 5 * torch.randn(2, 3, 8, 8) + 2, torch.rand(2, 3) + 0.5, torch.randn(2, 3)
    out = sl.adain(x, y_s, y_b)
    torch.testing.assert_close(out.mean(dim=(2, 3)), y_b, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.std(dim=(2, 3), unbiased=False), y_s, atol=1e-4, rtol=0)


# --- equalised learning rate ---------------------------------------------------------------------


def test_equalised_lr_gain_is_applied_in_forward():
    fc = sl.EqualLinear(400, 300, bias=False, lr_mul=0.01)
    assert abs(fc.weight.std().item() - 100) < 2  # stored as N(0, 1) / lr_mul
    with torch.no_grad():
        fc.weight.zero_()
        fc.weight[0, 3] = 1.0
    x = torch.zeros(1, 400)
    x[0, 3] = 1.0
    torch.testing.assert_close(fc(x)[0, 0], torch.tensor(0.01 / math.sqrt(400)))  # the gain, at run time

    conv = sl.EqualConv2d(4, 2, 3, bias=False)
    assert abs(conv.weight.std().item() - 1) < 0.3
    with torch.no_grad():
        conv.weight.fill_(2.0)
    centre = conv(torch.ones(1, 4, 5, 5))[0, 0, 2, 2]  # 36 inputs of 1, weight 2, gain 1 / sqrt(36)
    torch.testing.assert_close(centre, torch.tensor(2.0 * 36 / 6))


def test_equalised_lr_bias_is_scaled_by_lr_mul_and_lrelu_has_gain_sqrt2():
    fc = sl.EqualLinear(3, 2, bias_init=0.0, lr_mul=0.01, activation=True)
    with torch.no_grad():
        fc.weight.zero_()
        fc.bias.fill_(100.0)
    torch.testing.assert_close(fc(torch.zeros(1, 3)), torch.full((1, 2), math.sqrt(2)))  # bias 100 * 0.01, lrelu, gain
    torch.testing.assert_close(sl.lrelu(torch.tensor([-1.0])), torch.tensor([-0.2 * math.sqrt(2)]))


# --- mapping, truncation, mixing -----------------------------------------------------------------


def test_z_is_normalised_by_its_second_moment():
    z = torch.randn(4, 16) * 7
    torch.testing.assert_close(sl.normalize_2nd_moment(z).square().mean(dim=1), torch.ones(4))


def test_truncation_psi_one_is_identity_psi_zero_is_w_avg_and_psi_below_one_changes_outputs():
    G = tiny_g().eval()
    with torch.no_grad():
        G.mapping.w_avg.normal_()
    z = torch.randn(3, 16)
    ws = G.mapping(z)
    assert torch.equal(G.mapping(z, psi=1.0), ws)
    torch.testing.assert_close(G.mapping(z, psi=0.0), G.mapping.w_avg.expand_as(ws))
    torch.testing.assert_close(G.mapping(z, psi=0.5), G.mapping.w_avg + 0.5 * (ws - G.mapping.w_avg))
    noise = G.random_noise(3)
    assert torch.equal(G(z, psi=1.0, noise=noise), G(ws, noise=noise))
    assert (G(z, psi=0.5, noise=noise) - G(z, noise=noise)).abs().max() > 1e-3
    x0 = G(z, psi=0.0, noise=noise)
    torch.testing.assert_close(x0, x0[:1].expand_as(x0))  # every z gives the image of w_avg
    cut = stylegan.truncate(ws, G.mapping.w_avg, 0.0, cutoff=2)
    assert torch.equal(cut[:, 2:], ws[:, 2:]) and torch.allclose(cut[:, :2], G.mapping.w_avg.expand(3, 2, -1))


def test_w_avg_moves_in_training_mode_only():
    G = tiny_g()
    z = torch.randn(8, 16)
    G.eval()
    G(z)
    assert torch.equal(G.mapping.w_avg, torch.zeros(16))
    G.train()
    with torch.no_grad():
        w = G.mapping(z, update_w_avg=False)[:, 0]
    assert torch.equal(G.mapping.w_avg, torch.zeros(16))
    G.mapping(z)
    torch.testing.assert_close(G.mapping.w_avg, 0.005 * w.mean(dim=0))  # lerp(mean, 0, 0.995)


def test_style_mixing_uses_w1_before_the_crossover_and_w2_after():
    G = tiny_g(mixing_prob=1.0).train()
    calls, seen = [], []
    G.mapping.register_forward_hook(lambda m, args, out: calls.append((args[0], out.detach())))
    G.synthesis.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach()))
    crossovers = set()
    for _ in range(30):
        calls.clear(), seen.clear()
        w_avg_before = G.mapping.w_avg.clone()
        z = torch.randn(4, 16)
        G(z)
        (z1, ws1), (z2, ws2) = calls
        assert torch.equal(z1, z) and not torch.equal(z2, z)
        ws = seen[0]
        k = int((ws != ws1).any(dim=2).any(dim=0).float().argmax())  # the first layer that differs from w1
        assert 1 <= k < G.num_ws
        assert torch.equal(ws[:, :k], ws1[:, :k]) and torch.equal(ws[:, k:], ws2[:, k:])
        crossovers.add(k)
        expected = ws1[:, 0].mean(dim=0).lerp(w_avg_before, 0.995)  # the second call did not update w_avg
        torch.testing.assert_close(G.mapping.w_avg, expected)
    assert crossovers == set(range(1, G.num_ws))  # uniform in [1, num_ws): all seen in 30 draws (p ~ 0.99)
    calls.clear()
    G.eval()(torch.randn(4, 16))
    assert len(calls) == 1  # eval: no mixing


def test_mix_takes_a_layer_range_from_the_second_source():
    ws1, ws2 = torch.zeros(2, 8, 3), torch.ones(2, 8, 3)
    assert stylegan.mix(ws1, ws2, 3)[0, :, 0].tolist() == [0, 0, 0, 1, 1, 1, 1, 1]
    assert stylegan.mix(ws1, ws2, 2, 5)[0, :, 0].tolist() == [0, 0, 1, 1, 1, 0, 0, 0]
    assert stylegan.Generator.mix is stylegan.mix


# --- generator and discriminator -----------------------------------------------------------------


def test_shapes_layers_and_noise():
    G = stylegan.Generator(stylegan.StyleGANConfig(channel_base=64, channel_max=8, z_dim=16, w_dim=16))
    D = stylegan.Discriminator(stylegan.StyleGANConfig(channel_base=64, channel_max=8))
    x = G(*G.random_inputs(4))
    assert x.shape == (4, 1, 32, 32) and D(x).shape == (4,)
    assert G.num_ws == 8 and G.synthesis.w_resolutions == [4, 8, 8, 16, 16, 32, 32, 32]
    assert [n.shape[-1] for n in G.random_noise(2)] == [4, 8, 8, 16, 16, 32, 32]
    cfg = stylegan.StyleGANConfig(channel_base=1024, channel_max=128)  # min(1024 // r, 128) feature maps
    assert [cfg.channels(r) for r in cfg.resolutions] == [128, 128, 64, 32]
    G, D = stylegan.Generator(cfg), stylegan.Discriminator(cfg)
    assert [m.weight.shape[0] for m in G.synthesis.convs] == [128, 128, 128, 64, 64, 32, 32]
    assert [b.conv1.weight.shape[:2] for b in D.blocks] == [(64, 32), (128, 64), (128, 128)]  # (out, in)
    with pytest.raises(ValueError, match="power of two"):
        stylegan.StyleGANConfig(resolution=28)


def test_noise_strengths_start_at_zero_and_noise_acts_once_they_are_not():
    G = tiny_g().eval()
    strengths = [m.noise_strength for m in G.synthesis.convs]
    assert all(s.item() == 0 for s in strengths)
    ws = G.mapping(torch.randn(2, 16))
    assert torch.equal(G.synthesis(ws, G.random_noise(2)), G.synthesis(ws, G.random_noise(2)))
    with torch.no_grad():
        strengths[-1].fill_(1.0)
    noise = G.random_noise(2)
    assert torch.equal(G.synthesis(ws, noise), G.synthesis(ws, noise))  # explicit noise: reproducible
    assert not torch.equal(G.synthesis(ws, noise), G.synthesis(ws, G.random_noise(2)))


def test_affine_style_bias_starts_at_one():
    G = tiny_g()
    assert all(torch.equal(m.affine.bias, torch.ones_like(m.affine.bias)) for m in G.synthesis.convs)


def test_minibatch_std_matches_the_official_semantics():
    torch.manual_seed(0)
    x = torch.randn(8, 3, 4, 4)
    g = min(4, len(x))
    y = x.reshape(g, -1, 3, 4, 4)  # (G, N/G, C, H, W): sample n in group n % (N/G)
    y = (y - y.mean(dim=0)).square().mean(dim=0).add(1e-8).sqrt().mean(dim=(1, 2, 3))  # (N/G,)
    expected = y.repeat(g)[:, None, None, None].expand(8, 1, 4, 4)
    out = MinibatchStd(4)(x)
    assert torch.equal(out[:, :3], x)
    torch.testing.assert_close(out[:, 3:], expected)


def test_r1_on_this_d_is_gamma_half_the_mean_squared_gradient_norm():
    torch.manual_seed(0)
    D = stylegan.Discriminator(stylegan.StyleGANConfig(resolution=16, channel_base=64, channel_max=8))
    x = torch.randn(8, 1, 16, 16, requires_grad=True)
    (grad,) = torch.autograd.grad(D(x).sum(), x)
    expected = 0.01 / 2 * (grad ** 2).sum(dim=(1, 2, 3)).mean()
    r1 = losses.r1_penalty(D, x.detach(), gamma=0.01)
    torch.testing.assert_close(r1, expected)
    r1.backward()
    grads = {n: p.grad for n, p in D.named_parameters()}
    assert grads.pop("out.bias") is None  # the last bias does not change grad_x D
    weights = [g for n, g in grads.items() if n.endswith("weight")]  # (biases only move lrelu's kinks: zero)
    assert all(torch.isfinite(g).all() and g.abs().sum() > 0 for g in weights)  # the double backward reaches D
    a = torch.rand(1, 1, 16, 16)  # a quadratic D: grad = a * x in closed form

    class Quadratic(torch.nn.Module):
        def forward(self, x):
            return 0.5 * (a * x ** 2).sum(dim=(1, 2, 3))
    torch.testing.assert_close(losses.r1_penalty(Quadratic(), x.detach(), 10.0),
                               5.0 * (a * x.detach()).square().sum(dim=(1, 2, 3)).mean())


def test_g_ema_gets_w_avg_through_ema_update():
    state = stylegan.make_state(TINY)
    state.G(torch.randn(8, 16))
    assert state.G.mapping.w_avg.abs().sum() > 0 and state.G_ema.mapping.w_avg.abs().sum() == 0
    train.ema_update(state.G_ema, state.G, 0.999)
    assert torch.equal(state.G_ema.mapping.w_avg, state.G.mapping.w_avg)
    assert not state.G_ema.training


def test_lazy_optimiser_settings():
    opt_G, opt_D = stylegan.optimizers(tiny_g(), stylegan.Discriminator(TINY), TINY)
    assert opt_G.defaults["lr"] == 0.0025 and opt_G.defaults["betas"] == (0.0, 0.99)
    c = 16 / 17
    assert math.isclose(opt_D.defaults["lr"], 0.0025 * c) and math.isclose(opt_D.defaults["betas"][1], 0.99 ** c)


def test_padding_keeps_pixels_exact():
    x = torch.rand(2, 1, 28, 28) * 2 - 1
    p = stylegan.pad_to_32(x)
    assert p.shape == (2, 1, 32, 32) and torch.equal(stylegan.crop_images(p, 28), x)
    assert (p[..., :2, :] == -1).all() and (p[..., :, -2:] == -1).all()


def test_no_custom_cuda_or_cpp_extension():
    for path in Path(stylegan.__file__).parent.glob("*.py"):  # all of ganlib, StyleGAN's modules included
        source = path.read_text()
        for banned in ("cpp_extension", "load_inline", ".cu\"", ".cu'", "upfirdn2d", "bias_act"):
            assert banned not in source, f"{path.name} mentions {banned}"
    assert {"stylegan.py", "stylegan_layers.py"} <= {p.name for p in Path(stylegan.__file__).parent.glob("*.py")}


# --- training ------------------------------------------------------------------------------------


def _images(n=32, size=16):
    x = torch.tanh(torch.randn(n, 1, size, size, generator=torch.Generator().manual_seed(1)))
    return data.ImageSet(x, torch.zeros(n, dtype=torch.long), ("x",), "noise")


def _run(state, cfg, steps, path=None):
    phases = stylegan.stylegan_phases(state, _images(), 8, cfg)
    return train.fit_schedule(state, phases, steps, ema_beta=stylegan.ema_beta(cfg, 8), log_every=3,
                              checkpoint=path, progress=False)


def test_a_few_steps_with_lazy_r1_and_path_length_stay_finite():
    cfg = stylegan.StyleGANConfig(**{**TINY.__dict__, "r1_every": 2, "pl_weight": 2.0, "pl_every": 3})
    torch.manual_seed(0)
    state = stylegan.make_state(cfg)
    w_avg0 = state.G_ema.mapping.w_avg.clone()
    history = _run(state, cfg, 6)
    assert {"loss_D", "loss_G", "R1", "path_length"} <= set(history.values)
    assert all(np.isfinite(history.series(k)[1]).all() for k in history.values)
    assert len(history.series("R1")[1]) == 2 and float(state.extras["pl_mean"]) > 0
    assert not torch.equal(state.G_ema.mapping.w_avg, w_avg0)


def test_resume_with_pl_mean_is_exact(tmp_path):
    cfg = stylegan.StyleGANConfig(**{**TINY.__dict__, "r1_every": 2, "pl_weight": 2.0, "pl_every": 2})
    torch.manual_seed(0), np.random.seed(0)
    straight = stylegan.make_state(cfg)
    _run(straight, cfg, 5)

    torch.manual_seed(0), np.random.seed(0)
    first = stylegan.make_state(cfg)
    _run(first, cfg, 3, tmp_path / "run.pt")
    torch.manual_seed(5), np.random.seed(5)
    second = stylegan.make_state(cfg)
    _run(second, cfg, 5, tmp_path / "run.pt")
    for a, b in [(straight.G, second.G), (straight.D, second.D), (straight.G_ema, second.G_ema)]:
        for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(va, vb), k
    assert torch.equal(straight.extras["pl_mean"], second.extras["pl_mean"])
    assert second.history.values.keys() == straight.history.values.keys()
    for k, v in straight.history.values.items():
        np.testing.assert_array_equal(second.history.values[k], v)


# --- looking at a trained G ----------------------------------------------------------------------


def test_mixing_grid_cells_are_the_mixes_of_their_row_and_column():
    G = tiny_g().eval()
    ws_rows, ws_cols, noise = G.mapping(torch.randn(2, 16)), G.mapping(torch.randn(3, 16)), G.random_noise(1)
    grid = stylegan_look.mixing_grid(G, ws_rows, ws_cols, 1, 3, noise)
    assert grid.shape == (6, 1, 16, 16)
    for i in range(2):
        for j in range(3):
            expected = G.synthesis(stylegan.mix(ws_rows[i:i + 1], ws_cols[j:j + 1], 1, 3), noise)
            torch.testing.assert_close(grid[3 * i + j:3 * i + j + 1], expected)


def test_truncation_strip_and_sample_at_psi_zero():
    G = tiny_g().eval()
    z = torch.randn(3, 16)
    strip = stylegan_look.truncation_strip(G, z, [0.0, 1.0], noise=G.random_noise(3))
    torch.testing.assert_close(strip[:3], strip[:1].expand(3, -1, -1, -1))  # psi = 0: all the same image
    assert not torch.allclose(strip[3], strip[4])
    x = stylegan_look.sample(G, 5, psi=0.0, batch_size=2)
    assert x.shape == (5, 1, 16, 16) and torch.allclose(x, x[:1].expand_as(x), atol=1e-5)


def test_noise_std_map_is_zero_until_noise_strengths_move():
    G = tiny_g().eval()
    ws = G.mapping(torch.randn(2, 16))
    assert stylegan_look.noise_std_map(G, ws, n=4).abs().max() == 0  # strengths start at 0: noise does nothing
    with torch.no_grad():
        G.synthesis.convs[-1].noise_strength.fill_(0.5)
    m = stylegan_look.noise_std_map(G, ws, n=4)
    assert m.shape == (2, 16, 16) and (m > 0).float().mean() > 0.9


def test_use_fused_modconv_sets_every_layer_and_keeps_outputs():
    G = tiny_g().eval()
    z, noise = torch.randn(3, 16), G.random_noise(3)
    fused = G(z, noise=noise)
    stylegan.use_fused_modconv(G, False)
    assert all(m.fused is False for m in G.modules() if isinstance(m, stylegan.ModulatedConv))
    torch.testing.assert_close(G(z, noise=noise), fused, rtol=1e-4, atol=1e-5)


def test_adain_forgets_the_scale_of_its_input():
    x, y_s, y_b = torch.randn(2, 3, 8, 8), torch.rand(2, 3) + 0.5, torch.randn(2, 3)
    torch.testing.assert_close(sl.adain(10 * x, y_s, y_b), sl.adain(x, y_s, y_b), atol=1e-5, rtol=1e-5)


def test_bf16_main_phases_keep_fp32_weights_and_finite_losses():
    torch.manual_seed(0)
    state = stylegan.make_state(TINY)
    logs = [p.fn() for p in stylegan.stylegan_phases(state, _images(), 8, TINY, amp=True)]  # D, G, R1 once each
    assert all(torch.isfinite(v).all() for log in logs for v in log.values())
    assert all(p.dtype == torch.float32 for p in state.G.parameters()) and state.G.mapping.w_avg.dtype == torch.float32


def test_stylegan_benchmark_compares_two_ways_of_one_quantity_and_runs():
    """benchmarks/stylegan_step.py times the factored demodulation against the per-sample weights built
    first: both must give the same numbers, and the script must run end to end (smoke preset)."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "stylegan_step.py"
    spec = importlib.util.spec_from_file_location("stylegan_step", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    torch.manual_seed(0)
    weight, s = torch.randn(32, 16, 3, 3), torch.rand(8, 16) + 0.1
    torch.testing.assert_close(bench.materialised_demodulation(weight, s), sl.demodulation(weight, s))
    with bench.demodulation("materialised"):
        assert sl.demodulation is bench.materialised_demodulation
    assert sl.demodulation is bench.FACTORED  # restored
    result = bench.main(["--preset", "smoke", "--steps", "2", "--rounds", "1", "--samples", "32", "--limit", "64"])
    assert {row["demodulation"] for row in result["training"]} == {"factored", "materialised"}
    assert all(row["ms_per_step"] > 0 for row in result["training"]) and min(result["sampling_images_per_s"].values()) > 0
