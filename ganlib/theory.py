"""The analytic pieces of lesson 01: the value function, the optimal discriminator, divergences.

All functions work on densities evaluated on a uniform grid with spacing ``dx`` (in any number of
dimensions: pass the area or volume of one grid cell), and integrals are Riemann sums. Natural
logarithms throughout, so divergences are in nats and the minimum of V is -log 4.
"""

from __future__ import annotations

import torch


def optimal_discriminator(p_data, p_g) -> torch.Tensor:
    """D*(x) = p_data(x) / (p_data(x) + p_g(x))   (Goodfellow et al. 2014, Prop. 1).

    Where both densities vanish D* is undefined (no sample lands there); we return 1/2.
    """
    p_data, p_g = torch.as_tensor(p_data), torch.as_tensor(p_g)
    total = p_data + p_g
    safe_total = torch.where(total > 0, total, torch.ones_like(total))
    return torch.where(total > 0, p_data / safe_total, torch.full_like(total, 0.5))


def value_function(d, p_data, p_g, dx: float) -> torch.Tensor:
    """V(D, G) = E_{x~p_data}[log D(x)] + E_{x~p_g}[log(1 - D(x))], integrated on the grid.

    ``d`` holds D(x) as probabilities in [0, 1]. Terms where a density is zero contribute zero,
    which is the limit of p log D as p -> 0.
    """
    d, p_data, p_g = torch.as_tensor(d), torch.as_tensor(p_data), torch.as_tensor(p_g)
    real = torch.where(p_data > 0, p_data * torch.log(d), torch.zeros_like(d))  # -inf if D = 0 where data lives
    fake = torch.where(p_g > 0, p_g * torch.log(1 - d), torch.zeros_like(d))
    return (real + fake).sum() * dx


def kl_divergence(p, q, dx: float) -> torch.Tensor:
    """KL(p || q) = integral p(x) log(p(x) / q(x)) dx, with 0 log 0 = 0 (infinite if q = 0 < p)."""
    p, q = torch.as_tensor(p), torch.as_tensor(q)
    ratio = torch.where(p > 0, p / q, torch.ones_like(p))
    return (torch.where(p > 0, p * torch.log(ratio), torch.zeros_like(p))).sum() * dx


def js_divergence(p, q, dx: float) -> torch.Tensor:
    """JSD(p || q) = 1/2 KL(p || m) + 1/2 KL(q || m) with m = (p + q) / 2; between 0 and log 2."""
    p, q = torch.as_tensor(p), torch.as_tensor(q)
    m = (p + q) / 2
    return 0.5 * kl_divergence(p, m, dx) + 0.5 * kl_divergence(q, m, dx)


def optimal_value(p_data, p_g, dx: float) -> torch.Tensor:
    """V(D*, G), the value once D is optimal. Equals -log 4 + 2 JSD(p_data || p_g) (Goodfellow Thm. 1).

    Computed from log-densities, log D* = log p_data - log(p_data + p_g): in the tails D* rounds to
    exactly 0 or 1 in floating point, and log(1 - D*) taken literally would be -inf.
    """
    p, q = torch.as_tensor(p_data), torch.as_tensor(p_g)
    log_m = torch.log(p + q)
    real = torch.where(p > 0, p * (torch.log(p) - log_m), torch.zeros_like(p))
    fake = torch.where(q > 0, q * (torch.log(q) - log_m), torch.zeros_like(q))
    return (real + fake).sum() * dx


def g_loss_gradients(d_fake_prob) -> dict[str, torch.Tensor]:
    """How hard each generator loss pushes, as a function of D(G(z)), in closed form.

    With a = logit D(G(z)) and D = sigmoid(a), the gradient reaching G is dL/da:

    - saturating (minimax) loss    L = log(1 - D):  dL/da = -D        -> vanishes as D -> 0
    - non-saturating loss          L = -log D:      dL/da = -(1 - D)  -> strongest as D -> 0

    Early in training D confidently rejects fakes (D(G(z)) near 0): exactly where the minimax loss
    gives G almost no signal.
    """
    d = torch.as_tensor(d_fake_prob)
    return {"saturating": -d, "nonsaturating": -(1 - d)}


# ---------------------------------------------------------------------------------------------
# Lesson 10: what other discriminators measure
# ---------------------------------------------------------------------------------------------


def pearson_chi2(p, q, dx: float) -> torch.Tensor:
    """chi^2(p || q) = integral (p(x) - q(x))^2 / q(x) dx (zero where q = 0 = p)."""
    p, q = torch.as_tensor(p), torch.as_tensor(q)
    safe_q = torch.where(q > 0, q, torch.ones_like(q))
    return torch.where(q > 0, (p - q) ** 2 / safe_q, torch.zeros_like(q)).sum() * dx


