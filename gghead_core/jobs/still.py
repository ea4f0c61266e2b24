"""``render``: one image of one head."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from gghead_core.camera import CameraSpec
from gghead_core.jobs._runner import JobContext, JobResult, OutputKind
from gghead_core.pipeline import LatentSpec, RenderSettings


@dataclass(frozen=True)
class StillJob:
    latent: LatentSpec = field(default_factory=LatentSpec)
    camera: CameraSpec = field(default_factory=CameraSpec)
    settings: RenderSettings = field(default_factory=lambda: RenderSettings(resolution=1024))

    command: ClassVar[str] = "render"
    output_kind: ClassVar[OutputKind] = "image"

    def run(self, ctx: JobContext) -> JobResult:
        """Render one PNG (RGBA when the background is transparent) plus its recipe."""
        ctx.tick(0, 2)
        g = ctx.generate(self.latent)
        ctx.check_cancel()
        ctx.tick(1, 2)
        frame = next(iter(ctx.render(g, [self.camera.to_camera()], self.settings)))
        ctx.check_cancel()
        return save_rendered(ctx, frame.image)


def save_rendered(ctx: JobContext, image: np.ndarray) -> JobResult:
    """Write an already rendered still and its recipe (``ctx.backend`` says who drew it: replay pins it)."""
    job: StillJob = ctx.job
    recipe = ctx.recipe(seeds=job.latent.seeds, latent=job.latent, cameras=[job.camera.to_camera()],
                        settings=job.settings)
    ctx.write_image(image, recipe)
    ctx.tick(2, 2)
    return ctx.result(1)
