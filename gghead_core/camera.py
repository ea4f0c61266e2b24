"""Cameras in GGHead's conventions (spec section 4).

* World frame (EG3D/FFHQ): y up, the face looks toward +z, head near the origin.
* Camera poses are **OpenCV cam2world** matrices (camera x right, y down, z forward).
* Intrinsics are **normalized** to a unit image: ``[[f, 0, cx], [0, f, cy], [0, 0, 1]]``, default f = 4.2647,
  principal point (0.5, 0.5), so the field of view (about 13.37 degrees) does not depend on the resolution.
* The 25-float *label* that conditions the mapping network is cam2world (16, row-major) + intrinsics (9).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch

DEFAULT_FOCAL = 4.2647
"""Normalized focal length of GGHead's DEFAULT_INTRINSICS."""
DEFAULT_RADIUS = 2.7
"""Camera distance of the official notebook and trajectories."""
DEFAULT_FOV_DEG = math.degrees(2.0 * math.atan(1.0 / (2.0 * DEFAULT_FOCAL)))
"""About 13.3738 degrees."""


def focal_from_fov(fov_deg: float) -> float:
    """Normalized focal length for a full field of view in degrees."""
    return 1.0 / (2.0 * math.tan(math.radians(fov_deg) / 2.0))


def fov_from_focal(focal: float) -> float:
    """Full field of view in degrees for a normalized focal length."""
    return math.degrees(2.0 * math.atan(1.0 / (2.0 * focal)))


