"""``interpolate``: a morph through several seeds into a video.

With ``space="z", method="lerp", loop=True, orbit=True, conditioning="camera", settings.sh_ref="view"`` this
is the official ``render_interpolation.py`` (spec 5.2).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from gghead_core import latents as lat
from gghead_core.camera import Camera, CameraSpec
from gghead_core.jobs._runner import JobContext, JobResult, OutputKind
from gghead_core.pipeline import LatentSpec, RenderSettings, apply_edits, apply_mix, mapped_ws, resolve_directions
from gghead_core.vocabulary import (
    CONDITIONINGS,
    INTERP_METHODS,
    INTERP_SPACES,
    MAX_FPS,
    MAX_FRAMES,
    MIN_FPS,
    Conditioning,
    InterpMethod,
    InterpSpace,
    SpecError,
    check_choice,
    check_int,
    check_number,
    check_seed,
)


def check_template(latent: LatentSpec, command: str) -> None:
    """Multi-seed jobs take their seeds from ``seeds``; the latent only carries truncation, noise, mix, edits."""
    if latent.seed != 0 or latent.seed_b is not None or latent.t != 0.0:
        raise SpecError(f"{command} takes its seeds from 'seeds': leave latent.seed, seed_b and t unset")


@dataclass(frozen=True)
class InterpolationJob:
    seeds: tuple[int, ...] = (0, 1)
    frames_per_seed: int = 48
    fps: float = 24.0
    space: InterpSpace = "w"
    method: InterpMethod = "lerp"
    loop: bool = False
    orbit: bool = False
    conditioning: Conditioning = "frontal"
    latent: LatentSpec = field(default_factory=LatentSpec)  # psi, cutoff, noise, mix, edits for every frame
    camera: CameraSpec = field(default_factory=CameraSpec)  # the fixed view when orbit is off
    settings: RenderSettings = field(default_factory=RenderSettings)

    command: ClassVar[str] = "interpolate"
    output_kind: ClassVar[OutputKind] = "video"

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        seeds = tuple(check_seed(s) for s in self.seeds)
        if len(seeds) < 2:
            raise SpecError("interpolate needs at least 2 seeds")
        set_(self, "seeds", seeds)
        set_(self, "frames_per_seed", check_int(self.frames_per_seed, "frames per seed", lo=1, hi=MAX_FRAMES))
        total = len(seeds) * self.frames_per_seed
        if total > MAX_FRAMES:
            raise SpecError(f"interpolate would render {total} frames; the limit is {MAX_FRAMES}")
        set_(self, "fps", check_number(self.fps, "fps", lo=MIN_FPS, hi=MAX_FPS))
        set_(self, "space", check_choice(self.space, INTERP_SPACES, "latent space"))
        set_(self, "method", check_choice(self.method, INTERP_METHODS, "interpolation method"))
        set_(self, "conditioning", check_choice(self.conditioning, CONDITIONINGS, "conditioning"))
        for name in ("loop", "orbit"):
            if not isinstance(getattr(self, name), bool):
                raise SpecError(f"{name} must be true or false")
        check_template(self.latent, self.command)

    def schedule(self) -> list[lat.ScheduleStep]:
        return lat.interpolation_schedule(len(self.seeds), self.frames_per_seed, loop=self.loop)

    def cameras(self, n_frames: int) -> list[Camera]:
        if self.orbit:
            turns = len(self.seeds) if self.loop else len(self.seeds) - 1
            return lat.circle_trajectory(n_frames, radius=self.camera.radius, turns=float(turns))
        return [self.camera.to_camera()] * n_frames

    def run(self, ctx: JobContext) -> JobResult:
        """One synthesis per frame, batched by ``batch_size`` heads (8 on CUDA, 1 on CPU, where batching does
        not pay and only costs memory)."""
        n_frames = len(self.schedule())
        cameras = self.cameras(n_frames)
        batch_size = ctx.options.get("batch_size") or (8 if ctx.device.startswith("cuda") else 1)
        ctx.tick(0, n_frames)

        def frames() -> Iterator[Any]:
            ws_iter = frame_ws(ctx.G, self, cameras)
            done = 0
            while done < n_frames:
                pending = [next(ws_iter) for _ in range(min(batch_size, n_frames - done))]
                ctx.check_cancel()
                with torch.no_grad():
                    heads = ctx.G.synthesis(torch.cat(pending), noise_mode=self.latent.noise_mode)
                for j in range(len(pending)):
                    yield next(iter(ctx.render(heads[j], [cameras[done]], self.settings))).image
                    done += 1

        ctx.write_video(frames(), n_frames, self.fps, lambda: ctx.recipe(
            seeds=list(self.seeds), latent=self.latent, cameras=cameras, settings=self.settings))
        return ctx.result(n_frames)


def frame_ws(G: Any, job: InterpolationJob, cameras: Sequence[Camera]) -> Iterator[torch.Tensor]:
    """``ws [1, num_ws, w_dim]`` for every frame of an interpolation job (lazily, one frame at a time)."""
    latent = job.latent
    zs = [G.z_from_seed(s) for s in job.seeds]  # S x [1, z_dim]
    static_ws: dict[int, torch.Tensor] = {}
    static_mix: list[torch.Tensor] = []
    directions = resolve_directions(G, latent.edits, None) if latent.edits else {}

    def label(cam: Camera) -> torch.Tensor | None:
        return None if job.conditioning == "frontal" else lat.conditioning_camera_for(cam).label()

    def key_ws(index: int, c: torch.Tensor | None) -> torch.Tensor:
        # One latent per mapping call: batched matmuls round differently, and key frames must equal the
        # seeds' own still renders bit for bit.
        if c is not None:
            return mapped_ws(G, zs[index], latent, c)
        if index not in static_ws:
            static_ws[index] = mapped_ws(G, zs[index], latent, None)
        return static_ws[index]

    def mix_source(c: torch.Tensor | None) -> torch.Tensor:
        assert latent.mix is not None
        if c is not None:
            return mapped_ws(G, G.z_from_seed(latent.mix.seed), latent, c)
        if not static_mix:
            static_mix.append(mapped_ws(G, G.z_from_seed(latent.mix.seed), latent, None))
        return static_mix[0]

    for step, cam in zip(job.schedule(), cameras):
        c = label(cam)
        with torch.no_grad():
            if job.space == "z":
                ws = mapped_ws(G, lat.interpolate(zs[step.index_a], zs[step.index_b], step.t, job.method), latent, c)
            else:
                ws = lat.interpolate(key_ws(step.index_a, c), key_ws(step.index_b, c), step.t, job.method)
            if latent.mix is not None:
                ws = apply_mix(ws, mix_source(c), latent.mix)
            if latent.edits:
                ws = apply_edits(ws, latent.edits, directions)
        yield ws  # [1, num_ws, w_dim]
