"""Background generation and rendering for the viewer.

One thread owns the generator. The UI thread *submits* :class:`RenderArgs` snapshots; only the newest pending
request is kept (a request that was not started yet is simply replaced), so the worker never falls behind the
mouse. Gaussians are cached per latent (:class:`~gghead_core.pipeline.LatentSpec`): orbiting, zooming or changing the render options
only re-rasterizes. Finished frames are written into recycled display buffers (see :mod:`app.display`) and
picked up by the UI thread with :meth:`RenderWorker.poll`. Nothing here raises into the UI: failures come back
as one-line messages in the results.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from app.display import BufferPool
from app.state import RenderArgs, TimelinePreview
from gghead_core import TimelineSampler, inspect_view, one_line, selection_indices, texel_mapping
from gghead_core.pipeline import LatentSpec, make_ws


@dataclass(frozen=True)
class ModelInfo:
    """Facts about the loaded generator, for the model panel and capture sidecars."""

    name: str
    path: str | None
    z_dim: int
    w_dim: int
    c_dim: int
    num_ws: int
    num_gaussians: int
    sh_degree: int
    device: str
    device_note: str  # e.g. "no CUDA GPU found, using the CPU"
    load_ms: float


@dataclass
class ModelEvent:
    """Outcome of a load request. On failure the previous model stays loaded (``info`` is then the old one)."""

    path: str | None
    ok: bool
    info: ModelInfo | None
    error: str | None = None


@dataclass
class FrameTimings:
    mapping_ms: float = 0.0
    synthesis_ms: float = 0.0
    raster_ms: float = 0.0
    upload_ms: float = 0.0  # copy of the render into the display buffer
    cached: bool = False  # Gaussians came from the per-latent cache (no mapping/synthesis ran)
    total_ms: float = 0.0


@dataclass
class FrameResult:
    request_id: int
    args: RenderArgs
    buffer: np.ndarray | None  # [R, R, 4] float32; the receiver hands it back with BufferPool.release
    timings: FrameTimings = field(default_factory=FrameTimings)
    backend: str = ""
    backend_reason: str = ""
    num_gaussians: int = 0
    error: str | None = None
    canvas: int = 0  # side of ``buffer``; the image fills its top-left corner (a preview is smaller)
    depth_range: tuple[float, float] | None = None  # near/far depth in world units (mode "depth" only)


def pick_device(device: str | None) -> tuple[str, str]:
    """Resolve ``"auto"``/None to cuda or cpu; returns (device, note shown to the user)."""
    if device in (None, "", "auto"):
        if torch.cuda.is_available():
            return "cuda", f"CUDA GPU: {torch.cuda.get_device_name(0)}"
        return "cpu", "no CUDA GPU found: generating and rendering on the CPU"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        return "cpu", f"{device} requested but no CUDA GPU is available: using the CPU"
    return str(device), ""


def _default_loader(path: str | None, device: str) -> Any:
    from gghead_core import load_generator

    return load_generator(path, device=device)


def _depth_range(depth: torch.Tensor, alpha: torch.Tensor) -> tuple[float, float] | None:
    from gghead_core.render import depth_range  # the renderer's own near/far, so the colour bar matches

    return depth_range(depth, alpha)


def _default_render(gaussians: Any, camera: Any, *args: Any, **kwargs: Any) -> Any:
    from gghead_core.render import render  # late import: the renderer pulls in GL / gsplat lazily

    kwargs.setdefault("with_depth", False)  # the view shows image (depth mode computes its own depth)
    return render(gaussians, camera, *args, **kwargs)


MAX_CACHE_BYTES = 256 * 2**20  # Gaussians kept for orbiting / flipping between recent latents


def _gaussian_bytes(g: Any) -> int:
    total = 0
    for name in ("means", "quats", "scales", "opacities", "sh"):
        t = getattr(g, name, None)
        if isinstance(t, torch.Tensor):
            total += t.numel() * t.element_size()
    return total


class LatentGenerator:
    """Gaussians for a :class:`LatentSpec`, with an LRU cache of Gaussians per latent (keyed by
    :meth:`LatentSpec.key`, so moving seed B while t = 0 does not regenerate).

    ws come from :func:`gghead_core.pipeline.make_ws`, the function every CLI job uses, so a capture replayed
    from its recipe gets the very same Gaussians. Thread-safe: a lock guards the cache; generation itself runs
    outside it (the capture thread may generate concurrently).
    """

    def __init__(self, generator: Any, max_gaussians: int = 6, max_bytes: int = MAX_CACHE_BYTES) -> None:
        self.G = generator
        self._lock = threading.Lock()
        self._gaussians: OrderedDict[LatentSpec, Any] = OrderedDict()
        self._max_gaussians = max_gaussians
        self._max_bytes = max_bytes
        self._sampler: TimelineSampler | None = None  # the Timeline panel's preview (worker thread only)
        self._mapping: Any = None

    @property
    def mapping(self) -> Any:
        """The generator's texel <-> Gaussian mapping (:func:`gghead_core.texel_mapping`), made once."""
        if self._mapping is None:
            self._mapping = texel_mapping(self.G)
        return self._mapping

    def cached(self, latent: LatentSpec) -> Any | None:
        key = latent.key()
        with self._lock:
            g = self._gaussians.get(key)
            if g is not None:
                self._gaussians.move_to_end(key)
            return g

    def _cache_bytes(self) -> int:
        return sum(_gaussian_bytes(g) for g in self._gaussians.values())

    def cache_size(self) -> tuple[int, int]:
        """(entries, bytes) held by the cache (for the benchmark and tests)."""
        with self._lock:
            return len(self._gaussians), self._cache_bytes()

    def gaussians(self, latent: LatentSpec) -> Any:
        """The Gaussians alone (the capture jobs' ``generate_fn``)."""
        return self.gaussians_for(latent)[0]

    def gaussians_for(self, latent: LatentSpec, *, keep: bool = True) -> tuple[Any, FrameTimings]:
        """Gaussians (B=1) for ``latent``; ``timings.cached`` says whether the cache answered.

        ``keep=False`` (Animate: every frame has a new latent that never comes back) leaves the cache alone,
        so an animation does not push the heads the user may return to out of it, nor hold up to
        ``max_gaussians`` released-size heads (about 57 MB each) for nothing.
        """
        g = self.cached(latent)
        if g is not None:
            return g, FrameTimings(cached=True)
        with torch.no_grad():
            t0 = time.perf_counter()
            ws = make_ws(self.G, latent)
            if ws.is_cuda:
                torch.cuda.synchronize()
            mapping_ms = (time.perf_counter() - t0) * 1e3
            t0 = time.perf_counter()
            g = self.G.synthesis(ws, noise_mode=latent.noise_mode)
            if g.means.is_cuda:
                torch.cuda.synchronize()
            synthesis_ms = (time.perf_counter() - t0) * 1e3
        if keep:
            with self._lock:
                self._gaussians[latent.key()] = g
                while len(self._gaussians) > 1 and (len(self._gaussians) > self._max_gaussians
                                                    or self._cache_bytes() > self._max_bytes):
                    self._gaussians.popitem(last=False)
        return g, FrameTimings(mapping_ms=mapping_ms, synthesis_ms=synthesis_ms)

    def timeline_gaussians(self, preview: TimelinePreview) -> tuple[Any, FrameTimings]:
        """The head of a timeline at a time: a key's time goes through :meth:`gaussians_for` (the key's own
        latent, cached: the same pixels as the key's still), any other time through the timeline's sampler
        (the video export's ws). One sampler is kept, for the latest timeline (its keys' ws are made once)."""
        tl, t = preview.timeline, preview.time_s
        seg = tl.segment(t)
        if seg.exact:
            return self.gaussians_for(tl.keyframes[seg.a].latent)
        sampler = self._sampler
        if sampler is None or sampler.timeline != tl:
            sampler = self._sampler = TimelineSampler(self.G, tl)
        t0 = time.perf_counter()
        with torch.no_grad():
            ws = sampler.ws_at(t)
            mapping_ms = (time.perf_counter() - t0) * 1e3
            t0 = time.perf_counter()
            g = self.G.synthesis(ws, noise_mode=tl.noise_mode_at(t))
            if g.means.is_cuda:
                torch.cuda.synchronize()
        return g, FrameTimings(mapping_ms=mapping_ms, synthesis_ms=(time.perf_counter() - t0) * 1e3)


