"""``turntable``: one head (generated once) seen along a loop of cameras, into an mp4 / gif / PNG folder."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from gghead_core import latents as lat
from gghead_core.camera import DEFAULT_RADIUS, Camera
from gghead_core.jobs._runner import JobContext, JobResult, OutputKind
from gghead_core.pipeline import LatentSpec, RenderSettings
from gghead_core.vocabulary import MAX_FPS, MAX_FRAMES, MAX_RADIUS, MIN_FPS, check_choice, check_int, check_number

TurntablePath = Literal["orbit", "circle"]
TURNTABLE_PATHS = ("orbit", "circle")
DEFAULT_TURNTABLE_FRAMES = 96
DEFAULT_TURNTABLE_FPS = 24.0


@dataclass(frozen=True)
class TurntableJob:
    """``path="orbit"`` (default) turns the camera once around the head at a fixed pitch (``yaw_range_deg <
    360``: a smooth left-right swing instead). ``path="circle"`` is the official sample script's look (spec
    5.1): a small circle in front of the face (0.6 at radius 2.7), 96 frames at 24 fps. The viewer's Capture
    panel starts from these same defaults."""

    latent: LatentSpec = field(default_factory=LatentSpec)
    frames: int = DEFAULT_TURNTABLE_FRAMES
    fps: float = DEFAULT_TURNTABLE_FPS
    path: TurntablePath = "orbit"
    pitch_deg: float = 0.0
    radius: float = DEFAULT_RADIUS
    yaw_range_deg: float = 360.0
    settings: RenderSettings = field(default_factory=RenderSettings)

    command: ClassVar[str] = "turntable"
    output_kind: ClassVar[OutputKind] = "video"

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "frames", check_int(self.frames, "frames", lo=1, hi=MAX_FRAMES))
        set_(self, "fps", check_number(self.fps, "fps", lo=MIN_FPS, hi=MAX_FPS))
        set_(self, "path", check_choice(self.path, TURNTABLE_PATHS, "camera path"))
        set_(self, "pitch_deg", check_number(self.pitch_deg, "pitch", lo=-90.0, hi=90.0, lo_open=True, hi_open=True))
        set_(self, "radius", check_number(self.radius, "camera radius", lo=0.0, hi=MAX_RADIUS, lo_open=True))
        set_(self, "yaw_range_deg", check_number(self.yaw_range_deg, "yaw range", lo=0.0, hi=360.0, lo_open=True))

    def cameras(self) -> list[Camera]:
        if self.path == "circle":
            return lat.circle_trajectory(self.frames, radius=self.radius, pitch_deg=self.pitch_deg)
        return lat.orbit_trajectory(self.frames, pitch_deg=self.pitch_deg, radius=self.radius,
                                    yaw_range_deg=self.yaw_range_deg)

    def run(self, ctx: JobContext) -> JobResult:
        cameras = self.cameras()
        ctx.tick(0, self.frames)
        g = ctx.generate(self.latent)
        frames = (f.image for f in ctx.render(g, cameras, self.settings))
        ctx.write_video(frames, self.frames, self.fps, lambda: ctx.recipe(
            seeds=self.latent.seeds, latent=self.latent, cameras=cameras, settings=self.settings))
        return ctx.result(self.frames)
