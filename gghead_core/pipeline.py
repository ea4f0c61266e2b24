"""What to draw, and the three functions that draw it.

The vocabulary (frozen, validated when made, so an invalid value cannot exist):

* :class:`LatentSpec` -- which head: a seed, an optional second seed with the interpolation ``t`` between them
  (linear in W or spherical in Z), truncation ``psi``/``cutoff``, the noise mode, style mixing
  (:class:`StyleMix`) and latent edits (:class:`LatentEdit`);
* :class:`~gghead_core.camera.CameraSpec` -- where the camera is (yaw, pitch, radius, look-at, fov);
* :class:`RenderSettings` -- how the frame is drawn (resolution, backend, mode, background, SH reference, scale).

The viewer's state, the CLI's arguments and a recipe file are three spellings of these same values, so a
viewer capture, a CLI render and a replay give the same pixels, and a new kind of edit is added here once.

The functions: :func:`make_ws` (latent -> ``ws``), :func:`generate` (latent -> Gaussians) and
:func:`render_views` (Gaussians + cameras + settings -> uint8 frames).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from gghead_core import latents as lat
from gghead_core.camera import Camera, CameraSpec
from gghead_core.gaussians import Gaussians
from gghead_core.vocabulary import (
    BACKENDS,
    DEPTH_COLORMAPS,
    INTERP_SPACES,
    MAX_ABS_EDIT,
    MAX_ABS_PSI,
    MAX_CUTOFF,
    MAX_SCALE_MODIFIER,
    MODES,
    NOISE_MODES,
    SH_REFS,
    Backend,
    Background,
    DepthColormap,
    InterpSpace,
    Mode,
    NoiseMode,
    ShRef,
    SpecError,
    background_rgb,
    check_choice,
    check_int,
    check_number,
    check_resolution,
    check_seed,
    parse_background,
)

__all__ = [
    "BACKENDS",
    "DEPTH_COLORMAPS",
    "MODES",
    "NOISE_MODES",
    "SH_REFS",
    "CameraSpec",
    "Frame",
    "LatentEdit",
    "LatentSpec",
    "RenderSettings",
    "SpecError",
    "StyleMix",
    "background_rgb",
    "generate",
    "make_ws",
    "mapped_ws",
    "render_views",
    "resolve_directions",
]

_set = object.__setattr__  # frozen dataclasses normalise their own fields in __post_init__


# --------------------------------------------------------------------------------------------------------------
# Latent
# --------------------------------------------------------------------------------------------------------------


def _check_row_range(start: Any, end: Any, what: str) -> tuple[int, int | None]:
    s = check_int(start, f"{what} first row", lo=0, hi=MAX_CUTOFF)
    e = None if end is None else check_int(end, f"{what} end row", lo=0, hi=MAX_CUTOFF)
    if e is not None and e <= s:
        raise SpecError(f"{what} rows [{s}, {e}) are empty: the end must be above the start")
    return s, e


@dataclass(frozen=True)
class StyleMix:
    """ws rows ``[start, end)`` come from ``seed`` (``end=None``: to the last row). Early rows steer coarse
    structure, late rows fine appearance (StyleGAN's style mixing)."""

    seed: int
    start: int = 0
    end: int | None = None

    def __post_init__(self) -> None:
        _set(self, "seed", check_seed(self.seed, "style-mixing seed"))
        start, end = _check_row_range(self.start, self.end, "style-mixing")
        _set(self, "start", start)
        _set(self, "end", end)


@dataclass(frozen=True)
class LatentEdit:
    """Move ws along a named direction by ``amount`` (in the direction's standard deviations), on ws rows
    ``[start, end)`` (GANSpace applies each edit to a chosen layer range). Directions are resolved per model
    (see :func:`make_ws`)."""

    direction: str
    amount: float
    start: int = 0
    end: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.direction, str) or not self.direction.strip():
            raise SpecError(f"an edit needs a direction name, got {self.direction!r}")
        _set(self, "direction", self.direction.strip())
        _set(self, "amount", check_number(self.amount, f"edit {self.direction} amount",
                                          lo=-MAX_ABS_EDIT, hi=MAX_ABS_EDIT))
        start, end = _check_row_range(self.start, self.end, f"edit {self.direction}")
        _set(self, "start", start)
        _set(self, "end", end)


