"""Atomic outputs, PNG, video/GIF/frame folders, 3DGS PLY and .splat, recipes (gghead_core.export)."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from gghead_core import export as ex
from gghead_core.camera import CameraSpec
from gghead_core.gaussians import SH_C0, Gaussians


def random_gaussians(n: int = 200, k: int = 4, seed: int = 0) -> Gaussians:
    g = torch.Generator().manual_seed(seed)
    quats = torch.nn.functional.normalize(torch.randn(1, n, 4, generator=g), dim=-1)
    opacities = torch.rand(1, n, generator=g) * 1.002 - 0.001  # GGHead's overshoot range
    opacities[0, :3] = torch.tensor([-0.001, 1.001, 0.5])
    return Gaussians(
        means=torch.randn(1, n, 3, generator=g) * 0.3,
        quats=quats,
        scales=torch.exp(-3 - torch.rand(1, n, 3, generator=g) * 4),
        opacities=opacities,
        sh=(torch.rand(1, n, k, 3, generator=g) - 0.5) * 3.5,
    )


def leftovers(folder: Path) -> list[str]:
    """Temp files/folders our writers use (hidden names); none may survive a commit or an abort."""
    return sorted(p.name for p in folder.rglob(".*"))


# ---- atomic outputs ------------------------------------------------------------------------------------------


def test_transaction_commits_all_files_and_leaves_no_temps(tmp_path):
    out = tmp_path / "new" / "deeper" / "a.bin"
    with ex.OutputTransaction() as tx:
        tx.file(out).write_bytes(b"data")
        tx.file(ex.sidecar_path(out)).write_text("{}")
        assert not out.exists()  # nothing at the final path before the commit
    assert out.read_bytes() == b"data"
    assert (tmp_path / "new" / "deeper" / "a.bin.json").read_text() == "{}"
    assert leftovers(tmp_path) == []


def test_transaction_abort_removes_temps_and_created_folders(tmp_path):
    out = tmp_path / "made" / "by" / "us" / "a.bin"
    with pytest.raises(KeyboardInterrupt):
        with ex.OutputTransaction() as tx:
            tx.file(out).write_bytes(b"half")
            raise KeyboardInterrupt
    assert not (tmp_path / "made").exists()
    assert leftovers(tmp_path) == []


def test_existing_file_is_refused_and_untouched(tmp_path):
    out = tmp_path / "a.png"
    out.write_bytes(b"precious")
    with pytest.raises(ex.OutputError, match="already exists.*--overwrite"):
        with ex.OutputTransaction() as tx:
            tx.file(out)
    assert out.read_bytes() == b"precious"
    assert leftovers(tmp_path) == []
    with ex.OutputTransaction(overwrite=True) as tx:
        tx.file(out).write_bytes(b"new")
    assert out.read_bytes() == b"new"


def test_file_appearing_during_the_job_is_not_clobbered(tmp_path):
    out = tmp_path / "a.bin"
    with pytest.raises(ex.OutputError, match="already exists"):
        with ex.OutputTransaction() as tx:
            tx.file(out).write_bytes(b"ours")
            out.write_bytes(b"someone else's")  # created while we were working
    assert out.read_bytes() == b"someone else's"
    assert leftovers(tmp_path) == []


def test_unwritable_locations(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(ex.OutputError, match="is a file, not a folder"):
        ex.check_output_file(blocker / "sub" / "a.png", overwrite=False)
    with pytest.raises(ex.OutputError, match="is a folder"):
        ex.check_output_file(tmp_path, overwrite=True)
    # A folder nobody can write to, not even root (os.access would say yes to root): sysfs.
    if os.path.isdir("/sys"):
        with pytest.raises(ex.OutputError, match="cannot write into"):
            ex.check_output_file("/sys/gghead-out.png", overwrite=False)
        with pytest.raises(ex.OutputError, match="cannot write into"):
            ex.check_output_file("/sys/new-folder/gghead-out.png", overwrite=False)


def test_extension_checks():
    assert ex.check_extension("a.PNG", ex.IMAGE_EXTENSIONS) == ".png"
    with pytest.raises(ex.OutputError, match="unknown output extension '.jpg'"):
        ex.check_extension("a.jpg", ex.IMAGE_EXTENSIONS)
    with pytest.raises(ex.OutputError, match=r"\(none\)"):
        ex.check_extension("a", ex.IMAGE_EXTENSIONS)
    assert ex.check_extension("frames/", ex.VIDEO_EXTENSIONS, allow_folder=True) == ""
    assert ex.check_extension("frames.d/", ex.VIDEO_EXTENSIONS, allow_folder=True) == ""
    with pytest.raises(ex.OutputError, match="or a folder"):
        ex.check_extension("a.avi", ex.VIDEO_EXTENSIONS, allow_folder=True)


def test_sidecar_paths():
    assert ex.sidecar_path("out/a.png") == Path("out/a.png.json")
    assert ex.sidecar_path("out/frames/") == Path("out/frames/recipe.json")
    assert ex.sidecar_path("out/v.mp4", folder=False) == Path("out/v.mp4.json")


# ---- images --------------------------------------------------------------------------------------------------


def test_to_uint8_rounds_and_clips():
    x = np.array([[[-0.1, 0.0, 0.5 / 255]], [[0.5, 1.0, 1.7]]], np.float32)
    assert ex.to_uint8(x).tolist() == [[[0, 0, 0]], [[128, 255, 255]]]
    assert ex.to_uint8(torch.tensor(x)).dtype == np.uint8


@pytest.mark.parametrize("channels", [3, 4])
def test_png_round_trip(tmp_path, channels):
    import imageio.v3 as iio

    img = np.random.default_rng(0).integers(0, 256, (48, 32, channels), dtype=np.uint8)
    out = ex.save_png(tmp_path / "x" / "img.png", img)
    back = iio.imread(out)
    assert back.shape == (48, 32, channels)
    assert np.array_equal(back, img)


# ---- videos --------------------------------------------------------------------------------------------------


def _frames(n, h=64, w=96):
    """Smooth, moving colour gradients (render-like content; H.264 with 4:2:0 chroma mangles pixel noise)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = []
    for i in range(n):
        r = 127 + 100 * np.sin((xx + 3 * i) / 9.0)
        g = 127 + 100 * np.cos((yy - 2 * i) / 7.0)
        b = 60 + 150 * (xx / w)
        out.append(np.clip(np.stack([r, g, b], -1), 0, 255).astype(np.uint8))
    return out


