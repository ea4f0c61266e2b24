"""gghead_core: read GGHead checkpoints safely, run the generator in plain PyTorch, render and export heads.

No GUI imports here: the desktop viewer (``app``) and the command line (``main.py``) are thin front ends. The
names below are the public API; ``app/`` imports nothing else from this package but :mod:`gghead_core.pipeline`,
:mod:`gghead_core.jobs` and :mod:`gghead_core.render`.
"""

import os as _os

# OpenMP threads that busy-wait make CPU torch several times slower when anything else uses the cores (the
# viewer's UI thread, a video encoder, another process); must be set before torch is imported, which the
# imports below do. Applies to ``python main.py``, the installed ``gghead-viewer`` command and library use.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from . import directions  # latent directions (PCA of W, custom ones), per-checkpoint cache
from .camera import DEFAULT_FOCAL, DEFAULT_FOV_DEG, DEFAULT_RADIUS, Camera, CameraSpec, frontal_camera
from .checkpoint import CheckpointError, convert_checkpoint, load_generator, save_safetensors
from .config import ConfigError, GeneratorConfig
from .export import OutputError, OutputWriteError, RecipeError
from .gaussians import Gaussians
from .generator import Generator
from .inspection import InspectSpec, inspect_view, inspect_view_indexed, pick_gaussian, selection_indices
from .pipeline import Frame, LatentEdit, LatentSpec, RenderSettings, StyleMix, generate, make_ws, render_views
from .timeline import EASES, LATENT_INTERPS, Keyframe, Timeline, TimelineSampler, load_timeline, save_timeline
from .uv_maps import MAP_INFO, MAP_NAMES, TexelMapping, UVMaps, colorize, texel_mapping, uv_maps
from .vocabulary import (
    BACKENDS,
    HEADLESS_HINT,
    MODES,
    NOISE_MODES,
    SH_REFS,
    Backend,
    Mode,
    NoiseMode,
    ShRef,
    SpecError,
    one_line,
    parse_background,
)

__version__ = "0.2.0"

__all__ = [
    "HEADLESS_HINT",
    "BACKENDS",
    "DEFAULT_FOCAL",
    "DEFAULT_FOV_DEG",
    "DEFAULT_RADIUS",
    "EASES",
    "MODES",
    "NOISE_MODES",
    "SH_REFS",
    "Backend",
    "Camera",
    "CameraSpec",
    "CheckpointError",
    "ConfigError",
    "Frame",
    "Gaussians",
    "Generator",
    "GeneratorConfig",
    "Keyframe",
    "LATENT_INTERPS",
    "InspectSpec",
    "MAP_INFO",
    "MAP_NAMES",
    "LatentEdit",
    "LatentSpec",
    "Mode",
    "NoiseMode",
    "OutputError",
    "OutputWriteError",
    "RecipeError",
    "RenderSettings",
    "ShRef",
    "SpecError",
    "StyleMix",
    "Timeline",
    "TimelineSampler",
    "TexelMapping",
    "UVMaps",
    "__version__",
    "colorize",
    "convert_checkpoint",
    "directions",
    "frontal_camera",
    "generate",
    "inspect_view",
    "inspect_view_indexed",
    "load_generator",
    "load_timeline",
    "make_ws",
    "one_line",
    "parse_background",
    "pick_gaussian",
    "render_views",
    "save_safetensors",
    "save_timeline",
    "selection_indices",
    "texel_mapping",
    "uv_maps",
]
