"""Build the lecture decks: one self-contained HTML file and one PDF per deck, checked in a browser.

    python tools/slides.py build [--profile auto|smoke|cpu|gpu] [--out build/slides] [--html-only] [deck ...]

For each ``slides/NN_name.ipynb``: execute it with papermill (its figures come from ganlib, drawn
now), convert it with nbconvert into ``<out>/NN_name.html`` with reveal.js, its notes plugin and
MathJax inlined from ``node_modules`` (so the file opens from file:// with no network), then open
every deck in headless Chromium (``tools/slides_browser.cjs``), which checks it (slide count against
the source, math typeset, images decoded, no console error, no request leaving the file, no slide
taller than the screen), prints ``<out>/NN_name.pdf`` and saves screenshots of the title slide and
the first figure slide to ``<out>/screenshots/``. Prints a table; the exit status is 1 if any deck
failed. ``make slides`` installs the npm packages first (``npm ci``); Chromium is Debian's
``chromium`` (or set ``CHROMIUM`` to a Chrome/Chromium binary).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import course  # noqa: E402  (the papermill runner shared with `make run`)

SLIDES = ROOT / "slides"
NODE_MODULES = ROOT / "node_modules"
TEMPLATES = ROOT / "tools" / "templates"
BROWSER_SCRIPT = ROOT / "tools" / "slides_browser.cjs"
WIDTH, HEIGHT = 1280, 720  # 16:9, what lecture-hall projectors show
SHOWN = ("slide", "subslide", "fragment", "-")  # slide types that appear on a slide (not skip, not notes)
MATH = re.compile(r"\$\$.+?\$\$|\$[^$\n]+?\$", re.S)


class MissingTool(RuntimeError):
    """Node packages or Chromium are missing; the message says how to get them."""


def decks(root: Path = ROOT) -> list[Path]:
    """The decks in order: slides/NN_name.ipynb, one per lesson."""
    return sorted((root / "slides").glob("[0-9][0-9]_*.ipynb"))


def slide_type(cell) -> str:
    return cell.metadata.get("slideshow", {}).get("slide_type", "-")


def count_slides(nb) -> int:
    """Slides a deck shows: cells that start a slide or a (vertical) sub-slide."""
    return sum(slide_type(c) in ("slide", "subslide") for c in nb.cells)


def count_math(nb) -> int:
    """Math spans ($...$ and $$...$$) in the markdown cells that appear on slides."""
    return sum(len(MATH.findall(c.source)) for c in nb.cells if c.cell_type == "markdown" and slide_type(c) in SHOWN)


def count_figures(nb) -> int:
    """PNG outputs of the code cells that appear on slides (an executed deck)."""
    return sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" and slide_type(c) in SHOWN
               for o in c.get("outputs", []))


def title(nb) -> str:
    first = nb.cells[0].source.splitlines()[0]
    return first.lstrip("# ").strip()


def find_chromium() -> str | None:
    """``$CHROMIUM``, else Debian's chromium (or another Chrome/Chromium on the PATH)."""
    if os.environ.get("CHROMIUM"):
        return os.environ["CHROMIUM"]
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _version(package: str) -> str:
    return json.loads((NODE_MODULES / package / "package.json").read_text())["version"]


def offline_assets(node_modules: Path = NODE_MODULES) -> dict[str, str]:
    """reveal.js, its white theme and notes plugin, and MathJax's all-in-one TeX-to-SVG bundle, as text."""
    files = {"reveal_css": "reveal.js/dist/reveal.css", "theme_css": "reveal.js/dist/theme/white.css",
             "reveal_js": "reveal.js/dist/reveal.js", "notes_js": "reveal.js/dist/plugin/notes.js",
             "mathjax_js": "mathjax/es5/tex-svg-full.js"}
    missing = [f for f in files.values() if not (node_modules / f).exists()]
    if missing:
        raise MissingTool(f"missing {', '.join(missing)} under {node_modules}: run `npm ci` in {ROOT} "
                          "(`make slides` does it), with Node >= 20 and npm")
    assets = {key: (node_modules / f).read_text(encoding="utf-8") for key, f in files.items()}
    for key in ("reveal_js", "notes_js", "mathjax_js"):  # inlined in <script>: no "</script" may survive
        assets[key] = assets[key].replace("</script", "<\\/script")
    return {**assets, "reveal_version": _version("reveal.js"), "mathjax_version": _version("mathjax")}


