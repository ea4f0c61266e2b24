"""Writing results to disk: atomic outputs, PNG, video, 3DGS PLY / .splat, and replayable recipe sidecars.

Rules every writer here follows (they protect user files):

* Nothing is written at the final path until the whole output is complete: data goes to a hidden temp file in
  the same folder (``.<first 32 chars of the stem>.<token>.partial.EXT``, short whatever the output's name)
  that is moved into place at the end (a hard link, so that a file appearing meanwhile is never clobbered, or
  a rename). A new frame folder is filled as a hidden sibling and renamed into place in one step.
* An existing file is never replaced unless ``overwrite=True``; when it is, the old files are kept aside until
  every new file is in place, and put back if anything fails: a commit is all-or-nothing.
* On any error, cancel, Ctrl-C, or SIGTERM/SIGHUP inside :func:`signals_as_interrupt`, the temp files are
  deleted and folders this module created are removed again. Signals that arrive while files are being moved
  into place or deleted are held until that step is done.
* Problems with the output location raise :class:`OutputError` (a ValueError) with a one-line message; a
  write that fails part-way (disk full, I/O error, ffmpeg failing) raises :class:`OutputWriteError` with one
  line such as ``disk full while writing out.mp4``.

Sidecars: every output ``X`` gets a recipe ``X.json`` next to it (for a folder of frames: ``X/recipe.json``).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import json
import math
import os
import platform
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch

from gghead_core._files import read_regular
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
        if exc.errno in _DISK_FULL_ERRNOS:  # not a bad path: the disk is full (exit 1, not 2)
            raise OutputWriteError(f"disk full: cannot write into {os.fspath(parent)}") from None
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


_TEMP_STEM_CHARS = 32
_TEMP_SUFFIX_CHARS = 16
_TEMP_TO_FINAL: dict[str, Path] = {}  # temp path -> the final path it becomes (for messages)


def _temp_name(final: Path) -> Path:
    """A hidden name beside ``final`` that stays short whatever ``final`` is: at most 32 characters of its stem,
    8 random hex digits, ``.partial`` and its extension (imageio picks the format from the extension), so a
    legal 255-byte output name always leaves room for its temp name."""
    suffix = final.suffix if len(final.suffix) <= _TEMP_SUFFIX_CHARS else ".tmp"
    stem = final.name[: len(final.name) - len(final.suffix)] if final.suffix else final.name
    return final.parent / f".{stem[:_TEMP_STEM_CHARS]}.{secrets.token_hex(4)}.partial{suffix}"


def _final_name(path: str | os.PathLike) -> str:
    """The user's name for a temp path (or its folder) in messages; the path itself when it is not ours."""
    p = Path(path)
    if os.fspath(p) in _TEMP_TO_FINAL:
        return os.fspath(_TEMP_TO_FINAL[os.fspath(p)])
    if os.fspath(p.parent) in _TEMP_TO_FINAL:
        return os.fspath(_TEMP_TO_FINAL[os.fspath(p.parent)] / p.name)
    return os.fspath(p)


class OutputWriteError(RuntimeError):
    """Writing an output failed part-way (disk full, I/O error, the video encoder failed). One-line message;
    the transaction has removed every temp file when this reaches the caller. Not an :class:`OutputError`: the
    command line was fine, the machine was not (exit 1, not 2)."""


def write_error(exc: BaseException, path: str | os.PathLike) -> OutputWriteError:
    """One sentence for a failed write of ``path`` (named as the user will see it)."""
    name = _final_name(path)
    if isinstance(exc, OSError) and exc.errno in _DISK_FULL_ERRNOS:
        return OutputWriteError(f"disk full while writing {name}")
    if isinstance(exc, OSError):
        return OutputWriteError(f"cannot write {name}: {exc.strerror or exc}")
    return OutputWriteError(f"cannot write {name}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")


_DISK_FULL_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG}


@contextlib.contextmanager
def _writing(path: str | os.PathLike) -> Iterator[None]:
    """Turn an OSError raised while writing ``path`` into one :class:`OutputWriteError` line."""
    try:
        yield
    except OSError as exc:
        raise write_error(exc, path) from None


def write_bytes(path: str | os.PathLike, data: bytes | memoryview) -> None:
    """Write ``data`` to ``path`` (a temp path), raising :class:`OutputWriteError` on ENOSPC or any OSError."""
    with _writing(path):
        with open(path, "wb") as fh:
            fh.write(data)


