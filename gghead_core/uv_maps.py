"""The generator's UV attribute maps for one head, and the exact texel <-> Gaussian mapping.

GGHead predicts every attribute in the UV space of a template mesh: ``synthesize_planes`` gives ``C_uv``
feature planes of ``R x R`` texels, and each Gaussian takes its raw channels by *bilinear* ``grid_sample`` of
those planes at its fixed UV location (``_uv_grid``, spec 3.4-3.5). This module shows those planes the way a
researcher wants to read them: each texel's raw channels decoded exactly as the generator decodes a sampled
Gaussian (the generator's own ``decode_attributes`` and ``activate`` run on the texels), then summarised as
images: position offset (magnitude and xyz), mean log-scale, rotation (angle and axis), opacity, the DC colour,
plus the template's UV layout and which texels spawn Gaussians.

Which texel owns a Gaussian (the definition the viewer's linking uses, tested against the generator's own
sampling in ``tests/test_uv_maps.py``):

    A Gaussian's sample point has continuous texel coordinates ``(row_f, col_f)``: the position, in units of
    texels with texel ``k`` centred at ``k``, that ``grid_sample`` reads (``col_f = ((x + 1) R - 1) / 2`` for
    ``align_corners=False``, ``(x + 1) (R - 1) / 2`` for ``True``). Its **owner texel** is the one whose square
    ``[k - 1/2, k + 1/2)`` contains the point on each axis: ``k = floor(f + 1/2)``, clipped to ``[0, R - 1]``.
    That is the texel with the largest bilinear weight in the generator's sampling (ties, exactly half way,
    go to the higher index). Every Gaussian has exactly one owner; a texel owns zero, one or several.

Hovering a texel selects the Gaussians it owns; when it owns none, :meth:`TexelMapping.nearest` gives the
Gaussian whose sample point is nearest to the texel centre (within one texel), so a hover over a sparsely
sampled layout still finds the closest splat.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

__all__ = [
    "MAP_INFO",
    "MAP_NAMES",
    "MapInfo",
    "TexelMapping",
    "UVMaps",
    "colorize",
    "encode_png16",
    "map_to_uint16",
    "texel_mapping",
    "uv_maps",
    "uv_maps_from_ws",
]

SH_C0 = 0.28209479177387814  # spec appendix A; colour = C0 * dc + 0.5 (spec 4.5)


@dataclass(frozen=True)
class MapInfo:
    """How one map is read: its channels, a fixed value range (or None: the data's range over spawning
    texels, symmetric around 0 when ``signed``) and a sentence for tooltips and the export manifest."""

    channels: int
    fixed_range: tuple[float, float] | None
    signed: bool
    unit: str
    description: str


MAP_INFO: dict[str, MapInfo] = {
    "offset_magnitude": MapInfo(1, None, False, "world units",
                                "length of the position offset from the template point"),
    "offset_xyz": MapInfo(3, None, True, "world units", "position offset x, y, z as R, G, B"),
    "log_scale": MapInfo(1, None, False, "log world units", "mean of the three log-scales"),
    "rotation_angle": MapInfo(1, (0.0, 180.0), False, "degrees",
                              "angle of the rotation the rasterizer applies (quirk-ordered quaternion)"),
    "rotation_axis": MapInfo(3, (-1.0, 1.0), True, "",
                             "quaternion vector part (x, y, z) with w >= 0, as R, G, B"),
    "opacity": MapInfo(1, (0.0, 1.0), False, "", "activated opacity"),
    "color": MapInfo(3, (0.0, 1.0), False, "", "SH DC term as RGB (C0 * dc + 0.5), the view-independent colour"),
    "template_position": MapInfo(3, None, True, "world units",
                                 "template point per texel (the UV layout), x, y, z as R, G, B"),
    "template_coverage": MapInfo(1, (0.0, 1.0), False, "",
                                 "texels the template mesh covers (where its position map is non-zero: "
                                 "checkpoints do not store the coverage mask itself)"),
    "spawn_count": MapInfo(1, None, False, "Gaussians", "number of Gaussians each texel owns"),
    "spawn_mask": MapInfo(1, (0.0, 1.0), False, "", "texels that own at least one Gaussian"),
}
MAP_NAMES: tuple[str, ...] = tuple(MAP_INFO)


# --------------------------------------------------------------------------------------------------------------
# texel <-> Gaussian
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class TexelMapping:
    """Owner texel of every Gaussian of a generator (see the module docstring for the definition).

    Arrays are numpy (the viewer queries them per mouse move); ``order``/``start`` index the Gaussians grouped by
    owner texel (CSR), so the Gaussians of a texel or of a box of texels are a slice or a few slices.
    """

    resolution: int
    sample_rc: np.ndarray  # [G, 2] float64 continuous (row, col) texel coordinates of each sample point
    owner_rc: np.ndarray  # [G, 2] int64 owner texel (row, col)
    order: np.ndarray  # [G] int64 Gaussian indices sorted by owner texel (stable: ascending inside a texel)
    start: np.ndarray  # [R*R + 1] int64: texel t owns order[start[t]:start[t+1]]

    @property
    def num_gaussians(self) -> int:
        return int(self.owner_rc.shape[0])

    def counts(self) -> np.ndarray:
        """``[R, R]`` int64: how many Gaussians each texel owns."""
        return np.diff(self.start).reshape(self.resolution, self.resolution)

    def texel_of(self, gaussian: int) -> tuple[int, int]:
        """Owner texel ``(row, col)`` of Gaussian ``gaussian``."""
        if not 0 <= int(gaussian) < self.num_gaussians:
            raise IndexError(f"Gaussian index {gaussian} is outside 0..{self.num_gaussians - 1}")
        r, c = self.owner_rc[int(gaussian)]
        return int(r), int(c)

    def gaussians_at(self, row: int, col: int) -> np.ndarray:
        """Indices (ascending) of the Gaussians texel ``(row, col)`` owns; empty outside the plane."""
        r = self.resolution
        if not (0 <= row < r and 0 <= col < r):
            return np.zeros(0, np.int64)
        t = int(row) * r + int(col)
        return self.order[self.start[t]:self.start[t + 1]]

    def gaussians_in_box(self, row0: int, col0: int, row1: int, col1: int) -> np.ndarray:
        """Indices (ascending) of the Gaussians owned by texels ``row0 <= row < row1``, ``col0 <= col < col1``
        (clipped to the plane)."""
        r = self.resolution
        row0, row1 = max(0, int(row0)), min(r, int(row1))
        col0, col1 = max(0, int(col0)), min(r, int(col1))
        if row0 >= row1 or col0 >= col1:
            return np.zeros(0, np.int64)
        rows = np.arange(row0, row1)
        lo = self.start[rows * r + col0]  # texels of one row are contiguous in the CSR order
        hi = self.start[rows * r + col1]
        parts = [self.order[a:b] for a, b in zip(lo, hi) if b > a]
        return np.sort(np.concatenate(parts)) if parts else np.zeros(0, np.int64)

    def nearest(self, row: float, col: float, max_distance: float = 1.0) -> int | None:
        """The Gaussian whose sample point is nearest to texel coordinates ``(row, col)`` (Euclidean, in
        texels), or None when none lies within ``max_distance`` texels. Searches the 3x3 texel neighbourhood
        around the point's own texel first (owners there are all within 1.5 texels)."""
        r = self.resolution
        cr, cc = int(math.floor(row + 0.5)), int(math.floor(col + 0.5))
        reach = max(1, int(math.ceil(max_distance)))
        cand = self.gaussians_in_box(cr - reach, cc - reach, cr + reach + 1, cc + reach + 1)
        if cand.size == 0 or not (-reach <= cr < r + reach and -reach <= cc < r + reach):
            return None
        d2 = ((self.sample_rc[cand] - np.array([row, col])) ** 2).sum(axis=1)
        i = int(np.argmin(d2))
        return int(cand[i]) if d2[i] <= max_distance**2 else None

    def select(self, row: int, col: int) -> np.ndarray:
        """What hovering texel ``(row, col)`` selects: the Gaussians it owns, else the nearest one within a
        texel of its centre, else nothing."""
        own = self.gaussians_at(row, col)
        if own.size:
            return own
        near = self.nearest(float(row), float(col))
        return np.zeros(0, np.int64) if near is None else np.array([near], np.int64)


