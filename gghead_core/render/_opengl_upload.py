"""Host side of the OpenGL rasterizer's inputs: shape checks, float32/float64 host copies, upload fingerprints.

Why a module of its own: the cache must decide *before* anything is copied to the host (for CUDA tensors:
no device-to-host transfer, no sync) whether a head's tensors are the ones already uploaded.
:func:`_fingerprint` answers from metadata alone and :class:`_Scene` remembers what was uploaded; the
conversions run only on a miss. The decision itself (``OpenGLRasterizer._upload``) stays in ``_opengl``:
tests spy on that module's ``_as_f32`` to prove that a cache hit converts nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


def _as_f32(x, shape_tail: tuple[int, ...], name: str) -> np.ndarray:
    """Host float32 C-contiguous array of a tensor or array, shape checked against ``[N, *shape_tail]``."""
    if isinstance(x, torch.Tensor):
        arr = x.detach().to("cpu", torch.float32).contiguous().numpy()
    else:
        arr = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    if arr.ndim != 1 + len(shape_tail) or tuple(arr.shape[1:]) != shape_tail:
        expected = "[N" + "".join(f", {d}" for d in shape_tail) + "]"
        raise ValueError(f"{name} has shape {tuple(arr.shape)}, expected {expected}")
    return arr


def _host_matrix(x, shape: tuple[int, ...], name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    arr = np.asarray(x, dtype=np.float64)
    if arr.size != int(np.prod(shape)):
        raise ValueError(f"{name} has shape {tuple(arr.shape)}, expected {list(shape)}")
    return arr.reshape(shape)


def _fingerprint(*tensors) -> tuple:
    """Identity of the inputs' data: same memory, layout and unchanged in place (torch bumps ``_version``,
    shared by a tensor and its views). ``g.means[0]`` makes a new view object on every call, so object
    identity would miss; the address is safe because the uploaded tensors are kept referenced (their memory
    cannot be reused by another tensor meanwhile). Reads metadata only: no device sync, no copy.

    Never matches (always re-uploaded): numpy arrays, which cannot report in-place edits, and inference
    tensors (made under ``torch.inference_mode()``), which have no version counter (``_version`` raises).
    """
    out = []
    for t in tensors:
        if not isinstance(t, torch.Tensor) or t.is_inference():
            return (object(),)
        out.append((t.data_ptr(), tuple(t.shape), t.stride(), t.dtype, str(t.device), t._version))
    return tuple(out)


def _rows(x, name: str) -> int:
    """Leading dimension of a tensor or array, without copying it anywhere."""
    shape = x.shape if isinstance(x, (torch.Tensor, np.ndarray)) else np.shape(x)
    if len(shape) < 1:
        raise ValueError(f"{name} has shape {tuple(shape)}, expected at least one dimension")
    return int(shape[0])


@dataclass
class _Scene:
    count: int = 0
    capacity: int = 0  # Gaussians the per-Gaussian buffers can hold
    sort_capacity: int = 0  # padded length of the sort buffers
    geom_key: tuple = ()
    color_key: tuple = ()
    geom_refs: tuple = ()  # the uploaded tensors, kept alive so their ids cannot be reused
    color_refs: tuple = ()
    means: np.ndarray | None = None  # [N, 3] host copy for the CPU sort
