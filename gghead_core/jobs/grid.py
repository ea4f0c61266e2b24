"""``grid``: seeds x views in one PNG."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import ClassVar

import numpy as np

from gghead_core import export as ex
from gghead_core.camera import DEFAULT_RADIUS, Camera, CameraSpec
from gghead_core.jobs._font import draw_label
from gghead_core.jobs._runner import JobContext, JobResult, OutputKind
from gghead_core.jobs.interpolate import check_template
from gghead_core.pipeline import LatentSpec, RenderSettings
from gghead_core.vocabulary import (
    MAX_ABS_ANGLE_DEG,
    MAX_RADIUS,
    SpecError,
    background_rgb,
    check_int,
    check_number,
    check_seed,
)

MAX_GRID_CELLS = 4096
MAX_GRID_SIDE = 32768


@dataclass(frozen=True)
class GridJob:
    """Each seed takes ``len(yaws_deg)`` adjacent cells; ``cols`` seeds share a row (default: one seed per row
    with several yaws, else a near-square layout). Empty cells of the last row show the background."""

    seeds: tuple[int, ...] = tuple(range(8))
    yaws_deg: tuple[float, ...] = (0.0,)
    pitch_deg: float = 0.0
    radius: float = DEFAULT_RADIUS
    cols: int | None = None
    latent: LatentSpec = field(default_factory=LatentSpec)  # psi, cutoff, noise, mix, edits for every seed
    settings: RenderSettings = field(default_factory=lambda: RenderSettings(resolution=256))
    labels: bool = False  # write "seed N" and "yaw D" in each cell's top-left corner (built-in bitmap font)

    command: ClassVar[str] = "grid"
    output_kind: ClassVar[OutputKind] = "image"

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        seeds = tuple(check_seed(s) for s in self.seeds)
        if not seeds:
            raise SpecError("grid needs at least one seed")
        set_(self, "seeds", seeds)
        yaws = tuple(check_number(y, "grid yaw", lo=-MAX_ABS_ANGLE_DEG, hi=MAX_ABS_ANGLE_DEG) for y in self.yaws_deg)
        if not yaws:
            raise SpecError("grid yaws must be a non-empty list of angles")
        set_(self, "yaws_deg", yaws)
        set_(self, "pitch_deg", check_number(self.pitch_deg, "pitch", lo=-90.0, hi=90.0, lo_open=True, hi_open=True))
        set_(self, "radius", check_number(self.radius, "camera radius", lo=0.0, hi=MAX_RADIUS, lo_open=True))
        if not isinstance(self.labels, bool):
            raise SpecError(f"grid labels must be true or false, got {self.labels!r}")
        if self.cols is not None:
            set_(self, "cols", check_int(self.cols, "columns", lo=1, hi=MAX_GRID_CELLS))
        check_template(self.latent, self.command)
        if len(seeds) * len(yaws) > MAX_GRID_CELLS:
            raise SpecError(f"a grid of {len(seeds) * len(yaws)} cells is over the limit of {MAX_GRID_CELLS}")
        w, h = self.image_size()
        if w > MAX_GRID_SIDE or h > MAX_GRID_SIDE:
            raise SpecError(f"grid image would be {w}x{h} pixels; use fewer seeds, columns or a lower resolution")

    def seeds_per_row(self) -> int:
        if not isinstance(self.labels, bool):
            raise SpecError(f"grid labels must be true or false, got {self.labels!r}")
        if self.cols is not None:
            return self.cols
        if len(self.yaws_deg) > 1:
            return 1
        return max(1, math.ceil(math.sqrt(len(self.seeds))))

    def image_size(self) -> tuple[int, int]:
        per_row = min(self.seeds_per_row(), len(self.seeds))
        rows = math.ceil(len(self.seeds) / self.seeds_per_row())
        r = self.settings.resolution
        return per_row * len(self.yaws_deg) * r, rows * r

    def cameras(self) -> list[Camera]:
        return [CameraSpec(yaw_deg=y, pitch_deg=self.pitch_deg, radius=self.radius).to_camera()
                for y in self.yaws_deg]

    def run(self, ctx: JobContext) -> JobResult:
        r = self.settings.resolution
        width, height = self.image_size()
        channels = 4 if self.settings.transparent else 3
        canvas = np.empty((height, width, channels), np.uint8)
        fill = list(background_rgb(self.settings.background)) + ([0.0] if channels == 4 else [])
        canvas[...] = ex.to_uint8(np.asarray(fill, np.float32))
        cameras = self.cameras()
        per_row = self.seeds_per_row()
        total = len(self.seeds) * len(cameras)
        done = 0
        ctx.tick(0, total)
        for k, seed in enumerate(self.seeds):
            ctx.check_cancel()
            g = ctx.generate(replace(self.latent, seed=seed))
            row, col0 = divmod(k, per_row)
            for v, frame in enumerate(ctx.render(g, cameras, self.settings)):
                ctx.check_cancel()
                x = (col0 * len(cameras) + v) * r
                canvas[row * r:(row + 1) * r, x:x + r] = frame.image[..., :channels]
                if self.labels:
                    draw_label(canvas[row * r:(row + 1) * r, x:x + r], f"seed {seed}\nyaw {self.yaws_deg[v]:g}")
                done += 1
                ctx.tick(done, total)
        recipe = ctx.recipe(seeds=list(self.seeds), latent=self.latent, cameras=cameras, settings=self.settings)
        ctx.write_image(canvas, recipe)
        return ctx.result(total)
