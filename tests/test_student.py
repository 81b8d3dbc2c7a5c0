"""Student editions (tools/student.py): no solution text left, checks kept, outputs cleared; each
check cell fails on its stub with the stub's message, and passes with the instructor's solution."""

import collections
import copy
import json

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

import course
import student

LESSONS = course.lessons()
IDS = [nb.stem for nb in LESSONS]


def _read(path):
    return nbformat.read(path, as_version=4)


def _exercises(nb):
    """[(number, solution cell index, check cell index)]: each solution cell and the code cell after it."""
    found, number = [], None
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown" and student.EXERCISE.search(cell.source):
            number = student.EXERCISE.findall(cell.source)[-1][0]
        if cell.cell_type == "code" and student.BEGIN in cell.source:
            check = next(j for j in range(i + 1, len(nb.cells)) if nb.cells[j].cell_type == "code")
            found.append((number, i, check))
    return found


def _toy(*cells):
    return new_notebook(cells=list(cells))


# --- the transformation, on small notebooks ------------------------------------------------------

def test_a_stub_keeps_the_indentation_and_says_what_to_write():
    nb = _toy(new_markdown_cell("**Exercise 7 — squares.** Write `square(x)`."),
              new_code_cell("def square(x):\n    ### BEGIN SOLUTION\n    y = x * x\n    return y\n    ### END SOLUTION"),
              new_code_cell("assert square(3) == 9, 'square(3) should be 9'"))
    edition, replaced = student.student_edition(nb)
    source = edition.cells[1].source
    assert replaced == 1 and "x * x" not in source and student.BEGIN not in source
    namespace = {}
    exec(source, namespace)  # the stub cell itself runs; calling the function does not
    with pytest.raises(NotImplementedError, match=r"Exercise 7 \(squares\): write square\(x\)"):
        namespace["square"](3)
    assert edition.cells[2].source == nb.cells[2].source  # the check is kept as it was
    assert nb.cells[1].source.count("x * x") == 1  # the instructor notebook is left untouched


def test_methods_are_named_with_their_class_and_every_region_is_replaced():
    source = ("class Packed:\n    def __init__(self, m):\n        ### BEGIN SOLUTION\n        self.m = m\n"
              "        ### END SOLUTION\n\n    def forward(self, x):\n        ### BEGIN SOLUTION\n"
              "        return x\n        ### END SOLUTION")
    edition, replaced = student.student_edition(_toy(new_markdown_cell("**Exercise 1 — packing.**"), new_code_cell(source)))
    stubbed = edition.cells[1].source
    assert replaced == 2 and "self.m = m" not in stubbed and "return x" not in stubbed
    assert "write Packed.__init__" in stubbed and "write Packed.forward" in stubbed
    compile(stubbed, "<stub>", "exec")  # still valid Python


def test_markdown_solutions_become_a_placeholder():
    text = "Why?\n### BEGIN SOLUTION\nBecause the JSD saturates.\n### END SOLUTION"
    edition, replaced = student.student_edition(_toy(new_markdown_cell(text)))
    assert replaced == 1 and edition.cells[0].source == "Why?\nYOUR ANSWER HERE"


@pytest.mark.parametrize("source", [
    "### BEGIN SOLUTION\nx = 1",  # never closed
    "x = 1\n### END SOLUTION",  # closed, never opened
    "### BEGIN SOLUTION\n### BEGIN SOLUTION\nx = 1\n### END SOLUTION\n### END SOLUTION",  # nested
    "x = 1  ### BEGIN SOLUTION\n### END SOLUTION",  # not alone on its line
])
def test_malformed_markers_are_refused(source):
    with pytest.raises(student.MarkerError):
        student.student_edition(_toy(new_markdown_cell("**Exercise 1 — x.**"), new_code_cell(source)))


def test_a_solution_outside_an_exercise_is_refused():
    with pytest.raises(student.MarkerError, match="Exercise"):
        student.student_edition(_toy(new_code_cell("### BEGIN SOLUTION\nx = 1\n### END SOLUTION")))


def test_outputs_and_execution_counts_are_cleared():
    cell = new_code_cell("print(1)", execution_count=3,
                         outputs=[nbformat.v4.new_output("stream", name="stdout", text="1\n")])
    edition, _ = student.student_edition(_toy(cell))
    assert edition.cells[0].outputs == [] and edition.cells[0].execution_count is None


# --- the lessons ---------------------------------------------------------------------------------

