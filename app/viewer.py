"""The desktop viewer: DearPyGui window, frame loop, mouse and keyboard.

Layout: a side panel of collapsible sections (one widget module each, see :mod:`app.widgets`) and a view that
shows the head as large as the free space allows; the render resolution is independent of the window size.
The UI thread never generates or renders: it submits :class:`app.state.RenderArgs` to the
:class:`app.worker.RenderWorker` whenever they change and shows finished frames by swapping the pointer of a
raw float RGBA texture (see :mod:`app.display`).

Tests and benchmarks drive the loop themselves: ``Viewer(...).start()``, then :meth:`Viewer.step` renders exactly
one DearPyGui frame; :func:`run_viewer` is the user entry point (``python main.py`` without a subcommand).
"""

from __future__ import annotations

import inspect
import math
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import dearpygui.dearpygui as dpg
import numpy as np
import torch

from app.capture import CaptureRunner, TurntableOptions, screenshot_job, start_capture, turntable_job
from app.capture import TimelineOptions, timeline_job
from app.display import BufferPool, new_rgba_buffer
from app.settings import Settings, default_output_dir, load_settings, save_settings
from app.state import DEFAULT_SETTINGS, RenderArgs
from app.worker import FrameResult, RenderWorker
from gghead_core.pipeline import BACKENDS

PANEL_WIDTH = 380
CLICK_SLOP_PX = 4.0  # a left press and release closer than this on the head is a click (UV inspector pick)
TITLE = "GGHead viewer"


class DisplayUnavailableError(RuntimeError):
    """There is no display to open a window on (one-line message that points to the headless commands)."""


HEADLESS_HINT = (
    "use the headless commands instead (python main.py render|turntable|interpolate|grid|export-ply ...; "
    "see python main.py --help), or start the viewer on a virtual display: xvfb-run -a python main.py"
)


def check_display() -> None:
    """Raise :class:`DisplayUnavailableError` when no window can be opened.

    Must run before DearPyGui creates its viewport: without an X display, DearPyGui's GLFW aborts the whole
    process (SIGABRT, notes §3) instead of raising.
    """
    if sys.platform.startswith("linux") or sys.platform.startswith("freebsd"):
        if not os.environ.get("DISPLAY"):
            hint = " (only WAYLAND_DISPLAY is set; the viewer needs X11/XWayland)" if os.environ.get("WAYLAND_DISPLAY") else ""
            raise DisplayUnavailableError(f"no display found: DISPLAY is not set{hint}; {HEADLESS_HINT}")


