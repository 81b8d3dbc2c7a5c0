"""Lecture decks (tools/slides.py): one per lesson, shaped like a lesson and a lecture, executed in
the smoke profile, converted to self-contained HTML and checked end to end in headless Chromium.
(That every deck is committed clean is checked with the lessons, in tests/test_notebooks.py.)

The browser tests need Debian's chromium and the npm packages (`npm ci`); .ci/run installs both.
Their screenshots and PDFs land in build/test-slides/ (git-ignored): look at them.
"""

import re
import shutil

import nbformat
import papermill
import pytest

import course
import slides

DECKS = slides.decks()
IDS = [d.stem for d in DECKS]
OUT = slides.ROOT / "build" / "test-slides"

try:
    slides.offline_assets()
    NODE_PACKAGES = None
except slides.MissingTool as err:
    NODE_PACKAGES = str(err)
needs_node_packages = pytest.mark.skipif(NODE_PACKAGES is not None, reason=f"npm packages missing: {NODE_PACKAGES}")
needs_browser = pytest.mark.skipif(
    NODE_PACKAGES is not None or slides.find_chromium() is None or shutil.which("node") is None,
    reason="needs Chromium (Debian: apt-get install chromium), node and `npm ci`; .ci/run installs them")


def test_every_lesson_has_a_deck():
    assert [d.name for d in DECKS] == [nb.name for nb in course.lessons()]


