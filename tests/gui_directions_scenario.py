"""The Directions panel and the Seed browser in the real viewer: one scenario, run in its own process by
tests/test_gui_directions.py (one DearPyGui context per process: see tests/test_gui_viewer.py's docstring).

Usage: ``python tests/gui_directions_scenario.py OUT_DIR [SCREENSHOT.png]``; writes ``OUT_DIR/results.json``
(the facts the tests check) and, when asked, a PNG of the whole window for the README.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def main(out_dir: Path, screenshot: str | None) -> int:
    import dearpygui.dearpygui as dpg
    import numpy as np

    from app.viewer import Viewer
    from gghead_core import cli

    r: dict = {}
    out_dir.mkdir(parents=True, exist_ok=True)
    os.environ["XDG_CONFIG_HOME"] = str(out_dir / "config")
    v = Viewer(None, resolution=512 if screenshot else 64, output_dir=out_dir / "captures",
               width=1600 if screenshot else 1400, height=1000 if screenshot else 900)
    v.start()
    try:
        assert v.wait(180), f"viewer did not settle: {v.status}"
        d, s = v.directions, v.seeds

        # -- directions: nothing cached yet; compute in the background with a progress bar ------------------
        deadline = time.time() + 30
        while d.busy and time.time() < deadline:  # the cache look-up after the model loaded
            v.step()
        r["before"] = {"directions": d.directions is not None, "compute_shown": dpg.is_item_shown("directions.compute")}
        v.trigger("directions.compute")
        r["progress_shown"] = dpg.is_item_shown("directions.progress")
        steps = 0
        while d.busy:
            v.step()  # the UI keeps running while the PCA is computed
            steps += 1
        v.step()
        r["ui_steps_during_compute"] = steps
        r["names"] = d.names
        r["sliders"] = sum(dpg.does_item_exist(f"directions.amount.{n}") for n in d.names)
        r["compute_shown_after"] = dpg.is_item_shown("directions.compute")
        r["error_after_compute"] = d.error

        # -- sliders write LatentSpec.edits; per-direction layer ranges; resets ------------------------------
        v.trigger("latent.seed", 3)
        v.trigger("truncation.psi", 0.6)
        v.trigger("directions.amount.pc2", 2.5)
        v.trigger("directions.first", 1)
        v.trigger("directions.last", 6)
        v.trigger("directions.amount.pc5", -1.0)
        r["edits"] = [[e.direction, e.amount, e.start, e.end] for e in v.args.latent.edits]
        r["latent_kept"] = [v.args.latent.seed, v.args.latent.psi]
        v.trigger("directions.reset.pc5")
        r["edits_after_reset_pc5"] = [[e.direction, e.amount, e.start, e.end] for e in v.args.latent.edits]
        assert v.wait(120), v.status
        r["status_edited"] = v.status
        edited = v.image
        v.trigger("directions.reset_all")
        r["edits_after_reset_all"] = len(v.args.latent.edits)
        assert v.wait(120), v.status
        r["edit_changes_view"] = float(np.abs(edited - v.image).mean())

        # -- custom direction: bad input is one line in the panel; a good one becomes a slider --------------
        d.add_custom("pc3", "1", "2")
        r["bad_custom_error"] = d.error
        dpg.set_value("directions.custom_name", "older")
        dpg.set_value("directions.custom_with", "1,5,9")
        dpg.set_value("directions.custom_without", "2,3")
        v.trigger("directions.custom_add")
        while d.busy:
            v.step()
        v.step()
        r["custom_slider"] = dpg.does_item_exist("directions.amount.older")
        r["custom_error"] = d.error

        # -- an edited screenshot writes a recipe with the edits (the test replays it through the CLI) ------
        v.args.settings = replace(v.args.settings, backend="torch")
        v.trigger("directions.amount.pc2", 2.5)
        v.trigger("directions.amount.older", -1.5)
        assert v.wait(120), v.status
        v.trigger("capture.shot_resolution", "view")
        v.trigger("capture.screenshot")
        deadline = time.time() + 120
        while v.captures.busy and time.time() < deadline:
            v.step()
            time.sleep(0.01)
        v.step()
        st = v.captures.status
        r["screenshot"] = st.output
        r["screenshot_error"] = st.error
        r["screenshot_edits"] = [[e.direction, e.amount, e.start, e.end] for e in v.args.latent.edits]

        # -- seed browser: a page of thumbnails equal to `render` of each seed at that size -----------------
        v.args.settings = replace(v.args.settings, backend="auto")
        v.trigger("seeds.show", True)
        r["window_shown"] = dpg.is_item_shown("seeds.window")
        deadline = time.time() + 300
        while not s.complete and time.time() < deadline:
            v.step()
            time.sleep(0.005)
        r["page_complete"] = s.complete
        r["page_seeds"] = s.seeds
        r["thumb_errors"] = [e for e in s.errors if e]
        thumb = s.images[6]
        a = v.args
        torch_threads = __import__("torch").get_num_threads()
        argv = ["-q", "render", "--seed", "6", "--psi", str(a.latent.psi), "--resolution", str(s.size),
                "--backend", "auto", "--out", str(out_dir / "seed6.png")]
        for e in a.latent.edits:
            rows = "" if e.start == 0 and e.end is None else f"@{e.start}-{'' if e.end is None else e.end - 1}"
            argv += ["--edit", f"{e.direction}={e.amount}{rows}"]
        r["render_argv"] = argv
        r["cli_render_rc"] = cli.main(argv)
        from PIL import Image

        r["thumb_equals_render"] = bool(np.array_equal(thumb, np.asarray(Image.open(out_dir / "seed6.png"))))
        r["torch_threads"] = torch_threads

        # -- clicking a thumbnail sets the seed; shift-click seed B -----------------------------------------
        v.trigger("seeds.cell.5")
        r["seed_after_click"] = v.args.latent.seed
        s.click(9, shift=True)
        r["seed_b_after_shift_click"] = v.args.latent.seed_b
        r["label_5"] = dpg.get_value("seeds.label.5")
        assert v.wait(120), v.status

        # -- paging: the old page's queued work is dropped; a seen page comes from the cache ----------------
        cancelled = s.thumbs.cancelled
        v.trigger("seeds.next")
        v.step()
        v.trigger("seeds.next")  # before page 2 was made
        v.step()
        r["first_seed_after_next"] = s.first_seed
        r["cancelled_by_paging"] = s.thumbs.cancelled - cancelled
        v.trigger("seeds.prev")
        v.trigger("seeds.prev")
        v.step()
        r["back_to_first_page_complete_at_once"] = s.complete
        r["pending_after_back"] = s.thumbs.pending  # at most a stale page's thumbnail still in progress
        v.trigger("seeds.goto", 1234)
        v.step()
        r["goto_page"] = s.seeds[:2]

        if screenshot:  # the README's picture: the Directions panel open, the seed browser beside the head
            s.go_to(0)
            v.latent.set_seed(5)
            v.trigger("directions.reset_all")
            v.trigger("directions.amount.pc0", 2.0)
            v.trigger("directions.amount.pc3", -1.5)
            for header in ("model", "latent", "camera", "render", "capture", "perf"):
                dpg.set_value(f"{header}.header", False)
            dpg.set_value("directions.header", True)
            dpg.set_item_pos("seeds.window", [v.width - 640, 10])
            deadline = time.time() + 300
            while (not s.complete or not v.settled) and time.time() < deadline:
                v.step()
                time.sleep(0.005)
            for _ in range(5):
                v.step()
            dpg.output_frame_buffer(screenshot)
            for _ in range(5):
                v.step()
    except Exception:
        r["error"] = traceback.format_exc()
    finally:
        v.close()
    (out_dir / "results.json").write_text(json.dumps(r, indent=1, default=str))
    return 1 if "error" in r else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else None))