class RenderWorker:
    """The background thread: model loading, generation, rendering. Latest request wins."""

    def __init__(
        self,
        *,
        device: str | None = None,
        loader: Callable[[str | None, str], Any] | None = None,
        render_fn: Callable[..., Any] | None = None,
        pool: BufferPool | None = None,
    ) -> None:
        self.device, self.device_note = pick_device(device)
        self._loader = loader or _default_loader
        self.render_fn = render_fn or _default_render
        self.pool = pool or BufferPool()
        self._cond = threading.Condition()
        self._pending_args: tuple[int, RenderArgs, int, bool] | None = None  # id, args, canvas, keep
        self._pending_load: tuple[str | None] | None = None
        self._result: FrameResult | None = None
        self._model_events: list[ModelEvent] = []
        self._next_id = 0
        self._busy = False
        self._stop = False
        self.latents: LatentGenerator | None = None
        self.model_info: ModelInfo | None = None
        self._thread = threading.Thread(target=self._run, name="gghead-render-worker", daemon=True)
        self._thread.start()

    # ---- UI-thread API -------------------------------------------------------------------------------------

    def submit(self, args: RenderArgs, *, canvas: int | None = None, keep: bool = True) -> int:
        """Queue ``args`` (replacing any request not started yet); returns its request id.

        ``canvas``: side of the display buffer to draw into (default: the render resolution); a progressive
        preview renders smaller and fills the buffer's top-left corner, so the display keeps one texture.
        ``keep=False``: do not cache these Gaussians (see :meth:`LatentGenerator.gaussians_for`).
        """
        res = int(args.settings.resolution)
        canvas = res if canvas is None else max(res, int(canvas))
        with self._cond:
            self._next_id += 1
            self._pending_args = (self._next_id, args.snapshot(), canvas, bool(keep))
            self._cond.notify()
            return self._next_id

    def load_model(self, path: str | os.PathLike | None) -> None:
        """Load a checkpoint in the background (None: the bundled demo model); see :meth:`poll_model_event`."""
        with self._cond:
            self._pending_load = (None if path is None else str(path),)
            self._cond.notify()

    def poll(self) -> FrameResult | None:
        """The newest finished frame not yet taken (older ones were dropped and their buffers recycled)."""
        with self._cond:
            res, self._result = self._result, None
            return res

    def poll_model_event(self) -> ModelEvent | None:
        with self._cond:
            return self._model_events.pop(0) if self._model_events else None

    @property
    def has_model_event(self) -> bool:
        return bool(self._model_events)

    @property
    def has_result(self) -> bool:
        """A finished frame (or error) waits in :meth:`poll` (cheap: for the frame loop's idle check)."""
        return self._result is not None

    @property
    def idle(self) -> bool:
        """No request pending or running (results may still wait in :meth:`poll`)."""
        with self._cond:
            return not self._busy and self._pending_args is None and self._pending_load is None

    @property
    def last_request_id(self) -> int:
        with self._cond:
            return self._next_id

    def close(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join(timeout)

    # ---- worker thread -------------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stop and self._pending_args is None and self._pending_load is None:
                    self._cond.wait()
                if self._stop:
                    return
                load, self._pending_load = self._pending_load, None
                job = None
                if load is None:
                    job, self._pending_args = self._pending_args, None
                self._busy = True
            try:
                if load is not None:
                    self._do_load(load[0])
                elif job is not None:
                    self._do_render(*job)
            finally:
                with self._cond:
                    self._busy = False

    def _do_load(self, path: str | None) -> None:
        t0 = time.perf_counter()
        try:
            G = self._loader(path, self.device)
        except Exception as exc:  # a broken file must never take the viewer down
            event = ModelEvent(path=path, ok=False, info=self.model_info, error=one_line(exc, with_type=True))
        else:
            ckpt = getattr(G, "checkpoint_path", None) or path
            info = ModelInfo(
                name=Path(ckpt).name if ckpt else "demo model",
                path=str(ckpt) if ckpt else None,
                z_dim=int(G.z_dim),
                w_dim=int(G.w_dim),
                c_dim=int(G.c_dim),
                num_ws=int(G.num_ws),
                num_gaussians=int(G.num_gaussians),
                sh_degree=int(G.sh_degree),
                device=str(getattr(G, "device", self.device)),
                device_note=self.device_note,
                load_ms=(time.perf_counter() - t0) * 1e3,
            )
            self.latents = LatentGenerator(G)
            self.model_info = info
            event = ModelEvent(path=path, ok=True, info=info)
        with self._cond:
            self._model_events.append(event)  # the viewer re-submits its arguments when it sees this

    def _do_render(self, request_id: int, args: RenderArgs, canvas: int = 0, keep: bool = True) -> None:
        gen = self.latents
        if gen is None:
            self._post(FrameResult(request_id, args, None, error="no model loaded"))
            return
        t_start = time.perf_counter()
        buffer = None
        try:
            if args.timeline is not None:
                gaussians, timings = gen.timeline_gaussians(args.timeline)
            else:
                gaussians, timings = gen.gaussians_for(args.latent, keep=keep)
            if args.inspect is not None and args.inspect.changes_view:
                # The UV inspector's debug view, applied to the Gaussians so every backend shows it.
                gaussians = inspect_view(gaussians, selection_indices(args.inspect, gen.mapping), args.inspect)
            t0 = time.perf_counter()
            res = self.render_fn(gaussians, args.camera.to_camera(), **args.settings.render_kwargs())
            image = res.image[0]  # [R, R, 3] float in [0, 1] (not clamped above)
            if image.is_cuda:
                torch.cuda.synchronize()
            timings.raster_ms = (time.perf_counter() - t0) * 1e3
            t0 = time.perf_counter()
            h, w = int(image.shape[0]), int(image.shape[1])
            side = max(h, w, int(canvas))
            buffer = self.pool.acquire(side) if h == w else np.ones((h, w, 4), np.float32)
            # One copy straight into the display buffer (device -> host included): no per-frame allocation.
            torch.from_numpy(buffer)[:h, :w, :3].copy_(image.detach())
            if buffer.shape[0] > h:  # a preview: repeat its last row/column so the upscaled edge does not
                buffer[h, : w + 1] = buffer[h - 1, : w + 1]  # blend in stale pixels from an older frame
            if buffer.shape[1] > w:
                buffer[:h, w] = buffer[:h, w - 1]
            depth_range = None
            if args.settings.mode == "depth" and getattr(res, "depth", None) is not None:
                depth_range = _depth_range(res.depth[0], res.alpha[0])
            timings.upload_ms = (time.perf_counter() - t0) * 1e3
            timings.total_ms = (time.perf_counter() - t_start) * 1e3
            self._post(
                FrameResult(
                    request_id,
                    args,
                    buffer,
                    timings=timings,
                    backend=str(getattr(res, "backend", "")),
                    backend_reason=str(getattr(res, "backend_reason", "")),
                    num_gaussians=int(gaussians.num_gaussians),
                    canvas=int(buffer.shape[0]),
                    depth_range=depth_range,
                )
            )
        except Exception as exc:
            self.pool.release(buffer)
            self._post(FrameResult(request_id, args, None, error=one_line(exc, with_type=True)))

    def _post(self, result: FrameResult) -> None:
        with self._cond:
            old, self._result = self._result, result
        if old is not None:  # never shown: recycle its buffer
            self.pool.release(old.buffer)
