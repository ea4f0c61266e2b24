"""The desktop viewer: DearPyGui window, its lifecycle and the frame loop.

Layout: a side panel of collapsible sections (one widget module each, see :mod:`app.widgets`) and a view that
shows the head as large as the free space allows; the render resolution is independent of the window size.
The UI thread never generates or renders: it submits :class:`app.state.RenderArgs` to the
:class:`app.worker.RenderWorker` whenever they change and shows finished frames by swapping the pointer of a
raw float RGBA texture (see :mod:`app.display`).

Staying fluid on slow machines (issue 12): while something moves, the worker renders a smaller preview chosen
by :class:`app.progressive.ProgressivePolicy` (drawn into the corner of the same texture and shown upscaled
through the image's UV range), and the chosen resolution follows as soon as input stops. The frame loop
(:meth:`Viewer.tick`) draws only while something may change and naps otherwise (:mod:`app.idle`), so an idle
viewer neither renders nor uploads anything. Messages and errors share one fixed status line at the top of the
panel; an fps / ms overlay sits in the view's corner.

The :class:`Viewer` is the core; its parts live beside it (issue 9): :mod:`app.view_image` (the head's texture
and layout), :mod:`app.overlays` (fps overlay, depth colour bar, status line), :mod:`app.input` (mouse,
keyboard, ``trigger``), :mod:`app.fit_view`, :mod:`app.settings` (remembered settings), :mod:`app.capture`.

Tests and benchmarks drive the loop themselves: ``Viewer(...).start()``, then :meth:`Viewer.step` renders exactly
one DearPyGui frame; :func:`run_viewer` is the user entry point (``python main.py`` without a subcommand).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import dearpygui.dearpygui as dpg
import numpy as np
import torch

from app.capture import (
    CaptureRunner,
    TimelineOptions,
    TurntableOptions,
    screenshot_job,
    start_capture,
    timeline_job,
    turntable_job,
)
from app.display import BufferPool, release_gl_context
from app.fit_view import fit_view
from app.idle import ACTIVE_TAIL_S, FALLBACK_IDLE_FPS, IDLE_NAP_S, SAFETY_REFRESH_S, InputProbe
from app.input import CLICK_SLOP_PX, InputHandler, trigger_item
from app.memory import limit_torch_threads, release_free_memory, tune_malloc
from app.overlays import PANEL_WIDTH, STATUS_CHARS, Overlays
from app.progressive import ProgressivePolicy
from app.settings import (
    REMEMBERED_RENDER_FIELDS,
    Settings,
    default_output_dir,
    load_settings,
    remembered_render_settings,
    save_settings,
)
from app.state import DEFAULT_SETTINGS, RenderArgs
from app.view_image import ViewImage
from app.worker import FrameResult, RenderWorker
from gghead_core import HEADLESS_HINT
from gghead_core.pipeline import BACKENDS

__all__ = [  # re-exported names that tests and other modules import from here
    "CLICK_SLOP_PX", "PANEL_WIDTH", "STATUS_CHARS", "DisplayUnavailableError", "Viewer", "check_display",
    "gui_backends", "remembered_render_settings", "run_viewer", "save_window_screenshot",
]

TITLE = "GGHead viewer"
MAX_UI_FPS = 60.0
WAITING_UI_FPS = 15.0  # UI frames per second while the worker renders and no new frame waits
TRIM_INTERVAL_S = 60.0  # hand freed heap memory back at least this often while busy
CAPTURE_FRAME_S = 0.2  # UI frame interval while only a capture's progress bar moves (it needs the cores)


class DisplayUnavailableError(RuntimeError):
    """There is no display to open a window on (one-line message that points to the headless commands)."""




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
        resolution: int | None = None,
        device: str | None = None,
        backend: str | None = None,
        output_dir: str | os.PathLike | None = None,
        config_dir: str | os.PathLike | None = None,
        width: int = 1400,
        height: int = 900,
        vsync: bool = True,
        torch_threads: int | None = None,
        render_fn: Callable[..., Any] | None = None,
        loader: Callable[..., Any] | None = None,
    ) -> None:
        if backend is not None and backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r} (choose from {', '.join(BACKENDS)})")
        if resolution is not None and (
            isinstance(resolution, bool) or not isinstance(resolution, int) or not 16 <= resolution <= 4096
        ):
            raise ValueError(f"render resolution must be an integer from 16 to 4096, got {resolution!r}")
        self.ckpt_path = None if ckpt_path is None else str(ckpt_path)
        self.width, self.height, self.vsync = int(width), int(height), bool(vsync)
        self.config_dir = Path(config_dir) if config_dir is not None else None
        self.settings: Settings = load_settings(self.config_dir)
        if output_dir is not None:
            self.settings.output_dir = str(output_dir)
        self.backends = gui_backends()
        # Remembered render settings first, then what the caller asked for explicitly.
        settings = remembered_render_settings(self.settings.render, DEFAULT_SETTINGS, self.backends)
        if resolution is not None:
            settings = replace(settings, resolution=int(resolution))
        if backend is not None:
            settings = replace(settings, backend=backend)
        self.args = RenderArgs(settings=settings)
        self.progressive = ProgressivePolicy(enabled=self.settings.progressive)
        self.show_overlay = self.settings.show_overlay
        tune_malloc()  # before the worker thread starts: see app.memory (RSS stays flat over long sessions)
        self.pool = BufferPool()
        self.worker = RenderWorker(device=device, loader=loader, render_fn=render_fn, pool=self.pool)
        self.captures = CaptureRunner()
        self.status = ""  # last render error ("" when fine)
        self.message = ""  # the latest message for the status line (see :meth:`say`)
        self.message_is_error = False
        self.frames_shown = 0
        self.ui_frames = 0  # DearPyGui frames drawn (each one uploads the raw texture again)
        self.last_result: FrameResult | None = None
        self._submitted: RenderArgs | None = None  # what the worker was asked for (a preview may be smaller)
        self._submitted_id = 0
        self._seen_args: RenderArgs | None = None
        self._last_change = -1e9  # when the state last changed (perf_counter seconds)
        self._last_activity = -1e9  # input, a state change or a new frame: keep drawing for a moment
        self._last_frame_time = -1e9  # when the last UI frame was drawn
        self._probe: InputProbe | None = None
        self._trimmed = True  # freed memory was handed back since the last activity
        self._last_trim = time.perf_counter()
        self._shown_id = 0
        self._started = False
        self._closed = False
        self._last_time = 0.0
        self.widgets: list[Any] = []
        self.view_image = ViewImage()
        self.overlays = Overlays(self)
        self.input = InputHandler(self)
        self._torch_threads = torch_threads
        self._saved_torch_threads: int | None = None

    # ---- lifecycle -----------------------------------------------------------------------------------------

    def start(self) -> Viewer:
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
        from app.widgets.seeds import SeedsWidget
        from app.widgets.timeline import TimelineWidget
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

        self._saved_torch_threads = limit_torch_threads(self._torch_threads, self.worker.device)
        dpg.create_context()
        self._started = True
        res = self.args.settings.resolution
        with dpg.texture_registry():
            self.view_image.build_texture(res)
            self.overlays.build_textures()
        self.input.build()
        with dpg.window(tag="main"):
            with dpg.group(horizontal=True):
                with dpg.group(tag="left"):
                    self.overlays.build_status_line()
                    with dpg.child_window(width=PANEL_WIDTH, tag="panel"):
                        for w in self.widgets:
                            with dpg.collapsing_header(label=w.title, default_open=w.default_open,
                                                       tag=f"{w.name}.header"):
                                w.build()
                with dpg.child_window(tag="view", no_scrollbar=True, border=False):
                    self.view_image.build(res)
                    self.overlays.build()
        dpg.create_viewport(title=TITLE, width=self.width, height=self.height, x_pos=0, y_pos=0, vsync=self.vsync)
        dpg.setup_dearpygui()
        dpg.show_viewport()
        dpg.set_primary_window("main", True)
        self._last_time = time.perf_counter()
        self._probe = InputProbe()
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
        self.remember_settings()
        if self._saved_torch_threads is not None:
            torch.set_num_threads(self._saved_torch_threads)
            self._saved_torch_threads = None
        if self._started:
            release_gl_context()
            dpg.destroy_context()
            self._started = False

    def run(self) -> None:
        self.start()
        try:
            while self.tick():
                pass
        finally:
            self.close()

    # ---- the frame loop ------------------------------------------------------------------------------------

    def tick(self) -> bool:
        """One pass of the real loop: a UI frame when something may change, else a short nap.

        Returns False once the window was closed. An idle viewer (no input, no animation, no capture, no frame
        on its way) draws nothing, so nothing is rasterized or uploaded; see :mod:`app.idle`.
        """
        if not dpg.is_dearpygui_running():
            return False
        now = time.perf_counter()
        if self.needs_frame(now):
            # While a frame is being rendered and none waits, the UI only samples the mouse: a lower rate
            # leaves the cores to the worker (each UI frame costs ~25 ms of CPU under llvmpipe).
            waiting = not self.worker.has_result and not self.worker.idle
            interval = 1.0 / (WAITING_UI_FPS if waiting else MAX_UI_FPS)
            rest = interval - (now - self._last_frame_time)
            if rest > 0:
                time.sleep(min(rest, IDLE_NAP_S))
                return True
            self._trimmed = False
            if now - self._last_trim > TRIM_INTERVAL_S:  # long animations never go idle
                release_free_memory()
                self._last_trim = now
            return self.step()
        if not self._trimmed and self.worker.idle:
            release_free_memory()  # the viewer just went idle: give the frames' freed memory back
            self._trimmed, self._last_trim = True, now
        time.sleep(IDLE_NAP_S)
        return True

    def needs_frame(self, now: float | None = None) -> bool:
        """Whether the next :meth:`tick` should draw (anything that may change what the window shows)."""
        now = time.perf_counter() if now is None else now
        since_frame = now - self._last_frame_time
        if since_frame >= SAFETY_REFRESH_S:
            return True
        if now - self._last_activity < ACTIVE_TAIL_S or self.input.drag is not None or self.latent.animate:
            return True
        if self.worker.has_result or self.worker.has_model_event or self.args != self._submitted:
            return True
        if self.captures.busy or self.model.loading:
            return since_frame >= CAPTURE_FRAME_S
        pending = self._probe.pending() if self._probe is not None else None
        if pending is None:  # cannot tell whether input waits: a modest idle frame rate
            return since_frame >= 1.0 / FALLBACK_IDLE_FPS
        if pending:
            self._last_activity = now
        return pending

    def step(self) -> bool:
        """Render exactly one UI frame; returns False once the window was closed."""
        if not dpg.is_dearpygui_running():
            return False
        now = time.perf_counter()
        dt, self._last_time = now - self._last_time, now
        self._handle_model_events()
        self._handle_frame()
        self.input.handle()
        for w in self.widgets:
            w.update(dt)
        if self.view_image.layout():
            self._last_activity = time.perf_counter()
        self._submit(time.perf_counter())
        self.overlays.update_status()
        self.overlays.update(now, self.view_image.view_pos)
        dpg.render_dearpygui_frame()
        self.ui_frames += 1
        self._last_frame_time = time.perf_counter()
        return True

    @property
    def moving(self) -> bool:
        """Something is changing right now (a drag, a slider, Animate): previews instead of full frames."""
        return self.latent.animate or time.perf_counter() - self._last_change < self.progressive.settle_s

    def _submit(self, now: float) -> None:
        """Ask the worker for what the view should show now: the state itself, or a smaller preview of it."""
        if self.args != self._seen_args:
            self._seen_args = self.args.snapshot()
            self._last_change = self._last_activity = now
        target = self.args.settings.resolution
        want = self.args
        moving = self.latent.animate or now - self._last_change < self.progressive.settle_s
        if moving and self.progressive.enabled and self.worker.latents is not None:
            regenerating = self.latent.animate or self.worker.latents.cached(self.args.latent) is None
            size = self.progressive.preview_resolution(target, regenerating=regenerating)
            if size != target:
                want = RenderArgs(latent=self.args.latent, camera=self.args.camera,
                                  settings=replace(self.args.settings, resolution=size))
            sub = self._submitted
            if (sub is not None and sub.settings.resolution != target and sub.latent == want.latent
                    and sub.camera == want.camera
                    and replace(sub.settings, resolution=target) == self.args.settings):
                return  # the same view as a preview of another size: not worth a second render
        if want != self._submitted:
            self._submitted = want.snapshot()
            # Animate's latents never come back: do not let them push the cached heads out.
            self._submitted_id = self.worker.submit(self._submitted, canvas=target, keep=not self.latent.animate)

    def _handle_model_events(self) -> None:
        while (event := self.worker.poll_model_event()) is not None:
            self.model.on_model_event(event)
            self._last_activity = time.perf_counter()
            if event.ok:
                for w in self.widgets:
                    w.on_model(event.info)
                self._submitted = None  # new model: render the current arguments again

    def _handle_frame(self) -> None:
        result = self.worker.poll()
        if result is None:
            return
        self._last_activity = time.perf_counter()
        if result.error:
            self.status = f"render failed: {result.error}"
            self._shown_id = result.request_id
            self.last_result = result
            return
        self.status = ""
        size = int(result.args.settings.resolution)
        old_front = self.view_image.show(result.buffer, size)
        if old_front is not None:
            self.pool.release(old_front)
        self._shown_id = result.request_id
        self.last_result = result
        self.frames_shown += 1
        t = result.timings
        self.progressive.observe(size, t.raster_ms + t.upload_ms,
                                 None if t.cached else t.mapping_ms + t.synthesis_ms)
        self.perf.frame_shown(result)
        self.model.set_backend(result.backend)
        self.render.show_backend(result.backend, result.backend_reason)

    def set_overlay(self, on: bool) -> None:
        self.show_overlay = bool(on)
        self.overlays.show_fps(self.show_overlay)
        self.remember_settings()

    def set_progressive(self, on: bool) -> None:
        self.progressive.enabled = bool(on)
        self.remember_settings()

    # ---- the status line (drawn by app.overlays) ---------------------------------------------------------------

    def say(self, text: str, *, error: bool = False) -> None:
        """Put ``text`` on the status line (the one place for messages and errors; a render error wins)."""
        self.message, self.message_is_error = str(text), bool(error)
        self._last_activity = time.perf_counter()

    def status_line(self) -> tuple[str, bool]:
        """(full text, is_error) of what the status line shows."""
        if self.status:
            return self.status, True
        return self.message, self.message_is_error

    @property
    def _front(self) -> np.ndarray | None:
        """The buffer the view's texture shows (see :class:`app.view_image.ViewImage`)."""
        return self.view_image.front

    @property
    def _image_rect(self) -> tuple[float, float, float]:
        """x, y, size of the image in viewport pixels."""
        return self.view_image.image_rect

    # ---- mouse and keyboard (app.input) --------------------------------------------------------------------

    def register_text_input(self, *tags: str) -> None:
        """Keyboard shortcuts are ignored while one of these inputs has the focus."""
        self.input.register_text_input(*tags)

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
            self.say(error, error=True)

    def remember_settings(self) -> None:
        """Store the render settings and display toggles beside the recent files (saved when they change)."""
        s = self.args.settings
        render = {k: getattr(s, k) for k in REMEMBERED_RENDER_FIELDS}
        if isinstance(render["background"], tuple):
            render["background"] = list(render["background"])
        new = (render, self.show_overlay, self.progressive.enabled)
        if new == (self.settings.render, self.settings.show_overlay, self.settings.progressive):
            return
        self.settings.render, self.settings.show_overlay, self.settings.progressive = new
        self.save_settings()

    def fit_view(self) -> str | None:
        """Frame the current head (see :func:`app.fit_view.fit_view`); returns an error line or None."""
        return fit_view(self)

    def trigger(self, tag: str, value: Any = None) -> None:
        """Do what a user's edit of item ``tag`` does: set its value and run its callback."""
        trigger_item(tag, value)

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
        """The RGBA float32 image currently shown ``[R, R, 4]`` (a copy; a preview is smaller than the texture)."""
        return self.view_image.image(self.last_result)


