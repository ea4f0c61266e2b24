"""The three steps of a restricted load in order: scan, unpickle into records, materialise tensors.

Why a module of its own: it is the one entry point (:func:`restricted_load`) that ties the steps together and
picks the cheapest safe source for the scan (an mmap, the BytesIO itself, or the bounded reader).
"""

from __future__ import annotations

import io
import mmap
from typing import Any

from .materialize import materialize
from .scan import _BoundedReader, scan_pickle
from .unpickler import RestrictedUnpickler


def restricted_load(file: Any) -> Any:
    """Unpickle ``file`` (a seekable binary file object) with :class:`RestrictedUnpickler`, then build tensors.

    Raises :class:`pickle.UnpicklingError` (:class:`PickleSecurityError` for a forbidden global or state change,
    :class:`PickleLimitError` for a file that would cost too much) with a one-line message.
    """
    reader = _BoundedReader(file)
    start = file.tell()
    try:
        mapped = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
    except (AttributeError, OSError, ValueError):  # BytesIO and friends (no descriptor), or an empty file
        mapped = None
    try:
        if mapped is not None:
            mapped.seek(start)
            scan_pickle(mapped)  # mmap.read(n) returns what is there: no allocation of a claimed length
        elif isinstance(file, io.BytesIO):
            scan_pickle(file)
        else:
            scan_pickle(reader)
    finally:
        if mapped is not None:
            mapped.close()
    reader.rewind()
    unpickler = RestrictedUnpickler(reader)
    records = unpickler.load()
    return materialize(records)
