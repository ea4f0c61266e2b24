"""A restricted unpickler that reads official GGHead/EG3D checkpoints as inert data.

Official checkpoints are plain pickles of whole ``nn.Module`` trees (spec section 1). Loading them the normal way
imports the authors' packages and, for EG3D "persistent" classes, *executes the module source embedded in the
file*. This reader never does either: every global the stream references is looked up in an explicit
allow-list and turned into a harmless record. Anything not on the list (``os.system``, ``builtins.eval``,
``subprocess.Popen`` ...) stops the load with a :class:`PickleSecurityError` naming the global.

Loading happens in three steps, and only the last one creates tensors:

1. :func:`scan_pickle` walks the opcode stream once without building anything (``pickletools.genops`` plus a
   shadow stack of sizes): it refuses memo indices out of order (the C unpickler would allocate an array of
   that length), tuples whose shared references expand to more than :data:`MAX_TUPLE_EXPANSION` items (hashing
   or comparing them would take exponential time) and byte strings longer than the rest of the file.
2. The C unpickler with the allow-list below builds *records*: :class:`StubObject`, :class:`PersistentRecord`,
   :class:`AttrRef`, :class:`StorageRecord`, :class:`TensorRecord`. Every object the stream can reach has a
   ``__setstate__`` that either is ours (stubs keep the state as data) or refuses, so a BUILD opcode can never
   call a method of a real object (torch's ``Tensor.__setstate__`` -> ``set_`` in particular).
3. :func:`materialize` turns tensor records into CPU tensors, after checking each view (offset, size, stride)
   against the byte size of its storage, refusing nesting deeper than :data:`MAX_DEPTH`, and bounding the
   memory that overlapping or stride-0 views may materialise (:data:`MAX_EXPANSION_BYTES`).

What comes out of :func:`restricted_load`:

* :class:`StubObject` instances for classes of the authors' code (``GGHeadModel``, config dataclasses,
  ``torch.nn.Conv2d`` ...): the pickled constructor args and ``__dict__`` state, nothing else.
* :class:`PersistentRecord` for EG3D persistent classes (``SynthesisLayer`` ...): class name and state; the
  embedded ``module_src`` is dropped unread.
* real ``torch.Tensor`` objects for tensors, always on the CPU whatever device they were saved from.
* :class:`AttrRef` for ``getattr(obj, name)`` calls (bound methods, ``torch.exp``), never resolved.
"""

from __future__ import annotations

import io
import math
import mmap
import pickle
import pickletools
import struct
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, BinaryIO, Literal

import numpy as np
import torch


class PickleSecurityError(pickle.UnpicklingError):
    """The stream references a global that is not on the allow-list, or tries to run code on a loaded object."""


class PickleLimitError(pickle.UnpicklingError):
    """The stream is well formed but would cost more memory or time than any real checkpoint needs."""


MAX_DEPTH = 200
"""Deepest nesting of containers/records accepted (official module trees are < 50 levels deep)."""
MAX_NODES = 20_000_000
"""Most distinct objects one file may hold (the released FFHQ snapshot has well under a million)."""
MAX_TUPLE_EXPANSION = 100_000
"""Most items a tuple may expand to when shared references are followed (hashing visits every one)."""
MAX_EXPANSION_BYTES = 64 << 20
"""Bytes that tensor views may materialise beyond the bytes their storages hold (overlapping/stride-0 views)."""
MAX_TUPLE_DEPTH = 100
"""Deepest nesting of tuples in tuples (their hash recurses on the C stack)."""
MAX_SCAN_WORK = 50_000_000
"""Most hashing / iteration steps the objects of one file may cost while it is unpickled (seconds at most)."""
MAX_OPCODES = 1_000_000
"""Most pickle opcodes in one file (the official-format fixture has 29 000; a snapshot of the released model
has the same structure): bounds the time of the scan to a few seconds."""
MAX_STORAGES = 20_000
"""Most distinct tensor storages (a snapshot holds G, G_ema and D: a few thousand at most)."""
MAX_TENSORS = 50_000
"""Most tensor views (each is checked and copied)."""
MAX_TENSOR_DIMS = 16
_MAX_ELEMENTS = 1 << 34  # 16 G elements: far above any generator, far below an integer-overflow trick


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


