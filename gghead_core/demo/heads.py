"""A procedural family of stylized heads, defined per texel of the template's UV planes.

The demo generator is trained to reproduce this family: for a latent ``z`` the parameters below are a fixed,
smooth function of ``z`` (:func:`params_from_z`), and the head is a fixed, smooth function of the parameters
(:func:`head_attributes`). So every seed has a well-defined target head, nearby latents give nearby heads, and the
mean head is the head of the mean parameters.

Everything is computed on the ``R x R`` texel grid of GGHead's UV planes, in *decoded* form (position offsets,
log-scales, axis-angle rotations in the official channel-quirk convention, RGB albedo with baked soft lighting,
opacity) and can be turned into the generator's *raw* plane channels with :func:`encode_raw`, the exact inverse of
the decoding of spec 3.6. Features are placed by angles seen from the template's head centre (azimuth ``az``:
0 ahead, + toward +x; elevation ``el``: + up), the same angles the template's relief (nose, eye sockets, lips,
ears) was built with, so colour and geometry line up.

Parameters (all in [0, 1], see :data:`PARAM_NAMES`): skin tone and warmth, hair darkness / redness / grey,
hairline height, temple recession, hair volume, bangs, hair length, eye colour and size, brow thickness /
height / arch, lip fullness / redness, mouth width, face width, jaw width, chin length, nose bump and width,
ear size, cheek blush, beard.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..config import SH_C0, GeneratorConfig
from . import template as tpl_mod
from .uv_template import build_uv_template_from_obj, load_obj, rasterize_uv

PARAM_NAMES: tuple[str, ...] = (
    "skin_tone", "skin_warmth", "hair_darkness", "hair_red", "hair_grey", "hairline", "temple_recess",
    "hair_volume", "bangs", "hair_length", "eye_hue", "eye_size", "brow_thickness", "brow_height", "brow_arch",
    "lip_fullness", "lip_redness", "mouth_width", "face_width", "jaw_width", "chin_length", "nose_bump",
    "nose_width", "ear_size", "cheek_blush", "beard",
)  # fmt: skip
NUM_PARAMS = len(PARAM_NAMES)
_P = {name: i for i, name in enumerate(PARAM_NAMES)}

POSITION_LIMIT = 0.25 * 0.6
"""Offsets are kept well inside the generator's +-0.25 tanh range (raw values stay moderate)."""
COLOR_MIN, COLOR_MAX = 0.02, 0.98
"""Albedo range: the SH activation reaches [0, 1] only asymptotically, so targets stay inside."""
OPACITY_MAX = 0.995
MAX_ANISOTROPY = 3.0
"""Largest ratio of a Gaussian's two in-surface scales (see the scales in :func:`head_attributes`)."""


# ---------------------------------------------------------------------------------------------------------------
# Parameters
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HeadParams:
    """A batch of head parameters, each in [0, 1]: ``values [B, NUM_PARAMS]`` in :data:`PARAM_NAMES` order."""

    values: torch.Tensor  # [B, P]

    def __post_init__(self) -> None:
        if self.values.dim() != 2 or self.values.shape[1] != NUM_PARAMS:
            raise ValueError(f"HeadParams.values must be [B, {NUM_PARAMS}], got {tuple(self.values.shape)}")

    def __getitem__(self, name: str) -> torch.Tensor:
        """``[B, 1, 1]``: ready to broadcast against ``[B, R, R]`` texel maps."""
        return self.values[:, _P[name]].reshape(-1, 1, 1)

    @property
    def batch_size(self) -> int:
        return int(self.values.shape[0])

    def as_dict(self, index: int = 0) -> dict[str, float]:
        return {name: float(self.values[index, i]) for i, name in enumerate(PARAM_NAMES)}


def params_from_z(z: torch.Tensor) -> HeadParams:
    """The head parameters of latents ``z [B, z_dim]`` (``z_dim >= NUM_PARAMS``).

    ``z`` is normalised to unit mean square first, exactly as the mapping network's input, and parameter ``i`` is
    the normal CDF of component ``i``: uniform over seeds, smooth in ``z``. Components past ``NUM_PARAMS`` are
    ignored (the generator learns to ignore them).
    """
    if z.dim() != 2 or z.shape[1] < NUM_PARAMS:
        raise ValueError(f"z must be [B, >= {NUM_PARAMS}], got {tuple(z.shape)}")
    z = z.to(torch.float32)
    zn = z * (z.square().mean(dim=1, keepdim=True) + 1e-8).rsqrt()
    return HeadParams(0.5 * (1.0 + torch.erf(zn[:, :NUM_PARAMS] / math.sqrt(2.0))))


def sample_params(seed: int, z_dim: int = 32) -> HeadParams:
    """Parameters of one seed, with the same latent the generator uses (``torch.randn`` on a seeded CPU RNG)."""
    z = torch.randn(1, z_dim, generator=torch.Generator("cpu").manual_seed(int(seed)))
    return params_from_z(z)


def mean_params(batch_size: int = 1) -> HeadParams:
    """All parameters at their median (0.5): the family's average head."""
    return HeadParams(torch.full((batch_size, NUM_PARAMS), 0.5))


