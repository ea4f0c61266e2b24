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


def _welded_faces(mesh) -> tuple[np.ndarray, np.ndarray]:
    """Faces with vertices merged by position (the UV rim's copies of the back pole become one vertex), without
    the faces that collapse to zero area there: ``(faces [F', 3], area [F])``."""
    v = mesh.vertices[mesh.faces]  # [F, 3, 3]
    area = 0.5 * np.linalg.norm(np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0]), axis=1)
    _, weld = np.unique(np.round(mesh.vertices, 5), axis=0, return_inverse=True)
    faces = weld.reshape(-1)[mesh.faces]
    return faces[area > 1e-10], area


def test_template_geometry_is_a_closed_head() -> None:
    mesh = load_obj(T.TEMPLATE_OBJ)
    assert 1000 < len(mesh.vertices) < 8000  # "a few thousand vertices"
    lo, hi = mesh.vertices.min(axis=0), mesh.vertices.max(axis=0)
    assert -0.3 < lo[0] < -0.15 and 0.15 < hi[0] < 0.3  # head ~0.45 wide, symmetric
    assert lo[0] == pytest.approx(-hi[0], abs=1e-6)
    assert lo[1] == pytest.approx(T.NECK_BOTTOM_Y) and 0.2 < hi[1] < 0.4  # neck cap .. crown
    assert 0.12 < hi[2] < 0.25  # nose tip in front
    assert -0.35 < lo[2] < -0.25  # the back of the head is there
    assert mesh.uvs.min() >= 0.0 and mesh.uvs.max() <= 1.0
    # Closed: once the back pole's copies are merged, every edge is shared by exactly two faces.
    faces, area = _welded_faces(mesh)
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    assert (counts == 2).all(), np.bincount(counts)
    # Faces are counter-clockwise seen from outside: normals point away from the head centre.
    v = mesh.vertices[mesh.faces][area > 1e-10]  # [F', 3, 3]
    normals = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    outward = ((v.mean(axis=1) - T.HEAD_CENTER) * normals).sum(axis=1) > 0
    assert outward.mean() > 0.99
    # The neck is capped: the flat cut at NECK_BOTTOM_Y carries faces facing down.
    on_cut = np.abs(v[..., 1] - T.NECK_BOTTOM_Y).max(axis=1) < 1e-6
    assert on_cut.sum() > 20 and (normals[on_cut][:, 1] < 0).all()


def test_a_ray_from_the_centre_in_any_direction_meets_the_surface_once() -> None:
    """Star-shaped and closed: the mesh's solid angle seen from the head centre is the whole sphere."""
    mesh = load_obj(T.TEMPLATE_OBJ)
    a, b, c = (mesh.vertices[mesh.faces[:, k]] - T.HEAD_CENTER for k in range(3))  # [F, 3] each
    # Van Oosterom-Strackee solid angle of each triangle.
    la, lb, lc = (np.linalg.norm(x, axis=1) for x in (a, b, c))
    num = (a * np.cross(b, c)).sum(axis=1)
    den = la * lb * lc + (a * b).sum(1) * lc + (a * c).sum(1) * lb + (b * c).sum(1) * la
    omega = 2.0 * np.arctan2(num, den)
    assert omega.sum() == pytest.approx(4 * np.pi, rel=1e-6)
    assert (omega > -1e-9).all()  # no fold seen from the centre


def test_uv_radius_layout() -> None:
    """The face keeps the earlier layout; the angle grows smoothly to 180 degrees at RHO_POLE and stays there."""
    rho = np.linspace(0.0, 1.0, 2001)
    alpha = T.alpha_of_rho(rho)
    assert (np.diff(alpha) >= 0).all()
    assert alpha[0] == 0.0 and alpha[-1] == pytest.approx(np.pi)
    assert T.alpha_of_rho(np.float64(T.RHO_POLE)) == pytest.approx(np.pi, abs=1e-12)
    face = rho <= T.FACE_RHO
    inner = np.radians(T.ALPHA_MAX_DEG) * (rho + T.CENTER_STRETCH * rho**3) / (1 + T.CENTER_STRETCH)
    np.testing.assert_allclose(alpha[face], inner[face], rtol=0, atol=1e-12)
    slope = np.diff(alpha) / np.diff(rho)
    assert np.abs(np.diff(slope[rho[1:] < T.RHO_POLE - 0.01])).max() < 0.05  # no kink (C1; C2 at FACE_RHO)
    # Every point of the outer ring is the back pole.
    d = T.uv_to_direction(np.array([0.5, 0.5 + 0.49, 0.0, 0.5 + 0.49 * np.cos(1.0)]),
                          np.array([0.5 - 0.49, 0.5, 0.5, 0.5 + 0.49 * np.sin(1.0)]))
    np.testing.assert_allclose(d, np.tile([0.0, 0.0, -1.0], (4, 1)), atol=1e-12)


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
    assert 0.7 * 128**2 < g < np.pi / 4 * 128**2  # the UV disk, less a thin rim
    assert uv_grid.abs().max() <= 1.0 and pos_map.shape == (3, 128, 128)
    # The kept points lie on the template surface, up to the chord error of mesh and texel interpolation
    # (largest at creases such as the nose's underside and the rim of the neck cap, and behind the ears, where the
    # layout samples the surface coarsely along the rays to the back pole).
    u = ((uv_grid[0, :, 0, 0] + 1) / 2).numpy()
    v = ((uv_grid[0, :, 0, 1] + 1) / 2).numpy()
    smooth, _ = T.surface_points(u, v)
    dev = np.abs(points[0].numpy() - smooth).max(axis=1)
    assert np.quantile(dev, 0.9) < 0.005 and np.quantile(dev, 0.99) < 0.015 and dev.max() < 0.05
