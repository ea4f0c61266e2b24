"""Latent-space helpers shared by the pipeline, the jobs and the GUI.

Everything here is pure and cheap: parsing seed lists, interpolating latents (lerp / slerp), the official
interpolation schedule (spec 5.2), style mixing, and the camera trajectories of the official scripts
(spec 5.1 turntable circle) plus a yaw orbit. No generator or renderer is imported, so the GUI can use this
module from its widget code without pulling in heavy dependencies.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from gghead_core.camera import DEFAULT_FOCAL, DEFAULT_RADIUS, Camera, CameraSpec, look_at_cam2world
from gghead_core.vocabulary import MAX_SEED, InterpMethod

MAX_SEEDS_IN_LIST = 100_000
"""A guard so that ``0-4294967295`` is refused instead of allocating billions of ints."""


# --------------------------------------------------------------------------------------------------------------
# Seeds
# --------------------------------------------------------------------------------------------------------------

_INT_RE = re.compile(r"^\d+$")
_RANGE_RE = re.compile(r"^(\d+)\s*-\s*(\d+)$")


def parse_seed(text: str | int) -> int:
    """One seed: a non-negative integer up to 2**32-1. Raises ValueError with a one-line message."""
    if isinstance(text, bool):
        raise ValueError(f"invalid seed {text!r}")
    if isinstance(text, int):
        value = text
    else:
        s = str(text).strip()
        if re.fullmatch(r"-\s*\d+", s):
            raise ValueError(f"invalid seed {s!r}: seeds must be non-negative")
        if not _INT_RE.match(s):
            raise ValueError(f"invalid seed {s!r}: expected a non-negative integer")
        value = int(s)
    if value < 0:
        raise ValueError(f"invalid seed {value}: seeds must be non-negative")
    if value > MAX_SEED:
        raise ValueError(f"invalid seed {value}: seeds must be at most {MAX_SEED} (2^32-1)")
    return value


def parse_seed_list(text: str | int | Sequence[int], limit: int = MAX_SEEDS_IN_LIST) -> list[int]:
    """Parse ``"0,1,2"``, ``"0-7"`` (inclusive) or mixes like ``"0-3,8,10-12"`` into a list of seeds.

    Order and duplicates are kept (``"0,1,0"`` is a meaningful interpolation path). Empty items (``"1,,2"``),
    non-integers, reversed ranges (``"5-2"``), negative seeds and seeds above 2**32-1 are refused with a
    ValueError whose message names the offending item. A list or int is validated the same way. ``limit``
    bounds the length before anything is allocated (datasets pass a larger one than the other commands).
    """
    if isinstance(text, (list, tuple)):
        return [parse_seed(v) for v in text] or _raise_empty()
    if isinstance(text, int) and not isinstance(text, bool):
        return [parse_seed(text)]
    s = str(text).strip()
    if not s:
        _raise_empty()
    seeds: list[int] = []
    for raw_item in s.split(","):
        item = raw_item.strip()
        if not item:
            raise ValueError(f"invalid seed list {s!r}: empty item (check for doubled or trailing commas)")
        m = _RANGE_RE.match(item)
        if m:
            lo, hi = parse_seed(m.group(1)), parse_seed(m.group(2))
            if hi < lo:
                raise ValueError(f"invalid seed range {item!r}: the end is smaller than the start")
            if len(seeds) + (hi - lo + 1) > limit:
                raise ValueError(f"seed list {s!r} is too long (more than {limit} seeds)")
            seeds.extend(range(lo, hi + 1))
            continue
        if item.startswith("-") or re.fullmatch(r".*\d\s*-\s*-.*", item):
            raise ValueError(f"invalid seed {item!r} in {s!r}: seeds must be non-negative")
        try:
            seeds.append(parse_seed(item))
        except ValueError as exc:
            raise ValueError(f"{exc} in seed list {s!r}") from None
        if len(seeds) > limit:
            raise ValueError(f"seed list {s!r} is too long (more than {limit} seeds)")
    return seeds


def _raise_empty() -> list[int]:
    raise ValueError("empty seed list: give seeds like 0,1,2 or 0-7")


def format_seed_list(seeds: Sequence[int]) -> str:
    """Compact text for a seed list (runs become ranges): ``[0,1,2,3,7]`` -> ``"0-3,7"``. Inverse of parsing."""
    parts: list[str] = []
    i = 0
    while i < len(seeds):
        j = i
        while j + 1 < len(seeds) and seeds[j + 1] == seeds[j] + 1:
            j += 1
        parts.append(str(seeds[i]) if j == i else f"{seeds[i]}-{seeds[j]}")
        i = j + 1
    return ",".join(parts)


# --------------------------------------------------------------------------------------------------------------
# Interpolation primitives
# --------------------------------------------------------------------------------------------------------------


def lerp(a: torch.Tensor, b: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    """``a + t * (b - a)`` (spec notation), broadcasting ``t``.

    Computed with ``torch.lerp``, which is exact at both ends (``t = 1`` gives ``b`` bit for bit, where the
    naive formula can be 1 ulp off), so the key frames of an interpolation equal the seeds' own latents.
    """
    if isinstance(t, torch.Tensor):
        t = t.to(dtype=torch.promote_types(a.dtype, b.dtype), device=a.device)
        dtype = torch.promote_types(torch.promote_types(a.dtype, b.dtype), t.dtype)
        return torch.lerp(a.to(dtype), b.to(dtype), t.to(dtype))
    dtype = torch.promote_types(a.dtype, b.dtype)
    return torch.lerp(a.to(dtype), b.to(dtype), float(t))


def slerp(a: torch.Tensor, b: torch.Tensor, t: float | torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Spherical interpolation along the last dimension, exact at t=0 and t=1.

    Uses the classic formula ``sin((1-t)W)/sin W * a + sin(tW)/sin W * b`` with the angle W between the
    *directions* of ``a`` and ``b``, so for vectors of equal norm the norm is kept along the path (what
    Gaussian latents want). It is computed in float64 and falls back to lerp where ``sin W`` is tiny:
    near-parallel inputs (where slerp and lerp coincide) and exactly antiparallel inputs (where the great
    circle is undefined). Zero vectors also take the lerp path.
    """
    dtype = torch.promote_types(a.dtype, b.dtype)
    a64, b64 = a.to(torch.float64), b.to(torch.float64)
    t64 = torch.as_tensor(t, dtype=torch.float64, device=a.device)
    if t64.dim() > 0 and tuple(t64.shape) == tuple(torch.broadcast_shapes(a64.shape, b64.shape)[:-1]):
        t64 = t64.unsqueeze(-1)  # one t per vector: [...] -> [..., 1]
    na = a64.norm(dim=-1, keepdim=True)
    nb = b64.norm(dim=-1, keepdim=True)
    denom = (na * nb).clamp_min(1e-300)
    cos = ((a64 * b64).sum(-1, keepdim=True) / denom).clamp(-1.0, 1.0)
    omega = torch.arccos(cos)  # [..., 1]
    sin_omega = torch.sin(omega)
    degenerate = (sin_omega < eps) | (na == 0) | (nb == 0)
    safe_sin = torch.where(degenerate, torch.ones_like(sin_omega), sin_omega)
    wa = torch.sin((1.0 - t64) * omega) / safe_sin
    wb = torch.sin(t64 * omega) / safe_sin
    spherical = wa * a64 + wb * b64
    linear = a64 + (b64 - a64) * t64
    out = torch.where(degenerate, linear, spherical)
    # Make the end points exact (sin round-off would otherwise leave ~1e-16 residues).
    if t64.dim() == 0:
        if float(t64) == 0.0:
            out = a64
        elif float(t64) == 1.0:
            out = b64
    return out.to(dtype)


