"""Figures. Every helper returns its ``matplotlib.figure.Figure``.

Figures are made with ``Figure()`` rather than pyplot, so nothing is drawn twice in a notebook
and nothing accumulates in pyplot's global state; Jupyter shows a returned figure as usual.
Helpers that take ``ax=`` draw into an existing axes (to compose panels) and return its figure.
"""

from __future__ import annotations

import base64
import io
import math
import re
from typing import Callable, Sequence

import numpy as np
import torch
from matplotlib import animation
from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatter

REAL, FAKE, DISC = "#2b2b2b", "#e8590c", "#1864ab"  # real data, generated data, discriminator
SURFACE_CMAP = "RdBu"  # D(x) -> 1 (looks real) blue, -> 0 (looks fake) red


def figure_png(fig: Figure, dpi: int = 100) -> bytes:
    """The figure as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def _display_figures_in_jupyter() -> None:
    """Let Jupyter show a returned ``Figure`` as a PNG.

    pyplot's inline backend registers this formatter only once pyplot is imported; these helpers
    never import pyplot, so they register it themselves (harmlessly, if pyplot does so too).
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None:
        shell.display_formatter.formatters["image/png"].for_type(Figure, figure_png)


_display_figures_in_jupyter()


def _axes(ax=None, figsize=(5, 4)):
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def _np(t) -> np.ndarray:
    return t.detach().float().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)


def image_grid(x: torch.Tensor, nrow: int | None = None, title: str | None = None,
               row_labels: Sequence[str] | None = None, ax=None, scale: float = 0.6) -> Figure:
    """Images (B, C, H, W) in [-1, 1] tiled row by row, ``nrow`` images per row."""
    x = x.detach().float().cpu().clamp(-1, 1)
    b, c, h, w = x.shape
    nrow = nrow or math.ceil(math.sqrt(b))
    rows = math.ceil(b / nrow)
    pad = torch.ones(rows * nrow - b, c, h, w)  # blank (white) tiles fill the last row
    tiles = torch.cat([x, pad]).reshape(rows, nrow, c, h, w).permute(0, 3, 1, 4, 2)  # (rows, H, nrow, W, C)
    img = ((tiles.reshape(rows * h, nrow * w, c) + 1) / 2).numpy()
    fig, ax = _axes(ax, figsize=(scale * nrow + 0.5, scale * rows + 0.3))
    ax.imshow(img[..., 0] if c == 1 else img, cmap="gray" if c == 1 else None, vmin=0, vmax=1,
              interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks((np.arange(rows) + 0.5) * h if row_labels else [], labels=row_labels or [])
    if title:
        ax.set_title(title)
    return fig


def densities_1d(x, curves: dict[str, torch.Tensor], d_curves: dict[str, torch.Tensor] | None = None,
                 ax=None, title: str | None = None) -> Figure:
    """1-D densities on ``x`` (left axis) and discriminator outputs in [0, 1] (right axis, dashed)."""
    fig, ax = _axes(ax, figsize=(6, 3.6))
    colours = iter([REAL, FAKE, "#5f3dc4", "#2b8a3e"])
    for label, y in curves.items():
        ax.fill_between(_np(x), _np(y), alpha=0.25, color=next(colours), label=label, lw=1.5)
    ax.set_xlabel("$x$")
    ax.set_ylabel("density")
    if d_curves:
        ax2 = ax.twinx()
        styles = iter(["-", "--", ":"])
        for label, y in d_curves.items():
            ax2.plot(_np(x), _np(y), color=DISC, ls=next(styles), lw=2, label=label)
        ax2.set_ylim(-0.02, 1.02)
        ax2.set_ylabel("$D(x)$", color=DISC)
        ax2.legend(loc="upper right", frameon=False)
    ax.legend(loc="upper left", frameon=False)
    if title:
        ax.set_title(title)
    return fig


@torch.no_grad()
def decision_surface(D, x_real, x_fake, lim: float = 2.0, resolution: int = 150, ax=None,
                     title: str | None = None) -> Figure:
    """D's belief sigmoid(D(x)) over the plane, its 0.5 boundary, and real and generated points."""
    fig, ax = _axes(ax, figsize=(4.2, 4))
    ticks = torch.linspace(-lim, lim, resolution)
    gx, gy = torch.meshgrid(ticks, ticks, indexing="xy")
    device = next(D.parameters()).device
    grid_pts = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1).to(device)  # (R*R, 2)
    prob = torch.sigmoid(D(grid_pts)).reshape(resolution, resolution).cpu()
    ax.contourf(gx, gy, prob, levels=np.linspace(0, 1, 11), cmap=SURFACE_CMAP, alpha=0.55)
    ax.contour(gx, gy, prob, levels=[0.5], colors="k", linewidths=0.8, linestyles="--")
    r, f = _np(x_real), _np(x_fake)
    ax.scatter(r[:, 0], r[:, 1], s=2, c=REAL, alpha=0.4, label="real")
    ax.scatter(f[:, 0], f[:, 1], s=2, c=FAKE, alpha=0.6, label="generated")
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal", xticks=[], yticks=[])
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def points_2d(x_real, x_fake=None, lim: float = 2.0, ax=None, title: str | None = None) -> Figure:
    """Real (and, if given, generated) 2-D samples on one square plot."""
    fig, ax = _axes(ax, figsize=(4, 4))
    r = _np(x_real)
    ax.scatter(r[:, 0], r[:, 1], s=2, c=REAL, alpha=0.3, label="real")
    if x_fake is not None:
        f = _np(x_fake)
        ax.scatter(f[:, 0], f[:, 1], s=2, c=FAKE, alpha=0.5, label="generated")
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal")
    ax.legend(loc="upper right", markerscale=4, frameon=False, fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def matched_confusion(confusion, label_of: Sequence[int], classes: Sequence[str], ax=None,
                      title: str | None = None, annotate: bool = True) -> Figure:
    """A confusion matrix of codes (rows) by labels (columns) after matching (``infogan.matched_accuracy``):
    rows in the order of their matched label, so the matched cells lie on the diagonal, each row
    normalised to sum to 1; with ``annotate``, shares of at least 0.05 are written in their cells."""
    fig, ax = _axes(ax, figsize=(7, 5.5))
    counts = torch.as_tensor(confusion, dtype=torch.float64)
    order = sorted(range(len(counts)), key=lambda k: label_of[k])
    shown = counts[order] / counts.sum(1, keepdim=True)[order].clamp_min(1)
    ax.imshow(shown.numpy(), cmap="Blues", vmin=0, vmax=1)
    if annotate:
        for i, j in zip(*np.nonzero(shown.numpy() >= 0.05)):
            v = float(shown[i, j])
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="white" if v > 0.5 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=35, ha="right")
    ax.set_yticks(range(len(order)), [f"c1 = {k}" for k in order])
    ax.set(xlabel="true label")
    if title:
        ax.set_title(title)
    return fig


