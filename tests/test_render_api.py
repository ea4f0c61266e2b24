"""render(): modes, backgrounds, batches, backend choice and argument checks (torch backend, small images)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import gghead_core.render as render_mod
from gghead_core.camera import CameraSpec, frontal_camera
from gghead_core.gaussians import Gaussians
from gghead_core.render import RenderResult, available_backends, render, resolve_backend
from gghead_core.render._sh import SH_C0
from gghead_core.render._synthetic import synthetic_head

RES = 48


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    # These scenes are tiny: a second intra-op thread buys nothing, and on a busy machine every parallel op
    # waits for a descheduled worker (measured 5-10x slower with 2 threads under load). Restored afterwards.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def heads() -> Gaussians:
    # Two small heads; log-scale -4 keeps the splats a few pixels wide at 48 px so coverage is realistic.
    return synthetic_head(3000, batch=2, log_scale=-4.0, seed=1)


def _single(mean=(0.0, 0.0, 0.0), scale=0.01, opacity=0.8, rgb=(0.9, 0.3, 0.1), sh_degree=0) -> Gaussians:
    k = (sh_degree + 1) ** 2
    sh = torch.zeros(1, 1, k, 3)
    sh[0, 0, 0] = (torch.tensor(rgb) - 0.5) / SH_C0
    return Gaussians(
        means=torch.tensor([[mean]], dtype=torch.float32),
        quats=torch.tensor([[[1.0, 0.0, 0.0, 0.0]]]),
        scales=torch.full((1, 1, 3), scale),
        opacities=torch.tensor([[opacity]]),
        sh=sh,
    )


def test_rgb_result_shapes_and_metadata(heads):
    res = render(heads, frontal_camera(), RES, backend="torch")
    assert isinstance(res, RenderResult)
    assert res.image.shape == (2, RES, RES, 3) and res.alpha.shape == res.depth.shape == (2, RES, RES)
    assert res.image.dtype == torch.float32 and 0 <= res.image.min() and res.image.max() <= 1
    assert res.backend == "torch" and "torch requested" in res.backend_reason
    assert res.mode == "rgb" and res.background == "white"
    assert {"sh", "rasterize", "post", "total"} <= set(res.timings_ms)
    assert res.timings_ms["total"] >= res.timings_ms["rasterize"] > 0
    # A head in the middle of a white frame: covered centre, empty corners.
    assert res.alpha[:, RES // 2, RES // 2].min() > 0.9
    torch.testing.assert_close(res.image[:, 0, 0], torch.ones(2, 3))
    assert res.alpha[:, 0, 0].max() == 0


def test_non_square_resolution_and_orbit_camera(heads):
    res = render(heads[0], CameraSpec(yaw_deg=40, pitch_deg=10), (40, 24), backend="torch")
    assert res.image.shape == (1, 24, 40, 3)
    # Focal length scales with the width: the same picture as the middle rows of a 40x40 render. (Not bit-equal:
    # the 16-pixel tile grid is shifted by 8 rows, which moves the 3-sigma cut-off of a few splats' tails.)
    square = render(heads[0], CameraSpec(yaw_deg=40, pitch_deg=10), 40, backend="torch")
    torch.testing.assert_close(res.alpha[0], square.alpha[0, 8:32], atol=2e-3, rtol=0)
    assert res.alpha[0].sum() > 50


def test_batch_equals_heads_rendered_one_by_one(heads):
    both = render(heads, frontal_camera(), RES, backend="torch")
    for b in range(2):
        one = render(heads[b], frontal_camera(), RES, backend="torch")
        torch.testing.assert_close(both.image[b], one.image[0])
        torch.testing.assert_close(both.depth[b], one.depth[0])
    assert (both.image[0] - both.image[1]).abs().max() > 0.05  # two different heads


def test_single_gaussian_centre_pixel_through_render():
    # Odd resolution: the origin projects exactly onto the centre pixel; colour = opacity blend over white.
    res = render(_single(opacity=0.8, rgb=(0.9, 0.3, 0.1)), frontal_camera(), 33, backend="torch")
    want = 0.8 * torch.tensor([0.9, 0.3, 0.1]) + 0.2
    torch.testing.assert_close(res.image[0, 16, 16], want, atol=1e-6, rtol=0)
    assert res.depth[0, 16, 16].item() == pytest.approx(2.7, abs=1e-5)  # expected depth = depth / alpha
    assert res.depth[0, 0, 0].item() == 0.0


def test_backgrounds_black_rgb_and_transparent(heads):
    cam = frontal_camera()
    white = render(heads, cam, RES, backend="torch")
    black = render(heads, cam, RES, backend="torch", background="black")
    grey = render(heads, cam, RES, backend="torch", background=(0.25, 0.5, 0.75))
    transparent = render(heads, cam, RES, backend="torch", background="transparent")
    one_minus = (1 - white.alpha)[..., None]
    # Pixels are C + T * bg; compare before the display clamp (colours here stay below 1).
    torch.testing.assert_close(white.image - black.image, one_minus.expand_as(white.image), atol=1e-5, rtol=0)
    torch.testing.assert_close(grey.image - black.image, one_minus * torch.tensor([0.25, 0.5, 0.75]), atol=1e-5,
                               rtol=0)
    assert grey.background == (0.25, 0.5, 0.75) and transparent.background == "transparent"
    assert transparent.transparent and not white.transparent
    torch.testing.assert_close(transparent.image, black.image)  # rendered over black

    rgba = transparent.rgba()
    assert rgba.shape == (2, RES, RES, 4)
    torch.testing.assert_close(rgba[..., 3], transparent.alpha.clamp(0, 1))
    covered = transparent.alpha > 0.05
    # Un-premultiplied: colour * alpha gives back the composite over black.
    torch.testing.assert_close((rgba[..., :3] * rgba[..., 3:])[covered], transparent.image[covered], atol=1e-5,
                               rtol=0)
    assert rgba[..., :3][~(transparent.alpha > 0)].abs().max() == 0  # empty pixels are (0, 0, 0, 0)
    # rgba() of an opaque-background render is the same picture (premultiplied colour does not depend on bg).
    torch.testing.assert_close(white.rgba(), rgba, atol=1e-5, rtol=0)
    assert render(heads, cam, RES, backend="torch", background=" White ").background == "white"
    assert render(heads, cam, RES, backend="torch", background="0.1,0.2,0.3").background == pytest.approx(
        (0.1, 0.2, 0.3)
    )


def test_alpha_and_depth_modes(heads):
    cam = frontal_camera()
    rgb = render(heads, cam, RES, backend="torch")
    alpha = render(heads, cam, RES, backend="torch", mode="alpha")
    torch.testing.assert_close(alpha.image, rgb.alpha[..., None].expand(2, RES, RES, 3).clamp(0, 1))
    assert alpha.rgba()[..., 3].min() == 1  # the mask is the picture

    depth = render(heads, cam, RES, backend="torch", mode="depth", background="black")
    torch.testing.assert_close(depth.depth, rgb.depth)
    covered = rgb.alpha > 0.5
    d = rgb.depth[covered]
    assert 2.2 < d.min() and d.max() < 3.0  # the head is ~0.5 units deep around z = 0, camera at 2.7
    # Colour-mapped: near is red, far is blue; empty pixels show the background.
    img = depth.image[0]
    near = torch.nonzero((rgb.depth[0] == rgb.depth[0][covered[0]].min()) & covered[0])[0]
    far = torch.nonzero((rgb.depth[0] == rgb.depth[0][covered[0]].max()) & covered[0])[0]
    near_px, far_px = img[near[0], near[1]] / rgb.alpha[0, near[0], near[1]], img[far[0], far[1]]
    assert near_px[0] > near_px[2] and far_px[2] > far_px[0]
    assert depth.image[:, 0, 0].abs().max() == 0


def test_sh_reference_frontal_vs_view():
    g = synthetic_head(2000, sh_degree=1, log_scale=-4.0, seed=3)
    g.sh[:, :, 1:, :] *= 20  # strong view dependence
    front = frontal_camera()
    a = render(g, front, 32, backend="torch", sh_ref="frontal")
    b = render(g, front, 32, backend="torch", sh_ref="view")
    torch.testing.assert_close(a.image, b.image)  # same reference point for the frontal camera
    side = CameraSpec(yaw_deg=60)
    c = render(g, side, 32, backend="torch", sh_ref="frontal")
    d = render(g, side, 32, backend="torch", sh_ref="view")
    torch.testing.assert_close(c.alpha, d.alpha)  # geometry is the same
    assert (c.image - d.image).abs().max() > 0.05  # colours differ


def test_scale_modifier_grows_coverage(heads):
    small = render(heads[0], frontal_camera(), RES, backend="torch", scale_modifier=0.5)
    big = render(heads[0], frontal_camera(), RES, backend="torch", scale_modifier=2.0)
    assert big.alpha.sum() > small.alpha.sum() * 1.05


def test_fixture_head_renders_where_its_gaussians_project(fixture_ckpt, golden):
    # The official fixture's rasterizer inputs (recorded from the official code). Its random weights push the
    # head off-centre (+0.2 in x), which makes a handy orientation check: world +x is image right, and the
    # coverage sits where the Gaussian centres project.
    p = "seed0_psi0.7"
    g = Gaussians(
        means=torch.from_numpy(golden[f"{p}_get_xyz"])[None],
        quats=torch.from_numpy(golden[f"{p}_get_rotation"])[None],
        scales=torch.from_numpy(golden[f"{p}_get_scaling"])[None],
        opacities=torch.from_numpy(golden[f"{p}_get_opacity"])[None, :, 0],
        sh=torch.from_numpy(golden[f"{p}_get_features"])[None],
    )
    cam = frontal_camera()
    res = render(g, cam, 64, backend="torch")
    w = res.alpha[0]
    assert w.sum() > 64 * 64 * 0.05
    ys, xs = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    cy, cx = float((w * ys).sum() / w.sum()), float((w * xs).sum() / w.sum())
    assert cx > 31.5 + 5  # mean x is +0.2: right half of the image

    viewmat, K = torch.tensor(cam.world2cam()).float(), torch.tensor(cam.intrinsics_pixels(64)).float()
    p_cam = g.means[0] @ viewmat[:3, :3].T + viewmat[:3, 3]
    px = K[0, 0] * p_cam[:, 0] / p_cam[:, 2] + K[0, 2] - 0.5
    py = K[1, 1] * p_cam[:, 1] / p_cam[:, 2] + K[1, 2] - 0.5
    on = (px > 0) & (px < 63) & (py > 0) & (py < 63)
    assert abs(cx - float(px[on].mean())) < 4 and abs(cy - float(py[on].mean())) < 4


# ----------------------------------------------------------------------------------------------------------
# Backend choice


def test_torch_backend_always_available_and_resolution_reasons():
    assert "torch" in available_backends()
    assert resolve_backend("torch")[0] == "torch"
    name, reason = resolve_backend("auto")
    assert name in available_backends() and reason.startswith("auto:")
    if not torch.cuda.is_available():
        assert "gsplat" not in available_backends()
        name, reason = resolve_backend("gsplat")
        assert name != "gsplat" and "gsplat requested but unavailable" in reason and "CUDA" in reason
        assert "gsplat unavailable" in resolve_backend("auto")[1]


def test_failing_fast_backend_falls_back_to_torch(monkeypatch):
    # Pretend OpenGL is available but breaks during the render: the picture still comes (from torch), the
    # reason says what happened, and the backend is remembered as failed.
    monkeypatch.setattr(render_mod, "_STATUS", {"gsplat": (False, "no"), "opengl": (True, "fake GL")})
    real = render_mod._rasterizer

    def fake(name):
        if name == "opengl":
            def broken(*args, **kwargs):
                raise RuntimeError("context lost")
            return broken
        return real(name)

    monkeypatch.setattr(render_mod, "_rasterizer", fake)
    res = render(_single(), frontal_camera(), 17, backend="auto")
    assert res.backend == "torch"
    assert "opengl failed while rendering (RuntimeError: context lost)" in res.backend_reason
    assert res.alpha[0, 8, 8] > 0.5
    assert render_mod.backend_status("opengl")[0] is False
    assert resolve_backend("auto")[0] == "torch"


# ----------------------------------------------------------------------------------------------------------
# Bad input: one clear line each


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(backend="vulkan"), "unknown backend 'vulkan'"),
        (dict(mode="normals"), "unknown mode 'normals'"),
        (dict(sh_ref="side"), "unknown sh_ref 'side'"),
        (dict(background="purple"), "unknown background 'purple'"),
        (dict(background=(1.0, 0.5)), "three numbers in \\[0, 1\\]"),
        (dict(background=(1.5, 0.0, 0.0)), "three numbers in \\[0, 1\\]"),
        (dict(background=(math.nan, 0.0, 0.0)), "three numbers in \\[0, 1\\]"),
        (dict(background="1,x,0"), "unknown background '1,x,0'"),
        (dict(background=None), "unknown background None"),
        (dict(resolution=0), "between 1 and"),
        (dict(resolution=-5), "between 1 and"),
        (dict(resolution=100_000), "between 1 and"),
        (dict(resolution=64.0), "positive int or \\(width, height\\)"),
        (dict(resolution=(64, 32, 3)), "positive int or \\(width, height\\)"),
        (dict(resolution=True), "positive int or \\(width, height\\)"),
        (dict(scale_modifier=0.0), "scale_modifier must be a positive number"),
        (dict(scale_modifier=float("inf")), "scale_modifier must be a positive number"),
    ],
)
def test_bad_arguments_raise_one_line_value_errors(kwargs, message):
    args = dict(resolution=16)
    args.update(kwargs)
    resolution = args.pop("resolution")
    with pytest.raises(ValueError, match=message) as info:
        render(_single(), frontal_camera(), resolution, **args)
    assert "\n" not in str(info.value)


def test_bad_objects_raise_value_errors():
    with pytest.raises(ValueError, match="needs a Gaussians batch"):
        render({"means": np.zeros((1, 3))}, frontal_camera(), 16)
    with pytest.raises(ValueError, match="needs a Camera"):
        render(_single(), "front", 16)
    with pytest.raises(ValueError, match="unknown backend"):
        resolve_backend("cuda")