# ----------------------------------------------------------------------------------------------------------------
# Reading: a file view that never promises more bytes than the file has, and the opcode scan


class _BoundedReader(io.RawIOBase):
    """Read-only view of ``file`` from its current position to its end.

    The C unpickler asks for a byte string's claimed length in one ``read(n)``; a buffered file allocates ``n``
    bytes before reading. Here a claim beyond the end of the file is refused before anything is allocated.
    """

    def __init__(self, file: BinaryIO) -> None:
        super().__init__()
        self._file = file
        self._start = file.tell()
        self._end = file.seek(0, io.SEEK_END)
        file.seek(self._start)
        self._pos = self._start

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos - self._start

    def rewind(self) -> None:
        self._file.seek(self._start)
        self._pos = self._start

    def _check(self, n: int) -> int:
        remaining = self._end - self._pos
        if n is None or n < 0:
            return remaining
        if n > remaining:
            raise pickle.UnpicklingError(f"the stream claims {n} bytes but only {remaining} remain (truncated?)")
        return n

    def read(self, n: int = -1) -> bytes:
        data = self._file.read(self._check(n))
        self._pos += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def readline(self, limit: int | None = -1) -> bytes:
        cap = min(self._end - self._pos, 1 << 20 if limit is None or limit < 0 else limit)
        line = self._file.readline(cap)
        self._pos += len(line)
        return line


_MARK = object()
_SATURATE = 1 << 62


class _Weight:
    """Shadow of one stack object in :func:`scan_pickle`: how many items hashing, comparing or iterating it can
    visit (plain containers count their items, shared references included; other objects count 1), and for
    tuples how deeply they nest (hashing a tuple recurses in C without a depth guard). A cell, not an int,
    because a memoised list keeps growing after it was stored (APPEND after PUT)."""

    __slots__ = ("depth", "n")

    def __init__(self, n: int = 1, depth: int = 0) -> None:
        self.n, self.depth = n, depth


_LEAF = _Weight(1)  # shared by every object that is not a plain container (never mutated)

(_K_LEAF, _K_PUT, _K_MEMOIZE, _K_GET, _K_MARK, _K_POP, _K_DUP, _K_TUPLE, _K_ADD, _K_CONTAINER, _K_BUILD,
 _K_CALL, _K_OTHER) = range(13)


def _scan_table() -> dict[str, tuple[int, bool, int, int]]:
    """opcode name -> (kind, takes a MARK slice, items popped below the mark / from the top, items pushed)."""
    kinds = {"PUT": _K_PUT, "BINPUT": _K_PUT, "LONG_BINPUT": _K_PUT, "MEMOIZE": _K_MEMOIZE, "GET": _K_GET,
             "BINGET": _K_GET, "LONG_BINGET": _K_GET, "MARK": _K_MARK, "POP": _K_POP, "DUP": _K_DUP,
             "TUPLE": _K_TUPLE, "TUPLE1": _K_TUPLE, "TUPLE2": _K_TUPLE, "TUPLE3": _K_TUPLE,
             "EMPTY_TUPLE": _K_TUPLE, "APPEND": _K_ADD, "APPENDS": _K_ADD, "SETITEM": _K_ADD,
             "SETITEMS": _K_ADD, "ADDITEMS": _K_ADD, "EMPTY_LIST": _K_CONTAINER, "EMPTY_DICT": _K_CONTAINER,
             "EMPTY_SET": _K_CONTAINER, "LIST": _K_CONTAINER, "DICT": _K_CONTAINER, "FROZENSET": _K_CONTAINER,
             "BUILD": _K_BUILD, "REDUCE": _K_CALL, "NEWOBJ": _K_CALL, "NEWOBJ_EX": _K_CALL, "INST": _K_CALL,
             "OBJ": _K_CALL}
    table = {}
    for op in pickletools.opcodes:
        before = op.stack_before
        marked = pickletools.markobject in before
        npop = before.index(pickletools.markobject) if marked else len(before)
        kind = kinds.get(op.name)
        if kind is None:
            kind = _K_LEAF if npop == 0 and not marked and len(op.stack_after) == 1 else _K_OTHER
        table[op.name] = (kind, marked, npop, len(op.stack_after))
    return table


