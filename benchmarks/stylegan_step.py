"""Lesson 09's StyleGAN2 training step and sampling, timed in one run, as ratios.

What is compared, each on lesson 09's recipe (``stylegan.LESSON_09[--preset]``: 32 x 32 Fashion-MNIST,
channels 64-64-32-16, batch 32; D main, G main and lazy R1 every 16 steps):

- **demodulation**: ``stylegan_layers.demodulation`` as the course computes it, the factored sum
  sum_i s_bi^2 (sum_kl w_oikl^2) (a (B, I) @ (I, O) product), against the same quantity computed from
  the per-sample weights (B, O, I, k, k) built first, as the official code does;
- **precision**: fp32 against bf16 autocast in the main phases (R1 stays fp32 either way);
- **sampling**: images/s of ``stylegan_look.sample`` (G_ema in eval mode: the grouped-convolution path,
  which builds the per-sample weights anyway and only demodulates them).

Variants are timed in rounds (every variant once per round, ``--rounds`` rounds) so a machine whose
speed drifts affects them alike; the table reports each variant's median and its ratio to the
course's default (factored, fp32).

    python benchmarks/stylegan_step.py --steps 32 --rounds 3 --json docs/results/cpu-2026-12-09-speed.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ganlib import data, speed, stylegan, stylegan_layers, stylegan_look, train  # noqa: E402

FACTORED = stylegan_layers.demodulation


def materialised_demodulation(weight: torch.Tensor, s: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """The same 1 / sigma_bo, from the per-sample weights built first (the official code's way)."""
    w = weight[None] * s[:, None, :, None, None]  # (B, O, I, k, k)
    return (w.square().sum(dim=(2, 3, 4)) + eps).rsqrt()


@contextlib.contextmanager
def demodulation(kind: str):
    stylegan_layers.demodulation = FACTORED if kind == "factored" else materialised_demodulation
    try:
        yield
    finally:
        stylegan_layers.demodulation = FACTORED


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def setup(preset: dict, device: torch.device, limit: int):
    fashion = data.load_images("fashion_mnist", device=device, limit=limit)
    images = data.ImageSet(stylegan.pad_to_32(fashion.x), fashion.y, fashion.classes, "fashion_mnist-32")
    return images, stylegan.lesson_config(preset)


def time_steps(images, cfg, batch_size: int, steps: int, amp: bool, device) -> float:
    """Seconds per training step after 16 warm-up steps (one R1 step among them), as lesson 09 trains."""
    torch.manual_seed(0)
    state = stylegan.make_state(cfg, device)
    if device.type == "cpu":
        stylegan.use_fused_modconv(state.G_ema, False)
    phases = stylegan.stylegan_phases(state, images, batch_size, cfg, amp=amp)
    beta = stylegan.ema_beta(cfg, batch_size)
    train.fit_schedule(state, phases, 16, ema_beta=beta, log_every=16, progress=False)
    _sync(device)
    start = time.perf_counter()
    train.fit_schedule(state, phases, 16 + steps, ema_beta=beta, log_every=16, progress=False)
    _sync(device)
    return (time.perf_counter() - start) / steps


def time_sampling(cfg, n: int, device) -> float:
    """Images per second of stylegan_look.sample (G_ema's eval path) at psi = 1."""
    torch.manual_seed(0)
    G = stylegan.Generator(cfg).to(device).eval()
    stylegan_look.sample(G, 256, generator=torch.Generator().manual_seed(0), device=device)  # warm-up
    _sync(device)
    start = time.perf_counter()
    stylegan_look.sample(G, n, generator=torch.Generator().manual_seed(0), device=device)
    _sync(device)
    return n / (time.perf_counter() - start)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--preset", default="cpu", choices=["smoke", "cpu", "gpu"])
    p.add_argument("--steps", type=int, default=32, help="timed training steps per variant and round")
    p.add_argument("--samples", type=int, default=2048, help="images per sampling measurement")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--limit", type=int, default=4096, help="training images held (speed does not depend on it)")
    p.add_argument("--json", type=Path, help="write the results here too")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    preset = stylegan.LESSON_09[args.preset]
    images, cfg = setup(preset, device, args.limit)
    bf16 = speed.native_bf16(device)
    variants = [("factored", False), ("materialised", False)] + ([("factored", True)] if bf16 else [])
    step_s = {v: [] for v in variants}
    sample_ips = {k: [] for k in ("factored", "materialised")}
    for r in range(args.rounds):
        for kind, amp in variants:
            with demodulation(kind):
                step_s[kind, amp].append(time_steps(images, cfg, preset["batch_size"], args.steps, amp, device))
            print(f"round {r + 1}: {kind:12s} {'bf16' if amp else 'fp32'} {1000 * step_s[kind, amp][-1]:7.1f} ms/step", flush=True)
        for kind in sample_ips:
            with demodulation(kind):
                sample_ips[kind].append(time_sampling(cfg, args.samples, device))
            print(f"round {r + 1}: sampling {kind:12s} {sample_ips[kind][-1]:7.0f} images/s", flush=True)
    base = statistics.median(step_s["factored", False])
    rows = [dict(demodulation=kind, precision="bf16" if amp else "fp32", ms_per_step=round(1000 * statistics.median(t), 1),
                 images_per_s=round(preset["batch_size"] / statistics.median(t), 1),
                 speed_vs_default=round(base / statistics.median(t), 3)) for (kind, amp), t in step_s.items()]
    sampling = {kind: round(statistics.median(v), 1) for kind, v in sample_ips.items()}
    result = dict(benchmark="stylegan_step", preset=args.preset, batch_size=preset["batch_size"], steps=args.steps,
                  rounds=args.rounds, device=str(device), native_bf16=bf16, threads=torch.get_num_threads(),
                  torch=torch.__version__, python=platform.python_version(), machine=platform.machine(),
                  processor=platform.processor() or None, date=time.strftime("%Y-%m-%d %H:%M"),
                  training=rows, sampling_images_per_s=sampling,
                  sampling_speed_vs_materialised=round(sampling["factored"] / sampling["materialised"], 3))
    print(f"\n{'demodulation':14s}{'precision':>10s}{'ms/step':>10s}{'images/s':>10s}{'vs default':>12s}")
    for row in rows:
        print(f"{row['demodulation']:14s}{row['precision']:>10s}{row['ms_per_step']:10.1f}{row['images_per_s']:10.1f}"
              f"{row['speed_vs_default']:11.2f}x")
    print(f"sampling (G_ema, eval): factored {sampling['factored']:.0f} images/s, materialised "
          f"{sampling['materialised']:.0f} ({result['sampling_speed_vs_materialised']:.2f}x)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