def interpolate(a: torch.Tensor, b: torch.Tensor, t: float, method: InterpMethod = "lerp") -> torch.Tensor:
    """Interpolate two latents (``[..., D]``) with ``"lerp"`` or ``"slerp"`` (slerp acts on the last dim)."""
    if method == "lerp":
        return lerp(a, b, t)
    if method == "slerp":
        return slerp(a, b, t)
    raise ValueError(f"unknown interpolation method {method!r} (expected lerp or slerp)")


# --------------------------------------------------------------------------------------------------------------
# Interpolation schedules
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScheduleStep:
    """Frame ``frame`` shows ``interpolate(key[index_a], key[index_b], t)`` (indices into the key list)."""

    frame: int
    index_a: int
    index_b: int
    t: float


def keyframes(n_frames: int, n_keys: int) -> np.ndarray:
    """Official key-frame positions ``floor(lin(0, n_frames-1, n_keys))`` (spec 5.2), ``[n_keys]`` int64."""
    if n_frames < 1:
        raise ValueError(f"number of frames must be positive, got {n_frames}")
    if n_keys < 2:
        raise ValueError(f"need at least 2 key frames, got {n_keys}")
    return np.floor(np.linspace(0, n_frames - 1, n_keys)).astype(np.int64)


def key_schedule(n_frames: int, n_keys: int) -> list[ScheduleStep]:
    """Piecewise-linear schedule through ``n_keys`` keys placed by :func:`keyframes`.

    Frame 0 is key 0. For ``f > 0`` the phase is (number of key frames < f) - 1 and
    ``t = (f - key[phase]) / (key[phase+1] - key[phase])``, exactly the rule of the official
    interpolation renderer; so the last frame is the last key (t = 1).
    """
    keys = keyframes(n_frames, n_keys)
    steps = [ScheduleStep(0, 0, 1 if n_keys > 1 else 0, 0.0)]
    for f in range(1, n_frames):
        phase = int(np.count_nonzero(keys < f)) - 1
        phase = min(max(phase, 0), n_keys - 2)
        span = int(keys[phase + 1] - keys[phase])
        t = (f - int(keys[phase])) / span if span > 0 else 1.0
        steps.append(ScheduleStep(f, phase, phase + 1, float(t)))
    return steps


