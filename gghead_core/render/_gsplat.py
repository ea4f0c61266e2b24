"""gsplat backend: CUDA rasterization through ``gsplat.rasterization`` with settings matched to the reference.

gsplat 1.5.3 on PyPI ships no compiled kernels; its first CUDA call JIT-builds them (needs nvcc and a
CUDA build of torch, takes minutes once) or uses a prebuilt wheel (see the README section "gsplat on CUDA"). On a machine
without CUDA the import of gsplat's kernel module would start a doomed build attempt and leave an empty
``~/.cache/torch_extensions`` folder, so :func:`gsplat_status` never touches it there: no CUDA -> unavailable
immediately. With CUDA it tries once (a tiny render) and caches the outcome and its reason.

Settings matched to ``_torch_ref`` (spec 4.4): classic mode (no antialiasing compensation), ``eps2d=0.3``
(the +0.3 low pass), ``near_plane=0.2``, no radius clip, 16-pixel tiles, colours precomputed by us
(``sh_degree=None``), ``render_mode="RGB+D"`` (the extra channel is sum w_i z_i, its background 0). Known
differences inside gsplat's kernels (not configurable): alpha cap 0.999 (3DGS: 0.99), stop when
``T <= 1e-4`` (3DGS: ``<``), an opacity-aware per-axis bounding box (3DGS: 3 sigma of the major axis snapped
to tiles), and Gaussians exactly at depth 0.2 are kept. All of these change pixels by far less than 1/255 on
GGHead heads; ``tests/test_render_gsplat_cuda.py`` states the agreement as PSNR.
"""

from __future__ import annotations

import importlib.util
import threading

import torch

_STATUS: tuple[bool, str] | None = None
_STATUS_LOCK = threading.Lock()

# packed=False keeps per-camera [N, ...] intermediates: for one camera and ~235k Gaussians that is a few MB,
# and it avoids the packing pass. gsplat's own docs call unpacked the faster option when memory allows.
# (Not measured here: no CUDA GPU was available when this was written.)
PACKED = False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1] if text else ''}".strip().rstrip(":")


def gsplat_status(*, refresh: bool = False) -> tuple[bool, str]:
    """``(ok, reason)``: can gsplat render here? Cached after the first call (``refresh=True`` re-checks).

    Without CUDA this returns at once and never imports gsplat's CUDA module (which would try to compile).
    """
    global _STATUS
    with _STATUS_LOCK:
        if _STATUS is not None and not refresh:
            return _STATUS
        _STATUS = _check()
        return _STATUS


def _check() -> tuple[bool, str]:
    if not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        return False, f"no CUDA GPU visible to torch {torch.__version__} ({build})"
    if importlib.util.find_spec("gsplat") is None:
        return False, "gsplat is not installed (pip install gsplat; see the README, gsplat on CUDA)"
    try:
        import gsplat

        version = getattr(gsplat, "__version__", "?")
        prebuilt = importlib.util.find_spec("gsplat.csrc") is not None
        # A tiny render exercises the whole path (projection, tile intersection, rasterization kernels) and
        # is compared with the reference, which also catches a convention mismatch.
        from ._torch_ref import rasterize_torch

        scene = (
            torch.tensor([[0.0, 0.0, 2.0], [0.1, -0.05, 2.5]]),  # means
            torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.9, 0.3, 0.1, 0.2]]),  # quats
            torch.tensor([[0.05, 0.05, 0.05], [0.08, 0.03, 0.05]]),  # scales
            torch.tensor([0.5, 0.8]),  # opacities
            torch.tensor([[1.0, 0.5, 0.0], [0.0, 0.3, 1.0]]),  # colors
            torch.eye(4),
            torch.tensor([[16.0, 0.0, 8.0], [0.0, 16.0, 8.0], [0.0, 0.0, 1.0]]),
            16,
            16,
            torch.tensor([1.0, 1.0, 1.0]),
        )
        rgb, _, _ = rasterize_gsplat(*scene)
        torch.cuda.synchronize()
        err = float((rgb.cpu() - rasterize_torch(*scene)[0]).abs().max())
        if not err < 0.05:
            return False, f"gsplat {version} ran but disagrees with the reference on a test image (max error {err:.3f})"
    except Exception as exc:  # the JIT build or a kernel failed: report why, fall back
        return False, f"gsplat CUDA kernels unavailable ({_first_line(exc)}); see the README, gsplat on CUDA"
    kind = "prebuilt kernels" if prebuilt else "JIT-built kernels"
    index = torch.cuda.current_device()
    return True, f"gsplat {version} on cuda:{index} {torch.cuda.get_device_name(index)} ({kind})"


