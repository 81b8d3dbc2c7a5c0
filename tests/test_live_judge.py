"""tools/live.py's judge: each failure a student would see in JupyterLab is caught from the browser's report
(the live run itself is tests/live/, run by `make check-course`)."""

import copy

import pytest

import live

MOVE = {"moved": "psi 0.7 -> one step up", "seconds": 0.4, "imagesBefore": 1, "imagesAfter": 1, "changed": True,
        "decoded": True, "status": "Shown: psi = 0.8, crossover = 3 (drawn in 0.2 s)", "screenshots": []}
GOOD = {"name": "09_stylegan", "seconds": 60.0, "runSeconds": 50.0, "consoleErrors": [], "pageErrors": [],
        "externalRequests": [], "kernelErrors": [],
        "cells": [{"index": 0, "count": 1, "errors": [], "widgets": 0, "empty": False},
                  {"index": 1, "count": None, "errors": [], "widgets": 0, "empty": True},
                  {"index": 2, "count": 2, "errors": [], "widgets": 1, "empty": False}],
        "widgets": [{"cell": 2, "before": {"images": 1, "srcs": ["a"], "decoded": True, "controls": [{"i": 0}],
                                          "status": "Shown: psi = 0.7, crossover = 3 (drawn in 0.2 s)"},
                     "controls": [MOVE]}]}


def _changed(path, value):
    report = copy.deepcopy(GOOD)
    target = report
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return report


def test_a_good_report_has_no_problem():
    assert live.problems(GOOD, [1]) == []


def test_a_slow_redraw_that_showed_its_progress_is_fine():
    slow = _changed(("widgets", 0, "controls", 0, "seconds"), 55.0)
    slow["widgets"][0]["controls"][0]["during"] = {"status": "training for n_critic = 4: 150 / 1500"}
    assert live.problems(slow, [1]) == []


def test_a_widget_not_found_in_the_page_is_a_problem():
    """The first live run of the old lesson 08 found no widget (the page's markup differed from what the script
    looked for) and would have passed: the explorers in the source are the expectation."""
    assert any("the source's explorers have [1]" in f for f in live.problems(_changed(("widgets",), []), [1]))
    assert any("[2]" in f for f in live.problems(GOOD, [2]))


def test_the_explorers_are_read_from_the_source():
    counts = {p.stem[:2]: live.explorers(p) for p in live.course.lessons()}
    assert counts["01"] == [2] and counts["07"] == [3] and counts["02"] == []


@pytest.mark.parametrize("path, value, says", [
    (("widgets", 0, "controls", 0, "imagesAfter"), 2, "2 figures after the move"),  # lesson 08's figure drawn twice
    (("widgets", 0, "before", "images"), 2, "2 figures under the widget"),
    (("widgets", 0, "controls", 0, "changed"), False, "did not change"),
    (("widgets", 0, "controls", 0, "status"), "Drawing psi = 0.8 ...", "status line"),
    (("widgets", 0, "controls", 0, "error"), "no redraw: timeout", "no redraw"),
    (("widgets", 0, "before", "status"), None, "does not say what is shown"),
    (("cells", 0, "count"), None, "not executed"),
    (("cells", 2, "errors"), ["NameError: name 'G' is not defined"], "shows an error"),
    (("widgets", 0, "controls", 0, "seconds"), 55.0, "no progress shown"),  # lesson 07's n_critic, before
    (("kernelErrors",), ["ValueError: callback failed"], "kernelErrors"),  # a callback's traceback: log console only
    (("consoleErrors",), ["Uncaught TypeError"], "consoleErrors"),
    (("externalRequests",), ["https://cdn.example/x.js"], "externalRequests"),
    (("error",), "Error: page crashed\n at ...", "the browser failed"),
])
def test_each_failure_is_caught(path, value, says):
    found = live.problems(_changed(path, value), [1])
    assert found and any(says in f for f in found), found
