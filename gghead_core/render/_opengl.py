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
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from gghead_core._resources import resource_dir

from ._opengl_context import (
    ContextKind,
    GLContext,
    OpenGLError,
    activated,
    create_context,
    log,
    prepare_pyopengl,
    probe_in_subprocess,
)

SortMode = Literal["auto", "gpu", "cpu"]
PrimitiveMode = Literal["auto", "points", "triangles", "quads"]

SHADER_DIR = resource_dir("shaders")
SHADER_FILES = ("common.glsl", "splat.vert", "splat.frag", "project.comp", "sort.comp")

NEAR_CULL = 0.2
LOW_PASS = 0.3
FOV_CLAMP = 1.3
_PROJECT_LOCAL_SIZE = 256  # must match project.comp
_SORT_LOCAL_SIZE = 512  # must match LOCAL_SIZE in sort.comp
_SORT_BLOCK = 2 * _SORT_LOCAL_SIZE
_GL_POINT_SPRITE = 0x8861  # compatibility profile only
_GL_POINT_SMOOTH = 0x0B10  # compatibility profile only
_SOFTWARE_RENDERERS = ("llvmpipe", "softpipe", "swrast", "swiftshader", "software rasterizer")

# Cost model of the three primitives on software renderers: CPU ns per drawn Gaussian and per fragment,
# fitted on llvmpipe (2-core AMD EPYC, Mesa 22.3.6) with the demo head (47k Gaussians) at 256/512/1024 px,
# process CPU time of the raster pass (bench/render_opengl.py --primitives). Sprites are cheapest per
# Gaussian but cover the ellipse's bounding square; quads hug the ellipse but cost two triangles and four
# vertices; one triangle around the ellipse sits in between (30 % more area than the quad). Measured
# (ms CPU, points / triangles / quads): 256 px 54 / 63 / 89, 512 px 100 / 100-109 / 125-137,
# 1024 px 270-280 / 217-224 / 230.
_PRIMITIVE_COST_NS = {  # (per Gaussian, per fragment)
    "points": (850.0, 4.6),
    "triangles": (930.0, 7.2),
    "quads": (1520.0, 8.4),
}
_SOFTWARE_DRAW_CHUNK = 4096  # Gaussians per draw call (and llvmpipe scene) on software GL, see _draw
_TRIANGLE_AREA_RATIO = 3.0 * math.sqrt(3.0) / 4.0  # triangle around the unit disk (inradius 1) / its square

_GL: Any = None  # the OpenGL.GL module, imported after prepare_pyopengl()


def _gl():
    global _GL
    if _GL is None:
        prepare_pyopengl()
        from OpenGL import GL

        _GL = GL
    return _GL


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


# ----------------------------------------------------------------------------------------------------------
# Availability


_LIBRARY_PRESENT: bool | None = None


def _gl_library_present() -> bool:
    """Cached: ``find_library`` runs ``ldconfig``, a few ms each time."""
    global _LIBRARY_PRESENT
    if _LIBRARY_PRESENT is None:
        _LIBRARY_PRESENT = any(ctypes.util.find_library(n) for n in ("GL", "EGL", "OpenGL"))
    return _LIBRARY_PRESENT


def opengl_available(*, probe: bool = True) -> tuple[bool, str]:
    """``(ok, reason)``: can this process render with the OpenGL backend? Never raises, never crashes.

    Cheap checks first (PyOpenGL, shader files, GL libraries); then, unless ``probe=False``, a context is
    created once in a child process (about 0.3-0.6 s, cached per process) so a broken driver cannot take the
    caller down. On success the reason names the renderer, e.g. ``"llvmpipe (LLVM 15.0.6, 256 bits),
    4.5 (Core Profile) Mesa 22.3.6 via egl"``; otherwise it says what is missing.
    """
    try:
        try:
            import OpenGL  # noqa: F401  (the package only; the platform is chosen later)
        except Exception as exc:
            return False, f"PyOpenGL is not importable ({exc}); pip install PyOpenGL"
        missing = [n for n in SHADER_FILES if not (SHADER_DIR / n).is_file()]
        if missing:
            return False, f"shader files missing in {SHADER_DIR}: {', '.join(missing)}"
        if not _gl_library_present():
            return False, "no OpenGL library found (install libgl1 / libegl1 and a Mesa or vendor driver)"
        if _DEFAULT.rasterizer is not None:
            return True, _DEFAULT.rasterizer.describe()
        if _DEFAULT.error is not None:
            return False, _DEFAULT.error
        if not probe:
            return True, "OpenGL libraries present (context not probed)"
        return probe_in_subprocess("auto")
    except Exception as exc:  # belt and braces: availability checks must not raise
        return False, f"OpenGL check failed: {type(exc).__name__}: {exc}"


# ----------------------------------------------------------------------------------------------------------
# Shaders


def _read_shader(name: str) -> str:
    path = SHADER_DIR / name
    try:
        return path.read_text()
    except OSError as exc:
        raise OpenGLError(f"cannot read shader {path}: {exc.strerror or exc}") from exc


def _shader_source(name: str, defines: tuple[str, ...] = (), include_common: bool = True) -> str:
    """The file's ``#version`` line, then ``#define``s, then common.glsl, then the rest of the file."""
    text = _read_shader(name)
    first, _, rest = text.partition("\n")
    if not first.startswith("#version"):
        raise OpenGLError(f"shaders/{name} must start with a #version line")
    parts = [first] + [f"#define {d}" for d in defines]
    if include_common:
        parts.append("#line 1 1\n" + _read_shader("common.glsl"))
    parts.append("#line 2 0\n" + rest)
    return "\n".join(parts)


def _compile(GL, stage: int, source: str, name: str) -> int:
    shader = GL.glCreateShader(stage)
    GL.glShaderSource(shader, source)
    GL.glCompileShader(shader)
    if not GL.glGetShaderiv(shader, GL.GL_COMPILE_STATUS):
        log = GL.glGetShaderInfoLog(shader)
        log = log.decode(errors="replace") if isinstance(log, bytes) else str(log)
        GL.glDeleteShader(shader)
        first = next((ln for ln in log.splitlines() if ln.strip()), "no log")
        raise OpenGLError(f"compiling {name} failed: {first}")
    return shader