def to_html(executed: Path, out_html: Path, assets: dict[str, str] | None = None) -> Path:
    """One self-contained reveal.js HTML file from an executed deck; code inputs are not shown."""
    from nbconvert import SlidesExporter
    from traitlets.config import Config

    nb = nbformat.read(executed, as_version=4)
    for cell in nb.cells:  # papermill's injected cell belongs to no slide
        if "injected-parameters" in cell.metadata.get("tags", []):
            cell.metadata["slideshow"] = {"slide_type": "skip"}
    config = Config()
    config.TemplateExporter.exclude_input = True
    config.TemplateExporter.exclude_input_prompt = True
    config.TemplateExporter.exclude_output_prompt = True
    exporter = SlidesExporter(config=config, template_name="reveal_offline", extra_template_basedirs=[str(TEMPLATES)])
    offline = {**(assets or offline_assets()), "title": title(nb), "width": WIDTH, "height": HEIGHT, "transition": "slide"}
    html, _ = exporter.from_notebook_node(nb, resources={"offline": offline})
    external = re.findall(r'<(?:script|link|img)[^>]+(?:src|href)="(?:https?:)?//[^"]*"', html)
    if external:
        raise RuntimeError(f"{executed.name}: the deck would load from the network: {external[:3]}")
    out_html.parent.mkdir(parents=True, exist_ok=True)
    out_html.write_text(html, encoding="utf-8")
    return out_html


def browse(items: list[dict], chromium: str, timeout: float = 600) -> list[dict]:
    """Run tools/slides_browser.cjs on decks ``[{name, html, pdf, screenshots}]``; its reports, in order."""
    if shutil.which("node") is None:
        raise MissingTool("node is not on the PATH: install Node >= 20 (Debian: apt-get install nodejs npm)")
    if not (NODE_MODULES / "playwright-core").exists():
        raise MissingTool(f"playwright-core is missing under {NODE_MODULES}: run `npm ci` (`make slides` does it)")
    spec = {"chromium": chromium, "width": WIDTH, "height": HEIGHT,
            "decks": [{k: (str(v) if isinstance(v, Path) else v) for k, v in item.items()} for item in items]}
    return run_browser_script(BROWSER_SCRIPT, spec, timeout)


