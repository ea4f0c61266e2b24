"""Hostile checkpoints stay inert, small and fast: each is refused with one CheckpointError line, in < 10 s and
with < 1 GiB of extra address space (RLIMIT_AS in a child process), and no method of a real object runs.

The files are built here by hand (opcodes written out, or pickled from classes whose ``__reduce__`` lies), so
each test says exactly which trick it plays.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from official_format import write_official_pickle

from gghead_core import CheckpointError, Generator, GeneratorConfig, load_generator
from gghead_core._pickle_reader import (
    PickleLimitError,
    PickleSecurityError,
    restricted_load,
)

REPO = Path(__file__).resolve().parents[1]
SMALL = dict(z_dim=32, w_dim=32, channel_base=512, channel_max=16, plane_resolution=16,
             n_uniform_flame_vertices=12, neural_rendering_resolution=64)
BUDGET_SECONDS = 10.0
BUDGET_BYTES = 1 << 30


class _Reduce:
    """Pickles as ``func(*args)`` (optionally followed by BUILD ``state``), whatever ``func`` is."""

    def __init__(self, func, *args, state=None):
        self.func, self.args, self.state = func, args, state

    def __reduce__(self):
        return (self.func, self.args) if self.state is None else (self.func, self.args, self.state)


def _tensor_reduce(storage_tensor: torch.Tensor, offset: int, size: tuple, stride: tuple) -> _Reduce:
    """A ``_rebuild_tensor_v2`` call over the (legacy-pickled) storage of ``storage_tensor`` with any view."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        storage = storage_tensor.storage()  # TypedStorage: pickles as torch.storage._load_from_bytes(...)
    return _Reduce(torch._utils._rebuild_tensor_v2, storage, offset, size, stride, False, OrderedDict())


def _small_generator() -> Generator:
    return Generator(GeneratorConfig(**SMALL)).eval().requires_grad_(False)


# ---- builders of hostile files (name -> (writer, expected words in the message)) ---------------------------


def _proto2(body: bytes) -> bytes:
    return b"\x80\x02" + body + b"."


def _tuple_dag(levels: int) -> bytes:
    """t0 = (); t(i+1) = (t(i), t(i), t(i), t(i)) through the memo: 5 bytes a level, 4**levels leaves."""
    out = b")q\x00"
    for i in range(levels):
        out += b"(" + (b"h" + bytes([i])) * 4 + b"tq" + bytes([i + 1])
    return out


def _write_tensor_build(path: Path) -> None:
    # The original finding: BUILD on a rebuilt tensor reaches Tensor.__setstate__ -> set_(storage, 0, size, stride)
    # with a size bigger than the storage, i.e. weights made of uninitialised memory.
    big = _tensor_reduce(torch.zeros(4), 0, (4,), (1,))
    state_storage = _tensor_reduce(torch.zeros(4), 0, (4,), (1,))
    payload = pickle.dumps(_Reduce(torch._utils._rebuild_tensor_v2, *big.args,
                                   state=(state_storage, 0, (1 << 20,), (1,))), protocol=4)
    path.write_bytes(payload)


def _write_stride0(path: Path) -> None:
    # 4 stored floats viewed as [32768, 32768] with stride 0: 4 GiB once materialised, a few hundred bytes on disk.
    path.write_bytes(pickle.dumps({"G_ema": _tensor_reduce(torch.zeros(4), 0, (1 << 15, 1 << 15), (0, 0))}, protocol=4))


def _write_overlap(path: Path) -> None:
    # One 1 MiB storage, 200 views of all of it: 200 MiB of copies from 1 MiB of data.
    base = torch.zeros(1 << 18)
    views = [_tensor_reduce(base, 0, (1 << 18,), (1,)) for _ in range(200)]
    for v in views[1:]:
        v.args = (views[0].args[0],) + v.args[1:]  # the same storage object: pickled once, then memo references
    path.write_bytes(pickle.dumps({"G_ema": views}, protocol=4))


def _write_memo_bomb(path: Path) -> None:
    # LONG_BINPUT 2**31-1: the C unpickler would grow its memo array to that length (16 GiB) first.
    path.write_bytes(_proto2(b"K\x01r\xff\xff\xff\x7f"))


