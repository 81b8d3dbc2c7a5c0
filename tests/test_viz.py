import numpy as np
import torch
from matplotlib.figure import Figure

from ganlib import layers, train, viz


def test_image_grid_places_each_image_in_its_tile():
    x = torch.linspace(-1, 1, 5).reshape(5, 1, 1, 1).expand(5, 1, 3, 2)  # five flat images of distinct grey
    fig = viz.image_grid(x, nrow=3, title="grid")
    assert isinstance(fig, Figure)
    shown = fig.axes[0].images[0].get_array()
    assert shown.shape == (6, 6)  # 2 rows of 3 tiles of 3x2 pixels
    for i in range(5):
        r, c = divmod(i, 3)
        np.testing.assert_allclose(shown[3 * r:3 * r + 3, 2 * c:2 * c + 2], (x[i, 0].numpy() + 1) / 2)
    np.testing.assert_allclose(shown[3:, 4:], 1.0)  # the unused tile is blank white


def test_image_grid_shows_colour_images_as_rgb():
    fig = viz.image_grid(torch.zeros(4, 3, 8, 8), row_labels=["a", "b"], nrow=2)
    assert fig.axes[0].images[0].get_array().shape == (16, 16, 3)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["a", "b"]


def test_every_helper_returns_its_figure():
    x = torch.linspace(-3, 3, 50)
    assert isinstance(viz.densities_1d(x, {"p": x.exp()}, {"D": torch.sigmoid(x)}), Figure)
    D = layers.mlp(2, 1, hidden=8, depth=1)
    fig = viz.decision_surface(D, torch.randn(20, 2), torch.randn(20, 2), resolution=20, title="t")
    assert isinstance(fig, Figure) and fig.axes[0].get_title() == "t"
    assert isinstance(viz.points_2d(torch.randn(10, 2), torch.randn(10, 2)), Figure)
    history = train.History()
    for step in (10, 20):
        history.add(step, {"loss_D": 1.0, "loss_G": 0.7, "D(x)": 0.6, "D(G(z))": 0.4}, 0.1)
    fig = viz.loss_curves(history)
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == 2


def test_panels_draws_each_frame_and_blanks_the_rest():
    drawn = []
    fig = viz.panels([1, 2, 3], lambda ax, f: drawn.append(f) or ax.plot([f]), ncols=2, titles=["a", "b", "c"])
    assert drawn == [1, 2, 3] and len(fig.axes) == 4 and not fig.axes[3].axison


def test_animation_plays_in_html_and_falls_back_to_png(tmp_path):
    anim = viz.animate([0, 1, 2], lambda ax, f: ax.plot([0, f]))
    bundle = anim._repr_mimebundle_()
    assert "<script" in bundle["text/html"] and bundle["image/png"] and "3 frames" in bundle["text/plain"]
    anim.save(str(tmp_path / "a.gif"))
    assert (tmp_path / "a.gif").read_bytes()[:3] == b"GIF"


def test_the_animation_player_needs_no_network():
    """matplotlib's player links Font Awesome from a CDN for its button icons: offline (and in the live JupyterLab
    check, which blocks the request) the buttons came out blank. The player is self-contained, with a glyph per button."""
    import re

    html = viz.animate([0, 1, 2], lambda ax, f: ax.plot([0, f])).to_html()
    assert not re.search(r'(?:href|src)="https?://', html) and 'class="fa' not in html
    buttons = re.findall(r"<button[^>]*>\s*([^<]*?)\s*</button>", html)
    assert len(buttons) == 9 and all(buttons), buttons
    assert "\u25b6" in buttons and "\u275a\u275a" in buttons  # play, pause


def test_matched_confusion_puts_the_matched_cells_on_the_diagonal_and_rows_sum_to_one():
    confusion = torch.tensor([[0, 8, 2], [9, 1, 0], [1, 1, 8]])  # codes 0, 1, 2 match labels 1, 0, 2
    fig = viz.matched_confusion(confusion, [1, 0, 2], ["a", "b", "c"])
    shown = fig.axes[0].images[0].get_array()
    assert np.allclose(shown.sum(1), 1)
    assert np.allclose(np.diag(shown), [9 / 10, 8 / 10, 8 / 10])  # code 1 (label a) first, then code 0, code 2
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["c1 = 1", "c1 = 0", "c1 = 2"]


def test_against_minutes_puts_each_measurement_at_its_runs_pace():
    fast, slow = train.History(), train.History()
    for step in range(100, 1001, 100):  # fast: 0.06 s/step; slow: 0.3 s/step; an FID at every other row
        fast.add(step, {"FID": 10.0 / step} if step % 200 == 0 else {"loss": 1.0}, 100 * 0.06)
        slow.add(step, {"FID": 5.0 / step} if step % 200 == 0 else {"loss": 1.0}, 100 * 0.3)
    fig = viz.against_minutes({"fast": fast, "slow": slow}, bars={"bar": 0.02})
    lines = {line.get_label(): line for line in fig.axes[0].lines}
    np.testing.assert_allclose(lines["fast"].get_xdata(), [200 * 0.06 / 60 * k for k in range(1, 6)])
    np.testing.assert_allclose(lines["slow"].get_xdata(), [200 * 0.3 / 60 * k for k in range(1, 6)])
    np.testing.assert_allclose(lines["slow"].get_ydata(), [5.0 / (200 * k) for k in range(1, 6)])
    assert list(lines["bar"].get_ydata()) == [0.02, 0.02] and fig.axes[0].get_yscale() == "log"
