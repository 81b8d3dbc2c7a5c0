"""Metrics for generative models.

Images (lesson 04): FID, KID, Inception Score and precision/recall, all computed from features or
class probabilities of a fixed network (``ganlib.classifier`` ships one for Fashion-MNIST; use
``classifier.apply_batched`` to get them). Toy mixtures (lesson 02): mode coverage (VEEGAN/PacGAN).

Set statistics are computed in float64: FID and KID are small differences of large numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .data import GaussianMixture


@dataclass
class ModeStats:
    """How a set of samples covers the components of a Gaussian mixture."""

    modes: int  # components with at least ``min_count`` high-quality samples
    n_modes: int  # components in the mixture
    high_quality: float  # fraction of samples within ``threshold`` stds of their nearest mean
    kl_uniform: float  # KL(histogram of high-quality samples over modes || uniform), nats; NaN if none
    counts: torch.Tensor  # (K,) high-quality samples per mode

    def __str__(self) -> str:
        kl = "n/a (no high-quality samples)" if math.isnan(self.kl_uniform) else f"{self.kl_uniform:.3f}"
        return f"{self.modes}/{self.n_modes} modes, {100 * self.high_quality:.1f}% high quality, KL to uniform {kl}"


@torch.no_grad()
def mode_coverage(x: torch.Tensor, target: GaussianMixture, threshold: float = 3.0,
                  min_count: int = 1) -> ModeStats:
    """Assign each sample to its nearest component, measured in that component's stds.

    A sample is *high quality* if it lies within ``threshold`` stds of that mean; a mode is
    *covered* if at least ``min_count`` high-quality samples land on it. PacGAN evaluates 2,500
    samples with threshold 3 and min_count 1. The KL term compares how the high-quality samples
    spread over the modes with the uniform spread of the (equal-weight) target; it is undefined
    (NaN) when no sample is high quality.
    """
    if x.ndim != 2 or x.shape[1] != target.dim:
        raise ValueError(f"expected samples of shape (n, {target.dim}), got {tuple(x.shape)}")
    means, stds = target.means.to(x.device), target.stds.to(x.device)
    dist = torch.cdist(x.float(), means) / stds  # (n, K), in units of each component's std
    nearest_dist, nearest = dist.min(dim=1)
    good = nearest_dist < threshold
    k = len(means)
    counts = torch.bincount(nearest[good], minlength=k).cpu()
    p = counts.double() / counts.sum()
    kl = float(torch.where(p > 0, p * torch.log(p * k), torch.zeros_like(p)).sum()) if counts.sum() else math.nan
    return ModeStats(int((counts >= min_count).sum()), k, float(good.float().mean()), kl, counts)


# --------------------------------------------------------------------------------------------
# Frechet distance and FID
# --------------------------------------------------------------------------------------------

PSD_RTOL = 1e-5  # eigenvalues above -PSD_RTOL * (largest |eigenvalue|) count as round-off of a PSD matrix


def _float64(a, name: str) -> torch.Tensor:
    """``a`` as a float64 CPU tensor; complex input must have an imaginary part that is round-off."""
    a = torch.as_tensor(a).detach().cpu()
    if a.is_complex():
        if a.imag.abs().max() > PSD_RTOL * a.real.abs().max().clamp_min(1e-300):
            raise ValueError(f"{name} has an imaginary part of {float(a.imag.abs().max()):.3g}; it must be real")
        a = a.real
    return a.to(torch.float64)


def _psd_sqrt(sigma: torch.Tensor, name: str) -> torch.Tensor:
    """S^{1/2} = V diag(sqrt(lambda)) V^T for a symmetric PSD S; round-off negative eigenvalues -> 0."""
    scale = sigma.abs().max().clamp_min(1e-300)
    if sigma.ndim != 2 or sigma.shape[0] != sigma.shape[1] or (sigma - sigma.T).abs().max() > PSD_RTOL * scale:
        raise ValueError(f"{name} must be a symmetric matrix, got shape {tuple(sigma.shape)}")
    lam, v = torch.linalg.eigh((sigma + sigma.T) / 2)
    if lam.min() < -PSD_RTOL * lam.abs().max():
        raise ValueError(f"{name} is not positive semi-definite: eigenvalue {float(lam.min()):.3g} "
                         f"(largest {float(lam.abs().max()):.3g}); a covariance never is")
    return (v * lam.clamp_min(0).sqrt()) @ v.T


def trace_sqrt_product(sigma1, sigma2) -> float:
    """Tr (S1 S2)^{1/2} for symmetric PSD S1, S2, via the eigenvalues of S1^{1/2} S2 S1^{1/2}.

    S1 S2 = S1^{1/2} (S1^{1/2} S2 S1^{1/2}) S1^{-1/2} is similar to a symmetric PSD matrix, so its
    eigenvalues e_i are real and >= 0, and Tr (S1 S2)^{1/2} = sum_i sqrt(e_i). In the symmetric form
    no complex numbers arise: scipy.linalg.sqrtm(S1 @ S2) returns round-off imaginary parts, and with
    fewer samples than dimensions (singular S) its zero eigenvalues come out as +-1e-15 (+-1e-15 i),
    whose square roots add noise of 3e-8 each. Here e_i > -PSD_RTOL * max|e| are round-off, set to 0.
    """
    root1 = _psd_sqrt(_float64(sigma1, "sigma1"), "sigma1")
    sigma2 = _float64(sigma2, "sigma2")
    _psd_sqrt(sigma2, "sigma2")  # validates sigma2
    e = torch.linalg.eigvalsh(root1 @ sigma2 @ root1)
    if e.min() < -PSD_RTOL * e.abs().max():
        raise ValueError(f"S1^(1/2) S2 S1^(1/2) has eigenvalue {float(e.min()):.3g}: not round-off")
    return float(e.clamp_min(0).sqrt().sum())


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """d^2 = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2}), between N(mu1, S1) and N(mu2, S2).

    The squared Wasserstein-2 distance between two Gaussians (Dowson & Landau 1982), which FID
    applies to network features (Heusel et al. 2017). Takes torch tensors or NumPy arrays, computes
    in float64 and returns a float >= 0 (a negative total from round-off is returned as 0).
    """
    mu1, mu2 = _float64(mu1, "mu1"), _float64(mu2, "mu2")
    sigma1, sigma2 = _float64(sigma1, "sigma1"), _float64(sigma2, "sigma2")
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(f"expected means (d,) and covariances (d, d), got {tuple(mu1.shape)}, "
                         f"{tuple(sigma1.shape)}, {tuple(mu2.shape)}, {tuple(sigma2.shape)}")
    d2 = ((mu1 - mu2) ** 2).sum() + sigma1.trace() + sigma2.trace() - 2 * trace_sqrt_product(sigma1, sigma2)
    return max(float(d2), 0.0)


def gaussian_stats(features) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean mu = (1/N) sum_i f_i and unbiased covariance S = (1/(N-1)) sum_i (f_i - mu)(f_i - mu)^T.

    ``features`` has shape (N, d); both results are float64 on the CPU.
    """
    f = _float64(features, "features")
    return f.mean(dim=0), torch.cov(f.T)


