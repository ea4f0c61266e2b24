"""Rendering: one entry point over three rasterizers that agree (gsplat on CUDA, OpenGL, PyTorch reference).

    from gghead_core.render import render
    res = render(gaussians, camera, 512)                 # backend="auto", mode="rgb", background="white"
    res.image  # [B, H, W, 3] in [0, 1];  res.alpha, res.depth  # [B, H, W];  res.rgba()  # [B, H, W, 4]

``backend="auto"`` picks gsplat when CUDA works, else OpenGL when a context can be made, else the torch
reference; ``res.backend_reason`` says why. A backend that was asked for but cannot run falls back the
same way and says so in the reason (it never fails the render).

Colours come from each Gaussian's spherical harmonics, evaluated once per head from the frontal reference
camera at (0, 0, 2.7) (``sh_ref="frontal"``, the official notebook's choice: appearance stays put while
orbiting) or from the render camera (``"view"``), spec 4.5.
"""

from __future__ import annotations

import math
import numbers
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from ..camera import DEFAULT_RADIUS, Camera
from ..gaussians import Gaussians
from ..vocabulary import BACKENDS, MODES, SH_REFS, SpecError, background_rgb
from ..vocabulary import parse_background as _parse_background_value
from ._colormap import COLORMAPS, colormap, depth_range, depth_to_color
from ._sh import sh_to_colors

FRONTAL_SH_CENTER = (0.0, 0.0, DEFAULT_RADIUS)
"""Where ``sh_ref="frontal"`` evaluates view directions from: the official notebook's reference camera."""
MAX_RESOLUTION = 8192

_AUTO_ORDER = ("gsplat", "opengl", "torch")


@dataclass
class RenderResult:
    """What :func:`render` returns: images for a batch of heads plus how they were made.

    ``image`` is what to show: RGB over the background (``mode="rgb"``), the alpha mask as grey (``"alpha"``)
    or the colour-mapped depth over the background (``"depth"``; near = red, far = blue), clamped to [0, 1].
    With ``background="transparent"`` the image is composited over black and :meth:`rgba` gives straight
    (un-premultiplied) colour plus alpha for a transparent PNG.

    ``timings_ms``: ``sh`` (colour evaluation), ``rasterize`` (the backend calls, all heads), ``post`` (depth,
    colour map, stacking) and ``total``; backends that time their own stages add them (OpenGL: ``upload``,
    ``sort``, ``raster``, ``readback``, ...), summed over the heads. These are host clocks: on CUDA they time
    the kernel launches, not the GPU work (``render()`` never waits for the GPU just to time it); ask
    :meth:`gpu_timings_ms` for the GPU's own figures.
    """

    image: torch.Tensor  # [B, H, W, 3] float in [0, 1]
    alpha: torch.Tensor  # [B, H, W] 1 - final transmittance
    depth: torch.Tensor  # [B, H, W] expected camera-space depth (sum w z / alpha), 0 where nothing was hit
    premultiplied: torch.Tensor  # [B, H, W, 3] colour over black (unclamped) for mode rgb/depth; alpha grey
    backend: str
    backend_reason: str
    mode: str
    background: str | tuple[float, float, float]
    timings_ms: dict[str, float] = field(default_factory=dict)
    _events: tuple | None = field(default=None, repr=False, compare=False)  # CUDA events: start, sh, raster, post

    def gpu_timings_ms(self) -> dict[str, float]:
        """``sh`` / ``rasterize`` / ``post`` / ``total`` as the GPU ran them (CUDA events); waits for the last
        event. On the CPU (no events) the host timings, which are the work itself there."""
        if self._events is None:
            return {k: self.timings_ms[k] for k in ("sh", "rasterize", "post", "total") if k in self.timings_ms}
        start, sh, raster, post = self._events
        post.synchronize()
        return {"sh": start.elapsed_time(sh), "rasterize": sh.elapsed_time(raster), "post": raster.elapsed_time(post),
                "total": start.elapsed_time(post)}

    @property
    def transparent(self) -> bool:
        return self.background == "transparent"

    def rgba(self) -> torch.Tensor:
        """``[B, H, W, 4]``: straight colour (``premultiplied / alpha``, clamped to [0, 1]) and alpha.

        In ``mode="alpha"`` the mask itself is the picture, so it comes back opaque (grey = alpha, A = 1).
        """
        if self.mode == "alpha":
            return torch.cat([self.image, torch.ones_like(self.alpha)[..., None]], dim=-1)
        a = self.alpha[..., None]
        straight = torch.where(a > 0, self.premultiplied / a.clamp_min(1e-12), torch.zeros_like(self.premultiplied))
        return torch.cat([straight.clamp(0.0, 1.0), self.alpha[..., None].clamp(0.0, 1.0)], dim=-1)


