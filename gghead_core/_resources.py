"""Where the shaders, the template assets and the demo checkpoint are, in a clone and in an installed wheel.

In a clone they are the top-level folders ``shaders/``, ``assets/`` and ``checkpoints/``; a wheel carries the
same folders inside the package (``gghead_core/shaders`` ..., mapped in ``pyproject.toml``), so the app finds
them from any working directory and never through the current one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

ResourceDir = Literal["shaders", "assets", "checkpoints"]

_PACKAGE_DIR = Path(__file__).resolve().parent
_REPO_ROOT = _PACKAGE_DIR.parent


def resource_dir(name: ResourceDir) -> Path:
    """The folder ``name``: inside the installed package when it is there, else the clone's top-level one."""
    installed = _PACKAGE_DIR / name
    return installed if installed.is_dir() else _REPO_ROOT / name