def _write_bytes_claim(path: Path) -> None:
    # BINBYTES8 claiming 1 TiB in a 30-byte file: a buffered read would allocate the claimed size first.
    path.write_bytes(b"\x80\x04\x8e" + struct.pack("<Q", 1 << 40) + b"x" * 16 + b".")


def _write_deep_lists(path: Path) -> None:
    # 200 000 nested lists: EMPTY_LIST x N, then APPEND x N-1.
    n = 200_000
    path.write_bytes(_proto2(b"]" * n + b"a" * (n - 1)))


def _write_deep_tuples(path: Path) -> None:
    # 1-tuples nested 5000 deep used as a dict key: hashing recurses on the C stack without a guard.
    path.write_bytes(_proto2(b"}" + b")" + b"\x85" * 5000 + b"Ns"))


def _write_tuple_dag(path: Path) -> None:
    path.write_bytes(_proto2(_tuple_dag(16) + b"0"))  # a tuple of 4**16 leaves, hashed if ever used as a key


def _write_hash_bomb(path: Path) -> None:
    # An 87k-item tuple (a DAG of 8 levels) used as the key of 1000 dict entries: 87 M hash steps.
    body = _tuple_dag(8) + b"}(" + (b"h\x08N") * 1000 + b"u"
    path.write_bytes(_proto2(body))


def _dag_list(levels: int) -> list:
    node: list = []
    for _ in range(levels):
        node = [node, node, node, node]
    return node


def _write_config_dag(path: Path) -> None:
    write_official_pickle(_small_generator(), path, extra_dag=_dag_list(16))


def _write_config_dag9(path: Path) -> None:
    # 4**9 = 262 144 leaves: small enough for the opcode scan, so the config walk's own count must refuse it.
    write_official_pickle(_small_generator(), path, extra_dag=_dag_list(9))


def _write_config_deep(path: Path) -> None:
    deep: list = []
    for _ in range(50):  # deeper than any real config (limit 20), shallower than the file-wide limit (200)
        deep = [deep]
    write_official_pickle(_small_generator(), path, extra_deep=deep)


def _write_channel_max_mismatch(path: Path) -> None:
    # Within the sane bounds, but 4096 channels at 4x4 need ~2 GiB of conv weights the file does not have.
    G = _small_generator()
    write_official_pickle(G, path, synthesis_network_config=_synthesis_record(G, channel_base=1 << 20,
                                                                                channel_max=4096))


def _synthesis_record(G: Generator, **overrides):
    from official_format import official_config_record

    record = official_config_record(G).synthesis_network_config
    record.__dict__.update(overrides)
    return record


def _write_z_dim_mismatch(path: Path) -> None:
    # Small enough to build, but the mapping network's first layer no longer matches the file's.
    write_official_pickle(_small_generator(), path, z_dim=64)


def _write_plane_resolution(path: Path) -> None:
    write_official_pickle(_small_generator(), path, plane_resolution=1 << 20)


def _write_z_dim_huge(path: Path) -> None:
    write_official_pickle(_small_generator(), path, z_dim=1 << 30)


def _write_storage_repeat(path: Path) -> None:
    # One storage payload (a memoised bytes object) handed to _load_from_bytes 150 000 times: 1.5 MB of
    # opcodes that would cost 150 000 payload parses (3.5 s at load 10) if each call parsed again.
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        payload = torch.zeros(4).storage().__reduce__()[1][0]
    calls = [_Reduce(torch.storage._load_from_bytes, payload) for _ in range(150_000)]
    path.write_bytes(pickle.dumps({"G_ema": calls}, protocol=4))


def _write_many_views(path: Path) -> None:
    # 60 000 one-element views of one stored float (10 bytes of opcodes each).
    one = _tensor_reduce(torch.zeros(1), 0, (1,), (1,))
    views = [_Reduce(torch._utils._rebuild_tensor_v2, *one.args) for _ in range(60_000)]
    path.write_bytes(pickle.dumps({"G_ema": views}, protocol=4))


