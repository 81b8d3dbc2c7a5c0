"""Building blocks shared by several lessons' models."""

from __future__ import annotations

import torch
from torch import nn


def mlp(in_dim: int, out_dim: int, hidden: int = 128, depth: int = 3, slope: float = 0.2,
        batch_norm: bool = False) -> nn.Sequential:
    """``depth`` hidden layers of width ``hidden`` with LeakyReLU(slope) (ReLU for slope 0), then a linear output.

    Used as G (z -> x) and D (x -> logit) on toy data; the output layer has no activation, so
    a discriminator built this way returns logits. ``batch_norm``: BatchNorm1d between each hidden
    layer's Linear and its activation (for a generator only: a critic's gradient penalty is per sample).
    """
    layers, width = [], in_dim
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), *([nn.BatchNorm1d(hidden)] if batch_norm else []),
                   nn.LeakyReLU(slope) if slope else nn.ReLU()]
        width = hidden
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


class MinibatchStd(nn.Module):
    """Append one feature: the average standard deviation of the features across the batch.

    Salimans et al. (2016) and Karras et al. (2018) let D look at batch statistics, so a batch
    of near-identical fakes (mode collapse) is easy to spot. For input (B, F, ...) the output is
    (B, F + 1, ...); the statistic is computed over groups of ``group_size`` samples.
    """

    def __init__(self, group_size: int = 0):
        super().__init__()
        self.group_size = group_size  # 0: the whole batch is one group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        g = b if self.group_size <= 0 else min(self.group_size, b)
        if b % g:
            raise ValueError(f"batch size {b} is not divisible by the group size {g}")
        y = x.reshape(g, b // g, *x.shape[1:])  # (G, B/G, F, ...): sample i is in group i % (B/G)
        std = (y.var(dim=0, unbiased=False) + 1e-8).sqrt()  # (B/G, F, ...)
        stat = std.reshape(b // g, -1).mean(dim=1)  # (B/G,): one number per group
        extra = stat.repeat(g).reshape(b, 1, *([1] * (x.ndim - 2))).expand(b, 1, *x.shape[2:])
        return torch.cat([x, extra], dim=1)


# ---------------------------------------------------------------------------------------------
# Spectral normalisation (Miyato et al. 2018; lesson 08)
# ---------------------------------------------------------------------------------------------

WEIGHT_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d, nn.Linear)


def output_dim(module: nn.Module) -> int:
    """The weight's output-channel dimension: 1 for transposed convolutions (C_in, C_out, k, k), else 0."""
    return 1 if isinstance(module, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)) else 0


