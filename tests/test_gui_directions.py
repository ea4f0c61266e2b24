"""The Directions panel and the Seed browser in the real viewer under Xvfb.

The viewer runs in its own process (tests/gui_directions_scenario.py): DearPyGui must not create a second
context in a process where another test module already opened and closed one (see test_gui_viewer.py). The
scenario drives the widgets through ``Viewer.trigger`` (the callbacks a user's clicks run) and records what it
saw; each test below checks one part of it. The edited screenshot's recipe is replayed here through the CLI.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

if not os.environ.get("DISPLAY"):
    pytest.skip(
        "GUI tests need an X display (DearPyGui aborts the process without one); run under "
        'xvfb-run -a -s "-screen 0 1920x1080x24"',
        allow_module_level=True,
    )

from tests.conftest import REPO_ROOT  # noqa: E402

if not (REPO_ROOT / "checkpoints" / "demo.safetensors").is_file():
    pytest.skip("checkpoints/demo.safetensors is not present", allow_module_level=True)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gui_directions")
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "tests" / "gui_directions_scenario.py"), str(out)],
                          capture_output=True, text=True, timeout=900, cwd=REPO_ROOT)
    path = out / "results.json"
    assert path.is_file(), f"scenario crashed (rc {proc.returncode}): {proc.stderr[-3000:]}"
    results = json.loads(path.read_text())
    assert "error" not in results, results["error"]
    return out, results


def test_compute_button_progress_and_sliders(run):
    _, r = run
    assert r["before"] == {"directions": False, "compute_shown": True}  # fresh settings folder: nothing cached
    assert r["progress_shown"] and r["ui_steps_during_compute"] >= 1  # background: the UI kept drawing frames
    assert r["names"] == [f"pc{i}" for i in range(20)] and r["sliders"] == 20
    assert not r["compute_shown_after"] and r["error_after_compute"] == ""


def test_sliders_write_edits_with_layer_ranges_and_reset(run):
    _, r = run
    # pc2's range was set to layers 1..6 (inclusive) -> rows [1, 7); pc5 kept the default (all rows).
    assert r["edits"] == [["pc2", 2.5, 1, 7], ["pc5", -1.0, 0, None]]
    assert r["latent_kept"] == [3, 0.6]  # seed and truncation untouched by the panel
    assert r["edits_after_reset_pc5"] == [["pc2", 2.5, 1, 7]]
    assert r["edits_after_reset_all"] == 0
    assert r["status_edited"] == "" and r["edit_changes_view"] > 0.005  # the edit visibly changed the head


def test_custom_direction_ui(run):
    _, r = run
    assert "reserved" in r["bad_custom_error"] and "\n" not in r["bad_custom_error"]
    assert r["custom_slider"] and r["custom_error"] == ""


def test_edited_screenshot_replays_to_identical_pixels_through_the_cli(run, tmp_path):
    out, r = run
    from PIL import Image

    assert r["screenshot_error"] is None and r["screenshot_edits"] == [["pc2", 2.5, 0, None], ["older", -1.5, 0, None]]
    shot = r["screenshot"]
    recipe = json.loads(open(shot + ".json").read())
    assert [e["direction"] for e in recipe["params"]["latent"]["edits"]] == ["pc2", "older"]
    env = {**os.environ, "XDG_CONFIG_HOME": str(out / "config")}
    replayed = tmp_path / "replayed.png"
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "main.py"), "-q", "replay", shot + ".json", "--out",
                           str(replayed)], capture_output=True, text=True, timeout=300, cwd=REPO_ROOT, env=env)
    assert proc.returncode == 0, proc.stderr
    assert np.array_equal(np.asarray(Image.open(shot)), np.asarray(Image.open(replayed)))
    # Without the cache the PCA is recomputed; the custom direction is gone with it, and the replay says so.
    shutil.rmtree(out / "config" / "gghead-viewer" / "directions")
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "main.py"), "replay", shot + ".json", "--out",
                           str(tmp_path / "again.png")], capture_output=True, text=True, timeout=300, cwd=REPO_ROOT,
                          env=env)
    assert proc.returncode == 2 and "unknown latent direction(s) older" in proc.stderr


def test_thumbnails_fill_a_page_and_equal_cli_render(run):
    _, r = run
    assert r["window_shown"] and r["page_complete"] and r["thumb_errors"] == []
    assert r["page_seeds"] == list(range(16))
    assert r["cli_render_rc"] == 0 and r["thumb_equals_render"], r["render_argv"]


def test_clicking_a_thumbnail_sets_the_seed(run):
    _, r = run
    assert r["seed_after_click"] == 5 and r["seed_b_after_shift_click"] == 9
    assert r["label_5"] == "5 (A)"


def test_paging_cancels_stale_work_and_seen_pages_come_from_the_cache(run):
    _, r = run
    assert r["first_seed_after_next"] == 32
    assert r["cancelled_by_paging"] >= 14  # page 16-31 was left before (almost) any of it was made
    assert r["back_to_first_page_complete_at_once"] and r["pending_after_back"] <= 1  # all 16 from the cache
    assert r["goto_page"] == [1232, 1233]
