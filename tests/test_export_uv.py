"""``export-uv``: the folder's arrays equal the generator's, the PNGs decode to them, the output is atomic and
the recipe replays."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from gghead_core import cli, jobs, load_generator
from gghead_core import export as ex
from gghead_core.jobs.export_uv import MANIFEST_NAME, NPZ_NAME, ExportUVJob, npz_arrays, png_name
from gghead_core.pipeline import LatentSpec, make_ws
from gghead_core.uv_maps import MAP_INFO, MAP_NAMES, uv_maps

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO = REPO_ROOT / "checkpoints" / "demo.safetensors"


@pytest.fixture(scope="module")
def G():
    return load_generator(DEMO)


def run(argv, capsys):
    code = cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def _npz(folder: Path) -> dict[str, np.ndarray]:
    with np.load(folder / NPZ_NAME) as data:
        return {k: data[k] for k in data.files}


def _png(path: Path) -> np.ndarray:
    """Our 16-bit PNGs decoded without Pillow (it reads 16-bit RGB as 8-bit): unfiltered rows, big-endian."""
    import struct
    import zlib

    blob = path.read_bytes()
    assert blob[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(blob):
        (length,), kind = struct.unpack(">I", blob[pos:pos + 4]), blob[pos + 4:pos + 8]
        data = blob[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", data)
        elif kind == b"IDAT":
            idat += data
        pos += 12 + length
    w, h, depth, color_type = header[:4]
    assert depth == 16
    ch = 1 if color_type == 0 else 3
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, 1 + w * ch * 2)
    assert np.all(raw[:, 0] == 0)
    img = raw[:, 1:].copy().view(">u2").astype(np.uint16).reshape(h, w, ch)
    return img[..., 0] if ch == 1 else img


def test_export_uv_arrays_equal_the_generator_and_pngs_decode(G, tmp_path, capsys):
    out = tmp_path / "maps"
    code, _, err = run(["--ckpt", DEMO, "--device", "cpu", "--quiet", "export-uv", "--seed", "7", "--psi", "0.5",
                        "--cutoff", "6", "--out", f"{out}/"], capsys)
    assert code == 0, err
    names = {p.name for p in out.iterdir()}
    assert names == {png_name(n) for n in MAP_NAMES} | {NPZ_NAME, MANIFEST_NAME, "recipe.json"}
    arrays = _npz(out)
    latent = LatentSpec(seed=7, psi=0.5, cutoff=6)
    with torch.no_grad():
        planes = G.position_adjusted_planes(G.synthesize_planes(make_ws(G, latent)).to(torch.float32))[0]
    np.testing.assert_array_equal(arrays["raw_planes"], planes.numpy())
    expected = npz_arrays(uv_maps(G, latent))
    assert set(arrays) == set(expected)
    for k, v in expected.items():
        np.testing.assert_array_equal(arrays[k], v, err_msg=k)
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest["resolution"] == G.plane_resolution
    for name in MAP_NAMES:
        lo, hi = manifest["maps"][name]["range"]
        assert [lo, hi] == arrays[f"range__{name}"].tolist()
        img = _png(out / png_name(name))
        assert img.shape == arrays[name].shape
        decoded = lo + img.astype(np.float64) / 65535.0 * (hi - lo)
        want = np.clip(arrays[name], lo, hi)
        assert np.abs(decoded - want).max() <= 0.5 * (hi - lo) / 65535 + 1e-6, name
    recipe = ex.read_recipe(out / "recipe.json")
    assert recipe.command == "export-uv" and recipe.seeds == [7] and recipe.psi == 0.5 and recipe.cutoff == 6


def test_export_uv_replays_identically(tmp_path, capsys):
    out = tmp_path / "a"
    code, _, err = run(["--ckpt", DEMO, "--quiet", "export-uv", "--seed", "11", "--noise-mode", "const",
                        "--out", f"{out}/"], capsys)
    assert code == 0, err
    again = tmp_path / "b"
    code, _, err = run(["replay", out / "recipe.json", "--out", f"{again}/", "--quiet"], capsys)
    assert code == 0, err
    first, second = _npz(out), _npz(again)
    for k in first:
        np.testing.assert_array_equal(first[k], second[k], err_msg=k)
    for name in MAP_NAMES:
        assert (out / png_name(name)).read_bytes() == (again / png_name(name)).read_bytes()
    # replay onto the original folder needs --overwrite
    code, _, err = run(["replay", out / "recipe.json", "--quiet"], capsys)
    assert code == 2 and "already holds" in err
    code, _, err = run(["replay", out / "recipe.json", "--overwrite", "--quiet"], capsys)
    assert code == 0, err


def test_export_uv_is_all_or_nothing(G, tmp_path, monkeypatch):
    import gghead_core.jobs.export_uv as mod

    calls = {"n": 0}
    real = mod.encode_png16

    def failing(img):
        calls["n"] += 1
        if calls["n"] == 4:
            raise OSError("disk full (simulated)")
        return real(img)

    monkeypatch.setattr(mod, "encode_png16", failing)
    target = tmp_path / "new" / "maps"
    with pytest.raises(OSError, match="disk full"):
        jobs.run_job(G, ExportUVJob(LatentSpec(seed=1)), f"{target}/")
    assert not (tmp_path / "new").exists(), "folders the job created must be removed again"
    # into an existing folder with other files: those stay, nothing of ours appears
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "notes.txt").write_text("mine")
    calls["n"] = 0
    with pytest.raises(OSError):
        jobs.run_job(G, ExportUVJob(LatentSpec(seed=1)), f"{keep}/")
    assert sorted(p.name for p in keep.iterdir()) == ["notes.txt"]
    # cancel: same
    monkeypatch.setattr(mod, "encode_png16", real)
    cancel = threading.Event()
    ticks = []

    def progress(done, total):
        ticks.append(done)
        if done == 1:
            cancel.set()

    with pytest.raises(jobs.Cancelled):
        jobs.run_job(G, ExportUVJob(LatentSpec(seed=1)), f"{keep}/", cancel=cancel, progress=progress)
    assert sorted(p.name for p in keep.iterdir()) == ["notes.txt"]
    # and a full run leaves the user's file alone too
    jobs.run_job(G, ExportUVJob(LatentSpec(seed=1)), f"{keep}/")
    assert (keep / "notes.txt").read_text() == "mine" and (keep / NPZ_NAME).is_file()


def test_export_uv_output_checks_and_recipe_codec(tmp_path, capsys):
    code, _, err = run(["--ckpt", DEMO, "export-uv", "--seed", "1", "--out", tmp_path / "x.png"], capsys)
    assert code == 2 and "writes a folder" in err
    f = tmp_path / "file"
    f.write_text("")
    with pytest.raises(ex.OutputError, match="is a file"):
        jobs.check_output(ExportUVJob(), str(f) + "/", overwrite=False)
    job = ExportUVJob(LatentSpec(seed=9, psi=0.3, cutoff=4, noise_mode="none"))
    data = json.loads(json.dumps(jobs.job_to_dict(job)))
    assert jobs.job_from_dict("export-uv", data) == job
    assert jobs.JOB_TYPES["export-uv"] is ExportUVJob
    assert set(MAP_INFO) == set(MAP_NAMES)
