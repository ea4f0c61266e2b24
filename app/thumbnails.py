"""Seed-browser thumbnails: a low-priority background thread that renders pages of seeds.

Why a second thread and not the render worker's queue: the worker keeps only the newest request (the main
view must never fall behind the mouse), while a page is 16 heads that must all be made eventually. So the
thumbnail thread runs beside it and *yields*: before each head it waits until the render worker is idle, so
a slider drag or an orbit always gets the CPU/GPU first and thumbnails fill the gaps.

A thumbnail is made exactly as ``main.py render`` makes a still (:func:`gghead_core.pipeline.generate`, one
head per call, then :func:`gghead_core.pipeline.render_views`), so it equals ``render`` of that seed at that
size pixel for pixel (tested). Heads are generated one at a time because batched matmuls round differently.

Requesting a page replaces the previous one: work not started for the old page is dropped (counted in
:attr:`ThumbnailWorker.cancelled`). Finished thumbnails go into an LRU cache keyed by the complete
description of the image (:class:`ThumbKey`: the seed's latent, the camera and the render settings), so a
page seen before comes back without rendering.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from gghead_core import one_line
from gghead_core.pipeline import CameraSpec, LatentSpec, RenderSettings, generate, render_views

THUMB_SIZE = 128  # a multiple of 16 (the renderer's requirement)
PAGE_ROWS = PAGE_COLS = 4
PAGE_SIZE = PAGE_ROWS * PAGE_COLS
MAX_CACHED = 256  # 16 pages; 128 px RGB thumbnails are 48 KiB each


@dataclass(frozen=True)
class ThumbKey:
    """Everything a thumbnail depends on (besides the model, whose change clears the cache)."""

    latent: LatentSpec  # the seed's own latent: the template with seed = that seed and no interpolation
    camera: CameraSpec
    settings: RenderSettings

    @property
    def seed(self) -> int:
        return self.latent.seed


def thumb_key(seed: int, template: LatentSpec, camera: CameraSpec, settings: RenderSettings,
              size: int = THUMB_SIZE) -> ThumbKey:
    """The key of ``seed``'s thumbnail under the current psi/cutoff/noise/mixing/edits, camera and look."""
    latent = replace(template, seed=int(seed), seed_b=None, t=0.0, space="w")
    return ThumbKey(latent=latent, camera=camera, settings=replace(settings, resolution=int(size)))


@dataclass(frozen=True)
class Thumbnail:
    key: ThumbKey
    image: np.ndarray | None  # [S, S, 3|4] uint8; None when it failed
    error: str | None = None


class ThumbnailWorker:
    """Renders requested pages of thumbnails in the background, at low priority (see the module docstring).

    ``busy()`` says whether the main render worker has work (then this thread waits); ``render_fn`` is the
    main worker's renderer (same backend choice as the view).
    """

    def __init__(self, busy: Callable[[], bool], render_fn: Callable[..., Any] | None = None,
                 max_cached: int = MAX_CACHED, poll_s: float = 0.02) -> None:
        self._busy = busy
        self._render_fn = render_fn
        self._poll_s = poll_s
        self._cond = threading.Condition()
        self._G: Any = None
        self._queue: list[ThumbKey] = []
        self._page = 0
        self._results: list[Thumbnail] = []
        self._cache: OrderedDict[ThumbKey, np.ndarray] = OrderedDict()
        self._max_cached = max_cached
        self._stop = False
        self._working: ThumbKey | None = None
        self.rendered = 0  # thumbnails made (not from the cache)
        self.cancelled = 0  # queued thumbnails dropped because the page changed
        self._thread = threading.Thread(target=self._run, name="gghead-thumbnails", daemon=True)
        self._thread.start()

    # ---- UI-thread API -------------------------------------------------------------------------------------

    def set_generator(self, G: Any) -> None:
        """A new model: cached thumbnails and queued work belong to the old one."""
        with self._cond:
            if G is self._G:
                return
            self._G = G
            self.cancelled += len(self._queue)
            self._queue.clear()
            self._cache.clear()
            self._page += 1

    def request(self, keys: Sequence[ThumbKey]) -> list[Thumbnail]:
        """Show ``keys`` (a page): returns the cached ones now; the others arrive through :meth:`poll`.

        Replaces the previous request: its queued (not started) thumbnails are dropped.
        """
        cached: list[Thumbnail] = []
        with self._cond:
            self._page += 1
            self.cancelled += len(self._queue)
            self._queue = []
            self._results = []
            for k in keys:
                img = self._cache.get(k)
                if img is not None:
                    self._cache.move_to_end(k)
                    cached.append(Thumbnail(k, img))
                else:
                    self._queue.append(k)
            self._cond.notify()
        return cached

    def poll(self) -> list[Thumbnail]:
        """Thumbnails of the current page finished since the last call."""
        with self._cond:
            out, self._results = self._results, []
            return out

    @property
    def pending(self) -> int:
        """Thumbnails of the current page not finished yet (queued or being made)."""
        with self._cond:
            return len(self._queue) + (self._working is not None)

    @property
    def making(self) -> bool:
        """A thumbnail is being made right now (it finishes even if the main worker became busy meanwhile)."""
        with self._cond:
            return self._working is not None

    def cached(self, key: ThumbKey) -> np.ndarray | None:
        with self._cond:
            return self._cache.get(key)

    def close(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._stop = True
            self._queue.clear()
            self._cond.notify()
        self._thread.join(timeout)

    # ---- thread --------------------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stop and (not self._queue or self._G is None):
                    self._cond.wait()
                if self._stop:
                    return
            if self._busy():  # the main view wins: wait until the render worker is idle
                time.sleep(self._poll_s)
                continue
            with self._cond:
                if not self._queue or self._G is None:
                    continue
                key, page, G = self._queue.pop(0), self._page, self._G
                self._working = key
            try:
                image, error = self.make(G, key), None
            except Exception as exc:  # a thumbnail failure is shown in its cell, never raised
                image, error = None, one_line(exc, with_type=True)
            with self._cond:
                self._working = None
                if image is not None and G is self._G:
                    self._cache[key] = image
                    while len(self._cache) > self._max_cached:
                        self._cache.popitem(last=False)
                    self.rendered += 1
                if page == self._page:
                    self._results.append(Thumbnail(key, image, error))

    def make(self, G: Any, key: ThumbKey) -> np.ndarray:
        """One thumbnail ``[S, S, 3|4]`` uint8, made as the CLI's ``render`` makes a still."""
        g = generate(G, key.latent)
        frame = next(iter(render_views(g, [key.camera.to_camera()], key.settings, self._render_fn)))
        return frame.image
