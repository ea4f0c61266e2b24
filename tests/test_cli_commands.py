"""Every CLI command end to end on the official-format fixture (and on the demo model when it is bundled).

Most tests call ``cli.main(argv)`` in-process (one torch import for the whole module); a few run ``main.py``
as a subprocess where the process boundary is the point (no traceback, Ctrl-C). Frames are tiny (32-64 px)
and few: the torch reference renderer runs on 2 shared CPU cores here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from gghead_core import cli, jobs
from gghead_core import export as ex
from gghead_core.pipeline import LatentSpec, RenderSettings

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO = REPO_ROOT / "checkpoints" / "demo.safetensors"
RES = "64"


@pytest.fixture(scope="module")
def ckpt(fixture_ckpt) -> str:
    return str(fixture_ckpt)


@pytest.fixture(scope="module")
def G(ckpt):
    from gghead_core import load_generator

    return load_generator(ckpt)


def run(argv, capsys=None):
    """Run the CLI in-process; returns (exit code, stdout, stderr)."""
    code = cli.main([str(a) for a in argv])
    if capsys is None:
        return code, "", ""
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def base(ckpt, *more):
    return ["--ckpt", ckpt, "--device", "cpu", "--quiet", *more]


def png(path) -> np.ndarray:
    import imageio.v3 as iio

    return iio.imread(path)


def no_temps(folder: Path) -> bool:
    return not [p for p in folder.rglob(".*")]


def head_pixels(img: np.ndarray) -> int:
    """How many pixels differ from a white background (the head is visible)."""
    return int((np.abs(img[..., :3].astype(int) - 255).sum(-1) > 30).sum())


# ---- info / convert ------------------------------------------------------------------------------------------


def test_info_before_and_after_the_command(ckpt, capsys):
    code, out, err = run(["--ckpt", ckpt, "info"], capsys)
    assert code == 0, err
    assert "3,596" in out and "512 / 512 / 25" in out and "SH degree" in out and "64 x 64" in out
    assert "e19d00a21c07" in out  # sha256 of the fixture
    code, out2, _ = run(["info", "--ckpt", ckpt, "--device", "cpu"], capsys)
    assert code == 0 and out2 == out


def test_info_missing_checkpoint_is_one_line(tmp_path, capsys):
    code, out, err = run(["info", "--ckpt", tmp_path / "nope.pkl"], capsys)
    assert code == 1
    assert err.count("\n") == 1 and "not found" in err and "Traceback" not in err


def test_convert_round_trip_and_overwrite_rules(ckpt, G, tmp_path, capsys):
    from gghead_core import load_generator

    out = tmp_path / "conv" / "g.safetensors"
    code, _, err = run(["convert", ckpt, out, "--quiet"], capsys)
    assert code == 0, err
    G2 = load_generator(out)
    ws = G.mapping(G.z_from_seed(5), truncation_psi=0.7)
    assert torch.equal(G2.mapping(G2.z_from_seed(5), truncation_psi=0.7), ws)
    assert torch.equal(G2.synthesis(ws).means, G.synthesis(ws).means)
    before = out.read_bytes()
    code, _, err = run(["convert", ckpt, out], capsys)
    assert code == 2 and "already exists" in err and err.count("\n") == 1
    assert out.read_bytes() == before
    code, _, err = run(["convert", ckpt, tmp_path / "g.pt"], capsys)
    assert code == 2 and ".safetensors" in err


# ---- render + replay -----------------------------------------------------------------------------------------


def test_render_png_recipe_and_replay_bit_for_bit(ckpt, tmp_path, capsys):
    out = tmp_path / "r" / "head.png"
    argv = ["render", *base(ckpt), "--seed", "3", "--yaw", "15", "--resolution", RES, "--backend", "torch",
            "--out", out]
    code, _, err = run(argv, capsys)
    assert code == 0, err
    img = png(out)
    assert img.shape == (64, 64, 3)
    assert head_pixels(img) > 200
    recipe = json.loads((tmp_path / "r" / "head.png.json").read_text())
    assert recipe["command"] == "render" and recipe["seeds"] == [3] and recipe["psi"] == 0.7
    assert recipe["checkpoint"]["sha256"].startswith("e19d00a21c07")
    assert recipe["renderer"]["backend"] == "torch" and recipe["renderer"]["resolution"] == 64
    assert recipe["params"]["camera"]["yaw_deg"] == 15.0 and len(recipe["cameras"]) == 1
    assert recipe["argv"][1:] == [str(a) for a in argv]
    assert recipe["versions"]["torch"] and recipe["versions"]["numpy"]
    # replay: same pixels, same bytes
    again = tmp_path / "replayed.png"
    code, _, err = run(["replay", tmp_path / "r" / "head.png.json", "--out", again, "--quiet"], capsys)
    assert code == 0, err
    assert again.read_bytes() == out.read_bytes()
    assert json.loads((tmp_path / "replayed.png.json").read_text())["params"] == recipe["params"]
    # replay onto the original path needs --overwrite, and then reproduces it
    code, _, err = run(["replay", tmp_path / "r" / "head.png.json"], capsys)
    assert code == 2 and "already exists" in err
    code, _, err = run(["replay", tmp_path / "r" / "head.png.json", "--overwrite", "--quiet"], capsys)
    assert code == 0 and png(out).tobytes() == img.tobytes()
    assert no_temps(tmp_path)


def test_auto_backend_replays_on_the_backend_that_ran(ckpt, tmp_path, capsys):
    """``auto`` picks OpenGL where a GL context exists (else torch); the recipe pins what ran, and the
    replay on that backend is byte-identical."""
    out = tmp_path / "auto.png"
    code, _, err = run(["render", *base(ckpt), "--seed", "4", "--resolution", "48", "--out", out], capsys)
    assert code == 0, err
    recipe = ex.read_recipe(str(out) + ".json")
    assert recipe.renderer["requested"] == "auto" and recipe.renderer["backend"] in ("gsplat", "opengl", "torch")
    assert recipe.renderer["reason"]
    assert jobs.job_from_recipe(recipe).settings.backend == recipe.renderer["backend"]
    again = tmp_path / "again.png"
    code, _, err = run(["replay", str(out) + ".json", "--out", again, "--quiet"], capsys)
    assert code == 0, err
    assert again.read_bytes() == out.read_bytes()
    assert ex.read_recipe(str(again) + ".json").renderer["backend"] == recipe.renderer["backend"]


def test_render_transparent_background_is_rgba(ckpt, tmp_path, capsys):
    out = tmp_path / "t.png"
    code, _, err = run(["render", *base(ckpt), "--seed", "0", "--resolution", "32", "--backend", "torch",
                        "--background", "transparent", "--out", out], capsys)
    assert code == 0, err
    img = png(out)
    assert img.shape == (32, 32, 4)
    assert img[0, 0, 3] == 0  # corner: empty
    assert img[16, 16, 3] > 200  # centre: the head


def test_replay_refuses_other_checkpoint_and_bad_files(ckpt, G, tmp_path, capsys):
    out = tmp_path / "h.ply"
    assert run(["export-ply", *base(ckpt), "--seed", "2", "--out", out], capsys)[0] == 0
    # a different checkpoint: convert to safetensors (different bytes -> different sha256)
    other = tmp_path / "other.safetensors"
    assert run(["convert", ckpt, other, "--quiet"], capsys)[0] == 0
    code, _, err = run(["replay", tmp_path / "h.ply.json", "--ckpt", other, "--out", tmp_path / "x.ply"], capsys)
    assert code == 1 and "sha256" in err and err.count("\n") == 1
    assert not (tmp_path / "x.ply").exists()
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "gghead-recipe", "format_version": 1, "command": "render", "params": {"zoom": 3},'
                   ' "output": "a.png", "checkpoint": {}}')
    code, _, err = run(["replay", bad], capsys)
    assert code == 2 and "unknown keys: zoom" in err
    code, _, err = run(["replay", tmp_path / "missing.json"], capsys)
    assert code == 2 and "does not exist" in err


# ---- turntable -----------------------------------------------------------------------------------------------


def test_turntable_mp4_frames_sizes_and_recipe(ckpt, tmp_path, capsys):
    import imageio.v2 as iio2

    out = tmp_path / "v" / "turn.mp4"
    code, _, err = run(["turntable", *base(ckpt), "--seed", "1", "--frames", "4", "--fps", "12", "--path", "circle",
                        "--resolution", RES, "--backend", "torch", "--out", out], capsys)
    assert code == 0, err
    frames = ex.read_frames(out)
    assert frames.shape == (4, 64, 64, 3)
    reader = iio2.get_reader(str(out), format="FFMPEG")
    meta = reader.get_meta_data()
    reader.close()
    assert meta["codec"] == "h264" and meta["pix_fmt"].startswith("yuv420p") and meta["fps"] == pytest.approx(12)
    recipe = ex.read_recipe(str(out) + ".json")
    assert len(recipe.cameras) == 4 and recipe.params["frames"] == 4 and recipe.params["path"] == "circle"
    # the camera path is the official circle (scaled to 4 frames)
    np.testing.assert_allclose(np.asarray(recipe.cameras[1]["cam2world"])[:3, 3], [0.6, 0, 2.7], atol=1e-12)
    # frames differ (the camera moves)
    assert np.abs(frames[0].astype(int) - frames[2].astype(int)).mean() > 0.5
    # replay reproduces the video byte for byte
    again = tmp_path / "again.mp4"
    assert run(["replay", str(out) + ".json", "--out", again, "--quiet"], capsys)[0] == 0
    assert again.read_bytes() == out.read_bytes()


def test_turntable_gif_and_png_folder(ckpt, tmp_path, capsys):
    gif = tmp_path / "turn.gif"
    code, _, err = run(["turntable", *base(ckpt), "--seed", "1", "--frames", "3", "--resolution", "32",
                        "--backend", "torch", "--path", "orbit", "--yaw-range", "40", "--pitch", "10",
                        "--out", gif], capsys)
    assert code == 0, err
    assert ex.read_frames(gif).shape == (3, 32, 32, 3)
    folder = tmp_path / "frames"
    code, _, err = run(["turntable", *base(ckpt), "--seed", "1", "--frames", "3", "--resolution", "32",
                        "--backend", "torch", "--background", "transparent", "--out", str(folder) + "/"], capsys)
    assert code == 0, err
    assert sorted(p.name for p in folder.iterdir()) == ["frame_0000.png", "frame_0001.png", "frame_0002.png",
                                                        "recipe.json"]
    assert png(folder / "frame_0001.png").shape == (32, 32, 4)
    before = (folder / "frame_0001.png").read_bytes()
    code, _, err = run(["turntable", *base(ckpt), "--seed", "2", "--frames", "3", "--resolution", "32",
                        "--out", str(folder) + "/"], capsys)
    assert code == 2 and "already holds frames" in err
    assert (folder / "frame_0001.png").read_bytes() == before
    # the folder's recipe replays into another folder with identical frames
    code, _, err = run(["replay", folder / "recipe.json", "--out", str(tmp_path / "f2") + "/", "--quiet"], capsys)
    assert code == 0, err
    for name in ("frame_0000.png", "frame_0002.png"):
        assert (tmp_path / "f2" / name).read_bytes() == (folder / name).read_bytes()


# ---- interpolate ---------------------------------------------------------------------------------------------


def test_interpolate_open_and_loop(ckpt, G, tmp_path, capsys):
    out = tmp_path / "morph.mp4"
    code, _, err = run(["interpolate", *base(ckpt), "--seeds", "0,1", "--frames-per-seed", "2",
                        "--resolution", "32", "--backend", "torch", "--out", out], capsys)
    assert code == 0, err
    assert ex.read_frames(out).shape == (3, 32, 32, 3)  # (2 - 1) * 2 + 1
    # lossless frames: the key frames are the seeds themselves, pixel for pixel
    folder = str(tmp_path / "morph") + "/"
    assert run(["interpolate", *base(ckpt), "--seeds", "0,1", "--frames-per-seed", "2", "--resolution", "32",
                "--backend", "torch", "--out", folder], capsys)[0] == 0
    frames = ex.read_frames(folder)
    for seed, index in ((0, 0), (1, 2)):
        still = tmp_path / f"s{seed}.png"
        assert run(["render", *base(ckpt), "--seed", seed, "--resolution", "32", "--backend", "torch",
                    "--out", still], capsys)[0] == 0
        assert np.array_equal(frames[index], png(still))
    assert not np.array_equal(frames[1], frames[0]) and not np.array_equal(frames[1], frames[2])
    loop = tmp_path / "loop.gif"
    code, _, err = run(["interpolate", *base(ckpt), "--seeds", "0-1", "--frames-per-seed", "2", "--loop",
                        "--orbit", "--space", "z", "--method", "slerp", "--conditioning", "camera",
                        "--resolution", "32", "--backend", "torch", "--out", loop], capsys)
    assert code == 0, err
    assert ex.read_frames(loop).shape == (4, 32, 32, 3)  # 2 seeds * 2 frames
    recipe = ex.read_recipe(str(loop) + ".json")
    assert recipe.params["space"] == "z" and recipe.params["loop"] and len(recipe.cameras) == 4


def test_interpolation_latents_follow_the_schedule(G):
    from gghead_core.jobs.interpolate import frame_ws

    job = jobs.InterpolationJob(seeds=(4, 9), frames_per_seed=4, space="z", method="lerp")
    cams = job.cameras(5)
    ws = list(frame_ws(G, job, cams))
    z4, z9 = G.z_from_seed(4), G.z_from_seed(9)
    torch.testing.assert_close(ws[0], G.mapping(z4, truncation_psi=0.7))
    torch.testing.assert_close(ws[2], G.mapping(0.5 * (z4 + z9), truncation_psi=0.7))
    torch.testing.assert_close(ws[4], G.mapping(z9, truncation_psi=0.7))
    job_w = jobs.InterpolationJob(seeds=(4, 9), frames_per_seed=4, space="w")
    ws_w = list(frame_ws(G, job_w, cams))
    w4, w9 = G.mapping(z4, truncation_psi=0.7), G.mapping(z9, truncation_psi=0.7)
    torch.testing.assert_close(ws_w[1], w4 + 0.25 * (w9 - w4))


class _CountingG:
    """Wraps the generator and counts synthesis calls and heads (the expensive part)."""

    def __init__(self, G):
        self._G, self.calls, self.heads = G, 0, 0

    def synthesis(self, ws, **kw):
        self.calls += 1
        self.heads += ws.shape[0]
        return self._G.synthesis(ws, **kw)

    def __getattr__(self, name):
        return getattr(self._G, name)


class _FlatResult:
    def __init__(self, n, res):
        self.image = torch.full((n, res, res, 3), 0.5)
        self.alpha = torch.ones(n, res, res)
        self.backend, self.backend_reason = "flat", "test stand-in"

    def rgba(self):
        return torch.cat([self.image, self.alpha[..., None]], -1)


def _flat_render(g, camera, resolution, **kw):
    return _FlatResult(g.batch_size, resolution)


def test_generator_runs_once_per_latent(G, tmp_path):
    counting = _CountingG(G)
    job = jobs.TurntableJob(latent=LatentSpec(seed=1), frames=5, settings=RenderSettings(resolution=16))
    jobs.run_job(counting, job, str(tmp_path / "t") + "/", render_fn=_flat_render)
    assert (counting.calls, counting.heads) == (1, 1)  # one head for all 5 poses
    counting = _CountingG(G)
    grid = jobs.GridJob(seeds=(0, 1, 2), yaws_deg=(-20.0, 0.0, 20.0), settings=RenderSettings(resolution=16))
    jobs.run_job(counting, grid, tmp_path / "g.png", render_fn=_flat_render)
    assert (counting.calls, counting.heads) == (3, 3)  # one head per seed, 3 views each
    counting = _CountingG(G)
    interp = jobs.InterpolationJob(seeds=(0, 1), frames_per_seed=4, settings=RenderSettings(resolution=16))
    jobs.run_job(counting, interp, str(tmp_path / "i") + "/", render_fn=_flat_render, batch_size=3)
    assert (counting.calls, counting.heads) == (2, 5)  # 5 frames in batches of 3 heads
    assert ex.read_frames(tmp_path / "i").shape == (5, 16, 16, 3)


# ---- grid ----------------------------------------------------------------------------------------------------


def test_grid_layout_and_cells_match_still_renders(ckpt, tmp_path, capsys):
    out = tmp_path / "grid.png"
    code, _, err = run(["grid", *base(ckpt), "--seeds", "0-2", "--yaws", "-30,30", "--cols", "2",
                        "--resolution", "32", "--backend", "torch", "--out", out], capsys)
    assert code == 0, err
    img = png(out)
    assert img.shape == (64, 128, 3)  # rows = ceil(3 / 2), width = 2 seeds * 2 yaws * 32
    assert np.all(img[32:, 64:] == 255)  # empty cell of the last row: background
    still = tmp_path / "s.png"
    assert run(["render", *base(ckpt), "--seed", "1", "--yaw", "30", "--resolution", "32", "--backend", "torch",
                "--out", still], capsys)[0] == 0
    assert np.array_equal(img[0:32, 96:128], png(still))  # seed 1 (2nd seed in row 0), yaw 30 (2nd view)
    default = tmp_path / "default.png"
    assert run(["grid", *base(ckpt), "--seeds", "0-3", "--resolution", "16", "--backend", "torch",
                "--out", default], capsys)[0] == 0
    assert png(default).shape == (32, 32, 3)  # one yaw: near-square 2 x 2


# ---- export-ply ----------------------------------------------------------------------------------------------


def test_export_ply_matches_generator(ckpt, G, tmp_path, capsys):
    out = tmp_path / "head.ply"
    code, _, err = run(["export-ply", *base(ckpt), "--seed", "7", "--psi", "0.5", "--out", out], capsys)
    assert code == 0, err
    cols = ex.read_ply(out)
    back = ex.ply_arrays_to_gaussians(cols)
    g = G.synthesis(G.mapping(G.z_from_seed(7), truncation_psi=0.5))
    assert back.num_gaussians == G.num_gaussians == 3596
    torch.testing.assert_close(back.means, g.means)
    torch.testing.assert_close(back.scales, g.scales, rtol=1e-5, atol=1e-9)
    torch.testing.assert_close(back.quats, g.quats, rtol=0, atol=1e-6)
    torch.testing.assert_close(back.sh, g.sh)
    torch.testing.assert_close(back.opacities, g.opacities.clamp(ex.OPACITY_EPS, 1 - ex.OPACITY_EPS),
                               rtol=0, atol=2e-6)
    recipe = ex.read_recipe(str(out) + ".json")
    assert recipe.command == "export-ply" and recipe.renderer is None and recipe.psi == 0.5
    # replay reproduces the file exactly
    assert run(["replay", str(out) + ".json", "--out", tmp_path / "again.ply", "--quiet"], capsys)[0] == 0
    assert (tmp_path / "again.ply").read_bytes() == out.read_bytes()


def test_export_splat(ckpt, G, tmp_path, capsys):
    out = tmp_path / "head.splat"
    code, _, err = run(["export-ply", *base(ckpt), "--seed", "7", "--format", "splat", "--out", out], capsys)
    assert code == 0, err
    assert out.stat().st_size == 32 * G.num_gaussians
    splats = ex.read_splat(out)
    g = G.synthesis(G.mapping(G.z_from_seed(7), truncation_psi=0.7))
    # same set of centres (the file is sorted by importance)
    np.testing.assert_allclose(np.sort(splats["position"][:, 0]), np.sort(g.means[0, :, 0].numpy()), rtol=1e-6)
    code, _, err = run(["export-ply", *base(ckpt), "--seed", "7", "--format", "splat", "--out",
                        tmp_path / "x.ply"], capsys)
    assert code == 2 and "does not match" in err


# ---- bad inputs ----------------------------------------------------------------------------------------------

BAD_INPUTS = [
    (["render", "--seed", "-1"], "non-negative"),
    (["render", "--seed", "4294967296"], "at most"),
    (["render", "--seed", "x"], "invalid seed"),
    (["render", "--seed", "1", "--resolution", "100"], "multiple of 16"),
    (["render", "--seed", "1", "--resolution", "0"], "multiple of 16"),
    (["render", "--seed", "1", "--resolution", "4112"], "up to 4096"),
    (["render", "--seed", "1", "--background", "pink"], "invalid background"),
    (["render", "--seed", "1", "--psi", "nan"], "finite"),
    (["render", "--seed", "1", "--radius", "-1"], "radius"),
    (["turntable", "--seed", "1", "--frames", "0"], "frames must be in [1, 36000]"),
    (["turntable", "--seed", "1", "--frames", "-3"], "frames must be in [1, 36000]"),
    (["turntable", "--seed", "1", "--fps", "0"], "fps"),
    (["turntable", "--seed", "1", "--background", "transparent"], "transparent"),
    (["interpolate", "--seeds", "1,,x", "--frames-per-seed", "2"], "empty item"),
    (["interpolate", "--seeds", "5-2", "--frames-per-seed", "2"], "end is smaller"),
    (["interpolate", "--seeds", "3", "--frames-per-seed", "2"], "at least 2 seeds"),
    (["interpolate", "--seeds", "0,1", "--frames-per-seed", "0"], "frames per seed"),
    (["grid", "--seeds", "1,,x"], "empty item"),
    (["grid", "--seeds", "0-3", "--cols", "0"], "columns"),
    (["grid", "--seeds", "0-3", "--yaws", "a,b"], "numbers"),
    (["export-ply", "--seed", "1", "--format", "splat"], "does not match"),
    (["render"], "required"),
    (["frobnicate"], "invalid choice"),
]


@pytest.mark.parametrize("argv, fragment", BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_is_one_line_and_leaves_the_existing_file(ckpt, tmp_path, capsys, argv, fragment):
    ext = {"render": ".png", "grid": ".png", "turntable": ".mp4", "interpolate": ".mp4", "export-ply": ".ply"}
    out = tmp_path / ("out" + ext.get(argv[0], ".png"))
    out.write_bytes(b"user data")
    code, _, err = run([*argv, "--out", out, "--overwrite", *base(ckpt)], capsys)
    assert code == 2
    assert err.count("\n") == 1 and fragment in err, err
    assert "Traceback" not in err
    assert out.read_bytes() == b"user data"
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]


@pytest.mark.parametrize(
    "cmd, name",
    [
        (["render", "--seed", "1"], "x.png"),
        (["turntable", "--seed", "1", "--frames", "2"], "x.mp4"),
        (["interpolate", "--seeds", "0,1", "--frames-per-seed", "2"], "x.gif"),
        (["grid", "--seeds", "0-1"], "x.png"),
        (["export-ply", "--seed", "1"], "x.ply"),
    ],
)
def test_existing_output_needs_overwrite(ckpt, tmp_path, capsys, cmd, name):
    out = tmp_path / name
    out.write_bytes(b"user data")
    code, _, err = run([*cmd, *base(ckpt), "--resolution", "16", "--out", out] if cmd[0] != "export-ply"
                       else [*cmd, *base(ckpt), "--out", out], capsys)
    assert code == 2 and "already exists" in err and "--overwrite" in err
    assert out.read_bytes() == b"user data"
    # a stale sidecar alone also blocks (it would be replaced)
    out.unlink()
    Path(str(out) + ".json").write_text("{}")
    code, _, err = run([*cmd, *base(ckpt), "--out", out] + (["--resolution", "16"] if cmd[0] != "export-ply"
                                                              else []), capsys)
    assert code == 2 and "x." in err and ".json" in err
    assert not out.exists()


@pytest.mark.parametrize(
    "out, fragment",
    [("a.jpg", "unknown output extension '.jpg'"), ("a.avi", "unknown output extension '.avi'")],
)
def test_unknown_extensions(ckpt, tmp_path, capsys, out, fragment):
    cmd = ["render", "--seed", "1"] if out.endswith(".jpg") else ["turntable", "--seed", "1"]
    code, _, err = run([*cmd, *base(ckpt), "--out", tmp_path / out], capsys)
    assert code == 2 and fragment in err


def test_unwritable_output(ckpt, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = run(["render", "--seed", "1", *base(ckpt), "--out", blocker / "a.png"], capsys)
    assert code == 2 and "not a folder" in err
    code, _, err = run(["turntable", "--seed", "1", *base(ckpt), "--out", "/sys/gghead-test.mp4"], capsys)
    assert code == 2 and "cannot write" in err


def test_missing_gpu_is_one_line(ckpt, tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA; the missing-GPU message cannot be provoked")
    code, _, err = run(["render", "--seed", "1", "--ckpt", ckpt, "--device", "cuda", "--out", tmp_path / "a.png"],
                       capsys)
    assert code == 1 and "CUDA" in err and err.count("\n") == 1
    assert not (tmp_path / "a.png").exists()


def test_no_command_without_display_points_to_headless(monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    code, _, err = run([], capsys)
    assert code == 2 and err.count("\n") == 1 and "turntable" in err and "display" in err


# ---- cancel / Ctrl-C -----------------------------------------------------------------------------------------


def test_cancel_event_leaves_no_partial_file(G, tmp_path):
    cancel = threading.Event()

    def progress(done, total):
        if done >= 2:
            cancel.set()

    job = jobs.TurntableJob(latent=LatentSpec(seed=1), frames=6,
                            settings=RenderSettings(resolution=32, backend="torch"))
    out = tmp_path / "new" / "t.mp4"
    with pytest.raises(jobs.Cancelled):
        jobs.run_job(G, job, out, progress=progress, cancel=cancel)
    assert not (tmp_path / "new").exists()
    ijob = jobs.InterpolationJob(seeds=(0, 1), frames_per_seed=4,
                                 settings=RenderSettings(resolution=32, backend="torch"))
    cancel.clear()
    with pytest.raises(jobs.Cancelled):
        jobs.run_job(G, ijob, str(tmp_path / "frames") + "/", progress=progress, cancel=cancel)
    assert list(tmp_path.iterdir()) == []


def test_keyboard_interrupt_exits_130_and_keeps_the_old_file(ckpt, tmp_path, capsys, monkeypatch):
    out = tmp_path / "t.gif"
    out.write_bytes(b"old")

    def interrupt(self, done, total):
        if done >= 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(cli._ProgressBar, "__call__", interrupt)
    code, _, err = run(["turntable", "--seed", "1", "--frames", "5", "--resolution", "16", "--backend", "torch",
                        "--ckpt", ckpt, "--device", "cpu", "--overwrite", "--out", out], capsys)
    assert code == 130 and "interrupted" in err and err.count("\n") == 1
    assert out.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.gif"]


def test_subprocess_sigint_and_error_lines(ckpt, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    main_py = str(REPO_ROOT / "main.py")
    # a usage error in a real process: one line on stderr, exit 2, no traceback
    bad = subprocess.run([sys.executable, main_py, "grid", "--seeds", "5-2", "--out", tmp_path / "g.png"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
    # Ctrl-C in the middle of a turntable: exit 130, nothing left behind
    out = tmp_path / "sub" / "t.mp4"
    proc = subprocess.Popen(
        [sys.executable, main_py, "turntable", "--ckpt", ckpt, "--device", "cpu", "--seed", "1", "--frames", "400",
         "--resolution", "32", "--backend", "torch", "--out", out],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None and not list((tmp_path / "sub").glob(".t.*.partial.mp4")):
            time.sleep(0.1)
        assert proc.poll() is None, f"the job ended early: {proc.communicate()[1]}"
        assert list((tmp_path / "sub").glob(".t.*.partial.mp4")), "the job never started writing"
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert not (tmp_path / "sub").exists()


# ---- the bundled demo model ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo() -> str:
    if not DEMO.is_file():
        pytest.skip(f"demo model not bundled yet ({DEMO})")
    return str(DEMO)


def test_demo_render_turntable_export(demo, tmp_path, capsys):
    from gghead_core import load_generator

    common = ["--device", "cpu", "--quiet", "--backend", "torch"]
    out = tmp_path / "demo.png"
    code, _, err = run(["render", "--seed", "0", "--resolution", "64", *common, "--out", out], capsys)
    assert code == 0, err
    assert png(out).shape == (64, 64, 3) and head_pixels(png(out)) > 200
    vid = tmp_path / "demo.mp4"
    code, _, err = run(["turntable", "--seed", "0", "--frames", "2", "--resolution", "32", *common,
                        "--out", vid], capsys)
    assert code == 0, err
    assert ex.read_frames(vid).shape == (2, 32, 32, 3)
    ply = tmp_path / "demo.ply"
    code, _, err = run(["export-ply", "--seed", "0", "--device", "cpu", "--quiet", "--out", ply], capsys)
    assert code == 0, err
    G = load_generator(None)
    back = ex.ply_arrays_to_gaussians(ex.read_ply(ply))
    g = G.synthesis(G.mapping(G.z_from_seed(0), truncation_psi=0.7))
    torch.testing.assert_close(back.means, g.means)
    torch.testing.assert_close(back.sh, g.sh)
    assert ex.read_recipe(str(ply) + ".json").checkpoint["sha256"] == G.checkpoint_sha256