def _link(GL, shaders: list[int], name: str) -> int:
    program = GL.glCreateProgram()
    for s in shaders:
        GL.glAttachShader(program, s)
    GL.glLinkProgram(program)
    for s in shaders:
        GL.glDetachShader(program, s)
        GL.glDeleteShader(s)
    if not GL.glGetProgramiv(program, GL.GL_LINK_STATUS):
        log = GL.glGetProgramInfoLog(program)
        log = log.decode(errors="replace") if isinstance(log, bytes) else str(log)
        GL.glDeleteProgram(program)
        first = next((ln for ln in log.splitlines() if ln.strip()), "no log")
        raise OpenGLError(f"linking {name} failed: {first}")
    return program


@dataclass
class _Program:
    handle: int
    uniforms: dict[str, int]


def _program(
    GL, stages: list[tuple[int, str, tuple[str, ...], bool]], label: str, uniforms: tuple[str, ...]
) -> _Program:
    shaders = []
    try:
        for stage, name, defines, common in stages:
            shaders.append(_compile(GL, stage, _shader_source(name, defines, common), f"shaders/{name}"))
    except OpenGLError:
        for s in shaders:
            GL.glDeleteShader(s)
        raise
    handle = _link(GL, shaders, label)
    return _Program(handle, {u: GL.glGetUniformLocation(handle, u) for u in uniforms})


# ----------------------------------------------------------------------------------------------------------
# Helpers


def _as_f32(x, shape_tail: tuple[int, ...], name: str) -> np.ndarray:
    """Host float32 C-contiguous array of a tensor or array, shape checked against ``[N, *shape_tail]``."""
    if isinstance(x, torch.Tensor):
        arr = x.detach().to("cpu", torch.float32).contiguous().numpy()
    else:
        arr = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    if arr.ndim != 1 + len(shape_tail) or tuple(arr.shape[1:]) != shape_tail:
        expected = "[N" + "".join(f", {d}" for d in shape_tail) + "]"
        raise ValueError(f"{name} has shape {tuple(arr.shape)}, expected {expected}")
    return arr