def interpolation_schedule(n_seeds: int, frames_per_seed: int, loop: bool = False) -> list[ScheduleStep]:
    """The frames of a morph through ``n_seeds`` latents, as indices into the seed list.

    * ``loop=True`` is the official ``render_interpolation.py`` schedule (spec 5.2): ``n_frames =
      n_seeds * frames_per_seed`` frames with keys at ``floor(lin(0, n_frames-1, n_seeds+1))`` and the last key
      being seed 0 again (so 5 seeds x 200 frames gives keys [0,199,399,599,799,999], as the official default).
    * ``loop=False`` stops at the last seed: ``(n_seeds-1) * frames_per_seed + 1`` frames with a key every
      ``frames_per_seed`` frames.
    """
    if n_seeds < 2:
        raise ValueError(f"interpolation needs at least 2 seeds, got {n_seeds}")
    if frames_per_seed < 1:
        raise ValueError(f"frames per seed must be positive, got {frames_per_seed}")
    if loop:
        n_frames = n_seeds * frames_per_seed
        if n_frames < n_seeds + 1:
            # One frame per seed with loop: every frame is a key; keep the official rule valid (>= 2 frames).
            n_frames = max(n_frames, 2)
        steps = key_schedule(n_frames, n_seeds + 1)
        return [ScheduleStep(s.frame, s.index_a % n_seeds, s.index_b % n_seeds, s.t) for s in steps]
    n_frames = (n_seeds - 1) * frames_per_seed + 1
    return key_schedule(n_frames, n_seeds)


def interpolate_keys(
    keys: torch.Tensor, schedule: Sequence[ScheduleStep], method: InterpMethod = "lerp"
) -> torch.Tensor:
    """Latents along a schedule: ``keys [K, ...]`` -> ``[F, ...]`` (slerp acts on the last dimension)."""
    out = [interpolate(keys[s.index_a], keys[s.index_b], s.t, method) for s in schedule]
    return torch.stack(out)


# --------------------------------------------------------------------------------------------------------------
# Style mixing
# --------------------------------------------------------------------------------------------------------------


def style_mix(ws: torch.Tensor, ws_other: torch.Tensor, start: int, end: int | None = None) -> torch.Tensor:
    """Replace rows ``[start, end)`` of ``ws [B, num_ws, w_dim]`` with those of ``ws_other`` (same shape or B=1).

    ``end=None`` means "to the last row". Early rows control coarse structure (pose-independent shape),
    late rows fine appearance; ``style_mix(ws_a, ws_b, 7)`` keeps a's shape with b's fine details.
    """
    if ws.dim() != 3 or ws_other.dim() != 3:
        raise ValueError("style_mix expects ws tensors shaped [B, num_ws, w_dim]")
    num_ws = ws.shape[1]
    if ws_other.shape[1:] != ws.shape[1:]:
        raise ValueError(f"style_mix: ws shapes differ: {tuple(ws.shape)} vs {tuple(ws_other.shape)}")
    end = num_ws if end is None else end
    if not (0 <= start <= end <= num_ws):
        raise ValueError(f"style-mixing rows [{start}, {end}) are outside 0..{num_ws}")
    out = ws.clone()
    out[:, start:end] = ws_other[:, start:end].to(ws.dtype).expand(ws.shape[0], -1, -1)
    return out


# --------------------------------------------------------------------------------------------------------------
# Camera trajectories
# --------------------------------------------------------------------------------------------------------------

OFFICIAL_TURNTABLE_FRAMES = 96
"""``scripts/sample_heads.py`` renders 96 poses ..."""
OFFICIAL_TURNTABLE_FPS = 24
"""... written at 24 fps (spec 5.1)."""
OFFICIAL_CIRCLE_DISTANCE = 0.6
"""Radius of the official camera circle around the z axis at depth 2.7."""