def _write_sequence(out, frames, fps=24.0, overwrite=False):
    with ex.OutputTransaction(overwrite) as tx:
        sink = ex.open_frame_sink(tx, out, fps=fps, n_frames=len(frames))
        for f in frames:
            sink.write(f)
        sink.close()


def test_mp4_is_h264_yuv420p_with_all_frames(tmp_path):
    import imageio.v2 as iio2

    out = tmp_path / "v.mp4"
    _write_sequence(out, _frames(7), fps=12)
    back = ex.read_frames(out)
    assert back.shape == (7, 64, 96, 3)
    reader = iio2.get_reader(str(out), format="FFMPEG")
    meta = reader.get_meta_data()
    reader.close()
    assert meta["codec"] == "h264"
    assert meta["pix_fmt"].startswith("yuv420p")
    assert meta["fps"] == pytest.approx(12)
    # lossy but close: crf 15 on smooth content
    assert np.abs(back.astype(int) - np.stack(_frames(7)).astype(int)).mean() < 6
    assert leftovers(tmp_path) == []


def test_mp4_pads_odd_sizes_to_even(tmp_path):
    out = tmp_path / "odd.mp4"
    _write_sequence(out, _frames(3, h=33, w=47))
    assert ex.read_frames(out).shape == (3, 34, 48, 3)


def test_gif_frames_and_timing(tmp_path):
    import imageio.v3 as iio

    out = tmp_path / "v.gif"
    _write_sequence(out, _frames(5), fps=10)
    back = ex.read_frames(out)
    assert back.shape == (5, 64, 96, 3)
    assert iio.immeta(out, index=0)["duration"] == pytest.approx(100)


def test_frame_folder_and_its_overwrite_rules(tmp_path):
    folder = tmp_path / "frames"
    _write_sequence(str(folder) + "/", _frames(5))
    names = sorted(p.name for p in folder.iterdir())
    assert names == [f"frame_{i:04d}.png" for i in range(5)]
    assert np.array_equal(ex.read_frames(folder)[2], _frames(5)[2])
    before = (folder / "frame_0000.png").read_bytes()
    with pytest.raises(ex.OutputError, match="already holds frames"):
        _write_sequence(str(folder) + "/", _frames(3))
    assert (folder / "frame_0000.png").read_bytes() == before
    (folder / "notes.txt").write_text("user file")
    _write_sequence(str(folder) + "/", _frames(3, h=32, w=32), overwrite=True)
    assert sorted(p.name for p in folder.iterdir()) == ["frame_0000.png", "frame_0001.png", "frame_0002.png",
                                                        "notes.txt"]
    assert ex.read_frames(folder).shape == (3, 32, 32, 3)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("name", ["v.mp4", "v.gif", "frames/"])