def loss_curves(history, keys: Sequence[str] | None = None, probs: Sequence[str] = ("D(x)", "D(G(z))"),
                ax=None) -> Figure:
    """Logged values against step: losses (left) and D's mean outputs on real and generated batches
    (right), if logged. A key logged only at some rows is drawn where it was logged. With ``ax``, only
    ``keys`` (default: every key but ``probs``) are drawn, into that axes."""
    probs = [k for k in probs if k in history.values]
    keys = keys or [k for k in history.values if k not in probs]
    if ax is not None:
        axes = [ax]
    else:
        fig = Figure(figsize=(10 if probs else 5.5, 3.4), layout="constrained")
        axes = fig.subplots(1, 2 if probs else 1, squeeze=False)[0]
    for k in keys:
        axes[0].plot(*history.series(k), label=k)
    axes[0].set(xlabel="step", ylabel="loss", title="losses")
    axes[0].legend(frameon=False)
    if probs and ax is None:
        for k, colour in zip(probs, [REAL, FAKE]):
            axes[1].plot(*history.series(k), label=k, color=colour)
        axes[1].axhline(0.5, color="gray", lw=0.8, ls=":")
        axes[1].set(xlabel="step", ylim=(0, 1), title="discriminator outputs")
        axes[1].legend(frameon=False)
    return axes[0].figure


