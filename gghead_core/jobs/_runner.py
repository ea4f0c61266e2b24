"""The machinery every headless job shares: output checks, progress, cancel, the recipe record and the result.

A job module defines a frozen job dataclass (validated when made) with a ``run(ctx)`` method; this module
gives it a :class:`JobContext` that generates heads, renders views, reports progress, checks for cancel and
writes outputs with their recipes atomically (:class:`gghead_core.export.OutputTransaction`): on cancel, error
or Ctrl-C no partial file is left behind.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch

from gghead_core import export as ex
from gghead_core.camera import Camera
from gghead_core.gaussians import Gaussians
from gghead_core.pipeline import Frame, LatentSpec, RenderSettings, generate, render_views
from gghead_core.vocabulary import SpecError

Progress = Callable[[int, int], None]
GenerateFn = Callable[[LatentSpec], Gaussians]
OutputKind = Literal["image", "video", "gaussians", "folder"]


class Cancelled(Exception):
    """Raised inside a job when its ``cancel`` event is set; the job's outputs are rolled back."""


@dataclass(frozen=True)
class JobResult:
    output: Path
    recipe: Path | None
    frames: int
    seconds: float
    backend: str | None = None
    backend_reason: str | None = None


class Job(Protocol):
    """What the runner needs of a job dataclass."""

    command: str
    output_kind: OutputKind

    def run(self, ctx: JobContext) -> JobResult: ...


# --------------------------------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutputTarget:
    """A checked output: the path and whether it is a folder of frames."""

    path: Path
    folder: bool = False

    @property
    def recipe_path(self) -> Path:
        return ex.sidecar_path(self.path, folder=self.folder)


def check_output(job: Any, out: str | os.PathLike, overwrite: bool) -> OutputTarget:
    """Refuse a bad output before any work (extension, existing files, writability). The raw text matters:
    ``x.d/`` is a folder."""
    raw = os.fspath(out)
    kind = job.output_kind
    if kind == "folder":
        return _check_folder_output(job, raw, overwrite)
    if kind == "video":
        ext = ex.check_extension(raw, ex.VIDEO_EXTENSIONS, allow_folder=True)
        settings: RenderSettings = job.settings
        if settings.transparent and ext != "":
            raise SpecError("a transparent background needs PNG frames: give a folder (DIR/) as --out, not a video")
        path = Path(raw)
        if not ext:
            if path.exists() and not path.is_dir():
                raise ex.OutputError(f"output {raw!r} is a file, not a folder")
            if path.is_dir() and not overwrite and any(
                p.name.startswith(ex.FRAME_PREFIX) or p.name == ex.FOLDER_RECIPE_NAME for p in path.iterdir()
            ):
                raise ex.OutputError(f"folder {raw!r} already holds frames (use --overwrite to replace them)")
            ex.check_parent_writable(path)
            return OutputTarget(path, folder=True)
    else:
        allowed = ex.IMAGE_EXTENSIONS if kind == "image" else ex.GAUSSIAN_EXTENSIONS
        ext = ex.check_extension(raw, allowed)
        fmt = getattr(job, "format", None)
        if kind == "gaussians" and fmt is not None and ext != "." + fmt:
            raise SpecError(f"--format {fmt} does not match the extension of {raw!r}")
        path = Path(raw)
    ex.check_output_file(path, overwrite=overwrite)
    ex.check_output_file(ex.sidecar_path(path, folder=False), overwrite=overwrite)
    return OutputTarget(path, folder=False)


def _check_folder_output(job: Any, raw: str, overwrite: bool) -> OutputTarget:
    """A job that writes a fixed set of named files (``job.output_names()``) plus ``recipe.json`` into a folder:
    refuse a file path, an extension, or a folder that already holds any of those files (unless overwrite)."""
    path = Path(raw)
    if not ex.is_folder_target(raw):
        raise ex.OutputError(f"{job.command} writes a folder: give a folder path ending in / (got {raw!r})")
    if path.exists() and not path.is_dir():
        raise ex.OutputError(f"output {raw!r} is a file, not a folder")
    names = set(job.output_names()) | {ex.FOLDER_RECIPE_NAME}
    if path.is_dir() and not overwrite:
        taken = sorted(p.name for p in path.iterdir() if p.name in names)
        if taken:
            raise ex.OutputError(f"folder {raw!r} already holds {taken[0]} (use --overwrite to replace the outputs)")
    ex.check_parent_writable(path)
    return OutputTarget(path, folder=True)


# --------------------------------------------------------------------------------------------------------------
# The context a job runs in
# --------------------------------------------------------------------------------------------------------------


