"""Data: toy distributions with known densities, and image datasets held on the training device.

Toy distributions have ``sample(n)`` and, where it exists in closed form, ``density(x)``; lesson 01
needs the densities for D* = p_data / (p_data + p_g). Image datasets are scaled to [-1, 1] and held
as one tensor on the device, so a batch is one indexing operation (no DataLoader, no workers).
"""

from __future__ import annotations

import contextlib
import gzip
import math
import os
import socket
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .profiles import draw

# --------------------------------------------------------------------------------------------
# Toy distributions
# --------------------------------------------------------------------------------------------


class GaussianMixture:
    """A mixture of isotropic Gaussians in d dimensions.

    p(x) = sum_k w_k N(x; mu_k, s_k^2 I)

    ``means`` has shape (K, d); ``stds`` is one number or K numbers; ``weights`` default to uniform.
    In one dimension, ``density`` also accepts a flat grid of shape (n,).
    """

    def __init__(self, means, stds, weights=None):
        self.means = torch.as_tensor(means, dtype=torch.float32).reshape(len(means), -1)  # (K, d)
        k = len(self.means)
        self.stds = torch.as_tensor(stds, dtype=torch.float32).expand(k).clone()  # (K,)
        w = torch.ones(k) if weights is None else torch.as_tensor(weights, dtype=torch.float32)
        if w.shape != (k,) or (w < 0).any() or (self.stds <= 0).any():
            raise ValueError("need one non-negative weight and one positive std per component")
        self.weights = w / w.sum()

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n samples, shape (n, d)."""
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)  # (n,)
        noise = torch.randn(n, self.dim, generator=generator)
        return self.means[k] + self.stds[k, None] * noise

    def density(self, x) -> torch.Tensor:
        """p(x) for x of shape (n, d) (or (n,) when d = 1); returns shape (n,)."""
        x = torch.as_tensor(x, dtype=torch.float32)
        if self.dim == 1 and x.ndim == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"expected points of shape (n, {self.dim}), got {tuple(x.shape)}")
        sq = torch.cdist(x.double(), self.means.double()) ** 2  # (n, K)
        var = self.stds.double() ** 2
        log_norm = -0.5 * self.dim * torch.log(2 * math.pi * var)  # (K,)
        log_p = torch.logsumexp(torch.log(self.weights.double()) + log_norm - sq / (2 * var), dim=1)
        return log_p.exp().float()


def gaussian(mean=0.0, std=1.0) -> GaussianMixture:
    """One Gaussian N(mean, std^2 I); ``mean`` is a number (1-D) or a vector."""
    return GaussianMixture([mean if np.ndim(mean) else [mean]], [std])


def ring(n_modes: int = 8, radius: float = 1.0, std: float = 0.01) -> GaussianMixture:
    """``n_modes`` Gaussians evenly spaced on a circle (VEEGAN/PacGAN's 2D-ring: radius 1, std 0.01)."""
    angles = torch.arange(n_modes) * 2 * math.pi / n_modes
    return GaussianMixture(torch.stack([radius * angles.cos(), radius * angles.sin()], 1), std)


def grid(k: int = 5, spacing: float = 2.0, std: float = 0.05) -> GaussianMixture:
    """A k x k grid of Gaussians centred on 0 (PacGAN's 2D-grid: 5 x 5, spacing 2, std 0.05)."""
    ticks = (torch.arange(k) - (k - 1) / 2) * spacing
    return GaussianMixture(torch.cartesian_prod(ticks, ticks), std)


class SwissRoll:
    """A 2-D Swiss roll: t ~ U(1.5 pi, 4.5 pi), x = (t cos t, t sin t) / scale + N(0, noise^2 I).

    It has no closed-form density, so ``density`` raises.
    """

    dim = 2

    def __init__(self, noise: float = 0.25, scale: float = 7.5):
        self.noise, self.scale = noise, scale

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        t = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=generator))
        x = torch.stack([t * t.cos(), t * t.sin()], 1) + self.noise * torch.randn(n, 2, generator=generator)
        return x / self.scale

    def density(self, x):
        raise NotImplementedError("the Swiss roll has no closed-form density; use samples")


# --------------------------------------------------------------------------------------------
# Image datasets
# --------------------------------------------------------------------------------------------

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
IMAGE_DATASETS = ("fashion_mnist", "mnist", "cifar10", "celeba")
DEBIAN_ROOT = Path(os.environ.get("GANLIB_SYSTEM_DATA", "/usr/share/datasets"))  # Debian's packages; the variable: for tests
DOWNLOAD_TIMEOUT_S = 20


