"""`make test-gpu`'s checks sized for a short GPU lease: run side by side, each under a shared deadline.

    python tools/gpu_lease.py --out DIR [--work DIR] [--deadline 470] [--workers 8] [--lessons 03 09] [--no-benchmark]

`make test-gpu` runs the whole test suite on the GPU and then each lesson's gpu profile one after
another: about an hour. A lease of a few minutes on one GPU (the course's CI has none; some of its
development sessions borrow one for fifteen minutes) needs the same evidence sooner, so this script

1. records the device, driver, torch and the capability that ``profile="auto"`` reads;
2. runs ``benchmarks/dcgan_throughput.py`` on CUDA, alone on the GPU (eager; ``--compile`` is left to
   ``make test-gpu``);
3. executes every lesson and deck in the smoke profile on CUDA (``GANLIB_DEVICE=cuda``), ``--workers``
   notebooks at a time: every CUDA code path, as ``make test-gpu``'s nbval half does;
4. then, at the same time on the one GPU: every lesson's **gpu** profile from scratch (its gpu-profile
   asserts active), and every lesson's **cpu** profile with the shipped weights in **fp32**
   (``GANLIB_PRECISION=fp32``), which is what ``profile="auto"`` gives a T4 or V100.

Phase 4 shares the GPU between up to a dozen notebooks, so its minutes are upper bounds of what each
lesson takes alone; the report says so. Whatever has not finished at the deadline is stopped and
reported as such. It writes at most seven files into ``--out``: ``summary.json``, ``report.md``,
``log.txt``, the benchmark's JSON and tars of the executed gpu and cpu-fp32 notebooks (their figures
become ``docs/results/`` evidence); the executed notebooks themselves go under ``--work``.
``--cpu-dry-run`` runs the same flow on the CPU without the benchmark, to try the script before a lease.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tarfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START = time.monotonic()
LOG_LOCK = threading.Lock()


def log(out: Path, message: str) -> None:
    line = f"[{time.monotonic() - START:6.0f} s] {message}"
    with LOG_LOCK:
        print(line, flush=True)
        with open(out / "log.txt", "a") as f:
            f.write(line + "\n")


def environment() -> dict:
    import torch

    import shutil

    smi = shutil.which("nvidia-smi")
    smi = subprocess.run([smi, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                         capture_output=True, text=True).stdout.strip() if smi else "(no nvidia-smi)"
    cuda = torch.cuda.is_available()
    return {"nvidia-smi": smi, "torch": torch.__version__, "cuda": str(torch.version.cuda), "python": sys.version.split()[0],
            "device": torch.cuda.get_device_name(0) if cuda else None,
            "capability": list(torch.cuda.get_device_capability(0)) if cuda else None,
            "cpu_count": os.cpu_count()}


def kill_tree(pid: int) -> None:
    """Stop a papermill process and its kernel (jupyter_client starts kernels in their own session)."""
    import psutil

    try:
        parent = psutil.Process(pid)
        procs = parent.children(recursive=True) + [parent]
    except psutil.NoSuchProcess:
        return
    for p in procs:
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass


def execute(out: Path, work: Path, phase: str, source: Path, parameters: dict, env: dict, deadline: float) -> dict:
    """One notebook through papermill's command line, stopped at the deadline."""
    dest = work / f"notebooks-{phase}" / source.parent.name / source.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "papermill", str(source), str(dest), "--cwd", str(source.parent), "-k", "python3",
           "--no-progress-bar"]
    for key, value in parameters.items():
        cmd += ["-p", key, str(value)]
    begin = time.monotonic()
    log(out, f"{phase}: {source.parent.name}/{source.stem} started")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **env}, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        status = "ok" if proc.returncode == 0 else "FAILED"
    except subprocess.TimeoutExpired:
        kill_tree(proc.pid)
        output, _ = proc.communicate()
        status = "stopped at the deadline"
    seconds = time.monotonic() - begin
    log(out, f"{phase}: {source.parent.name}/{source.stem} {status} in {seconds:.0f} s")
    return {"phase": phase, "notebook": f"{source.parent.name}/{source.name}", "status": status,
            "seconds": round(seconds, 1), "tail": "" if status == "ok" else output[-3000:]}


def benchmark(out: Path, timeout: float) -> dict:
    path = out / "dcgan-throughput.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "dcgan_throughput.py"), "--device", "cuda", "--steps", "300",
           "--batch-size", "128", "--sizes", "28", "64", "--json", str(path)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"not finished in {timeout:.0f} s"}
    return json.loads(path.read_text()) if done.returncode == 0 else {"error": (done.stdout + done.stderr)[-3000:]}


