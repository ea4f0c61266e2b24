"""Keyframe timelines: the values (validation, eases, splines, yaw wrap, frame times), the JSON file, the
sampler's ws, and the ``timeline`` command end to end on the official-format fixture (torch backend, 64 px).

The point of the end-to-end tests: a timeline's first and last frames are the same pixels as ``render`` of the
first and last keys, and ``replay`` of its recipe draws every frame again identically.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from gghead_core import cli, jobs
from gghead_core import export as ex
from gghead_core.camera import CameraSpec
from gghead_core.pipeline import LatentSpec, RenderSettings, StyleMix, make_ws
from gghead_core.timeline import (
    EASE_FUNCTIONS,
    Keyframe,
    Timeline,
    TimelineSampler,
    ease,
    load_timeline,
    save_timeline,
    timeline_from_dict,
    timeline_to_dict,
)
from gghead_core.vocabulary import MAX_FRAMES, SpecError

RES = "64"

KEY_A = Keyframe(0.0, LatentSpec(seed=3, psi=0.6), CameraSpec(yaw_deg=170.0, pitch_deg=5.0), ease="ease-in-out")
KEY_B = Keyframe(0.5, LatentSpec(seed=8, psi=0.8, mix=StyleMix(seed=2, start=4)),
                 CameraSpec(yaw_deg=-160.0, pitch_deg=-10.0, radius=3.0, look_at=(0.0, 0.05, 0.0), fov_deg=15.0))


def two_keys(**kw) -> Timeline:
    return Timeline((KEY_A, KEY_B), **{"fps": 8.0, **kw})


# ---- values -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EASE_FUNCTIONS))
def test_eases_are_monotone_with_exact_ends(name):
    assert ease(name, 0.0) == 0.0 and ease(name, 1.0) == 1.0
    assert ease(name, -3.0) == 0.0 and ease(name, 7.0) == 1.0
    u = np.linspace(0.0, 1.0, 2001)
    v = np.array([ease(name, x) for x in u])
    assert np.all(np.diff(v) >= 0.0), f"{name} is not monotone"
    assert np.all((v >= 0.0) & (v <= 1.0))


def test_eases_differ_where_they_should():
    assert ease("linear", 0.25) == 0.25
    assert ease("ease-in", 0.25) < 0.25 < ease("ease-out", 0.25)
    assert ease("ease-in-out", 0.25) < 0.25 and ease("ease-in-out", 0.5) == 0.5


def test_yaw_wrap_goes_the_short_way():
    tl = Timeline((Keyframe(0.0, camera=CameraSpec(yaw_deg=170.0)), Keyframe(1.0, camera=CameraSpec(yaw_deg=-170.0))))
    yaws = [tl.camera_at(t).yaw_deg for t in np.linspace(0.0, 1.0, 41)]
    # The short way crosses 180: every sample is within 10 degrees of it, never near 0.
    assert all(abs(abs(y) - 180.0) <= 10.0 + 1e-9 for y in yaws), yaws
    assert any(y > 175.0 for y in yaws) and any(y < -175.0 for y in yaws)
    # And the other direction (-170 -> 170) too, with a middle key (three-key path through the seam).
    tl = Timeline(tuple(Keyframe(float(i), camera=CameraSpec(yaw_deg=y)) for i, y in enumerate((-150.0, -175.0, 165.0))))
    unwrapped = np.unwrap(np.radians([tl.camera_at(t).yaw_deg for t in np.linspace(0.0, 2.0, 81)]))
    assert np.all(np.diff(unwrapped) <= 1e-12), "yaw must keep turning one way (monotone keys, no overshoot)"
    assert np.degrees(unwrapped[0] - unwrapped[-1]) == pytest.approx(45.0)


def test_camera_is_the_key_itself_at_key_times_and_never_overshoots():
    keys = (
        Keyframe(0.0, camera=CameraSpec(yaw_deg=0.0, radius=2.7, fov_deg=12.0)),
        Keyframe(1.0, camera=CameraSpec(yaw_deg=40.0, radius=4.0, fov_deg=30.0)),
        Keyframe(1.3, camera=CameraSpec(yaw_deg=45.0, radius=1.0, fov_deg=10.0)),
        Keyframe(4.0, camera=CameraSpec(yaw_deg=-20.0, radius=1.2, fov_deg=60.0)),
    )
    tl = Timeline(keys)
    for k in keys:
        assert tl.camera_at(k.time_s) is k.camera
    for i in range(len(keys) - 1):
        a, b = keys[i].camera, keys[i + 1].camera
        for t in np.linspace(keys[i].time_s, keys[i + 1].time_s, 50):
            c = tl.camera_at(t)
            for name in ("radius", "fov_deg", "yaw_deg"):
                lo, hi = sorted((getattr(a, name), getattr(b, name)))
                assert lo - 1e-9 <= getattr(c, name) <= hi + 1e-9, (name, t)
    # Before the first key and after the last the state holds.
    assert Timeline(keys[1:]).camera_at(0.2) is keys[1].camera
    assert tl.camera_at(9.0) is keys[-1].camera


def test_cubic_latent_weights_reproduce_a_cubic_and_are_one_hot_at_keys():
    """Not-a-knot splines are exact for cubic polynomials (the defining property of interp1d's 'cubic')."""
    rng = np.random.default_rng(1)
    times = np.cumsum(rng.uniform(0.2, 1.5, 6))
    tl = Timeline(tuple(Keyframe(float(t)) for t in times), latent_interp="cubic")
    def poly(x):
        return 0.3 * x ** 3 - 2.0 * x ** 2 + x - 4.0
    values = poly(times)
    for x in np.linspace(times[0], times[-1], 97):
        assert tl.latent_weights(x) @ values == pytest.approx(poly(x), abs=1e-9)
    for i, t in enumerate(times):
        w = tl.latent_weights(float(t))
        assert w[i] == 1.0 and np.count_nonzero(w) == 1
    lin = replace(tl, latent_interp="linear")
    mid = 0.5 * (times[1] + times[2])
    assert lin.latent_weights(mid)[1:3] == pytest.approx([0.5, 0.5], abs=1e-12)


def test_looping_spline_is_closed_and_smooth():
    keys = tuple(Keyframe(float(t), camera=CameraSpec(yaw_deg=y)) for t, y in ((0.0, 0.0), (1.0, 120.0), (2.0, -120.0)))
    tl = Timeline(keys, loop=True, fps=10.0)
    assert tl.length_s == 3.0 and tl.n_frames == 30
    assert tl.frame_times()[-1] == pytest.approx(2.9)
    values = np.array([1.0, -2.0, 0.5])
    eps = 1e-5
    # C1 across the seam (3.0 == 0.0): left and right slopes agree.
    left = (tl.latent_weights(3.0 - eps) @ values - tl.latent_weights(3.0 - 2 * eps) @ values) / eps
    right = (tl.latent_weights(2 * eps) @ values - tl.latent_weights(eps) @ values) / eps
    assert left == pytest.approx(right, rel=1e-3, abs=1e-3)
    # The camera keeps turning through the closing segment (a full turn: 120 degrees per key).
    yaws = np.unwrap(np.radians([tl.camera_at(t).yaw_deg for t in np.linspace(0.0, 3.0, 61)]))
    assert np.degrees(yaws[-1] - yaws[0]) == pytest.approx(360.0)
    assert tl.camera_at(3.0) is keys[0].camera


def test_frame_times_end_on_the_last_key():
    tl = Timeline((Keyframe(0.0), Keyframe(1.05)), fps=10.0)
    times = tl.frame_times()
    assert len(times) == tl.n_frames == 12 and times[0] == 0.0 and times[-1] == 1.05
    assert times[1] == 0.1 and times[10] == 1.0
    assert Timeline((Keyframe(0.0), Keyframe(1.0)), fps=10.0).n_frames == 11
    assert Timeline((Keyframe(0.0),)).frame_times() == [0.0]
    assert Timeline((Keyframe(2.0),), fps=2.0).n_frames == 5  # holds the first key from t = 0


@pytest.mark.parametrize("make, fragment", [
    (lambda: Timeline(()), "at least one keyframe"),
    (lambda: Timeline((Keyframe(1.0), Keyframe(1.0))), "share the time"),
    (lambda: Timeline((Keyframe(2.0), Keyframe(1.0))), "out of order"),
    (lambda: Keyframe(-1.0), "keyframe time"),
    (lambda: Keyframe(0.0, ease="bounce"), "keyframe ease"),
    (lambda: Timeline((Keyframe(0.0),), fps=0.0), "timeline fps"),
    (lambda: Timeline((Keyframe(0.0),), latent_interp="quintic"), "latent interpolation"),
    (lambda: Timeline((Keyframe(0.0), Keyframe(2.0)), duration_s=1.0), "ends before its last key"),
    (lambda: Timeline((Keyframe(0.0), Keyframe(2.0)), loop=True, duration_s=2.0), "must be after its last key"),
    (lambda: Timeline((Keyframe(0.0), Keyframe(2000.0)), fps=240.0), f"limit is {MAX_FRAMES}"),
])
def test_invalid_timelines_are_one_sentence(make, fragment):
    with pytest.raises(SpecError, match=fragment) as info:
        make()
    assert "\n" not in str(info.value)


# ---- JSON -------------------------------------------------------------------------------------------------------


def test_json_round_trip(tmp_path):
    tl = Timeline((KEY_A, replace(KEY_B, ease="ease-out"), Keyframe(2.0)), fps=12.5, loop=True,
                  latent_interp="linear", duration_s=3.0)
    path = save_timeline(tmp_path / "t.json", tl)
    assert load_timeline(path) == tl
    data = json.loads(path.read_text())
    assert data["format"] == "gghead-timeline" and data["version"] == 1
    assert data["keyframes"][1]["latent"]["mix"] == {"seed": 2, "start": 4, "end": None}
    assert timeline_from_dict(timeline_to_dict(two_keys())) == two_keys()
    with pytest.raises(ex.OutputError, match=".json"):
        save_timeline(tmp_path / "t.txt", tl)


def _bad(**changes):
    d = timeline_to_dict(two_keys())
    for path, value in changes.items():
        target = d
        parts = path.split("__")
        for p in parts[:-1]:
            target = target[int(p)] if p.isdigit() else target[p]
        if value is _DELETE:
            del target[parts[-1]]
        else:
            target[parts[-1]] = value
    return d


_DELETE = object()


@pytest.mark.parametrize("data, fragment", [
    (_bad(keyframes__1__time_s="soon"), "'timeline.keyframes[1].time_s' must be a finite number"),
    (_bad(keyframes__0__latent__psi=[1]), "'timeline.keyframes[0].latent.psi'"),
    (_bad(keyframes__0__camera__zoom=2), "'timeline.keyframes[0].camera' has unknown keys: zoom"),
    (_bad(keyframes__0__ease="bounce"), "'timeline.keyframes[0].ease' must be one of"),
    (_bad(keyframes__1__time_s=0.0), "share the time"),
    (_bad(fps="fast"), "'timeline.fps' must be a finite number"),
    (_bad(keyframes=[]), "at least one keyframe"),
    (_bad(format=_DELETE), "'format'"),
    (_bad(version=7), "'version' must be 1"),
    ([1, 2], "JSON object"),
])
def test_bad_json_names_the_field(data, fragment):
    with pytest.raises(SpecError) as info:
        timeline_from_dict(data)
    msg = str(info.value)
    assert fragment in msg and "\n" not in msg and "recipe" not in msg


# ---- ws ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def G(fixture_ckpt):
    from gghead_core import load_generator

    return load_generator(fixture_ckpt)


def test_sampler_ws_are_the_keys_own_at_key_times(G):
    tl = two_keys(latent_interp="linear")
    s = TimelineSampler(G, tl)
    ws_a, ws_b = make_ws(G, KEY_A.latent), make_ws(G, KEY_B.latent)
    assert torch.equal(s.ws_at(0.0), ws_a) and torch.equal(s.ws_at(0.5), ws_b)
    t = 0.25  # ease-in-out of key A at u = 0.5 is 0.5
    expected = (0.5 * ws_a.double() + 0.5 * ws_b.double()).float()
    assert torch.equal(s.ws_at(t), expected)
    assert s.ws_at(t).shape == ws_a.shape


# ---- the command ------------------------------------------------------------------------------------------------


def base(ckpt, *more):
    return ["--ckpt", str(ckpt), "--device", "cpu", "--quiet", *more]


def frames_of(folder: Path) -> list[np.ndarray]:
    import imageio.v3 as iio

    return [iio.imread(p) for p in sorted(folder.glob("frame_*.png"))]


def render_key(ckpt, key: Keyframe, out: Path) -> np.ndarray:
    import imageio.v3 as iio

    lat, cam = key.latent, key.camera
    argv = base(ckpt, "render", "--seed", lat.seed, "--psi", lat.psi, "--yaw", cam.yaw_deg, "--pitch", cam.pitch_deg,
                "--radius", cam.radius, "--look-at", ",".join(map(str, cam.look_at)), "--fov", cam.fov_deg,
                "--resolution", RES, "--backend", "torch", "--out", out)
    assert cli.main([str(a) for a in argv]) == 0
    return iio.imread(out)


def test_first_and_last_frames_equal_render_and_replay_is_identical(fixture_ckpt, tmp_path):
    a = replace(KEY_A, latent=LatentSpec(seed=3, psi=0.6))
    b = replace(KEY_B, latent=LatentSpec(seed=8, psi=0.8))
    tl_path = save_timeline(tmp_path / "t.json", Timeline((a, b), fps=8.0))
    out = tmp_path / "frames"
    code = cli.main([str(x) for x in base(fixture_ckpt, "timeline", tl_path, "--out", f"{out}/", "--resolution", RES,
                                          "--backend", "torch")])
    assert code == 0
    frames = frames_of(out)
    assert len(frames) == 5 and frames[0].shape == (64, 64, 3)
    first = render_key(fixture_ckpt, a, tmp_path / "a.png")
    last = render_key(fixture_ckpt, b, tmp_path / "b.png")
    assert np.array_equal(frames[0], first)
    assert np.array_equal(frames[-1], last)
    mid = frames[2].astype(int)
    assert np.abs(mid - first).mean() > 1 and np.abs(mid - last).mean() > 1

    recipe = ex.read_recipe(out / ex.FOLDER_RECIPE_NAME)
    assert recipe.command == "timeline" and recipe.seeds == [3, 8] and len(recipe.cameras) == 5
    assert jobs.job_from_recipe(recipe).timeline == Timeline((a, b), fps=8.0)
    again = tmp_path / "again"
    assert cli.main([str(x) for x in base(fixture_ckpt, "replay", out / ex.FOLDER_RECIPE_NAME, "--out", f"{again}/")]) == 0
    assert all(np.array_equal(x, y) for x, y in zip(frames, frames_of(again), strict=True))


def test_fps_option_and_gif_output(fixture_ckpt, tmp_path):
    tl_path = save_timeline(tmp_path / "t.json", two_keys())
    out = tmp_path / "t.gif"
    code = cli.main([str(x) for x in base(fixture_ckpt, "timeline", tl_path, "--out", out, "--resolution", "32",
                                          "--backend", "torch", "--fps", "4")])
    assert code == 0
    assert ex.read_frames(out).shape[:3] == (3, 32, 32)
    assert jobs.job_from_recipe(ex.read_recipe(Path(f"{out}.json"))).timeline.fps == 4.0


@pytest.mark.parametrize("content, fragment", [
    ('{"format": "gghead-timeline", "version": 1, "keyframes": [{"time_s": "x"}]}',
     "timeline field 'timeline.keyframes[0].time_s' must be a finite number"),
    ("{not json", "is not valid JSON"),
    (None, "cannot read timeline"),
])
def test_bad_timeline_file_exits_2_with_one_line(fixture_ckpt, tmp_path, capsys, content, fragment):
    path = tmp_path / "bad.json"
    if content is not None:
        path.write_text(content)
    out = tmp_path / "v.mp4"
    code = cli.main([str(x) for x in base(fixture_ckpt, "timeline", path, "--out", out)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert fragment in err and err.count("\n") == 1 and err.startswith("error: ")
    assert not out.exists()


def test_cancel_leaves_nothing(G, tmp_path):
    import threading

    cancel = threading.Event()

    def progress(done, total):
        if done >= 1:
            cancel.set()

    job = jobs.TimelineJob(two_keys(), settings=RenderSettings(resolution=32, backend="torch"))
    with pytest.raises(jobs.Cancelled):
        jobs.run_job(G, job, tmp_path / "v.gif", progress=progress, cancel=cancel)
    assert list(tmp_path.iterdir()) == []


def test_the_readme_example_is_a_valid_timeline():
    import re

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("### Timeline JSON"):]
    example = re.search(r"```json\n(.*?)```", section, re.S)
    assert example is not None
    tl = timeline_from_dict(json.loads(example.group(1)))
    assert [k.time_s for k in tl.keyframes] == [0.0, 2.0] and tl.keyframes[1].latent.mix == StyleMix(2, 7)
    assert tl.keyframes[1].camera.radius == CameraSpec().radius  # omitted fields take their defaults
