"""``export-ply``: the generated head as a 3DGS ``.ply`` or a compact ``.splat``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from gghead_core import export as ex
from gghead_core.jobs._runner import JobContext, JobResult, OutputKind
from gghead_core.pipeline import LatentSpec
from gghead_core.vocabulary import check_choice

GaussianFormat = Literal["ply", "splat"]
GAUSSIAN_FORMATS = ("ply", "splat")


@dataclass(frozen=True)
class ExportJob:
    latent: LatentSpec = field(default_factory=LatentSpec)
    format: GaussianFormat = "ply"

    command: ClassVar[str] = "export-ply"
    output_kind: ClassVar[OutputKind] = "gaussians"

    def __post_init__(self) -> None:
        object.__setattr__(self, "format", check_choice(self.format, GAUSSIAN_FORMATS, "Gaussian format"))

    def run(self, ctx: JobContext) -> JobResult:
        ctx.tick(0, 1)
        g = ctx.generate(self.latent)
        ctx.check_cancel()
        recipe = ctx.recipe(seeds=self.latent.seeds, latent=self.latent, cameras=[], settings=None)
        if self.format == "ply":
            ctx.write_single(lambda p: ex.write_ply(p, ex.gaussians_to_ply_arrays(g)), recipe)
        else:
            ctx.write_single(lambda p: ex.write_splat(p, ex.gaussians_to_splat_array(g)), recipe)
        ctx.tick(1, 1)
        return ctx.result(1)
