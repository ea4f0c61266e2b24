"""Saving and restoring the GL state the rasterizer touches, for ``context="current"``.

Why a module of its own: when the rasterizer borrows the caller's context (DearPyGui's, in its render loop)
every binding, capability and pixel-store setting it changes must be put back exactly, or the caller's next
frame draws with our state. What is saved must cover what the passes change, so the list is kept in one
place. With a context of our own nothing is saved (nobody else uses it).
:class:`_GLStateMixin` is a base class of :class:`~._opengl.OpenGLRasterizer`.
"""

from __future__ import annotations

import numpy as np

_GL_POINT_SPRITE = 0x8861  # compatibility profile only
_GL_POINT_SMOOTH = 0x0B10  # compatibility profile only


class _GLStateMixin:
    """``_save_state`` / ``_restore_state``. Also called before ``_init_gl`` has run (the constructor saves
    the caller's state first), hence ``getattr(self, "compat_profile", False)``."""

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
