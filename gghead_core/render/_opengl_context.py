"""Offscreen OpenGL contexts for the OpenGL rasterizer, and saving/restoring the caller's current context.

Why this module is careful:

* **PyOpenGL's platform is process-wide** and is fixed when ``OpenGL.platform`` is first imported (env
  ``PYOPENGL_PLATFORM``). :func:`prepare_pyopengl` is called before this package imports ``OpenGL``: when
  nothing has imported it yet, no platform is set and there is no X/Wayland display, it sets
  ``PYOPENGL_PLATFORM=egl`` (the headless case); otherwise it leaves the choice alone. Either way the EGL
  context below is created through ``libEGL`` with ctypes, not through PyOpenGL's EGL wrappers, so it also
  works when PyOpenGL was already imported with the GLX platform (measured here: with glvnd, GL calls
  through ``libGL`` dispatch to whichever context is current, GLX or EGL).
* **Another library's context may be current** (DearPyGui's GLX context in the GUI; DPG never re-binds it,
  so leaving ours current makes the next DPG frame segfault). :class:`CurrentContextSnapshot` records the
  thread's current GLX and EGL contexts and :func:`activated` restores them exactly after our work. GLX and
  EGL contexts cannot both be current in one thread (``EGL_BAD_ACCESS``, or an X ``BadAccess`` that kills
  the process), so switching between APIs releases the other one first.
* **Availability must never crash the caller**: :func:`probe_in_subprocess` creates a context in a child
  process (a broken driver can abort or segfault) and caches the verdict.

This module imports only the standard library at import time (plus ``glfw``/``OpenGL`` lazily), so the probe
can run it as a standalone script without importing torch.

Contexts offered (``create_context(kind)``):

* ``"glfw"``: a hidden 16x16 glfw window with a 4.3 core context (3.3 core when 4.3 is refused). Needs an
  X11 (or Wayland) display. This is the production path beside DearPyGui.
* ``"egl"``: EGL without any window system: a hardware EGL device first (``EGL_EXT_platform_device``,
  skipping Mesa's software device), else Mesa's surfaceless platform (llvmpipe on CPU machines).
* ``"current"``: no context of our own; wraps the context that is current when the rasterizer is created
  (e.g. inside DearPyGui's render loop) and checks on every use that it is still the current one.
* ``"auto"``: on the main thread, ``glfw`` when a display exists and glfw works, else ``egl``; on other
  threads ``egl`` first (glfw may only create windows on the main thread), then ``glfw``. When torch has
  CUDA (checked only if torch is already imported), a *hardware* EGL device comes first, the one matching
  torch's current CUDA device when the driver says (``EGL_NV_device_cuda``): under ``xvfb-run`` glfw would
  otherwise pick Mesa's GLX on the CPU. Every context logs (logger ``gghead_core.render.opengl``) and
  records in ``platform`` how it was made.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import logging
import os
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeGuard, get_args

if TYPE_CHECKING:
    from typing import TypeAlias

    from glfw import _GLFWwindow

    GlfwWindow: TypeAlias = ctypes._Pointer[_GLFWwindow]  # python-glfw's window handle

ContextKind = Literal["auto", "glfw", "egl", "current"]


def _is_context_kind(text: str) -> TypeGuard[ContextKind]:
    return text in get_args(ContextKind)


log = logging.getLogger("gghead_core.render.opengl")

_EGL_OPENGL_API = 0x30A2
_EGL_DRAW = 0x3059
_EGL_READ = 0x305A
_EGL_NONE = 0x3038
_EGL_SURFACE_TYPE = 0x3033
_EGL_PBUFFER_BIT = 0x0001
_EGL_RENDERABLE_TYPE = 0x3040
_EGL_OPENGL_BIT = 0x0008
_EGL_CONTEXT_MAJOR_VERSION = 0x3098
_EGL_CONTEXT_MINOR_VERSION = 0x30FB
_EGL_CONTEXT_OPENGL_PROFILE_MASK = 0x30FD
_EGL_CONTEXT_OPENGL_CORE_PROFILE_BIT = 0x0001
_EGL_PLATFORM_DEVICE_EXT = 0x313F
_EGL_PLATFORM_SURFACELESS_MESA = 0x31DD
_EGL_EXTENSIONS = 0x3055
_EGL_CUDA_DEVICE_NV = 0x323A  # EGL_NV_device_cuda: the CUDA device ordinal of an EGL device

# (major, minor) tried in order: 4.3 gives compute shaders (GPU sort); 3.3 still renders with a CPU sort.
_GL_VERSIONS = ((4, 3), (3, 3))


class OpenGLError(RuntimeError):
    """OpenGL backend failure with a one-line, user-facing message."""


def has_display() -> bool:
    """True when an X11 or Wayland display is advertised in the environment."""
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def prepare_pyopengl() -> str:
    """Choose PyOpenGL's platform before the first ``import OpenGL.GL``; returns the platform in effect.

    Only acts when PyOpenGL's platform is still undecided and ``PYOPENGL_PLATFORM`` is unset: without a
    display it selects ``egl`` (the GLX platform would otherwise be picked and cannot load EGL extension
    entry points). It never overrides an explicit choice and cannot change one already made.
    """
    if "OpenGL.platform" in sys.modules:
        platform = sys.modules["OpenGL.platform"].PLATFORM
        return type(platform).__name__.replace("Platform", "").lower() or "unknown"
    if not os.environ.get("PYOPENGL_PLATFORM") and not has_display() and sys.platform.startswith("linux"):
        os.environ["PYOPENGL_PLATFORM"] = "egl"
    return os.environ.get("PYOPENGL_PLATFORM", "default")


_GL: Any = None  # the OpenGL.GL module, imported after prepare_pyopengl()


def _gl():
    """``OpenGL.GL``, imported on first use and only after :func:`prepare_pyopengl` (the rasterizer's modules
    all get it here, so none can import it before the platform is chosen)."""
    global _GL
    if _GL is None:
        prepare_pyopengl()
        from OpenGL import GL

        _GL = GL
    return _GL


# ----------------------------------------------------------------------------------------------------------
# Thin ctypes bindings (GLX and EGL), loaded once. Only the handful of calls we need.


class _Libs:
    _lock = threading.Lock()
    _loaded = False
    glx: ctypes.CDLL | None = None
    egl: ctypes.CDLL | None = None

    @classmethod
    def load(cls) -> type[_Libs]:
        with cls._lock:
            if cls._loaded:
                return cls
            cls._loaded = True
            vp = ctypes.c_void_p
            for name in ("libGL.so.1", ctypes.util.find_library("GL")):
                if not name:
                    continue
                try:
                    lib = ctypes.CDLL(name)
                    lib.glXGetCurrentContext.restype = vp
                    lib.glXGetCurrentContext.argtypes = []
                    lib.glXGetCurrentDisplay.restype = vp
                    lib.glXGetCurrentDisplay.argtypes = []
                    lib.glXGetCurrentDrawable.restype = ctypes.c_ulong
                    lib.glXGetCurrentDrawable.argtypes = []
                    lib.glXGetCurrentReadDrawable.restype = ctypes.c_ulong
                    lib.glXGetCurrentReadDrawable.argtypes = []
                    lib.glXMakeContextCurrent.restype = ctypes.c_int
                    lib.glXMakeContextCurrent.argtypes = [vp, ctypes.c_ulong, ctypes.c_ulong, vp]
                    cls.glx = lib
                    break
                except (OSError, AttributeError):
                    continue
            for name in ("libEGL.so.1", ctypes.util.find_library("EGL")):
                if not name:
                    continue
                try:
                    lib = ctypes.CDLL(name)
                    lib.eglGetProcAddress.restype = vp
                    lib.eglGetProcAddress.argtypes = [ctypes.c_char_p]
                    lib.eglGetCurrentContext.restype = vp
                    lib.eglGetCurrentContext.argtypes = []
                    lib.eglGetCurrentDisplay.restype = vp
                    lib.eglGetCurrentDisplay.argtypes = []
                    lib.eglGetCurrentSurface.restype = vp
                    lib.eglGetCurrentSurface.argtypes = [ctypes.c_int]
                    lib.eglQueryAPI.restype = ctypes.c_uint
                    lib.eglQueryAPI.argtypes = []
                    lib.eglBindAPI.restype = ctypes.c_uint
                    lib.eglBindAPI.argtypes = [ctypes.c_uint]
                    lib.eglMakeCurrent.restype = ctypes.c_uint
                    lib.eglMakeCurrent.argtypes = [vp, vp, vp, vp]
                    lib.eglGetError.restype = ctypes.c_int
                    lib.eglGetError.argtypes = []
                    lib.eglInitialize.restype = ctypes.c_uint
                    lib.eglInitialize.argtypes = [vp, ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int)]
                    lib.eglTerminate.restype = ctypes.c_uint
                    lib.eglTerminate.argtypes = [vp]
                    lib.eglChooseConfig.restype = ctypes.c_uint
                    lib.eglChooseConfig.argtypes = [vp, ctypes.POINTER(ctypes.c_int), ctypes.POINTER(vp), ctypes.c_int,
                                                    ctypes.POINTER(ctypes.c_int)]
                    lib.eglCreateContext.restype = vp
                    lib.eglCreateContext.argtypes = [vp, vp, vp, ctypes.POINTER(ctypes.c_int)]
                    lib.eglDestroyContext.restype = ctypes.c_uint
                    lib.eglDestroyContext.argtypes = [vp, vp]
                    lib.eglQueryString.restype = ctypes.c_char_p
                    lib.eglQueryString.argtypes = [vp, ctypes.c_int]
                    cls.egl = lib
                    break
                except (OSError, AttributeError):
                    continue
            return cls


_GLFW_USED = False  # set once we have initialised python-glfw ourselves


def _glfw_current_window(handle: int | None) -> GlfwWindow | None:
    """python-glfw's current window, if we share that library with the caller and it owns ``handle``.

    If the caller also uses python-glfw, restoring its context through glfw (not raw GLX) keeps glfw's
    thread-local in step; otherwise a later ``glfw.destroy_window`` of *our* window would make glfw release
    the caller's context. glfw's thread-local can be stale (another library, e.g. DearPyGui's embedded
    GLFW, may have bound its context since), so the window is only used when its native context is
    ``handle``, the one actually current.
    """
    if not _GLFW_USED or not handle:
        return None
    try:
        import glfw

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            window = glfw.get_current_context()
            if not window:
                return None
            for getter in ("get_glx_context", "get_egl_context"):
                fn = getattr(glfw, getter, None)
                native = fn(window) if fn is not None else None
                if native is not None and not isinstance(native, int):
                    native = ctypes.cast(native, ctypes.c_void_p).value
                if native == handle:
                    return window
    except Exception:
        return None
    return None


@dataclass(frozen=True)
class CurrentContextSnapshot:
    """The GL context current in this thread (GLX or EGL, or none), captured so it can be restored exactly."""

    glx_display: int | None = None
    glx_draw: int = 0
    glx_read: int = 0
    glx_context: int | None = None
    egl_display: int | None = None
    egl_draw: int | None = None
    egl_read: int | None = None
    egl_context: int | None = None
    egl_api: int = _EGL_OPENGL_API
    glfw_window: GlfwWindow | None = field(default=None, compare=False)  # python-glfw window owning the context

    @staticmethod
    def capture() -> CurrentContextSnapshot:
        libs = _Libs.load()
        kw: dict = {}
        if libs.glx is not None:
            ctx = libs.glx.glXGetCurrentContext()
            if ctx:
                kw.update(
                    glx_context=ctx,
                    glx_display=libs.glx.glXGetCurrentDisplay(),
                    glx_draw=libs.glx.glXGetCurrentDrawable(),
                    glx_read=libs.glx.glXGetCurrentReadDrawable(),
                )
        if libs.egl is not None:
            ctx = libs.egl.eglGetCurrentContext()
            if ctx:
                kw.update(
                    egl_context=ctx,
                    egl_display=libs.egl.eglGetCurrentDisplay(),
                    egl_draw=libs.egl.eglGetCurrentSurface(_EGL_DRAW),
                    egl_read=libs.egl.eglGetCurrentSurface(_EGL_READ),
                    egl_api=libs.egl.eglQueryAPI(),
                )
        kw["glfw_window"] = _glfw_current_window(kw.get("glx_context") or kw.get("egl_context"))
        return CurrentContextSnapshot(**kw)

    @property
    def api(self) -> Literal["glx", "egl", "none"]:
        if self.glx_context:
            return "glx"
        if self.egl_context:
            return "egl"
        return "none"

    @property
    def context_handle(self) -> int | None:
        return self.glx_context or self.egl_context or None

    def release(self) -> None:
        """Make no context current for this snapshot's API (needed before binding a context of the other API)."""
        libs = _Libs.load()
        if self.api == "glx":
            assert libs.glx is not None  # a GLX context was captured, so libGL is loaded
            libs.glx.glXMakeContextCurrent(self.glx_display, 0, 0, None)
        elif self.api == "egl":
            assert libs.egl is not None  # an EGL context was captured, so libEGL is loaded
            libs.egl.eglMakeCurrent(self.egl_display, None, None, None)

    def restore(self) -> None:
        """Make the captured context current again (no-op when nothing was current)."""
        libs = _Libs.load()
        if self.glfw_window is not None and self.api != "none":
            import glfw

            glfw.make_context_current(self.glfw_window)
            if CurrentContextSnapshot.capture().context_handle == self.context_handle:
                return
        if self.api == "glx":
            assert libs.glx is not None  # a GLX context was captured, so libGL is loaded
            if not libs.glx.glXMakeContextCurrent(self.glx_display, self.glx_draw, self.glx_read, self.glx_context):
                raise OpenGLError("could not restore the previously current GLX context")
        elif self.api == "egl":
            assert libs.egl is not None  # an EGL context was captured, so libEGL is loaded
            libs.egl.eglBindAPI(self.egl_api)
            if not libs.egl.eglMakeCurrent(self.egl_display, self.egl_draw, self.egl_read, self.egl_context):
                raise OpenGLError(
                    f"could not restore the previously current EGL context (0x{libs.egl.eglGetError():x})")