def look_at_cam2world(eye: np.ndarray, target: np.ndarray, up: np.ndarray = np.array([0.0, 1.0, 0.0])) -> np.ndarray:
    """OpenCV cam2world (4x4, float64) of a camera at ``eye`` looking at ``target`` with world ``up``.

    The camera's z axis points at the target, x is right and y is *down* in the image.
    """
    eye = np.asarray(eye, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    forward = target - eye
    norm = np.linalg.norm(forward)
    if norm < 1e-12:
        raise ValueError("camera eye and target coincide")
    forward = forward / norm
    right = np.cross(forward, np.asarray(up, dtype=np.float64))
    if np.linalg.norm(right) < 1e-9:
        raise ValueError("camera looks straight along the up vector; the pose is undefined")
    right = right / np.linalg.norm(right)
    down = np.cross(forward, right)
    cam2world = np.eye(4)
    cam2world[:3, 0] = right
    cam2world[:3, 1] = down
    cam2world[:3, 2] = forward
    cam2world[:3, 3] = eye
    return cam2world


@dataclass(frozen=True)
class Camera:
    """A pinhole camera: OpenCV cam2world pose plus normalized intrinsics.

    This is the one camera type that the generator (conditioning label), the renderers (view and projection)
    and the exporters (recipes) share.
    """

    cam2world: np.ndarray  # [4, 4] float64, OpenCV axes
    focal: float = DEFAULT_FOCAL  # normalized (fraction of the image size)
    principal: tuple[float, float] = (0.5, 0.5)  # normalized (cx, cy)

    def __post_init__(self) -> None:
        m = np.asarray(self.cam2world, dtype=np.float64)
        if m.shape != (4, 4) or not np.all(np.isfinite(m)):
            raise ValueError("Camera.cam2world must be a finite 4x4 matrix")
        if not (math.isfinite(self.focal) and self.focal > 0):
            raise ValueError(f"Camera.focal must be positive, got {self.focal}")
        object.__setattr__(self, "cam2world", m)

    @property
    def center(self) -> np.ndarray:
        """Camera centre in world coordinates, ``[3]``."""
        return self.cam2world[:3, 3].copy()

    @property
    def fov_deg(self) -> float:
        return fov_from_focal(self.focal)

    def world2cam(self) -> np.ndarray:
        """Rigid inverse of cam2world, ``[4, 4]`` (OpenCV camera axes)."""
        rot = self.cam2world[:3, :3]
        out = np.eye(4)
        out[:3, :3] = rot.T
        out[:3, 3] = -rot.T @ self.cam2world[:3, 3]
        return out

    def intrinsics_normalized(self) -> np.ndarray:
        return np.array(
            [[self.focal, 0.0, self.principal[0]], [0.0, self.focal, self.principal[1]], [0.0, 0.0, 1.0]]
        )

    def intrinsics_pixels(self, width: int, height: int | None = None) -> np.ndarray:
        """Pixel intrinsics ``K [3, 3]`` for an image of ``width x height`` (focal scales with the width)."""
        height = width if height is None else height
        return np.array(
            [
                [self.focal * width, 0.0, self.principal[0] * width],
                [0.0, self.focal * width, self.principal[1] * height],
                [0.0, 0.0, 1.0],
            ]
        )

    def label(self) -> torch.Tensor:
        """The 25-float EG3D camera label, ``[25]`` float32."""
        values = np.concatenate([self.cam2world.reshape(-1), self.intrinsics_normalized().reshape(-1)])
        return torch.from_numpy(values.astype(np.float32))


def frontal_camera(radius: float = DEFAULT_RADIUS, focal: float = DEFAULT_FOCAL) -> Camera:
    """The official notebook's frontal camera: at (0, 0, radius), looking at the origin (cam2world diag(1,-1,-1))."""
    cam2world = np.diag([1.0, -1.0, -1.0, 1.0])
    cam2world[2, 3] = radius
    return Camera(cam2world=cam2world, focal=focal)


@dataclass(frozen=True)
class CameraSpec:
    """A camera orbiting a look-at point: what users control in the viewer, on the command line and in recipes.

    ``yaw_deg`` turns the camera around the world y axis (positive = the camera moves toward +x and sees more
    of the head's left side), ``pitch_deg`` raises it (positive = camera above, looking down; clamped to
    +-89 degrees when posed, so it never flips). At yaw = pitch = 0 it is exactly :func:`frontal_camera`.
    Values are validated when the spec is made, so an invalid camera cannot exist.
    """

    yaw_deg: float = 0.0
    pitch_deg: float = 0.0
    radius: float = DEFAULT_RADIUS
    look_at: tuple[float, float, float] = (0.0, 0.0, 0.0)
    fov_deg: float = field(default=DEFAULT_FOV_DEG)

    MAX_PITCH_DEG: ClassVar[float] = 89.0

    def __post_init__(self) -> None:
        from gghead_core.vocabulary import (
            MAX_ABS_ANGLE_DEG,
            MAX_ABS_LOOK_AT,
            MAX_RADIUS,
            SpecError,
            check_number,
        )

        set_ = object.__setattr__
        set_(self, "yaw_deg", check_number(self.yaw_deg, "camera yaw", lo=-MAX_ABS_ANGLE_DEG, hi=MAX_ABS_ANGLE_DEG))
        set_(self, "pitch_deg",
             check_number(self.pitch_deg, "camera pitch", lo=-MAX_ABS_ANGLE_DEG, hi=MAX_ABS_ANGLE_DEG))
        set_(self, "radius", check_number(self.radius, "camera radius", lo=0.0, hi=MAX_RADIUS, lo_open=True))
        set_(self, "fov_deg", check_number(self.fov_deg, "field of view (degrees)", lo=0.0, hi=180.0,
                                           lo_open=True, hi_open=True))
        look = self.look_at
        if isinstance(look, (str, bytes)) or not hasattr(look, "__len__") or len(look) != 3:
            raise SpecError(f"look-at must be three numbers X,Y,Z, got {look!r}")
        set_(self, "look_at", tuple(check_number(v, "look-at", lo=-MAX_ABS_LOOK_AT, hi=MAX_ABS_LOOK_AT)
                                    for v in look))

    def to_camera(self) -> Camera:
        pitch = max(-self.MAX_PITCH_DEG, min(self.MAX_PITCH_DEG, float(self.pitch_deg)))
        yaw_r, pitch_r = math.radians(self.yaw_deg), math.radians(pitch)
        target = np.asarray(self.look_at, dtype=np.float64)
        offset = np.array(
            [math.sin(yaw_r) * math.cos(pitch_r), math.sin(pitch_r), math.cos(yaw_r) * math.cos(pitch_r)]
        )
        focal = focal_from_fov(self.fov_deg)
        if self.yaw_deg == 0 and pitch == 0:
            # Exact official frontal pose (no rounding from sin/cos), shifted to the look-at point.
            cam = frontal_camera(self.radius, focal)
            m = cam.cam2world.copy()
            m[:3, 3] += target
            return Camera(cam2world=m, focal=focal)
        return Camera(cam2world=look_at_cam2world(target + self.radius * offset, target), focal=focal)


