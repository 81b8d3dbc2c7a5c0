"""Every lesson: committed clean, shaped like a lesson, and executed by papermill in the smoke profile."""

import json
import re

import nbformat
import papermill
import pytest

import course

NOTEBOOKS = course.lessons()
IDS = [nb.stem for nb in NOTEBOOKS]


def _cells(nb_path):
    return nbformat.read(nb_path, as_version=4).cells


def test_the_course_has_its_lessons_in_order():
    numbers = [int(nb.stem[:2]) for nb in NOTEBOOKS]
    assert numbers[:2] == [1, 2] and numbers == sorted(set(numbers))


APPENDICES = course.appendices()
SOURCES = NOTEBOOKS + APPENDICES + sorted((course.ROOT / "slides").glob("[0-9][0-9]_*.ipynb"))  # lessons, appendices, decks


@pytest.mark.parametrize("nb_path", SOURCES, ids=[f"{p.parent.name}/{p.stem}" for p in SOURCES])
def test_notebook_is_committed_clean(nb_path):
    raw = json.loads(nb_path.read_text())
    for cell in raw["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, "commit notebooks and decks without outputs"
    assert "widgets" not in raw["metadata"], "widget state belongs to executed copies, not the source"


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=IDS)
def test_notebook_has_the_lesson_shape(nb_path):
    cells = _cells(nb_path)
    number = nb_path.stem[:2]
    assert cells[0].cell_type == "markdown" and cells[0].source.startswith(f"# {number} · ")
    params = [c for c in cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, "exactly one cell tagged 'parameters' (papermill)"
    src = params[0].source
    assert re.search(r'^profile = "auto"', src, re.M) and re.search(r"^seed = \d+", src, re.M)
    names = re.findall(r"^([a-z_]+) = ", src, re.M)
    inspected = papermill.inspect_notebook(str(nb_path))  # what `papermill --help-notebook` shows
    assert list(inspected) == names, "papermill must parse every parameter (no '=' inside comments)"
    assert all(p["help"] for p in inspected.values()), "every parameter has a comment"
    for cell in cells:
        if cell.cell_type == "code":
            assert len(cell.source.splitlines()) <= 25, f"code cell over 25 lines: {cell.source[:60]!r}"
            assert "import *" not in cell.source
    headings = "\n".join(c.source for c in cells if c.cell_type == "markdown")
    for section in ("## Idea", "## Build it", "## Try it", "## Summary"):
        assert section in headings, f"missing section {section}"


def smoke_run(source, tmp_path):
    """(Result, executed copy) of ``source`` in the smoke profile with seed 3: nbval's run in this session
    (`make test`, see conftest.py), or else a papermill run now (when this file is run on its own)."""
    if source in course.NBVAL_RESULTS:
        return course.NBVAL_RESULTS[source], course.executed_path(source)
    return course.execute(source, tmp_path, course.SMOKE_PARAMETERS), tmp_path / source.name


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=IDS)
def test_notebook_runs_in_the_smoke_profile_with_injected_parameters(nb_path, tmp_path):
    result, executed_path = smoke_run(nb_path, tmp_path)
    assert result.error is None, result.error
    executed = _cells(executed_path)
    assert len(executed) == len(_cells(nb_path)) + 1, "every cell, plus papermill's injected one"
    injected = [c for c in executed if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and 'profile = "smoke"' in injected[0].source
    printed = "".join(o.get("text", "") for c in executed if c.cell_type == "code" for o in c.outputs)
    assert "profile=smoke" in printed and "seed=3" in printed  # the injected values took effect


def test_nbval_stops_a_notebook_at_its_first_failing_cell_and_names_it():
    """conftest.py's hooks, in a pytest of their own: the cell after a failure is skipped, the failure names
    the notebook and cell, and the executed copy keeps the outputs so far."""
    import shutil
    import subprocess
    import sys

    folder = course.ROOT / "build" / "nbval-selftest" / "selftest"
    shutil.rmtree(folder.parent, ignore_errors=True)
    folder.mkdir(parents=True)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in ("print('first cell ran')", "raise ValueError('boom')", "print('never')")]
    nbformat.write(nb, folder / "99_fail.ipynb")
    try:
        done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--nbval-lax", "--nbval-current-env",
                               str(folder)], cwd=course.ROOT, capture_output=True, text=True, timeout=300)
        out = done.stdout
        assert done.returncode == 1 and "1 failed, 1 passed, 1 skipped" in out, out[-2000:]
        assert "selftest/99_fail.ipynb: code cell 1" in out and "an earlier cell of 99_fail.ipynb failed" in out
        executed = nbformat.read(course.NBVAL_DIR / "executed" / "selftest" / "99_fail.ipynb", as_version=4)
        assert "first cell ran" in executed.cells[0].outputs[0]["text"] and executed.cells[1].outputs[0]["ename"] == "ValueError"
    finally:
        shutil.rmtree(folder.parent, ignore_errors=True)
        shutil.rmtree(course.NBVAL_DIR / "executed" / "selftest", ignore_errors=True)


