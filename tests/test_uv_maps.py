"""UV attribute maps and the texel <-> Gaussian mapping, checked against the generator's own sampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gghead_core import Generator, load_generator
from gghead_core.pipeline import LatentSpec, make_ws
from gghead_core.uv_maps import (
    MAP_INFO,
    encode_png16,
    map_to_uint16,
    sample_coordinates,
    texel_mapping,
    uv_maps,
)


@pytest.fixture(scope="module")
def demo():
    return load_generator(None)


@pytest.fixture(scope="module", params=["demo", "official"])
def any_generator(request, demo):
    if request.param == "demo":
        return demo
    return load_generator(request.getfixturevalue("fixture_ckpt"))


def _sampled(G: Generator, planes: torch.Tensor) -> torch.Tensor:
    """The generator's own sampling of ``planes [B, C, R, R]`` -> ``[B, G, C]`` (zero-conv only touches the
    position channels, which these tests leave alone)."""
    with torch.no_grad():
        return G.sample_uv(planes)


def test_owner_texel_is_where_the_generator_samples(any_generator):
    """Planes holding each texel's own column / row index, sampled by ``G.sample_uv``, return every Gaussian's
    continuous texel coordinates (bilinear interpolation of a linear ramp is exact inside the plane)."""
    G = any_generator
    r = G.plane_resolution
    s = G.config.attribute_slices()["SCALE"].start
    planes = torch.zeros(1, G.config.n_uv_channels, r, r)
    planes[0, s] = torch.arange(r, dtype=torch.float32)[None, :]  # column index
    planes[0, s + 1] = torch.arange(r, dtype=torch.float32)[:, None]  # row index
    planes[0, s + 2] = 1.0  # reads 1 only where the whole bilinear footprint is inside the plane
    raw = _sampled(G, planes)[0].numpy()
    inside = np.abs(raw[:, s + 2] - 1.0) < 1e-6
    assert inside.mean() > 0.9
    measured = np.stack([raw[:, s + 1], raw[:, s]], axis=1)  # (row, col)
    mapping = texel_mapping(G)
    np.testing.assert_allclose(mapping.sample_rc[inside], measured[inside], atol=1e-4)
    np.testing.assert_array_equal(mapping.owner_rc[inside], np.floor(measured[inside] + 0.5).astype(np.int64))
    assert mapping.counts().sum() == G.num_gaussians


def test_owner_texel_has_the_largest_bilinear_weight(any_generator):
    """A delta at texel t and at each of its 8 neighbours, sampled by the generator: every Gaussian that t owns
    takes its largest weight from t, and every Gaussian that weighs t strictly most is owned by t."""
    G = any_generator
    r = G.plane_resolution
    mapping = texel_mapping(G)
    s = G.config.attribute_slices()["OPACITY"].start
    counts = mapping.counts()
    rng = np.random.default_rng(0)
    rows, cols = np.nonzero(counts[1:-1, 1:-1] > 0)
    picks = rng.choice(len(rows), size=12, replace=False)
    for k in picks:
        tr, tc = int(rows[k]) + 1, int(cols[k]) + 1
        planes = torch.zeros(9, G.config.n_uv_channels, r, r)
        offsets = [(dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1)]
        for b, (dr, dc) in enumerate(offsets):
            planes[b, s, tr + dr, tc + dc] = 1.0
        w = _sampled(G, planes)[:, :, s].numpy()  # [9, G] weight of each texel of the neighbourhood
        centre = offsets.index((0, 0))
        owned = mapping.gaussians_at(tr, tc)
        assert owned.size > 0
        assert np.all(w[centre, owned] >= 0.25 - 1e-6)
        assert np.all(w[centre, owned] >= w[:, owned].max(axis=0) - 1e-6)
        others = np.delete(w, centre, axis=0)
        strictly = np.nonzero(w[centre] > others.max(axis=0) + 1e-6)[0]
        assert set(strictly.tolist()) <= set(owned.tolist())


def test_mapping_queries(any_generator):
    G = any_generator
    m = texel_mapping(G)
    g = G.num_gaussians // 3
    row, col = m.texel_of(g)
    assert g in m.gaussians_at(row, col)
    box = m.gaussians_in_box(row - 2, col - 2, row + 3, col + 3)
    expected = [i for i in range(G.num_gaussians)
                if row - 2 <= m.owner_rc[i, 0] < row + 3 and col - 2 <= m.owner_rc[i, 1] < col + 3]
    assert box.tolist() == expected
    assert m.gaussians_in_box(5, 5, 5, 9).size == 0
    assert m.gaussians_at(-1, 0).size == 0
    # nearest: the Gaussian's own sample point is nearest to itself
    sr, sc = m.sample_rc[g]
    assert m.nearest(sr, sc) == g
    assert m.nearest(-50.0, -50.0) is None
    empty = np.argwhere(m.counts() == 0)
    for er, ec in empty[:50]:
        sel = m.select(int(er), int(ec))
        assert sel.size <= 1
        if sel.size:
            assert np.hypot(*(m.sample_rc[sel[0]] - (er, ec))) <= 1.0
    with pytest.raises(IndexError):
        m.texel_of(G.num_gaussians)


def test_sample_coordinates_align_corners():
    grid = torch.tensor([[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0]]).reshape(1, 3, 1, 2)
    np.testing.assert_allclose(sample_coordinates(grid, 8, False), [[-0.5, -0.5], [7.5, 7.5], [3.5, 3.5]])
    np.testing.assert_allclose(sample_coordinates(grid, 8, True), [[0, 0], [7, 7], [3.5, 3.5]])


def test_maps_equal_the_generators_outputs(demo):
    """Raw planes are the generator's planes bit for bit; decoded maps equal the Gaussians a generator with
    the same weights spawns exactly at texel centres (where bilinear sampling reads one texel alone)."""
    G = demo
    latent = LatentSpec(seed=3, psi=0.6)
    maps = uv_maps(G, latent)
    ws = make_ws(G, latent)
    with torch.no_grad():
        planes = G.position_adjusted_planes(G.synthesize_planes(ws, noise_mode="const").to(torch.float32))
    assert torch.equal(torch.from_numpy(maps.raw_planes), planes[0])

    r = G.plane_resolution
    rng = np.random.default_rng(1)
    texels = rng.choice(r * r, size=600, replace=False)
    rows, cols = texels // r, texels % r
    grid = torch.tensor(np.stack([(2 * cols + 1) / r - 1, (2 * rows + 1) / r - 1], axis=1),
                        dtype=torch.float32).reshape(1, -1, 1, 2)
    template = torch.from_numpy(maps.maps["template_position"][rows, cols]).reshape(1, -1, 3)
    G2 = Generator(G.config, uv_grid=grid, uv_position_map=G._uv_position_map, template_points=template)
    state = {k: v for k, v in G.state_dict().items() if k not in ("_uv_grid", "_flame_vertices")}
    G2.load_state_dict(state, strict=False)
    G2.eval()
    with torch.no_grad():
        g2 = G2.synthesis(ws, noise_mode="const")
    m = maps.maps
    np.testing.assert_allclose(m["offset_xyz"][rows, cols], (g2.means[0] - template[0]).numpy(), atol=2e-7)
    np.testing.assert_allclose(m["opacity"][rows, cols], g2.opacities[0].numpy(), rtol=0, atol=1e-7)
    np.testing.assert_allclose(m["log_scale"][rows, cols], torch.log(g2.scales[0]).mean(1).numpy(), atol=1e-5)
    dc_rgb = np.maximum(0.28209479177387814 * g2.sh[0, :, 0].numpy() + 0.5, 0)
    np.testing.assert_allclose(m["color"][rows, cols], dc_rgb, atol=1e-6)
    q = g2.quats[0].numpy()
    q = q * np.where(q[:, :1] < 0, -1, 1)
    np.testing.assert_allclose(m["rotation_axis"][rows, cols], q[:, 1:], atol=1e-6)
    np.testing.assert_allclose(m["rotation_angle"][rows, cols], np.degrees(2 * np.arccos(np.clip(q[:, 0], -1, 1))),
                               atol=1e-3)
    np.testing.assert_allclose(m["offset_magnitude"][rows, cols], np.linalg.norm(m["offset_xyz"][rows, cols], axis=1),
                               rtol=1e-6)


def test_maps_shapes_ranges_and_masks(any_generator):
    G = any_generator
    maps = uv_maps(G, LatentSpec(seed=0))
    r = G.plane_resolution
    assert set(maps.maps) == set(MAP_INFO)
    for name, info in MAP_INFO.items():
        arr = maps.maps[name]
        assert arr.dtype == np.float32
        assert arr.shape == ((r, r) if info.channels == 1 else (r, r, 3)), name
        lo, hi = maps.ranges[name]
        assert hi > lo, name
        spawn = maps.maps["spawn_mask"] > 0
        if info.fixed_range is None and name != "template_position":
            vals = arr[spawn]
            assert vals.min() >= lo - 1e-6 and vals.max() <= hi + 1e-6, name
    counts = texel_mapping(G).counts()
    np.testing.assert_array_equal(maps.maps["spawn_count"], counts)
    # every Gaussian spawns on the template: its owner texel is covered (or next to a covered one at the rim)
    cov = maps.maps["template_coverage"] > 0
    grown = cov.copy()
    grown[1:] |= cov[:-1]
    grown[:-1] |= cov[1:]
    grown[:, 1:] |= grown[:, :-1].copy()
    grown[:, :-1] |= grown[:, 1:].copy()
    assert np.all(grown[counts > 0])
    assert maps.maps["offset_magnitude"][counts > 0].max() < G.config.position_range * np.sqrt(3) + 1e-6


def test_png16_roundtrip(tmp_path):
    from PIL import Image

    grey = (np.arange(12 * 10).reshape(12, 10) * 500).astype(np.uint16)
    (tmp_path / "g.png").write_bytes(encode_png16(grey))
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "g.png")).astype(np.uint16), grey)
    rgb = np.stack([grey, grey[::-1], 65535 - grey], axis=-1)
    (tmp_path / "c.png").write_bytes(encode_png16(rgb))
    import imageio.v3 as iio

    back = iio.imread(tmp_path / "c.png")  # Pillow reads 16-bit RGB as 8-bit: the high byte
    np.testing.assert_array_equal(back.astype(np.int64), (rgb >> 8).astype(np.int64))
    with pytest.raises(ValueError):
        encode_png16(rgb.astype(np.float32))
    v = np.array([-1.0, 0.0, 0.5, 1.0, 2.0])
    np.testing.assert_array_equal(map_to_uint16(v, (0.0, 1.0)), [0, 0, 32768, 65535, 65535])