def sample_coordinates(uv_grid: torch.Tensor, resolution: int, align_corners: bool) -> np.ndarray:
    """``grid_sample`` coordinates ``[1, G, 1, 2]`` (x = column, y = row, in [-1, 1]) -> continuous texel
    coordinates ``[G, 2]`` (row, col) with texel ``k`` centred at ``k`` (PyTorch's unnormalisation rule)."""
    xy = uv_grid.detach().to("cpu", torch.float64).reshape(-1, 2).numpy()
    if align_corners:
        cr = (xy + 1.0) * 0.5 * (resolution - 1)
    else:
        cr = ((xy + 1.0) * resolution - 1.0) * 0.5
    return np.ascontiguousarray(cr[:, ::-1])  # (x, y) -> (row, col)


def texel_mapping(G: Any) -> TexelMapping:
    """The owner texel of each of ``G``'s Gaussians (depends only on the template, not on the latent)."""
    r = int(G.plane_resolution)
    sample_rc = sample_coordinates(G._uv_grid, r, bool(G.config.use_align_corners))
    owner = np.clip(np.floor(sample_rc + 0.5), 0, r - 1).astype(np.int64)  # [G, 2]
    flat = owner[:, 0] * r + owner[:, 1]
    order = np.argsort(flat, kind="stable").astype(np.int64)
    start = np.zeros(r * r + 1, np.int64)
    np.cumsum(np.bincount(flat, minlength=r * r), out=start[1:])
    return TexelMapping(resolution=r, sample_rc=sample_rc, owner_rc=owner, order=order, start=start)