def against_minutes(histories: dict, key: str = "FID", bars: dict[str, float] | None = None, ax=None,
                    figsize=(8, 3.6), log: bool = True) -> Figure:
    """``key`` (a column measured along each run, e.g. FID) against training minutes, one line per run
    of ``histories`` (name -> ``train.History``), each step at its run's pace (``History.minutes``);
    ``bars``: labelled horizontal reference lines (label -> value)."""
    _, ax = _axes(ax, figsize)
    for name, h in histories.items():
        steps, values = h.series(key)
        ax.plot(h.minutes(steps), values, "o-", ms=3, label=name)
    for (label, value), style in zip((bars or {}).items(), (":", "--", "-.")):
        ax.axhline(value, color="gray", ls=style, lw=1, label=label)
    ax.set(xlabel="training minutes (at each run's pace)", ylabel=key, yscale="log" if log else "linear",
           title=f"{key} against training minutes")
    if log:  # plain numbers (3, 10, 30), not 3 x 10^0
        ax.yaxis.set_major_formatter(LogFormatter(labelOnlyBase=False))
        ax.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.4)))
    ax.legend(frameon=False)
    return ax.figure


def snapshots(history, n: int = 36, nrow: int = 6, ncols: int = 5, size: float = 2.6) -> Figure:
    """The fixed-z snapshots ``train.fit`` recorded, one grid of the first ``n`` samples per snapshot."""
    def draw(ax, snap):
        step, x = snap
        image_grid(x[:n], nrow=nrow, ax=ax, title=f"step {step}")
    return panels(history.snapshots, draw, ncols=ncols, size=size)


def panels(frames: Sequence, draw: Callable, ncols: int = 4, size: float = 2.6,
           titles: Sequence[str] | None = None) -> Figure:
    """Small multiples: ``draw(ax, frame)`` for each frame, in a grid with ``ncols`` columns."""
    rows = math.ceil(len(frames) / ncols)
    fig = Figure(figsize=(size * ncols, size * rows), layout="constrained")
    axes = fig.subplots(rows, ncols, squeeze=False).ravel()
    for i, ax in enumerate(axes):
        if i < len(frames):
            draw(ax, frames[i])
            if titles:
                ax.set_title(titles[i], fontsize=9)
        else:
            ax.axis("off")
    return fig


_PLAYER_GLYPHS = {"fa-minus": "\u2212", "fa-fast-backward": "\u23ee", "fa-step-backward": "|\u25c0",
                  "fa-play fa-flip-horizontal": "\u25c0", "fa-pause": "\u275a\u275a", "fa-play": "\u25b6",
                  "fa-step-forward": "\u25b6|", "fa-fast-forward": "\u23ed", "fa-plus": "+"}


class Animation:
    """An animation that plays in Jupyter (HTML/JS) and falls back to its last frame as a PNG.

    ``fig`` is the figure; ``to_html()`` gives the player; a static renderer (or papermill) keeps
    the PNG. ``save(path)`` writes a GIF.
    """

    def __init__(self, fig: Figure, anim: animation.FuncAnimation, n_frames: int):
        self.fig, self._anim, self.n_frames = fig, anim, n_frames

    def to_html(self) -> str:
        """matplotlib's JS player, offline: its buttons' Font Awesome icons (a stylesheet from a CDN, which
        an offline course cannot reach: the buttons came out blank) become plain Unicode glyphs."""
        html = re.sub(r'<link rel="stylesheet"\s+href="https?://[^"]*font-awesome[^"]*">', "",
                      self._anim.to_jshtml(default_mode="once"))
        return re.sub(r'<i class="fa ([^"]+)"></i>', lambda m: _PLAYER_GLYPHS[m.group(1)], html)

    def _repr_mimebundle_(self, include=None, exclude=None):
        html = self.to_html()  # draws every frame; the figure is left on the last one
        return {"text/html": html, "image/png": base64.b64encode(figure_png(self.fig, dpi=90)).decode(),
                "text/plain": f"<Animation of {self.n_frames} frames>"}

    def save(self, path: str) -> None:
        self._anim.save(path, writer=animation.PillowWriter(fps=5))


def animate(frames: Sequence, draw: Callable, figsize=(4.2, 4), interval_ms: int = 300) -> Animation:
    """Animate ``draw(ax, frame)`` over ``frames`` (the axes is cleared between frames)."""
    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.add_subplot()

    def update(i):
        ax.clear()
        draw(ax, frames[i])
        return []

    anim = animation.FuncAnimation(fig, update, frames=len(frames), interval=interval_ms, blit=False)
    return Animation(fig, anim, len(frames))
