"""Progressive-rendering policy, remembered viewer settings, the depth colour maps and the grid labels: the logic
behind issue 12's viewer changes, without a window (the GUI side is tests/test_gui_fluid.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from app.progressive import PREVIEW_LADDER, ProgressivePolicy
from app.settings import Settings, load_settings, save_settings
from app.state import DEFAULT_SETTINGS
from gghead_core.jobs import GridJob, job_from_dict, job_to_dict
from gghead_core.jobs._font import GLYPH_H, draw_label, text_mask
from gghead_core.pipeline import RenderSettings, SpecError
from tests.conftest import REPO_ROOT

# ---- the policy --------------------------------------------------------------------------------------------------


def test_policy_keeps_full_resolution_until_something_was_measured():
    p = ProgressivePolicy(budget_ms=50)
    assert p.preview_resolution(1024, regenerating=False) == 1024


def test_policy_picks_the_largest_size_that_fits_the_budget():
    p = ProgressivePolicy(budget_ms=70)
    p.observe(1024, 400.0, None)  # slow at the chosen size
    # Area scaling from 1024: 768 -> 225, 512 -> 100, 384 -> 56, 256 -> 25, 192 -> 14 ms.
    assert p.preview_resolution(1024, regenerating=False) == 384
    p.observe(384, 90.0, None)  # measured slower than the estimate: step down
    assert p.preview_resolution(1024, regenerating=False) == 256
    assert all(r % 16 == 0 for r in PREVIEW_LADDER)


def test_policy_on_a_fast_machine_never_drops():
    p = ProgressivePolicy(budget_ms=70)
    p.observe(1024, 12.0, None)
    assert p.preview_resolution(1024, regenerating=False) == 1024


def test_policy_counts_generation_when_the_latent_changes():
    p = ProgressivePolicy(budget_ms=80)
    p.observe(512, 60.0, 30.0)
    assert p.preview_resolution(512, regenerating=False) == 512  # 60 ms
    assert p.preview_resolution(512, regenerating=True) == 384  # 30 + 60 * (384/512)^2 = 64 ms
    p.observe(512, 60.0, 500.0)  # generation alone is over budget: the smallest size, the most fluid
    p.observe(512, 60.0, 500.0)
    assert p.preview_resolution(512, regenerating=True) == PREVIEW_LADDER[0]


def test_policy_adapts_to_measured_times_and_can_be_disabled():
    p = ProgressivePolicy(budget_ms=70)
    p.observe(512, 300.0, None)  # 256 -> 75 ms, 192 -> 42 ms: the largest that fits
    assert p.preview_resolution(512, regenerating=False) == 192
    for _ in range(20):  # the machine got faster (another program stopped)
        p.observe(512, 20.0, None)
    assert p.preview_resolution(512, regenerating=False) == 512
    p.enabled = False
    p.observe(512, 900.0, None)
    assert p.preview_resolution(512, regenerating=False) == 512
    assert p.levels(PREVIEW_LADDER[0]) == [PREVIEW_LADDER[0]]  # nothing below the smallest rung


# ---- remembered settings -----------------------------------------------------------------------------------------


def test_render_settings_round_trip_through_the_settings_file(tmp_path):
    s = Settings(recent_files=["/a.pkl"], output_dir="/out", show_overlay=False, progressive=False,
                 render={"resolution": 1024, "backend": "torch", "mode": "depth", "background": [0.1, 0.2, 0.3],
                         "sh_ref": "view", "depth_colormap": "grey"})
    assert save_settings(s, tmp_path) is None
    back = load_settings(tmp_path)
    assert back == s


def test_bad_remembered_values_are_skipped_one_by_one(tmp_path):
    from app.viewer import remembered_render_settings

    (tmp_path / "settings.json").write_text(json.dumps({
        "render": {"resolution": 999, "backend": "vulkan", "mode": "depth", "background": "plaid",
                   "sh_ref": 3, "depth_colormap": "grey", "unknown": 1},
        "show_overlay": "yes", "progressive": False,
    }))
    loaded = load_settings(tmp_path)
    assert "unknown" not in loaded.render and loaded.show_overlay is True and loaded.progressive is False
    s = remembered_render_settings(loaded.render, DEFAULT_SETTINGS, ("auto", "torch"))
    assert (s.resolution, s.backend, s.mode, s.background, s.sh_ref, s.depth_colormap) == (
        DEFAULT_SETTINGS.resolution, DEFAULT_SETTINGS.backend, "depth", DEFAULT_SETTINGS.background,
        DEFAULT_SETTINGS.sh_ref, "grey")
    ok = remembered_render_settings({"background": [0.0, 0.5, 1.0]}, DEFAULT_SETTINGS, ("auto",))
    assert ok.background == (0.0, 0.5, 1.0)


# ---- depth colour maps -------------------------------------------------------------------------------------------


def test_depth_colormap_is_validated_and_travels_in_recipes():
    with pytest.raises(SpecError, match="depth colour map"):
        RenderSettings(depth_colormap="viridis")
    s = RenderSettings(mode="depth", depth_colormap="grey")
    assert s.render_kwargs()["depth_colormap"] == "grey"
    job = GridJob(seeds=(1, 2), settings=s, labels=True)
    back = job_from_dict("grid", json.loads(json.dumps(job_to_dict(job))))
    assert back == job


def test_grey_depth_is_grey_and_near_is_bright():
    from gghead_core.camera import CameraSpec
    from gghead_core.render import depth_range, render
    from gghead_core.render._synthetic import synthetic_head

    g = synthetic_head(3000, seed=1)
    cam = CameraSpec().to_camera()
    grey = render(g, cam, 64, backend="torch", mode="depth", depth_colormap="grey")
    rainbow = render(g, cam, 64, backend="torch", mode="depth")
    a = grey.alpha[0] > 0.99
    img = grey.image[0][a]  # [M, 3]
    assert torch.allclose(img[:, 0], img[:, 1]) and torch.allclose(img[:, 1], img[:, 2])
    assert not torch.allclose(rainbow.image[0][a][:, 0], rainbow.image[0][a][:, 2])
    d = grey.depth[0][a]
    near_px, far_px = img[d.argmin(), 0], img[d.argmax(), 0]
    assert near_px > 0.9 and far_px < 0.1  # near white, far black
    near, far = depth_range(grey.depth[0], grey.alpha[0])
    assert near < far and abs(near - 2.7 + 0.28) < 0.1  # camera at 2.7, the ellipsoid's front ~0.24-0.28 closer
    with pytest.raises(ValueError, match="depth_colormap"):
        render(g, cam, 32, backend="torch", mode="depth", depth_colormap="jet")


# ---- grid labels -------------------------------------------------------------------------------------------------


def test_font_draws_known_glyphs_and_boxes_unknown_ones():
    one = text_mask("1")
    assert one.shape == (GLYPH_H, 5) and one.sum() == 10
    assert text_mask("8").sum() != text_mask("0").sum()
    assert text_mask("\u2603").sum() == 5 + 5 + 2 * 5  # unknown: a hollow box
    assert text_mask("ab\ncd", scale=2).shape == (2 * (2 * GLYPH_H + 1), 2 * (2 * 5 + 1))
    img = np.full((64, 64, 4), 200, np.uint8)
    img[..., 3] = 0
    draw_label(img, "seed 7")
    assert (img[..., :3] == 255).all(-1).sum() == text_mask("seed 7").sum()
    assert img[2:6, 2:6, 3].min() == 255  # opaque label on a transparent image
    assert (img[40:, 40:] == [200, 200, 200, 0]).all()  # the rest is untouched
    draw_label(np.zeros((3, 3, 3), np.uint8), "too small")  # clipped, never raises


def test_grid_cli_writes_labels(tmp_path):
    import imageio.v3 as iio

    def grid(out, *extra):
        proc = subprocess.run(
            [sys.executable, str(REPO_ROOT / "main.py"), "grid", "--seeds", "3,12", "--yaws", "-30,0",
             "--resolution", "64", "--backend", "torch", "--out", str(out), "-q", *extra],
            capture_output=True, text=True, timeout=600, cwd=REPO_ROOT,
        )
        assert proc.returncode == 0, proc.stderr
        return iio.imread(out)

    plain = grid(tmp_path / "plain.png")
    labelled = grid(tmp_path / "labelled.png", "--labels")
    assert plain.shape == labelled.shape == (128, 128, 3)
    diff = np.abs(plain.astype(int) - labelled.astype(int)).max(-1) > 0
    for y0, x0, text in ((0, 0, "seed 3\nyaw -30"), (0, 64, "seed 3\nyaw 0"), (64, 0, "seed 12\nyaw -30")):
        cell = labelled[y0:y0 + 64, x0:x0 + 64].copy()
        ref = plain[y0:y0 + 64, x0:x0 + 64].copy()
        draw_label(ref, text)
        assert np.array_equal(cell, ref), text  # exactly the label, where the font puts it
    assert diff[:24].any() and not diff[24:64].any() and not diff[88:].any()  # only the labels' boxes differ
    recipe = json.loads((tmp_path / "labelled.png.json").read_text())
    assert recipe["params"]["labels"] is True


def test_render_cli_depth_colormap_grey(tmp_path):
    import imageio.v3 as iio

    out = tmp_path / "depth.png"
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "main.py"), "render", "--seed", "0", "--mode", "depth", "--depth-colormap",
         "grey", "--resolution", "48", "--backend", "torch", "--out", str(out), "-q"],
        capture_output=True, text=True, timeout=600, cwd=REPO_ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    img = iio.imread(out).astype(int)
    assert (img[..., 0] == img[..., 1]).all() and (img[..., 1] == img[..., 2]).all()
    assert img.min() < 128  # the head's far parts are dark on the white background
    assert json.loads((tmp_path / "depth.png.json").read_text())["params"]["settings"]["depth_colormap"] == "grey"
    bad = subprocess.run(
        [sys.executable, str(REPO_ROOT / "main.py"), "render", "--seed", "0", "--depth-colormap", "jet",
         "--out", str(tmp_path / "x.png")], capture_output=True, text=True, timeout=600, cwd=REPO_ROOT,
    )
    assert bad.returncode == 2 and "depth-colormap" in bad.stderr
