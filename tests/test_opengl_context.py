"""OpenGL context handling: availability never crashes, the caller's current context survives our rendering
(a glfw context here, DearPyGui's in a child process), rendering inside the caller's context leaves its GL
state alone, and rendering from a worker thread works beside a context current on the main thread.

Tests that need X skip without a DISPLAY (CI runs the suite under xvfb-run)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from gghead_core.camera import frontal_camera
from gghead_core.render._opengl import OpenGLError, OpenGLRasterizer, _gl, opengl_available
from gghead_core.render._opengl_context import CurrentContextSnapshot, probe_in_subprocess

REPO = Path(__file__).resolve().parents[1]
needs_display = pytest.mark.skipif(not os.environ.get("DISPLAY"), reason="needs an X display (run under xvfb-run)")


def _no_context(reason: str):
    """Skip, or fail under ``GGHEAD_REQUIRE_GPU=1``: a GPU run must not go green without GL ever running."""
    if os.environ.get("GGHEAD_REQUIRE_GPU") == "1":
        pytest.fail(f"GGHEAD_REQUIRE_GPU=1 but {reason}")
    pytest.skip(reason)


def _scene():
    g = (torch.tensor([[0.0, 0.0, 0.0], [0.05, 0.02, 0.1]]), torch.tensor([[1.0, 0, 0, 0], [0.9, 0.1, 0.3, 0.0]]),
         torch.tensor([[0.03, 0.02, 0.01], [0.02, 0.02, 0.02]]), torch.tensor([0.8, 0.6]),
         torch.tensor([[1.0, 0.2, 0.1], [0.1, 0.3, 1.0]]))
    cam = frontal_camera()
    return (*g, cam.world2cam(), cam.intrinsics_pixels(48), 48, 48, (1.0, 1.0, 1.0))


def _same_window(a, b) -> bool:
    import ctypes

    if a is None or b is None:
        return False
    return ctypes.cast(a, ctypes.c_void_p).value == ctypes.cast(b, ctypes.c_void_p).value


@pytest.fixture
def glfw_window():
    """A hidden glfw window whose context is current: stands in for the GUI's context."""
    glfw = pytest.importorskip("glfw")
    if not glfw.init():
        pytest.skip("glfw.init() failed")
    glfw.default_window_hints()
    glfw.window_hint(glfw.VISIBLE, glfw.FALSE)
    glfw.window_hint(glfw.CONTEXT_VERSION_MAJOR, 3)
    glfw.window_hint(glfw.CONTEXT_VERSION_MINOR, 3)
    glfw.window_hint(glfw.OPENGL_PROFILE, glfw.OPENGL_CORE_PROFILE)
    window = glfw.create_window(64, 64, "caller", None, None)
    glfw.default_window_hints()
    if not window:
        pytest.skip("glfw could not create a window")
    glfw.make_context_current(window)
    yield glfw, window
    glfw.make_context_current(window)
    glfw.destroy_window(window)


def test_available_is_a_cached_tuple_and_never_raises():
    ok, reason = opengl_available()
    assert isinstance(ok, bool) and isinstance(reason, str) and reason
    assert opengl_available() == (ok, reason)  # cached
    ok2, _ = opengl_available(probe=False)
    assert isinstance(ok2, bool)


def test_probe_reports_failure_instead_of_crashing(monkeypatch):
    """A display that does not exist: the glfw probe fails in its child process and says why."""
    monkeypatch.setenv("DISPLAY", ":987")
    ok, reason = probe_in_subprocess("glfw", timeout_s=30)
    assert ok is False and reason


def test_nothing_left_current_after_a_call():
    try:
        r = OpenGLRasterizer(context="egl")
    except OpenGLError as exc:
        _no_context(f"no EGL context here: {exc}")
    try:
        assert CurrentContextSnapshot.capture().api == "none"
        r.rasterize(*_scene())
        assert CurrentContextSnapshot.capture().api == "none"
    finally:
        r.close()
    assert CurrentContextSnapshot.capture().api == "none"


