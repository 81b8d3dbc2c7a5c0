"""Interactive front ends over pure functions that return figures.

The figure is an ordinary notebook output (with a display id) that the controls update in place.
So a notebook run headlessly (papermill, nbval, CI) or rendered statically (GitHub, nbconvert)
keeps the figure drawn at the default values, and JupyterLab or Colab redraws it live.

Each figure ``fn`` returns is closed in pyplot before it is shown: a figure made with
``plt.subplots`` and left open is drawn a second time by the inline backend when the cell ends, a
copy no slider updates (lesson 08's attention explorer did that in JupyterLab).

Under the controls, a status line says what the figure shows now and how long it took; what ``fn``
printed while drawing it (a shipped run loaded, a checkpoint resumed) is an output of its own above
the figure, replaced at each redraw, so no stale message is left above a redrawn figure (and a
headless run keeps the default figure's). A redraw that takes a while can report progress: if ``fn``
has a parameter named ``progress``, it is given ``progress(done, total, what)``, which moves a bar
under the controls.
"""

from __future__ import annotations

import contextlib
import html
import inspect
import io
import time
from typing import Callable

from matplotlib.figure import Figure


def _slider(name: str, spec):
    import ipywidgets as w

    if isinstance(spec, w.ValueWidget):
        return spec
    if isinstance(spec, (list, tuple)) and len(spec) == 4:
        lo, hi, step, value = spec
        kind = w.IntSlider if all(isinstance(v, int) for v in spec) else w.FloatSlider
        return kind(min=lo, max=hi, step=step, value=value, description=name, continuous_update=False)
    if isinstance(spec, (list, tuple)) and spec and all(isinstance(v, str) for v in spec):
        return w.Dropdown(options=list(spec), value=spec[0], description=name)
    raise ValueError(f"control {name!r}: give (min, max, step, value), a list of options, or a widget; got {spec!r}")


def describe(values: dict) -> str:
    """``"mean = 0.5, std = 1.2"``: the values a figure is drawn at, as the status line names them."""
    def fmt(v):
        return f"{v:g}" if isinstance(v, float) else str(v)
    return ", ".join(f"{name} = {fmt(v)}" for name, v in values.items())


class Status:
    """The line under an explorer's controls, and its progress bar (hidden until a redraw reports progress)."""

    def __init__(self):
        import ipywidgets as w

        self.bar = w.FloatProgress(min=0.0, max=1.0, value=0.0, layout=w.Layout(display="none", width="240px"))
        self.line = w.HTML(layout=w.Layout(margin="0 0 0 8px"))
        self.widget = w.HBox([self.bar, self.line])
        self._what = ""

    def say(self, text: str, *, error: bool = False) -> None:
        style = "color: #b00020" if error else "color: #444"
        self.line.value = f'<span style="{style}; font-size: 90%">{html.escape(text)}</span>'

    def drawing(self, what: str) -> None:
        self._what = what
        self.say(f"Drawing {what} ...")

    def progress(self, done: float, total: float, what: str = "working") -> None:
        """Show ``done`` of ``total`` (steps, images, ...) on the bar, and the count on the line."""
        self.bar.layout.display = None
        self.bar.value = min(max(done / total, 0.0), 1.0) if total else 0.0
        self.say(f"{what} for {self._what}: {done:g} / {total:g}")

    def shown(self, what: str, seconds: float) -> None:
        self.bar.layout.display = "none"
        took = f"{seconds:.1f} s" if seconds >= 0.1 else "under 0.1 s"
        self.say(f"Shown: {what} (drawn in {took})")


def explore(fn: Callable[..., Figure], **controls):
    """Show ``fn(**values)`` under one control per keyword, and redraw it when a control moves.

    Each control is ``(min, max, step, value)`` (an int or float slider), a list of strings
    (a dropdown), or any ipywidgets value widget. A status line under the controls says what is
    shown; if ``fn`` takes ``progress``, it gets ``progress(done, total, what)`` to move a bar while it
    works. A redraw that raises leaves the last figure and says so on the status line (the traceback
    goes to the kernel's log). Returns the dict of controls.
    """
    import ipywidgets as w
    import matplotlib.pyplot as plt
    from IPython.display import DisplayHandle, display

    sliders = {name: _slider(name, spec) for name, spec in controls.items()}
    status = Status()
    takes_progress = "progress" in inspect.signature(fn).parameters

    def figure():
        values = {name: s.value for name, s in sliders.items()}
        what = describe(values)
        status.drawing(what)
        start, printed = time.perf_counter(), io.StringIO()
        extra = {"progress": status.progress} if takes_progress else {}
        with contextlib.redirect_stdout(printed):  # what fn prints belongs to this figure: shown above it, replaced with it
            fig = fn(**values, **extra)
        plt.close(fig)  # shown once, by the handle below: pyplot must not draw it again at the cell's end
        status.shown(what, time.perf_counter() - start)
        return fig, {"text/plain": printed.getvalue().rstrip("\n")}

    display(w.VBox([w.HBox(list(sliders.values())), status.widget]))
    log, handle = DisplayHandle(), DisplayHandle()  # ordinary outputs that update in place
    fig, printed = figure()
    log.display(printed, raw=True)
    handle.display(fig)

    def redraw(_change):
        try:
            fig, printed = figure()
        except Exception as err:
            status.bar.layout.display = "none"
            status.say(f"Could not draw {status._what}: {type(err).__name__}: {err} (the figure is the last one drawn)",
                       error=True)
            raise
        log.update(printed, raw=True)
        handle.update(fig)

    for s in sliders.values():
        s.observe(redraw, names="value")
    return sliders
