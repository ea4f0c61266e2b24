"""The procedural head family the demo model is trained on (gghead_core.demo.heads)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gghead_core.config import SH_C0
from gghead_core.demo import heads as H
from gghead_core.demo.train_demo import demo_config
from gghead_core.generator import Generator
from gghead_core.render._torch_ref import quat_to_rotmat

RES = 128  # the demo model's plane resolution
SAMPLES = 256


@pytest.fixture(scope="module")
def tpl() -> H.HeadTemplate:
    return H.build_head_template(RES, SAMPLES)


@pytest.fixture(scope="module")
def config():
    import dataclasses

    return dataclasses.replace(demo_config(), plane_resolution=RES, n_uniform_flame_vertices=SAMPLES)


def test_params_from_z_is_uniform_like_and_smooth() -> None:
    z = torch.randn(4000, 32, generator=torch.Generator().manual_seed(0))
    p = H.params_from_z(z).values
    assert p.shape == (4000, H.NUM_PARAMS)
    assert p.min() >= 0 and p.max() <= 1
    assert (p.mean(dim=0) - 0.5).abs().max() < 0.03  # the normal CDF makes each parameter ~uniform
    z0 = z[:1]
    dz = 1e-3 * torch.randn(1, 32, generator=torch.Generator().manual_seed(1))
    assert (H.params_from_z(z0 + dz).values - H.params_from_z(z0).values).abs().max() < 2e-3
    # The seed helper uses the generator's latent convention.
    seed_z = torch.randn(1, 32, generator=torch.Generator("cpu").manual_seed(7))
    torch.testing.assert_close(H.sample_params(7).values, H.params_from_z(seed_z).values)


def test_params_refuse_short_latents() -> None:
    with pytest.raises(ValueError):
        H.params_from_z(torch.zeros(1, 5))
    with pytest.raises(ValueError):
        H.HeadParams(torch.zeros(1, 3))


def test_attributes_are_in_plausible_ranges(tpl: H.HeadTemplate) -> None:
    params = H.params_from_z(torch.randn(6, 32, generator=torch.Generator().manual_seed(3)))
    a = H.head_attributes(params, tpl)
    m = tpl.loss_mask > 0
    assert a.offset.abs().max() < 0.25 * 0.61
    ls = a.log_scale[:, :, m]
    # below the decoding's max_scale (-3) with room to spare: the largest Gaussians, on the coarsely sampled back
    # of the head, are clamped at 0.045 (log -3.1)
    assert ls.max() < -3.09 and ls.min() > -12
    # flat Gaussians: the smallest axis is several times thinner than the largest
    s = ls.exp()
    assert (s.min(dim=1).values * 3 < s.max(dim=1).values).all()
    assert a.rgb.min() >= H.COLOR_MIN and a.rgb.max() <= H.COLOR_MAX
    assert a.opacity.min() > 0 and a.opacity.max() < 1
    # most of the head is opaque skin or hair
    assert (a.opacity[:, 0, m] > 0.9).float().mean() > 0.85
    assert a.axis_angle[:, :, m].abs().max() < 2 * math.pi


def test_encode_decode_roundtrip(tpl: H.HeadTemplate, config) -> None:
    params = H.params_from_z(torch.randn(2, 32, generator=torch.Generator().manual_seed(4)))
    a = H.head_attributes(params, tpl)
    raw = H.encode_raw(a, config)
    assert raw.shape == (2, config.n_uv_channels, RES, RES) and torch.isfinite(raw).all()
    d = H.decode_planes(raw, config)
    torch.testing.assert_close(d["offset"], a.offset, atol=1e-6, rtol=0)
    torch.testing.assert_close(d["log_scale"], a.log_scale, atol=1e-4, rtol=0)
    torch.testing.assert_close(d["axis_angle"], a.axis_angle, atol=1e-5, rtol=0)
    torch.testing.assert_close(0.5 + SH_C0 * d["color"][:, :3], a.rgb, atol=1e-5, rtol=0)
    assert d["color"][:, 3:].abs().max() < 1e-5  # no view dependence
    torch.testing.assert_close(d["opacity"], a.opacity, atol=1e-5, rtol=0)


def test_generator_decoding_gives_surface_aligned_gaussians(tpl: H.HeadTemplate, config) -> None:
    """Through the real generator decoding (rotation quirk included) the thin axis is the surface normal."""
    G = Generator(config, tpl.uv_grid, tpl.uv_position_map, tpl.template_points)
    params = H.params_from_z(torch.randn(1, 32, generator=torch.Generator().manual_seed(5)))
    raw = H.encode_raw(H.head_attributes(params, tpl), config)
    grid = G._uv_grid
    sampled = F.grid_sample(raw, grid, mode="bilinear", align_corners=False)[..., 0].permute(0, 2, 1)
    g = G.activate(G.decode_attributes(sampled))
    normals = F.grid_sample(tpl.normal[None], grid, mode="bilinear", align_corners=False)[0, :, :, 0].T
    normals = F.normalize(normals, dim=-1)
    rot = quat_to_rotmat(g.quats[0])  # [G, 3, 3]
    thin = g.scales[0].argmin(dim=-1)
    thin_axis = rot[torch.arange(rot.shape[0]), :, thin]  # [G, 3]
    alignment = (thin_axis * normals).sum(-1).abs()
    assert alignment.median() > 0.99 and (alignment > 0.9).float().mean() > 0.97
    # positions stay near the template, colours match the albedo the family asked for
    assert (g.means[0] - G._flame_vertices[0]).abs().max() < 0.16


def test_rotation_field_is_continuous(tpl: H.HeadTemplate) -> None:
    m = (tpl.loss_mask > 0).numpy()
    a = tpl.axis_angle.numpy()
    jumps = []
    for axis in (1, 2):
        d = np.abs(np.diff(a, axis=axis)).max(axis=0)
        both = (m[1:, :] & m[:-1, :]) if axis == 1 else (m[:, 1:] & m[:, :-1])
        jumps.append(d[both])
    jumps = np.concatenate(jumps)
    # a sign flip of the lift would jump by 2 pi; the field only turns quickly at creases (nose underside)
    assert np.quantile(jumps, 0.99) < 0.6 and jumps.max() < 3.0


def test_seeds_give_different_heads_and_median_is_average(tpl: H.HeadTemplate) -> None:
    params = H.HeadParams(torch.cat([H.sample_params(s).values for s in range(4)]))
    rgb = H.head_attributes(params, tpl).rgb
    m = tpl.loss_mask > 0
    for i in range(4):
        for j in range(i + 1, 4):
            assert (rgb[i] - rgb[j]).abs()[:, m].mean() > 0.02
    mean_head = H.head_attributes(H.mean_params(), tpl)
    assert torch.isfinite(mean_head.rgb).all()


def test_every_seed_has_hair_over_the_back_and_crown_and_a_skin_neck(tpl: H.HeadTemplate) -> None:
    """The closed template's back is covered: hair round the back pole and over the crown for every seed, with a
    per-seed lower edge (hair length) and colour; skin on the front of the neck and its cap; opaque everywhere."""
    params = H.HeadParams(torch.cat([H.sample_params(s).values for s in range(8)]))
    a = H.head_attributes(params, tpl)
    m = tpl.loss_mask > 0
    back = m & (tpl.az.abs() > 2.6) & (tpl.el > -0.3)  # round the back pole, above the nape
    crown = m & (tpl.el > 1.0)
    assert back.sum() > 200 and crown.sum() > 50
    assert (a.hair[:, 0, back] > 0.99).all() and (a.hair[:, 0, crown] > 0.99).all()
    throat = m & (tpl.az.abs() < 0.5) & (tpl.position[1] < -0.3)  # front of the neck
    cap = m & (tpl.position[1] < -0.449)  # the flat cut under the neck
    assert throat.sum() > 20 and cap.sum() > 20
    assert (a.hair[:, 0, throat] < 0.01).all() and (a.hair[:, 0, cap] < 0.01).all()
    # no holes: the whole surface is opaque
    assert a.opacity[:, 0, m].min() > 0.97
    # per seed: the hair reaches down the back of the neck to different heights, in different colours
    nape = m & (tpl.az.abs() > 2.8)
    lowest = torch.stack([tpl.el[nape][a.hair[i, 0, nape] > 0.5].min() for i in range(8)])  # [8]
    assert float(lowest.max() - lowest.min()) > 0.15
    hair_rgb = a.rgb[:, :, back].mean(dim=-1)  # [8, 3]
    assert float(torch.cdist(hair_rgb, hair_rgb).max()) > 0.2
