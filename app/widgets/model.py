"""Model panel: the loaded checkpoint's facts, opening another one (file dialog, path box, recent files).

Loading runs on the worker thread. A file that fails to load leaves the current model in place and shows the
error here in red; a successful load goes to the front of the recent-files list in the settings file.
"""

from __future__ import annotations

from pathlib import Path

import dearpygui.dearpygui as dpg

from app.widgets import Widget

ERROR_COLOR = (255, 110, 110)
OK_COLOR = (170, 220, 170)
DIM_COLOR = (150, 150, 150)


class ModelWidget(Widget):
    name = "model"
    title = "Model"

    def __init__(self, viewer) -> None:  # noqa: ANN001
        super().__init__(viewer)
        self.info = None  # app.worker.ModelInfo of the model in use
        self.loading: str | None = None
        self.error: str | None = None
        self.backend = "-"

    def open_path(self, path: str | None) -> None:
        """Ask the worker to load ``path`` (None or empty: the bundled demo model)."""
        path = (str(path).strip() or None) if path is not None else None
        if path is not None:
            path = str(Path(path).expanduser())
        self.loading = path or "demo model"
        self.error = None
        self.viewer.say(f"loading {self.loading} ...")
        self.viewer.worker.load_model(path)
        self._sync_controls()

    def on_model_event(self, event) -> None:  # noqa: ANN001 - app.worker.ModelEvent
        self.loading = None
        if event.ok:
            self.info = event.info
            self.error = None
            self.viewer.say(f"loaded {event.info.name} ({event.info.load_ms / 1e3:.1f} s)")
            if event.path:  # a file the user chose (the bundled demo model is not "recent")
                self.viewer.settings.add_recent(event.info.path or event.path)
                self.viewer.save_settings()
        else:
            shown = event.path or "the demo model"
            self.error = f"could not load {shown}: {event.error}" + (
                "\n(keeping the current model)" if self.info is not None else ""
            )
            self.viewer.say(self.error, error=True)
        self._sync_controls()

    def set_backend(self, backend: str) -> None:
        if backend and backend != self.backend:
            self.backend = backend
            self._sync_controls()

    def _on_file_dialog(self, _sender, app_data) -> None:  # noqa: ANN001
        selections = (app_data or {}).get("selections") or {}
        path = next(iter(selections.values()), None) or (app_data or {}).get("file_path_name")
        if path:
            dpg.set_value(self.tag("path"), path)
            self.open_path(path)

    def _on_recent(self, _sender, value) -> None:  # noqa: ANN001
        if value:
            dpg.set_value(self.tag("path"), value)
            self.open_path(value)

    def build(self) -> None:
        dpg.add_text("", tag=self.tag("name"), wrap=320)
        dpg.add_text("", tag=self.tag("facts"), wrap=340, color=DIM_COLOR)
        # Messages go to the viewer's one status line; this item keeps the last one (hidden) for tests/scripts.
        dpg.add_text("", tag=self.tag("status"), wrap=320, color=ERROR_COLOR, show=False)
        dpg.add_input_text(label="path", tag=self.tag("path"), width=250, on_enter=True, hint="checkpoint .pkl / .safetensors",
                           callback=lambda _s, v: self.open_path(v))
        with dpg.group(horizontal=True):
            dpg.add_button(label="Load path", tag=self.tag("load"), callback=lambda: self.open_path(dpg.get_value(self.tag("path"))))
            dpg.add_button(label="Open...", tag=self.tag("open"), callback=lambda: dpg.show_item(self.tag("dialog")))
            dpg.add_button(label="Demo model", tag=self.tag("demo"), callback=lambda: self.open_path(None))
        dpg.add_combo([], label="recent", tag=self.tag("recent"), width=250, callback=self._on_recent)
        with dpg.file_dialog(label="Open a GGHead checkpoint", directory_selector=False, show=False,
                             tag=self.tag("dialog"), width=700, height=420, modal=True, callback=self._on_file_dialog):
            dpg.add_file_extension("Checkpoints (*.pkl *.safetensors){.pkl,.safetensors}")
            dpg.add_file_extension(".*")
        self.viewer.register_text_input(self.tag("path"))
        self._sync_controls()

    def _sync_controls(self) -> None:
        if not dpg.does_item_exist(self.tag("name")):
            return
        info = self.info
        if info is None:
            dpg.set_value(self.tag("name"), "no model loaded")
            dpg.set_value(self.tag("facts"), "")
        else:
            dpg.set_value(self.tag("name"), info.name)
            facts = (
                f"z {info.z_dim}  w {info.w_dim}  c {info.c_dim}  ws {info.num_ws}\n"
                f"Gaussians {info.num_gaussians:,}  SH degree {info.sh_degree}\n"
                f"device {info.device}  backend {self.backend}"
            )
            if info.device_note:
                facts += f"\n{info.device_note}"
            dpg.set_value(self.tag("facts"), facts)
        if self.loading:
            dpg.configure_item(self.tag("status"), color=OK_COLOR)
            dpg.set_value(self.tag("status"), f"loading {self.loading} ...")
        else:
            dpg.configure_item(self.tag("status"), color=ERROR_COLOR)
            dpg.set_value(self.tag("status"), self.error or "")
        dpg.configure_item(self.tag("recent"), items=list(self.viewer.settings.recent_files))
