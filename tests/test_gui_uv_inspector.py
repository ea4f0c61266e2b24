"""The UV inspector in the real viewer under Xvfb: maps window, hover/drag selection tinting the head, "show
only", centres, picking by a click on the head, and real mouse input.

The viewer runs in a child process (this file's ``__main__`` part), because one process may hold only one
DearPyGui viewer (see tests/test_gui_viewer.py) and that module keeps its own for the whole run. The child
writes its measurements as JSON (and, with ``--screenshot``, the README picture); the test asserts on them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def _drive(out_dir: Path, screenshot: Path | None) -> dict:
    import dearpygui.dearpygui as dpg
    import numpy as np
    import torch

    from app.viewer import Viewer
    from gghead_core import pick_gaussian  # noqa: F401 - the public API the widget uses

    res = 256
    v = Viewer(None, resolution=res, output_dir=out_dir / "captures", config_dir=out_dir / "config",
               width=1600 if screenshot is None else 1900, height=900 if screenshot is None else 1000, vsync=False)
    v.start()
    report: dict = {}
    try:
        assert v.wait(120), v.status
        base = v.image[..., :3].copy()
        ui = v.uv
        ui.set_open(True)
        assert ui.wait_for_maps(120), ui.error
        report["map_shape"] = list(ui.map_image().shape)
        # "export maps": the export-uv job into the output folder, in the background
        assert ui.export_maps() is None
        assert v.captures.join(120)
        status = v.captures.status
        report["export_error"] = status.error
        folder = Path(status.output)
        report["export_folder"] = folder.name
        with np.load(folder / "uv_maps.npz") as data:
            report["export_equals_shown"] = all(np.array_equal(data[k], ui.maps.maps[k]) for k in ui.maps.maps)
        report["export_has_recipe"] = (folder / "recipe.json").is_file()
        report["maps_error"] = ui.error
        gen = v.worker.latents
        g = gen.cached(v.args.latent)
        front = int(torch.argmax(g.means[0, :, 2]))
        r, c = gen.mapping.texel_of(front)
        box = (r - 4, c - 4, r + 5, c + 5)
        ui.set_box(box, pinned=True)
        assert v.wait(60), v.status
        lit = v.image[..., :3].copy()
        report["highlight_changed_px"] = int(np.any(np.abs(lit - base) > 1e-6, axis=-1).sum())
        report["selected"] = int(ui.selected_count)
        # magenta tint: red and blue rise against green where pixels changed
        d = (lit - base)[np.any(np.abs(lit - base) > 1e-6, axis=-1)]
        report["tint_rb_minus_g"] = float(np.mean(d[:, 0] + d[:, 2] - 2 * d[:, 1])) if len(d) else 0.0
        ui.set_show_only(True)
        assert v.wait(60), v.status
        only = v.image[..., :3].copy()
        report["show_only_background_fraction"] = float(np.mean(np.all(only > 0.99, axis=-1)))
        report["base_background_fraction"] = float(np.mean(np.all(base > 0.99, axis=-1)))
        ui.set_show_only(False)
        ui.set_centres(True)
        assert v.wait(60), v.status
        report["centres_changed"] = float(np.abs(v.image[..., :3] - lit).mean())
        ui.set_centres(False)
        ui.set_opacity_threshold(0.98)
        assert v.wait(60), v.status
        report["opacity_floor_changed"] = float(np.abs(v.image[..., :3] - lit).mean())
        report["opacity_floor_background_fraction"] = float(np.mean(np.all(v.image[..., :3] > 0.99, axis=-1)))
        ui.set_opacity_threshold(0.0)
        ui.clear_selection()
        assert v.wait(60), v.status
        report["cleared_equals_base"] = bool(np.array_equal(v.image[..., :3], base))
        # click on the head where the front-most Gaussian projects: it (or one in front of it) is picked
        cam = v.args.camera.to_camera()
        pc = cam.world2cam() @ np.append(g.means[0, front].double().numpy(), 1.0)
        K = cam.intrinsics_pixels(res)
        px, py = K[0, 0] * pc[0] / pc[2] + K[0, 2] - 0.5, K[1, 1] * pc[1] / pc[2] + K[1, 2] - 0.5
        x0, y0, size = v._image_rect
        mouse = (x0 + (px + 0.5) / res * size, y0 + (py + 0.5) / res * size)
        ui.on_view_click(mouse, v._image_rect)
        report["picked"] = v.args.inspect.picked if v.args.inspect else None
        report["front"] = front
        if report["picked"] is not None:
            report["picked_texel"] = list(gen.mapping.texel_of(report["picked"]))
            report["front_texel"] = [r, c]
        assert v.wait(60), v.status
        report["pick_tint_changed_px"] = int(np.any(np.abs(v.image[..., :3] - base) > 1e-6, axis=-1).sum())
        # real mouse: hover over the map canvas selects a 1x1 texel box; a drag pins a larger box
        if shutil.which("xdotool"):
            ui.clear_selection()
            for _ in range(3):
                v.step()
            cx0, cy0 = dpg.get_item_rect_min(ui.tag("canvas"))
            mx, my = int(cx0 + (c + 0.5) * 512 / ui.maps.resolution), int(cy0 + (r + 0.5) * 512 / ui.maps.resolution)
            _xdotool(v, f"xdotool mousemove {mx} {my} sleep 0.2")
            report["hover_box"] = list(v.args.inspect.box) if v.args.inspect and v.args.inspect.box else None
            camera_before = v.args.camera
            _xdotool(v, f"xdotool mousemove {mx} {my} sleep 0.1 mousedown 1 sleep 0.15 mousemove {mx + 30} {my + 20} "
                        f"sleep 0.15 mousemove {mx + 60} {my + 40} sleep 0.15 mouseup 1 sleep 0.1 "
                        f"mousemove 5 {int(cy0) + 600} sleep 0.2")
            report["drag_box"] = list(v.args.inspect.box) if v.args.inspect and v.args.inspect.box else None
            report["map_drag_left_camera_alone"] = v.args.camera == camera_before
            # a real click on the head picks too
            _xdotool(v, f"xdotool mousemove {int(mouse[0])} {int(mouse[1])} sleep 0.1 click 1 sleep 0.2")
            report["real_click_picked"] = v.args.inspect.picked if v.args.inspect else None
        if screenshot is not None:
            for w in v.widgets:  # the README picture: only the UV inspector's section open
                dpg.set_value(f"{w.name}.header", w is ui)
            ui.clear_selection()
            ui.set_box((r - 3, c - 14, r + 4, c + 15), pinned=True)
            ui.set_attribute("color")
            assert v.wait(60)
            for _ in range(5):
                v.step()
            _grab(v, screenshot)
    finally:
        v.close()
    return report


def _xdotool(v, script: str) -> None:
    proc = subprocess.Popen(["bash", "-c", script])
    deadline = time.time() + 20
    while proc.poll() is None and time.time() < deadline:
        v.step()
        time.sleep(0.005)
    for _ in range(5):
        v.step()


def _grab(v, path: Path) -> None:
    import dearpygui.dearpygui as dpg
    import numpy as np

    captured = {}

    def grab(_sender, buf):
        w, h = buf.get_width(), buf.get_height()
        captured["frame"] = np.array(buf, dtype=np.float32).reshape(h, w, 4)

    dpg.output_frame_buffer(callback=grab)
    for _ in range(10):
        v.step()
        if "frame" in captured:
            break
    from gghead_core.export import save_png

    save_png(path, captured["frame"][..., :3], overwrite=True)


if __name__ == "__main__":
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    sys.path.insert(0, str(REPO_ROOT))
    out = Path(sys.argv[1])
    shot = Path(sys.argv[sys.argv.index("--screenshot") + 1]) if "--screenshot" in sys.argv else None
    result = _drive(out, shot)
    (out / "report.json").write_text(json.dumps(result))
    sys.exit(0)


import pytest  # noqa: E402

if not os.environ.get("DISPLAY"):
    pytest.skip('GUI tests need an X display; run under xvfb-run -a -s "-screen 0 1920x1080x24"',
                allow_module_level=True)


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("uvgui")
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), str(out)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "report.json").read_text())


def test_maps_window_shows_the_current_heads_maps(report):
    assert report["maps_error"] == ""
    assert report["map_shape"][2] == 4 and report["map_shape"][0] == report["map_shape"][1] >= 32


def test_export_button_writes_the_shown_maps(report):
    assert report["export_error"] is None
    assert report["export_folder"] == "uv_maps_0001"
    assert report["export_equals_shown"] and report["export_has_recipe"]


def test_selection_tints_the_head_and_show_only_hides_the_rest(report):
    assert report["selected"] > 10
    assert report["highlight_changed_px"] > 20
    assert report["tint_rb_minus_g"] > 0
    assert report["show_only_background_fraction"] > report["base_background_fraction"] + 0.1
    assert report["centres_changed"] > 0.002
    assert report["opacity_floor_changed"] > 1e-3
    assert report["opacity_floor_background_fraction"] >= report["base_background_fraction"]
    assert report["cleared_equals_base"]


def test_click_on_the_head_picks_and_marks(report):
    assert report["picked"] is not None
    assert report["pick_tint_changed_px"] > 0
    # the picked Gaussian sits at (or in front of) the clicked one: on the nose its texel is nearby
    pr, pc = report["picked_texel"]
    fr, fc = report["front_texel"]
    assert abs(pr - fr) <= 12 and abs(pc - fc) <= 12


@pytest.mark.skipif(shutil.which("xdotool") is None, reason="xdotool is not installed (apt-get install xdotool)")
def test_real_mouse_hover_drag_and_click(report):
    assert report["hover_box"] is not None
    r0, c0, r1, c1 = report["hover_box"]
    assert (r1 - r0, c1 - c0) == (1, 1)
    r0, c0, r1, c1 = report["drag_box"]
    assert r1 - r0 > 2 and c1 - c0 > 2
    assert report["map_drag_left_camera_alone"]  # the maps window sits over the view: no orbit through it
    assert report["real_click_picked"] is not None