# ----------------------------------------------------------------------------------------------------------
# Backend availability (cached per process; gsplat and OpenGL cache their own probes too)

_STATUS: dict[str, tuple[bool, str]] = {}
_STATUS_LOCK = threading.Lock()


def _probe(name: str) -> tuple[bool, str]:
    if name == "torch":
        return True, "pure-PyTorch reference rasterizer (CPU or CUDA)"
    if name == "gsplat":
        from ._gsplat import gsplat_status

        return gsplat_status()
    try:  # OpenGL: the module and its probe belong to the OpenGL backend; import lazily, guard everything
        from ._opengl import opengl_available
    except Exception as exc:
        return False, f"OpenGL backend not importable ({type(exc).__name__}: {exc})"
    try:
        return opengl_available()
    except Exception as exc:
        return False, f"OpenGL probe failed ({type(exc).__name__}: {exc})"


def backend_status(name: str, *, refresh: bool = False) -> tuple[bool, str]:
    """``(ok, reason)`` for one concrete backend (``"gsplat"``, ``"opengl"`` or ``"torch"``)."""
    if name not in _AUTO_ORDER:
        raise ValueError(f"unknown backend {name!r} (choose from {', '.join(_AUTO_ORDER)})")
    with _STATUS_LOCK:
        if refresh or name not in _STATUS:
            _STATUS[name] = _probe(name)
        return _STATUS[name]


def _mark_failed(name: str, reason: str) -> None:
    with _STATUS_LOCK:
        _STATUS[name] = (False, reason)


def available_backends() -> list[str]:
    """The backends that can render in this process, in ``auto``'s order of preference."""
    return [name for name in _AUTO_ORDER if backend_status(name)[0]]


def resolve_backend(name: str = "auto") -> tuple[str, str]:
    """Which backend a render with ``backend=name`` uses, and a one-line reason.

    ``auto``: gsplat when CUDA works, else OpenGL when a context can be made, else torch. A named backend
    that cannot run falls back along the same order, and the reason says so.
    """
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r} (choose from {', '.join(BACKENDS)})")
    if name != "auto":
        ok, why = backend_status(name)
        if ok:
            return name, f"{name} requested: {why}"
        fallback, fallback_why = _first_available(exclude=name)
        return fallback, f"{name} requested but unavailable ({why}); using {fallback}: {fallback_why}"
    skipped: list[str] = []
    for candidate in _AUTO_ORDER:
        ok, why = backend_status(candidate)
        if ok:
            prefix = f"auto: {'; '.join(skipped)}; " if skipped else "auto: "
            return candidate, f"{prefix}using {candidate}: {why}"
        skipped.append(f"{candidate} unavailable ({why})")
    raise AssertionError("the torch backend is always available")  # pragma: no cover


def _first_available(exclude: str) -> tuple[str, str]:
    for candidate in _AUTO_ORDER:
        if candidate != exclude:
            ok, why = backend_status(candidate)
            if ok:
                return candidate, why
    raise AssertionError("the torch backend is always available")  # pragma: no cover


def _rasterizer(name: str) -> Callable:
    if name == "gsplat":
        from ._gsplat import rasterize_gsplat

        return rasterize_gsplat
    if name == "opengl":
        from ._opengl import rasterize_opengl

        return rasterize_opengl
    from ._torch_ref import rasterize_torch

    return rasterize_torch


def _backend_timings(name: str) -> dict[str, float]:
    """The backend's own split of its last call (OpenGL: upload/sort/raster/readback), if it keeps one."""
    if name != "opengl":
        return {}
    try:
        from ._opengl import default_rasterizer

        timings = getattr(default_rasterizer(), "last_timings_ms", None) or {}
        return {k: float(v) for k, v in timings.items() if k != "total"}
    except Exception:
        return {}


# ----------------------------------------------------------------------------------------------------------
# Argument checks: one clear line each


