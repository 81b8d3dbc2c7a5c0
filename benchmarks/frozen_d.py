"""Does freezing D in G's step pay? The training step of lesson 03's DCGAN and lesson 09's StyleGAN2, with
D's parameters frozen in G's step (``train.frozen``, what ganlib does) against unfrozen (G's backward also
computes D's weight gradients, which the next D step throws away), in one run.

Each round times both variants on the same models (a warm-up first), alternating which goes first;
the table gives the median milliseconds per training step (one D and one G update, StyleGAN's lazy R1
included) over the rounds, and the ratio.

    python benchmarks/frozen_d.py --rounds 5 --steps 40 [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ganlib import data, dcgan, speed, stylegan, train, updates  # noqa: E402

FROZEN = updates.frozen


def _unfrozen(module):
    return contextlib.nullcontext(module)


def dcgan_step(images, amp):
    torch.manual_seed(0)
    recipe = dcgan.LESSON_03["cpu"]
    G = speed.channels_last(dcgan.Generator(images.shape, 100, recipe["width"]))
    D = speed.channels_last(dcgan.Discriminator(images.shape, recipe["width"]))
    opt_G, opt_D = dcgan.optimizers(G, D)
    d_step, g_step = train.gan_steps(G, D, opt_G, opt_D, images, recipe["batch_size"], amp=amp)
    return lambda: (d_step(), g_step())


def stylegan_step(images, amp):
    torch.manual_seed(0)
    recipe = stylegan.LESSON_09["cpu"]
    cfg = stylegan.lesson_config(recipe)
    state = stylegan.make_state(cfg)
    padded = data.ImageSet(stylegan.pad_to_32(images.x), images.y, images.classes, "fashion_mnist-32")
    phases = stylegan.stylegan_phases(state, padded, recipe["batch_size"], cfg, amp=amp)

    def step():
        for phase in phases:
            if phase.due(state.step):
                phase.fn()
        state.step += 1
    return step


def _time(step, n):
    start = time.perf_counter()
    for _ in range(n):
        step()
    return (time.perf_counter() - start) / n * 1000


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=40, help="timed steps per variant per round")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    images = data.load_images("fashion_mnist", limit=10_000)
    amp = speed.precision("cpu")
    result = {"device": f"cpu, {torch.get_num_threads()} threads", "torch": torch.__version__, "precision": amp,
              "rounds": args.rounds, "steps": args.steps, "models": {}}
    for name, make in (("DCGAN (lesson 03, cpu recipe)", dcgan_step), ("StyleGAN2 (lesson 09, cpu recipe)", stylegan_step)):
        times = {"frozen": [], "unfrozen": []}
        steps = {"frozen": make(images, amp), "unfrozen": make(images, amp)}
        for r in range(args.rounds):
            order = ("frozen", "unfrozen") if r % 2 == 0 else ("unfrozen", "frozen")
            for variant in order:
                updates.frozen = FROZEN if variant == "frozen" else _unfrozen
                _time(steps[variant], 4)  # warm-up
                times[variant].append(_time(steps[variant], args.steps))
        updates.frozen = FROZEN
        med = {k: statistics.median(v) for k, v in times.items()}
        result["models"][name] = {"ms_per_step": {k: round(v, 1) for k, v in med.items()},
                                  "speedup": round(med["unfrozen"] / med["frozen"], 3),
                                  "rounds_ms": {k: [round(x, 1) for x in v] for k, v in times.items()}}
        print(f"{name}: frozen {med['frozen']:.1f} ms, unfrozen {med['unfrozen']:.1f} ms per step: "
              f"{med['unfrozen'] / med['frozen']:.3f}x", flush=True)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
