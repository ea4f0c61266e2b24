"""Gaussians as files: the standard 3DGS PLY and the compact 32-byte ``.splat`` (writers and readers)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from gghead_core.export._outputs import (
    OPACITY_EPS,
    _writing,
    write_bytes,
)
from gghead_core.gaussians import SH_C0, Gaussians

# --------------------------------------------------------------------------------------------------------------


def gaussians_to_ply_arrays(g: Gaussians, index: int = 0) -> dict[str, np.ndarray]:
    """Head ``index`` of ``g`` as the standard 3DGS PLY vertex properties (float32 columns, file order).

    Inverse activations as a 3DGS viewer expects them: ``scale_i = log(scale)``, ``opacity = logit(clip(op))``
    (GGHead's ``1.002 sigmoid - 0.001`` can leave (0, 1); clipping to [1e-6, 1-1e-6] keeps the logit finite),
    ``rot_0..3 = (w, x, y, z)`` normalised, ``f_dc = sh[0]``, ``f_rest`` channel-major (all R coefficients,
    then G, then B), normals zero.
    """
    head = g[index].detach().to("cpu", torch.float64)
    means = head.means[0].numpy()  # [N, 3]
    n = means.shape[0]
    quats = head.quats[0].numpy()  # [N, 4] (w, x, y, z)
    quats = quats / np.maximum(np.linalg.norm(quats, axis=1, keepdims=True), 1e-12)
    log_scales = np.log(np.maximum(head.scales[0].numpy(), 1e-30))  # [N, 3]
    op = np.clip(head.opacities[0].numpy(), OPACITY_EPS, 1.0 - OPACITY_EPS)  # [N]
    logit = np.log(op) - np.log1p(-op)
    sh = head.sh[0].numpy()  # [N, K, 3]
    k = sh.shape[1]
    cols: dict[str, np.ndarray] = {}
    for i, name in enumerate("xyz"):
        cols[name] = means[:, i]
    for name in ("nx", "ny", "nz"):
        cols[name] = np.zeros(n)
    for c in range(3):
        cols[f"f_dc_{c}"] = sh[:, 0, c]
    rest = sh[:, 1:, :].transpose(0, 2, 1).reshape(n, 3 * (k - 1))  # [N, 3*(K-1)], channel-major
    for j in range(rest.shape[1]):
        cols[f"f_rest_{j}"] = rest[:, j]
    cols["opacity"] = logit
    for i in range(3):
        cols[f"scale_{i}"] = log_scales[:, i]
    for i in range(4):
        cols[f"rot_{i}"] = quats[:, i]
    return {name: np.ascontiguousarray(v, dtype=np.float32) for name, v in cols.items()}


def ply_arrays_to_gaussians(cols: dict[str, np.ndarray]) -> Gaussians:
    """Inverse of :func:`gaussians_to_ply_arrays` (activations applied again): a one-head Gaussians batch."""
    f32 = lambda a: torch.from_numpy(np.asarray(a, dtype=np.float32))  # noqa: E731
    means = torch.stack([f32(cols[c]) for c in "xyz"], -1)
    n_rest = len([c for c in cols if c.startswith("f_rest_")])
    if n_rest % 3:
        raise ValueError(f"PLY has {n_rest} f_rest columns; expected a multiple of 3")
    k = 1 + n_rest // 3
    dc = torch.stack([f32(cols[f"f_dc_{c}"]) for c in range(3)], -1)[:, None, :]  # [N, 1, 3]
    if n_rest:
        rest = torch.stack([f32(cols[f"f_rest_{j}"]) for j in range(n_rest)], -1)  # [N, 3*(K-1)]
        rest = rest.reshape(-1, 3, k - 1).transpose(1, 2)  # [N, K-1, 3]
        sh = torch.cat([dc, rest], 1)
    else:
        sh = dc
    quats = torch.stack([f32(cols[f"rot_{i}"]) for i in range(4)], -1)
    quats = quats / quats.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    scales = torch.exp(torch.stack([f32(cols[f"scale_{i}"]) for i in range(3)], -1))
    opacities = torch.sigmoid(f32(cols["opacity"]))
    return Gaussians(
        means=means[None], quats=quats[None], scales=scales[None], opacities=opacities[None], sh=sh[None]
    )


def write_ply(path: str | os.PathLike, cols: dict[str, np.ndarray]) -> None:
    """Binary little-endian PLY with one ``vertex`` element of float32 properties, in ``cols`` order."""
    names = list(cols)
    n = len(cols[names[0]])
    for name in names:
        if cols[name].shape != (n,):
            raise ValueError(f"PLY column {name!r} has shape {cols[name].shape}, expected ({n},)")
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {n}"]
    header += [f"property float {name}" for name in names]
    header += ["end_header"]
    data = np.empty(n, dtype=[(name, "<f4") for name in names])
    for name in names:
        data[name] = cols[name]
    with _writing(path), open(path, "wb") as fh:
        fh.write(("\n".join(header) + "\n").encode("ascii"))
        fh.write(data.view(np.uint8).data)  # the array's bytes as a memoryview (no copy)


_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
    "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip


def read_ply(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read the ``vertex`` element of a PLY (binary little/big endian or ascii; scalar properties only)."""
    with open(path, "rb") as fh:
        if fh.readline().strip() != b"ply":
            raise ValueError(f"{os.fspath(path)!r} is not a PLY file")
        fmt = None
        elements: list[tuple[str, int, list[tuple[str, str]]]] = []
        while True:
            line = fh.readline()
            if not line:
                raise ValueError(f"{os.fspath(path)!r}: PLY header has no end_header")
            parts = line.decode("ascii", "replace").split()
            if not parts or parts[0] in ("comment", "obj_info"):
                continue
            if parts[0] == "end_header":
                break
            if parts[0] == "format":
                fmt = parts[1]
            elif parts[0] == "element":
                elements.append((parts[1], int(parts[2]), []))
            elif parts[0] == "property":
                if parts[1] == "list":
                    raise ValueError(f"{os.fspath(path)!r}: list properties are not supported")
                elements[-1][2].append((parts[2], _PLY_TYPES[parts[1]]))
        if fmt not in ("binary_little_endian", "binary_big_endian", "ascii"):
            raise ValueError(f"{os.fspath(path)!r}: unsupported PLY format {fmt!r}")
        out: dict[str, np.ndarray] = {}
        for name, count, props in elements:
            if fmt == "ascii":
                rows = [fh.readline().split() for _ in range(count)]
                arr = np.array(rows, dtype=np.float64).reshape(count, len(props))
                values = {p: arr[:, i].astype(t) for i, (p, t) in enumerate(props)}
            else:
                order = "<" if fmt == "binary_little_endian" else ">"
                dtype = np.dtype([(p, order + t) for p, t in props])
                raw = fh.read(dtype.itemsize * count)
                if len(raw) != dtype.itemsize * count:
                    raise ValueError(f"{os.fspath(path)!r}: PLY data is truncated")
                records = np.frombuffer(raw, dtype=dtype)
                values = {p: records[p].astype(dtype[p].newbyteorder("=")) for p, _ in props}
            if name == "vertex":
                out = values
        return out


SPLAT_DTYPE = np.dtype(
    [("position", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rot", "u1", 4)]
)  # 32 bytes per splat
assert SPLAT_DTYPE.itemsize == 32


def gaussians_to_splat_array(g: Gaussians, index: int = 0) -> np.ndarray:
    """Head ``index`` in the compact ``.splat`` layout of the antimatter15 WebGL viewer (32 bytes per splat).

    Per splat: position 3 x f32, scale 3 x f32 (activated, not log), RGBA 4 x u8 with colour
    ``0.5 + C0 * f_dc`` (view-independent DC term only) and alpha = opacity, quaternion 4 x u8 as
    ``q / |q| * 128 + 128`` in (w, x, y, z) order. Values are clipped and truncated to u8 like the reference
    converter, and splats are sorted by descending ``volume * opacity`` as it does (viewers stream big ones first).
    """
    cols = gaussians_to_ply_arrays(g, index)
    n = len(cols["x"])
    out = np.zeros(n, dtype=SPLAT_DTYPE)
    log_s = np.stack([cols[f"scale_{i}"] for i in range(3)], -1).astype(np.float64)
    alpha = 1.0 / (1.0 + np.exp(-cols["opacity"].astype(np.float64)))
    order = np.argsort(-np.exp(log_s.sum(-1)) * alpha, kind="stable")
    out["position"] = np.stack([cols[c] for c in "xyz"], -1)[order]
    out["scale"] = np.exp(log_s)[order].astype(np.float32)
    color = np.stack([0.5 + SH_C0 * cols[f"f_dc_{c}"].astype(np.float64) for c in range(3)] + [alpha], -1)
    out["rgba"] = np.clip(color * 255.0, 0, 255).astype(np.uint8)[order]
    q = np.stack([cols[f"rot_{i}"] for i in range(4)], -1).astype(np.float64)
    q = q / np.maximum(np.linalg.norm(q, axis=-1, keepdims=True), 1e-12)
    out["rot"] = np.clip(q * 128.0 + 128.0, 0, 255).astype(np.uint8)[order]
    return out


def write_splat(path: str | os.PathLike, splats: np.ndarray) -> None:
    if splats.dtype != SPLAT_DTYPE:
        raise ValueError("write_splat expects an array of SPLAT_DTYPE")
    write_bytes(path, np.ascontiguousarray(splats).view(np.uint8).data)


def read_splat(path: str | os.PathLike) -> np.ndarray:
    raw = Path(path).read_bytes()
    if len(raw) % SPLAT_DTYPE.itemsize:
        raise ValueError(f"{os.fspath(path)!r}: size {len(raw)} is not a multiple of 32 bytes")
    return np.frombuffer(raw, dtype=SPLAT_DTYPE).copy()
