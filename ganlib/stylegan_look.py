"""Looking at a trained StyleGAN generator (``ganlib.stylegan.Generator``): sampling at a truncation
psi, the style-mixing grid, the truncation strip and the noise's per-pixel standard deviation.
Pure functions that return image batches; ``viz.image_grid`` draws them."""

from __future__ import annotations

import torch

from .stylegan import Generator
from .stylegan_layers import mix


@torch.no_grad()
def sample(G: Generator, n: int, psi: float = 1.0, batch_size: int = 256, generator=None, device=None) -> torch.Tensor:
    """n images G(z, psi), z ~ N(0, I), in batches (for FID, precision and recall at each psi): (n, C, H, W)."""
    device = device or next(G.parameters()).device
    zs = torch.randn(n, G.z_dim, generator=generator).to(device).split(batch_size)
    return torch.cat([G(z, psi=psi) for z in zs])


@torch.no_grad()
def mixing_grid(G: Generator, ws_rows: torch.Tensor, ws_cols: torch.Tensor, crossover: int, stop: int | None = None,
                noise: list | None = None) -> torch.Tensor:
    """Style mixing: cell (i, j) keeps row i's styles except layers [crossover, stop), taken from column j.

    ws_*: (R, num_ws, w_dim) and (C, num_ws, w_dim); returns (R * C, ch, H, W), row-major
    (``viz.image_grid(x, nrow=C)``). With ``noise=G.random_noise(1)`` every cell has the same noise.
    """
    r, c = len(ws_rows), len(ws_cols)
    ws1 = ws_rows.repeat_interleave(c, dim=0)  # (R*C, num_ws, w_dim): row i, c times
    ws2 = ws_cols.repeat(r, 1, 1)  # (R*C, num_ws, w_dim): the columns, r times
    return G.synthesis(mix(ws1, ws2, crossover, stop), noise)


@torch.no_grad()
def truncation_strip(G: Generator, z: torch.Tensor, psis, noise: list | None = None) -> torch.Tensor:
    """G(z, psi) for each psi, the same z and noise: (len(psis) * B, ch, H, W), one row of B per psi."""
    noise = G.random_noise(len(z), z.device) if noise is None else noise
    return torch.cat([G(z, psi=float(psi), noise=noise) for psi in psis])


@torch.no_grad()
def noise_std_map(G: Generator, ws: torch.Tensor, n: int = 32, generator=None) -> torch.Tensor:
    """Stochastic variation: per-pixel std of G.synthesis(ws, noise) over n noise draws, styles fixed: (B, H, W)."""
    draws = [G.synthesis(ws, G.random_noise(len(ws), ws.device, generator)) for _ in range(n)]
    xs = torch.stack(draws)  # (n, B, C, H, W)
    return xs.std(dim=0).mean(dim=1)  # (B, C, H, W) -> (B, H, W)