def fid(feat_real, feat_fake) -> float:
    """FID = frechet_distance of the Gaussians fitted to two feature sets (N, d). Lower is better.

    Biased: even two samples of one distribution score > 0, by roughly Tr(S) / N terms, so compare
    FIDs only at equal N (and with the same feature extractor).
    """
    return frechet_distance(*gaussian_stats(feat_real), *gaussian_stats(feat_fake))


# --------------------------------------------------------------------------------------------
# Kernel Inception Distance
# --------------------------------------------------------------------------------------------


def polynomial_kernel(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """k(x, y) = (x . y / d + 1)^3 for all pairs: (n, d), (m, d) -> (n, m)."""
    return (x @ y.T / x.shape[1] + 1) ** 3


def mmd2_unbiased(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Unbiased MMD^2 with the cubic kernel (Gretton et al. 2012, eq. 3):

    1/(m(m-1)) sum_{i != j} k(x_i, x_j) + 1/(n(n-1)) sum_{i != j} k(y_i, y_j) - 2/(mn) sum_{i,j} k(x_i, y_j).
    Its expectation is exactly MMD^2, so it is ~0 (and can be negative) for two samples of one law.
    """
    m, n = len(x), len(y)
    k_xx, k_yy = polynomial_kernel(x, x), polynomial_kernel(y, y)
    within_x = (k_xx.sum() - k_xx.diagonal().sum()) / (m * (m - 1))
    within_y = (k_yy.sum() - k_yy.diagonal().sum()) / (n * (n - 1))
    return within_x + within_y - 2 * polynomial_kernel(x, y).mean()


def kid(feat_real, feat_fake, n_subsets: int = 100, subset_size: int = 1000,
        generator: torch.Generator | None = None) -> tuple[float, float]:
    """KID (Binkowski et al. 2018): mmd2_unbiased averaged over random subsets; returns (mean, std).

    Each of ``n_subsets`` draws ``subset_size`` features without replacement from each set; std is
    the population std over subsets (as in the reference code), a measure of the spread, not of the
    mean's error. Unlike FID, the mean does not depend on the sample size in expectation.
    """
    x, y = _float64(feat_real, "feat_real"), _float64(feat_fake, "feat_fake")
    if subset_size > min(len(x), len(y)):
        raise ValueError(f"subset_size {subset_size} exceeds the smaller set ({min(len(x), len(y))} features)")
    values = torch.stack([
        mmd2_unbiased(x[torch.randperm(len(x), generator=generator)[:subset_size]],
                      y[torch.randperm(len(y), generator=generator)[:subset_size]])
        for _ in range(n_subsets)])
    return float(values.mean()), float(values.std(unbiased=False))


# --------------------------------------------------------------------------------------------
# Inception Score
# --------------------------------------------------------------------------------------------


def inception_score(probs, splits: int = 10) -> tuple[float, float]:
    """IS = exp(E_x KL(p(y|x) || p(y))), with p(y) = E_x p(y|x) (Salimans et al. 2016); (mean, std).

    ``probs`` (N, C) holds class probabilities p(y|x). Computed on each of ``splits`` equal parts
    and summarised by mean and population std, as in the reference code. Ranges from 1 (every x
    gets the same prediction) to C (confident predictions spread evenly over the C classes).
    """
    scores = []
    for p in _float64(probs, "probs").tensor_split(splits):
        p_y = p.mean(dim=0, keepdim=True)  # (1, C)
        kl = (torch.special.xlogy(p, p) - torch.special.xlogy(p, p_y)).sum(dim=1)  # (n,)
        scores.append(kl.mean().exp())
    scores = torch.stack(scores)
    return float(scores.mean()), float(scores.std(unbiased=False))


# --------------------------------------------------------------------------------------------
# Precision and recall
# --------------------------------------------------------------------------------------------


def knn_radii(x: torch.Tensor, k: int = 3, chunk: int = 1000) -> torch.Tensor:
    """r_i = distance from x_i to its k-th nearest neighbour in x (itself excluded); shape (N,)."""
    return torch.cat([torch.cdist(c, x).topk(k + 1, dim=1, largest=False).values[:, k] for c in x.split(chunk)])


def in_manifold(queries: torch.Tensor, points: torch.Tensor, radii: torch.Tensor, chunk: int = 1000) -> torch.Tensor:
    """For each query q: is ||q - p_j|| <= r_j for some j (inside the union of the k-NN balls)? (Q,) bool."""
    return torch.cat([(torch.cdist(c, points) <= radii).any(dim=1) for c in queries.split(chunk)])


def precision_recall(feat_real, feat_fake, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019).

    Each set's manifold is the union of balls around its points, of radius the distance to the
    k-th nearest neighbour. precision = fraction of fakes inside the real manifold (are the fakes
    realistic?); recall = fraction of reals inside the fake manifold (is all of the data covered?).
    Distances are computed 1,000 rows at a time, so 10,000 x 10,000 needs ~40 MB, not 400.
    """
    real = torch.as_tensor(feat_real).detach().float()
    fake = torch.as_tensor(feat_fake).detach().float().to(real.device)
    precision = in_manifold(fake, real, knn_radii(real, k)).double().mean()
    recall = in_manifold(real, fake, knn_radii(fake, k)).double().mean()
    return float(precision), float(recall)


def roughness(x: torch.Tensor) -> float:
    """Mean absolute difference between neighbouring pixels of images (B, C, H, W), across rows and down
    columns: (mean |x[..., i, j+1] - x[..., i, j]| + mean |x[..., i+1, j] - x[..., i, j]|) / 2. A speckled
    ("salt and pepper") texture raises it; compare it with real images' (lesson 09)."""
    x = x.double()
    return float(((x[..., :, 1:] - x[..., :, :-1]).abs().mean() + (x[..., 1:, :] - x[..., :-1, :]).abs().mean()) / 2)
