"""Captures from the viewer: screenshots, turntable and timeline videos, run through the same headless engine as the CLI.

The viewer's state already is the pipeline vocabulary, so a capture job is the CLI's job with the viewer's
latent, camera and settings in it: it writes the same recipe sidecar as the CLI, and
``python main.py replay <file>.json`` redraws the same pixels (Z-space interpolations included). Jobs run on a
background thread with a progress value and a cancel event; the engine writes atomically, so a cancelled or
failed job leaves no partial file. File names are auto-numbered (``screenshot_0001.png``) and never overwrite.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from app.state import RenderArgs
from gghead_core import OutputError, OutputWriteError, Timeline, jobs, one_line


class CaptureError(ValueError):
    """The current view cannot be captured (one-line message)."""


def _no_timeline_preview(args: RenderArgs, kind: str) -> None:
    if args.timeline is not None:
        # The head between two keys is a blend of ws that no LatentSpec spells, so no still/turntable recipe
        # could replay it; the timeline's own export can.
        raise CaptureError(f"a {kind} cannot show a timeline preview: jump to a keyframe, or export the timeline")


def screenshot_job(args: RenderArgs, *, resolution: int | None = None, transparent: bool = False) -> jobs.StillJob:
    """The still job for what is on screen (optionally at another resolution or with a transparent background)."""
    _no_timeline_preview(args, "screenshot")
    settings = args.settings
    if resolution is not None:
        settings = replace(settings, resolution=int(resolution))
    if transparent:
        settings = replace(settings, background="transparent")
    return jobs.StillJob(latent=args.latent, camera=args.camera, settings=settings)


@dataclass(frozen=True)
class TurntableOptions:
    """The Capture panel's turntable controls; defaults are the CLI's (one full orbit, 96 frames at 24 fps)."""

    frames: int = jobs.TurntableJob.frames
    fps: float = jobs.TurntableJob.fps
    path: str = jobs.TurntableJob.path
    pitch_deg: float = 0.0
    radius: float = jobs.TurntableJob.radius
    yaw_range_deg: float = jobs.TurntableJob.yaw_range_deg
    resolution: int = 512
    format: str = "mp4"


def turntable_job(args: RenderArgs, options: TurntableOptions) -> jobs.TurntableJob:
    _no_timeline_preview(args, "turntable")
    return jobs.TurntableJob(
        latent=args.latent, frames=options.frames, fps=options.fps, path=options.path,  # type: ignore[arg-type]
        pitch_deg=options.pitch_deg, radius=options.radius, yaw_range_deg=options.yaw_range_deg,
        settings=replace(args.settings, resolution=int(options.resolution)),
    )


@dataclass(frozen=True)
class TimelineOptions:
    """The Timeline panel's export controls (the timeline itself carries the keys, loop and interpolation)."""

    resolution: int = 512
    fps: float = 24.0  # a new timeline's default
    format: str = "mp4"


def timeline_job(args: RenderArgs, timeline: Timeline, options: TimelineOptions) -> jobs.TimelineJob:
    """The video job for a timeline, drawn with the viewer's render settings at the export's resolution and
    fps: the CLI's ``timeline T.json --resolution R --fps F`` on the same file makes the same frames."""
    return jobs.TimelineJob(timeline=replace(timeline, fps=float(options.fps)),
                            settings=replace(args.settings, resolution=int(options.resolution)))


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
    kind: str  # "screenshot" | "turntable" | "timeline"
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
            t0 = time.perf_counter()
            try:
                status.output = fn(progress, self._cancel)
            except jobs.Cancelled:
                status.cancelled = True
            except Exception as exc:  # shown in the window; the engine already rolled back its files
                # Our own errors are sentences; anything else is shown with its type.
                status.error = one_line(exc, with_type=not isinstance(exc, (ValueError, OutputWriteError)))
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


def start_capture(
    runner: CaptureRunner,
    kind: str,
    G: Any,
    job: Any,
    folder: Path,
    ext: str,
    *,
    render_fn: Callable[..., Any] | None = None,
    generate_fn: Callable[..., Any] | None = None,
) -> bool:
    """Run ``job`` in the background into the next free ``folder/<kind>_NNNN<ext>``; False if one is running.

    ``generate_fn`` is the viewer's Gaussians cache, so a screenshot reuses the head on screen.
    """

    def work(progress: Callable[[int, int], None], cancel: threading.Event) -> Path:
        def write(path: Path) -> None:
            jobs.run_job(G, job, path, progress=progress, cancel=cancel, render_fn=render_fn,
                         generate_fn=generate_fn)

        return unique_output(folder, kind, ext, write)

    return runner.start(kind, work)