def gui_backends() -> tuple[str, ...]:
    """Backends offered in the GUI: all of them.

    OpenGL is safe beside DearPyGui here because it never runs on the UI thread: the worker (and the capture
    thread) render through the OpenGL backend's own offscreen context, which it makes current only for the
    call and releases afterwards, while DearPyGui's GLX context stays current on the UI thread (checked by
    tests/test_gui_viewer.py::test_every_available_backend_renders_beside_dearpygui).
    """
    return BACKENDS



def run_viewer(ckpt_path: str | os.PathLike | None = None, **options: Any) -> None:
    """Open the viewer (blocks until the window is closed).

    Options: ``resolution`` (256/512/1024), ``device`` ("auto", "cpu", "cuda"), ``backend``
    (auto/gsplat/opengl/torch), ``output_dir``, ``width``, ``height``, ``vsync``. Raises
    :class:`DisplayUnavailableError` (one-line message) when there is no display.
    """
    check_display()
    screenshot = options.pop("screenshot", None)
    viewer = Viewer(ckpt_path, **options)
    if screenshot is None:
        viewer.run()
        return
    viewer.start()
    try:
        save_window_screenshot(viewer, screenshot)
    finally:
        viewer.close()


def save_window_screenshot(viewer: Viewer, path: str | os.PathLike, timeout: float = 300.0) -> Path:
    """Wait for the first full frame, then write the whole window as a PNG at ``path`` (atomically; never over
    an existing file). ``main.py --screenshot`` uses it for docs and smoke tests."""
    from gghead_core import export as ex

    if not viewer.wait(timeout=timeout, extra_frames=3):
        raise RuntimeError(f"the viewer did not show a frame within {timeout:.0f} s")
    captured: dict[str, np.ndarray] = {}

    def grab(_sender: Any, buffer: Any) -> None:
        h, w = buffer.get_height(), buffer.get_width()
        captured["rgba"] = np.array(buffer, dtype=np.float32).reshape(h, w, 4)

    dpg.output_frame_buffer(callback=grab)  # the last presented frame, delivered on a later frame
    deadline = time.perf_counter() + 30.0
    while "rgba" not in captured and time.perf_counter() < deadline:
        viewer.step()
    if "rgba" not in captured:
        raise RuntimeError("the window could not be captured")
    out = Path(path)
    with ex.OutputTransaction(overwrite=False) as tx:
        ex.write_png(tx.file(out), ex.to_uint8(captured["rgba"][..., :3]))
    return out
