"""Step 3 of a load: tensor records become checked CPU tensors, after parsing has finished.

Why a module of its own: tensors are created only once the whole stream has been read as inert records, so a
hostile stream never gets to act on a real tensor. This walk re-checks every view against its storage, bounds
nesting and object count, and caps the memory that overlapping or stride-0 views may add.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from . import limits
from .records import AttrRef, PersistentRecord, PickleLimitError, StorageRecord, StubObject, TensorRecord
from .storage import _storage_tensor, check_view


class _Materializer:
    """Replaces every :class:`TensorRecord` in a parsed object graph by a checked CPU tensor.

    Shared objects are visited once (so a DAG of 4^16 paths costs 16*4 visits), nesting is bounded, and the
    bytes that views may add beyond their storages' own bytes are capped (stride-0 / overlapping expansions).
    """

    def __init__(self) -> None:
        self.tensors: dict[int, torch.Tensor] = {}
        self.storages: dict[int, torch.Tensor] = {}
        self.done: dict[int, Any] = {}
        self.nodes = 0
        self.storage_bytes = 0
        self.view_bytes = 0
        self._keep: list[Any] = []  # keeps visited objects alive so their ids stay unique

    def tensor(self, record: TensorRecord) -> torch.Tensor:
        key = id(record)
        if key in self.tensors:
            return self.tensors[key]
        storage = record.storage
        offset, size, stride = check_view(storage, record.offset, record.size, record.stride)
        if id(storage) not in self.storages:
            self.storage_bytes += len(storage.data)
            self.storages[id(storage)] = _storage_tensor(storage)
            self._keep.append(storage)
        view_bytes = math.prod(size) * storage.itemsize
        if self.view_bytes + view_bytes > self.storage_bytes + limits.MAX_EXPANSION_BYTES:
            raise PickleLimitError(
                f"tensor views would materialise {(self.view_bytes + view_bytes) >> 20} MiB from "
                f"{self.storage_bytes >> 20} MiB of stored data (overlapping or stride-0 views)")
        self.view_bytes += view_bytes
        flat = self.storages[id(storage)]
        if math.prod(size) == 0:
            out = torch.empty(size, dtype=storage.dtype)
        else:
            # A copy in its own contiguous memory: views into shared storages stay independent afterwards.
            out = torch.as_strided(flat, size, stride, offset).clone()
        self.tensors[key] = out
        self._keep.append(record)
        return out

    def convert(self, root: Any) -> Any:
        return self._convert(root, 0)

    def _convert(self, obj: Any, depth: int) -> Any:
        if isinstance(obj, TensorRecord):
            return self.tensor(obj)
        if isinstance(obj, (str, bytes, int, float, bool, type(None), StorageRecord, memoryview)):
            return obj
        key = id(obj)
        if key in self.done:
            return self.done[key]
        if depth > limits.MAX_DEPTH:
            raise PickleLimitError(f"the checkpoint nests objects more than {limits.MAX_DEPTH} levels deep")
        self.nodes += 1
        if self.nodes > limits.MAX_NODES:
            raise PickleLimitError(f"the checkpoint holds more than {limits.MAX_NODES} objects")
        self._keep.append(obj)
        self.done[key] = obj  # containers are converted in place; a cycle sees the same object
        d = depth + 1
        if isinstance(obj, dict):
            for k in list(obj.keys()):
                obj[k] = self._convert(obj[k], d)
        elif isinstance(obj, list):
            for i, v in enumerate(obj):
                obj[i] = self._convert(v, d)
        elif isinstance(obj, tuple):
            new = tuple(self._convert(v, d) for v in obj)
            if any(a is not b for a, b in zip(new, obj)):
                self.done[key] = new
                return new
        elif isinstance(obj, StubObject):
            obj.__dict__["stub_args"] = self._convert(obj.stub_args, d)
            obj.__dict__["stub_state"] = self._convert(obj.stub_state, d)
        elif isinstance(obj, PersistentRecord):
            obj.state = self._convert(obj.state, d)
        elif isinstance(obj, AttrRef):
            obj.target = self._convert(obj.target, d)
        elif isinstance(obj, (set, frozenset)):
            for v in obj:
                self._convert(v, d)  # tensors are unhashable: only the depth/size bounds matter here
        return obj


def materialize(obj: Any) -> Any:
    """Turn every tensor record in ``obj`` (converted in place where mutable) into a checked CPU tensor."""
    return _Materializer().convert(obj)
