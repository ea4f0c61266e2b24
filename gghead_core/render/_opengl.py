"""OpenGL splatting backend: GLSL point sprites, triangles or quads, GPU (compute) or CPU depth sort, readback.

Pipeline per frame (shaders in ``shaders/``; its README lists the GL requirements):

1. **Upload**, only when the head changes: mean, opacity, quaternion and scale of every Gaussian into one
   buffer texture (3 RGBA32F texels each), colours into another. Changes are detected by the tensors'
   memory + ``_version`` (checked before anything is copied to the host), so rendering one ``Gaussians``
   from many cameras uploads once (``upload_counts`` tells).
2. **Sort** by camera depth: bitonic sort of (key, index) in ``sort.comp`` on hardware GPUs, or numpy on the
   CPU (one ``np.sort`` of 64-bit ``key << 32 | index``: SIMD-sorted, faster than ``argsort``, and identical
   to a stable argsort, which is also what the GPU produces). The CPU path uploads 4 B per Gaussian.
3. **Project** (GL >= 4.3, ``project.comp``): every Gaussian is projected once (EWA, 3DGS rules, shared
   ``common.glsl``) into a splat buffer *in drawing order*, with footprint statistics (read back only on
   software GL, where they choose the primitive, or when points are forced).
4. **Raster**: ``splat.vert`` emits one point sprite, one triangle or one quad per Gaussian, back to front,
   from the splat buffer as plain vertex attributes; ``splat.frag`` evaluates the Gaussian;
   ``ONE, ONE_MINUS_SRC_ALPHA`` blending into an RGBA32F target cleared to (background, 0) gives
   ``rgb`` and ``alpha = 1 - T`` (plus an R32F target for the depth sums, only when asked for): the
   front-to-back sums of the reference. On software GL the primitive is the cheapest by a cost model
   measured on llvmpipe (sprites: cheapest per Gaussian but a square; triangles: one primitive, 1.3x the
   quad's area; quads: fewest fragments, dearest per Gaussian); hardware GPUs get quads.
5. **Readback**: one ``glReadPixels`` (RGBA, GL_FLOAT) into the returned array (rgb and alpha are views of
   it), plus one for the depth sums; rows come out in image order because the projection does not flip y.

On GL 3.3-4.2 contexts (no compute shaders, e.g. macOS) the projection runs in the vertex shader, the sort
on the CPU, and quads are drawn.

Differences from the reference (``_torch_ref.rasterize_torch``), measured in ``tests/test_opengl_render.py``:

* The 1e-4 transmittance stop is per pixel and sequential; fixed-function blending cannot skip a fragment
  based on what is already in the framebuffer, so Gaussians behind the stop point still add their (tiny)
  weights (below 1e-4 / (1 - alpha) <= 1e-2 of a colour difference per pixel; on synthetic heads the
  reference with and without the stop agree to 72-86 dB PSNR).
* 3DGS lets a Gaussian reach the pixels of the 16x16 tiles its 3-sigma box touches (where alpha >= 1/255);
  here it reaches its whole alpha >= 1/255 ellipse. They differ only where that ellipse leaves the touched
  tiles (it reaches at most 3.33 sigma for opacity 1, the tiles at least 3 sigma): tails with alpha below
  1.1 % of the opacity. Without these two rules the output equals the per-pixel formula to 2e-5.

Contexts (see ``_opengl_context``): ``context="auto"`` makes a hidden glfw window when a display exists
(on the main thread; EGL first on other threads), else EGL surfaceless, and every call saves and restores
whatever context was current before (DearPyGui's included). ``context="current"`` renders inside the
caller's current context instead (e.g. in DPG's render loop): GL objects are created in that context and
the GL state we touch is restored after each call.

Modules (private, one concern each; the rasterizer's parts are mixin base classes of it):
``_opengl_programs`` shaders, ``_opengl_upload`` upload fingerprints and host copies, ``_opengl_buffers`` GL
buffers, targets and transfers, ``_opengl_sort`` CPU/GPU depth order, ``_opengl_primitives`` footprint
statistics and the cost model, ``_opengl_passes`` projection, draw and readback, ``_opengl_state`` state
save/restore for ``context="current"``, ``_opengl_available`` availability, ``_opengl_context`` contexts and
the probe. This module: the rasterizer's set-up, upload cache, frame sequence and teardown, the entry points,
and (re-exported) every name that other modules and tests import from it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from ._opengl_available import _DEFAULT
from ._opengl_available import opengl_available as opengl_available
from ._opengl_buffers import _BuffersMixin
from ._opengl_context import (
    ContextKind,
    GLContext,
    OpenGLError,
    activated,
    create_context,
    log,
)
from ._opengl_context import _gl as _gl
from ._opengl_passes import FOV_CLAMP as FOV_CLAMP
from ._opengl_passes import LOW_PASS as LOW_PASS
from ._opengl_passes import NEAR_CULL as NEAR_CULL
from ._opengl_passes import _PassesMixin
from ._opengl_primitives import FrameStats as FrameStats
from ._opengl_primitives import _PrimitivesMixin
from ._opengl_programs import SHADER_DIR as SHADER_DIR
from ._opengl_programs import SHADER_FILES as SHADER_FILES
from ._opengl_programs import _Program, compute_programs, raster_programs
from ._opengl_sort import _SortMixin
from ._opengl_sort import cpu_depth_order as cpu_depth_order
from ._opengl_state import _GLStateMixin
from ._opengl_upload import _as_f32 as _as_f32  # tests spy on this module's _as_f32 (see _upload)
from ._opengl_upload import _fingerprint, _host_matrix, _rows

SortMode = Literal["auto", "gpu", "cpu"]
PrimitiveMode = Literal["auto", "points", "triangles", "quads"]

# Both are read here at call time (not imported elsewhere), so tests can patch them on this module.
_SOFTWARE_RENDERERS = ("llvmpipe", "softpipe", "swrast", "swiftshader", "software rasterizer")
_SOFTWARE_DRAW_CHUNK = 4096  # Gaussians per draw call (and llvmpipe scene) on software GL, see _draw

__all__ = [
    "OpenGLRasterizer",
    "OpenGLError",
    "rasterize_opengl",
    "opengl_available",
    "default_rasterizer",
    "close_default_rasterizer",
    "opengl_info",
    "opengl_renderer",
    "OpenGLInfo",
]


@dataclass(frozen=True)
class OpenGLInfo:
    """What the OpenGL backend renders with: a GPU check asserts ``"NVIDIA" in renderer`` (Mesa's llvmpipe
    also passes every test, on the CPU)."""

    renderer: str  # GL_RENDERER, e.g. "NVIDIA H200/PCIe/SSE2" or "llvmpipe (LLVM 15.0.6, 256 bits)"
    version: str  # GL_VERSION
    platform: str  # how the context was made: "egl device 0 (CUDA 0)", "egl surfaceless", "glfw (glx)", ...
    is_software: bool
    sort_mode: str


class OpenGLRasterizer(_BuffersMixin, _SortMixin, _PrimitivesMixin, _PassesMixin, _GLStateMixin):
    """Renders one head at a time with OpenGL. Owns its context (or borrows the current one), programs,
    buffers and render targets, all reused across frames (targets are resized when the resolution changes).

    Thread safety: calls are serialised with a lock, and after every call our context is released (or the
    caller's context restored), so one rasterizer may be used from any thread, one call at a time. With
    ``context="current"`` it must be used in the thread and context it was created in.

    Args:
        context: ``"auto"`` | ``"glfw"`` | ``"egl"`` | ``"current"`` (see the module docstring).
        sort: ``"gpu"`` (compute shader, GL 4.3), ``"cpu"`` (numpy), or ``"auto"``: GPU on hardware
            renderers, CPU on software ones (on llvmpipe the barrier-heavy bitonic sort took 2.2 s of CPU for
            235k Gaussians, numpy 14 ms).
        primitive: ``"points"``, ``"triangles"``, ``"quads"`` or ``"auto"`` (see the module docstring). Points
            and triangles need GL 4.3.
        gl_version_cap: treat the context as at most this version, e.g. ``(3, 3)`` to run (and test) the
            fallback path for contexts without compute shaders on a machine that has them.
        split_timings: ``glFinish`` between passes so ``last_timings_ms`` splits the work per pass. ``None``
            (default): on for software renderers (the CPU does the work in order anyway, the split is free),
            off for hardware GPUs (each ``glFinish`` is a pipeline stall; the GPU time then shows up in
            ``readback``). Can be changed on the instance.
    """

    def __init__(
        self,
        *,
        context: ContextKind = "auto",
        sort: SortMode = "auto",
        primitive: PrimitiveMode = "auto",
        gl_version_cap: tuple[int, int] | None = None,
        split_timings: bool | None = None,
    ):
        if sort not in ("auto", "gpu", "cpu"):
            raise ValueError(f"sort must be auto|gpu|cpu, got {sort!r}")
        if primitive not in ("auto", "points", "triangles", "quads"):
            raise ValueError(f"primitive must be auto|points|triangles|quads, got {primitive!r}")
        self._lock = threading.RLock()
        self._primitive_request = primitive
        self._gl_version_cap = (
            None if gl_version_cap is None else (int(gl_version_cap[0]), int(gl_version_cap[1])))
        self._split_timings_request = split_timings
        self.last_timings_ms: dict[str, float] = {}
        self.last_cpu_ms: dict[str, float] = {}
        self.last_stats = FrameStats()
        self.upload_counts = {"geometry": 0, "colors": 0}  # how often each per-head buffer was (re)uploaded
        self._owned: dict[str, list[int]] = {"buffers": [], "textures": [], "programs": [], "vaos": [], "fbos": []}
        GL = _gl()
        self._ctx: GLContext | None = create_context(context)
        try:
            with activated(self._ctx):
                saved = self._save_state(GL) if not self._ctx.owns_context else None
                try:
                    self._init_gl(GL, sort, primitive)
                finally:
                    if saved is not None:
                        self._restore_state(GL, saved)
        except BaseException:
            self._teardown()
            raise

    # -- setup ---------------------------------------------------------------------------------------------

    def _context(self) -> GLContext:
        if self._ctx is None:
            raise OpenGLError("the OpenGL rasterizer has been closed")
        return self._ctx

    def _activated(self):
        return activated(self._context())

    def _init_gl(self, GL, sort: SortMode, primitive: PrimitiveMode) -> None:
        def text(name):
            value = GL.glGetString(name)
            return value.decode(errors="replace") if value else "?"

        self.renderer = text(GL.GL_RENDERER)
        self.gl_version_string = text(GL.GL_VERSION)
        self.gl_version = (int(GL.glGetIntegerv(GL.GL_MAJOR_VERSION)), int(GL.glGetIntegerv(GL.GL_MINOR_VERSION)))
        if self.gl_version < (3, 3):
            raise OpenGLError(
                f"OpenGL 3.3 or newer is required; the context has {self.gl_version_string} ({self.renderer})")
        if self._gl_version_cap is not None:
            self.gl_version = min(self.gl_version, self._gl_version_cap)
        self.is_software = any(s in self.renderer.lower() for s in _SOFTWARE_RENDERERS)
        log.info("OpenGL rasterizer: %s, %s via %s", self.renderer, self.gl_version_string, self._context().describe())
        # A compatibility-profile context (DearPyGui's, with context="current") rasterizes points with the
        # legacy rules (integer size, snapped centre) unless GL_POINT_SPRITE is on; core contexts always use
        # sprite rules and reject that enum.
        mask = int(GL.glGetIntegerv(GL.GL_CONTEXT_PROFILE_MASK)) if self.gl_version >= (3, 2) else 0
        self.compat_profile = bool(mask & GL.GL_CONTEXT_COMPATIBILITY_PROFILE_BIT)
        self.projected = self.gl_version >= (4, 3)
        if not self.projected and (sort == "gpu" or primitive in ("points", "triangles")):
            raise OpenGLError(f"sort='gpu' and primitive='{primitive}' need OpenGL 4.3; the context has "
                              f"{self.gl_version_string}")
        self.sort_mode: Literal["gpu", "cpu"] = "cpu" if (sort == "cpu" or not self.projected) else (
            "gpu" if (sort == "gpu" or not self.is_software) else "cpu")
        # The projection's footprint statistics only serve the points-or-quads choice: hardware GPUs always
        # get quads (unless points are forced), so they skip the read (a host stall per frame).
        self._needs_stats = self.projected and (
            primitive == "points" or (primitive == "auto" and self.is_software))
        self.split_timings = bool(self.is_software if self._split_timings_request is None
                                  else self._split_timings_request)
        self._max_texture_buffer = int(GL.glGetIntegerv(GL.GL_MAX_TEXTURE_BUFFER_SIZE))
        self._max_point_size = float(np.atleast_1d(GL.glGetFloatv(GL.GL_POINT_SIZE_RANGE))[-1])
        self._max_viewport = [int(v) for v in np.atleast_1d(GL.glGetIntegerv(GL.GL_MAX_VIEWPORT_DIMS))]

        self._raster: dict[tuple[str, bool], _Program] = raster_programs(GL, self.projected, self._keep)
        if self.projected:
            self._project, self._sort = compute_programs(GL, self._keep)

        self._create_objects(GL)

    def _keep(self, program: _Program) -> _Program:
        self._owned["programs"].append(program.handle)
        return program

    def describe(self) -> str:
        """One line for ``info`` and the GUI: renderer, GL version, how the context was made, sort mode."""
        platform = self._ctx.describe() if self._ctx is not None else "closed"
        return f"{self.renderer}, {self.gl_version_string} via {platform}, {self.sort_mode} sort"

    def info(self) -> OpenGLInfo:
        return OpenGLInfo(renderer=self.renderer, version=self.gl_version_string,
                          platform=self._ctx.describe() if self._ctx is not None else "closed",
                          is_software=self.is_software, sort_mode=self.sort_mode)

    # -- upload cache (buffers, targets and transfers: _opengl_buffers) ----------------------------------

    def _upload(self, GL, means, quats, scales, opacities, colors) -> None:
        """Upload what changed since the last frame (nothing when the same tensors come again).

        The fingerprints are compared first: a cache hit copies nothing to the host (for CUDA tensors, no
        device-to-host transfer and no sync). Geometry and colours are tracked separately, so new colours
        for the same head (``render()`` re-evaluates SH per call) re-upload 16 B per Gaussian only.
        """
        s = self._scene
        n = _rows(means, "means")
        geom_key = _fingerprint(means, quats, scales, opacities)
        color_key = _fingerprint(colors)
        grow = n > s.capacity
        geom_changed = grow or n != s.count or geom_key != s.geom_key
        color_changed = grow or n != s.count or color_key != s.color_key
        if not (geom_changed or color_changed):
            return
        if color_changed and _rows(colors, "colors") != n:
            raise ValueError(f"colors has {_rows(colors, 'colors')} rows but means has {n}")
        self._ensure_capacity(GL, n)
        if geom_changed:
            m = _as_f32(means, (3,), "means")
            q = _as_f32(quats, (4,), "quats")
            sc = _as_f32(scales, (3,), "scales")
            flat = opacities.reshape(-1) if isinstance(opacities, torch.Tensor) else np.asarray(opacities).reshape(-1)
            op = _as_f32(flat, (), "opacities")
            for name, arr in (("quats", q), ("scales", sc), ("opacities", op)):
                if arr.shape[0] != n:
                    raise ValueError(f"{name} has {arr.shape[0]} rows but means has {n}")
            geom = np.empty((n, 12), np.float32)
            geom[:, 0:3] = m
            geom[:, 3] = op
            geom[:, 4:8] = q
            geom[:, 8:11] = sc
            geom[:, 11] = 0.0
            self._buffer_write(GL, self._geom_buf, geom)
            self.upload_counts["geometry"] += 1
            s.geom_key, s.geom_refs, s.means = geom_key, (means, quats, scales, opacities), m
        if color_changed:
            c = _as_f32(colors, (3,), "colors")
            rgba = np.zeros((n, 4), np.float32)
            rgba[:, :3] = c
            self._buffer_write(GL, self._color_buf, rgba)
            self.upload_counts["colors"] += 1
            s.color_key, s.color_refs = color_key, (colors,)
        s.count = n

    # -- per-frame passes (sort: _opengl_sort, primitives: _opengl_primitives, the rest: _opengl_passes) ---

    def _draw_chunk(self) -> int:
        """Gaussians per draw call: chunks on software GL (see _draw), everything at once on hardware."""
        return max(1, int(_SOFTWARE_DRAW_CHUNK)) if (self.is_software and self.projected) else max(1, self._scene.count)

    # -- public API (also sorted_order, from _opengl_sort) -------------------------------------------------

    def set_gaussians(self, means, quats, scales, opacities, colors) -> None:
        """Upload a head now (``rasterize`` also does this itself whenever its inputs changed)."""
        GL = _gl()
        with self._lock, self._activated():
            self._upload(GL, means, quats, scales, opacities, colors)

    def rasterize(
        self,
        means,  # [N, 3]
        quats,  # [N, 4] (w, x, y, z)
        scales,  # [N, 3]
        opacities,  # [N]
        colors,  # [N, 3]
        viewmat,  # [4, 4] world -> camera (OpenCV)
        K,  # [3, 3] pixel intrinsics
        width: int,
        height: int,
        background=(1.0, 1.0, 1.0),  # [3]
        *,
        with_depth: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Render one head: ``rgb [H, W, 3]`` (background included), ``alpha [H, W]`` and ``depth_accum [H, W]``
        (sum of w_i z_i), float32 CPU tensors; ``rgb`` and ``alpha`` are views of one ``[H, W, 4]`` array.

        ``with_depth=False`` skips the depth sums (one render target instead of two; 6-11 % less raster CPU
        time on llvmpipe) and returns ``None`` in their place: what rgb and alpha modes need.

        ``last_timings_ms`` gets the upload / sort / project / raster / readback split. With
        ``split_timings`` on (default on software GL, where it costs nothing) a ``glFinish`` separates the
        passes so each number is that pass alone; off (hardware default) the GPU work of sort, projection and
        raster lands in ``readback``, which waits for it, and the host never stalls in between.
        """
        width, height = int(width), int(height)
        if width < 1 or height < 1:
            raise ValueError(f"render size must be positive, got {width}x{height}")
        viewmat = _host_matrix(viewmat, (4, 4), "viewmat")
        K = _host_matrix(K, (3, 3), "K")
        bg = _host_matrix(background, (3,), "background").astype(np.float32)
        if not (np.all(np.isfinite(viewmat)) and np.all(np.isfinite(K)) and K[0, 0] > 0 and K[1, 1] > 0):
            raise ValueError("viewmat and K must be finite and K must have positive focal lengths")
        with_depth = bool(with_depth)
        GL = _gl()
        with self._lock, self._activated():
            saved = self._save_state(GL) if not self._context().owns_context else None
            try:
                times, cpu_times = [], []

                def mark() -> None:
                    times.append(time.perf_counter())
                    cpu_times.append(time.process_time())

                mark()
                self._upload(GL, means, quats, scales, opacities, colors)
                targets = self._ensure_targets(GL, width, height)
                mark()
                if self._scene.count > 0:
                    if self.sort_mode == "gpu":
                        self._sort_gpu(GL, viewmat)
                        if self.split_timings:
                            GL.glFinish()
                    else:
                        self._sort_cpu(GL, viewmat)
                mark()
                n = self._scene.count
                chunk_stats: list[FrameStats] = []
                if n > 0 and self.projected:
                    self._project_pass(GL, viewmat, K, width, height)
                    if self._needs_stats:
                        chunk_stats = self._read_stats(GL)  # waits for the projection
                    elif self.split_timings:
                        GL.glFinish()
                mark()
                chunks = -(-n // self._draw_chunk())
                if self._needs_stats:
                    primitives = self._choose_primitives(chunk_stats)
                else:
                    primitives = [self._primitive_request if self._primitive_request in ("triangles", "quads")
                                  else "quads"] * chunks
                stats = FrameStats.combine(chunk_stats, primitives)
                self._draw(GL, targets, primitives, viewmat, K, bg, with_depth)
                if self.split_timings:
                    GL.glFinish()
                mark()
                rgb, alpha, depth = self._readback(GL, targets, with_depth)
                mark()
            finally:
                if saved is not None:
                    self._restore_state(GL, saved)
        d = np.diff(times) * 1e3
        c = np.diff(cpu_times) * 1e3
        self.last_stats = stats
        self.last_timings_ms = {
            "upload": float(d[0]),
            "sort": float(d[1]),
            "project": float(d[2]),
            "raster": float(d[3]),
            "readback": float(d[4]),
            "total": float(times[-1] - times[0]) * 1e3,
        }
        # Process CPU time (all threads, llvmpipe's included) per pass: on a busy shared machine this is a
        # steadier measure of the work than wall time.
        self.last_cpu_ms = dict(zip(("upload", "sort", "project", "raster", "readback"), map(float, c)))
        self.last_cpu_ms["total"] = float(sum(c))
        return rgb, alpha, depth

    # -- teardown ------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Delete our GL objects and context, restoring whatever context was current. Idempotent."""
        with self._lock:
            self._teardown()

    def _teardown(self) -> None:
        ctx, self._ctx = self._ctx, None
        if ctx is None:
            return
        GL = _gl()
        try:
            # Destroying a glfw window that glfw believes current makes it release "the" current context;
            # doing it inside activated() keeps that release on our context, then the caller's is restored.
            with activated(ctx):
                saved = self._save_state(GL) if not ctx.owns_context else None
                self._delete_objects(GL)
                if saved is not None:
                    # Deleting a bound object resets that binding to 0; restore the caller's (its own objects).
                    self._restore_state(GL, saved)
                ctx.destroy()
        except OpenGLError:
            ctx.destroy()  # a borrowed context that is no longer current: nothing of ours can be deleted

    def __enter__(self) -> OpenGLRasterizer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ----------------------------------------------------------------------------------------------------------
# Module-level default rasterizer (the low-level backend contract; its slot _DEFAULT is in _opengl_available)


def default_rasterizer() -> OpenGLRasterizer:
    """The process-wide rasterizer behind :func:`rasterize_opengl` (own context, automatic modes), created on
    first use. A creation failure is remembered and re-raised as the same one-line :class:`OpenGLError`."""
    with _DEFAULT.lock:
        if _DEFAULT.rasterizer is None:
            if _DEFAULT.error is not None:
                raise OpenGLError(_DEFAULT.error)
            try:
                _DEFAULT.rasterizer = OpenGLRasterizer()
            except OpenGLError as exc:
                _DEFAULT.error = str(exc)
                raise
        return _DEFAULT.rasterizer


def opengl_info() -> OpenGLInfo:
    """Renderer, GL version and context platform of the process-wide rasterizer (created on first use, in
    this process: unlike :func:`opengl_available`'s child-process probe, this is what ``render()`` uses).
    Raises :class:`OpenGLError` when no context can be made."""
    return default_rasterizer().info()


def opengl_renderer() -> str:
    """``GL_RENDERER`` of the rasterizer ``render()`` uses, e.g. to assert ``"NVIDIA"`` in a GPU check."""
    return opengl_info().renderer


def close_default_rasterizer() -> None:
    """Close the process-wide rasterizer (e.g. before the GUI destroys its own context)."""
    with _DEFAULT.lock:
        if _DEFAULT.rasterizer is not None:
            _DEFAULT.rasterizer.close()
        _DEFAULT.rasterizer = None
        _DEFAULT.error = None


def rasterize_opengl(
    means: torch.Tensor,  # [N, 3]
    quats: torch.Tensor,  # [N, 4] (w, x, y, z)
    scales: torch.Tensor,  # [N, 3]
    opacities: torch.Tensor,  # [N]
    colors: torch.Tensor,  # [N, 3]
    viewmat,  # [4, 4] world -> camera (OpenCV)
    K,  # [3, 3] pixel intrinsics
    width: int,
    height: int,
    background,  # [3]
    *,
    rasterizer: OpenGLRasterizer | None = None,
    with_depth: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Backend contract: ``(rgb [H, W, 3], alpha [H, W], depth_accum [H, W])``, float32 CPU tensors.

    The result always stays on the host, whatever device the Gaussians are on (``glReadPixels`` writes host
    memory; a caller that wants host pixels should not move it to CUDA and back). ``with_depth=False``
    (rgb/alpha modes) skips the depth sums and returns ``None`` for them (see
    :meth:`OpenGLRasterizer.rasterize`).

    Uses ``rasterizer`` when given (e.g. one made with ``context="current"`` inside the GUI), else the
    process-wide default; ``rasterizer.last_timings_ms`` then holds this call's timing split.
    """
    r = rasterizer or default_rasterizer()
    return r.rasterize(means, quats, scales, opacities, colors, viewmat, K, width, height, background,
                       with_depth=with_depth)
