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


# ---- the one viewer window of a test session (GUI tests) ------------------------------------------------------
# DearPyGui must not be re-created in one process (see tests/test_gui_viewer.py), so every GUI test module
# shares this viewer. test_gui_viewer.py's last test closes it; modules that use it are named so that they
# run before that one (test_gui_<a..u>*.py). Each test leaves the state as it found it.

GUI_RES = 256


@pytest.fixture(scope="session")
def gui_viewer(tmp_path_factory):
    if not os.environ.get("DISPLAY"):
        pytest.skip('GUI tests need an X display; run under xvfb-run -a -s "-screen 0 1920x1080x24"')
    demo = REPO_ROOT / "checkpoints" / "demo.safetensors"
    if demo.is_file():
        ckpt = None
    elif FIXTURE_CKPT.is_file():
        ckpt = str(FIXTURE_CKPT)
    else:
        pytest.skip("neither checkpoints/demo.safetensors nor the ../shared fixture is present")
    from app.viewer import Viewer

    tmp = tmp_path_factory.mktemp("gui")
    old = os.environ.get("XDG_CONFIG_HOME")
    os.environ["XDG_CONFIG_HOME"] = str(tmp / "config")
    v = Viewer(ckpt, resolution=GUI_RES, output_dir=tmp / "captures", width=1200, height=800)
    v.start()
    try:
        assert v.wait(120), f"viewer did not settle: {v.status} {v.model.error}"
        yield v
    finally:
        v.close()
        if old is None:
            os.environ.pop("XDG_CONFIG_HOME", None)
        else:
            os.environ["XDG_CONFIG_HOME"] = old
