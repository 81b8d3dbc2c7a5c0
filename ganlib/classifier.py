"""The course's feature extractor: a small Fashion-MNIST classifier shipped with the library.

FID, KID and precision/recall compare two sets of images through the features of a fixed network;
the papers use Inception-v3, which knows nothing of 28 x 28 greyscale clothes. We train our own
small CNN once (``python tools/train_classifier.py``), ship its weights (a few hundred kB) and pin
them by SHA-256, so every student computes the same metric: a different extractor is a different
metric, and numbers from two extractors must never be compared.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

FEATURE_DIM = 128
N_CLASSES = 10
WEIGHTS = Path(__file__).resolve().parent / "assets" / "fashion_mnist_classifier.pt"
SHA256 = "4629c0681b371dc173cc4137a05794ec5225a343f708192a3402ed5e9767ee95"


class WeightsMismatch(RuntimeError):
    """The shipped weights file is missing or is not the file the course was built with."""


def _conv_block(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]


class FashionClassifier(nn.Module):
    """A small CNN for (B, 1, 28, 28) images in [-1, 1]: four conv-BN-ReLU blocks, average pool, linear.

    ``features(x)`` is the (B, FEATURE_DIM) penultimate layer, phi(x) = mean over positions of the
    last conv block; ``forward(x)`` returns class logits W phi(x) + b of shape (B, 10).

    Why FEATURE_DIM = 128 and not Inception's 2048: FID fits a Gaussian to the features, and a
    d x d covariance has d(d+1)/2 entries (8,256 here, 2.1 million for d = 2048). With d = 128 the
    covariance has full rank from 129 samples and is estimated well from a few thousand, which is
    what a lesson can generate on a laptop; with d = 2048 it is singular below 2,049 samples.
    """

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            *_conv_block(1, 32), nn.MaxPool2d(2),  # (B, 32, 14, 14)
            *_conv_block(32, 64), *_conv_block(64, 64), nn.MaxPool2d(2),  # (B, 64, 7, 7)
            *_conv_block(64, FEATURE_DIM), nn.AdaptiveAvgPool2d(1), nn.Flatten(),  # (B, FEATURE_DIM)
        )
        self.head = nn.Linear(FEATURE_DIM, N_CLASSES)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """phi(x): the penultimate activations, shape (B, FEATURE_DIM); the space FID/KID/PR work in."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits, shape (B, 10)."""
        return self.head(self.features(x))

    def probs(self, x: torch.Tensor) -> torch.Tensor:
        """p(y | x) = softmax(logits), shape (B, 10); the input of the Inception Score."""
        return self.forward(x).softmax(dim=1)


@torch.no_grad()
def apply_batched(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                  batch_size: int = 1000) -> torch.Tensor:
    """torch.cat([fn(x[i : i + batch_size]) for i in ...]) without building a graph.

    Keeps memory bounded when a metric needs the features of 10,000 images:
    ``apply_batched(model.features, x)`` or ``apply_batched(model.probs, x)``.
    """
    return torch.cat([fn(chunk) for chunk in x.split(batch_size)])


def metric_inputs(model: "FashionClassifier", batch_size: int = 1000):
    """(features, probs): functions from a set of images (N, 1, 28, 28) to phi(x) (N, FEATURE_DIM) and
    p(y | x) (N, 10), in float64 (FID's matrix square root wants the digits), ``batch_size`` at a time.
    What FID, KID, precision/recall and IS take (lessons 04 on)."""
    def features(x: torch.Tensor) -> torch.Tensor:
        return apply_batched(model.features, x, batch_size).double()

    def probs(x: torch.Tensor) -> torch.Tensor:
        return apply_batched(model.probs, x, batch_size).double()

    return features, probs


