import pytest
import torch
from torch import nn
from torch.testing import assert_close

from ganlib import layers


def test_mlp_has_the_requested_shape_and_returns_logits():
    net = layers.mlp(2, 1, hidden=16, depth=3)
    assert sum(isinstance(m, nn.Linear) for m in net) == 4
    assert isinstance(net[-1], nn.Linear)  # no squashing: D outputs logits
    assert net(torch.randn(5, 2)).shape == (5, 1)


def test_mlp_batch_norm_sits_between_each_hidden_linear_and_its_activation():
    net = layers.mlp(2, 3, hidden=16, depth=3, batch_norm=True)
    kinds = [type(m) for m in net]
    assert kinds == [nn.Linear, nn.BatchNorm1d, nn.LeakyReLU] * 3 + [nn.Linear]  # none on the output
    assert not any(isinstance(m, nn.BatchNorm1d) for m in layers.mlp(2, 3, hidden=16, depth=3))
    assert [type(m) for m in layers.mlp(2, 3, 16, 2, slope=0.0)] == [nn.Linear, nn.ReLU] * 2 + [nn.Linear]
    net.train()
    h = net[1](net[0](torch.randn(64, 2) * 5 + 3))  # a training batch leaves BatchNorm's output standardised
    assert_close(h.mean(dim=0), torch.zeros(16), atol=1e-5, rtol=0)


def test_minibatch_std_appends_the_mean_feature_std():
    x = torch.randn(8, 3, 4, 4)
    out = layers.MinibatchStd()(x)
    expected = x.std(dim=0, unbiased=False).mean()  # one group: the whole batch
    assert out.shape == (8, 4, 4, 4)
    assert_close(out[:, :3], x)
    assert_close(out[:, 3], torch.full((8, 4, 4), float(expected)), atol=1e-4, rtol=1e-4)


def test_minibatch_std_groups_are_strided_like_stylegan():
    x = torch.randn(6, 5)
    out = layers.MinibatchStd(group_size=3)(x)
    for i in range(2):  # samples i, i+2, i+4 form group i
        members = x[i::2]
        assert_close(out[i::2, 5], members.std(0, unbiased=False).mean().expand(3), atol=1e-4, rtol=1e-4)


def test_a_collapsed_batch_has_zero_std_feature():
    out = layers.MinibatchStd()(torch.ones(4, 2).mul(3.0))
    assert out[:, 2].max() < 1e-3


def test_minibatch_std_rejects_an_indivisible_batch():
    with pytest.raises(ValueError, match="not divisible"):
        layers.MinibatchStd(group_size=4)(torch.randn(6, 2))


# ---------------------------------------------------------------------------------------------
# Spectral normalisation
# ---------------------------------------------------------------------------------------------


def _unit(n, seed=0):
    return nn.functional.normalize(torch.randn(n, generator=torch.Generator().manual_seed(seed)), dim=0)


def _sn_state(layer):
    return layer.parametrizations.weight[0], layer.parametrizations.weight.original


def test_power_iteration_converges_to_the_largest_singular_value():
    torch.manual_seed(0)
    W = torch.randn(8, 3, 3, 3)
    true = torch.linalg.matrix_norm(W.reshape(8, -1), ord=2)
    sigma_1, u, v = layers.power_iteration(W, _unit(8), n_iter=1)
    sigma, u, v = layers.power_iteration(W, _unit(8), n_iter=300)
    assert sigma_1 < true - 1e-3  # one iteration from a random u is an underestimate ...
    assert_close(sigma, true, rtol=1e-5, atol=0)  # ... that converges to sigma(W)
    assert_close(u.norm(), torch.tensor(1.0))
    assert_close(v.norm(), torch.tensor(1.0))
    assert_close(sigma, u @ W.reshape(8, -1) @ v)  # sigma = u^T W v
    left = torch.linalg.svd(W.reshape(8, -1))[0][:, 0]  # (8,): the top left singular vector
    assert_close(u.abs(), left.abs(), atol=1e-3, rtol=0)


def test_hand_power_iteration_is_torchs_given_the_same_u():
    torch.manual_seed(1)
    layer = layers.spectral_norm(nn.Conv2d(4, 6, 3))
    sn, W = _sn_state(layer)
    u0 = _unit(6, seed=3)  # a fresh u, far from converged, so the estimates differ visibly
    sigma_1, u_1, _ = layers.power_iteration(W, u0, 1)
    sigma_2, _, v_2 = layers.power_iteration(W, u0, 2)
    with torch.no_grad():  # torch stores v = W^T u / ||W^T u|| after each step; start it from the same u
        sn._u.copy_(u0)
        sn._v.copy_(layers.power_iteration(W, u0, 1)[2])
    W_sn = layer.train().weight  # one power iteration, then W / sigma
    sigma_torch = W.norm() / W_sn.norm()
    assert_close(sn._u, u_1)  # the same half-steps, torch ends on v
    assert_close(sn._v, v_2)
    assert sigma_2 - sigma_1 > 1e-3 and sigma_1 < sigma_torch < sigma_2  # so its sigma is half a step ahead
    assert_close(sigma_torch, sn._u @ layers.weight_matrix(W) @ sn._v)  # sigma = u^T W v on torch's u, v