_SCAN_TABLE = _scan_table()


def scan_pickle(source: Any) -> int:
    """Walk the opcode stream without building objects; refuse what would be costly to build. Returns the
    number of opcodes. ``source`` must not allocate more than it has on ``read(n)`` (an mmap, a BytesIO or a
    :class:`_BoundedReader`).

    Refused: memo indices out of order, tuples that expand (through shared references) to more than
    :data:`MAX_TUPLE_EXPANSION` items or nest deeper than :data:`MAX_TUPLE_DEPTH`, and more than
    :data:`MAX_SCAN_WORK` items of hashing/iteration work in total (every REDUCE / NEWOBJ / BUILD argument and
    every dict key or set item is charged its weight).
    """
    stack: list[Any] = []
    marks: list[int] = []  # stack index of every open MARK
    memo: dict[int, Any] = {}
    count = 0
    work = 0
    table = _SCAN_TABLE
    try:
        for opcode, arg, _pos in pickletools.genops(source):
            count += 1
            if count > MAX_OPCODES:
                raise PickleLimitError(f"the checkpoint has more than {MAX_OPCODES} pickle opcodes")
            kind, marked, npop, nafter = table[opcode.name]
            if kind == _K_LEAF:  # ints, strings, bytes, None, GLOBAL ...: the common case, kept short
                stack.append(_LEAF)
                continue
            if kind == _K_PUT or kind == _K_MEMOIZE:
                index = len(memo) if kind == _K_MEMOIZE else arg
                if not isinstance(index, int) or index < 0 or index > len(memo):
                    raise pickle.UnpicklingError(f"memo index {index!r} out of order")
                if not stack or (marks and marks[-1] == len(stack) - 1):
                    raise pickle.UnpicklingError(f"{opcode.name} on an empty stack")
                memo[index] = stack[-1]
                continue
            if kind == _K_GET:
                if arg not in memo:
                    raise pickle.UnpicklingError(f"memo index {arg!r} read before it was written")
                stack.append(memo[arg])
                continue
            if kind == _K_MARK:
                marks.append(len(stack))
                stack.append(_MARK)
                continue
            sliced: list[Any] = []
            if marked or (kind == _K_POP and marks and marks[-1] == len(stack) - 1):
                if not marks:
                    raise pickle.UnpicklingError(f"{opcode.name} without a MARK")
                mark = marks.pop()
                sliced = stack[mark + 1:]
                del stack[mark:]
                if kind == _K_POP:
                    continue
            if len(stack) - npop < (marks[-1] + 1 if marks else 0):
                raise pickle.UnpicklingError(f"{opcode.name} on a stack that is too short")
            popped = stack[len(stack) - npop:]
            del stack[len(stack) - npop:]
            if kind == _K_DUP:
                stack += [popped[0], popped[0]]
            elif kind == _K_TUPLE:
                items = sliced + popped
                size = min(_SATURATE, 1 + sum(w.n for w in items))
                depth = 1 + max((w.depth for w in items), default=0)
                if size > MAX_TUPLE_EXPANSION:
                    raise PickleLimitError(
                        f"a tuple expands to more than {MAX_TUPLE_EXPANSION} items through shared references")
                if depth > MAX_TUPLE_DEPTH:
                    raise PickleLimitError(f"tuples nested more than {MAX_TUPLE_DEPTH} levels deep")
                stack.append(_Weight(size, depth))
            elif kind == _K_ADD:
                target, added = popped[0], popped[1:] + sliced
                if opcode.name in ("SETITEM", "SETITEMS"):
                    work += sum(w.n for w in added[0::2])  # keys are hashed (and compared on collisions)
                elif opcode.name == "ADDITEMS":
                    work += sum(w.n for w in added)
                if target is _LEAF:
                    target = _Weight(1)  # not a container: the unpickler will refuse; keep the shadow sane
                target.n = min(_SATURATE, target.n + sum(w.n for w in added))
                stack.append(target)
            elif kind == _K_CONTAINER:
                n = 1 + sum(w.n for w in sliced)
                if opcode.name in ("DICT", "FROZENSET"):
                    work += n
                stack.append(_Weight(min(_SATURATE, n)))
            elif kind == _K_BUILD:
                work += popped[1].n
                stack.append(popped[0])
            else:
                if kind == _K_CALL:  # the callee may iterate or hash its arguments once
                    work += sum(w.n for w in sliced) + sum(w.n for w in popped)
                stack.extend([_LEAF] * nafter)
            if work > MAX_SCAN_WORK:
                raise PickleLimitError("the checkpoint's shared references expand to more than "
                                       f"{MAX_SCAN_WORK} items (a reference bomb?)")
    except (ValueError, struct.error, IndexError, KeyError) as exc:  # genops: bad opcode, truncated argument
        raise pickle.UnpicklingError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
    return count


