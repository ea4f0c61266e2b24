"""Camera panel: orbit/zoom/pan with the mouse, sliders, presets, reset.

Mouse conventions (viewer-style "grab the head"): left drag right turns the head to the viewer's right (the
camera yaws the other way), drag down shows the head from above; the wheel moves the camera closer/farther
(radius); right or middle drag moves the look-at point in the image plane, so the head follows the mouse.
Pitch is clamped to +-89 degrees so the camera never flips over the pole.
"""

from __future__ import annotations

import dearpygui.dearpygui as dpg
import numpy as np

from app.state import MAX_FOV_DEG, MAX_PAN, MAX_RADIUS, MIN_FOV_DEG, MIN_RADIUS, clamp
from app.widgets import Widget
from gghead_core.pipeline import CameraSpec

ORBIT_DEG_PER_PIXEL = 0.3
ZOOM_PER_WHEEL_STEP = 0.9  # radius factor per wheel notch toward the head
PRESETS = {"front": (0.0, 0.0), "left": (90.0, 0.0), "right": (-90.0, 0.0)}


def wrap_deg(angle: float) -> float:
    """Map any angle to [-180, 180)."""
    return (angle + 180.0) % 360.0 - 180.0


class CameraWidget(Widget):
    name = "camera"
    title = "Camera"

    @property
    def state(self) -> CameraSpec:
        return self.viewer.args.camera

    # ---- state changes (used by sliders, mouse, keys and tests) --------------------------------------------

    def set(self, **changes) -> None:
        """Validate and apply camera changes, then write them into the render arguments and the sliders."""
        s = self.state
        yaw = clamp(changes.get("yaw_deg", s.yaw_deg), -1e9, 1e9, s.yaw_deg)
        pitch = clamp(changes.get("pitch_deg", s.pitch_deg), -CameraSpec.MAX_PITCH_DEG, CameraSpec.MAX_PITCH_DEG, s.pitch_deg)
        radius = clamp(changes.get("radius", s.radius), MIN_RADIUS, MAX_RADIUS, s.radius)
        fov = clamp(changes.get("fov_deg", s.fov_deg), MIN_FOV_DEG, MAX_FOV_DEG, s.fov_deg)
        look = changes.get("look_at", s.look_at)
        look = tuple(clamp(v, -MAX_PAN, MAX_PAN, 0.0) for v in look)
        self.viewer.args.camera = CameraSpec(yaw_deg=wrap_deg(yaw), pitch_deg=pitch, radius=radius, look_at=look,
                                             fov_deg=fov)
        self._sync_controls()

    def orbit(self, dx_px: float, dy_px: float) -> None:
        self.set(
            yaw_deg=self.state.yaw_deg - ORBIT_DEG_PER_PIXEL * dx_px,
            pitch_deg=self.state.pitch_deg + ORBIT_DEG_PER_PIXEL * dy_px,
        )

    def zoom(self, wheel_steps: float) -> None:
        """Positive steps (wheel up) move the camera toward the head."""
        steps = clamp(wheel_steps, -50, 50, 0.0)
        self.set(radius=self.state.radius * ZOOM_PER_WHEEL_STEP**steps)

    def pan(self, dx_px: float, dy_px: float, view_size_px: float) -> None:
        """Move the look-at point so that the head follows a drag of (dx, dy) pixels in a view this big."""
        if view_size_px <= 0:
            return
        cam = self.state.to_camera()
        # World units per pixel at the look-at distance: the image spans radius / focal (normalized focal).
        units_per_px = self.state.radius / cam.focal / view_size_px
        right, down = cam.cam2world[:3, 0], cam.cam2world[:3, 1]
        delta = -(dx_px * right + dy_px * down) * units_per_px
        self.set(look_at=tuple(np.asarray(self.state.look_at, dtype=np.float64) + delta))

    def fit(self, centre, half_diagonal: float, margin: float = 1.08) -> None:  # noqa: ANN001
        """Look at ``centre`` from the distance at which a sphere of radius ``half_diagonal`` fills the view."""
        half_fov = np.radians(self.state.fov_deg) / 2
        radius = float(half_diagonal) * margin / max(1e-6, float(np.sin(half_fov)))
        self.set(look_at=tuple(float(c) for c in centre), radius=radius)

    def preset(self, name: str) -> None:
        yaw, pitch = PRESETS[name]
        self.set(yaw_deg=yaw, pitch_deg=pitch)

    def reset(self) -> None:
        default = CameraSpec()
        self.set(
            yaw_deg=default.yaw_deg,
            pitch_deg=default.pitch_deg,
            radius=default.radius,
            look_at=default.look_at,
            fov_deg=default.fov_deg,
        )

    # ---- controls ------------------------------------------------------------------------------------------

    def build(self) -> None:
        s = self.state
        cb = lambda key: (lambda sender, value: self.set(**{key: value}))  # noqa: E731
        dpg.add_slider_float(label="yaw", tag=self.tag("yaw"), min_value=-180, max_value=180, default_value=s.yaw_deg,
                             format="%.1f deg", callback=cb("yaw_deg"))
        dpg.add_slider_float(label="pitch", tag=self.tag("pitch"), min_value=-CameraSpec.MAX_PITCH_DEG,
                             max_value=CameraSpec.MAX_PITCH_DEG, default_value=s.pitch_deg, clamped=True,
                             format="%.1f deg", callback=cb("pitch_deg"))
        dpg.add_slider_float(label="radius", tag=self.tag("radius"), min_value=MIN_RADIUS, max_value=8.0,
                             default_value=s.radius, format="%.2f", callback=cb("radius"))
        dpg.add_slider_float(label="fov", tag=self.tag("fov"), min_value=MIN_FOV_DEG, max_value=45.0,
                             default_value=s.fov_deg, format="%.2f deg", callback=cb("fov_deg"))
        dpg.add_text("", tag=self.tag("look_at"))
        with dpg.group(horizontal=True):
            dpg.add_button(label="Front (F)", tag=self.tag("front"), callback=lambda: self.preset("front"))
            dpg.add_button(label="Left (L)", tag=self.tag("left"), callback=lambda: self.preset("left"))
            dpg.add_button(label="Right (R)", tag=self.tag("right"), callback=lambda: self.preset("right"))
            dpg.add_button(label="Reset (Home)", tag=self.tag("reset"), callback=self.reset)
        dpg.add_button(label="Fit view", tag=self.tag("fit"), callback=lambda: self.viewer.fit_view())
        dpg.add_text("left drag: orbit   wheel: zoom\nright/middle drag: pan\nctrl+click a slider to type a value",
                     color=(150, 150, 150))
        self._sync_controls()

    def _sync_controls(self) -> None:
        if not dpg.does_item_exist(self.tag("yaw")):
            return
        s = self.state
        dpg.set_value(self.tag("yaw"), s.yaw_deg)
        dpg.set_value(self.tag("pitch"), s.pitch_deg)
        dpg.set_value(self.tag("radius"), s.radius)
        dpg.set_value(self.tag("fov"), s.fov_deg)
        x, y, z = s.look_at
        dpg.set_value(self.tag("look_at"), f"look-at: ({x:+.3f}, {y:+.3f}, {z:+.3f})")
