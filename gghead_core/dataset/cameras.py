"""Seeded camera distributions for datasets: the same arguments give the same cameras, on any machine.

Three distributions (``--cameras``), each over a yaw range and a pitch range in degrees (``--yaw-range``,
``--pitch-range``) at a fixed ``--radius`` around the origin:

* ``front`` -- frontal-biased, like photo collections (FFHQ is mostly near-frontal): view 0 sits at the centre
  of both ranges, the other views are drawn from a normal distribution around the centre with a standard
  deviation of a quarter of each range's width, clipped to the range.
* ``orbit`` -- the same evenly spaced yaws for every head (a full circle when the yaw range spans 360 degrees,
  else both ends included), pitch at the centre of its range. No randomness.
* ``random`` -- yaw and pitch uniform in their ranges, independently per head and view.

The randomness of head ``s`` comes from ``numpy.random.default_rng([camera_seed, s])`` (PCG64, specified
bit for bit by numpy), so a head's cameras do not depend on which process renders it, on the batch size or on
the order of the seed list.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from gghead_core.camera import DEFAULT_FOV_DEG, DEFAULT_RADIUS, Camera, CameraSpec
from gghead_core.vocabulary import MAX_RADIUS, SpecError, check_choice, check_int, check_number, check_seed

CameraKind = Literal["front", "orbit", "random"]
CAMERA_KINDS: tuple[str, ...] = get_args(CameraKind)
MAX_VIEWS = 1024
MAX_ABS_YAW_DEG = 360.0
MAX_ABS_PITCH_DEG = CameraSpec.MAX_PITCH_DEG  # 89: beyond it the orbit camera would flip
DEFAULT_YAW_RANGE = (-30.0, 30.0)
DEFAULT_PITCH_RANGE = (-10.0, 10.0)

_set = object.__setattr__


def parse_range(text: str, what: str) -> tuple[float, float]:
    """``"60"`` -> ``(-30, 30)`` (a width centred on 0, like ``turntable --yaw-range``); ``"-45,90"`` -> ``(-45, 90)``.

    Raises SpecError with one sentence for anything else (the ends' bounds are checked by
    :class:`CameraDistribution`).
    """
    parts = [p.strip() for p in str(text).split(",")]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise SpecError(f"{what} must be a width W or LO,HI in degrees, got {text!r}") from None
    if not all(math.isfinite(v) for v in values) or len(values) not in (1, 2):
        raise SpecError(f"{what} must be a width W or LO,HI in degrees, got {text!r}")
    if len(values) == 1:
        if values[0] < 0:
            raise SpecError(f"{what} width must not be negative, got {text!r} (use LO,HI for an offset range)")
        return (-values[0] / 2.0, values[0] / 2.0)
    return (values[0], values[1])


def _check_range(value: tuple[float, float], what: str, limit: float, max_width: float) -> tuple[float, float]:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2:
        raise SpecError(f"{what} must be two numbers (LO, HI), got {value!r}")
    lo = check_number(value[0], f"{what} start", lo=-limit, hi=limit)
    hi = check_number(value[1], f"{what} end", lo=-limit, hi=limit)
    if hi < lo:
        raise SpecError(f"{what} {lo:g},{hi:g} is reversed: the end must not be below the start")
    if hi - lo > max_width:
        raise SpecError(f"{what} {lo:g},{hi:g} is wider than {max_width:g} degrees")
    return (lo, hi)


@dataclass(frozen=True)
class CameraDistribution:
    """Where the ``views`` cameras of every head are (validated when made: one SpecError sentence)."""

    kind: CameraKind = "front"
    views: int = 8
    yaw_range_deg: tuple[float, float] = DEFAULT_YAW_RANGE
    pitch_range_deg: tuple[float, float] = DEFAULT_PITCH_RANGE
    radius: float = DEFAULT_RADIUS
    fov_deg: float = DEFAULT_FOV_DEG
    seed: int = 0  # the camera seed: mixed with each head's seed

    def __post_init__(self) -> None:
        _set(self, "kind", check_choice(self.kind, CAMERA_KINDS, "camera distribution"))
        _set(self, "views", check_int(self.views, "views per head", lo=1, hi=MAX_VIEWS))
        _set(self, "yaw_range_deg", _check_range(self.yaw_range_deg, "yaw range", MAX_ABS_YAW_DEG, 360.0))
        _set(self, "pitch_range_deg",
             _check_range(self.pitch_range_deg, "pitch range", MAX_ABS_PITCH_DEG, 2 * MAX_ABS_PITCH_DEG))
        _set(self, "radius", check_number(self.radius, "camera radius", lo=0.0, hi=MAX_RADIUS, lo_open=True))
        _set(self, "fov_deg", check_number(self.fov_deg, "field of view (degrees)", lo=0.0, hi=180.0,
                                           lo_open=True, hi_open=True))
        _set(self, "seed", check_seed(self.seed, "camera seed"))

    def angles(self, head_seed: int) -> np.ndarray:
        """``[views, 2]`` (yaw, pitch) in degrees for head ``head_seed`` (float64)."""
        (ylo, yhi), (plo, phi) = self.yaw_range_deg, self.pitch_range_deg
        ymid, pmid = (ylo + yhi) / 2.0, (plo + phi) / 2.0
        k = self.views
        if self.kind == "orbit":
            if yhi - ylo >= 360.0:
                yaws = ylo + np.arange(k) * (360.0 / k)  # a closed circle: the end would repeat the start
            elif k == 1:
                yaws = np.array([ymid])
            else:
                yaws = np.linspace(ylo, yhi, k)
            return np.stack([yaws, np.full(k, pmid)], axis=1)
        rng = np.random.default_rng([self.seed, int(head_seed)])
        if self.kind == "random":
            u = rng.random((k, 2))  # [K, 2] in [0, 1)
            return np.stack([ylo + u[:, 0] * (yhi - ylo), plo + u[:, 1] * (phi - plo)], axis=1)
        # front: view 0 at the centre, the rest normal around it (sigma = width / 4), clipped to the ranges
        n = rng.standard_normal((k, 2))  # [K, 2]
        yaws = np.clip(ymid + n[:, 0] * (yhi - ylo) / 4.0, ylo, yhi)
        pitches = np.clip(pmid + n[:, 1] * (phi - plo) / 4.0, plo, phi)
        yaws[0], pitches[0] = ymid, pmid
        return np.stack([yaws, pitches], axis=1)

    def specs(self, head_seed: int) -> list[CameraSpec]:
        """The orbit-camera specs of head ``head_seed``'s views."""
        return [CameraSpec(yaw_deg=float(y), pitch_deg=float(p), radius=self.radius, fov_deg=self.fov_deg)
                for y, p in self.angles(head_seed)]

    def cameras(self, head_seed: int) -> list[Camera]:
        """The cameras exactly as their labels store them (see :func:`label_camera`)."""
        return [label_camera(camera_label(s.to_camera())) for s in self.specs(head_seed)]


