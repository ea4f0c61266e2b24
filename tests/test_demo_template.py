"""The demo head template (assets/head_template.obj) and the UV-buffer builder of spec 3.4."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from gghead_core.demo import template as T
from gghead_core.demo.uv_template import (
    TemplateError,
    build_uv_template,
    build_uv_template_from_obj,
    candidate_grid,
    load_obj,
    rasterize_uv,
)

# ---- the committed asset ------------------------------------------------------------------------------------


def test_template_script_reproduces_committed_asset(tmp_path: Path) -> None:
    assert T.TEMPLATE_OBJ.is_file(), "assets/head_template.obj is missing; run python -m gghead_core.demo.template"
    assert T.main(["--out-dir", str(tmp_path)]) == 0
    fresh = (tmp_path / "head_template.obj").read_text()
    committed = T.TEMPLATE_OBJ.read_text()
    if fresh != committed:
        # Allow a last-digit difference from another platform's libm, nothing more.
        a, b = load_obj(tmp_path / "head_template.obj"), load_obj(T.TEMPLATE_OBJ)
        assert np.array_equal(a.faces, b.faces)
        np.testing.assert_allclose(a.vertices, b.vertices, atol=1.5e-6, rtol=0)
        np.testing.assert_allclose(a.uvs, b.uvs, atol=1.5e-6, rtol=0)
    assert (tmp_path / "LICENSE.md").read_text() == T.LICENSE_MD.read_text()
    assert "project's own work" in T.LICENSE_MD.read_text()


def test_template_geometry_is_a_head_without_back() -> None:
    mesh = load_obj(T.TEMPLATE_OBJ)
    assert 1000 < len(mesh.vertices) < 6000  # "a few thousand vertices"
    lo, hi = mesh.vertices.min(axis=0), mesh.vertices.max(axis=0)
    assert -0.3 < lo[0] < -0.15 and 0.15 < hi[0] < 0.3  # head ~0.45 wide, symmetric
    assert lo[0] == pytest.approx(-hi[0], abs=1e-6)
    assert lo[1] == pytest.approx(T.NECK_BOTTOM_Y) and 0.2 < hi[1] < 0.4  # neck cut .. crown
    assert 0.12 < hi[2] < 0.25  # nose tip in front
    assert lo[2] > -0.3  # no back of the head
    assert mesh.uvs.min() >= 0.0 and mesh.uvs.max() <= 1.0
    # Faces are counter-clockwise seen from outside: normals point away from the head centre.
    v = mesh.vertices[mesh.faces]  # [F, 3, 3]
    normals = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    outward = ((v.mean(axis=1) - T.HEAD_CENTER) * normals).sum(axis=1) > 0
    assert outward.mean() > 0.97


def test_uv_layout_faces_forward() -> None:
    """The UV centre looks straight ahead; u grows toward +x and v toward -y (face upright in the plane)."""
    d = T.uv_to_direction(np.array([0.5, 0.6, 0.5]), np.array([0.5, 0.5, 0.6]))
    np.testing.assert_allclose(d[0], [0, 0, 1], atol=1e-12)
    assert d[1, 0] > 0 and abs(d[1, 1]) < 1e-12
    assert d[2, 1] < 0 and abs(d[2, 0]) < 1e-12


# ---- OBJ reading ----------------------------------------------------------------------------------------------


def test_load_obj_splits_vertices_with_several_uvs(tmp_path: Path) -> None:
    path = tmp_path / "m.obj"
    path.write_text(
        "v 0 0 0\nv 1 0 0\nv 0 1 0\nv 1 1 0\n"
        "vt 0 0\nvt 1 0\nvt 0 1\nvt 1 1\nvt 0.5 0.5\n"
        "f 1/1 2/2 3/3\nf 2/5 4/4 3/3\n"  # vertex 2 appears with two different UVs
    )
    mesh = load_obj(path)
    assert mesh.faces.tolist() == [[0, 1, 2], [3, 4, 2]]
    np.testing.assert_array_equal(mesh.vertices[3], [1, 0, 0])
    np.testing.assert_array_equal(mesh.uvs[3], [0.5, 0.5])
    np.testing.assert_array_equal(mesh.uvs[1], [1, 0])


@pytest.mark.parametrize(
    "text, message",
    [
        ("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n", "no texture coordinate"),
        ("v 0 0 0\nvt 0 0\nf 1/1 2/1 3/1\n", "out of range"),
        ("v 0 0 x\n", "malformed"),
        ("# nothing\n", "no faces"),
    ],
)
def test_load_obj_refuses_bad_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.obj"
    path.write_text(text)
    with pytest.raises(TemplateError, match=message):
        load_obj(path)


def test_load_obj_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="cannot read"):
        load_obj(tmp_path / "absent.obj")


# ---- UV buffers (spec 3.4) -------------------------------------------------------------------------------------


def _unit_square() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    uvs = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    vertices = np.array([[2 * u + 1, 3 * v - 1, u + v] for u, v in uvs])  # a linear function of (u, v)
    faces = np.array([[0, 1, 2], [1, 3, 2]])
    return vertices, faces, uvs


def test_uv_template_on_a_square_is_exact() -> None:
    vertices, faces, uvs = _unit_square()
    uv_grid, pos_map, points = build_uv_template(vertices, faces, uvs, plane_resolution=4, n_samples=5)
    # Texel centres (b + 0.5) / 4: the position map is the linear function there.
    c = (np.arange(4) + 0.5) / 4
    u, v = np.meshgrid(c, c, indexing="xy")
    expected = np.stack([2 * u + 1, 3 * v - 1, u + v])
    np.testing.assert_allclose(pos_map.numpy(), expected, atol=1e-6)
    # Candidates lin(-1, 1, 5); the outermost ones read half zero padding (0.5 < 0.99) and are dropped.
    kept = [-0.5, 0.0, 0.5]
    want = torch.tensor([[x, y] for y in kept for x in kept], dtype=torch.float32)  # row-major, (x, y)
    assert uv_grid.shape == (1, 9, 1, 2)
    torch.testing.assert_close(uv_grid[0, :, 0], want)
    # Template points: the linear function at u = (x + 1) / 2, v = (y + 1) / 2 (bilinear is exact for it).
    uu, vv = (want[:, 0] + 1) / 2, (want[:, 1] + 1) / 2
    torch.testing.assert_close(points[0], torch.stack([2 * uu + 1, 3 * vv - 1, uu + vv], dim=1), atol=1e-6, rtol=0)


def test_rasterize_lowest_index_triangle_wins_and_uncovered_stays_zero() -> None:
    uvs = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    faces = np.array([[0, 1, 2], [3, 4, 5]])  # the same UV triangle twice
    raster = rasterize_uv(faces, uvs, 8)
    covered = raster.barycentrics.sum(axis=-1) > 0
    assert covered[0, 0] and not covered[7, 7]  # lower-left half only
    assert (raster.vertex_ids[covered] == [0, 1, 2]).all()  # face 0, not the later face 1
    assert (raster.vertex_ids[~covered] == 0).all() and (raster.barycentrics[~covered] == 0).all()
    np.testing.assert_allclose(raster.barycentrics[covered].sum(axis=-1), 1.0, atol=1e-6)
    # Coverage counts only texels with a vertex id > 0 (the official rule).
    assert (raster.mask == covered).all()


def test_candidate_grid_order() -> None:
    g = candidate_grid(3)
    assert g.tolist() == [[-1, -1], [0, -1], [1, -1], [-1, 0], [0, 0], [1, 0], [-1, 1], [0, 1], [1, 1]]


def test_uv_template_refuses_bad_input() -> None:
    vertices, faces, uvs = _unit_square()
    with pytest.raises(TemplateError):
        build_uv_template(vertices, faces + 10, uvs, 4, 5)
    with pytest.raises(TemplateError):
        build_uv_template(vertices, faces, uvs[:2], 4, 5)
    with pytest.raises(TemplateError, match="no UV sample"):
        build_uv_template(vertices, faces, uvs * 0.05, 4, 5)  # a layout too small for any lattice point


def test_demo_template_buffers() -> None:
    uv_grid, pos_map, points = build_uv_template_from_obj(T.TEMPLATE_OBJ, 128, 128)
    g = uv_grid.shape[1]
    assert 0.6 * 128**2 < g < 0.85 * 128**2  # the UV disk minus the neck cut
    assert uv_grid.abs().max() <= 1.0 and pos_map.shape == (3, 128, 128)
    # The kept points lie on the template surface, up to the chord error of mesh and texel interpolation
    # (largest at creases such as the nose's underside).
    u = ((uv_grid[0, :, 0, 0] + 1) / 2).numpy()
    v = ((uv_grid[0, :, 0, 1] + 1) / 2).numpy()
    smooth, _ = T.surface_points(u, v)
    dev = np.abs(points[0].numpy() - smooth).max(axis=1)
    assert np.quantile(dev, 0.99) < 0.01 and dev.max() < 0.05
