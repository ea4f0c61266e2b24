"""Headless jobs shared by the CLI and the viewer: one module per job over one shared runner.

A job is a frozen dataclass in the pipeline vocabulary (validated when made) with a ``run(ctx)`` method;
:func:`run_job` checks the output, runs it with progress and cancel, and writes the output and its recipe
atomically. A recipe stores the job itself (:func:`job_to_dict`), so :func:`job_from_recipe` rebuilds it for
``replay``. Adding a job costs one module and one line in :data:`JOB_TYPES`.
"""

from __future__ import annotations

from typing import Any

from gghead_core import export as ex
from gghead_core.jobs import _codec
from gghead_core.jobs._codec import job_to_dict
from gghead_core.jobs._runner import (
    Cancelled,
    JobContext,
    JobResult,
    OutputTarget,
    Progress,
    check_output,
    run_job,
)
from gghead_core.jobs.export_gaussians import ExportJob
from gghead_core.jobs.export_uv import ExportUVJob
from gghead_core.jobs.grid import GridJob
from gghead_core.jobs.interpolate import InterpolationJob
from gghead_core.jobs.still import StillJob
from gghead_core.jobs.timeline import TimelineJob
from gghead_core.jobs.turntable import TURNTABLE_PATHS, TurntableJob
from gghead_core.vocabulary import SpecError

JOB_TYPES: dict[str, type] = {
    StillJob.command: StillJob,
    TurntableJob.command: TurntableJob,
    InterpolationJob.command: InterpolationJob,
    GridJob.command: GridJob,
    ExportJob.command: ExportJob,
    TimelineJob.command: TimelineJob,
    ExportUVJob.command: ExportUVJob,
}

__all__ = [
    "JOB_TYPES",
    "TURNTABLE_PATHS",
    "Cancelled",
    "ExportJob",
    "ExportUVJob",
    "GridJob",
    "InterpolationJob",
    "JobContext",
    "JobResult",
    "OutputTarget",
    "Progress",
    "StillJob",
    "TimelineJob",
    "TurntableJob",
    "check_output",
    "job_from_dict",
    "job_from_recipe",
    "job_to_dict",
    "run_job",
]


def job_from_dict(command: str, params: Any) -> Any:
    """A job rebuilt from today's recipe ``params`` (every field type-checked and validated)."""
    return _codec.job_from_dict(command, params, JOB_TYPES)


def job_from_recipe(recipe: ex.Recipe, *, pin_backend: bool = True) -> Any:
    """The recipe's job (older formats translated), pinned to the backend that actually ran it (``auto``
    could pick another one elsewhere, and a replay must draw the same pixels)."""
    params = recipe.params
    if recipe.format_version == 1:
        params = _codec.upgrade_v1(recipe.command, params)
    job = job_from_dict(recipe.command, params)
    used = (recipe.renderer or {}).get("backend") if isinstance(recipe.renderer, dict) else None
    settings = getattr(job, "settings", None)
    if pin_backend and settings is not None and isinstance(used, str) and used:
        from dataclasses import replace

        try:
            job = replace(job, settings=replace(settings, backend=used))
        except SpecError:
            pass  # an unknown backend name in a hand-edited recipe: keep the requested one
    return job