def test_torchs_u_is_kept_between_calls_and_advances_only_in_training():
    torch.manual_seed(2)
    layer = layers.spectral_norm(nn.Conv2d(3, 5, 3))
    sn, W = _sn_state(layer)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        W.normal_()  # u no longer converged: every iteration visibly moves it
    u_before, v_before = sn._u.clone(), sn._v.clone()
    layer.eval()(x), layer(x)
    assert torch.equal(sn._u, u_before) and torch.equal(sn._v, v_before)  # eval leaves u alone (pytorch#8208)
    layer.train()(x)
    W_mat = layers.weight_matrix(W).detach()  # (C_out, C_in * k * k)
    assert_close(sn._u, nn.functional.normalize(W_mat @ v_before, dim=0))  # one step, from the stored vectors
    u_after_one = sn._u.clone()
    layer(x)
    assert_close(sn._u, layers.power_iteration(W, u_after_one, 1)[1])  # and the next continues from there
    assert "parametrizations.weight.0._u" in layer.state_dict()  # u travels with checkpoints


@pytest.mark.parametrize("make", [lambda: nn.Conv2d(4, 6, 3), lambda: nn.ConvTranspose2d(6, 4, 4, 2, 1),
                                  lambda: nn.Linear(10, 7)])
def test_spectral_norm_makes_the_effective_sigma_one(make):
    torch.manual_seed(3)
    layer = layers.spectral_norm(make())
    for _ in range(20):
        layer.weight  # training mode: one power iteration per read
    dim = layers.output_dim(layer)
    sigma = torch.linalg.matrix_norm(layers.weight_matrix(layer.weight, dim), ord=2)
    assert_close(sigma, torch.tensor(1.0), rtol=1e-3, atol=0)
    assert_close(layers.sigmas(layer)[""], float(sigma.detach()), rtol=1e-5, atol=0)


def test_a_transposed_convolution_is_normalised_along_its_output_dim():
    torch.manual_seed(4)
    layer = layers.refresh_spectral_norm(layers.spectral_norm(nn.ConvTranspose2d(16, 2, 3)), 30)
    assert layers.output_dim(layer) == 1 and layer.parametrizations.weight[0].dim == 1
    wrong = torch.linalg.matrix_norm(layer.weight.detach().reshape(16, -1), ord=2)  # C_in rows: not what SN bounds
    right = torch.linalg.matrix_norm(layers.weight_matrix(layer.weight.detach(), 1), ord=2)
    assert abs(float(wrong) - 1) > 0.05 and abs(float(right) - 1) < 1e-3


def test_a_kernel_is_reshaped_to_c_out_rows():
    W = torch.randn(5, 3, 2, 2)  # (C_out, C_in, k, k)
    assert layers.weight_matrix(W).shape == (5, 12)
    assert torch.equal(layers.weight_matrix(W)[2], W[2].flatten())
    Wt = torch.randn(3, 5, 2, 2)  # a transposed conv's (C_in, C_out, k, k)
    assert layers.weight_matrix(Wt, dim=1).shape == (5, 12)
    assert torch.equal(layers.weight_matrix(Wt, dim=1)[2], Wt[:, 2].flatten())


def test_no_second_parametrization_is_stacked():
    conv = layers.spectral_norm(nn.Conv2d(3, 4, 3))
    with pytest.raises(ValueError, match="already parametrized"):
        layers.spectral_norm(conv)
    model = nn.Sequential(conv, nn.Conv2d(4, 4, 3))
    layers.spectral_norm_all(layers.spectral_norm_all(model))
    assert [len(m.parametrizations.weight) for m in model] == [1, 1]


def test_spectral_norm_all_covers_every_weight_layer_and_nothing_else():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ConvTranspose2d(4, 2, 3),
                          nn.Sequential(nn.Flatten(), nn.Linear(8, 3)), nn.Embedding(5, 3))
    layers.spectral_norm_all(model)
    normalised = [name for name, m in model.named_modules() if layers.is_spectral_normalised(m)]
    assert normalised == ["0", "2", "3.1"]  # batch norm and the embedding are left alone


