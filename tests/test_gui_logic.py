"""Viewer logic that needs no display: settings file, capture naming, clamping, display buffers, the worker's
latest-request-wins queue and per-latent cache, and the no-display error."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from app.capture import TurntableOptions, next_numbered_path, screenshot_job, turntable_job
from app.display import BufferPool, write_rgb
from app.settings import MAX_RECENT, Settings, config_dir, load_settings, save_settings
from app.state import RenderArgs, clamp
from app.widgets.camera import wrap_deg
from app.widgets.latent import triangle
from app.worker import RenderWorker
from gghead_core.camera import CameraSpec
from gghead_core.gaussians import Gaussians
from gghead_core.jobs import TurntableJob
from gghead_core.pipeline import LatentSpec, StyleMix

# ---- settings ------------------------------------------------------------------------------------------------


def test_settings_live_in_xdg_config_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    assert config_dir() == tmp_path / "cfg" / "gghead-viewer"
    s = Settings()
    for i in range(MAX_RECENT + 3):
        s.add_recent(tmp_path / f"m{i}.pkl")
    s.add_recent(tmp_path / "m5.pkl")  # re-opening moves it to the front, no duplicate
    assert save_settings(s) is None
    data = json.loads((tmp_path / "cfg" / "gghead-viewer" / "settings.json").read_text())
    assert data["recent_files"][0] == str(tmp_path / "m5.pkl")
    assert len(data["recent_files"]) == MAX_RECENT
    assert len(set(data["recent_files"])) == MAX_RECENT
    assert load_settings().recent_files == data["recent_files"]


def test_corrupt_or_unwritable_settings_do_not_raise(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    folder = tmp_path / "gghead-viewer"
    folder.mkdir()
    (folder / "settings.json").write_text("{not json")
    assert load_settings() == Settings()
    (folder / "settings.json").write_text(json.dumps({"recent_files": "oops", "output_dir": 3}))
    assert load_settings() == Settings()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    error = save_settings(Settings(), blocker / "sub")
    assert error is not None and "could not save settings" in error


# ---- small pure helpers ----------------------------------------------------------------------------------------


def test_clamp_rejects_junk():
    assert clamp(float("nan"), 0, 1, 0.5) == 0.5
    assert clamp(None, 0, 1, 0.25) == 0.25
    assert clamp("abc", 0, 1, 0.25) == 0.25
    assert clamp(1e30, -1, 2, 0) == 2
    assert clamp(float("-inf"), -1, 2, 0) == -1
    assert wrap_deg(190) == -170 and wrap_deg(-180) == -180 and wrap_deg(720.5) == pytest.approx(0.5)
    assert triangle(0) == 0 and triangle(0.25) == 0.5 and triangle(0.5) == 1 and triangle(0.75) == 0.5


def test_numbered_paths_skip_used_numbers(tmp_path):
    assert next_numbered_path(tmp_path / "missing", "shot", ".png").name == "shot_0001.png"
    (tmp_path / "shot_0001.png").write_bytes(b"")
    (tmp_path / "shot_0007.png.json").write_text("{}")  # a sidecar alone still reserves its number
    (tmp_path / "other_0042.png").write_bytes(b"")
    assert next_numbered_path(tmp_path, "shot", ".png").name == "shot_0008.png"
    assert next_numbered_path(tmp_path, "other", ".mp4").name == "other_0043.mp4"


def test_capture_jobs_carry_the_viewer_state_unchanged():
    """The viewer's state is the pipeline vocabulary: a capture job holds the very same values (Z-space
    interpolations included), so there is nothing to translate and nothing a capture cannot express."""
    args = RenderArgs()
    args.latent = LatentSpec(seed=3, seed_b=9, t=0.37, space="z", psi=0.5, cutoff=4,
                             mix=StyleMix(seed=7, start=2, end=5))
    args.camera = CameraSpec(yaw_deg=12.0, pitch_deg=-4.0, radius=3.0)
    shot = screenshot_job(args, resolution=256, transparent=True)
    assert shot.latent is args.latent and shot.camera is args.camera
    assert shot.settings.resolution == 256 and shot.settings.background == "transparent"
    assert screenshot_job(args).settings == args.settings
    tt = turntable_job(args, TurntableOptions(frames=10, resolution=256))
    assert tt.latent is args.latent and tt.frames == 10 and tt.settings.resolution == 256
    # The panel's defaults are the CLI's: one full orbit.
    defaults = TurntableOptions()
    assert (defaults.frames, defaults.fps, defaults.path, defaults.yaw_range_deg) == (
        TurntableJob.frames, TurntableJob.fps, TurntableJob.path, TurntableJob.yaw_range_deg)
    assert defaults.path == "orbit" and defaults.yaw_range_deg == 360.0


def test_latent_key_ignores_what_does_not_change_the_head():
    assert LatentSpec(seed=3, seed_b=9, t=0.0).key() == LatentSpec(seed=3, seed_b=4).key()
    assert LatentSpec(seed=3, seed_b=9, t=1.0).key() == LatentSpec(seed=9).key()
    assert LatentSpec(seed=3, seed_b=9, t=0.5).key() != LatentSpec(seed=3, seed_b=9, t=0.5, space="z").key()


def test_buffer_pool_recycles_without_allocating():
    pool = BufferPool()
    a, b, c = pool.acquire(64), pool.acquire(64), pool.acquire(64)
    assert a.flags.c_contiguous and a.dtype == np.float32 and a.shape == (64, 64, 4)
    for buf in (a, b, c):
        pool.release(buf)
    before = pool.allocations
    for _ in range(50):
        buf = pool.acquire(64)
        write_rgb(buf, np.zeros((64, 64, 3), np.float32))
        pool.release(buf)
    assert pool.allocations == before
    big = pool.acquire(128)  # resolution change: new buffers, old ones are dropped on release
    pool.release(a)
    pool.release(big)
    assert pool.acquire(128) is big


# ---- worker ----------------------------------------------------------------------------------------------------


class _FakeG:
    """A tiny stand-in generator (the worker's contract, not the network): the head's colour depends on z."""

    z_dim = w_dim = 4
    c_dim, num_ws, num_gaussians, sh_degree = 25, 3, 1, 0
    device = "cpu"
    checkpoint_path = None

    def __init__(self):
        self.synth_calls = 0

    def z_from_seed(self, seed):
        return torch.randn(1, 4, generator=torch.Generator().manual_seed(int(seed)))

    def mapping(self, z, c=None, truncation_psi=1.0, truncation_cutoff=None):
        return (z * truncation_psi)[:, None, :].repeat(1, self.num_ws, 1)

    def synthesis(self, ws, noise_mode="const"):
        self.synth_calls += 1
        time.sleep(0.01)
        v = torch.sigmoid(ws[:, 0, :3])  # [1, 3]
        return Gaussians(
            means=torch.zeros(1, 1, 3), quats=torch.tensor([[[1.0, 0, 0, 0]]]), scales=torch.ones(1, 1, 3),
            opacities=torch.ones(1, 1), sh=v[:, None, None, :],
        )


def _fake_render(g, camera, resolution=512, **kw):
    colour = g.sh[0, 0, 0]  # [3]
    yaw_tint = float(camera.cam2world[0, 3]) * 0.1
    img = (colour + yaw_tint).clamp(0, 1).expand(1, resolution, resolution, 3).contiguous()
    return SimpleNamespace(image=img, backend="fake", backend_reason="test double")


def _wait_result(worker, request_id, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        res = worker.poll()
        if res is not None and res.request_id >= request_id:
            return res
        if res is not None:
            worker.pool.release(res.buffer)
        time.sleep(0.005)
    raise AssertionError("worker did not answer")


def test_worker_latest_request_wins_and_caches_per_latent():
    G = _FakeG()
    w = RenderWorker(device="cpu", loader=lambda path, device: G, render_fn=_fake_render)
    try:
        w.load_model("fake")
        deadline = time.time() + 5
        while (ev := w.poll_model_event()) is None and time.time() < deadline:
            time.sleep(0.005)
        assert ev is not None and ev.ok and ev.info.num_ws == 3
        args = RenderArgs()
        args.settings = replace(args.settings, resolution=16)
        first = _wait_result(w, w.submit(args))
        assert first.error is None and first.timings.cached is False
        # A burst of requests: only the newest must come back.
        last_id = 0
        for yaw in range(1, 30):
            args.camera = CameraSpec(yaw_deg=float(yaw))
            last_id = w.submit(args)
        res = _wait_result(w, last_id)
        assert res.request_id == last_id and res.args.camera.yaw_deg == 29.0
        assert res.timings.cached is True  # orbiting re-rasterized the cached head
        assert G.synth_calls == 1
        args.latent = replace(args.latent, seed=5)
        res = _wait_result(w, w.submit(args))
        assert res.timings.cached is False and G.synth_calls == 2
        assert not np.allclose(res.buffer[..., :3], first.buffer[..., :3])
    finally:
        w.close()


def test_worker_reports_errors_and_keeps_model():
    calls = {"n": 0}

    def loader(path, device):
        calls["n"] += 1
        if path == "broken":
            raise ValueError("not a checkpoint\nsecond line")
        return _FakeG()

    def failing_render(g, camera, resolution=512, **kw):
        if kw.get("mode") == "depth":
            raise RuntimeError("boom")
        return _fake_render(g, camera, resolution, **kw)

    w = RenderWorker(device="cpu", loader=loader, render_fn=failing_render)
    try:
        for path in ("good", "broken"):
            w.load_model(path)
            deadline = time.time() + 5
            while (ev := w.poll_model_event()) is None and time.time() < deadline:
                time.sleep(0.005)
        assert ev is not None and not ev.ok and ev.error == "ValueError: not a checkpoint"
        assert w.model_info is not None and w.latents is not None  # the good model stays
        args = RenderArgs()
        args.settings = replace(args.settings, resolution=16, mode="depth")
        res = _wait_result(w, w.submit(args))
        assert res.error == "RuntimeError: boom" and res.buffer is None
        args.settings = replace(args.settings, mode="rgb")
        assert _wait_result(w, w.submit(args)).error is None
    finally:
        w.close()


# ---- no display ------------------------------------------------------------------------------------------------


def test_no_display_gives_a_clear_error_before_touching_dearpygui(monkeypatch):
    from app.viewer import DisplayUnavailableError, run_viewer

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(DisplayUnavailableError) as info:
        run_viewer(None)
    msg = str(info.value)
    assert "\n" not in msg and "DISPLAY" in msg
    assert "main.py render" in msg and "xvfb-run" in msg
