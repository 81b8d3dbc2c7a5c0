"""Student editions of the lessons: solutions replaced by stubs, checks kept, outputs cleared.

    python tools/student.py [--out build/student] [lesson ...]

Each lesson's "Try it" exercises keep their solutions between nbgrader's markers, ``### BEGIN
SOLUTION`` and ``### END SOLUTION``. In the student edition every marked region becomes, at the
same indentation, a stub that says what to do:

    # YOUR CODE HERE
    raise NotImplementedError("Exercise 2 (how much stronger is the non-saturating push?): write push_ratio(d), then run the check cell below")

so that running the exercise's check cell on the stub fails with that message, and a wrong answer
fails with the check's own assert message. The exercise's number and title come from the markdown
cell that poses it (``**Exercise N — title.**``), the name from the ``def``/``class`` around the
marker. Markdown solutions become ``YOUR ANSWER HERE``. Outputs and execution counts are cleared.
A marker that is unbalanced, nested or outside an exercise is an error: nothing half-hidden ships.
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import course  # noqa: E402  (the list of lessons, shared with `make run`)

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
EXERCISE = re.compile(r"\*\*Exercise (\d+)\s*[—–-]+\s*(.+?)\*\*")
DEFINITION = re.compile(r"^(\s*)(def|class)\s+(\w+)\s*(\([^)]*\))?")


class MarkerError(ValueError):
    """The solution markers of a lesson are malformed."""


def solution_regions(lines: list[str]) -> list[tuple[int, int]]:
    """(begin, end) line indices of each BEGIN/END SOLUTION pair; raises MarkerError if unbalanced or nested."""
    regions, begin = [], None
    for i, line in enumerate(lines):
        marker = line.strip()
        if marker == BEGIN:
            if begin is not None:
                raise MarkerError(f"line {i + 1}: {BEGIN} inside another solution (opened on line {begin + 1})")
            begin = i
        elif marker == END:
            if begin is None:
                raise MarkerError(f"line {i + 1}: {END} without {BEGIN}")
            regions.append((begin, i))
            begin = None
        elif BEGIN in line or END in line:
            raise MarkerError(f"line {i + 1}: a solution marker must stand alone on its line: {line.strip()!r}")
    if begin is not None:
        raise MarkerError(f"line {begin + 1}: {BEGIN} is never closed")
    return regions


def enclosing_name(lines: list[str], begin: int) -> str:
    """What the student writes: ``f(args)`` or ``Class.method`` for the def/class around line ``begin``."""
    indent = len(lines[begin]) - len(lines[begin].lstrip())
    names = []
    for line in reversed(lines[:begin]):
        match = DEFINITION.match(line)
        if match and len(match.group(1)) < indent:
            names.append(match)
            indent = len(match.group(1))
    if not names:
        return "the missing code"
    if len(names) == 1 and names[0].group(2) == "def":
        return f"{names[0].group(3)}{names[0].group(4) or '()'}"
    return ".".join(m.group(3) for m in reversed(names))


def stub(lines: list[str], begin: int, exercise: tuple[str, str]) -> list[str]:
    indent = lines[begin][: len(lines[begin]) - len(lines[begin].lstrip())]
    number, title = exercise
    message = f"Exercise {number} ({title}): write {enclosing_name(lines, begin)}, then run the check cell below"
    quoted = f'"{message}"' if '"' not in message and "\\" not in message else repr(message)
    return [f"{indent}# YOUR CODE HERE", f"{indent}raise NotImplementedError({quoted})"]


def strip_solutions(source: str, exercise: tuple[str, str] | None, markdown: bool = False) -> tuple[str, int]:
    """The source with every solution region replaced; and how many regions there were."""
    lines = source.splitlines()
    regions = solution_regions(lines)
    if regions and exercise is None and not markdown:
        raise MarkerError("a solution before any '**Exercise N — title.**' heading: the stub could not say which exercise")
    for begin, end in reversed(regions):
        lines[begin : end + 1] = ["YOUR ANSWER HERE"] if markdown else stub(lines, begin, exercise)
    return "\n".join(lines), len(regions)


def student_edition(nb) -> tuple[nbformat.NotebookNode, int]:
    """A copy of an instructor notebook for students; and the number of solutions replaced."""
    nb = copy.deepcopy(nb)
    nb.metadata.pop("widgets", None)
    exercise, replaced = None, 0
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            found = EXERCISE.findall(cell.source)
            if found:
                number, title = found[-1]
                exercise = (number, title.strip().rstrip("."))
        try:
            cell.source, n = strip_solutions(cell.source, exercise, markdown=cell.cell_type != "code")
        except MarkerError as err:
            raise MarkerError(f"cell {i}: {err}") from None
        replaced += n
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb, replaced


def write_editions(out: Path, only: list[str] | None = None) -> list[tuple[Path, int]]:
    """Write the student edition of every lesson (or those whose name starts with one of ``only``)."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for lesson in course.lessons():
        if only and not any(lesson.stem.startswith(o) for o in only):
            continue
        try:
            edition, replaced = student_edition(nbformat.read(lesson, as_version=4))
        except MarkerError as err:
            raise MarkerError(f"{lesson.name}: {err}") from None
        nbformat.write(edition, out / lesson.name)
        written.append((out / lesson.name, replaced))
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "student", help="output folder (default build/student)")
    parser.add_argument("lessons", nargs="*", help="lesson prefixes, e.g. 01 02 (default: all)")
    args = parser.parse_args(argv)
    try:
        written = write_editions(args.out, args.lessons)
    except MarkerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for path, replaced in written:
        print(f"{path.stem}: {replaced} solutions replaced by stubs -> {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