def report(env: dict, bench: dict, results: list[dict], deadline_s: float) -> str:
    lines = [f"# GPU lease check on {env['device']}", "", "```json", json.dumps(env, indent=1), "```", "",
             "## DCGAN throughput (alone on the GPU)", "", "```json", json.dumps(bench, indent=1), "```", ""]
    for phase, title in [("smoke", "Smoke profile on CUDA (every lesson and deck)"),
                         ("gpu", "gpu profile from scratch (sharing the GPU with the cpu-fp32 runs: minutes are upper bounds)"),
                         ("cpu-fp32", "cpu profile, shipped weights, fp32 on CUDA (what a T4 or V100 gets; sharing the GPU)")]:
        rows = [r for r in results if r["phase"] == phase]
        lines += [f"## {title}", "", "| notebook | minutes | status |", "|---|---|---|"]
        lines += [f"| {r['notebook']} | {r['seconds'] / 60:.1f} | {r['status']} |" for r in rows] + [""]
        for r in rows:
            if r["tail"]:
                lines += [f"### {r['notebook']} ({phase}): {r['status']}", "", "```", r["tail"][-1500:], "```", ""]
    lines += [f"Deadline {deadline_s:.0f} s from the start; whole script {time.monotonic() - START:.0f} s."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="the few files to bring back")
    parser.add_argument("--work", type=Path, default=Path("/tmp/gpu-lease"), help="where the executed notebooks go")
    parser.add_argument("--no-benchmark", action="store_true", help="skip step 2 (a re-check of a few lessons)")
    parser.add_argument("--cpu-dry-run", action="store_true", help="try the flow on the CPU (no benchmark)")
    parser.add_argument("--deadline", type=float, default=470.0, help="seconds from the start; every run stops there")
    parser.add_argument("--workers", type=int, default=8, help="smoke notebooks executed at a time")
    parser.add_argument("--lessons", nargs="*", default=[], help="lesson prefixes (default: all)")
    args = parser.parse_args(argv)
    out, work = args.out, args.work
    out.mkdir(parents=True, exist_ok=True)
    deadline = START + args.deadline
    sys.path.insert(0, str(ROOT / "tools"))
    import course

    env = environment()
    log(out, f"environment: {json.dumps(env)}")
    device = "cpu" if args.cpu_dry_run else "cuda"
    if not env["device"] and not args.cpu_dry_run:
        raise SystemExit("no CUDA device: this check needs a GPU")
    bench = {} if args.cpu_dry_run or args.no_benchmark else benchmark(out, timeout=min(90.0, deadline - time.monotonic()))
    log(out, f"benchmark: {json.dumps(bench)[:600]}")

    chosen = [s for s in course.sources() if not args.lessons or any(s.stem.startswith(p) for p in args.lessons)]
    lessons = [s for s in chosen if s.parent.name == "notebooks"]
    quiet = {"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2", "PYTHONUNBUFFERED": "1"}
    smoke_env = {**quiet, "GANLIB_DEVICE": device, "GANLIB_DEVICE_CHECK": "0"}
    smoke_deadline = min(deadline, time.monotonic() + 200.0)  # leave phase 4 most of the lease
    with ThreadPoolExecutor(args.workers) as pool:
        results = list(pool.map(lambda s: execute(out, work, "smoke", s, course.SMOKE_PARAMETERS, smoke_env, smoke_deadline),
                                chosen))
    gpu_jobs = [("gpu", s, {"profile": "gpu"}, {**quiet, "GANLIB_DEVICE_CHECK": "0"}) for s in lessons]
    cpu_jobs = [("cpu-fp32", s, {"profile": "cpu"}, {**quiet, "GANLIB_DEVICE": device, "GANLIB_DEVICE_CHECK": "0",
                                                     "GANLIB_PRECISION": "fp32"}) for s in lessons]
    with ThreadPoolExecutor(len(lessons)) as gpu_pool, ThreadPoolExecutor(3) as cpu_pool:  # every gpu run at once,
        futures = [gpu_pool.submit(execute, out, work, *job, deadline) for job in gpu_jobs]  # the cpu-fp32 ones
        futures += [cpu_pool.submit(execute, out, work, *job, deadline) for job in cpu_jobs]  # three at a time
        results += [f.result() for f in futures]

    (out / "summary.json").write_text(json.dumps({"environment": env, "benchmark": bench, "results": results}, indent=1))
    (out / "report.md").write_text(report(env, bench, results, args.deadline))
    for phase in ("gpu", "cpu-fp32"):  # two tars per phase keep each under the 16 MiB a returned file may have
        executed = sorted((work / f"notebooks-{phase}").glob("*/*.ipynb"))
        for half, part in (("a", executed[:len(executed) // 2]), ("b", executed[len(executed) // 2:])):
            if part:
                with tarfile.open(out / f"{phase}-{half}.tar", "w") as tar:
                    for nb in part:
                        tar.add(nb, arcname=f"{phase}/{nb.name}")
    log(out, "done")
    return 0 if all(r["status"] == "ok" for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
