"""``GGHEAD_REQUIRE_GPU=1``: turn "the GPU path could not run" skips into failures.

On a CPU machine the CUDA tests skip (with their reason). On the GPU run (bench/gpu_check.py sets the flag) a
skip would let the run go green although gsplat or NVIDIA OpenGL never ran (preflight #4), so there the same
condition fails the test instead.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REQUIRE_GPU = os.environ.get("GGHEAD_REQUIRE_GPU", "") not in ("", "0")


def skip_or_fail(reason: str, *, allow_module_level: bool = False) -> None:
    """Skip with ``reason`` normally; fail with it when ``GGHEAD_REQUIRE_GPU=1``."""
    if REQUIRE_GPU:
        pytest.fail(f"GGHEAD_REQUIRE_GPU=1 but: {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=allow_module_level)


def fixture_dir(default: Path) -> Path:
    """The official fixture folder: ``GGHEAD_FIXTURE_DIR`` (the GPU run carries a copy) or the default."""
    env = os.environ.get("GGHEAD_FIXTURE_DIR")
    return Path(env) if env else default
