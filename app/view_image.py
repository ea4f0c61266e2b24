"""The head's image in the view: its raw float RGBA texture, the preview's UV corner, and its square layout.

Split out of :mod:`app.viewer` (issue 9): showing a frame is a pointer swap on a DearPyGui raw texture (a new
texture only when the buffer size changes, see :mod:`app.display`), a smaller preview is drawn into the
texture's corner and shown through the image's UV range, and the image is scaled to the largest square the
view area allows. The viewer owns one :class:`ViewImage`; tests read ``Viewer._front`` / ``Viewer._image_rect``.
"""

from __future__ import annotations

import dearpygui.dearpygui as dpg
import numpy as np

from app.display import new_rgba_buffer
from app.overlays import PANEL_WIDTH
from app.worker import FrameResult


class ViewImage:
    """The ``view.image`` item and the buffer it shows (the "front" buffer, owned until the next frame)."""

    def __init__(self) -> None:
        self.front: np.ndarray | None = None  # [T, T, 4] float32 RGBA, the buffer the texture points at
        self.texture_tag: str | None = None
        self._serial = 0
        self._uv: tuple[float, float] = (1.0, 1.0)
        self.image_rect = (0.0, 0.0, 1.0)  # x, y, size of the image in viewport pixels
        self.view_pos = (0, 0, 1)  # x, y, size of the image inside the view area (for the overlays)

    def build_texture(self, res: int) -> None:
        """A dark grey texture until the first frame arrives (call inside ``dpg.texture_registry()``)."""
        self.front = new_rgba_buffer(res)
        self.front[..., :3] = 0.12
        self.texture_tag = self._new_texture(self.front)

    def build(self, res: int) -> None:
        dpg.add_image(self.texture_tag, tag="view.image", width=res, height=res)

    def _new_texture(self, buffer: np.ndarray) -> str:
        self._serial += 1
        tag = f"view.texture.{self._serial}"
        dpg.add_raw_texture(buffer.shape[1], buffer.shape[0], buffer, format=dpg.mvFormat_Float_rgba, tag=tag)
        return tag

    def show(self, buf: np.ndarray, size: int) -> np.ndarray | None:
        """Show ``buf`` (a ``size`` px frame in its corner); returns the previous front buffer for the pool."""
        if self.front is None or buf.shape != self.front.shape:  # resolution changed: a texture of the new size
            old = self.texture_tag
            with dpg.texture_registry():
                self.texture_tag = self._new_texture(buf)
            dpg.configure_item("view.image", texture_tag=self.texture_tag)
            dpg.delete_item(old)
        else:
            dpg.set_value(self.texture_tag, buf)  # pointer swap; uploaded on the next frame
        uv = (min(1.0, size / buf.shape[1]), min(1.0, size / buf.shape[0]))
        if uv != self._uv:  # a preview fills the texture's corner: show just that corner, scaled up
            dpg.configure_item("view.image", uv_max=uv)
            self._uv = uv
        old_front, self.front = self.front, buf
        return old_front

    def layout(self) -> bool:
        """Scale the image to the largest square that fits the view area, centred; True when it moved."""
        w = dpg.get_viewport_client_width() - PANEL_WIDTH - 32
        h = dpg.get_viewport_client_height() - 24
        size = max(64, min(w, h))
        x0 = max(0, (w - size) // 2)
        y0 = max(0, (h - size) // 2)
        moved = dpg.get_item_width("view.image") != size or dpg.get_item_pos("view.image") != [x0, y0]
        if moved:
            dpg.configure_item("view.image", width=size, height=size)
            dpg.set_item_pos("view.image", [x0, y0])
        rect_min = dpg.get_item_rect_min("view.image")
        self.image_rect = (float(rect_min[0]), float(rect_min[1]), float(size))
        self.view_pos = (x0, y0, size)  # in the view child window's coordinates (for the overlays)
        return moved

    def image(self, r: FrameResult | None) -> np.ndarray:
        """The RGBA float32 image shown after frame ``r`` ``[R, R, 4]`` (a copy; a preview is smaller)."""
        assert self.front is not None
        if r is None or r.error or r.buffer is not self.front:
            return self.front.copy()
        size = int(r.args.settings.resolution)
        return self.front[:size, :size].copy()
