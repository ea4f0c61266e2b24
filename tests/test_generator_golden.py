"""The generator reproduces the official GGHead code's outputs on the shared fixture (golden.npz)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gghead_core import frontal_camera, load_generator

CASES = [(seed, psi) for seed in (0, 1, 2) for psi in (1.0, 0.7)]
ATOL = 1e-5  # the issue asks for 1e-4; the fixture README measured ~3e-6 between equivalent official variants


@pytest.fixture(scope="module")
def G(fixture_ckpt):
    return load_generator(fixture_ckpt)


def _max_err(a: torch.Tensor, b: np.ndarray) -> float:
    a = a.detach().cpu().numpy()
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.abs(a - b).max())


def test_frontal_label_matches_official(golden):
    assert _max_err(frontal_camera().label()[None], golden["c"]) == 0.0


def test_template_buffers_are_read_as_stored(G, golden):
    assert _max_err(G._uv_grid, golden["template_uv_grid"]) == 0.0
    assert _max_err(G._flame_vertices, golden["template_flame_vertices"]) == 0.0
    assert _max_err(G._uv_position_map, golden["template_uv_position_map"]) == 0.0
    assert G.num_gaussians == golden["template_uv_grid"].shape[1] == 3596
    assert (G.z_dim, G.w_dim, G.c_dim, G.num_ws, G.sh_degree) == (512, 512, 25, 10, 1)


@pytest.mark.parametrize("seed,psi", CASES)
def test_every_stage_matches_golden(G, golden, seed, psi):
    p = f"seed{seed}_psi{psi}_"
    z = G.z_from_seed(seed)
    assert _max_err(z, golden[f"seed{seed}_z"]) == 0.0
    with torch.no_grad():
        ws = G.mapping(z, truncation_psi=psi)
        planes = G.synthesize_planes(ws, noise_mode="const")
        uv_map = G.position_adjusted_planes(planes)
        raw = G.sample_uv(planes)
        attrs = G.decode_attributes(raw)
        g = G.activate(attrs)
    assert _max_err(ws, golden[p + "ws"]) <= 1e-6
    assert _max_err(planes, golden[p + "planes"]) <= ATOL
    assert _max_err(uv_map[:, 0:3], golden[p + "uv_map_position_after_zero_conv"]) <= ATOL
    for name, part in G.split_raw(raw).items():
        assert _max_err(part, golden[p + "raw_" + name.lower()]) <= ATOL, name
    assert _max_err(attrs.position, golden[p + "attr_position"]) <= ATOL
    assert _max_err(attrs.log_scale, golden[p + "attr_scale"]) <= ATOL
    assert _max_err(attrs.rotation, golden[p + "attr_rotation"]) <= ATOL
    assert _max_err(attrs.color, golden[p + "attr_color"]) <= ATOL
    assert _max_err(attrs.opacity_logit, golden[p + "attr_opacity"]) <= ATOL
    # the final, activated attributes handed to the rasterizer
    assert _max_err(g.means[0], golden[p + "get_xyz"]) <= ATOL
    assert _max_err(g.scales[0], golden[p + "get_scaling"]) <= ATOL
    assert _max_err(g.quats[0], golden[p + "get_rotation"]) <= ATOL
    assert _max_err(g.opacities[0], golden[p + "get_opacity"][:, 0]) <= ATOL
    assert _max_err(g.sh[0], golden[p + "get_features"]) <= ATOL


def test_synthesis_entry_point_equals_the_steps(G, golden):
    with torch.no_grad():
        ws = G.mapping(G.z_from_seed(1), truncation_psi=0.7)
        g = G.synthesis(ws, noise_mode="const")
    assert g.batch_size == 1 and g.num_gaussians == 3596 and g.sh_degree == 1
    assert _max_err(g.means[0], golden["seed1_psi0.7_get_xyz"]) <= ATOL


def test_batched_mapping_and_synthesis_match_single(G, golden):
    z = torch.cat([G.z_from_seed(s) for s in (0, 1, 2)])
    with torch.no_grad():
        ws = G.mapping(z, truncation_psi=0.7)
        g = G.synthesis(ws)
    for i, seed in enumerate((0, 1, 2)):
        assert _max_err(ws[i : i + 1], golden[f"seed{seed}_psi0.7_ws"]) <= ATOL  # batched matmul rounds differently
        assert _max_err(g.scales[i], golden[f"seed{seed}_psi0.7_get_scaling"]) <= ATOL
