"""A small rainbow colormap for depth display (dark blue -> cyan -> green -> yellow -> red), our own anchors.

Piecewise-linear through a few anchor colours chosen to be perceptually ordered like the popular "turbo"
map: dark ends, bright middle, no long flat stretches. Kept tiny on purpose: depth maps are for looking at.
"""

from __future__ import annotations

import torch

# (position in [0, 1], r, g, b)
_ANCHORS = (
    (0.00, 0.19, 0.07, 0.23),
    (0.13, 0.27, 0.40, 0.90),
    (0.28, 0.16, 0.73, 0.95),
    (0.42, 0.15, 0.93, 0.62),
    (0.55, 0.55, 0.98, 0.24),
    (0.68, 0.90, 0.82, 0.18),
    (0.82, 0.98, 0.48, 0.10),
    (0.93, 0.80, 0.18, 0.03),
    (1.00, 0.48, 0.02, 0.01),
)


_ANCHORS_ON: dict[torch.device, torch.Tensor] = {}


def _anchors(device: torch.device) -> torch.Tensor:
    """The anchor table on ``device``, copied there once (a per-frame copy to CUDA would sync the stream)."""
    table = _ANCHORS_ON.get(device)
    if table is None:
        table = _ANCHORS_ON[device] = torch.tensor(_ANCHORS, dtype=torch.float32).to(device)
    return table


def rainbow(values: torch.Tensor) -> torch.Tensor:
    """Map ``values [...]`` (clamped to [0, 1]) to colours ``[..., 3]``."""
    anchors = _anchors(values.device)
    pos, colors = anchors[:, 0].contiguous(), anchors[:, 1:]
    v = values.to(torch.float32).clamp(0.0, 1.0)
    hi = torch.searchsorted(pos, v.contiguous(), right=False).clamp(1, len(pos) - 1)  # [...]
    lo = hi - 1
    t = ((v - pos[lo]) / (pos[hi] - pos[lo])).unsqueeze(-1)
    return colors[lo] * (1 - t) + colors[hi] * t


def grey(values: torch.Tensor) -> torch.Tensor:
    """Map ``values [...]`` (clamped to [0, 1]) to grey levels ``[..., 3]`` (0 black, 1 white)."""
    v = values.to(torch.float32).clamp(0.0, 1.0)
    return v.unsqueeze(-1).expand(*v.shape, 3).contiguous()


COLORMAPS = {"rainbow": rainbow, "grey": grey}
"""Depth colour maps by name (the vocabulary's ``DepthColormap``); both map near to 1 (red / white)."""


def colormap(values: torch.Tensor, name: str = "rainbow") -> torch.Tensor:
    """``values [...]`` in [0, 1] -> colours ``[..., 3]`` with the named map (e.g. a colour bar's gradient)."""
    if name not in COLORMAPS:
        raise ValueError(f"unknown depth colour map {name!r} (choose from {', '.join(COLORMAPS)})")
    return COLORMAPS[name](values)


def _depth_bounds(depth: torch.Tensor, alpha: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(near, far, has_any)``, each ``[..., 1, 1]``: the range :func:`depth_to_color` spans per image.

    The range comes from the pixels with alpha > 0.5 (the fringe of a head has unreliable depth); images that
    have none use every covered pixel. Written with masked reductions only, so on CUDA it never waits for the
    GPU (no ``bool(tensor)``, no boolean indexing, no ``float(tensor)``).
    """
    dims = (-2, -1)
    strict = alpha > 0.5
    has_strict = strict.any(dim=-1, keepdim=True).any(dim=-2, keepdim=True)  # [..., 1, 1]
    covered = torch.where(has_strict, strict, alpha > 0)
    inf = torch.tensor(float("inf"), dtype=depth.dtype, device=depth.device)
    near = torch.where(covered, depth, inf).amin(dim=dims, keepdim=True)  # [..., 1, 1]
    far = torch.where(covered, depth, -inf).amax(dim=dims, keepdim=True)
    has_any = covered.any(dim=-1, keepdim=True).any(dim=-2, keepdim=True)
    return near, far, has_any


def depth_range(
    depth: torch.Tensor,  # [H, W] expected depth, 0 where nothing was hit
    alpha: torch.Tensor,  # [H, W]
) -> tuple[float, float] | None:
    """(near, far) camera-space depth in world units that :func:`depth_to_color` spans for one image (the
    viewer's colour bar); None: nothing hit. Reads the values back to the host, once per displayed frame."""
    near, far, has_any = _depth_bounds(depth, alpha)
    if not bool(has_any):
        return None
    return float(near), float(far)


def depth_to_color(
    depth: torch.Tensor,  # [..., H, W] expected depth, 0 where nothing was hit
    alpha: torch.Tensor,  # [..., H, W]
    colormap_name: str = "rainbow",
) -> torch.Tensor:
    """Colour ``[..., H, W, 3]`` for depth maps: near = red (white in grey), far = blue (black), over the depth
    range of each image (:func:`depth_range`); images with no covered pixel get the far colour everywhere
    (composited away later). No host syncs."""
    near, far, has_any = _depth_bounds(depth, alpha)
    span = (far - near).clamp_min(1e-6)
    values = torch.where(has_any, (far - depth) / torch.where(has_any, span, torch.ones_like(span)),
                         torch.zeros_like(depth))
    return COLORMAPS[colormap_name](values)
