"""Pure-PyTorch reference rasterizer: the standard 3D Gaussian Splatting forward pass (spec 4.4).

This is the renderer the fast backends (gsplat, OpenGL) are checked against, so it follows the semantics of
the CUDA rasterizer GGHead was trained with, step by step:

1. Cull Gaussians whose camera-space depth is <= 0.2 (``NEAR_CULL``).
2. 3D covariance ``Sigma = R diag(s^2) R^T`` from the unit quaternion (w, x, y, z) and the scales.
3. EWA projection: ``Sigma2D = J W Sigma W^T J^T + 0.3 I`` with ``W`` the world->camera rotation and ``J`` the
   Jacobian of the pinhole projection at the Gaussian's centre, whose x/z and y/z are clamped to
   +-1.3 tan(fov/2) first (per axis, ``tan(fov_x/2) = width / (2 fx)``); 0.3 is the low-pass dilation.
4. Screen radius ``ceil(3 sqrt(lambda_max))`` with ``lambda = mid +- sqrt(max(0.1, mid^2 - det))``; the
   Gaussian is listed in every 16x16 tile its radius box touches (Gaussians touching no tile are culled).
5. Per pixel, the Gaussians of its tile in increasing depth order:
   ``alpha = min(0.99, opacity * exp(-0.5 d^T Sigma2D^-1 d))``, skipped when ``alpha < 1/255``;
   ``C += colour * alpha * T``, ``T *= 1 - alpha``; the pixel stops *before* a Gaussian that would make
   ``T * (1 - alpha) < 1e-4``.
6. ``rgb = C + T * background``; also ``alpha = 1 - T`` and the accumulated depth ``sum_i w_i z_i``.

Pixel convention. 3DGS maps NDC to pixels with ``pix = ((ndc + 1) * W - 1) / 2`` and compares that with the
integer pixel index. With ``ndc_x = x / (z tan(fov_x/2))`` and ``fx = W / (2 tan(fov_x/2))``, ``cx = W/2`` this is
``mean_px = fx * x / z + cx - 0.5`` against integer pixel indices -- equivalently ``fx x / z + cx`` against
pixel centres ``i + 0.5`` (gsplat's convention). We use the first form with ``fx, fy, cx, cy`` from ``K``.

Speed without losing the semantics: Gaussians are bucketed into 16x16 tiles exactly as 3DGS does
(``_tile_lists``), then all tiles advance together through their depth-sorted lists, a chunk of Gaussians
per step ("wavefront", ``_composite``; ``chunk_size`` while many tiles are active, up to 256 when few are).
Inside a chunk the transmittance is a cumulative product; the 1e-4 stop is exact because ``T`` only
decreases: a Gaussian contributes iff the running product *including* its own factor is still >= 1e-4, and
once a pixel has stopped the carried product stays below 1e-4, so nothing later contributes. Tiles whose
pixels have all stopped leave the wavefront. Memory is bounded by ``block_elems`` (pixels x Gaussians per
step) and ``max_pairs`` (tile/Gaussian pairs per band of tile rows), not by the image size or the number of
Gaussians. Two rewrites that are exact up to float rounding: ``opacity * exp(power)`` is computed as
``exp(power + log(opacity))``, and 3DGS's "skip if the exponent is positive" is applied per Gaussian (a
positive exponent needs a conic that is not positive definite, which the +0.3 low pass rules out; such
Gaussians are dropped in ``project_gaussians``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

NEAR_CULL = 0.2  # camera-space depth at or below which a Gaussian is dropped
LOW_PASS = 0.3  # added to the diagonal of every 2D covariance
FOV_CLAMP = 1.3  # x/z, y/z clamped to +-1.3 tan(fov/2) in the EWA Jacobian
ALPHA_MAX = 0.99
ALPHA_MIN = 1.0 / 255.0
T_STOP = 1e-4
_MAX_CHUNK = 256  # largest number of Gaussians per tile blended in one step
TILE = 16  # 3DGS tile size: decides which Gaussians a pixel sees (the radius box is snapped to tiles)

# The single "alpha < 1/255 -> 0" step uses threshold(x, t, 0) = x if x > t else 0; the float32 just below
# float32(1/255) turns its strict ">" into the CUDA rasterizer's "alpha >= 1.0f/255.0f" keep rule.
_ALPHA_MIN_STRICT = float(np.nextafter(np.float32(ALPHA_MIN), np.float32(0.0)))
_T_STOP_STRICT = float(np.nextafter(np.float32(T_STOP), np.float32(0.0)))  # keep T >= 1e-4 (float32)


@dataclass
class ProjectedGaussians:
    """Screen-space Gaussians that survived culling, sorted front to back (``M`` of them)."""

    means2d: torch.Tensor  # [M, 2] pixel-index coordinates (pixel (i, j) is at (i, j))
    conics: torch.Tensor  # [M, 3] (a, b, c): Sigma2D^-1 = [[a, b], [b, c]]
    opacities: torch.Tensor  # [M]
    features: torch.Tensor  # [M, 5] r, g, b, depth, 1 (the 1 accumulates the weight sum)
    depths: torch.Tensor  # [M] camera-space z
    radii: torch.Tensor  # [M] int64, pixels
    tile_min: torch.Tensor  # [M, 2] int64 (x, y), inclusive
    tile_max: torch.Tensor  # [M, 2] int64 (x, y), exclusive


def quat_to_rotmat(quats: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``[N, 3, 3]`` from quaternions ``[N, 4]`` (w, x, y, z); normalised first like 3DGS."""
    q = quats / quats.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    w, x, y, z = q.unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(q.shape[:-1] + (3, 3))


