"""The GPU half of `make test-gpu`: each lesson's gpu profile, the throughput benchmark, one results file.

    python tools/gpu_report.py [--out build/test-gpu] [--smoke-log FILE] [lesson ...]

Runs the gpu profile of the named lessons (default: all; every gpu-profile assert active), then
``benchmarks/dcgan_throughput.py`` on CUDA, eager and with ``--compile``, and writes
``docs/results/gpu-<date>-<device>.md`` with the device, driver, torch version, minutes and status per
lesson, the benchmark's JSON, the tail of the smoke-on-GPU pytest run (``--smoke-log``) and every
figure the lessons drew (copied beside the file). It refuses to run without CUDA.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import course

ROOT = course.ROOT
NO_CUDA = "no CUDA device: make test-gpu needs a GPU"


def require_cuda() -> None:
    import torch

    if not torch.cuda.is_available():
        raise SystemExit(NO_CUDA)


def environment() -> dict[str, str]:
    import torch

    smi = shutil.which("nvidia-smi")
    driver = (subprocess.run([smi, "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True,
                             text=True).stdout.strip() if smi else "unknown (no nvidia-smi)")
    return {"device": torch.cuda.get_device_name(0), "driver": driver, "torch": torch.__version__,
            "cuda": str(torch.version.cuda), "python": sys.version.split()[0]}


def benchmark(out: Path, compile_models: bool) -> dict:
    path = out / f"dcgan-throughput{'-compile' if compile_models else ''}.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "dcgan_throughput.py"), "--device", "cuda", "--steps", "300",
           "--batch-size", "128", "--json", str(path)] + (["--compile"] if compile_models else [])
    done = subprocess.run(cmd, capture_output=True, text=True)
    return json.loads(path.read_text()) if done.returncode == 0 else {"error": done.stderr[-2000:]}


def report(env: dict, results: list, benches: dict, smoke_tail: str, figures: list[Path], stem: str) -> str:
    lines = [f"# make test-gpu on {env['device']}", "", f"Run {datetime.date.today()}: " +
             ", ".join(f"{k} {v}" for k, v in env.items()) + ".", "", "## Smoke profile on the GPU (nbval)", "",
             "```", smoke_tail.strip() or "(no smoke log given)", "```", "", "## gpu profile", "",
             "| lesson | profile | minutes | status |", "|---|---|---|---|",
             *[f"| {r.lesson} | {r.profile} | {r.seconds / 60:.1f} | {r.status} |" for r in results], "", "## DCGAN throughput (benchmarks/dcgan_throughput.py)", ""]
    for name, bench in benches.items():
        lines += [f"{name}:", "", "```json", json.dumps(bench, indent=2), "```", ""]
    lines += ["## Figures", ""] + [f"![{p.stem}]({stem}/{p.name})" for p in figures]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "test-gpu")
    parser.add_argument("--smoke-log", type=Path, help="the smoke-on-GPU pytest output, to quote its summary")
    parser.add_argument("lessons", nargs="*", help="lesson prefixes, e.g. 03 07 (default: all)")
    args = parser.parse_args(argv)
    require_cuda()
    env = environment()
    results = course.run("gpu", args.out, args.lessons)
    benches = {"eager": benchmark(args.out, False), "torch.compile": benchmark(args.out, True)}
    smoke_tail = "\n".join(args.smoke_log.read_text().splitlines()[-25:]) if args.smoke_log else ""
    stem = f"gpu-{datetime.date.today()}-{re.sub(r'[^a-z0-9]+', '-', env['device'].lower()).strip('-')}"
    fig_dir = ROOT / "docs" / "results" / stem
    fig_dir.mkdir(parents=True, exist_ok=True)
    figures = []
    for png in sorted((args.out / "figures").glob("*/*.png")):
        figures.append(fig_dir / f"{png.parent.name}-{png.name}")
        shutil.copy(png, figures[-1])
    path = ROOT / "docs" / "results" / f"{stem}.md"
    path.write_text(report(env, results, benches, smoke_tail, figures, stem))
    print(f"\n{course.table(results)}\n\nwrote {path.relative_to(ROOT)} and {len(figures)} figures")
    return 0 if all(r.error is None for r in results) and all("error" not in b for b in benches.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
