"""The seed browser's thumbnail thread (no display needed): a thumbnail equals ``main.py render`` of that seed at
that size, the main view always wins (nothing is made while the render worker is busy), a page change cancels
the old page's queued work, and a page seen before comes from the cache."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from app.thumbnails import ThumbnailWorker, thumb_key
from gghead_core import cli
from gghead_core.camera import CameraSpec
from gghead_core.pipeline import LatentEdit, LatentSpec, RenderSettings

DEMO = Path(__file__).resolve().parents[1] / "checkpoints" / "demo.safetensors"
SIZE = 32  # tiny thumbnails: these tests are about scheduling, and about equality at any size


@pytest.fixture(scope="module")
def G():
    if not DEMO.is_file():
        pytest.skip("checkpoints/demo.safetensors is not present")
    from gghead_core import load_generator

    return load_generator(DEMO)


@pytest.fixture()
def worker(G):
    busy = threading.Event()
    w = ThumbnailWorker(busy=busy.is_set, poll_s=0.005)
    w.set_generator(G)
    w.busy_flag = busy  # the test plays the main render worker
    yield w
    w.close()


def collect(w: ThumbnailWorker, n: int, timeout: float = 120.0) -> list:
    out: list = []
    deadline = time.time() + timeout
    while len(out) < n and time.time() < deadline:
        out += w.poll()
        time.sleep(0.01)
    return out


TEMPLATE = LatentSpec(seed=0, seed_b=9, t=0.4, psi=0.6)
CAMERA = CameraSpec(yaw_deg=15.0)
SETTINGS = RenderSettings(resolution=512, backend="torch")


def test_thumbnail_equals_cli_render_of_that_seed(G, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    from PIL import Image

    template = LatentSpec(seed=0, psi=0.6, edits=(LatentEdit("pc1", 1.5, 0, 6),))
    key = thumb_key(7, template, CAMERA, SETTINGS, size=64)
    assert key.latent == LatentSpec(seed=7, psi=0.6, edits=template.edits) and key.settings.resolution == 64
    thumb = ThumbnailWorker(busy=lambda: False).make(G, key)
    out = tmp_path / "seed7.png"
    code = cli.main(["--ckpt", str(DEMO), "-q", "render", "--seed", "7", "--psi", "0.6", "--edit", "pc1=1.5@0-5",
                     "--yaw", "15", "--resolution", "64", "--backend", "torch", "--out", str(out)])
    assert code == 0
    assert np.array_equal(thumb, np.asarray(Image.open(out)))


def test_interpolation_is_left_out_of_thumbnails():
    key = thumb_key(3, TEMPLATE, CAMERA, SETTINGS, SIZE)
    assert key.latent.seed == 3 and key.latent.seed_b is None and key.latent.t == 0.0 and key.latent.psi == 0.6


def test_main_view_wins_and_paging_cancels_stale_work(worker):
    w = worker
    page_a = [thumb_key(s, TEMPLATE, CAMERA, SETTINGS, SIZE) for s in range(0, 4)]
    page_b = [thumb_key(s, TEMPLATE, CAMERA, SETTINGS, SIZE) for s in range(4, 8)]
    w.busy_flag.set()  # the render worker is busy: nothing may be made
    assert w.request(page_a) == []
    time.sleep(0.3)
    assert w.rendered == 0 and w.pending == 4
    assert w.request(page_b) == []  # page change: page A's queued work is dropped
    assert w.cancelled == 4 and w.pending == 4
    w.busy_flag.clear()
    got = collect(w, 4)
    assert sorted(t.key.seed for t in got) == [4, 5, 6, 7] and all(t.image.shape == (SIZE, SIZE, 3) for t in got)
    assert w.rendered == 4  # nothing of page A was made
    # Back to A: made now; then B again comes entirely from the cache, without rendering.
    w.request(page_a)
    assert sorted(t.key.seed for t in collect(w, 4)) == [0, 1, 2, 3]
    before = w.rendered
    cached = w.request(page_b)
    assert sorted(t.key.seed for t in cached) == [4, 5, 6, 7] and w.pending == 0
    time.sleep(0.1)
    assert w.rendered == before and w.poll() == []
    # A different look (camera) is a different thumbnail: not served from the cache.
    moved = [thumb_key(s, TEMPLATE, CameraSpec(yaw_deg=-15.0), SETTINGS, SIZE) for s in range(4, 8)]
    assert w.request(moved) == [] and w.pending == 4


def test_busy_main_worker_pauses_a_page_in_progress(worker):
    w = worker
    keys = [thumb_key(s, TEMPLATE, CAMERA, SETTINGS, SIZE) for s in range(20, 28)]
    w.request(keys)
    first = collect(w, 1)
    w.busy_flag.set()
    deadline = time.time() + 60
    while w.making and time.time() < deadline:  # the thumbnail in progress may finish; no new one starts
        time.sleep(0.01)
    made = w.rendered
    time.sleep(0.5)
    assert w.rendered == made and w.pending > 0
    w.busy_flag.clear()
    rest = collect(w, len(keys) - len(first))
    assert len(first) + len(rest) == len(keys)


def test_model_change_clears_the_cache(worker, G):
    w = worker
    keys = [thumb_key(s, TEMPLATE, CAMERA, SETTINGS, SIZE) for s in range(40, 42)]
    w.request(keys)
    collect(w, 2)
    assert w.cached(keys[0]) is not None
    w.set_generator(None)
    assert w.cached(keys[0]) is None
    w.set_generator(G)
