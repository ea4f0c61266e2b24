"""The real viewer under Xvfb: start on the demo model (or the official fixture), show a head, react to widget
callbacks, mouse and keyboard, capture screenshots and turntables, survive a broken checkpoint and odd values,
and close cleanly while an export runs.

Run under a virtual display (the CI does): ``xvfb-run -a -s "-screen 0 1920x1080x24" python -m pytest``.
Frames are driven by ``Viewer.step()`` (one DearPyGui frame each), never by ``start_dearpygui()``.

One viewer (one DearPyGui context, ``gui_viewer`` in tests/conftest.py) serves every GUI module of the session,
and the last test here closes it. Do not create a
second viewer in the same process: DearPyGui 2.3's GLFW backend can segfault in its cursor-enter callback when
a context is created again after one was destroyed (seen under gdb: ``ImGui_ImplGlfw_CursorEnterCallback``
from ``glfwPollEvents``), which the real app never does (one window per process).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

if not os.environ.get("DISPLAY"):
    pytest.skip(
        "GUI tests need an X display (DearPyGui aborts the process without one); run under "
        'xvfb-run -a -s "-screen 0 1920x1080x24"',
        allow_module_level=True,
    )

import dearpygui.dearpygui as dpg  # noqa: E402

from app.viewer import Viewer  # noqa: E402
from tests.conftest import FIXTURE_CKPT, REPO_ROOT  # noqa: E402

DEMO_CKPT = REPO_ROOT / "checkpoints" / "demo.safetensors"
RES = 256


def model_path() -> str | None:
    """None (the bundled demo model) when it exists, else the official-format fixture."""
    if DEMO_CKPT.is_file():
        return None
    if FIXTURE_CKPT.is_file():
        return str(FIXTURE_CKPT)
    pytest.skip("neither checkpoints/demo.safetensors nor the ../shared fixture is present")


@pytest.fixture(scope="module")
def viewer(gui_viewer):
    """The session's one viewer (tests/conftest.py); this module's last test closes it."""
    assert gui_viewer.args.settings.resolution == RES
    return gui_viewer


def settle(v: Viewer) -> np.ndarray:
    assert v.wait(60), f"viewer did not settle: {v.status}"
    assert v.status == "", v.status
    return v.image[..., :3]


def changed(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).mean())


def head_fraction(img: np.ndarray, background=(1.0, 1.0, 1.0)) -> float:
    """Fraction of pixels that differ visibly from the background."""
    return float((np.abs(img[..., :3] - np.asarray(background, np.float32)).max(-1) > 0.05).mean())


def wait_capture(v: Viewer, timeout: float = 120.0):
    deadline = time.time() + timeout
    while v.captures.busy and time.time() < deadline:
        v.step()
        time.sleep(0.01)
    v.step()
    assert not v.captures.busy, "capture did not finish"
    return v.captures.status


# ---- start-up and display --------------------------------------------------------------------------------------


def test_starts_on_model_and_shows_a_head(viewer):
    v = viewer
    info = v.model.info
    assert info is not None and info.num_gaussians > 0 and info.num_ws > 0
    assert dpg.get_value("model.name") == info.name
    assert f"ws {info.num_ws}" in dpg.get_value("model.facts")
    img = v.image
    assert img.shape == (RES, RES, 4) and img.dtype == np.float32 and img.flags.c_contiguous
    # A head covers a good part of the frame; the corners stay background (white by default).
    assert 0.05 < head_fraction(img) < 0.98, (v.last_result.backend, v.last_result.backend_reason, v.status)
    centre = img[RES // 4 : 3 * RES // 4, RES // 4 : 3 * RES // 4, :3]
    assert head_fraction(centre) > 0.3
    assert v.last_result.backend in ("torch", "gsplat", "opengl")
    assert dpg.get_value("render.reason").startswith("using: ")


def test_framebuffer_shows_the_texture_scaled_to_the_view(viewer):
    v = viewer
    captured = {}

    def grab(_sender, buf):
        w, h = buf.get_width(), buf.get_height()
        captured["frame"] = np.array(buf, dtype=np.float32).reshape(h, w, 4)

    dpg.output_frame_buffer(callback=grab)
    for _ in range(10):
        v.step()
        if "frame" in captured:
            break
    frame = captured["frame"]
    x, y, size = (int(round(c)) for c in v._image_rect)
    assert size > RES  # the image is scaled up to fill the free space, independent of the render size
    assert x >= 300  # right of the side panel
    shown = frame[y : y + size, x : x + size, :3]
    # Downsample the on-screen image to the texture size and compare with the texture itself.
    idx = (np.arange(RES) * size / RES + size / (2 * RES)).astype(int)
    on_screen = shown[idx][:, idx]
    assert float(np.abs(on_screen - v.image[..., :3]).mean()) < 0.05
    assert 0.05 < head_fraction(on_screen) < 0.98


def test_view_follows_window_resizes(viewer):
    v = viewer
    sizes = []
    for w, h in ((1000, 640), (1400, 900), (1200, 800)):
        dpg.set_viewport_width(w)
        dpg.set_viewport_height(h)
        for _ in range(5):
            v.step()
        x, y, size = v._image_rect
        sizes.append(size)
        assert x + size <= dpg.get_viewport_client_width() and y + size <= dpg.get_viewport_client_height()
    assert sizes[0] < sizes[2] < sizes[1]
    assert v.image.shape == (RES, RES, 4)  # the render resolution does not follow the window


# ---- widgets drive the image -------------------------------------------------------------------------------------


def test_seed_psi_and_camera_widgets_change_the_image(viewer):
    v = viewer
    base = settle(v)
    v.trigger("latent.seed", 5)
    assert v.args.latent.seed == 5
    seeded = settle(v)
    assert changed(base, seeded) > 0.005
    # The new head was generated (by the first frame after the change, possibly a progressive preview).
    assert v.worker.latents.cached(v.args.latent) is not None

    v.trigger("truncation.psi", 0.0)
    assert v.args.latent.psi == 0.0
    truncated = settle(v)
    assert changed(seeded, truncated) > 0.005

    v.trigger("camera.yaw", 35.0)
    assert v.args.camera.yaw_deg == 35.0
    turned = settle(v)
    assert changed(truncated, turned) > 0.005
    assert v.last_result.timings.cached is True  # orbiting only re-rasterizes

    v.trigger("camera.reset")
    v.trigger("truncation.reset")
    v.trigger("latent.seed", 0)
    assert changed(settle(v), base) < 1e-6  # same arguments, same pixels


def test_interpolation_and_style_mixing(viewer):
    v = viewer
    base = settle(v)
    v.trigger("latent.t", 0.5)
    half = settle(v)
    v.trigger("latent.t", 1.0)
    full = settle(v)
    assert changed(base, half) > 0.003 and changed(half, full) > 0.003
    v.trigger("latent.space", "Z (spherical)")
    v.trigger("latent.t", 0.5)
    slerped = settle(v)
    assert changed(slerped, half) > 1e-4  # Z-slerp is a different path than W-lerp
    v.trigger("latent.t", 0.0)
    v.trigger("latent.space", "W (linear)")
    v.trigger("latent.mix", True)
    v.trigger("latent.mix_first", 0)
    assert v.args.latent.mix is not None and v.args.latent.mix.start == 0
    mixed = settle(v)
    assert changed(base, mixed) > 0.003
    v.trigger("latent.mix", False)
    assert changed(settle(v), base) < 1e-6


def test_animation_moves_t(viewer):
    v = viewer
    v.trigger("latent.loop", 1.0)
    v.trigger("latent.animate", True)
    seen = set()
    for _ in range(30):
        v.step()
        seen.add(round(v.args.latent.t, 3))
        time.sleep(0.01)
    v.trigger("latent.animate", False)
    v.trigger("latent.t", 0.0)
    settle(v)
    assert len(seen) > 5 and max(seen) > 0.0


def test_render_options(viewer):
    v = viewer
    base = settle(v)
    v.trigger("render.background", [0, 0, 0, 255])
    assert v.args.settings.background == (0.0, 0.0, 0.0)
    black = settle(v)
    assert black[0, 0].max() < 0.02 and base[0, 0].min() > 0.98  # corners show the background
    v.trigger("render.mode", "alpha")
    alpha = settle(v)
    assert changed(alpha, black) > 0.01
    v.trigger("render.mode", "rgb")
    v.trigger("render.background", [255, 255, 255, 255])
    v.trigger("render.resolution", "512")
    big = settle(v)
    assert big.shape == (512, 512, 3)
    v.trigger("render.resolution", str(RES))
    assert changed(settle(v), base) < 1e-6


def test_every_available_backend_renders_beside_dearpygui(viewer):
    """OpenGL renders in the worker thread with its own context while DearPyGui's GLX context stays current
    on the UI thread (notes §4): no segfault, same head as the reference rasterizer."""
    from gghead_core.render import available_backends

    v = viewer
    images = {}
    for backend in available_backends():
        v.trigger("render.backend", backend)
        images[backend] = settle(v)
        assert v.last_result.backend == backend, v.last_result.backend_reason
        assert backend in dpg.get_value("render.reason")
        for _ in range(3):  # a few more UI frames with the texture from that backend
            v.step()
    v.trigger("render.backend", "auto")
    settle(v)
    for backend, img in images.items():
        assert 0.05 < head_fraction(img) < 0.98, backend
        assert changed(img, images["torch"]) < 0.02, backend  # the backends agree (tests in test_render_*)


# ---- mouse and keyboard ----------------------------------------------------------------------------------------


def _xdotool(v: Viewer, script: str) -> None:
    """Run an xdotool command while stepping frames (DearPyGui reads input events inside its frames)."""
    proc = subprocess.Popen(["bash", "-c", script])
    deadline = time.time() + 20
    while proc.poll() is None and time.time() < deadline:
        v.step()
        time.sleep(0.005)
    for _ in range(5):
        v.step()
    assert proc.returncode == 0


@pytest.mark.skipif(shutil.which("xdotool") is None, reason="xdotool is not installed (apt-get install xdotool)")
def test_real_mouse_drag_orbits_and_wheel_zooms(viewer):
    v = viewer
    before = settle(v)
    yaw0, pitch0, radius0 = v.args.camera.yaw_deg, v.args.camera.pitch_deg, v.args.camera.radius
    x, y, size = v._image_rect
    cx, cy = int(x + size / 2), int(y + size / 2)
    # The viewport sits at the screen's origin under a bare Xvfb (no window manager).
    _xdotool(
        v,
        f"xdotool mousemove {cx} {cy} sleep 0.15 mousedown 1 sleep 0.15 "
        f"mousemove {cx + 40} {cy + 10} sleep 0.15 mousemove {cx + 100} {cy + 30} sleep 0.15 mouseup 1 sleep 0.1",
    )
    assert v.args.camera.yaw_deg < yaw0 - 10  # dragging right turns the head to the viewer's right
    assert v.args.camera.pitch_deg > pitch0 + 3  # dragging down looks from above
    assert changed(before, settle(v)) > 0.005
    _xdotool(v, f"xdotool mousemove {cx} {cy} sleep 0.1 click 4 sleep 0.1 click 4 sleep 0.1")
    assert v.args.camera.radius < radius0
    _xdotool(v, f"xdotool mousemove {cx} {cy} sleep 0.1 key l sleep 0.1")
    assert v.args.camera.yaw_deg == 90.0 and v.args.camera.pitch_deg == 0.0
    _xdotool(v, f"xdotool mousemove {cx} {cy} sleep 0.1 key Home sleep 0.1 mousemove 1919 1079")
    assert v.args.camera.yaw_deg == 0.0 and v.args.camera.radius == pytest.approx(2.7)


def test_synthetic_orbit_pan_zoom_and_presets(viewer):
    v = viewer
    v.camera.reset()
    base = settle(v)
    v.camera.orbit(-100, 0)
    assert v.args.camera.yaw_deg == pytest.approx(30.0)
    v.camera.orbit(0, 10_000)  # far past the pole: clamped, never flips
    assert v.args.camera.pitch_deg == pytest.approx(89.0)
    v.camera.reset()
    v.camera.pan(50, 0, 500)  # drag right: the head follows the mouse to the right
    look = v.args.camera.look_at
    assert look[0] < 0 and abs(look[1]) < 1e-9
    panned = settle(v)
    assert changed(base, panned) > 0.003
    v.camera.zoom(3)
    assert v.args.camera.radius == pytest.approx(2.7 * 0.9**3)
    v.camera.preset("right")
    assert v.args.camera.yaw_deg == -90.0
    v.camera.reset()
    assert changed(settle(v), base) < 1e-6


def test_odd_values_are_clamped_not_fatal(viewer):
    v = viewer
    v.trigger("camera.radius", -5.0)
    assert v.args.camera.radius == 0.5
    v.trigger("camera.fov", float("nan"))
    assert 2.0 <= v.args.camera.fov_deg <= 90.0
    v.trigger("camera.yaw", 1e9)
    assert -180 <= v.args.camera.yaw_deg < 180
    v.trigger("truncation.psi", 99.0)
    assert v.args.latent.psi == 2.0
    v.trigger("truncation.cutoff", -3)
    assert v.args.latent.cutoff == 0
    v.trigger("latent.seed", -7)
    assert v.args.latent.seed == 0
    v.latent.set_mix(enabled=True, first=50, last=-2)
    mix = v.args.latent.mix
    assert mix is not None and 0 <= mix.start < mix.end <= v.model.info.num_ws
    v.render.set_scale(0.0)
    assert v.args.settings.scale_modifier == 0.05
    v.render.set_resolution("huge")
    v.render.set_background(["a", 1])
    v.render.set_background([2.0, -1.0, float("nan")])
    assert v.args.settings.background == (1.0, 0.0, 1.0)
    v.render.set_background([1.0, 1.0, 1.0])
    assert v.args.settings.resolution == RES
    settle(v)  # renders fine with all of that
    v.render.set_scale(1.0)
    v.latent.set_mix(enabled=False)
    v.trigger("truncation.reset")
    v.trigger("camera.reset")
    settle(v)


# ---- captures --------------------------------------------------------------------------------------------------


def test_screenshot_writes_png_of_chosen_resolution_with_sidecar(viewer):
    import imageio.v3 as iio

    v = viewer
    settle(v)
    v.trigger("capture.shot_resolution", "512")
    v.trigger("capture.screenshot")
    st = wait_capture(v)
    assert st.error is None and st.output is not None, st.error
    png = Path(st.output)
    assert png.name == "screenshot_0001.png" and png.parent == v.output_dir
    img = iio.imread(png)
    assert img.shape == (512, 512, 3)
    recipe = json.loads(Path(str(png) + ".json").read_text())
    assert recipe["command"] == "render"
    assert len(recipe["checkpoint"]["sha256"]) == 64
    assert recipe["seeds"] == [v.args.latent.seed] and recipe["psi"] == pytest.approx(v.args.latent.psi)
    assert recipe["params"]["settings"]["resolution"] == 512
    assert recipe["renderer"]["backend"] == v.last_result.backend
    assert "torch" in recipe["versions"]
    # Same view, same resolution: the PNG matches what the viewer displays (up to uint8 rounding).
    v.trigger("capture.shot_resolution", "view")
    v.trigger("capture.transparent", True)
    v.trigger("capture.screenshot")
    st = wait_capture(v)
    assert st.error is None, st.error
    assert Path(st.output).name == "screenshot_0002.png"
    rgba = iio.imread(st.output)
    assert rgba.shape == (RES, RES, 4)
    assert rgba[0, 0, 3] == 0 and rgba[RES // 2, RES // 2, 3] > 0  # transparent background, opaque head
    v.trigger("capture.transparent", False)
    v.trigger("capture.screenshot")
    st = wait_capture(v)
    shot = iio.imread(st.output).astype(np.float32) / 255.0
    shown = np.clip(v.image[..., :3], 0.0, 1.0)  # the renderer does not clamp colours above 1; PNGs do
    assert float(np.abs(shot - shown).max()) <= 0.5 / 255 + 1e-6


def test_screenshot_recipe_replays_to_the_same_pixels_on_the_cli(viewer, tmp_path):
    """A GUI capture and the CLI's replay of its recipe give the same pixels (blend, style mix, pan included)."""
    import subprocess
    import sys

    import imageio.v3 as iio

    v = viewer
    v.trigger("latent.seed_b", 4)
    v.trigger("latent.t", 0.3)
    v.latent.set_mix(enabled=True, seed=9, first=2, last=5)
    v.trigger("truncation.psi", 0.5)
    v.camera.set(yaw_deg=20.0, pitch_deg=-5.0, look_at=(0.02, -0.01, 0.0))
    settle(v)
    v.trigger("capture.shot_resolution", "view")
    v.trigger("capture.screenshot")
    st = wait_capture(v)
    assert st.error is None, st.error
    replayed = tmp_path / "replayed.png"
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "main.py"), "replay", str(st.output) + ".json", "--out", str(replayed)],
        capture_output=True, text=True, timeout=300, cwd=REPO_ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    a = iio.imread(st.output).astype(int)
    b = iio.imread(replayed).astype(int)
    assert a.shape == b.shape and np.abs(a - b).max() <= 1
    v.latent.set_mix(enabled=False)
    v.trigger("latent.t", 0.0)
    v.trigger("truncation.reset")
    v.trigger("camera.reset")
    settle(v)


