"""GGHead viewer and headless tools: ``python main.py --help``.

Without a command the desktop viewer opens; with one (info, convert, render, turntable, interpolate, grid,
export-ply, replay) it runs headless. All argument handling lives in :mod:`gghead_core.cli`.
"""

import os
import sys

# OpenMP threads that busy-wait make CPU torch several times slower when anything else uses the cores
# (the viewer's UI thread, a video encoder); set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from gghead_core.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
