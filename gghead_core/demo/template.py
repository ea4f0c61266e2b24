"""Our own procedural head template: a closed head (face, sides, back and crown, ears, a capped neck) with a UV layout.

GGHead places its Gaussians on the UV map of a template mesh (the released models use a FLAME-derived mesh
without the back of the head). The demo model needs a template too, and we may not ship FLAME data, so this
module *computes* one: a smooth star-shaped surface around a head centre, described by a radius per direction
(a superellipsoid skull with a tapered jaw, a neck cut flat underneath, a nose, eye sockets, brows, cheekbones,
lips, a chin and ears), sampled on a regular grid in UV space. Every direction has a surface point, so the
surface is closed: viewers may orbit all the way round and look from below without seeing inside.

UV layout: an azimuthal projection centred on the face. The UV square's centre looks straight ahead (+z); the
angle ``alpha`` away from +z grows with the distance ``rho`` from the centre. Up to ``rho = FACE_RHO`` it is the
layout of the earlier "no back" template (stretched near the centre so the face gets more texels than the sides);
beyond, a cubic tail speeds it up so that ``alpha`` reaches 180 degrees (straight back) at ``rho = RHO_POLE``.
The whole ring ``RHO_POLE <= rho <= 1`` maps to that one point behind the head (the "back pole"), so the UV disk
covers the whole sphere of directions with no seam: its rim is sewn shut at the pole, and the UV samples that
the generator keeps just inside the rim all sit on the pole and close it. ``u`` grows toward +x (the viewer's right
in a frontal view) and ``v`` grows downward (toward -y), so the UV plane, read as an image with row = v, shows the
face upright. The back of the head is sampled more coarsely (along rays toward the pole) than the face.

World frame (the EG3D/FFHQ frame the official template is registered to, spec 4.2): y up, the face looks
toward +z; the surface spans x in [-0.22, 0.22], y in [-0.45, 0.26], z in [-0.30, 0.18]. That is a little
smaller than the official registered FLAME template (about 0.57 wide, up to y = 0.40): the frontal camera at the
default radius 2.7 sees y in [-0.32, 0.32], and a demo head should fit in it with its hair. No further
registration transform is needed (the demo config stores these positions directly).

``python -m gghead_core.demo.template`` rewrites ``assets/head_template.obj`` and ``assets/LICENSE.md``;
the output is deterministic (fixed grid, fixed decimal formatting) and a test checks the committed copy.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gghead_core._resources import resource_dir

ASSETS_DIR = resource_dir("assets")
TEMPLATE_OBJ = ASSETS_DIR / "head_template.obj"
LICENSE_MD = ASSETS_DIR / "LICENSE.md"

HEAD_CENTER = np.array([0.0, 0.01, -0.06])
"""Centre the radius function is measured from (inside the skull, behind the eyes)."""
ALPHA_MAX_DEG = 135.0
CENTER_STRETCH = 0.8
"""Inner layout: alpha = ALPHA_MAX * (rho + k rho^3) / (1 + k); k > 0 gives the face (small rho) more UV area.
These are the constants of the earlier open template, so the face keeps its place and size in UV."""
FACE_RHO = 0.55
"""Up to this UV radius (about 53 degrees from the nose: the whole face) the inner layout holds unchanged."""
RHO_POLE = 0.97
"""UV radius at which alpha reaches 180 degrees; the ring beyond maps onto the back pole."""
GRID_QUADS = 80
"""Quads per side of the UV grid the mesh is sampled on."""
NECK_BOTTOM_Y = -0.45
"""The neck is cut flat at this height; the cut is capped (part of the surface)."""
NECK_AXIS_XZ = (0.0, -0.085)
NECK_RADII = (0.122, 0.125)

OBJ_DECIMALS = 6


@dataclass(frozen=True)
class TemplateMesh:
    """A triangle mesh with one UV per vertex (no seams)."""

    vertices: np.ndarray  # [V, 3] float64, world units
    uvs: np.ndarray  # [V, 2] float64 in [0, 1], (u, v) with v growing downward
    faces: np.ndarray  # [F, 3] int64, counter-clockwise seen from outside


# ---------------------------------------------------------------------------------------------------------------
# UV <-> direction
# ---------------------------------------------------------------------------------------------------------------


def _inner_alpha(rho: np.ndarray) -> np.ndarray:
    return math.radians(ALPHA_MAX_DEG) * (rho + CENTER_STRETCH * rho**3) / (1.0 + CENTER_STRETCH)


_TAIL_COEF = (math.pi - float(_inner_alpha(np.float64(RHO_POLE)))) / (RHO_POLE - FACE_RHO) ** 3
"""alpha = inner(rho) + c (rho - FACE_RHO)^3 past FACE_RHO (C2 there), with c chosen to reach pi at RHO_POLE."""


def alpha_of_rho(rho: np.ndarray) -> np.ndarray:
    """Angle (radians) from straight ahead for UV radius ``rho``: monotone, pi for ``rho >= RHO_POLE``."""
    rho = np.asarray(rho, dtype=np.float64)
    r = np.minimum(rho, RHO_POLE)
    return np.minimum(_inner_alpha(r) + _TAIL_COEF * np.maximum(r - FACE_RHO, 0.0) ** 3, math.pi)


def uv_to_direction(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Unit view directions from the head centre for UV coordinates (the azimuthal layout), ``[..., 3]``."""
    a = 2.0 * np.asarray(u, dtype=np.float64) - 1.0  # right
    b = 1.0 - 2.0 * np.asarray(v, dtype=np.float64)  # up
    rho = np.hypot(a, b)
    alpha = alpha_of_rho(rho)
    beta = np.arctan2(b, a)
    s = np.sin(alpha)
    return np.stack([s * np.cos(beta), s * np.sin(beta), np.cos(alpha)], axis=-1)


