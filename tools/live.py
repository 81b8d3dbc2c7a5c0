"""Every lesson tried live: JupyterLab in headless Chromium, Run All, then each widget's controls moved.

papermill and nbval execute a lesson's cells, but a widget's life in the browser (a figure drawn twice,
a callback that throws, a slider that never redraws) is invisible to them. This tool starts JupyterLab
on a free localhost port (smoke profile, a fresh checkpoint folder, copies of the lessons so nothing is
written into notebooks/), opens each lesson through ``tools/lab_browser.cjs`` (playwright-core and
Debian's Chromium, as the decks' checks), runs all cells, moves every slider and dropdown of every
``ganlib.widgets.explore`` once, and judges what the page showed (``problems``):

- Run All ends with every code cell executed and no error output;
- after each move the figure below the controls redraws: exactly one image, a new one, decoded, and
  the status line says what it shows; a redraw longer than 10 s shows its progress meanwhile; no kernel error (a callback's traceback goes to the log console,
  not to a cell, so the page's kernel messages are watched);
- no browser console error, no page error, no request beyond the local server.

    python tools/live.py [lesson prefixes ...] [--out build/test-live] [--profile smoke|cpu|gpu]

Screenshots of each widget before and after each move land in ``<out>/shots/<lesson>/``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import course  # noqa: E402
import slides  # noqa: E402  (Chromium and node_modules are found as for the decks)

BROWSER_SCRIPT = ROOT / "tools" / "lab_browser.cjs"
OUT = ROOT / "build" / "test-live"
RUN_TIMEOUT_S = 900  # Run All of one lesson (<= 60 s in smoke on CI, a few minutes in cpu with the shipped runs)
REDRAW_TIMEOUT_S = 240  # one control moved: lesson 07's n_critic trains a toy run
SLOW_S = 10  # a redraw longer than this must show its progress (a bar and a count on the status line) meanwhile
# JupyterLab's own chatter that is not the course's: a notification asking about news (no network here)
LAB_SETTINGS = {"@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false"}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def jupyter() -> Path:
    found = Path(sys.executable).parent / "jupyter"
    if not found.exists():
        raise slides.MissingTool(f"no jupyter next to {sys.executable}: `make install` installs JupyterLab")
    return found


@contextmanager
def lab_server(out: Path, token: str = "live-check", profile: str = "smoke"):
    """JupyterLab serving copies of the lessons from ``out/notebooks`` in ``profile``; yields its base URL."""
    books = out / "notebooks"
    shutil.rmtree(books, ignore_errors=True)
    books.mkdir(parents=True)
    for lesson in course.lessons():
        shutil.copy(lesson, books / lesson.name)
    settings = out / "lab-settings"
    for name, value in LAB_SETTINGS.items():
        (settings / name).parent.mkdir(parents=True, exist_ok=True)
        (settings / name).write_text(json.dumps(value))
    env = {k: v for k, v in os.environ.items() if not k.startswith("GANLIB_")}
    env.update(GANLIB_PROFILE=profile, GANLIB_CHECKPOINTS=tempfile.mkdtemp(prefix="ganlib-live-"),
               JUPYTERLAB_SETTINGS_DIR=str(settings), JUPYTER_RUNTIME_DIR=tempfile.mkdtemp(prefix="jupyter-live-"))
    port = free_port()
    args = [str(jupyter()), "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1", f"--ServerApp.token={token}",
            f"--ServerApp.root_dir={books}", "--LabApp.expose_app_in_browser=True",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--ServerApp.open_browser=False"]
    if os.getuid() == 0:
        args.append("--allow-root")
    log = (out / "jupyterlab.log").open("w")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=books)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            if proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited ({proc.returncode}); see {out / 'jupyterlab.log'}")
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        else:
            raise RuntimeError(f"JupyterLab did not answer on {base} within 60 s; see {out / 'jupyterlab.log'}")
        yield base, token
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def browse(base: str, token: str, names: list[str], out: Path, timeout: float = 3600) -> list[dict]:
    """Run tools/lab_browser.cjs on lessons ``names`` (their stems), in order; its reports."""
    chromium = slides.find_chromium()
    if chromium is None:
        raise slides.MissingTool("no Chromium found: install Debian's chromium (apt-get install chromium) or set CHROMIUM")
    if shutil.which("node") is None or not (slides.NODE_MODULES / "playwright-core").exists():
        raise slides.MissingTool(f"node and playwright-core under {slides.NODE_MODULES} are needed: run `npm ci`")
    spec = {"chromium": chromium, "base": base, "token": token, "run_timeout_s": RUN_TIMEOUT_S,
            "redraw_timeout_s": REDRAW_TIMEOUT_S,
            "lessons": [{"name": n, "path": f"{n}.ipynb", "screenshots": str((out / "shots" / n).resolve())} for n in names]}
    return slides.run_browser_script(BROWSER_SCRIPT, spec, timeout)


def explorers(lesson: Path) -> list[int]:
    """How many controls each ``widgets.explore`` call in the lesson's source creates, in order."""
    import ast

    import nbformat

    nb = nbformat.read(lesson, as_version=4)
    calls = [node for c in nb.cells if c.cell_type == "code" and "widgets.explore(" in c.source
             for node in sorted(ast.walk(ast.parse(c.source)), key=lambda n: getattr(n, "lineno", 0))
             if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "explore"]
    return [len(call.keywords) for call in calls]


