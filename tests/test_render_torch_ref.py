"""The pure-PyTorch reference rasterizer against analytic cases and a literal per-pixel re-implementation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gghead_core.camera import frontal_camera
from gghead_core.render._torch_ref import quat_to_rotmat, rasterize_torch

BG = torch.tensor([0.2, 0.5, 0.9])


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    # These scenes are tiny: a second intra-op thread buys nothing, and on a busy machine every parallel op
    # waits for a descheduled worker (measured 5-10x slower with 2 threads under load). Restored afterwards.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _camera(width: int, height: int | None = None):
    cam = frontal_camera()
    height = width if height is None else height
    return torch.tensor(cam.world2cam()), torch.tensor(cam.intrinsics_pixels(width, height))


def _one(mean, scale, opacity, color=(1.0, 0.0, 0.0), quat=(1.0, 0.0, 0.0, 0.0)):
    """Tensors for a list of Gaussians given as parallel lists (or one Gaussian given as scalars)."""
    means = torch.tensor(mean, dtype=torch.float32).reshape(-1, 3)
    n = len(means)
    scales = torch.as_tensor(scale, dtype=torch.float32).reshape(-1, 3 if np.size(scale) >= 3 else 1).expand(n, 3)
    quats = torch.tensor(quat, dtype=torch.float32).reshape(-1, 4).expand(n, 4)
    opac = torch.as_tensor(opacity, dtype=torch.float32).reshape(-1).expand(n)
    cols = torch.tensor(color, dtype=torch.float32).reshape(-1, 3).expand(n, 3)
    return means.contiguous(), quats.contiguous(), scales.contiguous(), opac.contiguous(), cols.contiguous()


def _render(gs, width=33, height=None, bg=BG, **kw):
    height = width if height is None else height
    viewmat, K = _camera(width, height)
    return rasterize_torch(*gs, viewmat, K, width, height, bg, **kw)


# ----------------------------------------------------------------------------------------------------------
# A literal, per-pixel transcription of the 3DGS forward pass (float64 numpy, loops): slow but obviously
# the spec. The fast wavefront implementation must agree with it.


def _literal_3dgs(means, quats, scales, opacities, colors, viewmat, K, width, height, bg):
    means, quats, scales, opacities, colors, viewmat, K, bg = (
        np.asarray(t, dtype=np.float64) for t in (means, quats, scales, opacities, colors, viewmat, K, bg)
    )
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    tanx, tany = width / (2 * fx), height / (2 * fy)
    splats = []
    for i in range(len(means)):
        p = viewmat[:3, :3] @ means[i] + viewmat[:3, 3]
        if p[2] <= 0.2:
            continue
        w, x, y, z = quats[i] / np.linalg.norm(quats[i])
        rot = np.array(
            [
                [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
            ]
        )
        cov3 = rot @ np.diag(scales[i] ** 2) @ rot.T
        tz = p[2]
        tx = np.clip(p[0] / tz, -1.3 * tanx, 1.3 * tanx) * tz
        ty = np.clip(p[1] / tz, -1.3 * tany, 1.3 * tany) * tz
        jac = np.array([[fx / tz, 0, -fx * tx / tz**2], [0, fy / tz, -fy * ty / tz**2]])
        cov2 = jac @ viewmat[:3, :3] @ cov3 @ viewmat[:3, :3].T @ jac.T + 0.3 * np.eye(2)
        det = np.linalg.det(cov2)
        mid = 0.5 * (cov2[0, 0] + cov2[1, 1])
        radius = math.ceil(3 * math.sqrt(mid + math.sqrt(max(0.1, mid * mid - det))))
        mx, my = fx * p[0] / tz + cx - 0.5, fy * p[1] / tz + cy - 0.5
        gw, gh = math.ceil(width / 16), math.ceil(height / 16)
        rect = (
            min(gw, max(0, math.floor((mx - radius) / 16))),
            min(gh, max(0, math.floor((my - radius) / 16))),
            min(gw, max(0, math.floor((mx + radius + 15) / 16))),
            min(gh, max(0, math.floor((my + radius + 15) / 16))),
        )
        if (rect[2] - rect[0]) * (rect[3] - rect[1]) == 0:
            continue
        splats.append((tz, i, (mx, my), np.linalg.inv(cov2), rect))
    splats.sort(key=lambda s: (s[0], s[1]))

    rgb = np.zeros((height, width, 3))
    alpha_out = np.zeros((height, width))
    depth = np.zeros((height, width))
    for py in range(height):
        for px in range(width):
            t, c, d = 1.0, np.zeros(3), 0.0
            for tz, i, (mx, my), conic, rect in splats:
                if not (rect[0] <= px // 16 < rect[2] and rect[1] <= py // 16 < rect[3]):
                    continue
                dv = np.array([mx - px, my - py])
                power = -0.5 * dv @ conic @ dv
                if power > 0:
                    continue
                a = min(0.99, opacities[i] * math.exp(power))
                if a < 1 / 255:
                    continue
                if t * (1 - a) < 1e-4:
                    break
                c += colors[i] * a * t
                d += tz * a * t
                t *= 1 - a
            rgb[py, px] = c + t * bg
            alpha_out[py, px] = 1 - t
            depth[py, px] = d
    return rgb, alpha_out, depth


def _random_scene(seed: int, n: int):
    g = torch.Generator().manual_seed(seed)
    means = (torch.rand(n, 3, generator=g) * 2 - 1) * torch.tensor([0.12, 0.09, 0.3])
    means[: n // 10, 2] = 2.55  # a few right at / in front of the near plane (camera at z = 2.7)
    quats = torch.randn(n, 4, generator=g)
    scales = torch.exp(torch.rand(n, 3, generator=g) * 3 - 6.5)
    opac = torch.rand(n, generator=g) * 1.1 - 0.05  # includes GGHead-style < 0 and > 1 values
    cols = torch.rand(n, 3, generator=g) * 1.2
    return means, quats, scales, opac, cols


@pytest.mark.parametrize("seed,width,height", [(0, 40, 28), (1, 35, 35), (2, 18, 50)])
def test_matches_literal_per_pixel_3dgs(seed, width, height):
    gs = _random_scene(seed, 60)
    viewmat, K = _camera(width, height)
    want_rgb, want_alpha, want_depth = _literal_3dgs(*gs, viewmat, K, width, height, BG)
    # Small chunks and bands exercise the transmittance carry between chunks and the row-band split.
    for kw in ({}, dict(chunk_size=3, block_elems=2000, max_pairs=20)):
        rgb, alpha, depth = rasterize_torch(*gs, viewmat, K, width, height, BG, **kw)
        assert rgb.shape == (height, width, 3) and alpha.shape == depth.shape == (height, width)
        np.testing.assert_allclose(rgb.numpy(), want_rgb, atol=2e-5)
        np.testing.assert_allclose(alpha.numpy(), want_alpha, atol=2e-5)
        np.testing.assert_allclose(depth.numpy(), want_depth, atol=1e-4)
    assert (want_alpha > 0.5).sum() > 20, "scene should cover part of the image"


def test_single_gaussian_centre_pixel_is_opacity_blend():
    # Odd size: the projected centre of a Gaussian on the optical axis is exactly pixel (16, 16).
    for opacity in (0.3, 0.75, 0.98):
        color = (0.9, 0.4, 0.1)
        rgb, alpha, depth = _render(_one([0.0, 0.0, 0.0], 0.01, opacity, color))
        want = opacity * torch.tensor(color) + (1 - opacity) * BG
        torch.testing.assert_close(rgb[16, 16], want, atol=1e-6, rtol=0)
        assert alpha[16, 16].item() == pytest.approx(opacity, abs=1e-6)
        assert depth[16, 16].item() == pytest.approx(opacity * 2.7, abs=1e-5)
        # Falls off away from the centre, symmetric left/right and up/down for an isotropic Gaussian.
        assert alpha[16, 19] < alpha[16, 17] < alpha[16, 16]
        torch.testing.assert_close(alpha[16, 13], alpha[16, 19])
        torch.testing.assert_close(alpha[13, 16], alpha[19, 16])


def test_centre_pixel_convention_half_pixel_shift():
    # Even width: the optical axis lands between pixels 15 and 16 (3DGS's ((ndc+1)W-1)/2), so both are equal.
    _, alpha, _ = _render(_one([0.0, 0.0, 0.0], 0.01, 0.8), width=32)
    assert alpha[15, 15].item() == pytest.approx(alpha[16, 16].item(), abs=1e-7)
    assert alpha[15, 16].item() == pytest.approx(alpha[16, 15].item(), abs=1e-7)
    assert alpha[15, 15] < 0.8


def test_alpha_is_capped_at_099_and_negative_opacity_is_skipped():
    rgb, alpha, _ = _render(_one([0.0, 0.0, 0.0], 0.01, 1.001, (0.0, 1.0, 0.0)))
    assert alpha[16, 16].item() == pytest.approx(0.99, abs=1e-6)
    torch.testing.assert_close(rgb[16, 16], 0.99 * torch.tensor([0.0, 1.0, 0.0]) + 0.01 * BG, atol=1e-6, rtol=0)
    rgb, alpha, _ = _render(_one([0.0, 0.0, 0.0], 0.01, -0.001))
    assert alpha.abs().max().item() == 0.0
    torch.testing.assert_close(rgb, BG.expand(33, 33, 3))


def test_faint_gaussian_below_1_over_255_is_skipped():
    rgb, alpha, _ = _render(_one([0.0, 0.0, 0.0], 0.01, 0.9 / 255))
    assert alpha.max().item() == 0.0
    torch.testing.assert_close(rgb, BG.expand(33, 33, 3))
    _, alpha, _ = _render(_one([0.0, 0.0, 0.0], 0.01, 1.1 / 255))
    assert alpha[16, 16].item() == pytest.approx(1.1 / 255, rel=1e-5)


def test_transmittance_stop_is_exclusive_and_final():
    # Three near-opaque layers: after two, T = 0.015^2 = 2.25e-4; the third would take T below 1e-4, so the
    # pixel stops *before* it, and a faint fourth layer (which alone would pass the test) is never reached.
    colors = [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (5.0, 5.0, 5.0)]
    means = [(0.0, 0.0, 0.3), (0.0, 0.0, 0.2), (0.0, 0.0, 0.1), (0.0, 0.0, 0.0)]
    gs = _one(means, 0.01, [0.985, 0.985, 0.985, 0.3], colors)
    t1 = 1 - 0.985
    want = 0.985 * torch.tensor(colors[0]) + t1 * 0.985 * torch.tensor(colors[1]) + t1 * t1 * BG
    for chunk in (1, 2, 3, 32):
        rgb, alpha, depth = _render(gs, chunk_size=chunk, block_elems=256 * chunk)  # exactly `chunk` per step
        torch.testing.assert_close(rgb[16, 16], want, atol=1e-6, rtol=0)
        assert 1 - alpha[16, 16].item() == pytest.approx(t1 * t1, abs=1e-6)
        assert depth[16, 16].item() == pytest.approx(0.985 * 2.4 + t1 * 0.985 * 2.5, abs=1e-5)


def test_near_plane_cull():
    # Camera at z = 2.7 looking down -z: a Gaussian at world z = 2.51 has depth 0.19 (culled), 2.49 -> 0.21.
    _, alpha, _ = _render(_one([0.0, 0.0, 2.51], 0.0005, 0.9))
    assert alpha.max().item() == 0.0
    _, alpha, _ = _render(_one([0.0, 0.0, 2.49], 0.0005, 0.9))
    assert alpha[16, 16].item() == pytest.approx(0.9, abs=1e-6)
    _, alpha, _ = _render(_one([0.0, 0.0, 3.0], 0.01, 0.9))  # behind the camera
    assert alpha.max().item() == 0.0


def test_empty_scene_and_offscreen_gaussians_give_background():
    empty = _one(np.zeros((0, 3)), 0.01, [])
    rgb, alpha, depth = _render(empty, width=20, height=12)
    torch.testing.assert_close(rgb, BG.expand(12, 20, 3))
    assert alpha.abs().max().item() == 0 and depth.abs().max().item() == 0
    rgb, alpha, _ = _render(_one([5.0, 0.0, 0.0], 0.01, 0.9), width=20, height=12)
    assert alpha.abs().max().item() == 0


def _quat_mul(q1, q2):
    w1, x1, y1, z1 = q1.unbind(-1)
    w2, x2, y2, z2 = q2.unbind(-1)
    return torch.stack(
        [
            w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
            w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
            w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
            w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
        ],
        dim=-1,
    )


def test_rotation_and_scale_symmetries():
    # Isotropic Gaussians: the rotation does not matter.
    base = _one([[0.01, -0.02, 0.0], [-0.03, 0.01, 0.05]], 0.012, [0.6, 0.9], [(1, 0, 0), (0, 0, 1)])
    rng = torch.Generator().manual_seed(3)
    rotated = list(base)
    rotated[1] = torch.randn(2, 4, generator=rng)
    torch.testing.assert_close(_render(base)[0], _render(tuple(rotated))[0], atol=1e-5, rtol=0)

    # Swapping the x/y scales == rotating 90 degrees about z.
    q90 = torch.tensor([math.cos(math.pi / 4), 0.0, 0.0, math.sin(math.pi / 4)])
    a = _one([0.0, 0.0, 0.0], [0.02, 0.005, 0.01], 0.3)
    b = _one([0.0, 0.0, 0.0], [0.005, 0.02, 0.01], 0.3, quat=tuple(q90.tolist()))
    torch.testing.assert_close(_render(a)[0], _render(b)[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(quat_to_rotmat(q90[None])[0] @ torch.tensor([1.0, 0, 0]), torch.tensor([0.0, 1, 0]))

    # Rotating the whole scene 180 degrees about the optical axis flips the (odd, centred) image both ways.
    # Opacities <= 0.3 keep every Gaussian below 1/255 outside its 3-sigma box, so the 16-pixel tile snapping
    # (not symmetric) cannot matter.
    g = torch.Generator().manual_seed(5)
    n = 25
    means = (torch.rand(n, 3, generator=g) - 0.5) * torch.tensor([0.15, 0.15, 0.2])
    quats = torch.randn(n, 4, generator=g)
    scales = torch.exp(torch.rand(n, 3, generator=g) * 2 - 6)
    opac = torch.rand(n, generator=g) * 0.3
    cols = torch.rand(n, 3, generator=g)
    rz = torch.tensor([[-1.0, 0, 0], [0, -1.0, 0], [0, 0, 1.0]])
    qz = torch.tensor([0.0, 0.0, 0.0, 1.0]).expand(n, 4)
    img = _render((means, quats, scales, opac, cols), width=37)[0]
    img_rot = _render((means @ rz.T, _quat_mul(qz, quats), scales, opac, cols), width=37)[0]
    torch.testing.assert_close(img_rot, img.flip(0).flip(1), atol=2e-5, rtol=0)
    assert (img - BG).abs().max() > 0.1


def test_background_only_where_empty_and_results_independent_of_chunking():
    gs = _random_scene(7, 200)
    ref = _render(gs, width=48, height=40)
    for kw in (dict(chunk_size=1, block_elems=256), dict(chunk_size=7, block_elems=300), dict(max_pairs=1)):
        for got, want in zip(_render(gs, width=48, height=40, **kw), ref, strict=True):
            torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    black = _render(gs, width=48, height=40, bg=torch.zeros(3))
    # rgb = C + T * bg: switching the background changes pixels by exactly (1 - alpha) * delta_bg.
    torch.testing.assert_close(ref[0] - black[0], (1 - ref[1])[..., None] * BG, atol=1e-6, rtol=0)
