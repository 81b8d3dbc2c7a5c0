"""What every pytest run of the course needs, and the nbval run of `make test`, recorded.

Before anything is collected: the smoke profile, a fresh checkpoint folder and the device check go
into the environment, which the notebooks' kernels inherit (lesson 04 finds lesson 03's checkpoints
there; nothing is written into the working tree; ``GANLIB_DEVICE_CHECK=1`` makes ``profiles.setup`` run
every lesson and deck on ``ganlib.devicecheck``'s stand-in GPU, where a CPU/GPU mix-up raises).

`make test` runs, after `python tools/course.py prepare` (papermill injects profile="smoke", seed=3
into copies of every lesson and deck under build/nbval/, executing nothing):

    pytest --nbval-lax --nbval-current-env --nbval-cell-timeout=120 build/nbval/notebooks build/nbval/slides tests

nbval executes each copy once, cell by cell, in one kernel per notebook. The hooks below

- stop a notebook at its first failing cell: the cells after it are skipped, not run against a
  broken kernel, and the failure names the lesson or deck and its cell;
- write each executed copy, outputs included, to build/nbval/executed/ and record its result in
  ``course.NBVAL_RESULTS``, where tests/test_notebooks.py and tests/test_slides.py read it instead of
  executing the notebook a second time (run alone, those tests execute with papermill).
"""

import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "tools"))
os.environ.setdefault("GANLIB_PROFILE", "smoke")
os.environ.setdefault("GANLIB_DEVICE_CHECK", "1")  # the kernels run each lesson on a stand-in GPU (ganlib.devicecheck)
os.environ["GANLIB_CHECKPOINTS"] = tempfile.mkdtemp(prefix="ganlib-checkpoints-")

import course  # noqa: E402  (tools/ is on the path now)

_started: dict[Path, float] = {}
_failed: dict[Path, str] = {}


def _is_nbval_cell(item) -> bool:
    return type(item).__name__ == "IPyNbCell"


def pytest_runtest_setup(item):
    if _is_nbval_cell(item):
        _started.setdefault(item.parent.path, time.perf_counter())
        if item.parent.path in _failed:
            pytest.skip(f"an earlier cell of {item.parent.path.name} failed ({_failed[item.parent.path]})")


def _record(item, report) -> None:
    """Keep the cell's outputs in the notebook nbval read, and write the executed copy so far."""
    prepared = item.parent.path
    source = course.source_of(prepared)
    item.cell.outputs = [nbformat.from_dict(o) for o in (item.test_outputs or [])]
    item.cell.execution_count = item.cell_num + 1
    if report.failed:
        _failed[prepared] = f"code cell {item.cell_num}"
        report.sections.append(("notebook", f"{source.relative_to(ROOT)}: code cell {item.cell_num} (counting from 0, "
                                            f"after papermill's injected cell), first line: {item.cell.source.splitlines()[0]!r}"))
    path = course.executed_path(source)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(item.parent.nb, path)
    error = None if prepared not in _failed else f"nbval: {source.name} failed at {_failed[prepared]}"
    seconds = time.perf_counter() - _started[prepared]
    course.NBVAL_RESULTS[source] = course.Result(source.stem, course.SMOKE_PARAMETERS["profile"], seconds, error)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if _is_nbval_cell(item) and report.when == "call":
        _record(item, report)