# ----------------------------------------------------------------------------------------------------------
# Contexts


class GLContext:
    """An OpenGL context the rasterizer can make current, release and destroy."""

    api: Literal["glx", "egl"] = "glx"
    kind: str = "?"
    gl_version: tuple[int, int] = (0, 0)  # the version requested at creation

    def make_current(self) -> None:
        raise NotImplementedError

    def release(self) -> None:
        """Leave no context current in this thread (for this context's API)."""
        raise NotImplementedError

    def handle(self) -> int | None:
        """Native context handle (GLXContext / EGLContext pointer), for 'is it current?' checks."""
        raise NotImplementedError

    def destroy(self) -> None:
        raise NotImplementedError

    def describe(self) -> str:
        """How the context was made, e.g. ``"egl device 0 (CUDA 0)"``, ``"egl surfaceless"``, ``"glfw (glx)"``."""
        return f"{self.kind} ({self.api})"

    @property
    def owns_context(self) -> bool:
        return True


class GlfwHiddenContext(GLContext):
    """A hidden 16x16 glfw window: rendering goes to our own FBO, the window only carries the context.

    glfw window hints are process-global state of the python-glfw library; they are reset to defaults after
    creation so a caller that also uses python-glfw is not affected. ``glfw.terminate()`` is never called
    here (it would destroy other users' windows of the same library instance).
    """

    kind = "glfw"

    def __init__(self) -> None:
        try:
            import glfw
        except Exception as exc:  # pragma: no cover - glfw is a requirement
            raise OpenGLError(f"glfw is not importable: {exc}") from exc
        self._glfw = glfw
        if not has_display():
            raise OpenGLError("no DISPLAY/WAYLAND_DISPLAY for a glfw window")
        errors: list[str] = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ok = glfw.init()
            except Exception as exc:  # python-glfw may raise instead of returning False
                ok, errors = False, [str(exc)]
            if not ok:
                raise OpenGLError(f"glfw.init() failed{': ' + errors[0] if errors else ''}")
            global _GLFW_USED
            _GLFW_USED = True
            self._api = glfw.get_platform() if hasattr(glfw, "get_platform") else None
            self.window: GlfwWindow | None = None
            snapshot = CurrentContextSnapshot.capture()  # glfw leaves its new context current; put things back
            try:
                for major, minor in _GL_VERSIONS:
                    glfw.default_window_hints()
                    glfw.window_hint(glfw.VISIBLE, glfw.FALSE)
                    glfw.window_hint(glfw.FOCUSED, glfw.FALSE)
                    glfw.window_hint(glfw.CONTEXT_VERSION_MAJOR, major)
                    glfw.window_hint(glfw.CONTEXT_VERSION_MINOR, minor)
                    glfw.window_hint(glfw.OPENGL_PROFILE, glfw.OPENGL_CORE_PROFILE)
                    glfw.window_hint(glfw.OPENGL_FORWARD_COMPAT, glfw.TRUE)
                    try:
                        window = glfw.create_window(16, 16, "gghead offscreen", None, None)
                    except Exception as exc:
                        window, errors = None, errors + [str(exc)]
                    if window:
                        self.window = window
                        self.gl_version = (major, minor)
                        break
                    errors.append(f"no {major}.{minor} core context")
            finally:
                glfw.default_window_hints()
                if snapshot.api != "none":
                    snapshot.restore()
                elif self.window is not None:
                    # glfw's stub omits None; glfwMakeContextCurrent(NULL) is documented to detach the context
                    glfw.make_context_current(None)  # type: ignore[arg-type]
        if self.window is None:
            raise OpenGLError("glfw could not create a hidden OpenGL window (" + "; ".join(errors[-2:]) + ")")
        # The platform API of the context glfw created (GLX on X11, EGL on Wayland).
        wayland = self._api is not None and self._api == getattr(glfw, "PLATFORM_WAYLAND", -1)
        self.api = "egl" if wayland else "glx"

    def make_current(self) -> None:
        if self.window is None:
            raise OpenGLError("the glfw context was destroyed")
        self._glfw.make_context_current(self.window)

    def release(self) -> None:
        # glfw's stub omits None; glfwMakeContextCurrent(NULL) is documented to detach the context
        self._glfw.make_context_current(None)  # type: ignore[arg-type]

    def handle(self) -> int | None:
        getter = getattr(self._glfw, "get_glx_context" if self.api == "glx" else "get_egl_context", None)
        if getter is None or self.window is None:
            return None
        value = getter(self.window)
        if value is None or isinstance(value, int):
            return value or None
        return ctypes.cast(value, ctypes.c_void_p).value

    def destroy(self) -> None:
        if self.window is not None:
            self._glfw.destroy_window(self.window)
            self.window = None