def camera_label(camera: Camera) -> np.ndarray:
    """The 25-float EG3D label ``[25]`` float32: cam2world (OpenCV, row-major) + normalised intrinsics."""
    return camera.label().numpy()


def label_camera(label: np.ndarray | list[float]) -> Camera:
    """The camera a 25-float label describes. Datasets render with this camera (the float32-rounded pose),
    so a label read back from ``dataset.json`` reproduces its image exactly, not just to 1e-7."""
    values = np.asarray(label, dtype=np.float32).astype(np.float64)
    if values.shape != (25,):
        raise SpecError(f"a camera label has 25 numbers, got shape {values.shape}")
    intr = values[16:].reshape(3, 3)
    if intr[0, 0] != intr[1, 1]:
        raise SpecError("camera label has different x and y focal lengths; only square pixels are supported")
    return Camera(cam2world=values[:16].reshape(4, 4), focal=float(intr[0, 0]),
                  principal=(float(intr[0, 2]), float(intr[1, 2])))


OPENCV_TO_OPENGL = np.diag([1.0, -1.0, -1.0, 1.0])
"""Right-multiplying an OpenCV cam2world by this flips the camera's y and z axes: the OpenGL/Blender camera
(x right, y up, looking down -z) that nerfstudio's transforms.json uses. The world frame is unchanged."""


def opengl_cam2world(camera: Camera) -> np.ndarray:
    """``[4, 4]`` cam2world in OpenGL camera axes (nerfstudio / instant-ngp / Blender)."""
    return np.asarray(camera.cam2world, dtype=np.float64) @ OPENCV_TO_OPENGL
