"""Benchmark: milliseconds per mapping + synthesis (z -> Gaussians) for several generator sizes and devices.

    python bench/generator.py [--repeats 5] [--skip-released]

Rows: the released FFHQ size (random weights, ~235k Gaussians), the official fixture size (when ../shared is
present), and the bundled demo model (when present); fp32 on CPU, fp32 and fp16 on CUDA when a GPU is present.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # busy-waiting OpenMP threads distort shared-CPU timings

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gghead_core import Generator, GeneratorConfig, load_generator  # noqa: E402
from gghead_core.checkpoint import DEMO_CHECKPOINT  # noqa: E402

FIXTURE = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "gghead_official_small" / "checkpoint.pkl"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_generator(G: Generator, device: torch.device, fp16: bool, repeats: int) -> tuple[float, float]:
    """Median ms of (mapping, synthesis) for one head, after one warm-up call."""
    G = G.to(device)
    num_fp16_res = 4 if fp16 else None
    z = G.z_from_seed(0)
    mapping_ms, synthesis_ms = [], []
    with torch.inference_mode():
        for i in range(repeats + 1):
            _sync(device)
            t0 = time.perf_counter()
            ws = G.mapping(z, truncation_psi=0.7)
            _sync(device)
            t1 = time.perf_counter()
            G.synthesis(ws, noise_mode="const", num_fp16_res=num_fp16_res)
            _sync(device)
            t2 = time.perf_counter()
            if i:  # first call is warm-up
                mapping_ms.append((t1 - t0) * 1e3)
                synthesis_ms.append((t2 - t1) * 1e3)
    return statistics.median(mapping_ms), statistics.median(synthesis_ms)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-released", action="store_true", help="skip the released-size model (slow on CPU)")
    args = parser.parse_args()

    models: list[tuple[str, Generator]] = []
    if not args.skip_released:
        released = Generator(GeneratorConfig(n_uniform_flame_vertices=485)).eval().requires_grad_(False)
        models.append(("released size (random weights)", released))
    if FIXTURE.is_file():
        models.append(("official fixture (64^2 UV)", load_generator(FIXTURE)))
    if DEMO_CHECKPOINT.is_file():
        models.append(("bundled demo model", load_generator(None)))

    devices = [(torch.device("cpu"), False)]
    if torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True
        devices += [(torch.device("cuda"), False), (torch.device("cuda"), True)]

    cpu_name = f"CPU x{torch.get_num_threads()} threads"
    gpu_name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-"
    print(f"torch {torch.__version__}; {cpu_name}; GPU: {gpu_name}")
    header = f"| {'model':34} | {'Gaussians':>9} | {'UV':>4} | {'device':6} | {'prec':4} | {'mapping ms':>10} | {'synthesis ms':>12} | {'total ms':>9} |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for name, G in models:
        for device, fp16 in devices:
            m_ms, s_ms = time_generator(G, device, fp16, args.repeats)
            print(f"| {name:34} | {G.num_gaussians:>9} | {G.plane_resolution:>4} | {device.type:6} | "
                  f"{'fp16' if fp16 else 'fp32':4} | {m_ms:>10.2f} | {s_ms:>12.1f} | {m_ms + s_ms:>9.1f} |")


if __name__ == "__main__":
    main()
