"""gghead_core: read GGHead checkpoints safely, run the generator in plain PyTorch, render and export heads.

No GUI imports here: the desktop viewer (``app``) and the command line (``main.py``) are thin front ends. The
names below are the public API; ``app/`` imports nothing else from this package but :mod:`gghead_core.pipeline`,
:mod:`gghead_core.jobs` and :mod:`gghead_core.render`.
"""

from .camera import DEFAULT_FOCAL, DEFAULT_FOV_DEG, DEFAULT_RADIUS, Camera, CameraSpec, frontal_camera
from .checkpoint import CheckpointError, convert_checkpoint, load_generator, save_safetensors
from .config import ConfigError, GeneratorConfig
from .export import OutputError, RecipeError
from .gaussians import Gaussians
from .generator import Generator
from .inspection import InspectSpec, inspect_view, inspect_view_indexed, pick_gaussian, selection_indices
from .pipeline import Frame, LatentEdit, LatentSpec, RenderSettings, StyleMix, generate, make_ws, render_views
from .uv_maps import MAP_INFO, MAP_NAMES, TexelMapping, UVMaps, colorize, texel_mapping, uv_maps
from .vocabulary import (
    BACKENDS,
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
    "BACKENDS",
    "DEFAULT_FOCAL",
    "DEFAULT_FOV_DEG",
    "DEFAULT_RADIUS",
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
    "InspectSpec",
    "MAP_INFO",
    "MAP_NAMES",
    "LatentEdit",
    "LatentSpec",
    "Mode",
    "NoiseMode",
    "OutputError",
    "RecipeError",
    "RenderSettings",
    "ShRef",
    "SpecError",
    "StyleMix",
    "TexelMapping",
    "UVMaps",
    "__version__",
    "colorize",
    "convert_checkpoint",
    "frontal_camera",
    "generate",
    "inspect_view",
    "inspect_view_indexed",
    "load_generator",
    "make_ws",
    "one_line",
    "parse_background",
    "pick_gaussian",
    "render_views",
    "save_safetensors",
    "selection_indices",
    "texel_mapping",
    "uv_maps",
]
