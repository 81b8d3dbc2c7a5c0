"""Is bf16 autocast on the CPU quality-neutral? Lesson 03's recipe with and without it, at equal steps.

Each ``run`` trains lesson 03's DCGAN recipe (``dcgan.LESSON_03``, profile cpu: 5,000 G steps, batch 64,
width 64, EMA 0.995) once, in fp32 or under bf16 autocast (channels-last where ``speed.channels_last``
applies it, in both), and measures what lesson 03 asserts and reports on G_ema with standing batch-norm
statistics: the classifier's share of each class in 10,000 samples (lesson 03 requires every class
>= 5%) and its mean confidence (>= 0.6), the course's FID against the 10,000 test images, the health
report's warnings, and the training minutes. One line of JSON per run is appended to ``--out``;
``table`` prints the comparison and ``figure`` draws the runs' fixed-z samples side by side.

    python tools/bf16_study.py run --seed 0 --precision fp32 --out docs/results/cpu-2026-12-speed-bf16.jsonl
    python tools/bf16_study.py table docs/results/cpu-2026-12-speed-bf16.jsonl
    python tools/bf16_study.py figure docs/results/cpu-2026-12-speed-bf16.jsonl --png docs/results/cpu-2026-12-speed-bf16.png
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ganlib import classifier, data, dcgan, metrics, profiles, speed, train  # noqa: E402

N_EVAL = 10_000


def run(seed: int, precision: str, profile: str = "cpu", threads: int | None = None) -> dict:
    if threads:
        torch.set_num_threads(threads)
    recipe = dcgan.LESSON_03[profile]
    profiles.seed_everything(seed)
    images = data.load_images("fashion_mnist", limit=recipe["limit"])
    amp = precision == "bf16"
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        state = dcgan.train_dcgan(images, recipe["steps"], directory=tmp, run=f"{precision}-seed{seed}",
                                  batch_size=recipe["batch_size"], width=recipe["width"],
                                  log_every=recipe["log_every"], amp=amp, progress=False)
    minutes = (time.perf_counter() - start) / 60
    report = train.health(state.history, real=images.x[:64])
    G_ema = train.recalibrate_batchnorm(state.G_ema)
    features, probs = classifier.metric_inputs(classifier.load_classifier("cpu"))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        x_eval = classifier.apply_batched(G_ema, torch.randn(N_EVAL, 100, generator=gen))
        confidence, label = probs(x_eval).max(dim=1)
        share = torch.bincount(label, minlength=10).float() / len(label)
        test = data.load_images("fashion_mnist", split="test")
        fid = metrics.fid(features(test.x[:N_EVAL]), features(x_eval))
        grid = G_ema(torch.randn(32, 100, generator=torch.Generator().manual_seed(1000 + seed))).float()
    return {"seed": seed, "precision": precision, "profile": profile, "steps": state.step,
            "batch_size": recipe["batch_size"], "width": recipe["width"], "threads": torch.get_num_threads(),
            "native_bf16": speed.native_bf16("cpu"), "torch": torch.__version__, "minutes": round(minutes, 2),
            "fid": round(fid, 3), "min_class_share": round(float(share.min()), 4),
            "mean_confidence": round(float(confidence.mean()), 4), "class_share": [round(float(s), 4) for s in share],
            "all_classes": bool(share.min() >= 0.05 and confidence.mean() >= 0.6),
            "health_warnings": report.warnings, "samples": grid.clamp(-1, 1).mul(127.5).add(127.5).round().byte().tolist()}


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def table(rows: list[dict]) -> str:
    lines = ["| precision | seed | minutes | FID | smallest class share | mean confidence | all ten classes | health |",
             "|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["precision"] != "fp32", r["seed"])):
        health = "clean" if not r["health_warnings"] else "; ".join(r["health_warnings"])
        lines.append(f"| {r['precision']} | {r['seed']} | {r['minutes']:.1f} | {r['fid']:.3f} | "
                     f"{100 * r['min_class_share']:.1f}% | {r['mean_confidence']:.3f} | "
                     f"{'yes' if r['all_classes'] else 'no'} | {health} |")
    return "\n".join(lines)


def figure(rows: list[dict], png: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from ganlib import viz

    rows = sorted(rows, key=lambda r: (r["seed"], r["precision"] != "fp32"))
    fig, axes = plt.subplots(1, len(rows), figsize=(3.3 * len(rows), 2.6), layout="constrained", squeeze=False)
    for ax, r in zip(axes[0], rows):
        x = torch.tensor(r["samples"], dtype=torch.float32).div(127.5).sub(1)
        viz.image_grid(x, nrow=8, ax=ax, title=f"{r['precision']}, seed {r['seed']}: FID {r['fid']:.2f}")
    fig.suptitle(f"lesson 03's recipe ({rows[0]['steps']} steps, cpu profile), G_ema samples, fixed z per seed")
    fig.savefig(png, dpi=110)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="train and measure one run, append its JSON line to --out")
    p_run.add_argument("--seed", type=int, default=0)
    p_run.add_argument("--precision", choices=["fp32", "bf16"], required=True)
    p_run.add_argument("--profile", choices=["smoke", "cpu"], default="cpu")
    p_run.add_argument("--threads", type=int)
    p_run.add_argument("--out", type=Path, required=True)
    p_table = sub.add_parser("table", help="the comparison as a Markdown table")
    p_table.add_argument("jsonl", type=Path)
    p_fig = sub.add_parser("figure", help="the runs' samples side by side")
    p_fig.add_argument("jsonl", type=Path)
    p_fig.add_argument("--png", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "run":
        result = run(args.seed, args.precision, args.profile, args.threads)
        with open(args.out, "a") as f:
            f.write(json.dumps(result) + "\n")
        print({k: v for k, v in result.items() if k != "samples"})
    elif args.command == "table":
        print(table(read(args.jsonl)))
    else:
        figure(read(args.jsonl), args.png)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
