"""Performance panel: UI and displayed fps, per-stage milliseconds, Gaussian count, GPU facts.

"displayed fps" counts new frames that reached the screen (what the user perceives while orbiting); "UI fps"
counts DearPyGui frames (responsiveness). Stage times are the last frame's; mapping/synthesis show "cached" when
the Gaussians came from the per-latent cache.
"""

from __future__ import annotations

import time
from collections import deque

import dearpygui.dearpygui as dpg
import torch

from app.widgets import Widget

REFRESH_S = 0.25


def gpu_summary() -> str:
    if not torch.cuda.is_available():
        return "GPU: none (CPU only)"
    try:
        free, total = torch.cuda.mem_get_info()
        used_by_us = torch.cuda.memory_allocated() / 2**20
        return (
            f"GPU: {torch.cuda.get_device_name(0)}\n"
            f"memory: {used_by_us:.0f} MiB allocated, {(total - free) / 2**20:.0f} / {total / 2**20:.0f} MiB used"
        )
    except RuntimeError as exc:  # driver trouble must not break the panel
        return f"GPU: {exc}"


class RateMeter:
    """Events per second over a sliding window of timestamps."""

    def __init__(self, window_s: float = 2.0) -> None:
        self.window_s = window_s
        self._times: deque[float] = deque()

    def tick(self, now: float | None = None) -> None:
        self._times.append(time.perf_counter() if now is None else now)

    def rate(self, now: float | None = None) -> float:
        now = time.perf_counter() if now is None else now
        while self._times and now - self._times[0] > self.window_s:
            self._times.popleft()
        if len(self._times) < 2:
            return 0.0
        span = self._times[-1] - self._times[0]
        return (len(self._times) - 1) / span if span > 0 else 0.0


class PerfWidget(Widget):
    name = "perf"
    title = "Performance"

    def __init__(self, viewer) -> None:  # noqa: ANN001
        super().__init__(viewer)
        self.ui_rate = RateMeter()
        self.display_rate = RateMeter()
        self.last = None  # app.worker.FrameResult of the last displayed frame
        self._next_refresh = 0.0
        self._gpu_text = gpu_summary()

    def frame_shown(self, result) -> None:  # noqa: ANN001
        self.display_rate.tick()
        self.last = result

    def update(self, dt: float) -> None:
        now = time.perf_counter()
        self.ui_rate.tick(now)
        if now < self._next_refresh or not dpg.does_item_exist(self.tag("fps")):
            return
        self._next_refresh = now + REFRESH_S
        dpg.set_value(self.tag("fps"), f"displayed {self.display_rate.rate(now):5.1f} fps   UI {self.ui_rate.rate(now):5.1f} fps")
        r = self.last
        if r is not None:
            t = r.timings
            gen = "cached" if t.cached else f"{t.mapping_ms:.1f} / {t.synthesis_ms:.1f} ms"
            dpg.set_value(
                self.tag("stages"),
                f"mapping / synthesis: {gen}\nraster: {t.raster_ms:.1f} ms   upload: {t.upload_ms:.2f} ms\n"
                f"Gaussians: {r.num_gaussians:,}   {r.args.settings.resolution}x{r.args.settings.resolution}",
            )
        if torch.cuda.is_available():
            self._gpu_text = gpu_summary()
        dpg.set_value(self.tag("gpu"), self._gpu_text)

    def build(self) -> None:
        dpg.add_text("", tag=self.tag("fps"))
        dpg.add_text("", tag=self.tag("stages"), color=(150, 150, 150))
        dpg.add_text(self._gpu_text, tag=self.tag("gpu"), color=(150, 150, 150))
