"""A tiny GAN and its step functions, shared by the tests of train and checkpoint."""

import numpy as np
import torch
from torch import nn

from ganlib import losses, train


def models(seed=0):
    torch.manual_seed(seed)
    G = nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 2))
    D = nn.Sequential(nn.Linear(2, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))
    return G, D


def state(seed=0, ema=True, extras=None):
    G, D = models(seed)
    opt_G = torch.optim.Adam(G.parameters(), 1e-3, betas=(0.5, 0.999))
    opt_D = torch.optim.Adam(D.parameters(), 1e-3, betas=(0.5, 0.999))
    extras = {} if extras is None else extras
    return (train.GANState.with_ema(G, D, opt_G, opt_D, extras=extras) if ema
            else train.GANState(G, D, opt_G, opt_D, extras=extras))


def steps(state, batch=32):
    """Step functions that consume torch and numpy randomness, as real lessons do."""

    def real():
        shift = float(np.random.uniform(-0.1, 0.1))  # numpy RNG too: resume must restore it
        return torch.randn(batch, 2) * 0.5 + 1.0 + shift

    def d_step():
        with torch.no_grad():
            x_fake = state.G(torch.randn(batch, 4))
        return train.discriminator_step(state.D, state.opt_D, losses.d_loss_nonsaturating, real(), x_fake)

    def g_step():
        return train.generator_step(state.D, state.opt_G, losses.g_loss_nonsaturating, state.G(torch.randn(batch, 4)))

    return d_step, g_step


def everything(state):
    return {"G": state.G.state_dict(), "D": state.D.state_dict(), "G_ema": state.G_ema.state_dict(),
            "opt_G": state.opt_G.state_dict()["state"], "opt_D": state.opt_D.state_dict()["state"]}


def assert_identical(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_identical(a[k], b[k])
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    else:
        assert a == b
