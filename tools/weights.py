"""Rebuild the trained weights the course ships (``make weights``), from the lessons' own recipes.

    python tools/weights.py build [lesson ...]   # run each lesson's cpu profile (seed 0, pretrained=False)
                                                 # and pack its finished runs into ganlib/assets/weights/
    python tools/weights.py build --resume ...   # the same in the last build's checkpoints (runs load)
    python tools/weights.py pack [lesson ...]    # pack again from the last build's checkpoints
    python tools/weights.py pack --long lesson   # pack its long runs (tools/long_runs.py) beside its shipped runs
    python tools/weights.py check                # verify and measure every shipped run, print the table

``build`` executes the lesson notebook itself with papermill (so the recipe is the lesson's, not a
copy), with its checkpoints in a fresh folder, ``build/weights/checkpoints/``; every run the lesson
trained with a recipe is packed (``ganlib.pretrained.pack``: G_ema or G and D in half precision,
history, step, and the generators a later lesson measures), measured, and written to the manifest
with the minutes it took. The same seed and steps give the same recipe; on another machine the
weights differ in their last bits, the quality bar stays.

``QUALITY`` holds, per lesson, how a shipped run is measured and the bar it must meet; the tests
(tests/test_pretrained.py) measure every shipped run again against those bars.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from ganlib import (bigan, cgan, classifier, cyclegan, data, dcgan, infogan, metrics, pix2pix, pretrained, sagan,  # noqa: E402
                    semisupervised, spade, stylegan, stylegan_look, train, wgan)

N_EVAL = 10_000  # samples per measurement, against as many test images
BUDGET_MB = 44  # all shipped runs together, in MiB: 40 through lesson 11 (35 before Part II); lesson 12 adds 11 runs
BUILD_PARAMETERS = {"profile": "cpu", "seed": 0, "pretrained": False}


@dataclass
class Judge:
    """Test images, their features and the classifier, shared by every measurement."""

    clf: classifier.FashionClassifier
    x_test: torch.Tensor
    f_test: torch.Tensor
    y_test: torch.Tensor

    @classmethod
    def make(cls, n: int = N_EVAL) -> "Judge":
        test = data.load_images("fashion_mnist", split="test")
        clf = classifier.load_classifier(torch.device("cpu"))
        features, _ = classifier.metric_inputs(clf)
        return cls(clf, test.x[:n], features(test.x[:n]), test.y[:n])

    def measure(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dict[str, float]:
        """FID against the test set, the smallest class share, mean confidence, and class consistency given y
        (``classifier.sample_quality``)."""
        out = classifier.sample_quality(self.clf, x, self.f_test, y)
        return {k: round(v, 4) for k, v in out.items()}


def _generator(key: str, model: torch.nn.Module, name: str = "G_ema") -> torch.nn.Module:
    pretrained.load_model(key, name, model)
    torch.manual_seed(0)  # the standing statistics' inputs: the same measurement every time
    return train.recalibrate_batchnorm(model)


def dcgan_quality(key: str, recipe: dict, judge: Judge) -> dict[str, float]:
    G = _generator(key, dcgan.Generator((1, 28, 28), 100, recipe["width"]))
    (z,) = G.random_inputs(N_EVAL, generator=torch.Generator().manual_seed(0))
    return judge.measure(classifier.apply_batched(G, z))


def cgan_quality(key: str, recipe: dict, judge: Judge) -> dict[str, float]:
    G = _generator(key, cgan.Generator((1, 28, 28), 10, 100, recipe["width"]))
    y = cgan.balanced_labels(N_EVAL, 10, torch.device("cpu"))
    return judge.measure(cgan.generate(G, y, generator=torch.Generator().manual_seed(0)), y)


def infogan_quality(key: str, recipe: dict, judge: Judge) -> dict[str, float]:
    """Lesson 06: FID of G_ema's samples (random codes), and Q's category on the test images after
    matching (the lesson's claim: above k-means on pixels, 48.2% there)."""
    G, D = infogan.networks(recipe["architecture"], (1, 28, 28), 62, 10, 2, recipe["width"])
    G = _generator(key, G)
    D = pretrained.load_model(key, "D", D).eval()
    inputs = G.random_inputs(N_EVAL, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        x = torch.cat([G(*chunk) for chunk in zip(*(t.split(500) for t in inputs))])
    confusion = infogan.confusion_matrix(infogan.predict_category(D, judge.x_test), judge.y_test, 10, 10)
    return {**judge.measure(x), "matched_accuracy": round(infogan.matched_accuracy(confusion)[0], 4)}


def stylegan_quality(key: str, recipe: dict, judge: Judge) -> dict[str, float]:
    G = pretrained.load_model(key, "G_ema", stylegan.Generator(stylegan.lesson_config(recipe))).eval()
    x = stylegan_look.sample(G, N_EVAL, 1.0, generator=torch.Generator().manual_seed(0))
    return judge.measure(stylegan.crop_images(x.clamp(-1, 1)))


def sagan_quality(key: str, recipe: dict, judge: Judge) -> dict[str, float]:
    G = _generator(key, sagan.Generator((1, 28, 28), 100, recipe["width"]))
    (z,) = G.random_inputs(N_EVAL, generator=torch.Generator().manual_seed(0))
    return judge.measure(classifier.apply_batched(G, z))


def toy_quality(key: str, recipe: dict, judge: Judge) -> dict[str, float]:
    """Lesson 07's toys: modes covered and the high-quality share (lesson 02's measure) on 2,500 samples."""
    G = wgan.ToyGenerator(2, 2, recipe["toy_hidden"], recipe["toy_depth"], batch_norm=recipe.get("toy_batch_norm", False),
                          slope=recipe.get("toy_g_slope", 0.2))
    torch.manual_seed(0)
    G = train.recalibrate_batchnorm(pretrained.load_model(key, "G", G))  # batch norm from its own batches, as the lesson
    target = data.grid() if key.split("/")[1].startswith("toy-grid") else data.ring()
    with torch.no_grad():
        x = G(torch.randn(2500, 2, generator=torch.Generator().manual_seed(0)))
    if key.split("/")[1].startswith("toy-swissroll"):  # no modes to count: the mean distance to the roll's samples
        return {"distance": round(float(torch.cdist(x, data.SwissRoll().sample(2500)).min(dim=1).values.mean()), 4)}
    stats = metrics.mode_coverage(x, target)
    return {"modes": stats.modes, "high_quality": round(stats.high_quality, 4)}


def ssl_quality(key: str, recipe: dict, judge: Judge) -> dict[str, float]:
    """Lesson 11's semi-supervised runs: D's test accuracy as a classifier, and FID and the class check of G's samples."""
    G, D = semisupervised.ssl_networks((1, 28, 28), recipe)
    D = pretrained.load_model(key, "D", D).eval()
    G = pretrained.load_model(key, "G", G).eval()
    with torch.no_grad():
        x = G(*G.random_inputs(N_EVAL, generator=torch.Generator().manual_seed(0)))
    return {"accuracy": round(classifier.accuracy(D, judge.x_test, judge.y_test), 4), **judge.measure(x)}


def bigan_toy_quality(key: str, recipe: dict, judge: Judge) -> dict[str, float]:
    """Lesson 11's BiGAN on the grid: modes and high-quality share (lesson 02's measure) on 2,500 samples."""
    GE, _ = bigan.toy_bigan(recipe["toy_hidden"], recipe["toy_depth"])
    GE = pretrained.load_model(key, "G", GE).eval()
    with torch.no_grad():
        stats = metrics.mode_coverage(GE(torch.randn(2500, 2, generator=torch.Generator().manual_seed(0))), data.grid())
    return {"modes": stats.modes, "high_quality": round(stats.high_quality, 4)}


def bigan_image_quality(key: str, recipe: dict, judge: Judge) -> dict[str, float]:
    """Lesson 11's BiGAN on Fashion-MNIST: a linear probe on E(x) (fitted on the first half of the test images,
    tested on the second), the reconstruction ratio EGr/EGr_b, and FID of G's samples."""
    GE, _ = bigan.image_bigan((1, 28, 28), recipe["z_dim"], recipe["width"])
    GE = pretrained.load_model(key, "G", GE).eval()
    half = len(judge.x_test) // 2
    with torch.no_grad():
        f = GE.encode(judge.x_test)
        x = GE(*GE.random_inputs(N_EVAL, generator=torch.Generator().manual_seed(0)))
    probe = bigan.linear_probe(f[:half], judge.y_test[:half], f[half:], judge.y_test[half:])
    return {"probe": round(probe, 4), "reconstruction_ratio": round(bigan.reconstruction_ratio(GE, judge.x_test[:1000]), 4),
            **judge.measure(x)}


def _translation_scores(G: torch.nn.Module, task: data.Pairs, judge: Judge, mode: str) -> dict[str, float]:
    G = pix2pix.test_mode(G, mode)
    out = pix2pix.scores(pix2pix.translate(G, task.a), task.b, task.y, judge.clf, judge.f_test)
    return {k: round(v, 4) for k, v in out.items()}


def _test_set(judge: Judge) -> data.ImageSet:
    return data.ImageSet(judge.x_test, judge.y_test, data.FASHION_CLASSES, "fashion_mnist")


def pix2pix_quality(key: str, recipe: dict, judge: Judge) -> dict[str, float]:
    """Lesson 12's paired runs (edges -> garment, or label maps -> garment): L1, classifier accuracy, FID and sharpness
    of G's outputs (train mode, as the paper tests) on the 10,000 test images."""
    masks = key.split("/")[1].startswith("masks-")
    task = data.label_maps(_test_set(judge)) if masks else data.edges_to_garments(_test_set(judge))
    make = spade.networks if recipe["generator"] == "spade" else pix2pix.networks
    G = pretrained.load_model(key, "G", make(recipe, task.a.shape[1], 1)[0])
    return _translation_scores(G, task, judge, "train")


def cyclegan_quality(key: str, recipe: dict, judge: Judge) -> dict[str, float]:
    """Lesson 12's unpaired runs: G (edges -> garment) on the test images' edge maps, scored against their garments."""
    GF = pretrained.load_model(key, "G", cyclegan.networks(recipe)[0])
    return _translation_scores(GF.G, data.edges_to_garments(_test_set(judge)), judge, "eval")


@dataclass(frozen=True)
class Quality:
    measure: Callable[[str, dict, Judge], dict[str, float]]
    bar: dict[str, tuple[str, float]]  # metric -> ("<=" or ">=", bound): what the lesson claims of its run
    kept: tuple[float, ...] = ()  # where along the run kept generators ship too (lesson 04 measures lesson 03's)

    def failures(self, values: dict[str, float]) -> list[str]:
        ok = {"<=": lambda v, b: v <= b, ">=": lambda v, b: v >= b}
        return [f"{k} = {values[k]:.3f}, the bar is {op} {b}" for k, (op, b) in self.bar.items() if not ok[op](values[k], b)]


CLASS_CHECK = {"min_class_share": (">=", 0.05), "confidence": (">=", 0.6)}  # lesson 03's ten-class check
DCGAN_03_FID = 4.21  # lesson 03's shipped DCGAN (5,000 steps): the bar lesson 09's long StyleGAN2 run must meet
SHORT_09_FID = 25.0  # lesson 09's short run (1,500 steps): 20.2 with R1 gamma 0.1 (2026-12-04), 18.0 with 0.01 before
DCGAN_BAR = {**CLASS_CHECK, "FID": ("<=", 6.0)}  # lesson 03's claims
QUALITY = {  # lesson -> {run name pattern: how its shipped runs are measured, and the bar (the lesson's claims)}
    "03_dcgan": {"*": Quality(dcgan_quality, DCGAN_BAR, kept=(0.1, 0.3))},  # and the end: 500, 1,500, 5,000
    "06_infogan": {"*": Quality(infogan_quality, {"matched_accuracy": (">=", 0.49), "FID": ("<=", 2.0)})},  # k-means 48.2%; FIDs 0.6-0.8 in the study
    "05_conditional_gan": {"*": Quality(cgan_quality, {"consistency": (">=", 0.75), "FID": ("<=", 10.0)})},
    "08_sagan": {"*-long-*-SAGAN": Quality(sagan_quality, CLASS_CHECK),  # the long runs (tools/long_runs.py)
                 "*-long-*": Quality(dcgan_quality, CLASS_CHECK),
                 "*-SAGAN": Quality(sagan_quality, {"FID": ("<=", 40.0)}),  # 1,000 steps: FIDs 19-30 in the lab
                 "*": Quality(dcgan_quality, {"FID": ("<=", 40.0)})},
    "07_wgan_gp": {"*-wgan_gp-long-*": Quality(dcgan_quality, CLASS_CHECK),  # the long run (tools/long_runs.py)
                   "toy-ring-WGAN-GP-*": Quality(toy_quality, {"modes": (">=", 8)}),
                   "toy-grid-WGAN-GP-*": Quality(toy_quality, {"modes": (">=", 24), "high_quality": (">=", 0.8)}),  # the course's target
                   "toy-*": Quality(toy_quality, {}), "dcgan-*": Quality(dcgan_quality, {"FID": ("<=", 40.0)}),
                   "*": Quality(dcgan_quality, {"FID": ("<=", 40.0)}, kept=(0.2, 0.4, 0.6, 0.8))},  # 600 steps: FIDs 26.2 and 26.5 in the lab
    "09_stylegan": {"fashion_mnist32-long-*": Quality(stylegan_quality, {**CLASS_CHECK, "FID": ("<=", DCGAN_03_FID)}),
                    "fashion_mnist-long-*": Quality(dcgan_quality, {**CLASS_CHECK, "FID": ("<=", 2.0)}),  # beside it: 1.27
                    "*": Quality(stylegan_quality, {"FID": ("<=", SHORT_09_FID)})},
    "10_loss_zoo": {"toy-*": Quality(toy_quality, {}),  # 30 toy runs: measured; the lesson asserts what held in every seed
                    "*": Quality(dcgan_quality, {"FID": ("<=", 40.0)})},  # 1,000 steps: FIDs 14-25 in the lab
    "11_infer_classify": {"toy-grid-BiGAN-*": Quality(bigan_toy_quality, {}),  # measured; the lesson compares with lesson 10's GAN
                          "*-BiGAN-*": Quality(bigan_image_quality, {"reconstruction_ratio": ("<=", 0.6)}),  # 0.44 in the lab
                          "*-ssl-10pc-*": Quality(ssl_quality, {"accuracy": (">=", 0.66)}),  # 67-74% in the lab
                          "*-ssl-100pc-*": Quality(ssl_quality, {"accuracy": (">=", 0.77)})},  # 79.5% in the lab
    "12_image_to_image": {"edges-L1-cGAN-*": Quality(pix2pix_quality, {"accuracy": (">=", 0.75), "FID": ("<=", 6.0)}),  # 80.4%, 4.3
                          "edges-*": Quality(pix2pix_quality, {}),  # the ablations: measured; the lesson compares them
                          "masks-*": Quality(pix2pix_quality, {"accuracy": (">=", 0.75)}),  # SPADE 79.4%, U-Net 83.9%
                          "unpaired-cycle-*": Quality(cyclegan_quality, {"accuracy": (">=", 0.4)}),  # 45.7% on the test edge maps
                          "unpaired-*": Quality(cyclegan_quality, {})},  # no cycle: 10% (chance), as the lesson says
}


def quality_of(key: str) -> Quality:
    """The measure and bar of the shipped run ``<lesson>/<run>``: the first pattern that matches its run."""
    lesson, run = key.split("/")
    return next(q for pattern, q in QUALITY[lesson].items() if fnmatch.fnmatch(run, pattern))


def notebook(lesson: str) -> Path:
    return ROOT / "notebooks" / f"{lesson}.ipynb"


CHECKPOINTS = ROOT / "build" / "weights" / "checkpoints"


def build(lesson: str, judge: Judge, resume: bool = False) -> dict[str, dict]:
    """Run ``lesson``'s cpu profile in a fresh checkpoint folder (``resume``: in the last build's, whose
    finished runs then load instead of training), then pack and measure its runs."""
    import shutil

    import papermill as pm

    if not resume:  # a fresh folder, but for the long runs (tools/long_runs.py), which the lesson does not train
        keep = set(long_runs_of(lesson))
        for path in (CHECKPOINTS / lesson).glob("*") if (CHECKPOINTS / lesson).exists() else []:
            if not any(path.name.startswith(f"{run}.") or path.name.startswith(f"{run}-") for run in keep):
                shutil.rmtree(path) if path.is_dir() else path.unlink()
    os.environ["GANLIB_CHECKPOINTS"] = str(CHECKPOINTS)
    out = ROOT / "build" / "weights" / f"{lesson}.ipynb"
    out.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    pm.execute_notebook(str(notebook(lesson)), str(out), parameters=BUILD_PARAMETERS, cwd=str(notebook(lesson).parent),
                        kernel_name="python3", progress_bar=False)
    print(f"{lesson}: the lesson ran in {(time.perf_counter() - start) / 60:.1f} min (cpu profile, seed 0)", flush=True)
    return pack(lesson, judge)


def pack(lesson: str, judge: Judge, only_long: bool = False) -> dict[str, dict]:
    """Pack every finished run with a recipe that ``build`` left in ``CHECKPOINTS/<lesson>``, and measure it.
    ``only_long``: the long runs alone (tools/long_runs.py), beside the lesson's shipped runs, which stay."""
    entries, long_runs = {}, long_runs_of(lesson)
    for ckpt in sorted((CHECKPOINTS / lesson).glob("*.pt")):
        long = long_runs.get(ckpt.stem)  # its LongRun, if tools/long_runs.py trains it
        if only_long and long is None:
            continue
        blob = torch.load(ckpt, map_location="cpu", weights_only=True)
        if not pretrained.finished_run(blob):
            continue  # kept generators, unfinished or recipe-less runs
        minutes = round(sum(blob["history"]["seconds"]) / 60, 2)
        parameters = BUILD_PARAMETERS if long is None else {"tool": "tools/long_runs.py", "seed": long.seed, "threads": 1}
        key, entry = pretrained.pack(ckpt, kept=quality_of(f"{lesson}/{ckpt.stem}").kept, minutes=minutes,
                                     device=_device(long is not None), torch=torch.__version__,
                                     built=time.strftime("%Y-%m-%d"), parameters=parameters)
        entries[key] = entry
    if not entries:
        raise SystemExit(f"{lesson}: no finished run with a recipe in {CHECKPOINTS / lesson}; run `tools/weights.py build {lesson}`")
    print(f"{lesson}: {len(entries)} run(s) packed", flush=True)
    return _measured(lesson, entries, judge, replace=not only_long)


def _measured(lesson: str, entries: dict[str, dict], judge: Judge, replace: bool = True) -> dict[str, dict]:
    """Write ``entries`` into the manifest (``replace``: instead of every shipped run of the lesson), measure them."""
    keep = (lambda k: not k.startswith(f"{lesson}/")) if replace else (lambda k: k not in entries)
    runs = {k: v for k, v in pretrained.manifest().items() if keep(k)}
    shipped_files = {pretrained.WEIGHTS_DIR / e["file"] for e in [*entries.values(), *runs.values()]}
    for stale in set((pretrained.WEIGHTS_DIR / lesson).glob("*.pt")) - shipped_files:
        stale.unlink()
    runs.update(entries)
    pretrained.write_manifest(runs)  # the files must be listed before they can be loaded and measured
    for key, entry in entries.items():
        entry["quality"] = quality_of(key).measure(key, entry["recipe"], judge)
    pretrained.write_manifest({**runs, **entries})
    return entries


def _device(long: bool = False) -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), None) if Path("/proc/cpuinfo").exists() else None
    threads = "1 thread, beside another run (tools/long_runs.py)" if long else f"{torch.get_num_threads()} threads"
    return f"{cpu or platform.processor() or platform.machine()}, {threads}"


