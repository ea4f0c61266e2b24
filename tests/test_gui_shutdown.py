"""Closing the viewer window while a turntable export runs: the export is cancelled, no partial file stays,
the worker stops and the settings are saved. (Own module: it needs a viewer of its own to close.)"""

from __future__ import annotations

import json
import os
import threading
import time

import pytest

if not os.environ.get("DISPLAY"):
    pytest.skip(
        "GUI tests need an X display (DearPyGui aborts the process without one); run under "
        'xvfb-run -a -s "-screen 0 1920x1080x24"',
        allow_module_level=True,
    )

import dearpygui.dearpygui as dpg  # noqa: E402

from app.viewer import Viewer  # noqa: E402
from tests.test_gui_viewer import model_path  # noqa: E402


def test_closing_during_export_cancels_and_leaves_no_file(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    out = tmp_path / "captures"
    v = Viewer(model_path(), resolution=256, output_dir=out, width=1000, height=700)
    v.start()
    try:
        assert v.wait(120), v.status
        v.trigger("capture.frames", 500)
        v.trigger("capture.tt_resolution", "256")
        v.trigger("capture.turntable")
        deadline = time.time() + 120
        while v.capture.runner.status.done < 1 and v.capture.runner.busy and time.time() < deadline:
            v.step()
            time.sleep(0.01)
        assert v.capture.runner.busy, "the export should still be running when the window closes"
        dpg.stop_dearpygui()  # what the window's close button does
        assert v.step() is False
        t0 = time.time()
        v.close()
        assert time.time() - t0 < 60
    finally:
        v.close()
    assert not v.capture.runner.busy
    assert v.capture.runner.status.cancelled
    leftovers = [p.name for p in out.rglob("*")] if out.exists() else []
    assert leftovers == []  # no video, no sidecar, no hidden temp file
    assert not [t for t in threading.enumerate() if t.name.startswith("gghead-")]
    settings = json.loads((tmp_path / "config" / "gghead-viewer" / "settings.json").read_text())
    assert settings["output_dir"] == str(out)
