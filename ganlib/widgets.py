"""Interactive front ends over pure functions that return figures.

The figure is an ordinary notebook output (with a display id) that the sliders update in place.
So a notebook run headlessly (papermill, nbval, CI) or rendered statically (GitHub, nbconvert)
keeps the figure drawn at the default values, and JupyterLab or Colab redraws it live.

Each figure ``fn`` returns is closed in pyplot before it is shown: a figure made with
``plt.subplots`` and left open is drawn a second time by the inline backend when the cell ends, a
copy no slider updates (lesson 08's attention explorer did that in JupyterLab).
"""

from __future__ import annotations

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


def explore(fn: Callable[..., Figure], **controls):
    """Show ``fn(**values)`` under one control per keyword, and redraw it when a control moves.

    Each control is ``(min, max, step, value)`` (an int or float slider), a list of strings
    (a dropdown), or any ipywidgets value widget. Returns the dict of controls.
    """
    import ipywidgets as w
    import matplotlib.pyplot as plt
    from IPython.display import DisplayHandle, display

    sliders = {name: _slider(name, spec) for name, spec in controls.items()}

    def figure():
        fig = fn(**{name: s.value for name, s in sliders.items()})
        plt.close(fig)  # shown once, by the handle below: pyplot must not draw it again at the cell's end
        return fig

    display(w.HBox(list(sliders.values())))
    handle = DisplayHandle()  # an ordinary output that updates in place
    handle.display(figure())

    def redraw(_change):
        handle.update(figure())

    for s in sliders.values():
        s.observe(redraw, names="value")
    return sliders
