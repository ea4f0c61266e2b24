"""Step 2 of a load: the allow-list and :class:`RestrictedUnpickler`, which turns the stream into records.

Why a module of its own: this is the security boundary. Every global a checkpoint names goes through
:meth:`RestrictedUnpickler.find_class`; what is allowed becomes a stub class, an inert record or one of the small
checked functions below, and anything else raises :class:`PickleSecurityError` naming the global. No tensor is
created here (see ``materialize.py``).
"""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np

from . import limits
from .records import (
    AttrRef,
    PersistentRecord,
    PickleLimitError,
    PickleSecurityError,
    StorageRecord,
    StubFunction,
    StubObject,
    TensorRecord,
    _InertCallable,
    _InertOrderedDict,
    _NumpyDTypeRecord,
)
from .storage import check_view, parse_legacy_storage

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
        if len(self._storages) >= limits.MAX_STORAGES:
            raise PickleLimitError(f"the checkpoint holds more than {limits.MAX_STORAGES} storages")
        record = parse_legacy_storage(payload)
        self._storages[id(payload)] = (payload, record)
        self.storage_devices.add(record.location)
        return record

    def _rebuild_tensor(self, storage: Any, offset: Any, size: Any, stride: Any, *rest: Any) -> TensorRecord:
        self._tensor_count += 1
        if self._tensor_count > limits.MAX_TENSORS:
            raise PickleLimitError(f"the checkpoint holds more than {limits.MAX_TENSORS} tensors")
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
