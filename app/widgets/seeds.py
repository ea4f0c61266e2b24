"""Seed browser: a window with a 4x4 grid of thumbnails of consecutive seeds, to pick heads from.

Thumbnails use the current truncation, noise, style mixing, latent edits, camera and look (the render
settings at thumbnail size); interpolation is left out, each cell is its seed alone. Click a thumbnail to make
it seed A, shift-click to make it seed B. "Prev"/"Next" page through seeds 16 at a time and "go to seed" jumps
to the page holding a seed.

Thumbnails are made by :class:`app.thumbnails.ThumbnailWorker` at low priority (it waits whenever the main
render worker has work); changing page (or anything the thumbnails depend on) drops the old page's queued
work, and pages seen before come from its cache.
"""

from __future__ import annotations

from typing import Any

import dearpygui.dearpygui as dpg
import numpy as np

from app.state import clamp
from app.thumbnails import PAGE_COLS, PAGE_SIZE, THUMB_SIZE, ThumbKey, ThumbnailWorker, thumb_key
from app.widgets import Widget
from app.widgets.latent import MAX_UI_SEED

DIM_COLOR = (150, 150, 150)
CURRENT_COLOR = (255, 210, 90)
B_COLOR = (120, 190, 255)
ERROR_COLOR = (255, 110, 110)
PLACEHOLDER = 0.18  # grey of a cell still being made