class JobContext:
    """Everything a running job may use; one per run."""

    def __init__(
        self,
        G: Any,
        job: Any,
        target: OutputTarget,
        *,
        overwrite: bool = False,
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
        argv: list[str] | None = None,
        render_fn: Callable[..., Any] | None = None,
        generate_fn: GenerateFn | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        self.G = G
        self.job = job
        self.target = target
        self.overwrite = overwrite
        self._progress = progress
        self._cancel = cancel
        self.argv = argv
        self.render_fn = render_fn
        self._generate_fn = generate_fn
        self.options = options or {}
        self.t0 = time.perf_counter()
        self.backend: str | None = None
        self.reason: str | None = None

    # -- work ------------------------------------------------------------------------------------------------
    def tick(self, done: int, total: int) -> None:
        if self._progress is not None:
            self._progress(done, total)

    def check_cancel(self) -> None:
        if self._cancel is not None and self._cancel.is_set():
            raise Cancelled("cancelled")

    def generate(self, latent: LatentSpec) -> Gaussians:
        """One head; the viewer passes its cache (``generate_fn``) so a capture reuses the head on screen."""
        if self._generate_fn is not None:
            return self._generate_fn(latent)
        return generate(self.G, latent)

    def render(self, g: Gaussians, cameras: Sequence[Camera], settings: RenderSettings) -> Iterable[Frame]:
        for frame in render_views(g, cameras, settings, self.render_fn):
            self.backend, self.reason = frame.backend, frame.reason
            yield frame

    @property
    def device(self) -> str:
        return str(getattr(self.G, "device", "cpu"))

    # -- outputs ---------------------------------------------------------------------------------------------
    def recipe(self, *, seeds: Sequence[int], latent: LatentSpec | None, cameras: Sequence[Camera],
               settings: RenderSettings | None) -> ex.Recipe:
        from gghead_core.jobs._codec import job_to_dict

        return ex.Recipe(
            command=self.job.command,
            params=job_to_dict(self.job),
            output=str(self.target.path.resolve()) + ("/" if self.target.folder else ""),
            checkpoint=checkpoint_record(self.G),
            seeds=[int(s) for s in seeds],
            psi=float(latent.psi) if latent is not None else 1.0,
            cutoff=latent.cutoff if latent is not None else None,
            cameras=[ex.camera_to_dict(c) for c in cameras],
            renderer=None if settings is None else self.renderer_record(settings),
            argv=self.argv,
        )

    def renderer_record(self, settings: RenderSettings) -> dict[str, Any]:
        bg = settings.background
        return {
            "requested": settings.backend,
            "backend": self.backend,
            "reason": self.reason,
            "device": self.device,
            "resolution": settings.resolution,
            "mode": settings.mode,
            "background": list(bg) if isinstance(bg, tuple) else bg,
            "sh_ref": settings.sh_ref,
            "scale_modifier": settings.scale_modifier,
            "torch_threads": torch.get_num_threads(),
        }

    def write_single(self, write: Callable[[Path], None], recipe: ex.Recipe) -> None:
        """One file + its recipe, atomically; ``write(temp_path)`` writes the file."""
        out = self.target.path
        with ex.OutputTransaction(self.overwrite) as tx:
            write(tx.file(out))
            ex.write_recipe(tx.file(ex.sidecar_path(out, folder=False)), recipe)

    def write_image(self, image: np.ndarray, recipe: ex.Recipe) -> None:
        self.write_single(lambda p: ex.write_png(p, image), recipe)

    def write_folder(self, writers: dict[str, Callable[[Path], None]], recipe: ex.Recipe) -> None:
        """Named files into the target folder plus its ``recipe.json``, all at once or not at all: each
        ``writers[name](temp_path)`` writes one file to a temp name beside its final one; the names are only
        taken when every file was written (cancel is checked between files). Other files in the folder are
        left alone (unlike a frame folder, whose stale frames an overwrite removes)."""
        folder = self.target.path
        with ex.OutputTransaction(self.overwrite) as tx:
            for name, write in writers.items():
                self.check_cancel()
                write(tx.file(folder / name))
            self.check_cancel()
            ex.write_recipe(tx.file(folder / ex.FOLDER_RECIPE_NAME), recipe)

    def write_video(self, frames: Iterable[np.ndarray], n_frames: int, fps: float,
                    make_recipe: Callable[[], ex.Recipe]) -> None:
        """Stream frames into an mp4 / gif / PNG folder, then its recipe; all of it appears at once or not at all.
        A folder's recipe travels inside the folder's temp dir, so it is committed together with the frames."""
        out, folder = self.target.path, self.target.folder
        with ex.OutputTransaction(self.overwrite) as tx:
            sink = ex.open_frame_sink(tx, out, fps=fps, n_frames=n_frames, folder=folder)
            try:
                for i, image in enumerate(frames):
                    self.check_cancel()
                    sink.write(image)
                    self.tick(i + 1, n_frames)
                self.check_cancel()
                sink.close()
            except BaseException:
                sink.abort()
                raise
            recipe = make_recipe()
            if folder:
                assert isinstance(sink, ex.FolderSink)  # folder=True always opens a PNG-folder sink
                target = sink.temp_dir / ex.FOLDER_RECIPE_NAME
            else:
                target = tx.file(ex.sidecar_path(out, folder=False))
            ex.write_recipe(target, recipe)

    def result(self, frames: int) -> JobResult:
        return JobResult(self.target.path, self.target.recipe_path, frames, time.perf_counter() - self.t0,
                         self.backend, self.reason)


def checkpoint_record(G: Any) -> dict[str, Any]:
    path = getattr(G, "checkpoint_path", None)
    try:
        sha = G.checkpoint_sha256 if path is not None else ""
    except OSError:
        sha = ""
    return {"path": None if path is None else str(Path(path).resolve()), "sha256": sha}


def run_job(
    G: Any,
    job: Any,
    out: str | os.PathLike,
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    argv: list[str] | None = None,
    render_fn: Callable[..., Any] | None = None,
    generate_fn: GenerateFn | None = None,
    **options: Any,
) -> JobResult:
    """Run any job: check the output, then ``job.run`` with a fresh context (``options`` are job-specific,
    e.g. ``batch_size`` for interpolations)."""
    target = check_output(job, out, overwrite)
    ctx = JobContext(G, job, target, overwrite=overwrite, progress=progress, cancel=cancel, argv=argv,
                     render_fn=render_fn, generate_fn=generate_fn, options=options)
    return job.run(ctx)
