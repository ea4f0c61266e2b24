"""Headless jobs shared by the CLI and the GUI: still renders, turntables, interpolations, grids, Gaussian export.

Each job is a dataclass of parameters (validated by ``validate()``, JSON-safe through ``dataclasses.asdict``)
plus one function ``run_*(G, job, out, ...)`` that

* generates once per latent (a turntable runs the generator once and renders every pose from that head),
* renders through :func:`gghead_core.render.render`,
* writes the output and its recipe sidecar atomically (:class:`gghead_core.export.OutputTransaction`),
* reports ``progress(done, total)`` after each unit of work and checks ``cancel`` (a ``threading.Event``)
  between units; on cancel, error or Ctrl-C no partial file is left behind.

The recipe stores ``command`` + the job as a dict, so :func:`run_recipe` can run it again (``replay``).
"""

from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, Union, get_args, get_origin, get_type_hints

import numpy as np
import torch

from gghead_core import export as ex
from gghead_core import latents as lat
from gghead_core.camera import DEFAULT_FOV_DEG, DEFAULT_RADIUS, Camera, OrbitCamera
from gghead_core.gaussians import Gaussians

Progress = Callable[[int, int], None]
MAX_RESOLUTION = 4096


class Cancelled(Exception):
    """Raised inside a job when its ``cancel`` event is set; the job's outputs are rolled back."""


class JobError(ValueError):
    """Invalid job parameters (one-line message)."""


# --------------------------------------------------------------------------------------------------------------
# Shared parameter blocks
# --------------------------------------------------------------------------------------------------------------


def validate_resolution(resolution: int) -> int:
    if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)):
        raise JobError(f"resolution must be an integer, got {resolution!r}")
    if resolution <= 0 or resolution % 16 or resolution > MAX_RESOLUTION:
        raise JobError(f"resolution must be a positive multiple of 16 up to {MAX_RESOLUTION}, got {resolution}")
    return int(resolution)


def parse_background(text: str | Sequence[float]) -> str | tuple[float, float, float]:
    """``white`` | ``black`` | ``transparent`` | ``R,G,B`` (floats in [0, 1])."""
    if isinstance(text, (list, tuple)):
        values = [float(v) for v in text]
    else:
        s = str(text).strip().lower()
        if s in ("white", "black", "transparent"):
            return s
        try:
            values = [float(v) for v in s.split(",")]
        except ValueError:
            raise JobError(f"invalid background {text!r}: use white, black, transparent or R,G,B in [0,1]") from None
    if len(values) != 3 or not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in values):
        raise JobError(f"invalid background {text!r}: R,G,B needs three numbers in [0, 1]")
    return (values[0], values[1], values[2])


def parse_float_list(text: str, what: str) -> list[float]:
    try:
        values = [float(v) for v in str(text).split(",")]
    except ValueError:
        raise JobError(f"invalid {what} {text!r}: expected comma-separated numbers") from None
    if not values or not all(math.isfinite(v) for v in values):
        raise JobError(f"invalid {what} {text!r}: expected finite numbers")
    return values


@dataclass
class RenderSettings:
    """How frames are rendered (the renderer's keyword arguments)."""

    resolution: int = 512
    backend: str = "auto"  # auto | gsplat | opengl | torch
    mode: str = "rgb"  # rgb | alpha | depth
    background: Union[str, tuple[float, float, float]] = "white"
    sh_ref: str = "frontal"  # frontal | view
    scale_modifier: float = 1.0

    def validate(self) -> None:
        validate_resolution(self.resolution)
        if self.backend not in ("auto", "gsplat", "opengl", "torch"):
            raise JobError(f"unknown backend {self.backend!r} (expected auto, gsplat, opengl or torch)")
        if self.mode not in ("rgb", "alpha", "depth"):
            raise JobError(f"unknown mode {self.mode!r} (expected rgb, alpha or depth)")
        self.background = parse_background(self.background)
        if self.sh_ref not in ("frontal", "view"):
            raise JobError(f"unknown sh-ref {self.sh_ref!r} (expected frontal or view)")
        if not (self.scale_modifier > 0 and math.isfinite(self.scale_modifier)):
            raise JobError(f"scale modifier must be positive, got {self.scale_modifier}")

    @property
    def transparent(self) -> bool:
        return self.background == "transparent"