class EglSurfacelessContext(GLContext):
    """A window-system-free EGL context (no surface; rendering goes to our FBO).

    Tries hardware EGL devices first (``EGL_EXT_platform_device``; that is how NVIDIA drivers run headless),
    skipping Mesa's software device, then Mesa's surfaceless platform (llvmpipe on CPU-only machines).
    """

    kind = "egl"
    api = "egl"

    def __init__(self, *, hardware_only: bool = False, cuda_device: int | None = None) -> None:
        """``hardware_only``: skip Mesa's surfaceless (software) platform. ``cuda_device``: try the EGL device
        whose ``EGL_CUDA_DEVICE_NV`` equals this CUDA ordinal first (multi-GPU hosts: GL and CUDA on one
        GPU)."""
        self._hardware_only = hardware_only
        self._cuda_device = cuda_device
        libs = _Libs.load()
        if libs.egl is None:
            raise OpenGLError("libEGL.so.1 not found (install libegl1 + a Mesa or vendor EGL driver)")
        self._egl = libs.egl
        self.display = None
        self.context = None
        self.platform = ""
        errors: list[str] = []
        for platform, display in self._candidate_displays(errors):
            ctx = self._try_context(display, errors)
            if ctx:
                self.display, self.context, self.platform = display, ctx, platform
                break
            self._egl.eglTerminate(display)
        if self.context is None:
            what = "no hardware EGL device" if hardware_only else "no usable OpenGL context"
            raise OpenGLError(f"EGL: {what} (" + "; ".join(errors[-3:] or ["no display"]) + ")")

    def _proc(self, name: str, restype, *argtypes):
        address = self._egl.eglGetProcAddress(name.encode())
        if not address:
            return None
        return ctypes.CFUNCTYPE(restype, *argtypes)(address)

    def _candidate_displays(self, errors: list[str]) -> Iterator[tuple[str, int]]:
        vp = ctypes.c_void_p
        get_platform_display = self._proc("eglGetPlatformDisplayEXT", vp, ctypes.c_uint, vp,
                                          ctypes.POINTER(ctypes.c_int))
        if get_platform_display is None:
            errors.append("eglGetPlatformDisplayEXT unavailable")
            return
        query_devices = self._proc("eglQueryDevicesEXT", ctypes.c_uint, ctypes.c_int, ctypes.POINTER(vp),
                                   ctypes.POINTER(ctypes.c_int))
        query_device_string = self._proc("eglQueryDeviceStringEXT", ctypes.c_char_p, vp, ctypes.c_int)
        if query_devices is not None:
            devices = (vp * 16)()
            count = ctypes.c_int(0)
            if query_devices(16, devices, ctypes.byref(count)):
                hardware = []
                for i in range(count.value):
                    exts = (query_device_string(devices[i], _EGL_EXTENSIONS) or b"") if query_device_string else b""
                    if b"EGL_MESA_device_software" in exts:
                        continue  # the surfaceless platform below covers llvmpipe
                    hardware.append((self._cuda_ordinal(devices[i], exts), i))
                if self._cuda_device is not None:
                    # The device CUDA renders on first; devices without a CUDA ordinal keep their order after it.
                    hardware.sort(key=lambda item: item[0] != self._cuda_device)
                for cuda, i in hardware:
                    display = get_platform_display(_EGL_PLATFORM_DEVICE_EXT, devices[i], None)
                    if display and self._initialize(display, errors):
                        yield f"device {i}" + (f" (CUDA {cuda})" if cuda is not None else ""), display
        else:
            errors.append("eglQueryDevicesEXT unavailable")
        if self._hardware_only:
            return
        display = get_platform_display(_EGL_PLATFORM_SURFACELESS_MESA, None, None)
        if display and self._initialize(display, errors):
            yield "surfaceless", display
        elif not display:
            errors.append("no Mesa surfaceless EGL platform")

    def _cuda_ordinal(self, device, exts: bytes) -> int | None:
        """The CUDA device ordinal of an EGL device (``EGL_NV_device_cuda``), or None when not reported."""
        if b"EGL_NV_device_cuda" not in exts:
            return None
        query = self._proc("eglQueryDeviceAttribEXT", ctypes.c_uint, ctypes.c_void_p, ctypes.c_int,
                           ctypes.POINTER(ctypes.c_ssize_t))
        value = ctypes.c_ssize_t(-1)
        if query is None or not query(device, _EGL_CUDA_DEVICE_NV, ctypes.byref(value)):
            return None
        return int(value.value)

    def _initialize(self, display: int, errors: list[str]) -> bool:
        major, minor = ctypes.c_int(0), ctypes.c_int(0)
        if self._egl.eglInitialize(display, ctypes.byref(major), ctypes.byref(minor)):
            return True
        errors.append(f"eglInitialize failed (0x{self._egl.eglGetError():x})")
        return False

    def _try_context(self, display: int, errors: list[str]) -> int | None:
        attrs = (ctypes.c_int * 5)(_EGL_SURFACE_TYPE, _EGL_PBUFFER_BIT, _EGL_RENDERABLE_TYPE, _EGL_OPENGL_BIT,
                                   _EGL_NONE)
        config = ctypes.c_void_p()
        count = ctypes.c_int(0)
        chosen = self._egl.eglChooseConfig(display, attrs, ctypes.byref(config), 1, ctypes.byref(count))
        if not chosen or count.value < 1:
            errors.append("no EGL config with PBUFFER_BIT + OPENGL_BIT")
            return None
        if not self._egl.eglBindAPI(_EGL_OPENGL_API):
            errors.append("eglBindAPI(OPENGL) failed")
            return None
        for major, minor in _GL_VERSIONS:
            cattrs = (ctypes.c_int * 7)(
                _EGL_CONTEXT_MAJOR_VERSION, major, _EGL_CONTEXT_MINOR_VERSION, minor,
                _EGL_CONTEXT_OPENGL_PROFILE_MASK, _EGL_CONTEXT_OPENGL_CORE_PROFILE_BIT, _EGL_NONE,
            )
            ctx = self._egl.eglCreateContext(display, config, None, cattrs)
            if ctx:
                self.gl_version = (major, minor)
                return ctx
            errors.append(f"eglCreateContext {major}.{minor} core failed (0x{self._egl.eglGetError():x})")
        return None

    def describe(self) -> str:
        return f"egl {self.platform}"

    def make_current(self) -> None:
        self._egl.eglBindAPI(_EGL_OPENGL_API)
        if not self._egl.eglMakeCurrent(self.display, None, None, self.context):
            raise OpenGLError(f"eglMakeCurrent failed (0x{self._egl.eglGetError():x})")

    def release(self) -> None:
        self._egl.eglMakeCurrent(self.display, None, None, None)

    def handle(self) -> int | None:
        return self.context

    def destroy(self) -> None:
        if self.context is not None:
            if self._egl.eglGetCurrentContext() == self.context:
                self.release()
            self._egl.eglDestroyContext(self.display, self.context)
            self.context = None
            # eglTerminate is skipped on purpose: the display is shared per process and other contexts
            # (another rasterizer) may still live on it.


