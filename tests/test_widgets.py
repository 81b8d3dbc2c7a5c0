import pytest
from matplotlib.figure import Figure

from ganlib import widgets


def test_explore_draws_the_default_and_redraws_on_change():
    calls = []

    def draw(mu, n, kind):
        calls.append((mu, n, kind))
        return Figure()

    controls = widgets.explore(draw, mu=(-1.0, 1.0, 0.1, 0.5), n=(1, 10, 1, 3), kind=["a", "b"])
    assert calls == [(0.5, 3, "a")]  # drawn once at the defaults: what a headless run keeps
    assert type(controls["n"]).__name__ == "IntSlider" and type(controls["mu"]).__name__ == "FloatSlider"
    controls["mu"].value = -0.2
    controls["kind"].value = "b"
    assert calls[-2:] == [(-0.2, 3, "a"), (-0.2, 3, "b")]


def test_explore_rejects_a_malformed_control():
    with pytest.raises(ValueError, match="control 'mu'"):
        widgets.explore(lambda mu: Figure(), mu=(0, 1))


def test_a_pyplot_figure_is_shown_once_by_construction():
    """A figure made with plt.subplots and returned open would be drawn again by the inline backend at the end
    of the cell, a copy no slider updates (lesson 08's attention explorer, seen in JupyterLab): explore closes
    each figure in pyplot once its handle holds it, at the default and after every change."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.close("all")
    made = []

    def draw(k):
        fig, ax = plt.subplots()
        ax.plot([0, k])
        made.append(fig)
        return fig

    controls = widgets.explore(draw, k=(1, 5, 1, 2))
    assert plt.get_fignums() == [], "the default figure is still open in pyplot: it would be drawn twice"
    controls["k"].value = 4
    assert len(made) == 2 and plt.get_fignums() == [], "a redrawn figure is still open in pyplot"
    assert made[-1].axes[0].lines[0].get_ydata()[-1] == 4  # closed in pyplot, the figure itself is intact


def _shown(monkeypatch):
    """Capture what explore displays: the controls' box (with the status line) and the figure's handle."""
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda *objs, **kw: shown.extend(objs))
    return shown


def _status_text(box) -> str:
    import re

    line = box.children[1].children[1]
    return re.sub(r"<[^>]+>", "", line.value)


def test_the_status_line_says_what_is_shown_and_the_printed_lines_are_replaced_with_the_figure(monkeypatch):
    """The line under the controls names the values the figure is drawn at; what fn printed is an output above
    the figure that each redraw replaces (lesson 07's explorer printed 'loaded the shipped weights' above the
    figure and left it there, stale, after a slider retrained it). A headless run keeps the default's lines."""
    from IPython.display import DisplayHandle

    shown, outputs = _shown(monkeypatch), {}
    monkeypatch.setattr(DisplayHandle, "display", lambda self, obj, **kw: outputs.__setitem__(self.display_id, obj))
    monkeypatch.setattr(DisplayHandle, "update", lambda self, obj, **kw: outputs.__setitem__(self.display_id, obj))

    def draw(n, kind):
        print(f"loaded run {n}{kind}")
        return Figure()

    controls = widgets.explore(draw, n=(1, 10, 1, 3), kind=["a", "b"])
    box = shown[0]
    texts = lambda: [o["text/plain"] for o in outputs.values() if isinstance(o, dict)]  # noqa: E731
    assert _status_text(box).startswith("Shown: n = 3, kind = a") and texts() == ["loaded run 3a"]
    controls["n"].value = 7
    assert _status_text(box).startswith("Shown: n = 7, kind = a") and texts() == ["loaded run 7a"]
    assert len(outputs) == 2  # the printed lines and the figure: updated in place, never added


def test_a_slow_redraw_moves_the_progress_bar_and_hides_it_after(monkeypatch):
    shown = _shown(monkeypatch)
    seen = []

    def draw(steps, progress):
        bar = shown[0].children[1].children[0] if shown else None
        for done in range(0, steps + 1, 5):
            progress(done, steps, "training")
            if bar is not None:
                seen.append((bar.value, bar.layout.display, _status_text(shown[0])))
        return Figure()

    controls = widgets.explore(draw, steps=(10, 40, 10, 10))
    seen.clear()
    controls["steps"].value = 20
    assert [v for v, _, _ in seen] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert all(display != "none" for _, display, _ in seen), "the bar is visible while fn works"
    assert seen[2][2].startswith("training for steps = 20: 10 / 20")
    bar = shown[0].children[1].children[0]
    assert bar.layout.display == "none" and _status_text(shown[0]).startswith("Shown: steps = 20")


def test_a_redraw_that_fails_says_so_and_keeps_the_last_figure(monkeypatch):
    shown = _shown(monkeypatch)
    first = Figure()

    def draw(k):
        if k == 3:
            raise ValueError("no such run")
        return first

    controls = widgets.explore(draw, k=(1, 5, 1, 2))
    handle_updates = []
    monkeypatch.setattr("IPython.display.DisplayHandle.update", lambda self, obj, **kw: handle_updates.append(obj))
    with pytest.raises(ValueError, match="no such run"):
        controls["k"].value = 3
    text = _status_text(shown[0])
    assert "Could not draw k = 3" in text and "no such run" in text and handle_updates == []
    controls["k"].value = 4
    assert handle_updates[-1] is first and _status_text(shown[0]).startswith("Shown: k = 4")