def test_z_space_capture_replays_to_identical_pixels(viewer, tmp_path):
    """A screenshot taken half-way through a spherical (Z) interpolation writes a recipe that the CLI's
    replay redraws to exactly the same pixels (the viewer and the CLI share one latent vocabulary)."""
    import subprocess
    import sys

    import imageio.v3 as iio

    v = viewer
    v.trigger("latent.seed_b", 6)
    v.trigger("latent.space", "Z (spherical)")
    v.trigger("latent.t", 0.37)
    assert v.args.latent.space == "z" and v.args.latent.t == pytest.approx(0.37)
    settle(v)
    v.trigger("capture.shot_resolution", "view")
    v.trigger("capture.screenshot")
    st = wait_capture(v)
    assert st.error is None, st.error
    recipe = json.loads(Path(str(st.output) + ".json").read_text())
    assert recipe["params"]["latent"]["space"] == "z" and recipe["params"]["latent"]["seed_b"] == 6
    replayed = tmp_path / "z.png"
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "main.py"), "replay", str(st.output) + ".json", "--out", str(replayed)],
        capture_output=True, text=True, timeout=300, cwd=REPO_ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    assert np.array_equal(iio.imread(st.output), iio.imread(replayed))
    v.trigger("latent.t", 0.0)
    v.trigger("latent.space", "W (linear)")
    settle(v)