def _parse_resolution(resolution) -> tuple[int, int]:
    values = (resolution, resolution) if not isinstance(resolution, (tuple, list)) else tuple(resolution)
    if len(values) != 2 or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in values):
        raise ValueError(f"resolution must be a positive int or (width, height), got {resolution!r}")
    width, height = (int(v) for v in values)
    if not (1 <= width <= MAX_RESOLUTION and 1 <= height <= MAX_RESOLUTION):
        raise ValueError(f"resolution must be between 1 and {MAX_RESOLUTION} pixels per side, got {width}x{height}")
    return width, height


def parse_background(background) -> tuple[str | tuple[float, float, float], tuple[float, float, float]]:
    """``background`` -> (normalised name or RGB tuple, RGB the rasterizer composites over).

    The value is parsed by :func:`gghead_core.vocabulary.parse_background` (the one parser for backgrounds:
    names, ``(r, g, b)`` floats in [0, 1] or an ``"r,g,b"`` string); ``"transparent"`` renders over black.
    """
    try:
        value = _parse_background_value(background)
    except SpecError as exc:
        raise ValueError(f"unknown background {background!r}: {exc}") from None
    return value, background_rgb(value)


def _check_choice(value, choices: Sequence[str], what: str) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"unknown {what} {value!r} (choose from {', '.join(choices)})")
    return value


# ----------------------------------------------------------------------------------------------------------
# Per-frame inputs kept on the device: no blocking host-to-device copy (= stream sync) per frame

_SMALL_LOCK = threading.Lock()
_SMALL: dict[tuple, torch.Tensor] = {}  # (device, values) -> float32 tensor; values are nested tuples
_SMALL_MAX = 64


def _small_tensor(values: tuple, device: torch.device) -> torch.Tensor:
    """A small float32 tensor (camera matrix, background, SH centre) on ``device``, cached by value.

    On CUDA a blocking ``.to(device)`` synchronises the stream (PyTorch waits for the copy), which serialises
    CPU and GPU once per tensor per frame. Cached tensors are shared: callers must not modify them. Misses use
    a non-blocking copy from pageable memory, which the driver stages before returning (safe to free).
    """
    if device.type == "cpu":
        return torch.tensor(values, dtype=torch.float32)
    key = (str(device), values)
    with _SMALL_LOCK:
        cached = _SMALL.get(key)
        if cached is None:
            if len(_SMALL) >= _SMALL_MAX:
                _SMALL.clear()  # orbiting makes a new view matrix per frame; keep the cache small
            cached = _SMALL[key] = torch.tensor(values, dtype=torch.float32).to(device, non_blocking=True)
        return cached


def _matrix_values(m) -> tuple:
    return tuple(tuple(float(v) for v in row) for row in (m.tolist() if hasattr(m, "tolist") else m))


_COLORS_LOCK = threading.Lock()
_COLORS: list[tuple] = []  # (weakref means, version, weakref sh, version, ref centre, colours), newest last
_COLORS_MAX = 4


def _tensor_version(t: torch.Tensor) -> int | None:
    """The in-place version counter, or None where it cannot be read (inference tensors raise)."""
    if t.is_inference():
        return None
    return t._version


def _colors_for(gaussians: Gaussians, ref: tuple[float, float, float]) -> torch.Tensor:
    """SH colours ``[B, N, 3]`` from ``ref``, cached per (Gaussians tensors, their versions, ref).

    Orbiting a cached head re-renders the same Gaussians with the same frontal centre every frame: evaluating
    SH again (and, for OpenGL, re-uploading colours because new tensors miss its upload cache) is wasted work.
    The cache holds weak references, so it never keeps a head alive.
    """
    means, sh = gaussians.means, gaussians.sh
    vm, vs = _tensor_version(means), _tensor_version(sh)
    if vm is not None and vs is not None:
        with _COLORS_LOCK:
            _COLORS[:] = [e for e in _COLORS if e[0]() is not None and e[2]() is not None]  # drop dead heads
            for entry in _COLORS:
                if entry[0]() is means and entry[1] == vm and entry[2]() is sh and entry[3] == vs and entry[4] == ref:
                    return entry[5]
    colors = sh_to_colors(means, sh, _small_tensor(ref, means.device).to(means.dtype))  # [B, N, 3]
    if vm is not None and vs is not None:
        with _COLORS_LOCK:
            _COLORS[:] = [e for e in _COLORS if e[0]() is not None and e[2]() is not None][-(_COLORS_MAX - 1):]
            _COLORS.append((weakref.ref(means), vm, weakref.ref(sh), vs, ref, colors))
    return colors


