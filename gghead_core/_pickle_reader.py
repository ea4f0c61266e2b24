"""A restricted unpickler that reads official GGHead/EG3D checkpoints as inert data.

Official checkpoints are plain pickles of whole ``nn.Module`` trees (spec section 1). Loading them the normal way
imports the authors' packages and, for EG3D "persistent" classes, *executes the module source embedded in the
file*. This reader never does either: every global the stream references is looked up in an explicit
allow-list and turned into a harmless record. Anything not on the list (``os.system``, ``builtins.eval``,
``subprocess.Popen`` ...) stops the load with a :class:`PickleSecurityError` naming the global.

What comes out:

* :class:`StubObject` instances for classes of the authors' code (``GGHeadModel``, config dataclasses,
  ``torch.nn.Conv2d`` ...): the pickled constructor args and ``__dict__`` state, nothing else.
* :class:`PersistentRecord` for EG3D persistent classes (``SynthesisLayer`` ...): class name and state; the
  embedded ``module_src`` is dropped unread.
* real ``torch.Tensor`` objects for tensors (storages are decoded by :func:`decode_legacy_storage`, always onto
  the CPU, whatever device they were saved from).
* :class:`AttrRef` for ``getattr(obj, name)`` calls (bound methods, ``torch.exp``), never resolved.
"""

from __future__ import annotations

import io
import pickle
import struct
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch


class PickleSecurityError(pickle.UnpicklingError):
    """The stream references a global that is not on the allow-list."""


# ----------------------------------------------------------------------------------------------------------------
# Inert records


class StubObject:
    """An instance of a class we do not import: keeps constructor args and pickled state, does nothing else."""

    _stub_module: str = "?"
    _stub_name: str = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> "StubObject":  # NEWOBJ calls cls.__new__(cls, *args)
        obj = object.__new__(cls)
        obj.__dict__["stub_args"] = args
        obj.__dict__["stub_state"] = {}
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # REDUCE calls cls(*args)
        pass

    def __setstate__(self, state: Any) -> None:  # BUILD
        if isinstance(state, tuple) and len(state) == 2:  # (dict state, slot state)
            state, slots = state
            merged = dict(state or {})
            merged.update(slots or {})
            state = merged
        if not isinstance(state, dict):
            state = {"__state__": state}
        self.__dict__["stub_state"] = state

    @property
    def qualname(self) -> str:
        return f"{self._stub_module}.{self._stub_name}"

    def __repr__(self) -> str:
        return f"<stub {self.qualname}>"


@dataclass
class PersistentRecord:
    """An EG3D persistent object (``_reconstruct_persistent_obj``): class name and ``__dict__`` state only."""

    class_name: str
    state: dict
    version: int | None = None


@dataclass
class AttrRef:
    """``getattr(target, name)`` as a record; the target is never touched (it may not have its state yet)."""

    target: Any
    name: str


@dataclass
class StubFunction:
    """A function or class referenced by name that must never be called during loading (e.g. ``torch.exp``)."""

    module: str
    name: str

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise PickleSecurityError(f"the checkpoint tries to call {self.module}.{self.name} while loading")


@dataclass
class TensorMeta:
    """Remembered facts about a rebuilt tensor (a parameter or a plain tensor; original device)."""

    is_parameter: bool = False
    devices: set = field(default_factory=set)


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
_MAX_ELEMENTS = 1 << 34  # 16 G elements: far above any generator, far below an integer-overflow trick


@dataclass
class _StorageType:
    dtype: torch.dtype


