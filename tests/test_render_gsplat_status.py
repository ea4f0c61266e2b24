"""gsplat availability: decided fast, reported with a reason, and no build junk on machines without CUDA."""

from __future__ import annotations

import sys
import time

import pytest
import torch

from gghead_core.render import _gsplat


@pytest.fixture(scope="module", autouse=True)
def _isolated_extension_dir(tmp_path_factory):
    # On a CUDA machine the first status check may JIT-build gsplat's kernels: keep that out of ~/.cache.
    import os

    if "TORCH_EXTENSIONS_DIR" not in os.environ:
        os.environ["TORCH_EXTENSIONS_DIR"] = str(tmp_path_factory.mktemp("torch_extensions"))
    yield


def test_status_is_cached_and_explains_itself():
    first = _gsplat.gsplat_status()
    assert isinstance(first[0], bool) and first[1]
    assert _gsplat.gsplat_status() is first  # cached: the CUDA probe (or build) runs at most once


def test_gpu_run_requires_gsplat():
    from gpu_required import REQUIRE_GPU

    if not REQUIRE_GPU:
        pytest.skip("only on the GPU run (GGHEAD_REQUIRE_GPU=1): gsplat must be available there")
    ok, reason = _gsplat.gsplat_status()
    assert ok, f"GGHEAD_REQUIRE_GPU=1 but gsplat is unavailable: {reason}"
    assert "cuda:" in reason  # names the device it ran on


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA path; this machine has CUDA")
def test_no_cuda_is_unavailable_at_once_without_touching_the_extension(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "ext"))
    monkeypatch.setattr(_gsplat, "_STATUS", None)
    t0 = time.perf_counter()
    ok, reason = _gsplat.gsplat_status()
    elapsed = time.perf_counter() - t0
    assert not ok and "no CUDA GPU" in reason
    assert elapsed < 0.5
    # gsplat's kernel module would start a JIT build on import; it must not have been imported, and nothing
    # may have been written to the extensions folder.
    assert "gsplat.cuda._backend" not in sys.modules
    assert not (tmp_path / "ext").exists()