@dataclass
class LatentSpec:
    """How one head's ``ws`` are made: a seed, truncation, and optional seed blend / style mix (GUI features).

    * ``blend``: ``[[seed, weight], ...]``; ws = sum of weight * ws(seed) (the EG3D visualizer's fractional
      seeds; truncation is linear, so blending truncated ws equals truncating the blend). Replaces ``seed``.
    * ``mix_seed`` + ``mix_start``/``mix_end``: ws rows ``[start, end)`` come from ``mix_seed``.
    """

    seed: int = 0
    psi: float = 0.7
    cutoff: int | None = None
    noise_mode: str = "const"
    blend: list[tuple[int, float]] | None = None
    mix_seed: int | None = None
    mix_start: int = 0
    mix_end: int | None = None

    def validate(self) -> None:
        self.seed = _seed(self.seed)
        _check_psi(self.psi)
        _check_cutoff(self.cutoff)
        if self.noise_mode not in ("const", "random", "none"):
            raise JobError(f"noise mode must be const, random or none, got {self.noise_mode!r}")
        if self.blend is not None:
            if not self.blend:
                raise JobError("latent blend must list at least one seed")
            self.blend = [(_seed(s), float(w)) for s, w in self.blend]
        if self.mix_seed is not None:
            self.mix_seed = _seed(self.mix_seed)
            if self.mix_start < 0 or (self.mix_end is not None and self.mix_end < self.mix_start):
                raise JobError(f"style-mix rows [{self.mix_start}, {self.mix_end}) are invalid")

    @property
    def seeds(self) -> list[int]:
        base = [s for s, _ in self.blend] if self.blend else [self.seed]
        return base + ([self.mix_seed] if self.mix_seed is not None else [])


def _seed(value: Any) -> int:
    try:
        return lat.parse_seed(value)
    except ValueError as exc:
        raise JobError(str(exc)) from None


def _check_psi(psi: float) -> None:
    if isinstance(psi, bool) or not isinstance(psi, (int, float)) or not math.isfinite(psi):
        raise JobError(f"truncation psi must be a finite number, got {psi!r}")


def _check_cutoff(cutoff: int | None) -> None:
    if cutoff is not None and (isinstance(cutoff, bool) or not isinstance(cutoff, int) or cutoff < 0):
        raise JobError(f"truncation cutoff must be a non-negative integer, got {cutoff!r}")


def _check_frames(n: int, what: str = "frames") -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise JobError(f"{what} must be a positive integer, got {n!r}")


def _check_fps(fps: float) -> None:
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not (fps > 0 and math.isfinite(fps)):
        raise JobError(f"fps must be a positive number, got {fps!r}")


def _check_radius(radius: float) -> None:
    if not (isinstance(radius, (int, float)) and math.isfinite(radius) and radius > 0):
        raise JobError(f"camera radius must be positive, got {radius!r}")


@dataclass
class CameraSpec:
    """A single view: an orbit camera (yaw/pitch/radius/look-at/fov) or an explicit pose (``explicit``, the
    :func:`gghead_core.export.camera_to_dict` form; GUI captures use it for exact poses)."""

    yaw: float = 0.0
    pitch: float = 0.0
    radius: float = DEFAULT_RADIUS
    look_at: tuple[float, float, float] = (0.0, 0.0, 0.0)
    fov_deg: float = DEFAULT_FOV_DEG
    explicit: dict[str, Any] | None = None

    def validate(self) -> None:
        if self.explicit is not None:
            try:
                ex.camera_from_dict(self.explicit)
            except (KeyError, TypeError, ValueError) as exc:
                raise JobError(f"invalid explicit camera: {exc}") from None
            return
        for name in ("yaw", "pitch", "fov_deg"):
            if not math.isfinite(float(getattr(self, name))):
                raise JobError(f"camera {name} must be finite")
        _check_radius(self.radius)
        if len(self.look_at) != 3 or not all(math.isfinite(float(v)) for v in self.look_at):
            raise JobError(f"look-at must be three finite numbers, got {self.look_at!r}")
        self.look_at = tuple(float(v) for v in self.look_at)  # type: ignore[assignment]
        if not (0.0 < self.fov_deg < 180.0):
            raise JobError(f"field of view must be in (0, 180) degrees, got {self.fov_deg}")

    def to_camera(self) -> Camera:
        if self.explicit is not None:
            return ex.camera_from_dict(self.explicit)
        return OrbitCamera(
            yaw_deg=self.yaw, pitch_deg=self.pitch, radius=self.radius, look_at=self.look_at, fov_deg=self.fov_deg
        ).to_camera()


# --------------------------------------------------------------------------------------------------------------
# Jobs
# --------------------------------------------------------------------------------------------------------------


@dataclass
class StillJob:
    """``render``: one image of one head."""

    latent: LatentSpec = field(default_factory=LatentSpec)
    camera: CameraSpec = field(default_factory=CameraSpec)
    settings: RenderSettings = field(default_factory=lambda: RenderSettings(resolution=1024))

    command = "render"

    def validate(self) -> None:
        self.latent.validate()
        self.camera.validate()
        self.settings.validate()