def long_runs_of(lesson: str) -> dict:
    """The runs of ``lesson`` that tools/long_runs.py trains (the lesson itself only loads them): run name -> LongRun."""
    import long_runs

    return {spec.run: spec for spec in long_runs.RUNS.values() if spec.lesson == lesson}


def check(judge: Judge, lessons=()) -> list[tuple[str, ...]]:
    """Every shipped run (of ``lessons``; default all) verified, loaded and measured again: rows of a table,
    and whether it meets its bar."""
    rows = [("run", "MB", "minutes", "quality", "bar")]
    for key, entry in pretrained.manifest().items():
        if lessons and key.split("/")[0] not in lessons:
            continue
        quality = quality_of(key)
        values = quality.measure(key, entry["recipe"], judge)
        failed = quality.failures(values)
        rows.append((key, f"{entry['bytes'] / 2**20:.2f}", f"{entry['minutes']:.1f}",
                     " ".join(f"{k}={v:.3f}" for k, v in values.items()), "; ".join(failed) or "met"))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_build = sub.add_parser("build", help="rebuild the shipped runs of the lessons named (default: all)")
    p_build.add_argument("lessons", nargs="*", help=f"lessons, e.g. 03_dcgan (default: {' '.join(QUALITY)})")
    p_build.add_argument("--resume", action="store_true",
                         help="keep the last build's checkpoints: its finished runs load (after a lesson's claims changed)")
    p_pack = sub.add_parser("pack", help="pack again from the checkpoints of the last build")
    p_pack.add_argument("lessons", nargs="*", help="lessons (default: all)")
    p_pack.add_argument("--long", action="store_true", help="only the long runs (tools/long_runs.py); the rest stay")
    sub.add_parser("check", help="verify and measure every shipped run")
    args = parser.parse_args(argv)
    for lesson in getattr(args, "lessons", []):
        if lesson not in QUALITY:
            parser.error(f"no shipped runs are defined for {lesson!r}; known: {', '.join(QUALITY)}")
    judge = Judge.make()
    if args.command in ("build", "pack"):
        for lesson in args.lessons or list(QUALITY):
            build(lesson, judge, args.resume) if args.command == "build" else pack(lesson, judge, args.long)
    from course import format_table

    rows = check(judge, getattr(args, "lessons", []))
    total = sum(e["bytes"] for e in pretrained.manifest().values()) / 2**20
    print(format_table(rows) + f"\n\n{len(rows) - 1} shipped runs, {total:.1f} MB in all (limit {BUDGET_MB} MB)")
    return 0 if all(r[-1] == "met" for r in rows[1:]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
