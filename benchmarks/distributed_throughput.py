"""Steps per second of a lesson's training on 1 and on N processes (torchrun, ganlib.distributed), in one run.

Each setting trains the same recipe (lesson 07's WGAN-GP or lesson 09's StyleGAN2, the profile's networks
and global batch) for ``--steps`` steps from scratch into a throwaway checkpoint folder, and reports the
steps per second after the first logged interval (warm-up: allocation, autotuning). Settings:

- ``1 process``: one process, all the threads the machine's cores allow (``--threads``);
- ``N processes``: torchrun with N ranks (gloo on CPU; on one GPU, N ranks share it), each with
  threads / N threads and its share of the global batch.

On a CPU the cores are split, not multiplied: N ranks can only win where one process leaves cores
idle (small per-step work, latency-bound kernels), and they pay an all-reduce per optimiser step.

    python benchmarks/distributed_throughput.py --lesson 07 --profile cpu --steps 60 --nproc 1 2
    python benchmarks/distributed_throughput.py --lesson 09 --profile gpu --steps 300 --nproc 1 2 --device cuda
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def worker(args) -> None:
    """One rank (or the only process): train ``args.steps`` steps, rank 0 prints a JSON line."""
    sys.path.insert(0, str(ROOT))
    import torch

    from ganlib import data, distributed, profiles, speed, stylegan, wgan

    device = distributed.setup(args.device)
    profile, device = profiles.setup(args.profile, 0, device=str(device))
    log_every = max(args.steps // 6, 1)
    if args.lesson == "07":
        recipe = dict(wgan.LESSON_07[profile], steps=args.steps, log_every=log_every)
        images = data.load_images("fashion_mnist", device=device, limit=recipe["limit"])
        state = wgan.train_wgan_gp(images, recipe, directory=args.out, run="bench", amp=speed.precision(device, cpu_bf16=False),
                                   progress=False, keep_every=10**9)
    else:
        recipe = dict(stylegan.LESSON_09[profile], steps=args.steps, log_every=log_every)
        fashion = data.load_images("fashion_mnist", device=device, limit=recipe["limit"])
        images = data.ImageSet(stylegan.pad_to_32(fashion.x), fashion.y, fashion.classes, "fashion_mnist-32")
        z = torch.randn(4, stylegan.lesson_config(recipe).z_dim, device=device)
        state = stylegan.train_stylegan(images, recipe, directory=args.out, run="bench", z_fixed=z,
                                        amp=speed.precision(device), progress=False)
    h = state.history
    timed_steps = h.steps[-1] - h.steps[0]
    if distributed.is_main():
        print("RESULT " + json.dumps({"steps_per_s": timed_steps / sum(h.seconds[1:]), "batch": recipe["batch_size"],
                                      "world": distributed.world(), "threads": torch.get_num_threads()}))
    distributed.teardown()


def measure(args, nproc: int, threads: int) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GANLIB_DEVICE_CHECK")}
    env.update(OMP_NUM_THREADS=str(max(threads // nproc, 1)), PYTHONPATH=str(ROOT))
    with tempfile.TemporaryDirectory() as out:
        common = [str(Path(__file__).resolve()), "--worker", "--lesson", args.lesson, "--profile", args.profile,
                  "--steps", str(args.steps), "--out", out] + (["--device", args.device] if args.device else [])
        cmd = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"] if nproc > 1
               else [sys.executable]) + common
        done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(done.stdout[-2000:] + done.stderr[-2000:])
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("RESULT "))
    return {"processes": nproc, **json.loads(line[len("RESULT "):])}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lesson", choices=["07", "09"], default="07")
    p.add_argument("--profile", choices=["smoke", "cpu", "gpu"], default="cpu")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--nproc", type=int, nargs="+", default=[1, 2])
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="threads in all (split across ranks)")
    p.add_argument("--device", choices=["cuda", "cpu"], default=None)
    p.add_argument("--repeat", type=int, default=1, help="measure each setting this many times (interleaved)")
    p.add_argument("--json", type=Path, default=None, help="also write the rows here")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    rows = [measure(args, n, args.threads) for _ in range(args.repeat) for n in args.nproc]
    base = max(r["steps_per_s"] for r in rows if r["processes"] == args.nproc[0])
    print(f"lesson {args.lesson}, {args.profile} recipe, {args.steps} steps, {args.threads} threads in all, "
          f"{platform.processor() or platform.machine()}")
    print(f"{'processes':>9s} {'threads each':>12s} {'steps/s':>8s} {'vs first':>9s}")
    for r in rows:
        print(f"{r['processes']:9d} {r['threads']:12d} {r['steps_per_s']:8.2f} {r['steps_per_s'] / base:9.2f}")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: v for k, v in vars(args).items() if k not in ("json", "worker", "out")},
                                         "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