def project_gaussians(
    means: torch.Tensor,  # [N, 3]
    quats: torch.Tensor,  # [N, 4]
    scales: torch.Tensor,  # [N, 3]
    opacities: torch.Tensor,  # [N]
    colors: torch.Tensor,  # [N, 3]
    viewmat: torch.Tensor,  # [4, 4] world -> camera (OpenCV)
    K: torch.Tensor,  # [3, 3] pixel intrinsics
    width: int,
    height: int,
) -> ProjectedGaussians:
    """Steps 1-4 of the module docstring; returns the visible Gaussians sorted by depth."""
    rot_wc, trans_wc = viewmat[:3, :3], viewmat[:3, 3]
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]

    p_cam = means @ rot_wc.T + trans_wc  # [N, 3]
    keep = p_cam[:, 2] > NEAR_CULL
    p_cam, quats, scales = p_cam[keep], quats[keep], scales[keep]
    opacities, colors = opacities[keep], colors[keep]
    x, y, z = p_cam.unbind(-1)

    # 3D covariance R diag(s^2) R^T, then into camera axes.
    rs = quat_to_rotmat(quats) * scales[:, None, :]  # [M, 3, 3] = R diag(s)
    cov_world = rs @ rs.transpose(1, 2)
    cov_cam = rot_wc @ cov_world @ rot_wc.T  # [M, 3, 3]

    # EWA Jacobian at the clamped centre. For a centred principal point the limits are 1.3 tan(fov/2) as in
    # 3DGS; the (W - cx) / fx form is gsplat's generalisation to an off-centre one.
    tan_fovx, tan_fovy = 0.5 * width / fx, 0.5 * height / fy
    lim_x_pos = (width - cx) / fx + (FOV_CLAMP - 1) * tan_fovx
    lim_x_neg = cx / fx + (FOV_CLAMP - 1) * tan_fovx
    lim_y_pos = (height - cy) / fy + (FOV_CLAMP - 1) * tan_fovy
    lim_y_neg = cy / fy + (FOV_CLAMP - 1) * tan_fovy
    tx = torch.minimum(torch.maximum(x / z, -lim_x_neg), lim_x_pos) * z
    ty = torch.minimum(torch.maximum(y / z, -lim_y_neg), lim_y_pos) * z
    zeros = torch.zeros_like(z)
    jac = torch.stack(
        [fx / z, zeros, -fx * tx / (z * z), zeros, fy / z, -fy * ty / (z * z)], dim=-1
    ).reshape(-1, 2, 3)
    cov2d = jac @ cov_cam @ jac.transpose(1, 2)  # [M, 2, 2]
    a = cov2d[:, 0, 0] + LOW_PASS
    b = cov2d[:, 0, 1]
    c = cov2d[:, 1, 1] + LOW_PASS

    det = a * c - b * b
    mid = 0.5 * (a + c)
    lambda_max = mid + torch.sqrt(torch.clamp_min(mid * mid - det, 0.1))
    radii = torch.ceil(3.0 * torch.sqrt(lambda_max))
    means2d = torch.stack([fx * x / z + cx - 0.5, fy * y / z + cy - 0.5], dim=-1)  # see module docstring

    # 3DGS's getRect: tiles [floor((p - r) / 16), floor((p + r + 15) / 16)) clamped to the grid.
    # (built on the host, copied without a stream sync: a blocking H2D copy would serialise CPU and GPU)
    grid = torch.tensor([math.ceil(width / TILE), math.ceil(height / TILE)]).to(means.device, non_blocking=True)
    r = radii[:, None]
    tile_min = torch.minimum(torch.clamp_min(torch.floor((means2d - r) / TILE), 0).long(), grid)
    tile_max = torch.minimum(torch.clamp_min(torch.floor((means2d + r + TILE - 1) / TILE), 0).long(), grid)
    touches = (tile_max - tile_min).prod(dim=-1) > 0
    # det > 0 always holds mathematically after the low-pass (3DGS only tests det == 0); a non-positive-
    # definite conic would make the "exponent > 0 -> skip" rule fire, so dropping it here is equivalent.
    visible = touches & (det > 0)

    order = torch.argsort(z[visible], stable=True)  # front to back
    sel = torch.nonzero(visible).squeeze(1)[order]
    det_s = det[sel]
    conics = torch.stack([c[sel] / det_s, -b[sel] / det_s, a[sel] / det_s], dim=-1)
    ones = torch.ones_like(det_s)
    features = torch.cat([colors[sel], z[sel, None], ones[:, None]], dim=-1)
    return ProjectedGaussians(
        means2d=means2d[sel],
        conics=conics,
        opacities=opacities[sel],
        features=features,
        depths=z[sel],
        radii=radii[sel].long(),
        tile_min=tile_min[sel],
        tile_max=tile_max[sel],
    )