# ---- signals ---------------------------------------------------------------------------------------------------

_INTERRUPT_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))
_DEFERRED_SIGNALS = (signal.SIGINT, *_INTERRUPT_SIGNALS)


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"received {signal.Signals(signum).name}")


@contextlib.contextmanager
def signals_as_interrupt(signals: Sequence[int] = _INTERRUPT_SIGNALS) -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise :class:`KeyboardInterrupt` in the main thread, like Ctrl-C.

    Why: their default action kills the process on the spot, so the ``except BaseException`` / ``__exit__``
    rollbacks of :class:`OutputTransaction` never run and ``.partial`` files stay behind. Converted, they take
    the same path as Ctrl-C: temp files removed, nothing half-written at the final names. The previous handlers
    are restored on exit. Outside the main thread (where Python cannot install handlers) it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    try:
        for signum in signals:
            previous[signum] = signal.signal(signum, _raise_interrupt)
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM/SIGHUP while files are renamed into place or temp files are removed, then act on
    them: a commit or a rollback interrupted half-way would leave exactly the mix this module exists to avoid.
    (Handlers, not a signal mask: a process-directed signal may be taken by any thread.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = {}
    try:
        for signum in _DEFERRED_SIGNALS:
            previous[signum] = signal.signal(signum, lambda s, f: pending.append(s))
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        for signum in dict.fromkeys(pending):
            handler = previous.get(signum)
            if callable(handler):
                handler(signum, None)  # e.g. raises KeyboardInterrupt
            elif handler == signal.SIG_DFL:
                os.kill(os.getpid(), signum)  # the default action (terminate), now that the files are consistent


# ---- placing finished files: all or nothing ----------------------------------------------------------------------


_NO_HARD_LINKS = {errno.EPERM, errno.EXDEV, errno.EMLINK, errno.ENOSYS, errno.EACCES,
                  getattr(errno, "ENOTSUP", errno.EPERM), getattr(errno, "EOPNOTSUPP", errno.EPERM)}


class _Placement:
    """Moves finished temp files/folders to their final names; undoes every move if any one fails.

    With ``overwrite`` an existing final file is first renamed aside (hidden backup) and deleted only once all
    new files are in place, so an error in the middle restores the old set exactly.
    """

    def __init__(self, overwrite: bool) -> None:
        self.overwrite = overwrite
        self.placed: list[tuple[Path, Path]] = []  # (temp, final): undo = rename final back to temp
        self.backups: list[tuple[Path, Path]] = []  # (backup, original)

    def set_aside(self, final: Path) -> None:
        backup = final.parent / f".{secrets.token_hex(4)}.old"
        os.rename(final, backup)
        self.backups.append((backup, final))

    def place(self, temp: Path, final: Path) -> None:
        if os.path.lexists(final):
            if not self.overwrite:
                raise OutputError(f"output {os.fspath(final)!r} already exists (use --overwrite to replace it)")
            if final.is_dir() and not final.is_symlink():
                raise OutputError(f"output {os.fspath(final)!r} is a folder; it is not replaced by a file")
            self.set_aside(final)
        try:
            os.link(temp, final)  # fails if final exists: no race with a file created meanwhile
        except FileExistsError:
            raise OutputError(f"output {os.fspath(final)!r} already exists (use --overwrite to replace it)") from None
        except OSError as exc:
            if exc.errno not in _NO_HARD_LINKS:
                raise
            # Folders, and filesystems without hard links: check-then-rename.
            if os.path.lexists(final):
                raise OutputError(f"output {os.fspath(final)!r} already exists (use --overwrite to replace it)") from None
            os.rename(temp, final)
        else:
            os.unlink(temp)
        self.placed.append((temp, final))

    def rollback(self) -> None:
        for temp, final in reversed(self.placed):
            try:
                os.rename(final, temp)
            except OSError:
                pass
        for backup, original in reversed(self.backups):
            try:
                os.rename(backup, original)
            except OSError:
                pass
        self.placed.clear()
        self.backups.clear()

    def finish(self) -> None:
        for backup, _ in self.backups:
            try:
                backup.unlink()
            except OSError:
                pass
        self.backups.clear()


class InterruptedAfterCommit(KeyboardInterrupt):
    """A signal (Ctrl-C, or SIGTERM/SIGHUP inside :func:`signals_as_interrupt`) arrived while the outputs were
    being moved into place; it was held until they were complete, so they are kept. Callers that say "nothing
    was left behind" on KeyboardInterrupt should say "the output was complete and is kept" for this one."""


class OutputTransaction:
    """All files of one job (e.g. ``video.mp4`` + ``video.mp4.json``): they appear together or not at all.

    Use as a context manager: leaving the block normally commits, an exception (incl. KeyboardInterrupt, and
    SIGTERM/SIGHUP inside :func:`signals_as_interrupt`) aborts and deletes every temp file and every folder the
    transaction created. The commit itself is all-or-nothing: files are hard-linked (or renamed) into place
    with signals held, and any failure puts the previous files back. ``committed`` says whether the outputs
    are complete (a signal that arrives during the commit is acted on right after it).
    """

    def __init__(self, overwrite: bool = False) -> None:
        self.overwrite = overwrite
        self._files: list[tuple[Path, Path]] = []  # (temp, final)
        self._dirs_created: list[Path] = []
        self._temp_dirs: list[Path] = []
        self._folder_moves: list[tuple[Path, Path, bool]] = []  # (temp folder, final folder, merge into final)
        self._stale: list[Path] = []
        self.done = False
        self.committed = False

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
            if exc.errno in _DISK_FULL_ERRNOS:
                raise write_error(exc, final) from None
            raise OutputError(f"cannot write {os.fspath(final)!r}: {exc.strerror or exc}") from None
        self._files.append((temp, final))
        _TEMP_TO_FINAL[os.fspath(temp)] = final
        return temp

    def folder(self, final: str | os.PathLike, frame_names: Iterable[str]) -> Path:
        """Reserve a folder of frames; returns a temp folder to fill. Existing frame files (``frame_*``) or a
        recipe in the folder are refused unless overwrite; with overwrite, stale ``frame_*`` files that the
        new output does not replace are removed at commit so the folder holds exactly one sequence.

        A new folder is filled as a hidden sibling and renamed into place in one step; an existing folder is
        filled from a hidden temp folder inside it, and its old frames are kept until every new one is in.
        """
        final = Path(final)
        if final.exists() and not final.is_dir():
            raise OutputError(f"output {os.fspath(final)!r} is a file, not a folder")
        names = set(frame_names)
        check_parent_writable(final)
        merge = final.is_dir()
        if merge:
            ours = [p for p in final.iterdir() if p.name.startswith(FRAME_PREFIX) or p.name == FOLDER_RECIPE_NAME]
            if ours and not self.overwrite:
                raise OutputError(
                    f"folder {os.fspath(final)!r} already holds frames (use --overwrite to replace them)"
                )
            self._stale = [p for p in ours if p.name.startswith(FRAME_PREFIX) and p.name not in names]
            temp = final / f".{secrets.token_hex(4)}.partial"
        else:
            parent = final.parent if os.fspath(final.parent) else Path(".")
            self._dirs_created += _make_parents(parent)
            temp = parent / f".{final.name[:_TEMP_STEM_CHARS]}.{secrets.token_hex(4)}.partial"
        try:
            temp.mkdir()
        except OSError as exc:
            raise OutputError(f"cannot write into {os.fspath(final)!r}: {exc.strerror or exc}") from None
        self._temp_dirs.append(temp)
        self._folder_moves.append((temp, final, merge))
        _TEMP_TO_FINAL[os.fspath(temp)] = final
        return temp

    # -- end -------------------------------------------------------------------------------------------------
    def commit(self) -> None:
        try:
            self._commit()
        except BaseException as exc:
            if not self.done:  # interrupted before the commit itself began: nothing was placed yet
                self.abort()
            if isinstance(exc, KeyboardInterrupt) and self.committed and not isinstance(exc, InterruptedAfterCommit):
                raise InterruptedAfterCommit(*exc.args) from None
            raise

    def _commit(self) -> None:
        with _signals_deferred():
            placement = _Placement(self.overwrite)
            try:
                for temp_dir, final_dir, merge in self._folder_moves:
                    if not merge:
                        try:
                            os.rename(temp_dir, final_dir)  # the whole new folder appears at once
                        except OSError:
                            if not final_dir.is_dir():
                                raise
                            merge = True  # a folder appeared meanwhile: merge into it like an existing one
                        else:
                            placement.placed.append((temp_dir, final_dir))
                            continue
                    for item in sorted(temp_dir.iterdir()):
                        placement.place(item, final_dir / item.name)
                for stale in self._stale:
                    if stale.exists():
                        placement.set_aside(stale)
                for temp, final in self._files:
                    placement.place(temp, final)
            except BaseException as exc:
                placement.rollback()
                error = write_error(exc, exc.filename or "the output") if isinstance(exc, OSError) else None
                self._abort_now()
                if error is not None:
                    raise error from None
                raise
            placement.finish()
            for temp_dir, _, _ in self._folder_moves:
                if temp_dir.is_dir():
                    shutil.rmtree(temp_dir, ignore_errors=True)
            self._forget()
            self._files.clear()
            self._temp_dirs.clear()
            self.done = self.committed = True

    def abort(self) -> None:
        try:
            with _signals_deferred():
                self._abort_now()
        except BaseException:
            if not self.done:  # a signal landed while the handlers were being swapped: clean up anyway
                self._abort_now()
            raise

    def _abort_now(self) -> None:
        for temp, _ in self._files:
            try:
                temp.unlink(missing_ok=True)
            except OSError:
                pass
        for d in self._temp_dirs:
            shutil.rmtree(d, ignore_errors=True)
        self._forget()
        self._files.clear()
        self._temp_dirs.clear()
        _remove_dirs(self._dirs_created)
        self._dirs_created.clear()
        self.done = True

    def _forget(self) -> None:
        for temp, _ in self._files:
            _TEMP_TO_FINAL.pop(os.fspath(temp), None)
        for temp_dir, _, _ in self._folder_moves:
            _TEMP_TO_FINAL.pop(os.fspath(temp_dir), None)

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

    def _start(self, frame: np.ndarray) -> None:
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
            self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._log,
                                          start_new_session=True)
        except OSError as exc:
            self._log.close()
            raise OutputWriteError(f"cannot start ffmpeg to write {_final_name(self.temp)}: "
                                   f"{exc.strerror or exc}") from None
        self._size = frame.shape

    def write(self, frame: np.ndarray) -> None:
        frame = np.ascontiguousarray(pad_to_even(to_uint8(frame)[..., :3]))
        if self._proc is None:
            self._start(frame)
        elif frame.shape != self._size:
            raise ValueError(f"video frames must all have the same size: {frame.shape} vs {self._size}")
        try:
            self._proc.stdin.write(frame.view(np.uint8))
        except OSError:  # BrokenPipeError: ffmpeg has exited; its log says why
            self._fail()
        self.frames += 1

    def close(self) -> None:
        if self._proc is None:
            if self.frames == 0:
                raise ValueError("a video needs at least one frame")
            return
        try:
            self._proc.stdin.close()
        except OSError:
            pass
        if self._proc.wait() != 0:
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
        if proc is not None:
            for stream in (proc.stdin,):
                try:
                    stream.close()
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
    with _writing(path), open(path, "wb") as fh:
        fh.write(("\n".join(header) + "\n").encode("ascii"))
        fh.write(data.view(np.uint8))


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
    write_bytes(path, np.ascontiguousarray(splats).view(np.uint8))


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
    write_bytes(path, recipe.to_json().encode("utf-8"))


MAX_RECIPE_BYTES = 64 << 20
"""A recipe of a 100k-frame turntable is ~30 MB; anything larger is not one of ours."""


def read_recipe(path: str | os.PathLike) -> Recipe:
    """Load and validate a recipe; raises RecipeError (one line) for anything that is not a recipe we wrote."""
    p = Path(path)
    try:
        text = read_regular(p, MAX_RECIPE_BYTES).decode("utf-8")
    except FileNotFoundError:
        raise RecipeError(f"recipe {os.fspath(p)!r} does not exist") from None
    except ValueError as exc:  # includes UnicodeDecodeError
        raise RecipeError(f"cannot read recipe {os.fspath(p)!r}: {str(exc).splitlines()[0]}") from None
    except OSError as exc:
        raise RecipeError(f"cannot read recipe {os.fspath(p)!r}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
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
