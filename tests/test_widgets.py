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
