"""The limits of the restricted checkpoint reader, in one module.

Why a module of its own: every step of a load (opcode scan, unpickler, storage decoding, materialisation) is
bounded by these numbers, and tests tighten them at run time (``monkeypatch.setattr`` on
``gghead_core._pickle_reader``, which forwards to this module). So the other modules read them as
``limits.NAME`` when they run, never ``from .limits import NAME`` (that would freeze the value at import).
"""

from __future__ import annotations

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
MAX_ELEMENTS = 1 << 34
"""Most elements of one storage or view: 16 G, far above any generator, far below an integer-overflow trick."""
