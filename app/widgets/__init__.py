"""Side-panel widgets: one small module per panel.

Each widget owns its controls (DearPyGui items tagged ``"<name>.<control>"``) and its state, and writes its part
of the viewer's :class:`app.state.RenderArgs`. Widgets never render or generate anything themselves; the
viewer notices that the arguments changed and asks the worker for a new frame.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import dearpygui.dearpygui as dpg

if TYPE_CHECKING:  # pragma: no cover
    from app.viewer import Viewer


class Widget:
    """Base class: a collapsible section of the side panel."""

    name = "widget"
    title = "Widget"
    default_open = True

    def __init__(self, viewer: Viewer) -> None:
        self.viewer = viewer

    def tag(self, control: str) -> str:
        return f"{self.name}.{control}"

    def build(self) -> None:
        """Create this widget's items inside the current DearPyGui container."""
        raise NotImplementedError

    def on_model(self, info) -> None:  # noqa: ANN001 - app.worker.ModelInfo
        """A new model was loaded (e.g. the number of ws rows changed)."""

    def update(self, dt: float) -> None:
        """Called once per UI frame before the frame is drawn."""


class CaptureProgress:
    """Drives a panel's progress bar, Cancel button and message from the viewer's running capture.

    The Capture and Timeline panels start captures the same way and show them the same way; each owns one of
    these (``tag`` is the panel's tag function, ``say`` its message function) and calls :meth:`update` every
    UI frame with the capture status it cares about.
    """

    def __init__(self, tag: Any, say: Any) -> None:
        self._tag, self._say = tag, say
        self._reported: object | None = None

    def update(self, status: Any, *, counter: str, name: str) -> None:
        """``counter``: the bar's label before ``done/total``; ``name``: the job's name in messages."""
        progress, cancel = self._tag("progress"), self._tag("cancel")
        if status is None or not dpg.does_item_exist(progress):
            return
        if status.running:
            dpg.set_value(progress, status.fraction)
            dpg.configure_item(progress, overlay=f"{counter} {status.done}/{status.total}")
            dpg.configure_item(cancel, enabled=True)
            return
        dpg.configure_item(cancel, enabled=False)
        if self._reported is status:
            return
        self._reported = status
        dpg.set_value(progress, 1.0 if status.output else 0.0)
        dpg.configure_item(progress, overlay="")
        if status.output is not None:
            self._say(f"saved {status.output} ({status.seconds:.1f} s)")
        elif status.cancelled:
            self._say(f"{name} cancelled: nothing written")
        else:
            self._say(f"{name} failed: {status.error}", error=True)
