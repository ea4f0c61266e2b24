"""Render panel: display resolution, backend (with auto's reason), mode, depth colours, background, SH reference,
scale, and the display toggles (progressive previews, fps overlay).

The render resolution is independent of the window size: the image is scaled to fill the view. Everything here
but the scale is remembered between runs (beside the recent files); the backend's reason is one line with the
full text in a tooltip, so the panel does not jump when it changes.
"""

from __future__ import annotations

from dataclasses import replace

import dearpygui.dearpygui as dpg

from app.state import MAX_SCALE_MODIFIER, MIN_SCALE_MODIFIER, RESOLUTIONS, clamp
from app.widgets import Widget
from gghead_core.pipeline import BACKENDS, DEPTH_COLORMAPS, MODES, SH_REFS, RenderSettings, background_rgb

REASON_CHARS = 50  # the backend line stays one line; the full reason is in its tooltip


class RenderWidget(Widget):
    name = "render"
    title = "Render"

    def __init__(self, viewer, backends: tuple[str, ...] = BACKENDS) -> None:  # noqa: ANN001
        super().__init__(viewer)
        self.backends = backends

    @property
    def state(self) -> RenderSettings:
        return self.viewer.args.settings

    def _write(self, **changes) -> None:
        self.viewer.args.settings = replace(self.viewer.args.settings, **changes)
        self._sync_controls()
        if "scale_modifier" not in changes and "background" not in changes:
            self.viewer.remember_settings()  # the colour picker drags: its value is remembered on close

    def set_resolution(self, value) -> None:  # noqa: ANN001
        try:
            res = int(value)
        except (TypeError, ValueError):
            return
        if res in RESOLUTIONS:
            self._write(resolution=res)

    def set_backend(self, value) -> None:  # noqa: ANN001
        if value in self.backends:
            self._write(backend=value)

    def set_mode(self, value) -> None:  # noqa: ANN001
        if value in MODES:
            self._write(mode=value)

    def set_background(self, rgb) -> None:  # noqa: ANN001
        """``rgb``: three floats in [0, 1] (junk is ignored, out-of-range values are clamped)."""
        try:
            vals = [float(v) for v in list(rgb)[:3]]
        except (TypeError, ValueError):
            return
        if len(vals) == 3:
            self._write(background=tuple(clamp(v, 0.0, 1.0, 1.0) for v in vals))

    def _on_color(self, sender, _app_data) -> None:  # noqa: ANN001
        # The callback's app_data holds 0..1 floats but get_value gives 0..255: read the item to be unambiguous.
        value = dpg.get_value(sender) or []
        try:
            self.set_background([float(v) / 255.0 for v in list(value)[:3]])
        except (TypeError, ValueError):
            return

    def set_depth_colormap(self, value) -> None:  # noqa: ANN001
        if value in DEPTH_COLORMAPS:
            self._write(depth_colormap=value)

    def reset_scale(self) -> None:
        self.set_scale(1.0)

    def set_sh_ref(self, value) -> None:  # noqa: ANN001
        if value in SH_REFS:
            self._write(sh_ref=value)

    def set_scale(self, value) -> None:  # noqa: ANN001
        self._write(scale_modifier=clamp(value, MIN_SCALE_MODIFIER, MAX_SCALE_MODIFIER, self.state.scale_modifier))

    def show_backend(self, backend: str, reason: str) -> None:
        if dpg.does_item_exist(self.tag("reason")):
            one = " ".join((f"using: {backend}" + (f" ({reason})" if reason else "")).split())
            text = one if len(one) <= REASON_CHARS else one[: REASON_CHARS - 3] + "..."
            if dpg.get_value(self.tag("reason")) != text:
                dpg.set_value(self.tag("reason"), text)
                dpg.set_value(self.tag("reason_full"), f"using: {backend}" + (f"\n{reason}" if reason else ""))

    def build(self) -> None:
        s = self.state
        dpg.add_combo([str(r) for r in RESOLUTIONS], label="resolution", tag=self.tag("resolution"),
                      default_value=str(s.resolution), callback=lambda _s, v: self.set_resolution(v))
        dpg.add_combo(list(self.backends), label="backend", tag=self.tag("backend"), default_value=s.backend,
                      callback=lambda _s, v: self.set_backend(v))
        dpg.add_text("using: -", tag=self.tag("reason"), color=(150, 150, 150))
        with dpg.tooltip(self.tag("reason")):
            dpg.add_text("using: -", tag=self.tag("reason_full"), wrap=480)
        dpg.add_combo(list(MODES), label="mode", tag=self.tag("mode"), default_value=s.mode,
                      callback=lambda _s, v: self.set_mode(v))
        dpg.add_combo(list(DEPTH_COLORMAPS), label="depth colours", tag=self.tag("depth_colormap"),
                      default_value=s.depth_colormap, callback=lambda _s, v: self.set_depth_colormap(v))
        dpg.add_color_edit([int(255 * c) for c in background_rgb(s.background)] + [255], label="background", tag=self.tag("background"),
                           no_alpha=True, callback=self._on_color)
        dpg.add_combo(list(SH_REFS), label="SH reference", tag=self.tag("sh_ref"), default_value=s.sh_ref,
                      callback=lambda _s, v: self.set_sh_ref(v))
        with dpg.group(horizontal=True):
            dpg.add_slider_float(label="scale", tag=self.tag("scale"), min_value=0.1, max_value=3.0, width=180,
                                 default_value=s.scale_modifier, format="%.2f", callback=lambda _s, v: self.set_scale(v))
            dpg.add_button(label="1x", tag=self.tag("scale_reset"), callback=self.reset_scale)
        with dpg.group(horizontal=True):
            dpg.add_checkbox(label="progressive", tag=self.tag("progressive"), default_value=self.viewer.progressive.enabled,
                             callback=lambda _s, v: self.viewer.set_progressive(v))
            dpg.add_checkbox(label="fps overlay", tag=self.tag("overlay"), default_value=self.viewer.show_overlay,
                             callback=lambda _s, v: self.viewer.set_overlay(v))
        with dpg.tooltip(self.tag("progressive")):
            dpg.add_text("while you drag or Animate runs, render smaller (upscaled) to keep up;\n"
                         "the chosen resolution follows as soon as input stops")
        self._sync_controls()

    def _sync_controls(self) -> None:
        if not dpg.does_item_exist(self.tag("resolution")):
            return
        s = self.state
        dpg.set_value(self.tag("resolution"), str(s.resolution))
        dpg.set_value(self.tag("backend"), s.backend)
        dpg.set_value(self.tag("mode"), s.mode)
        dpg.set_value(self.tag("sh_ref"), s.sh_ref)
        dpg.set_value(self.tag("depth_colormap"), s.depth_colormap)
        dpg.configure_item(self.tag("depth_colormap"), enabled=s.mode == "depth")
        dpg.set_value(self.tag("scale"), s.scale_modifier)
        dpg.configure_item(self.tag("scale_reset"), enabled=s.scale_modifier != 1.0)
        dpg.set_value(self.tag("background"), [int(round(255 * c)) for c in background_rgb(s.background)] + [255])
