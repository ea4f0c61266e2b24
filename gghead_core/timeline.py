"""A keyframe timeline: latent + camera keys, sampled at any time, saved as a small JSON file.

A :class:`Timeline` is a tuple of :class:`Keyframe` values (a time, a :class:`~gghead_core.pipeline.LatentSpec`,
a :class:`~gghead_core.camera.CameraSpec` and the ease of the segment that starts at the key), a frame rate,
a loop flag and the latent interpolation. Like every spec it is frozen and validated when made.

Sampling at time ``t`` (seconds):

* **Key times are exact.** At a key's time the sample *is* the key: its own ``CameraSpec`` and the ``ws`` that
  :func:`~gghead_core.pipeline.make_ws` gives for its latent, so the first and last frames of a video are
  pixel-identical to ``render`` of those states (nothing is reconstructed from a spline).
* **Ease.** Between keys ``i`` and ``i+1`` the local time ``u`` in [0, 1] goes through key ``i``'s ease
  (linear, ease-in, ease-out, ease-in-out; monotone with exact ends) before both splines are evaluated, so an
  ease-in-out key makes the camera and the morph come to rest at it.
* **Camera.** Yaw, pitch, radius, look-at and field of view are interpolated by a monotone cubic Hermite spline
  (Fritsch-Butland tangents, the "PCHIP" of numerical libraries) through the keys. It is C1 and passes through
  every key, and unlike Catmull-Rom it never overshoots: between two keys each value stays between theirs, so
  a radius or a field of view can never leave the keys' (valid) range. Yaw is unwrapped first, so a key at
  170 degrees followed by one at -170 turns 20 degrees the short way, not 340 back.
* **Latent.** In W, per key ``ws = make_ws(G, key.latent)`` (truncation, mixing, edits, seed blends included):
  ``linear`` blends neighbouring keys; ``cubic`` is a C2 cubic spline through all keys with not-a-knot ends
  (what EG3D's video script gets from ``scipy.interpolate.interp1d(kind="cubic")``; computed here without
  scipy as a fixed weight matrix over the keys) and periodic when the timeline loops. Every sample is a
  weighted sum of the keys' ``ws``; the weights depend only on the timeline, not on the model.
* **Noise.** Synthesis noise is the noise mode of the key that starts the segment (the key's own at its time).

Time: frame ``k`` of a video is at ``t = k / fps``. Without ``loop`` the video runs from 0 to ``duration_s``
(default: the last key's time), holding the first key's state before it and the last's after it; the last
frame is placed exactly at ``duration_s``, so it is the last key. With ``loop`` the path is closed: after the
last key it returns to the first, reaching it again at ``duration_s`` (default: one mean key spacing after the
last key), and the video stops one frame short of that, so played in a loop it has no repeated frame.

The JSON file (:func:`save_timeline` / :func:`load_timeline`, documented in the README) is the timeline's
fields plus ``"format": "gghead-timeline"`` and ``"version": 1``; it is read with the recipe codec, so every
field's JSON type is checked and a bad file is one sentence naming the field.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from gghead_core.camera import CameraSpec
from gghead_core.pipeline import LatentSpec, make_ws
from gghead_core.vocabulary import (
    MAX_FPS,
    MAX_FRAMES,
    MIN_FPS,
    NoiseMode,
    SpecError,
    check_choice,
    check_number,
)

Ease = Literal["linear", "ease-in", "ease-out", "ease-in-out"]
LatentInterp = Literal["linear", "cubic"]
EASES: tuple[str, ...] = ("linear", "ease-in", "ease-out", "ease-in-out")
LATENT_INTERPS: tuple[str, ...] = ("linear", "cubic")

TIMELINE_FORMAT = "gghead-timeline"
TIMELINE_VERSION = 1
MAX_KEYFRAMES = 1000  # the cubic latent spline solves a dense K x K system once per timeline
MAX_TIME_S = MAX_FRAMES / MIN_FPS  # no key can lie beyond the longest video the limits allow
KEY_SNAP_S = 1e-6  # a frame time this close to a key is the key (k / fps rarely lands on 0.1 s exactly)
DEFAULT_FPS = 24.0

_set = object.__setattr__


# --------------------------------------------------------------------------------------------------------------
# Ease functions: [0, 1] -> [0, 1], monotone, f(0) == 0.0 and f(1) == 1.0 exactly (checked by the tests)
# --------------------------------------------------------------------------------------------------------------


def _ease_in(u: float) -> float:
    return u * u


def _ease_out(u: float) -> float:
    v = 1.0 - u
    return 1.0 - v * v


def _ease_in_out(u: float) -> float:
    return u * u * (3.0 - 2.0 * u)  # smoothstep: zero velocity at both ends


EASE_FUNCTIONS: dict[str, Callable[[float], float]] = {
    "linear": lambda u: u,
    "ease-in": _ease_in,
    "ease-out": _ease_out,
    "ease-in-out": _ease_in_out,
}
assert tuple(EASE_FUNCTIONS) == EASES


def ease(name: str, u: float) -> float:
    """``u`` in [0, 1] (clamped) through the named ease."""
    u = 0.0 if u <= 0.0 else 1.0 if u >= 1.0 else float(u)
    return EASE_FUNCTIONS[name](u)


# --------------------------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Keyframe:
    """The state at ``time_s``; ``ease`` shapes the segment from this key to the next one."""

    time_s: float
    latent: LatentSpec = field(default_factory=LatentSpec)
    camera: CameraSpec = field(default_factory=CameraSpec)
    ease: Ease = "linear"

    def __post_init__(self) -> None:
        _set(self, "time_s", check_number(self.time_s, "keyframe time (s)", lo=0.0, hi=MAX_TIME_S))
        if not isinstance(self.latent, LatentSpec):
            raise SpecError(f"a keyframe's latent must be a LatentSpec, got {type(self.latent).__name__}")
        if not isinstance(self.camera, CameraSpec):
            raise SpecError(f"a keyframe's camera must be a CameraSpec, got {type(self.camera).__name__}")
        _set(self, "ease", check_choice(self.ease, EASES, "keyframe ease"))


@dataclass(frozen=True)
class Segment:
    """Where a time falls: between keys ``a`` and ``b`` (indices into the timeline) at eased fraction ``s``.
    ``s == 0.0`` with ``exact`` means the time is key ``a`` itself."""

    a: int
    b: int
    s: float
    exact: bool


@dataclass(frozen=True)
class Timeline:
    """Keyframes sorted by time (at least one, times unique), the video frame rate, whether the path is closed
    (``loop``), how the latent moves between keys, and the length (``duration_s``; None: see the module doc)."""

    keyframes: tuple[Keyframe, ...]
    fps: float = DEFAULT_FPS
    loop: bool = False
    latent_interp: LatentInterp = "cubic"
    duration_s: float | None = None

    def __post_init__(self) -> None:
        keys = self.keyframes
        if isinstance(keys, (str, bytes)) or not isinstance(keys, Sequence):
            raise SpecError("keyframes must be a list of Keyframe values")
        keys = tuple(keys)
        if not keys:
            raise SpecError("a timeline needs at least one keyframe")
        if len(keys) > MAX_KEYFRAMES:
            raise SpecError(f"a timeline holds at most {MAX_KEYFRAMES} keyframes, got {len(keys)}")
        if not all(isinstance(k, Keyframe) for k in keys):
            raise SpecError("keyframes must be Keyframe values")
        for i in range(1, len(keys)):
            if keys[i].time_s <= keys[i - 1].time_s:
                what = "share the time" if keys[i].time_s == keys[i - 1].time_s else "are out of order"
                raise SpecError(f"keyframes {i - 1} and {i} {what} ({keys[i - 1].time_s:g} s, {keys[i].time_s:g} s): "
                                "key times must be unique and increasing")
        _set(self, "keyframes", keys)
        _set(self, "fps", check_number(self.fps, "timeline fps", lo=MIN_FPS, hi=MAX_FPS))
        if not isinstance(self.loop, bool):
            raise SpecError(f"timeline loop must be true or false, got {self.loop!r}")
        _set(self, "latent_interp", check_choice(self.latent_interp, LATENT_INTERPS, "latent interpolation"))
        last = keys[-1].time_s
        if self.duration_s is not None:
            d = check_number(self.duration_s, "timeline duration (s)", lo=0.0, hi=MAX_TIME_S)
            if self.loop and d <= last:
                raise SpecError(f"a looping timeline's duration ({d:g} s) must be after its last key ({last:g} s)")
            if d < last:
                raise SpecError(f"timeline duration ({d:g} s) ends before its last key ({last:g} s)")
            _set(self, "duration_s", d)
        n = self.n_frames
        if n > MAX_FRAMES:
            raise SpecError(f"the timeline would render {n} frames; the limit is {MAX_FRAMES}")

    # -- time -----------------------------------------------------------------------------------------------
    @property
    def length_s(self) -> float:
        """The timeline's length: ``duration_s`` or its default (see the module doc)."""
        if self.duration_s is not None:
            return self.duration_s
        times = self.times
        if not self.loop:
            return times[-1]
        step = (times[-1] - times[0]) / (len(times) - 1) if len(times) > 1 else 1.0
        return times[-1] + step

    @property
    def times(self) -> list[float]:
        return [k.time_s for k in self.keyframes]

    @property
    def n_frames(self) -> int:
        span = self.length_s * self.fps
        if self.loop:
            return max(1, round(span))
        return max(1, math.ceil(span - 1e-9) + 1)

    def frame_times(self) -> list[float]:
        """``t = k / fps`` for each frame; without loop the last one is clamped to the end (the last key)."""
        n, fps, end = self.n_frames, self.fps, self.length_s
        if self.loop:
            return [k / fps for k in range(n)]
        return [min(k / fps, end) for k in range(n - 1)] + [end]

    def segment(self, t: float) -> Segment:
        """The keys around time ``t`` and the eased fraction between them."""
        keys, times = self.keyframes, self.times
        n = len(keys)
        t = float(t)
        if self.loop:
            t = t % self.length_s
        for i, tk in enumerate(times):
            if abs(t - tk) <= KEY_SNAP_S:
                return Segment(i, i, 0.0, True)
        if n == 1:
            return Segment(0, 0, 0.0, True)
        if not self.loop:
            if t < times[0]:
                return Segment(0, 0, 0.0, True)
            if t > times[-1]:
                return Segment(n - 1, n - 1, 0.0, True)
        start, length = self._segment_bounds(t)
        a = start
        b = (a + 1) % n
        u = (t - self._knot(a, t)) / length
        return Segment(a, b, ease(keys[a].ease, u), False)

    def _segment_bounds(self, t: float) -> tuple[int, float]:
        """Index of the key that starts ``t``'s segment, and the segment's length (the closing segment of a loop
        runs from the last key to the first key one period later)."""
        times = self.times
        n = len(times)
        if self.loop and (t < times[0] or t > times[-1]):
            return n - 1, times[0] + self.length_s - times[-1]
        i = int(np.searchsorted(times, t, side="right")) - 1
        return i, times[i + 1] - times[i]

    def _knot(self, a: int, t: float) -> float:
        """Time of key ``a`` on the same lap as ``t`` (the closing segment's start lies one period back when ``t``
        is before the first key)."""
        tk = self.times[a]
        if self.loop and a == len(self.times) - 1 and t < self.times[0]:
            return tk - self.length_s
        return tk

    # -- camera ---------------------------------------------------------------------------------------------
    def camera_at(self, t: float) -> CameraSpec:
        """The camera at ``t``: a key's own ``CameraSpec`` at its time, else the monotone cubic through the keys."""
        seg = self.segment(t)
        if seg.exact:
            return self.keyframes[seg.a].camera
        values = _hermite(self._camera_values, self._camera_tangents, self._segment_lengths, seg.a, seg.s)
        yaw, pitch, radius, lx, ly, lz, fov = (float(v) for v in values)
        return CameraSpec(yaw_deg=wrap_deg(yaw), pitch_deg=pitch, radius=radius, look_at=(lx, ly, lz), fov_deg=fov)

    @cached_property
    def _camera_values(self) -> np.ndarray:
        """``[K (+1 when looping), 7]`` camera vectors with yaw unwrapped key to key (and the first key repeated
        one period later when the path is closed)."""
        rows = []
        yaw_prev = None
        keys = list(self.keyframes) + ([self.keyframes[0]] if self.loop else [])
        for k in keys:
            c = k.camera
            yaw = float(c.yaw_deg) if yaw_prev is None else yaw_prev + wrap_deg(float(c.yaw_deg) - yaw_prev)
            yaw_prev = yaw
            rows.append([yaw, c.pitch_deg, c.radius, *c.look_at, c.fov_deg])
        return np.asarray(rows, dtype=np.float64)

    @cached_property
    def _segment_lengths(self) -> np.ndarray:
        """``[K-1]`` (or ``[K]`` looping: the closing segment last) seconds between consecutive keys."""
        times = self.times
        h = [times[i + 1] - times[i] for i in range(len(times) - 1)]
        if self.loop:
            h.append(times[0] + self.length_s - times[-1])
        return np.asarray(h, dtype=np.float64)

    @cached_property
    def _camera_tangents(self) -> np.ndarray:
        return pchip_tangents(self._camera_values, self._segment_lengths, periodic=self.loop)

    # -- latent ---------------------------------------------------------------------------------------------
    def latent_weights(self, t: float) -> np.ndarray:
        """``[K]`` float64 weights: the latent at ``t`` is ``sum_k w[k] * ws(key k)`` (one-hot at a key's time)."""
        seg = self.segment(t)
        n = len(self.keyframes)
        w = np.zeros(n, dtype=np.float64)
        if seg.exact:
            w[seg.a] = 1.0
            return w
        s = seg.s
        if self.latent_interp == "linear" or n == 2 and not self.loop:
            w[seg.a] += 1.0 - s
            w[seg.b] += s
            return w
        h = self._segment_lengths[seg.a]
        a_, b_ = 1.0 - s, s
        q = self._spline_moments  # [K, K]: second derivatives M = q @ p
        w[seg.a] += a_
        w[seg.b] += b_
        w += (h * h / 6.0) * ((a_ ** 3 - a_) * q[seg.a] + (b_ ** 3 - b_) * q[seg.b])
        return w

    @cached_property
    def _spline_moments(self) -> np.ndarray:
        return cubic_spline_moments(np.asarray(self.times, dtype=np.float64), self._segment_lengths, periodic=self.loop)

    def noise_mode_at(self, t: float) -> NoiseMode:
        return self.keyframes[self.segment(t).a].latent.noise_mode

    @property
    def seeds(self) -> list[int]:
        """Every seed any key uses, in key order without repeats (the recipe's record)."""
        out: list[int] = []
        for k in self.keyframes:
            for s in k.latent.seeds:
                if s not in out:
                    out.append(s)
        return out