@dataclass
class TurntableJob:
    """``turntable``: one head seen along a loop of cameras.

    ``path="circle"`` is the official sample script's look (spec 5.1): a small circle in front of the face
    (0.6 at radius 2.7) with 96 frames at 24 fps by default. ``path="orbit"`` turns the camera around the
    y axis at a fixed pitch (``yaw_range < 360``: a smooth left-right swing).
    """

    latent: LatentSpec = field(default_factory=LatentSpec)
    frames: int = lat.OFFICIAL_TURNTABLE_FRAMES
    fps: float = lat.OFFICIAL_TURNTABLE_FPS
    path: str = "circle"  # circle | orbit
    pitch: float = 0.0
    radius: float = DEFAULT_RADIUS
    yaw_range: float = 360.0
    settings: RenderSettings = field(default_factory=RenderSettings)

    command = "turntable"

    def validate(self) -> None:
        self.latent.validate()
        self.settings.validate()
        _check_frames(self.frames)
        _check_fps(self.fps)
        _check_radius(self.radius)
        if self.path not in ("circle", "orbit"):
            raise JobError(f"unknown camera path {self.path!r} (expected circle or orbit)")
        if not math.isfinite(self.pitch) or abs(self.pitch) >= 90:
            raise JobError(f"pitch must be within (-90, 90) degrees, got {self.pitch}")
        if not (self.yaw_range > 0 and math.isfinite(self.yaw_range)):
            raise JobError(f"yaw range must be positive, got {self.yaw_range}")

    def cameras(self) -> list[Camera]:
        if self.path == "circle":
            return lat.circle_trajectory(self.frames, radius=self.radius, pitch_deg=self.pitch)
        return lat.orbit_trajectory(self.frames, pitch_deg=self.pitch, radius=self.radius, yaw_range_deg=self.yaw_range)


@dataclass
class InterpolationJob:
    """``interpolate``: a morph through several seeds (spec 5.2 with ``space="z", method="lerp", loop=True,
    orbit=True, conditioning="camera", sh_ref="view"`` is the official ``render_interpolation.py``)."""

    seeds: list[int] = field(default_factory=lambda: [0, 1])
    frames_per_seed: int = 48
    fps: float = 24.0
    space: str = "w"  # w | z
    method: str = "lerp"  # lerp | slerp
    loop: bool = False
    orbit: bool = False
    conditioning: str = "frontal"  # frontal | camera
    psi: float = 0.7
    cutoff: int | None = None
    noise_mode: str = "const"
    camera: CameraSpec = field(default_factory=CameraSpec)  # the fixed view when orbit is off
    settings: RenderSettings = field(default_factory=RenderSettings)

    command = "interpolate"

    def validate(self) -> None:
        try:
            self.seeds = lat.parse_seed_list(list(self.seeds))
        except ValueError as exc:
            raise JobError(str(exc)) from None
        if len(self.seeds) < 2:
            raise JobError("interpolate needs at least 2 seeds")
        _check_frames(self.frames_per_seed, "frames per seed")
        _check_fps(self.fps)
        if self.space not in ("w", "z"):
            raise JobError(f"unknown latent space {self.space!r} (expected w or z)")
        if self.method not in ("lerp", "slerp"):
            raise JobError(f"unknown interpolation method {self.method!r} (expected lerp or slerp)")
        if self.conditioning not in ("frontal", "camera"):
            raise JobError(f"unknown conditioning {self.conditioning!r} (expected frontal or camera)")
        _check_psi(self.psi)
        _check_cutoff(self.cutoff)
        if self.noise_mode not in ("const", "random", "none"):
            raise JobError(f"noise mode must be const, random or none, got {self.noise_mode!r}")
        self.camera.validate()
        self.settings.validate()

    def schedule(self) -> list[lat.ScheduleStep]:
        return lat.interpolation_schedule(len(self.seeds), self.frames_per_seed, loop=self.loop)

    def cameras(self, n_frames: int) -> list[Camera]:
        if self.orbit:
            turns = len(self.seeds) if self.loop else len(self.seeds) - 1
            return lat.circle_trajectory(n_frames, radius=self.camera.radius, turns=float(turns))
        return [self.camera.to_camera()] * n_frames