def _chained_checks(source: str) -> list[int]:
    """Lines where a check returning None (assert_close, np.testing.assert_*) is chained with `and`/`or`:
    ``assert_close(a, b) and assert_close(c, d)`` never runs the second check, since the first returns None."""
    import ast

    code = "\n".join(line[: len(line) - len(line.lstrip())] + "pass" if line.lstrip().startswith(("%", "!")) else line
                     for line in source.splitlines())  # IPython magics: a statement of the same indentation
    found = []
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.BoolOp):
            for value in node.values[:-1]:
                func = value.func if isinstance(value, ast.Call) else None
                name = getattr(func, "attr", None) or getattr(func, "id", None)
                if name and name.startswith("assert_"):
                    found.append(node.lineno)
    return found


def test_no_check_is_chained_with_and():
    """A bug class found in four lessons and tests (2026-12-04): chained like this, every check after the first
    was skipped. Every notebook, deck, test and library module is read."""
    assert _chained_checks("assert_close(x, y) and assert_close(y, z)\n") == [1]  # the check can fail
    assert _chained_checks("assert_close(x, y)\nassert a and b\n") == []
    offenders = []
    for path in SOURCES:
        for i, cell in enumerate(_cells(path)):
            if cell.cell_type == "code" and _chained_checks(cell.source):
                offenders.append(f"{path.parent.name}/{path.name} cell {i}")
    for path in sorted((course.ROOT / "tests").glob("*.py")) + sorted((course.ROOT / "ganlib").glob("*.py")):
        offenders += [f"{path.name}:{line}" for line in _chained_checks(path.read_text())]
    assert offenders == [], f"checks chained with and/or (the later ones never run): {offenders}"


def test_the_readme_lists_every_lesson_in_one_table():
    """One row per lesson, in order, with a link to its notebook, and no blank line splitting the table (a
    blank line after lesson 04 once turned lessons 05-09 into loose text)."""
    lines = (course.ROOT / "README.md").read_text().splitlines()
    rows = [i for i, line in enumerate(lines) if re.match(r"\| \d\d \| \[", line)]
    assert [lines[i][2:4] for i in rows] == [nb.stem[:2] for nb in NOTEBOOKS]
    assert rows == list(range(rows[0], rows[0] + len(rows))), "the lesson rows must be consecutive lines"
    for i, nb in zip(rows, NOTEBOOKS):
        assert f"(notebooks/{nb.name})" in lines[i]


@pytest.mark.parametrize("nb_path", APPENDICES, ids=[p.stem for p in APPENDICES])
def test_an_appendix_is_shaped_and_listed(nb_path):
    """An appendix: a title naming it, the lessons' parameter cell, a Summary and references, no solution to
    strip (it has no checked exercises), and a line in the README."""
    cells = _cells(nb_path)
    assert cells[0].source.startswith(f"# {nb_path.stem[:2]} · ")
    params = [c for c in cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and 'profile = "auto"' in params[0].source and "seed = " in params[0].source
    text = "\n".join(c.source for c in cells)
    assert "## Summary" in text and "### References" in text and "BEGIN SOLUTION" not in text
    assert f"notebooks/{nb_path.name}" in (course.ROOT / "README.md").read_text()