class ExternalContext(GLContext):
    """The context that was current when the rasterizer was created (for example DearPyGui's).

    Nothing is created or destroyed; ``make_current`` only verifies that the same context is still current
    in this thread, because rendering into some other context would corrupt it.
    """

    kind = "current"

    def __init__(self) -> None:
        snapshot = CurrentContextSnapshot.capture()
        if snapshot.api == "none":
            raise OpenGLError("context='current' but no OpenGL context is current in this thread")
        self.api = snapshot.api
        self._handle = snapshot.context_handle

    def make_current(self) -> None:
        now = CurrentContextSnapshot.capture().context_handle
        if now != self._handle:
            raise OpenGLError("the OpenGL context the rasterizer was created in is not current in this thread")

    def release(self) -> None:
        pass

    def handle(self) -> int | None:
        return self._handle

    def destroy(self) -> None:
        pass

    @property
    def owns_context(self) -> bool:
        return False


def cuda_device_index() -> int | None:
    """torch's current CUDA device when torch is *already imported* and has CUDA, else None.

    This module must not import torch (the probe runs it as a plain script), and a process that never
    imported torch renders nothing with CUDA anyway.
    """
    torch = sys.modules.get("torch")
    try:
        if torch is not None and torch.cuda.is_available():
            return int(torch.cuda.current_device())
    except Exception:  # a broken CUDA set-up: behave as without CUDA
        return None
    return None