def _is_cuda_fault(exc: BaseException) -> bool:
    """A CUDA runtime error (illegal address, device-side assert, launch failure...): sticky for the process."""
    accelerator_error = getattr(torch, "AcceleratorError", None)
    if accelerator_error is not None and isinstance(exc, accelerator_error):
        return True
    text = str(exc)
    return any(s in text for s in ("CUDA error", "cudaError", "device-side assert", "illegal memory access"))


def _rasterize_all(name: str, heads: tuple, viewmat, K, width: int, height: int, bg, timings: dict[str, float],
                   with_depth: bool = True):
    """``(rgb [B,H,W,3], alpha [B,H,W], depth_acc [B,H,W])`` from one backend; gsplat takes the batch at once.

    ``with_depth=False`` lets OpenGL skip its depth sums (3-6% of a frame on Mesa); depth_acc is then zeros."""
    means, quats, scales, opacities, colors = heads
    if name == "gsplat":
        from ._gsplat import rasterize_gsplat_batch

        return rasterize_gsplat_batch(means, quats, scales, opacities, colors, viewmat, K, width, height, bg)
    outputs = []
    extra = {"with_depth": False} if name == "opengl" and not with_depth else {}
    for b in range(means.shape[0]):
        rgb, alpha, depth_acc = _rasterizer(name)(means[b], quats[b], scales[b], opacities[b], colors[b], viewmat, K,
                                                  width, height, bg, **extra)
        outputs.append((rgb, alpha, torch.zeros_like(alpha) if depth_acc is None else depth_acc))
        for key, value in _backend_timings(name).items():
            timings[key] = timings.get(key, 0.0) + value
    return tuple(torch.stack([o[i] for o in outputs]) for i in range(3))


# ----------------------------------------------------------------------------------------------------------