@needs_display
@pytest.mark.parametrize("kind", ["glfw", "egl", "auto"])
def test_callers_context_is_restored(glfw_window, kind):
    glfw, window = glfw_window
    before = CurrentContextSnapshot.capture()
    assert before.api == "glx"
    try:
        r = OpenGLRasterizer(context=kind)  # creation (glfw makes its new context current) must restore too
    except OpenGLError as exc:
        (_no_context if kind == "egl" else pytest.skip)(f"no {kind} context here: {exc}")
    assert CurrentContextSnapshot.capture() == before
    try:
        rgb, alpha, _ = r.rasterize(*_scene())
        assert float(alpha.max()) > 0.5
        assert CurrentContextSnapshot.capture() == before
        assert _same_window(glfw.get_current_context(), window)
        # The caller's context still works.
        GL = _gl()
        GL.glClearColor(0.25, 0.5, 0.75, 1.0)
        GL.glClear(GL.GL_COLOR_BUFFER_BIT)
        assert GL.glGetError() == GL.GL_NO_ERROR
    finally:
        r.close()
    assert CurrentContextSnapshot.capture() == before


@needs_display
def test_render_inside_the_callers_context_keeps_its_state(glfw_window):
    """context='current': GL objects live in the caller's context; its bindings and switches survive."""
    GL = _gl()
    fbo = int(GL.glGenFramebuffers(1))
    tex = int(GL.glGenTextures(1))
    GL.glBindTexture(GL.GL_TEXTURE_2D, tex)
    GL.glTexImage2D(GL.GL_TEXTURE_2D, 0, GL.GL_RGBA8, 8, 8, 0, GL.GL_RGBA, GL.GL_UNSIGNED_BYTE, None)
    GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, fbo)
    GL.glFramebufferTexture2D(GL.GL_FRAMEBUFFER, GL.GL_COLOR_ATTACHMENT0, GL.GL_TEXTURE_2D, tex, 0)
    GL.glViewport(1, 2, 5, 6)
    GL.glEnable(GL.GL_BLEND)
    GL.glBlendFuncSeparate(GL.GL_SRC_ALPHA, GL.GL_ONE_MINUS_SRC_ALPHA, GL.GL_ONE, GL.GL_ZERO)
    GL.glEnable(GL.GL_SCISSOR_TEST)
    vao = int(GL.glGenVertexArrays(1))
    GL.glBindVertexArray(vao)

    def state():
        return (int(GL.glGetIntegerv(GL.GL_DRAW_FRAMEBUFFER_BINDING)),
                list(np.atleast_1d(GL.glGetIntegerv(GL.GL_VIEWPORT))),
                bool(GL.glIsEnabled(GL.GL_BLEND)), int(GL.glGetIntegerv(GL.GL_BLEND_SRC_RGB)),
                int(GL.glGetIntegerv(GL.GL_BLEND_DST_ALPHA)), bool(GL.glIsEnabled(GL.GL_SCISSOR_TEST)),
                int(GL.glGetIntegerv(GL.GL_VERTEX_ARRAY_BINDING)), int(GL.glGetIntegerv(GL.GL_CURRENT_PROGRAM)))

    expected = state()
    inside = OpenGLRasterizer(context="current")
    try:
        own = OpenGLRasterizer(context="egl")
    except OpenGLError as exc:
        inside.close()
        _no_context(f"no EGL context to compare with: {exc}")
    try:
        a = inside.rasterize(*_scene())
        assert state() == expected
        b = own.rasterize(*_scene())
        for x, y in zip(a, b):
            assert torch.allclose(x, y, atol=1e-6)
    finally:
        inside.close()
        own.close()
    assert state() == expected
    GL.glDeleteFramebuffers(1, [fbo])
    GL.glDeleteTextures([tex])


@needs_display
def test_worker_thread_render_beside_main_thread_context(glfw_window):
    glfw, window = glfw_window
    before = CurrentContextSnapshot.capture()
    results: dict = {}

    def work():
        try:
            r = OpenGLRasterizer()  # auto on a worker thread: EGL first (glfw windows need the main thread)
            try:
                results["alpha"] = float(r.rasterize(*_scene())[1].max())
                results["kind"] = r.describe()
            finally:
                r.close()
            results["after"] = CurrentContextSnapshot.capture().api
        except OpenGLError as exc:
            results["skip"] = str(exc)

    t = threading.Thread(target=work)
    t.start()
    t.join(60)
    if "skip" in results:
        _no_context(f"no OpenGL context on a worker thread: {results['skip']}")
    assert results["alpha"] > 0.5 and results["after"] == "none"
    assert CurrentContextSnapshot.capture() == before and _same_window(glfw.get_current_context(), window)


