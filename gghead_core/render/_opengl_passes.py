"""The per-frame GPU passes of the OpenGL rasterizer after the sort: projection, raster, readback.

Why a module of its own: these are the passes that turn the uploaded, sorted head into pixels for one
camera (``project.comp`` into the splat buffer, the chunked draw with blending into the float targets, one
``glReadPixels`` back), with the camera uniforms they share and the GL state they set and reset. The order
in which they run, the timings and the caller's state live in ``OpenGLRasterizer.rasterize``.
:class:`_PassesMixin` is a base class of :class:`~._opengl.OpenGLRasterizer`.
"""

from __future__ import annotations

import ctypes
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ._opengl_buffers import _Targets
from ._opengl_programs import _Program
from ._opengl_state import _GL_POINT_SMOOTH, _GL_POINT_SPRITE
from ._opengl_upload import _Scene

NEAR_CULL = 0.2
LOW_PASS = 0.3
FOV_CLAMP = 1.3
_PROJECT_LOCAL_SIZE = 256  # must match project.comp


class _PassesMixin:
    """Projection, draw and readback passes (their GL objects are made in _init_gl / _create_objects)."""

    _scene: _Scene
    projected: bool
    compat_profile: bool
    _needs_stats: bool
    _stats_chunks: int
    _max_point_size: float
    _max_viewport: list[int]
    _project: _Program  # GL >= 4.3 only
    _raster: dict[tuple[str, bool], _Program]
    _vaos: dict[str, int]
    _geom_tex: int
    _color_tex: int
    _order_tex: int
    _order_buf: int
    _splat_buf: int
    _stats_buf: int
    _dispatch: Any
    _barrier: Any
    _draw_instanced_base: Any
    _raw_read_pixels: Any

    if TYPE_CHECKING:  # defined by OpenGLRasterizer and _BuffersMixin, sibling base classes

        def _draw_chunk(self) -> int: ...

        def _buffer_write(self, GL, buf: int, data: np.ndarray) -> None: ...

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
