"""Drive the real viewer's Timeline panel (run by tests/test_timeline_gui.py in its own process, under Xvfb).

Its own process because DearPyGui must not create a second context in one process (see test_gui_viewer.py),
and because the thread count must match the headless run it is compared with (CPU reductions round
differently with another count): the test starts both with ``OMP_NUM_THREADS=1``.

    python tests/timeline_gui_driver.py OUT_DIR [--screenshot PNG]

Writes ``OUT_DIR/result.json`` (facts the test asserts), ``OUT_DIR/previews.npz`` (the viewer's uint8 frames
while scrubbing to each export frame time) and, through the panel, a GIF export, a lossless PNG-folder export
(the panel's job builder through the viewer's capture runner) and the saved timeline JSON.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from app.capture import start_capture, timeline_job  # noqa: E402
from app.viewer import Viewer  # noqa: E402
from gghead_core import export as ex  # noqa: E402
from gghead_core.pipeline import CameraSpec, LatentSpec, StyleMix  # noqa: E402

FIXTURE = REPO.parent / "shared" / "fixtures" / "gghead_official_small" / "checkpoint.pkl"
RES = 64


def wait_capture(v: Viewer, timeout: float = 300.0):
    deadline = time.time() + timeout
    while v.captures.busy and time.time() < deadline:
        v.step()
        time.sleep(0.01)
    v.step()
    assert not v.captures.busy, "capture did not finish"
    return v.captures.status


def shown(v: Viewer) -> np.ndarray:
    assert v.wait(120), f"viewer did not settle: {v.status}"
    assert v.status == "", v.status
    return ex.to_uint8(v.image[..., :3])


def main(out: Path, screenshot: Path | None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    ckpt = str(FIXTURE) if FIXTURE.is_file() else None
    v = Viewer(ckpt, resolution=RES, backend="torch", output_dir=out / "captures", config_dir=out / "config",
               width=1300, height=1000)
    v.start()
    facts: dict = {}
    try:
        assert v.wait(180), f"viewer did not start: {v.status}"
        tw = v.timeline
        # Key 0: set the state the way the panels do, then "Add keyframe".
        v.args.latent = LatentSpec(seed=3, psi=0.6)
        v.args.camera = CameraSpec(yaw_deg=170.0, pitch_deg=5.0)
        v.trigger("timeline.add")
        facts["playhead_after_add"] = tw.editor.time_s
        # Key 1 at the playhead (1.0 s), a different head and camera (across the yaw seam).
        v.args.latent = LatentSpec(seed=8, psi=0.8, mix=StyleMix(seed=2, start=4))
        v.args.camera = CameraSpec(yaw_deg=-160.0, pitch_deg=-10.0, radius=3.0, fov_deg=15.0)
        v.trigger("timeline.add")
        # A third key, then move it, replace it and delete it again (the list operations).
        v.args.latent = LatentSpec(seed=5)
        v.trigger("timeline.add")
        facts["keys_after_three_adds"] = [k.time_s for k in tw.editor.keys]
        v.trigger("timeline.key2.time", 0.5)  # move key 2 from 2.0 s to 0.5 s: it becomes key 1
        facts["keys_after_move"] = [k.time_s for k in tw.editor.keys]
        v.trigger("timeline.key0.time", 1.0)  # onto another key: refused, nothing changes
        facts["collision_message"] = tw.message
        facts["keys_after_collision"] = [k.time_s for k in tw.editor.keys]
        import dearpygui.dearpygui as dpg

        facts["key0_input_after_collision"] = dpg.get_value("timeline.key0.time")
        v.args.latent = LatentSpec(seed=6)
        v.trigger("timeline.key1.replace")
        facts["replaced_seed"] = tw.editor.keys[1].latent.seed
        v.trigger("timeline.key1.delete")
        facts["keys_after_delete"] = [k.time_s for k in tw.editor.keys]
        v.trigger("timeline.key0.ease", "ease-in-out")
        v.trigger("timeline.fps", 4.0)
        v.trigger("timeline.resolution", str(RES))
        v.trigger("timeline.format", "gif")

        # Jump to key 1: the exact state comes back into the panels, no preview.
        v.trigger("timeline.key1.jump")
        facts["jump_state_is_key"] = (v.args.latent == tw.editor.keys[1].latent and v.args.camera == tw.editor.keys[1].camera
                                      and v.args.timeline is None)
        key1_view = shown(v)

        # Scrub to every export frame time; keep what the viewer shows.
        tl = tw.editor.timeline()
        times = tl.frame_times()
        previews = []
        for t in times:
            v.trigger("timeline.time", t)
            previews.append(shown(v))
        facts["previewing_after_scrub"] = v.args.timeline is not None
        np.savez(out / "previews.npz", previews=np.stack(previews), key1_view=key1_view)
        facts["frame_times"] = times

        # A screenshot of a preview is refused (no still recipe can spell a blend of ws).
        v.trigger("timeline.time", 0.5)
        v.trigger("capture.screenshot")
        facts["screenshot_during_preview"] = v.capture.message

        # Export through the panel (GIF), then the same job builder into a lossless folder.
        v.trigger("timeline.export")
        st = wait_capture(v)
        assert st.output is not None, st.error
        facts["gif"] = str(st.output)
        facts["gif_message"] = tw.message
        gen = v.worker.latents
        job = timeline_job(v.args.snapshot(), tl, tw.options)
        assert start_capture(v.captures, "timeline", gen.G, job, out / "captures", "",
                             render_fn=v.worker.render_fn, generate_fn=gen.gaussians)
        st = wait_capture(v)
        assert st.output is not None, st.error
        facts["folder"] = str(st.output)

        # Save the timeline JSON for the headless run.
        v.trigger("timeline.path", str(out / "timeline.json"))
        v.trigger("timeline.save")
        facts["saved_message"] = tw.message

        # Editing the latent ends the preview.
        v.trigger("timeline.time", 0.5)
        v.step()
        v.args.latent = LatentSpec(seed=11)
        v.step()
        facts["preview_after_latent_edit"] = v.args.timeline is not None

        # Play: the playhead moves and the preview follows; pause stops it.
        v.trigger("timeline.key0.jump")
        v.trigger("timeline.play")
        t0 = time.time()
        while time.time() - t0 < 0.6:
            v.step()
            time.sleep(0.02)
        facts["playing_time"] = tw.editor.time_s
        facts["playing_preview"] = v.args.timeline is not None
        v.trigger("timeline.play")
        facts["paused"] = not tw.editor.playing

        # Load the saved file back (round trip through the panel).
        saved = tl
        v.trigger("timeline.key0.delete")
        v.trigger("timeline.load")
        facts["load_round_trip"] = tw.editor.timeline() == saved

        if screenshot is not None:
            take_screenshot(v, screenshot)
    finally:
        v.close()
    (out / "result.json").write_text(json.dumps(facts, indent=1))


def take_screenshot(v: Viewer, path: Path, time_s: float = 0.4) -> None:
    """The window with the Timeline panel open (other panels folded), for the README."""
    import dearpygui.dearpygui as dpg

    for w in v.widgets:
        if dpg.does_item_exist(f"{w.name}.header"):
            dpg.set_value(f"{w.name}.header", w.name in ("timeline", "camera"))
    v.trigger("timeline.time", time_s)
    v.wait(300)
    grabbed: dict = {}

    def grab(_sender, buf) -> None:  # noqa: ANN001
        grabbed["frame"] = np.array(buf, dtype=np.float32).reshape(buf.get_height(), buf.get_width(), 4)

    dpg.output_frame_buffer(callback=grab)
    for _ in range(20):
        v.step()
        if "frame" in grabbed:
            break
    ex.write_png(path, ex.to_uint8(grabbed["frame"][..., :3]))


def readme_screenshot(path: Path) -> None:
    """The README's picture: the demo model at 512 px, three keys, the playhead between the first two."""
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix="gghead-timeline-shot-"))
    v = Viewer(None, resolution=512, output_dir=tmp / "captures", config_dir=tmp / "config", width=1300, height=820)
    v.start()
    try:
        assert v.wait(300), v.status
        for t, seed, yaw, pitch in ((0.0, 0, -35.0, 0.0), (2.0, 4, 30.0, 5.0), (4.0, 7, 0.0, -5.0)):
            v.timeline.editor.time_s = t
            v.args.latent = LatentSpec(seed=seed, psi=0.7)
            v.args.camera = CameraSpec(yaw_deg=yaw, pitch_deg=pitch)
            v.trigger("timeline.add")
        v.trigger("timeline.key0.ease", "ease-in-out")
        take_screenshot(v, path, time_s=1.2)
    finally:
        v.close()


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[0] == "--readme":
        readme_screenshot(Path(args[1]))
        sys.exit(0)
    shot = None
    if "--screenshot" in args:
        i = args.index("--screenshot")
        shot = Path(args[i + 1])
        del args[i : i + 2]
    main(Path(args[0]), shot)
