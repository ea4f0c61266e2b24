"""Can this process render with the OpenGL backend? Answered without creating anything in this process.

Why a module of its own: availability is asked by ``render.backend_status()`` and the GUI long before (and
often instead of) rendering, must never raise or crash, and answers from cheap checks, from the process-wide
rasterizer's slot when that exists (its renderer, or its remembered creation failure), or else from a
context made in a child process (``_opengl_context.probe_in_subprocess``). The slot (:data:`_DEFAULT`) lives
here because both this check and ``_opengl.default_rasterizer`` (which fills it) need it, and this module
must not import the rasterizer class at run time.
"""

from __future__ import annotations

import ctypes.util
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ._opengl_context import probe_in_subprocess
from ._opengl_programs import SHADER_DIR, SHADER_FILES

if TYPE_CHECKING:
    from ._opengl import OpenGLRasterizer


@dataclass
class _DefaultHolder:
    """The process-wide rasterizer, or why it could not be made (remembered so it is not retried)."""

    rasterizer: OpenGLRasterizer | None = None
    error: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


_DEFAULT = _DefaultHolder()

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