# ---------------------------------------------------------------------------------------------------------------
# The template as texel maps
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class HeadTemplate:
    """Everything about the template that the head family needs, per texel of an ``R x R`` plane.

    Also carries the generator buffers (``uv_grid``, ``uv_position_map``, ``template_points``) built from the
    committed OBJ, so a trained model and its targets share one template.
    """

    resolution: int
    n_samples: int
    az: torch.Tensor  # [R, R] azimuth seen from the head centre (0 ahead, + toward +x)
    el: torch.Tensor  # [R, R] elevation (+ up)
    rho: torch.Tensor  # [R, R] distance from the UV centre (1 = the rim of the UV disk)
    position: torch.Tensor  # [3, R, R] smooth template surface
    normal: torch.Tensor  # [3, R, R] outward unit normal
    frame: torch.Tensor  # [3, 3, R, R] columns: t1 (down the UV v direction), t2 = n x t1, n
    spacing: torch.Tensor  # [2, R, R] Gaussian spacing along t1, t2 (world units)
    axis_perm: tuple[int, int, int]  # local axis k of the encoded rotation carries frame axis axis_perm[k]
    axis_angle: torch.Tensor  # [3, R, R] GGHead axis-angle (after tanh, before the quirk) of the frame
    edge: float  # half-width (radians) of feature edges: half a texel at the face centre, so targets don't alias
    coverage: torch.Tensor  # [R, R] 1 where the mesh covers the texel (the official mask)
    loss_mask: torch.Tensor  # [R, R] 1 on texels any Gaussian's bilinear sample touches
    uv_grid: torch.Tensor  # [1, G, 1, 2]
    uv_position_map: torch.Tensor  # [3, R, R]
    template_points: torch.Tensor  # [1, G, 3]

    def to(self, device: torch.device | str) -> HeadTemplate:
        out = {}
        for name, value in vars(self).items():
            out[name] = value.to(device) if isinstance(value, torch.Tensor) else value
        return HeadTemplate(**out)


def _quat_from_matrix(m: np.ndarray) -> np.ndarray:
    """Unit quaternions ``(w, x, y, z)`` of rotation matrices ``[..., 3, 3]`` (sign arbitrary)."""
    w = np.sqrt(np.maximum(0.0, 1.0 + m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2])) / 2
    x = np.sqrt(np.maximum(0.0, 1.0 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2])) / 2
    y = np.sqrt(np.maximum(0.0, 1.0 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2])) / 2
    z = np.sqrt(np.maximum(0.0, 1.0 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2])) / 2
    # Signs relative to the largest component (numerically stable branch per element).
    q = np.stack([w, x, y, z], axis=-1)
    big = np.argmax(q, axis=-1)
    s21, s02, s10 = m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]
    a01, a02, a12 = m[..., 0, 1] + m[..., 1, 0], m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1]
    sign_sets = [
        np.stack([np.ones_like(w), np.sign(s21), np.sign(s02), np.sign(s10)], -1),  # w largest
        np.stack([np.sign(s21), np.ones_like(w), np.sign(a01), np.sign(a02)], -1),  # x largest
        np.stack([np.sign(s02), np.sign(a01), np.ones_like(w), np.sign(a12)], -1),  # y largest
        np.stack([np.sign(s10), np.sign(a02), np.sign(a12), np.ones_like(w)], -1),  # z largest
    ]
    signs = np.choose(big[..., None], sign_sets)
    signs = np.where(signs == 0, 1.0, signs)
    q = q * signs
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def _signed_permutations() -> list[tuple[np.ndarray, tuple[int, int, int]]]:
    """The 24 rotations that map coordinate axes to coordinate axes, with their axis permutation."""
    out = []
    for perm in ((0, 1, 2), (1, 2, 0), (2, 0, 1), (0, 2, 1), (2, 1, 0), (1, 0, 2)):
        for sx in (1.0, -1.0):
            for sy in (1.0, -1.0):
                c = np.zeros((3, 3))
                c[perm[0], 0], c[perm[1], 1] = sx, sy
                c[:, 2] = np.cross(c[:, 0], c[:, 1])
                out.append((c, perm))
    return out


