"""Images per second of ganlib's DCGAN training step against a textbook loop, in one run.

All loops train the same ganlib.dcgan Generator and Discriminator (at 64 x 64 with width 64 they are
pytorch/examples' netG and netD: ngf = ndf = 64, nz = 100) with the same batch size on the same device,
and count real images seen by D per second, at each image size asked for (28: Fashion-MNIST as it is;
64: the peer's native size).

- **textbook**: the pytorch/examples DCGAN pattern: a torchvision dataset with per-sample transforms
  (at 64 x 64, ``Resize(64)`` as the peer does) behind a DataLoader with 2 workers, fp32, and five
  ``.item()`` calls per step for logging;
- **ganlib fp32**: ganlib's step (dataset resized once and kept on the device, batches drawn by indexing,
  losses read back once per 50 steps, fused Adam) in fp32 with the default memory layout;
- **ganlib**: the same step as the lessons run it: bf16 autocast and channels-last where the device runs
  bf16 natively (``speed.use_bf16``: CUDA, AVX-512 BF16 or AMX CPUs), plus ``torch.compile`` with --compile.

Note that ganlib's step does slightly *more* work per step: following Algorithm 1 of Goodfellow
et al., its G step draws fresh noise (a second forward pass of G), where the textbook loop reuses
the D step's fakes.

    python benchmarks/dcgan_throughput.py --device cpu --steps 40 --sizes 28 64
    python benchmarks/dcgan_throughput.py --device cuda --steps 300 --batch-size 128 --compile
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ganlib import data, dcgan, speed, train  # noqa: E402


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _models(shape, width, device):
    torch.manual_seed(0)
    return dcgan.Generator(shape, 100, width).to(device), dcgan.Discriminator(shape, width).to(device)


def _resized(images: data.ImageSet, size: int) -> data.ImageSet:
    """The dataset resized once, on its device (bilinear, as torchvision's Resize on tensors)."""
    if images.shape[-1] == size:
        return images
    x = F.interpolate(images.x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return data.ImageSet(x.clamp(-1, 1), images.y, images.classes, images.name)


def ganlib_loop(args, device, size: int, fast: bool) -> float:
    speed.tune_cuda()
    images = _resized(data.load_images("fashion_mnist", device=device), size)
    G, D = _models(images.shape, args.width, device)
    amp = fast and speed.use_bf16(device)
    if amp:
        G, D = speed.channels_last(G), speed.channels_last(D)
    if fast and args.compile:
        G = speed.maybe_compile(G, torch.randn(args.batch_size, 100, device=device))
        D = speed.maybe_compile(D, images.sample(args.batch_size)[0])
    opt_G, opt_D = dcgan.optimizers(G, D)
    state = train.GANState(G, D, opt_G, opt_D)
    d_step, g_step = train.gan_steps(G, D, opt_G, opt_D, images, args.batch_size, amp=amp)
    train.fit(state, d_step, g_step, args.warmup, progress=False)
    _sync(device)
    start = time.perf_counter()
    train.fit(state, d_step, g_step, args.warmup + args.steps, progress=False)
    _sync(device)
    return args.steps * args.batch_size / (time.perf_counter() - start)


def _torchvision_root() -> Path:
    """A torchvision-layout copy (FashionMNIST/raw/, uncompressed) of the local Fashion-MNIST files."""
    root = Path(tempfile.mkdtemp(prefix="fmnist-"))
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for split, prefix in (("train", "train"), ("test", "t10k")):
        found = data.idx_files("fashion_mnist", split)  # where the lessons find it: data/, a download, Debian's
        if found is None:
            raise SystemExit("Fashion-MNIST not found: python -m ganlib.data fashion_mnist (see data/README.md)")
        for src, kind in zip(found, ("images-idx3", "labels-idx1")):
            with (gzip.open(src) if src.suffix == ".gz" else open(src, "rb")) as f, \
                    open(raw / f"{prefix}-{kind}-ubyte", "wb") as out:
                shutil.copyfileobj(f, out)
    return root


def textbook_loop(args, device, size: int) -> float:
    import torchvision.datasets as tvd
    import torchvision.transforms as T

    root = _torchvision_root()
    resize = [T.Resize(size), T.CenterCrop(size)] if size != 28 else []  # the peer's transforms at 64 x 64
    ds = tvd.FashionMNIST(root, train=True, download=False,
                          transform=T.Compose([*resize, T.ToTensor(), T.Normalize((0.5,), (0.5,))]))
    loader = torch.utils.data.DataLoader(ds, batch_size=args.batch_size, shuffle=True, num_workers=2,
                                         drop_last=True, pin_memory=device.type == "cuda", persistent_workers=True)
    G, D = _models((1, size, size), args.width, device)
    opt_G = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_D = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    criterion = nn.BCEWithLogitsLoss()
    done, start, log = 0, None, []
    while done < args.warmup + args.steps:
        for x, _ in loader:
            if done == args.warmup:
                _sync(device)
                start = time.perf_counter()
            if done == args.warmup + args.steps:
                break
            x = x.to(device)
            ones, zeros = torch.ones(len(x), device=device), torch.zeros(len(x), device=device)
            D.zero_grad()
            out = D(x)
            err_real = criterion(out, ones)
            err_real.backward()
            d_x = torch.sigmoid(out).mean().item()
            fake = G(torch.randn(len(x), 100, device=device))
            out = D(fake.detach())
            err_fake = criterion(out, zeros)
            err_fake.backward()
            d_g_z1 = torch.sigmoid(out).mean().item()
            opt_D.step()
            G.zero_grad()
            out = D(fake)
            err_g = criterion(out, ones)
            err_g.backward()
            d_g_z2 = torch.sigmoid(out).mean().item()
            opt_G.step()
            log.append(((err_real + err_fake).item(), err_g.item(), d_x, d_g_z1, d_g_z2))
            done += 1
    _sync(device)
    elapsed = time.perf_counter() - start
    shutil.rmtree(root, ignore_errors=True)
    return args.steps * args.batch_size / elapsed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--width", type=int, default=64, help="DCGAN width (channels next to the image)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[28, 64], choices=[28, 32, 64],
                        help="image sizes to measure (28: Fashion-MNIST as it is; 64: the peer's)")
    parser.add_argument("--steps", type=int, default=100, help="timed steps per loop")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps first (allocator, cuDNN autotune)")
    parser.add_argument("--compile", action="store_true", help="torch.compile G and D in the ganlib loop")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    result = {"device": f"{device.type} ({name}, {torch.get_num_threads()} threads)", "torch": torch.__version__,
              "native_bf16": speed.native_bf16(device), "bf16_autocast": speed.use_bf16(device),
              "batch_size": args.batch_size, "width": args.width, "steps": args.steps, "compile": args.compile,
              "sizes": {}}
    for size in args.sizes:
        textbook = textbook_loop(args, device, size)
        plain = ganlib_loop(args, device, size, fast=False)
        fast = ganlib_loop(args, device, size, fast=True)
        result["sizes"][str(size)] = {
            "textbook_img_per_s": round(textbook, 1), "ganlib_fp32_img_per_s": round(plain, 1),
            "ganlib_img_per_s": round(fast, 1), "ratio_fp32": round(plain / textbook, 2),
            "ratio": round(fast / textbook, 2)}
        print(f"{size} x {size}: textbook {textbook:.0f}, ganlib fp32 {plain:.0f} ({plain / textbook:.2f}x), "
              f"ganlib {fast:.0f} img/s ({fast / textbook:.2f}x)", flush=True)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