def rasterize_gsplat(
    means: torch.Tensor,  # [N, 3]
    quats: torch.Tensor,  # [N, 4] (w, x, y, z)
    scales: torch.Tensor,  # [N, 3]
    opacities: torch.Tensor,  # [N]
    colors: torch.Tensor,  # [N, 3]
    viewmat,  # [4, 4] world -> camera (OpenCV)
    K,  # [3, 3] pixel intrinsics
    width: int,
    height: int,
    background,  # [3]
    *,
    packed: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Backend contract: ``(rgb [H, W, 3], alpha [H, W], depth_accum [H, W])`` float32 on the CUDA device.

    Inputs on the CPU are moved to the current CUDA device. Raises whatever gsplat raises when its kernels are
    missing; :func:`gsplat_status` is the cheap way to ask first.
    """
    rgb, alpha, depth = rasterize_gsplat_batch(means[None], quats[None], scales[None], opacities.reshape(1, -1),
                                               colors[None], viewmat, K, width, height, background, packed=packed)
    return rgb[0], alpha[0], depth[0]


def rasterize_gsplat_batch(
    means: torch.Tensor,  # [B, N, 3]
    quats: torch.Tensor,  # [B, N, 4] (w, x, y, z)
    scales: torch.Tensor,  # [B, N, 3]
    opacities: torch.Tensor,  # [B, N]
    colors: torch.Tensor,  # [B, N, 3]
    viewmat,  # [4, 4] world -> camera (OpenCV), shared by the heads
    K,  # [3, 3] pixel intrinsics
    width: int,
    height: int,
    background,  # [3]
    *,
    packed: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """All heads of a batch in one gsplat call (gsplat >= 1.5 takes leading batch dimensions).

    Returns ``(rgb [B, H, W, 3], alpha [B, H, W], depth_accum [B, H, W])`` on the CUDA device. One call
    instead of B: one projection / tile-sort / rasterization launch sequence for the whole batch.
    Inputs already float32, contiguous and on the device pass through without copies; the camera tensors
    should be on the device already (``render()`` caches them there) to avoid blocking host copies.
    """
    from gsplat import rasterization

    device = means.device if means.is_cuda else torch.device("cuda")
    b = means.shape[0]
    means, quats, scales = (t.to(device, torch.float32).contiguous() for t in (means, quats, scales))
    opacities = opacities.to(device, torch.float32).reshape(b, -1).contiguous()
    colors = colors.to(device, torch.float32).contiguous()
    # (materialised: gsplat's kernels index these by raw pointer; a few floats per head, copied on the device)
    viewmat = torch.as_tensor(viewmat).to(device, torch.float32).reshape(1, 1, 4, 4).expand(b, 1, 4, 4).contiguous()
    K = torch.as_tensor(K).to(device, torch.float32).reshape(1, 1, 3, 3).expand(b, 1, 3, 3).contiguous()
    background = torch.as_tensor(background).to(device, torch.float32).reshape(1, 1, 3).expand(b, 1, 3).contiguous()

    render, alpha, _meta = rasterization(
        means,
        quats,
        scales,
        opacities,
        colors,
        viewmat,
        K,
        int(width),
        int(height),
        near_plane=0.2,
        far_plane=1e10,
        radius_clip=0.0,
        eps2d=0.3,
        sh_degree=None,
        packed=PACKED if packed is None else packed,
        tile_size=16,
        backgrounds=background,
        render_mode="RGB+D",
        rasterize_mode="classic",
    )
    # render: [B, 1, H, W, 4] = rgb (+ background) and sum w_i z_i; alpha: [B, 1, H, W, 1]
    return render[:, 0, ..., :3], alpha[:, 0, ..., 0], render[:, 0, ..., 3]
