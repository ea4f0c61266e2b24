"""UV template buffers (spec 3.4): where on a template mesh each Gaussian of a GGHead model lives.

GGHead samples its StyleGAN planes at fixed UV points (``_uv_grid``) and adds the predicted offsets to the
template surface points at those UVs (``_flame_vertices``). Both come from rasterising the template's UV layout
into a ``R_p x R_p`` texture of positions. This module does that for any triangle mesh with UVs, following the
official recipe step by step (texel centres, the dot-product barycentrics in float32, triangles visited last to
first so the lowest-index covering triangle wins, coverage from vertex ids > 0, a ``lin(-1, 1, n)`` lattice of
candidates kept where the bilinearly sampled coverage exceeds 0.99). It needs only numpy and torch: the OBJ
reader splits vertices the way trimesh does, one vertex per distinct (position, uv) pair.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

COVERAGE_THRESHOLD = 0.99


class TemplateError(ValueError):
    """A template mesh that cannot be used (unreadable OBJ, missing UVs, bad indices)."""


@dataclass(frozen=True)
class ObjMesh:
    """A triangle mesh with one UV per vertex (after splitting vertices that carry several UVs)."""

    vertices: np.ndarray  # [V, 3] float64
    faces: np.ndarray  # [F, 3] int64, into vertices and uvs
    uvs: np.ndarray  # [V, 2] float64


@dataclass(frozen=True)
class UVRaster:
    """The UV layout rasterised at ``R x R`` texel centres (row = v, column = u)."""

    vertex_ids: np.ndarray  # [R, R, 3] int64, zeros where uncovered
    barycentrics: np.ndarray  # [R, R, 3] float32, zeros where uncovered
    mask: np.ndarray  # [R, R] float32, 1 where any vertex id > 0 (the official coverage rule)


def load_obj(path: str | Path) -> ObjMesh:
    """Read ``v``, ``vt`` and ``f`` records of an OBJ file (polygons are fan-triangulated).

    A vertex used with different UVs is split (one output vertex per distinct ``(v, vt)`` pair, numbered in
    order of first use), which is what trimesh does for textured meshes. Raises :class:`TemplateError`.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TemplateError(f"cannot read template mesh {path}: {exc}") from None
    positions: list[list[float]] = []
    texcoords: list[list[float]] = []
    corners: list[tuple[int, int]] = []  # (v, vt) per triangle corner, 0-based
    try:
        for line_no, line in enumerate(text.splitlines(), 1):
            parts = line.split()
            if not parts or parts[0].startswith("#"):
                continue
            if parts[0] == "v":
                positions.append([float(x) for x in parts[1:4]])
            elif parts[0] == "vt":
                texcoords.append([float(x) for x in parts[1:3]])
            elif parts[0] == "f":
                refs = []
                for item in parts[1:]:
                    fields = item.split("/")
                    if len(fields) < 2 or not fields[1]:
                        raise TemplateError(f"{path}:{line_no}: face corner {item!r} has no texture coordinate")
                    vi, ti = int(fields[0]), int(fields[1])
                    vi = vi - 1 if vi > 0 else len(positions) + vi
                    ti = ti - 1 if ti > 0 else len(texcoords) + ti
                    if not (0 <= vi < len(positions) and 0 <= ti < len(texcoords)):
                        raise TemplateError(f"{path}:{line_no}: face index out of range")
                    refs.append((vi, ti))
                if len(refs) < 3:
                    raise TemplateError(f"{path}:{line_no}: face with fewer than 3 corners")
                for k in range(1, len(refs) - 1):
                    corners += [refs[0], refs[k], refs[k + 1]]
    except ValueError as exc:
        if isinstance(exc, TemplateError):
            raise
        raise TemplateError(f"{path}: malformed OBJ record: {exc}") from None
    if not corners:
        raise TemplateError(f"{path}: no faces")

    pair_ids: dict[tuple[int, int], int] = {}
    faces = np.empty(len(corners), dtype=np.int64)
    for k, pair in enumerate(corners):
        faces[k] = pair_ids.setdefault(pair, len(pair_ids))
    pairs = np.array(list(pair_ids), dtype=np.int64)  # [V, 2] in first-use order
    vertices = np.asarray(positions, dtype=np.float64)[pairs[:, 0]]
    uvs = np.asarray(texcoords, dtype=np.float64)[pairs[:, 1]]
    return ObjMesh(vertices=vertices, faces=faces.reshape(-1, 3), uvs=uvs)