def weight_matrix(W: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """W as the matrix spectral normalisation measures: (C_out, -1), output dimension ``dim`` first.

    A (C_out, C_in, k, k) kernel becomes (C_out, C_in k k); its sigma bounds, but is not, the operator
    norm of the convolution itself (Miyato et al.'s approximation, as in torch).
    """
    W = W.movedim(dim, 0)  # (C_out, ...)
    return W.reshape(W.shape[0], -1)  # (C_out, C_in * k * k)


def power_iteration(W: torch.Tensor, u: torch.Tensor, n_iter: int = 1, dim: int = 0, eps: float = 1e-12):
    """Miyato et al.'s Algorithm 1: ``n_iter`` times v = W^T u / ||W^T u||, u = W v / ||W v||;
    then sigma = u^T W v, an estimate (from below) of W's largest singular value. Returns (sigma, u, v).

    W is reshaped to (C_out, -1) (``weight_matrix``); u has C_out entries. Carrying u from one training
    step to the next makes one iteration per step enough, since W moves little per step.

    torch's ``spectral_norm`` runs the same half-steps with v first (u = W v, then v = W^T u) and stores
    v last, so its sigma is half an iteration ahead: from the same u (with torch's stored v = W^T u /
    ||W^T u||), torch's new u is this u, its new v this v for n_iter + 1, and its sigma lies between this
    sigma for n_iter and for n_iter + 1 (the estimates never decrease).
    """
    if n_iter < 1:
        raise ValueError("power_iteration needs at least one iteration")
    W = weight_matrix(W, dim)  # (C_out, C_in * k * k)
    with torch.no_grad():
        for _ in range(n_iter):
            v = nn.functional.normalize(W.T @ u, dim=0, eps=eps)  # (C_in * k * k,)
            u = nn.functional.normalize(W @ v, dim=0, eps=eps)  # (C_out,)
    return u @ W @ v, u, v  # sigma keeps its graph to W, as in the layer's forward


def is_spectral_normalised(module: nn.Module) -> bool:
    """Whether ``module.weight`` is computed by torch's spectral-norm parametrization."""
    if not nn.utils.parametrize.is_parametrized(module, "weight"):
        return False
    return any(type(p).__name__ == "_SpectralNorm" for p in module.parametrizations.weight)


def spectral_norm(module: nn.Module, n_power_iterations: int = 1) -> nn.Module:
    """W_SN = W / sigma(W) via ``torch.nn.utils.parametrizations.spectral_norm`` (u, v kept as buffers,
    one power iteration per forward in training mode only, 15 at registration). Returns ``module``.

    Refuses a layer whose weight is already parametrized: ``register_parametrization`` would silently
    stack a second one and divide twice.
    """
    if nn.utils.parametrize.is_parametrized(module, "weight"):
        raise ValueError(f"{type(module).__name__}.weight is already parametrized; not stacking spectral norm on it")
    return nn.utils.parametrizations.spectral_norm(module, n_power_iterations=n_power_iterations, dim=output_dim(module))


def spectral_norm_all(model: nn.Module) -> nn.Module:
    """``spectral_norm`` on every convolution, transposed convolution and linear layer of ``model`` that
    is not spectrally normalised yet (embeddings and normalisation layers are left alone). Returns ``model``."""
    for module in list(model.modules()):
        if isinstance(module, WEIGHT_LAYERS) and not is_spectral_normalised(module):
            spectral_norm(module)
    return model


@torch.no_grad()
def refresh_spectral_norm(model: nn.Module, n_iter: int = 15) -> nn.Module:
    """``n_iter`` power iterations on every spectrally normalised layer, as at registration: for weights
    re-initialised after ``spectral_norm`` (each read of ``.weight`` in training mode is one iteration)."""
    for module in model.modules():
        if is_spectral_normalised(module):
            chain, was = module.parametrizations.weight, module.parametrizations.weight.training
            chain.train()
            for _ in range(n_iter):
                module.weight
            chain.train(was)
    return model


@torch.no_grad()
def effective_weight(module: nn.Module) -> torch.Tensor:
    """The weight the layer multiplies by (W / sigma under spectral norm), read without advancing u."""
    if not nn.utils.parametrize.is_parametrized(module, "weight"):
        return module.weight.detach().clone()
    chain, was = module.parametrizations.weight, module.parametrizations.weight.training
    chain.eval()  # eval: sigma = u^T W v from the stored u, v; no power iteration
    W = module.weight.detach().clone()
    chain.train(was)
    return W


def sigmas(model: nn.Module) -> dict[str, float]:
    """The true largest singular value of every weight layer's effective weight, by module name:
    sigma(W) = ||W reshaped to (C_out, -1)||_2 (``torch.linalg.matrix_norm(ord=2)``). Leaves u, v alone."""
    return {name: float(torch.linalg.matrix_norm(weight_matrix(effective_weight(m), output_dim(m)), ord=2))
            for name, m in model.named_modules() if isinstance(m, WEIGHT_LAYERS)}


# ---------------------------------------------------------------------------------------------
# Self-attention (Zhang et al. 2018, SAGAN; lesson 08)
# ---------------------------------------------------------------------------------------------


def conv1x1(c_in: int, c_out: int) -> nn.Conv2d:
    """A spectrally normalised 1x1 convolution without bias: a per-pixel linear map of the channels."""
    return spectral_norm(nn.Conv2d(c_in, c_out, 1, bias=False))


class SelfAttention(nn.Module):
    """SAGAN's block: y = x + gamma * o, with o_i = W_o sum_j beta_ij g(x)_j and
    beta_ij = softmax_j(theta(x)_i . phi(x)_j): each query pixel i mixes the values of all key pixels j.

    As in the official code (non_local.py): queries theta and keys phi are 1x1 convolutions to C/8
    channels, values g to C/2, W_o maps C/2 back to C; with ``pool`` keys and values are 2x2 max-pooled
    (HW/4 keys; an odd side is floored). Every 1x1 convolution is spectrally normalised. gamma is one
    learned scalar that starts at 0, so the block starts as the identity and the network opens it.

    ``forward(x, return_attention=True)`` also returns beta, shape (B, HW, N) with N keys: row i is
    query i's weights over the keys (they sum to 1); query i is pixel (i // W, i % W), key j of the
    pooled map is (j // (W // 2), j % (W // 2)).
    """

    def __init__(self, channels: int, pool: bool = True):
        super().__init__()
        if channels < 8 or channels % 8:
            raise ValueError(f"self-attention needs a multiple of 8 channels (C/8 queries and keys), got {channels}")
        self.theta, self.phi = conv1x1(channels, channels // 8), conv1x1(channels, channels // 8)
        self.g, self.o = conv1x1(channels, channels // 2), conv1x1(channels // 2, channels)
        self.gamma = nn.Parameter(torch.zeros(()))  # one scalar, not one per sample or channel
        self.pool = pool

    def _keys(self, h: torch.Tensor) -> torch.Tensor:
        return nn.functional.max_pool2d(h, 2) if self.pool else h  # (B, C', H/2, W/2) or unchanged

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        B, C, H, W = x.shape
        theta = self.theta(x).flatten(2)  # (B, C/8, HW): one query per pixel
        phi = self._keys(self.phi(x)).flatten(2)  # (B, C/8, N): N = HW/4 keys when pooled
        g = self._keys(self.g(x)).flatten(2)  # (B, C/2, N): one value per key
        beta = torch.softmax(theta.transpose(1, 2) @ phi, dim=-1)  # (B, HW, N): softmax over the keys
        o = (g @ beta.transpose(1, 2)).reshape(B, C // 2, H, W)  # (B, C/2, HW) -> (B, C/2, H, W)
        y = x + self.gamma * self.o(o)  # (B, C, H, W)
        return (y, beta) if return_attention else y
