"""Lesson 06's study: which InfoGAN finds Fashion-MNIST's classes, measured on one budget.

    python tools/infogan_study.py run --architecture paper --seed 0 --steps 4000 --out build/infogan_study.jsonl
    python tools/infogan_study.py table build/infogan_study.jsonl
    python tools/infogan_study.py figure build/infogan_study.jsonl --runs 0 2 --out confusion.png

``run`` trains one InfoGAN with the lesson's recipe (``ganlib.infogan``, Adam G 1e-3 / D 2e-4,
beta1 0.5, EMA 0.995), in fp32 or under bf16 autocast (``--precision``), and appends one JSON line per measured step (``--steps`` and any ``--measure-at``): the matched accuracy of Q's category on the 10,000
test images (with the confusion matrix), the MI bound (the mean of the last five logged values), the
course's FID of 10,000 G_ema samples against the test images, and the minutes. Runs are independent
processes, so two can share the machine (``OMP_NUM_THREADS=1`` each). ``table`` prints the comparison
as Markdown, with the k-means baseline of the lesson. The lesson quotes the table it printed
(``docs/results/``).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import torch

from ganlib import classifier, data, infogan, metrics, profiles, train, viz

Z_DIM, K, L = 62, 10, 2


def run(args) -> dict:
    torch.set_num_threads(args.threads)
    features, _ = classifier.metric_inputs(classifier.load_classifier())  # before seeding: building it draws
    profiles.seed_everything(args.seed)                                    # from the random generator
    images = data.load_images("fashion_mnist", download=False)
    test = data.load_images("fashion_mnist", split="test", download=False)
    torch.manual_seed(args.seed)
    G, D = infogan.networks(args.architecture, images.shape, Z_DIM, K, L, args.width)
    opt_G, opt_D = infogan.optimizers(G, D)
    state = train.GANState.with_ema(G, D, opt_G, opt_D)
    d_step, g_step = infogan.infogan_steps(G, D, opt_G, opt_D, images, args.batch_size, amp=args.precision == "bf16",
                                           info_weight=args.info_weight, continuous_weight=args.continuous_weight)
    real_features = features(test.x)  # once per run: every measurement compares with the same test images
    rows, training = [], 0.0
    for steps in sorted({*args.measure_at, args.steps}):
        start = time.perf_counter()
        history = train.fit(state, d_step, g_step, steps, ema_beta=0.995, log_every=100, progress=not args.quiet)
        training += time.perf_counter() - start  # minutes of training only, without the measurements
        rng = torch.get_rng_state()  # measuring draws random inputs: the run then goes on as if it had not
        rows.append(measure(state, history, test, real_features, features, args, steps, training / 60))
        torch.set_rng_state(rng)
        state.D.train(), state.G_ema.train()
    return rows


def measure(state, history, test, real_features, features, args, steps: int, minutes: float) -> dict:
    """Matched accuracy of Q on the test images, the MI bound, the course's FID of 10,000 G_ema samples."""
    D = state.D.eval()
    predicted = infogan.predict_category(D, test.x)
    confusion = infogan.confusion_matrix(predicted, test.y, K, K)
    accuracy, label_of = infogan.matched_accuracy(confusion)
    G_ema = train.recalibrate_batchnorm(state.G_ema)
    gen = torch.Generator().manual_seed(args.seed + 100)
    with torch.no_grad():
        fakes = torch.cat([G_ema(*G_ema.random_inputs(1000, generator=gen)) for _ in range(10)])
    fid = metrics.fid(real_features, features(fakes))
    mi = history.values["MI bound"][-5:]
    row = dict(architecture=args.architecture, seed=args.seed, steps=steps, batch_size=args.batch_size,
               width=args.width, info_weight=args.info_weight, continuous_weight=args.continuous_weight,
               precision=args.precision, accuracy=accuracy, label_of=label_of, confusion=confusion.tolist(), mi_bound=sum(mi) / len(mi),
               fid=fid, minutes=minutes, threads=torch.get_num_threads(), torch=torch.__version__,
               machine=platform.processor() or platform.machine(), classes=list(test.classes))
    print(f"{args.architecture} seed {args.seed}, {args.precision}, {steps} steps: matched accuracy {accuracy:.1%}, MI bound "
          f"{row['mi_bound']:.3f} of {math.log(K):.3f}, FID {fid:.2f}, {minutes:.1f} min")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, "a") as f:
            f.write(json.dumps(row) + "\n")
    return row


def table(args) -> None:
    rows = [json.loads(line) for line in Path(args.results).read_text().splitlines() if line.strip()]
    print("| architecture | λ (cat) | λ (cont) | precision | steps | seed | matched accuracy | MI bound (nats) | FID | minutes |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['architecture']} | {r['info_weight']:g} | {r['info_weight'] * r['continuous_weight']:g} | "
              f"{r.get('precision', 'fp32')} | {r['steps']} | {r['seed']} | {r['accuracy']:.1%} | {r['mi_bound']:.3f} | {r['fid']:.2f} | "
              f"{r['minutes']:.1f} |")


def figure(args) -> None:
    """The confusion matrices of the chosen runs side by side, rows (Q's categories) in the order of
    their matched label and normalised to sum to 1: the matched diagonal, and where the rest goes."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in Path(args.results).read_text().splitlines() if line.strip()]
    chosen = [rows[i] for i in args.runs] if args.runs else rows
    fig, axes = plt.subplots(1, len(chosen), figsize=(6.2 * len(chosen), 5.6), layout="constrained", squeeze=False)
    for ax, r in zip(axes[0], chosen):
        viz.matched_confusion(r["confusion"], r["label_of"], r["classes"], ax=ax,
                              title=f"{r['architecture']}, lambda {r['info_weight']:g}, seed {r['seed']}: "
                                    f"{r['accuracy']:.1%} matched")
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="train one InfoGAN and append its measurements")
    r.add_argument("--architecture", choices=sorted(infogan.ARCHITECTURES), default="paper")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--steps", type=int, default=4000)
    r.add_argument("--measure-at", type=int, nargs="*", default=[], help="also measure at these steps")
    r.add_argument("--batch-size", type=int, default=64)
    r.add_argument("--width", type=int, default=64)
    r.add_argument("--info-weight", type=float, default=1.0, help="lambda of the whole information loss")
    r.add_argument("--continuous-weight", type=float, default=1.0,
                   help="the continuous codes' share inside it (their lambda is info-weight times this)")
    r.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                   help="bf16: forward passes under bf16 autocast (losses in fp32), as lessons with speed.use_bf16 run")
    r.add_argument("--threads", type=int, default=torch.get_num_threads())
    r.add_argument("--out", default="build/infogan_study.jsonl")
    r.add_argument("--quiet", action="store_true")
    t = sub.add_parser("table", help="print the runs as a Markdown table")
    t.add_argument("results")
    f = sub.add_parser("figure", help="draw the confusion matrices of some runs")
    f.add_argument("results")
    f.add_argument("--runs", type=int, nargs="*", help="line numbers (from 0) of the runs to draw; default all")
    f.add_argument("--out", default="build/infogan_confusion.png")
    args = parser.parse_args(argv)
    {"run": run, "table": table, "figure": figure}[args.command](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