def _rotate_x(points: np.ndarray, pitch_deg: float) -> np.ndarray:
    """Rotate ``[..., 3]`` points about the world x axis so that +pitch lifts a point on +z upward (+y)."""
    p = math.radians(pitch_deg)
    c, s = math.cos(p), math.sin(p)
    rot = np.array([[1.0, 0.0, 0.0], [0.0, c, s], [0.0, -s, c]])
    return points @ rot.T


def circle_trajectory(
    n_frames: int = OFFICIAL_TURNTABLE_FRAMES,
    *,
    radius: float = DEFAULT_RADIUS,
    distance: float | None = None,
    turns: float = 1.0,
    pitch_deg: float = 0.0,
    look_at: Sequence[float] = (0.0, 0.0, 0.0),
    focal: float = DEFAULT_FOCAL,
) -> list[Camera]:
    """The official sample-script camera path (spec 5.1), generalised.

    Frame ``i`` of ``n`` has its eye at ``(d sin(2 pi k i/n), d cos(2 pi k i/n), radius)`` (``k = turns``)
    looking at the origin with up (0, 1, 0), OpenCV axes: a small circle in front of the face that starts
    above the axis and moves toward +x. ``d`` defaults to ``0.6 * radius / 2.7`` (0.6 at the default radius;
    the official interpolation script scales it the same way with ``move_z``). ``pitch_deg`` tilts the whole
    circle about the x axis around the look-at point (positive = from above). The defaults reproduce the
    official 96 poses exactly.
    """
    if n_frames < 1:
        raise ValueError(f"number of frames must be positive, got {n_frames}")
    if not (radius > 0 and math.isfinite(radius)):
        raise ValueError(f"camera radius must be positive, got {radius}")
    d = OFFICIAL_CIRCLE_DISTANCE * radius / DEFAULT_RADIUS if distance is None else float(distance)
    target = np.asarray(look_at, dtype=np.float64)
    cams = []
    for i in range(n_frames):
        angle = 2.0 * math.pi * turns * i / n_frames
        eye = np.array([d * math.sin(angle), d * math.cos(angle), radius])
        if pitch_deg:
            eye = _rotate_x(eye, pitch_deg)
        cams.append(Camera(cam2world=look_at_cam2world(eye + target, target), focal=focal))
    return cams


def orbit_trajectory(
    n_frames: int,
    *,
    pitch_deg: float = 0.0,
    radius: float = DEFAULT_RADIUS,
    yaw_range_deg: float = 360.0,
    look_at: tuple[float, float, float] = (0.0, 0.0, 0.0),
    fov_deg: float | None = None,
) -> list[Camera]:
    """A yaw orbit at a fixed pitch and radius (via :class:`~gghead_core.camera.CameraSpec`), loopable.

    ``yaw_range_deg >= 360`` turns once around the head (``yaw = 360 i / n``); a smaller range swings
    smoothly between ``-range/2`` and ``+range/2`` (``yaw = range/2 * sin(2 pi i / n)``), which suits GGHead's
    heads (they have no back of the head, so a full turn shows the hollow template from behind).
    """
    if n_frames < 1:
        raise ValueError(f"number of frames must be positive, got {n_frames}")
    if not (yaw_range_deg > 0 and math.isfinite(yaw_range_deg)):
        raise ValueError(f"yaw range must be positive, got {yaw_range_deg}")
    extra = {} if fov_deg is None else {"fov_deg": fov_deg}
    cams = []
    for i in range(n_frames):
        if yaw_range_deg >= 360.0:
            yaw = 360.0 * i / n_frames
        else:
            yaw = 0.5 * yaw_range_deg * math.sin(2.0 * math.pi * i / n_frames)
        orbit = CameraSpec(yaw_deg=yaw, pitch_deg=pitch_deg, radius=radius, look_at=look_at, **extra)
        cams.append(orbit.to_camera())
    return cams


def official_turntable() -> list[Camera]:
    """Exactly the 96 poses of ``scripts/sample_heads.py`` (spec 5.1)."""
    return circle_trajectory(OFFICIAL_TURNTABLE_FRAMES)


def official_interpolation_trajectory(n_frames: int, n_seeds: int, move_z: float = DEFAULT_RADIUS) -> list[Camera]:
    """The camera path of ``render_interpolation.py`` (spec 5.2): ``n_seeds`` turns of the circle over the video."""
    return circle_trajectory(n_frames, radius=move_z, turns=float(n_seeds))


def conditioning_camera_for(camera: Camera, radius: float = DEFAULT_RADIUS) -> Camera:
    """The official interpolation script's conditioning camera: the render camera moved to distance ``radius``."""
    m = camera.cam2world.copy()
    norm = float(np.linalg.norm(m[:3, 3]))
    if norm > 0:
        m[:3, 3] *= radius / norm
    return Camera(cam2world=m, focal=camera.focal, principal=camera.principal)