@pytest.mark.parametrize("lesson", LESSONS, ids=IDS)
def test_each_lesson_ends_with_two_to_four_checked_exercises(lesson):
    nb = _read(lesson)
    exercises = _exercises(nb)
    numbers = {number for number, _, _ in exercises}
    assert None not in numbers, "every solution belongs to an '**Exercise N — title.**'"
    assert 2 <= len(numbers) <= 4, f"{len(numbers)} exercises with a solution and a check"
    for number, solution, check in exercises:
        assert check == solution + 1, f"exercise {number}: the check cell comes right after the solution"
        assert student.BEGIN not in nb.cells[check].source and "assert" in nb.cells[check].source


@pytest.mark.parametrize("lesson", LESSONS, ids=IDS)
def test_the_student_edition_contains_no_solution_text(lesson):
    instructor = _read(lesson)
    edition, replaced = student.student_edition(instructor)
    solution, elsewhere = collections.Counter(), collections.Counter()
    for cell in instructor.cells:
        lines = cell.source.splitlines()
        inside = {i for begin, end in student.solution_regions(lines) for i in range(begin, end + 1)}
        for i, line in enumerate(lines):
            if line.strip():
                (solution if i in inside else elsewhere)[line.strip()] += 1
    assert replaced == sum(len(student.solution_regions(c.source.splitlines())) for c in instructor.cells) > 0
    left = collections.Counter(line.strip() for c in edition.cells for line in c.source.splitlines() if line.strip())
    leaked = [line for line in solution if left[line] > elsewhere[line]]  # a line may also appear outside solutions
    assert leaked == [], f"solution text in the student edition: {leaked}"
    for number, _, check in _exercises(instructor):
        assert edition.cells[check].source == instructor.cells[check].source, f"exercise {number}'s check must be kept"
    assert all(c.outputs == [] and c.execution_count is None for c in edition.cells if c.cell_type == "code")
    assert len(edition.cells) == len(instructor.cells)


def test_the_command_writes_every_lesson(tmp_path, capsys):
    assert student.main(["--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.glob("*.ipynb")) == [nb.name for nb in LESSONS]
    for lesson in LESSONS:
        written = json.loads((tmp_path / lesson.name).read_text())
        expected = json.loads(nbformat.writes(student.student_edition(_read(lesson))[0]))
        assert written == expected
    assert "solutions replaced by stubs" in capsys.readouterr().out


@pytest.mark.parametrize("lesson", LESSONS, ids=IDS)
def test_checks_fail_on_the_stubs_and_pass_with_the_solutions(lesson):
    """Runs the student edition (smoke profile, from conftest) top to bottom, going on past errors;
    then, in the same kernel, each instructor solution followed by its check."""
    instructor = _read(lesson)
    edition, _ = student.student_edition(instructor)
    exercises = _exercises(instructor)
    solved = [(number, new_code_cell(instructor.cells[solution].source), new_code_cell(instructor.cells[check].source))
              for number, solution, check in exercises]
    run = copy.deepcopy(edition)
    run.cells += [cell for _, solution_cell, check_cell in solved for cell in (solution_cell, check_cell)]
    NotebookClient(run, timeout=600, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(lesson.parent)}}).execute()
    n = len(edition.cells)
    solved = [(number, run.cells[n + 2 * k], run.cells[n + 2 * k + 1]) for k, (number, _, _) in enumerate(solved)]

    def errors(cell):
        return [o for o in cell.outputs if o.output_type == "error"]

    checks = {check: number for number, _, check in exercises}
    for i, cell in enumerate(run.cells[:n]):
        if cell.cell_type != "code":
            continue
        if i in checks:
            (error,) = errors(cell)
            assert error.ename == "NotImplementedError", f"check of exercise {checks[i]}: {error.ename}: {error.evalue}"
            assert f"Exercise {checks[i]} (" in error.evalue and "write " in error.evalue
        else:
            assert not errors(cell), f"cell {i} fails in the student edition: {errors(cell)[0].evalue[:300]}"
    for number, solution_cell, check_cell in solved:
        for cell in (solution_cell, check_cell):
            assert not errors(cell), f"exercise {number}'s solution fails its check: {errors(cell)[0].evalue[:300]}"
        printed = "".join(o.get("text", "") for o in check_cell.outputs)
        assert f"Exercise {number}:" in printed, f"exercise {number}: the check should say so when it passes"