@pytest.mark.parametrize("deck", DECKS, ids=IDS)
def test_deck_is_shaped_like_a_lesson_and_a_lecture(deck):
    cells = nbformat.read(deck, as_version=4).cells
    assert cells[0].cell_type == "markdown" and cells[0].source.startswith(f"# {deck.stem[:2]} · ")
    assert slides.slide_type(cells[0]) == "slide", "the title cell starts the first slide"
    params = [c for c in cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and slides.slide_type(params[0]) == "skip"
    assert re.search(r'^profile = "auto"', params[0].source, re.M) and re.search(r"^seed = 0\b", params[0].source, re.M)
    names = re.findall(r"^([a-z_]+) = ", params[0].source, re.M)
    inspected = papermill.inspect_notebook(str(deck))
    assert list(inspected) == names and all(p["help"] for p in inspected.values())
    code = [c.source for c in cells if c.cell_type == "code"]
    assert all(len(src.splitlines()) <= 25 for src in code), "code cells of at most 25 lines"
    assert not any("import *" in src for src in code)
    assert any(re.search(r"^from ganlib import \w+(, \w+)*$", src, re.M) for src in code), "import ganlib modules by name"
    starts = [c for c in cells if slides.slide_type(c) == "slide"]
    assert all(c.cell_type == "markdown" and c.source.startswith("#") for c in starts), "every slide opens with a heading"
    headings = [c.source.splitlines()[0] for c in starts]
    for heading in ("## Pitfalls", "## Take-aways", f"## Lab: lesson {deck.stem[:2]}"):
        assert heading in headings, f"missing slide {heading}"
    assert 8 <= slides.count_slides(nbformat.read(deck, as_version=4)) <= 20, "a 45-minute lecture"


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """Every deck executed once in the smoke profile (with seed 3), shared by the tests below: nbval's run of
    `make test` (conftest.py) where there is one, else papermill's, now. Returns ({stem: Result}, folder)."""
    out = tmp_path_factory.mktemp("decks")
    results = {}
    for deck in DECKS:
        if deck in course.NBVAL_RESULTS:
            results[deck.stem] = course.NBVAL_RESULTS[deck]
            shutil.copy(course.executed_path(deck), out / deck.name)
        else:
            results[deck.stem] = course.execute(deck, out, course.SMOKE_PARAMETERS)
    return results, out


@pytest.mark.parametrize("deck", DECKS, ids=IDS)
def test_deck_runs_in_the_smoke_profile(deck, executed):
    results, out = executed
    assert results[deck.stem].error is None, results[deck.stem].error
    nb = nbformat.read(out / deck.name, as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and 'profile = "smoke"' in injected[0].source
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    printed = "".join(o.get("text", "") for o in outputs)
    assert "profile=smoke" in printed and "seed=3" in printed  # the injected values took effect
    assert not [o for o in outputs if o.output_type == "error" or o.get("name") == "stderr"], \
        "no error and no warning may land on a slide"
    assert slides.count_figures(nb) >= 2, "a deck shows figures drawn by ganlib"


@needs_node_packages
def test_html_is_self_contained(executed, tmp_path):
    results, out = executed
    deck = DECKS[0]
    html = slides.to_html(out / deck.name, tmp_path / "deck.html").read_text()
    assert not re.search(r'<(script|link|img)[^>]+(src|href)="(https?:)?//', html), "nothing may load from the network"
    assert "Reveal.initialize" in html and "MathJax" in html and "RevealNotes" in html  # inlined, not linked
    assert html.count('src="data:image/png;base64,') == slides.count_figures(nbformat.read(out / deck.name, as_version=4))


def test_problems_catch_what_is_wrong():
    nb = nbformat.read(DECKS[0], as_version=4)
    good = {"totalSlides": slides.count_slides(nb), "math": slides.count_math(nb), "mathErrors": 0, "rawTex": [],
            "images": 0, "brokenImages": [], "consoleErrors": [], "pageErrors": [], "failedRequests": [],
            "externalRequests": [], "overflowing": [], "pdf": None}
    assert slides.problems(good, nb) == []
    bad = [{"totalSlides": good["totalSlides"] - 1}, {"math": 0}, {"mathErrors": 1}, {"rawTex": ["$x$"]},
           {"images": 1}, {"consoleErrors": ["boom"]}, {"externalRequests": ["https://cdn.example/x.js"]},
           {"overflowing": [{"slide": 2, "height": 900}]}, {"error": "Timeout"}]
    for change in bad:
        assert slides.problems({**good, **change}, nb), f"not caught: {change}"


@pytest.fixture(scope="module")
def browsed(executed):
    """Each deck built to HTML and opened in headless Chromium: its report, PDF and screenshots."""
    results, out = executed
    if OUT.exists():
        shutil.rmtree(OUT)
    items = []
    for deck in DECKS:
        if results[deck.stem].error is None:
            html = slides.to_html(out / deck.name, OUT / f"{deck.stem}.html")
            items.append({"name": deck.stem, "html": html.resolve(), "pdf": (OUT / f"{deck.stem}.pdf").resolve(),
                          "screenshots": (OUT / "screenshots").resolve()})
    return {r["name"]: r for r in slides.browse(items, slides.find_chromium())}, out


@needs_browser
@pytest.mark.parametrize("deck", DECKS, ids=IDS)
def test_deck_in_headless_chromium(deck, browsed):
    reports, out = browsed
    report = reports[deck.stem]
    assert not report.get("error"), report.get("error")
    source, executed_nb = nbformat.read(deck, as_version=4), nbformat.read(out / deck.name, as_version=4)
    assert report["totalSlides"] == report["sections"] == slides.count_slides(source)
    assert report["math"] >= slides.count_math(source) > 0 and report["mathErrors"] == 0 and report["rawTex"] == []
    assert report["images"] == slides.count_figures(executed_nb) and report["brokenImages"] == []
    for key in ("consoleErrors", "pageErrors", "failedRequests", "externalRequests", "overflowing"):
        assert report[key] == [], f"{key}: {report[key]}"
    assert slides.problems(report, executed_nb) == []
    shots = {s["kind"]: s for s in report["screenshots"]}
    assert set(shots) == {"title", "figure"} and shots["title"]["slide"] == 1
    for shot in shots.values():
        png = (OUT / "screenshots" / f"{deck.stem}-{shot['kind']}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000, "a screenshot with something on it"
    pdf = OUT / f"{deck.stem}.pdf"
    assert pdf.read_bytes()[:5] == b"%PDF-" and slides.pdf_pages(pdf) == slides.count_slides(source)


def test_the_slides_readme_lists_every_deck_with_its_slide_count():
    table = dict(re.findall(r"^\| \[(\d\d_\w+)\.ipynb\]\(\S+\) \| .+ \| (\d+) \|$", (slides.SLIDES / "README.md").read_text(), re.M))
    counts = {d.stem: str(slides.count_slides(nbformat.read(d, as_version=4))) for d in DECKS}
    assert table == counts, "update the table in slides/README.md"