def wrap_deg(angle: float) -> float:
    """Any angle mapped to [-180, 180)."""
    return (float(angle) + 180.0) % 360.0 - 180.0


# --------------------------------------------------------------------------------------------------------------
# Splines
# --------------------------------------------------------------------------------------------------------------


def _hermite(p: np.ndarray, m: np.ndarray, h: np.ndarray, i: int, s: float) -> np.ndarray:
    """Cubic Hermite segment ``i`` (from row ``i`` to row ``i+1`` of ``p [N, D]``, tangents ``m [N, D]`` per
    second, length ``h[i]`` seconds) at fraction ``s``."""
    s2, s3 = s * s, s * s * s
    h00, h10, h01, h11 = 2 * s3 - 3 * s2 + 1, s3 - 2 * s2 + s, -2 * s3 + 3 * s2, s3 - s2
    return h00 * p[i] + h10 * h[i] * m[i] + h01 * p[i + 1] + h11 * h[i] * m[i + 1]


def pchip_tangents(p: np.ndarray, h: np.ndarray, *, periodic: bool) -> np.ndarray:
    """``[N, D]`` tangents (per second) of the monotone cubic through ``p [N, D]`` with knot spacings ``h [N-1]``.

    Interior: the weighted harmonic mean of the neighbouring slopes (Fritsch and Butland, 1984), zero where the
    data turns; it keeps each segment within its end values. Ends: a closed path (``periodic``: the last row
    repeats the first) uses the same rule across the seam; an open one the shape-preserving three-point
    formula, or the single slope when there is only one segment.
    """
    n = p.shape[0]
    m = np.zeros_like(p)
    if n < 2:
        return m
    delta = (p[1:] - p[:-1]) / h[:, None]  # [N-1, D] slopes

    def interior(d0: np.ndarray, d1: np.ndarray, h0: float, h1: float) -> np.ndarray:
        w1, w2 = 2 * h1 + h0, h1 + 2 * h0
        same = (np.sign(d0) * np.sign(d1)) > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            hm = (w1 + w2) / (w1 / d0 + w2 / d1)
        return np.where(same, hm, 0.0)

    for k in range(1, n - 1):
        m[k] = interior(delta[k - 1], delta[k], h[k - 1], h[k])
    if periodic:
        m[0] = interior(delta[-1], delta[0], h[-1], h[0])
        m[-1] = m[0]
        return m
    if n == 2:
        m[0] = m[1] = delta[0]
        return m
    m[0] = _pchip_end(delta[0], delta[1], h[0], h[1])
    m[-1] = _pchip_end(delta[-1], delta[-2], h[-1], h[-2])
    return m


