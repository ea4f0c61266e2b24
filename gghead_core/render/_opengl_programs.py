"""GLSL programs of the OpenGL rasterizer: reading ``shaders/``, assembling sources, compiling, linking.

Why a module of its own: this is the only part of the backend that knows how a shader file becomes a GL
program (``#version`` line, then ``#define``s, then ``common.glsl``, with ``#line`` directives so compiler
messages point into the right file) and which programs the rasterizer needs with which uniforms. It has no
per-frame state; :class:`~._opengl.OpenGLRasterizer` builds its programs here once, in ``_init_gl``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gghead_core._resources import resource_dir

from ._opengl_context import OpenGLError

SHADER_DIR = resource_dir("shaders")
SHADER_FILES = ("common.glsl", "splat.vert", "splat.frag", "project.comp", "sort.comp")

_CAMERA_UNIFORMS = ("u_viewmat", "u_intrinsics", "u_clamp", "u_near", "u_eps2d")


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


def _first_log_line(log: bytes | str) -> str:
    """The first non-empty line of a GL info log (drivers return bytes or str)."""
    text = log.decode(errors="replace") if isinstance(log, bytes) else str(log)
    return next((ln for ln in text.splitlines() if ln.strip()), "no log")


def _compile(GL, stage: int, source: str, name: str) -> int:
    shader = GL.glCreateShader(stage)
    GL.glShaderSource(shader, source)
    GL.glCompileShader(shader)
    if not GL.glGetShaderiv(shader, GL.GL_COMPILE_STATUS):
        first = _first_log_line(GL.glGetShaderInfoLog(shader))
        GL.glDeleteShader(shader)
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
        first = _first_log_line(GL.glGetProgramInfoLog(program))
        GL.glDeleteProgram(program)
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


def raster_programs(GL, projected: bool, keep: Callable[[_Program], _Program]) -> dict[tuple[str, bool], _Program]:
    """The splat programs by ``(primitive, with_depth)``: quads, points and triangles on GL >= 4.3
    (``projected``, reading the projection pass's splat buffer), quads only on the GL 3.3 path (projecting in
    the vertex shader). ``keep`` registers each program with its owner as soon as it is linked, so a later
    compile failure still deletes the earlier ones."""
    camera_u = _CAMERA_UNIFORMS
    # One program per (primitive, depth output): without the depth sums the fragment stage writes one
    # attachment instead of two (rgb and alpha modes need no depth; on llvmpipe each float attachment
    # is a read-modify-write per fragment).
    raster: dict[tuple[str, bool], _Program] = {}
    for with_depth in (False, True):
        frag = (GL.GL_FRAGMENT_SHADER, "splat.frag", ("WITH_DEPTH",) if with_depth else (), False)
        if projected:
            for prim in ("quads", "points", "triangles"):
                defines = {"points": ("PROJECTED", "POINTS"), "triangles": ("PROJECTED", "TRIANGLES")}.get(
                    prim, ("PROJECTED",))
                raster[prim, with_depth] = keep(_program(
                    GL, [(GL.GL_VERTEX_SHADER, "splat.vert", defines, True), frag],
                    f"the splat program ({prim})", ("u_pixel_to_ndc",)))
        else:
            raster["quads", with_depth] = keep(_program(
                GL, [(GL.GL_VERTEX_SHADER, "splat.vert", (), True), frag], "the splat program",
                ("u_order", "u_count", "u_pixel_to_ndc", "u_geom", "u_color") + camera_u))
    return raster


def compute_programs(GL, keep: Callable[[_Program], _Program]) -> tuple[_Program, _Program]:
    """``(projection, sort)``: the two compute programs of GL >= 4.3 (``project.comp``, ``sort.comp``)."""
    camera_u = _CAMERA_UNIFORMS
    project = keep(_program(
        GL, [(GL.GL_COMPUTE_SHADER, "project.comp", (), True)], "the projection program",
        ("u_geom", "u_color", "u_count", "u_chunk", "u_stats") + camera_u))
    sort = keep(_program(
        GL, [(GL.GL_COMPUTE_SHADER, "sort.comp", (), False)], "the sort program",
        ("u_geom", "u_stage", "u_count", "u_k", "u_j", "u_depth_row")))
    return project, sort