def create_context(kind: ContextKind = "auto", *, cuda_device: int | None = None) -> GLContext:
    """Create (or wrap, for ``"current"``) a context; raises :class:`OpenGLError` with a one-line reason.

    ``cuda_device`` (default: :func:`cuda_device_index`): with CUDA present, ``"auto"`` tries a hardware EGL
    device first (matching that CUDA device), before glfw and before Mesa's software EGL.
    """
    if kind == "current":
        return ExternalContext()
    if cuda_device is None:
        cuda_device = cuda_device_index()
    if kind == "glfw":
        return _logged(GlfwHiddenContext())
    if kind == "egl":
        return _logged(EglSurfacelessContext(cuda_device=cuda_device))
    if kind != "auto":
        raise ValueError(f"unknown OpenGL context kind {kind!r} (auto|glfw|egl|current)")
    reasons = []
    order = ["glfw", "egl"] if threading.current_thread() is threading.main_thread() else ["egl", "glfw"]
    if cuda_device is not None:
        order = ["egl-device"] + order
    for name in order:
        if name == "glfw" and not has_display():
            continue
        try:
            if name == "glfw":
                return _logged(GlfwHiddenContext())
            if name == "egl-device":
                return _logged(EglSurfacelessContext(hardware_only=True, cuda_device=cuda_device))
            return _logged(EglSurfacelessContext(cuda_device=cuda_device))
        except OpenGLError as exc:
            reasons.append(f"{name}: {exc}")
    raise OpenGLError("; ".join(reasons) or "no way to create an OpenGL context")