def _pchip_end(d0: np.ndarray, d1: np.ndarray, h0: float, h1: float) -> np.ndarray:
    m = ((2 * h0 + h1) * d0 - h0 * d1) / (h0 + h1)
    m = np.where(np.sign(m) != np.sign(d0), 0.0, m)
    return np.where((np.sign(d0) != np.sign(d1)) & (np.abs(m) > 3 * np.abs(d0)), 3 * d0, m)


def cubic_spline_moments(t: np.ndarray, h: np.ndarray, *, periodic: bool) -> np.ndarray:
    """``Q [K, K]`` with the spline's second derivatives at the knots ``M = Q @ p`` for key values ``p [K, ...]``.

    Open: the C2 interpolating cubic with not-a-knot ends (EG3D's ``interp1d(kind="cubic")``); with three keys
    that is the parabola through them, with two the line. Periodic (``h`` has K entries, the last closing the
    loop): the closed C2 spline. Solved once per timeline in float64; K is small.
    """
    k = len(t)
    if k < 3 and not periodic:
        return np.zeros((k, k))
    if periodic and k < 2:
        return np.zeros((k, k))
    a = np.zeros((k, k))
    d = np.zeros((k, k))  # right-hand side as an operator on p: 6 (slope_i - slope_{i-1})
    rows = range(k) if periodic else range(1, k - 1)
    for i in rows:
        hp, hn = h[i - 1], h[i % len(h)]
        ip, inx = (i - 1) % k, (i + 1) % k
        a[i, ip] += hp
        a[i, i] += 2 * (hp + hn)
        a[i, inx] += hn
        d[i, inx] += 6 / hn
        d[i, i] -= 6 / hn + 6 / hp
        d[i, ip] += 6 / hp
    if not periodic:
        if k == 3:
            a[0, 0], a[0, 1] = 1.0, -1.0
            a[2, 1], a[2, 2] = 1.0, -1.0
        else:
            # Not-a-knot: the third derivative does not jump at the second and the second-to-last knots.
            a[0, 0], a[0, 1], a[0, 2] = -h[1], h[0] + h[1], -h[0]
            a[-1, -3], a[-1, -2], a[-1, -1] = -h[-1], h[-2] + h[-1], -h[-2]
    return np.linalg.solve(a, d)


