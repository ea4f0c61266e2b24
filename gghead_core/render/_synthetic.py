"""Synthetic head-like Gaussian clouds for benchmarks and renderer tests (no checkpoint needed)."""

from __future__ import annotations

import torch

from ..gaussians import Gaussians
from ._sh import SH_C0


def synthetic_head(
    num_gaussians: int,
    *,
    seed: int = 0,
    batch: int = 1,
    sh_degree: int = 1,
    log_scale: float = -5.0,
    opacity: float = 0.9,
    semi_axes: tuple[float, float, float] = (0.22, 0.28, 0.24),
) -> Gaussians:
    """Gaussians scattered on an ellipsoid about 0.6 units tall, roughly like a GGHead head.

    Positions lie on the ellipsoid surface (plus 1% radial jitter), scales are ``exp(log_scale + 0.3 n)``,
    quaternions random, opacities ``opacity +- 0.1`` clipped to [0, 1], colours a smooth function of position
    (so images have structure) stored as SH DC plus small higher-order terms.
    """
    g = torch.Generator().manual_seed(seed)
    n = num_gaussians
    dirs = torch.randn(batch, n, 3, generator=g)
    dirs = dirs / dirs.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    radial = 1.0 + 0.01 * torch.randn(batch, n, 1, generator=g)
    means = dirs * torch.tensor(semi_axes) * radial
    quats = torch.randn(batch, n, 4, generator=g)
    quats = quats / quats.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    scales = torch.exp(log_scale + 0.3 * torch.randn(batch, n, 3, generator=g))
    opacities = (opacity + 0.1 * (torch.rand(batch, n, generator=g) * 2 - 1)).clamp(0.0, 1.0)

    k = (sh_degree + 1) ** 2
    base = 0.5 + 0.4 * torch.sin(3.0 * means + torch.tensor([0.0, 2.0, 4.0]))  # [B, N, 3] in (0.1, 0.9)
    sh = 0.1 * torch.randn(batch, n, k, 3, generator=g)
    sh[:, :, 0, :] = (base - 0.5) / SH_C0  # eval: SH_C0 * dc + 0.5 = base (before view-dependent terms)
    return Gaussians(means=means, quats=quats, scales=scales, opacities=opacities, sh=sh)


def frontal_pixel_scale(resolution: int, focal: float = 4.2647, radius: float = 2.7) -> float:
    """Pixels per world unit at the origin for GGHead's frontal camera (for choosing test scales)."""
    return focal * resolution / radius


__all__ = ["synthetic_head", "frontal_pixel_scale"]
