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
:func:`limit_torch_threads` is the same kind of process-wide tuning, for the CPU instead of the heap.
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


def limit_torch_threads(wanted: int | None, device: str) -> int | None:
    """On the CPU, leave half the cores to the UI thread and the GL driver; returns the previous thread count
    to restore later, or None when nothing was changed.

    torch's OpenMP pool busy-waits at every parallel region; when it has as many threads as there are
    cores, each region stalls behind the UI thread and llvmpipe (measured on 2 cores under Xvfb, fixture
    head at 512: synthesis 1626 -> 86 ms and raster 240 -> 89 ms with 1 instead of 2 threads). Skipped
    when the user chose (``wanted`` or ``OMP_NUM_THREADS``) or generation runs on a GPU.
    """
    import torch

    if wanted is None:
        if os.environ.get("OMP_NUM_THREADS") or device != "cpu":
            return None
        wanted = max(1, (os.cpu_count() or 2) // 2)
    saved = torch.get_num_threads()
    torch.set_num_threads(max(1, int(wanted)))
    return saved