@dataclass(frozen=True)
class LatentSpec:
    """Which head to generate.

    ``seed_b`` and ``t`` interpolate from ``seed`` (t = 0) to ``seed_b`` (t = 1): in W, ``ws = (1-t) ws(seed) +
    t ws(seed_b)`` (the EG3D visualizer's fractional seeds; truncation is linear, so blending truncated ws
    equals truncating the blend); in Z, the two Gaussian latents are slerped and then mapped. ``mix`` and
    ``edits`` act on the result, in that order.
    """

    seed: int = 0
    seed_b: int | None = None
    t: float = 0.0
    space: InterpSpace = "w"
    psi: float = 0.7
    cutoff: int | None = None  # None: truncate every ws row (the official default)
    noise_mode: NoiseMode = "const"
    mix: StyleMix | None = None
    edits: tuple[LatentEdit, ...] = ()

    def __post_init__(self) -> None:
        _set(self, "seed", check_seed(self.seed))
        if self.seed_b is not None:
            _set(self, "seed_b", check_seed(self.seed_b, "seed B"))
        _set(self, "t", check_number(self.t, "interpolation t", lo=0.0, hi=1.0))
        _set(self, "space", check_choice(self.space, INTERP_SPACES, "interpolation space"))
        _set(self, "psi", check_number(self.psi, "truncation psi", lo=-MAX_ABS_PSI, hi=MAX_ABS_PSI))
        if self.cutoff is not None:
            _set(self, "cutoff", check_int(self.cutoff, "truncation cutoff", lo=0, hi=MAX_CUTOFF))
        _set(self, "noise_mode", check_choice(self.noise_mode, NOISE_MODES, "noise mode"))
        if self.mix is not None and not isinstance(self.mix, StyleMix):
            raise SpecError(f"style mixing must be a StyleMix, got {self.mix!r}")
        edits = tuple(self.edits)
        if not all(isinstance(e, LatentEdit) for e in edits):
            raise SpecError("edits must be LatentEdit values")
        _set(self, "edits", edits)

    @property
    def interpolating(self) -> bool:
        """True when a second seed contributes (0 < t < 1 between two different seeds)."""
        return self.seed_b is not None and self.seed_b != self.seed and 0.0 < self.t < 1.0

    @property
    def seeds(self) -> list[int]:
        """Every seed whose latent is used (the recipe's record)."""
        out = [self.seed]
        if self.seed_b is not None and self.seed_b != self.seed and self.t > 0.0:
            out = [self.seed_b] if self.t >= 1.0 else [self.seed, self.seed_b]
        if self.mix is not None:
            out.append(self.mix.seed)
        return out

    def key(self) -> LatentSpec:
        """The same head with irrelevant fields normalised: a cache key (t = 0 ignores seed B, t = 1 is seed B)."""
        if self.seed_b is None or self.seed_b == self.seed or self.t == 0.0:
            return replace(self, seed_b=None, t=0.0, space="w")
        if self.t == 1.0:
            return replace(self, seed=self.seed_b, seed_b=None, t=0.0, space="w")
        return self


def mapped_ws(G: Any, z: torch.Tensor, latent: LatentSpec, c: torch.Tensor | None = None) -> torch.Tensor:
    """``ws [B, num_ws, w_dim]`` = mapping(z, c) with the latent's truncation (c=None: frontal conditioning)."""
    return G.mapping(z, c, truncation_psi=latent.psi, truncation_cutoff=latent.cutoff)


def _seed_ws(G: Any, seed: int, latent: LatentSpec, c: torch.Tensor | None) -> torch.Tensor:
    return mapped_ws(G, G.z_from_seed(seed), latent, c)


def make_ws(
    G: Any,
    latent: LatentSpec,
    c: torch.Tensor | None = None,
    directions: Mapping[str, torch.Tensor] | None = None,
) -> torch.Tensor:
    """``ws [1, num_ws, w_dim]`` for a latent spec (frontal conditioning unless the label ``c [1, 25]`` is given).

    ``directions`` maps an edit's direction name to a ``[w_dim]`` vector already scaled to one standard
    deviation; without it, edits are resolved for ``G`` by :mod:`gghead_core.directions`.
    """
    with torch.no_grad():
        if latent.interpolating and latent.space == "z":
            z = lat.slerp(G.z_from_seed(latent.seed), G.z_from_seed(latent.seed_b), float(latent.t))  # [1, z_dim]
            ws = mapped_ws(G, z, latent, c)
        elif latent.interpolating:
            assert latent.seed_b is not None  # interpolating implies a second seed
            t = float(latent.t)
            ws = (1.0 - t) * _seed_ws(G, latent.seed, latent, c) + t * _seed_ws(G, latent.seed_b, latent, c)
        elif latent.seed_b is not None and latent.t >= 1.0:
            ws = _seed_ws(G, latent.seed_b, latent, c)
        else:
            ws = _seed_ws(G, latent.seed, latent, c)
        if latent.mix is not None:
            ws = apply_mix(ws, _seed_ws(G, latent.mix.seed, latent, c), latent.mix)
        if latent.edits:
            ws = apply_edits(ws, latent.edits, resolve_directions(G, latent.edits, directions))
    return ws  # [1, num_ws, w_dim]


def apply_mix(ws: torch.Tensor, ws_mix: torch.Tensor, mix: StyleMix) -> torch.Tensor:
    """Style mixing with the row range checked against this model's ``num_ws`` (one sentence if outside)."""
    num_ws = ws.shape[1]
    end = num_ws if mix.end is None else mix.end
    if end > num_ws or mix.start >= num_ws:
        raise SpecError(f"style-mixing rows [{mix.start}, {end}) are outside this model's 0..{num_ws} ws rows")
    return lat.style_mix(ws, ws_mix, mix.start, end)


