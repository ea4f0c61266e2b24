"""Hostile and broken checkpoint files are refused with a one-line CheckpointError and nothing in them runs."""

from __future__ import annotations

import io
import os
import pickle
import pickletools
import shutil
import subprocess

import pytest
import torch

from gghead_core import CheckpointError, load_generator
from gghead_core._pickle_reader import PickleSecurityError, decode_legacy_storage, restricted_load


def _assert_refused(path, marker=None, match: str | None = None) -> str:
    with pytest.raises(CheckpointError) as info:
        load_generator(path)
    message = str(info.value)
    assert "\n" not in message and message.strip(), message
    if match:
        assert match in message, message
    if marker is not None:
        assert not marker.exists(), "the checkpoint executed code"
    return message


class _Evil:
    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


@pytest.mark.parametrize(
    "make_payload,global_name",
    [
        (lambda m: _Evil(os.system, f"touch {m}"), "system"),
        (lambda m: _Evil(eval, f"open({str(m)!r}, 'w').close()"), "builtins.eval"),
        (lambda m: _Evil(exec, f"open({str(m)!r}, 'w').close()"), "builtins.exec"),
        (lambda m: _Evil(subprocess.Popen, ["touch", str(m)]), "subprocess.Popen"),
        (lambda m: _Evil(shutil.rmtree, str(m)), "shutil.rmtree"),
    ],
)
def test_reduce_to_dangerous_callable_is_refused(tmp_path, make_payload, global_name):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    # hide the payload inside an otherwise plausible snapshot
    path.write_bytes(pickle.dumps({"G_ema": make_payload(marker), "G": None}, protocol=4))
    message = _assert_refused(path, marker, match=global_name)
    assert "refused" in message


def test_protocol0_import_trick_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    # getattr(__import__('os'), 'system')('touch marker') written by hand in protocol 0
    payload = (b"cbuiltins\ngetattr\n(cbuiltins\n__import__\n(Vos\ntRVsystem\ntR(V" + f"touch {marker}".encode()
               + b"\ntR.")
    path = tmp_path / "evil0.pkl"
    path.write_bytes(payload)
    _assert_refused(path, marker, match="builtins.__import__")


def test_getattr_on_real_objects_is_refused():
    payload = pickle.dumps(_Evil(getattr, 1, "real"), protocol=2)
    with pytest.raises(PickleSecurityError):
        restricted_load(io.BytesIO(payload))


def test_hostile_storage_payload_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    inner = pickle.dumps(_Evil(os.system, f"touch {marker}"), protocol=2)
    payload = pickle.dumps(_Evil(torch.storage._load_from_bytes, inner), protocol=4)
    path = tmp_path / "evil_storage.pkl"
    path.write_bytes(payload)
    _assert_refused(path, marker, match="system")


def test_storage_view_out_of_bounds_is_refused():
    payload = pickle.dumps(torch.arange(4, dtype=torch.float32), protocol=4)
    assert torch.equal(restricted_load(io.BytesIO(payload)), torch.arange(4, dtype=torch.float32))
    # tamper with the size tuple: ask for 1000 elements of a 4-element storage
    ops = [(op.name, arg, pos) for op, arg, pos in pickletools.genops(payload)]
    pos = next(p for name, arg, p in ops if name == "BININT1" and arg == 4)
    tampered = payload[:pos] + b"M" + (1000).to_bytes(2, "little") + payload[pos + 2 :]
    with pytest.raises(pickle.UnpicklingError):
        restricted_load(io.BytesIO(tampered))


def test_truncated_official_checkpoint(tmp_path, fixture_ckpt):
    data = fixture_ckpt.read_bytes()
    for cut in (100, len(data) // 2, len(data) - 10):
        path = tmp_path / f"cut{cut}.pkl"
        path.write_bytes(data[:cut])
        _assert_refused(path, match="truncated or corrupt")


def test_random_bytes_empty_file_missing_and_directory(tmp_path):
    rnd = tmp_path / "random.pkl"
    rnd.write_bytes(os.urandom(4096))
    _assert_refused(rnd)
    rnd_pickle = tmp_path / "random2.pkl"
    rnd_pickle.write_bytes(b"\x80\x04" + os.urandom(4096))
    _assert_refused(rnd_pickle)
    empty = tmp_path / "empty.pkl"
    empty.write_bytes(b"")
    _assert_refused(empty, match="empty")
    _assert_refused(tmp_path / "nope.pkl", match="not found")
    _assert_refused(tmp_path, match="directory")


def test_pickle_without_generator(tmp_path):
    path = tmp_path / "plain.pkl"
    path.write_bytes(pickle.dumps({"weights": [1, 2, 3], "G_ema": None}, protocol=4))
    _assert_refused(path, match="no GGHead generator")
    path.write_bytes(pickle.dumps([1, 2, 3]))
    _assert_refused(path, match="no GGHead generator")


def test_zip_file_and_corrupt_safetensors(tmp_path):
    zip_path = tmp_path / "model.pt"
    torch.save({"a": torch.zeros(2)}, zip_path)
    _assert_refused(zip_path, match="zip")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes((40).to_bytes(8, "little") + b"{" + b"x" * 10)
    _assert_refused(bad, match="corrupt")


def test_foreign_safetensors_without_our_metadata(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(3)}, str(path))
    _assert_refused(path, match="not a GGHead viewer generator")


def test_decode_legacy_storage_rejects_garbage():
    with pytest.raises(pickle.UnpicklingError):
        decode_legacy_storage(b"\x80\x02K\x01.")
