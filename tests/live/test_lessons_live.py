"""Every lesson tried live in JupyterLab (tools/live.py): Run All in headless Chromium, then each control of
each interactive widget moved once; the figure under it must redraw exactly once, with no error anywhere.

Not part of `make test` (it runs every lesson again, in a browser: about 10 minutes on two cores);
`make check-course` runs it, and so does CI after `make test`. Screenshots: build/test-live/shots/.
"""

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


@pytest.mark.parametrize("lesson", LESSONS)
def test_the_lesson_runs_live_and_each_widget_redraws_once_per_move(results, lesson):
    report, found = results[lesson]  # found: live.problems, which also holds the widgets moved to the source's explorers
    assert not found, f"{lesson} in JupyterLab:\n" + "\n".join(found)
    assert report["cells"], "no cell seen"