def apply_edits(ws: torch.Tensor, edits: Sequence[LatentEdit], directions: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """``ws [B, num_ws, w_dim]`` moved by each edit, in order (an edit of +a then -a returns the same ws)."""
    out = ws.clone()
    num_ws = ws.shape[1]
    for e in edits:
        end = num_ws if e.end is None else e.end
        if end > num_ws or e.start >= num_ws:
            raise SpecError(f"edit {e.direction}: rows [{e.start}, {end}) are outside this model's 0..{num_ws}")
        vec = directions[e.direction].to(device=out.device, dtype=out.dtype)  # [w_dim]
        if vec.shape != (ws.shape[2],):
            raise SpecError(f"direction {e.direction!r} has shape {tuple(vec.shape)}, expected ({ws.shape[2]},)")
        out[:, e.start:end] += e.amount * vec
    return out


def resolve_directions(
    G: Any, edits: Sequence[LatentEdit], directions: Mapping[str, torch.Tensor] | None
) -> Mapping[str, torch.Tensor]:
    names = [e.direction for e in edits]
    if directions is None:
        try:
            from gghead_core.directions import directions_for  # late: computing directions is optional work
        except ImportError:
            raise SpecError("this build cannot resolve latent directions (gghead_core.directions missing)") from None
        directions = directions_for(G, names)
    missing = [n for n in names if n not in directions]
    if missing:
        raise SpecError(f"unknown latent direction(s) {', '.join(sorted(set(missing)))} for this model")
    return directions


def generate(G: Any, latent: LatentSpec, directions: Mapping[str, torch.Tensor] | None = None) -> Gaussians:
    """The Gaussians (B=1) of one head."""
    with torch.no_grad():
        return G.synthesis(make_ws(G, latent, directions=directions), noise_mode=latent.noise_mode)


# --------------------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RenderSettings:
    """How frames are drawn: the renderer's keyword arguments, validated once."""

    resolution: int = 512
    backend: Backend = "auto"
    mode: Mode = "rgb"
    background: Background = "white"
    sh_ref: ShRef = "frontal"
    scale_modifier: float = 1.0
    depth_colormap: DepthColormap = "rainbow"

    def __post_init__(self) -> None:
        _set(self, "resolution", check_resolution(self.resolution))
        _set(self, "backend", check_choice(self.backend, BACKENDS, "backend"))
        _set(self, "mode", check_choice(self.mode, MODES, "mode"))
        _set(self, "background", parse_background(self.background))
        _set(self, "sh_ref", check_choice(self.sh_ref, SH_REFS, "SH reference"))
        _set(self, "scale_modifier", check_number(self.scale_modifier, "scale modifier", lo=0.0,
                                                  hi=MAX_SCALE_MODIFIER, lo_open=True))
        _set(self, "depth_colormap", check_choice(self.depth_colormap, DEPTH_COLORMAPS, "depth colour map"))

    @property
    def transparent(self) -> bool:
        return self.background == "transparent"

    def render_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`gghead_core.render.render` (after the Gaussians and the camera)."""
        return {
            "resolution": self.resolution,
            "backend": self.backend,
            "mode": self.mode,
            "background": self.background,
            "sh_ref": self.sh_ref,
            "scale_modifier": self.scale_modifier,
            "depth_colormap": self.depth_colormap,
        }


@dataclass(frozen=True)
class Frame:
    """One rendered frame: ``image [H, W, 3|4]`` uint8 (RGBA when the background is transparent) and the
    backend that actually drew it (``replay`` pins it, so a replay uses the same rasterizer)."""

    image: np.ndarray
    backend: str | None
    reason: str | None


RenderFn = Callable[..., Any]


def default_render_fn() -> RenderFn:
    from gghead_core.render import render  # late import: the renderer pulls in GL / gsplat lazily

    return render


def render_views(
    g: Gaussians, cameras: Sequence[Camera], settings: RenderSettings, render_fn: RenderFn | None = None
) -> Iterator[Frame]:
    """Render one head (``g`` with B=1) from each camera, yielding uint8 frames (RGBA when transparent)."""
    from gghead_core.export import to_uint8

    render = render_fn or default_render_fn()
    kwargs = settings.render_kwargs()
    if render_fn is None:
        kwargs["with_depth"] = False  # frames show image/alpha only (depth mode computes its own)
    for cam in cameras:
        with torch.no_grad():
            res = render(g, cam, **kwargs)
        img = res.rgba()[0] if settings.transparent else res.image[0]
        yield Frame(to_uint8(img), getattr(res, "backend", None), getattr(res, "backend_reason", None))


@dataclass(frozen=True)
class View:
    """A complete description of one image: the three parts of the vocabulary together."""

    latent: LatentSpec = field(default_factory=LatentSpec)
    camera: CameraSpec = field(default_factory=CameraSpec)
    settings: RenderSettings = field(default_factory=RenderSettings)
