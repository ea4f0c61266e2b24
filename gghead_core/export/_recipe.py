"""Recipes: the JSON sidecar that records and reproduces an output (``replay``)."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gghead_core._files import read_regular
from gghead_core.camera import Camera
from gghead_core.export._outputs import (
    RecipeError,
    write_bytes,
)

# --------------------------------------------------------------------------------------------------------------
# Recipes (JSON sidecars)
# --------------------------------------------------------------------------------------------------------------

RECIPE_FORMAT = "gghead-recipe"
RECIPE_VERSION = 2
READABLE_RECIPE_VERSIONS = (1, 2)  # 1: before the pipeline vocabulary; gghead_core.jobs translates it


def camera_to_dict(camera: Camera) -> dict[str, Any]:
    """JSON form of a camera; floats are written with repr precision so they round-trip exactly."""
    return {
        "cam2world": [[float(v) for v in row] for row in np.asarray(camera.cam2world)],
        "focal": float(camera.focal),
        "principal": [float(camera.principal[0]), float(camera.principal[1])],
    }


def camera_from_dict(d: dict[str, Any]) -> Camera:
    principal = tuple(float(v) for v in d.get("principal", (0.5, 0.5)))
    if len(principal) != 2:
        raise ValueError(f"camera principal point must be two numbers (cx, cy), got {len(principal)}")
    return Camera(
        cam2world=np.asarray(d["cam2world"], dtype=np.float64),
        focal=float(d.get("focal", 4.2647)),
        principal=principal,
    )


def package_versions() -> dict[str, str | None]:
    """Versions of everything that can change the pixels, read from package metadata (no heavy imports)."""
    from importlib import metadata

    versions: dict[str, str | None] = {"python": platform.python_version()}
    for dist in ("torch", "numpy", "imageio", "imageio-ffmpeg", "pillow", "gsplat", "PyOpenGL", "safetensors"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    try:
        import gghead_core

        versions["gghead_core"] = getattr(gghead_core, "__version__", None)
    except Exception:  # pragma: no cover - the package is importable whenever this module is
        versions["gghead_core"] = None
    versions["platform"] = platform.platform()
    return versions


@dataclass
class Recipe:
    """Everything needed to reproduce one output, stored as ``<output>.json``.

    ``command`` and ``params`` are what :mod:`gghead_core.jobs` needs to run the job again (``params`` is the
    job dataclass as a dict). The other fields are the record a reader wants without running anything:
    checkpoint hash, seeds, truncation, the camera of every frame, the renderer that actually ran and its
    settings, and the package versions.
    """

    command: str
    params: dict[str, Any]
    output: str
    checkpoint: dict[str, Any]
    seeds: list[int]
    psi: float
    cutoff: int | None
    cameras: list[dict[str, Any]]
    renderer: dict[str, Any] | None
    argv: list[str] | None = None
    versions: dict[str, Any] = field(default_factory=package_versions)
    created_utc: str = field(
        default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
    )
    format: str = RECIPE_FORMAT
    format_version: int = RECIPE_VERSION

    def to_json(self) -> str:
        """One top-level key per line, one camera per line: readable and diffable without a 10k-line file."""
        data = asdict(self)
        order = ["format", "format_version", "command", "output", "argv", "checkpoint", "seeds", "psi", "cutoff",
                 "params", "renderer", "versions", "created_utc", "cameras"]
        keys = [k for k in order if k in data] + [k for k in data if k not in order]
        lines = []
        for k in keys:
            v = data[k]
            if k == "cameras" and v:
                body = ",\n  ".join(json.dumps(c, allow_nan=False) for c in v)
                lines.append(f' {json.dumps(k)}: [\n  {body}\n ]')
            else:
                lines.append(f" {json.dumps(k)}: {json.dumps(v, allow_nan=False)}")
        return "{\n" + ",\n".join(lines) + "\n}\n"


def write_recipe(path: str | os.PathLike, recipe: Recipe) -> None:
    """Write a recipe to ``path`` (callers pass a temp path from :class:`OutputTransaction`)."""
    write_bytes(path, recipe.to_json().encode("utf-8"))


MAX_RECIPE_BYTES = 64 << 20
"""A recipe of a 100k-frame turntable is ~30 MB; anything larger is not one of ours."""


def read_recipe(path: str | os.PathLike) -> Recipe:
    """Load and validate a recipe; raises RecipeError (one line) for anything that is not a recipe we wrote."""
    p = Path(path)
    try:
        text = read_regular(p, MAX_RECIPE_BYTES).decode("utf-8")
    except FileNotFoundError:
        raise RecipeError(f"recipe {os.fspath(p)!r} does not exist") from None
    except ValueError as exc:  # includes UnicodeDecodeError
        raise RecipeError(f"cannot read recipe {os.fspath(p)!r}: {str(exc).splitlines()[0]}") from None
    except OSError as exc:
        raise RecipeError(f"cannot read recipe {os.fspath(p)!r}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise RecipeError(f"cannot read recipe {os.fspath(p)!r}: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict) or data.get("format") != RECIPE_FORMAT:
        raise RecipeError(f"{os.fspath(p)!r} is not a gghead recipe (no \"format\": \"{RECIPE_FORMAT}\")")
    if data.get("format_version") not in READABLE_RECIPE_VERSIONS:
        raise RecipeError(
            f"recipe {os.fspath(p)!r} has format version {data.get('format_version')!r}; "
            f"this version reads {', '.join(map(str, READABLE_RECIPE_VERSIONS))}"
        )
    known = {f for f in Recipe.__dataclass_fields__}
    missing = [k for k in ("command", "params", "output", "checkpoint") if k not in data]
    if missing:
        raise RecipeError(f"recipe {os.fspath(p)!r} lacks {', '.join(missing)}")
    if not isinstance(data["params"], dict):
        raise RecipeError(f"recipe {os.fspath(p)!r}: params must be an object")
    kwargs = {k: v for k, v in data.items() if k in known}
    kwargs.setdefault("seeds", [])
    kwargs.setdefault("psi", 1.0)
    kwargs.setdefault("cutoff", None)
    kwargs.setdefault("cameras", [])
    kwargs.setdefault("renderer", None)
    return Recipe(**kwargs)
