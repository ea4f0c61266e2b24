"""Seed parsing, interpolation, schedules, style mixing and camera trajectories (gghead_core.latents)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gghead_core import latents as lat
from gghead_core.camera import frontal_camera

# ---- seeds ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("0,1,2", [0, 1, 2]),
        ("0-7", list(range(8))),
        ("0-3,8,10-12", [0, 1, 2, 3, 8, 10, 11, 12]),
        (" 5 , 3 - 4 ", [5, 3, 4]),
        ("7", [7]),
        ("1,0,1", [1, 0, 1]),
        ("4294967295", [4294967295]),
        ("4-4", [4]),
    ],
)
def test_parse_seed_list_accepts(text, expected):
    assert lat.parse_seed_list(text) == expected


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("1,,x", "empty item"),
        ("1,", "empty item"),
        ("", "empty seed list"),
        ("5-2", "end is smaller"),
        ("-1", "non-negative"),
        ("3,-1", "non-negative"),
        ("4294967296", "at most 4294967295"),
        ("0-4294967296", "at most"),
        ("x", "non-negative integer"),
        ("1.5", "non-negative integer"),
        ("1-", "non-negative integer"),
        ("0-4294967295", "too long"),
    ],
)
def test_parse_seed_list_refuses(text, fragment):
    with pytest.raises(ValueError) as info:
        lat.parse_seed_list(text)
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message


def test_parse_seed_list_from_sequence_and_int():
    assert lat.parse_seed_list([3, 1]) == [3, 1]
    assert lat.parse_seed_list(9) == [9]
    with pytest.raises(ValueError):
        lat.parse_seed_list([1, -2])
    with pytest.raises(ValueError):
        lat.parse_seed_list([])


def test_format_seed_list_round_trips():
    for seeds in ([0, 1, 2, 3, 7], [5], [3, 2, 1], [0, 2, 4], [1, 2, 2, 3]):
        text = lat.format_seed_list(seeds)
        assert lat.parse_seed_list(text) == seeds
    assert lat.format_seed_list([0, 1, 2, 3, 7]) == "0-3,7"


# ---- interpolation -------------------------------------------------------------------------------------------


def test_lerp_matches_formula():
    a, b = torch.randn(4, 16), torch.randn(4, 16)
    torch.testing.assert_close(lat.lerp(a, b, 0.25), a + 0.25 * (b - a))


def test_slerp_end_points_exact_and_norm_kept():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(512, generator=g)
    b = torch.randn(512, generator=g)
    b = b / b.norm() * a.norm()  # equal norms: slerp stays on the sphere
    assert torch.equal(lat.slerp(a, b, 0.0), a)
    assert torch.equal(lat.slerp(a, b, 1.0), b)
    for t in (0.1, 0.5, 0.9):
        m = lat.slerp(a, b, t)
        assert abs(float(m.norm()) - float(a.norm())) < 1e-4
    # lerp shrinks the norm in the middle, slerp does not: the two really differ
    assert float(lat.lerp(a, b, 0.5).norm()) < 0.9 * float(a.norm())
    # angle is split evenly
    m = lat.slerp(a, b, 0.3)
    ang = lambda u, v: math.acos(float((u @ v) / (u.norm() * v.norm())))  # noqa: E731
    assert ang(a, m) == pytest.approx(0.3 * ang(a, b), rel=1e-4)


def test_slerp_near_parallel_and_antiparallel_are_finite():
    a = torch.randn(512)
    near = a * (1 + 1e-9) + 1e-12
    out = lat.slerp(a, near, 0.5)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, lat.lerp(a, near, 0.5))
    anti = lat.slerp(a, -a, 0.5)
    assert torch.isfinite(anti).all()
    zero = lat.slerp(torch.zeros(8), torch.ones(8), 0.5)
    torch.testing.assert_close(zero, torch.full((8,), 0.5))


def test_slerp_batched_t():
    a, b = torch.randn(3, 64), torch.randn(3, 64)
    out = lat.slerp(a, b, torch.tensor([0.0, 0.5, 1.0]))
    assert out.shape == (3, 64)
    torch.testing.assert_close(out[0], a[0])
    torch.testing.assert_close(out[1], lat.slerp(a[1], b[1], 0.5))
    torch.testing.assert_close(out[2], b[2])


def test_interpolate_rejects_unknown_method():
    with pytest.raises(ValueError, match="unknown interpolation method"):
        lat.interpolate(torch.zeros(2), torch.ones(2), 0.5, "cubic")


# ---- schedules -----------------------------------------------------------------------------------------------


def test_official_keyframes():
    # spec 5.2: defaults (1000 frames, 5 persons) -> [0,199,399,599,799,999]
    assert lat.keyframes(1000, 6).tolist() == [0, 199, 399, 599, 799, 999]


def test_official_loop_schedule():
    steps = lat.interpolation_schedule(5, 200, loop=True)
    assert len(steps) == 1000
    assert (steps[0].index_a, steps[0].t) == (0, 0.0)
    # frame 199 is key 1: end of phase 0 (t = 1 toward seed 1)
    assert (steps[199].index_a, steps[199].index_b, steps[199].t) == (0, 1, 1.0)
    assert (steps[200].index_a, steps[200].index_b) == (1, 2)
    assert steps[200].t == pytest.approx(1 / 200)
    # last frame returns to seed 0
    assert (steps[999].index_a, steps[999].index_b, steps[999].t) == (4, 0, 1.0)
    # t is monotone inside each phase and in [0, 1]
    assert all(0.0 <= s.t <= 1.0 for s in steps)


def test_open_schedule_ends_on_last_seed():
    steps = lat.interpolation_schedule(3, 4, loop=False)
    assert len(steps) == 9
    keys = [(s.index_a, s.index_b, s.t) for s in steps]
    assert keys[0] == (0, 1, 0.0)
    assert keys[4] == (0, 1, 1.0)  # frame 4 = seed 1 exactly
    assert keys[8] == (1, 2, 1.0)  # last frame = seed 2
    latents = lat.interpolate_keys(torch.tensor([[0.0], [10.0], [20.0]]), steps)
    assert latents[:, 0].tolist() == pytest.approx([0, 2.5, 5, 7.5, 10, 12.5, 15, 17.5, 20])


def test_schedule_validation():
    with pytest.raises(ValueError, match="at least 2 seeds"):
        lat.interpolation_schedule(1, 10)
    with pytest.raises(ValueError, match="positive"):
        lat.interpolation_schedule(3, 0)


# ---- style mixing --------------------------------------------------------------------------------------------


def test_style_mix_replaces_rows():
    a = torch.zeros(2, 10, 8)
    b = torch.ones(1, 10, 8)
    out = lat.style_mix(a, b, 3, 7)
    assert out[:, :3].abs().sum() == 0 and out[:, 7:].abs().sum() == 0
    assert torch.equal(out[:, 3:7], torch.ones(2, 4, 8))
    assert a.abs().sum() == 0  # input untouched
    assert torch.equal(lat.style_mix(a, b, 7)[:, 7:], torch.ones(2, 3, 8))
    with pytest.raises(ValueError):
        lat.style_mix(a, b, 5, 11)
    with pytest.raises(ValueError):
        lat.style_mix(a, torch.ones(1, 9, 8), 0)


# ---- trajectories --------------------------------------------------------------------------------------------


def test_official_turntable_matches_spec():
    cams = lat.official_turntable()
    assert len(cams) == 96 == lat.OFFICIAL_TURNTABLE_FRAMES
    assert lat.OFFICIAL_TURNTABLE_FPS == 24
    for i in (0, 13, 24, 50, 95):
        m = cams[i].cam2world
        a = 2 * math.pi * i / 96
        eye = np.array([0.6 * math.sin(a), 0.6 * math.cos(a), 2.7])
        np.testing.assert_allclose(m[:3, 3], eye, atol=1e-12)
        # spec: z = normalize(-e), x = normalize(z x up), y = -normalize(x x z)
        z = -eye / np.linalg.norm(eye)
        x = np.cross(z, [0, 1, 0])
        x /= np.linalg.norm(x)
        y = -np.cross(x, z)
        y /= np.linalg.norm(y)
        np.testing.assert_allclose(m[:3, :3], np.stack([x, y, z], 1), atol=1e-12)
        assert np.linalg.det(m[:3, :3]) == pytest.approx(1.0)
        assert cams[i].focal == pytest.approx(4.2647)
    # starts above the axis and moves toward +x
    assert cams[0].center[1] > 0 and cams[1].center[0] > 0


def test_circle_scales_with_radius_and_pitch_tilts():
    cams = lat.circle_trajectory(8, radius=5.4)
    np.testing.assert_allclose(cams[0].center, [0, 1.2, 5.4], atol=1e-12)
    tilted = lat.circle_trajectory(8, pitch_deg=30)
    for cam in tilted:
        # the camera still looks at the origin
        forward = cam.cam2world[:3, 2]
        np.testing.assert_allclose(forward, -cam.center / np.linalg.norm(cam.center), atol=1e-12)
    mean_elevation = np.mean([c.center[1] for c in tilted])
    assert mean_elevation == pytest.approx(2.7 * math.sin(math.radians(30)), abs=1e-9)


def test_orbit_trajectory():
    cams = lat.orbit_trajectory(8, pitch_deg=0.0)
    np.testing.assert_allclose(cams[0].cam2world, frontal_camera().cam2world, atol=1e-12)
    np.testing.assert_allclose(cams[2].center, [2.7, 0, 0], atol=1e-9)  # yaw 90 -> +x
    radii = [np.linalg.norm(c.center) for c in cams]
    assert radii == pytest.approx([2.7] * 8)
    swing = lat.orbit_trajectory(4, yaw_range_deg=60)
    yaws = [math.degrees(math.atan2(c.center[0], c.center[2])) for c in swing]
    assert yaws == pytest.approx([0, 30, 0, -30], abs=1e-9)
    high = lat.orbit_trajectory(4, pitch_deg=20, radius=3.0)
    assert all(c.center[1] == pytest.approx(3.0 * math.sin(math.radians(20))) for c in high)
    with pytest.raises(ValueError):
        lat.orbit_trajectory(0)


def test_conditioning_camera_rescaled_to_2_7():
    cam = lat.circle_trajectory(10)[3]
    cond = lat.conditioning_camera_for(cam)
    assert np.linalg.norm(cond.center) == pytest.approx(2.7)
    np.testing.assert_allclose(cond.cam2world[:3, :3], cam.cam2world[:3, :3])


def test_official_interpolation_trajectory_turns():
    cams = lat.official_interpolation_trajectory(1000, 5)
    assert len(cams) == 1000
    # one full turn every 200 frames
    np.testing.assert_allclose(cams[200].center, cams[0].center, atol=1e-9)
    np.testing.assert_allclose(cams[50].center, [0.6, 0, 2.7], atol=1e-9)
