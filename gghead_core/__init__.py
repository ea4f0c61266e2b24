"""gghead_core: read GGHead checkpoints safely, run the generator in plain PyTorch, render and export heads.

No GUI imports here: the desktop viewer (``app``) and the command line (``main.py``) are thin front ends.
"""

from .camera import DEFAULT_FOCAL, DEFAULT_RADIUS, Camera, OrbitCamera, frontal_camera
from .checkpoint import CheckpointError, convert_checkpoint, load_generator, save_safetensors
from .config import ConfigError, GeneratorConfig
from .gaussians import Gaussians
from .generator import Generator

__all__ = [
    "DEFAULT_FOCAL",
    "DEFAULT_RADIUS",
    "Camera",
    "CheckpointError",
    "ConfigError",
    "Gaussians",
    "Generator",
    "GeneratorConfig",
    "OrbitCamera",
    "convert_checkpoint",
    "frontal_camera",
    "load_generator",
    "save_safetensors",
]
