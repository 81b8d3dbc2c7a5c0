"""Lesson 11, first half: the semi-supervised GAN (Salimans et al. 2016; Odena 2016).

D is a K-class classifier whose class logits l(x) also decide real against fake, D(x) = Z/(Z+1) with
Z = sum_k exp l_k(x) (the K+1-th, "fake" logit fixed at 0: ``losses.k_plus_one_logits``). It learns from a few
labelled images (``losses.d_loss_supervised``), from every image unlabelled and from G's fakes
(``losses.d_loss_unsupervised``); G matches the mean of D's last hidden features (``losses.feature_matching``).
The baseline is the same D network trained on the labelled images alone (``train_supervised``). Its settings
are a preset of their own, ``SSL_BASELINE_11``: the GAN's recipe, ``SSL_11``, names the shipped runs, and the
baseline's settings have no part in it.

Labels cannot leak: ``split_labels`` hands training the ``per_class`` labelled images and the images
alone (``SemiSupervised``), so no step can read another label.

The lesson's other half, BiGAN, is ``ganlib.bigan``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from . import distributed, latent, losses, train
from .data import random_rows
from .updates import frozen, update


# ---------------------------------------------------------------------------------------------
# The data split, D, G and their steps
# ---------------------------------------------------------------------------------------------


@dataclass
class SemiSupervised:
    """What semi-supervised training may see: ``per_class`` labelled images of each class (``x_labelled``,
    ``y_labelled``, drawn once, at ``indices`` of the training set) and every training image without its label
    (``x_unlabelled``, the labelled ones included, as in Salimans et al.'s code)."""

    x_labelled: torch.Tensor
    y_labelled: torch.Tensor
    x_unlabelled: torch.Tensor
    indices: torch.Tensor

    @property
    def n_labels(self) -> int:
        return len(self.y_labelled)


def labelled_indices(y: torch.Tensor, per_class: int, seed: int) -> torch.Tensor:
    """``per_class`` indices of each class of ``y``, drawn without replacement by ``seed`` (sorted)."""
    gen = torch.Generator().manual_seed(seed)
    y = y.cpu()
    chosen = []
    for c in y.unique():
        members = (y == c).nonzero().flatten()
        if len(members) < per_class:
            raise ValueError(f"class {int(c)} has {len(members)} images, fewer than per_class={per_class}")
        chosen.append(members[torch.randperm(len(members), generator=gen)[:per_class]])
    return torch.cat(chosen).sort().values


def split_labels(images, per_class: int, seed: int) -> SemiSupervised:
    """Keep the labels of ``per_class`` images per class of ``images`` (a ``data.ImageSet``), drop the rest."""
    idx = labelled_indices(images.y, per_class, seed).to(images.x.device)
    return SemiSupervised(images.x[idx], images.y[idx], images.x, idx)


class GaussianNoise(nn.Module):
    """x + std * N(0, 1) while training, x itself in eval mode (Salimans et al.'s D adds it before every layer)."""

    def __init__(self, std: float):
        super().__init__()
        self.std = std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.std * torch.randn_like(x) if self.training and self.std else x


class ClassifierD(nn.Module):
    """Salimans et al.'s MLP discriminator, narrower: image -> hidden features f(x) -> K class logits.

    Gaussian noise on the input (``noise_in``) and after every hidden layer (``noise_hidden``); ReLU. The same
    network is the supervised baseline (trained on the labelled images only) and the semi-supervised GAN's D.
    """

    def __init__(self, shape=(1, 28, 28), widths=(500, 250, 250), classes: int = 10, noise_in: float = 0.3,
                 noise_hidden: float = 0.5):
        super().__init__()
        body, width = [nn.Flatten(), GaussianNoise(noise_in)], shape[0] * shape[1] * shape[2]
        for w in widths:
            body += [nn.Linear(width, w), nn.ReLU(), GaussianNoise(noise_hidden)]
            width = w
        self.body, self.head = nn.Sequential(*body), nn.Linear(width, classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class MLPGenerator(nn.Module):
    """z ~ U(0, 1)^z_dim -> hidden layers (BatchNorm, softplus) -> image in [-1, 1] (tanh): Salimans et al.'s G."""

    def __init__(self, shape=(1, 28, 28), z_dim: int = 100, widths=(500, 500), uniform_low: float = 0.0):
        super().__init__()
        net, width = [], z_dim
        for w in widths:
            net += [nn.Linear(width, w), nn.BatchNorm1d(w), nn.Softplus()]
            width = w
        net += [nn.Linear(width, shape[0] * shape[1] * shape[2]), nn.Tanh(), nn.Unflatten(1, tuple(shape))]
        self.net, self.z_dim, self.low = nn.Sequential(*net), z_dim, uniform_low

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)

    def random_inputs(self, n: int, device=None, generator=None) -> tuple[torch.Tensor]:
        return (latent.uniform(n, self.z_dim, self.low, 1.0, device, generator),)


def supervised_step(D: ClassifierD, opt_D, data: SemiSupervised, batch_size: int):
    """The baseline's step: cross-entropy on a batch drawn from the labelled images."""

    def step():
        x, y = random_rows(batch_size, data.x_labelled, data.y_labelled)
        loss = losses.d_loss_supervised(D(x), y)
        update(opt_D, loss)
        return {"loss_sup": loss.detach()}

    return step


def semi_supervised_steps(G, D: ClassifierD, opt_G, opt_D, data: SemiSupervised, batch_size: int,
                          unsupervised_weight: float = 1.0):
    """``d_step``: L_sup on a labelled batch + w * L_unsup on an unlabelled batch and fakes; ``g_step``:
    feature matching on D's last hidden layer, against a fresh unlabelled batch."""
    device = data.x_unlabelled.device

    def d_step():
        x_lab, y = random_rows(batch_size, data.x_labelled, data.y_labelled)
        (x_unl,) = random_rows(batch_size, data.x_unlabelled)
        with torch.no_grad():
            x_fake = G(*G.random_inputs(batch_size, device))
        sup = losses.d_loss_supervised(D(x_lab), y)
        unsup = losses.d_loss_unsupervised(D(x_unl), D(x_fake))
        update(opt_D, sup + unsupervised_weight * unsup)
        return {"loss_sup": sup.detach(), "loss_unsup": unsup.detach()}

    def g_step():
        (x_unl,) = random_rows(batch_size, data.x_unlabelled)
        with frozen(D):
            f_real = D.features(x_unl).detach()
            f_fake = D.features(G(*G.random_inputs(batch_size, device)))
        loss = losses.feature_matching(f_real, f_fake)
        update(opt_G, loss)
        return {"loss_G": loss.detach()}

    return d_step, g_step


# ---------------------------------------------------------------------------------------------
# The lesson's runs
# ---------------------------------------------------------------------------------------------

SSL_11 = {  # Salimans et al.'s MNIST recipe, narrower and shorter: Adam (0.5, 0.999), batch 100 labelled + 100 unlabelled
    "smoke": dict(steps=10, batch_size=32, lr=3e-3, d_widths=[64, 32, 32], g_widths=[32, 64], z_dim=16, limit=2048,
                  log_every=5),
    "cpu": dict(steps=8000, batch_size=100, lr=3e-3, d_widths=[500, 250, 250], g_widths=[256, 512], z_dim=64,
                limit=None, log_every=250),
    "gpu": dict(steps=8000, batch_size=100, lr=3e-3, d_widths=[500, 250, 250], g_widths=[256, 512], z_dim=64,
                limit=None, log_every=250),
}
SSL_BASELINE_11 = {  # the supervised baseline (train_supervised): SSL_11's D and batch size, its own steps and Adam lr
    "smoke": dict(steps=10, lr=1e-3),
    "cpu": dict(steps=1000, lr=1e-3),
    "gpu": dict(steps=1000, lr=1e-3),
}


def ssl_name(per_class: int, draw: int, recipe: dict) -> str:
    """E.g. ``fashion_mnist-ssl-10pc-draw0-8000``: the checkpoint and shipped-weights name of a semi-supervised run."""
    return f"fashion_mnist-ssl-{per_class}pc-draw{draw}-{recipe['steps']}"


def ssl_networks(shape, recipe: dict) -> tuple[MLPGenerator, ClassifierD]:
    return (MLPGenerator(shape, recipe["z_dim"], tuple(recipe["g_widths"])),
            ClassifierD(shape, tuple(recipe["d_widths"])))


def train_semi_supervised(data: SemiSupervised, draw: int, recipe: dict, *, directory, pretrained: bool = False,
                          progress: bool = False) -> train.GANState:
    """The semi-supervised GAN on ``data`` (``split_labels(images, per_class, draw)``), seeded by ``draw``,
    checkpointed in ``directory`` under ``ssl_name`` (resumed if present; ``pretrained``: the shipped run loads)."""
    torch.manual_seed(draw)
    device = data.x_unlabelled.device
    G, D = (m.to(device) for m in ssl_networks(tuple(data.x_unlabelled.shape[1:]), recipe))
    opt_G, opt_D = train.adam(G, D, recipe["lr"], betas=(0.5, 0.999))
    state = train.GANState(G, D, opt_G, opt_D)
    d_step, g_step = semi_supervised_steps(G, D, opt_G, opt_D, data, distributed.local_batch(recipe["batch_size"]))
    per_class = data.n_labels // len(data.y_labelled.unique())
    train.fit(state, d_step, g_step, recipe["steps"], log_every=recipe["log_every"], progress=progress,
              checkpoint=Path(directory) / f"{ssl_name(per_class, draw, recipe)}.pt",
              checkpoint_every=recipe["steps"] // 4, recipe=recipe, pretrained=pretrained)
    return state


def train_supervised(data: SemiSupervised, seed: int, recipe: dict, baseline: dict, progress: bool = False) -> ClassifierD:
    """The baseline: the semi-supervised run's D network (``recipe``, an ``SSL_11`` entry), trained on the labelled
    images alone (cross-entropy, the same batch size) for ``baseline["steps"]`` steps of Adam ``baseline["lr"]`` with
    beta (0.5, 0.999) (``baseline``, an ``SSL_BASELINE_11`` entry), seeded by ``seed``. (At the GAN's 3e-3 one
    baseline run in 15 collapsed to 19% test accuracy.)"""
    torch.manual_seed(seed)
    D = ssl_networks(tuple(data.x_unlabelled.shape[1:]), recipe)[1].to(data.x_labelled.device)
    opt = torch.optim.Adam(D.parameters(), baseline["lr"], betas=(0.5, 0.999), fused=train.fused_adam(D))
    step = supervised_step(D, opt, data, recipe["batch_size"])
    for _ in train.tqdm(range(baseline["steps"]), disable=not progress, desc="supervised"):
        step()
    return D.eval()
