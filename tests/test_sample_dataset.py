"""`main.py sample`: seeded cameras, sharding with torchrun (gloo on CPU), resume after a killed rank, and
files that independent readers accept (EG3D labels, 3DGS PLY, nerfstudio transforms.json, zip).

The reference dataset is made once per module by a plain single process; the torchrun runs must reproduce it
byte for byte. All runs pin one torch thread per process (torchrun does that by default): CPU convolutions
round differently with another thread count, so files are byte-identical only for the same count.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO_ROOT

ARGS = ["sample", "--seeds", "0-3", "--views", "2", "--resolution", "32", "--backend", "torch", "--batch", "2",
        "--alpha", "--depth", "png", "--ply", "--transforms", "--zip"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_"))}
    env.pop("GGHEAD_SAMPLE_CRASH_AFTER", None)
    env.update(OMP_WAIT_POLICY="PASSIVE", OMP_NUM_THREADS="1", PYTHONPATH=str(REPO_ROOT), **extra)
    return env


def _single(out: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "main.py", "-q", *ARGS, *args, "--out", str(out)], cwd=REPO_ROOT,
                          env=_env(**env), capture_output=True, text=True, timeout=300)


def _torchrun(out: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "main.py", "-q", *ARGS, *args, "--out", str(out)]
    return subprocess.run(cmd, cwd=REPO_ROOT, env=_env(**env), capture_output=True, text=True, timeout=300)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sample") / "ref"
    r = _single(out)
    assert r.returncode == 0, r.stderr
    return out


def _head_files() -> set[str]:
    names = {"head.json", "gaussians.ply", "transforms.json"}
    for v in range(2):
        names |= {f"img_{v:02d}.png", f"mask_{v:02d}.png", f"depth_{v:02d}.png"}
    return names


# --------------------------------------------------------------------------------------------------------------
# Cameras (no model)
# --------------------------------------------------------------------------------------------------------------


def test_cameras_are_seeded_and_inside_their_ranges() -> None:
    from gghead_core.dataset import CameraDistribution

    rnd = CameraDistribution("random", views=16, yaw_range_deg=(-45.0, 90.0), pitch_range_deg=(-20.0, 5.0), seed=3)
    a = rnd.angles(7)
    np.testing.assert_array_equal(a, CameraDistribution("random", views=16, yaw_range_deg=(-45.0, 90.0),
                                                        pitch_range_deg=(-20.0, 5.0), seed=3).angles(7))
    assert not np.array_equal(a, rnd.angles(8))  # another head
    assert not np.array_equal(a, CameraDistribution("random", views=16, yaw_range_deg=(-45.0, 90.0),
                                                    pitch_range_deg=(-20.0, 5.0), seed=4).angles(7))
    many = np.concatenate([rnd.angles(s) for s in range(50)])
    assert many[:, 0].min() >= -45 and many[:, 0].max() <= 90 and many[:, 1].min() >= -20 and many[:, 1].max() <= 5
    assert many[:, 0].max() - many[:, 0].min() > 100  # spread over the range, not stuck at a point

    front = CameraDistribution("front", views=5, yaw_range_deg=(-30.0, 30.0), pitch_range_deg=(-10.0, 10.0))
    f = front.angles(1)
    assert tuple(f[0]) == (0.0, 0.0) and np.all(np.abs(f[:, 0]) <= 30) and np.all(np.abs(f[:, 1]) <= 10)

    orbit = CameraDistribution("orbit", views=4, yaw_range_deg=(-180.0, 180.0), pitch_range_deg=(0.0, 10.0))
    np.testing.assert_allclose(orbit.angles(0), [[-180, 5], [-90, 5], [0, 5], [90, 5]])
    np.testing.assert_array_equal(orbit.angles(0), orbit.angles(99))  # the same for every head
    swing = CameraDistribution("orbit", views=3, yaw_range_deg=(-30.0, 30.0), pitch_range_deg=(0.0, 0.0))
    np.testing.assert_allclose(swing.angles(0)[:, 0], [-30, 0, 30])


def test_label_round_trip_and_opengl_axes() -> None:
    from gghead_core.camera import CameraSpec
    from gghead_core.dataset import camera_label, label_camera, opengl_cam2world

    cam = CameraSpec(yaw_deg=25.0, pitch_deg=-7.0).to_camera()
    label = camera_label(cam)
    assert label.shape == (25,) and label.dtype == np.float32
    again = label_camera(label)
    np.testing.assert_array_equal(camera_label(again), label)  # the label is a fixed point
    gl = opengl_cam2world(again)
    np.testing.assert_array_equal(gl[:, 0], again.cam2world[:, 0])
    np.testing.assert_array_equal(gl[:, 1:3], -again.cam2world[:, 1:3])
    # OpenGL cameras look down their -z axis: from the camera centre toward the origin
    look = -gl[:3, 2]
    to_origin = -gl[:3, 3] / np.linalg.norm(gl[:3, 3])
    np.testing.assert_allclose(look, to_origin, atol=1e-6)


# --------------------------------------------------------------------------------------------------------------
# Bad arguments: one line, exit 2
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("extra, words", [
    (["--yaw-range", "30,-30"], "reversed"),
    (["--pitch-range", "-95,10"], "pitch range"),
    (["--yaw-range", "abc"], "yaw range"),
    (["--yaw-range=-200,200"], "wider than 360"),
    (["--views", "0"], "views"),
    (["--noise-mode", "random"], "irreproducible"),
    (["--seeds", "0-5000000"], "more than 4000000 seeds"),
    (["--batch", "0"], "batch"),
])
def test_bad_arguments_are_one_line(tmp_path, capsys, extra, words) -> None:
    from gghead_core.cli import main

    rc = main(["sample", "--seeds", "0", "--out", str(tmp_path / "d"), *extra])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and words in err, err
    assert not (tmp_path / "d").exists()


def test_repeated_seed_is_refused(tmp_path, capsys) -> None:
    from gghead_core.cli import main

    assert main(["sample", "--seeds", "0,1,0", "--out", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "repeats seed 0" in err


def test_other_arguments_in_the_same_folder_are_refused(tmp_path, capsys) -> None:
    from gghead_core.cli import main

    base = ["-q", "sample", "--seeds", "5", "--views", "1", "--resolution", "16", "--backend", "torch",
            "--out", str(tmp_path / "d")]
    assert main(base) == 0
    before = _files(tmp_path / "d")
    assert main([*base, "--psi", "0.5"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "other arguments" in err and "psi" in err, err
    assert _files(tmp_path / "d") == before  # nothing touched
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine")
    assert main([*base[:-1], str(tmp_path / "foreign")]) == 2
    assert "holds no manifest.json" in capsys.readouterr().err
    # the same command again: nothing to make, the same files
    assert main(base) == 0
    assert _files(tmp_path / "d") == before


# --------------------------------------------------------------------------------------------------------------
# Sharding, resume
# --------------------------------------------------------------------------------------------------------------


def test_torchrun_two_processes_write_the_same_bytes(reference, tmp_path) -> None:
    r = _torchrun(tmp_path / "tr")
    assert r.returncode == 0, r.stderr[-2000:]
    ref, got = _files(reference), _files(tmp_path / "tr")
    assert sorted(ref) == sorted(got)
    assert [k for k in ref if ref[k] != got[k]] == []
    assert len([k for k in ref if k.endswith("img_00.png")]) == 4


def test_killed_rank_then_rerun_completes_without_duplicates(reference, tmp_path) -> None:
    out = tmp_path / "crash"
    r = _torchrun(out, GGHEAD_SAMPLE_CRASH_AFTER="1:1")  # rank 1 dies with its 2nd head staged, not committed
    assert r.returncode != 0
    assert not (out / "dataset.json").exists()  # the merge only runs after every rank finished
    heads = sorted(p for p in out.glob("[0-9]*/[0-9]*") if p.is_dir())
    assert 1 <= len(heads) < 4
    ref = _files(reference)
    for h in heads:  # every head that exists is complete and final
        names = {p.name for p in h.iterdir()}
        assert names == _head_files(), (h, names)
        for p in h.iterdir():
            assert p.read_bytes() == ref[str(p.relative_to(out))]
    r = _torchrun(out)
    assert r.returncode == 0, r.stderr[-2000:]
    got = _files(out)
    assert sorted(got) == sorted(ref) and all(got[k] == ref[k] for k in ref)
    assert not (out / ".staging").exists()
    assert not [p for p in out.rglob("*") if "partial" in p.name]
    labels = json.loads((out / "dataset.json").read_text())["labels"]
    names = [n for n, _ in labels]
    assert len(names) == len(set(names)) == 8


# --------------------------------------------------------------------------------------------------------------
# Files other tools read
# --------------------------------------------------------------------------------------------------------------


def _read_png(path: Path) -> np.ndarray:
    import imageio.v3 as iio

    return np.asarray(iio.imread(path))


def test_dataset_json_labels_reproduce_the_images(reference, tmp_path) -> None:
    import torch

    from gghead_core import load_generator
    from gghead_core.camera import Camera
    from gghead_core.cli import main
    from gghead_core.pipeline import LatentSpec, generate
    from gghead_core.render import render

    labels = dict((n, v) for n, v in json.loads((reference / "dataset.json").read_text())["labels"])
    assert len(labels) == 8 and all(len(v) == 25 for v in labels.values())
    name = "0000000/0000000001/img_01.png"
    v = np.asarray(labels[name], dtype=np.float64)
    intr = v[16:].reshape(3, 3)
    cam = Camera(cam2world=v[:16].reshape(4, 4), focal=float(intr[0, 0]), principal=(intr[0, 2], intr[1, 2]))
    G = load_generator(None, device="cpu")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        g = generate(G, LatentSpec(seed=1, psi=0.7))
        img = render(g, cam, 32, backend="torch").image[0].numpy()
    finally:
        torch.set_num_threads(threads)
    mine = np.clip(np.rint(img * 255.0), 0, 255).astype(np.int16)
    stored = _read_png(reference / name).astype(np.int16)
    # the dataset synthesised seed 1 in a batch of two (1 ulp apart from B=1): allow one grey level
    assert np.abs(mine - stored).max() <= 1
    other = _read_png(reference / "0000000/0000000001/img_00.png").astype(np.int16)
    assert np.abs(mine - other).mean() > 3  # a different label is visibly a different picture

    # the same view through `main.py render`, from the angles head.json records
    view = json.loads((reference / "0000000/0000000001/head.json").read_text())["views"][1]
    out = tmp_path / "r.png"
    rc = main(["-q", "render", "--seed", "1", "--psi", "0.7", "--yaw", repr(view["yaw_deg"]), "--pitch",
               repr(view["pitch_deg"]), "--resolution", "32", "--backend", "torch", "--out", str(out)])
    assert rc == 0
    assert np.abs(_read_png(out).astype(np.int16) - stored).max() <= 2


def _read_ply_vertices(path: Path) -> dict[str, np.ndarray]:
    """A PLY reader written for this test (not gghead_core's): header lines, then little-endian records."""
    raw = path.read_bytes()
    end = raw.index(b"end_header\n") + len(b"end_header\n")
    header = raw[:end].decode("ascii").splitlines()
    assert header[0] == "ply" and header[1] == "format binary_little_endian 1.0"
    count, props = None, []
    for line in header[2:]:
        parts = line.split()
        if parts[0] == "element":
            assert parts[1] == "vertex"
            count = int(parts[2])
        elif parts[0] == "property":
            assert parts[1] == "float"
            props.append(parts[2])
    dtype = np.dtype([(p, "<f4") for p in props])
    assert len(raw) - end == dtype.itemsize * count
    return {p: np.frombuffer(raw[end:], dtype=dtype)[p] for p in props}


def test_ply_transforms_depth_and_zip_load_with_independent_readers(reference) -> None:
    from gghead_core import load_generator

    head = reference / "0000000" / "0000000002"
    cols = _read_ply_vertices(head / "gaussians.ply")
    n = load_generator(None, device="cpu").num_gaussians
    for p in ("x", "y", "z", "opacity", "scale_0", "scale_2", "rot_0", "rot_3", "f_dc_0", "f_dc_2"):
        assert cols[p].shape == (n,) and np.all(np.isfinite(cols[p])), p
    assert np.abs(np.stack([cols["x"], cols["y"], cols["z"]])).max() < 2.0  # a head around the origin

    tf = json.loads((head / "transforms.json").read_text())
    labels = dict((k, v) for k, v in json.loads((reference / "dataset.json").read_text())["labels"])
    assert tf["w"] == tf["h"] == 32 and tf["cx"] == tf["cy"] == 16.0
    assert tf["fl_x"] == tf["fl_y"] == pytest.approx(4.2647 * 32, rel=1e-6)
    assert len(tf["frames"]) == 2
    manifest = json.loads((reference / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["complete_seeds"] == "0-3"
    assert tf["depth_unit_scale_factor"] == manifest["depth_scale"] == 1e-4
    for frame in tf["frames"]:
        assert (head / frame["file_path"]).is_file() and (head / frame["mask_path"]).is_file()
        gl = np.asarray(frame["transform_matrix"])
        cv = np.asarray(labels[f"0000000/0000000002/{frame['file_path']}"][:16]).reshape(4, 4)
        np.testing.assert_allclose(gl, cv @ np.diag([1.0, -1.0, -1.0, 1.0]), atol=1e-7)
        mask = _read_png(head / frame["mask_path"])
        depth = _read_png(head / frame["depth_file_path"])
        assert mask.shape == (32, 32) and mask.dtype == np.uint8 and depth.dtype == np.uint16
        hit = mask > 128
        assert hit[16, 16] and not hit[0, 0]  # a head in the middle, background in the corner
        metres = depth[hit] * manifest["depth_scale"]
        assert 2.0 < np.median(metres) < 3.0 and depth[0, 0] == 0  # in front of the origin at radius 2.7

    with zipfile.ZipFile(reference / "dataset.zip") as zf:
        names = zf.namelist()
        assert names[0] == "dataset.json" and sorted(names[1:]) == sorted(labels)
        assert zf.read("dataset.json") == (reference / "dataset.json").read_bytes()


def test_transparent_background_npy_depth_and_random_cameras(tmp_path) -> None:
    from gghead_core.cli import main

    out = tmp_path / "t"
    rc = main(["-q", "sample", "--seeds", "7", "--views", "2", "--cameras", "random", "--yaw-range", "90",
               "--resolution", "16", "--backend", "torch", "--background", "transparent", "--depth", "npy",
               "--out", str(out)])
    assert rc == 0
    head = out / "0000000" / "0000000007"
    rgba = _read_png(head / "img_01.png")
    assert rgba.shape == (16, 16, 4) and rgba[0, 0, 3] == 0 and rgba[8, 8, 3] > 0
    depth = np.load(head / "depth_01.npy")
    assert depth.shape == (16, 16) and depth.dtype == np.float32 and depth[0, 0] == 0 and 2 < depth[8, 8] < 3
    yaws = [v["yaw_deg"] for v in json.loads((head / "head.json").read_text())["views"]]
    assert all(-45 <= y <= 45 for y in yaws) and yaws[0] != yaws[1]