def problems(report: dict, expected: list[int]) -> list[str]:
    """What went wrong with a lesson as a student in JupyterLab would have seen it; empty when all is well.
    ``expected``: the controls of each explorer in the lesson's source (``explorers``), all of which must be
    found in the page and moved."""
    if report.get("error"):
        return [f"the browser failed: {report['error'].splitlines()[0]}"]
    found = []
    moved = [len(w["controls"]) for w in report["widgets"]]
    if moved != expected:
        found.append(f"controls found and moved per widget: {moved}; the source's explorers have {expected}")
    cells = [c for c in report["cells"] if not c["empty"]]
    unrun = [c["index"] for c in cells if c["count"] is None]
    if unrun:
        found.append(f"cells not executed by Run All: {unrun[:5]}")
    for c in cells:
        if c["errors"]:
            found.append(f"cell {c['index']} shows an error: {c['errors'][0]}")
    for widget in report["widgets"]:
        where = f"cell {widget['cell']}"
        if widget["before"]["images"] != 1:
            found.append(f"{where}: {widget['before']['images']} figures under the widget after Run All, not 1")
        if not widget["before"]["controls"]:
            found.append(f"{where}: a widget with no control found")
        if not (widget["before"]["status"] or "").startswith("Shown:"):
            found.append(f"{where}: the status line does not say what is shown: {widget['before']['status']!r}")
        for move in widget["controls"]:
            if move.get("error"):
                found.append(f"{where}, {move['moved']}: {move['error']}")
                continue
            if move["imagesAfter"] != 1:
                found.append(f"{where}, {move['moved']}: {move['imagesAfter']} figures after the move, not 1")
            if not move["changed"] or not move["decoded"]:
                found.append(f"{where}, {move['moved']}: the figure did not change (or did not decode)")
            if not (move["status"] or "").startswith("Shown:"):
                found.append(f"{where}, {move['moved']}: status line {move['status']!r}")
            if move["seconds"] > SLOW_S and not move.get("during"):
                found.append(f"{where}, {move['moved']}: {move['seconds']:.0f} s to redraw and no progress shown meanwhile")
    for key in ("kernelErrors", "consoleErrors", "pageErrors", "externalRequests"):
        if report.get(key):
            found.append(f"{key}: {report[key][:3]}")
    return found


def check(prefixes: list[str], out: Path = OUT, profile: str = "smoke") -> list[tuple[dict, list[str]]]:
    """Open the chosen lessons (all by default) live in ``profile``; each report with its problems."""
    names = [p.stem for p in course.lessons() if not prefixes or any(p.stem.startswith(x) for x in prefixes)]
    out = out.resolve()  # the server runs in out/notebooks: a relative path would point elsewhere from there
    out.mkdir(parents=True, exist_ok=True)
    with lab_server(out, profile=profile) as (base, token):
        reports = browse(base, token, names, out)
    (out / "reports.json").write_text(json.dumps(reports, indent=1))
    return [(r, problems(r, explorers(ROOT / "notebooks" / f"{r['name']}.ipynb"))) for r in reports]


def table(results: list[tuple[dict, list[str]]]) -> str:
    rows = [("lesson", "run all (s)", "total (s)", "widgets", "moves", "slowest move (s)", "status")]
    for r, found in results:
        moves = [m for w in r["widgets"] for m in w["controls"]]
        rows.append((r["name"], f"{r.get('runSeconds', 0):.0f}", f"{r['seconds']:.0f}", str(len(r["widgets"])),
                     str(len(moves)), f"{max((m['seconds'] for m in moves), default=0):.1f}", "ok" if not found else "FAILED"))
    return course.format_table(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("lessons", nargs="*", help="lesson prefixes, e.g. 07 09 (default: all)")
    parser.add_argument("--out", type=Path, default=OUT, help="output folder (default build/test-live)")
    parser.add_argument("--profile", default="smoke", choices=["smoke", "cpu", "gpu"],
                        help="the lessons' profile (default smoke; cpu shows the shipped runs and the real waits)")
    args = parser.parse_args(argv)
    results = check(args.lessons, args.out, args.profile)
    print(table(results))
    for r, found in results:
        for problem in found:
            print(f"{r['name']}: {problem}")
    print(f"screenshots: {args.out / 'shots'}")
    return 1 if any(found for _, found in results) else 0


if __name__ == "__main__":
    sys.exit(main())
