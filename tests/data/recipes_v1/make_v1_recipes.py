"""Regenerates the format-1 recipes in this folder with the format-1 engine (commit f33d698).

Run from a checkout of that commit (``git worktree add /tmp/v1 f33d698``), with this repository's demo model:
``cd /tmp/v1 && python /path/to/tests/data/recipes_v1/make_v1_recipes.py /path/to/tests/data/recipes_v1``.
Needed again only when the demo model changes (the recipes record its sha256).
"""

import sys
from pathlib import Path

from gghead_core import batch as b  # exists only in the format-1 engine
from gghead_core import load_generator

out = Path(sys.argv[1])
G = load_generator(None)
still = b.StillJob(
    latent=b.LatentSpec(seed=3, psi=0.6, blend=[(3, 1.0 - 0.37), (5, 0.37)], mix_seed=7, mix_start=2, mix_end=5),
    camera=b.CameraSpec(yaw=20.0, pitch=-5.0, look_at=(0.02, -0.01, 0.0)),
    settings=b.RenderSettings(resolution=64, backend="torch", background=(0.2, 0.3, 0.4)),
)
b.run_still(G, still, out / "still_blend_mix.png", argv=["viewer"], overwrite=True)
turntable = b.TurntableJob(latent=b.LatentSpec(seed=1), frames=3,
                           settings=b.RenderSettings(resolution=32, backend="torch"))
b.run_turntable(G, turntable, out / "turntable_circle.gif", overwrite=True)
grid = b.GridJob(seeds=[0, 2], yaws=[-30.0, 30.0], psi=0.5, cutoff=3,
                 settings=b.RenderSettings(resolution=32, backend="torch"))
b.run_grid(G, grid, out / "grid_psi.png", overwrite=True)