@dataclass
class GridJob:
    """``grid``: seeds x views in one image (no labels). Each seed takes ``len(yaws)`` adjacent cells; ``cols``
    seeds share a row (default: one seed per row with several yaws, else a near-square layout)."""

    seeds: list[int] = field(default_factory=lambda: list(range(8)))
    yaws: list[float] = field(default_factory=lambda: [0.0])
    pitch: float = 0.0
    radius: float = DEFAULT_RADIUS
    cols: int | None = None
    psi: float = 0.7
    cutoff: int | None = None
    noise_mode: str = "const"
    settings: RenderSettings = field(default_factory=RenderSettings)

    command = "grid"

    def validate(self) -> None:
        try:
            self.seeds = lat.parse_seed_list(list(self.seeds))
        except ValueError as exc:
            raise JobError(str(exc)) from None
        if not self.yaws or not all(math.isfinite(float(y)) for y in self.yaws):
            raise JobError("grid yaws must be a non-empty list of finite angles")
        self.yaws = [float(y) for y in self.yaws]
        if self.cols is not None:
            _check_frames(self.cols, "columns")
        if not math.isfinite(self.pitch) or abs(self.pitch) >= 90:
            raise JobError(f"pitch must be within (-90, 90) degrees, got {self.pitch}")
        _check_radius(self.radius)
        _check_psi(self.psi)
        _check_cutoff(self.cutoff)
        self.settings.validate()
        w, h = self.image_size()
        if w > 32768 or h > 32768:
            raise JobError(f"grid image would be {w}x{h} pixels; use fewer seeds, columns or a lower resolution")

    def seeds_per_row(self) -> int:
        if self.cols is not None:
            return self.cols
        if len(self.yaws) > 1:
            return 1
        return max(1, math.ceil(math.sqrt(len(self.seeds))))

    def image_size(self) -> tuple[int, int]:
        per_row = min(self.seeds_per_row(), len(self.seeds))
        rows = math.ceil(len(self.seeds) / self.seeds_per_row())
        r = self.settings.resolution
        return per_row * len(self.yaws) * r, rows * r


@dataclass
class ExportJob:
    """``export-ply``: the generated head as a 3DGS ``.ply`` or a compact ``.splat``."""

    latent: LatentSpec = field(default_factory=LatentSpec)
    format: str = "ply"  # ply | splat

    command = "export-ply"

    def validate(self) -> None:
        self.latent.validate()
        if self.format not in ("ply", "splat"):
            raise JobError(f"unknown Gaussian format {self.format!r} (expected ply or splat)")


JOB_TYPES: dict[str, type] = {
    "render": StillJob,
    "turntable": TurntableJob,
    "interpolate": InterpolationJob,
    "grid": GridJob,
    "export-ply": ExportJob,
}


@dataclass
class JobResult:
    output: Path
    recipe: Path | None
    frames: int
    seconds: float
    backend: str | None = None
    backend_reason: str | None = None


# --------------------------------------------------------------------------------------------------------------
# Dict <-> job (recipes)
# --------------------------------------------------------------------------------------------------------------


def job_to_dict(job: Any) -> dict[str, Any]:
    return _jsonable(asdict(job))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, Path):
        return str(value)
    return value


def job_from_dict(command: str, params: dict[str, Any]) -> Any:
    """Rebuild a job dataclass from its recipe dict (nested dataclasses and tuples restored), then validate."""
    if command not in JOB_TYPES:
        raise JobError(f"unknown recipe command {command!r} (expected one of {', '.join(JOB_TYPES)})")
    job = _build(JOB_TYPES[command], params, command)
    job.validate()
    return job


