"""Real spherical harmonics (degrees 0..3) with the constants and sign conventions of 3D Gaussian Splatting.

GGHead evaluates its per-Gaussian SH coefficients once per head from a reference camera centre and hands the
rasterizer precomputed colours (spec 4.5): ``rgb = max(eval_sh(normalize(pos - ref_centre)) + 0.5, 0)``.
Colours are not clamped above 1 (the official rasterizer does not clamp either).
"""

from __future__ import annotations

import math

import torch

# Standard real-SH normalisation constants as used by 3DGS (sqrt((2l+1)/(4 pi) * (l-m)!/(l+m)!) times the
# Legendre factors); the signs of the degree-1 terms follow 3DGS (-y, +z, -x).
SH_C0 = 0.28209479177387814
SH_C1 = 0.4886025119029199
SH_C2 = (
    1.0925484305920792,
    -1.0925484305920792,
    0.31539156525252005,
    -1.0925484305920792,
    0.5462742152960396,
)
SH_C3 = (
    -0.5900435899266435,
    2.890611442640554,
    -0.4570457994644658,
    0.3731763325901154,
    -0.4570457994644658,
    1.445305721320277,
    -0.5900435899266435,
)


def sh_degree_from_coeffs(num_coeffs: int) -> int:
    """``K = (degree + 1)^2`` -> degree; raises for K that is not one of 1, 4, 9, 16."""
    degree = round(math.sqrt(num_coeffs)) - 1
    if (degree + 1) ** 2 != num_coeffs or not 0 <= degree <= 3:
        raise ValueError(f"SH coefficient count {num_coeffs} is not (d+1)^2 for a degree d in 0..3")
    return degree


def eval_sh(sh: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    """Evaluate real SH of degree ``sqrt(K) - 1`` in unit directions.

    Args:
        sh: ``[..., K, 3]`` coefficients, coefficient-major and RGB-minor (our ``Gaussians.sh`` layout).
        dirs: ``[..., 3]`` unit directions (x, y, z in world space).
    Returns:
        ``[..., 3]`` the raw SH value per channel (no +0.5 offset, no clamping).
    """
    degree = sh_degree_from_coeffs(sh.shape[-2])
    x, y, z = (dirs[..., i : i + 1] for i in range(3))  # each [..., 1], broadcast over RGB
    c = [sh[..., k, :] for k in range(sh.shape[-2])]  # each [..., 3]

    result = SH_C0 * c[0]
    if degree >= 1:
        result = result - SH_C1 * y * c[1] + SH_C1 * z * c[2] - SH_C1 * x * c[3]
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        xy, yz, xz = x * y, y * z, x * z
        result = (
            result
            + SH_C2[0] * xy * c[4]
            + SH_C2[1] * yz * c[5]
            + SH_C2[2] * (2.0 * zz - xx - yy) * c[6]
            + SH_C2[3] * xz * c[7]
            + SH_C2[4] * (xx - yy) * c[8]
        )
    if degree >= 3:
        result = (
            result
            + SH_C3[0] * y * (3.0 * xx - yy) * c[9]
            + SH_C3[1] * xy * z * c[10]
            + SH_C3[2] * y * (4.0 * zz - xx - yy) * c[11]
            + SH_C3[3] * z * (2.0 * zz - 3.0 * xx - 3.0 * yy) * c[12]
            + SH_C3[4] * x * (4.0 * zz - xx - yy) * c[13]
            + SH_C3[5] * z * (xx - yy) * c[14]
            + SH_C3[6] * x * (xx - 3.0 * yy) * c[15]
        )
    return result


def sh_to_colors(means: torch.Tensor, sh: torch.Tensor, ref_center: torch.Tensor) -> torch.Tensor:
    """Per-Gaussian RGB as GGHead hands it to the rasterizer: ``max(eval_sh(d) + 0.5, 0)``.

    Args:
        means: ``[..., N, 3]`` Gaussian centres.
        sh: ``[..., N, K, 3]`` SH coefficients.
        ref_center: ``[3]`` (or broadcastable ``[..., 1, 3]``) centre the view directions start from.
    Returns:
        ``[..., N, 3]`` colours, >= 0, not clamped above.
    """
    ref_center = torch.as_tensor(ref_center, dtype=means.dtype, device=means.device)
    dirs = means - ref_center  # [..., N, 3]
    # 3DGS divides by the plain norm; a Gaussian exactly at the reference centre would give NaN there. We
    # guard with a tiny epsilon (it only changes that degenerate case).
    # (the norm as an explicit sum of squares: torch's generic norm over a last dim of 3 is ~20x slower on CPUs)
    norm = (dirs[..., 0:1].square() + dirs[..., 1:2].square() + dirs[..., 2:3].square()).sqrt()
    dirs = dirs / norm.clamp_min(1e-12)
    return torch.clamp_min(eval_sh(sh, dirs) + 0.5, 0.0)