class _StorageHeaderUnpickler(pickle.Unpickler):
    """Reads the small pickles inside a storage payload; only ``torch.<X>Storage`` globals are allowed."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        raise PickleSecurityError(f"storage payload references forbidden global {module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unexpected persistent id in storage payload: {pid!r}"[:200])
        storage_type, key, location, numel = pid[1], pid[2], pid[3], pid[4]
        if not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError("storage payload without a storage type")
        if not isinstance(numel, int) or numel < 0 or numel > _MAX_ELEMENTS:
            raise pickle.UnpicklingError(f"storage payload with an invalid element count {numel!r}")
        return ("storage", storage_type.dtype, str(key), str(location), numel)


def decode_legacy_storage(payload: bytes, devices_seen: set | None = None) -> torch.Tensor:
    """Decode ``torch.storage._load_from_bytes`` payloads into a flat CPU tensor.

    Layout (spec 1.5): magic, protocol version, sys info, a pickle holding one persistent id
    ``('storage', <type>, key, location, numel, view)``, the list of keys, then per key an int64 element count
    and the raw little-endian bytes. The location (``'cuda:0'`` for files written on a GPU) is only recorded:
    the data always lands on the CPU.
    """
    if not isinstance(payload, (bytes, bytearray)):
        raise pickle.UnpicklingError("storage payload is not a byte string")
    f = io.BytesIO(payload)

    def next_pickle() -> Any:
        return _StorageHeaderUnpickler(f).load()

    if next_pickle() != _LEGACY_MAGIC:
        raise pickle.UnpicklingError("storage payload has a bad magic number")
    if next_pickle() != 1001:
        raise pickle.UnpicklingError("storage payload has an unsupported protocol version")
    sys_info = next_pickle()
    if not isinstance(sys_info, dict) or not sys_info.get("little_endian", False):
        raise pickle.UnpicklingError("storage payload is not little-endian")
    descriptor = next_pickle()
    if not (isinstance(descriptor, tuple) and descriptor and descriptor[0] == "storage"):
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
    itemsize = torch.empty((), dtype=dtype).element_size()
    raw = f.read(count * itemsize)
    if len(raw) != count * itemsize:
        raise pickle.UnpicklingError("storage payload is truncated")
    if devices_seen is not None:
        devices_seen.add(location)
    if count == 0:
        return torch.empty(0, dtype=dtype)
    return torch.frombuffer(bytearray(raw), dtype=dtype)


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


def _safe_numpy_dtype(obj: Any, align: bool = False, copy: bool = False) -> np.dtype:
    dtype = np.dtype(obj) if isinstance(obj, str) else None
    if dtype is None or dtype.kind not in _NUMPY_SCALAR_KINDS:
        raise PickleSecurityError(f"numpy dtype {obj!r} is not a plain numeric type")
    return dtype


def _numpy_scalar(dtype: Any, raw: bytes | None = None) -> int | float | bool:
    if not isinstance(dtype, np.dtype) or dtype.kind not in _NUMPY_SCALAR_KINDS:
        raise PickleSecurityError("numpy scalar of a non-numeric dtype")
    if not isinstance(raw, (bytes, bytearray)) or len(raw) != dtype.itemsize:
        raise pickle.UnpicklingError("malformed numpy scalar")
    return np.frombuffer(bytes(raw), dtype=dtype)[0].item()


def _persistent_record(meta: Any) -> PersistentRecord:
    if not isinstance(meta, dict) or meta.get("type") != "class":
        raise pickle.UnpicklingError("malformed EG3D persistent object")
    class_name, state = meta.get("class_name"), meta.get("state")
    if not isinstance(class_name, str) or not isinstance(state, dict):
        raise pickle.UnpicklingError("malformed EG3D persistent object")
    # meta['module_src'] is deliberately dropped: it is Python source that the official loader would exec.
    return PersistentRecord(class_name=class_name, state=state, version=meta.get("version"))


def _enum_value(value: Any) -> str:
    if not isinstance(value, str):
        raise pickle.UnpicklingError("GaussianAttribute enum with a non-string value")
    return value


def _safe_getattr(target: Any, name: Any, *default: Any) -> AttrRef:
    is_stub = isinstance(target, (StubObject, StubFunction)) or (
        isinstance(target, type) and issubclass(target, StubObject)
    )
    if not is_stub or not isinstance(name, str):
        raise PickleSecurityError(f"getattr on a non-stub object ({type(target).__name__}.{name}) is not allowed")
    return AttrRef(target=target, name=name)


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler with an explicit allow-list; see the module docstring."""

    def __init__(self, file: Any) -> None:
        super().__init__(file)
        self._stub_classes: dict[tuple[str, str], type] = {}
        self.tensor_meta: dict[int, TensorMeta] = {}
        self.storage_devices: set[str] = set()

    # -- tensors -------------------------------------------------------------------------------------------------
    def _load_storage(self, payload: bytes) -> torch.Tensor:
        return decode_legacy_storage(payload, self.storage_devices)

    def _rebuild_tensor(self, storage: Any, offset: Any, size: Any, stride: Any, *rest: Any) -> torch.Tensor:
        if not isinstance(storage, torch.Tensor) or storage.dim() != 1:
            raise pickle.UnpicklingError("tensor without a decoded storage")
        size, stride = tuple(size), tuple(stride)
        if not all(isinstance(v, int) and v >= 0 for v in (offset, *size, *stride)) or len(size) != len(stride):
            raise pickle.UnpicklingError("tensor with an invalid shape or stride")
        if any(s == 0 for s in size):
            return torch.empty(size, dtype=storage.dtype)
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= storage.numel():
            raise pickle.UnpicklingError("tensor view reaches past the end of its storage")
        # Copy into its own contiguous memory: views into shared storages stay independent afterwards.
        return torch.as_strided(storage, size, stride, offset).clone()

    def _rebuild_parameter(self, data: Any, requires_grad: Any = False, hooks: Any = None, *rest: Any) -> Any:
        if isinstance(data, torch.Tensor):
            self.tensor_meta[id(data)] = TensorMeta(is_parameter=True)
        return data

    # -- the allow-list -------------------------------------------------------------------------------------------
    def find_class(self, module: str, name: str) -> Any:
        key = (module, name)
        if key == ("collections", "OrderedDict"):
            return OrderedDict
        if key in {("builtins", "set"), ("__builtin__", "set")}:
            return set
        if key in {("builtins", "frozenset"), ("__builtin__", "frozenset")}:
            return frozenset
        if key in {("builtins", "getattr"), ("__builtin__", "getattr")}:
            return _safe_getattr
        if key == ("torch._utils", "_rebuild_tensor_v2"):
            return self._rebuild_tensor
        if key in {("torch._utils", "_rebuild_parameter"), ("torch._utils", "_rebuild_parameter_with_state")}:
            return self._rebuild_parameter
        if key == ("torch.storage", "_load_from_bytes"):
            return self._load_storage
        if key == ("numpy", "dtype"):
            return _safe_numpy_dtype
        if key in {("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar")}:
            return _numpy_scalar
        if key in _PERSISTENT_RECONSTRUCTORS:
            return _persistent_record
        if key == ("gghead.config.gaussian_attribute", "GaussianAttribute"):
            return _enum_value
        if module == "torch" and name in _TORCH_DTYPE_NAMES:
            return f"torch.{name}"
        if key in _INERT_FUNCTIONS:
            return StubFunction(module, name)
        if module == "torch._C" and name == "_VariableFunctionsClass":
            return self._stub_class(module, name)
        if module.startswith(_STUB_MODULE_PREFIXES) and name.isidentifier():
            return self._stub_class(module, name)
        raise PickleSecurityError(f"forbidden global {module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        raise PickleSecurityError("the checkpoint uses persistent ids, which official GGHead pickles never do")

    def _stub_class(self, module: str, name: str) -> type:
        key = (module, name)
        if key not in self._stub_classes:
            self._stub_classes[key] = type(name, (StubObject,), {"_stub_module": module, "_stub_name": name})
        return self._stub_classes[key]


def restricted_load(file: Any) -> Any:
    """Unpickle ``file`` (a binary file object) with :class:`RestrictedUnpickler`."""
    return RestrictedUnpickler(file).load()
