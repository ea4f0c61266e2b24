"""The viewer's small settings file (recent checkpoints, output folder) in the user's config directory.

Location: ``$XDG_CONFIG_HOME/gghead-viewer/settings.json`` (``~/.config`` when unset) on Linux and macOS,
``%APPDATA%\\gghead-viewer\\settings.json`` on Windows. A missing or corrupt file gives the defaults; settings
are a convenience, so reading never raises and a failed write only returns the reason.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

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


@dataclass
class Settings:
    recent_files: list[str] = field(default_factory=list)
    output_dir: str = ""

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
    return Settings(
        recent_files=[str(r) for r in recent if isinstance(r, str)][:MAX_RECENT] if isinstance(recent, list) else [],
        output_dir=out if isinstance(out, str) else "",
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