# ---------------------------------------------------------------------------------------------------------------
# The radius function
# ---------------------------------------------------------------------------------------------------------------


def _smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _smooth_max(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth maximum (C1): equals max(a, b) when they differ by more than k."""
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return a + (b - a) * h + k * h * (1.0 - h)


def _bump(az: np.ndarray, el: np.ndarray, az0: float, el0: float, w_az: float, w_el: float) -> np.ndarray:
    """Anisotropic Gaussian bump in (azimuth, elevation) angles, peak 1."""
    return np.exp(-0.5 * (((az - az0) / w_az) ** 2 + ((el - el0) / w_el) ** 2))


def surface_radius(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance from ``HEAD_CENTER`` to the surface along unit directions ``d [..., 3]``.

    Returns ``(radius [...], on_cap [...])``: ``on_cap`` marks directions that leave through the flat cut under
    the neck (those points are clamped onto the cut plane, which closes the neck).
    """
    dx, dy, dz = d[..., 0], d[..., 1], d[..., 2]
    az = np.arctan2(dx, dz)  # 0 straight ahead, +pi/2 toward +x
    el = np.arcsin(np.clip(dy, -1.0, 1.0))  # + up

    # Skull: superellipse in the horizontal plane (flatter face and sides than an ellipsoid), ellipse vertically.
    down = _smoothstep(-0.05, -0.8, dy)  # 0 above the cheekbones, 1 under the chin
    ax = 0.192 * (1.0 - 0.16 * down)  # the jaw narrows toward the chin
    a_front = 0.205 - 0.02 * down  # the lower face recedes a little
    a_z = np.where(dz >= 0, a_front, 0.235)
    a_y = np.where(dy >= 0, 0.25, 0.235)
    p = 2.5
    horiz = (np.abs(dx / ax) ** p + np.abs(dz / a_z) ** p) ** (2.0 / p)
    q = np.where(dy >= 0, 2.0, 2.8)  # a squarer jaw line below the centre
    r = 1.0 / (horiz ** (q / 2.0) + np.abs(dy / a_y) ** q) ** (1.0 / q)

    # Facial relief as relative radius changes (all smooth, all local).
    rel = np.zeros_like(r)
    nose_profile = _smoothstep(0.15, -0.3, el) * (1.0 - _smoothstep(-0.32, -0.42, el))
    rel += 0.15 * nose_profile * np.exp(-0.5 * (az / (0.075 + 0.05 * _smoothstep(0.0, -0.35, el))) ** 2)
    rel += 0.04 * _bump(az, el, 0.0, -0.33, 0.07, 0.05)  # nose tip
    for side in (-1.0, 1.0):
        rel -= 0.06 * _bump(az, el, side * 0.36, 0.06, 0.13, 0.08)  # eye sockets
        rel += 0.03 * _bump(az, el, side * 0.34, 0.22, 0.22, 0.06)  # brow ridge
        rel += 0.04 * _bump(az, el, side * 0.62, -0.15, 0.17, 0.13)  # cheekbones
        rel += 0.14 * _bump(az, el, side * 1.62, 0.0, 0.07, 0.15)  # ears
        rel -= 0.02 * _bump(az, el, side * 0.95, 0.30, 0.25, 0.15)  # temples
    rel += 0.04 * _bump(az, el, 0.0, -0.62, 0.2, 0.05)  # lips
    rel -= 0.02 * _bump(az, el, 0.0, -0.74, 0.16, 0.04)  # groove under the lower lip
    rel += 0.05 * _bump(az, el, 0.0, -0.9, 0.2, 0.1)  # chin
    r = r * (1.0 + rel)

    # Neck: an elliptic cylinder around a vertical axis slightly behind the centre, only for downward directions.
    # Ray c + r d meets ((x - axis_x) / Rx)^2 + ((z - axis_z) / Rz)^2 = 1 where r solves a quadratic.
    ox, oz = (HEAD_CENTER[0] - NECK_AXIS_XZ[0]) / NECK_RADII[0], (HEAD_CENTER[2] - NECK_AXIS_XZ[1]) / NECK_RADII[1]
    qx, qz = dx / NECK_RADII[0], dz / NECK_RADII[1]
    qq = np.maximum(qx * qx + qz * qz, 1e-8)
    oq = ox * qx + oz * qz
    r_neck = np.minimum((-oq + np.sqrt(oq * oq - qq * (ox * ox + oz * oz - 1.0))) / qq, 10.0)
    neck_weight = _smoothstep(-0.25, -0.6, dy)
    r = _smooth_max(r, r_neck * neck_weight, 0.015)

    # Flat cut under the neck.
    depth_to_cut = HEAD_CENTER[1] - NECK_BOTTOM_Y
    r_cut = np.where(dy < -1e-6, depth_to_cut / np.maximum(-dy, 1e-6), np.inf)
    on_cap = r > r_cut
    r = np.minimum(r, r_cut)
    return r, on_cap


def surface_points(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The smooth surface the mesh samples, at any UV: ``(positions [..., 3], on_cap [...])``."""
    d = uv_to_direction(u, v)
    r, on_cap = surface_radius(d)
    return HEAD_CENTER + r[..., None] * d, on_cap


# ---------------------------------------------------------------------------------------------------------------
# Mesh generation
# ---------------------------------------------------------------------------------------------------------------


def build_template(grid_quads: int = GRID_QUADS) -> TemplateMesh:
    """Sample the surface on a ``(grid_quads+1)^2`` UV lattice and keep the quads that touch the UV disk.

    The result is closed: the neck cap is kept, and the disk's rim (where the lattice ends) lies on the back pole.
    """
    n = grid_quads + 1
    t = np.arange(n, dtype=np.float64) / grid_quads
    u, v = np.meshgrid(t, t, indexing="xy")  # [n, n], row = v
    # Lattice points outside the UV disk are pulled radially onto its rim, so the kept quads end on a smooth
    # boundary (a circle, all of it on the back pole) instead of a staircase.
    rho = np.hypot(2.0 * u - 1.0, 1.0 - 2.0 * v)
    inside = rho < 1.0
    shrink = np.where(inside, 1.0, 1.0 / np.maximum(rho, 1e-12))
    u = 0.5 + (u - 0.5) * shrink
    v = 0.5 + (v - 0.5) * shrink
    pos, _ = surface_points(u, v)  # [n, n, 3]

    ids = np.arange(n * n).reshape(n, n)
    q00, q01, q10, q11 = ids[:-1, :-1], ids[:-1, 1:], ids[1:, :-1], ids[1:, 1:]  # (row, col) corners
    # Alternate the diagonal in a checkerboard so the triangulation has no directional bias.
    flip = ((np.arange(grid_quads)[:, None] + np.arange(grid_quads)[None, :]) % 2).astype(bool)
    # u right, v down: (q00, q10, q01) is clockwise in the (u, v) plane, i.e. counter-clockwise seen from outside.
    tri_a = np.where(flip[..., None], np.stack([q00, q10, q11], -1), np.stack([q00, q10, q01], -1))
    tri_b = np.where(flip[..., None], np.stack([q00, q11, q01], -1), np.stack([q01, q10, q11], -1))
    faces = np.stack([tri_a, tri_b], axis=2).reshape(-1, 3)  # [2*grid^2, 3], row-major quads

    keep = inside.reshape(-1)[faces].any(axis=1)
    faces = faces[keep]
    uv = np.stack([u, v], axis=-1).reshape(-1, 2)
    e0, e1 = uv[faces[:, 1]] - uv[faces[:, 0]], uv[faces[:, 2]] - uv[faces[:, 0]]
    area = 0.5 * np.abs(e0[:, 0] * e1[:, 1] - e0[:, 1] * e1[:, 0])
    faces = faces[area > 1e-3 / grid_quads**2]  # drop slivers squeezed flat on the rim

    used = np.unique(faces)
    remap = np.full(n * n, -1, dtype=np.int64)
    remap[used] = np.arange(used.size)
    return TemplateMesh(vertices=pos.reshape(-1, 3)[used], uvs=uv[used], faces=remap[faces])


def format_obj(mesh: TemplateMesh) -> str:
    """OBJ text with one ``vt`` per ``v`` (same index), fixed decimals, ``\\n`` line endings."""
    fmt = f"{{:.{OBJ_DECIMALS}f}}"

    def num(x: float) -> str:
        s = fmt.format(x)
        return "0." + "0" * OBJ_DECIMALS if s == "-0." + "0" * OBJ_DECIMALS else s  # no negative zero

    lines = [
        "# Procedural GGHead-style head template (closed: face, back, ears, capped neck).",
        "# Generated by `python -m gghead_core.demo.template`; part of this project, see assets/LICENSE.md.",
        "# Frame: y up, face toward +z. vt: u toward +x, v downward; the UV disk's rim is the point behind the head.",
        f"# vertices {len(mesh.vertices)}, faces {len(mesh.faces)}",
    ]
    lines += ["v " + " ".join(num(c) for c in p) for p in mesh.vertices]
    lines += ["vt " + " ".join(num(c) for c in uv) for uv in mesh.uvs]
    lines += [f"f {a + 1}/{a + 1} {b + 1}/{b + 1} {c + 1}/{c + 1}" for a, b, c in mesh.faces]
    return "\n".join(lines) + "\n"


LICENSE_TEXT = """# License of the files in `assets/`

`head_template.obj` is this project's own work: it is computed from scratch by
`gghead_core/demo/template.py` (`python -m gghead_core.demo.template` regenerates it byte for byte). It
contains no FLAME, BFM, or other third-party mesh data. It is distributed under the same license as the
rest of this repository.
"""


def write_text_atomic(path: Path, text: str) -> None:
    """Write via a temporary file in the same folder and ``os.replace`` (no half-written asset)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the asset ordinary file permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Regenerate the demo head template mesh (assets/).")
    parser.add_argument("--out-dir", type=Path, default=ASSETS_DIR, help="folder for head_template.obj and LICENSE.md")
    args = parser.parse_args(argv)
    mesh = build_template()
    write_text_atomic(args.out_dir / TEMPLATE_OBJ.name, format_obj(mesh))
    write_text_atomic(args.out_dir / LICENSE_MD.name, LICENSE_TEXT)
    lo, hi = mesh.vertices.min(axis=0), mesh.vertices.max(axis=0)
    print(
        f"wrote {args.out_dir / TEMPLATE_OBJ.name}: {len(mesh.vertices)} vertices, {len(mesh.faces)} faces, "
        f"bounds x [{lo[0]:.3f}, {hi[0]:.3f}] y [{lo[1]:.3f}, {hi[1]:.3f}] z [{lo[2]:.3f}, {hi[2]:.3f}]"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
