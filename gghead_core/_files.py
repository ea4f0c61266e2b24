"""Opening input files safely: only regular files, never blocking, and hashing them.

A FIFO given as a checkpoint or a recipe would block ``open`` forever, and a device would be read without end.
So: ``stat`` first (FIFOs, sockets, devices and folders are refused by kind), ``open`` with ``O_NONBLOCK`` (a
FIFO swapped in meanwhile cannot hang us), ``fstat`` the descriptor again, and only then clear ``O_NONBLOCK``
for ordinary reads. Used by the checkpoint reader, the recipe reader and ``replay``'s checksum.
"""

from __future__ import annotations

import hashlib
import os
import stat
from typing import BinaryIO


class NotRegularFileError(ValueError):
    """The path exists but is not a regular file; the message names what it is (a sentence fragment)."""


def _require_regular(mode: int) -> None:
    if stat.S_ISDIR(mode):
        raise NotRegularFileError("it is a folder")
    if not stat.S_ISREG(mode):
        kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
                else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file")
        raise NotRegularFileError(f"it is {kind}" if kind != "not a regular file" else "it is not a regular file")


def open_regular(path: str | os.PathLike) -> BinaryIO:
    """``open(path, "rb")`` for regular files only, without ever blocking. Raises OSError (missing, no
    permission) or :class:`NotRegularFileError`."""
    _require_regular(os.stat(path).st_mode)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    try:
        _require_regular(os.fstat(fd).st_mode)
        if getattr(os, "O_NONBLOCK", 0):
            import fcntl

            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | os.PathLike, limit: int) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes (ValueError with a sentence when larger)."""
    with open_regular(path) as fh:
        size = os.fstat(fh.fileno()).st_size
        if size > limit:
            raise ValueError(f"it is {size} bytes, more than the {limit} allowed")
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"it is more than the {limit} bytes allowed")
    return data


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a regular file, read in chunks (checkpoints can be gigabytes)."""
    digest = hashlib.sha256()
    with open_regular(path) as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()