class Viewer:
    """One viewer window. Create, :meth:`start`, then :meth:`step` until it returns False, then :meth:`close`."""

    def __init__(
        self,
        ckpt_path: str | os.PathLike | None = None,
        *,
        resolution: int = 512,
        device: str | None = None,
        backend: str = "auto",
        output_dir: str | os.PathLike | None = None,
        config_dir: str | os.PathLike | None = None,
        width: int = 1400,
        height: int = 900,
        vsync: bool = True,
        torch_threads: int | None = None,
        render_fn: Callable[..., Any] | None = None,
        loader: Callable[..., Any] | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r} (choose from {', '.join(BACKENDS)})")
        if isinstance(resolution, bool) or not isinstance(resolution, int) or not 16 <= resolution <= 4096:
            raise ValueError(f"render resolution must be an integer from 16 to 4096, got {resolution!r}")
        self.ckpt_path = None if ckpt_path is None else str(ckpt_path)
        self.width, self.height, self.vsync = int(width), int(height), bool(vsync)
        self.config_dir = Path(config_dir) if config_dir is not None else None
        self.settings: Settings = load_settings(self.config_dir)
        if output_dir is not None:
            self.settings.output_dir = str(output_dir)
        self.args = RenderArgs(settings=replace(DEFAULT_SETTINGS, resolution=int(resolution), backend=backend))
        self.backends = gui_backends()
        self.pool = BufferPool()
        self.worker = RenderWorker(device=device, loader=loader, render_fn=render_fn, pool=self.pool)
        self.captures = CaptureRunner()
        self.status = ""  # last render error ("" when fine)
        self.frames_shown = 0
        self.last_result: FrameResult | None = None
        self._text_inputs: list[str] = []
        self._submitted: RenderArgs | None = None
        self._submitted_id = 0
        self._shown_id = 0
        self._front: np.ndarray | None = None
        self._texture_tag: str | None = None
        self._texture_serial = 0
        self._started = False
        self._closed = False
        self._last_time = 0.0
        self._drag: tuple[str, tuple[float, float]] | None = None  # ("orbit"|"pan", last mouse position)
        self._press: tuple[float, float] | None = None  # where a left drag began (a release nearby is a click)
        self._wheel = 0.0
        self._keys: list[int] = []
        self._image_rect = (0.0, 0.0, 1.0)  # x, y, size of the image in viewport pixels
        self.widgets: list[Any] = []
        self._torch_threads = torch_threads
        self._saved_torch_threads: int | None = None

    # ---- lifecycle -----------------------------------------------------------------------------------------

    def start(self) -> "Viewer":
        try:
            check_display()
        except DisplayUnavailableError:
            self.worker.close()
            raise
        from app.widgets.camera import CameraWidget
        from app.widgets.capture import CaptureWidget
        from app.widgets.directions import DirectionsWidget
        from app.widgets.latent import LatentWidget
        from app.widgets.model import ModelWidget
        from app.widgets.perf import PerfWidget
        from app.widgets.render import RenderWidget
        from app.widgets.timeline import TimelineWidget
        from app.widgets.seeds import SeedsWidget
        from app.widgets.truncation import TruncationWidget
        from app.widgets.uv_inspector import UVInspectorWidget

        self.model = ModelWidget(self)
        self.latent = LatentWidget(self)
        self.truncation = TruncationWidget(self)
        self.camera = CameraWidget(self)
        self.render = RenderWidget(self, backends=self.backends)
        self.capture = CaptureWidget(self)
        self.perf = PerfWidget(self)
        self.uv = UVInspectorWidget(self)
        self.widgets = [self.model, self.latent, self.truncation, self.camera, self.render, self.capture, self.perf]
        self.timeline = TimelineWidget(self)
        self.widgets.insert(self.widgets.index(self.capture) + 1, self.timeline)
        self.widgets.append(self.uv)
        self.directions = DirectionsWidget(self)
        self.seeds = SeedsWidget(self)
        self.widgets[3:3] = [self.directions, self.seeds]  # after truncation: latent controls stay together

        self._limit_torch_threads()
        dpg.create_context()
        self._started = True
        res = self.args.settings.resolution
        self._front = new_rgba_buffer(res)
        self._front[..., :3] = 0.12  # dark grey until the first frame arrives
        with dpg.texture_registry():
            self._texture_tag = self._new_texture(self._front)
        with dpg.handler_registry():
            dpg.add_mouse_wheel_handler(callback=self._on_wheel)
            dpg.add_key_press_handler(callback=self._on_key)
        with dpg.window(tag="main"):
            with dpg.group(horizontal=True):
                with dpg.child_window(width=PANEL_WIDTH, tag="panel"):
                    dpg.add_text("", tag="status", wrap=PANEL_WIDTH - 20, color=(255, 110, 110), show=False)
                    for w in self.widgets:
                        with dpg.collapsing_header(label=w.title, default_open=w.default_open, tag=f"{w.name}.header"):
                            w.build()
                with dpg.child_window(tag="view", no_scrollbar=True, border=False):
                    dpg.add_image(self._texture_tag, tag="view.image", width=res, height=res)
        dpg.create_viewport(title=TITLE, width=self.width, height=self.height, x_pos=0, y_pos=0, vsync=self.vsync)
        dpg.setup_dearpygui()
        dpg.show_viewport()
        dpg.set_primary_window("main", True)
        self._last_time = time.perf_counter()
        self.model.open_path(self.ckpt_path)
        return self

    def close(self) -> None:
        """Cancel captures, stop the worker, save settings and destroy the window (safe to call twice)."""
        if self._closed:
            return
        self._closed = True
        self.captures.cancel()
        self.captures.join(120.0)  # a cancelled capture removes its temp files before the process may exit
        for w in self.widgets:  # widgets with background threads (seed browser thumbnails) stop them
            if hasattr(w, "close"):
                w.close()
        self.worker.close()
        self.save_settings()
        if self._saved_torch_threads is not None:
            torch.set_num_threads(self._saved_torch_threads)
            self._saved_torch_threads = None
        if self._started:
            _release_gl_context()
            dpg.destroy_context()
            self._started = False

    def _limit_torch_threads(self) -> None:
        """On the CPU, leave half the cores to the UI thread and the GL driver.

        torch's OpenMP pool busy-waits at every parallel region; when it has as many threads as there are
        cores, each region stalls behind the UI thread and llvmpipe (measured on 2 cores under Xvfb, fixture
        head at 512: synthesis 1626 -> 86 ms and raster 240 -> 89 ms with 1 instead of 2 threads). Skipped
        when the user chose (``torch_threads=`` or ``OMP_NUM_THREADS``) or generation runs on a GPU.
        """
        wanted = self._torch_threads
        if wanted is None:
            if os.environ.get("OMP_NUM_THREADS") or self.worker.device != "cpu":
                return
            wanted = max(1, (os.cpu_count() or 2) // 2)
        self._saved_torch_threads = torch.get_num_threads()
        torch.set_num_threads(max(1, int(wanted)))

    def run(self) -> None:
        self.start()
        try:
            while self.step():
                pass
        finally:
            self.close()

    # ---- the frame loop ------------------------------------------------------------------------------------

    def step(self) -> bool:
        """Render exactly one UI frame; returns False once the window was closed."""
        if not dpg.is_dearpygui_running():
            return False
        now = time.perf_counter()
        dt, self._last_time = now - self._last_time, now
        self._handle_model_events()
        self._handle_frame()
        self._handle_input()
        for w in self.widgets:
            w.update(dt)
        self._layout()
        if self.args != self._submitted:
            self._submitted = self.args.snapshot()
            self._submitted_id = self.worker.submit(self._submitted)
        if dpg.get_value("status") != self.status:
            dpg.set_value("status", self.status)
            dpg.configure_item("status", show=bool(self.status))
        dpg.render_dearpygui_frame()
        return True

    def _handle_model_events(self) -> None:
        while (event := self.worker.poll_model_event()) is not None:
            self.model.on_model_event(event)
            if event.ok:
                for w in self.widgets:
                    w.on_model(event.info)
                self._submitted = None  # new model: render the current arguments again

    def _handle_frame(self) -> None:
        result = self.worker.poll()
        if result is None:
            return
        if result.error:
            self.status = f"render failed: {result.error}"
            self._shown_id = result.request_id
            self.last_result = result
            return
        self.status = ""
        buf = result.buffer
        if buf.shape != self._front.shape:  # resolution changed: a texture of the new size
            old = self._texture_tag
            with dpg.texture_registry():
                self._texture_tag = self._new_texture(buf)
            dpg.configure_item("view.image", texture_tag=self._texture_tag)
            dpg.delete_item(old)
        else:
            dpg.set_value(self._texture_tag, buf)  # pointer swap; uploaded on the next frame
        self.pool.release(self._front)
        self._front = buf
        self._shown_id = result.request_id
        self.last_result = result
        self.frames_shown += 1
        self.perf.frame_shown(result)
        self.model.set_backend(result.backend)
        self.render.show_backend(result.backend, result.backend_reason)

    def _new_texture(self, buffer: np.ndarray) -> str:
        self._texture_serial += 1
        tag = f"view.texture.{self._texture_serial}"
        dpg.add_raw_texture(buffer.shape[1], buffer.shape[0], buffer, format=dpg.mvFormat_Float_rgba, tag=tag)
        return tag

    def _layout(self) -> None:
        """Scale the image to the largest square that fits the view area, centred."""
        w = dpg.get_viewport_client_width() - PANEL_WIDTH - 32
        h = dpg.get_viewport_client_height() - 24
        size = max(64, min(w, h))
        x0 = max(0, (w - size) // 2)
        y0 = max(0, (h - size) // 2)
        if dpg.get_item_width("view.image") != size or dpg.get_item_pos("view.image") != [x0, y0]:
            dpg.configure_item("view.image", width=size, height=size)
            dpg.set_item_pos("view.image", [x0, y0])
        rect_min = dpg.get_item_rect_min("view.image")
        self._image_rect = (float(rect_min[0]), float(rect_min[1]), float(size))

    # ---- mouse and keyboard --------------------------------------------------------------------------------

    def _on_wheel(self, _sender, delta) -> None:  # noqa: ANN001
        if dpg.is_item_hovered("view.image"):
            self._wheel += float(delta)

    def _on_key(self, _sender, key) -> None:  # noqa: ANN001
        self._keys.append(int(key))

    def register_text_input(self, *tags: str) -> None:
        """Keyboard shortcuts are ignored while one of these inputs has the focus."""
        self._text_inputs.extend(tags)

    def _typing(self) -> bool:
        return any(dpg.does_item_exist(t) and (dpg.is_item_active(t) or dpg.is_item_focused(t)) for t in self._text_inputs)

    def _handle_input(self) -> None:
        mouse = tuple(dpg.get_mouse_pos(local=False))
        hovered = dpg.is_item_hovered("view.image")
        left = dpg.is_mouse_button_down(dpg.mvMouseButton_Left)
        other = dpg.is_mouse_button_down(dpg.mvMouseButton_Right) or dpg.is_mouse_button_down(dpg.mvMouseButton_Middle)
        if self._drag is None:
            if hovered and left:
                self._drag = ("orbit", mouse)
                self._press = mouse
            elif hovered and other:
                self._drag = ("pan", mouse)
        else:
            kind, last = self._drag
            if (kind == "orbit" and not left) or (kind == "pan" and not other):
                self._drag = None
                press, self._press = self._press, None
                if kind == "orbit" and press is not None and math.dist(press, mouse) < CLICK_SLOP_PX:
                    self.uv.on_view_click(mouse, self._image_rect)  # a click, not a drag: pick a Gaussian
            else:
                dx, dy = mouse[0] - last[0], mouse[1] - last[1]
                if dx or dy:
                    if kind == "orbit":
                        self.camera.orbit(dx, dy)
                    else:
                        self.camera.pan(dx, dy, self._image_rect[2])
                self._drag = (kind, mouse)
        if self._wheel:
            self.camera.zoom(self._wheel)
            self._wheel = 0.0
        keys, self._keys = self._keys, []
        if keys and not self._typing():
            for key in keys:
                if key == dpg.mvKey_F:
                    self.camera.preset("front")
                elif key == dpg.mvKey_L:
                    self.camera.preset("left")
                elif key == dpg.mvKey_R:
                    self.camera.preset("right")
                elif key == dpg.mvKey_Home:
                    self.camera.reset()

    # ---- captures (jobs built from the state in app.capture; widgets only ask) --------------------------------

    @property
    def output_dir(self) -> Path:
        text = self.settings.output_dir
        return Path(text).expanduser() if text else default_output_dir()

    def capture_screenshot(self, *, resolution: int | None = None, transparent: bool = False) -> str | None:
        """Save the current view as the next ``screenshot_NNNN.png`` (background); returns an error or None."""
        return self._start_capture("screenshot", lambda: screenshot_job(
            self.args.snapshot(), resolution=resolution, transparent=transparent), ".png")

    def capture_turntable(self, options: TurntableOptions) -> str | None:
        """Render the current head along a camera loop into ``turntable_NNNN.mp4|gif`` (background)."""
        return self._start_capture("turntable", lambda: turntable_job(self.args.snapshot(), options),
                                   "." + options.format)

    def capture_timeline(self, timeline: Any, options: TimelineOptions) -> str | None:
        """Render a keyframe timeline into ``timeline_NNNN.mp4|gif`` (background); returns an error or None."""
        return self._start_capture("timeline", lambda: timeline_job(self.args.snapshot(), timeline, options),
                                   "." + options.format)

    def _start_capture(self, kind: str, make_job: Callable[[], Any], ext: str) -> str | None:
        gen = self.worker.latents
        if gen is None:
            return f"{kind}: no model loaded"
        try:
            job = make_job()
        except ValueError as exc:
            return f"{kind}: {exc}"
        if not start_capture(self.captures, kind, gen.G, job, self.output_dir, ext,
                             render_fn=self.worker.render_fn, generate_fn=gen.gaussians):
            return "another capture is still running"
        return None

    # ---- helpers for widgets, tests and benchmarks ---------------------------------------------------------

    def save_settings(self) -> None:
        error = save_settings(self.settings, self.config_dir)
        if error:
            self.status = error

    def trigger(self, tag: str, value: Any = None) -> None:
        """Do what a user's edit of item ``tag`` does: set its value and run its callback."""
        if value is not None:
            dpg.set_value(tag, value)
        callback = dpg.get_item_callback(tag)
        if callback is None:
            raise ValueError(f"item {tag!r} has no callback")
        call_args = (tag, dpg.get_value(tag) if value is not None else None, dpg.get_item_user_data(tag))
        callback(*call_args[: _positional_count(callback)])

    @property
    def settled(self) -> bool:
        """The frame for the current arguments is on screen (or failed) and nothing is pending."""
        return self.args == self._submitted and self._shown_id >= self._submitted_id and self.worker.idle

    def wait(self, timeout: float = 60.0, extra_frames: int = 2) -> bool:
        """Step until settled (plus ``extra_frames`` so the texture upload reached the screen)."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            self.step()
            if self.settled and self.model.loading is None:
                for _ in range(extra_frames):
                    self.step()
                return True
            time.sleep(0.002)
        return False

    @property
    def image(self) -> np.ndarray:
        """The RGBA float32 texture currently shown ``[R, R, 4]`` (a copy)."""
        return self._front.copy()


def _positional_count(fn: Callable[..., Any]) -> int:
    """How many of (sender, app_data, user_data) DearPyGui would pass to ``fn`` (it passes as many as fit)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 3
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return 3
    return min(3, sum(p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD) for p in params))


def gui_backends() -> tuple[str, ...]:
    """Backends offered in the GUI: all of them.

    OpenGL is safe beside DearPyGui here because it never runs on the UI thread: the worker (and the capture
    thread) render through the OpenGL backend's own offscreen context, which it makes current only for the
    call and releases afterwards, while DearPyGui's GLX context stays current on the UI thread (checked by
    tests/test_gui_viewer.py::test_every_available_backend_renders_beside_dearpygui).
    """
    return BACKENDS


def _release_gl_context() -> None:
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


def run_viewer(ckpt_path: str | os.PathLike | None = None, **options: Any) -> None:
    """Open the viewer (blocks until the window is closed).

    Options: ``resolution`` (256/512/1024), ``device`` ("auto", "cpu", "cuda"), ``backend``
    (auto/gsplat/opengl/torch), ``output_dir``, ``width``, ``height``, ``vsync``. Raises
    :class:`DisplayUnavailableError` (one-line message) when there is no display.
    """
    check_display()
    Viewer(ckpt_path, **options).run()