def render(
    gaussians: Gaussians,
    camera: Camera,
    resolution: int | tuple[int, int] = 512,
    *,
    backend: str = "auto",
    mode: str = "rgb",
    background="white",
    sh_ref: str = "frontal",
    scale_modifier: float = 1.0,
    with_depth: bool = True,
    depth_colormap: str = "rainbow",
) -> RenderResult:
    """Render every head of ``gaussians`` from ``camera``.

    Args:
        gaussians: a batch of heads (``B`` >= 1).
        camera: a :class:`~gghead_core.camera.Camera` (an object with ``to_camera()``, e.g. ``CameraSpec``,
            is converted).
        resolution: ``int`` for square images or ``(width, height)``; the focal length scales with the width.
        backend: ``"auto"``, ``"gsplat"``, ``"opengl"`` or ``"torch"`` (see :func:`resolve_backend`).
        mode: ``"rgb"``, ``"alpha"`` or ``"depth"`` -- what ``RenderResult.image`` shows.
        background: ``"white"`` (GGHead's training background), ``"black"``, ``"transparent"`` or ``(r, g, b)``.
        sh_ref: ``"frontal"`` or ``"view"``: where SH colours are evaluated from.
        scale_modifier: multiplies every Gaussian's scales (3DGS's ``scaling_modifier``), for inspection.
        with_depth: compute ``RenderResult.depth``; ``False`` lets OpenGL skip its depth sums (3-6% of a frame on
            Mesa) and leaves ``depth`` zeros. Depth mode always computes it.
        depth_colormap: ``"rainbow"`` or ``"grey"``: the colours of ``mode="depth"`` (near red / white).
    """
    t_start = time.perf_counter()
    if not isinstance(gaussians, Gaussians):
        raise ValueError(f"render() needs a Gaussians batch, got {type(gaussians).__name__}")
    if not isinstance(camera, Camera) and hasattr(camera, "to_camera"):
        camera = camera.to_camera()
    if not isinstance(camera, Camera):
        raise ValueError(f"render() needs a Camera, got {type(camera).__name__}")
    width, height = _parse_resolution(resolution)
    _check_choice(backend, BACKENDS, "backend")
    _check_choice(mode, MODES, "mode")
    _check_choice(sh_ref, SH_REFS, "sh_ref")
    _check_choice(depth_colormap, tuple(COLORMAPS), "depth_colormap")
    background_name, bg_rgb = parse_background(background)
    if isinstance(scale_modifier, bool) or not isinstance(scale_modifier, (int, float)) or not (
        math.isfinite(scale_modifier) and scale_modifier > 0
    ):
        raise ValueError(f"scale_modifier must be a positive number, got {scale_modifier!r}")

    chosen, reason = resolve_backend(backend)
    device = gaussians.device
    timings: dict[str, float] = {}
    events = None
    if device.type == "cuda":
        events = tuple(torch.cuda.Event(enable_timing=True) for _ in range(4))
        events[0].record()

    t0 = time.perf_counter()
    if sh_ref == "frontal":
        ref = FRONTAL_SH_CENTER
    else:
        cx, cy, cz = (float(v) for v in camera.center.tolist())  # center [3]
        ref = (cx, cy, cz)
    colors = _colors_for(gaussians, ref)  # [B, N, 3]
    timings["sh"] = (time.perf_counter() - t0) * 1e3
    if events is not None:
        events[1].record()

    # Camera inputs live where the rasterizer reads them: on the device for gsplat/torch, on the host for
    # OpenGL (it hands them to GL as numpy; CUDA copies would be read back every frame).
    cam_device = torch.device("cpu") if chosen == "opengl" else device
    viewmat = _small_tensor(_matrix_values(camera.world2cam()), cam_device)  # [4, 4]
    K = _small_tensor(_matrix_values(camera.intrinsics_pixels(width, height)), cam_device)  # [3, 3]
    bg_raster = _small_tensor(tuple(float(v) for v in bg_rgb), cam_device)  # [3]
    bg = _small_tensor(tuple(float(v) for v in bg_rgb), device)  # [3] for compositing below
    scales = gaussians.scales * scale_modifier if scale_modifier != 1.0 else gaussians.scales
    heads = (gaussians.means, gaussians.quats, scales, gaussians.opacities, colors)

    t0 = time.perf_counter()
    try:
        rgb, alpha, depth_acc = _rasterize_all(chosen, heads, viewmat, K, width, height, bg_raster, timings,
                                               with_depth=with_depth or mode == "depth")
    except Exception as exc:
        if chosen == "torch":
            raise
        failure = f"{chosen} failed while rendering ({type(exc).__name__}: {str(exc).strip()[:200]})"
        _mark_failed(chosen, failure)
        if device.type == "cuda" and _is_cuda_fault(exc):
            # CUDA errors are sticky: every later kernel on this context fails too, so a torch fallback on the
            # same device would only raise again from inside this handler. Say so instead.
            raise RuntimeError(f"{failure}; this is a CUDA error, which leaves the process's CUDA context "
                               "unusable, so no fallback is tried on this device: restart the process (or "
                               "render on the CPU)") from exc
        # A fast backend broke mid-flight (lost GL context, gsplat missing...): remember that, say so, and
        # finish with the reference so the caller still gets the picture.
        chosen, reason = "torch", f"{failure}; using torch"
        rgb, alpha, depth_acc = _rasterize_all("torch", heads, viewmat, K, width, height, bg_raster, timings)
    rgb, alpha, depth_acc = (t.to(device) for t in (rgb, alpha, depth_acc))  # OpenGL returns host tensors
    timings["rasterize"] = (time.perf_counter() - t0) * 1e3
    if events is not None:
        events[2].record()

    t0 = time.perf_counter()
    depth = torch.where(alpha > 0, depth_acc / alpha.clamp_min(1e-12), torch.zeros_like(depth_acc))
    if mode == "rgb":
        premultiplied = rgb - (1.0 - alpha)[..., None] * bg  # the rasterizer's C (colour over black)
        image = rgb
    elif mode == "alpha":
        premultiplied = alpha[..., None].expand(*alpha.shape, 3).contiguous()
        image = premultiplied
    else:
        cmap = depth_to_color(depth, alpha, depth_colormap)  # [B, H, W, 3], batched, no host syncs
        premultiplied = cmap * alpha[..., None]
        image = premultiplied + (1.0 - alpha)[..., None] * bg
    image = image.clamp(0.0, 1.0)
    timings["post"] = (time.perf_counter() - t0) * 1e3
    timings["total"] = (time.perf_counter() - t_start) * 1e3
    if events is not None:
        events[3].record()

    return RenderResult(
        image=image,
        alpha=alpha,
        depth=depth,
        premultiplied=premultiplied,
        backend=chosen,
        backend_reason=reason,
        mode=mode,
        background=background_name,
        timings_ms=timings,
        _events=events,
    )


__all__ = [
    "render",
    "RenderResult",
    "available_backends",
    "resolve_backend",
    "backend_status",
    "parse_background",
    "BACKENDS",
    "MODES",
    "SH_REFS",
    "FRONTAL_SH_CENTER",
    "COLORMAPS",
    "colormap",
    "depth_range",
]