def _write_many_opcodes(path: Path) -> None:
    # 1.2 M opcodes (NONE, POP) in 2.4 MB: bounded so that even the scan cannot take long.
    path.write_bytes(_proto2(b"N0" * 600_000 + b"N"))


def _write_fifo(path: Path) -> None:
    os.mkfifo(path)


HOSTILE = {
    "tensor_build": (_write_tensor_build, ["refused", "TensorRecord"]),
    "stride0": (_write_stride0, ["refused", "materialise"]),
    "overlap": (_write_overlap, ["refused", "materialise"]),
    "memo_bomb": (_write_memo_bomb, ["memo index"]),
    "bytes_claim": (_write_bytes_claim, ["1099511627776", "17 remain"]),
    "deep_lists": (_write_deep_lists, ["refused", "levels deep"]),
    "deep_tuples": (_write_deep_tuples, ["refused", "nested more than"]),
    "tuple_dag": (_write_tuple_dag, ["refused", "tuple expands"]),
    "hash_bomb": (_write_hash_bomb, ["refused", "reference bomb"]),
    "config_dag": (_write_config_dag, ["refused", "expand to more than"]),
    "config_dag9": (_write_config_dag9, ["generator config expands to more than"]),
    "config_deep": (_write_config_deep, ["generator config is nested more than 20 levels deep"]),
    "channel_max_mismatch": (_write_channel_max_mismatch, ["907.7 M values", "do not match"]),
    "z_dim_mismatch": (_write_z_dim_mismatch, ["has shape"]),
    "plane_resolution": (_write_plane_resolution, ["plane_resolution", "1048576"]),
    "z_dim_huge": (_write_z_dim_huge, ["z_dim"]),
    "storage_repeat": (_write_storage_repeat, ["no GGHead generator"]),
    "many_views": (_write_many_views, ["refused", "more than 50000 tensors"]),
    "many_opcodes": (_write_many_opcodes, ["refused", "more than 1000000 pickle opcodes"]),
    "fifo": (_write_fifo, ["FIFO"]),
}

_CHILD = r"""
import json, os, resource, sys, time
import torch
from gghead_core import CheckpointError, load_generator

def address_space():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")

budget = int(sys.argv[1])
for path in sys.argv[2:]:
    limit = address_space() + budget
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.RLIM_INFINITY))
    start = time.perf_counter()
    try:
        load_generator(path)
        result = {"status": "loaded"}
    except CheckpointError as exc:
        result = {"status": "refused", "message": str(exc)}
    except BaseException as exc:
        result = {"status": "crashed", "message": f"{type(exc).__name__}: {exc}"[:500]}
    result.update(path=path, seconds=time.perf_counter() - start)
    resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    print(json.dumps(result), flush=True)
"""


@pytest.fixture(scope="module")
def hostile_results(tmp_path_factory):
    """Write every hostile file, then load them all in one child process under an address-space limit."""
    folder = tmp_path_factory.mktemp("hostile")
    paths = {}
    for name, (writer, _) in HOSTILE.items():
        path = folder / f"{name}.pkl"
        writer(path)
        if path.is_file():
            assert path.stat().st_size < 4_000_000, f"{name}: a hostile file should be small"
        paths[name] = path
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(BUDGET_BYTES), *map(str, paths.values())],
                          capture_output=True, text=True, timeout=60 + 20 * len(paths), env=env, cwd=REPO)
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    by_path = {line["path"]: line for line in lines}
    assert proc.returncode == 0, f"child died (rc {proc.returncode}) after {len(lines)} files: {proc.stderr[-2000:]}"
    return {name: by_path[str(path)] for name, path in paths.items()}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_file_is_refused_fast_and_small(hostile_results, name):
    result = hostile_results[name]
    assert result["status"] == "refused", result
    message = result["message"]
    assert "\n" not in message and len(message) < 400, message
    assert f"{name}.pkl" in message, message  # every message names the file
    for word in HOSTILE[name][1]:
        assert word in message, message
    assert result["seconds"] < BUDGET_SECONDS, result


