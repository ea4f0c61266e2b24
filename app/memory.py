"""Keeping the viewer's memory flat over hours: glibc malloc settings and returning freed memory when idle.

What grows (issue 12: 474 -> 930 MB in 17 minutes): not a Python leak (DearPyGui drops its references to
replaced and deleted raw textures, the display buffers are pooled, the Gaussians cache is bounded), but glibc's
heap. Every frame allocates and frees tens of megabytes of tensors on the worker thread (the render's
image/alpha/depth planes, the generator's activations) while the UI thread and the GL driver's threads
allocate too. glibc then (a) raises its mmap threshold after the first large free, so later large tensors
come from the heap instead of fresh mappings, and (b) gives each thread its own arena; freed heap memory is
fragmented across arenas and rarely returned to the system. RSS creeps up with every pattern of sizes the
viewer has seen (previews of several sizes, resolution changes, captures, model switches).

The cure is glibc's own knobs: a fixed mmap threshold (large blocks are mapped and unmapped, so freeing them
returns the memory at once), two arenas, and ``malloc_trim(0)`` when the viewer goes idle. All are no-ops on
other C libraries and platforms. ``GGHEAD_MALLOC_TUNING=0`` turns them off (for comparisons).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
MMAP_THRESHOLD_BYTES = 1 << 20  # blocks of 1 MiB and more (image planes, activations) are mapped directly
TRIM_THRESHOLD_BYTES = 8 << 20

_libc = None


def _glibc():
    global _libc
    if _libc is None:
        _libc = False
        if sys.platform.startswith("linux") and os.environ.get("GGHEAD_MALLOC_TUNING", "1") != "0":
            try:
                lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                lib.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
                lib.malloc_trim.argtypes = [ctypes.c_size_t]
                _libc = lib
            except (OSError, AttributeError):  # not glibc (musl has no mallopt/malloc_trim)
                _libc = False
    return _libc or None


def tune_malloc() -> bool:
    """Apply the settings above (call early, before the worker threads start); True when glibc took them."""
    lib = _glibc()
    if lib is None:
        return False
    ok = bool(lib.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    ok &= bool(lib.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
    ok &= bool(lib.mallopt(M_ARENA_MAX, 2))
    return ok


def release_free_memory() -> None:
    """Give freed heap memory back to the system (``malloc_trim``; a few ms; call when nothing runs)."""
    lib = _glibc()
    if lib is not None:
        lib.malloc_trim(0)
