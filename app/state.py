"""The one object the widgets write and the render worker reads.

Each widget owns its own controls and writes its part of :class:`RenderArgs`; the worker turns a frozen copy of
it into a frame. Because the frame is a pure function of these arguments, "did anything change?" is a dataclass
comparison, and a capture can record exactly what produced it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Literal

from gghead_core.camera import DEFAULT_FOV_DEG, DEFAULT_RADIUS, OrbitCamera

Backend = Literal["auto", "gsplat", "opengl", "torch"]
Mode = Literal["rgb", "alpha", "depth"]
ShRef = Literal["frontal", "view"]
NoiseMode = Literal["const", "random", "none"]
InterpSpace = Literal["w", "z"]  # "w": linear in W; "z": spherical in Z

BACKENDS: tuple[str, ...] = ("auto", "gsplat", "opengl", "torch")
MODES: tuple[str, ...] = ("rgb", "alpha", "depth")
SH_REFS: tuple[str, ...] = ("frontal", "view")
NOISE_MODES: tuple[str, ...] = ("const", "random", "none")
RESOLUTIONS: tuple[int, ...] = (256, 512, 1024)

MIN_RADIUS, MAX_RADIUS = 0.5, 20.0
MIN_FOV_DEG, MAX_FOV_DEG = 2.0, 90.0
MIN_SCALE_MODIFIER, MAX_SCALE_MODIFIER = 0.05, 4.0
MIN_PSI, MAX_PSI = -1.0, 2.0
MAX_PAN = 2.0  # look-at offset limit in world units (the head is about 0.7 units tall)


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
class LatentArgs:
    """What selects the head: everything that changes the Gaussians (and so the generation cache key)."""

    seed: int = 0
    seed_b: int = 1
    t: float = 0.0  # interpolation A -> B, 0 = seed A only
    space: InterpSpace = "w"
    mix_enabled: bool = False
    mix_seed: int = 2
    mix_start: int = 0  # ws rows [mix_start, mix_end) come from mix_seed
    mix_end: int = 0
    psi: float = 0.7
    cutoff: int | None = None  # None: truncate every ws row
    noise_mode: NoiseMode = "const"


@dataclass(frozen=True)
class CameraArgs:
    yaw_deg: float = 0.0
    pitch_deg: float = 0.0
    radius: float = DEFAULT_RADIUS
    look_at: tuple[float, float, float] = (0.0, 0.0, 0.0)
    fov_deg: float = DEFAULT_FOV_DEG

    def orbit(self) -> OrbitCamera:
        return OrbitCamera(
            yaw_deg=self.yaw_deg,
            pitch_deg=self.pitch_deg,
            radius=self.radius,
            look_at=self.look_at,
            fov_deg=self.fov_deg,
        )


@dataclass(frozen=True)
class RendererArgs:
    resolution: int = 512
    backend: Backend = "auto"
    mode: Mode = "rgb"
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    sh_ref: ShRef = "frontal"
    scale_modifier: float = 1.0


@dataclass
class RenderArgs:
    """Everything a displayed frame depends on; widgets replace their part, the worker reads snapshots.

    The parts are frozen so that a snapshot handed to the worker can never change under it; a widget writes
    by replacing its part (``args.camera = replace(args.camera, yaw_deg=...)``).
    """

    latent: LatentArgs = field(default_factory=LatentArgs)
    camera: CameraArgs = field(default_factory=CameraArgs)
    renderer: RendererArgs = field(default_factory=RendererArgs)

    def snapshot(self) -> "RenderArgs":
        """A copy the worker may keep (the parts are immutable, so a shallow copy is enough)."""
        return replace(self)