# --------------------------------------------------------------------------------------------------------------
# ws for a model
# --------------------------------------------------------------------------------------------------------------


class TimelineSampler:
    """The timeline's latents for one generator: each key's ``ws`` is made once (``make_ws``, the function every
    job and the viewer use), every time's ``ws`` is a weighted sum of them, and a key's time returns the key's
    own tensor, so its frame is bit-identical to a still render of that key."""

    def __init__(self, G: Any, timeline: Timeline, directions: Any = None) -> None:
        self.G = G
        self.timeline = timeline
        self._directions = directions
        self._key_ws: list[torch.Tensor | None] = [None] * len(timeline.keyframes)

    def key_ws(self, index: int) -> torch.Tensor:
        """``ws [1, num_ws, w_dim]`` of key ``index``."""
        ws = self._key_ws[index]
        if ws is None:
            ws = make_ws(self.G, self.timeline.keyframes[index].latent, directions=self._directions)
            self._key_ws[index] = ws
        return ws

    def ws_at(self, t: float) -> torch.Tensor:
        """``ws [1, num_ws, w_dim]`` at time ``t``."""
        w = self.timeline.latent_weights(t)
        nonzero = np.flatnonzero(w)
        if len(nonzero) == 1 and w[nonzero[0]] == 1.0:
            return self.key_ws(int(nonzero[0]))
        with torch.no_grad():
            acc = None
            for i in nonzero:
                term = float(w[i]) * self.key_ws(int(i)).double()
                acc = term if acc is None else acc + term
            assert acc is not None
            return acc.to(self.key_ws(int(nonzero[0])).dtype)

    def gaussians_at(self, t: float) -> Any:
        """The head at time ``t`` (B=1)."""
        with torch.no_grad():
            return self.G.synthesis(self.ws_at(t), noise_mode=self.timeline.noise_mode_at(t))


