"""Health: what the end of a run looks like, and which classic failures it shows.

``check`` (also ``train.health``, the name lessons use) reads whichever signals the run logged and
says which it checked, so a run that logged none is told so rather than "no warning signs".
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

def _diversity(x: torch.Tensor) -> float:
    """Mean pairwise L2 distance between the samples of a batch (B, ...)."""
    flat = x.reshape(len(x), -1).float()
    return float(torch.pdist(flat).mean())


@dataclass
class Health:
    """What the end of a run looks like, which signals were checked, and which failures they show."""

    means: dict[str, float]
    diversity: float | None  # last snapshot's diversity relative to real data (1 = as diverse)
    warnings: list[str]
    checked: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = ["end of training: " + ", ".join(f"{k} {v:.3g}" for k, v in self.means.items())]
        if self.diversity is not None:
            lines.append(f"fixed-z samples are {self.diversity:.2f}x as diverse as real data")
        lines.append("checked: " + ("; ".join(self.checked) if self.checked else
                                    "nothing (no D(x)/D(G(z)), critic, gradient-norm or snapshot signal was logged)"))
        lines += [f"WARNING: {w}" for w in self.warnings] or (["no warning signs"] if self.checked else [])
        return "\n".join(lines)


def _bce_warnings(means: dict[str, float]) -> list[str]:
    p_real, p_fake, warnings = means["D(x)"], means["D(G(z))"], []
    if p_real > 0.9 and p_fake < 0.1:
        warnings.append("D is overpowering G (D(x) near 1, D(G(z)) near 0): G's gradient vanishes. "
                        "Lower D's learning rate, raise G's, or regularise D.")
    if p_fake > p_real + 0.1:
        warnings.append("D rates fakes above real data: D has collapsed or is far too weak.")
    return warnings


def _critic_warnings(history, means: dict[str, float]) -> list[str]:
    _, w1 = history.series("W1 estimate")
    early = max(w1[: max(1, len(w1) // 2)])
    warnings = []
    if means["W1 estimate"] > 3 * max(early, 1e-8):
        warnings.append(f"the critic's W1 estimate is exploding ({means['W1 estimate']:.3g} at the end, at most "
                        f"{early:.3g} in the first half): the critic is not Lipschitz; check the clipping or penalty.")
    if means["W1 estimate"] < 0:
        warnings.append("the critic scores fakes above real data: it is undertrained or broken.")
    return warnings


def check(history, real: torch.Tensor | None = None, window: float = 0.2) -> Health:
    """Check the last ``window`` of the logged history for the classic failure signatures, using
    whichever signals the run logged (``Health.checked`` lists them):

    - a BCE D (``D(x)``, ``D(G(z))``): D overpowering G (D(x) -> 1, D(G(z)) -> 0, G's gradient
      vanishes) or collapsing (D(G(z)) above D(x));
    - a critic (``W1 estimate``): the estimate exploding (at the end over 3x its first-half maximum:
      the Lipschitz constraint failed) or negative (fakes scored above real data);
    - a gradient penalty (``grad norm``, mean ||grad D(x_hat)||): far from 1 (outside [0.5, 2]);
    - mode collapse: the last fixed-z snapshot far less diverse than a real batch ``real``.
    """
    rows = max(1, int(round(len(history.steps) * window)))
    means = {k: float(np.nanmean(v[-rows:])) for k, v in history.values.items() if not np.isnan(v[-rows:]).all()}
    warnings, checked = [], []
    if "D(x)" in means and "D(G(z))" in means:
        checked.append("D(x) against D(G(z))")
        warnings += _bce_warnings(means)
    if "W1 estimate" in means:
        checked.append("the critic's W1 estimate")
        warnings += _critic_warnings(history, means)
    if "grad norm" in means:
        checked.append("||grad D|| on interpolates")
        if not 0.5 <= means["grad norm"] <= 2:
            warnings.append(f"||grad D(x_hat)|| is {means['grad norm']:.3g}, far from 1: the gradient penalty is not "
                            "holding; raise its weight or check that it is applied.")
    ratio = None
    if real is not None and history.snapshots:
        checked.append("fixed-z sample diversity")
        fake = history.snapshots[-1][1]
        ratio = _diversity(fake) / _diversity(real[: len(fake)].cpu())
        if ratio < 0.5:
            warnings.append(f"fixed-z samples are only {ratio:.2f}x as diverse as real data: likely mode collapse.")
    return Health(means, ratio, warnings, checked)

