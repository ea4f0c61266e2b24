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


def rainbow(values: torch.Tensor) -> torch.Tensor:
    """Map ``values [...]`` (clamped to [0, 1]) to colours ``[..., 3]``."""
    anchors = torch.tensor(_ANCHORS, dtype=torch.float32, device=values.device)
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


def depth_range(
    depth: torch.Tensor,  # [H, W] expected depth, 0 where nothing was hit
    alpha: torch.Tensor,  # [H, W]
) -> tuple[float, float] | None:
    """(near, far) camera-space depth in world units that :func:`depth_to_color` spans; None: nothing hit.

    The range comes from the pixels with alpha > 0.5 (the fringe of a head has unreliable depth); images that
    have none use every covered pixel.
    """
    covered = alpha > 0.5
    if not bool(covered.any()):
        covered = alpha > 0
    if not bool(covered.any()):
        return None
    d = depth[covered]
    return float(d.min()), float(d.max())


def depth_to_color(
    depth: torch.Tensor,  # [H, W] expected depth, 0 where nothing was hit
    alpha: torch.Tensor,  # [H, W]
    colormap_name: str = "rainbow",
) -> torch.Tensor:
    """Colour ``[H, W, 3]`` for a depth map: near = red (white in grey), far = blue (black), over the depth
    range of this image (:func:`depth_range`). Empty pixels get the colour of the far end (composited away
    later).
    """
    cmap = COLORMAPS[colormap_name]
    span_ends = depth_range(depth, alpha)
    if span_ends is None:
        return cmap(torch.zeros_like(depth))
    near, far = span_ends
    span = max(far - near, 1e-6)
    return cmap((far - depth) / span)
