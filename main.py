"""GGHead viewer and headless tools: ``python main.py --help``.

Without a command the desktop viewer opens; with one (info, convert, render, turntable, interpolate, grid,
export-ply, replay) it runs headless. All argument handling lives in :mod:`gghead_core.cli`.
"""

import sys

from gghead_core.cli import main  # gghead_core sets OMP_WAIT_POLICY=PASSIVE before torch is imported

if __name__ == "__main__":
    sys.exit(main())
