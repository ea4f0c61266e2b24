"""Jobs <-> JSON: recipes store the vocabulary itself (the job dataclass, nested specs and all).

:func:`job_to_dict` writes a job as plain JSON values; :func:`job_from_dict` rebuilds it, checking every
field's JSON type against the dataclass's type hints first (a string where a number belongs, a list where an
object belongs, unknown keys) and naming the field in one sentence, before the spec's own validation runs.
Recipes written by format version 1 (before the pipeline vocabulary) are translated by :func:`upgrade_v1`.
"""

from __future__ import annotations

import math
import types
from dataclasses import fields, is_dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import numpy as np

from gghead_core.vocabulary import SpecError


def job_to_dict(job: Any) -> dict[str, Any]:
    return _jsonable(job)


def _jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, Path):
        return str(value)
    return value


def job_from_dict(command: str, params: Any, job_types: dict[str, type]) -> Any:
    """The job for ``command`` rebuilt from ``params`` (validated by the job's own construction)."""
    if not isinstance(command, str) or command not in job_types:
        raise SpecError(f"unknown recipe command {command!r} (expected one of {', '.join(job_types)})")
    return build(job_types[command], params, "params")


def build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise SpecError(f"recipe field {where!r} must be an object, got {type(data).__name__}")
    hints = _hints(cls)
    names = [f.name for f in fields(cls) if f.init]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise SpecError(f"recipe field {where!r} has unknown keys: {', '.join(map(str, unknown))}")
    kwargs = {k: _convert(hints[k], v, f"{where}.{k}") for k, v in data.items()}
    try:
        return cls(**kwargs)
    except SpecError as exc:
        raise SpecError(f"recipe field {where!r}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise SpecError(f"recipe field {where!r}: {exc}") from None


@cache
def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def _type_name(value: Any) -> str:
    return "null" if value is None else {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__)


def _convert(hint: Any, value: Any, where: str) -> Any:
    """Check ``value``'s JSON type against ``hint`` and convert lists to tuples where the hint says so."""
    if hint is Any:
        return value
    if isinstance(hint, type) and is_dataclass(hint):  # hints are classes, never dataclass instances
        return build(hint, value, where)
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        args = get_args(hint)
        if value is None:
            if type(None) in args:
                return None
            raise SpecError(f"recipe field {where!r} must not be null")
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(a, value, where)
            except SpecError as exc:
                errors.append(str(exc))
        raise SpecError(errors[0] if len(errors) == 1 else f"recipe field {where!r} has the wrong type "
                        f"({_type_name(value)})")
    if origin is Literal:
        if value not in get_args(hint):
            raise SpecError(f"recipe field {where!r} must be one of {', '.join(map(str, get_args(hint)))}; "
                            f"got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise SpecError(f"recipe field {where!r} must be a list, got {_type_name(value)}")
        args = get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise SpecError(f"recipe field {where!r} must have {len(args)} items, got {len(value)}")
        return tuple(_convert(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin is list:
        if not isinstance(value, list):
            raise SpecError(f"recipe field {where!r} must be a list, got {_type_name(value)}")
        (inner,) = get_args(hint) or (Any,)
        return [_convert(inner, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if hint is bool:
        if not isinstance(value, bool):
            raise SpecError(f"recipe field {where!r} must be true or false, got {_type_name(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
            raise SpecError(f"recipe field {where!r} must be an integer, got {value!r}")
        return int(value)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
            raise SpecError(f"recipe field {where!r} must be a finite number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise SpecError(f"recipe field {where!r} must be a string, got {_type_name(value)}")
        return value
    return value


# --------------------------------------------------------------------------------------------------------------
# Format version 1 (before the pipeline vocabulary): translated, then read like any other recipe
# --------------------------------------------------------------------------------------------------------------


def upgrade_v1(command: str, params: dict[str, Any]) -> dict[str, Any]:
    """Version-1 job parameters -> today's. Version 1 spelled the camera ``yaw``/``pitch``, kept truncation
    flat on multi-seed jobs, and wrote the viewer's W interpolation as a two-seed ``blend``."""
    if not isinstance(params, dict):
        raise SpecError("recipe field 'params' must be an object")
    p = dict(params)
    if "latent" in p:
        p["latent"] = _upgrade_latent_v1(p["latent"])
    if "camera" in p:
        p["camera"] = _upgrade_camera_v1(p["camera"])
    if command in ("interpolate", "grid"):
        template = {k: p.pop(k) for k in ("psi", "cutoff", "noise_mode") if k in p}
        p["latent"] = template
    if command == "turntable":
        _rename(p, "pitch", "pitch_deg")
        _rename(p, "yaw_range", "yaw_range_deg")
        p.setdefault("path", "circle")  # version 1's default path
    if command == "grid":
        _rename(p, "pitch", "pitch_deg")
        _rename(p, "yaws", "yaws_deg")
    return p


def _rename(d: dict[str, Any], old: str, new: str) -> None:
    if old in d:
        d[new] = d.pop(old)


def _upgrade_camera_v1(cam: Any) -> Any:
    if not isinstance(cam, dict):
        return cam
    c = dict(cam)
    if c.pop("explicit", None) is not None:
        raise SpecError("this recipe uses an explicit camera pose, which this version no longer replays")
    _rename(c, "yaw", "yaw_deg")
    _rename(c, "pitch", "pitch_deg")
    return c


def _upgrade_latent_v1(latent: Any) -> Any:
    if not isinstance(latent, dict):
        return latent
    d = dict(latent)
    blend = d.pop("blend", None)
    mix_seed = d.pop("mix_seed", None)
    mix_start = d.pop("mix_start", 0)
    mix_end = d.pop("mix_end", None)
    if mix_seed is not None:
        d["mix"] = {"seed": mix_seed, "start": mix_start, "end": mix_end}
    if blend:
        if not isinstance(blend, list) or not all(isinstance(b, list) and len(b) == 2 for b in blend):
            raise SpecError("recipe field 'params.latent.blend' must be a list of [seed, weight] pairs")
        if len(blend) == 1 and blend[0][1] == 1.0:
            d["seed"] = blend[0][0]
        elif len(blend) == 2 and isinstance(blend[1][1], (int, float)) and blend[0][1] == 1.0 - float(blend[1][1]):
            # The viewer wrote (1 - t, t): ws = (1-t) ws(A) + t ws(B), exactly what make_ws computes today.
            d["seed"], d["seed_b"], d["t"], d["space"] = blend[0][0], blend[1][0], float(blend[1][1]), "w"
        else:
            raise SpecError("this recipe blends seeds with free weights, which this version no longer replays")
    return d
