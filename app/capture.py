"""Captures from the viewer: screenshots and turntable videos, run through the same headless engine as the CLI.

The viewer's arguments are translated into :mod:`gghead_core.batch` job dataclasses, so a capture writes the
same recipe sidecar as the CLI and ``python main.py replay <file>.json`` redraws the same pixels. Jobs run on a
background thread with a progress value and a cancel event; the engine writes atomically, so a cancelled or
failed job leaves no partial file. File names are auto-numbered (``screenshot_0001.png``) and never overwrite.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from app.state import CameraArgs, LatentArgs, RenderArgs
from app.worker import one_line


class CaptureError(ValueError):
    """The current view cannot be captured reproducibly (one-line message)."""


def latent_spec(latent: LatentArgs):  # noqa: ANN201 - gghead_core.batch.LatentSpec
    """The batch engine's description of the viewer's latent (also used by the worker, so pixels agree).

    Linear W interpolation is a two-seed blend ``(1-t) ws(A) + t ws(B)``. Spherical Z interpolation at
    0 < t < 1 has no engine equivalent and raises :class:`CaptureError`.
    """
    from gghead_core.batch import LatentSpec

    blend = None
    if latent.t > 0.0 and latent.seed != latent.seed_b:
        if latent.space != "w":
            raise CaptureError(
                "a spherical (Z) interpolation between two seeds cannot be captured reproducibly yet; "
                "switch the interpolation space to W or set t to 0"
            )
        blend = [(latent.seed, 1.0 - float(latent.t)), (latent.seed_b, float(latent.t))]
        if latent.t >= 1.0:
            blend = None
    mix = latent.mix_enabled and latent.mix_start < latent.mix_end
    return LatentSpec(
        seed=latent.seed_b if (latent.t >= 1.0 and latent.seed != latent.seed_b) else latent.seed,
        psi=float(latent.psi),
        cutoff=latent.cutoff,
        noise_mode=latent.noise_mode,
        blend=blend,
        mix_seed=latent.mix_seed if mix else None,
        mix_start=latent.mix_start if mix else 0,
        mix_end=latent.mix_end if mix else None,
    )


def camera_spec(camera: CameraArgs):  # noqa: ANN201 - gghead_core.batch.CameraSpec
    from gghead_core.batch import CameraSpec

    return CameraSpec(
        yaw=float(camera.yaw_deg),
        pitch=float(camera.pitch_deg),
        radius=float(camera.radius),
        look_at=tuple(float(v) for v in camera.look_at),
        fov_deg=float(camera.fov_deg),
    )


def render_settings(args: RenderArgs, *, resolution: int | None = None, transparent: bool = False):  # noqa: ANN201
    from gghead_core.batch import RenderSettings

    r = args.renderer
    return RenderSettings(
        resolution=int(resolution or r.resolution),
        backend=r.backend,
        mode=r.mode,
        background="transparent" if transparent else tuple(float(c) for c in r.background),
        sh_ref=r.sh_ref,
        scale_modifier=float(r.scale_modifier),
    )


_NUMBERED = re.compile(r"^(?P<prefix>.+)_(?P<n>\d{4,})\.[^.]+$")


def next_numbered_path(folder: Path, prefix: str, ext: str) -> Path:
    """``folder/prefix_NNNN.ext`` with NNNN one above the highest number already used by ``prefix_*``.

    Looks at every extension (and sidecars), so ``screenshot_0003.png.json`` alone still reserves 3.
    """
    highest = 0
    if folder.is_dir():
        for p in folder.iterdir():
            m = _NUMBERED.match(p.name.removesuffix(".json"))
            if m and m.group("prefix") == prefix:
                highest = max(highest, int(m.group("n")))
    return folder / f"{prefix}_{highest + 1:04d}{ext}"


@dataclass
class JobStatus:
    kind: str  # "screenshot" | "turntable"
    done: int = 0
    total: int = 1
    running: bool = True
    output: Path | None = None
    error: str | None = None
    cancelled: bool = False
    seconds: float = 0.0

    @property
    def fraction(self) -> float:
        return 0.0 if self.total <= 0 else min(1.0, self.done / self.total)


class CaptureRunner:
    """Runs one capture job at a time on a background thread (``start``), with progress and cancel."""

    def __init__(self) -> None:
        self.status: JobStatus | None = None
        self._thread: threading.Thread | None = None
        self._cancel = threading.Event()
        self._lock = threading.Lock()

    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, kind: str, fn: Callable[[Callable[[int, int], None], threading.Event], Path]) -> bool:
        """Run ``fn(progress, cancel) -> output path`` in the background; False if a job is running."""
        if self.busy:
            return False
        self._cancel = threading.Event()
        status = JobStatus(kind=kind)
        self.status = status

        def progress(done: int, total: int) -> None:
            status.done, status.total = int(done), max(1, int(total))

        def body() -> None:
            from gghead_core.batch import Cancelled

            t0 = time.perf_counter()
            try:
                status.output = fn(progress, self._cancel)
            except Cancelled:
                status.cancelled = True
            except Exception as exc:  # shown in the window; the engine already rolled back its files
                status.error = one_line(exc)
            finally:
                status.seconds = time.perf_counter() - t0
                status.running = False

        self._thread = threading.Thread(target=body, name=f"gghead-capture-{kind}", daemon=True)
        self._thread.start()
        return True

    def cancel(self) -> None:
        self._cancel.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the job; True when no job is running any more."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.busy


def unique_output(folder: Path, prefix: str, ext: str, write: Callable[[Path], Any], attempts: int = 20) -> Path:
    """Call ``write(path)`` with the next free numbered path, retrying if another writer took the name."""
    from gghead_core.export import OutputError

    last: Exception | None = None
    for _ in range(attempts):
        path = next_numbered_path(folder, prefix, ext)
        try:
            write(path)
            return path
        except OutputError as exc:
            if not path.exists() and not Path(str(path) + ".json").exists():
                raise
            last = exc
    raise CaptureError(f"could not find a free file name in {folder}: {last}")
