"""Debug views of a head's Gaussians: highlight a selection, show only it, centres as points, an opacity floor,
and picking the Gaussian under a pixel.

Everything here is a pure function of Gaussians, so the viewer's worker applies it *before* rendering and every
backend (torch reference, OpenGL, gsplat) shows the same thing; nothing in the rasterizers knows about it.

* :class:`InspectSpec` -- what to show (frozen, validated when made, like the rest of the vocabulary). The
  selection is a box of UV texels (the UV inspector's hover or drag) plus one picked Gaussian; it lives in the
  viewer's state, never in a :class:`~gghead_core.pipeline.LatentSpec` (it changes the picture, not the head).
* :func:`selection_indices` -- the box resolved to Gaussian indices through
  :class:`~gghead_core.uv_maps.TexelMapping` (the owner-texel rule).
* :func:`inspect_view` -- ``Gaussians -> Gaussians``: tint, hide, points.
* :func:`pick_gaussian` -- the front-most Gaussian with significant opacity whose 2D footprint covers a pixel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from gghead_core.gaussians import Gaussians
from gghead_core.vocabulary import SpecError, check_int, check_number

__all__ = [
    "InspectSpec",
    "inspect_view",
    "inspect_view_indexed",
    "pick_gaussian",
    "selection_indices",
    "selection_mask",
]

SH_C0 = 0.28209479177387814
PICK_MIN_ALPHA = 0.05  # a footprint "covers" a pixel where opacity * exp(-d^2/2) reaches this (1/255 is invisible)
LOW_PASS = 0.3  # the rasterizers' 2D dilation (spec 4.4): footprints are picked as they are drawn
NEAR_CULL = 0.2  # the rasterizers' near cull (spec 4.4)
MAX_TEXEL_INDEX = 1 << 16  # plane resolutions are <= 1024 in practice; this only keeps junk out


def _set(obj: Any, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)


def _check_rgb(value: Any, what: str) -> tuple[float, float, float]:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 3:
        raise SpecError(f"{what} must be three numbers R,G,B in [0, 1], got {value!r}")
    rgb = tuple(check_number(v, what, lo=0.0, hi=1.0) for v in value)
    if len(rgb) != 3:  # an object whose len() and iteration disagree
        raise SpecError(f"{what} must be three numbers R,G,B in [0, 1], got {value!r}")
    return rgb


@dataclass(frozen=True)
class InspectSpec:
    """How the viewer's debug view changes the Gaussians before they are drawn.

    ``box``: UV texels ``(row0, col0, row1, col1)``, half-open, whose Gaussians are selected (a 1x1 box that owns
    no Gaussian selects the nearest one, as hovering does). ``picked``: one Gaussian index marked by a click in
    the 3D view (tinted with ``pick_tint``). ``highlight`` tints the selection toward ``tint`` by
    ``tint_strength``; ``show_only`` hides every unselected Gaussian; ``centres`` draws each Gaussian as an
    opaque isotropic dot of radius ``centre_size`` (world units) at its mean; ``opacity_threshold`` hides
    Gaussians whose opacity is below it. The scale multiplier stays in
    :class:`~gghead_core.pipeline.RenderSettings` (the renderers apply it).
    """

    box: tuple[int, int, int, int] | None = None
    picked: int | None = None
    highlight: bool = True
    show_only: bool = False
    centres: bool = False
    centre_size: float = 0.002
    opacity_threshold: float = 0.0
    tint: tuple[float, float, float] = (1.0, 0.0, 0.85)
    tint_strength: float = 0.75
    pick_tint: tuple[float, float, float] = (0.0, 0.9, 1.0)

    def __post_init__(self) -> None:
        if self.box is not None:
            box = self.box
            if isinstance(box, (str, bytes)) or not hasattr(box, "__len__") or len(box) != 4:
                raise SpecError(f"the UV box must be four texel indices row0,col0,row1,col1, got {box!r}")
            r0, c0, r1, c1 = (check_int(v, "UV box texel index", lo=0, hi=MAX_TEXEL_INDEX) for v in box)
            if r1 <= r0 or c1 <= c0:
                raise SpecError(f"the UV box ({r0}, {c0}, {r1}, {c1}) is empty: row1 > row0 and col1 > col0 needed")
            _set(self, "box", (r0, c0, r1, c1))
        if self.picked is not None:
            _set(self, "picked", check_int(self.picked, "picked Gaussian index", lo=0))
        for name in ("highlight", "show_only", "centres"):
            if not isinstance(getattr(self, name), bool):
                raise SpecError(f"inspect {name} must be true or false, got {getattr(self, name)!r}")
        _set(self, "centre_size", check_number(self.centre_size, "centre dot size", lo=0.0, hi=1.0, lo_open=True))
        _set(self, "opacity_threshold", check_number(self.opacity_threshold, "opacity threshold", lo=0.0, hi=1.0))
        _set(self, "tint", _check_rgb(self.tint, "highlight tint"))
        _set(self, "pick_tint", _check_rgb(self.pick_tint, "pick tint"))
        _set(self, "tint_strength", check_number(self.tint_strength, "tint strength", lo=0.0, hi=1.0))

    @property
    def has_selection(self) -> bool:
        return self.box is not None

    @property
    def changes_view(self) -> bool:
        """False when :func:`inspect_view` would return the Gaussians unchanged (the worker skips it)."""
        tinting = self.highlight and self.tint_strength > 0 and (self.box is not None or self.picked is not None)
        return tinting or self.show_only or self.centres or self.opacity_threshold > 0

    def cleared(self) -> InspectSpec:
        """The same view options without a selection."""
        return replace(self, box=None, picked=None)


def selection_indices(spec: InspectSpec | None, mapping: Any) -> np.ndarray:
    """Indices (ascending, int64) of the Gaussians the spec's UV box selects through ``mapping``
    (:class:`~gghead_core.uv_maps.TexelMapping`); a 1x1 box falls back to the nearest Gaussian like a hover."""
    if spec is None or spec.box is None:
        return np.zeros(0, np.int64)
    r0, c0, r1, c1 = spec.box
    if r1 - r0 == 1 and c1 - c0 == 1:
        return mapping.select(r0, c0)
    return mapping.gaussians_in_box(r0, c0, r1, c1)


def selection_mask(selection: Any, n: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """``[N]`` bool from indices (array/tensor/list) or a bool mask; out-of-range indices are refused."""
    if selection is None:
        return torch.zeros(n, dtype=torch.bool, device=device)
    sel = torch.as_tensor(np.asarray(selection) if not isinstance(selection, torch.Tensor) else selection)
    if sel.dtype == torch.bool:
        if sel.shape != (n,):
            raise ValueError(f"a selection mask must have shape [{n}], got {tuple(sel.shape)}")
        return sel.to(device)
    sel = sel.reshape(-1).long()
    if sel.numel() and (int(sel.min()) < 0 or int(sel.max()) >= n):
        raise ValueError(f"selection indices must be in 0..{n - 1}")
    mask = torch.zeros(n, dtype=torch.bool, device=device)
    mask[sel.to(device)] = True
    return mask


def _tint_sh(sh: torch.Tensor, rows: torch.Tensor, rgb: tuple[float, float, float], strength: float) -> torch.Tensor:
    """SH ``[N, K, 3]`` with the rows' colour moved toward ``rgb``: for every view direction the evaluated colour
    becomes ``(1 - s) * colour + s * rgb`` (DC carries the tint, higher orders are scaled by ``1 - s``)."""
    out = sh.clone()
    s = float(strength)
    target = torch.tensor(rgb, dtype=sh.dtype, device=sh.device)
    dc = sh[rows, 0, :]
    colour = SH_C0 * dc + 0.5
    out[rows, 0, :] = ((1.0 - s) * colour + s * target - 0.5) / SH_C0
    out[rows, 1:, :] = sh[rows, 1:, :] * (1.0 - s)
    return out


def inspect_view_indexed(g: Gaussians, selection: Any, options: InspectSpec | None) -> tuple[Gaussians, torch.Tensor]:
    """:func:`inspect_view` plus the original index of each Gaussian kept (``[M]`` int64), so a pick in the view
    maps back to the head's Gaussian. ``g`` must hold one head (B = 1)."""
    if g.batch_size != 1:
        raise ValueError(f"inspect_view works on one head (B = 1), got B = {g.batch_size}")
    n = g.num_gaussians
    device = g.device
    if options is None:
        return g, torch.arange(n, device=device)
    sel = selection_mask(selection, n, device)
    means, quats, scales = g.means[0], g.quats[0], g.scales[0]
    opac, sh = g.opacities[0], g.sh[0]
    keep = torch.ones(n, dtype=torch.bool, device=device)
    if options.opacity_threshold > 0:
        keep &= opac >= options.opacity_threshold
    if options.show_only:
        picked_mask = torch.zeros_like(sel)
        if options.picked is not None and options.picked < n:
            picked_mask[options.picked] = True
        keep &= sel | picked_mask
    if options.highlight and options.tint_strength > 0:
        if bool(sel.any()):
            sh = _tint_sh(sh, sel, options.tint, options.tint_strength)
        if options.picked is not None and options.picked < n:
            one = torch.zeros_like(sel)
            one[options.picked] = True
            sh = _tint_sh(sh, one, options.pick_tint, 1.0)
    if options.centres:
        scales = torch.full_like(scales, float(options.centre_size))
        quats = torch.zeros_like(quats)
        quats[:, 0] = 1.0
        opac = torch.ones_like(opac)
    idx = torch.nonzero(keep).squeeze(1)
    if idx.numel() == n:
        view = Gaussians(means=means[None], quats=quats[None], scales=scales[None], opacities=opac[None], sh=sh[None])
    else:
        view = Gaussians(means=means[idx][None], quats=quats[idx][None], scales=scales[idx][None],
                         opacities=opac[idx][None], sh=sh[idx][None])
    return view, idx


