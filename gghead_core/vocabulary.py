"""The words every layer shares: modes, backends, noise modes, backgrounds, limits, and the error for bad values.

Each choice is a ``Literal`` type defined once here; the tuple of its values is derived from it
(``BACKENDS = get_args(Backend)``), so the CLI's ``choices``, the viewer's combo boxes, the recipe reader and the
renderer's argument check can never disagree. This module imports nothing heavy (no torch), so the renderer,
the pipeline, the jobs and the GUI can all import it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal, TypeGuard, get_args

Backend = Literal["auto", "gsplat", "opengl", "torch"]
Mode = Literal["rgb", "alpha", "depth"]
DepthColormap = Literal["rainbow", "grey"]  # mode "depth": near red -> far blue, or near white -> far black
ShRef = Literal["frontal", "view"]  # SH colours seen from the fixed frontal camera (official) or from each view
NoiseMode = Literal["const", "random", "none"]
InterpSpace = Literal["w", "z"]  # "w": linear in W; "z": spherical in Z (then mapped)
InterpMethod = Literal["lerp", "slerp"]
Conditioning = Literal["frontal", "camera"]  # mapping label: the frontal camera, or each frame's camera
BackgroundName = Literal["white", "black", "transparent"]
Background = BackgroundName | tuple[float, float, float]

BACKENDS: tuple[str, ...] = get_args(Backend)
MODES: tuple[str, ...] = get_args(Mode)
DEPTH_COLORMAPS: tuple[str, ...] = get_args(DepthColormap)
SH_REFS: tuple[str, ...] = get_args(ShRef)
NOISE_MODES: tuple[str, ...] = get_args(NoiseMode)
INTERP_SPACES: tuple[str, ...] = get_args(InterpSpace)
INTERP_METHODS: tuple[str, ...] = get_args(InterpMethod)
CONDITIONINGS: tuple[str, ...] = get_args(Conditioning)
BACKGROUND_NAMES: tuple[str, ...] = get_args(BackgroundName)
BACKGROUND_RGB: dict[str, tuple[float, float, float]] = {
    "white": (1.0, 1.0, 1.0),
    "black": (0.0, 0.0, 0.0),
    "transparent": (0.0, 0.0, 0.0),  # premultiplied: nothing behind the head; the alpha channel carries it
}

# Limits: values outside these are refused where they are made, with one sentence (never an allocation of
# gigabytes or a loop of a billion frames first).
MAX_RESOLUTION = 4096
MAX_FRAMES = 36_000  # 25 minutes at 24 fps: any video job, in total
MAX_FPS = 240.0
MIN_FPS = 0.1  # one frame every 10 s: GIF delays and H.264 time bases stay sane
MAX_ABS_PSI = 10.0  # truncation psi: the viewer offers -1..2; beyond +-10 the heads are noise anyway
MAX_CUTOFF = 1024
MAX_RADIUS = 1000.0
MAX_ABS_ANGLE_DEG = 1e5
MAX_ABS_LOOK_AT = 1000.0
MAX_SCALE_MODIFIER = 100.0
MAX_ABS_EDIT = 100.0  # an edit's strength, in standard deviations of its direction
MAX_SEED = 2**32 - 1  # the official scripts and the EG3D visualizer use 32-bit seeds


HEADLESS_HINT = (
    "use the headless commands instead (python main.py render|turntable|interpolate|grid|export-ply|export-uv|"
    "timeline|sample|directions|replay|info ...; see python main.py --help), or start the viewer on a virtual "
    "display: xvfb-run -a python main.py"
)
"""What the CLI and the viewer say when no window can be opened (one sentence, kept in one place)."""


class SpecError(ValueError):
    """A value that cannot describe anything to draw (one-line message naming the field)."""


def one_line(exc: BaseException, *, with_type: bool = False, limit: int = 500) -> str:
    """The first line of an exception's message (its type name when empty), cut to ``limit`` characters;
    ``with_type`` prefixes the type name (``ValueError: ...``) where the reader cannot guess the kind.

    The one helper for turning an exception into the single line that the CLI prints and the viewer shows.
    """
    name = type(exc).__name__
    text = str(exc).strip()
    first = text.splitlines()[0] if text else name
    if with_type and first != name:
        first = f"{name}: {first}"
    return first if len(first) <= limit else first[: limit - 3] + "..."


# --------------------------------------------------------------------------------------------------------------
# Checks used by the frozen specs' __post_init__ (each returns the normalised value or raises SpecError)
# --------------------------------------------------------------------------------------------------------------


def check_choice(value: Any, choices: Sequence[str], what: str) -> str:
    if not isinstance(value, str) or value not in choices:
        raise SpecError(f"{what} must be one of {', '.join(choices)}; got {value!r}")
    return value


def check_number(value: Any, what: str, *, lo: float = -math.inf, hi: float = math.inf,
                 lo_open: bool = False, hi_open: bool = False) -> float:
    """A finite real number in ``[lo, hi]`` (ends open when asked); bools and strings are refused."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not _is_numpy_number(value):
        raise SpecError(f"{what} must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise SpecError(f"{what} must be a finite number, got {value!r}")
    if v < lo or v > hi or (lo_open and v == lo) or (hi_open and v == hi):
        left, right = "(" if lo_open else "[", ")" if hi_open else "]"
        raise SpecError(f"{what} must be in {left}{lo:g}, {hi:g}{right}, got {value!r}")
    return v


def check_int(value: Any, what: str, *, lo: int | None = None, hi: int | None = None) -> int:
    """An integer in ``[lo, hi]``; floats with an integral value (JSON ``3.0``) are accepted, bools are not."""
    if isinstance(value, bool):
        raise SpecError(f"{what} must be an integer, got {value!r}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) and not _is_numpy_integer(value):
        raise SpecError(f"{what} must be an integer, got {value!r}")
    v = int(value)
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        lo_s = "" if lo is None else f"{lo}"
        hi_s = "" if hi is None else f"{hi}"
        raise SpecError(f"{what} must be in [{lo_s}, {hi_s}], got {v}")
    return v


def check_seed(value: Any, what: str = "seed") -> int:
    return check_int(value, what, lo=0, hi=MAX_SEED)


def check_resolution(value: Any) -> int:
    r = check_int(value, "resolution")
    if r <= 0 or r % 16 or r > MAX_RESOLUTION:
        raise SpecError(f"resolution must be a positive multiple of 16 up to {MAX_RESOLUTION}, got {r}")
    return r


def _is_background_name(text: str) -> TypeGuard[BackgroundName]:
    return text in BACKGROUND_NAMES


def parse_background(value: Any) -> Background:
    """``white`` | ``black`` | ``transparent`` | ``R,G,B`` text or a 3-sequence of floats in [0, 1].

    The one parser for backgrounds: the CLI's ``--background``, recipes and the viewer's colour picker all
    end here, so every layer stores the same normalised value (a name, or a tuple of three floats).
    """
    if isinstance(value, str):
        s = value.strip().lower()
        if _is_background_name(s):
            return s
        parts = s.split(",")
    elif isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        raise SpecError(f"background must be white, black, transparent or R,G,B in [0, 1]; got {value!r}")
    try:
        rgb = [float(p) for p in parts]
    except (TypeError, ValueError):
        raise SpecError(f"invalid background {value!r}: use white, black, transparent or R,G,B in [0, 1]") from None
    if len(rgb) != 3 or not all(math.isfinite(c) and 0.0 <= c <= 1.0 for c in rgb):
        raise SpecError(f"invalid background {value!r}: R,G,B needs three numbers in [0, 1]")
    return (rgb[0], rgb[1], rgb[2])


def background_rgb(background: Background) -> tuple[float, float, float]:
    """The colour a background paints behind the head (transparent: black, premultiplied, alpha 0)."""
    if isinstance(background, str):
        return BACKGROUND_RGB[background]
    return (float(background[0]), float(background[1]), float(background[2]))


def _is_numpy_number(value: Any) -> bool:
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy is a hard dependency
        return False
    return isinstance(value, (np.integer, np.floating))


def _is_numpy_integer(value: Any) -> bool:
    try:
        import numpy as np
    except ImportError:  # pragma: no cover
        return False
    return isinstance(value, np.integer)