def test_turntable_export_writes_video_with_right_frame_count(viewer):
    from gghead_core.export import read_frames

    v = viewer
    settle(v)
    v.trigger("capture.frames", 6)
    v.trigger("capture.tt_resolution", "256")
    v.trigger("capture.format", "mp4")
    v.trigger("capture.turntable")
    saw_progress = False
    deadline = time.time() + 300
    while v.captures.busy and time.time() < deadline:
        v.step()
        saw_progress |= 0.0 < dpg.get_value("capture.progress") < 1.0
        time.sleep(0.01)
    st = wait_capture(v)
    assert st.error is None and st.output is not None, st.error
    out = Path(st.output)
    assert out.name == "turntable_0001.mp4"
    frames = read_frames(out)
    assert frames.shape == (6, 256, 256, 3)
    assert saw_progress
    recipe = json.loads(Path(str(out) + ".json").read_text())
    assert recipe["command"] == "turntable" and recipe["params"]["frames"] == 6 and len(recipe["cameras"]) == 6
    assert "saved" in dpg.get_value("capture.message")


def test_cancelled_turntable_leaves_no_file(viewer):
    v = viewer
    settle(v)
    folder = v.output_dir

    def listing():
        return sorted(p.name for p in folder.iterdir()) if folder.exists() else []

    before = listing()
    v.trigger("capture.frames", 400)
    v.trigger("capture.format", "gif")
    v.trigger("capture.turntable")
    deadline = time.time() + 120
    while v.captures.status.done < 2 and v.captures.busy and time.time() < deadline:
        v.step()
        time.sleep(0.01)
    v.trigger("capture.cancel")
    st = wait_capture(v)
    assert st.cancelled and st.output is None
    assert listing() == before  # no partial or temp file
    assert "cancelled" in dpg.get_value("capture.message")
    v.trigger("capture.frames", 48)
    v.trigger("capture.format", "mp4")