# ----------------------------------------------------------------------------------------------------------------
# Storage decoding (spec 1.5): a legacy, non-zip torch.save stream of a single storage


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
        if not isinstance(numel, int) or isinstance(numel, bool) or numel < 0 or numel > _MAX_ELEMENTS:
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
    if (len(size) != len(stride) or len(size) > MAX_TENSOR_DIMS
            or not all(type(v) is int and 0 <= v <= _MAX_ELEMENTS for v in values)):
        raise pickle.UnpicklingError("tensor with an invalid shape or stride")
    numel = math.prod(size)
    if numel > _MAX_ELEMENTS:
        raise pickle.UnpicklingError(f"tensor with {numel} elements")
    if numel == 0:
        return offset, size, stride
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= storage.numel or (last + 1) * storage.itemsize > len(storage.data):
        raise pickle.UnpicklingError("tensor view reaches past the end of its storage")
    return offset, size, stride


# ----------------------------------------------------------------------------------------------------------------
# The allow-list


# Classes of the authors' packages (and torch.nn modules) become stub classes. Only these prefixes are allowed.
_STUB_MODULE_PREFIXES = (
    "gghead.",
    "eg3d.",
    "torch_utils.",
    "training.",
    "dnnlib.",
    "gaussian_splatting.",
    "elias.",
    "dreifus.",
    "torch.nn.modules.",
)
# Functions referenced (never called) by plain attributes of the stored objects.
_INERT_FUNCTIONS = {
    ("torch.nn.functional", "normalize"),
    ("torch.nn.functional", "softplus"),
    ("torch", "exp"),
    ("torch", "log"),
    ("torch", "sigmoid"),
    ("torch", "tanh"),
}
_PERSISTENT_RECONSTRUCTORS = {
    ("eg3d.torch_utils.persistence", "_reconstruct_persistent_obj"),
    ("torch_utils.persistence", "_reconstruct_persistent_obj"),
}
_TORCH_DTYPE_NAMES = {"float32", "float16", "float64", "bfloat16", "int64", "int32", "uint8", "bool", "int8", "int16"}
_NUMPY_SCALAR_KINDS = set("biuf")


def _safe_numpy_dtype(obj: Any, align: Any = False, copy: Any = False) -> _NumpyDTypeRecord:
    if not isinstance(obj, str) or len(obj) > 16:
        raise PickleSecurityError("numpy dtype given by something other than a short name")
    try:
        dtype = np.dtype(obj)
    except Exception:  # numpy's own parser: any failure means "not a plain numeric type"
        dtype = None
    if dtype is None or dtype.kind not in _NUMPY_SCALAR_KINDS or dtype.fields or dtype.subdtype:
        raise PickleSecurityError(f"numpy dtype {obj!r} is not a plain numeric type"[:200])
    return _NumpyDTypeRecord(obj)


