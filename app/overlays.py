"""What the viewer draws on top of the head and above the panel: the fps / ms overlay, the depth colour bar and
the one-line status line.

Split out of :mod:`app.viewer` (issue 9) because it is pure presentation: it reads the viewer's state (the last
frame, the render settings, the messages) once per UI frame and only writes DearPyGui items it owns, so the
frame loop stays readable. The :class:`app.viewer.Viewer` owns one :class:`Overlays` and keeps its public
names (``say``, ``status_line``, ``set_overlay``) as thin delegates.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import dearpygui.dearpygui as dpg
import numpy as np
import torch

from gghead_core.pipeline import DEPTH_COLORMAPS as DEPTH_COLORMAP_NAMES
from gghead_core.render import colormap as depth_colormap

if TYPE_CHECKING:
    from app.viewer import Viewer

PANEL_WIDTH = 380
STATUS_CHARS = (PANEL_WIDTH - 28) // 7  # what fits on the one status line (DearPyGui's default font: 7 px)
ERROR_COLOR = (255, 110, 110)
INFO_COLOR = (170, 220, 170)
DIM_COLOR = (150, 150, 150)


class Overlays:
    """The overlay items of one viewer window (built inside its DearPyGui context, updated every UI frame)."""

    def __init__(self, viewer: Viewer) -> None:
        self.viewer = viewer
        self.colorbars: dict[str, str] = {}
        self._status_shown: tuple[str, bool] | None = None

    def build_textures(self) -> None:
        """The depth colour bar textures (call inside ``dpg.texture_registry()``)."""
        self.colorbars = {name: _colorbar_texture(name) for name in DEPTH_COLORMAP_NAMES}

    def build_status_line(self) -> None:
        """One fixed line for messages and errors: nothing below it moves when a message appears."""
        with dpg.child_window(width=PANEL_WIDTH, height=26, tag="status.box", no_scrollbar=True):
            dpg.add_text("", tag="status", color=INFO_COLOR)
            with dpg.tooltip("status", tag="status.tooltip"):
                dpg.add_text("", tag="status.full", wrap=520)

    def build(self) -> None:
        """The fps / ms overlay (top-left of the image) and the depth colour bar (top-right), drawn over it."""
        with dpg.theme() as dark:
            with dpg.theme_component(dpg.mvAll):
                dpg.add_theme_color(dpg.mvThemeCol_ChildBg, (20, 20, 20, 170))
                dpg.add_theme_color(dpg.mvThemeCol_Text, (235, 235, 235, 255))
                dpg.add_theme_style(dpg.mvStyleVar_WindowPadding, 4, 3)
        with dpg.child_window(tag="view.overlay", width=230, height=22, no_scrollbar=True, border=False,
                              show=self.viewer.show_overlay):
            dpg.add_text("", tag="view.overlay.text")
        dpg.bind_item_theme("view.overlay", dark)
        with dpg.child_window(tag="view.depthbar", width=92, height=184, no_scrollbar=True, border=False, show=False):
            dpg.add_text("near", tag="view.depthbar.near")
            dpg.add_image(self.colorbars["rainbow"], tag="view.depthbar.image", width=18, height=128)
            dpg.add_text("far", tag="view.depthbar.far")
        dpg.bind_item_theme("view.depthbar", dark)

    def update(self, now: float, view_pos: tuple[int, int, int]) -> None:
        """Refresh the overlay text and the colour bar; ``view_pos`` is the image's x, y, size in the view."""
        v = self.viewer
        x, y, size = view_pos
        if v.show_overlay:
            r = v.last_result
            fps = v.perf.display_rate.rate(now)
            parts = [f"{fps:.1f} fps"] if fps > 0 else []  # displayed frames per second (none while idle)
            if r is not None and not r.error:
                shown, target = int(r.args.settings.resolution), v.args.settings.resolution
                parts.append(f"{r.timings.total_ms:.0f} ms")
                parts.append(f"{shown}px" + (f" -> {target}" if shown != target else ""))
            text = "  ".join(parts)
            if dpg.get_value("view.overlay.text") != text:
                dpg.set_value("view.overlay.text", text)
            dpg.set_item_pos("view.overlay", [x + 6, y + 6])
        depth = v.args.settings.mode == "depth"
        r = v.last_result
        rng = r.depth_range if (r is not None and not r.error and r.args.settings.mode == "depth") else None
        show_bar = depth and rng is not None
        if dpg.is_item_shown("view.depthbar") != show_bar:
            dpg.configure_item("view.depthbar", show=show_bar)
        if show_bar:
            cmap = self.colorbars.get(v.args.settings.depth_colormap, self.colorbars["rainbow"])
            if dpg.get_item_configuration("view.depthbar.image")["texture_tag"] != cmap:
                dpg.configure_item("view.depthbar.image", texture_tag=cmap)
            dpg.set_value("view.depthbar.near", f"near {rng[0]:.3f}")
            dpg.set_value("view.depthbar.far", f"far  {rng[1]:.3f}")
            dpg.set_item_pos("view.depthbar", [x + size - 98, y + 6])

    def show_fps(self, on: bool) -> None:
        if dpg.does_item_exist("view.overlay"):
            dpg.configure_item("view.overlay", show=on)

    def update_status(self) -> None:
        """Show :meth:`app.viewer.Viewer.status_line`, shortened to one line (the tooltip has all of it)."""
        text, error = self.viewer.status_line()
        if (text, error) == self._status_shown:
            return
        self._status_shown = (text, error)
        one = " ".join(text.split())
        shown = one if len(one) <= STATUS_CHARS else one[: STATUS_CHARS - 3] + "..."
        dpg.set_value("status", shown or "ready")
        dpg.configure_item("status", color=ERROR_COLOR if error else (INFO_COLOR if one else DIM_COLOR))
        dpg.set_value("status.full", text or "ready")


def _colorbar_texture(name: str) -> str:
    """A 1 x 128 static texture of a depth colour map, near (1) at the top."""
    values = torch.linspace(1.0, 0.0, 128).reshape(128, 1)  # [128, 1]
    rgb = depth_colormap(values, name).numpy()  # [128, 1, 3]
    rgba = np.concatenate([rgb, np.ones((128, 1, 1), np.float32)], axis=-1).astype(np.float32)
    tag = f"view.colorbar.{name}"
    dpg.add_static_texture(1, 128, rgba.ravel().tolist(), tag=tag)
    return tag
