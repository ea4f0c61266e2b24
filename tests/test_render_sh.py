"""SH colours against the official code's rasterizer inputs (golden fixture) and basic SH properties."""

from __future__ import annotations

import pytest
import torch

from gghead_core.render import FRONTAL_SH_CENTER
from gghead_core.render._sh import SH_C0, eval_sh, sh_degree_from_coeffs, sh_to_colors

GOLDEN_PREFIXES = [f"seed{s}_psi{p}" for s in (0, 1, 2) for p in ("1.0", "0.7")]


@pytest.mark.parametrize("prefix", GOLDEN_PREFIXES)
def test_colors_match_official_colors_precomp(golden, prefix):
    xyz = torch.from_numpy(golden[f"{prefix}_get_xyz"])  # [N, 3]
    features = torch.from_numpy(golden[f"{prefix}_get_features"])  # [N, 4, 3] coefficient-major, RGB-minor
    want = torch.from_numpy(golden[f"{prefix}_rast_colors_precomp"])  # [N, 3]
    assert tuple(golden["rast_campos"].tolist()) == pytest.approx(FRONTAL_SH_CENTER)
    got = sh_to_colors(xyz, features, torch.tensor(FRONTAL_SH_CENTER))
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-6)
    # The batched layout [B, N, K, 3] used by Gaussians.sh gives the same.
    torch.testing.assert_close(sh_to_colors(xyz[None], features[None], torch.tensor(FRONTAL_SH_CENTER))[0], want)


def test_degree_zero_is_view_independent_dc():
    sh = torch.randn(5, 1, 3)
    dirs = torch.nn.functional.normalize(torch.randn(5, 3), dim=-1)
    torch.testing.assert_close(eval_sh(sh, dirs), SH_C0 * sh[:, 0])


def test_degree_one_signs_follow_3dgs():
    # rgb = C0 k0 - C1 y k1 + C1 z k2 - C1 x k3 (spec 4.5)
    sh = torch.zeros(3, 4, 3)
    sh[:, 1, 0] = 1.0  # k1 -> red
    sh[:, 2, 1] = 1.0  # k2 -> green
    sh[:, 3, 2] = 1.0  # k3 -> blue
    dirs = torch.eye(3)  # +x, +y, +z
    out = eval_sh(sh, dirs)
    c1 = 0.4886025119029199
    torch.testing.assert_close(out, torch.tensor([[0, 0, -c1], [-c1, 0, 0], [0, c1, 0]]))


@pytest.mark.parametrize("degree", [2, 3])
def test_higher_degrees_are_orthonormal_on_the_sphere(degree):
    # Real SH are orthonormal: E[Y_i Y_j] over uniform directions = delta_ij / (4 pi). Checks every constant
    # and polynomial of degrees 2 and 3 (a wrong sign or factor breaks orthogonality or the norm).
    k = (degree + 1) ** 2
    # Fibonacci lattice: near-uniform points, so the average is an accurate quadrature of the sphere.
    m = 20_000
    i = torch.arange(m, dtype=torch.float64) + 0.5
    z = 1 - 2 * i / m
    phi = torch.pi * (3 - 5**0.5) * i
    r = torch.sqrt(1 - z * z)
    dirs = torch.stack([r * torch.cos(phi), r * torch.sin(phi), z], dim=-1)  # [M, 3]
    one_hot = torch.eye(k, dtype=torch.float64)[:, :, None].expand(k, k, 3)  # Gaussian i has only coeff i
    basis = eval_sh(one_hot[None], dirs[:, None, :])[..., 0]  # [M, K]: Y_i(d)
    gram = basis.T @ basis / m * 4 * torch.pi
    torch.testing.assert_close(gram, torch.eye(k, dtype=torch.float64), atol=1e-3, rtol=0)


def test_colors_clamped_below_not_above_and_bad_counts():
    sh = torch.zeros(2, 1, 3)
    sh[0, 0] = 10.0
    sh[1, 0] = -10.0
    cols = sh_to_colors(torch.zeros(2, 3), sh, torch.tensor([0.0, 0.0, 1.0]))
    assert cols[0].min() > 1.0 and cols[1].max() == 0.0
    with pytest.raises(ValueError, match="not \\(d\\+1\\)\\^2"):
        sh_degree_from_coeffs(5)


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_matches_gsplat_pure_torch_sh(degree):
    # gsplat's pure-PyTorch SH (its reference for the CUDA kernel) is an independent implementation of the
    # same 3DGS convention; it runs on CPU without touching gsplat's CUDA extension.
    impl = pytest.importorskip("gsplat.cuda._torch_impl", reason="gsplat not installed")
    k = (degree + 1) ** 2
    g = torch.Generator().manual_seed(degree)
    sh = torch.randn(500, k, 3, generator=g, dtype=torch.float64)
    dirs = torch.nn.functional.normalize(torch.randn(500, 3, generator=g, dtype=torch.float64), dim=-1)
    torch.testing.assert_close(eval_sh(sh, dirs), impl._spherical_harmonics(degree, dirs, sh))
