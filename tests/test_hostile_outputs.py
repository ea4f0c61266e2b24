"""Outputs are complete or absent after a full disk, an I/O error, SIGINT, SIGTERM or SIGHUP, with one line of
message; temp names stay short enough for any legal output name."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from gghead_core import export as ex

REPO = Path(__file__).resolve().parents[1]
FRAME = np.full((24, 32, 3), 200, np.uint8)


def everything(folder: Path) -> list[str]:
    """Every name under ``folder`` (hidden or not), relative, sorted."""
    return sorted(os.fspath(p.relative_to(folder)) for p in folder.rglob("*")) + sorted(
        os.fspath(p.relative_to(folder)) for p in folder.rglob(".*"))


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert text and "\n" not in text, repr(text)
    return text


class _FullFile:
    """A writable file object that takes ``budget`` bytes, then fails like a full disk."""

    def __init__(self, real, budget: list[int]) -> None:
        self._real, self._budget = real, budget

    def write(self, data) -> int:
        n = memoryview(data).nbytes
        if self._budget[0] < n:
            raise OSError(errno.ENOSPC, "No space left on device")
        self._budget[0] -= n
        return self._real.write(data)

    def __getattr__(self, name):
        return getattr(self._real, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._real.close()


@pytest.fixture
def disk_fills_after(monkeypatch):
    """``disk_fills_after(n)``: from now on, files written by gghead_core.export hold at most n bytes in all."""

    def arm(n_bytes: int) -> None:
        budget = [n_bytes]
        real_open = open

        def fake_open(file, mode="r", *args, **kwargs):
            fh = real_open(file, mode, *args, **kwargs)
            return _FullFile(fh, budget) if "w" in mode else fh

        for module in (ex._outputs, ex._frames, ex._gaussian_files, ex._recipe):  # every writer of the package
            monkeypatch.setattr(module, "open", fake_open, raising=False)

    return arm


# ---- names -----------------------------------------------------------------------------------------------------


def test_temp_names_are_short_for_long_output_names(tmp_path):
    long_stem = "x" * 236
    for final in (tmp_path / f"{long_stem}.mp4", tmp_path / ("y" * 255), tmp_path / ("a." + "b" * 253)):
        temp = ex._temp_name(final)
        assert len(temp.name) <= 64 and temp.parent == final.parent and temp.name.startswith(".")


def test_legal_240_character_names_work_for_every_writer(tmp_path):
    stem = "n" * 236
    png = ex.save_png(tmp_path / f"{stem}.png", FRAME)
    assert len(png.name) == 240 and png.is_file()
    with ex.OutputTransaction() as tx:
        sink = ex.open_frame_sink(tx, tmp_path / f"{stem}.mp4", fps=10, n_frames=2)
        sink.write(FRAME)
        sink.write(FRAME)
        sink.close()
        ex.write_recipe(tx.file(ex.sidecar_path(tmp_path / f"{stem}.mp4")), _recipe())
    assert (tmp_path / f"{stem}.mp4").stat().st_size > 0 and (tmp_path / f"{stem}.mp4.json").is_file()
    folder = tmp_path / ("f" * 240)
    with ex.OutputTransaction() as tx:
        sink = ex.open_frame_sink(tx, folder, fps=10, n_frames=1, folder=True)
        sink.write(FRAME)
        sink.close()
    assert sorted(p.name for p in folder.iterdir()) == ["frame_0000.png"]
    assert [p for p in tmp_path.rglob(".*")] == []


def test_convert_output_name_of_240_characters(tmp_path):
    import torch

    from gghead_core import Generator, GeneratorConfig, save_safetensors

    G = Generator(GeneratorConfig(z_dim=8, w_dim=8, channel_base=64, channel_max=8, plane_resolution=8,
                                  n_uniform_flame_vertices=4)).requires_grad_(False)
    out = save_safetensors(G, tmp_path / ("m" * 228 + ".safetensors"))
    assert len(out.name) == 240 and out.is_file()
    assert [p for p in tmp_path.rglob(".*")] == []
    del torch


def _recipe() -> ex.Recipe:
    return ex.Recipe(command="still", params={}, output="x", checkpoint={}, seeds=[1], psi=1.0, cutoff=None,
                     cameras=[], renderer=None, versions={})


# ---- disk full ---------------------------------------------------------------------------------------------------


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (a device that is always full)")
def test_real_enospc_from_dev_full_is_one_line():
    with pytest.raises(ex.OutputWriteError) as info:
        ex.write_bytes("/dev/full", b"x" * 100_000)
    assert _one_line(info.value) == "disk full while writing /dev/full"


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (a device that is always full)")
def test_mp4_on_a_full_disk_gives_one_line_and_no_ffmpeg_chatter(tmp_path, capfd):
    out = tmp_path / "clip.mp4"
    with pytest.raises(ex.OutputWriteError) as info:
        with ex.OutputTransaction() as tx:
            sink = ex.open_frame_sink(tx, out, fps=24, n_frames=60)
            temp = tx._files[-1][0]
            temp.unlink()
            temp.symlink_to("/dev/full")  # ffmpeg writes through the link and gets ENOSPC from the kernel
            try:
                for _ in range(60):
                    sink.write(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
                sink.close()
            except BaseException:
                sink.abort()
                raise
    assert _one_line(info.value) == f"disk full while writing {out}"
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""  # no ffmpeg log, no "Broken pipe", no destructor traceback
    assert everything(tmp_path) == []


@pytest.mark.parametrize("extra,failing", [(-100, "a.png"), (10, "a.png.json")])
def test_full_disk_during_png_or_sidecar_leaves_nothing(tmp_path, disk_fills_after, extra, failing):
    out = tmp_path / "sub" / "a.png"
    image = np.random.default_rng(1).integers(0, 255, (40, 40, 3), dtype=np.uint8)
    import imageio.v3 as iio

    disk_fills_after(len(iio.imwrite("<bytes>", image, extension=".png")) + extra)
    with pytest.raises(ex.OutputWriteError) as info:
        with ex.OutputTransaction() as tx:
            ex.write_png(tx.file(out), image)
            ex.write_recipe(tx.file(ex.sidecar_path(out)), _recipe())
    assert _one_line(info.value) == f"disk full while writing {tmp_path / 'sub' / failing}"
    assert everything(tmp_path) == []


@pytest.mark.parametrize("kind", ["ply", "splat", "gif"])
def test_full_disk_for_gaussian_files_and_gif(tmp_path, disk_fills_after, kind):
    out = tmp_path / f"g.{kind}"
    disk_fills_after(50)
    with pytest.raises(ex.OutputWriteError, match="disk full while writing"):
        with ex.OutputTransaction() as tx:
            if kind == "ply":
                ex.write_ply(tx.file(out), {c: np.zeros(1000, np.float32) for c in ("x", "y", "z")})
            elif kind == "splat":
                ex.write_splat(tx.file(out), np.zeros(100, dtype=ex.SPLAT_DTYPE))
            else:
                sink = ex.open_frame_sink(tx, out, fps=10, n_frames=3)
                for _ in range(3):
                    sink.write(FRAME)
                sink.close()
    assert everything(tmp_path) == []


def test_full_disk_in_a_new_frame_folder_leaves_nothing(tmp_path, disk_fills_after):
    out = tmp_path / "frames"
    png_size = len(__import__("imageio.v3", fromlist=["x"]).imwrite("<bytes>", FRAME, extension=".png"))
    disk_fills_after(3 * png_size + 10)
    with pytest.raises(ex.OutputWriteError) as info:
        with ex.OutputTransaction() as tx:
            sink = ex.open_frame_sink(tx, out, fps=10, n_frames=10, folder=True)
            for _ in range(10):
                sink.write(FRAME)
    assert _one_line(info.value) == f"disk full while writing {out / 'frame_0003.png'}"
    assert everything(tmp_path) == []


def _old_frames(folder: Path, n: int) -> dict[str, bytes]:
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    for i in range(n):
        ex.write_png(folder / ex.frame_file_name(i), np.full((8, 8, 3), i, np.uint8))
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_full_disk_while_replacing_frames_keeps_the_old_set(tmp_path, disk_fills_after):
    out = tmp_path / "frames"
    before = _old_frames(out, 5)
    disk_fills_after(1000)
    with pytest.raises(ex.OutputWriteError):
        with ex.OutputTransaction(overwrite=True) as tx:
            sink = ex.open_frame_sink(tx, out, fps=10, n_frames=3, folder=True)
            for _ in range(3):
                sink.write(np.random.default_rng(2).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


# ---- the commit is all-or-nothing ------------------------------------------------------------------------------


def _replace_frames(tx: ex.OutputTransaction, out: Path, n: int) -> None:
    sink = ex.open_frame_sink(tx, out, fps=10, n_frames=n, folder=True)
    for i in range(n):
        sink.write(np.full((8, 8, 3), 100 + i, np.uint8))
    ex.write_recipe(sink.temp_dir / ex.FOLDER_RECIPE_NAME, _recipe())
    sink.close()


def test_error_in_the_middle_of_a_folder_commit_restores_the_old_frames(tmp_path, monkeypatch):
    out = tmp_path / "frames"
    before = _old_frames(out, 5)
    real_link, calls = os.link, []

    def failing_link(src, dst, *a, **k):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(errno.EIO, "Input/output error", os.fspath(src))
        return real_link(src, dst, *a, **k)

    monkeypatch.setattr(os, "link", failing_link)
    with pytest.raises(ex.OutputWriteError) as info:
        with ex.OutputTransaction(overwrite=True) as tx:
            _replace_frames(tx, out, 3)
    assert "Input/output error" in _one_line(info.value)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no mix, hidden files gone too


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_signal_during_a_folder_commit_is_held_until_the_set_is_complete(tmp_path, monkeypatch, signum):
    out = tmp_path / "frames"
    _old_frames(out, 5)
    real_link, calls = os.link, []

    def link_then_signal(src, dst, *a, **k):
        calls.append(dst)
        if len(calls) == 2:
            os.kill(os.getpid(), signum)  # arrives half-way through placing the new frames
        return real_link(src, dst, *a, **k)

    monkeypatch.setattr(os, "link", link_then_signal)
    with pytest.raises(ex.InterruptedAfterCommit):
        with ex.signals_as_interrupt():
            with ex.OutputTransaction(overwrite=True) as tx:
                _replace_frames(tx, out, 3)
    assert tx.committed
    names = sorted(p.name for p in out.iterdir())
    assert names == ["frame_0000.png", "frame_0001.png", "frame_0002.png", "notes.txt", "recipe.json"]
    assert [p for p in out.rglob(".*")] == []


def test_signals_as_interrupt_converts_and_restores():
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    for signum in (signal.SIGTERM, signal.SIGHUP):
        with pytest.raises(KeyboardInterrupt, match=signal.Signals(signum).name):
            with ex.signals_as_interrupt():
                os.kill(os.getpid(), signum)
                time.sleep(1)  # the handler runs at the next bytecode; never reached
    assert {s: signal.getsignal(s) for s in before} == before


# ---- signals during a long export, in a real process -----------------------------------------------------------

_EXPORT = r"""
import sys, time
import numpy as np
from gghead_core import export as ex

