"""Images and frame sequences: uint8 conversion, PNG, and the mp4 / gif / PNG-folder sinks (plus readers)."""

from __future__ import annotations

import math
import os
import subprocess
import tempfile
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from gghead_core.export._outputs import (
    FRAME_PREFIX,
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    OutputError,
    OutputTransaction,
    OutputWriteError,
    _final_name,
    check_extension,
    is_folder_target,
    write_bytes,
)

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
    callers pass a temp path from :class:`OutputTransaction`). Raises :class:`OutputWriteError` on a full disk."""
    import imageio.v3 as iio

    img = to_uint8(image)
    if img.ndim != 3 or img.shape[2] not in (3, 4):
        raise ValueError(f"PNG image must be [H, W, 3|4], got {img.shape}")
    # Encoded in memory, written by us: a full disk gives one OutputWriteError, not an imageio plugin's
    # destructor traceback.
    write_bytes(path, iio.imwrite("<bytes>", img, extension=".png"))


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
    """H.264 (libx264), yuv420p, constant frame rate, crf 15, through the ffmpeg binary of imageio-ffmpeg.

    The command line is the one imageio's FFMPEG writer builds for ``quality=7`` (so files are unchanged), but
    the process is ours: ffmpeg's messages go to a temp file instead of our stderr, its exit status is checked
    (a failed final flush would otherwise commit a truncated video), and a failure becomes one
    :class:`OutputWriteError` line ("disk full while writing X" when ffmpeg ran out of space), never a
    "Broken pipe" from the frame pipe.
    """

    def __init__(self, temp: Path, fps: float, quality: float = 7.0) -> None:
        self.temp, self.fps, self.quality = temp, fps, quality
        self._proc: subprocess.Popen | None = None
        self._log: Any = None
        self._size: tuple[int, ...] | None = None
        self.frames = 0

    def _start(self, frame: np.ndarray) -> subprocess.Popen:
        import imageio_ffmpeg

        h, w = frame.shape[:2]
        crf = int((1 - self.quality / 10.0) * 51)  # imageio-ffmpeg's mapping: quality 7 -> crf 15
        cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-f", "rawvideo", "-vcodec", "rawvideo", "-s", f"{w}x{h}",
               "-pix_fmt", "rgb24", "-r", str(Fraction(self.fps).limit_denominator()), "-i", "-", "-an",
               "-vcodec", "libx264", "-pix_fmt", "yuv420p", "-crf", str(crf), "-v", "error", "-f", "mp4",
               os.fspath(self.temp)]
        self._log = tempfile.TemporaryFile()
        try:
            # Own session: Ctrl-C / SIGHUP aimed at the terminal's process group reach us, not ffmpeg; we stop
            # it ourselves in abort().
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._log,
                                    start_new_session=True)
        except OSError as exc:
            self._log.close()
            raise OutputWriteError(f"cannot start ffmpeg to write {_final_name(self.temp)}: "
                                   f"{exc.strerror or exc}") from None
        self._proc = proc
        self._size = frame.shape
        return proc

    def write(self, frame: np.ndarray) -> None:
        frame = np.ascontiguousarray(pad_to_even(to_uint8(frame)[..., :3]))
        proc = self._proc
        if proc is None:
            proc = self._start(frame)
        elif frame.shape != self._size:
            raise ValueError(f"video frames must all have the same size: {frame.shape} vs {self._size}")
        assert proc.stdin is not None  # started with stdin=PIPE
        try:
            proc.stdin.write(frame.view(np.uint8))
        except OSError:  # BrokenPipeError: ffmpeg has exited; its log says why
            self._fail()
        self.frames += 1

    def close(self) -> None:
        proc = self._proc
        if proc is None:
            if self.frames == 0:
                raise ValueError("a video needs at least one frame")
            return
        assert proc.stdin is not None  # started with stdin=PIPE
        try:
            proc.stdin.close()
        except OSError:
            pass
        if proc.wait() != 0:
            self._fail()
        self._cleanup()

    def _fail(self) -> None:
        """ffmpeg stopped: kill/reap it and raise one line made from its log."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
        if proc is not None:
            proc.wait()
        log = ""
        if self._log is not None:
            self._log.seek(0)
            log = self._log.read(1 << 16).decode("utf-8", "replace")
        self._cleanup()
        name = _final_name(self.temp)
        if "No space left" in log or "Disk quota" in log or "File too large" in log:
            raise OutputWriteError(f"disk full while writing {name}")
        lines = [line.strip() for line in log.splitlines() if line.strip()]
        why = lines[-1][:200] if lines else f"exit status {proc.returncode if proc else '?'}"
        raise OutputWriteError(f"ffmpeg failed while writing {name}: {why}")

    def _cleanup(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.stdin is not None:  # stdin is always a pipe (Popen(stdin=PIPE))
            try:
                proc.stdin.close()
            except (OSError, ValueError):
                pass
        if self._log is not None:
            self._log.close()
            self._log = None

    def abort(self) -> None:
        """Stop ffmpeg at once without raising; the transaction then deletes the temp file."""
        proc = self._proc
        if proc is not None:
            try:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
            except OSError:
                pass
        self._cleanup()


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
        # GIF stores delays in centiseconds; pillow takes ms. loop=0 plays forever. Encoded in memory so that a
        # full disk is one OutputWriteError from write_bytes.
        data = iio.imwrite("<bytes>", np.stack(frames), extension=".gif", duration=1000.0 / self.fps, loop=0)
        write_bytes(self.temp, data)

    def abort(self) -> None:
        self._frames = []


class FolderSink(FrameSink):
    """Numbered PNGs ``frame_0000.png ...`` in a (temp) folder; ``temp_dir`` is that folder, so a caller can put
    the recipe beside the frames and have it committed with them."""

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
        return FolderSink(tx.folder(out, frame_names(n_frames)), n_frames)
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
    # imageio's stub says Reader.__iter__ returns an Array; it returns an iterator over the frames.
    frames = cast("Iterable[np.ndarray]", reader)
    try:
        return np.stack([np.asarray(f) for f in frames])
    finally:
        reader.close()


# --------------------------------------------------------------------------------------------------------------
# 3DGS PLY and .splat