@torch.no_grad()
def sample_quality(model: "FashionClassifier", x: torch.Tensor, f_real: torch.Tensor, y: torch.Tensor | None = None,
                   batch_size: int = 1000) -> dict[str, float]:
    """What the course measures of generated images ``x`` (N, 1, 28, 28): FID against the real features
    ``f_real`` (``metric_inputs``'s, float64), and lesson 03's class check inputs: the smallest share of any
    class among the predicted labels (``min_class_share``) and the mean top probability (``confidence``);
    given the labels ``y`` the images were asked for, also ``consistency`` (lesson 05's
    ``cgan.class_consistency``). One pass of the classifier over ``x``: the probabilities come from the
    features it already computed."""
    from .metrics import fid

    f = apply_batched(model.features, x, batch_size).double()
    confidence, label = model.head(f.float()).softmax(dim=1).max(dim=1)
    share = torch.bincount(label, minlength=model.head.out_features).double() / len(label)
    out = {"FID": fid(f_real, f), "min_class_share": float(share.min()), "confidence": float(confidence.mean())}
    if y is not None:
        out["consistency"] = float((label == y.to(label.device)).double().mean())
    return out


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """The fraction of images whose arg-max logit is the true label."""
    return float((apply_batched(model, x).argmax(dim=1) == y).double().mean())


def _shuffled_batches(n: int, batch_size: int, epochs: int, gen: torch.Generator):
    """Index tensors of full batches: ``epochs`` passes, each over a fresh random permutation."""
    for _ in range(epochs):
        yield from torch.randperm(n, generator=gen)[: n - n % batch_size].split(batch_size)


def train_classifier(x: torch.Tensor, y: torch.Tensor, *, epochs: int = 4, batch_size: int = 128,
                     lr: float = 3e-3, seed: int = 0) -> FashionClassifier:
    """Train a FashionClassifier on images ``x`` (N, 1, 28, 28) in [-1, 1] with labels ``y`` (N,).

    Minimises the cross-entropy -log p(y | x) with AdamW and a one-cycle learning rate; each image
    is flipped left-right with probability 1/2. ``seed`` fixes the initial weights, the batch order
    and the flips, without touching the global RNG.

    Reproducibility: the same seed, data, torch version, device and thread count give bit-identical
    weights. Across CPUs (AVX2 vs AVX-512), thread counts, torch versions or GPUs the floating-point
    sums run in another order, so the weights differ in the last bits and the file's SHA-256 changes;
    the accuracy and the metrics computed from the features agree to a few decimals.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = FashionClassifier().to(x.device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * (len(x) // batch_size))
    for idx in _shuffled_batches(len(x), batch_size, epochs, gen):
        flip = torch.rand(len(idx), 1, 1, 1, generator=gen) < 0.5  # (B, 1, 1, 1)
        idx, flip = idx.to(x.device), flip.to(x.device)
        x_batch = torch.where(flip, x[idx].flip(3), x[idx])  # (B, 1, 28, 28)
        loss = F.cross_entropy(model(x_batch), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


def file_sha256(path: str | Path) -> str:
    """The SHA-256 hex digest of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_classifier(device="cpu") -> FashionClassifier:
    """The course's shipped classifier, checked against ``SHA256`` before a byte is unpickled.

    Returns the model on ``device`` in eval mode with ``requires_grad`` off. Raises
    ``WeightsMismatch`` when the file is missing or its digest differs from ``SHA256``.
    """
    how = ("Restore it with `git checkout -- ganlib/assets/`, or regenerate it with "
           "`python tools/train_classifier.py` and put the SHA-256 it prints into ganlib/classifier.py.")
    if not WEIGHTS.exists():
        raise WeightsMismatch(f"the classifier weights {WEIGHTS} are missing. {how}")
    found = file_sha256(WEIGHTS)
    if found != SHA256:
        raise WeightsMismatch(f"the classifier weights {WEIGHTS} have SHA-256 {found}, expected {SHA256}: "
                              f"the file is corrupt or was changed. {how}")
    model = FashionClassifier()
    model.load_state_dict(torch.load(WEIGHTS, map_location="cpu", weights_only=True))
    return model.to(device).eval().requires_grad_(False)
