"""Benchmark: seconds to compute a model's latent directions (PCA of W) and to fill one seed-browser page.

    python bench/directions.py [--samples 20000] [--thumb 128] [--backend auto] [--skip-released]

Rows per device (CPU always; CUDA when a GPU is present):
* directions: mapping ``--samples`` latents in batches of 1000 + float64 covariance + eigh (what the viewer's
  "Compute directions" button and ``main.py directions`` run; nothing is cached here);
* one page: 16 thumbnails at ``--thumb`` px made as the seed browser makes them (one head per call, then the
  renderer), with the main render worker idle.
Models: the bundled demo model, the official fixture size (when ../shared is present) and the released size
with random weights (512-d W, 8 mapping layers: the directions row that matters for real checkpoints).
The machine's load average is printed with the table: on shared machines the numbers move with it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # busy-waiting OpenMP threads distort shared-CPU timings

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.thumbnails import PAGE_SIZE, ThumbnailWorker, thumb_key  # noqa: E402
from gghead_core import Generator, GeneratorConfig, load_generator  # noqa: E402
from gghead_core import directions as dirs  # noqa: E402
from gghead_core.camera import CameraSpec  # noqa: E402
from gghead_core.checkpoint import DEMO_CHECKPOINT  # noqa: E402
from gghead_core.pipeline import LatentSpec, RenderSettings  # noqa: E402

FIXTURE = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "gghead_official_small" / "checkpoint.pkl"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def time_directions(G, samples: int) -> float:
    device = torch.device(G.device)
    _sync(device)
    t0 = time.perf_counter()
    ds = dirs.compute_directions(G, samples)
    _sync(device)
    assert ds.num_components > 0
    return time.perf_counter() - t0


def time_page(G, size: int, backend: str) -> tuple[float, str]:
    """Seconds for one page of thumbnails (16 seeds), made by the seed browser's own code path."""
    worker = ThumbnailWorker(busy=lambda: False)
    try:
        settings = RenderSettings(resolution=512, backend=backend)  # type: ignore[arg-type]  # checked when made
        keys = [thumb_key(s, LatentSpec(psi=0.7), CameraSpec(), settings, size) for s in range(1000, 1000 + PAGE_SIZE)]
        worker.make(G, thumb_key(0, LatentSpec(), CameraSpec(), settings, size))  # warm-up (renderer set-up)
        _sync(torch.device(G.device))
        t0 = time.perf_counter()
        for k in keys:
            worker.make(G, k)
        _sync(torch.device(G.device))
        from gghead_core.render import resolve_backend

        picked = resolve_backend(backend)
        name = picked[0] if isinstance(picked, tuple) else getattr(picked, "name", str(picked))
        return time.perf_counter() - t0, str(name)
    finally:
        worker.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=dirs.DEFAULT_SAMPLES)
    parser.add_argument("--thumb", type=int, default=128, help="thumbnail size in pixels (a multiple of 16)")
    parser.add_argument("--backend", default="auto", help="renderer for the thumbnails (auto, opengl, torch, gsplat)")
    parser.add_argument("--skip-released", action="store_true", help="skip the released-size model (slow on CPU)")
    args = parser.parse_args()

    models: list[tuple[str, Generator]] = []
    if DEMO_CHECKPOINT.is_file():
        models.append(("bundled demo model", load_generator(None)))
    if FIXTURE.is_file():
        models.append(("official fixture", load_generator(FIXTURE)))
    if not args.skip_released:
        released = Generator(GeneratorConfig(n_uniform_flame_vertices=485)).eval().requires_grad_(False)
        models.append(("released size (random weights)", released))
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    print(f"torch {torch.__version__}; CPU x{torch.get_num_threads()} threads; GPU: {gpu}; "
          f"load average before: {load_average()}")
    header = (f"| {'model':30} | {'w_dim':>5} | {'device':6} | {'directions s':>12} | {'samples':>7} | "
              f"{'page of 16 s':>12} | {'thumb':>5} | {'renderer':8} |")
    print(header)
    print("|" + "|".join("-" * len(c) for c in header.split("|")[1:-1]) + "|")
    for name, G in models:
        for device in devices:
            G = G.to(device)
            d_s = time_directions(G, args.samples)
            p_s, used = time_page(G, args.thumb, args.backend)
            print(f"| {name:30} | {G.w_dim:>5} | {device.type:6} | {d_s:>12.2f} | {args.samples:>7} | "
                  f"{p_s:>12.2f} | {args.thumb:>5} | {used:8} |", flush=True)
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()