# ---- checkpoints -----------------------------------------------------------------------------------------------


def test_broken_checkpoint_shows_error_and_keeps_model(viewer, tmp_path):
    v = viewer
    before = settle(v)
    info = v.model.info
    broken = tmp_path / "broken.pkl"
    broken.write_bytes(b"\x80\x04this is not a checkpoint")
    v.trigger("model.path", str(broken))
    v.trigger("model.load")
    settle(v)
    assert v.model.info is info
    assert v.model.error and "broken.pkl" in v.model.error and "keeping the current model" in v.model.error
    assert "could not load" in dpg.get_value("model.status")
    v.trigger("latent.seed", 3)  # the kept model still renders
    assert changed(before, settle(v)) > 0.005
    v.trigger("latent.seed", 0)
    settle(v)


def test_recent_files_are_remembered_in_config_dir(viewer, tmp_path):
    v = viewer
    start_path = model_path()
    chosen = Path(start_path) if start_path is not None else tmp_path / "copy of demo.safetensors"
    if start_path is None:
        shutil.copyfile(DEMO_CKPT, chosen)  # a user-chosen file (the bundled demo itself is not "recent")
    v.trigger("model.path", str(chosen))
    v.trigger("model.load")
    settle(v)
    assert v.model.error is None and v.model.info.path == str(chosen)
    settings_file = Path(os.environ["XDG_CONFIG_HOME"]) / "gghead-viewer" / "settings.json"
    data = json.loads(settings_file.read_text())
    assert data["recent_files"][0] == str(chosen.resolve())
    assert str(chosen.resolve()) in dpg.get_item_configuration("model.recent")["items"]
    if start_path is None:
        v.trigger("model.demo")
        settle(v)
        assert v.model.info.path == str(DEMO_CKPT)
        assert json.loads(settings_file.read_text())["recent_files"][0] == str(chosen.resolve())


