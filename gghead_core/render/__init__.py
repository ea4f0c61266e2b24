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
from dataclasses import dataclass, field
from collections.abc import Callable, Sequence

import torch

from ..camera import DEFAULT_RADIUS, Camera
from ..gaussians import Gaussians
from ._colormap import COLORMAPS, colormap, depth_range, depth_to_color
from ._sh import sh_to_colors

BACKENDS = ("auto", "gsplat", "opengl", "torch")
MODES = ("rgb", "alpha", "depth")
SH_REFS = ("frontal", "view")
BACKGROUNDS = {"white": (1.0, 1.0, 1.0), "black": (0.0, 0.0, 0.0), "transparent": (0.0, 0.0, 0.0)}
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
    ``sort``, ``raster``, ``readback``, ...), summed over the heads.
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
    skipped = []
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

    Accepts ``"white"``, ``"black"``, ``"transparent"`` (rendered over black), an ``(r, g, b)`` sequence of
    floats in [0, 1], or the same as a ``"r,g,b"`` string.
    """
    if isinstance(background, str):
        key = background.strip().lower()
        if key in BACKGROUNDS:
            return key, BACKGROUNDS[key]
        if "," not in key:
            raise ValueError(
                f"unknown background {background!r} (use white, black, transparent or R,G,B floats in [0, 1])"
            )
        try:
            background = tuple(float(part) for part in key.split(","))
        except ValueError:
            raise ValueError(f"background {background!r} is not three comma-separated numbers") from None
    try:
        rgb = tuple(float(v) for v in background)
    except (TypeError, ValueError):
        raise ValueError(f"background must be a name or (r, g, b), got {background!r}") from None
    if len(rgb) != 3 or not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in rgb):
        raise ValueError(f"background RGB must be three floats in [0, 1], got {background!r}")
    return rgb, rgb


def _check_choice(value, choices: Sequence[str], what: str) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"unknown {what} {value!r} (choose from {', '.join(choices)})")
    return value


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
    depth_colormap: str = "rainbow",
) -> RenderResult:
    """Render every head of ``gaussians`` from ``camera``.

    Args:
        gaussians: a batch of heads (``B`` >= 1).
        camera: a :class:`~gghead_core.camera.Camera` (an object with ``to_camera()``, e.g. ``OrbitCamera``,
            is converted).
        resolution: ``int`` for square images or ``(width, height)``; the focal length scales with the width.
        backend: ``"auto"``, ``"gsplat"``, ``"opengl"`` or ``"torch"`` (see :func:`resolve_backend`).
        mode: ``"rgb"``, ``"alpha"`` or ``"depth"`` -- what ``RenderResult.image`` shows.
        background: ``"white"`` (GGHead's training background), ``"black"``, ``"transparent"`` or ``(r, g, b)``.
        sh_ref: ``"frontal"`` or ``"view"``: where SH colours are evaluated from.
        scale_modifier: multiplies every Gaussian's scales (3DGS's ``scaling_modifier``), for inspection.
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

    t0 = time.perf_counter()
    ref = FRONTAL_SH_CENTER if sh_ref == "frontal" else tuple(camera.center.tolist())
    colors = sh_to_colors(gaussians.means, gaussians.sh, torch.tensor(ref, dtype=gaussians.means.dtype))  # [B,N,3]
    timings["sh"] = (time.perf_counter() - t0) * 1e3

    viewmat = torch.tensor(camera.world2cam(), dtype=torch.float32)
    K = torch.tensor(camera.intrinsics_pixels(width, height), dtype=torch.float32)
    bg = torch.tensor(bg_rgb, dtype=torch.float32)
    scales = gaussians.scales * scale_modifier if scale_modifier != 1.0 else gaussians.scales

    t0 = time.perf_counter()
    outputs = []
    for b in range(gaussians.batch_size):
        head = (gaussians.means[b], gaussians.quats[b], scales[b], gaussians.opacities[b], colors[b])
        try:
            rgb, alpha, depth_acc = _rasterizer(chosen)(*head, viewmat, K, width, height, bg)
            for key, value in _backend_timings(chosen).items():
                timings[key] = timings.get(key, 0.0) + value
        except Exception as exc:
            if chosen == "torch":
                raise
            # A fast backend broke mid-flight (lost GL context, CUDA kernel error...): remember that, say so,
            # and finish with the reference so the caller still gets the picture.
            failure = f"{chosen} failed while rendering ({type(exc).__name__}: {str(exc).strip()[:200]})"
            _mark_failed(chosen, failure)
            chosen, reason = "torch", f"{failure}; using torch"
            rgb, alpha, depth_acc = _rasterizer("torch")(*head, viewmat, K, width, height, bg)
        outputs.append(tuple(t.to(device) for t in (rgb, alpha, depth_acc)))
    timings["rasterize"] = (time.perf_counter() - t0) * 1e3

    t0 = time.perf_counter()
    rgb = torch.stack([o[0] for o in outputs])  # [B, H, W, 3]
    alpha = torch.stack([o[1] for o in outputs])  # [B, H, W]
    depth_acc = torch.stack([o[2] for o in outputs])  # [B, H, W]
    depth = torch.where(alpha > 0, depth_acc / alpha.clamp_min(1e-12), torch.zeros_like(depth_acc))
    bg = bg.to(device)
    if mode == "rgb":
        premultiplied = rgb - (1.0 - alpha)[..., None] * bg  # the rasterizer's C (colour over black)
        image = rgb
    elif mode == "alpha":
        premultiplied = alpha[..., None].expand(*alpha.shape, 3).contiguous()
        image = premultiplied
    else:
        cmap = torch.stack([depth_to_color(depth[b], alpha[b], depth_colormap) for b in range(len(depth))]).to(device)
        premultiplied = cmap * alpha[..., None]
        image = premultiplied + (1.0 - alpha)[..., None] * bg
    timings["post"] = (time.perf_counter() - t0) * 1e3
    timings["total"] = (time.perf_counter() - t_start) * 1e3

    return RenderResult(
        image=image.clamp(0.0, 1.0),
        alpha=alpha,
        depth=depth,
        premultiplied=premultiplied,
        backend=chosen,
        backend_reason=reason,
        mode=mode,
        background=background_name,
        timings_ms=timings,
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
]
