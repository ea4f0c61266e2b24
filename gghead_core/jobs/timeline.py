"""``timeline``: a keyframe timeline (latent + camera keys, see :mod:`gghead_core.timeline`) into a video.

One synthesis per frame (the latent moves), except where consecutive frames hold the same key (before the
first key, after the last): those reuse the head. At a key's time the frame is generated from the key's own
``LatentSpec`` through ``ctx.generate`` (the viewer passes its cache) and drawn from the key's own
``CameraSpec``, so it is pixel-identical to ``render`` of that key.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from gghead_core.camera import Camera
from gghead_core.jobs._runner import JobContext, JobResult, OutputKind
from gghead_core.pipeline import RenderSettings
from gghead_core.timeline import Timeline, TimelineSampler
from gghead_core.vocabulary import SpecError


@dataclass(frozen=True)
class TimelineJob:
    """Render every frame of ``timeline`` (``t = k / fps``, its own fps) with ``settings``."""

    timeline: Timeline
    settings: RenderSettings = field(default_factory=RenderSettings)

    command: ClassVar[str] = "timeline"
    output_kind: ClassVar[OutputKind] = "video"

    def __post_init__(self) -> None:
        if not isinstance(self.timeline, Timeline):
            raise SpecError(f"a timeline job needs a Timeline, got {type(self.timeline).__name__}")
        if not isinstance(self.settings, RenderSettings):
            raise SpecError(f"a timeline job needs RenderSettings, got {type(self.settings).__name__}")

    def cameras(self) -> list[Camera]:
        """The camera of every frame (a key's own camera at its time)."""
        return [self.timeline.camera_at(t).to_camera() for t in self.timeline.frame_times()]

    def frames(self, ctx: JobContext) -> Iterator[np.ndarray]:
        """The uint8 frames, one at a time (``[R, R, 3|4]``); cancel is checked before each head."""
        tl = self.timeline
        sampler = TimelineSampler(ctx.G, tl)
        held: tuple[int, Any] | None = None  # (key index, Gaussians) of the last frame that was exactly a key
        for t in tl.frame_times():
            ctx.check_cancel()
            seg = tl.segment(t)
            if seg.exact:
                if held is None or held[0] != seg.a:
                    held = (seg.a, ctx.generate(tl.keyframes[seg.a].latent))
                g = held[1]
            else:
                held = None
                g = sampler.gaussians_at(t)
            camera = tl.camera_at(t).to_camera()
            yield next(iter(ctx.render(g, [camera], self.settings))).image

    def run(self, ctx: JobContext) -> JobResult:
        tl = self.timeline
        n = tl.n_frames
        ctx.tick(0, n)
        first = tl.keyframes[0].latent
        ctx.write_video(self.frames(ctx), n, tl.fps, lambda: ctx.recipe(
            seeds=tl.seeds, latent=first, cameras=self.cameras(), settings=self.settings))
        return ctx.result(n)
