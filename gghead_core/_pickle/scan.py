"""Step 1 of a load: a bounded view of the file and the opcode pre-scan.

Why a module of its own: before the C unpickler builds a single object, :func:`scan_pickle` walks the opcode
stream with a shadow stack of sizes and refuses what would be costly to build (memo indices out of order,
reference bombs, deep tuple nesting, too many opcodes). :class:`_BoundedReader` makes sure neither the scan nor
the unpickler allocates a byte string longer than the rest of the file.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import struct
from typing import Any, BinaryIO

from . import limits
from .records import PickleLimitError


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
    max_opcodes = limits.MAX_OPCODES  # read once per scan: the loop below runs once per opcode
    try:
        for opcode, arg, _pos in pickletools.genops(source):
            count += 1
            if count > max_opcodes:
                raise PickleLimitError(f"the checkpoint has more than {max_opcodes} pickle opcodes")
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
                if size > limits.MAX_TUPLE_EXPANSION:
                    raise PickleLimitError(
                        f"a tuple expands to more than {limits.MAX_TUPLE_EXPANSION} items through shared references")
                if depth > limits.MAX_TUPLE_DEPTH:
                    raise PickleLimitError(f"tuples nested more than {limits.MAX_TUPLE_DEPTH} levels deep")
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
            if work > limits.MAX_SCAN_WORK:
                raise PickleLimitError("the checkpoint's shared references expand to more than "
                                       f"{limits.MAX_SCAN_WORK} items (a reference bomb?)")
    except (ValueError, struct.error, IndexError, KeyError) as exc:  # genops: bad opcode, truncated argument
        raise pickle.UnpicklingError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
    return count

