"""Display buffers: C-contiguous float32 RGBA frames recycled between the worker and the UI thread.

DearPyGui re-uploads a raw texture from the numpy array it was given every frame, and ``set_value`` on a raw
texture only swaps that pointer (measured: 0.04 ms, notes §3). So the cheapest honest path to show a new
1024x1024 frame is: the worker writes the render into a spare buffer (off the UI thread), the UI thread swaps
the texture's pointer to it. Three buffers per resolution cover "shown", "waiting to be shown" and "being
written"; new buffers are allocated only when the resolution changes. :func:`release_gl_context` lets go of
DearPyGui's GL context when the window closes.
"""

from __future__ import annotations

import sys
import threading

import numpy as np


def new_rgba_buffer(resolution: int) -> np.ndarray:
    """``[R, R, 4]`` float32, C-contiguous, opaque white (alpha stays 1: the display never shows transparency)."""
    return np.ones((resolution, resolution, 4), dtype=np.float32)


class BufferPool:
    """Thread-safe free list of display buffers, keyed by resolution."""

    def __init__(self, per_resolution: int = 3) -> None:
        self._free: dict[int, list[np.ndarray]] = {}
        self._per_resolution = per_resolution
        self._lock = threading.Lock()
        self._current = -1
        self.allocations = 0  # counted so tests/benchmarks can check there is no per-frame allocation

    def acquire(self, resolution: int) -> np.ndarray:
        with self._lock:
            if resolution != self._current:
                # The resolution changed: forget buffers of the old size (their owners drop them on release).
                self._free = {}
                self._current = resolution
            free = self._free.get(resolution)
            if free:
                return free.pop()
            self.allocations += 1
        return new_rgba_buffer(resolution)

    def release(self, buffer: np.ndarray | None) -> None:
        if buffer is None:
            return
        res = buffer.shape[0]
        with self._lock:
            if res != self._current or buffer.shape != (res, res, 4):
                return
            free = self._free.setdefault(res, [])
            if len(free) < self._per_resolution and not any(b is buffer for b in free):
                free.append(buffer)


def write_rgb(buffer: np.ndarray, rgb: np.ndarray) -> None:
    """Copy ``rgb [R, R, 3]`` float32 into the colour channels of ``buffer [R, R, 4]`` without allocating."""
    np.copyto(buffer[:, :, :3], rgb, casting="same_kind")


def release_gl_context() -> None:
    """Release DearPyGui's GLX context before destroying it (notes §4: avoids BadAccess when another GL
    context, e.g. EGL, is used later in the same process)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        lib = ctypes.CDLL("libGL.so.1")
        lib.glXGetCurrentDisplay.restype = ctypes.c_void_p
        dpy = lib.glXGetCurrentDisplay()
        if dpy:
            lib.glXMakeCurrent.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_void_p]
            lib.glXMakeCurrent(dpy, 0, None)
    except OSError:
        pass