out, n, folder = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "folder"
try:
    with ex.signals_as_interrupt():
        with ex.OutputTransaction() as tx:
            sink = ex.open_frame_sink(tx, out, fps=24, n_frames=n, folder=folder)
            try:
                for i in range(n):
                    sink.write(np.full((48, 64, 3), i % 256, np.uint8))
                    print(f"frame {i}", flush=True)
                    time.sleep(0.01)
                sink.close()
            except BaseException:
                sink.abort()
                raise
            recipe = ex.Recipe(command="turntable", params={}, output=out, checkpoint={}, seeds=[1], psi=1.0,
                               cutoff=None, cameras=[], renderer=None, versions={})
            ex.write_recipe(sink.temp_dir / ex.FOLDER_RECIPE_NAME if folder
                            else tx.file(ex.sidecar_path(out, folder=False)), recipe)
except KeyboardInterrupt as exc:
    print(f"interrupted: {exc}", file=sys.stderr)
    sys.exit(130)
"""


@pytest.mark.parametrize("signum,kind,after", [
    (signal.SIGTERM, "mp4", 1), (signal.SIGTERM, "folder", 25), (signal.SIGHUP, "mp4", 25),
    (signal.SIGHUP, "folder", 1), (signal.SIGINT, "mp4", 10), (signal.SIGTERM, "gif", 5),
])
def test_signal_during_a_long_export_leaves_nothing(tmp_path, signum, kind, after):
    out = tmp_path / "sub" / ("clip" if kind == "folder" else f"clip.{kind}")
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-c", _EXPORT, str(out), "3000", kind], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    try:
        deadline = time.time() + 120
        for line in proc.stdout:
            if line.strip() == f"frame {after}" or time.time() > deadline:
                break
        assert proc.poll() is None, proc.stderr.read()
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert err.strip() == f"interrupted: received {signal.Signals(signum).name}" or (
        signum == signal.SIGINT and err.strip() == "interrupted:"), err
    assert not (tmp_path / "sub").exists(), everything(tmp_path)
    assert everything(tmp_path) == []


# ---- recipes that block ------------------------------------------------------------------------------------------


def test_fifo_recipe_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "recipe.json"
    os.mkfifo(fifo)
    with pytest.raises(ex.RecipeError, match="FIFO"):
        ex.read_recipe(fifo)  # a blocking open() would hang here


def test_huge_recipe_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(ex._recipe, "MAX_RECIPE_BYTES", 1000)
    path = tmp_path / "big.json"
    path.write_text(" " * 2000 + "{}")
    with pytest.raises(ex.RecipeError, match="more than"):
        ex.read_recipe(path)


def test_full_disk_at_the_writability_probe_is_a_write_error_not_a_path_error(tmp_path, monkeypatch):
    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ex._outputs.tempfile, "TemporaryFile", no_space)
    with pytest.raises(ex.OutputWriteError, match="disk full"):
        ex.check_output_file(tmp_path / "a.png", overwrite=False)


def test_signals_as_interrupt_is_a_no_op_outside_the_main_thread():
    import threading

    errors = []

    def worker():
        try:
            with ex.signals_as_interrupt(), ex.OutputTransaction() as tx:
                tx.done  # noqa: B018 - the block runs; no handler could be installed here
        except BaseException as exc:  # pragma: no cover - the assertion below reports it
            errors.append(exc)

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert errors == []
