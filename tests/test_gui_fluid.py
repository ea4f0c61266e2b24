"""The viewer stays fluid and calm (issue 12), under Xvfb with the real window: progressive previews while
something moves and the chosen resolution once it stops, no work while idle, one fixed status line, the fps
overlay and depth colour bar, per-model state, fit view and remembered settings.

Uses the session's one viewer (``gui_viewer`` in tests/conftest.py; DearPyGui must not be created twice in a
process) and puts back every setting it changes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from app.progressive import PREVIEW_LADDER

if not os.environ.get("DISPLAY"):
    pytest.skip(
        "GUI tests need an X display (DearPyGui aborts the process without one); run under "
        'xvfb-run -a -s "-screen 0 1920x1080x24"',
        allow_module_level=True,
    )

import dearpygui.dearpygui as dpg  # noqa: E402

from app.viewer import STATUS_CHARS, Viewer  # noqa: E402
from tests.conftest import FIXTURE_CKPT, GUI_RES, REPO_ROOT  # noqa: E402

DEMO_CKPT = REPO_ROOT / "checkpoints" / "demo.safetensors"


def settle(v: Viewer) -> np.ndarray:
    assert v.wait(120), f"viewer did not settle: {v.status}"
    assert v.status == "", v.status
    return v.image[..., :3]


def head_fraction(img: np.ndarray) -> float:
    return float((np.abs(img[..., :3] - 1.0).max(-1) > 0.05).mean())


@pytest.fixture
def v(gui_viewer):
    """The shared viewer at its start state; restores resolution, camera and toggles afterwards."""
    viewer = gui_viewer
    if viewer._closed:  # DearPyGui cannot be created twice in a process: a closed window cannot come back
        pytest.skip("the session's viewer was closed by tests/test_gui_viewer.py's last test; run this module "
                    "before it (pytest's default order does)")
    settle(viewer)
    budget, enabled = viewer.progressive.budget_ms, viewer.progressive.enabled
    yield viewer
    viewer.progressive.budget_ms = budget
    viewer.trigger("render.progressive", enabled)
    viewer.trigger("render.resolution", str(GUI_RES))
    viewer.trigger("render.mode", "rgb")
    viewer.trigger("render.depth_colormap", "rainbow")
    viewer.trigger("camera.reset")
    viewer.say("")
    settle(viewer)


def drag(v: Viewer, seconds: float, *, min_frames: int = 2, timeout: float = 120.0) -> list[int]:
    """Orbit a little every UI frame (as a mouse drag does) until ``min_frames`` new frames were shown and at
    least ``seconds`` passed; returns the resolutions of the frames shown meanwhile."""
    sizes, last = [], v.last_result.request_id
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        v.camera.orbit(3.0, 0.0)
        v.step()
        r = v.last_result
        if r.request_id != last and r.error is None:
            last = r.request_id
            sizes.append(int(r.args.settings.resolution))
            assert v.image.shape[0] == sizes[-1]
        if len(sizes) >= min_frames and time.perf_counter() - t0 >= seconds:
            break
        time.sleep(0.01)
    return sizes


# ---- progressive rendering ---------------------------------------------------------------------------------------


def test_drag_shows_previews_and_release_refines_to_the_chosen_resolution(v, tmp_path):
    v.trigger("render.resolution", "512")
    settle(v)
    assert v.image.shape == (512, 512, 4)
    v.progressive.budget_ms = 1.0  # no size fits: a slow machine; the preview drops to the smallest rung
    sizes = drag(v, 0.3, min_frames=2)
    smallest = PREVIEW_LADDER[0]
    assert sizes and all(s == smallest for s in sizes[1:]), sizes
    assert v.image.shape == (smallest, smallest, 4)
    # The texture keeps its size; the image item shows the preview's corner of it, scaled to the same view.
    assert v._front.shape == (512, 512, 4)
    assert dpg.get_item_configuration("view.image")["uv_max"][:2] == pytest.approx([smallest / 512] * 2)
    assert v.args.settings.resolution == 512  # the state (and so every capture) keeps the chosen size
    # Release: the chosen resolution follows without any further input.
    t_stop = time.perf_counter()
    settle(v)
    assert v.last_result.args.settings.resolution == 512 and v.image.shape == (512, 512, 4)
    assert dpg.get_item_configuration("view.image")["uv_max"][:2] == pytest.approx([1.0, 1.0])
    assert v.last_result.args == v.args
    assert time.perf_counter() - t_stop < 60


def test_a_fast_machine_never_drops_resolution(v):
    v.trigger("render.resolution", "512")
    settle(v)
    v.progressive.budget_ms = 1e9  # every size fits the budget
    sizes = drag(v, 0.3, min_frames=2)
    assert sizes and set(sizes) == {512}, sizes


def test_progressive_can_be_turned_off_and_is_remembered(v):
    v.trigger("render.resolution", "512")
    settle(v)
    v.progressive.budget_ms = 1.0
    v.trigger("render.progressive", False)
    assert v.progressive.enabled is False
    settings = json.loads((Path(os.environ["XDG_CONFIG_HOME"]) / "gghead-viewer" / "settings.json").read_text())
    assert settings["progressive"] is False
    sizes = drag(v, 0.3, min_frames=2)
    assert sizes and set(sizes) == {512}, sizes


def test_screenshot_during_a_drag_is_full_resolution(v, tmp_path):
    import imageio.v3 as iio

    v.trigger("render.resolution", "512")
    settle(v)
    v.progressive.budget_ms = 1.0
    drag(v, 0.2, min_frames=1)
    assert v.image.shape[0] == PREVIEW_LADDER[0]  # a preview is on screen
    shared_out = v.settings.output_dir
    v.settings.output_dir = str(tmp_path)  # other modules count the shared folder's screenshots
    try:
        v.trigger("capture.shot_resolution", "view")
        v.trigger("capture.screenshot")
        deadline = time.time() + 120
        while v.captures.busy and time.time() < deadline:
            v.step()
            time.sleep(0.01)
    finally:
        v.settings.output_dir = shared_out
    st = v.captures.status
    assert st.error is None and st.output is not None, st.error
    assert Path(st.output).parent == tmp_path
    assert iio.imread(st.output).shape[:2] == (512, 512)


# ---- no idle work ------------------------------------------------------------------------------------------------


def test_idle_viewer_draws_renders_and_uploads_nothing(v):
    assert v._probe is not None and v._probe.pending() is not None, "X11 input probe unavailable under Xvfb"
    for _ in range(60):  # let the active tail run out (hover effects, the last upload)
        v.tick()
    ui0, shown0, req0 = v.ui_frames, v.frames_shown, v.worker.last_request_id
    t0 = time.perf_counter()
    ticks = 0
    while time.perf_counter() - t0 < 1.5:
        assert v.tick()
        ticks += 1
    assert ticks > 20  # the loop kept running (napping), it was not stuck
    assert v.ui_frames - ui0 <= 1  # at most the safety refresh: no frame drawn, so no texture upload
    assert v.frames_shown == shown0 and v.worker.last_request_id == req0  # nothing generated or rasterized
    assert v.worker.idle


def test_input_wakes_the_idle_viewer(v):
    if shutil.which("xdotool") is None:
        pytest.skip("xdotool is not installed (needed to move the X pointer)")
    for _ in range(60):
        v.tick()
    assert not v.needs_frame()
    x, y, size = (int(c) for c in v._image_rect)
    for pos in ((x + size // 2, y + size // 2), (x + size // 3, y + size // 3)):
        subprocess.run(["xdotool", "mousemove", str(pos[0]), str(pos[1])], check=True, timeout=10)
    deadline = time.perf_counter() + 5
    while not v.needs_frame() and time.perf_counter() < deadline:
        time.sleep(0.01)
    assert v.needs_frame()  # the pointer's motion events are waiting: the next tick draws
    ui0 = v.ui_frames
    v.tick()
    assert v.ui_frames == ui0 + 1
    subprocess.run(["xdotool", "mousemove", "5", "5"], check=True, timeout=10)


def test_animate_keeps_the_cache_and_stays_in_previews(v):
    v.trigger("render.resolution", "512")
    settle(v)
    entries_before = v.worker.latents.cache_size()[0]
    v.progressive.budget_ms = 1.0
    v.trigger("latent.loop", 1.0)
    v.trigger("latent.animate", True)
    sizes, last = [], v.last_result.request_id
    deadline = time.time() + 120
    while len(sizes) < 3 and time.time() < deadline:
        v.tick()
        r = v.last_result
        if r.request_id != last:
            last = r.request_id
            sizes.append(int(r.args.settings.resolution))
    v.trigger("latent.animate", False)
    v.trigger("latent.t", 0.0)
    settle(v)
    assert sizes and all(s == PREVIEW_LADDER[0] for s in sizes[1:]), sizes
    assert v.worker.latents.cache_size()[0] <= max(entries_before, 1) + 1  # animation frames were not cached
    assert v.last_result.args.settings.resolution == 512


# ---- the status line, overlay and depth colour bar --------------------------------------------------------------


def test_one_status_line_that_never_moves_the_panel(v):
    y_panel = dpg.get_item_rect_min("model.header")[1]
    y_mode = dpg.get_item_rect_min("render.mode")[1]
    v.say("x " * 300, error=True)
    for _ in range(3):
        v.step()
    shown = dpg.get_value("status")
    assert "\n" not in shown and len(shown) <= STATUS_CHARS and shown.endswith("...")
    assert dpg.get_value("status.full").startswith("x x")  # the whole message is in the tooltip
    assert dpg.get_item_rect_min("model.header")[1] == y_panel
    # A long backend reason stays one line (its full text in a tooltip).
    v.render.show_backend("torch", "a very long reason why the fast backends are not available " * 5)
    for _ in range(3):
        v.step()
    assert "\n" not in dpg.get_value("render.reason")
    assert dpg.get_item_rect_min("render.mode")[1] == y_mode
    # A render error wins over other messages, and leaves with the next good frame.
    v.status = "render failed: boom"
    v.step()
    assert dpg.get_value("status") == "render failed: boom"
    v.status = ""
    v.say("")
    v.step()
    assert dpg.get_value("status") == "ready"
    assert dpg.get_item_rect_min("model.header")[1] == y_panel
    # Widgets report there too: a capture's message.
    v.capture._say("saved somewhere")
    v.step()
    assert dpg.get_value("status") == "saved somewhere"


def test_fps_overlay_toggles_and_shows_the_frame_size(v):
    v.trigger("latent.seed", 1)
    settle(v)
    for _ in range(3):
        v.step()
    assert dpg.is_item_shown("view.overlay")
    assert f"{GUI_RES}px" in dpg.get_value("view.overlay.text")
    v.trigger("render.overlay", False)
    v.step()
    assert not dpg.is_item_shown("view.overlay")
    settings = json.loads((Path(os.environ["XDG_CONFIG_HOME"]) / "gghead-viewer" / "settings.json").read_text())
    assert settings["show_overlay"] is False
    v.trigger("render.overlay", True)
    v.trigger("latent.seed", 0)
    v.step()
    assert dpg.is_item_shown("view.overlay")


def test_depth_mode_shows_a_colour_bar_and_grey_option(v):
    v.trigger("render.mode", "depth")
    settle(v)
    for _ in range(3):
        v.step()
    near, far = v.last_result.depth_range
    assert 0.5 < near < far < 10.0  # camera-space depth of the head in world units (camera at radius 2.7)
    assert dpg.is_item_shown("view.depthbar")
    assert dpg.get_value("view.depthbar.near") == f"near {near:.3f}"
    assert dpg.get_value("view.depthbar.far").split()[-1] == f"{far:.3f}"
    rainbow = v.image[..., :3]
    v.trigger("render.depth_colormap", "grey")
    grey = settle(v)
    head = np.abs(grey - 1.0).max(-1) > 0.05
    assert head.mean() > 0.05
    assert np.abs(grey[head] - grey[head].mean(-1, keepdims=True)).max() < 1e-4  # R = G = B
    assert np.abs(rainbow[head] - rainbow[head].mean(-1, keepdims=True)).max() > 0.1
    assert dpg.get_item_configuration("view.depthbar.image")["texture_tag"] == "view.colorbar.grey"
    v.trigger("render.mode", "rgb")
    settle(v)
    v.step()
    assert not dpg.is_item_shown("view.depthbar")


def test_scale_reset_and_ctrl_click_hint(v):
    v.trigger("render.scale", 2.0)
    assert v.args.settings.scale_modifier == 2.0
    assert dpg.get_item_configuration("render.scale_reset")["enabled"]
    v.trigger("render.scale_reset")
    assert v.args.settings.scale_modifier == 1.0
    assert not dpg.get_item_configuration("render.scale_reset")["enabled"]
    hints = [dpg.get_value(i) for i in dpg.get_all_items() if dpg.get_item_type(i) == "mvAppItemType::mvText"]
    assert any("ctrl+click" in (h or "") for h in hints)


# ---- fit view, per-model state, remembered settings --------------------------------------------------------------


def test_fit_view_frames_the_head(v):
    v.camera.set(look_at=(0.4, -0.3, 0.0), radius=7.0)
    off = settle(v)
    assert head_fraction(off) < 0.15
    v.trigger("camera.fit")
    g = v.worker.latents.cached(v.args.latent)
    means = g.means[0].float()
    lo, hi = means.quantile(0.01, dim=0), means.quantile(0.99, dim=0)
    assert np.allclose(v.args.camera.look_at, ((lo + hi) / 2).tolist(), atol=1e-4)
    fitted = settle(v)
    assert head_fraction(fitted) > 2 * head_fraction(off)
    ys, xs = np.nonzero(np.abs(fitted - 1.0).max(-1) > 0.05)
    assert abs(xs.mean() / GUI_RES - 0.5) < 0.15 and abs(ys.mean() / GUI_RES - 0.5) < 0.2  # centred
    # The whole head is in the frame: no head pixels on the image border.
    border = np.concatenate([fitted[0], fitted[-1], fitted[:, 0], fitted[:, -1]])
    assert head_fraction(border[None]) < 0.05
    assert "fit view" in dpg.get_value("status")


def test_switching_models_resets_cutoff_and_mixing_range(v, tmp_path):
    num_ws = v.model.info.num_ws
    v.trigger("truncation.cutoff", 2)
    v.trigger("latent.mix", True)
    v.trigger("latent.mix_first", 0)
    v.trigger("latent.mix_last", 1)
    assert v.args.latent.cutoff == 2 and v.args.latent.mix.start == 0 and v.args.latent.mix.end == 2
    settle(v)
    other = str(FIXTURE_CKPT) if FIXTURE_CKPT.is_file() else None
    if other is None or v.model.info.path == other:
        other = str(tmp_path / "another model.safetensors")
        shutil.copyfile(DEMO_CKPT if DEMO_CKPT.is_file() else FIXTURE_CKPT, other)
    v.trigger("model.path", other)
    v.trigger("model.load")
    settle(v)
    assert v.model.error is None, v.model.error
    n = v.model.info.num_ws
    assert v.args.latent.cutoff is None  # all rows: the official default for the new model
    assert v.args.latent.mix.start == n // 2 and v.args.latent.mix.end == n  # the new model's default range
    assert dpg.get_value("truncation.cutoff") == n
    v.trigger("latent.mix", False)
    v.trigger("model.demo" if DEMO_CKPT.is_file() else "model.load")
    settle(v)
    assert v.model.info.num_ws == num_ws


def test_render_settings_are_remembered_for_the_next_start(v, tmp_path):
    v.trigger("render.mode", "depth")
    v.trigger("render.depth_colormap", "grey")
    v.trigger("render.sh_ref", "view")
    settle(v)
    path = Path(os.environ["XDG_CONFIG_HOME"]) / "gghead-viewer" / "settings.json"
    saved = json.loads(path.read_text())["render"]
    assert saved["mode"] == "depth" and saved["depth_colormap"] == "grey" and saved["sh_ref"] == "view"
    assert saved["resolution"] == GUI_RES
    # A second viewer (not started: DearPyGui is never created twice) reads them back; an explicit
    # resolution still wins over the remembered one.
    nxt = Viewer(None, config_dir=path.parent, output_dir=tmp_path)
    try:
        s = nxt.args.settings
        assert (s.mode, s.depth_colormap, s.sh_ref, s.resolution) == ("depth", "grey", "view", GUI_RES)
        assert nxt.show_overlay == v.show_overlay and nxt.progressive.enabled == v.progressive.enabled
    finally:
        nxt.close()
    v.trigger("render.sh_ref", "frontal")
    settle(v)