def total_variation(p, q, dx: float) -> torch.Tensor:
    """TV(p, q) = 1/2 integral |p(x) - q(x)| dx, between 0 and 1."""
    return 0.5 * (torch.as_tensor(p) - torch.as_tensor(q)).abs().sum() * dx


def optimal_discriminator_least_squares(p_data, p_g, a: float = -1.0, b: float = 1.0) -> torch.Tensor:
    """D*(x) = (b p_data(x) + a p_g(x)) / (p_data(x) + p_g(x))   (Mao et al. 2017, eq. 4).

    The pointwise minimiser of 1/2 p_data (D - b)^2 + 1/2 p_g (D - a)^2: a weighted mean of the targets.
    Where both densities vanish we return the midpoint (a + b) / 2.
    """
    p, q = torch.as_tensor(p_data), torch.as_tensor(p_g)
    total = p + q
    safe = torch.where(total > 0, total, torch.ones_like(total))
    return torch.where(total > 0, (b * p + a * q) / safe, torch.full_like(total, (a + b) / 2))


def least_squares_d_loss(d, p_data, p_g, dx: float, a: float = -1.0, b: float = 1.0) -> torch.Tensor:
    """D's LSGAN objective on the grid: 1/2 integral p_data (D - b)^2 + p_g (D - a)^2 dx (D minimises it)."""
    d, p, q = torch.as_tensor(d), torch.as_tensor(p_data), torch.as_tensor(p_g)
    return 0.5 * (p * (d - b) ** 2 + q * (d - a) ** 2).sum() * dx


def least_squares_g_value(p_data, p_g, dx: float, a: float = -1.0, b: float = 1.0, c: float = 0.0) -> torch.Tensor:
    """C(G) = 1/2 integral (p_data + p_g) (D* - c)^2 dx: G's objective once D is optimal (the real term,
    constant for G, included). With b - c = 1 and b - a = 2 (a = -1, b = 1, c = 0),
    2 C(G) = integral (p_data - p_g)^2 / (p_data + p_g) dx = ``pearson_chi2(2 p_g, p_data + p_g)``,
    which Mao et al. write chi^2_Pearson(p_data + p_g || 2 p_g) (their order of the arguments)."""
    p, q = torch.as_tensor(p_data), torch.as_tensor(p_g)
    d = optimal_discriminator_least_squares(p, q, a, b)
    return 0.5 * ((p + q) * (d - c) ** 2).sum() * dx


def energy_d_loss(d, p_data, p_g, dx: float, margin: float) -> torch.Tensor:
    """EBGAN's D objective on the grid: integral p_data D + p_g relu(m - D) dx, for energies D >= 0."""
    d, p, q = torch.as_tensor(d), torch.as_tensor(p_data), torch.as_tensor(p_g)
    return (p * d + q * torch.relu(margin - d)).sum() * dx


def optimal_energy_d_loss(p_data, p_g, dx: float, margin: float) -> torch.Tensor:
    """min over D >= 0 of ``energy_d_loss`` = m (1 - TV(p_data, p_g)).

    Pointwise the objective is piecewise linear in D, so D* is 0 where p_data >= p_g and m elsewhere,
    and the minimum is m min(p_data, p_g). At the equilibrium p_g = p_data it is m (Zhao et al. 2017,
    Theorem 1); the further apart the two, the lower.
    """
    return margin * (1 - total_variation(p_data, p_g, dx))


def relativistic_average_d_loss(c, p_data, p_g, dx: float) -> torch.Tensor:
    """RaSGAN's D objective for a critic ``c`` (logits on the grid), with the expectations integrated:
    1/2 integral p_data softplus(-(c - E_g c)) dx + 1/2 integral p_g softplus(c - E_data c) dx.

    At p_g = p_data it is at least log 2 for every c (softplus(-u) + softplus(u) >= 2 log 2), with equality
    for a constant c; so log 2 - min_c of it is >= 0 and vanishes when the two distributions agree
    (Jolicoeur-Martineau 2019, *On Relativistic f-Divergences*, proves it is a divergence).
    """
    c, p, q = torch.as_tensor(c), torch.as_tensor(p_data), torch.as_tensor(p_g)
    mean_fake, mean_real = (q * c).sum() * dx, (p * c).sum() * dx
    softplus = torch.nn.functional.softplus
    return 0.5 * ((p * softplus(-(c - mean_fake))).sum() + (q * softplus(c - mean_real)).sum()) * dx
