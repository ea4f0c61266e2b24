"""The OpenGL backend's fast paths give the pixels of the full path: no depth target (rgb/alpha modes),
the primitive the cost model picks, no timing barriers; the upload cache copies nothing when the inputs are
unchanged and treats inference tensors as always new; the renderer in use is reported (a GPU run asserts
NVIDIA with ``GGHEAD_REQUIRE_GPU=1``)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

import gghead_core.render._opengl as gl_backend
from gghead_core.camera import CameraSpec
from gghead_core.render._opengl import OpenGLError, OpenGLRasterizer, opengl_info, opengl_renderer
from gghead_core.render._sh import SH_C0
from gghead_core.render._synthetic import synthetic_head

REQUIRE_GPU = os.environ.get("GGHEAD_REQUIRE_GPU") == "1"
RES = 128


def _no_context(reason: str):
    """Skip, or fail under ``GGHEAD_REQUIRE_GPU=1``: a GPU run must not go green without GL ever running."""
    if REQUIRE_GPU:
        pytest.fail(f"GGHEAD_REQUIRE_GPU=1 but {reason}")
    pytest.skip(reason)


_RASTERIZERS: dict[tuple, OpenGLRasterizer] = {}


def _rasterizer(**kwargs) -> OpenGLRasterizer:
    key = tuple(sorted(kwargs.items()))
    if key not in _RASTERIZERS:
        try:
            _RASTERIZERS[key] = OpenGLRasterizer(context="egl", **kwargs)
        except OpenGLError as exc:
            _no_context(f"no OpenGL EGL context with {kwargs} here: {exc}")
    return _RASTERIZERS[key]


@pytest.fixture(scope="module", autouse=True)
def _close_rasterizers():
    yield
    for r in _RASTERIZERS.values():
        r.close()
    _RASTERIZERS.clear()


def _scene(n: int = 2500, seed: int = 4, yaw: float = 20.0, res: int = RES):
    g = synthetic_head(n, seed=seed, log_scale=-4.4, opacity=0.85)
    colors = (SH_C0 * g.sh[0, :, 0] + 0.5).clamp_min(0.0)
    cam = CameraSpec(yaw_deg=yaw, pitch_deg=-6.0).to_camera()
    return (g.means[0], g.quats[0], g.scales[0], g.opacities[0], colors,
            cam.world2cam(), cam.intrinsics_pixels(res), res, res, (1.0, 1.0, 1.0))


@pytest.mark.parametrize("primitive", ["points", "triangles", "quads"])
def test_without_depth_target_the_pixels_are_identical(primitive):
    r = _rasterizer(sort="cpu", primitive=primitive)
    args = _scene()
    rgb, alpha, depth = r.rasterize(*args)
    rgb2, alpha2, depth2 = r.rasterize(*args, with_depth=False)
    assert depth2 is None and depth is not None and float(depth.max()) > 1.0
    # Same fragment math and blend for attachment 0; only the second target is left out.
    assert torch.equal(rgb, rgb2) and torch.equal(alpha, alpha2)
    rgb3, _, _ = gl_backend.rasterize_opengl(*args, rasterizer=r, with_depth=False)
    assert torch.equal(rgb, rgb3)


def test_auto_primitive_follows_the_cost_model():
    """Round splats: sprites (cheapest per Gaussian, the square is only 1.27x the quad). Long thin ones: no
    sprites (the square around a needle costs far more fragments than a triangle or quad saves per
    Gaussian). The picture does not depend on the choice."""
    auto = _rasterizer(sort="cpu", primitive="auto")
    if not auto.is_software:
        pytest.skip("hardware GL always draws quads (no cost model)")
    small = _scene(yaw=0.0, res=96)
    auto.rasterize(*small)
    assert auto.last_stats.primitive == "points"
    big = list(_scene(yaw=0.0, res=256))
    big[2] = big[2] * torch.tensor([2.5, 0.2, 0.2])  # [N, 3] scales: needles, about 12 x 1 px sigma
    rgb, alpha, _ = auto.rasterize(*big)
    assert auto.last_stats.primitive in ("triangles", "quads")
    stats = auto.last_stats
    assert stats.max_point_size <= auto._max_point_size  # sprites would fit: the cost decided
    assert stats.point_pixels > 2.0 * stats.quad_pixels  # why: squares around needles
    chosen = _rasterizer(sort="cpu", primitive=stats.primitive).rasterize(*big)
    assert torch.allclose(rgb, chosen[0], atol=1e-6) and torch.allclose(alpha, chosen[1], atol=1e-6)


def test_split_timings_off_changes_no_pixel():
    args = _scene()
    a = _rasterizer(sort="cpu", split_timings=True)
    b = _rasterizer(sort="cpu", split_timings=False)
    assert a.split_timings and not b.split_timings
    ra, rb = a.rasterize(*args), b.rasterize(*args)
    for x, y in zip(ra, rb):
        assert torch.equal(x, y)
    assert set(b.last_timings_ms) >= {"upload", "sort", "project", "raster", "readback", "total"}


def test_unchanged_inputs_are_not_copied_to_the_host(monkeypatch):
    """The fingerprint is checked before any host copy: a cache hit converts nothing (on CUDA that is no
    device-to-host transfer); new colours for the same head convert only the colours."""
    r = _rasterizer(sort="cpu")
    args = list(_scene(n=800, seed=9))
    r.rasterize(*args)
    converted: list[str] = []
    original = gl_backend._as_f32

    def spy(x, shape_tail, name):
        converted.append(name)
        return original(x, shape_tail, name)

    monkeypatch.setattr(gl_backend, "_as_f32", spy)
    r.rasterize(*args)
    assert converted == []
    args[4] = args[4] * 0.5  # new colours (what render() makes on every call), same geometry
    r.rasterize(*args)
    assert converted == ["colors"]


def test_inference_mode_tensors_render_and_are_never_cached():
    """torch.inference_mode() tensors have no version counter: they render, and are re-uploaded each call
    (an in-place edit could not be noticed)."""
    r = _rasterizer(sort="cpu")
    args = _scene(n=900, seed=11)
    expected = r.rasterize(*args)
    with torch.inference_mode():
        frozen = tuple(t.clone() for t in args[:5])
    assert all(t.is_inference() for t in frozen)
    before = dict(r.upload_counts)
    for _ in range(2):
        out = r.rasterize(*frozen, *args[5:])
        for x, y in zip(out, expected):
            assert torch.equal(x, y)
    assert r.upload_counts["geometry"] == before["geometry"] + 2
    assert r.upload_counts["colors"] == before["colors"] + 2


def test_renderer_is_reported_and_is_nvidia_when_a_gpu_is_required():
    try:
        info = opengl_info()
    except OpenGLError as exc:
        _no_context(f"no OpenGL context here: {exc}")
    assert info.renderer and info.renderer == opengl_renderer() and info.platform
    assert info.platform.split()[0] in ("egl", "glfw")
    ok, reason = gl_backend.opengl_available()  # the child-process probe names renderer and platform too
    assert ok and info.renderer in reason and " via " in reason
    if REQUIRE_GPU:
        assert "NVIDIA" in info.renderer, f"GGHEAD_REQUIRE_GPU=1 but OpenGL renders with {info.renderer} via {info.platform}"
        assert not info.is_software and info.sort_mode == "gpu"
        assert "NVIDIA" in reason, f"the probe (what backend_status reports) found: {reason}"
    else:
        assert info.is_software == any(s in info.renderer.lower() for s in ("llvmpipe", "softpipe", "swrast"))


def test_nonzero_rows_checked_before_upload():
    r = _rasterizer(sort="cpu")
    args = list(_scene(n=300, seed=2))
    args[4] = torch.zeros(299, 3)
    with pytest.raises(ValueError, match="colors has 299 rows but means has 300"):
        r.rasterize(*args)
    args[4] = np.zeros((300, 3), np.float32)  # numpy colours: accepted, always re-uploaded
    rgb, _, _ = r.rasterize(*args)
    assert rgb.shape == (RES, RES, 3)


@pytest.mark.parametrize("primitive", ["points", "triangles", "quads"])
def test_chunked_draw_gives_the_same_pixels(monkeypatch, primitive):
    """Software GL draws in chunks with a flush between them (binning overlaps rasterizing): the order and
    so every pixel is that of one draw."""
    r = _rasterizer(sort="cpu", primitive=primitive)
    if not r.is_software:
        pytest.skip("hardware GL draws in one call")
    args = _scene(n=2500, seed=6)
    monkeypatch.setattr(gl_backend, "_SOFTWARE_DRAW_CHUNK", 1 << 30)
    whole = r.rasterize(*args)
    monkeypatch.setattr(gl_backend, "_SOFTWARE_DRAW_CHUNK", 333)  # 8 chunks, the last one partial
    chunked = r.rasterize(*args)
    for x, y in zip(whole, chunked):
        assert torch.equal(x, y)


def test_hardware_code_path_gives_the_software_pixels(monkeypatch):
    """What an NVIDIA driver runs (GPU sort, quads, no statistics read-back, no glFinish between passes,
    one draw call), forced here on llvmpipe by hiding its name: same picture as the software path."""
    monkeypatch.setattr(gl_backend, "_SOFTWARE_RENDERERS", ())
    try:
        hw = OpenGLRasterizer(context="egl")
    except OpenGLError as exc:
        _no_context(f"no OpenGL EGL context here: {exc}")
    try:
        assert not hw.is_software and not hw._needs_stats and not hw.split_timings
        assert hw.sort_mode == ("gpu" if hw.projected else "cpu")
        args = _scene(n=2000, seed=8)
        out = hw.rasterize(*args)
        assert hw.last_stats.primitive == "quads" and hw.last_stats.visible == 0  # statistics not read
        assert set(hw.last_timings_ms) >= {"sort", "project", "raster", "readback", "total"}
    finally:
        hw.close()
    ref = _rasterizer(sort="cpu", primitive="quads").rasterize(*args)
    for x, y in zip(out, ref):
        assert torch.allclose(x, y, atol=1e-5)


def test_primitive_is_chosen_per_chunk_without_changing_pixels(monkeypatch):
    """Round splats in front, needles behind: software GL draws the front chunks as sprites and the back
    ones as triangles or quads, and the picture equals one drawn with a single primitive."""
    auto = _rasterizer(sort="cpu", primitive="auto")
    if not auto.is_software:
        pytest.skip("hardware GL draws quads in one call")
    args = list(_scene(n=2500, seed=12, yaw=0.0, res=256))
    far = args[0][:, 2] < args[0][:, 2].median()  # [N] behind the middle, seen from the frontal camera
    args[2] = torch.where(far[:, None], args[2] * torch.tensor([2.5, 0.2, 0.2]), args[2])  # [N, 3]
    monkeypatch.setattr(gl_backend, "_SOFTWARE_DRAW_CHUNK", 500)
    rgb, alpha, depth = auto.rasterize(*args)
    chunks = auto.last_stats.chunk_primitives
    assert len(chunks) == 5 and auto.last_stats.primitive == "mixed"
    assert chunks[-1] == "points" and chunks[0] in ("triangles", "quads")  # back to front: needles first
    ref = _rasterizer(sort="cpu", primitive="quads").rasterize(*args)
    for x, y in zip((rgb, alpha, depth), ref):
        assert torch.allclose(x, y, atol=1e-5)