def _build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise JobError(f"recipe field {where!r} must be an object")
    hints = get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise JobError(f"recipe field {where!r} has unknown keys: {', '.join(sorted(unknown))}")
    kwargs = {k: _convert(hints[k], v, f"{where}.{k}") for k, v in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise JobError(f"recipe field {where!r}: {exc}") from None


def _convert(hint: Any, value: Any, where: str) -> Any:
    if is_dataclass(hint):
        return _build(hint, value, where)
    origin = get_origin(hint)
    if origin is Union:
        args = [a for a in get_args(hint) if a is not type(None)]
        if value is None:
            return None
        for a in args:
            if is_dataclass(a) or get_origin(a) in (tuple, list):
                if isinstance(value, (list, dict)):
                    return _convert(a, value, where)
        return value
    if origin is tuple and isinstance(value, list):
        return tuple(value)
    if origin is list and isinstance(value, list):
        inner = get_args(hint)
        if inner and get_origin(inner[0]) is tuple:
            return [tuple(v) if isinstance(v, list) else v for v in value]
        return list(value)
    return value


# --------------------------------------------------------------------------------------------------------------
# Generation and rendering helpers
# --------------------------------------------------------------------------------------------------------------


def make_ws(G: Any, spec: LatentSpec, c: torch.Tensor | None = None) -> torch.Tensor:
    """``ws [1, num_ws, w_dim]`` for a latent spec (frontal conditioning unless ``c`` is given)."""

    def ws_of(seed: int) -> torch.Tensor:
        return G.mapping(G.z_from_seed(seed), c, truncation_psi=spec.psi, truncation_cutoff=spec.cutoff)

    with torch.no_grad():
        if spec.blend:
            ws = sum(float(w) * ws_of(s) for s, w in spec.blend)
        else:
            ws = ws_of(spec.seed)
        if spec.mix_seed is not None:
            ws = lat.style_mix(ws, ws_of(spec.mix_seed), spec.mix_start, spec.mix_end)
    return ws


def generate(G: Any, spec: LatentSpec) -> Gaussians:
    with torch.no_grad():
        return G.synthesis(make_ws(G, spec), noise_mode=spec.noise_mode)


def _render_fn():
    from gghead_core.render import render  # late import: the renderer pulls in GL / gsplat lazily

    return render


@dataclass
class _Frame:
    image: np.ndarray  # [H, W, 3|4] uint8
    backend: str | None
    reason: str | None


def render_views(
    g: Gaussians, cameras: Sequence[Camera], settings: RenderSettings, render_fn: Callable | None = None
) -> Iterator[_Frame]:
    """Render one head (``g`` with B=1) from each camera, yielding uint8 frames (RGBA when transparent)."""
    render = render_fn or _render_fn()
    bg = "white" if settings.transparent else settings.background
    for cam in cameras:
        with torch.no_grad():
            res = render(
                g,
                cam,
                settings.resolution,
                backend=settings.backend,
                mode=settings.mode,
                background="transparent" if settings.transparent else bg,
                sh_ref=settings.sh_ref,
                scale_modifier=settings.scale_modifier,
            )
        img = res.rgba()[0] if settings.transparent else res.image[0]
        yield _Frame(ex.to_uint8(img), getattr(res, "backend", None), getattr(res, "backend_reason", None))


def _check_cancel(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled("cancelled")


def _tick(progress: Progress | None, done: int, total: int) -> None:
    if progress is not None:
        progress(done, total)


def _checkpoint_record(G: Any) -> dict[str, Any]:
    path = getattr(G, "checkpoint_path", None)
    try:
        sha = G.checkpoint_sha256 if path is not None else ""
    except OSError:
        sha = ""
    return {"path": None if path is None else str(Path(path).resolve()), "sha256": sha}


def _renderer_record(settings: RenderSettings, backend: str | None, reason: str | None, G: Any) -> dict[str, Any]:
    return {
        "requested": settings.backend,
        "backend": backend,
        "reason": reason,
        "device": str(getattr(G, "device", "cpu")),
        "resolution": settings.resolution,
        "mode": settings.mode,
        "background": _bg(settings),
        "sh_ref": settings.sh_ref,
        "scale_modifier": settings.scale_modifier,
        "torch_threads": torch.get_num_threads(),
    }


def _bg(settings: RenderSettings) -> Any:
    bg = settings.background
    return list(bg) if isinstance(bg, tuple) else bg


def _recipe(
    G: Any,
    job: Any,
    out: Path,
    *,
    seeds: list[int],
    psi: float,
    cutoff: int | None,
    cameras: Sequence[Camera],
    renderer: dict[str, Any] | None,
    argv: list[str] | None,
    folder: bool = False,
) -> ex.Recipe:
    return ex.Recipe(
        command=job.command,
        params=job_to_dict(job),
        output=str(Path(out).resolve()) + ("/" if folder else ""),
        checkpoint=_checkpoint_record(G),
        seeds=list(seeds),
        psi=float(psi),
        cutoff=cutoff,
        cameras=[ex.camera_to_dict(c) for c in cameras],
        renderer=renderer,
        argv=argv,
    )


# --------------------------------------------------------------------------------------------------------------
# Job runners
# --------------------------------------------------------------------------------------------------------------


def _check_output_and_sidecar(out: Path, overwrite: bool) -> None:
    """Refuse early (before any work) when the output or its recipe sidecar would replace a file unasked."""
    ex.check_output_file(out, overwrite=overwrite)
    ex.check_output_file(ex.sidecar_path(out, folder=False), overwrite=overwrite)


def _check_single_output(out: Path, extensions, overwrite: bool) -> None:
    ex.check_extension(out, extensions)
    _check_output_and_sidecar(out, overwrite)


def run_still(
    G: Any,
    job: StillJob,
    out: str | Path,
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    argv: list[str] | None = None,
    render_fn: Callable | None = None,
) -> JobResult:
    """Render one PNG (RGBA when the background is transparent) plus its recipe."""
    t0 = time.perf_counter()
    job.validate()
    out = Path(out)
    _check_single_output(out, ex.IMAGE_EXTENSIONS, overwrite)
    _tick(progress, 0, 2)
    g = generate(G, job.latent)
    _check_cancel(cancel)
    _tick(progress, 1, 2)
    camera = job.camera.to_camera()
    frame = next(render_views(g, [camera], job.settings, render_fn))
    _check_cancel(cancel)
    return save_still(G, job, frame.image, out, backend=frame.backend, backend_reason=frame.reason,
                      overwrite=overwrite, argv=argv, _t0=t0, _progress=progress)


def save_still(
    G: Any,
    job: StillJob,
    image: np.ndarray,
    out: str | Path,
    *,
    backend: str | None,
    backend_reason: str | None = None,
    overwrite: bool = False,
    argv: list[str] | None = None,
    _t0: float | None = None,
    _progress: Progress | None = None,
) -> JobResult:
    """Write an already rendered still (e.g. a GUI capture) and its recipe, atomically.

    ``image`` is ``[H, W, 3|4]`` (uint8 or float in [0, 1]); ``backend`` is the backend that actually drew it
    (``replay`` uses it, so the replayed PNG has the same pixels).
    """
    t0 = time.perf_counter() if _t0 is None else _t0
    job.validate()
    out = Path(out)
    ex.check_extension(out, ex.IMAGE_EXTENSIONS)
    camera = job.camera.to_camera()
    recipe = _recipe(
        G, job, out, seeds=job.latent.seeds, psi=job.latent.psi, cutoff=job.latent.cutoff, cameras=[camera],
        renderer=_renderer_record(job.settings, backend, backend_reason, G), argv=argv,
    )
    with ex.OutputTransaction(overwrite) as tx:
        ex.write_png(tx.file(out), image)
        ex.write_recipe(tx.file(ex.sidecar_path(out, folder=False)), recipe)
    _tick(_progress, 2, 2)
    return JobResult(out, ex.sidecar_path(out, folder=False), 1, time.perf_counter() - t0, backend, backend_reason)


def check_video_target(out: str | os.PathLike, settings: RenderSettings, overwrite: bool) -> tuple[Path, bool]:
    """Validate a frame-sequence output; returns (path, is_folder). The raw text matters: ``x.d/`` is a folder."""
    raw = os.fspath(out)
    ext = ex.check_extension(raw, ex.VIDEO_EXTENSIONS, allow_folder=True)
    if settings.transparent and ext != "":
        raise JobError("a transparent background needs PNG frames: give a folder (DIR/) as --out, not a video")
    path = Path(raw)
    if ext:
        ex.check_output_file(path, overwrite=overwrite)
        ex.check_output_file(ex.sidecar_path(path, folder=False), overwrite=overwrite)
    else:
        if path.exists() and not path.is_dir():
            raise ex.OutputError(f"output {raw!r} is a file, not a folder")
        if path.is_dir() and not overwrite and any(
            p.name.startswith(ex.FRAME_PREFIX) or p.name == ex.FOLDER_RECIPE_NAME for p in path.iterdir()
        ):
            raise ex.OutputError(f"folder {raw!r} already holds frames (use --overwrite to replace them)")
        ex.check_parent_writable(path)
    return path, ext == ""


def _commit_recipe(tx: ex.OutputTransaction, sink: ex.FrameSink, out: Path, folder: bool, recipe: ex.Recipe) -> None:
    """A folder's recipe travels inside the folder's temp dir, so it is committed together with the frames."""
    target = sink.temp_dir / ex.FOLDER_RECIPE_NAME if folder else tx.file(ex.sidecar_path(out, folder=False))
    ex.write_recipe(target, recipe)


def run_turntable(
    G: Any,
    job: TurntableJob,
    out: str | Path,
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    argv: list[str] | None = None,
    render_fn: Callable | None = None,
) -> JobResult:
    """One head (generated once) rendered along the turntable path into an mp4 / gif / PNG folder."""
    t0 = time.perf_counter()
    job.validate()
    out, folder = check_video_target(out, job.settings, overwrite)
    cameras = job.cameras()
    _tick(progress, 0, job.frames)
    g = generate(G, job.latent)
    backend = reason = None
    with ex.OutputTransaction(overwrite) as tx:
        sink = ex.open_frame_sink(tx, out, fps=job.fps, n_frames=job.frames, folder=folder)
        try:
            for i, frame in enumerate(render_views(g, cameras, job.settings, render_fn)):
                _check_cancel(cancel)
                sink.write(frame.image)
                backend, reason = frame.backend, frame.reason
                _tick(progress, i + 1, job.frames)
            _check_cancel(cancel)
            sink.close()
        except BaseException:
            sink.abort()
            raise
        recipe = _recipe(
            G, job, out, seeds=job.latent.seeds, psi=job.latent.psi, cutoff=job.latent.cutoff, cameras=cameras,
            renderer=_renderer_record(job.settings, backend, reason, G), argv=argv, folder=folder,
        )
        _commit_recipe(tx, sink, out, folder, recipe)
    return JobResult(out, ex.sidecar_path(out, folder=folder), job.frames, time.perf_counter() - t0, backend, reason)


def interpolation_ws(G: Any, job: InterpolationJob, cameras: Sequence[Camera]) -> Iterator[torch.Tensor]:
    """``ws [1, num_ws, w_dim]`` for every frame of an interpolation job (lazily, one frame at a time)."""
    schedule = job.schedule()
    zs = [G.z_from_seed(s) for s in job.seeds]  # S x [1, z_dim]
    static_ws: dict[int, torch.Tensor] = {}

    def label(cam: Camera) -> torch.Tensor | None:
        if job.conditioning == "frontal":
            return None
        return lat.conditioning_camera_for(cam).label()

    def mapping(z: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        # One latent per call: batched matmuls round differently, and key frames must equal the seeds' own
        # still renders bit for bit.
        return G.mapping(z, c, truncation_psi=job.psi, truncation_cutoff=job.cutoff)

    def key_ws(index: int, c: torch.Tensor | None) -> torch.Tensor:
        if c is not None:
            return mapping(zs[index], c)
        if index not in static_ws:
            static_ws[index] = mapping(zs[index], None)
        return static_ws[index]

    for step, cam in zip(schedule, cameras):
        c = label(cam)
        with torch.no_grad():
            if job.space == "z":
                ws = mapping(lat.interpolate(zs[step.index_a], zs[step.index_b], step.t, job.method), c)
            else:
                wa, wb = key_ws(step.index_a, c), key_ws(step.index_b, c)
                ws = lat.interpolate(wa, wb, step.t, job.method)
        yield ws  # [1, num_ws, w_dim]


def run_interpolation(
    G: Any,
    job: InterpolationJob,
    out: str | Path,
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    argv: list[str] | None = None,
    render_fn: Callable | None = None,
    batch_size: int | None = None,
) -> JobResult:
    """Morph through the seeds (one synthesis per frame, batched by ``batch_size`` heads: 8 on CUDA, 1 on CPU
    where batching does not pay and only costs memory)."""
    t0 = time.perf_counter()
    job.validate()
    out, folder = check_video_target(out, job.settings, overwrite)
    n_frames = len(job.schedule())
    cameras = job.cameras(n_frames)
    if batch_size is None:
        batch_size = 8 if str(getattr(G, "device", "cpu")).startswith("cuda") else 1
    _tick(progress, 0, n_frames)
    backend = reason = None
    done = 0
    with ex.OutputTransaction(overwrite) as tx:
        sink = ex.open_frame_sink(tx, out, fps=job.fps, n_frames=n_frames, folder=folder)
        try:
            pending: list[torch.Tensor] = []
            ws_iter = interpolation_ws(G, job, cameras)
            while done < n_frames:
                pending = [next(ws_iter) for _ in range(min(batch_size, n_frames - done))]
                _check_cancel(cancel)
                with torch.no_grad():
                    heads = G.synthesis(torch.cat(pending), noise_mode=job.noise_mode)
                for j in range(len(pending)):
                    frame = next(render_views(heads[j], [cameras[done]], job.settings, render_fn))
                    _check_cancel(cancel)
                    sink.write(frame.image)
                    backend, reason = frame.backend, frame.reason
                    done += 1
                    _tick(progress, done, n_frames)
            sink.close()
        except BaseException:
            sink.abort()
            raise
        recipe = _recipe(
            G, job, out, seeds=job.seeds, psi=job.psi, cutoff=job.cutoff, cameras=cameras,
            renderer=_renderer_record(job.settings, backend, reason, G), argv=argv, folder=folder,
        )
        _commit_recipe(tx, sink, out, folder, recipe)
    return JobResult(out, ex.sidecar_path(out, folder=folder), n_frames, time.perf_counter() - t0, backend, reason)


def grid_cameras(job: GridJob) -> list[Camera]:
    return [OrbitCamera(yaw_deg=y, pitch_deg=job.pitch, radius=job.radius).to_camera() for y in job.yaws]


def run_grid(
    G: Any,
    job: GridJob,
    out: str | Path,
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    argv: list[str] | None = None,
    render_fn: Callable | None = None,
) -> JobResult:
    """Seeds x views in one PNG; empty cells of the last row are filled with the background."""
    t0 = time.perf_counter()
    job.validate()
    out = Path(out)
    _check_single_output(out, ex.IMAGE_EXTENSIONS, overwrite)
    r = job.settings.resolution
    width, height = job.image_size()
    channels = 4 if job.settings.transparent else 3
    canvas = np.empty((height, width, channels), np.uint8)
    canvas[...] = _background_u8(job.settings)
    cameras = grid_cameras(job)
    per_row = job.seeds_per_row()
    total = len(job.seeds) * len(cameras)
    done = 0
    backend = reason = None
    _tick(progress, 0, total)
    for k, seed in enumerate(job.seeds):
        _check_cancel(cancel)
        g = generate(G, LatentSpec(seed=seed, psi=job.psi, cutoff=job.cutoff, noise_mode=job.noise_mode))
        row, col0 = divmod(k, per_row)
        for v, frame in enumerate(render_views(g, cameras, job.settings, render_fn)):
            _check_cancel(cancel)
            x = (col0 * len(cameras) + v) * r
            canvas[row * r:(row + 1) * r, x:x + r] = frame.image[..., :channels]
            backend, reason = frame.backend, frame.reason
            done += 1
            _tick(progress, done, total)
    recipe = _recipe(
        G, job, out, seeds=job.seeds, psi=job.psi, cutoff=job.cutoff, cameras=cameras,
        renderer=_renderer_record(job.settings, backend, reason, G), argv=argv,
    )
    with ex.OutputTransaction(overwrite) as tx:
        ex.write_png(tx.file(out), canvas)
        ex.write_recipe(tx.file(ex.sidecar_path(out, folder=False)), recipe)
    return JobResult(out, ex.sidecar_path(out, folder=False), total, time.perf_counter() - t0, backend, reason)


def _background_u8(settings: RenderSettings) -> np.ndarray:
    bg = settings.background
    if bg == "transparent":
        return np.array([255, 255, 255, 0], np.uint8)
    rgb = {"white": (1.0, 1.0, 1.0), "black": (0.0, 0.0, 0.0)}.get(bg, bg)  # type: ignore[arg-type]
    return ex.to_uint8(np.asarray(rgb, np.float32))


def run_export(
    G: Any,
    job: ExportJob,
    out: str | Path,
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    argv: list[str] | None = None,
    render_fn: Callable | None = None,
) -> JobResult:
    """Write the head as a 3DGS PLY or .splat (format from ``job.format``; the extension must agree)."""
    t0 = time.perf_counter()
    job.validate()
    out = Path(out)
    ext = ex.check_extension(out, ex.GAUSSIAN_EXTENSIONS)
    if ext != "." + job.format:
        raise JobError(f"--format {job.format} does not match the extension of {str(out)!r}")
    _check_output_and_sidecar(out, overwrite)
    _tick(progress, 0, 1)
    g = generate(G, job.latent)
    _check_cancel(cancel)
    recipe = _recipe(G, job, out, seeds=job.latent.seeds, psi=job.latent.psi, cutoff=job.latent.cutoff,
                     cameras=[], renderer=None, argv=argv)
    with ex.OutputTransaction(overwrite) as tx:
        if job.format == "ply":
            ex.write_ply(tx.file(out), ex.gaussians_to_ply_arrays(g))
        else:
            ex.write_splat(tx.file(out), ex.gaussians_to_splat_array(g))
        ex.write_recipe(tx.file(ex.sidecar_path(out, folder=False)), recipe)
    _tick(progress, 1, 1)
    return JobResult(out, ex.sidecar_path(out, folder=False), 1, time.perf_counter() - t0)


RUNNERS: dict[str, Callable[..., JobResult]] = {
    "render": run_still,
    "turntable": run_turntable,
    "interpolate": run_interpolation,
    "grid": run_grid,
    "export-ply": run_export,
}


def run_job(G: Any, job: Any, out: str | Path, **kwargs: Any) -> JobResult:
    return RUNNERS[job.command](G, job, out, **kwargs)


def job_for_replay(recipe: ex.Recipe) -> Any:
    """The recipe's job, pinned to the backend that actually ran (``auto`` could pick another one elsewhere)."""
    job = job_from_dict(recipe.command, recipe.params)
    settings = getattr(job, "settings", None)
    used = (recipe.renderer or {}).get("backend")
    if settings is not None and used:
        settings.backend = used
    return job
