"""Every lesson tried live in JupyterLab (tools/live.py): Run All in headless Chromium, then each control of
each interactive widget moved once; the figure under it must redraw exactly once, with no error anywhere.

Not part of `make test` (it runs every lesson again, in a browser: about 10 minutes on two cores);
`make check-course` runs it, and so does CI after `make test`. Screenshots: build/test-live/shots/.
"""

import ast

import pytest

import course
import live
import slides

LESSONS = [p.stem for p in course.lessons()]


@pytest.fixture(scope="module")
def results():
    try:
        return {report["name"]: (report, found) for report, found in live.check([])}
    except slides.MissingTool as err:
        pytest.skip(str(err))


def _explorers(lesson: str) -> list[int]:
    """How many controls each widgets.explore call in the lesson's source creates, in order."""
    import nbformat

    nb = nbformat.read(course.ROOT / "notebooks" / f"{lesson}.ipynb", as_version=4)
    calls = [node for c in nb.cells if c.cell_type == "code" and "widgets.explore(" in c.source
             for node in ast.walk(ast.parse(c.source))
             if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "explore"]
    return [len(call.keywords) for call in sorted(calls, key=lambda n: n.lineno)]


@pytest.mark.parametrize("lesson", LESSONS)
def test_the_lesson_runs_live_and_each_widget_redraws_once_per_move(results, lesson):
    report, found = results[lesson]
    assert not found, f"{lesson} in JupyterLab:\n" + "\n".join(found)
    expected = _explorers(lesson)
    assert [len(w["controls"]) for w in report["widgets"]] == expected, \
        f"{lesson}: controls moved per widget {[len(w['controls']) for w in report['widgets']]}, the source has {expected}"