class DatasetUnavailable(RuntimeError):
    """A dataset could not be found locally nor downloaded; the message says how to get it."""


@dataclass
class ImageSet:
    """Images ``x`` (N, C, H, W) in [-1, 1] and labels ``y`` (N,), both on the training device."""

    x: torch.Tensor
    y: torch.Tensor
    classes: tuple[str, ...]
    name: str

    def __len__(self) -> int:
        return len(self.x)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        return tuple(self.x.shape[1:])

    def sample(self, batch_size: int, generator: torch.Generator | None = None):
        """A random batch (x, y), drawn with replacement by indexing on the device: no host sync (``random_rows``)."""
        return random_rows(batch_size, self.x, self.y, generator=generator)


def random_rows(n: int, *tensors: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
    """The same ``n`` random rows of each of ``tensors`` (of one length, on one device), drawn with replacement by
    indexing on their device: no host sync. A batch of ``ImageSet`` images and labels, or of lesson 11's split."""
    if any(len(t) != len(tensors[0]) for t in tensors):
        raise ValueError(f"tensors of different lengths: {[len(t) for t in tensors]}")
    idx = draw(torch.randint, len(tensors[0]), (n,), device=tensors[0].device, generator=generator)
    return tuple(t[idx] for t in tensors)


def data_root(root: str | os.PathLike | None = None) -> Path:
    """Where datasets live: ``root``, else ``$GANLIB_DATA``, else the course's ``data/``, else ``./data``."""
    if root is not None:
        return Path(root)
    if os.environ.get("GANLIB_DATA"):
        return Path(os.environ["GANLIB_DATA"])
    course_data = Path(__file__).resolve().parents[1] / "data"
    return course_data if (course_data / "README.md").exists() else Path("data")


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (the MNIST format, optionally gzipped) into an unsigned-byte array."""
    path = Path(path)
    with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
        raw = f.read()
    if raw[:2] != b"\x00\x00" or raw[2] != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file")
    ndim = raw[3]
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


_MNIST_LIKE = {  # name: (folder names to look in, torchvision class name, classes)
    "fashion_mnist": (("fashion-mnist", "FashionMNIST/raw"), "FashionMNIST", FASHION_CLASSES),
    "mnist": (("mnist", "MNIST/raw"), "MNIST", tuple(str(i) for i in range(10))),
}


def _find_idx(name: str, split: str, roots: list[Path]) -> tuple[Path, Path] | None:
    prefix = "train" if split == "train" else "t10k"
    for root in roots:
        for folder in _MNIST_LIKE[name][0]:
            for ext in ("", ".gz"):
                imgs = root / folder / f"{prefix}-images-idx3-ubyte{ext}"
                labels = root / folder / f"{prefix}-labels-idx1-ubyte{ext}"
                if imgs.exists() and labels.exists():
                    return imgs, labels
    return None


@contextlib.contextmanager
def _network_timeout(seconds: float):
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def _download(name: str, root: Path, split: str):
    """Fetch a dataset with torchvision, never waiting more than DOWNLOAD_TIMEOUT_S on a socket."""
    import torchvision.datasets as tvd

    root.mkdir(parents=True, exist_ok=True)
    with _network_timeout(DOWNLOAD_TIMEOUT_S):
        if name in _MNIST_LIKE:
            return getattr(tvd, _MNIST_LIKE[name][1])(root, train=split == "train", download=True)
        if name == "cifar10":
            return tvd.CIFAR10(root, train=split == "train", download=True)
        return tvd.CelebA(root, split="train" if split == "train" else "test", target_type="attr", download=True)


def _how_to_get(name: str, searched: list[Path]) -> str:
    where = "\n  ".join(str(p) for p in searched)
    tips = {
        "fashion_mnist": "on Debian/Ubuntu: sudo apt-get install dataset-fashion-mnist (offline-friendly);\n"
                         "  or copy the four IDX files from https://github.com/zalandoresearch/fashion-mnist\n"
                         "  into <data root>/fashion-mnist/",
        "mnist": "copy the four IDX files (train-images-idx3-ubyte.gz, ...) into <data root>/mnist/",
        "cifar10": "download cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html\n"
                   "  and unpack it into <data root>/ (giving cifar-10-batches-py/)",
        "celeba": "download img_align_celeba.zip and the list_*.txt files from the CelebA site\n"
                  "  (https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html) into <data root>/celeba/",
    }[name]
    return (f"dataset {name!r} is not available.\nSearched:\n  {where}\n"
            f"With internet access, `python -m ganlib.data {name}` downloads it into the data root.\n"
            f"Otherwise: {tips}\n"
            f"The data root is $GANLIB_DATA if set, else the course's data/ folder.")


def _to_unit_range(images_uint8: torch.Tensor) -> torch.Tensor:
    return images_uint8.float().div_(127.5).sub_(1.0)  # [0, 255] -> [-1, 1]


def idx_files(name: str, split: str = "train", root=None) -> tuple[Path, Path] | None:
    """(images, labels) idx files of an MNIST-like set where ``load_images`` finds them (``<root>/fashion-mnist/``,
    torchvision's download layout ``<root>/FashionMNIST/raw/``, Debian's folder), or None."""
    return _find_idx(name, split, [data_root(root), DEBIAN_ROOT])


def _load_mnist_like(name, split, root, download):
    roots = [root, DEBIAN_ROOT]
    found = _find_idx(name, split, roots)
    if found is None and download:
        _download(name, root, split)
        found = _find_idx(name, split, roots)
    if found is None:
        raise DatasetUnavailable(_how_to_get(name, [r / f for r in roots for f in _MNIST_LIKE[name][0]]))
    x = torch.from_numpy(read_idx(found[0]).copy())[:, None]  # (N, 1, 28, 28)
    y = torch.from_numpy(read_idx(found[1]).astype(np.int64))
    return x, y, _MNIST_LIKE[name][2]


def _load_cifar10(split, root, download):
    import torchvision.datasets as tvd

    try:
        ds = tvd.CIFAR10(root, train=split == "train", download=False)
    except RuntimeError:
        ds = _download("cifar10", root, split) if download else None
    if ds is None:
        raise DatasetUnavailable(_how_to_get("cifar10", [root / "cifar-10-batches-py"]))
    x = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()  # (N, 32, 32, 3) -> (N, 3, 32, 32)
    return x, torch.tensor(ds.targets), CIFAR10_CLASSES


def _load_celeba(split, root, download, size=64):
    """CelebA aligned faces, centre-cropped to 148 and resized to ``size``; cached as uint8."""
    cache = root / "celeba" / f"celeba{size}_{split}.pt"
    if cache.exists():
        x, y = torch.load(cache, weights_only=True)
        return x, y, ("face",)
    import torchvision.datasets as tvd
    import torchvision.transforms.v2.functional as TF

    try:
        ds = tvd.CelebA(root, split="train" if split == "train" else "test", target_type="attr", download=False)
    except RuntimeError:
        ds = _download("celeba", root, split) if download else None
    if ds is None:
        raise DatasetUnavailable(_how_to_get("celeba", [root / "celeba"]))
    x = torch.empty(len(ds), 3, size, size, dtype=torch.uint8)
    for i in range(len(ds)):
        img = TF.pil_to_tensor(ds[i][0])  # (3, 218, 178) uint8
        x[i] = TF.resize(TF.center_crop(img, [148, 148]), [size, size], antialias=True)
    y = torch.zeros(len(ds), dtype=torch.int64)  # unconditional: one class, "face"
    torch.save((x, y), cache)
    return x, y, ("face",)


def load_images(name: str = "fashion_mnist", *, split: str = "train", device="cpu",
                root=None, limit: int | None = None, download: bool | None = None) -> ImageSet:
    """An image dataset scaled to [-1, 1], resident on ``device``.

    ``name`` is one of ``fashion_mnist`` (default), ``mnist``, ``cifar10``, ``celeba`` (64 x 64).
    Local files are used first: ``<root>/fashion-mnist/`` or Debian's ``/usr/share/datasets``.
    ``download`` defaults to True unless ``GANLIB_OFFLINE=1``; downloads never wait on a silent
    network for more than ``DOWNLOAD_TIMEOUT_S`` per socket operation. ``limit`` keeps the first
    ``limit`` images. Raises ``DatasetUnavailable`` with instructions when the data cannot be had.
    """
    if name not in IMAGE_DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(IMAGE_DATASETS)}")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    root = data_root(root)
    if download is None:
        download = os.environ.get("GANLIB_OFFLINE", "0") in ("", "0")
    try:
        if name in _MNIST_LIKE:
            x, y, classes = _load_mnist_like(name, split, root, download)
        elif name == "cifar10":
            x, y, classes = _load_cifar10(split, root, download)
        else:
            x, y, classes = _load_celeba(split, root, download)
    except DatasetUnavailable:
        raise
    except Exception as err:  # network failures, refused connections, corrupt archives
        raise DatasetUnavailable(f"{_how_to_get(name, [root])}\n(the attempt failed with: {err!r})") from err
    if limit is not None:
        x, y = x[:limit], y[:limit]
    return ImageSet(_to_unit_range(x).to(device), y.to(device), classes, name)


# --------------------------------------------------------------------------------------------
# Translation tasks made from an image set (lesson 12): the ground truth is kept, for scoring
# --------------------------------------------------------------------------------------------

SOBEL_X = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]])


def pad(x: torch.Tensor, size: int = 32, value: float = -1.0) -> torch.Tensor:
    """(B, C, h, w) images padded symmetrically with ``value`` (-1: black, the background) to (B, C, size, size).
    Padding rather than resizing keeps every pixel exact (lessons 09 and 12: Fashion-MNIST's 28 becomes 32)."""
    dh, dw = size - x.shape[-2], size - x.shape[-1]
    if dh < 0 or dw < 0:
        raise ValueError(f"cannot pad {tuple(x.shape[-2:])} images to {size}")
    return torch.nn.functional.pad(x, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2), value=value)


def edge_map(x: torch.Tensor, threshold: float = 1.0) -> torch.Tensor:
    """Edges of (B, 1, H, W) images in [-1, 1]: 1 where the Sobel gradient magnitude of the [0, 1] image,
    sqrt(Gx^2 + Gy^2), exceeds ``threshold`` (its largest value is 4 sqrt(2)), else -1: white lines on black."""
    kernels = torch.stack([SOBEL_X, SOBEL_X.T])[:, None].to(x)  # (2, 1, 3, 3): d/dx, d/dy
    padded = torch.nn.functional.pad((x + 1) / 2, (1, 1, 1, 1), mode="replicate")  # the frame is no edge
    g = torch.nn.functional.conv2d(padded, kernels)  # (B, 2, H, W)
    return torch.where(g.square().sum(1, keepdim=True).sqrt() > threshold, 1.0, -1.0).to(x)


@dataclass
class Pairs:
    """A translation task: inputs ``a`` (N, Ca, H, W), their targets ``b`` (N, Cb, H, W), the garments' classes ``y``."""

    a: torch.Tensor
    b: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.a)

    def sample(self, batch_size: int, generator: torch.Generator | None = None):
        """A random batch (a, b) of aligned pairs (``random_rows``)."""
        return random_rows(batch_size, self.a, self.b, generator=generator)


