"""Images per second of ganlib's DCGAN training step against a textbook loop, in one run.

Both train the same ganlib.dcgan Generator and Discriminator with the same batch size on the same
device, and count real images seen by D per second. The textbook loop is the pytorch/examples
DCGAN pattern: a torchvision dataset with per-sample transforms behind a DataLoader (2 workers,
as in pytorch/examples), and five `.item()` calls per step for logging. ganlib's step keeps the
dataset on the device, draws batches by indexing, reads losses back once per 50 steps, uses fused
Adam, and on CUDA bf16 autocast and channels-last (and torch.compile with --compile).

Note that ganlib's step does slightly *more* work per step: following Algorithm 1 of Goodfellow
et al., its G step draws fresh noise (a second forward pass of G), where the textbook loop reuses
the D step's fakes.

    python benchmarks/dcgan_throughput.py --device cpu --steps 60
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
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ganlib import data, dcgan, speed, train  # noqa: E402


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _models(shape, width, device):
    torch.manual_seed(0)
    return dcgan.Generator(shape, 100, width).to(device), dcgan.Discriminator(shape, width).to(device)


def ganlib_loop(args, device) -> float:
    speed.tune_cuda()
    images = data.load_images("fashion_mnist", device=device)
    G, D = _models(images.shape, args.width, device)
    G, D = speed.channels_last(G), speed.channels_last(D)
    if args.compile:
        G = speed.maybe_compile(G, torch.randn(args.batch_size, 100, device=device))
        D = speed.maybe_compile(D, images.sample(args.batch_size)[0])
    opt_G, opt_D = dcgan.optimizers(G, D)
    state = train.GANState(G, D, opt_G, opt_D)
    d_step, g_step = train.gan_steps(G, D, opt_G, opt_D, images, args.batch_size, amp=device.type == "cuda")
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
    for split in ("train", "t10k"):
        for kind in ("images-idx3", "labels-idx1"):
            name = f"{split}-{kind}-ubyte"
            src = next(p for d in (data.data_root() / "fashion-mnist", data.DEBIAN_ROOT / "fashion-mnist")
                       for p in (d / name, d / f"{name}.gz") if p.exists())
            with (gzip.open(src) if src.suffix == ".gz" else open(src, "rb")) as f, open(raw / name, "wb") as out:
                shutil.copyfileobj(f, out)
    return root


def textbook_loop(args, device) -> float:
    import torchvision.datasets as tvd
    import torchvision.transforms as T

    root = _torchvision_root()
    ds = tvd.FashionMNIST(root, train=True, download=False,
                          transform=T.Compose([T.ToTensor(), T.Normalize((0.5,), (0.5,))]))
    loader = torch.utils.data.DataLoader(ds, batch_size=args.batch_size, shuffle=True, num_workers=2,
                                         drop_last=True, pin_memory=device.type == "cuda", persistent_workers=True)
    G, D = _models((1, 28, 28), args.width, device)
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
    parser.add_argument("--steps", type=int, default=100, help="timed steps per loop")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps first (allocator, cuDNN autotune)")
    parser.add_argument("--compile", action="store_true", help="torch.compile G and D in the ganlib loop")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    textbook = textbook_loop(args, device)
    ours = ganlib_loop(args, device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    result = {"device": f"{device.type} ({name}, {torch.get_num_threads()} threads)", "torch": torch.__version__,
              "batch_size": args.batch_size, "width": args.width, "steps": args.steps, "compile": args.compile,
              "textbook_img_per_s": round(textbook, 1), "ganlib_img_per_s": round(ours, 1),
              "ratio": round(ours / textbook, 2)}
    print(json.dumps(result, indent=2))
    print(f"\nganlib / textbook = {ours:.0f} / {textbook:.0f} img/s = {ours / textbook:.2f}x on {result['device']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
