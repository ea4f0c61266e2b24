"""Benchmark: milliseconds per frame of each rasterizer on a synthetic head at the frontal camera.

    python bench/render.py                      # every available backend x {50k, 235k} x {512, 1024}
    python bench/render.py --quick              # 50k @ 512 only
    python bench/render.py --backends torch --sizes 50000 235000 --resolutions 512

The head is ``synthetic_head``: points on an ellipsoid about 0.6 units tall, scales ~exp(-5), opacities ~0.9,
235k Gaussians like a released GGHead model. Colours are precomputed (SH is not part of the timing); each
cell times the backend's low-level ``rasterize_*`` call (median and best of ``--repeats`` after one warm-up
frame). gsplat runs on CUDA and includes a device synchronize; OpenGL also shows its own split (upload /
sort / raster / readback, milliseconds) when the backend exposes it. A torch cell whose warm-up frame takes
longer than ``--budget`` seconds is timed once and the larger cells of that backend are skipped (say so in
the table rather than wait minutes).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
# libgomp's default busy-wait makes every parallel torch op stall when the 2 cores are shared (measured 5-20x
# slower at load average 4-8); passive waiting costs nothing when the machine is idle. Must precede `import torch`.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from gghead_core.camera import frontal_camera  # noqa: E402
from gghead_core.render import FRONTAL_SH_CENTER, backend_status  # noqa: E402
from gghead_core.render._sh import sh_to_colors  # noqa: E402
from gghead_core.render._synthetic import synthetic_head  # noqa: E402


def _rasterizer(name: str):
    if name == "torch":
        from gghead_core.render._torch_ref import rasterize_torch

        return rasterize_torch
    if name == "gsplat":
        from gghead_core.render._gsplat import rasterize_gsplat

        return rasterize_gsplat
    from gghead_core.render._opengl import rasterize_opengl

    return rasterize_opengl


def _split(name: str) -> str:
    if name != "opengl":
        return ""
    try:
        from gghead_core.render._opengl import default_rasterizer

        t = default_rasterizer().last_timings_ms
    except Exception:
        return ""
    keys = [k for k in ("upload", "sort", "raster", "readback") if k in t]
    return " / ".join(f"{k} {t[k]:.1f}" for k in keys)


def time_cell(name: str, n: int, res: int, repeats: int, budget_s: float, heads: dict) -> dict:
    device = "cuda" if name == "gsplat" else "cpu"
    if n not in heads:
        heads[n] = synthetic_head(n, seed=0)
    g = heads[n]
    cam = frontal_camera()
    colors = sh_to_colors(g.means[0], g.sh[0], torch.tensor(FRONTAL_SH_CENTER))
    args = [g.means[0], g.quats[0], g.scales[0], g.opacities[0], colors]
    args = [a.to(device) for a in args]
    viewmat = torch.tensor(cam.world2cam(), dtype=torch.float32, device=device)
    K = torch.tensor(cam.intrinsics_pixels(res), dtype=torch.float32, device=device)
    bg = torch.ones(3, device=device)
    fn = _rasterizer(name)

    def frame() -> float:
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = fn(*args, viewmat, K, res, res, bg)
        if device == "cuda":
            torch.cuda.synchronize()
        elapsed = (time.perf_counter() - t0) * 1e3
        assert out[0].shape == (res, res, 3)
        return elapsed

    warm = frame()
    times = [warm] if warm > budget_s * 1e3 else [frame() for _ in range(repeats)]
    row = {"median": statistics.median(times), "best": min(times), "runs": len(times), "split": _split(name)}
    if device == "cuda":  # what a viewer also pays: copying the frame to host memory
        out = fn(*args, viewmat, K, res, res, bg)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        out[0].cpu()
        row["split"] = f"readback {(time.perf_counter() - t0) * 1e3:.2f}"
    row["slow"] = warm > budget_s * 1e3
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backends", nargs="+", choices=["torch", "gsplat", "opengl"], default=None,
                   help="default: every available backend")
    p.add_argument("--sizes", nargs="+", type=int, default=[50_000, 235_000], help="Gaussians per head")
    p.add_argument("--resolutions", nargs="+", type=int, default=[512, 1024])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--budget", type=float, default=20.0,
                   help="seconds; a slower torch frame is timed once and larger torch cells are skipped")
    p.add_argument("--quick", action="store_true", help="50k Gaussians at 512 only")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    a = p.parse_args(argv)
    if a.quick:
        a.sizes, a.resolutions = [50_000], [512]
    if a.threads:
        torch.set_num_threads(a.threads)

    names = a.backends or ["gsplat", "opengl", "torch"]
    usable = []
    for name in names:
        ok, why = backend_status(name)
        print(f"# {name}: {'available' if ok else 'unavailable'} - {why}")
        if ok:
            usable.append(name)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}), GPU: {gpu}, "
          f"load average {load:.1f}")
    print()
    print("| backend | Gaussians | resolution | ms/frame (median) | best | fps | runs | split (ms) |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    heads: dict = {}
    for name in usable:
        too_slow = False
        for n in sorted(a.sizes):
            for res in sorted(a.resolutions):
                if too_slow:
                    print(f"| {name} | {n:,} | {res} | skipped: a smaller cell exceeded --budget {a.budget:g} s "
                          f"| | | | |", flush=True)
                    continue
                r = time_cell(name, n, res, a.repeats, a.budget, heads)
                fps = 1e3 / r["median"]
                print(f"| {name} | {n:,} | {res} | {r['median']:.1f} | {r['best']:.1f} | {fps:.2f} | {r['runs']} "
                      f"| {r['split']} |", flush=True)
                too_slow = too_slow or (name == "torch" and r["slow"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