def edges_to_garments(images: ImageSet, size: int = 32) -> Pairs:
    """pix2pix's paired task: the edge map of each garment -> the garment, both padded to ``size``."""
    b = pad(images.x, size)
    return Pairs(edge_map(b), b, images.y)


@dataclass
class Unpaired:
    """CycleGAN's task: domain A (edge maps of the first half of the images) and domain B (the garments
    of the *other* half): no image of B is the partner of an image of A. ``a_partner`` (the true garment
    of each edge map) and the classes are kept for scoring only; training reads ``a`` and ``b``."""

    a: torch.Tensor
    b: torch.Tensor
    a_partner: torch.Tensor
    y_a: torch.Tensor
    y_b: torch.Tensor


def unpaired_halves(pairs: Pairs, seed: int = 0) -> Unpaired:
    """Split ``pairs`` at random into two disjoint halves: edges of one, garments of the other."""
    order = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(seed)).to(pairs.a.device)
    first, second = order[: len(order) // 2], order[len(order) // 2:]
    return Unpaired(pairs.a[first], pairs.b[second], pairs.b[first], pairs.y[first], pairs.y[second])


def label_maps(images: ImageSet, size: int = 32, level: float = -0.8, n_classes: int = 10) -> Pairs:
    """SPADE's task: (mask x class) -> garment. The mask is the garment's silhouette (pixels above ``level``);
    the map has one channel per class, 1 on the mask in the channel of the garment's class, and a last
    channel for the background: (N, n_classes + 1, size, size), one-hot at every pixel."""
    b = pad(images.x, size)
    mask = (b > level).to(b)  # (N, 1, H, W)
    one_hot = torch.nn.functional.one_hot(images.y, n_classes).to(b)[:, :, None, None]  # (N, K, 1, 1)
    return Pairs(torch.cat([one_hot * mask, 1 - mask], dim=1), b, images.y)


def main(argv: list[str] | None = None) -> int:
    """``python -m ganlib.data [name ...]``: make sure datasets are present, downloading if allowed."""
    names = (argv if argv is not None else sys.argv[1:]) or ["fashion_mnist"]
    status = 0
    for name in names:
        try:
            ds = load_images(name)
            print(f"{name}: {len(ds)} training images of shape {ds.shape}, found under {data_root()} or {DEBIAN_ROOT}")
        except DatasetUnavailable as err:
            print(err, file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    raise SystemExit(main())
