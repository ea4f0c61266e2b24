"""Benchmark: milliseconds per mapping + synthesis (z -> Gaussians) for several generator sizes and devices.

    python bench/generator.py [--repeats 5] [--skip-released] [--precisions fp32 bf16]

Rows: the released FFHQ size (random weights, ~235k Gaussians), the official fixture size (when ../shared is
present), and the bundled demo model (when present); each precision (``Generator.synthesis(precision=...)``)
on the CPU, and on CUDA when a GPU is present. Runs under ``torch.no_grad()`` like the viewer (not
inference_mode), with the app's cuDNN settings (no ``cudnn.benchmark``); CUDA fp32 is true fp32 (the generator
turns TF32 off). Columns: wall-clock median, and on the CPU the process CPU time per call divided by the
thread count, a steadier figure when other processes share the cores. The load average is printed: quote it.
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


def time_generator(G: Generator, device: torch.device, precision: str, repeats: int) -> tuple[float, float, float]:
    """Median ms of (mapping, synthesis, CPU time of synthesis per thread) for one head, after a warm-up call."""
    G = G.to(device)
    z = G.z_from_seed(0)
    mapping_ms, synthesis_ms, cpu_ms = [], [], []
    with torch.no_grad():
        for i in range(repeats + 1):
            _sync(device)
            t0 = time.perf_counter()
            ws = G.mapping(z, truncation_psi=0.7)
            _sync(device)
            t1 = time.perf_counter()
            c1 = time.process_time()
            G.synthesis(ws, noise_mode="const", precision=precision)
            _sync(device)
            t2 = time.perf_counter()
            c2 = time.process_time()
            if i:  # first call is warm-up
                mapping_ms.append((t1 - t0) * 1e3)
                synthesis_ms.append((t2 - t1) * 1e3)
                cpu_ms.append((c2 - c1) * 1e3 / torch.get_num_threads())
    return statistics.median(mapping_ms), statistics.median(synthesis_ms), statistics.median(cpu_ms)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-released", action="store_true", help="skip the released-size model (slow on CPU)")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "fp16", "bf16"],
                        help="CPU precisions (CUDA always runs fp32, fp16, bf16)")
    parser.add_argument("--only", choices=["released", "fixture", "demo"], default=None, help="one model only")
    args = parser.parse_args()

    models: list[tuple[str, Generator]] = []
    if not args.skip_released and args.only in (None, "released"):
        torch.manual_seed(0)
        released = Generator(GeneratorConfig(n_uniform_flame_vertices=485)).eval().requires_grad_(False)
        models.append(("released size (random weights)", released))
    if FIXTURE.is_file() and args.only in (None, "fixture"):
        models.append(("official fixture (64^2 UV)", load_generator(FIXTURE)))
    if DEMO_CHECKPOINT.is_file() and args.only in (None, "demo"):
        models.append(("bundled demo model", load_generator(None)))

    devices = [(torch.device("cpu"), p) for p in args.precisions]
    if torch.cuda.is_available():
        devices += [(torch.device("cuda"), p) for p in ("fp32", "fp16", "bf16")]

    cpu_name = f"CPU x{torch.get_num_threads()} threads"
    gpu_name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-"
    print(f"torch {torch.__version__}; {cpu_name}; GPU: {gpu_name}; load average {os.getloadavg()[0]:.2f}")
    header = (f"| {'model':34} | {'Gaussians':>9} | {'UV':>4} | {'device':6} | {'prec':4} | {'mapping ms':>10} | "
              f"{'synthesis ms':>12} | {'total ms':>9} | {'CPU ms/thread':>13} |")
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for name, G in models:
        for device, precision in devices:
            m_ms, s_ms, c_ms = time_generator(G, device, precision, args.repeats)
            cpu_col = f"{c_ms:>13.1f}" if device.type == "cpu" else f"{'-':>13}"
            print(f"| {name:34} | {G.num_gaussians:>9} | {G.plane_resolution:>4} | {device.type:6} | "
                  f"{precision:4} | {m_ms:>10.2f} | {s_ms:>12.1f} | {m_ms + s_ms:>9.1f} | {cpu_col} |", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
