"""Capture panel: Screenshot (PNG, optional transparent background) and Turntable export (mp4/gif).

Both run in the background through :mod:`app.capture` (the CLI's engine, so each output gets a replayable
JSON sidecar) into an output folder with auto-numbered names. The turntable shows a progress bar and can be
cancelled; cancelling (or closing the window) leaves no partial file.
"""

from __future__ import annotations

from pathlib import Path

import dearpygui.dearpygui as dpg

from app.capture import CaptureRunner, camera_spec, latent_spec, render_settings, unique_output
from app.settings import default_output_dir
from app.state import clamp
from app.widgets import Widget

SCREENSHOT_RESOLUTIONS = ("view", "256", "512", "1024", "2048")
TURNTABLE_RESOLUTIONS = ("256", "512", "1024")
PATHS = {"orbit (yaw turn)": "orbit", "circle (official)": "circle"}
ERROR_COLOR = (255, 110, 110)
OK_COLOR = (170, 220, 170)


class CaptureWidget(Widget):
    name = "capture"
    title = "Capture"

    def __init__(self, viewer) -> None:  # noqa: ANN001
        super().__init__(viewer)
        self.runner = CaptureRunner()
        self.transparent = False
        self.shot_resolution = "view"
        self.frames = 48
        self.fps = 24.0
        self.pitch = 0.0
        self.radius = 2.7
        self.yaw_range = 60.0
        self.path = "orbit"
        self.tt_resolution = 512
        self.format = "mp4"
        self.message = ""
        self.message_is_error = False
        self._reported: object | None = None

    @property
    def output_dir(self) -> Path:
        text = self.viewer.settings.output_dir
        return Path(text).expanduser() if text else default_output_dir()

    def set_output_dir(self, text: str) -> None:
        self.viewer.settings.output_dir = str(text).strip()
        self.viewer.save_settings()
        self._sync_controls()

    # ---- jobs ----------------------------------------------------------------------------------------------

    def _model(self):  # noqa: ANN202
        gen = self.viewer.worker.latents
        if gen is None:
            raise ValueError("no model loaded")
        return gen

    def screenshot(self) -> bool:
        """Render the current view (chosen resolution, optional transparency) to ``screenshot_NNNN.png``."""
        from gghead_core import batch

        args = self.viewer.args.snapshot()
        try:
            gen = self._model()
            res = None if self.shot_resolution == "view" else int(self.shot_resolution)
            job = batch.StillJob(
                latent=latent_spec(args.latent),
                camera=camera_spec(args.camera),
                settings=render_settings(args, resolution=res, transparent=self.transparent),
            )
            job.validate()
        except ValueError as exc:
            self._say(f"screenshot: {exc}", error=True)
            return False
        render_fn = self.viewer.worker.render_fn
        folder = self.output_dir

        def work(progress, cancel):  # noqa: ANN001, ANN202
            g, _ = gen.gaussians_for(args.latent)  # usually cached: the head on screen
            progress(1, 2)
            frame = next(batch.render_views(g, [job.camera.to_camera()], job.settings, render_fn))
            if cancel.is_set():
                raise batch.Cancelled("cancelled")

            def write(path: Path) -> None:
                batch.save_still(gen.G, job, frame.image, path, backend=frame.backend, backend_reason=frame.reason)

            out = unique_output(folder, "screenshot", ".png", write)
            progress(2, 2)
            return out

        return self._start("screenshot", work)

    def export_turntable(self) -> bool:
        """Render the head along a camera loop into ``turntable_NNNN.mp4|gif`` (background thread)."""
        from gghead_core import batch

        args = self.viewer.args.snapshot()
        try:
            gen = self._model()
            job = batch.TurntableJob(
                latent=latent_spec(args.latent),
                frames=int(self.frames),
                fps=float(self.fps),
                path=self.path,
                pitch=float(self.pitch),
                radius=float(self.radius),
                yaw_range=float(self.yaw_range),
                settings=render_settings(args, resolution=self.tt_resolution),
            )
            job.validate()
        except ValueError as exc:
            self._say(f"turntable: {exc}", error=True)
            return False
        render_fn = self.viewer.worker.render_fn
        folder, ext = self.output_dir, "." + self.format

        def work(progress, cancel):  # noqa: ANN001, ANN202
            def write(path: Path) -> None:
                batch.run_turntable(gen.G, job, path, progress=progress, cancel=cancel, render_fn=render_fn)

            return unique_output(folder, "turntable", ext, write)

        return self._start("turntable", work)

    def _start(self, kind: str, work) -> bool:  # noqa: ANN001
        if not self.runner.start(kind, work):
            self._say("another capture is still running", error=True)
            return False
        self._say(f"{kind} ...")
        return True

    def cancel(self) -> None:
        self.runner.cancel()

    def shutdown(self, timeout: float = 120.0) -> None:
        """Window closing: cancel a running job and wait until it has cleaned up its temp files."""
        self.runner.cancel()
        self.runner.join(timeout)

    def _say(self, text: str, *, error: bool = False) -> None:
        self.message, self.message_is_error = text, error
        if dpg.does_item_exist(self.tag("message")):
            dpg.configure_item(self.tag("message"), color=ERROR_COLOR if error else OK_COLOR)
            dpg.set_value(self.tag("message"), text)

    def update(self, dt: float) -> None:
        st = self.runner.status
        if st is None or not dpg.does_item_exist(self.tag("progress")):
            return
        if st.running:
            dpg.set_value(self.tag("progress"), st.fraction)
            dpg.configure_item(self.tag("progress"), overlay=f"{st.kind} {st.done}/{st.total}")
            dpg.configure_item(self.tag("cancel"), enabled=True)
            return
        dpg.configure_item(self.tag("cancel"), enabled=False)
        if self._reported is st:
            return
        self._reported = st
        dpg.set_value(self.tag("progress"), 1.0 if st.output else 0.0)
        dpg.configure_item(self.tag("progress"), overlay="")
        if st.output is not None:
            self._say(f"saved {st.output} ({st.seconds:.1f} s)")
        elif st.cancelled:
            self._say(f"{st.kind} cancelled: nothing written")
        else:
            self._say(f"{st.kind} failed: {st.error}", error=True)

    # ---- setters used by the controls (validated) ----------------------------------------------------------

    def set_option(self, key: str, value) -> None:  # noqa: ANN001
        if key == "transparent":
            self.transparent = bool(value)
        elif key == "shot_resolution" and str(value) in SCREENSHOT_RESOLUTIONS:
            self.shot_resolution = str(value)
        elif key == "frames":
            self.frames = int(clamp(value, 2, 1440, self.frames))
        elif key == "fps":
            self.fps = float(clamp(value, 1, 120, self.fps))
        elif key == "pitch":
            self.pitch = float(clamp(value, -80, 80, self.pitch))
        elif key == "radius":
            self.radius = float(clamp(value, 0.5, 20, self.radius))
        elif key == "yaw_range":
            self.yaw_range = float(clamp(value, 1, 360, self.yaw_range))
        elif key == "path":
            self.path = PATHS.get(value, value if value in PATHS.values() else self.path)
        elif key == "tt_resolution" and str(value) in TURNTABLE_RESOLUTIONS:
            self.tt_resolution = int(value)
        elif key == "format" and value in ("mp4", "gif"):
            self.format = value
        self._sync_controls()

    def build(self) -> None:
        opt = lambda key: (lambda _s, v: self.set_option(key, v))  # noqa: E731
        dpg.add_input_text(label="folder", tag=self.tag("folder"), width=250, on_enter=True,
                           default_value=str(self.output_dir), callback=lambda _s, v: self.set_output_dir(v))
        with dpg.group(horizontal=True):
            dpg.add_button(label="Screenshot", tag=self.tag("screenshot"), callback=self.screenshot)
            dpg.add_checkbox(label="transparent", tag=self.tag("transparent"), callback=opt("transparent"))
        dpg.add_combo(list(SCREENSHOT_RESOLUTIONS), label="size", tag=self.tag("shot_resolution"), width=100,
                      default_value=self.shot_resolution, callback=opt("shot_resolution"))
        dpg.add_separator()
        dpg.add_text("Turntable")
        dpg.add_input_int(label="frames", tag=self.tag("frames"), width=120, default_value=self.frames,
                          min_value=2, max_value=1440, min_clamped=True, max_clamped=True, callback=opt("frames"))
        dpg.add_input_float(label="fps", tag=self.tag("fps"), width=120, default_value=self.fps, format="%.1f",
                            min_value=1, max_value=120, min_clamped=True, max_clamped=True, callback=opt("fps"))
        dpg.add_combo(list(PATHS), label="path", tag=self.tag("path"), width=160, callback=opt("path"),
                      default_value=next(k for k, v in PATHS.items() if v == self.path))
        dpg.add_slider_float(label="yaw range", tag=self.tag("yaw_range"), min_value=1, max_value=360, format="%.0f deg",
                             default_value=self.yaw_range, callback=opt("yaw_range"))
        dpg.add_slider_float(label="pitch", tag=self.tag("pitch"), min_value=-80, max_value=80, format="%.1f deg",
                             default_value=self.pitch, callback=opt("pitch"))
        dpg.add_slider_float(label="radius", tag=self.tag("radius"), min_value=1.0, max_value=8.0, format="%.2f",
                             default_value=self.radius, callback=opt("radius"))
        with dpg.group(horizontal=True):
            dpg.add_combo(list(TURNTABLE_RESOLUTIONS), label="res", tag=self.tag("tt_resolution"), width=80,
                          default_value=str(self.tt_resolution), callback=opt("tt_resolution"))
            dpg.add_combo(["mp4", "gif"], label="format", tag=self.tag("format"), width=70,
                          default_value=self.format, callback=opt("format"))
        with dpg.group(horizontal=True):
            dpg.add_button(label="Export turntable", tag=self.tag("turntable"), callback=self.export_turntable)
            dpg.add_button(label="Cancel", tag=self.tag("cancel"), enabled=False, callback=self.cancel)
        dpg.add_progress_bar(tag=self.tag("progress"), width=-1, default_value=0.0)
        dpg.add_text("", tag=self.tag("message"), wrap=340)
        self.viewer.register_text_input(self.tag("folder"), self.tag("frames"), self.tag("fps"))
        self._sync_controls()

    def _sync_controls(self) -> None:
        if not dpg.does_item_exist(self.tag("folder")):
            return
        if not dpg.is_item_active(self.tag("folder")):
            dpg.set_value(self.tag("folder"), str(self.output_dir))
        dpg.set_value(self.tag("transparent"), self.transparent)
        dpg.set_value(self.tag("shot_resolution"), self.shot_resolution)
        dpg.set_value(self.tag("frames"), self.frames)
        dpg.set_value(self.tag("fps"), self.fps)
        dpg.set_value(self.tag("path"), next(k for k, v in PATHS.items() if v == self.path))
        dpg.set_value(self.tag("yaw_range"), self.yaw_range)
        dpg.set_value(self.tag("pitch"), self.pitch)
        dpg.set_value(self.tag("radius"), self.radius)
        dpg.set_value(self.tag("tt_resolution"), str(self.tt_resolution))
        dpg.set_value(self.tag("format"), self.format)
        dpg.configure_item(self.tag("yaw_range"), show=self.path == "orbit")
