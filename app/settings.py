"""The viewer's small settings file (recent checkpoints, output folder, the last render settings and display
toggles) in the user's config directory.

Location: ``$XDG_CONFIG_HOME/gghead-viewer/settings.json`` (``~/.config`` when unset) on Linux and macOS,
``%APPDATA%\\gghead-viewer\\settings.json`` on Windows. A missing or corrupt file gives the defaults; settings
are a convenience, so reading never raises and a failed write only returns the reason.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from app.state import RESOLUTIONS
from gghead_core.pipeline import RenderSettings, SpecError

APP_DIR_NAME = "gghead-viewer"
MAX_RECENT = 10


def config_dir() -> Path:
    """The folder holding the settings file (not created here)."""
    if sys.platform == "win32" and os.environ.get("APPDATA"):
        return Path(os.environ["APPDATA"]) / APP_DIR_NAME
    base = os.environ.get("XDG_CONFIG_HOME") or ""
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".config"
    return root / APP_DIR_NAME


def default_output_dir() -> Path:
    return Path.cwd() / "out" / "viewer"


REMEMBERED_RENDER_FIELDS = ("resolution", "backend", "mode", "background", "sh_ref", "depth_colormap")
"""RenderSettings fields remembered between runs (the scale modifier is an inspection knob: not kept)."""


@dataclass
class Settings:
    recent_files: list[str] = field(default_factory=list)
    output_dir: str = ""
    # The last render settings, as JSON values; checked by the viewer when applied (a value this version does
    # not accept is ignored there, so an edited or older file never stops the viewer from starting).
    render: dict[str, Any] = field(default_factory=dict)
    show_overlay: bool = True  # fps / ms overlay in the view's corner
    progressive: bool = True  # lower-resolution previews while something moves

    def add_recent(self, path: str | os.PathLike) -> None:
        """Move ``path`` (absolute) to the front of the recent list, keeping at most MAX_RECENT entries."""
        p = str(Path(path).expanduser().resolve())
        self.recent_files = [p] + [r for r in self.recent_files if r != p]
        del self.recent_files[MAX_RECENT:]


def settings_path(directory: Path | None = None) -> Path:
    return (directory or config_dir()) / "settings.json"


def load_settings(directory: Path | None = None) -> Settings:
    path = settings_path(directory)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return Settings()
    if not isinstance(data, dict):
        return Settings()
    recent = data.get("recent_files", [])
    out = data.get("output_dir", "")
    render = data.get("render", {})
    render = {k: v for k, v in render.items() if k in REMEMBERED_RENDER_FIELDS} if isinstance(render, dict) else {}
    overlay, progressive = data.get("show_overlay", True), data.get("progressive", True)
    return Settings(
        recent_files=[str(r) for r in recent if isinstance(r, str)][:MAX_RECENT] if isinstance(recent, list) else [],
        output_dir=out if isinstance(out, str) else "",
        render=render,
        show_overlay=overlay if isinstance(overlay, bool) else True,
        progressive=progressive if isinstance(progressive, bool) else True,
    )


def save_settings(settings: Settings, directory: Path | None = None) -> str | None:
    """Write atomically; returns None on success or a one-line reason on failure."""
    path = settings_path(directory)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".settings-", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(asdict(settings), f, indent=2)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        return f"could not save settings to {path}: {exc.strerror or exc}"
    return None


def remembered_render_settings(values: dict[str, Any], base: RenderSettings,
                               backends: tuple[str, ...]) -> RenderSettings:
    """``base`` with each remembered field that is still acceptable (a value this version or this machine
    refuses is skipped, one field at a time, so one bad entry never loses the others)."""
    settings = base
    for key in REMEMBERED_RENDER_FIELDS:
        if key not in values:
            continue
        value = values[key]
        if key == "resolution" and value not in RESOLUTIONS:
            continue
        if key == "backend" and value not in backends:
            continue
        if key == "background" and isinstance(value, list):
            value = tuple(value)
        try:
            settings = replace(settings, **{key: value})
        except (SpecError, TypeError, ValueError):
            continue
    return settings