def _logged(context: GLContext) -> GLContext:
    log.info("OpenGL context: %s", context.describe())
    return context


@contextmanager
def activated(context: GLContext) -> Iterator[CurrentContextSnapshot]:
    """Make ``context`` current for the block, then restore exactly what was current before.

    * nothing was current before: ours is released afterwards (no context left dangling in the thread);
    * the same API was current (e.g. DPG's GLX context and our glfw/GLX one): binding the previous context
      again implicitly unbinds ours;
    * the other API was current: it is released first, because GLX and EGL cannot both be current in one
      thread, and re-bound afterwards.
    """
    before = CurrentContextSnapshot.capture()
    if not context.owns_context:
        context.make_current()  # only verifies
        yield before
        return
    ours = context.handle()
    if ours is not None and before.context_handle == ours:
        yield before  # already current (nested use): leave it so
        return
    if before.api != "none" and before.api != context.api:
        before.release()
    try:
        context.make_current()
        yield before
    finally:
        if before.api == context.api:
            before.restore()
        else:
            context.release()
            if before.api != "none":
                before.restore()


# ----------------------------------------------------------------------------------------------------------
# Probing (cheap, cached, in a child process so a broken driver cannot take the caller down)

_PROBE_CACHE: dict[str, tuple[bool, str]] = {}
_PROBE_LOCK = threading.Lock()