# --------------------------------------------------------------------------------------------------------------
# the maps
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class UVMaps:
    """All maps of one head at plane resolution ``R`` (float32 numpy, ``[R, R]`` or ``[R, R, 3]``, row = v,
    column = u as in the planes), their display ranges, and the generator's raw planes they came from."""

    resolution: int
    maps: dict[str, np.ndarray]
    ranges: dict[str, tuple[float, float]]
    raw_planes: np.ndarray  # [C_uv, R, R] float32: synthesize_planes after the position zero-conv
    mapping: TexelMapping
    channel_slices: dict[str, tuple[int, int]] = field(default_factory=dict)  # raw plane channels per attribute

    def normalized(self, name: str) -> np.ndarray:
        """``maps[name]`` mapped to [0, 1] with its range (clipped)."""
        lo, hi = self.ranges[name]
        span = hi - lo if hi > lo else 1.0
        return np.clip((self.maps[name] - lo) / span, 0.0, 1.0).astype(np.float32)

    def value_at(self, name: str, row: int, col: int) -> np.ndarray:
        """The map's value at texel ``(row, col)`` (``[1]`` or ``[3]``)."""
        return np.atleast_1d(self.maps[name][int(row), int(col)])


def _decode_texels(G: Any, raw_texels: torch.Tensor) -> tuple[Any, Any]:
    """Run the generator's own ``decode_attributes`` and ``activate`` on texel values ``[T, C]``.

    Both expect ``[B, G, C]`` (decode adds the template point of each Gaussian, ``[1, G, 3]``), so the texels
    are padded and folded into ``ceil(T / G)`` rows of ``G``; the template point is subtracted again by the
    caller. Returns (model-space attributes, Gaussians), each ``[K, G, ...]``.
    """
    n = int(G.num_gaussians)
    t, c = raw_texels.shape
    k = max(1, -(-t // n))
    padded = torch.zeros(k * n, c, dtype=raw_texels.dtype, device=raw_texels.device)
    padded[:t] = raw_texels
    attrs = G.decode_attributes(padded.reshape(k, n, c))
    return attrs, G.activate(attrs)


def _unfold(x: torch.Tensor, t: int, r: int) -> np.ndarray:
    """``[K, G, D]`` (texels folded as in :func:`_decode_texels`) -> ``[R, R, D]`` numpy float32."""
    flat = x.reshape(-1, x.shape[-1])[:t]
    return flat.reshape(r, r, -1).detach().to("cpu", torch.float32).numpy()


def _range(values: np.ndarray, mask: np.ndarray, info: MapInfo) -> tuple[float, float]:
    if info.fixed_range is not None:
        return info.fixed_range
    sel = values[mask] if mask.any() else values.reshape(-1, *values.shape[2:])
    sel = sel[np.isfinite(sel)]
    if sel.size == 0:
        return (0.0, 1.0)
    if info.signed:
        m = float(np.abs(sel).max())
        return (-m, m) if m > 0 else (-1.0, 1.0)
    lo, hi = float(sel.min()), float(sel.max())
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def uv_maps_from_ws(G: Any, ws: torch.Tensor, noise_mode: str = "const",
                    mapping: TexelMapping | None = None) -> UVMaps:
    """The maps of the head ``ws [1, num_ws, w_dim]`` (``mapping``: pass a cached :func:`texel_mapping`)."""
    if ws.dim() != 3 or ws.shape[0] != 1:
        raise ValueError(f"uv_maps needs the ws of one head, [1, num_ws, w_dim]; got {tuple(ws.shape)}")
    r = int(G.plane_resolution)
    with torch.no_grad():
        planes = G.synthesize_planes(ws, noise_mode=noise_mode).to(torch.float32)
        raw = G.position_adjusted_planes(planes)[0]  # [C, R, R]: what sample_uv reads
        texels = raw.permute(1, 2, 0).reshape(r * r, -1)  # [T, C], row-major (row = v, col = u)
        attrs, g = _decode_texels(G, texels)
        template = G._flame_vertices.to(attrs.position.dtype)  # [1, G, 3]
        offset = attrs.position - template  # [K, G, 3]
        quats = g.quats  # [K, G, 4] (w, x, y, z) as the rasterizer reads them
        sign = torch.where(quats[..., :1] < 0, -1.0, 1.0)
        canon = quats * sign
        angle = torch.rad2deg(2.0 * torch.acos(canon[..., :1].clamp(-1.0, 1.0)))
        dc = g.sh[..., 0, :]  # [K, G, 3]
        t = r * r
        maps: dict[str, np.ndarray] = {}
        off = _unfold(offset, t, r)
        maps["offset_magnitude"] = np.linalg.norm(off, axis=-1).astype(np.float32)
        maps["offset_xyz"] = off
        maps["log_scale"] = _unfold(attrs.log_scale.mean(dim=-1, keepdim=True), t, r)[..., 0]
        maps["rotation_angle"] = _unfold(angle, t, r)[..., 0]
        maps["rotation_axis"] = _unfold(canon[..., 1:], t, r)
        maps["opacity"] = _unfold(g.opacities[..., None], t, r)[..., 0]
        maps["color"] = np.maximum(_unfold(SH_C0 * dc + 0.5, t, r), 0.0)
        tpl = G._uv_position_map.detach().to("cpu", torch.float32).permute(1, 2, 0).numpy()  # [R, R, 3]
        maps["template_position"] = np.ascontiguousarray(tpl)
        maps["template_coverage"] = (np.abs(tpl).sum(axis=-1) > 0).astype(np.float32)
    mapping = mapping or texel_mapping(G)
    counts = mapping.counts()
    maps["spawn_count"] = counts.astype(np.float32)
    maps["spawn_mask"] = (counts > 0).astype(np.float32)
    spawn = counts > 0
    ranges = {}
    for name, info in MAP_INFO.items():
        mask = maps["template_coverage"] > 0 if name == "template_position" else spawn
        ranges[name] = _range(maps[name], mask, info)
    slices = {k: (int(s.start), int(s.stop)) for k, s in G.config.attribute_slices().items()}
    return UVMaps(resolution=r, maps={k: np.ascontiguousarray(v, dtype=np.float32) for k, v in maps.items()},
                  ranges=ranges, raw_planes=raw.detach().to("cpu", torch.float32).numpy(), mapping=mapping,
                  channel_slices=slices)


def uv_maps(G: Any, latent: Any, directions: Mapping[str, torch.Tensor] | None = None,
            mapping: TexelMapping | None = None) -> UVMaps:
    """The maps of the head a :class:`~gghead_core.pipeline.LatentSpec` describes (the same ws as every job)."""
    from gghead_core.pipeline import make_ws

    return uv_maps_from_ws(G, make_ws(G, latent, directions=directions), latent.noise_mode, mapping)


# --------------------------------------------------------------------------------------------------------------
# images
# --------------------------------------------------------------------------------------------------------------

# A perceptually ordered dark-blue -> yellow ramp (anchor colours of the viridis family, public values).
_RAMP = np.array([
    [0.267, 0.005, 0.329], [0.283, 0.141, 0.458], [0.254, 0.265, 0.530], [0.207, 0.372, 0.553],
    [0.164, 0.471, 0.558], [0.128, 0.567, 0.551], [0.135, 0.659, 0.518], [0.267, 0.749, 0.441],
    [0.478, 0.821, 0.318], [0.741, 0.873, 0.150], [0.993, 0.906, 0.144],
], dtype=np.float32)


def colorize(values01: np.ndarray) -> np.ndarray:
    """Scalars in [0, 1] ``[...]`` -> RGB ``[..., 3]`` float32 on the ramp the viewer's colour bar shows;
    3-channel input passes through (already RGB)."""
    v = np.asarray(values01, dtype=np.float32)
    if v.ndim >= 3 and v.shape[-1] == 3:
        return np.clip(v, 0.0, 1.0)
    x = np.clip(v, 0.0, 1.0) * (len(_RAMP) - 1)
    i = np.minimum(np.floor(x).astype(np.int64), len(_RAMP) - 2)
    f = (x - i)[..., None]
    return (_RAMP[i] * (1.0 - f) + _RAMP[i + 1] * f).astype(np.float32)


def map_to_uint16(values: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """``round((v - lo) / (hi - lo) * 65535)`` clipped: the PNG encoding the export manifest documents, so
    ``lo + png / 65535 * (hi - lo)`` recovers the value to within half a step."""
    lo, hi = float(value_range[0]), float(value_range[1])
    span = hi - lo if hi > lo else 1.0
    x = (np.asarray(values, dtype=np.float64) - lo) / span
    return np.clip(np.rint(x * 65535.0), 0, 65535).astype(np.uint16)


def encode_png16(image: np.ndarray) -> bytes:
    """A 16-bit greyscale ``[H, W]`` or RGB ``[H, W, 3]`` PNG (uint16), written directly: Pillow cannot write
    16-bit RGB. Unfiltered rows, zlib level 6: the maps are small (R <= 512)."""
    img = np.asarray(image)
    if img.dtype != np.uint16 or img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] != 3):
        raise ValueError(f"encode_png16 needs uint16 [H, W] or [H, W, 3], got {img.dtype} {img.shape}")
    h, w = img.shape[:2]
    color_type = 0 if img.ndim == 2 else 2
    rows = img.astype(">u2").reshape(h, -1).view(np.uint8).reshape(h, -1)
    raw = np.concatenate([np.zeros((h, 1), np.uint8), rows], axis=1).tobytes()  # filter byte 0 per row

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")
