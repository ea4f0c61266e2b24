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

The code lives in the private package ``gghead_core/_pickle/``, one module per step: ``records`` (the inert
records and the two error types), ``limits`` (every bound above), ``scan`` (bounded reader, opcode pre-scan),
``storage`` (legacy storage payloads, :func:`check_view`), ``unpickler`` (the allow-list,
:class:`RestrictedUnpickler`), ``materialize`` (tensors after parsing) and ``load`` (:func:`restricted_load`).
This module is the facade the rest of the code imports. The reader reads its limits from ``_pickle.limits`` at
run time, so that is the module to change them in (the names re-exported below are read-only copies).
"""

from __future__ import annotations

from ._pickle.limits import (
    MAX_DEPTH,
    MAX_ELEMENTS,
    MAX_EXPANSION_BYTES,
    MAX_NODES,
    MAX_OPCODES,
    MAX_SCAN_WORK,
    MAX_STORAGES,
    MAX_TENSOR_DIMS,
    MAX_TENSORS,
    MAX_TUPLE_DEPTH,
    MAX_TUPLE_EXPANSION,
)
from ._pickle.load import restricted_load
from ._pickle.materialize import materialize
from ._pickle.records import (
    AttrRef,
    PersistentRecord,
    PickleLimitError,
    PickleSecurityError,
    StorageRecord,
    StubFunction,
    StubObject,
    TensorRecord,
)
from ._pickle.scan import scan_pickle
from ._pickle.storage import check_view, decode_legacy_storage, parse_legacy_storage
from ._pickle.unpickler import RestrictedUnpickler

__all__ = [
    "MAX_DEPTH",
    "MAX_ELEMENTS",
    "MAX_EXPANSION_BYTES",
    "MAX_NODES",
    "MAX_OPCODES",
    "MAX_SCAN_WORK",
    "MAX_STORAGES",
    "MAX_TENSOR_DIMS",
    "MAX_TENSORS",
    "MAX_TUPLE_DEPTH",
    "MAX_TUPLE_EXPANSION",
    "AttrRef",
    "PersistentRecord",
    "PickleLimitError",
    "PickleSecurityError",
    "RestrictedUnpickler",
    "StorageRecord",
    "StubFunction",
    "StubObject",
    "TensorRecord",
    "check_view",
    "decode_legacy_storage",
    "materialize",
    "parse_legacy_storage",
    "restricted_load",
    "scan_pickle",
]
