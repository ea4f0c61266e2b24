"""Benchmark: the OpenGL backend through ``render()`` on the bundled demo model (47k Gaussians), per resolution.

    python bench/render_opengl.py                         # this checkout, 256 / 512 / 1024
    python bench/render_opengl.py --before f33d698        # also an older commit, interleaved, one table
    python bench/render_opengl.py --resolutions 512 --frames 20

What a viewer frame costs on a machine without a GPU (Mesa llvmpipe): seed 0 at psi 0.7, frontal camera,
``render(g, camera, res, backend="opengl")``, median of ``--frames`` after two warm-up frames. Each cell gives
wall time and process CPU time per frame (llvmpipe's threads included: on a shared 2-core machine the CPU time
is the steadier measure of the work, the wall time what the user sees at that moment's load), the backend's
own split (sort / project / raster / readback, wall ms) and the primitive it drew. ``rgb-only`` times the same
``render()`` with the rasterizer asked for no depth sums (``with_depth=False``), which is what ``render()`` can
do for ``mode="rgb"``/``"alpha"``; it is patched in here, so it also runs where render() does not do it yet.

``--before REV`` exports ``gghead_core/`` and ``shaders/`` of that commit into a temporary folder and runs the
same cells there in a child process, alternating with this checkout (or ``--after REV``) per resolution; the
demo checkpoint is always this checkout's. ``uptime``'s load average is printed before and after.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "load average {:.2f}, {:.2f}, {:.2f}".format(*os.getloadavg())


def measure(repo: Path, resolutions: list[int], frames: int) -> list[dict]:
    """Time the cells with ``gghead_core`` imported from ``repo`` (this process must not have imported it)."""
    sys.path.insert(0, str(repo))
    import torch

    import gghead_core
    import gghead_core.render as render_mod
    from gghead_core.camera import frontal_camera
    from gghead_core.render import render
    from gghead_core.render._opengl import default_rasterizer, rasterize_opengl

    G = gghead_core.load_generator(REPO / "checkpoints" / "demo.safetensors")
    with torch.no_grad():
        g = G.synthesis(G.mapping(G.z_from_seed(0), None, truncation_psi=0.7))
    cam = frontal_camera()
    rgb_only_ok = "with_depth" in inspect.signature(rasterize_opengl).parameters
    rows = []
    for res in resolutions:
        row: dict = {"res": res, "gaussians": int(g.means.shape[1])}
        for variant in ("render", "rgb-only"):
            if variant == "rgb-only" and not rgb_only_ok:
                continue
            original = render_mod._rasterizer
            if variant == "rgb-only":
                def rgb_only(*args):
                    rgb, alpha, _ = rasterize_opengl(*args, with_depth=False)
                    return rgb, alpha, torch.zeros_like(alpha)

                render_mod._rasterizer = (
                    lambda name, original=original: rgb_only if name == "opengl" else original(name))
            try:
                walls, cpus, splits = [], [], []
                for i in range(frames + 2):
                    t0, c0 = time.perf_counter(), time.process_time()
                    res_ = render(g, cam, res, backend="opengl")
                    wall, cpu = (time.perf_counter() - t0) * 1e3, (time.process_time() - c0) * 1e3
                    if res_.backend != "opengl":
                        raise SystemExit(f"OpenGL did not render: {res_.backend_reason}")
                    if i >= 2:
                        walls.append(wall)
                        cpus.append(cpu)
                        splits.append(dict(default_rasterizer().last_timings_ms))
            finally:
                render_mod._rasterizer = original
            split = {k: statistics.median(s.get(k, 0.0) for s in splits) for k in ("sort", "project", "raster", "readback")}
            stats = default_rasterizer().last_stats
            row[variant] = {"wall": statistics.median(walls), "cpu": statistics.median(cpus), "best": min(walls),
                            "split": split, "primitive": getattr(stats, "primitive", "?")}
        row["renderer"] = default_rasterizer().describe()
        rows.append(row)
    return rows


def _child(repo: Path, resolutions: list[int], frames: int) -> list[dict]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(repo), "--frames", str(frames),
           "--resolutions", *map(str, resolutions)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    line = next((ln for ln in reversed(proc.stdout.splitlines()) if ln.startswith("[")), None)
    if proc.returncode != 0 or line is None:
        raise SystemExit(f"benchmark child for {repo} failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
    return json.loads(line)


def _export(rev: str, into: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "gghead_core", "shaders"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def _cell(v: dict | None) -> str:
    if not v:
        return "| - | - | - | - |"
    s = v["split"]
    return (f"| {v['wall']:.0f} | {v['cpu']:.0f} | {s['sort']:.1f} / {s['project']:.1f} / {s['raster']:.0f} / "
            f"{s['readback']:.1f} | {v['primitive']} |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--resolutions", nargs="+", type=int, default=[256, 512, 1024])
    p.add_argument("--frames", type=int, default=10)
    p.add_argument("--before", metavar="REV", help="also time this git revision (e.g. a commit before a change)")
    p.add_argument("--after", metavar="REV", help="time this revision instead of the working tree (so edits made "
                   "while the benchmark runs do not leak into it)")
    p.add_argument("--child", metavar="REPO", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        print(json.dumps(measure(Path(a.child), a.resolutions, a.frames)))
        return 0

    print(f"# before: {_uptime()}")
    results: dict[str, dict[int, dict]] = {"after": {}}
    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryDirectory() as tmp_after:
        old = _export(a.before, Path(tmp)) if a.before else None
        new = _export(a.after, Path(tmp_after)) if a.after else REPO
        if old is not None:
            results["before"] = {}
        for res in a.resolutions:  # alternate per resolution so both see similar load
            if old is not None:
                results["before"][res] = _child(old, [res], a.frames)[0]
            results["after"][res] = _child(new, [res], a.frames)[0]
    print(f"# after:  {_uptime()}")
    any_row = next(iter(results["after"].values()))
    print(f"# demo model, {any_row['gaussians']} Gaussians, seed 0, psi 0.7, frontal; {any_row['renderer']}")
    print(f"# median of {a.frames} frames; ms per frame; split = sort / project / raster / readback (wall ms)")
    print()
    print("| checkout | res | render() wall | CPU | split | primitive | rgb-only wall | CPU | split | primitive |")
    print("|---|---:|---:|---:|---|---|---:|---:|---|---|")
    for label in ("before", "after") if a.before else ("after",):
        name = f"before ({a.before})" if label == "before" else (f"after ({a.after})" if a.after else "working tree")
        for res in a.resolutions:
            row = results[label][res]
            print(f"| {name} | {res} " + _cell(row.get("render"))[:-1] + _cell(row.get("rgb-only")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
