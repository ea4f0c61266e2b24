"""Output locations and atomic, all-or-nothing writes: path checks, temp names, the output transaction,
write errors (disk full) and signals (see the package docstring for the rules)."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

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

    def __enter__(self) -> OutputTransaction:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()