def run_browser_script(script: Path, spec: dict, timeout: float):
    """``node script spec.json`` (a playwright-core script of tools/): the JSON it prints on stdout."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(spec, f)
    try:
        proc = subprocess.run(["node", str(script), f.name], capture_output=True, text=True, timeout=timeout)
    finally:
        os.unlink(f.name)
    if proc.returncode != 0:
        raise RuntimeError(f"tools/{script.name} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout)


def pdf_pages(pdf: Path) -> int:
    """Pages of a PDF written by Chromium (its page objects are not compressed)."""
    return len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", pdf.read_bytes()))


def problems(report: dict, nb) -> list[str]:
    """What is wrong with a deck as the browser saw it; empty when the deck is fine."""
    found = []
    if report.get("error"):
        return [f"the browser failed: {report['error'].splitlines()[0]}"]
    expected = count_slides(nb)
    if report["totalSlides"] != expected:
        found.append(f"{report['totalSlides']} slides in the browser, {expected} in the source")
    if report["math"] < count_math(nb):
        found.append(f"{report['math']} typeset formulas, but the source has {count_math(nb)}")
    if report["mathErrors"] or report["rawTex"]:
        found.append(f"math not rendered: {report['mathErrors']} MathJax errors, raw TeX {report['rawTex'][:3]}")
    if report["images"] != count_figures(nb) or report["brokenImages"]:
        found.append(f"{report['images']} images shown ({len(report['brokenImages'])} broken), "
                     f"{count_figures(nb)} figures in the executed deck")
    for key in ("consoleErrors", "pageErrors", "failedRequests", "externalRequests"):
        if report[key]:
            found.append(f"{key}: {report[key][:3]}")
    if report["overflowing"]:
        found.append(f"slides taller than the screen ({HEIGHT} px): {report['overflowing']}")
    if report.get("pdf") and pdf_pages(Path(report["pdf"])) != expected:
        found.append(f"the PDF has {pdf_pages(Path(report['pdf']))} pages for {expected} slides")
    return found


@dataclass
class Built:
    deck: str
    seconds: float = 0.0
    slides: int = 0
    figures: int = 0
    errors: list[str] = field(default_factory=list)


def build(profile: str, out: Path, only: list[str], pdf: bool = True, browser: bool = True) -> list[Built]:
    """Execute, convert and (unless ``browser`` is False) check, print and screenshot the decks."""
    from ganlib import profiles

    profile = profiles.resolve(profile)
    chromium = find_chromium() if browser else None
    if browser and chromium is None:
        raise MissingTool("no Chromium found: install Debian's chromium (apt-get install chromium), set CHROMIUM "
                          "to a Chrome/Chromium binary, or build without PDFs and checks (--html-only)")
    assets = offline_assets()
    chosen = [d for d in decks() if not only or any(d.stem.startswith(o) for o in only)]
    built, items = [], []
    for i, deck in enumerate(chosen, 1):
        print(f"[{i}/{len(chosen)}] {deck.stem} ({profile}) ...", flush=True)
        result = course.execute(deck, out / "executed", {"profile": profile})
        entry = Built(deck.stem, result.seconds)
        built.append(entry)
        if result.error:
            entry.errors.append(result.error)
            continue
        executed = out / "executed" / deck.name
        nb = nbformat.read(executed, as_version=4)
        entry.slides, entry.figures = count_slides(nb), count_figures(nb)
        html = to_html(executed, out / f"{deck.stem}.html", assets)
        items.append({"name": deck.stem, "html": html.resolve(), "pdf": (out / f"{deck.stem}.pdf").resolve() if pdf else None,
                      "screenshots": (out / "screenshots").resolve()})
    if browser and items:
        reports = browse(items, chromium)
        for report in reports:
            entry = next(b for b in built if b.deck == report["name"])
            entry.errors += problems(report, nbformat.read(out / "executed" / f"{report['name']}.ipynb", as_version=4))
    return built


def table(built: list[Built]) -> str:
    rows = [("deck", "slides", "figures", "seconds", "status")]
    rows += [(b.deck, str(b.slides), str(b.figures), f"{b.seconds:.1f}", "ok" if not b.errors else "FAILED") for b in built]
    return course.format_table(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("build", help="execute, convert, check and print the decks")
    p.add_argument("--profile", default="auto", help="auto (default), smoke, cpu or gpu")
    p.add_argument("--out", type=Path, default=ROOT / "build" / "slides", help="output folder (default build/slides)")
    p.add_argument("--html-only", action="store_true", help="no Chromium: skip the PDFs, checks and screenshots")
    p.add_argument("decks", nargs="*", help="deck prefixes, e.g. 01 03 (default: all)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        built = build(args.profile, args.out, args.decks, pdf=not args.html_only, browser=not args.html_only)
    except MissingTool as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print("\n" + table(built))
    for b in built:
        for error in b.errors:
            print(f"\n{b.deck}: {error}")
    print(f"\n{len(built)} decks in {time.perf_counter() - start:.0f} s: {args.out}/*.html, *.pdf; screenshots in "
          f"{args.out / 'screenshots'}")
    return 0 if all(not b.errors for b in built) else 1


if __name__ == "__main__":
    raise SystemExit(main())