def probe_current_process(kind: ContextKind = "auto", cuda_device: int | None = None) -> dict:
    """Create a context, read its strings and limits, destroy it. Used by the child process of the probe."""
    prepare_pyopengl()
    ctx = create_context(kind, cuda_device=cuda_device)
    try:
        with activated(ctx):
            from OpenGL import GL

            def text(name: int) -> str:
                value = GL.glGetString(name)
                return value.decode(errors="replace") if value else "?"

            info = {
                "kind": ctx.kind,
                "api": ctx.api,
                "platform": ctx.describe(),
                "renderer": text(GL.GL_RENDERER),
                "vendor": text(GL.GL_VENDOR),
                "version": text(GL.GL_VERSION),
                "glsl": text(GL.GL_SHADING_LANGUAGE_VERSION),
                "gl_version": list(ctx.gl_version),
            }
    finally:
        ctx.destroy()
    return info


def _child_env() -> dict[str, str]:
    """The environment for the probe's child: ours, plus our ``sys.path`` as ``PYTHONPATH``, so the child
    imports exactly what we would (PyOpenGL from a PYTHONPATH entry, a user site, a ``sys.path`` edit).
    The script's own folder is not a risk: it holds only this package's modules."""
    env = dict(os.environ)
    paths = [p for p in sys.path if p and os.path.isdir(p)]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