def _numpy_scalar(dtype: Any, raw: bytes | None = None) -> int | float | bool:
    if not isinstance(dtype, _NumpyDTypeRecord):
        raise PickleSecurityError("numpy scalar of a non-numeric dtype")
    np_dtype = dtype.to_numpy()
    if not isinstance(raw, (bytes, bytearray)) or len(raw) != np_dtype.itemsize:
        raise pickle.UnpicklingError("malformed numpy scalar")
    return np.frombuffer(bytes(raw), dtype=np_dtype)[0].item()


def _persistent_record(meta: Any) -> PersistentRecord:
    if not isinstance(meta, dict) or meta.get("type") != "class":
        raise pickle.UnpicklingError("malformed EG3D persistent object")
    class_name, state = meta.get("class_name"), meta.get("state")
    if not isinstance(class_name, str) or not isinstance(state, dict):
        raise pickle.UnpicklingError("malformed EG3D persistent object")
    version = meta.get("version")
    # meta['module_src'] is deliberately dropped: it is Python source that the official loader would exec.
    return PersistentRecord(class_name=class_name, state=state, version=version if type(version) is int else None)


def _enum_value(value: Any) -> str:
    if not isinstance(value, str):
        raise pickle.UnpicklingError("GaussianAttribute enum with a non-string value")
    return value


def _safe_getattr(target: Any, name: Any, *default: Any) -> AttrRef:
    is_stub = isinstance(target, (StubObject, StubFunction)) or (
        isinstance(target, type) and issubclass(target, StubObject)
    )
    if not is_stub or not isinstance(name, str):
        raise PickleSecurityError(f"getattr on a non-stub object ({type(target).__name__}.{name}) is not allowed"
                                  [:200])
    return AttrRef(target=target, name=name)


def _make_set(items: Any = ()) -> set:
    if not isinstance(items, (list, tuple)):
        raise PickleSecurityError("set() of something that is not a list")
    return set(items)


def _make_frozenset(items: Any = ()) -> frozenset:
    if not isinstance(items, (list, tuple)):
        raise PickleSecurityError("frozenset() of something that is not a list")
    return frozenset(items)


