"""The one object the widgets write and the render worker reads.

The viewer's state *is* the pipeline vocabulary: :class:`RenderArgs` holds a
:class:`~gghead_core.pipeline.LatentSpec`, a :class:`~gghead_core.camera.CameraSpec` and a
:class:`~gghead_core.pipeline.RenderSettings`, the same values the CLI builds and recipes store, so a capture
records exactly what produced the frame on screen. Each widget replaces its part (the parts are frozen, so a
snapshot handed to the worker can never change under it); "did anything change?" is a dataclass comparison.
This module adds only what belongs to the UI: the ranges the controls offer and a forgiving clamp.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from gghead_core import InspectSpec, Timeline
from gghead_core.pipeline import CameraSpec, LatentSpec, RenderSettings

RESOLUTIONS: tuple[int, ...] = (256, 512, 1024)

# Ranges the controls offer (narrower than what the vocabulary accepts, which also serves the CLI).
MIN_RADIUS, MAX_RADIUS = 0.5, 20.0
MIN_FOV_DEG, MAX_FOV_DEG = 2.0, 90.0
MIN_SCALE_MODIFIER, MAX_SCALE_MODIFIER = 0.05, 4.0
MIN_PSI, MAX_PSI = -1.0, 2.0
MAX_PAN = 2.0  # look-at offset limit in world units (the head is about 0.7 units tall)

DEFAULT_LATENT = LatentSpec(seed=0, seed_b=1)
DEFAULT_SETTINGS = RenderSettings(resolution=512, background=(1.0, 1.0, 1.0))


def clamp(value: float, lo: float, hi: float, default: float) -> float:
    """``value`` clamped to ``[lo, hi]``; NaN, None and junk become ``default``.

    Sliders can be typed into (ctrl+click) and keyboard input can be anything, so every widget funnels its
    values through here instead of trusting the control's range.
    """
    try:
        v = float(value)
    except (TypeError, ValueError):
        return default
    if math.isnan(v):
        return default
    return min(hi, max(lo, v))


@dataclass(frozen=True)
class TimelinePreview:
    """Draw the head of ``timeline`` at ``time_s`` instead of ``RenderArgs.latent``.

    A timeline's head between keys is a weighted sum of the keys' ws, which no :class:`LatentSpec` can spell, so
    the Timeline panel does not squeeze it into one: it names the timeline and the time, and the worker asks the
    timeline for the ws (:class:`gghead_core.TimelineSampler`, the sampler the video export uses). The camera
    needs no override: a sampled camera is a plain ``CameraSpec`` and goes into ``RenderArgs.camera``.
    """

    timeline: Timeline
    time_s: float


@dataclass
class RenderArgs:
    """Everything a displayed frame depends on; widgets replace their part, the worker reads snapshots.
    ``timeline`` (None unless the Timeline panel is previewing) replaces ``latent`` for the head."""

    latent: LatentSpec = DEFAULT_LATENT
    camera: CameraSpec = field(default_factory=CameraSpec)
    settings: RenderSettings = DEFAULT_SETTINGS
    timeline: TimelinePreview | None = None
    # UV inspector's debug view (selection highlight, show only, centres, opacity floor): changes the picture,
    # not the head, so it is not part of the latent; None = off. Captures ignore it.
    inspect: InspectSpec | None = None

    def snapshot(self) -> RenderArgs:
        """A copy the worker may keep (the parts are immutable, so a shallow copy is enough)."""
        return replace(self)
