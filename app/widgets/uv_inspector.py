"""UV inspector: the generator's UV attribute maps of the current head, linked to the 3D view.

The side-panel section holds the options; the maps themselves open in a second window ("UV maps"): the chosen
attribute as an image (scalars on a dark-blue -> yellow ramp, vectors as RGB) with a colour bar and its value
range. Hovering a texel selects the Gaussians it owns (the owner-texel rule of :mod:`gghead_core.uv_maps`);
dragging pins a box of texels; right click clears. The selection is tinted in the 3D view, "show only" hides the
rest. A left click on the head (without dragging) picks the front-most Gaussian under the cursor and marks its
texel in the map. Debug views: centres as small opaque dots, a global opacity threshold, and the render
panel's scale multiplier.

All of it is written into ``viewer.args.inspect`` (an :class:`gghead_core.InspectSpec`); the worker applies
:func:`gghead_core.inspect_view` before rendering, so every backend shows the same thing. The maps are
computed in a background thread (one synthesis, like a head change) only while the maps window is open.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import dearpygui.dearpygui as dpg
import numpy as np

from app.state import clamp
from app.widgets import Widget
from gghead_core import (
    MAP_INFO,
    MAP_NAMES,
    InspectSpec,
    colorize,
    inspect_view_indexed,
    jobs,
    one_line,
    pick_gaussian,
    selection_indices,
    uv_maps,
)

MAP_PX = 512  # the map is drawn at this size whatever the plane resolution
BAR_STEPS = 256
DIM_OUTSIDE = 0.3  # brightness of texels that spawn no Gaussian when "dim" is on
NO_DIM = ("template_position", "template_coverage", "spawn_count", "spawn_mask")


class UVInspectorWidget(Widget):
    name = "uv"
    title = "UV inspector"
    default_open = False

    def __init__(self, viewer) -> None:  # noqa: ANN001
        super().__init__(viewer)
        self.attribute = "color"
        self.dim_outside = True
        self.window_open = False
        self.maps: Any = None  # gghead_core.UVMaps of the head shown in the window
        self.error = ""
        self.selected_count = 0
        self._maps_key: Any = None
        self._computing: Any = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._result: tuple[Any, Any, str] | None = None
        self._built_window = False
        self._texture: str | None = None
        self._texture_res = 0
        self._texture_buf: np.ndarray | None = None
        self._bar_buf = np.ones((1, BAR_STEPS, 4), np.float32)
        self._serial = 0
        self._image_dirty = True
        self._anchor: tuple[int, int] | None = None
        self._pinned = False
        self._counted_box: Any = ()
        self.hover_texel: tuple[int, int] | None = None

    # ---- state ---------------------------------------------------------------------------------------------

    @property
    def spec(self) -> InspectSpec:
        return self.viewer.args.inspect or InspectSpec()

    def _write(self, **changes: Any) -> None:
        new = replace(self.spec, **changes)
        self.viewer.args.inspect = None if new == InspectSpec() else new
        self._sync_controls()

    def set_attribute(self, name: str) -> None:
        if name in MAP_INFO:
            self.attribute = name
            self._image_dirty = True
            self._sync_controls()

    def set_dim(self, value: Any) -> None:
        self.dim_outside = bool(value)
        self._image_dirty = True

    def set_highlight(self, value: Any) -> None:
        self._write(highlight=bool(value))

    def set_show_only(self, value: Any) -> None:
        self._write(show_only=bool(value))

    def set_centres(self, value: Any) -> None:
        self._write(centres=bool(value))

    def set_centre_size(self, value: Any) -> None:
        self._write(centre_size=clamp(value, 1e-4, 0.05, self.spec.centre_size))

    def set_opacity_threshold(self, value: Any) -> None:
        self._write(opacity_threshold=clamp(value, 0.0, 1.0, self.spec.opacity_threshold))

    def set_box(self, box: tuple[int, int, int, int] | None, *, pinned: bool | None = None) -> None:
        """Select the Gaussians owned by texels ``(row0, col0, row1, col1)`` (half-open); None clears the box."""
        if pinned is not None:
            self._pinned = pinned
        if box is not None:
            r0, c0, r1, c1 = (int(v) for v in box)
            if r1 <= r0 or c1 <= c0 or r0 < 0 or c0 < 0:
                return
            box = (r0, c0, r1, c1)
        if box != self.spec.box:
            self._write(box=box)

    def clear_selection(self) -> None:
        self._pinned = False
        self._anchor = None
        self._write(box=None, picked=None)

    def set_open(self, value: Any) -> None:
        self.window_open = bool(value)
        if self._built_window:
            dpg.configure_item(self.tag("window"), show=self.window_open)
        if dpg.does_item_exist(self.tag("open")):
            dpg.set_value(self.tag("open"), self.window_open)

    def export_maps(self) -> str | None:
        """Write the current head's maps (``export-uv``: PNGs, npz, manifest, recipe) into the next free
        ``uv_maps_NNNN/`` of the output folder, in the background through the capture runner (progress and
        cancel in the Capture panel). Returns an error sentence or None."""
        gen = self.viewer.worker.latents
        if gen is None:
            return "export maps: no model loaded"
        job = jobs.ExportUVJob(latent=self.viewer.args.latent)
        folder = self.viewer.output_dir

        def work(progress, cancel) -> Path:  # noqa: ANN001
            path = next_free_folder(folder, "uv_maps")
            jobs.run_job(gen.G, job, f"{path}/", progress=progress, cancel=cancel)
            return path

        if not self.viewer.captures.start("uv maps", work):
            return "another capture is still running"
        return None

    # ---- picking in the 3D view ----------------------------------------------------------------------------

    def pick_at(self, x: float, y: float) -> int | None:
        """Pick the Gaussian under pixel-index position ``(x, y)`` of the frame on screen (its own arguments,
        camera and debug view), mark it and return its index (None: nothing there; the mark is cleared)."""
        result = self.viewer.last_result
        gen = self.viewer.worker.latents
        if result is None or result.error or gen is None:
            return None
        args = result.args
        g = gen.cached(args.latent)
        if g is None:
            return None
        spec = args.inspect
        idx = None
        view = g
        if spec is not None and spec.changes_view:
            view, idx = inspect_view_indexed(g, selection_indices(spec, gen.mapping), spec)
        j = pick_gaussian(view, args.camera, args.settings.resolution, x, y,
                          scale_modifier=args.settings.scale_modifier)
        picked = None if j is None else int(idx[j]) if idx is not None else int(j)
        self._write(picked=picked)
        return picked

    def on_view_click(self, mouse: tuple[float, float], image_rect: tuple[float, float, float]) -> None:
        """A click (no drag) on the view image at viewport position ``mouse``; picks while the window is open."""
        if not self.window_open or self.viewer.last_result is None:
            return
        x0, y0, size = image_rect
        res = self.viewer.last_result.args.settings.resolution
        u, v = (mouse[0] - x0) / size * res, (mouse[1] - y0) / size * res
        if 0 <= u < res and 0 <= v < res:
            self.pick_at(u - 0.5, v - 0.5)

    # ---- the maps --------------------------------------------------------------------------------------------

    def on_model(self, info) -> None:  # noqa: ANN001
        """Another model: texel boxes and Gaussian indices meant the old one's template."""
        self.maps = None
        self._maps_key = None
        self.clear_selection()

    def _request_maps(self) -> None:
        gen = self.viewer.worker.latents
        if gen is None or not self.window_open:
            return
        latent = self.viewer.args.latent
        key = (id(gen), latent.key())
        if key in (self._maps_key, self._computing) or (self._thread is not None and self._thread.is_alive()):
            return
        self._computing = key
        self._thread = threading.Thread(target=self._compute, args=(key, gen, latent), daemon=True,
                                        name="gghead-uv-maps")
        self._thread.start()

    def _compute(self, key: Any, gen: Any, latent: Any) -> None:
        try:
            result = (key, uv_maps(gen.G, latent, mapping=gen.mapping), "")
        except Exception as exc:  # shown in the window, never raised into the UI
            result = (key, None, one_line(exc, with_type=True))
        with self._lock:
            self._result = result

    def _take_result(self) -> None:
        with self._lock:
            result, self._result = self._result, None
        if result is None:
            return
        key, maps, error = result
        self._computing = None
        self._maps_key = key
        self.error = error
        if maps is not None:
            self.maps = maps
            self._image_dirty = True

    def wait_for_maps(self, timeout: float = 60.0) -> bool:
        """Tests: step the viewer until the maps of the current head are shown."""
        import time

        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            self.viewer.step()
            gen = self.viewer.worker.latents
            if gen is not None and self._maps_key == (id(gen), self.viewer.args.latent.key()) and not self._image_dirty:
                return True
            time.sleep(0.005)
        return False

    def map_image(self) -> np.ndarray | None:
        """The picture of the chosen attribute, ``[R, R, 4]`` float32 RGBA (what the window shows)."""
        if self.maps is None:
            return None
        name = self.attribute
        rgb = colorize(self.maps.normalized(name))
        if self.dim_outside and name not in NO_DIM:
            rgb = rgb * np.where(self.maps.maps["spawn_mask"] > 0, 1.0, DIM_OUTSIDE)[..., None]
        out = np.ones(rgb.shape[:2] + (4,), np.float32)
        out[..., :3] = rgb
        return out

    # ---- DearPyGui -------------------------------------------------------------------------------------------

    def build(self) -> None:
        s = self.spec
        dpg.add_checkbox(label="show the UV maps window", tag=self.tag("open"), default_value=self.window_open,
                         callback=lambda _s, v: self.set_open(v))
        dpg.add_combo(list(MAP_NAMES), label="attribute", tag=self.tag("attribute"), default_value=self.attribute,
                      callback=lambda _s, v: self.set_attribute(v))
        dpg.add_checkbox(label="dim texels without Gaussians", tag=self.tag("dim"), default_value=self.dim_outside,
                         callback=lambda _s, v: self.set_dim(v))
        dpg.add_checkbox(label="tint the selection in 3D", tag=self.tag("highlight"), default_value=s.highlight,
                         callback=lambda _s, v: self.set_highlight(v))
        dpg.add_checkbox(label="show only the selection", tag=self.tag("show_only"), default_value=s.show_only,
                         callback=lambda _s, v: self.set_show_only(v))
        dpg.add_checkbox(label="centres as points", tag=self.tag("centres"), default_value=s.centres,
                         callback=lambda _s, v: self.set_centres(v))
        dpg.add_slider_float(label="point size", tag=self.tag("centre_size"), min_value=0.0005, max_value=0.01,
                             default_value=s.centre_size, format="%.4f", callback=lambda _s, v: self.set_centre_size(v))
        dpg.add_slider_float(label="opacity >=", tag=self.tag("opacity"), min_value=0.0, max_value=1.0,
                             default_value=s.opacity_threshold, format="%.2f",
                             callback=lambda _s, v: self.set_opacity_threshold(v))
        with dpg.group(horizontal=True):
            dpg.add_button(label="clear selection", tag=self.tag("clear"), callback=lambda: self.clear_selection())
            dpg.add_button(label="export maps", tag=self.tag("export"), callback=lambda: self._on_export())
        dpg.add_text("", tag=self.tag("info"), wrap=340)
        dpg.add_text("hover or drag in the UV map to select (right click clears); click the head to pick; "
                     "the render panel's scale multiplies splat sizes", wrap=340, color=(150, 150, 150))

    def _on_export(self) -> None:
        self.error = self.export_maps() or ""

    def _build_window(self) -> None:
        self._built_window = True
        with dpg.texture_registry():
            dpg.add_raw_texture(BAR_STEPS, 1, self._bar_buf, format=dpg.mvFormat_Float_rgba, tag=self.tag("bar_tex"))
        self._new_texture(8)
        width = MAP_PX + 24
        x = max(0, dpg.get_viewport_client_width() - width - 12)  # at the right edge: the head stays visible
        with dpg.window(label="UV maps", tag=self.tag("window"), show=self.window_open, width=width,
                        height=MAP_PX + 150, pos=(x, 12), no_scrollbar=True,
                        on_close=lambda: self.set_open(False)):
            dpg.add_text("", tag=self.tag("title"), wrap=MAP_PX)
            with dpg.drawlist(width=MAP_PX, height=MAP_PX, tag=self.tag("canvas")):
                dpg.draw_image(self._texture, (0, 0), (MAP_PX, MAP_PX), tag=self.tag("image"))
                dpg.draw_rectangle((0, 0), (1, 1), color=(255, 0, 220, 255), thickness=2, tag=self.tag("box"),
                                   show=False)
                dpg.draw_circle((0, 0), 6, color=(0, 230, 255, 255), thickness=2, tag=self.tag("pick"), show=False)
            with dpg.drawlist(width=MAP_PX, height=14, tag=self.tag("bar")):
                dpg.draw_image(self.tag("bar_tex"), (0, 0), (MAP_PX, 14))
            with dpg.group(horizontal=True):
                dpg.add_text("", tag=self.tag("lo"))
                dpg.add_spacer(width=MAP_PX - 260)
                dpg.add_text("", tag=self.tag("hi"))
            dpg.add_text("", tag=self.tag("hover"), wrap=MAP_PX)

    def _new_texture(self, res: int) -> None:
        old = self._texture
        self._serial += 1
        self._texture = self.tag(f"tex{self._serial}")
        self._texture_res = res
        self._texture_buf = np.zeros((res, res, 4), np.float32)
        self._texture_buf[..., 3] = 1.0
        with dpg.texture_registry():
            dpg.add_raw_texture(res, res, self._texture_buf, format=dpg.mvFormat_Float_rgba, tag=self._texture)
        if old is not None:
            dpg.configure_item(self.tag("image"), texture_tag=self._texture)
            dpg.delete_item(old)

    def _refresh_image(self) -> None:
        img = self.map_image()
        if img is None:
            return
        res = img.shape[0]
        if res != self._texture_res:
            self._new_texture(res)
        self._texture_buf = np.ascontiguousarray(img)
        dpg.set_value(self._texture, self._texture_buf)
        info = MAP_INFO[self.attribute]
        if info.channels == 1:
            bar = colorize(np.linspace(0.0, 1.0, BAR_STEPS))
        else:
            bar = np.repeat(np.linspace(0.0, 1.0, BAR_STEPS, dtype=np.float32)[:, None], 3, axis=1)
        self._bar_buf = np.ones((1, BAR_STEPS, 4), np.float32)
        self._bar_buf[0, :, :3] = bar
        dpg.set_value(self.tag("bar_tex"), self._bar_buf)
        lo, hi = self.maps.ranges[self.attribute]
        unit = f" {info.unit}" if info.unit else ""
        per = " (each channel)" if info.channels == 3 else ""
        dpg.set_value(self.tag("lo"), f"{lo:.4g}{unit}")
        dpg.set_value(self.tag("hi"), f"{hi:.4g}{unit}{per}")
        dpg.set_value(self.tag("title"), f"{self.attribute}: {info.description}")
        self._image_dirty = False

    def _canvas_texel(self) -> tuple[int, int] | None:
        if self.maps is None:
            return None
        mx, my = dpg.get_mouse_pos(local=False)
        x0, y0 = dpg.get_item_rect_min(self.tag("canvas"))
        r = self.maps.resolution
        col, row = int((mx - x0) / MAP_PX * r), int((my - y0) / MAP_PX * r)
        return (min(max(row, 0), r - 1), min(max(col, 0), r - 1))

    def _handle_mouse(self) -> None:
        hovered = self.window_open and self.maps is not None and dpg.is_item_hovered(self.tag("canvas"))
        texel = self._canvas_texel() if hovered or self._anchor is not None else None
        left = dpg.is_mouse_button_down(dpg.mvMouseButton_Left)
        if self._anchor is not None and texel is not None:
            if left:
                (ar, ac), (tr, tc) = self._anchor, texel
                self.set_box((min(ar, tr), min(ac, tc), max(ar, tr) + 1, max(ac, tc) + 1), pinned=True)
            else:
                self._anchor = None
        elif hovered and left and texel is not None:
            self._anchor = texel
            self.set_box((texel[0], texel[1], texel[0] + 1, texel[1] + 1), pinned=True)
        elif hovered and dpg.is_mouse_button_clicked(dpg.mvMouseButton_Right):
            self.clear_selection()
        elif hovered and not self._pinned and texel is not None:
            self.set_box((texel[0], texel[1], texel[0] + 1, texel[1] + 1))
        elif not hovered and not self._pinned and self.spec.box is not None:
            self.set_box(None)
        self.hover_texel = texel if hovered else None

    def update(self, dt: float) -> None:
        if self.window_open and not self._built_window:
            self._build_window()
        self._take_result()
        if not self._built_window:
            return
        self._request_maps()
        if self._image_dirty:
            self._refresh_image()
        self._handle_mouse()
        self._draw_marks()
        self._update_texts()

    def _draw_marks(self) -> None:
        s = self.spec
        scale = MAP_PX / self.maps.resolution if self.maps is not None else 1.0
        if s.box is not None and self.maps is not None:
            r0, c0, r1, c1 = s.box
            dpg.configure_item(self.tag("box"), pmin=(c0 * scale, r0 * scale), pmax=(c1 * scale, r1 * scale),
                               show=True)
        else:
            dpg.configure_item(self.tag("box"), show=False)
        gen = self.viewer.worker.latents
        if s.picked is not None and self.maps is not None and gen is not None and s.picked < gen.mapping.num_gaussians:
            sr, sc = gen.mapping.sample_rc[s.picked]
            dpg.configure_item(self.tag("pick"), center=((sc + 0.5) * scale, (sr + 0.5) * scale), show=True)
        else:
            dpg.configure_item(self.tag("pick"), show=False)

    def _update_texts(self) -> None:
        s = self.spec
        gen = self.viewer.worker.latents
        if s.box != self._counted_box:
            self._counted_box = s.box
            self.selected_count = 0 if gen is None or s.box is None else int(selection_indices(s, gen.mapping).size)
        lines = []
        if self.error:
            lines.append(self.error if self.error.startswith(("export", "another")) else f"maps failed: {self.error}")
        elif self.window_open and self.maps is None:
            lines.append("computing the maps ...")
        if s.box is not None:
            r0, c0, r1, c1 = s.box
            lines.append(f"selection: {self.selected_count} Gaussians in texel rows {r0}..{r1 - 1}, cols {c0}..{c1 - 1}")
        if s.show_only and s.box is None and s.picked is None:
            lines.append("show only: nothing is selected, so nothing is drawn")
        if s.picked is not None and gen is not None and s.picked < gen.mapping.num_gaussians:
            r, c = gen.mapping.texel_of(s.picked)
            lines.append(f"picked: Gaussian {s.picked}, texel (row {r}, col {c})")
        text = "\n".join(lines)
        if dpg.get_value(self.tag("info")) != text:
            dpg.set_value(self.tag("info"), text)
        hover = ""
        if self.hover_texel is not None and self.maps is not None:
            r, c = self.hover_texel
            vals = ", ".join(f"{v:.4g}" for v in self.maps.value_at(self.attribute, r, c))
            owned = int(self.maps.maps["spawn_count"][r, c])
            hover = f"texel (row {r}, col {c}): {self.attribute} = {vals}; owns {owned} Gaussian(s)"
        if dpg.get_value(self.tag("hover")) != hover:
            dpg.set_value(self.tag("hover"), hover)

    def _sync_controls(self) -> None:
        if not dpg.does_item_exist(self.tag("highlight")):
            return
        s = self.spec
        dpg.set_value(self.tag("attribute"), self.attribute)
        dpg.set_value(self.tag("highlight"), s.highlight)
        dpg.set_value(self.tag("show_only"), s.show_only)
        dpg.set_value(self.tag("centres"), s.centres)
        dpg.set_value(self.tag("centre_size"), s.centre_size)
        dpg.set_value(self.tag("opacity"), s.opacity_threshold)


def next_free_folder(parent: Path, prefix: str) -> Path:
    """``parent/prefix_NNNN`` with NNNN one above the highest number in use (folders are never reused)."""
    highest = 0
    if parent.is_dir():
        for p in parent.iterdir():
            head, _, num = p.name.rpartition("_")
            if head == prefix and num.isdigit():
                highest = max(highest, int(num))
    return parent / f"{prefix}_{highest + 1:04d}"
