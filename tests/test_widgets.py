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
