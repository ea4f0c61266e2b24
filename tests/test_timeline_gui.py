"""The viewer's Timeline panel: the key-list logic (no display), and the real panel under Xvfb, compared frame
by frame with the headless ``timeline`` command.

The GUI part runs ``tests/timeline_gui_driver.py`` in its own process (one DearPyGui context per process; see
test_gui_viewer.py) and the CLI in another, both with ``OMP_NUM_THREADS=1`` so their CPU reductions round the
same way; then: the viewer's export (GIF through the panel, PNG folder through the panel's job builder) equals
the CLI's output for the saved JSON, and what the viewer shows while scrubbing to each frame time equals that
frame.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gghead_core import export as ex
from gghead_core.pipeline import CameraSpec, LatentSpec
from gghead_core.vocabulary import SpecError
from tests.conftest import FIXTURE_CKPT, REPO_ROOT

pytest.importorskip("dearpygui.dearpygui", reason="the viewer's widgets need DearPyGui")

from app.widgets.timeline import TimelineEditor  # noqa: E402

# ---- the key list (no display) ----------------------------------------------------------------------------------


def test_editor_adds_moves_replaces_and_deletes_keys():
    ed = TimelineEditor()
    assert ed.timeline() is None and ed.length_s == 0.0
    a, b = LatentSpec(seed=1), LatentSpec(seed=2)
    assert ed.add(a, CameraSpec()) == 0
    ed.time_s = 2.0
    assert ed.add(b, CameraSpec(yaw_deg=30.0)) == 1
    ed.time_s = 1.0
    assert ed.add(LatentSpec(seed=3), CameraSpec()) == 1  # inserted in time order
    assert [k.time_s for k in ed.keys] == [0.0, 1.0, 2.0]
    ed.time_s = 2.0
    assert ed.add(LatentSpec(seed=4), CameraSpec()) == 2  # a key at the playhead is replaced, not doubled
    assert [k.latent.seed for k in ed.keys] == [1, 3, 4]
    assert ed.move(0, 3.0) == 2 and [k.latent.seed for k in ed.keys] == [3, 4, 1]
    with pytest.raises(SpecError, match="share the time"):
        ed.move(0, 2.0)
    assert [k.time_s for k in ed.keys] == [1.0, 2.0, 3.0]  # a refused edit changes nothing
    ed.replace_key(1, LatentSpec(seed=9), CameraSpec(radius=3.0))
    assert ed.keys[1].latent.seed == 9 and ed.keys[1].camera.radius == 3.0 and ed.keys[1].time_s == 2.0
    ed.set_ease(0, "ease-out")
    assert ed.keys[0].ease == "ease-out"
    with pytest.raises(SpecError, match="keyframe ease"):
        ed.set_ease(0, "bounce")
    ed.delete(2)
    assert [k.time_s for k in ed.keys] == [1.0, 2.0]
    with pytest.raises(SpecError, match="timeline fps"):
        ed.set_options(fps=0.0)
    assert ed.fps == 24.0
    ed.delete(0)
    ed.delete(0)
    assert ed.timeline() is None


def test_editor_playback_repeats_or_stops():
    ed = TimelineEditor()
    ed.add(LatentSpec(seed=1), CameraSpec())
    ed.time_s = 1.0
    ed.add(LatentSpec(seed=2), CameraSpec())
    ed.time_s, ed.playing, ed.repeat = 0.0, True, False
    ed.advance(0.4)
    assert ed.time_s == pytest.approx(0.4) and ed.playing
    ed.advance(5.0)
    assert ed.time_s == 1.0 and not ed.playing  # stops on the last key
    ed.playing, ed.repeat = True, True
    ed.advance(0.1)
    assert ed.time_s == 0.0 and ed.playing  # the last key was shown; start over
    ed.set_options(loop=True)  # closed path: 2 s long, wraps without a repeated frame
    ed.time_s = 1.9
    ed.advance(0.3)
    assert ed.time_s == pytest.approx(0.2)


# ---- the real panel ---------------------------------------------------------------------------------------------


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE", PYTHONPATH=str(REPO_ROOT))
    return env


@pytest.mark.skipif(not os.environ.get("DISPLAY"), reason="the viewer needs an X display: run under xvfb-run")
def test_panel_preview_and_export_equal_the_headless_command(tmp_path):
    if not FIXTURE_CKPT.is_file():
        pytest.skip(f"official fixture not present at {FIXTURE_CKPT} (only developers' checkouts have ../shared)")
    out = tmp_path / "gui"
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "tests" / "timeline_gui_driver.py"), str(out)],
                          capture_output=True, text=True, timeout=900, cwd=REPO_ROOT, env=_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    facts = json.loads((out / "result.json").read_text())

    # The list operations through the panel's controls.
    assert facts["playhead_after_add"] == 1.0
    assert facts["keys_after_three_adds"] == [0.0, 1.0, 2.0]
    assert facts["keys_after_move"] == [0.0, 0.5, 1.0]
    assert "share the time" in facts["collision_message"] and facts["keys_after_collision"] == [0.0, 0.5, 1.0]
    assert facts["key0_input_after_collision"] == 0.0  # the row shows the key's real time again
    assert facts["replaced_seed"] == 6 and facts["keys_after_delete"] == [0.0, 1.0]
    assert facts["jump_state_is_key"] and facts["previewing_after_scrub"]
    assert "timeline preview" in facts["screenshot_during_preview"]
    assert not facts["preview_after_latent_edit"]
    assert facts["playing_preview"] and 0.0 < facts["playing_time"] < 1.0 and facts["paused"]
    assert facts["load_round_trip"]

    # The headless command on the saved JSON, to a GIF and to a PNG folder.
    common = ["--ckpt", str(FIXTURE_CKPT), "--device", "cpu", "--quiet", "timeline", str(out / "timeline.json"),
              "--resolution", "64", "--backend", "torch", "--fps", "4"]
    for target in (tmp_path / "cli.gif", f"{tmp_path / 'cli'}/"):
        proc = subprocess.run([sys.executable, "main.py", *common, "--out", str(target)], capture_output=True,
                              text=True, timeout=600, cwd=REPO_ROOT, env=_env())
        assert proc.returncode == 0, proc.stderr
    cli_frames = np.stack([_png(p) for p in sorted((tmp_path / "cli").glob("frame_*.png"))])
    gui_frames = np.stack([_png(p) for p in sorted(Path(facts["folder"]).glob("frame_*.png"))])
    assert cli_frames.shape == (5, 64, 64, 3)
    assert np.array_equal(gui_frames, cli_frames)
    assert np.array_equal(ex.read_frames(facts["gif"]), ex.read_frames(tmp_path / "cli.gif"))

    # What the viewer showed while scrubbing is the exported frame at that time (keys included).
    previews = np.load(out / "previews.npz")
    assert np.array_equal(previews["previews"], cli_frames)
    assert np.array_equal(previews["key1_view"], cli_frames[-1])
    assert np.abs(cli_frames[2].astype(int) - cli_frames[0]).mean() > 1


def _png(path: Path) -> np.ndarray:
    import imageio.v3 as iio

    return iio.imread(path)