# ---- in-process checks of the reader itself ------------------------------------------------------------------


def test_build_never_reaches_tensor_setstate(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(torch.Tensor, "__setstate__", lambda self, state: calls.append(state), raising=False)
    monkeypatch.setattr(torch.Tensor, "set_", lambda self, *a, **k: calls.append(a))
    path = tmp_path / "build.pkl"
    _write_tensor_build(path)
    with pytest.raises(PickleSecurityError, match="state of a TensorRecord"):
        with open(path, "rb") as f:
            restricted_load(f)
    assert calls == []


@pytest.mark.parametrize("global_name", [("torch._utils", "_rebuild_tensor_v2"), ("collections", "OrderedDict"),
                                         ("builtins", "getattr"), ("torch.storage", "_load_from_bytes")])
def test_build_on_reader_callables_is_refused(global_name):
    module, name = global_name
    # GLOBAL module name; EMPTY_DICT with one item as state; BUILD
    payload = b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"}X\x08\x00\x00\x00__name__X\x01\x00\x00\x00xsb."
    with pytest.raises(PickleSecurityError, match="set the state"):
        restricted_load(io.BytesIO(payload))


def test_build_on_ordered_dict_instance_is_refused():
    payload = b"\x80\x02ccollections\nOrderedDict\n)R}X\x01\x00\x00\x00aK\x01sb."
    with pytest.raises(PickleSecurityError, match="OrderedDict"):
        restricted_load(io.BytesIO(payload))


def test_plain_tensors_and_shared_views_still_load():
    base = torch.arange(12, dtype=torch.float32)
    views = {"a": base[2:6], "b": base.view(3, 4).t(), "same": base}
    loaded = restricted_load(io.BytesIO(pickle.dumps(views, protocol=4)))
    for key, value in views.items():
        assert torch.equal(loaded[key], value)
    assert loaded["a"].untyped_storage().data_ptr() != loaded["same"].untyped_storage().data_ptr()


def test_small_stride0_view_is_allowed_but_bounded():
    # Expansions up to 64 MiB beyond the stored bytes are fine (a real file might hold an expanded buffer).
    ok = {"x": _tensor_reduce(torch.ones(2), 0, (1024, 2), (0, 1))}
    loaded = restricted_load(io.BytesIO(pickle.dumps(ok, protocol=4)))
    assert loaded["x"].shape == (1024, 2) and float(loaded["x"].sum()) == 2048.0
    too_big = {"x": _tensor_reduce(torch.ones(2), 0, (1 << 24, 2), (0, 1))}  # 128 MiB
    with pytest.raises(PickleLimitError, match="materialise"):
        restricted_load(io.BytesIO(pickle.dumps(too_big, protocol=4)))


@pytest.mark.parametrize("offset,size,stride", [(3, (2,), (1,)), (0, (2, 3), (3, 2)), (-1, (1,), (1,)),
                                                (0, (1 << 40, 1 << 40), (1, 1)), (0, (2,), (1 << 62,))])
def test_views_outside_their_storage_are_refused(offset, size, stride):
    bad = _tensor_reduce(torch.zeros(4), offset, size, stride)
    with pytest.raises(pickle.UnpicklingError):
        restricted_load(io.BytesIO(pickle.dumps(bad, protocol=4)))


# ---- config type errors name the file and the field ----------------------------------------------------------


@pytest.mark.parametrize("field,value,words", [
    ("w_dim", "512", ["w_dim", "integer"]),
    ("uv_attributes", 5, ["uv_attributes", "list"]),
    ("plane_resolution", 1 << 20, ["plane_resolution"]),
    ("position_range", float("nan"), ["position_range", "finite"]),
    ("use_align_corners", "yes", ["use_align_corners", "true or false"]),
    ("background_color", [255.0, "white", 0.0], ["background_color"]),
    pytest.param("z_dim", 2**80000, ["z_dim", "80001 bits"], id="z_dim-huge-int"),  # str() of it raises
])
def test_official_config_type_errors_name_file_and_field(tmp_path, field, value, words):
    path = tmp_path / f"bad_{field}.pkl"
    write_official_pickle(_small_generator(), path, **{field: value})
    with pytest.raises(CheckpointError) as info:
        load_generator(path)
    message = str(info.value)
    assert "\n" not in message and path.name in message, message
    for word in words:
        assert word in message, message


@pytest.mark.parametrize("field,value,words", [
    ("w_dim", "512", ["w_dim", "integer"]),
    ("uv_attributes", "POSITION", ["uv_attributes", "list"]),
    ("plane_resolution", 1 << 20, ["plane_resolution"]),
    ("position_range", float("nan"), ["position_range", "finite"]),
    ("mapping_num_layers", 10**6, ["mapping_network_config.num_layers"]),
    ("resample_filter", [1] * 100_000, ["resample_filter"]),
])
def test_safetensors_config_type_errors_name_file_and_field(tmp_path, field, value, words):
    from safetensors.torch import load_file, save_file

    from gghead_core import save_safetensors

    good = save_safetensors(_small_generator(), tmp_path / "good.safetensors")
    from safetensors import safe_open

    with safe_open(str(good), framework="pt") as f:
        metadata = dict(f.metadata())
    config = json.loads(metadata["config"])
    config[field] = value
    metadata["config"] = json.dumps(config)
    bad = tmp_path / f"bad_{field}.safetensors"
    save_file(load_file(str(good)), str(bad), metadata=metadata)
    with pytest.raises(CheckpointError) as info:
        load_generator(bad)
    message = str(info.value)
    assert "\n" not in message and bad.name in message, message
    for word in words:
        assert word in message, message


def test_fifo_is_refused_without_opening(tmp_path):
    fifo = tmp_path / "model.pkl"
    os.mkfifo(fifo)
    with pytest.raises(CheckpointError, match="FIFO"):
        load_generator(fifo)  # a blocking open() would hang here forever


def test_limits_leave_a_tenfold_margin_for_the_official_fixture(monkeypatch, fixture_ckpt):
    """The official-format fixture still loads with every file-wide limit cut to a tenth: the limits refuse
    bombs, not real snapshots (measured needs: depth 18, tuple 106 items / 2 levels, 26k work units, 29k
    opcodes)."""
    import gghead_core._pickle.limits as reader  # where the reader reads its limits
    import gghead_core.checkpoint as checkpoint

    monkeypatch.setattr(reader, "MAX_DEPTH", reader.MAX_DEPTH // 10)
    monkeypatch.setattr(reader, "MAX_TUPLE_EXPANSION", reader.MAX_TUPLE_EXPANSION // 10)
    monkeypatch.setattr(reader, "MAX_TUPLE_DEPTH", reader.MAX_TUPLE_DEPTH // 10)
    monkeypatch.setattr(reader, "MAX_SCAN_WORK", reader.MAX_SCAN_WORK // 1000)
    monkeypatch.setattr(reader, "MAX_EXPANSION_BYTES", 0)
    monkeypatch.setattr(reader, "MAX_OPCODES", reader.MAX_OPCODES // 10)
    monkeypatch.setattr(reader, "MAX_STORAGES", reader.MAX_STORAGES // 10)
    monkeypatch.setattr(reader, "MAX_TENSORS", reader.MAX_TENSORS // 10)
    monkeypatch.setattr(checkpoint, "_PLAIN_MAX_NODES", checkpoint._PLAIN_MAX_NODES // 100)
    G = load_generator(fixture_ckpt)
    assert G.config.plane_resolution > 0


def test_safetensors_with_too_many_tensors_is_refused_before_loading_them(tmp_path):
    from safetensors.torch import save_file

    good = tmp_path / "good.safetensors"
    from gghead_core import save_safetensors

    save_safetensors(_small_generator(), good)
    from safetensors import safe_open

    with safe_open(str(good), framework="pt") as f:
        metadata = dict(f.metadata())
    bad = tmp_path / "many.safetensors"
    save_file({f"t{i}": torch.zeros(1) for i in range(20_001)}, str(bad), metadata=metadata)
    with pytest.raises(CheckpointError, match="20001 tensors"):
        load_generator(bad)
