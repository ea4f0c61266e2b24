"""The CLI under signals and a full disk: every output is complete or absent, the message is one line.

SIGINT, SIGTERM and SIGHUP at several points of a long export in a real process (while the generator loads,
and in the middle of writing frames) exit 130 and leave nothing behind; an existing frame folder replaced with
--overwrite keeps its old frames intact. A full disk exits 1 with "disk full while writing ...".
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gghead_core import cli

REPO_ROOT = Path(__file__).resolve().parents[1]
MAIN = str(REPO_ROOT / "main.py")
ENV = dict(os.environ, PYTHONPATH=str(REPO_ROOT), OMP_NUM_THREADS="1")


def _start(out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, MAIN, "turntable", "--seed", "1", "--frames", "400", "--resolution", "32",
         "--backend", "torch", "--device", "cpu", "--quiet", "--out", str(out), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
    )


def _wait_for(pred, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None and not pred():
        time.sleep(0.05)
    assert proc.poll() is None, f"the job ended early: {proc.communicate()[1]}"
    assert pred(), "the job never reached the point to interrupt"


def _stop(proc: subprocess.Popen, sig: int) -> str:
    try:
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return err


SIGNALS = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_signal_mid_video_leaves_nothing(tmp_path, sig):
    out = tmp_path / "sub" / "t.mp4"
    proc = _start(out)
    _wait_for(lambda: any((tmp_path / "sub").glob(".*partial*")) if (tmp_path / "sub").exists() else False, proc)
    time.sleep(0.3)  # a few frames into the video
    err = _stop(proc, sig)
    assert proc.returncode == 130, err
    assert err.count("\n") == 1 and "interrupted" in err and "Traceback" not in err
    assert not (tmp_path / "sub").exists()  # the folder it created is gone too


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_signal_mid_frame_folder_keeps_the_old_frames(tmp_path, sig):
    folder = tmp_path / "frames"
    folder.mkdir()
    old = {f"frame_{i:04d}.png": f"old {i}".encode() for i in range(3)}
    for name, data in old.items():
        (folder / name).write_bytes(data)
    (folder / "notes.txt").write_text("mine")
    proc = _start(Path(str(folder) + "/"), "--overwrite")
    _wait_for(lambda: any(p.name.startswith(".") for p in folder.iterdir()), proc)
    time.sleep(0.3)
    err = _stop(proc, sig)
    assert proc.returncode == 130, err
    assert sorted(p.name for p in folder.iterdir()) == sorted([*old, "notes.txt"])
    assert all((folder / n).read_bytes() == d for n, d in old.items())


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=lambda s: signal.Signals(s).name)
def test_signal_while_loading_exits_130(tmp_path, sig):
    out = tmp_path / "early.mp4"
    proc = _start(out)
    time.sleep(1.0)  # importing torch / loading the generator: nothing written yet
    err = _stop(proc, sig)
    assert proc.returncode in (130, -sig), err  # before our handler is installed the default action applies
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_disk_full_is_one_line_exit_1_and_leaves_nothing(tmp_path, capsys, monkeypatch):
    real_open = open

    class FullFile:
        def __init__(self, f):
            self._f = f

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._f.close()

    def full_open(path, mode="r", *args, **kwargs):
        f = real_open(path, mode, *args, **kwargs)
        return FullFile(f) if "w" in mode and str(path).endswith(".png") else f

    import gghead_core.export as ex

    for module in (ex._outputs, ex._frames, ex._gaussian_files, ex._recipe):
        monkeypatch.setattr(module, "open", full_open, raising=False)
    out = tmp_path / "x.png"
    code = cli.main(["render", "--seed", "1", "--resolution", "32", "--backend", "torch", "--quiet",
                     "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "disk full while writing" in err, err
    assert list(tmp_path.iterdir()) == []
