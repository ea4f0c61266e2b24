"""Progressive rendering: a cheaper preview while something moves, the chosen resolution once it stops.

While the user drags (orbit, pan, zoom, any slider) or Animate runs, the viewer asks the worker for frames at a
lower internal resolution (shown upscaled in the same view), chosen so that one frame fits a time budget;
``SETTLE_S`` after the last change it asks for the chosen resolution again. The choice comes from frame times
measured on this machine (an exponential average per resolution), so a machine that renders the chosen
resolution within the budget never drops it. Captures never see any of this: they are built from the
viewer's state, and the state always holds the chosen resolution.

Why a fixed ladder of sizes rather than any size: each size the worker renders is one more buffer shape, and
measured times per size are only useful when the same sizes come back. Every size is a multiple of 16 (the
vocabulary's rule for resolutions).
"""

from __future__ import annotations

from dataclasses import dataclass, field

PREVIEW_LADDER: tuple[int, ...] = (192, 256, 384, 512, 768)  # 192: orbiting >= 10 fps with OpenGL on 2 CPU cores
SETTLE_S = 0.2  # no change for this long: refine to the chosen resolution
DEFAULT_BUDGET_MS = 70.0  # one preview frame; ~14 frames per second leave the UI thread room on 2 cores
EMA_WEIGHT = 0.3  # weight of the newest measurement in the running average


@dataclass
class ProgressivePolicy:
    """Chooses the resolution to render at; fed with measured frame times (see :meth:`observe`)."""

    enabled: bool = True
    budget_ms: float = DEFAULT_BUDGET_MS
    settle_s: float = SETTLE_S
    raster_ms: dict[int, float] = field(default_factory=dict)  # resolution -> average raster + copy time
    generate_ms: float | None = None  # average mapping + synthesis time of frames that were not cached

    def observe(self, resolution: int, raster_ms: float, generate_ms: float | None) -> None:
        """Record one finished frame: its size, rasterization + copy time, and generation time (None: cached)."""
        if raster_ms >= 0:
            old = self.raster_ms.get(resolution)
            self.raster_ms[resolution] = raster_ms if old is None else old + EMA_WEIGHT * (raster_ms - old)
        if generate_ms is not None and generate_ms >= 0:
            old_g = self.generate_ms
            self.generate_ms = generate_ms if old_g is None else old_g + EMA_WEIGHT * (generate_ms - old_g)

    def estimate_ms(self, resolution: int) -> float | None:
        """Raster time at ``resolution``: measured, else scaled by area from the nearest measured size."""
        if resolution in self.raster_ms:
            return self.raster_ms[resolution]
        if not self.raster_ms:
            return None
        nearest = min(self.raster_ms, key=lambda r: abs(r - resolution))
        return self.raster_ms[nearest] * (resolution / nearest) ** 2

    def levels(self, target: int) -> list[int]:
        """The sizes a preview may use for ``target``: the ladder below it, then the target itself."""
        return [r for r in PREVIEW_LADDER if r < target] + [target]

    def preview_resolution(self, target: int, *, regenerating: bool) -> int:
        """The largest size whose estimated frame time (plus generation when the latent changes) fits the
        budget; the smallest size when none fits; ``target`` when disabled or nothing was measured yet."""
        if not self.enabled:
            return target
        levels = self.levels(target)
        gen = (self.generate_ms or 0.0) if regenerating else 0.0
        best = None
        for r in levels:
            est = self.estimate_ms(r)
            if est is None:
                return target  # nothing measured yet: the first frame tells us
            if gen + est <= self.budget_ms:
                best = r
        return best if best is not None else levels[0]