# ---- closing -----------------------------------------------------------------------------------------------------
# Keep this test last: it closes the module's viewer.


def test_closing_during_export_cancels_and_leaves_no_file(viewer):
    v = viewer
    settle(v)
    out = v.output_dir

    def listing():
        return sorted(p.name for p in out.iterdir()) if out.exists() else []

    before = listing()
    v.trigger("capture.frames", 500)
    v.trigger("capture.tt_resolution", "256")
    v.trigger("capture.format", "mp4")
    v.trigger("capture.turntable")
    deadline = time.time() + 120
    while v.captures.status.done < 1 and v.captures.busy and time.time() < deadline:
        v.step()
        time.sleep(0.01)
    assert v.captures.busy, "the export should still be running when the window closes"
    dpg.stop_dearpygui()  # what the window's close button does
    assert v.step() is False
    t0 = time.time()
    v.close()
    assert time.time() - t0 < 60
    assert not v.captures.busy and v.captures.status.cancelled
    assert listing() == before  # no video, no sidecar, no hidden temp file
    assert not [t for t in threading.enumerate() if t.name.startswith("gghead-") and t.is_alive()]
    settings = json.loads((Path(os.environ["XDG_CONFIG_HOME"]) / "gghead-viewer" / "settings.json").read_text())
    assert settings["output_dir"] == str(out)