def _host_matrix(x, shape: tuple[int, ...], name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    arr = np.asarray(x, dtype=np.float64)
    if arr.size != int(np.prod(shape)):
        raise ValueError(f"{name} has shape {tuple(arr.shape)}, expected {list(shape)}")
    return arr.reshape(shape)


def _fingerprint(*tensors) -> tuple:
    """Identity of the inputs' data: same memory, layout and unchanged in place (torch bumps ``_version``,
    shared by a tensor and its views). ``g.means[0]`` makes a new view object on every call, so object
    identity would miss; the address is safe because the uploaded tensors are kept referenced (their memory
    cannot be reused by another tensor meanwhile). Reads metadata only: no device sync, no copy.

    Never matches (always re-uploaded): numpy arrays, which cannot report in-place edits, and inference
    tensors (made under ``torch.inference_mode()``), which have no version counter (``_version`` raises).
    """
    out = []
    for t in tensors:
        if not isinstance(t, torch.Tensor) or t.is_inference():
            return (object(),)
        out.append((t.data_ptr(), tuple(t.shape), t.stride(), t.dtype, str(t.device), t._version))
    return tuple(out)


def _rows(x, name: str) -> int:
    """Leading dimension of a tensor or array, without copying it anywhere."""
    shape = x.shape if isinstance(x, (torch.Tensor, np.ndarray)) else np.shape(x)
    if len(shape) < 1:
        raise ValueError(f"{name} has shape {tuple(shape)}, expected at least one dimension")
    return int(shape[0])


def _next_pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def cpu_depth_order(means: np.ndarray, viewmat: np.ndarray) -> np.ndarray:
    """Indices sorting Gaussians by camera-space depth, ascending, ties by index (= a stable argsort).

    One ``np.sort`` of ``uint64(sortable_key(depth)) << 32 | index``: numpy's SIMD sort of 64-bit integers
    (8 ms for 235k here) beats ``argsort`` (14 ms quicksort, 35 ms stable) and is stable by construction.
    The key mapping is the one ``sort.comp`` uses, so both sorts agree on identical depths.
    """
    row = viewmat[2].astype(np.float32)
    depth = means @ row[:3] + row[3]  # [N] float32
    bits = depth.view(np.uint32)
    key = np.where(bits & np.uint32(0x80000000), ~bits, bits | np.uint32(0x80000000)).astype(np.uint64)
    combined = (key << np.uint64(32)) | np.arange(len(depth), dtype=np.uint64)
    combined.sort()
    return (combined & np.uint64(0xFFFFFFFF)).astype(np.uint32)


@dataclass
class _Targets:
    width: int = 0
    height: int = 0
    fbo: int = 0
    tex_color: int = 0  # RGBA32F: rgb = premultiplied colour over background, a = 1 - T (alpha)
    tex_aux: int = 0  # R32F: sum w_i z_i (drawn only when depth is asked for)


@dataclass
class _Scene:
    count: int = 0
    capacity: int = 0  # Gaussians the per-Gaussian buffers can hold
    sort_capacity: int = 0  # padded length of the sort buffers
    geom_key: tuple = ()
    color_key: tuple = ()
    geom_refs: tuple = ()  # the uploaded tensors, kept alive so their ids cannot be reused
    color_refs: tuple = ()
    means: np.ndarray | None = None  # [N, 3] host copy for the CPU sort


@dataclass(frozen=True)
class OpenGLInfo:
    """What the OpenGL backend renders with: a GPU check asserts ``"NVIDIA" in renderer`` (Mesa's llvmpipe
    also passes every test, on the CPU)."""

    renderer: str  # GL_RENDERER, e.g. "NVIDIA H200/PCIe/SSE2" or "llvmpipe (LLVM 15.0.6, 256 bits)"
    version: str  # GL_VERSION
    platform: str  # how the context was made: "egl device 0 (CUDA 0)", "egl surfaceless", "glfw (glx)", ...
    is_software: bool
    sort_mode: str


@dataclass(frozen=True)
class FrameStats:
    """What the last frame drew (from project.comp). The counts are zeros when the statistics were not read
    back: on the GL 3.3 path, and on hardware GL unless points are forced (quads need no decision)."""

    visible: int = 0
    max_point_size: float = 0.0
    quad_pixels: float = 0.0  # estimated fragments with quads
    point_pixels: float = 0.0  # estimated fragments with point sprites
    primitive: str = "quads"  # the one drawn, or "mixed" when chunks differ (see chunk_primitives)
    chunk_primitives: tuple[str, ...] = ()  # per draw chunk, in drawing order

    @staticmethod
    def combine(chunks: list[FrameStats], primitives: list[str]) -> FrameStats:
        """The frame's totals from per-chunk statistics (an empty list: nothing was read back)."""
        kinds = set(primitives)
        return FrameStats(
            visible=sum(c.visible for c in chunks),
            max_point_size=max((c.max_point_size for c in chunks), default=0.0),
            quad_pixels=sum(c.quad_pixels for c in chunks),
            point_pixels=sum(c.point_pixels for c in chunks),
            primitive=kinds.pop() if len(kinds) == 1 else ("mixed" if kinds else "quads"),
            chunk_primitives=tuple(primitives),
        )

    @property
    def triangle_pixels(self) -> float:
        """Estimated fragments with one triangle per Gaussian (same frame as the quad, 1.3x its area)."""
        return _TRIANGLE_AREA_RATIO * self.quad_pixels


class OpenGLRasterizer:
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

        camera_u = ("u_viewmat", "u_intrinsics", "u_clamp", "u_near", "u_eps2d")
        # One program per (primitive, depth output): without the depth sums the fragment stage writes one
        # attachment instead of two (rgb and alpha modes need no depth; on llvmpipe each float attachment
        # is a read-modify-write per fragment).
        self._raster: dict[tuple[str, bool], _Program] = {}
        for with_depth in (False, True):
            frag = (GL.GL_FRAGMENT_SHADER, "splat.frag", ("WITH_DEPTH",) if with_depth else (), False)
            if self.projected:
                for prim in ("quads", "points", "triangles"):
                    defines = {"points": ("PROJECTED", "POINTS"), "triangles": ("PROJECTED", "TRIANGLES")}.get(
                        prim, ("PROJECTED",))
                    self._raster[prim, with_depth] = self._keep(_program(
                        GL, [(GL.GL_VERTEX_SHADER, "splat.vert", defines, True), frag],
                        f"the splat program ({prim})", ("u_pixel_to_ndc",)))
            else:
                self._raster["quads", with_depth] = self._keep(_program(
                    GL, [(GL.GL_VERTEX_SHADER, "splat.vert", (), True), frag], "the splat program",
                    ("u_order", "u_count", "u_pixel_to_ndc", "u_geom", "u_color") + camera_u))
        if self.projected:
            self._project = self._keep(_program(
                GL, [(GL.GL_COMPUTE_SHADER, "project.comp", (), True)], "the projection program",
                ("u_geom", "u_color", "u_count", "u_chunk", "u_stats") + camera_u))
            self._sort = self._keep(_program(
                GL, [(GL.GL_COMPUTE_SHADER, "sort.comp", (), False)], "the sort program",
                ("u_geom", "u_stage", "u_count", "u_k", "u_j", "u_depth_row")))

        bufs = [int(b) for b in np.atleast_1d(GL.glGenBuffers(6))]
        self._geom_buf, self._color_buf, self._keys_buf, self._order_buf, self._splat_buf, self._stats_buf = bufs
        self._owned["buffers"].extend(bufs)
        texs = [int(t) for t in np.atleast_1d(GL.glGenTextures(3))]
        self._geom_tex, self._color_tex, self._order_tex = texs
        self._owned["textures"].extend(texs)
        # One VAO per primitive: the projected splats are 4 vec4 attributes per Gaussian (64 B stride),
        # per vertex for points and per instance for quads. The GL 3.3 path uses no attributes at all.
        # The raw entry point: PyOpenGL's wrapper records the pointer in per-context data keyed by the
        # *platform's* current context, which is NULL for an EGL context under the GLX platform.
        from OpenGL.raw.GL.VERSION.GL_2_0 import glVertexAttribPointer as raw_vertex_attrib_pointer

        self._vaos = {}
        for prim in ("quads", "points", "triangles"):
            vao = int(GL.glGenVertexArrays(1))
            self._owned["vaos"].append(vao)
            self._vaos[prim] = vao
            if self.projected:
                GL.glBindVertexArray(vao)
                GL.glBindBuffer(GL.GL_ARRAY_BUFFER, self._splat_buf)
                for loc in range(4):
                    GL.glEnableVertexAttribArray(loc)
                    raw_vertex_attrib_pointer(loc, 4, GL.GL_FLOAT, GL.GL_FALSE, 64, ctypes.c_void_p(16 * loc))
                    GL.glVertexAttribDivisor(loc, 0 if prim == "points" else 1)
                GL.glBindVertexArray(0)
                GL.glBindBuffer(GL.GL_ARRAY_BUFFER, 0)
        self._stats_chunks = 0  # chunks the statistics buffer holds (16 B each), grown in _project_pass
        self._scene = _Scene()
        self._targets = _Targets()
        from OpenGL.raw.GL.VERSION.GL_1_0 import glReadPixels as raw_read_pixels
        from OpenGL.raw.GL.VERSION.GL_1_5 import glBufferSubData as raw_buffer_sub_data
        from OpenGL.raw.GL.VERSION.GL_1_5 import glGetBufferSubData as raw_get_buffer_sub_data

        self._raw_read_pixels = raw_read_pixels
        if self.projected:
            # The core 4.2/4.3 entry points: OpenGL.GL exposes the ARB-extension variants of these two, whose
            # availability check fails for an EGL context under PyOpenGL's GLX platform.
            from OpenGL.raw.GL.VERSION.GL_4_2 import glDrawArraysInstancedBaseInstance, glMemoryBarrier
            from OpenGL.raw.GL.VERSION.GL_4_3 import glDispatchCompute

            self._dispatch, self._barrier = glDispatchCompute, glMemoryBarrier
            self._draw_instanced_base = glDrawArraysInstancedBaseInstance
        self._raw_buffer_sub_data = raw_buffer_sub_data
        self._raw_get_buffer_sub_data = raw_get_buffer_sub_data

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

    # -- resources -----------------------------------------------------------------------------------------

    def _ensure_targets(self, GL, width: int, height: int) -> _Targets:
        t = self._targets
        if (t.width, t.height) == (width, height) and t.fbo:
            return t
        max_size = int(GL.glGetIntegerv(GL.GL_MAX_RENDERBUFFER_SIZE))
        if width > max_size or height > max_size:
            raise OpenGLError(f"{width}x{height} exceeds this GL's maximum render size {max_size}")
        if not t.fbo:
            t.fbo = int(GL.glGenFramebuffers(1))
            self._owned["fbos"].append(t.fbo)
            t.tex_color, t.tex_aux = (int(x) for x in np.atleast_1d(GL.glGenTextures(2)))
            self._owned["textures"].extend([t.tex_color, t.tex_aux])
        for tex, internal, fmt in ((t.tex_color, GL.GL_RGBA32F, GL.GL_RGBA), (t.tex_aux, GL.GL_R32F, GL.GL_RED)):
            GL.glBindTexture(GL.GL_TEXTURE_2D, tex)
            GL.glTexImage2D(GL.GL_TEXTURE_2D, 0, internal, width, height, 0, fmt, GL.GL_FLOAT, None)
            GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_MIN_FILTER, GL.GL_NEAREST)
            GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_MAG_FILTER, GL.GL_NEAREST)
        GL.glBindTexture(GL.GL_TEXTURE_2D, 0)
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, t.fbo)
        GL.glFramebufferTexture2D(GL.GL_FRAMEBUFFER, GL.GL_COLOR_ATTACHMENT0, GL.GL_TEXTURE_2D, t.tex_color, 0)
        GL.glFramebufferTexture2D(GL.GL_FRAMEBUFFER, GL.GL_COLOR_ATTACHMENT1, GL.GL_TEXTURE_2D, t.tex_aux, 0)
        status = GL.glCheckFramebufferStatus(GL.GL_FRAMEBUFFER)
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, 0)
        if status != GL.GL_FRAMEBUFFER_COMPLETE:
            raise OpenGLError(f"the float render target {width}x{height} is incomplete (status 0x{int(status):x})")
        t.width, t.height = width, height
        return t

    def _alloc_texture_buffer(self, GL, buf: int, tex: int, nbytes: int, fmt: int, usage: int) -> None:
        GL.glBindBuffer(GL.GL_TEXTURE_BUFFER, buf)
        GL.glBufferData(GL.GL_TEXTURE_BUFFER, nbytes, None, usage)
        GL.glBindBuffer(GL.GL_TEXTURE_BUFFER, 0)
        GL.glBindTexture(GL.GL_TEXTURE_BUFFER, tex)
        GL.glTexBuffer(GL.GL_TEXTURE_BUFFER, fmt, buf)
        GL.glBindTexture(GL.GL_TEXTURE_BUFFER, 0)

    def _ensure_capacity(self, GL, n: int) -> None:
        s = self._scene
        if 4 * n > self._max_texture_buffer:
            raise OpenGLError(
                f"{n} Gaussians exceed this GL's buffer texture limit ({self._max_texture_buffer} texels)")
        if n > s.capacity:
            capacity = max(1024, n)
            for buf, tex, nbytes in ((self._geom_buf, self._geom_tex, 48), (self._color_buf, self._color_tex, 16)):
                self._alloc_texture_buffer(GL, buf, tex, capacity * nbytes, GL.GL_RGBA32F, GL.GL_STATIC_DRAW)
            if self.projected:
                GL.glBindBuffer(GL.GL_ARRAY_BUFFER, self._splat_buf)
                GL.glBufferData(GL.GL_ARRAY_BUFFER, capacity * 64, None, GL.GL_DYNAMIC_COPY)
                GL.glBindBuffer(GL.GL_ARRAY_BUFFER, 0)
            s.capacity = capacity
            s.geom_key = s.color_key = ()
        padded = max(_SORT_BLOCK, _next_pow2(n))
        if padded > s.sort_capacity:
            GL.glBindBuffer(GL.GL_ARRAY_BUFFER, self._keys_buf)
            GL.glBufferData(GL.GL_ARRAY_BUFFER, padded * 4, None, GL.GL_DYNAMIC_COPY)
            GL.glBindBuffer(GL.GL_ARRAY_BUFFER, 0)
            self._alloc_texture_buffer(GL, self._order_buf, self._order_tex, padded * 4, GL.GL_R32UI,
                                       GL.GL_DYNAMIC_DRAW)
            s.sort_capacity = padded

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

    def _buffer_write(self, GL, buf: int, data: np.ndarray) -> None:
        GL.glBindBuffer(GL.GL_COPY_WRITE_BUFFER, buf)
        self._raw_buffer_sub_data(GL.GL_COPY_WRITE_BUFFER, 0, data.nbytes, data.ctypes.data_as(ctypes.c_void_p))
        GL.glBindBuffer(GL.GL_COPY_WRITE_BUFFER, 0)

    def _buffer_read(self, GL, buf: int, out: np.ndarray) -> np.ndarray:
        GL.glBindBuffer(GL.GL_COPY_READ_BUFFER, buf)
        self._raw_get_buffer_sub_data(GL.GL_COPY_READ_BUFFER, 0, out.nbytes, out.ctypes.data_as(ctypes.c_void_p))
        GL.glBindBuffer(GL.GL_COPY_READ_BUFFER, 0)
        return out

    # -- per-frame passes ----------------------------------------------------------------------------------

    @staticmethod
    def _fov_clamp(K: np.ndarray, width: int, height: int) -> tuple[float, float, float, float]:
        """x/z and y/z limits of the EWA Jacobian: 1.3 tan(fov/2) for a centred principal point (3DGS);
        gsplat's ``(W - cx) / fx + 0.3 tan`` form for an off-centre one, as the torch reference does."""
        fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
        extra = FOV_CLAMP - 1.0
        tan_x, tan_y = 0.5 * width / fx, 0.5 * height / fy
        return (-(cx / fx + extra * tan_x), (width - cx) / fx + extra * tan_x,
                -(cy / fy + extra * tan_y), (height - cy) / fy + extra * tan_y)

    def _set_camera_uniforms(
        self, GL, u: dict[str, int], viewmat: np.ndarray, K: np.ndarray, width: int, height: int
    ) -> None:
        GL.glUniformMatrix4fv(u["u_viewmat"], 1, GL.GL_TRUE, np.ascontiguousarray(viewmat, np.float32))
        GL.glUniform4f(u["u_intrinsics"], float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]))
        GL.glUniform4f(u["u_clamp"], *(float(v) for v in self._fov_clamp(K, width, height)))
        GL.glUniform1f(u["u_near"], NEAR_CULL)
        GL.glUniform1f(u["u_eps2d"], LOW_PASS)

    def _draw_chunk(self) -> int:
        """Gaussians per draw call: chunks on software GL (see _draw), everything at once on hardware."""
        return max(1, int(_SOFTWARE_DRAW_CHUNK)) if (self.is_software and self.projected) else max(1, self._scene.count)

    def _project_pass(self, GL, viewmat: np.ndarray, K: np.ndarray, width: int, height: int) -> None:
        """project.comp: the splats of this view in drawing order, plus footprint statistics per draw chunk."""
        s = self._scene
        p = self._project
        chunks = -(-s.count // self._draw_chunk())
        if chunks > self._stats_chunks:
            GL.glBindBuffer(GL.GL_ARRAY_BUFFER, self._stats_buf)
            GL.glBufferData(GL.GL_ARRAY_BUFFER, 16 * chunks, None, GL.GL_DYNAMIC_READ)
            GL.glBindBuffer(GL.GL_ARRAY_BUFFER, 0)
            self._stats_chunks = chunks
        if self._needs_stats:
            self._buffer_write(GL, self._stats_buf, np.zeros(4 * chunks, np.uint32))
        GL.glUseProgram(p.handle)
        for unit, (tex, name) in enumerate(((self._geom_tex, "u_geom"), (self._color_tex, "u_color"))):
            GL.glActiveTexture(GL.GL_TEXTURE0 + unit)
            GL.glBindTexture(GL.GL_TEXTURE_BUFFER, tex)
            GL.glUniform1i(p.uniforms[name], unit)
        GL.glUniform1ui(p.uniforms["u_count"], s.count)
        GL.glUniform1ui(p.uniforms["u_chunk"], self._draw_chunk())
        GL.glUniform1i(p.uniforms["u_stats"], int(self._needs_stats))
        self._set_camera_uniforms(GL, p.uniforms, viewmat, K, width, height)
        for binding, buf in ((1, self._order_buf), (2, self._splat_buf), (3, self._stats_buf)):
            GL.glBindBufferBase(GL.GL_SHADER_STORAGE_BUFFER, binding, buf)
        self._dispatch((s.count + _PROJECT_LOCAL_SIZE - 1) // _PROJECT_LOCAL_SIZE, 1, 1)
        self._barrier(GL.GL_VERTEX_ATTRIB_ARRAY_BARRIER_BIT | GL.GL_BUFFER_UPDATE_BARRIER_BIT)
        for binding in (1, 2, 3):
            GL.glBindBufferBase(GL.GL_SHADER_STORAGE_BUFFER, binding, 0)
        for unit in (1, 0):
            GL.glActiveTexture(GL.GL_TEXTURE0 + unit)
            GL.glBindTexture(GL.GL_TEXTURE_BUFFER, 0)
        GL.glUseProgram(0)

    def _sort_gpu(self, GL, viewmat: np.ndarray, keys_out: np.ndarray | None = None) -> None:
        """sort.comp: depth keys, then a bitonic sort of (key, index) pairs; leaves the order in _order_buf.
        ``keys_out`` (tests): receives the unsorted per-Gaussian keys, read back between the two steps."""
        count = self._scene.count
        padded = max(_SORT_BLOCK, _next_pow2(count))
        p = self._sort
        GL.glUseProgram(p.handle)
        GL.glActiveTexture(GL.GL_TEXTURE0)
        GL.glBindTexture(GL.GL_TEXTURE_BUFFER, self._geom_tex)
        GL.glUniform1i(p.uniforms["u_geom"], 0)
        GL.glUniform1ui(p.uniforms["u_count"], count)
        GL.glUniform4f(p.uniforms["u_depth_row"], *(float(np.float32(v)) for v in viewmat[2, :4]))
        GL.glBindBufferBase(GL.GL_SHADER_STORAGE_BUFFER, 0, self._keys_buf)
        GL.glBindBufferBase(GL.GL_SHADER_STORAGE_BUFFER, 1, self._order_buf)
        barrier = GL.GL_SHADER_STORAGE_BARRIER_BIT
        GL.glUniform1i(p.uniforms["u_stage"], 0)
        self._dispatch(padded // _SORT_LOCAL_SIZE, 1, 1)
        self._barrier(barrier)
        if keys_out is not None:
            self._barrier(GL.GL_BUFFER_UPDATE_BARRIER_BIT)
            self._buffer_read(GL, self._keys_buf, keys_out)
        GL.glUniform1i(p.uniforms["u_stage"], 1)
        self._dispatch(padded // _SORT_BLOCK, 1, 1)
        self._barrier(barrier)
        k = 2 * _SORT_BLOCK
        while k <= padded:
            GL.glUniform1ui(p.uniforms["u_k"], k)
            GL.glUniform1i(p.uniforms["u_stage"], 2)
            j = k // 2
            while j >= _SORT_BLOCK:
                GL.glUniform1ui(p.uniforms["u_j"], j)
                self._dispatch(padded // (2 * _SORT_LOCAL_SIZE), 1, 1)
                self._barrier(barrier)
                j //= 2
            GL.glUniform1i(p.uniforms["u_stage"], 3)
            self._dispatch(padded // _SORT_BLOCK, 1, 1)
            self._barrier(barrier)
            k *= 2
        self._barrier(GL.GL_TEXTURE_FETCH_BARRIER_BIT | GL.GL_BUFFER_UPDATE_BARRIER_BIT | barrier)
        GL.glBindBufferBase(GL.GL_SHADER_STORAGE_BUFFER, 0, 0)
        GL.glBindBufferBase(GL.GL_SHADER_STORAGE_BUFFER, 1, 0)
        GL.glBindTexture(GL.GL_TEXTURE_BUFFER, 0)
        GL.glUseProgram(0)

    def _sort_cpu(self, GL, viewmat: np.ndarray) -> None:
        if self._scene.means is None:
            raise OpenGLError("no Gaussians have been uploaded yet (call set_gaussians or rasterize first)")
        order = cpu_depth_order(self._scene.means, viewmat)
        self._buffer_write(GL, self._order_buf, order)

    def _read_stats(self, GL) -> list[FrameStats]:
        """Footprint statistics of the projection pass per draw chunk (waits for it). Pixel counts are
        extrapolated from the 1-in-8 sample; the sprite size is exact above 32 px, reported as 32 below."""
        chunks = -(-self._scene.count // self._draw_chunk())
        raw = self._buffer_read(GL, self._stats_buf, np.empty((chunks, 4), np.uint32))
        return [FrameStats(visible=8 * int(c[3]), max_point_size=float(max(c[0], 32)),
                           quad_pixels=128.0 * float(c[1]), point_pixels=128.0 * float(c[2])) for c in raw]

    def _choose_primitives(self, chunks: list[FrameStats]) -> list[str]:
        """One primitive per draw chunk: the requested one, or for ``"auto"`` on software GL the cheapest for
        that chunk by the measured cost model (within one head, round splats and long ones come in different
        depth ranges: the demo head at 512 px mixes sprites and triangles, 8 % less modelled CPU than either
        alone). Hardware GPUs: quads, the fewest fragments. Sprites only where the largest one fits."""
        request = self._primitive_request
        if request == "points":
            largest = max((c.max_point_size for c in chunks), default=0.0)
            if largest > self._max_point_size:
                raise OpenGLError(f"primitive='points': a sprite of {largest:.0f} px exceeds this GL's "
                                  f"point size limit {self._max_point_size:.0f}")
            return ["points"] * len(chunks)
        if request in ("quads", "triangles"):
            return [request] * len(chunks)
        if not self.is_software:
            return ["quads"] * len(chunks)
        chosen = []
        for c in chunks:
            pixels = {"points": c.point_pixels, "triangles": c.triangle_pixels, "quads": c.quad_pixels}
            costs = {prim: per_gaussian * c.visible + per_fragment * pixels[prim]
                     for prim, (per_gaussian, per_fragment) in _PRIMITIVE_COST_NS.items()
                     if prim != "points" or c.max_point_size <= self._max_point_size}
            chosen.append(min(costs, key=costs.__getitem__))
        return chosen

    def _draw(self, GL, t: _Targets, primitives: list[str], viewmat: np.ndarray, K: np.ndarray, bg: np.ndarray,
              with_depth: bool) -> None:
        """Clear, then draw the splats back to front, one draw call per chunk of ``_draw_chunk()`` splats
        with ``primitives[c]`` for chunk ``c``.

        On software GL each chunk is followed by a ``glFlush``: llvmpipe bins a whole scene on this thread
        before its raster threads start, so chunks let binning overlap rasterizing, and the smaller scenes
        stay in cache (demo head at 512 px: 12-15 % less CPU time with 8-16 chunks than with one draw).
        Order is kept: scenes are rasterized in submission order.
        """
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, t.fbo)
        if with_depth:
            GL.glDrawBuffers(2, [GL.GL_COLOR_ATTACHMENT0, GL.GL_COLOR_ATTACHMENT1])
        else:
            GL.glDrawBuffers(1, [GL.GL_COLOR_ATTACHMENT0])
        for cap in (GL.GL_DEPTH_TEST, GL.GL_CULL_FACE, GL.GL_SCISSOR_TEST, GL.GL_STENCIL_TEST,
                    GL.GL_FRAMEBUFFER_SRGB, GL.GL_MULTISAMPLE):
            GL.glDisable(cap)
        GL.glColorMask(True, True, True, True)
        GL.glClearBufferfv(GL.GL_COLOR, 0, (ctypes.c_float * 4)(float(bg[0]), float(bg[1]), float(bg[2]), 0.0))
        if with_depth:
            GL.glClearBufferfv(GL.GL_COLOR, 1, (ctypes.c_float * 4)(0.0, 0.0, 0.0, 0.0))
        n = self._scene.count
        if n == 0:
            GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, 0)
            return
        GL.glEnable(GL.GL_BLEND)
        GL.glBlendEquation(GL.GL_FUNC_ADD)
        GL.glBlendFunc(GL.GL_ONE, GL.GL_ONE_MINUS_SRC_ALPHA)
        # Points are dropped when their centre leaves the clip volume, so they get a guard band: the viewport
        # extends past the framebuffer by half the largest sprite (fragments outside it are never written).
        point_guard = int(np.ceil(self._max_point_size / 2.0)) + 1
        point_guard = max(0, min(point_guard, (min(self._max_viewport) - max(t.width, t.height)) // 2))
        textures: tuple = ()
        if not self.projected:
            textures = ((self._geom_tex, "u_geom"), (self._color_tex, "u_color"), (self._order_tex, "u_order"))
        for primitive in dict.fromkeys(primitives):  # uniforms of every program this frame uses, once
            prog = self._raster[primitive, with_depth]
            u = prog.uniforms
            guard = point_guard if primitive == "points" else 0
            vw, vh = t.width + 2 * guard, t.height + 2 * guard
            GL.glUseProgram(prog.handle)
            if not self.projected:
                self._set_camera_uniforms(GL, u, viewmat, K, t.width, t.height)
                GL.glUniform1i(u["u_count"], n)
            for unit, (_tex, name) in enumerate(textures):
                GL.glUniform1i(u[name], unit)
            GL.glUniform4f(u["u_pixel_to_ndc"], 2.0 / vw, 2.0 / vh, 2.0 * guard / vw - 1.0, 2.0 * guard / vh - 1.0)
        for unit, (tex, _name) in enumerate(textures):
            GL.glActiveTexture(GL.GL_TEXTURE0 + unit)
            GL.glBindTexture(GL.GL_TEXTURE_BUFFER, tex)
        chunk = self._draw_chunk()
        current = None
        for c, first in enumerate(range(0, n, chunk)):
            count = min(chunk, n - first)
            primitive = primitives[c]
            if primitive != current:
                if current == "points":
                    self._points_mode(GL, False)
                guard = point_guard if primitive == "points" else 0
                GL.glViewport(-guard, -guard, t.width + 2 * guard, t.height + 2 * guard)
                GL.glUseProgram(self._raster[primitive, with_depth].handle)
                GL.glBindVertexArray(self._vaos[primitive])
                if primitive == "points":
                    self._points_mode(GL, True)
                current = primitive
            if primitive == "points":
                GL.glDrawArrays(GL.GL_POINTS, first, count)
            elif not self.projected:
                GL.glDrawArraysInstanced(GL.GL_TRIANGLE_STRIP, 0, 4, count)  # a single chunk on this path
            else:
                vertices = 3 if primitive == "triangles" else 4
                mode = GL.GL_TRIANGLES if primitive == "triangles" else GL.GL_TRIANGLE_STRIP
                self._draw_instanced_base(mode, 0, vertices, count, first)
            if first + count < n:
                GL.glFlush()
        if current == "points":
            self._points_mode(GL, False)
        GL.glBindVertexArray(0)
        GL.glUseProgram(0)
        for unit in reversed(range(len(textures))):
            GL.glActiveTexture(GL.GL_TEXTURE0 + unit)
            GL.glBindTexture(GL.GL_TEXTURE_BUFFER, 0)
        GL.glActiveTexture(GL.GL_TEXTURE0)
        GL.glDisable(GL.GL_BLEND)
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, 0)

    def _points_mode(self, GL, on: bool) -> None:
        (GL.glEnable if on else GL.glDisable)(GL.GL_PROGRAM_POINT_SIZE)
        if self.compat_profile:
            (GL.glEnable if on else GL.glDisable)(_GL_POINT_SPRITE)
            if on:
                GL.glDisable(_GL_POINT_SMOOTH)

    def _readback(self, GL, t: _Targets, with_depth: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """One ``glReadPixels(GL_RGBA, GL_FLOAT)`` of attachment 0 into a fresh ``[H, W, 4]`` array (rgb and
        alpha are views of it: a straight copy of the float target, no format conversion), plus one
        ``GL_RED`` read of the depth sums when they were drawn."""
        rgba = np.empty((t.height, t.width, 4), np.float32)
        GL.glBindFramebuffer(GL.GL_READ_FRAMEBUFFER, t.fbo)
        GL.glBindBuffer(GL.GL_PIXEL_PACK_BUFFER, 0)
        GL.glPixelStorei(GL.GL_PACK_ALIGNMENT, 4)
        GL.glReadBuffer(GL.GL_COLOR_ATTACHMENT0)
        self._raw_read_pixels(0, 0, t.width, t.height, GL.GL_RGBA, GL.GL_FLOAT, rgba.ctypes.data_as(ctypes.c_void_p))
        depth = None
        if with_depth:
            depth = np.empty((t.height, t.width), np.float32)
            GL.glReadBuffer(GL.GL_COLOR_ATTACHMENT1)
            self._raw_read_pixels(0, 0, t.width, t.height, GL.GL_RED, GL.GL_FLOAT,
                                  depth.ctypes.data_as(ctypes.c_void_p))
        GL.glBindFramebuffer(GL.GL_READ_FRAMEBUFFER, 0)
        out = torch.from_numpy(rgba)
        return out[..., :3], out[..., 3], (torch.from_numpy(depth) if depth is not None else None)

    # -- public API ----------------------------------------------------------------------------------------

    def set_gaussians(self, means, quats, scales, opacities, colors) -> None:
        """Upload a head now (``rasterize`` also does this itself whenever its inputs changed)."""
        GL = _gl()
        with self._lock, self._activated():
            self._upload(GL, means, quats, scales, opacities, colors)

    def sorted_order(self, viewmat, mode: Literal["gpu", "cpu"] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Depth order of the uploaded head for ``viewmat``, read back (for tests and debugging).

        Returns ``(order [N] uint32, keys [N] uint32 or None)``; the GPU path also returns the keys it
        sorted, so a CPU sort of exactly those keys can be compared with the GPU order.
        """
        mode = mode or self.sort_mode
        viewmat = _host_matrix(viewmat, (4, 4), "viewmat")
        GL = _gl()
        with self._lock, self._activated():
            n = self._scene.count
            keys = None
            if mode == "gpu":
                if not self.projected:
                    raise OpenGLError("the GPU sort needs OpenGL 4.3")
                keys = np.empty(n, np.uint32)
                self._sort_gpu(GL, viewmat, keys_out=keys)
            else:
                self._sort_cpu(GL, viewmat)
            return self._buffer_read(GL, self._order_buf, np.empty(n, np.uint32)), keys

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

    # -- state save/restore for context="current" ----------------------------------------------------------

    def _save_state(self, GL) -> dict:
        get = GL.glGetIntegerv
        caps: tuple[int, ...] = (GL.GL_DEPTH_TEST, GL.GL_CULL_FACE, GL.GL_SCISSOR_TEST, GL.GL_STENCIL_TEST, GL.GL_FRAMEBUFFER_SRGB,
                GL.GL_MULTISAMPLE, GL.GL_BLEND, GL.GL_PROGRAM_POINT_SIZE)
        if getattr(self, "compat_profile", False):
            caps += (_GL_POINT_SPRITE, _GL_POINT_SMOOTH)
        state = {
            "draw_fbo": int(get(GL.GL_DRAW_FRAMEBUFFER_BINDING)),
            "read_fbo": int(get(GL.GL_READ_FRAMEBUFFER_BINDING)),
            "viewport": [int(x) for x in np.atleast_1d(get(GL.GL_VIEWPORT))],
            "program": int(get(GL.GL_CURRENT_PROGRAM)),
            "vao": int(get(GL.GL_VERTEX_ARRAY_BINDING)),
            "active_texture": int(get(GL.GL_ACTIVE_TEXTURE)),
            "blend_func": [int(get(e)) for e in (GL.GL_BLEND_SRC_RGB, GL.GL_BLEND_DST_RGB, GL.GL_BLEND_SRC_ALPHA,
                                                 GL.GL_BLEND_DST_ALPHA)],
            "blend_eq": [int(get(GL.GL_BLEND_EQUATION_RGB)), int(get(GL.GL_BLEND_EQUATION_ALPHA))],
            "caps": {cap: bool(GL.glIsEnabled(cap)) for cap in caps},
            "pack_alignment": int(get(GL.GL_PACK_ALIGNMENT)),
            "pack_buffer": int(get(GL.GL_PIXEL_PACK_BUFFER_BINDING)),
            "texture_buffer": int(get(GL.GL_TEXTURE_BUFFER_BINDING)),
            "array_buffer": int(get(GL.GL_ARRAY_BUFFER_BINDING)),
            "copy_read": int(get(GL.GL_COPY_READ_BUFFER_BINDING)),
            "copy_write": int(get(GL.GL_COPY_WRITE_BUFFER_BINDING)),
            "color_mask": [bool(x) for x in np.atleast_1d(GL.glGetBooleanv(GL.GL_COLOR_WRITEMASK))],
            "read_buffer": int(get(GL.GL_READ_BUFFER)),
        }
        units = {}
        for unit in range(3):
            GL.glActiveTexture(GL.GL_TEXTURE0 + unit)
            units[unit] = int(get(GL.GL_TEXTURE_BINDING_BUFFER))
        GL.glActiveTexture(state["active_texture"])
        state["texture_units"] = units
        version = (int(get(GL.GL_MAJOR_VERSION)), int(get(GL.GL_MINOR_VERSION)))
        if version >= (4, 3):
            state["ssbo"] = [int(np.atleast_1d(GL.glGetIntegeri_v(GL.GL_SHADER_STORAGE_BUFFER_BINDING, i))[0])
                             for i in range(4)]
        return state

    def _restore_state(self, GL, state: dict) -> None:
        GL.glBindFramebuffer(GL.GL_DRAW_FRAMEBUFFER, state["draw_fbo"])
        GL.glBindFramebuffer(GL.GL_READ_FRAMEBUFFER, state["read_fbo"])
        GL.glReadBuffer(state["read_buffer"])
        GL.glViewport(*state["viewport"])
        GL.glUseProgram(state["program"])
        GL.glBindVertexArray(state["vao"])
        for unit, tex in state["texture_units"].items():
            GL.glActiveTexture(GL.GL_TEXTURE0 + unit)
            GL.glBindTexture(GL.GL_TEXTURE_BUFFER, tex)
        GL.glActiveTexture(state["active_texture"])
        GL.glBlendFuncSeparate(*state["blend_func"])
        GL.glBlendEquationSeparate(*state["blend_eq"])
        for cap, on in state["caps"].items():
            (GL.glEnable if on else GL.glDisable)(cap)
        GL.glPixelStorei(GL.GL_PACK_ALIGNMENT, state["pack_alignment"])
        GL.glBindBuffer(GL.GL_PIXEL_PACK_BUFFER, state["pack_buffer"])
        GL.glBindBuffer(GL.GL_TEXTURE_BUFFER, state["texture_buffer"])
        GL.glBindBuffer(GL.GL_ARRAY_BUFFER, state["array_buffer"])
        GL.glBindBuffer(GL.GL_COPY_READ_BUFFER, state["copy_read"])
        GL.glBindBuffer(GL.GL_COPY_WRITE_BUFFER, state["copy_write"])
        GL.glColorMask(*state["color_mask"])
        for i, buf in enumerate(state.get("ssbo", [])):
            GL.glBindBufferBase(GL.GL_SHADER_STORAGE_BUFFER, i, buf)

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
                o = self._owned
                if o["fbos"]:
                    GL.glDeleteFramebuffers(len(o["fbos"]), o["fbos"])
                if o["textures"]:
                    GL.glDeleteTextures(len(o["textures"]), o["textures"])
                if o["buffers"]:
                    GL.glDeleteBuffers(len(o["buffers"]), o["buffers"])
                if o["vaos"]:
                    GL.glDeleteVertexArrays(len(o["vaos"]), o["vaos"])
                for p in o["programs"]:
                    GL.glDeleteProgram(p)
                self._owned = {k: [] for k in o}
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
# Module-level default rasterizer (the low-level backend contract)


@dataclass
class _DefaultHolder:
    rasterizer: OpenGLRasterizer | None = None
    error: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


_DEFAULT = _DefaultHolder()


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
