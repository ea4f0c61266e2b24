"""Legacy torch storage payloads (spec 1.5) and the check of a tensor view against its storage.

Why a module of its own: each tensor's bytes sit inside a second, tiny ``torch.save`` stream
(``torch.storage._load_from_bytes``). Decoding it needs its own allow-list (only ``torch.<X>Storage``) and its own
layout checks, and :func:`check_view` is the one place that decides whether an (offset, size, stride) view
stays inside the bytes a storage really has; both the unpickler and the materialiser call it.
"""

from __future__ import annotations

import io
import math
import pickle
import struct
import warnings
from typing import Any

import torch

from . import limits
from .records import PickleSecurityError, StorageRecord, _Inert, _itemsize

_STORAGE_DTYPES = {
    "FloatStorage": torch.float32,
    "DoubleStorage": torch.float64,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
    "UntypedStorage": torch.uint8,
}

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class _StorageType(_Inert):
    __slots__ = ("dtype",)

    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype


class _StorageHeaderUnpickler(pickle.Unpickler):
    """Reads the small pickles inside a storage payload; only ``torch.<X>Storage`` globals are allowed."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        raise PickleSecurityError(f"storage payload references forbidden global {module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError("unexpected persistent id in storage payload")
        storage_type, key, location, numel = pid[1], pid[2], pid[3], pid[4]
        if not isinstance(storage_type, _StorageType) or storage_type.dtype not in _STORAGE_DTYPES.values():
            raise pickle.UnpicklingError("storage payload without a storage type")
        if not isinstance(numel, int) or isinstance(numel, bool) or numel < 0 or numel > limits.MAX_ELEMENTS:
            raise pickle.UnpicklingError(f"storage payload with an invalid element count {numel!r}"[:200])
        if not isinstance(key, str) or not isinstance(location, str) or len(key) > 64 or len(location) > 64:
            raise pickle.UnpicklingError("storage payload with an invalid key or location")
        return ("storage", storage_type.dtype, key, location, numel)


def parse_legacy_storage(payload: Any) -> StorageRecord:
    """Decode a ``torch.storage._load_from_bytes`` payload into a :class:`StorageRecord` (no tensor yet).

    Layout (spec 1.5): magic, protocol version, sys info, a pickle holding one persistent id
    ``('storage', <type>, key, location, numel, view)``, the list of keys, then per key an int64 element count
    and the raw little-endian bytes. The location (``'cuda:0'`` for files written on a GPU) is only recorded:
    the data always lands on the CPU.
    """
    if not isinstance(payload, (bytes, bytearray)):
        raise pickle.UnpicklingError("storage payload is not a byte string")
    f = io.BytesIO(payload)
    header_unpickler = _StorageHeaderUnpickler(f)  # one instance reads the five header pickles in turn

    def next_pickle() -> Any:
        return header_unpickler.load()

    if next_pickle() != _LEGACY_MAGIC:
        raise pickle.UnpicklingError("storage payload has a bad magic number")
    if next_pickle() != 1001:
        raise pickle.UnpicklingError("storage payload has an unsupported protocol version")
    sys_info = next_pickle()
    if not isinstance(sys_info, dict) or sys_info.get("little_endian") is not True:
        raise pickle.UnpicklingError("storage payload is not little-endian")
    descriptor = next_pickle()
    if not (isinstance(descriptor, tuple) and len(descriptor) == 5 and descriptor[0] == "storage"):
        raise pickle.UnpicklingError("storage payload holds no storage")
    _, dtype, key, location, numel = descriptor
    keys = next_pickle()
    if not isinstance(keys, list) or keys != [key]:
        raise pickle.UnpicklingError("storage payload has an unexpected key list")
    header = f.read(8)
    if len(header) != 8:
        raise pickle.UnpicklingError("storage payload is truncated")
    (count,) = struct.unpack("<q", header)
    if count != numel:
        raise pickle.UnpicklingError("storage payload element count does not match its header")
    nbytes = count * _itemsize(dtype)
    start = f.tell()
    if nbytes > len(payload) - start:
        raise pickle.UnpicklingError("storage payload is truncated")
    # A view, not a copy: the payload is alive anyway until the load ends, and peak memory stays ~2x the file.
    raw = memoryview(payload)[start:start + nbytes].toreadonly()
    return StorageRecord(dtype=dtype, data=raw, numel=count, location=location)


def _storage_tensor(storage: StorageRecord) -> torch.Tensor:
    """The flat CPU tensor over a storage record's bytes (read-only memory: callers copy what they keep)."""
    if storage.numel == 0:
        return torch.empty(0, dtype=storage.dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "buffer is not writable": nothing writes to it
        return torch.frombuffer(storage.data, dtype=storage.dtype, count=storage.numel)


def decode_legacy_storage(payload: bytes, devices_seen: set | None = None) -> torch.Tensor:
    """Decode a storage payload into a flat CPU tensor (see :func:`parse_legacy_storage`)."""
    record = parse_legacy_storage(payload)
    if devices_seen is not None:
        devices_seen.add(record.location)
    return _storage_tensor(record).clone()


def check_view(storage: StorageRecord, offset: Any, size: Any, stride: Any) -> tuple[int, tuple, tuple]:
    """Validate a tensor view against its storage; returns ``(offset, size, stride)`` as ints and tuples.

    Every element the view can address must lie inside the storage's real byte size. Raises UnpicklingError.
    """
    if not isinstance(storage, StorageRecord):
        raise pickle.UnpicklingError("tensor without a decoded storage")
    if not isinstance(size, (tuple, list)) or not isinstance(stride, (tuple, list)):
        raise pickle.UnpicklingError("tensor with an invalid shape or stride")
    size, stride = tuple(size), tuple(stride)
    values = (offset, *size, *stride)
    if (len(size) != len(stride) or len(size) > limits.MAX_TENSOR_DIMS
            or not all(type(v) is int and 0 <= v <= limits.MAX_ELEMENTS for v in values)):
        raise pickle.UnpicklingError("tensor with an invalid shape or stride")
    numel = math.prod(size)
    if numel > limits.MAX_ELEMENTS:
        raise pickle.UnpicklingError(f"tensor with {numel} elements")
    if numel == 0:
        return offset, size, stride
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= storage.numel or (last + 1) * storage.itemsize > len(storage.data):
        raise pickle.UnpicklingError("tensor view reaches past the end of its storage")
    return offset, size, stride