_DPG_SCRIPT = textwrap.dedent(
    """
    import sys, threading
    sys.path.insert(0, {repo!r})
    import numpy as np
    import dearpygui.dearpygui as dpg
    from gghead_core.camera import frontal_camera
    from gghead_core.render._opengl import OpenGLRasterizer, rasterize_opengl, default_rasterizer
    from gghead_core.render._opengl_context import CurrentContextSnapshot
    import torch

    dpg.create_context()
    dpg.create_viewport(title="t", width=320, height=240)
    dpg.setup_dearpygui()
    with dpg.texture_registry():
        dpg.add_raw_texture(64, 64, np.zeros(64 * 64 * 4, np.float32), format=dpg.mvFormat_Float_rgba, tag="tex")
    with dpg.window(label="w"):
        dpg.add_image("tex")
    dpg.show_viewport()
    for _ in range(2):
        dpg.render_dearpygui_frame()
    before = CurrentContextSnapshot.capture()
    assert before.api == "glx", before
    cam = frontal_camera()
    g = (torch.zeros(1, 3), torch.tensor([[1.0, 0, 0, 0]]), torch.full((1, 3), 0.05), torch.tensor([0.9]),
         torch.tensor([[1.0, 0.0, 0.0]]))
    for frame in range(3):
        rgb, alpha, _ = rasterize_opengl(*g, cam.world2cam(), cam.intrinsics_pixels(64), 64, 64, (1.0, 1.0, 1.0))
        assert CurrentContextSnapshot.capture() == before
        rgba = np.concatenate([rgb.numpy(), alpha.numpy()[..., None]], axis=-1)
        dpg.set_value("tex", np.ascontiguousarray(rgba.reshape(-1)))
        dpg.render_dearpygui_frame()
    out = {{}}
    def work():
        r = OpenGLRasterizer()
        out["alpha"] = float(r.rasterize(*g, cam.world2cam(), cam.intrinsics_pixels(64), 64, 64, (1, 1, 1))[1].max())
        r.close()
    t = threading.Thread(target=work); t.start()
    for _ in range(3):
        dpg.render_dearpygui_frame()
    t.join(60)
    assert out["alpha"] > 0.8, out
    dpg.render_dearpygui_frame()
    # Rendering *inside* DPG's compatibility-profile context: same pixels as our own context, for both
    # primitives (points need GL_POINT_SPRITE there), and DPG keeps drawing.
    g3 = (torch.tensor([[0.0, 0.0, 0.0], [0.03, 0.01, 0.05]]), torch.tensor([[1.0, 0, 0, 0], [0.8, 0.2, 0.5, 0.1]]),
          torch.tensor([[0.02, 0.01, 0.005], [0.01, 0.01, 0.01]]), torch.tensor([0.9, 0.7]),
          torch.tensor([[1.0, 0.5, 0.0], [0.0, 0.5, 1.0]]))
    args = (*g3, cam.world2cam(), cam.intrinsics_pixels(64), 64, 64, (1.0, 1.0, 1.0))
    for primitive in ("points", "quads"):
        inside = OpenGLRasterizer(context="current", primitive=primitive)
        a = inside.rasterize(*args)
        b = rasterize_opengl(*args)
        assert all(torch.allclose(x, y, atol=1e-6) for x, y in zip(a, b)), primitive
        dpg.render_dearpygui_frame()
        inside.close()
        assert CurrentContextSnapshot.capture() == before
    dpg.render_dearpygui_frame()
    print("renderer:", default_rasterizer().describe())
    print("OK", flush=True)
    """
)