@dataclass
class _TileLists:
    """For one band of tile rows: which Gaussians (front to back) each tile sees, as one flat list."""

    gaussian_ids: torch.Tensor  # [P] indices into ProjectedGaussians, grouped by tile, depth order inside
    start: torch.Tensor  # [n_tiles] offset of each tile's group in gaussian_ids
    count: torch.Tensor  # [n_tiles] length of each tile's group


def _tile_lists(tile_min: torch.Tensor, tile_max: torch.Tensor, row0: int, row1: int, grid_w: int) -> _TileLists:
    """Bucket Gaussians (already depth-sorted) into the tiles of rows ``[row0, row1)``.

    Tile ids are local to the band: ``(ty - row0) * grid_w + tx``. Like 3DGS's duplicate-and-sort, but a
    stable sort on the tile id keeps the depth order within each tile without a combined key.
    """
    device = tile_min.device
    n_tiles = (row1 - row0) * grid_w
    # int32 pair arrays: half the memory traffic of int64, and the sort below is faster on them.
    x0 = tile_min[:, 0].int()
    y0 = tile_min[:, 1].clamp(min=row0).int()
    nx = (tile_max[:, 0] - tile_min[:, 0]).int()
    ny = (tile_max[:, 1].clamp(max=row1).int() - y0).clamp_min(0)
    counts = nx * ny  # [M] tiles touched in this band
    total = int(counts.sum())
    if total == 0:
        empty = torch.zeros(n_tiles, dtype=torch.long, device=device)
        return _TileLists(torch.zeros(0, dtype=torch.long, device=device), empty, empty)
    gid = torch.repeat_interleave(torch.arange(len(counts), dtype=torch.int32, device=device), counts,
                                  output_size=total)  # [P]; output_size spares a second device->host read
    first = torch.cumsum(counts, 0, dtype=torch.int32) - counts
    local = torch.arange(total, dtype=torch.int32, device=device) - first[gid]
    row_len = nx[gid]
    tile_id = (y0[gid] - row0 + local // row_len) * grid_w + x0[gid] + local % row_len
    tile_id, order = torch.sort(tile_id, stable=True)
    count = torch.bincount(tile_id, minlength=n_tiles)
    start = torch.cumsum(count, 0) - count
    return _TileLists(gid[order].long(), start, count)


def _row_bands(tile_min: torch.Tensor, tile_max: torch.Tensor, grid_w: int, grid_h: int, max_pairs: int):
    """Split the tile rows into bands holding at most ``max_pairs`` tile/Gaussian pairs each (one row at least)."""
    nx = tile_max[:, 0] - tile_min[:, 0]
    per_row = torch.zeros(grid_h + 1, dtype=torch.long, device=tile_min.device)
    per_row.index_add_(0, tile_min[:, 1], nx)
    per_row.index_add_(0, tile_max[:, 1], -nx)
    pairs_per_row: list[int] = torch.cumsum(per_row, 0)[:grid_h].tolist()
    bands, row0, acc = [], 0, 0
    for row, n in enumerate(pairs_per_row):
        if row > row0 and acc + n > max_pairs:
            bands.append((row0, row))
            row0, acc = row, 0
        acc += n
    bands.append((row0, grid_h))
    return bands


def _composite(
    proj: ProjectedGaussians,
    lists: _TileLists,
    row0: int,
    grid_w: int,
    width: int,
    height: int,
    chunk_size: int,
    block_elems: int,
) -> torch.Tensor:
    """Front-to-back compositing of one band of tiles; returns ``[n_tiles, 256, 5]`` (rgb, depth, weight sum)."""
    device, dtype = proj.means2d.device, proj.means2d.dtype
    n_tiles = lists.count.numel()
    pix = torch.arange(TILE, device=device, dtype=dtype)
    tile_x0 = (torch.arange(n_tiles, device=device) % grid_w * TILE).to(dtype)  # [n_tiles]
    tile_y0 = ((torch.arange(n_tiles, device=device) // grid_w + row0) * TILE).to(dtype)
    # Pixels outside the image start "finished" (T = 0), so they never keep a tile in the wavefront.
    inside = ((tile_y0[:, None, None] + pix[None, :, None]) < height) & (
        (tile_x0[:, None, None] + pix[None, None, :]) < width
    )  # [n_tiles, 16 (y), 16 (x)]
    trans = inside.reshape(n_tiles, TILE * TILE).to(dtype)  # [n_tiles, 256] running product of (1 - alpha)
    accum = torch.zeros(n_tiles, TILE * TILE, 5, dtype=dtype, device=device)

    # One gather per chunk instead of one per attribute: [M, 11] = mean x, y | conic a, b, c | log opacity |
    # r, g, b, depth, 1. log(opacity) lets exp() produce opacity * exp(power) in one pass; opacity <= 0
    # (GGHead allows -0.001) gives -inf, i.e. alpha 0 < 1/255: skipped, as the CUDA rasterizer skips it.
    log_opacity = torch.log(proj.opacities.clamp_min(0))[:, None]
    table = torch.cat([proj.means2d, proj.conics, log_opacity, proj.features], dim=1)
    table = torch.cat([table, table.new_zeros(1, table.shape[1])])  # last row: padding for short lists
    table[-1, 5] = float("-inf")
    padded_ids = torch.cat([lists.gaussian_ids, lists.gaussian_ids.new_full((1,), len(table) - 1)])

    # All active tiles advance through their lists in lockstep, so one counter says how far. The chunk
    # grows when few tiles are left (long silhouette lists, tiny images): fewer, fuller steps, same memory.
    active = torch.nonzero(lists.count > 0).squeeze(1)
    consumed = 0
    while active.numel() > 0:
        g = min(max(chunk_size, block_elems // (TILE * TILE * active.numel())), _MAX_CHUNK)
        lane = torch.arange(g, device=device)
        for tiles in active.split(max(1, block_elems // (TILE * TILE * g))):
            # The next g entries of each tile's list; positions past a tile's end read the padding row.
            pos = lists.start[tiles, None] + consumed + lane  # [n, g]
            past_end = lane >= (lists.count[tiles, None] - consumed)
            gid = torch.where(past_end, len(padded_ids) - 1, pos)
            rows = table[padded_ids[gid]]  # [n, g, 11]
            color, t_end = _blend_chunk(rows, tile_x0[tiles], tile_y0[tiles], pix, trans[tiles])
            accum[tiles] += color  # tiles are distinct (index_add_ is a slow scatter on CPU)
            trans[tiles] = t_end
        consumed += g
        more = lists.count[active] > consumed
        alive = (trans[active] >= T_STOP).any(dim=1)
        active = active[more & alive]
    return accum


def _blend_chunk(
    rows: torch.Tensor,  # [n, G, 11] Gaussians of n tiles, front to back (see ``table`` above)
    tile_x0: torch.Tensor,  # [n] left pixel of each tile
    tile_y0: torch.Tensor,  # [n] top pixel of each tile
    pix: torch.Tensor,  # [16] 0..15
    t_start: torch.Tensor,  # [n, 256] running transmittance before this chunk
) -> tuple[torch.Tensor, torch.Tensor]:
    """Blend one chunk of Gaussians into 16x16 tiles; returns (``[n, 256, 5]`` added features, ``[n, 256]`` T)."""
    n, g = rows.shape[:2]
    mx, my, a, b, c, log_op = (rows[:, None, :, i] for i in range(6))  # each [n, 1, G]
    # d = pixel - mean per column (x) and per row (y) of the tile. The quadratic form is separable except
    # for the cross term: power[y, x] = qy[y] + qx[x] + (-b dx[x]) dy[y].
    dx = (tile_x0[:, None, None] + pix[None, :, None]) - mx  # [n, 16 (x), G]
    dy = (tile_y0[:, None, None] + pix[None, :, None]) - my  # [n, 16 (y), G]
    qx = -0.5 * a * dx * dx  # [n, 16 (x), G]
    qy = -0.5 * c * dy * dy + log_op  # [n, 16 (y), G]
    power = torch.addcmul(qx[:, None], (-b * dx)[:, None], dy[:, :, None])  # [n, 16 (y), 16 (x), G]
    power += qy[:, :, None]
    alpha = torch.exp_(power).clamp_max_(ALPHA_MAX).reshape(n, TILE * TILE, g)  # [n, 256, G]
    alpha = torch.nn.functional.threshold(alpha, _ALPHA_MIN_STRICT, 0.0)

    # prods[..., j] = T before Gaussian j, prods[..., j + 1] = T after it (running product of 1 - alpha).
    one_minus = 1.0 - alpha
    prods = torch.cat([t_start[..., None], one_minus], dim=-1).cumprod_(dim=-1)  # [n, 256, G + 1]
    # A pixel stops before a Gaussian that would take T below 1e-4: zero the "T after" of those (T only
    # decreases, so they are exactly the Gaussians at and behind the stop). The weight alpha_j * T_before_j
    # equals alpha_j / (1 - alpha_j) * T_after_j (1 - alpha >= 0.01), so the zeros carry straight over.
    t_after = torch.nn.functional.threshold(prods[..., 1:], _T_STOP_STRICT, 0.0)
    weights = alpha.div_(one_minus).mul_(t_after)  # [n, 256, G]
    color = torch.bmm(weights, rows[..., 6:])  # [n, 256, 5]
    return color, prods[..., -1]


def rasterize_torch(
    means: torch.Tensor,  # [N, 3]
    quats: torch.Tensor,  # [N, 4] (w, x, y, z)
    scales: torch.Tensor,  # [N, 3]
    opacities: torch.Tensor,  # [N]
    colors: torch.Tensor,  # [N, 3]
    viewmat,  # [4, 4] world -> camera, OpenCV axes (tensor or array)
    K,  # [3, 3] pixel intrinsics (tensor or array)
    width: int,
    height: int,
    background,  # [3]
    *,
    chunk_size: int = 32,
    block_elems: int | None = None,
    max_pairs: int = 1 << 23,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Render one head with the 3DGS forward pass (see the module docstring for the exact rules).

    Args:
        chunk_size: Gaussians per tile per wavefront step while many tiles are active (grows up to 256 when
            few are); a speed knob, results do not depend on it.
        block_elems: pixels x Gaussians evaluated per step, bounds the working memory (about 40 bytes each);
            default 512k on CPU (fits the caches), 32M on CUDA.
        max_pairs: tile/Gaussian pairs built at once; larger scenes are processed in bands of tile rows.
    Returns:
        ``rgb [H, W, 3]`` (background included), ``alpha [H, W]`` (1 - final T) and ``depth_accum [H, W]``
        (``sum_i w_i z_i``), float32 on the device of ``means``.
    """
    device = means.device
    means, quats, scales = (t.to(device, torch.float32) for t in (means, quats, scales))
    opacities, colors = opacities.to(device, torch.float32).reshape(-1), colors.to(device, torch.float32)
    viewmat, K = torch.as_tensor(viewmat).to(device, torch.float32), torch.as_tensor(K).to(device, torch.float32)
    background = torch.as_tensor(background).to(device, torch.float32).reshape(3)
    if block_elems is None:
        block_elems = (1 << 25) if device.type == "cuda" else (1 << 19)

    grid_w, grid_h = math.ceil(width / TILE), math.ceil(height / TILE)
    proj = project_gaussians(means, quats, scales, opacities, colors, viewmat, K, width, height)

    # tile-major accumulation buffer [grid_h, grid_w, TILE, TILE, 5]
    out = torch.zeros(grid_h, grid_w, TILE, TILE, 5, dtype=torch.float32, device=device)
    for row0, row1 in _row_bands(proj.tile_min, proj.tile_max, grid_w, grid_h, max_pairs):
        lists = _tile_lists(proj.tile_min, proj.tile_max, row0, row1, grid_w)
        accum = _composite(proj, lists, row0, grid_w, width, height, chunk_size, block_elems)
        out[row0:row1] = accum.reshape(row1 - row0, grid_w, TILE, TILE, 5)

    image = out.permute(0, 2, 1, 3, 4).reshape(grid_h * TILE, grid_w * TILE, 5)[:height, :width]
    weight_sum = image[..., 4]
    # 1 - sum_i w_i equals the product of (1 - alpha_i) over the contributing Gaussians (telescoping sum).
    final_t = 1.0 - weight_sum
    rgb = image[..., :3] + final_t[..., None] * background
    return rgb.contiguous(), weight_sum.contiguous(), image[..., 3].contiguous()
