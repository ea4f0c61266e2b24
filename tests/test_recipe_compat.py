"""Recipes written before the pipeline vocabulary (format version 1) still replay, to identical pixels.

``tests/data/recipes_v1/`` holds outputs and recipes written by the version-1 engine (commit f33d698) on the
bundled demo model: a still with a viewer-style two-seed W blend, style mixing and a pan; an official-circle
turntable (version 1's default path); a grid with flat truncation fields. Their recipes point to a checkpoint
path that no longer exists, so replay falls back to the demo model after checking its sha256.

Since they were written, the generator's CPU kernels were reordered for speed (every attribute still within
4e-6 of the official fixture), so a replay today may round a handful of 8-bit values the other way: the test
allows that (at most 1 level in a PNG, 3 in a palette GIF, in under 0.1% of the values) and nothing more.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from gghead_core import cli, jobs
from gghead_core import export as ex
from gghead_core.pipeline import LatentSpec, StyleMix

DATA = Path(__file__).parent / "data" / "recipes_v1"
CASES = ["still_blend_mix.png", "turntable_circle.gif", "grid_psi.png"]


def test_v1_params_translate_into_the_vocabulary():
    recipe = ex.read_recipe(DATA / "still_blend_mix.png.json")
    assert recipe.format_version == 1
    job = jobs.job_from_recipe(recipe)
    assert job.latent == LatentSpec(seed=3, seed_b=5, t=0.37, space="w", psi=0.6, mix=StyleMix(7, 2, 5))
    assert (job.camera.yaw_deg, job.camera.pitch_deg) == (20.0, -5.0)
    tt = jobs.job_from_recipe(ex.read_recipe(DATA / "turntable_circle.gif.json"))
    assert tt.path == "circle" and tt.frames == 3 and tt.yaw_range_deg == 360.0
    grid = jobs.job_from_recipe(ex.read_recipe(DATA / "grid_psi.png.json"))
    assert grid.latent.psi == 0.5 and grid.latent.cutoff == 3 and grid.yaws_deg == (-30.0, 30.0)


@pytest.mark.parametrize("name", CASES)
def test_v1_recipe_replays_to_identical_pixels(name, tmp_path, capsys):
    recipe_path = tmp_path / (name + ".json")
    shutil.copy(DATA / (name + ".json"), recipe_path)
    out = tmp_path / ("again" + Path(name).suffix)
    code = cli.main(["replay", str(recipe_path), "--out", str(out), "--quiet"])
    assert code == 0, capsys.readouterr().err
    again, before = ex.read_frames(out).astype(int), ex.read_frames(DATA / name).astype(int)
    assert again.shape == before.shape
    diff = np.abs(again - before)
    assert diff.max() <= (3 if name.endswith(".gif") else 1) and (diff > 0).mean() < 1e-3
    new = json.loads(Path(str(out) + ".json").read_text())
    assert new["format_version"] == ex.RECIPE_VERSION  # the replay writes today's format


def test_v1_free_blend_is_refused_with_a_sentence(tmp_path, capsys):
    data = json.loads((DATA / "still_blend_mix.png.json").read_text())
    data["params"]["latent"]["blend"] = [[3, 0.5], [5, 0.2], [9, 0.3]]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    code = cli.main(["replay", str(bad), "--out", str(tmp_path / "x.png")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "free weights" in err
    assert not (tmp_path / "x.png").exists()