@needs_display
def test_dearpygui_survives_our_rendering(tmp_path):
    """The real GUI situation: DPG's GLX context is current on the main thread; we render between DPG frames
    (own glfw context on the main thread, EGL on a worker thread). Without the restore DPG segfaults, so
    this runs in a child process and checks its exit status."""
    pytest.importorskip("dearpygui")
    script = tmp_path / "dpg_opengl.py"
    script.write_text(_DPG_SCRIPT.format(repo=str(REPO)))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONFAULTHANDLER": "1"})
    tail = (proc.stdout + proc.stderr)[-2000:]
    if proc.returncode != 0 and "Failed to create" in tail and "window" in tail.lower():
        pytest.skip(f"DearPyGui could not open a viewport here: {tail.splitlines()[-1]}")
    assert proc.returncode == 0, tail
    assert "OK" in proc.stdout


def test_probe_child_gets_our_sys_path_and_no_isolation(monkeypatch):
    """PyOpenGL reachable only through PYTHONPATH or a sys.path edit must also be found by the probe's
    child: it runs without ``-I`` and gets our sys.path as PYTHONPATH."""
    from gghead_core.render import _opengl_context as ctx_mod

    seen = {}

    def fake_run(args, **kwargs):
        seen["args"], seen["env"] = args, kwargs.get("env")
        raise OSError("not started (test)")

    monkeypatch.setattr(ctx_mod.subprocess, "run", fake_run)
    monkeypatch.setattr(ctx_mod, "_PROBE_CACHE", {})
    ok, reason = ctx_mod.probe_in_subprocess("egl")
    assert not ok and "could not start" in reason
    assert "-I" not in seen["args"] and seen["args"][1].endswith("_opengl_context.py")
    child_path = seen["env"]["PYTHONPATH"].split(os.pathsep)
    assert [p for p in sys.path if p and os.path.isdir(p)] == [p for p in dict.fromkeys(child_path)]


def test_probe_finds_pyopengl_that_only_our_sys_path_has(tmp_path):
    """End to end: a parent interpreter that reaches PyOpenGL only through a sys.path edit (the base
    interpreter of this venv, whose own site-packages lack it) still gets a working probe."""
    base = getattr(sys, "_base_executable", None)
    if not base or sys.prefix == sys.base_prefix:
        pytest.skip("not in a virtual environment: no interpreter without PyOpenGL to start from")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    if subprocess.run([base, "-c", "import OpenGL"], capture_output=True, env=env).returncode == 0:
        pytest.skip(f"{base} imports PyOpenGL by itself: cannot emulate a PYTHONPATH-only PyOpenGL")
    import OpenGL

    site = str(Path(OpenGL.__file__).resolve().parents[1])
    script = textwrap.dedent(
        f"""
        import sys
        sys.path[:0] = [{str(REPO)!r}, {site!r}]
        from gghead_core.render._opengl_context import probe_in_subprocess
        ok, reason = probe_in_subprocess("egl")
        print("RESULT", ok, reason)
        """
    )
    proc = subprocess.run([base, "-c", script], capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")), proc.stderr[-300:])
    if "No module named" in line:
        pytest.fail(f"the probe's child did not see the parent's sys.path: {line}")
    ok_here, why_here = probe_in_subprocess("egl")
    assert line.startswith(f"RESULT {ok_here}"), (line, why_here)


def test_hardware_only_egl_and_cuda_preference_fall_back_cleanly():
    """Without a hardware EGL device, asking for one fails with one line, and 'auto' with a CUDA device to
    match still ends up on whatever context exists (here Mesa), saying which."""
    from gghead_core.render._opengl_context import EglSurfacelessContext, create_context

    try:
        hw = EglSurfacelessContext(hardware_only=True, cuda_device=0)
    except OpenGLError as exc:
        assert "no hardware EGL device" in str(exc) and "\n" not in str(exc)
    else:  # a GPU machine: the device it picked is a hardware one
        try:
            assert hw.describe().startswith("egl device")
        finally:
            hw.destroy()
    try:
        ctx = create_context("auto", cuda_device=0)
    except OpenGLError as exc:
        _no_context(f"no OpenGL context here: {exc}")
    try:
        assert ctx.describe().split()[0] in ("egl", "glfw")
    finally:
        ctx.destroy()
