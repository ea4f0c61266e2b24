"""Depth sorting for the OpenGL backend: the compute-shader bitonic sort and the numpy sort give the same
order (ascending depth, ties by index), for sizes that exercise the padding and every sort stage."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from gghead_core.camera import CameraSpec
from gghead_core.render._opengl import OpenGLError, OpenGLRasterizer, cpu_depth_order


def _sortable(depth: np.ndarray) -> np.ndarray:
    bits = depth.astype(np.float32).view(np.uint32)
    return np.where(bits & np.uint32(0x80000000), ~bits, bits | np.uint32(0x80000000))


def _scene(n: int, seed: int = 0):
    """``n`` Gaussians with many exact depth ties (repeated means) and some behind the camera."""
    rng = np.random.default_rng(seed)
    means = rng.normal(0.0, 0.5, size=(n, 3)).astype(np.float32)
    if n > 10:
        means[rng.integers(0, n, n // 5)] = means[rng.integers(0, n, n // 5)]  # duplicates -> equal depths
        means[: n // 20, 2] = 3.5  # behind a camera at z = 2.7 looking at -z (negative depth)
    quats = np.tile(np.array([1.0, 0.0, 0.0, 0.0], np.float32), (n, 1))
    scales = np.full((n, 3), 0.01, np.float32)
    return [torch.from_numpy(a) for a in (means, quats, scales, np.full(n, 0.5, np.float32),
                                          np.full((n, 3), 0.5, np.float32))]


def test_cpu_order_is_a_stable_argsort():
    rng = np.random.default_rng(1)
    means = rng.normal(size=(5000, 3)).astype(np.float32)
    means[::7] = means[3]  # many exact ties
    means[::11, 2] = -4.0  # negative depths sort first
    viewmat = CameraSpec(yaw_deg=30, pitch_deg=10).to_camera().world2cam()
    row = viewmat[2].astype(np.float32)
    depth = means @ row[:3] + row[3]
    assert np.array_equal(cpu_depth_order(means, viewmat), np.argsort(depth, kind="stable"))


def _no_context(reason: str):
    """Skip, or fail under ``GGHEAD_REQUIRE_GPU=1``: a GPU run must not go green without GL ever running."""
    if os.environ.get("GGHEAD_REQUIRE_GPU") == "1":
        pytest.fail(f"GGHEAD_REQUIRE_GPU=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def gpu_rasterizer():
    try:
        r = OpenGLRasterizer(context="egl", sort="gpu")
    except OpenGLError as exc:
        _no_context(f"no OpenGL 4.3 (compute shader) context here: {exc}")
    yield r
    r.close()


@pytest.mark.parametrize("n", [1, 3, 1024, 1025, 5000])
def test_gpu_sort_matches_cpu_sort(gpu_rasterizer, n):
    scene = _scene(n, seed=n)
    gpu_rasterizer.set_gaussians(*scene)
    viewmat = CameraSpec(yaw_deg=20, pitch_deg=-15).to_camera().world2cam()
    gpu_order, gpu_keys = gpu_rasterizer.sorted_order(viewmat, "gpu")
    # Same keys -> exactly the order of a stable CPU sort (the bitonic network breaks ties by index).
    assert np.array_equal(gpu_order, np.argsort(gpu_keys, kind="stable"))
    assert sorted(gpu_order.tolist()) == list(range(n))
    # The GPU's depths are the CPU's up to float rounding of one dot product.
    row = viewmat[2].astype(np.float32)
    depth = scene[0].numpy() @ row[:3] + row[3]
    gpu_depth_from_keys = np.where(gpu_keys & np.uint32(0x80000000), gpu_keys & np.uint32(0x7FFFFFFF), ~gpu_keys)
    assert np.allclose(gpu_depth_from_keys.view(np.float32), depth, rtol=1e-6, atol=1e-6)
    # And both paths put the Gaussians in the same depth order (identical wherever depths are not within
    # rounding of each other; exact ties come out in index order on both).
    cpu_order, _ = gpu_rasterizer.sorted_order(viewmat, "cpu")
    assert np.array_equal(cpu_order, cpu_depth_order(scene[0].numpy(), viewmat))
    if np.array_equal(_sortable(depth), gpu_keys):
        assert np.array_equal(cpu_order, gpu_order)
    else:
        assert np.all(np.diff(depth[gpu_order].astype(np.float64)) >= -1e-6)


def test_gpu_and_cpu_sorted_renders_agree(gpu_rasterizer):
    """The whole frame with the GPU sort equals the frame with the CPU sort."""
    try:
        cpu = OpenGLRasterizer(context="egl", sort="cpu")
    except OpenGLError as exc:
        _no_context(f"no OpenGL context here: {exc}")
    try:
        g = _scene(2000, seed=5)
        g[2] = torch.full((2000, 3), 0.03)
        cam = CameraSpec(yaw_deg=10).to_camera()
        args = (*g, cam.world2cam(), cam.intrinsics_pixels(96), 96, 96, (1.0, 1.0, 1.0))
        a = gpu_rasterizer.rasterize(*args)
        b = cpu.rasterize(*args)
        for x, y in zip(a, b):
            assert torch.allclose(x, y, atol=1e-5)
    finally:
        cpu.close()