def test_abort_mid_sequence_leaves_nothing(tmp_path, name):
    out = tmp_path / "sub" / name
    with pytest.raises(RuntimeError):
        with ex.OutputTransaction() as tx:
            sink = ex.open_frame_sink(tx, str(out) + ("/" if name.endswith("/") else ""), fps=24, n_frames=10)
            try:
                for i, f in enumerate(_frames(10)):
                    if i == 4:
                        raise RuntimeError("boom")
                    sink.write(f)
            except BaseException:
                sink.abort()
                raise
    assert not (tmp_path / "sub").exists()
    assert leftovers(tmp_path) == []


# ---- PLY -----------------------------------------------------------------------------------------------------

PLY_ORDER_DEG1 = (
    ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    + [f"f_rest_{i}" for i in range(9)]
    + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
)


def test_ply_header_layout_and_binary_body(tmp_path):
    g = random_gaussians(50)
    out = tmp_path / "h.ply"
    ex.write_ply(out, ex.gaussians_to_ply_arrays(g))
    raw = out.read_bytes()
    header, body = raw.split(b"end_header\n", 1)
    lines = header.decode().splitlines()
    assert lines[:3] == ["ply", "format binary_little_endian 1.0", "element vertex 50"]
    assert lines[3:] == [f"property float {n}" for n in PLY_ORDER_DEG1]
    assert len(body) == 50 * len(PLY_ORDER_DEG1) * 4
    # first vertex, read by hand: x is the first float, little endian
    assert struct.unpack("<f", body[:4])[0] == pytest.approx(float(g.means[0, 0, 0]))


def test_ply_round_trip_inverts_activations(tmp_path):
    g = random_gaussians(300, k=4)
    out = tmp_path / "h.ply"
    ex.write_ply(out, ex.gaussians_to_ply_arrays(g))
    cols = ex.read_ply(out)
    assert list(cols) == PLY_ORDER_DEG1
    assert np.all(cols["nx"] == 0)
    back = ex.ply_arrays_to_gaussians(cols)
    torch.testing.assert_close(back.means, g.means)
    torch.testing.assert_close(back.scales, g.scales, rtol=1e-5, atol=0)
    torch.testing.assert_close(back.quats, g.quats)
    torch.testing.assert_close(back.sh, g.sh)
    clipped = g.opacities.clamp(ex.OPACITY_EPS, 1 - ex.OPACITY_EPS)
    torch.testing.assert_close(back.opacities, clipped, rtol=0, atol=2e-6)
    assert np.isfinite(cols["opacity"]).all()
    # f_rest is channel-major: f_rest_0..2 = R of coefficients 1..3, f_rest_3..5 = G ...
    sh = g.sh[0].numpy()
    np.testing.assert_allclose(cols["f_rest_0"], sh[:, 1, 0])
    np.testing.assert_allclose(cols["f_rest_2"], sh[:, 3, 0])
    np.testing.assert_allclose(cols["f_rest_3"], sh[:, 1, 1])
    np.testing.assert_allclose(cols["f_rest_8"], sh[:, 3, 2])
    # 3DGS conventions: sigmoid(opacity), exp(scale)
    np.testing.assert_allclose(1 / (1 + np.exp(-cols["opacity"][2:])), clipped[0, 2:].numpy(), atol=2e-6)
    np.testing.assert_allclose(np.exp(cols["scale_1"]), g.scales[0, :, 1].numpy(), rtol=1e-5)


def test_ply_degree_zero_and_ascii_reader(tmp_path):
    g = random_gaussians(10, k=1)
    cols = ex.gaussians_to_ply_arrays(g)
    assert not any(c.startswith("f_rest") for c in cols)
    ascii_ply = tmp_path / "a.ply"
    names = list(cols)
    with open(ascii_ply, "w") as fh:
        fh.write("ply\nformat ascii 1.0\ncomment made by hand\nelement vertex 10\n")
        fh.writelines(f"property float {n}\n" for n in names)
        fh.write("end_header\n")
        for i in range(10):
            fh.write(" ".join(repr(float(cols[n][i])) for n in names) + "\n")
    back = ex.read_ply(ascii_ply)
    for n in names:
        np.testing.assert_allclose(back[n], cols[n], rtol=1e-6)


