"""Mouse and keyboard for the viewer: orbit / pan drags, wheel zoom, a click that picks a Gaussian, camera
shortcuts, and :func:`trigger_item` (what a user's edit of a DearPyGui item does, for tests and benchmarks).

Split out of :mod:`app.viewer` (issue 9): the gesture state (current drag, pending wheel and keys, the text
inputs that swallow shortcuts) is its own small state machine, read once per UI frame; the viewer owns one
:class:`InputHandler` and keeps ``register_text_input`` and ``trigger`` as thin delegates.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import dearpygui.dearpygui as dpg

if TYPE_CHECKING:
    from app.viewer import Viewer

CLICK_SLOP_PX = 4.0  # a left press and release closer than this on the head is a click (UV inspector pick)


class InputHandler:
    """The gesture state of one viewer window; DearPyGui's wheel and key handlers feed it."""

    def __init__(self, viewer: Viewer) -> None:
        self.viewer = viewer
        self.text_inputs: list[str] = []
        self.drag: tuple[str, tuple[float, float]] | None = None  # ("orbit"|"pan", last mouse position)
        self._press: tuple[float, float] | None = None  # where a left drag began (a release nearby is a click)
        self._wheel = 0.0
        self._keys: list[int] = []

    def build(self) -> None:
        """Register the wheel and key handlers (inside the viewer's DearPyGui context)."""
        with dpg.handler_registry():
            dpg.add_mouse_wheel_handler(callback=self._on_wheel)
            dpg.add_key_press_handler(callback=self._on_key)

    def _on_wheel(self, _sender, delta) -> None:  # noqa: ANN001
        self.viewer._last_activity = time.perf_counter()
        if dpg.is_item_hovered("view.image"):
            self._wheel += float(delta)

    def _on_key(self, _sender, key) -> None:  # noqa: ANN001
        self.viewer._last_activity = time.perf_counter()
        self._keys.append(int(key))

    def register_text_input(self, *tags: str) -> None:
        """Keyboard shortcuts are ignored while one of these inputs has the focus."""
        self.text_inputs.extend(tags)

    def typing(self) -> bool:
        return any(dpg.does_item_exist(t) and (dpg.is_item_active(t) or dpg.is_item_focused(t)) for t in self.text_inputs)

    def handle(self) -> None:
        """Turn this frame's mouse state, wheel and keys into camera moves (and a UV pick on a click)."""
        v = self.viewer
        mouse = tuple(dpg.get_mouse_pos(local=False))
        hovered = dpg.is_item_hovered("view.image")
        left = dpg.is_mouse_button_down(dpg.mvMouseButton_Left)
        other = dpg.is_mouse_button_down(dpg.mvMouseButton_Right) or dpg.is_mouse_button_down(dpg.mvMouseButton_Middle)
        if self.drag is None:
            if hovered and left:
                self.drag = ("orbit", mouse)
                self._press = mouse
            elif hovered and other:
                self.drag = ("pan", mouse)
        else:
            kind, last = self.drag
            if (kind == "orbit" and not left) or (kind == "pan" and not other):
                self.drag = None
                press, self._press = self._press, None
                if kind == "orbit" and press is not None and math.dist(press, mouse) < CLICK_SLOP_PX:
                    v.uv.on_view_click(mouse, v._image_rect)  # a click, not a drag: pick a Gaussian
            else:
                dx, dy = mouse[0] - last[0], mouse[1] - last[1]
                if dx or dy:
                    if kind == "orbit":
                        v.camera.orbit(dx, dy)
                    else:
                        v.camera.pan(dx, dy, v._image_rect[2])
                self.drag = (kind, mouse)
        if self._wheel:
            v.camera.zoom(self._wheel)
            self._wheel = 0.0
        keys, self._keys = self._keys, []
        if keys and not self.typing():
            for key in keys:
                if key == dpg.mvKey_F:
                    v.camera.preset("front")
                elif key == dpg.mvKey_L:
                    v.camera.preset("left")
                elif key == dpg.mvKey_R:
                    v.camera.preset("right")
                elif key == dpg.mvKey_Home:
                    v.camera.reset()


def trigger_item(tag: str, value: Any = None) -> None:
    """Do what a user's edit of item ``tag`` does: set its value and run its callback."""
    if value is not None:
        dpg.set_value(tag, value)
    callback = dpg.get_item_callback(tag)
    if callback is None:
        raise ValueError(f"item {tag!r} has no callback")
    call_args = (tag, dpg.get_value(tag) if value is not None else None, dpg.get_item_user_data(tag))
    callback(*call_args[: _positional_count(callback)])


def _positional_count(fn: Callable[..., Any]) -> int:
    """How many of (sender, app_data, user_data) DearPyGui would pass to ``fn`` (it passes as many as fit)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 3
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return 3
    return min(3, sum(p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD) for p in params))
