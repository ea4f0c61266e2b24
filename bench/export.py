"""Seconds for a 96-frame turntable (the official sample script's trajectory) at 512x512 and 1024x1024.

Runs the same job the CLI runs (``gghead_core.jobs.TurntableJob`` on the official circle path: one generator call, 96 renders, H.264
encode through imageio-ffmpeg, atomic write + recipe) and splits the time into generation, rendering and the
rest (uint8 conversion, encoding, writing). Uses the bundled demo model, or the official-format fixture when
the demo is absent (the table says which).

    python bench/export.py                       # 512 and 1024, 96 frames, backend auto
    python bench/export.py --backend torch --frames 8 --resolutions 512   # quick look; s/frame extrapolates
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402

from gghead_core import jobs, load_generator  # noqa: E402
from gghead_core.checkpoint import DEMO_CHECKPOINT  # noqa: E402
from gghead_core.pipeline import LatentSpec, RenderSettings, generate  # noqa: E402

FIXTURE = REPO_ROOT.parent / "shared" / "fixtures" / "gghead_official_small" / "checkpoint.pkl"


def pick_checkpoint(path: str | None) -> tuple[Path, str]:
    if path:
        return Path(path), "given"
    if DEMO_CHECKPOINT.is_file():
        return DEMO_CHECKPOINT, "demo model"
    if FIXTURE.is_file():
        return FIXTURE, "fixture (demo model absent)"
    raise SystemExit("no checkpoint: neither checkpoints/demo.safetensors nor the shared fixture exists; pass --ckpt")


def bench_one(G, resolution: int, frames: int, backend: str, seed: int) -> dict:
    from gghead_core.render import render

    render_s = 0.0
    used = {"backend": None}

    def timed_render(*args, **kwargs):
        nonlocal render_s
        t = time.perf_counter()
        res = render(*args, **kwargs)
        if res.image.is_cuda:
            torch.cuda.synchronize()
        render_s += time.perf_counter() - t
        used["backend"] = getattr(res, "backend", None)
        return res

    job = jobs.TurntableJob(latent=LatentSpec(seed=seed), frames=frames, path="circle",
                            settings=RenderSettings(resolution=resolution, backend=backend))
    t = time.perf_counter()
    generate(G, job.latent)  # warm-up + the generation time on its own
    if str(G.device).startswith("cuda"):
        torch.cuda.synchronize()
    gen_s = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        result = jobs.run_job(G, job, Path(tmp) / "turntable.mp4", render_fn=timed_render)
        size_mb = (Path(tmp) / "turntable.mp4").stat().st_size / 1e6
    total = result.seconds
    return {
        "resolution": resolution,
        "frames": frames,
        "backend": used["backend"] or backend,
        "generate_s": gen_s,
        "render_s": render_s,
        "other_s": max(total - render_s - gen_s, 0.0),
        "total_s": total,
        "per_frame_s": render_s / frames,
        "est_96_s": gen_s + (total - gen_s) * 96 / frames,
        "mp4_mb": size_mb,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", default=None)
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--backend", default="auto", choices=("auto", "gsplat", "opengl", "torch"))
    ap.add_argument("--resolutions", default="512,1024")
    ap.add_argument("--frames", type=int, default=96)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    path, what = pick_checkpoint(args.ckpt)
    G = load_generator(path, device=device)
    gpu = torch.cuda.get_device_name(0) if device == "cuda" else "none"
    print(f"checkpoint: {path} ({what}), {G.num_gaussians:,} Gaussians; device {device}; GPU {gpu}; "
          f"torch threads {torch.get_num_threads()}")
    rows = [bench_one(G, int(r), args.frames, args.backend, args.seed) for r in args.resolutions.split(",")]
    header = ("resolution", "frames", "backend", "generate s", "render s", "encode+write s", "total s",
              "render s/frame", "est. 96 frames s", "mp4 MB")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        print(f"| {r['resolution']} | {r['frames']} | {r['backend']} | {r['generate_s']:.2f} | {r['render_s']:.1f} | "
              f"{r['other_s']:.2f} | {r['total_s']:.1f} | {r['per_frame_s']:.3f} | {r['est_96_s']:.0f} | "
              f"{r['mp4_mb']:.2f} |")


if __name__ == "__main__":
    main()
