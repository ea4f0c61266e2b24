"""render()'s per-frame bookkeeping: the sync-free depth colour map, the colour cache, cached small tensors,
batched rasterization and the CUDA-fault rule. CPU only (the CUDA side is in test_render_gsplat_cuda.py)."""

from __future__ import annotations

import gc

import pytest
import torch

import gghead_core.render as render_module
from gghead_core.camera import CameraSpec, frontal_camera
from gghead_core.render import render
from gghead_core.render._colormap import depth_to_color, rainbow
from gghead_core.render._synthetic import synthetic_head


def _old_depth_to_color(depth, alpha):
    """The previous per-image version (boolean indexing, host reads): the reference for the new one."""
    covered = alpha > 0.5
    if not bool(covered.any()):
        covered = alpha > 0
    if not bool(covered.any()):
        return rainbow(torch.zeros_like(depth))
    d = depth[covered]
    near, far = float(d.min()), float(d.max())
    return rainbow((far - depth) / max(far - near, 1e-6))


def test_batched_depth_colormap_matches_per_image_reference():
    torch.manual_seed(0)
    depth = torch.rand(4, 16, 16) * 3 + 1
    alpha = torch.rand(4, 16, 16)
    alpha[1] = alpha[1].clamp(max=0.4)  # no pixel above 0.5: falls back to every covered pixel
    alpha[2] = 0.0  # nothing covered
    alpha[3, :8] = 0.0
    fast = depth_to_color(depth, alpha)
    assert fast.shape == (4, 16, 16, 3)
    for b in range(4):
        torch.testing.assert_close(fast[b], _old_depth_to_color(depth[b], alpha[b]), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(depth_to_color(depth[0], alpha[0]), fast[0])  # [H, W] still works


def test_colour_cache_hits_for_the_same_head_and_misses_after_changes():
    g = synthetic_head(2000, seed=1)
    cam = frontal_camera()
    calls = []
    real = render_module.sh_to_colors

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    render_module._COLORS.clear()
    orig = render_module.sh_to_colors
    render_module.sh_to_colors = counting
    try:
        a = render(g, cam, 32, backend="torch")
        b = render(g, CameraSpec(yaw_deg=30).to_camera(), 32, backend="torch")  # frontal SH: same colours
        assert len(calls) == 1
        render(g, CameraSpec(yaw_deg=30).to_camera(), 32, backend="torch", sh_ref="view")
        assert len(calls) == 2  # another reference centre
        g.sh.mul_(0.5)  # in-place change: the version counter makes the cache miss
        c = render(g, cam, 32, backend="torch")
        assert len(calls) == 3 and not torch.equal(a.image, c.image)
        with torch.inference_mode():
            gi = synthetic_head(2000, seed=1)
        render(gi, cam, 32, backend="torch")
        render(gi, cam, 32, backend="torch")
        assert len(calls) == 5  # inference tensors cannot be versioned: never cached
    finally:
        render_module.sh_to_colors = orig
    assert b.image.shape == (1, 32, 32, 3)
    del g, gi
    gc.collect()
    assert all(entry[0]() is None for entry in render_module._COLORS)  # weak references: no head kept alive


def test_batch_render_equals_per_head_render():
    g = synthetic_head(3000, batch=3, seed=2)
    cam = CameraSpec(yaw_deg=-20).to_camera()
    for mode in ("rgb", "depth"):
        batched = render(g, cam, 40, backend="torch", mode=mode)
        for b in range(3):
            single = render(g[b], cam, 40, backend="torch", mode=mode)
            torch.testing.assert_close(batched.image[b], single.image[0], atol=1e-6, rtol=1e-6)


def test_small_tensors_are_cached_on_devices_and_fresh_on_cpu():
    a = render_module._small_tensor((1.0, 2.0, 3.0), torch.device("cpu"))
    b = render_module._small_tensor((1.0, 2.0, 3.0), torch.device("cpu"))
    assert torch.equal(a, b) and a is not b  # CPU: plain new tensors, nothing shared


def test_cuda_fault_detection():
    assert render_module._is_cuda_fault(RuntimeError("CUDA error: an illegal memory access was encountered"))
    assert render_module._is_cuda_fault(RuntimeError("CUDA error: device-side assert triggered"))
    assert not render_module._is_cuda_fault(RuntimeError("gsplat kernels missing"))
    assert not render_module._is_cuda_fault(ImportError("No module named 'gsplat'"))


def test_cpu_backend_failure_still_falls_back(monkeypatch):
    # On the CPU a failing fast backend falls back to torch, even with a CUDA-looking message: the fault rule
    # only applies to Gaussians on a CUDA device.
    g = synthetic_head(1000)

    def broken(*args, **kwargs):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(render_module, "resolve_backend", lambda name: ("opengl", "test"))
    monkeypatch.setattr(render_module, "_rasterizer", lambda name: broken if name == "opengl" else
                        __import__("gghead_core.render._torch_ref", fromlist=["x"]).rasterize_torch)
    monkeypatch.setattr(render_module, "_mark_failed", lambda name, reason: None)
    res = render(g, frontal_camera(), 24, backend="opengl")
    assert res.backend == "torch" and "failed while rendering" in res.backend_reason


def test_gpu_timings_on_cpu_are_the_host_timings():
    res = render(synthetic_head(500), frontal_camera(), 16, backend="torch")
    gpu = res.gpu_timings_ms()
    assert set(gpu) == {"sh", "rasterize", "post", "total"}
    assert gpu["total"] == res.timings_ms["total"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: device-side cache of small tensors")
def test_small_tensors_are_shared_on_cuda():
    dev = torch.device("cuda")
    a = render_module._small_tensor((1.0, 2.0), dev)
    assert a is render_module._small_tensor((1.0, 2.0), dev) and a.is_cuda
