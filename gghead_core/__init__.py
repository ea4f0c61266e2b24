"""gghead_core: read GGHead checkpoints safely, run the generator in plain PyTorch, render and export heads.

No GUI imports here: the desktop viewer (``app``) and the command line (``main.py``) are thin front ends. The
names below are the public API; ``app/`` imports nothing else from this package but :mod:`gghead_core.pipeline`,
:mod:`gghead_core.jobs` and :mod:`gghead_core.render`.
"""

from . import directions  # latent directions (PCA of W, custom ones), per-checkpoint cache
from .camera import DEFAULT_FOCAL, DEFAULT_FOV_DEG, DEFAULT_RADIUS, Camera, CameraSpec, frontal_camera
from .checkpoint import CheckpointError, convert_checkpoint, load_generator, save_safetensors
from .config import ConfigError, GeneratorConfig
from .export import OutputError, RecipeError
from .gaussians import Gaussians
from .generator import Generator
from .pipeline import Frame, LatentEdit, LatentSpec, RenderSettings, StyleMix, generate, make_ws, render_views
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
    "__version__",
    "convert_checkpoint",
    "directions",
    "frontal_camera",
    "generate",
    "load_generator",
    "make_ws",
    "one_line",
    "parse_background",
    "render_views",
    "save_safetensors",
]