def _make_ordered_dict(items: Any = ()) -> _InertOrderedDict:
    if not isinstance(items, (list, tuple)):
        raise PickleSecurityError("OrderedDict() of something that is not a list")
    return _InertOrderedDict(items)


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler with an explicit allow-list; see the module docstring. Produces records, never tensors."""

    def __init__(self, file: Any) -> None:
        super().__init__(file)
        self._stub_classes: dict[tuple[str, str], type] = {}
        self.storage_devices: set[str] = set()
        self._storages: dict[int, tuple[Any, StorageRecord]] = {}
        self._tensor_count = 0
        self._globals = {
            "OrderedDict": _InertCallable(_make_ordered_dict, "collections.OrderedDict"),
            "set": _InertCallable(_make_set, "builtins.set"),
            "frozenset": _InertCallable(_make_frozenset, "builtins.frozenset"),
            "getattr": _InertCallable(_safe_getattr, "builtins.getattr"),
            "rebuild_tensor": _InertCallable(self._rebuild_tensor, "torch._utils._rebuild_tensor_v2"),
            "rebuild_parameter": _InertCallable(self._rebuild_parameter, "torch._utils._rebuild_parameter"),
            "load_storage": _InertCallable(self._load_storage, "torch.storage._load_from_bytes"),
            "np_dtype": _InertCallable(_safe_numpy_dtype, "numpy.dtype"),
            "np_scalar": _InertCallable(_numpy_scalar, "numpy.core.multiarray.scalar"),
            "persistent": _InertCallable(_persistent_record, "persistence._reconstruct_persistent_obj"),
            "enum": _InertCallable(_enum_value, "GaussianAttribute"),
        }

    # -- tensors (as records) ------------------------------------------------------------------------------------
    def _load_storage(self, payload: Any) -> StorageRecord:
        # The same payload object (a memo reference) is one storage, parsed once: a file cannot make us parse
        # a payload a million times with two bytes per repetition.
        cached = self._storages.get(id(payload))
        if cached is not None and cached[0] is payload:
            return cached[1]
        if len(self._storages) >= MAX_STORAGES:
            raise PickleLimitError(f"the checkpoint holds more than {MAX_STORAGES} storages")
        record = parse_legacy_storage(payload)
        self._storages[id(payload)] = (payload, record)
        self.storage_devices.add(record.location)
        return record

    def _rebuild_tensor(self, storage: Any, offset: Any, size: Any, stride: Any, *rest: Any) -> TensorRecord:
        self._tensor_count += 1
        if self._tensor_count > MAX_TENSORS:
            raise PickleLimitError(f"the checkpoint holds more than {MAX_TENSORS} tensors")
        offset, size, stride = check_view(storage, offset, size, stride)
        return TensorRecord(storage=storage, offset=offset, size=size, stride=stride)

    def _rebuild_parameter(self, data: Any, requires_grad: Any = False, hooks: Any = None, *rest: Any) -> Any:
        if not isinstance(data, TensorRecord):
            raise pickle.UnpicklingError("parameter without tensor data")
        return TensorRecord(storage=data.storage, offset=data.offset, size=data.size, stride=data.stride,
                            is_parameter=True)

    # -- the allow-list -------------------------------------------------------------------------------------------
    def find_class(self, module: str, name: str) -> Any:
        key = (module, name)
        g = self._globals
        if key == ("collections", "OrderedDict"):
            return g["OrderedDict"]
        if key in {("builtins", "set"), ("__builtin__", "set")}:
            return g["set"]
        if key in {("builtins", "frozenset"), ("__builtin__", "frozenset")}:
            return g["frozenset"]
        if key in {("builtins", "getattr"), ("__builtin__", "getattr")}:
            return g["getattr"]
        if key == ("torch._utils", "_rebuild_tensor_v2"):
            return g["rebuild_tensor"]
        if key in {("torch._utils", "_rebuild_parameter"), ("torch._utils", "_rebuild_parameter_with_state")}:
            return g["rebuild_parameter"]
        if key == ("torch.storage", "_load_from_bytes"):
            return g["load_storage"]
        if key == ("numpy", "dtype"):
            return g["np_dtype"]
        if key in {("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar")}:
            return g["np_scalar"]
        if key in _PERSISTENT_RECONSTRUCTORS:
            return g["persistent"]
        if key == ("gghead.config.gaussian_attribute", "GaussianAttribute"):
            return g["enum"]
        if module == "torch" and name in _TORCH_DTYPE_NAMES:
            return f"torch.{name}"
        if key in _INERT_FUNCTIONS:
            return StubFunction(module, name)
        if module == "torch._C" and name == "_VariableFunctionsClass":
            return self._stub_class(module, name)
        if module.startswith(_STUB_MODULE_PREFIXES) and name.isidentifier() and len(module) + len(name) < 300:
            return self._stub_class(module, name)
        raise PickleSecurityError(f"forbidden global {module}.{name}"[:300])

    def persistent_load(self, pid: Any) -> Any:
        raise PickleSecurityError("the checkpoint uses persistent ids, which official GGHead pickles never do")

    def _stub_class(self, module: str, name: str) -> type:
        key = (module, name)
        if key not in self._stub_classes:
            if len(self._stub_classes) >= 10_000:
                raise PickleLimitError("the checkpoint names more than 10000 classes")
            self._stub_classes[key] = type(name, (StubObject,), {"_stub_module": module, "_stub_name": name,
                                                                  "__slots__": ()})
        return self._stub_classes[key]


# ----------------------------------------------------------------------------------------------------------------
# Materialising tensors, after parsing


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
        if self.view_bytes + view_bytes > self.storage_bytes + MAX_EXPANSION_BYTES:
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
        if depth > MAX_DEPTH:
            raise PickleLimitError(f"the checkpoint nests objects more than {MAX_DEPTH} levels deep")
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise PickleLimitError(f"the checkpoint holds more than {MAX_NODES} objects")
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
