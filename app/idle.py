"""Knowing when the viewer may sleep: pending window-system input, and the idle rates of the frame loop.

Every DearPyGui frame costs real CPU even when nothing changes (measured under Xvfb with llvmpipe, 1400x900
window with the side panel: 14 ms of CPU per frame, 27 ms with a 1024x1024 raw texture, whose pixels DearPyGui
uploads again every frame), and vsync is ignored on a virtual display, so a loop that draws whenever it can
burns a core doing nothing. The viewer therefore draws only while something may change (input, a frame
arriving, an animation, a capture) and otherwise sleeps in short naps, checking whether the window system has
input waiting for us.

On X11 that check is exact and cheap: GLFW (inside DearPyGui) reads its events from the X connection of the GL
context that is current on the UI thread; ``XEventsQueued(display, QueuedAfterFlush)`` counts the events
waiting there without taking them, so the next ``render_dearpygui_frame`` still delivers them (mouse motion
over the window, wheel, keys, expose, resize, focus). Elsewhere (no libX11, another window system) the probe
answers None and the loop falls back to a modest idle frame rate.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

IDLE_NAP_S = 1.0 / 30.0  # how often an idle loop checks for input (cheap: one X round trip at most)
ACTIVE_TAIL_S = 0.5  # keep drawing this long after the last activity (hover effects, ImGui's settling frames)
SAFETY_REFRESH_S = 5.0  # draw at least this often even when idle (a missed event never sticks for long)
FALLBACK_IDLE_FPS = 10.0  # idle frame rate where pending input cannot be probed
_QUEUED_AFTER_FLUSH = 2


class InputProbe:
    """``pending()``: True/False whether window-system input waits for the UI thread; None when unknown."""

    def __init__(self) -> None:
        self._x11 = None
        self._gl = None
        if not sys.platform.startswith(("linux", "freebsd")):
            return
        try:
            x11 = ctypes.CDLL(ctypes.util.find_library("X11") or "libX11.so.6")
            gl = ctypes.CDLL("libGL.so.1")
        except OSError:
            return
        x11.XEventsQueued.argtypes = [ctypes.c_void_p, ctypes.c_int]
        x11.XEventsQueued.restype = ctypes.c_int
        gl.glXGetCurrentDisplay.restype = ctypes.c_void_p
        gl.glXGetCurrentDisplay.argtypes = []
        self._x11, self._gl = x11, gl

    def pending(self) -> bool | None:
        """Must be called on the UI thread (the one DearPyGui draws on), after the viewport was shown."""
        if self._x11 is None:
            return None
        display = self._gl.glXGetCurrentDisplay()
        if not display:
            return None
        return self._x11.XEventsQueued(display, _QUEUED_AFTER_FLUSH) > 0

    @property
    def available(self) -> bool:
        return self.pending() is not None
