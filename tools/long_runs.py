"""Train the long runs the course ships beside the lessons' short ones, and measure them along the way.

    python tools/long_runs.py list                       # the long runs, their recipes and where they stand
    python tools/long_runs.py train NAME [--threads 1]   # train (or resume) one run in build/weights/checkpoints/
    python tools/long_runs.py curve NAME                 # FID of every generator kept along it (10,000 samples)

A lesson's short run is what a student trains in minutes; its long run (tens of minutes to two hours
on two CPU cores) is what the lesson's Look sections show, so that a student sees what the method can
do. Each long run trains through the same library call as the lesson's own run (``stylegan.train_stylegan``,
``dcgan.train_dcgan``, ...), with the recipe kept in the model module (``stylegan.LONG_09``, ...), and
checkpoints that resume: a stopped run continues where it was, step for step. The runs land where
``tools/weights.py`` builds the lessons' runs, so ``tools/weights.py build <lesson>`` keeps them and ships
them with the rest; ``curve`` measures the generators kept along a run (as the course measures: 10,000
samples against the test set, the course's features) and writes the FIDs into the finished run's history
(the column ``FID``, with ``min_class_share`` and ``confidence``): the lessons draw FID against training
minutes from it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

import torch  # noqa: E402

from ganlib import data, dcgan, sagan, speed, stylegan, stylegan_look, wgan  # noqa: E402

CHECKPOINTS = ROOT / "build" / "weights" / "checkpoints"  # tools/weights.py's CHECKPOINTS: pack finds them there
SEED = 0


@dataclass(frozen=True)
class LongRun:
    lesson: str
    run: str
    recipe: dict
    keep_every: int
    train: Callable[["LongRun", torch.device, bool], None]
    sample: Callable[[torch.nn.Module, int], torch.Tensor]  # a kept G_ema -> n images at 28 x 28
    generator: Callable[[dict], torch.nn.Module]  # recipe -> an untrained G of the run's architecture
    seed: int = SEED

    @property
    def directory(self) -> Path:
        return CHECKPOINTS / self.lesson

    @property
    def checkpoint(self) -> Path:
        return self.directory / f"{self.run}.pt"


def _fashion(device, limit=None):
    return data.load_images("fashion_mnist", device=device, limit=limit)


def _train_stylegan(spec: LongRun, device, amp: bool) -> None:
    fashion = _fashion(device, spec.recipe["limit"])
    images = data.ImageSet(stylegan.pad_to_32(fashion.x), fashion.y, fashion.classes, "fashion_mnist-32")
    torch.manual_seed(SEED)
    z_fixed = torch.randn(36, spec.recipe["z_dim"], generator=torch.Generator().manual_seed(SEED)).to(device)
    stylegan.train_stylegan(images, spec.recipe, directory=spec.directory, run=spec.run, z_fixed=z_fixed, amp=amp,
                            keep_every=spec.keep_every)


def _train_dcgan(spec: LongRun, device, amp: bool) -> None:
    fashion = _fashion(device, spec.recipe["limit"])
    torch.manual_seed(SEED)
    r = spec.recipe
    dcgan.train_dcgan(fashion, r["steps"], directory=spec.directory, run=spec.run, batch_size=r["batch_size"],
                      width=r["width"], log_every=r["log_every"], amp=amp, recipe=r, keep_every=spec.keep_every)


def _train_wgan_gp(spec: LongRun, device, amp: bool) -> None:
    fashion = _fashion(device, spec.recipe["limit"])
    torch.manual_seed(SEED)
    wgan.train_wgan_gp(fashion, spec.recipe, directory=spec.directory, run=spec.run, amp=amp, keep_every=spec.keep_every)


def _sagan_variant(name: str):
    def train_it(spec: LongRun, device, amp) -> None:
        fashion = _fashion(device, spec.recipe["limit"])
        sagan.train_variant(name, fashion, spec.recipe, spec.seed, directory=spec.directory, run=spec.run, amp=amp,
                            keep_every=spec.keep_every)
    return train_it


def _stylegan_sample(G, n):
    x = stylegan_look.sample(G, n, 1.0, generator=torch.Generator().manual_seed(0))
    return stylegan.crop_images(x.clamp(-1, 1))


def _dcgan_sample(G, n):
    from ganlib import classifier, train

    torch.manual_seed(0)
    G = train.recalibrate_batchnorm(G)
    (z,) = G.random_inputs(n, generator=torch.Generator().manual_seed(0))
    return classifier.apply_batched(G, z)


RUNS = {
    "09-stylegan": LongRun("09_stylegan", stylegan.LONG_09_RUN, stylegan.LONG_09, 1000,
                           _train_stylegan, _stylegan_sample,
                           lambda r: stylegan.Generator(stylegan.lesson_config(r)).eval()),
    "09-dcgan": LongRun("09_stylegan", stylegan.DCGAN_LONG_09_RUN, stylegan.DCGAN_LONG_09, 2000,
                        _train_dcgan, _dcgan_sample, lambda r: dcgan.Generator((1, 28, 28), 100, r["width"])),
    "07-wgan-gp": LongRun("07_wgan_gp", wgan.LONG_07_RUN, wgan.LONG_07, 800,
                          _train_wgan_gp, _dcgan_sample, lambda r: dcgan.Generator((1, 28, 28), 100, r["width"])),
    **{f"08-{sagan.run_name('', '', seed, 0, 0, name).split('-b0-')[1]}-seed{seed}":  # 08-DCGAN-seed0, 08-hinge-TTUR-seed1, ...
       LongRun("08_sagan", sagan.run_name("fashion_mnist", "long", seed, sagan.LONG_08["width"], sagan.LONG_08["batch_size"], name),
               sagan.LONG_08, 1000, _sagan_variant(name), _dcgan_sample,
               lambda r, name=name: sagan.VARIANTS[name][0]((1, 28, 28), 100, r["width"]), seed=seed)
       for seed in (0, 1) for name in sagan.VARIANTS},
}


def curve_path(spec: LongRun) -> Path:
    return spec.directory / f"{spec.run}-curve.json"


def train_run(name: str, threads: int | None) -> None:
    spec = RUNS[name]
    if threads:
        torch.set_num_threads(threads)
    device = torch.device("cpu")
    amp = speed.use_bf16(device)
    print(f"{name}: {spec.run} in {spec.directory}, {spec.recipe['steps']} steps, {torch.get_num_threads()} thread(s), "
          f"bf16={amp}", flush=True)
    spec.train(spec, device, amp)


def measure_curve(name: str) -> dict[int, float]:
    """FID, smallest class share and confidence (10,000 samples against the test set, course features) of
    every G_ema kept along the run; kept in ``<run>-curve.json`` beside the checkpoint (a second call
    measures only what is new) and, once the run is finished, written into its history as columns."""
    from weights import Judge

    spec, judge = RUNS[name], Judge.make()
    path = curve_path(spec)
    found = json.loads(path.read_text()) if path.exists() else {}
    kept = dcgan.saved_generators(spec.directory, spec.run)
    for step, file in kept.items():
        if str(step) in found:
            continue
        G = spec.generator(spec.recipe)
        G.load_state_dict(torch.load(file, map_location="cpu", weights_only=True))
        start = time.perf_counter()
        found[str(step)] = judge.measure(spec.sample(G, 10_000))
        print(f"{name} step {step}: {found[str(step)]}  ({time.perf_counter() - start:.0f} s)", flush=True)
        path.write_text(json.dumps(dict(sorted(found.items(), key=lambda kv: int(kv[0]))), indent=1) + "\n")
    _into_history(spec, {int(step): values for step, values in found.items()})
    return found


def _into_history(spec: LongRun, found: dict[int, dict]) -> None:
    """The measurements as columns of the finished run's history (``pretrained.with_column``), in its checkpoint."""
    from ganlib import pretrained

    blob = torch.load(spec.checkpoint, map_location="cpu", weights_only=True) if spec.checkpoint.exists() else None
    if blob is None or not pretrained.finished_run(blob):
        return
    for column in ("FID", "min_class_share", "confidence"):
        blob["history"] = pretrained.with_column(blob["history"], column, {s: v[column] for s, v in found.items()})
    tmp = spec.checkpoint.with_suffix(".tmp")
    torch.save(blob, tmp)
    os.replace(tmp, spec.checkpoint)
    print(f"{spec.checkpoint}: {len(found)} measurements written into its history", flush=True)


def status(name: str) -> str:
    spec = RUNS[name]
    if not spec.checkpoint.exists():
        return "not started"
    blob = torch.load(spec.checkpoint, map_location="cpu", weights_only=True)
    minutes = sum(blob["history"]["seconds"]) / 60
    return f"step {blob['step']} of {spec.recipe['steps']}, {minutes:.1f} training minutes"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the long runs and where they stand")
    for command in ("train", "curve"):
        p = sub.add_parser(command)
        p.add_argument("name", choices=sorted(RUNS))
        if command == "train":
            p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args(argv)
    os.environ.setdefault("GANLIB_CHECKPOINTS", str(CHECKPOINTS))
    if args.command == "list":
        for name, spec in RUNS.items():
            print(f"{name:14s} {spec.lesson}/{spec.run}: {status(name)}")
    elif args.command == "train":
        train_run(args.name, args.threads)
    else:
        measure_curve(args.name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