def inspect_view(g: Gaussians, selection: Any, options: InspectSpec | None) -> Gaussians:
    """The Gaussians as the debug view draws them (a new value; ``g`` is not modified).

    ``selection``: the selected Gaussians (indices or an ``[N]`` bool mask; see :func:`selection_indices`).
    Order of effects: opacity floor and "show only" remove Gaussians; highlight tints the selection (and the
    picked Gaussian with ``pick_tint``); centres replace every shape by a small opaque dot. Unselected Gaussians
    keep every value bit for bit, so a highlight changes only the pixels the selection reaches.
    """
    return inspect_view_indexed(g, selection, options)[0]


def _quat_to_rotmat(q: torch.Tensor) -> torch.Tensor:
    """``[N, 4]`` (w, x, y, z), normalised first -> ``[N, 3, 3]`` (the convention of :class:`Gaussians`)."""
    q = q / q.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    w, x, y, z = q.unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], dim=-1).reshape(q.shape[:-1] + (3, 3))


def pick_gaussian(
    g: Gaussians,
    camera: Any,
    resolution: int | tuple[int, int],
    x: float,
    y: float,
    *,
    scale_modifier: float = 1.0,
    min_alpha: float = PICK_MIN_ALPHA,
) -> int | None:
    """Index of the front-most Gaussian whose footprint covers pixel position ``(x, y)``, or None.

    ``(x, y)`` are pixel-index coordinates of the rendered image (pixel ``(i, j)`` has its centre at
    ``(i, j)``; a mouse at ``u`` pixels from the image's left edge is at ``x = u - 0.5``). A Gaussian covers the
    point when its alpha there, ``opacity * exp(-1/2 d^T Sigma2D^-1 d)`` with the rasterizers' EWA covariance
    (0.3 px dilation, same projection and near cull), reaches ``min_alpha``: the same quantity the rasterizers
    blend, so the pick is the first Gaussian that visibly contributes to that pixel. ``g`` must hold one head.
    """
    if g.batch_size != 1:
        raise ValueError(f"pick_gaussian works on one head (B = 1), got B = {g.batch_size}")
    if not 0.0 < float(min_alpha) < 1.0:
        raise ValueError(f"min_alpha must be between 0 and 1, got {min_alpha}")
    if not hasattr(camera, "world2cam"):
        camera = camera.to_camera()  # a CameraSpec
    width, height = (resolution, resolution) if isinstance(resolution, int) else resolution
    dev, dt = g.device, torch.float64
    viewmat = torch.as_tensor(camera.world2cam(), dtype=dt, device=dev)
    K = torch.as_tensor(camera.intrinsics_pixels(int(width), int(height)), dtype=dt, device=dev)
    means = g.means[0].to(dt)
    p_cam = means @ viewmat[:3, :3].T + viewmat[:3, 3]  # [N, 3]
    z = p_cam[:, 2]
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    zs = z.clamp_min(1e-9)
    mx = fx * p_cam[:, 0] / zs + cx - 0.5
    my = fy * p_cam[:, 1] / zs + cy - 0.5
    # Cheap pre-filter, conservative: alpha >= min_alpha needs a Mahalanobis distance below
    # sqrt(2 ln(1 / min_alpha)) (2.45 for 0.05; we allow 3), and the 2D standard deviation is at most
    # (f / z) s_max sqrt(1 + (x/z)^2 + (y/z)^2) (the Jacobian's largest singular value) plus the dilation.
    smax = g.scales[0].to(dt).max(dim=1).values * float(scale_modifier)
    lim_x, lim_y = 1.3 * 0.5 * width / fx, 1.3 * 0.5 * height / fy
    jnorm = torch.sqrt(1 + torch.minimum(p_cam[:, 0].abs() / zs, lim_x) ** 2
                       + torch.minimum(p_cam[:, 1].abs() / zs, lim_y) ** 2)
    sigma_max = max(3.0, math.sqrt(2.0 * math.log(1.0 / min_alpha)))
    reach = sigma_max * (fx * smax / zs * jnorm + math.sqrt(LOW_PASS)) + 1.0
    near = (z > NEAR_CULL) & ((mx - x).abs() <= reach) & ((my - y).abs() <= reach)
    near &= g.opacities[0] >= min_alpha
    idx = torch.nonzero(near).squeeze(1)
    if idx.numel() == 0:
        return None
    rot = _quat_to_rotmat(g.quats[0][idx].to(dt))  # [M, 3, 3]
    rs = rot * (g.scales[0][idx].to(dt) * float(scale_modifier))[:, None, :]
    cov_cam = viewmat[:3, :3] @ (rs @ rs.transpose(1, 2)) @ viewmat[:3, :3].T
    zz = z[idx]
    # The rasterizers clamp x/z, y/z to 1.3 tan(fov/2) in the Jacobian; only off-screen Gaussians are affected.
    tx = (p_cam[idx, 0] / zz).clamp(-lim_x, lim_x) * zz
    ty = (p_cam[idx, 1] / zz).clamp(-lim_y, lim_y) * zz
    zeros = torch.zeros_like(zz)
    jac = torch.stack([fx / zz, zeros, -fx * tx / zz**2, zeros, fy / zz, -fy * ty / zz**2], dim=-1).reshape(-1, 2, 3)
    cov2d = jac @ cov_cam @ jac.transpose(1, 2)
    a, b, c = cov2d[:, 0, 0] + LOW_PASS, cov2d[:, 0, 1], cov2d[:, 1, 1] + LOW_PASS
    det = a * c - b * b
    dx, dy = x - mx[idx], y - my[idx]
    power = -0.5 * (c * dx * dx - 2 * b * dx * dy + a * dy * dy) / det
    alpha = (g.opacities[0][idx].to(dt) * torch.exp(power)).clamp(max=0.99)
    hit = alpha >= min_alpha
    if not bool(hit.any()):
        return None
    cand = idx[hit]
    return int(cand[torch.argmin(zz[hit])])