# --------------------------------------------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------------------------------------------


def timeline_to_dict(timeline: Timeline) -> dict[str, Any]:
    from gghead_core.jobs._codec import job_to_dict

    return {"format": TIMELINE_FORMAT, "version": TIMELINE_VERSION, **job_to_dict(timeline)}


def timeline_from_dict(data: Any) -> Timeline:
    """A timeline from its JSON object; every field's type is checked (one sentence naming the field)."""
    from gghead_core.jobs._codec import build

    if not isinstance(data, dict):
        raise SpecError(f"a timeline file must hold a JSON object, got {type(data).__name__}")
    body = dict(data)
    fmt = body.pop("format", None)
    version = body.pop("version", None)
    if fmt != TIMELINE_FORMAT:
        raise SpecError(f"timeline field 'format' must be {TIMELINE_FORMAT!r}, got {fmt!r}")
    if version != TIMELINE_VERSION or isinstance(version, bool):
        raise SpecError(f"timeline field 'version' must be {TIMELINE_VERSION}, got {version!r} "
                        "(a file from a newer version of this program?)")
    try:
        return build(Timeline, body, "timeline")
    except SpecError as exc:
        # The codec speaks of recipes; the field path it names ('timeline.keyframes[1].time_s') is what matters.
        raise SpecError(str(exc).replace("recipe field ", "timeline field ", 1)) from None


def save_timeline(path: str | os.PathLike, timeline: Timeline, *, overwrite: bool = True) -> Path:
    """Write the timeline as JSON, atomically (a crash never leaves half a file)."""
    from gghead_core import export as ex

    out = Path(path)
    if out.suffix.lower() != ".json":
        raise ex.OutputError(f"a timeline is saved as .json, got {str(path)!r}")
    with ex.OutputTransaction(overwrite) as tx:
        tx.file(out).write_text(json.dumps(timeline_to_dict(timeline), indent=2) + "\n", encoding="utf-8")
    return out


def load_timeline(path: str | os.PathLike) -> Timeline:
    """Read a timeline JSON file; a missing, unreadable or invalid file is one :class:`SpecError` sentence."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"cannot read timeline {str(path)!r}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise SpecError(f"timeline {str(path)!r} is not UTF-8 text") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(f"timeline {str(path)!r} is not valid JSON (line {exc.lineno}: {exc.msg})") from None
    return timeline_from_dict(data)