def test_ply_reader_rejects_garbage(tmp_path):
    bad = tmp_path / "bad.ply"
    bad.write_bytes(b"not a ply")
    with pytest.raises(ValueError, match="not a PLY"):
        ex.read_ply(bad)
    g = random_gaussians(5)
    good = tmp_path / "good.ply"
    ex.write_ply(good, ex.gaussians_to_ply_arrays(g))
    good.write_bytes(good.read_bytes()[:-7])
    with pytest.raises(ValueError, match="truncated"):
        ex.read_ply(good)


# ---- .splat --------------------------------------------------------------------------------------------------


def test_splat_layout(tmp_path):
    g = random_gaussians(64)
    arr = ex.gaussians_to_splat_array(g)
    out = tmp_path / "h.splat"
    ex.write_splat(out, arr)
    raw = out.read_bytes()
    assert len(raw) == 64 * 32
    back = ex.read_splat(out)
    # sorted by descending volume * opacity, like the reference converter
    cols = ex.gaussians_to_ply_arrays(g)
    alpha = 1 / (1 + np.exp(-cols["opacity"].astype(np.float64)))
    importance = np.exp(sum(cols[f"scale_{i}"].astype(np.float64) for i in range(3))) * alpha
    order = np.argsort(-importance, kind="stable")
    np.testing.assert_array_equal(back["position"], np.stack([cols[c] for c in "xyz"], -1)[order])
    # byte-level decode of the first record
    pos = struct.unpack("<3f", raw[0:12])
    scale = struct.unpack("<3f", raw[12:24])
    rgba = raw[24:28]
    rot = raw[28:32]
    i = order[0]
    assert pos == pytest.approx(tuple(float(cols[c][i]) for c in "xyz"))
    assert scale == pytest.approx(tuple(float(g.scales[0, i, j]) for j in range(3)), rel=1e-5)
    dc = g.sh[0, i, 0].double().numpy()
    expect_rgb = np.clip((0.5 + SH_C0 * dc) * 255, 0, 255).astype(np.uint8)
    assert list(rgba[:3]) == expect_rgb.tolist()
    assert abs(rgba[3] - float(alpha[i]) * 255) <= 1
    q = g.quats[0, i].double().numpy()
    decoded = (np.frombuffer(rot, np.uint8).astype(float) - 128) / 128
    np.testing.assert_allclose(decoded, q, atol=1 / 128 + 1e-9)


# ---- recipes -------------------------------------------------------------------------------------------------


def _recipe(out="x.png") -> ex.Recipe:
    cams = [CameraSpec(yaw_deg=y).to_camera() for y in (0.0, 12.5)]
    return ex.Recipe(
        command="render",
        params={"latent": {"seed": 3}},
        output=out,
        checkpoint={"path": "/x.pkl", "sha256": "ab" * 32},
        seeds=[3],
        psi=0.7,
        cutoff=None,
        cameras=[ex.camera_to_dict(c) for c in cams],
        renderer={"backend": "torch", "resolution": 64},
        argv=["main.py", "render"],
    )


def test_recipe_round_trip(tmp_path):
    r = _recipe()
    path = tmp_path / "x.png.json"
    ex.write_recipe(path, r)
    text = path.read_text()
    assert text.count("\n") < 40  # one key per line, one camera per line
    back = ex.read_recipe(path)
    assert back == r
    cam = ex.camera_from_dict(back.cameras[1])
    np.testing.assert_array_equal(cam.cam2world, CameraSpec(yaw_deg=12.5).to_camera().cam2world)
    assert back.versions["torch"] == torch.__version__.split("+")[0] or back.versions["torch"].startswith(
        torch.__version__.split("+")[0]
    )
    for key in ("python", "numpy", "imageio", "imageio-ffmpeg", "gghead_core"):
        assert key in back.versions


@pytest.mark.parametrize(
    "content, fragment",
    [
        (None, "does not exist"),
        ("{not json", "cannot read recipe"),
        ("[1, 2]", "not a gghead recipe"),
        ('{"format": "other"}', "not a gghead recipe"),
        ('{"format": "gghead-recipe", "format_version": 99}', "format version 99"),
        ('{"format": "gghead-recipe", "format_version": 1, "command": "render"}', "lacks"),
    ],
)
def test_recipe_reader_refuses(tmp_path, content, fragment):
    path = tmp_path / "r.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ex.RecipeError, match=fragment):
        ex.read_recipe(path)


def test_recipe_json_is_valid_json(tmp_path):
    path = tmp_path / "r.json"
    ex.write_recipe(path, _recipe())
    data = json.loads(path.read_text())
    assert data["format"] == "gghead-recipe" and len(data["cameras"]) == 2
