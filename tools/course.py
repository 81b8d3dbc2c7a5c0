"""Run the course's lessons headlessly with papermill.

    python tools/course.py run [--profile auto|smoke|cpu|gpu] [--out build] [lesson ...]
    python tools/course.py prepare            # what `make test` does before nbval runs

``run``: each lesson is executed into ``<out>/notebooks/`` and its figures are exported to
``<out>/figures/<lesson>/``. One line is printed as each lesson starts and ends, then a table of
lesson, profile, minutes and status. The exit status is 1 if any lesson failed.

``prepare``: papermill injects the smoke parameters into a copy of every lesson and deck, without
executing anything, under ``build/nbval/{notebooks,slides}/``; nbval then executes those copies
(see the repository's ``conftest.py``), so the injected parameters are what the tests see.
"""

from __future__ import annotations

import argparse
import base64
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SMOKE_PARAMETERS = {"profile": "smoke", "seed": 3}  # what `make test` injects into every lesson and deck
NBVAL_DIR = ROOT / "build" / "nbval"
NBVAL_RESULTS: dict = {}  # source notebook -> Result of this pytest session's nbval run (filled by conftest.py)


@dataclass
class Result:
    lesson: str
    profile: str
    seconds: float
    error: str | None = None

    @property
    def status(self) -> str:
        return "ok" if self.error is None else "FAILED"


def lessons(root: Path = ROOT) -> list[Path]:
    """The lesson notebooks in order: notebooks/NN_name.ipynb."""
    return sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def appendices(root: Path = ROOT) -> list[Path]:
    """The appendix notebooks in order: notebooks/A<N>_name.ipynb (topics beside the lessons, without a deck or
    exercises with checks)."""
    return sorted((root / "notebooks").glob("A[0-9]_*.ipynb"))


def sources(root: Path = ROOT) -> list[Path]:
    """Every notebook `make test` executes, in order: the lessons, the appendices, then the decks (which load the
    lessons' runs)."""
    return lessons(root) + appendices(root) + sorted((root / "slides").glob("[0-9][0-9]_*.ipynb"))


def prepared_path(source: Path) -> Path:
    """Where ``prepare`` puts the copy of ``source`` that nbval executes."""
    return NBVAL_DIR / source.parent.name / source.name


def executed_path(source: Path) -> Path:
    """Where conftest.py writes nbval's executed copy of ``source``, outputs included."""
    return NBVAL_DIR / "executed" / source.parent.name / source.name


def source_of(prepared: Path) -> Path:
    """The lesson or deck a prepared copy was made from."""
    return ROOT / prepared.parent.name / prepared.name


def prepare(parameters: dict = SMOKE_PARAMETERS) -> list[Path]:
    """Copies of every lesson and deck with ``parameters`` injected by papermill, nothing executed."""
    import shutil

    import papermill as pm

    shutil.rmtree(NBVAL_DIR, ignore_errors=True)  # no stale copy or executed output survives
    for source in sources():
        prepared_path(source).parent.mkdir(parents=True, exist_ok=True)
        pm.execute_notebook(str(source), str(prepared_path(source)), parameters=parameters, prepare_only=True,
                            kernel_name="python3", progress_bar=False)
    return [prepared_path(s) for s in sources()]


def execute(notebook: Path, out_dir: Path, parameters: dict) -> Result:
    """Execute one notebook with papermill (in its own folder), writing the executed copy to ``out_dir``."""
    import papermill as pm

    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    error = None
    try:
        pm.execute_notebook(str(notebook), str(out_dir / notebook.name), parameters=parameters,
                            cwd=str(notebook.parent), kernel_name="python3", progress_bar=False)
    except Exception as err:  # papermill raises PapermillExecutionError with the cell's traceback
        error = f"{type(err).__name__}: {err}"
    return Result(notebook.stem, parameters.get("profile", "auto"), time.perf_counter() - start, error)


def export_figures(executed: Path, fig_dir: Path) -> int:
    """Write every PNG output of an executed notebook to ``fig_dir``; returns how many."""
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    fig_dir.mkdir(parents=True, exist_ok=True)
    count = 0
    for i, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            png = output.get("data", {}).get("image/png")
            if png:
                count += 1
                (fig_dir / f"cell{i:02d}_{count:02d}.png").write_bytes(base64.b64decode(png))
    return count


def format_table(rows: list[tuple[str, ...]]) -> str:
    """Rows of strings as left-aligned columns, the first row a header underlined with dashes."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def table(results: list[Result]) -> str:
    rows = [("lesson", "profile", "minutes", "status")]
    return format_table(rows + [(r.lesson, r.profile, f"{r.seconds / 60:.1f}", r.status) for r in results])


def run(profile: str, out: Path, only: list[str]) -> list[Result]:
    sys.path.insert(0, str(ROOT))
    from ganlib import profiles

    profile = profiles.resolve(profile)
    chosen = [nb for nb in lessons() + appendices() if not only or any(nb.stem.startswith(o) for o in only)]
    results = []
    for i, nb in enumerate(chosen, 1):
        print(f"[{i}/{len(chosen)}] {nb.stem} ({profile}) ...", flush=True)
        result = execute(nb, out / "notebooks", {"profile": profile})
        if result.error is None:
            n = export_figures(out / "notebooks" / nb.name, out / "figures" / nb.stem)
            print(f"[{i}/{len(chosen)}] {nb.stem}: ok in {result.seconds / 60:.1f} min, {n} figures", flush=True)
        else:
            print(f"[{i}/{len(chosen)}] {nb.stem}: FAILED after {result.seconds / 60:.1f} min\n{result.error}", flush=True)
        results.append(result)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="execute lessons with papermill")
    p_run.add_argument("--profile", default="auto", help="auto (default), smoke, cpu or gpu")
    p_run.add_argument("--out", type=Path, default=ROOT / "build", help="output folder (default build/)")
    p_run.add_argument("lessons", nargs="*", help="lesson prefixes to run, e.g. 01 02 (default: all)")
    sub.add_parser("prepare", help="inject the smoke parameters into copies of every lesson and deck (for nbval)")
    args = parser.parse_args(argv)
    if args.command == "prepare":
        print(f"prepared {len(prepare())} notebooks for nbval in {NBVAL_DIR.relative_to(ROOT)}/ "
              f"(parameters {SMOKE_PARAMETERS}, injected by papermill)")
        return 0
    results = run(args.profile, args.out, args.lessons)
    print("\n" + table(results))
    print(f"\nexecuted notebooks: {args.out / 'notebooks'}   figures: {args.out / 'figures'}")
    return 0 if all(r.error is None for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
