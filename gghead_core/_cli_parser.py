"""The command line's grammar: argument types (each bad value becomes one usage line) and the parser.

Only parsing lives here; :mod:`gghead_core.cli` turns the parsed arguments into jobs and runs them.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn

from gghead_core import __version__
from gghead_core.camera import DEFAULT_RADIUS
from gghead_core.jobs.turntable import TURNTABLE_PATHS, TurntableJob
from gghead_core.vocabulary import (
    BACKENDS,
    CONDITIONINGS,
    DEPTH_COLORMAPS,
    INTERP_METHODS,
    INTERP_SPACES,
    MODES,
    NOISE_MODES,
    SH_REFS,
)

if TYPE_CHECKING:  # pragma: no cover
    from gghead_core.pipeline import LatentEdit

PROG = "main.py"


class UsageError(Exception):
    """Bad command-line arguments (argparse's errors are routed here so they print as one line)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


# --------------------------------------------------------------------------------------------------------------
# Argument types (each raises ArgumentTypeError -> one-line usage error)
# --------------------------------------------------------------------------------------------------------------


def _seed_type(text: str) -> int:
    from gghead_core.latents import parse_seed

    try:
        return parse_seed(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _seed_list_type(text: str) -> list[int]:
    from gghead_core.latents import parse_seed_list

    try:
        return parse_seed_list(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _int_type(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _float_type(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _float_list_type(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"expected finite numbers, got {text!r}")
    return values


def _xyz_type(text: str) -> tuple[float, float, float]:
    values = _float_list_type(text)
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"expected X,Y,Z, got {text!r}")
    return (values[0], values[1], values[2])


def _cutoff_type(text: str) -> int:
    value = _int_type(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"cutoff must be non-negative, got {value}")
    return value


def parse_edit(text: str) -> LatentEdit:
    """``NAME=AMOUNT[@FIRST-LAST]`` -> :class:`~gghead_core.pipeline.LatentEdit`.

    AMOUNT is in standard deviations of the direction (``+2.5``, ``-1``). The optional layer range names ws rows
    as the viewer's sliders do, *inclusive* and counted from 0: ``@0-6`` is rows 0..6 (LatentEdit start=0,
    end=7); ``@4-`` is row 4 to the last row; ``@5`` is row 5 alone. Without it, every row is moved.
    """
    from gghead_core.pipeline import LatentEdit
    from gghead_core.vocabulary import SpecError

    name, sep, rest = text.partition("=")
    if not sep or not name.strip() or not rest.strip():
        raise ValueError(f"expected NAME=AMOUNT[@FIRST-LAST] (e.g. pc2=+2.5 or pc5=-1@0-6), got {text!r}")
    amount_text, at, rows = rest.partition("@")
    try:
        amount = float(amount_text)
    except ValueError:
        raise ValueError(f"edit {text!r}: the amount {amount_text!r} is not a number") from None
    start, end = 0, None
    if at:
        first, dash, last = rows.partition("-")
        try:
            start = int(first)
            end = (None if last.strip() == "" else int(last) + 1) if dash else start + 1
        except ValueError:
            raise ValueError(f"edit {text!r}: the layers {rows!r} must be FIRST-LAST, FIRST- or FIRST (integers)") from None
        if start < 0 or (end is not None and end <= start):
            raise ValueError(f"edit {text!r}: the layers {rows!r} must satisfy 0 <= FIRST <= LAST")
    try:
        return LatentEdit(name.strip(), amount, start, end)
    except SpecError as exc:
        raise ValueError(str(exc)) from None


def _edit_type(text: str) -> LatentEdit:
    try:
        return parse_edit(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _samples_type(text: str) -> int:
    from gghead_core.directions import MAX_SAMPLES, MIN_SAMPLES

    value = _int_type(text)
    if not MIN_SAMPLES <= value <= MAX_SAMPLES:
        raise argparse.ArgumentTypeError(f"samples must be from {MIN_SAMPLES} to {MAX_SAMPLES:,}, got {value}")
    return value


# Options whose values may start with "-" (negative numbers in lists): "--yaws -30,0,30" -> "--yaws=-30,0,30".
_NEGATIVE_OK = ("--yaws", "--look-at", "--background", "--yaw", "--pitch", "--yaw-range", "--pitch-range")


def join_negative_values(argv: Sequence[str]) -> list[str]:
    out: list[str] = []
    i = 0
    argv = list(argv)
    while i < len(argv):
        a = argv[i]
        if a in _NEGATIVE_OK and i + 1 < len(argv) and argv[i + 1].startswith("-") and _looks_numeric(argv[i + 1]):
            out.append(f"{a}={argv[i + 1]}")
            i += 2
            continue
        out.append(a)
        i += 1
    return out


def _looks_numeric(text: str) -> bool:
    try:
        [float(v) for v in text.split(",")]
        return True
    except ValueError:
        return False


# --------------------------------------------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------------------------------------------


def _global_options(parser: argparse.ArgumentParser, suppress: bool) -> None:
    """``--ckpt``/``--device``/``--quiet`` on the main parser (with defaults) and on every subcommand (with
    SUPPRESS defaults, so a value given before the command is not reset by the subparser)."""
    d = (lambda v: argparse.SUPPRESS) if suppress else (lambda v: v)
    parser.add_argument("--ckpt", default=d(None), metavar="PATH",
                        help="checkpoint: official .pkl or our .safetensors (default: the bundled demo model)")
    parser.add_argument("--device", default=d("auto"), choices=("auto", "cpu", "cuda"),
                        help="where the generator runs (auto: CUDA when available)")
    parser.add_argument("--quiet", "-q", action="store_true", default=d(False), help="no progress bar")


def _render_options(p: argparse.ArgumentParser, resolution: int) -> None:
    g = p.add_argument_group("rendering")
    g.add_argument("--resolution", type=_int_type, default=resolution,
                   help=f"image size in pixels, a multiple of 16 up to 4096 (default {resolution})")
    g.add_argument("--backend", default="auto", choices=BACKENDS)
    g.add_argument("--mode", default="rgb", choices=MODES)
    g.add_argument("--background", default="white", metavar="white|black|transparent|R,G,B",
                   help="background (R,G,B floats in [0,1]); transparent needs PNG output")
    g.add_argument("--sh-ref", default="frontal", choices=SH_REFS,
                   help="SH colours from the fixed frontal camera (official default) or from each view")
    g.add_argument("--depth-colormap", default="rainbow", choices=DEPTH_COLORMAPS,
                   help="colours of --mode depth: rainbow (near red, far blue) or grey (near white, far black)")


def _latent_options(p: argparse.ArgumentParser, seed_required: bool = True) -> None:
    g = p.add_argument_group("latent")
    if seed_required:
        g.add_argument("--seed", type=_seed_type, required=True, help="latent seed (0 .. 2^32-1)")
    g.add_argument("--psi", type=_float_type, default=0.7, help="truncation psi (default 0.7)")
    g.add_argument("--cutoff", type=_cutoff_type, default=None, help="truncate only the first K ws rows")
    g.add_argument("--noise-mode", default="const", choices=NOISE_MODES)
    g.add_argument("--edit", type=_edit_type, action="append", default=[], metavar="NAME=AMOUNT[@FIRST-LAST]",
                   help="move along a latent direction (pc0..pc19 or a custom name; see 'directions') by AMOUNT "
                        "standard deviations, on ws rows FIRST..LAST inclusive (default all); repeatable, "
                        "applied in order, e.g. --edit pc2=+2.5 --edit pc5=-1@0-6")


def _output_options(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--out", required=True, metavar="PATH", help=what)
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="GGHead viewer and headless tools. Without a command the desktop viewer opens.",
        epilog=(
            "Every output X gets a recipe X.json (a frame folder: folder/recipe.json); "
            "'replay X.json' reproduces X. Existing files are never replaced without --overwrite. "
            "Exit codes: 0 ok, 1 runtime error, 2 bad arguments or output path, 130 interrupted."
        ),
    )
    _global_options(parser, suppress=False)
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument("--screenshot", metavar="PATH.png", default=None,
                        help="viewer only: open it, save the window as a PNG once the first frame is drawn, and exit "
                             "(for docs and smoke tests)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        _global_options(p, suppress=True)
        return p

    add("info", "print the model's key facts and the renderer that would be used")

    p = add("convert", "convert a checkpoint (.pkl or .safetensors) to our .safetensors format")
    p.add_argument("input", metavar="IN")
    p.add_argument("output", metavar="OUT")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")

    p = add("render", "render one image of one head to PNG")
    _latent_options(p)
    g = p.add_argument_group("camera")
    g.add_argument("--yaw", type=_float_type, default=0.0, help="degrees; positive moves the camera toward +x")
    g.add_argument("--pitch", type=_float_type, default=0.0, help="degrees; positive looks down from above")
    g.add_argument("--radius", type=_float_type, default=2.7)
    g.add_argument("--look-at", type=_xyz_type, default=(0.0, 0.0, 0.0), metavar="X,Y,Z")
    g.add_argument("--fov", type=_float_type, default=None, help="field of view in degrees (default 13.37)")
    _render_options(p, 1024)
    _output_options(p, "output .png")

    p = add("turntable", "render a head along a camera loop to .mp4, .gif or a folder of PNGs")
    _latent_options(p)
    p.add_argument("--frames", type=_int_type, default=TurntableJob.frames,
                   help=f"number of frames (default {TurntableJob.frames})")
    p.add_argument("--fps", type=_float_type, default=TurntableJob.fps, help=f"frames per second (default {TurntableJob.fps:g})")
    p.add_argument("--path", default=TurntableJob.path, choices=TURNTABLE_PATHS,
                   help="orbit: yaw once around the head (default); circle: the official sample script's camera circle")
    p.add_argument("--pitch", type=_float_type, default=0.0, help="tilt of the path in degrees")
    p.add_argument("--radius", type=_float_type, default=DEFAULT_RADIUS, help=f"camera distance (default {DEFAULT_RADIUS})")
    p.add_argument("--yaw-range", type=_float_type, default=TurntableJob.yaw_range_deg,
                   help="orbit only: 360 turns once (default); less swings between -range/2 and +range/2")
    _render_options(p, 512)
    _output_options(p, "output .mp4, .gif or folder/ (numbered PNGs)")

    p = add("interpolate", "morph between seeds into a video")
    p.add_argument("--seeds", type=_seed_list_type, required=True, help="e.g. 0,1,2 or 0-4")
    p.add_argument("--frames-per-seed", type=_int_type, required=True, help="frames per transition")
    p.add_argument("--fps", type=_float_type, default=24.0)
    p.add_argument("--space", default="w", choices=INTERP_SPACES, help="interpolate in W (default) or Z (official)")
    p.add_argument("--method", default="lerp", choices=INTERP_METHODS)
    p.add_argument("--loop", action="store_true", help="return to the first seed (official schedule)")
    p.add_argument("--orbit", action="store_true", help="move the camera on the official circle, one turn per seed")
    p.add_argument("--conditioning", default="frontal", choices=CONDITIONINGS,
                   help="mapping label: frontal camera (default) or each frame's camera (official script)")
    _latent_options(p, seed_required=False)
    g = p.add_argument_group("fixed camera (without --orbit)")
    g.add_argument("--yaw", type=_float_type, default=0.0)
    g.add_argument("--pitch", type=_float_type, default=0.0)
    g.add_argument("--radius", type=_float_type, default=2.7)
    _render_options(p, 512)
    _output_options(p, "output .mp4, .gif or folder/")

    p = add("grid", "seeds x views in one PNG")
    p.add_argument("--seeds", type=_seed_list_type, required=True, help="e.g. 0-7")
    p.add_argument("--yaws", type=_float_list_type, default=[0.0], help="view yaws in degrees, e.g. -30,0,30")
    p.add_argument("--cols", type=_int_type, default=None,
                   help="seeds per row (default: one per row with several yaws, else near-square)")
    p.add_argument("--pitch", type=_float_type, default=0.0)
    p.add_argument("--radius", type=_float_type, default=2.7)
    p.add_argument("--labels", action="store_true", help="write each cell's seed and yaw on the image")
    _latent_options(p, seed_required=False)
    _render_options(p, 256)
    _output_options(p, "output .png")

    p = add("export-ply", "write the head's Gaussians as a 3DGS .ply (or a compact .splat)")
    _latent_options(p)
    p.add_argument("--format", default=None, choices=("ply", "splat"), help="default: from the extension")
    _output_options(p, "output .ply or .splat")

    _sample_parser(add)

    p = add("timeline", "render a keyframe timeline (JSON, saved by the viewer's Timeline panel) to a video")
    p.add_argument("timeline", metavar="TIMELINE.json", help="the timeline file (format: README, 'Timeline JSON')")
    p.add_argument("--fps", type=_float_type, default=None, help="frames per second (default: the timeline's)")
    _render_options(p, 512)
    _output_options(p, "output .mp4, .gif or folder/ (numbered PNGs)")
    p = add("export-uv", "write the head's UV attribute maps (16-bit PNGs, a .npz of floats, a manifest) into a folder")
    _latent_options(p)
    _output_options(p, "output folder DIR/ (uv maps, uv_maps.npz, uv_maps.json and recipe.json go inside)")
    p = add("directions", "list the model's latent directions (PCA of W, computed once and cached) or add a custom one")
    p.add_argument("--samples", type=_samples_type, default=None,
                   help="latents for the PCA when it is computed (default 20000); cached results are reused "
                        "unless --recompute")
    p.add_argument("--recompute", action="store_true",
                   help="compute again and replace the cache (custom directions are recomputed from their seeds)")
    p.add_argument("--add", metavar="NAME", default=None,
                   help="define a custom direction: mean W of the --with seeds minus that of the --without seeds")
    p.add_argument("--with", dest="with_seeds", type=_seed_list_type, default=None, metavar="SEEDS",
                   help="seeds showing the feature, e.g. 1,5,9 or 10-19")
    p.add_argument("--without", dest="without_seeds", type=_seed_list_type, default=None, metavar="SEEDS",
                   help="seeds without the feature")
    p.add_argument("--replace", action="store_true", help="with --add: replace a custom direction of that name")
    p.add_argument("--remove", metavar="NAME", default=None, help="delete a custom direction")

    p = add("replay", "run a recipe (.json sidecar) again")
    p.add_argument("recipe", metavar="RECIPE.json")
    p.add_argument("--out", default=None, metavar="PATH", help="output path (default: the recipe's)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--allow-other-checkpoint", action="store_true",
                   help="replay with a checkpoint whose sha256 differs from the recipe's (pixels will differ)")
    return parser


def _range_type(what: str):
    def parse(text: str) -> tuple[float, float]:
        from gghead_core.dataset.cameras import parse_range
        from gghead_core.vocabulary import SpecError

        try:
            return parse_range(text, what)
        except SpecError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def _sample_seeds_type(text: str) -> list[int]:
    from gghead_core.dataset.run import parse_sample_seeds

    try:
        return parse_sample_seeds(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _sample_parser(add) -> None:
    """``sample``: a multi-view dataset (gghead_core.dataset); the same command line under torchrun shards it."""
    from gghead_core.dataset.cameras import CAMERA_KINDS, DEFAULT_PITCH_RANGE, DEFAULT_YAW_RANGE

    p = add("sample", "render a multi-view dataset of many heads (EG3D dataset.json, optional PLY, nerfstudio "
                      "transforms.json); run it under torchrun to shard it over processes and machines")
    p.add_argument("--seeds", type=_sample_seeds_type, required=True, help="e.g. 0-99999 (no repeats; up to 4M)")
    p.add_argument("--views", type=_int_type, default=8, help="cameras per head (default 8)")
    g = p.add_argument_group("cameras (seeded: the same arguments give the same cameras)")
    g.add_argument("--cameras", default="front", choices=CAMERA_KINDS,
                   help="front: near-frontal (normal around the range centre); orbit: evenly spaced yaws; "
                        "random: uniform in the ranges (default front)")
    g.add_argument("--yaw-range", type=_range_type("yaw range"), default=DEFAULT_YAW_RANGE, metavar="W|LO,HI",
                   help="degrees: a width centred on 0 or LO,HI (default -30,30; 360 = all around)")
    g.add_argument("--pitch-range", type=_range_type("pitch range"), default=DEFAULT_PITCH_RANGE,
                   metavar="W|LO,HI", help="degrees within -89..89 (default -10,10)")
    g.add_argument("--radius", type=_float_type, default=DEFAULT_RADIUS, help=f"camera distance (default {DEFAULT_RADIUS})")
    g.add_argument("--fov", type=_float_type, default=None, help="field of view in degrees (default 13.37)")
    g.add_argument("--camera-seed", type=_seed_type, default=0, help="mixed with each head's seed (default 0)")
    _latent_options(p, seed_required=False)
    g = p.add_argument_group("images")
    g.add_argument("--resolution", type=_int_type, default=256, help="pixels, a multiple of 16 (default 256)")
    g.add_argument("--backend", default="auto", choices=BACKENDS)
    g.add_argument("--background", default="white", choices=("white", "black", "transparent"),
                   help="transparent writes RGBA images")
    g.add_argument("--sh-ref", default="frontal", choices=SH_REFS)
    g.add_argument("--alpha", action="store_true", help="also write 8-bit alpha masks (mask_VV.png)")
    g.add_argument("--depth", default=None, choices=("png", "npy"),
                   help="also write depth maps: 16-bit PNG (value x depth_scale from the manifest) or float32 .npy")
    g = p.add_argument_group("per-head extras and packaging")
    g.add_argument("--ply", action="store_true", help="the head's Gaussians as a 3DGS PLY (gaussians.ply)")
    g.add_argument("--transforms", action="store_true", help="a nerfstudio transforms.json per head")
    g.add_argument("--zip", action="store_true",
                   help="also build dataset.zip (RGB images + dataset.json) at the end, for EG3D's loader")
    g.add_argument("--batch", type=_int_type, default=4,
                   help="heads synthesised together (default 4); keep it fixed to keep files byte-identical")
    p.add_argument("--out", required=True, metavar="DIR", help="dataset folder (new, empty, or one to resume)")


# --------------------------------------------------------------------------------------------------------------
# Commands
