"""Capture panel: Screenshot (PNG, optional transparent background) and Turntable export (mp4/gif).

The panel holds only its controls' values; the viewer builds the jobs from its state (:mod:`app.capture`, the
CLI's engine, so each output gets a replayable JSON sidecar) and runs them in the background into an output
folder with auto-numbered names. The turntable shows a progress bar and can be cancelled; cancelling (or
closing the window) leaves no partial file.
"""

from __future__ import annotations

from dataclasses import replace

import dearpygui.dearpygui as dpg

from app.capture import TurntableOptions
from app.state import MAX_RADIUS, MIN_RADIUS, clamp
from app.widgets import CaptureProgress, Widget
from gghead_core.jobs import TURNTABLE_PATHS

SCREENSHOT_RESOLUTIONS = ("view", "256", "512", "1024", "2048")
TURNTABLE_RESOLUTIONS = ("256", "512", "1024")
PATH_LABELS = {"orbit": "orbit (yaw turn)", "circle": "circle (official)"}
assert set(PATH_LABELS) == set(TURNTABLE_PATHS)
MAX_UI_FRAMES = 1440
ERROR_COLOR = (255, 110, 110)
OK_COLOR = (170, 220, 170)


class CaptureWidget(Widget):
    name = "capture"
    title = "Capture"

    def __init__(self, viewer) -> None:  # noqa: ANN001
        super().__init__(viewer)
        self.transparent = False
        self.shot_resolution = "view"
        self.turntable = TurntableOptions()
        self.message = ""
        self.message_is_error = False
        self._progress = CaptureProgress(self.tag, self._say)

    def set_output_dir(self, text: str) -> None:
        self.viewer.settings.output_dir = str(text).strip()
        self.viewer.save_settings()
        self._sync_controls()

    # ---- actions -------------------------------------------------------------------------------------------

    def screenshot(self) -> bool:
        """Render the current view (chosen resolution, optional transparency) to ``screenshot_NNNN.png``."""
        res = None if self.shot_resolution == "view" else int(self.shot_resolution)
        return self._started(self.viewer.capture_screenshot(resolution=res, transparent=self.transparent),
                             "screenshot")

    def export_turntable(self) -> bool:
        """Render the head along a camera loop into ``turntable_NNNN.mp4|gif`` (background thread)."""
        return self._started(self.viewer.capture_turntable(self.turntable), "turntable")

    def _started(self, error: str | None, kind: str) -> bool:
        if error:
            self._say(error, error=True)
            return False
        self._say(f"{kind} ...")
        return True

    def cancel(self) -> None:
        self.viewer.captures.cancel()

    def _say(self, text: str, *, error: bool = False) -> None:
        self.message, self.message_is_error = text, error
        self.viewer.say(text, error=error)
        if dpg.does_item_exist(self.tag("message")):
            dpg.configure_item(self.tag("message"), color=ERROR_COLOR if error else OK_COLOR)
            dpg.set_value(self.tag("message"), text)

    def update(self, dt: float) -> None:
        st = self.viewer.captures.status
        if st is not None:
            self._progress.update(st, counter=st.kind, name=st.kind)

    # ---- setters used by the controls (validated) ----------------------------------------------------------

    def set_option(self, key: str, value) -> None:  # noqa: ANN001
        tt = self.turntable
        if key == "transparent":
            self.transparent = bool(value)
        elif key == "shot_resolution" and str(value) in SCREENSHOT_RESOLUTIONS:
            self.shot_resolution = str(value)
        elif key == "frames":
            tt = replace(tt, frames=int(clamp(value, 2, MAX_UI_FRAMES, tt.frames)))
        elif key == "fps":
            tt = replace(tt, fps=float(clamp(value, 1, 120, tt.fps)))
        elif key == "pitch":
            tt = replace(tt, pitch_deg=float(clamp(value, -80, 80, tt.pitch_deg)))
        elif key == "radius":
            tt = replace(tt, radius=float(clamp(value, MIN_RADIUS, MAX_RADIUS, tt.radius)))
        elif key == "yaw_range":
            tt = replace(tt, yaw_range_deg=float(clamp(value, 1, 360, tt.yaw_range_deg)))
        elif key == "path":
            path = next((k for k, label in PATH_LABELS.items() if value in (k, label)), tt.path)
            tt = replace(tt, path=path)
        elif key == "tt_resolution" and str(value) in TURNTABLE_RESOLUTIONS:
            tt = replace(tt, resolution=int(value))
        elif key == "format" and value in ("mp4", "gif"):
            tt = replace(tt, format=value)
        self.turntable = tt
        self._sync_controls()

    def build(self) -> None:
        opt = lambda key: (lambda _s, v: self.set_option(key, v))  # noqa: E731
        dpg.add_input_text(label="folder", tag=self.tag("folder"), width=250, on_enter=True,
                           default_value=str(self.viewer.output_dir), callback=lambda _s, v: self.set_output_dir(v))
        with dpg.group(horizontal=True):
            dpg.add_button(label="Screenshot", tag=self.tag("screenshot"), callback=self.screenshot)
            dpg.add_checkbox(label="transparent", tag=self.tag("transparent"), callback=opt("transparent"))
        dpg.add_combo(list(SCREENSHOT_RESOLUTIONS), label="size", tag=self.tag("shot_resolution"), width=100,
                      default_value=self.shot_resolution, callback=opt("shot_resolution"))
        dpg.add_separator()
        dpg.add_text("Turntable")
        dpg.add_input_int(label="frames", tag=self.tag("frames"), width=120, default_value=self.turntable.frames,
                          min_value=2, max_value=MAX_UI_FRAMES, min_clamped=True, max_clamped=True, callback=opt("frames"))
        dpg.add_input_float(label="fps", tag=self.tag("fps"), width=120, default_value=self.turntable.fps, format="%.1f",
                            min_value=1, max_value=120, min_clamped=True, max_clamped=True, callback=opt("fps"))
        dpg.add_combo(list(PATH_LABELS.values()), label="path", tag=self.tag("path"), width=160, callback=opt("path"),
                      default_value=PATH_LABELS[self.turntable.path])
        dpg.add_slider_float(label="yaw range", tag=self.tag("yaw_range"), min_value=1, max_value=360, format="%.0f deg",
                             default_value=self.turntable.yaw_range_deg, callback=opt("yaw_range"))
        dpg.add_slider_float(label="pitch", tag=self.tag("pitch"), min_value=-80, max_value=80, format="%.1f deg",
                             default_value=self.turntable.pitch_deg, callback=opt("pitch"))
        dpg.add_slider_float(label="radius", tag=self.tag("radius"), min_value=1.0, max_value=8.0, format="%.2f",
                             default_value=self.turntable.radius, callback=opt("radius"))
        with dpg.group(horizontal=True):
            dpg.add_combo(list(TURNTABLE_RESOLUTIONS), label="res", tag=self.tag("tt_resolution"), width=80,
                          default_value=str(self.turntable.resolution), callback=opt("tt_resolution"))
            dpg.add_combo(["mp4", "gif"], label="format", tag=self.tag("format"), width=70,
                          default_value=self.turntable.format, callback=opt("format"))
        with dpg.group(horizontal=True):
            dpg.add_button(label="Export turntable", tag=self.tag("turntable"), callback=self.export_turntable)
            dpg.add_button(label="Cancel", tag=self.tag("cancel"), enabled=False, callback=self.cancel)
        dpg.add_progress_bar(tag=self.tag("progress"), width=-1, default_value=0.0)
        dpg.add_text("", tag=self.tag("message"), wrap=340, show=False)  # shown on the status line
        self.viewer.register_text_input(self.tag("folder"), self.tag("frames"), self.tag("fps"))
        self._sync_controls()

    def _sync_controls(self) -> None:
        if not dpg.does_item_exist(self.tag("folder")):
            return
        tt = self.turntable
        if not dpg.is_item_active(self.tag("folder")):
            dpg.set_value(self.tag("folder"), str(self.viewer.output_dir))
        dpg.set_value(self.tag("transparent"), self.transparent)
        dpg.set_value(self.tag("shot_resolution"), self.shot_resolution)
        dpg.set_value(self.tag("frames"), tt.frames)
        dpg.set_value(self.tag("fps"), tt.fps)
        dpg.set_value(self.tag("path"), PATH_LABELS[tt.path])
        dpg.set_value(self.tag("yaw_range"), tt.yaw_range_deg)
        dpg.set_value(self.tag("pitch"), tt.pitch_deg)
        dpg.set_value(self.tag("radius"), tt.radius)
        dpg.set_value(self.tag("tt_resolution"), str(tt.resolution))
        dpg.set_value(self.tag("format"), tt.format)
        dpg.configure_item(self.tag("yaw_range"), show=tt.path == "orbit")