def test_sigmas_reads_each_effective_weight_without_advancing_u():
    torch.manual_seed(5)
    model = nn.Sequential(layers.spectral_norm(nn.Conv2d(3, 4, 3)), nn.ConvTranspose2d(4, 2, 3), nn.Linear(3, 2))
    layers.refresh_spectral_norm(model.train(), 50)
    sn, _ = _sn_state(model[0])
    u = sn._u.clone()
    s = layers.sigmas(model)
    assert torch.equal(sn._u, u)  # measuring changes nothing
    assert set(s) == {"0", "1", "2"} and abs(s["0"] - 1) < 1e-2
    W1 = model[1].weight.detach()  # (C_in, C_out, k, k): output dim 1
    assert_close(s["1"], float(torch.linalg.matrix_norm(W1.transpose(0, 1).reshape(2, -1), ord=2)))
    assert_close(s["2"], float(torch.linalg.matrix_norm(model[2].weight.detach(), ord=2)))


def test_refresh_converges_u_after_the_weights_are_reinitialised():
    torch.manual_seed(6)
    layer = layers.spectral_norm(nn.Conv2d(16, 32, 3))
    with torch.no_grad():
        nn.init.normal_(layer.parametrizations.weight.original, 0.0, 0.02)  # what dcgan.init_weights does
    stale = layers.sigmas(layer)[""]
    layers.refresh_spectral_norm(layer)
    assert stale > 1.1 and abs(layers.sigmas(layer)[""] - 1) < 0.05
    assert layer.training


# ---------------------------------------------------------------------------------------------
# Self-attention
# ---------------------------------------------------------------------------------------------


def _attention(channels=16, pool=True, gamma=None, seed=0):
    torch.manual_seed(seed)
    block = layers.SelfAttention(channels, pool)
    if gamma is not None:
        with torch.no_grad():
            block.gamma.fill_(gamma)
    return block.eval()  # eval: power iteration frozen, so hand computations see the same weights


def test_self_attention_starts_as_the_identity():
    block = _attention()
    x = torch.randn(3, 16, 8, 8)
    assert block.gamma.item() == 0 and torch.equal(block(x), x)
    block(x).square().sum().backward()
    assert block.gamma.grad.shape == () and block.gamma.grad != 0  # it can open


def test_gamma_is_one_scalar_whatever_the_batch():
    block = _attention(gamma=0.5).train()
    opt = torch.optim.SGD(block.parameters(), 0.1)
    for batch in (2, 5):
        opt.zero_grad()
        block(torch.randn(batch, 16, 4, 4)).sum().backward()
        opt.step()
    assert block.gamma.shape == () and block.gamma.numel() == 1


def test_the_softmax_is_over_the_keys():
    block = _attention()
    x = torch.randn(2, 16, 8, 8)
    _, beta = block(x, return_attention=True)
    theta = block.theta(x).flatten(2)  # (B, C/8, HW)
    phi = nn.functional.max_pool2d(block.phi(x), 2).flatten(2)  # (B, C/8, HW/4)
    logits = theta.transpose(1, 2) @ phi  # (B, HW, HW/4)
    assert_close(beta.sum(-1), torch.ones(2, 64))  # each query's weights sum to 1
    assert_close(beta, torch.softmax(logits, dim=-1))
    assert not torch.allclose(beta, torch.softmax(logits, dim=1), atol=1e-3)  # the bug: over the queries
    assert not torch.allclose(beta.sum(1), torch.ones(2, 16), atol=1e-2)


def test_the_output_is_a_per_query_weighted_sum_of_values():
    block = _attention(channels=8, gamma=0.7, seed=1)
    x = torch.randn(1, 8, 4, 6)
    q = block.theta(x)[0].flatten(1)  # (C/8, HW)
    k = nn.functional.max_pool2d(block.phi(x), 2)[0].flatten(1)  # (C/8, N)
    g = nn.functional.max_pool2d(block.g(x), 2)[0].flatten(1)  # (C/2, N)
    o = torch.zeros(4, 24)
    for i in range(24):  # one query pixel at a time
        weights = torch.softmax(q[:, i] @ k, dim=0)  # (N,): over the keys
        o[:, i] = (g * weights).sum(1)
    expected = x + 0.7 * block.o(o.reshape(1, 4, 4, 6))  # (C/2, HW) -> (1, C/2, H, W)
    assert_close(block(x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("pool,keys", [(True, 16), (False, 64)])
def test_keys_and_values_are_pooled_and_the_widths_are_the_papers(pool, keys):
    block = _attention(channels=32, pool=pool)
    y, beta = block(torch.randn(2, 32, 8, 8), return_attention=True)
    assert y.shape == (2, 32, 8, 8) and beta.shape == (2, 64, keys)  # (B, HW, HW/4) when pooled
    widths = [(c.in_channels, c.out_channels) for c in (block.theta, block.phi, block.g, block.o)]
    assert widths == [(32, 4), (32, 4), (32, 16), (16, 32)]  # C/8, C/8, C/2 (not C), back to C
    assert all(layers.is_spectral_normalised(c) and c.bias is None for c in (block.theta, block.phi, block.g, block.o))


def test_self_attention_refuses_too_few_channels():
    with pytest.raises(ValueError, match="multiple of 8"):
        layers.SelfAttention(12)