def probe_in_subprocess(kind: ContextKind = "auto", timeout_s: float = 20.0) -> tuple[bool, str]:
    """(ok, reason) for 'can this machine make an offscreen OpenGL >= 3.3 context?', cached per process.

    Runs this file as a script in a child interpreter (no torch import, about 0.3 s) so that a driver crash
    cannot take the caller down. The child sees our ``sys.path`` and, when torch has CUDA here, prefers the
    same hardware EGL device the rasterizer would. On success the reason names the renderer and how the
    context was made, e.g. ``"NVIDIA H200/PCIe/SSE2, 4.6.0 NVIDIA 570.86 via egl device 0 (CUDA 0)"``.
    """
    cuda = cuda_device_index()
    with _PROBE_LOCK:
        key = f"{kind}|{os.environ.get('DISPLAY', '')}|{os.environ.get('WAYLAND_DISPLAY', '')}|{cuda}"
        if key in _PROBE_CACHE:
            return _PROBE_CACHE[key]
        args = [sys.executable, os.path.abspath(__file__), "--probe", kind]
        if cuda is not None:
            args += ["--cuda", str(cuda)]
        try:
            proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout_s, env=_child_env())
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
            if proc.returncode == 0 and lines:
                info = json.loads(lines[-1])
                if info.get("ok"):
                    result = (True, f"{info['renderer']}, {info['version']} via {info.get('platform', info['kind'])}")
                else:
                    result = (False, info.get("error", "unknown error"))
            else:
                tail = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
                result = (False, f"context probe crashed ({tail[:200]})")
        except subprocess.TimeoutExpired:
            result = (False, f"context probe timed out after {timeout_s:.0f} s")
        except OSError as exc:
            result = (False, f"context probe could not start: {exc}")
        _PROBE_CACHE[key] = result
        log.info("OpenGL probe (%s): %s", kind, result[1])
        return result


if __name__ == "__main__" and len(sys.argv) >= 2 and sys.argv[1] == "--probe":
    try:
        _kind = sys.argv[2] if len(sys.argv) > 2 else "auto"
        if not _is_context_kind(_kind):
            raise ValueError(f"unknown OpenGL context kind {_kind!r} (auto|glfw|egl|current)")
        _cuda = int(sys.argv[sys.argv.index("--cuda") + 1]) if "--cuda" in sys.argv else None
        _info = probe_current_process(_kind, cuda_device=_cuda)
        _info["ok"] = True
    except Exception as _exc:  # report, never crash silently
        _info = {"ok": False, "error": f"{type(_exc).__name__}: {_exc}".splitlines()[0][:300]}
    print(json.dumps(_info), flush=True)