def _lift_signs(q: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Flip quaternion signs so that neighbouring texels of ``mask`` agree (a continuous lift of the field).

    Breadth-first from the first masked texel; each texel takes the sign that makes it agree with the
    neighbour it was reached from. On a simply connected region of a smooth field the result is unique up to
    one global sign. Texels outside ``mask`` are left as they are.
    """
    from collections import deque

    q = q.copy()
    rows, cols = mask.shape
    seen = np.zeros_like(mask, dtype=bool)
    for start in zip(*np.nonzero(mask)):
        if seen[start]:
            continue
        seen[start] = True
        queue = deque([start])
        while queue:
            r, c = queue.popleft()
            for nr, nc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
                if 0 <= nr < rows and 0 <= nc < cols and mask[nr, nc] and not seen[nr, nc]:
                    if float(np.dot(q[nr, nc], q[r, c])) < 0:
                        q[nr, nc] = -q[nr, nc]
                    seen[nr, nc] = True
                    queue.append((nr, nc))
    return q


def _has_holes(mask: np.ndarray) -> bool:
    """True if some unmasked texel cannot reach the border through unmasked texels (a hole in ``mask``)."""
    from collections import deque

    outside = ~mask
    reached = np.zeros_like(mask, dtype=bool)
    border = [(r, c) for r in range(mask.shape[0]) for c in (0, mask.shape[1] - 1)]
    border += [(r, c) for c in range(mask.shape[1]) for r in (0, mask.shape[0] - 1)]
    queue = deque(p for p in border if outside[p])
    for p in queue:
        reached[p] = True
    while queue:
        r, c = queue.popleft()
        for nr, nc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
            if 0 <= nr < mask.shape[0] and 0 <= nc < mask.shape[1] and outside[nr, nc] and not reached[nr, nc]:
                reached[nr, nc] = True
                queue.append((nr, nc))
    return bool((outside & ~reached).any())


def frame_to_axis_angle(frame: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int]]:
    """GGHead axis-angle vectors ``a [..., 3]`` whose decoded quaternion (quirk included) is the rotation ``frame``.

    Decoding turns ``a`` (angle ``t = |a|``) into ``q = (cos(t/2), sin(t/2) a/t)`` and hands ``(q3, q0, q1, q2)``
    to the rasterizer as (w, x, y, z). So for a wanted rasterizer quaternion ``(w, x, y, z)`` we need the standard
    quaternion ``Q = +-(x, y, z, w)``. A frame field that covers many orientations (ours does: the surface
    turns from the face over the crown to the ears) cannot keep ``Q0 >= 0`` without jumps, so the sign is chosen
    by a continuous lift over ``mask`` (which must have no holes) and angles up to 2 pi are used; the lift is
    singular only where ``Q0 = -1``. Among the 24 axis relabellings of the frame (scales are permuted with it)
    and the two global signs, the one keeping ``Q0`` furthest from -1 wins.
    """
    if _has_holes(mask):
        raise ValueError("the template's UV region has a hole; its rotation field cannot be lifted continuously")
    # One lift serves all relabellings: frame @ c has quaternion q (x) q_c, and a constant right factor keeps
    # a continuous field continuous.
    q = _lift_signs(_quat_from_matrix(frame), mask)  # [..., 4] (w, x, y, z)
    best = None
    for c, perm in _signed_permutations():
        qc = _quat_from_matrix(c)
        w0, x0, y0, z0 = (q[..., i] for i in range(4))
        w1, x1, y1, z1 = (float(v) for v in qc)
        prod = np.stack(
            [
                w0 * w1 - x0 * x1 - y0 * y1 - z0 * z1,
                w0 * x1 + x0 * w1 + y0 * z1 - z0 * y1,
                w0 * y1 - x0 * z1 + y0 * w1 + z0 * x1,
                w0 * z1 + x0 * y1 - y0 * x1 + z0 * w1,
            ],
            axis=-1,
        )
        std = np.stack([prod[..., 1], prod[..., 2], prod[..., 3], prod[..., 0]], axis=-1)  # standard (x, y, z, w)
        for sign in (1.0, -1.0):
            margin = (1.0 + sign * std[..., 0])[mask].min()
            if best is None or margin > best[0] + 1e-9:
                best = (margin, sign * std, perm)
    _, std, perm = best
    half = np.arccos(np.clip(std[..., 0], -1.0, 1.0))  # in [0, pi]: angles up to 2 pi
    vec = std[..., 1:]
    norm = np.linalg.norm(vec, axis=-1, keepdims=True)
    axis_angle = np.where(norm > 1e-9, vec / np.maximum(norm, 1e-12) * (2.0 * half[..., None]), 0.0)
    return axis_angle, perm


def build_head_template(
    resolution: int = 256, n_samples: int = 256, obj_path: str | Path | None = None
) -> HeadTemplate:
    """Texel maps of the demo template at plane resolution ``R`` and its generator buffers (from the OBJ)."""
    obj_path = Path(obj_path) if obj_path is not None else tpl_mod.TEMPLATE_OBJ
    res = int(resolution)
    c = (np.arange(res, dtype=np.float64) + 0.5) / res
    u, v = np.meshgrid(c, c, indexing="xy")  # [R, R], row = v
    d = tpl_mod.uv_to_direction(u, v)
    az = np.arctan2(d[..., 0], d[..., 2])
    el = np.arcsin(np.clip(d[..., 1], -1.0, 1.0))
    rho = np.hypot(2 * u - 1, 1 - 2 * v)
    az = np.where(rho >= tpl_mod.RHO_POLE, np.where(u >= 0.5, math.pi, -math.pi), az)  # the pole: straight back

    h = 1e-4
    pos, _ = tpl_mod.surface_points(u, v)
    # Tangents by central differences. On the ring that maps to the back pole the surface does not move with
    # (u, v), so there they are taken just inside the ring (same direction around the centre): the frame field
    # stays continuous in UV and the Gaussians piled on the pole get the size of their neighbours.
    pull = np.minimum(1.0, (tpl_mod.RHO_POLE - 0.012) / np.maximum(rho, 1e-12))
    fu, fv = 0.5 + (u - 0.5) * pull, 0.5 + (v - 0.5) * pull
    p_u = (tpl_mod.surface_points(fu + h, fv)[0] - tpl_mod.surface_points(fu - h, fv)[0]) / (2 * h)  # [R, R, 3]
    p_v = (tpl_mod.surface_points(fu, fv + h)[0] - tpl_mod.surface_points(fu, fv - h)[0]) / (2 * h)
    n = np.cross(p_v, p_u)  # u toward +x, v toward -y: this order points outward
    n /= np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-12)
    t1 = p_v - (p_v * n).sum(-1, keepdims=True) * n
    t1 /= np.maximum(np.linalg.norm(t1, axis=-1, keepdims=True), 1e-12)
    t2 = np.cross(n, t1)
    frame = np.stack([t1, t2, n], axis=-1)  # [R, R, 3, 3], columns
    step = 1.0 / (n_samples - 1)  # lattice spacing in u and v
    s1 = step * np.sqrt((p_u * t1).sum(-1) ** 2 + (p_v * t1).sum(-1) ** 2)
    s2 = step * np.sqrt((p_u * t2).sum(-1) ** 2 + (p_v * t2).sum(-1) ** 2)

    mesh = load_obj(obj_path)
    raster = rasterize_uv(mesh.faces, mesh.uvs, res)
    coverage = raster.mask
    uv_grid, uv_position_map, template_points = build_uv_template_from_obj(obj_path, res, n_samples)
    # Texels that bilinear sampling at the kept lattice points reads (their 2x2 neighbourhoods).
    px = ((uv_grid[0, :, 0, :] + 1.0) * res - 1.0) / 2.0  # [G, 2] (column, row) in texel units
    loss_mask = np.zeros((res, res), dtype=np.float32)
    cols, rows = np.floor(px[:, 0].numpy()).astype(int), np.floor(px[:, 1].numpy()).astype(int)
    for dr in (0, 1):
        for dc in (0, 1):
            rr, cc = np.clip(rows + dr, 0, res - 1), np.clip(cols + dc, 0, res - 1)
            loss_mask[rr, cc] = 1.0

    axis_angle, perm = frame_to_axis_angle(frame, loss_mask > 0)

    # Angle per texel at the UV centre: d(alpha)/d(rho) = ALPHA_MAX / (1 + k), and rho spans R/2 texels.
    texel_angle = math.radians(tpl_mod.ALPHA_MAX_DEG) / (1 + tpl_mod.CENTER_STRETCH) * 2.0 / res

    def t(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x)).to(torch.float32)

    return HeadTemplate(
        resolution=res,
        n_samples=int(n_samples),
        az=t(az),
        el=t(el),
        rho=t(rho),
        position=t(pos.transpose(2, 0, 1)),
        normal=t(n.transpose(2, 0, 1)),
        frame=t(frame.transpose(2, 3, 0, 1)),
        spacing=t(np.stack([s1, s2])),
        axis_perm=perm,
        axis_angle=t(axis_angle.transpose(2, 0, 1)),
        edge=max(0.006, 0.5 * texel_angle),
        coverage=t(coverage),
        loss_mask=t(loss_mask),
        uv_grid=uv_grid,
        uv_position_map=uv_position_map,
        template_points=template_points,
    )


# ---------------------------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------------------------


def _sstep(e0: float | torch.Tensor, e1: float | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _band(x: torch.Tensor, lo, hi, soft: float) -> torch.Tensor:
    """1 inside [lo, hi], 0 outside, with soft edges of half-width ``soft``."""
    return _sstep(lo - soft, lo + soft, x) * (1.0 - _sstep(hi - soft, hi + soft, x))


def _lerp(a, b, t):
    return a + (b - a) * t


def _rgb(r: float, g: float, b: float) -> torch.Tensor:
    return torch.tensor([r, g, b], dtype=torch.float32).reshape(1, 3, 1, 1)


def _palette(t: torch.Tensor, colours: list[tuple[float, float, float]]) -> torch.Tensor:
    """Piecewise-linear colour ramp: ``t [B, 1, 1]`` in [0, 1] -> ``[B, 3, 1, 1]``."""
    stops = torch.tensor(colours, dtype=torch.float32, device=t.device)  # [K, 3]
    x = t.reshape(-1).clamp(0, 1) * (len(colours) - 1)
    i0 = x.floor().clamp(max=len(colours) - 2).long()
    f = (x - i0.to(x.dtype))[:, None]
    return (stops[i0] * (1 - f) + stops[i0 + 1] * f).reshape(-1, 3, 1, 1)


def _mix(base: torch.Tensor, colour: torch.Tensor, amount: torch.Tensor) -> torch.Tensor:
    """``base [B,3,R,R]`` blended toward ``colour [B|1,3,R|1,R|1]`` by ``amount [B,R,R]``."""
    return base + (colour - base) * amount.unsqueeze(1)


def _interp_curve(x: torch.Tensor, knots: list[float], values: list[torch.Tensor]) -> torch.Tensor:
    """Smooth (cosine-eased) interpolation through ``(knots[i], values[i])``; values broadcast like ``x``."""
    out = values[0] * torch.ones_like(x)
    for i in range(1, len(knots)):
        w = _sstep(knots[i - 1], knots[i], x)
        out = out + (values[i] - values[i - 1]) * w
    return out


SKIN_PALETTE = [(0.97, 0.84, 0.74), (0.93, 0.75, 0.62), (0.82, 0.60, 0.45), (0.63, 0.43, 0.30), (0.42, 0.27, 0.18)]
HAIR_PALETTE = [(0.92, 0.80, 0.55), (0.72, 0.55, 0.33), (0.42, 0.27, 0.15), (0.20, 0.13, 0.08), (0.06, 0.05, 0.05)]
EYE_PALETTE = [(0.33, 0.19, 0.09), (0.46, 0.34, 0.16), (0.30, 0.47, 0.26), (0.26, 0.46, 0.72), (0.52, 0.58, 0.64)]
LIGHT_DIR = (0.25, 0.5, 1.0)


@dataclass
class HeadAttributes:
    """Decoded per-texel Gaussian attributes of a batch of heads (``B`` heads, ``R x R`` texels)."""

    offset: torch.Tensor  # [B, 3, R, R] position offset from the template, |.| < 0.25
    log_scale: torch.Tensor  # [B, 3, R, R] < -3, in the encoded rotation's local axis order
    axis_angle: torch.Tensor  # [B, 3, R, R] GGHead axis-angle (decoded, |a_i| < 2 pi)
    rgb: torch.Tensor  # [B, 3, R, R] albedo with baked lighting, in [COLOR_MIN, COLOR_MAX]
    opacity: torch.Tensor  # [B, 1, R, R] in (0, 1)
    hair: torch.Tensor  # [B, 1, R, R] hair coverage in [0, 1] (not a Gaussian attribute: for checks and tools)


def head_attributes(params: HeadParams, tpl: HeadTemplate) -> HeadAttributes:
    """The heads of ``params`` on the template, per texel (see the module docstring)."""
    dev = tpl.az.device
    b = params.batch_size
    p = HeadParams(params.values.to(dev))
    e = tpl.edge
    az, el = tpl.az[None], tpl.el[None]  # [1, R, R]
    aaz = az.abs()
    pos, nrm = tpl.position[None], tpl.normal[None]  # [1, 3, R, R]
    y = pos[:, 1]

    # ---- hair coverage ------------------------------------------------------------------------------------
    # The hair's lower edge as an elevation per |azimuth|: the front hairline, the temples, round the ears, and
    # down the back of the head to the nape (short hair) or onto the neck (long hair). Everything above the edge is
    # hair, up over the crown and round the back pole, so no seed shows a bald back.
    hairline = _lerp(0.40, 0.62, p["hairline"])  # elevation of the front hairline
    recess = _lerp(0.0, 0.14, p["temple_recess"])
    bangs = _sstep(0.55, 0.85, p["bangs"])
    length = p["hair_length"]
    front = _lerp(hairline, 0.27, bangs)
    el_line = _interp_curve(
        aaz,
        [0.0, 0.5, 0.95, 1.22, 1.33, 1.45, 1.62, 1.85, 2.2, 2.6, 3.0],
        [front, front + recess * (1 - bangs), _lerp(0.36, 0.2, length), _lerp(0.25, -0.25, length),
         _lerp(-0.04, -0.5, length), _lerp(0.33, -0.5, length), _lerp(0.3, -0.55, length),
         _lerp(0.05, -0.65, length), _lerp(-0.3, -0.8, length), _lerp(-0.45, -0.95, length),
         _lerp(-0.5, -1.0, length)],
    )  # fmt: skip
    hair = _sstep(el_line - 0.025, el_line + 0.025, el)  # [B, R, R]
    hair_core = _sstep(el_line, el_line + 0.18, el)  # grows from 0 at the hairline to 1 inside

    # ---- colours ------------------------------------------------------------------------------------------
    skin = _palette(p["skin_tone"], SKIN_PALETTE)  # [B, 3, 1, 1]
    warm = (p["skin_warmth"] - 0.5).unsqueeze(1) * torch.tensor([0.05, 0.0, -0.05], device=dev).reshape(1, 3, 1, 1)
    skin = (skin + warm).clamp(0, 1)
    rgb = skin.expand(b, 3, *az.shape[-2:]).clone()

    # cheeks, nose tip and ears a little redder
    flush = (0.35 + 0.65 * p["cheek_blush"]) * sum(
        0.22 * torch.exp(-0.5 * (((az - s * 0.56) / 0.14) ** 2 + ((el + 0.24) / 0.12) ** 2)) for s in (-1, 1)
    )
    flush = flush + 0.12 * torch.exp(-0.5 * ((az / 0.06) ** 2 + ((el + 0.33) / 0.05) ** 2))
    rgb = _mix(rgb, _rgb(0.85, 0.38, 0.35).to(dev), flush)

    # eyes: almond opening with sclera, iris, pupil and a dark upper lash line
    eye_w = _lerp(0.12, 0.15, p["eye_size"])
    eye_h = _lerp(0.056, 0.072, p["eye_size"])
    iris_col = _palette(p["eye_hue"], EYE_PALETTE)
    for side in (-1.0, 1.0):
        dx, dy = az - side * 0.345, el - 0.06
        xr = (dx / eye_w).clamp(-1.5, 1.5)
        lid = eye_h * (1.0 - xr * xr).clamp_min(0.0)  # half-height of the opening at this az
        upper = lid * 1.05 + 0.004
        lower = lid * 0.8
        opening = _sstep(-lower - e, -lower + e, dy) * (1 - _sstep(upper - e, upper + e, dy))
        opening = opening * _sstep(1.0, 0.85, xr.abs())
        # eye shadow around the socket
        shadow = 0.18 * torch.exp(-0.5 * ((dx / (eye_w * 1.25)) ** 2 + ((dy - 0.015) / 0.06) ** 2))
        rgb = rgb * (1 - shadow.unsqueeze(1))
        rgb = _mix(rgb, _rgb(0.92, 0.91, 0.88).to(dev), opening)
        r_eye = torch.sqrt(dx * dx + (dy + 0.004) ** 2)
        iris_r = eye_h * 0.9
        iris = (1 - _sstep(iris_r - e, iris_r + e, r_eye)) * opening
        rgb = _mix(rgb, iris_col, iris)
        ring = _band(r_eye, iris_r * 0.75, iris_r * 1.1, e) * opening * 0.45
        rgb = _mix(rgb, _rgb(0.05, 0.05, 0.06).to(dev), ring)
        pupil = (1 - _sstep(iris_r * 0.4 - e, iris_r * 0.4 + e, r_eye)) * opening
        rgb = _mix(rgb, _rgb(0.03, 0.03, 0.04).to(dev), pupil)
        glint = 0.85 * torch.exp(-0.5 * (((dx - 0.012) / e) ** 2 + ((dy - 0.012) / e) ** 2)) * (0.006 / e) ** 2
        rgb = _mix(rgb, _rgb(0.98, 0.98, 0.98).to(dev), glint * opening)
        lash = _band(dy - upper, -0.006, 0.014, e) * _sstep(1.2, 0.95, xr.abs())
        rgb = _mix(rgb, _rgb(0.08, 0.06, 0.05).to(dev), 0.9 * lash)
        crease = _band(dy - upper, 0.028, 0.036, e) * _sstep(1.1, 0.6, xr.abs())
        rgb = _mix(rgb, skin * 0.72, 0.45 * crease)

    # hair colour (also used for brows and beard)
    hair_col = _palette(p["hair_darkness"], HAIR_PALETTE)
    red_amount = 0.75 * p["hair_red"].unsqueeze(1) ** 2
    hair_col = hair_col + (_rgb(0.62, 0.22, 0.08).to(dev) - hair_col) * red_amount
    grey = _sstep(0.8, 1.0, p["hair_grey"]).unsqueeze(1)
    hair_col = hair_col + (_rgb(0.78, 0.77, 0.76).to(dev) - hair_col) * grey
    brow_col = hair_col * 0.75

    # brows: arcs over the eyes
    brow_el = _lerp(0.175, 0.215, p["brow_height"])
    arch = _lerp(0.0, 0.035, p["brow_arch"])
    thick = _lerp(0.018, 0.034, p["brow_thickness"])
    for side in (-1.0, 1.0):
        s = (az - side * 0.33) * side / 0.16  # -1 inner end .. +1 outer end
        centre = brow_el + arch * (1 - (s - 0.1) ** 2).clamp_min(0) - 0.02 * (s > 0.4).float() * (s - 0.4) ** 2
        half = thick * (1.0 - 0.45 * _sstep(-0.2, 1.1, s))
        brow = _band(el - centre, -half, half, e) * _band(s, -1.0, 1.05, 0.12)
        rgb = _mix(rgb, brow_col, 0.88 * brow)

    # mouth: lips with a darker parting line
    mouth_w = _lerp(0.2, 0.28, p["mouth_width"])
    full = p["lip_fullness"]
    xm = (az / mouth_w).clamp(-1.5, 1.5)
    shape = (1 - xm * xm).clamp_min(0.0) ** 0.6
    el_m = -0.62
    up_h = _lerp(0.028, 0.048, full) * shape
    lo_h = _lerp(0.034, 0.06, full) * shape
    dm = el - el_m
    lips = _band(dm, -lo_h, up_h, e) * _sstep(1.1, 0.95, xm.abs())
    lip_col = _lerp(skin * 0.9, _rgb(0.72, 0.25, 0.27).to(dev), (0.35 + 0.55 * p["lip_redness"]).unsqueeze(1))
    rgb = _mix(rgb, lip_col, lips)
    parting = _band(dm, -0.004, 0.004, e) * _sstep(1.05, 0.85, xm.abs())
    rgb = _mix(rgb, _rgb(0.25, 0.09, 0.09).to(dev), 0.85 * parting)

    # nostrils
    for side in (-1.0, 1.0):
        nostril = torch.exp(-0.5 * (((az - side * 0.045) / 0.02) ** 2 + ((el + 0.405) / 0.012) ** 2))
        rgb = _mix(rgb, skin * 0.45, 0.8 * nostril)

    # beard (mostly absent): jaw, chin and upper lip, clear of the lips
    beard = _sstep(0.65, 0.9, p["beard"])
    beard_zone = _sstep(-0.48, -0.62, el) * _sstep(1.25, 0.9, aaz) * (1 - lips) * _sstep(-1.35, -1.15, el)
    beard_zone = torch.maximum(beard_zone, _band(el, -0.56, -0.5, 0.02) * _sstep(0.3, 0.2, aaz) * (1 - lips))
    rgb = _mix(rgb, hair_col * 0.85, 0.85 * beard * beard_zone)

    # hair: darker at the roots along the hairline (strand detail is left to the elongated Gaussians)
    hair_tex = hair_col * (0.8 + 0.2 * hair_core.unsqueeze(1))
    rgb = _mix(rgb, hair_tex, hair)

    # baked soft lighting from the front-top-right
    light = torch.tensor(LIGHT_DIR, device=dev)
    light = (light / light.norm()).reshape(1, 3, 1, 1)
    diffuse = (nrm * light).sum(1).clamp_min(0.0)  # [1, R, R]
    shade = 0.58 + 0.47 * diffuse
    neck_shadow = 0.22 * _sstep(-0.19, -0.26, y) * _sstep(-0.3, -0.23, y) * _sstep(1.5, 0.9, aaz)  # under the jaw
    shade = shade * (1 - neck_shadow)
    rgb = (rgb * shade.unsqueeze(1)).clamp(COLOR_MIN, COLOR_MAX)

    # ---- geometry -----------------------------------------------------------------------------------------
    x = pos[:, 0]
    front_w = _sstep(1.7, 1.1, aaz)  # face and sides, not the back
    offset = torch.zeros(b, 3, *az.shape[-2:], device=dev)
    width = _lerp(-0.09, 0.09, p["face_width"])
    offset[:, 0] += width * x
    jaw = _lerp(-0.16, 0.12, p["jaw_width"]) * _sstep(-0.35, -0.85, el)
    offset[:, 0] += jaw * x * front_w
    chin = _lerp(-0.012, 0.028, p["chin_length"]) * _sstep(-0.6, -1.0, el) * front_w
    offset[:, 1] -= chin
    offset[:, 2] += 0.35 * chin * _sstep(1.0, 0.3, aaz)
    nose = _lerp(-0.008, 0.022, p["nose_bump"]) * torch.exp(-0.5 * ((az / 0.06) ** 2 + ((el + 0.12) / 0.11) ** 2))
    nose_w = _lerp(-0.006, 0.01, p["nose_width"]) * torch.exp(-0.5 * ((az / 0.09) ** 2 + ((el + 0.36) / 0.05) ** 2))
    lip_push = 0.006 * full * lips
    cheek_zone = torch.exp(-0.5 * (((aaz - 0.58) / 0.15) ** 2 + ((el + 0.2) / 0.14) ** 2))
    cheeks = 0.006 * (p["cheek_blush"] - 0.3) * cheek_zone
    ears = _lerp(-0.01, 0.03, p["ear_size"]) * torch.exp(-0.5 * (((aaz - 1.62) / 0.09) ** 2 + (el / 0.17) ** 2))
    ears = ears * (1 - 0.85 * hair)  # hair covering the ears hides them
    volume = _lerp(0.006, 0.045, p["hair_volume"]) * hair_core * (1 - 0.5 * _sstep(0.3, -0.6, el))
    fringe = 0.012 * bangs * hair * _sstep(0.6, 0.35, el) * _sstep(0.7, 0.3, aaz)
    beard_vol = 0.008 * beard * beard_zone
    along_normal = nose + nose_w + lip_push + cheeks + ears + volume + fringe + beard_vol  # [B, R, R]
    offset = offset + along_normal.unsqueeze(1) * nrm
    offset = offset.clamp(-POSITION_LIMIT, POSITION_LIMIT)

    # ---- scales, rotation, opacity ------------------------------------------------------------------------
    # Hair: strands elongated down the UV v direction, but only well inside the hair (hair_core), so the hair's
    # edge on the skin ends softly instead of in streaks.
    strand = hair * hair_core
    s1 = tpl.spacing[0][None] * _lerp(0.62, 1.1, strand)
    s2 = tpl.spacing[1][None] * _lerp(0.62, 0.55, strand)
    # The ears' rims are steep: the template's spacing underestimates the gaps there, so the ears' Gaussians
    # are widened (else a side view shows pinholes in the ear).
    ear_zone = torch.exp(-0.5 * (((aaz - 1.62) / 0.13) ** 2 + (el / 0.22) ** 2))  # [1, R, R]
    s1 = s1 * (1.0 + 0.6 * ear_zone)
    s2 = s2 * (1.0 + 0.6 * ear_zone)
    # Toward the back pole the UV samples are far apart along the rays to the pole and close together across
    # them; needle-thin Gaussians there show as stripes, so the thinner in-surface axis is widened to at least
    # 1 / MAX_ANISOTROPY of the longer one (more overlap, same coverage).
    longest = torch.maximum(s1, s2)
    s1 = torch.maximum(s1, longest / MAX_ANISOTROPY)
    s2 = torch.maximum(s2, longest / MAX_ANISOTROPY)
    sn = 0.3 * torch.minimum(s1, s2)
    frame_scales = torch.stack([s1, s2, sn], dim=1)  # [B, 3, R, R] along t1, t2, n
    scales = frame_scales[:, list(tpl.axis_perm)]
    log_scale = torch.log(scales.clamp(1e-5, 0.045))
    axis_angle = tpl.axis_angle[None].expand(b, -1, -1, -1)

    # A closed head: opaque everywhere (the hair a touch less, so its edge on the skin stays soft).
    opacity = (OPACITY_MAX * _lerp(0.995, 0.985, hair)).unsqueeze(1)
    return HeadAttributes(offset=offset, log_scale=log_scale, axis_angle=axis_angle, rgb=rgb, opacity=opacity,
                          hair=hair.unsqueeze(1))


# ---------------------------------------------------------------------------------------------------------------
# Raw <-> decoded (spec 3.6), on texel planes
# ---------------------------------------------------------------------------------------------------------------


def _check_config(config: GeneratorConfig) -> None:
    if not (config.use_rodriguez_rotation and config.use_rotation_activation and config.use_position_activation
            and config.use_color_activation and config.center_scale_activation and not config.no_exp_scale_activation):
        raise ValueError("the demo head family targets the released GGHead decoding (Rodrigues rotation, tanh "
                         "position/colour activations, centred softplus scale)")


def encode_raw(attrs: HeadAttributes, config: GeneratorConfig) -> torch.Tensor:
    """Raw UV-plane channels ``[B, C_uv, R, R]`` that the decoding of spec 3.6 turns into ``attrs``.

    Colour: only the DC coefficient carries colour (``0.5 + C0 * dc = rgb``); higher SH bands are 0 (no
    view-dependent effects). Channel order follows ``config.uv_attributes``.
    """
    _check_config(config)
    b, _, r, _ = attrs.rgb.shape
    pos = torch.atanh((attrs.offset / config.position_range).clamp(-0.999, 0.999)) / config.position_attenuation
    # log_s = max_scale - softplus(-(raw + offset) + max_scale)  =>  raw = max_scale - offset - softplus^-1(...)
    t = (config.max_scale - attrs.log_scale).clamp_min(1e-6)
    inv_softplus = t + torch.log(-torch.expm1(-t))
    scale = config.max_scale - config.scale_offset - inv_softplus
    rot = torch.atanh((attrs.axis_angle / (2 * math.pi)).clamp(-0.999, 0.999)) / config.rotation_attenuation
    o = config.color_overshoot
    dc = (attrs.rgb - 0.5) / SH_C0  # SH DC coefficient
    dc_raw = torch.atanh(((dc * SH_C0 / 0.5 + o) / (1 + 2 * o)).clamp(-0.999999, 0.999999))
    k = config.num_sh_coefficients
    rest_raw = torch.full((b, 3 * (k - 1), r, r), math.atanh(o / (1 + 2 * o)), device=dc.device)
    colour = torch.cat([dc_raw, rest_raw], dim=1)  # coefficient-major: [dc_r, dc_g, dc_b, c1_r, ...]
    oo = config.opacity_overshoot
    op = ((attrs.opacity + oo) / (1 + 2 * oo)).clamp(1e-6, 1 - 1e-6)
    opacity = torch.log(op) - torch.log1p(-op)
    parts = {"POSITION": pos, "SCALE": scale, "ROTATION": rot, "COLOR": colour, "OPACITY": opacity}
    return torch.cat([parts[name] for name in config.uv_attributes], dim=1)


def decode_planes(raw: torch.Tensor, config: GeneratorConfig) -> dict[str, torch.Tensor]:
    """Decoded per-texel attributes of raw planes ``[B, C_uv, R, R]`` (the training loss compares these).

    Returns ``offset``, ``log_scale``, ``axis_angle``, ``color`` (all SH coefficients, activated) and
    ``opacity`` (activated), each ``[B, c, R, R]``.
    """
    _check_config(config)
    sl = config.attribute_slices()
    raw_pos = raw[:, sl["POSITION"]]
    offset = config.position_range * torch.tanh(config.position_attenuation * raw_pos)
    v = -(raw[:, sl["SCALE"]] + config.scale_offset)
    log_scale = config.max_scale - torch.nn.functional.softplus(v + config.max_scale)
    axis_angle = 2 * math.pi * torch.tanh(config.rotation_attenuation * raw[:, sl["ROTATION"]])
    o = config.color_overshoot
    color = (torch.tanh(raw[:, sl["COLOR"]]) * (1 + 2 * o) - o) * (0.5 / SH_C0)
    oo = config.opacity_overshoot
    opacity = torch.sigmoid(raw[:, sl["OPACITY"]]) * (1 + 2 * oo) - oo
    return {"offset": offset, "log_scale": log_scale, "axis_angle": axis_angle, "color": color, "opacity": opacity}
