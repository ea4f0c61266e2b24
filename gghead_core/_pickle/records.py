"""The inert records the restricted unpickler builds, and its two error types.

Why a module of its own: these classes are the whole vocabulary of what a checkpoint can turn into (stubs,
persistent records, attribute references, storage and tensor records). Each one either keeps the state a
BUILD opcode hands it as plain data or refuses it, so no loaded object can run a method of a real class.
Everything else in the reader imports from here; this module imports nothing of the reader.
"""

from __future__ import annotations

import math
import pickle
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch


class PickleSecurityError(pickle.UnpicklingError):
    """The stream references a global that is not on the allow-list, or tries to run code on a loaded object."""


class PickleLimitError(pickle.UnpicklingError):
    """The stream is well formed but would cost more memory or time than any real checkpoint needs."""


class _Inert:
    """Mixin: BUILD (``__setstate__``) on this object is refused; records are built by the reader only."""

    __slots__ = ()

    def __setstate__(self, state: Any) -> None:
        raise PickleSecurityError(f"the checkpoint tries to set the state of a {type(self).__name__}")


# ----------------------------------------------------------------------------------------------------------------
# Inert records


class StubObject:
    """An instance of a class we do not import: keeps constructor args and pickled state, does nothing else."""

    _stub_module: str = "?"
    _stub_name: str = "?"
    # Instance data, written straight into ``__dict__`` (``__setattr__`` is refused): declared for the type checker.
    stub_args: tuple[Any, ...]
    stub_state: dict[str, Any]

    def __new__(cls, *args: Any, **kwargs: Any) -> StubObject:  # NEWOBJ calls cls.__new__(cls, *args)
        if not isinstance(cls, type) or not issubclass(cls, StubObject):
            raise PickleSecurityError("NEWOBJ on something that is not a stub class")
        obj = object.__new__(cls)
        obj.__dict__["stub_args"] = args
        obj.__dict__["stub_state"] = {}
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # REDUCE calls cls(*args)
        pass

    def __setstate__(self, state: Any) -> None:  # BUILD: the state is kept as data, nothing else happens
        if isinstance(state, tuple) and len(state) == 2:  # (dict state, slot state)
            state, slots = state
            merged = dict(state) if isinstance(state, dict) else {}
            merged.update(slots if isinstance(slots, dict) else {})
            state = merged
        if not isinstance(state, dict):
            state = {"__state__": state}
        self.__dict__["stub_state"] = state

    def __setattr__(self, name: str, value: Any) -> None:
        raise PickleSecurityError(f"the checkpoint tries to set attribute {name!r} of a stub")

    @property
    def qualname(self) -> str:
        return f"{self._stub_module}.{self._stub_name}"

    def __repr__(self) -> str:
        return f"<stub {self.qualname}>"


@dataclass(eq=False)
class PersistentRecord(_Inert):
    """An EG3D persistent object (``_reconstruct_persistent_obj``): class name and ``__dict__`` state only."""

    class_name: str
    state: dict
    version: int | None = None


@dataclass(eq=False)
class AttrRef(_Inert):
    """``getattr(target, name)`` as a record; the target is never touched (it may not have its state yet)."""

    target: Any
    name: str


@dataclass(eq=False)
class StubFunction(_Inert):
    """A function or class referenced by name that must never be called during loading (e.g. ``torch.exp``)."""

    module: str
    name: str

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise PickleSecurityError(f"the checkpoint tries to call {self.module}.{self.name} while loading")


@dataclass(eq=False)
class StorageRecord(_Inert):
    """A decoded legacy storage: raw little-endian bytes of ``numel`` elements of ``dtype`` (spec 1.5)."""

    dtype: torch.dtype
    data: memoryview  # read-only view of the payload bytes, numel * itemsize long
    numel: int
    location: str

    @property
    def itemsize(self) -> int:
        return _itemsize(self.dtype)


@dataclass(eq=False)
class TensorRecord(_Inert):
    """``_rebuild_tensor_v2(storage, offset, size, stride)`` as data; :func:`materialize` makes the tensor."""

    storage: StorageRecord
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]
    is_parameter: bool = False

    @property
    def numel(self) -> int:
        return math.prod(self.size)


class _InertOrderedDict(OrderedDict):
    """``collections.OrderedDict`` as the stream builds it; BUILD on it is refused."""

    def __setstate__(self, state: Any) -> None:
        raise PickleSecurityError("the checkpoint tries to set the state of an OrderedDict")

    def __reduce__(self):  # pickles (and copies) as a plain OrderedDict
        return (OrderedDict, (list(self.items()),))


class _InertCallable(_Inert):
    """A reader function handed to the stream in place of a global; BUILD on it is refused."""

    __slots__ = ("_fn", "_label")
    _fn: Any
    _label: str

    def __init__(self, fn: Any, label: str) -> None:
        object.__setattr__(self, "_fn", fn)
        object.__setattr__(self, "_label", label)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs:
            raise PickleSecurityError(f"{self._label} called with keyword arguments")
        return self._fn(*args)

    def __setattr__(self, name: str, value: Any) -> None:
        raise PickleSecurityError(f"the checkpoint tries to set attribute {name!r} of {self._label}")

    def __repr__(self) -> str:
        return f"<reader {self._label}>"


class _NumpyDTypeRecord(_Inert):
    """``numpy.dtype(name, align, copy)`` + BUILD(state) as data: numpy never sees the state tuple."""

    __slots__ = ("byteorder", "name")
    name: str
    byteorder: Literal["<", ">", "=", "|"]

    def __init__(self, name: str) -> None:
        self.name, self.byteorder = name, "="

    def __setstate__(self, state: Any) -> None:
        # numpy pickles a scalar dtype's state as (3, '<', None, None, None, -1, -1, 0)
        if not (isinstance(state, tuple) and len(state) >= 2 and state[1] in ("<", ">", "=", "|")
                and all(v is None for v in state[2:5])):
            raise pickle.UnpicklingError("malformed numpy dtype state")
        self.byteorder = state[1]

    def to_numpy(self) -> np.dtype:
        dtype = np.dtype(self.name)
        return dtype.newbyteorder(self.byteorder) if self.byteorder in "<>" else dtype


_ITEMSIZES: dict[torch.dtype, int] = {}


def _itemsize(dtype: torch.dtype) -> int:
    if dtype not in _ITEMSIZES:
        _ITEMSIZES[dtype] = torch.empty((), dtype=dtype).element_size()
    return _ITEMSIZES[dtype]