def rasterize_uv(faces: np.ndarray, uvs: np.ndarray, resolution: int) -> UVRaster:
    """Rasterise the UV layout (spec 3.4 step 2 and 4).

    Texel (row a, column b) has centre ``u = (b + 0.5) / R``, ``v = (a + 0.5) / R``. A texel inside a triangle
    (all barycentrics >= 0) takes its vertex ids and barycentrics; triangles are visited from last to first so
    the lowest-index covering triangle wins; triangles with zero UV area are skipped.
    """
    faces = np.asarray(faces, dtype=np.int64)
    tri_uv = np.asarray(uvs, dtype=np.float32)[faces]  # [F, 3, 2]
    res = int(resolution)
    centres = (np.arange(res, dtype=np.float32) + 0.5) / res
    tex = np.stack(np.meshgrid(centres, centres, indexing="xy"), axis=-1)  # [R, R, 2] (u, v)

    ids = np.zeros((res, res, 3), dtype=np.int64)
    bary = np.zeros((res, res, 3), dtype=np.float32)
    lo = np.trunc(tri_uv.min(axis=1) * res).astype(np.int64) - 1  # [F, 2] (column, row), window widened
    hi = np.trunc(tri_uv.max(axis=1) * res).astype(np.int64) + 2
    lo = np.clip(lo, 0, res)
    hi = np.clip(hi, 0, res)
    for i in range(len(faces) - 1, -1, -1):
        c0, r0 = lo[i]
        c1, r1 = hi[i]
        if c1 <= c0 or r1 <= r0:
            continue
        p0, p1, p2 = tri_uv[i]
        e0, e1 = p1 - p0, p2 - p0
        # Two-term dot products written out so float32 rounding matches a plain elementwise sum.
        d00 = e0[0] * e0[0] + e0[1] * e0[1]
        d01 = e0[0] * e1[0] + e0[1] * e1[1]
        d11 = e1[0] * e1[0] + e1[1] * e1[1]
        denom = d00 * d11 - d01 * d01
        if denom == 0:
            continue
        rel = tex[r0:r1, c0:c1] - p0  # [h, w, 2]
        d20 = rel[..., 0] * e0[0] + rel[..., 1] * e0[1]
        d21 = rel[..., 0] * e1[0] + rel[..., 1] * e1[1]
        b1 = (d11 * d20 - d01 * d21) / denom
        b2 = (d00 * d21 - d01 * d20) / denom
        b0 = np.float32(1.0) - b1 - b2
        inside = (b0 >= 0) & (b1 >= 0) & (b2 >= 0)
        if not inside.any():
            continue
        bary[r0:r1, c0:c1][inside] = np.stack([b0, b1, b2], axis=-1)[inside]
        ids[r0:r1, c0:c1][inside] = faces[i]
    mask = (ids > 0).any(axis=-1).astype(np.float32)
    return UVRaster(vertex_ids=ids, barycentrics=bary, mask=mask)


def candidate_grid(n_samples: int) -> torch.Tensor:
    """The ``n x n`` candidate lattice ``(x, y) = (t[j], t[i])``, ``t = lin(-1, 1, n)``, row-major: ``[n*n, 2]``."""
    t = torch.linspace(-1.0, 1.0, int(n_samples))
    y, x = torch.meshgrid(t, t, indexing="ij")
    return torch.stack([x, y], dim=-1).reshape(-1, 2)


def build_uv_template(
    vertices: np.ndarray | torch.Tensor,
    faces: np.ndarray | torch.Tensor,
    uvs: np.ndarray | torch.Tensor,
    plane_resolution: int,
    n_samples: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The three template buffers of a GGHead generator for a UV-mapped template mesh (spec 3.4 steps 2-7).

    Args:
        vertices: ``[V, 3]`` template positions (already in the world frame; registration is the caller's).
        faces: ``[F, 3]`` vertex indices (also indexing ``uvs``: one UV per vertex).
        uvs: ``[V, 2]`` (u, v) in [0, 1], u along plane columns, v along plane rows.
        plane_resolution: ``R_p``, the UV-plane resolution of the generator.
        n_samples: ``n`` of the ``n x n`` candidate lattice (``n_uniform_flame_vertices``).

    Returns:
        ``uv_grid [1, G, 1, 2]`` (grid_sample coordinates (x, y) in [-1, 1]),
        ``uv_position_map [3, R_p, R_p]`` and ``template_points [1, G, 3]``, all float32.
    """
    verts = np.asarray(torch.as_tensor(vertices).detach().cpu(), dtype=np.float32)
    faces_np = np.asarray(torch.as_tensor(faces).detach().cpu(), dtype=np.int64)
    uvs_np = np.asarray(torch.as_tensor(uvs).detach().cpu(), dtype=np.float32)
    if verts.ndim != 2 or verts.shape[1] != 3:
        raise TemplateError(f"vertices must be [V, 3], got {verts.shape}")
    if uvs_np.shape != (len(verts), 2):
        raise TemplateError(f"uvs must be [V, 2] with V = {len(verts)}, got {uvs_np.shape}")
    if faces_np.ndim != 2 or faces_np.shape[1] != 3 or len(faces_np) == 0:
        raise TemplateError(f"faces must be a non-empty [F, 3] array, got {faces_np.shape}")
    if faces_np.min() < 0 or faces_np.max() >= len(verts):
        raise TemplateError("face indices out of range")
    if plane_resolution < 1 or n_samples < 2:
        raise TemplateError("plane_resolution must be >= 1 and n_samples >= 2")

    raster = rasterize_uv(faces_np, uvs_np, plane_resolution)
    corner_pos = verts[raster.vertex_ids]  # [R, R, 3, 3]
    pos_map = (raster.barycentrics[..., None] * corner_pos).sum(axis=2)  # [R, R, 3]
    uv_position_map = torch.from_numpy(np.ascontiguousarray(pos_map.transpose(2, 0, 1))).float()  # [3, R, R]

    candidates = candidate_grid(n_samples)  # [n*n, 2]
    mask = torch.from_numpy(raster.mask)[None, None]  # [1, 1, R, R]
    sampled = F.grid_sample(mask, candidates[None, :, None, :], mode="bilinear", align_corners=False)
    keep = sampled.reshape(-1) > COVERAGE_THRESHOLD
    if not bool(keep.any()):
        raise TemplateError("no UV sample lies inside the template's UV layout")
    uv_grid = candidates[keep][None, :, None, :].contiguous()  # [1, G, 1, 2]
    points = F.grid_sample(uv_position_map[None], uv_grid, mode="bilinear", align_corners=False)  # [1, 3, G, 1]
    template_points = points[0, :, :, 0].T[None].contiguous()  # [1, G, 3]
    return uv_grid, uv_position_map, template_points


def build_uv_template_from_obj(
    path: str | Path, plane_resolution: int, n_samples: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`build_uv_template` for an OBJ file (see :func:`load_obj`)."""
    mesh = load_obj(path)
    return build_uv_template(mesh.vertices, mesh.faces, mesh.uvs, plane_resolution, n_samples)
