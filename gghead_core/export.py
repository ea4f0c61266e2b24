"""Writing results to disk: atomic outputs, PNG, video, 3DGS PLY / .splat, and replayable recipe sidecars.

Rules every writer here follows (they protect user files):

* Nothing is written at the final path until the whole output is complete: data goes to a hidden temp file in
  the same folder (``.NAME.<token>.partial.EXT``) that is renamed into place at the end (``os.replace``, or a
  hard link when overwriting is not allowed so that a file appearing meanwhile is never clobbered).
* An existing file is never replaced unless ``overwrite=True``.
* On any error, cancel or Ctrl-C the temp files are deleted and folders this module created are removed again.
* Problems with the output location raise :class:`OutputError` (a ValueError) with a one-line message.

Sidecars: every output ``X`` gets a recipe ``X.json`` next to it (for a folder of frames: ``X/recipe.json``).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import platform
import secrets
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from gghead_core.camera import Camera
from gghead_core.gaussians import Gaussians

SH_C0 = 0.28209479177387814
"""Degree-0 SH basis constant (spec Appendix A)."""

OPACITY_EPS = 1e-6
"""Opacities are clipped to [eps, 1-eps] before the logit (GGHead's activation overshoots [0,1] by 0.001)."""

IMAGE_EXTENSIONS = (".png",)
VIDEO_EXTENSIONS = (".mp4", ".gif")
GAUSSIAN_EXTENSIONS = (".ply", ".splat")
RECIPE_SUFFIX = ".json"
FOLDER_RECIPE_NAME = "recipe.json"
FRAME_PREFIX = "frame_"


class OutputError(ValueError):
    """The output path cannot be used (exists, unwritable, wrong extension ...). One-line message."""


class RecipeError(ValueError):
    """A recipe file is missing, unreadable or not a recipe. One-line message."""


# --------------------------------------------------------------------------------------------------------------
# Paths and atomic files
# --------------------------------------------------------------------------------------------------------------


def is_folder_target(path: str | os.PathLike) -> bool:
    """A frame-folder output: a path ending in a separator, an existing folder, or a name without extension."""
    text = os.fspath(path)
    if text.endswith(("/", os.sep)):
        return True
    p = Path(text)
    return p.is_dir() or p.suffix == ""


def sidecar_path(output: str | os.PathLike, folder: bool | None = None) -> Path:
    """Where the recipe of ``output`` goes: ``out.png`` -> ``out.png.json``; folder ``f/`` -> ``f/recipe.json``."""
    if is_folder_target(output) if folder is None else folder:
        return Path(output) / FOLDER_RECIPE_NAME
    p = Path(output)
    return p.with_name(p.name + RECIPE_SUFFIX)


def check_extension(path: str | os.PathLike, allowed: Sequence[str], *, allow_folder: bool = False) -> str:
    """Return the lower-case extension of ``path`` ("" for a folder) or raise OutputError naming the choices."""
    if allow_folder and is_folder_target(path):
        return ""
    suffix = Path(path).suffix.lower()
    if suffix not in allowed:
        choices = ", ".join(allowed) + (", or a folder ending in /" if allow_folder else "")
        shown = suffix or "(none)"
        raise OutputError(f"unknown output extension {shown!r} for {os.fspath(path)!r}: expected {choices}")
    return suffix


def check_output_file(path: str | os.PathLike, *, overwrite: bool) -> Path:
    """Validate a file output without touching the disk: refuse folders, existing files (unless overwrite)
    and locations that can never be written (a parent that is a file, a read-only folder)."""
    p = Path(path)
    if p.is_dir():
        raise OutputError(f"output {os.fspath(p)!r} is a folder; give a file name")
    if p.exists() and not overwrite:
        raise OutputError(f"output {os.fspath(p)!r} already exists (use --overwrite to replace it)")
    check_parent_writable(p.parent)
    return p


def check_parent_writable(parent: Path) -> None:
    """Walk up to the first existing ancestor: it must be a writable folder."""
    ancestor = parent if os.fspath(parent) else Path(".")
    while not ancestor.exists():
        if ancestor.parent == ancestor:
            break
        ancestor = ancestor.parent
    if ancestor.exists() and not ancestor.is_dir():
        raise OutputError(f"cannot write into {os.fspath(parent)!r}: {os.fspath(ancestor)!r} is a file, not a folder")
    if ancestor.exists() and not os.access(ancestor, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write into {os.fspath(parent)!r}: folder {os.fspath(ancestor)!r} is not writable")
    # os.access says yes to root everywhere and knows nothing of read-only mounts: probe with a real file.
    try:
        with tempfile.TemporaryFile(dir=ancestor, prefix=".gghead-probe-"):
            pass
    except OSError as exc:
        raise OutputError(
            f"cannot write into {os.fspath(parent)!r}: {exc.strerror or exc} ({os.fspath(ancestor)!r})"
        ) from None


def _make_parents(folder: Path) -> list[Path]:
    """mkdir -p that returns the folders it created (deepest last), so an abort can remove them again."""
    created: list[Path] = []
    missing = []
    cur = folder
    while not cur.exists():
        missing.append(cur)
        if cur.parent == cur:
            break
        cur = cur.parent
    for d in reversed(missing):
        try:
            d.mkdir()
        except FileExistsError:
            if not d.is_dir():
                raise OutputError(f"cannot create folder {os.fspath(d)!r}: a file with that name exists") from None
        except OSError as exc:
            raise OutputError(f"cannot create folder {os.fspath(d)!r}: {exc.strerror or exc}") from None
        else:
            created.append(d)
    return created


def _remove_dirs(created: list[Path]) -> None:
    for d in reversed(created):
        try:
            d.rmdir()
        except OSError:
            pass


def _temp_name(final: Path) -> Path:
    # Keep the real extension last: imageio and ffmpeg choose the format from it.
    return final.parent / f".{final.stem}.{secrets.token_hex(4)}.partial{final.suffix}"


def _commit_file(temp: Path, final: Path, overwrite: bool) -> None:
    """Move a finished temp file to its final name, atomically; never clobber when overwrite is False."""
    if overwrite:
        os.replace(temp, final)
        return
    try:
        os.link(temp, final)  # fails if final exists: no race with a file created meanwhile
    except FileExistsError:
        raise OutputError(f"output {os.fspath(final)!r} already exists (use --overwrite to replace it)") from None
    except OSError:
        # Filesystems without hard links: fall back to check-then-replace.
        if final.exists():
            raise OutputError(f"output {os.fspath(final)!r} already exists (use --overwrite to replace it)") from None
        os.replace(temp, final)
        return
    temp.unlink()


class OutputTransaction:
    """All files of one job (e.g. ``video.mp4`` + ``video.mp4.json``): they appear together or not at all.

    Use as a context manager: leaving the block normally commits, an exception (incl. KeyboardInterrupt)
    aborts and deletes every temp file and every folder the transaction created.
    """

    def __init__(self, overwrite: bool = False) -> None:
        self.overwrite = overwrite
        self._files: list[tuple[Path, Path]] = []  # (temp, final)
        self._dirs_created: list[Path] = []
        self._temp_dirs: list[Path] = []
        self._folder_moves: list[tuple[Path, Path]] = []  # (temp folder, final folder)
        self._stale: list[Path] = []
        self.done = False

    # -- registration ----------------------------------------------------------------------------------------
    def file(self, final: str | os.PathLike) -> Path:
        """Reserve ``final``; returns the temp path to write to (the file itself is created by the caller)."""
        final = check_output_file(final, overwrite=self.overwrite)
        self._dirs_created += _make_parents(final.parent if os.fspath(final.parent) else Path("."))
        temp = _temp_name(final)
        try:
            with open(temp, "xb"):
                pass
        except OSError as exc:
            raise OutputError(f"cannot write {os.fspath(final)!r}: {exc.strerror or exc}") from None
        self._files.append((temp, final))
        return temp

    def folder(self, final: str | os.PathLike, frame_names: Iterable[str]) -> Path:
        """Reserve a folder of frames; returns a temp folder to fill. Existing frame files (``frame_*``) or a
        recipe in the folder are refused unless overwrite; with overwrite, stale ``frame_*`` files that the
        new output does not replace are removed at commit so the folder holds exactly one sequence."""
        final = Path(final)
        if final.exists() and not final.is_dir():
            raise OutputError(f"output {os.fspath(final)!r} is a file, not a folder")
        names = set(frame_names)
        if final.is_dir():
            ours = [p for p in final.iterdir() if p.name.startswith(FRAME_PREFIX) or p.name == FOLDER_RECIPE_NAME]
            if ours and not self.overwrite:
                raise OutputError(
                    f"folder {os.fspath(final)!r} already holds frames (use --overwrite to replace them)"
                )
            self._stale = [p for p in ours if p.name.startswith(FRAME_PREFIX) and p.name not in names]
        check_parent_writable(final)
        self._dirs_created += _make_parents(final)
        temp = final / f".partial-{secrets.token_hex(4)}"
        try:
            temp.mkdir()
        except OSError as exc:
            raise OutputError(f"cannot write into {os.fspath(final)!r}: {exc.strerror or exc}") from None
        self._temp_dirs.append(temp)
        self._folder_moves.append((temp, final))
        return temp

    # -- end -------------------------------------------------------------------------------------------------
    def commit(self) -> None:
        try:
            for temp_dir, final_dir in self._folder_moves:
                for item in sorted(temp_dir.iterdir()):
                    _commit_file(item, final_dir / item.name, self.overwrite)
                temp_dir.rmdir()
                self._temp_dirs.remove(temp_dir)
            for stale in self._stale:
                stale.unlink(missing_ok=True)
            for temp, final in self._files:
                _commit_file(temp, final, self.overwrite)
        except BaseException:
            self.abort()
            raise
        self._files.clear()
        self.done = True

    def abort(self) -> None:
        for temp, _ in self._files:
            try:
                temp.unlink(missing_ok=True)
            except OSError:
                pass
        for d in self._temp_dirs:
            shutil.rmtree(d, ignore_errors=True)
        self._files.clear()
        self._temp_dirs.clear()
        _remove_dirs(self._dirs_created)
        self._dirs_created.clear()
        self.done = True

    def __enter__(self) -> "OutputTransaction":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


# --------------------------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------------------------


def to_uint8(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """Float image in [0, 1] (``[H, W, C]``) -> uint8 with ``round(255 x)`` clipped; uint8 passes through.

    ``round(255 x)`` on [0, 1] is the official scripts' dreifus rule ``round((y + 1) / 2 * 255)`` on [-1, 1].
    """
    if isinstance(image, torch.Tensor):
        image = image.detach().to("cpu", torch.float32).numpy()
    arr = np.asarray(image)
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    return np.ascontiguousarray(np.clip(np.rint(arr.astype(np.float32) * 255.0), 0, 255).astype(np.uint8))


def write_png(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write an RGB or RGBA ``[H, W, 3|4]`` uint8 (or float in [0,1]) image as PNG to ``path`` (no atomicity:
    callers pass a temp path from :class:`OutputTransaction`)."""
    import imageio.v3 as iio

    img = to_uint8(image)
    if img.ndim != 3 or img.shape[2] not in (3, 4):
        raise ValueError(f"PNG image must be [H, W, 3|4], got {img.shape}")
    iio.imwrite(os.fspath(path), img, extension=".png")


def save_png(path: str | os.PathLike, image: np.ndarray, *, overwrite: bool = False) -> Path:
    """Atomic single-PNG save (no recipe): the convenience the GUI uses for quick captures."""
    final = Path(path)
    check_extension(final, IMAGE_EXTENSIONS)
    with OutputTransaction(overwrite) as tx:
        write_png(tx.file(final), image)
    return final


def pad_to_even(frame: np.ndarray) -> np.ndarray:
    """H.264 with yuv420p needs even sizes: replicate the last row/column when a side is odd."""
    h, w = frame.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return frame
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


# --------------------------------------------------------------------------------------------------------------
# Frame sinks: mp4 / gif / folder of PNGs
# --------------------------------------------------------------------------------------------------------------


class FrameSink:
    """Writes a sequence of frames into an already reserved temp location; ``close()`` finishes the file."""

    def write(self, frame: np.ndarray) -> None:  # frame: [H, W, 3] uint8
        raise NotImplementedError

    def close(self) -> None:
        pass

    def abort(self) -> None:
        self.close()


class _Mp4Sink(FrameSink):
    """H.264 (libx264), yuv420p, constant frame rate, through imageio's FFMPEG plugin (imageio-ffmpeg binary)."""

    def __init__(self, temp: Path, fps: float, quality: float = 7.0) -> None:
        self.temp, self.fps, self.quality = temp, fps, quality
        self._writer = None
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        import imageio.v2 as iio2

        frame = pad_to_even(to_uint8(frame)[..., :3])
        if self._writer is None:
            self._writer = iio2.get_writer(
                os.fspath(self.temp),
                format="FFMPEG",
                mode="I",
                fps=self.fps,
                codec="libx264",
                pixelformat="yuv420p",
                quality=self.quality,  # imageio maps 7 -> crf 15 for libx264 (visually lossless for renders)
                macro_block_size=2,  # we pad to even sizes ourselves; never let ffmpeg rescale
                ffmpeg_log_level="error",
            )
            self._size = frame.shape
        elif frame.shape != self._size:
            raise ValueError(f"video frames must all have the same size: {frame.shape} vs {self._size}")
        self._writer.append_data(frame)
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.close()
        elif self.frames == 0:
            raise ValueError("a video needs at least one frame")

    def abort(self) -> None:
        """Stop ffmpeg (it ignores Ctrl-C by design: imageio-ffmpeg shields it) without raising; the
        transaction then deletes the temp file."""
        writer, self._writer = self._writer, None
        if writer is not None:
            try:
                writer.close()
            except Exception:
                pass


class _GifSink(FrameSink):
    """Animated GIF through imageio's pillow plugin (frames are kept until close: GIFs are small by nature).

    Pillow merges identical consecutive frames into one with a longer delay, so a GIF of a still scene can
    hold fewer frames than were written; the playback time is unchanged.
    """

    def __init__(self, temp: Path, fps: float) -> None:
        self.temp, self.fps = temp, fps
        self._frames: list[np.ndarray] = []

    def write(self, frame: np.ndarray) -> None:
        frame = to_uint8(frame)[..., :3]
        if self._frames and frame.shape != self._frames[0].shape:
            raise ValueError(f"GIF frames must all have the same size: {frame.shape} vs {self._frames[0].shape}")
        self._frames.append(frame)

    def close(self) -> None:
        import imageio.v3 as iio

        if not self._frames:
            raise ValueError("a GIF needs at least one frame")
        frames, self._frames = self._frames, []
        # GIF stores delays in centiseconds; pillow takes ms. loop=0 plays forever.
        iio.imwrite(os.fspath(self.temp), np.stack(frames), extension=".gif", duration=1000.0 / self.fps, loop=0)

    def abort(self) -> None:
        self._frames = []


class _FolderSink(FrameSink):
    """Numbered PNGs ``frame_0000.png ...`` in a (temp) folder."""

    def __init__(self, temp_dir: Path, n_frames: int) -> None:
        self.temp_dir = temp_dir
        self.digits = max(4, len(str(max(n_frames - 1, 0))))
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        write_png(self.temp_dir / frame_file_name(self.frames, self.digits), frame)
        self.frames += 1


def frame_file_name(index: int, digits: int = 4) -> str:
    return f"{FRAME_PREFIX}{index:0{digits}d}.png"


def frame_names(n_frames: int) -> list[str]:
    digits = max(4, len(str(max(n_frames - 1, 0))))
    return [frame_file_name(i, digits) for i in range(n_frames)]


def open_frame_sink(
    tx: OutputTransaction, out: str | os.PathLike, *, fps: float, n_frames: int, folder: bool | None = None
) -> FrameSink:
    """Reserve ``out`` in the transaction and return a sink: ``.mp4``, ``.gif`` or a folder of PNGs
    (``folder=None``: decided from the path text, see :func:`is_folder_target`)."""
    if not (fps > 0 and math.isfinite(fps)):
        raise OutputError(f"fps must be positive, got {fps}")
    if folder is None:
        folder = is_folder_target(out)
    ext = "" if folder else check_extension(out, VIDEO_EXTENSIONS)
    if ext == "":
        return _FolderSink(tx.folder(out, frame_names(n_frames)), n_frames)
    temp = tx.file(out)
    return _Mp4Sink(temp, fps) if ext == ".mp4" else _GifSink(temp, fps)


def read_frames(path: str | os.PathLike) -> np.ndarray:
    """Read a video / GIF / folder of frames back as ``[F, H, W, C]`` uint8 (tests and replay checks)."""
    import imageio.v3 as iio

    p = Path(path)
    if p.is_dir():
        files = sorted(q for q in p.iterdir() if q.name.startswith(FRAME_PREFIX) and q.suffix == ".png")
        return np.stack([iio.imread(f) for f in files])
    if p.suffix.lower() == ".mp4":
        return _read_mp4(p)
    if p.suffix.lower() == ".gif":
        frames = iio.imread(p, index=None, mode="RGB")
        return frames if frames.ndim == 4 else frames[None]
    img = iio.imread(p)
    return img[None]


def _read_mp4(path: Path) -> np.ndarray:
    import imageio.v2 as iio2

    reader = iio2.get_reader(os.fspath(path), format="FFMPEG")
    try:
        return np.stack([np.asarray(f) for f in reader])
    finally:
        reader.close()


# --------------------------------------------------------------------------------------------------------------
# 3DGS PLY and .splat
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
    with open(path, "wb") as fh:
        fh.write(("\n".join(header) + "\n").encode("ascii"))
        fh.write(data.tobytes())


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
                arr = np.frombuffer(raw, dtype=dtype)
                values = {p: arr[p].astype(arr.dtype[p].newbyteorder("=")) for p, _ in props}
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
    with open(path, "wb") as fh:
        fh.write(splats.tobytes())


def read_splat(path: str | os.PathLike) -> np.ndarray:
    raw = Path(path).read_bytes()
    if len(raw) % SPLAT_DTYPE.itemsize:
        raise ValueError(f"{os.fspath(path)!r}: size {len(raw)} is not a multiple of 32 bytes")
    return np.frombuffer(raw, dtype=SPLAT_DTYPE).copy()


# --------------------------------------------------------------------------------------------------------------
# Recipes (JSON sidecars)
# --------------------------------------------------------------------------------------------------------------

RECIPE_FORMAT = "gghead-recipe"
RECIPE_VERSION = 2
READABLE_RECIPE_VERSIONS = (1, 2)  # 1: before the pipeline vocabulary; gghead_core.jobs translates it


def camera_to_dict(camera: Camera) -> dict[str, Any]:
    """JSON form of a camera; floats are written with repr precision so they round-trip exactly."""
    return {
        "cam2world": [[float(v) for v in row] for row in np.asarray(camera.cam2world)],
        "focal": float(camera.focal),
        "principal": [float(camera.principal[0]), float(camera.principal[1])],
    }


def camera_from_dict(d: dict[str, Any]) -> Camera:
    return Camera(
        cam2world=np.asarray(d["cam2world"], dtype=np.float64),
        focal=float(d.get("focal", 4.2647)),
        principal=tuple(float(v) for v in d.get("principal", (0.5, 0.5))),
    )


def package_versions() -> dict[str, str | None]:
    """Versions of everything that can change the pixels, read from package metadata (no heavy imports)."""
    from importlib import metadata

    versions: dict[str, str | None] = {"python": platform.python_version()}
    for dist in ("torch", "numpy", "imageio", "imageio-ffmpeg", "pillow", "gsplat", "PyOpenGL", "safetensors"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    try:
        import gghead_core

        versions["gghead_core"] = getattr(gghead_core, "__version__", None)
    except Exception:  # pragma: no cover - the package is importable whenever this module is
        versions["gghead_core"] = None
    versions["platform"] = platform.platform()
    return versions


@dataclass
class Recipe:
    """Everything needed to reproduce one output, stored as ``<output>.json``.

    ``command`` and ``params`` are what :mod:`gghead_core.jobs` needs to run the job again (``params`` is the
    job dataclass as a dict). The other fields are the record a reader wants without running anything:
    checkpoint hash, seeds, truncation, the camera of every frame, the renderer that actually ran and its
    settings, and the package versions.
    """

    command: str
    params: dict[str, Any]
    output: str
    checkpoint: dict[str, Any]
    seeds: list[int]
    psi: float
    cutoff: int | None
    cameras: list[dict[str, Any]]
    renderer: dict[str, Any] | None
    argv: list[str] | None = None
    versions: dict[str, Any] = field(default_factory=package_versions)
    created_utc: str = field(
        default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
    )
    format: str = RECIPE_FORMAT
    format_version: int = RECIPE_VERSION

    def to_json(self) -> str:
        """One top-level key per line, one camera per line: readable and diffable without a 10k-line file."""
        data = asdict(self)
        order = ["format", "format_version", "command", "output", "argv", "checkpoint", "seeds", "psi", "cutoff",
                 "params", "renderer", "versions", "created_utc", "cameras"]
        keys = [k for k in order if k in data] + [k for k in data if k not in order]
        lines = []
        for k in keys:
            v = data[k]
            if k == "cameras" and v:
                body = ",\n  ".join(json.dumps(c, allow_nan=False) for c in v)
                lines.append(f' {json.dumps(k)}: [\n  {body}\n ]')
            else:
                lines.append(f" {json.dumps(k)}: {json.dumps(v, allow_nan=False)}")
        return "{\n" + ",\n".join(lines) + "\n}\n"


def write_recipe(path: str | os.PathLike, recipe: Recipe) -> None:
    """Write a recipe to ``path`` (callers pass a temp path from :class:`OutputTransaction`)."""
    Path(path).write_text(recipe.to_json(), encoding="utf-8")


def read_recipe(path: str | os.PathLike) -> Recipe:
    """Load and validate a recipe; raises RecipeError (one line) for anything that is not a recipe we wrote."""
    p = Path(path)
    if not p.is_file():
        raise RecipeError(f"recipe {os.fspath(p)!r} does not exist or is not a file")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecipeError(f"cannot read recipe {os.fspath(p)!r}: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict) or data.get("format") != RECIPE_FORMAT:
        raise RecipeError(f"{os.fspath(p)!r} is not a gghead recipe (no \"format\": \"{RECIPE_FORMAT}\")")
    if data.get("format_version") not in READABLE_RECIPE_VERSIONS:
        raise RecipeError(
            f"recipe {os.fspath(p)!r} has format version {data.get('format_version')!r}; "
            f"this version reads {', '.join(map(str, READABLE_RECIPE_VERSIONS))}"
        )
    known = {f for f in Recipe.__dataclass_fields__}
    missing = [k for k in ("command", "params", "output", "checkpoint") if k not in data]
    if missing:
        raise RecipeError(f"recipe {os.fspath(p)!r} lacks {', '.join(missing)}")
    if not isinstance(data["params"], dict):
        raise RecipeError(f"recipe {os.fspath(p)!r}: params must be an object")
    kwargs = {k: v for k, v in data.items() if k in known}
    kwargs.setdefault("seeds", [])
    kwargs.setdefault("psi", 1.0)
    kwargs.setdefault("cutoff", None)
    kwargs.setdefault("cameras", [])
    kwargs.setdefault("renderer", None)
    return Recipe(**kwargs)


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            block = fh.read(chunk)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def command_line() -> list[str]:
    """The current process's command line, for the recipe record."""
    return [os.path.basename(sys.argv[0])] + sys.argv[1:] if sys.argv else []
