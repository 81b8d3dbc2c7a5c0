"""Lesson 11, second half: BiGAN / ALI (Donahue et al. 2017; Dumoulin et al. 2017).

An encoder E: x -> z learns beside G: z -> x, because D judges pairs: (x, E(x)) for data against (G(z), z)
for fakes (``losses.d_loss_minimax``; G and E minimise it with the labels swapped, ``losses.g_loss_bidirectional``).
What the lesson measures of E: a linear probe on its codes (``linear_probe``) and how much of x the code
carries back through G (``reconstruction_ratio``).

The lesson's other half, the semi-supervised GAN, is ``ganlib.semisupervised``.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch
from torch import nn

from . import distributed, latent, layers, losses, train, wgan
from .updates import frozen, real_sampler, update


# ---------------------------------------------------------------------------------------------
# The (G, E) player, the joint D and their steps
# ---------------------------------------------------------------------------------------------


class GeneratorEncoder(nn.Module):
    """BiGAN's second player: G (z -> x) and E (x -> z), trained together by one optimiser. Calling it is
    calling G (so ``fit``, EMA and the course's sampling code treat it as a generator); ``encode`` is E."""

    def __init__(self, generator: nn.Module, encoder: nn.Module):
        super().__init__()
        self.generator, self.encoder = generator, encoder

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.generator(z)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """G(E(x))."""
        return self.generator(self.encoder(x))

    def random_inputs(self, n: int, device=None, generator=None):
        return self.generator.random_inputs(n, device, generator)


class JointD(nn.Module):
    """D(x, z): ``x_net(x)`` and ``z_net(z)`` concatenated, then ``joint`` to one logit per pair."""

    def __init__(self, x_net: nn.Module, z_net: nn.Module, joint: nn.Module):
        super().__init__()
        self.x_net, self.z_net, self.joint = x_net, z_net, joint

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.joint(torch.cat([self.x_net(x), self.z_net(z)], dim=1)).flatten()


def bidirectional_steps(GE: GeneratorEncoder, D: JointD, opt_G, opt_D, real, batch_size: int):
    """D separates (x, E(x)) from (G(z), z) (``losses.d_loss_minimax``); G and E minimise the same loss with the
    labels swapped (``losses.g_loss_bidirectional``)."""
    device = next(GE.parameters()).device
    sample = real_sampler(real, device)

    def d_step():
        x, (z,) = sample(batch_size), GE.random_inputs(batch_size, device)
        with torch.no_grad():
            z_hat, x_hat = GE.encode(x), GE(z)
        d_real, d_fake = D(x, z_hat), D(x_hat, z)
        loss = losses.d_loss_minimax(d_real, d_fake)
        update(opt_D, loss)
        return {"loss_D": loss.detach(), "D(x,E(x))": torch.sigmoid(d_real.detach()).mean(),
                "D(G(z),z)": torch.sigmoid(d_fake.detach()).mean()}

    def g_step():
        x, (z,) = sample(batch_size), GE.random_inputs(batch_size, device)
        with frozen(D):
            d_real, d_fake = D(x, GE.encode(x)), D(GE(z), z)
        loss = losses.g_loss_bidirectional(d_real, d_fake)
        update(opt_G, loss)
        return {"loss_G": loss.detach()}

    return d_step, g_step


def fit_logistic(a: torch.Tensor, y: torch.Tensor, classes: int, weight_decay: float = 1e-4, max_iter: int = 200):
    """(W, b) minimising cross-entropy(softmax(a W + b), y) + ``weight_decay`` * ||W||^2 / 2, by L-BFGS (float64)."""
    a = a.double()
    W = torch.zeros(a.shape[1], classes, dtype=torch.float64, device=a.device, requires_grad=True)
    b = torch.zeros(classes, dtype=torch.float64, device=a.device, requires_grad=True)
    opt = torch.optim.LBFGS([W, b], max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(a @ W + b, y) + weight_decay / 2 * W.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    return W.detach(), b.detach()


def linear_probe(f_train: torch.Tensor, y_train: torch.Tensor, f_test: torch.Tensor, y_test: torch.Tensor,
                 weight_decay: float = 1e-4, max_iter: int = 200) -> float:
    """Test accuracy of multinomial logistic regression (``fit_logistic``) on features standardised by the
    training features' mean and std."""
    mean, std = f_train.double().mean(0), f_train.double().std(0).clamp_min(1e-6)
    a, b = ((f.double() - mean) / std for f in (f_train, f_test))
    W, bias = fit_logistic(a, y_train, int(max(y_train.max(), y_test.max())) + 1, weight_decay, max_iter)
    return float(((b @ W + bias).argmax(1) == y_test).double().mean())


@torch.no_grad()
def reconstruction_ratio(GE: GeneratorEncoder, x: torch.Tensor) -> float:
    """BiGAN's EGr / EGr_b: the mean squared error of G(E(x)) against x, over the same against a random other
    image of the batch (1: E tells G nothing about x; below 1: the reconstructions carry x's content)."""
    r = GE.reconstruct(x)
    other = x[torch.roll(torch.arange(len(x), device=x.device), 1)]
    return float((r - x).square().mean() / (r - other).square().mean())


def toy_bigan(hidden: int = 128, depth: int = 4, dim: int = 2, z_dim: int = 2) -> tuple[GeneratorEncoder, JointD]:
    """Lesson 02's toy G, an encoder of the same shape, and lesson 02's toy D on the pair (x, z)."""
    GE = GeneratorEncoder(wgan.ToyGenerator(z_dim, dim, hidden, depth), layers.mlp(dim, z_dim, hidden, depth))
    return GE, JointD(nn.Identity(), nn.Identity(), layers.mlp(dim + z_dim, 1, hidden, depth))


class UniformLatent(nn.Module):
    """Wrap a z -> x network with BiGAN's prior, z ~ U(-1, 1)^z_dim."""

    def __init__(self, net: nn.Module, z_dim: int):
        super().__init__()
        self.net, self.z_dim = net, z_dim

    def forward(self, z):
        return self.net(z)

    def random_inputs(self, n: int, device=None, generator=None):
        return (latent.uniform(n, self.z_dim, -1.0, 1.0, device, generator),)


def image_bigan(shape=(1, 28, 28), z_dim: int = 50, width: int = 256, dropout: float = 0.2):
    """BiGAN's permutation-invariant MNIST networks, narrower: MLP G (BatchNorm, ReLU, tanh), MLP E (LeakyReLU,
    no output activation: E(x) may leave the prior's cube), and a joint D (LeakyReLU, dropout) on [x-branch, z-branch]."""
    n = shape[0] * shape[1] * shape[2]
    G = nn.Sequential(nn.Linear(z_dim, width), nn.BatchNorm1d(width), nn.ReLU(),
                      nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU(),
                      nn.Linear(width, n), nn.Tanh(), nn.Unflatten(1, tuple(shape)))
    E = nn.Sequential(nn.Flatten(), layers.mlp(n, z_dim, width, 2))
    act = functools.partial(nn.LeakyReLU, 0.2)
    D = JointD(nn.Sequential(nn.Flatten(), nn.Linear(n, width), act(), nn.Dropout(dropout)),
               nn.Sequential(nn.Linear(z_dim, width), act(), nn.Dropout(dropout)),
               nn.Sequential(nn.Linear(2 * width, width), act(), nn.Dropout(dropout), nn.Linear(width, 1)))
    return GeneratorEncoder(UniformLatent(G, z_dim), E), D


# ---------------------------------------------------------------------------------------------
# The lesson's runs
# ---------------------------------------------------------------------------------------------

BIGAN_TOYS_11 = {  # lesson 10's toy recipe (zoo.TOYS_10): lesson 02's networks, Adam 3e-4 (0.5, 0.999), one D step
    "smoke": dict(toy_steps=30, toy_hidden=32, toy_depth=2, toy_batch=128, lr=3e-4, log_every=10),
    "cpu": dict(toy_steps=6000, toy_hidden=128, toy_depth=4, toy_batch=256, lr=3e-4, log_every=300),
    "gpu": dict(toy_steps=6000, toy_hidden=128, toy_depth=4, toy_batch=256, lr=3e-4, log_every=300),
}
BIGAN_IMAGES_11 = {  # BiGAN's MNIST recipe (z ~ U(-1, 1)^50, Adam 2e-4, beta1 0.5, batch 128), narrower and shorter
    "smoke": dict(steps=10, batch_size=32, lr=2e-4, width=32, z_dim=50, limit=2048, log_every=5),
    "cpu": dict(steps=6000, batch_size=128, lr=2e-4, width=256, z_dim=50, limit=None, log_every=250),
    "gpu": dict(steps=6000, batch_size=128, lr=2e-4, width=256, z_dim=50, limit=None, log_every=250),
}


def toy_bigan_name(seed: int, recipe: dict) -> str:
    return f"toy-grid-BiGAN-seed{seed}-{recipe['toy_steps']}"


def train_toy_bigan(target, seed: int, recipe: dict, *, directory, pretrained: bool = False) -> train.GANState:
    """BiGAN on a toy (lesson 02's ``data.grid()``) with lesson 10's toy recipe, so it compares with
    ``zoo.train_toy("GAN", ...)``: same G, same D (on the pair), same steps, batch and Adam."""
    torch.manual_seed(seed)
    GE, D = toy_bigan(recipe["toy_hidden"], recipe["toy_depth"])
    opts = train.adam(GE, D, recipe["lr"], betas=(0.5, 0.999))
    state = train.GANState(GE, D, *opts)
    d_step, g_step = bidirectional_steps(GE, D, *opts, target, recipe["toy_batch"])
    train.fit(state, d_step, g_step, recipe["toy_steps"], log_every=recipe["log_every"], progress=False,
              checkpoint=Path(directory) / f"{toy_bigan_name(seed, recipe)}.pt", recipe=recipe, pretrained=pretrained)
    return state


def bigan_name(seed: int, recipe: dict) -> str:
    return f"fashion_mnist-BiGAN-seed{seed}-w{recipe['width']}-{recipe['steps']}"


def train_image_bigan(images, seed: int, recipe: dict, *, directory, pretrained: bool = False,
                      progress: bool = False) -> train.GANState:
    """BiGAN on ``images`` (a ``data.ImageSet``): ``image_bigan``'s networks, Adam (0.5, 0.999)."""
    torch.manual_seed(seed)
    GE, D = (m.to(images.x.device) for m in image_bigan(images.shape, recipe["z_dim"], recipe["width"]))
    opts = train.adam(GE, D, recipe["lr"], betas=(0.5, 0.999))
    state = train.GANState(GE, D, *opts)
    d_step, g_step = bidirectional_steps(GE, D, *opts, images, distributed.local_batch(recipe["batch_size"]))
    train.fit(state, d_step, g_step, recipe["steps"], log_every=recipe["log_every"], progress=progress,
              checkpoint=Path(directory) / f"{bigan_name(seed, recipe)}.pt", checkpoint_every=recipe["steps"] // 4,
              recipe=recipe, pretrained=pretrained)
    return state