def page_start(seed: int) -> int:
    """First seed of the page holding ``seed``."""
    return (int(seed) // PAGE_SIZE) * PAGE_SIZE


def to_rgba_float(image: np.ndarray, out: np.ndarray) -> np.ndarray:
    """uint8 ``[S, S, 3|4]`` -> the float RGBA texture buffer ``out [S, S, 4]`` (in place)."""
    out[..., : image.shape[2]] = image.astype(np.float32) / 255.0
    if image.shape[2] == 3:
        out[..., 3] = 1.0
    return out


class SeedsWidget(Widget):
    name = "seeds"
    title = "Seed browser"
    default_open = False

    def __init__(self, viewer, size: int = THUMB_SIZE) -> None:  # noqa: ANN001
        super().__init__(viewer)
        self.size = int(size)
        self.first_seed = 0
        self.visible = False
        self.keys: list[ThumbKey] = []
        self.images: list[np.ndarray | None] = [None] * PAGE_SIZE  # uint8 thumbnails of the page shown
        self.errors: list[str | None] = [None] * PAGE_SIZE
        self.thumbs = ThumbnailWorker(busy=lambda: not viewer.worker.idle, render_fn=viewer.worker.render_fn)
        self._buffers = [np.full((self.size, self.size, 4), PLACEHOLDER, np.float32) for _ in range(PAGE_SIZE)]
        for b in self._buffers:
            b[..., 3] = 1.0
        self._window_built = False
        self._inputs: tuple | None = None  # what self.keys were made from
        self._marks: tuple | None = None  # (seed A, seed B) the labels show

    # ---- state ---------------------------------------------------------------------------------------------

    @property
    def seeds(self) -> list[int]:
        return [s for s in range(self.first_seed, self.first_seed + PAGE_SIZE) if s <= MAX_UI_SEED]

    def go_to(self, seed: Any) -> None:
        self.first_seed = page_start(int(clamp(seed, 0, MAX_UI_SEED, self.first_seed)))
        self._sync_controls()

    def next_page(self) -> None:
        if self.first_seed + PAGE_SIZE <= MAX_UI_SEED:
            self.go_to(self.first_seed + PAGE_SIZE)

    def prev_page(self) -> None:
        self.go_to(max(0, self.first_seed - PAGE_SIZE))

    def click(self, index: int, shift: bool | None = None) -> None:
        """A click on cell ``index``: its seed becomes seed A (shift: seed B)."""
        seeds = self.seeds
        if not 0 <= index < len(seeds):
            return
        if shift is None:
            shift = dpg.is_key_down(dpg.mvKey_LShift) or dpg.is_key_down(dpg.mvKey_RShift)
        if shift:
            self.viewer.latent.set_seed_b(seeds[index])
        else:
            self.viewer.latent.set_seed(seeds[index])
        self._sync_controls()

    def show(self, on: bool = True) -> None:
        self.visible = bool(on)
        if self.visible:
            self._ensure_window()
        else:  # hidden: no thumbnails are made for nobody (finished ones stay cached)
            self.thumbs.request([])
            self.keys = []
        if dpg.does_item_exist(self.tag("window")):
            dpg.configure_item(self.tag("window"), show=self.visible)
        self._sync_controls()

    def page_keys(self) -> list[ThumbKey]:
        a = self.viewer.args
        return [thumb_key(s, a.latent, a.camera, a.settings, self.size) for s in self.seeds]

    @property
    def pending(self) -> int:
        return self.thumbs.pending

    @property
    def complete(self) -> bool:
        """Every thumbnail of the page shown is in (or failed)."""
        return bool(self.keys) and all(i is not None or e is not None
                                       for i, e in zip(self.images[: len(self.keys)], self.errors[: len(self.keys)], strict=True))

    # ---- frame loop ----------------------------------------------------------------------------------------

    def on_model(self, info) -> None:  # noqa: ANN001
        gen = self.viewer.worker.latents
        self.thumbs.set_generator(gen.G if gen is not None else None)
        self.keys = []  # re-request with the new model

    def update(self, dt: float) -> None:
        if not self.visible:
            return
        if dpg.does_item_exist(self.tag("window")) and not dpg.is_item_shown(self.tag("window")):
            self.show(False)  # closed with the window's own close button
            return
        a = self.viewer.args
        inputs = (a.latent, a.camera, a.settings, self.first_seed, self.size)
        if inputs != self._inputs or not self.keys:
            self._inputs = inputs
            keys = self.page_keys()
        else:
            keys = self.keys
        if keys != self.keys:
            self.keys = keys
            self.images = [None] * PAGE_SIZE
            self.errors = [None] * PAGE_SIZE
            for i in range(PAGE_SIZE):
                self._show_cell(i, None)
            for t in self.thumbs.request(keys):
                self._receive(t)
            self._sync_controls()
        results = self.thumbs.poll()
        for t in results:
            self._receive(t)
        marks = (a.latent.seed, a.latent.seed_b)
        if results or marks != self._marks:
            self._marks = marks
            self._sync_controls()

    def _receive(self, t: Any) -> None:
        try:
            i = self.keys.index(t.key)
        except ValueError:
            return  # a thumbnail of a page no longer shown
        self.images[i], self.errors[i] = t.image, t.error
        self._show_cell(i, t.image)

    def _show_cell(self, i: int, image: np.ndarray | None) -> None:
        buf = self._buffers[i]
        if image is None or image.shape[:2] != buf.shape[:2]:
            buf[..., :3] = PLACEHOLDER
            buf[..., 3] = 1.0
        else:
            to_rgba_float(image, buf)
        if dpg.does_item_exist(self.tag(f"tex.{i}")):
            dpg.set_value(self.tag(f"tex.{i}"), buf)

    def close(self) -> None:
        # Short join: a thumbnail in progress (seconds for a full-size model on a CPU) finishes on its own;
        # the thread is a daemon and touches no DearPyGui state.
        self.thumbs.close(timeout=2.0)

    # ---- controls ------------------------------------------------------------------------------------------

    def build(self) -> None:
        dpg.add_text("Thumbnails of consecutive seeds with the current psi, edits and camera. "
                     "Click: seed A, shift-click: seed B.", wrap=340, color=DIM_COLOR)
        dpg.add_checkbox(label="Show seed browser", tag=self.tag("show"), default_value=self.visible,
                         callback=lambda _s, v: self.show(v))
        self._sync_controls()

    def _ensure_window(self) -> None:
        if self._window_built:
            return
        self._window_built = True
        with dpg.texture_registry():
            for i, buf in enumerate(self._buffers):
                dpg.add_raw_texture(self.size, self.size, buf, format=dpg.mvFormat_Float_rgba, tag=self.tag(f"tex.{i}"))
        cell = self.size + 16
        with dpg.window(label="Seed browser", tag=self.tag("window"), width=PAGE_COLS * cell + 40,
                        height=PAGE_COLS * (cell + 22) + 90, pos=(420, 40), show=False,
                        on_close=lambda: self.show(False)):
            with dpg.group(horizontal=True):
                dpg.add_button(label="< Prev", tag=self.tag("prev"), callback=self.prev_page)
                dpg.add_button(label="Next >", tag=self.tag("next"), callback=self.next_page)
                dpg.add_input_int(label="go to seed", tag=self.tag("goto"), width=120, min_value=0,
                                  max_value=MAX_UI_SEED, min_clamped=True, max_clamped=True, on_enter=True,
                                  default_value=self.first_seed, callback=lambda _s, v: self.go_to(v))
            dpg.add_text("", tag=self.tag("page"), color=DIM_COLOR)
            for row in range(PAGE_SIZE // PAGE_COLS):
                with dpg.group(horizontal=True):
                    for col in range(PAGE_COLS):
                        i = row * PAGE_COLS + col
                        with dpg.group():
                            dpg.add_image_button(self.tag(f"tex.{i}"), tag=self.tag(f"cell.{i}"), width=self.size,
                                                 height=self.size, user_data=i,
                                                 callback=lambda _s, _a, u: self.click(u))
                            dpg.add_text("", tag=self.tag(f"label.{i}"))
        self.viewer.register_text_input(self.tag("goto"))

    def _sync_controls(self) -> None:
        if dpg.does_item_exist(self.tag("show")):
            dpg.set_value(self.tag("show"), self.visible)
        if not dpg.does_item_exist(self.tag("page")):
            return
        seeds = self.seeds
        latent = self.viewer.args.latent
        dpg.set_value(self.tag("goto"), self.first_seed)
        pending = self.thumbs.pending
        failed = next((e for e in self.errors if e), None)
        text = f"seeds {seeds[0]}-{seeds[-1]}" + (f", {pending} to make" if pending else "")
        dpg.set_value(self.tag("page"), text + (f"\nfailed: {failed}" if failed else ""))
        dpg.configure_item(self.tag("page"), color=ERROR_COLOR if failed else DIM_COLOR)
        dpg.configure_item(self.tag("prev"), enabled=self.first_seed > 0)
        for i in range(PAGE_SIZE):
            if not dpg.does_item_exist(self.tag(f"label.{i}")):
                continue
            if i >= len(seeds):
                dpg.configure_item(self.tag(f"cell.{i}"), show=False)
                dpg.set_value(self.tag(f"label.{i}"), "")
                continue
            s = seeds[i]
            mark = " (A)" if s == latent.seed else " (B)" if s == latent.seed_b else ""
            dpg.configure_item(self.tag(f"cell.{i}"), show=True)
            dpg.set_value(self.tag(f"label.{i}"), f"{s}{mark}")
            color = CURRENT_COLOR if s == latent.seed else B_COLOR if s == latent.seed_b else DIM_COLOR
            dpg.configure_item(self.tag(f"label.{i}"), color=color)
