"""The pipeline vocabulary: values are validated when made, make_ws follows the spec, jobs round-trip through
recipe JSON, and wrong JSON types in a recipe get one sentence naming the field."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from gghead_core import cli, jobs
from gghead_core import export as ex
from gghead_core import latents as lat
from gghead_core.camera import CameraSpec
from gghead_core.pipeline import LatentEdit, LatentSpec, RenderSettings, StyleMix, apply_edits, make_ws
from gghead_core.vocabulary import BACKENDS, MODES, NOISE_MODES, SpecError, parse_background

DEMO = Path(__file__).resolve().parents[1] / "checkpoints" / "demo.safetensors"


@pytest.fixture(scope="module")
def G():
    from gghead_core import load_generator

    return load_generator(DEMO)


@pytest.mark.parametrize(
    "make, fragment",
    [
        (lambda: LatentSpec(seed=-1), "seed"),
        (lambda: LatentSpec(seed=2**32), "seed"),
        (lambda: LatentSpec(seed=True), "seed"),
        (lambda: LatentSpec(psi=1e308), "psi"),
        (lambda: LatentSpec(psi=float("nan")), "psi"),
        (lambda: LatentSpec(cutoff=10**21), "cutoff"),
        (lambda: LatentSpec(t=1.5), "interpolation t"),
        (lambda: LatentSpec(space="q"), "interpolation space"),
        (lambda: LatentSpec(noise_mode="loud"), "noise mode"),
        (lambda: StyleMix(seed=1, start=5, end=3), "style-mixing"),
        (lambda: LatentEdit("pc1", float("inf")), "amount"),
        (lambda: LatentEdit("", 1.0), "direction"),
        (lambda: CameraSpec(radius=1e300), "radius"),
        (lambda: CameraSpec(radius=0.0), "radius"),
        (lambda: CameraSpec(pitch_deg="up"), "pitch"),
        (lambda: CameraSpec(look_at=(0.0, 1.0)), "look-at"),
        (lambda: CameraSpec(fov_deg=180.0), "field of view"),
        (lambda: RenderSettings(resolution=100), "multiple of 16"),
        (lambda: RenderSettings(backend="vulkan"), "backend"),
        (lambda: RenderSettings(mode="normals"), "mode"),
        (lambda: RenderSettings(background="pink"), "background"),
        (lambda: RenderSettings(scale_modifier=0.0), "scale modifier"),
        (lambda: jobs.TurntableJob(frames=10**9), "frames"),
        (lambda: jobs.TurntableJob(fps=1e-9), "fps"),
        (lambda: jobs.InterpolationJob(seeds=tuple(range(15000)), frames_per_seed=10**9), "frames"),
        (lambda: jobs.InterpolationJob(seeds=(0, 1), latent=LatentSpec(seed=4)), "takes its seeds"),
        (lambda: jobs.GridJob(seeds=tuple(range(5000))), "cells"),
    ],
)
def test_invalid_values_cannot_be_made(make, fragment):
    with pytest.raises(SpecError, match=fragment) as info:
        make()
    assert "\n" not in str(info.value)


def test_vocabularies_are_defined_once():
    from gghead_core import render

    assert tuple(render.BACKENDS) == BACKENDS and tuple(render.MODES) == MODES
    assert NOISE_MODES == ("const", "random", "none")
    assert parse_background(" White ") == "white" and parse_background("0,0.5,1") == (0.0, 0.5, 1.0)
    assert parse_background([1, 1, 1]) == (1.0, 1.0, 1.0)


def test_make_ws_interpolation_mixing_and_edits(G):
    a, b = LatentSpec(seed=3, psi=0.6), LatentSpec(seed=5, psi=0.6)
    wa, wb = make_ws(G, a), make_ws(G, b)
    assert torch.equal(make_ws(G, replace(a, seed_b=5, t=0.0)), wa)
    assert torch.equal(make_ws(G, replace(a, seed_b=5, t=1.0)), wb)
    mid = make_ws(G, replace(a, seed_b=5, t=0.25))
    assert torch.equal(mid, 0.75 * wa + 0.25 * wb)  # the EG3D visualizer's fractional seeds, exactly
    z = lat.slerp(G.z_from_seed(3), G.z_from_seed(5), 0.25)
    zmid = make_ws(G, replace(a, seed_b=5, t=0.25, space="z"))
    assert torch.equal(zmid, G.mapping(z, None, truncation_psi=0.6))
    mixed = make_ws(G, replace(a, mix=StyleMix(seed=9, start=1, end=3)))
    w9 = make_ws(G, replace(a, seed=9))
    assert torch.equal(mixed[:, 1:3], w9[:, 1:3]) and torch.equal(mixed[:, 3:], wa[:, 3:])
    with pytest.raises(SpecError, match="outside this model"):
        make_ws(G, replace(a, mix=StyleMix(seed=9, start=1, end=G.num_ws + 1)))


def test_edit_then_inverse_edit_returns_the_same_ws(G):
    ws = make_ws(G, LatentSpec(seed=1))
    d = {"pc0": torch.randn(G.w_dim, generator=torch.Generator().manual_seed(0))}
    fwd = apply_edits(ws, [LatentEdit("pc0", 2.5, 0, 3)], d)
    assert not torch.equal(fwd, ws) and torch.equal(fwd[:, 3:], ws[:, 3:])
    back = apply_edits(fwd, [LatentEdit("pc0", -2.5, 0, 3)], d)
    torch.testing.assert_close(back, ws, rtol=0, atol=1e-6)
    with pytest.raises(SpecError, match="unknown latent direction"):
        make_ws(G, LatentSpec(seed=1, edits=(LatentEdit("nope", 1.0),)), directions=d)


JOBS = [
    jobs.StillJob(latent=LatentSpec(seed=3, seed_b=4, t=0.37, space="z", mix=StyleMix(2, 1, 4),
                                    edits=(LatentEdit("pc1", -1.5, 0, 6),)),
                  camera=CameraSpec(yaw_deg=10.0, look_at=(0.1, 0.0, 0.0)),
                  settings=RenderSettings(resolution=256, background=(0.1, 0.2, 0.3))),
    jobs.TurntableJob(frames=12, path="circle", settings=RenderSettings(background="transparent")),
    jobs.InterpolationJob(seeds=(1, 2, 3), loop=True, latent=LatentSpec(psi=0.5, cutoff=4)),
    jobs.GridJob(seeds=(0, 1), yaws_deg=(-30.0, 30.0), cols=1),
    jobs.ExportJob(latent=LatentSpec(seed=9), format="splat"),
]


@pytest.mark.parametrize("job", JOBS, ids=[j.command for j in JOBS])
def test_jobs_round_trip_through_recipe_json(job):
    data = json.loads(json.dumps(jobs.job_to_dict(job)))
    assert jobs.job_from_dict(job.command, data) == job


def _recipe_with(tmp_path, mutate, name="r.json"):
    recipe = ex.Recipe(command="render", params=jobs.job_to_dict(jobs.StillJob(settings=RenderSettings(64))),
                       output=str(tmp_path / "o.png"), checkpoint={"path": None, "sha256": ""}, seeds=[0],
                       psi=0.7, cutoff=None, cameras=[], renderer={"backend": "torch", "torch_threads": 1})
    data = json.loads(recipe.to_json())
    mutate(data)
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    "mutate, fragment",
    [
        (lambda d: d["params"]["camera"].update(pitch_deg="up"), "params.camera.pitch_deg"),
        (lambda d: d.update(command=["render"]), "unknown recipe command"),
        (lambda d: d["params"]["latent"].update(seed="3"), "params.latent.seed"),
        (lambda d: d["params"]["latent"].update(mix={"seed": 1, "start": 5, "end": 2}), "style-mixing"),
        (lambda d: d["params"]["latent"].update(psi=1e308), "psi"),
        (lambda d: d["params"].update(settings=[1, 2]), "params.settings"),
        (lambda d: d["params"]["latent"].update(color="red"), "unknown keys: color"),
        (lambda d: d["params"]["settings"].update(resolution=2**20), "resolution"),
    ],
)
def test_bad_recipe_fields_are_one_sentence_exit_2(tmp_path, capsys, mutate, fragment):
    path = _recipe_with(tmp_path, mutate)
    code = cli.main(["replay", str(path), "--out", str(tmp_path / "x.png")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and fragment in err, err
    assert "Error:" not in err.split(":", 1)[1][:20]  # a sentence, not an exception's class name
    assert not (tmp_path / "x.png").exists()


def test_replay_checks_the_checkpoint_hash_before_parsing_it(tmp_path, capsys):
    """A recipe whose checkpoint hash does not match is refused before the file is read as a checkpoint."""
    decoy = tmp_path / "decoy.pkl"
    decoy.write_bytes(b"this is not a pickle at all")
    path = _recipe_with(tmp_path, lambda d: d.update(checkpoint={"path": str(decoy), "sha256": "ab" * 32}))
    code = cli.main(["replay", str(path), "--out", str(tmp_path / "x.png")])
    err = capsys.readouterr().err
    assert code == 1 and "is not the one the recipe was made with" in err and "--allow-other-checkpoint" in err
    assert "refused to load" not in err and "pickle" not in err  # never parsed
