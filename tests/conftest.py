"""Shared test helpers: where the official fixture lives, and a switch for slow tests."""

from __future__ import annotations

import os
from pathlib import Path

# libgomp's default busy-waiting makes 2-thread torch 5-20x slower when other processes share the cores
# (measured on CI-like machines); must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
import torch  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"
FIXTURE_DIR = SHARED_DIR / "fixtures" / "gghead_official_small"
FIXTURE_CKPT = FIXTURE_DIR / "checkpoint.pkl"
FIXTURE_GOLDEN = FIXTURE_DIR / "golden.npz"

# Tests run on 2 cores; keep torch from oversubscribing when pytest itself is busy.
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def fixture_ckpt() -> Path:
    """Path of the official-format fixture checkpoint; skips when ../shared is absent (a user's clone)."""
    if not FIXTURE_CKPT.is_file():
        pytest.skip(f"official fixture not present at {FIXTURE_CKPT} (only developers' checkouts have ../shared)")
    return FIXTURE_CKPT


@pytest.fixture(scope="session")
def golden():
    if not FIXTURE_GOLDEN.is_file():
        pytest.skip(f"golden outputs not present at {FIXTURE_GOLDEN} (only developers' checkouts have ../shared)")
    import numpy as np

    return dict(np.load(FIXTURE_GOLDEN))
