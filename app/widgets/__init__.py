"""Side-panel widgets: one small module per panel.

Each widget owns its controls (DearPyGui items tagged ``"<name>.<control>"``) and its state, and writes its part
of the viewer's :class:`app.state.RenderArgs`. Widgets never render or generate anything themselves; the
viewer notices that the arguments changed and asks the worker for a new frame.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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
