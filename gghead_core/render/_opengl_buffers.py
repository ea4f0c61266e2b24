"""GPU buffers and render targets of the OpenGL rasterizer, and the byte transfers between them and the host.

Why a module of its own: everything that decides *how big* the per-head buffers and the float render
targets are and *how bytes move* between host and GL (``glBufferSubData`` / ``glGetBufferSubData`` through
PyOpenGL's raw entry points, which work for an EGL context under PyOpenGL's GLX platform) lives here, apart
from the per-frame passes that use them.

:class:`_BuffersMixin` is a base class of :class:`~._opengl.OpenGLRasterizer` (its methods need the
rasterizer's GL objects and limits, declared on the class below); it has no state of its own.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._opengl_context import OpenGLError
from ._opengl_sort import _SORT_BLOCK, _next_pow2
from ._opengl_upload import _Scene


@dataclass
class _Targets:
    width: int = 0
    height: int = 0
    fbo: int = 0
    tex_color: int = 0  # RGBA32F: rgb = premultiplied colour over background, a = 1 - T (alpha)
    tex_aux: int = 0  # R32F: sum w_i z_i (drawn only when depth is asked for)


class _BuffersMixin:
    """Creation, sizing and host transfers of the rasterizer's buffers and render targets."""

    # Set by OpenGLRasterizer._init_gl before _create_objects runs.
    _owned: dict[str, list[int]]
    projected: bool
    _max_texture_buffer: int
    _raw_buffer_sub_data: Any
    _raw_get_buffer_sub_data: Any

    def _create_objects(self, GL) -> None:
        """Buffers, buffer textures, one VAO per primitive and the raw entry points, once per rasterizer
        (their sizes are set later, by _ensure_capacity and _ensure_targets)."""
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

    def _buffer_write(self, GL, buf: int, data: np.ndarray) -> None:
        GL.glBindBuffer(GL.GL_COPY_WRITE_BUFFER, buf)
        self._raw_buffer_sub_data(GL.GL_COPY_WRITE_BUFFER, 0, data.nbytes, data.ctypes.data_as(ctypes.c_void_p))
        GL.glBindBuffer(GL.GL_COPY_WRITE_BUFFER, 0)

    def _buffer_read(self, GL, buf: int, out: np.ndarray) -> np.ndarray:
        GL.glBindBuffer(GL.GL_COPY_READ_BUFFER, buf)
        self._raw_get_buffer_sub_data(GL.GL_COPY_READ_BUFFER, 0, out.nbytes, out.ctypes.data_as(ctypes.c_void_p))
        GL.glBindBuffer(GL.GL_COPY_READ_BUFFER, 0)
        return out

    def _delete_objects(self, GL) -> None:
        """Delete every GL object the rasterizer made (programs included), in the current context."""
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
