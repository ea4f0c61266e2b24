"""Heads per second of ``main.py sample`` for 1 and 2 processes (torchrun, gloo) on this CPU, plus CUDA rows
(nccl, one process per GPU) when a GPU is present.

Each row runs the real command in a fresh folder (demo model, 4 views at 256 px by default) and reads the
summary line it prints: heads/s over the generation loop (model loading and process start-up excluded; the
wall column includes them). The load average before and after is printed with the table, since other jobs on
the machine change the numbers.

    xvfb-run -a python bench/sample.py                       # 8 heads, 4 views at 256, backend auto
    python bench/sample.py --heads 16 --backend torch --batch 4
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SUMMARY = re.compile(r"(\d+) heads in ([\d.]+) s = ([\d.]+) heads/s on (\d+) process\w*(?:, backend (\w+))?")


def load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def run_row(nproc: int, device: str, args: argparse.Namespace, out: Path) -> dict:
    cmd = ["main.py", "sample", "--seeds", f"0-{args.heads - 1}", "--views", str(args.views), "--resolution",
           str(args.resolution), "--backend", args.backend, "--batch", str(args.batch), "--device", device,
           "--cameras", "random", "--out", str(out)]
    if nproc > 1:
        cmd = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc), *cmd]
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", PYTHONPATH=str(REPO_ROOT))
    t = time.perf_counter()
    r = subprocess.run([sys.executable, *cmd], cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    m = SUMMARY.search(r.stdout)
    if r.returncode != 0 or m is None:
        tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["?"]
        return {"nproc": nproc, "device": device, "error": tail[0][:120]}
    return {"nproc": nproc, "device": device, "heads": int(m.group(1)), "loop_s": float(m.group(2)),
            "heads_s": float(m.group(3)), "backend": m.group(5) or "?", "wall_s": wall}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--views", type=int, default=4)
    p.add_argument("--resolution", type=int, default=256)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--backend", default="auto")
    p.add_argument("--procs", default="1,2", help="CPU process counts (default 1,2)")
    args = p.parse_args()

    import torch

    rows = []
    print(f"load before: {load()}  (cores: {os.cpu_count()}, torch {torch.__version__})", flush=True)
    with tempfile.TemporaryDirectory(prefix="gghead-bench-sample-") as tmp:
        plan = [(int(n), "cpu") for n in args.procs.split(",")]
        if torch.cuda.is_available():
            gpus = torch.cuda.device_count()
            plan += [(n, "cuda") for n in sorted({1, gpus})]
        for i, (nproc, device) in enumerate(plan):
            rows.append(run_row(nproc, device, args, Path(tmp) / f"run{i}"))
            print(f"  done: {rows[-1]}", flush=True)
    print(f"load after: {load()}")
    print()
    print(f"demo model, {args.heads} heads x {args.views} views at {args.resolution} px, batch {args.batch}, "
          f"backend {args.backend}")
    print("| processes | device | backend | heads/s (loop) | loop s | wall s (incl. start-up) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        if "error" in r:
            print(f"| {r['nproc']} | {r['device']} | - | failed: {r['error']} | - | - |")
        else:
            print(f"| {r['nproc']} | {r['device']} | {r['backend']} | {r['heads_s']:.3f} | {r['loop_s']:.1f} | "
                  f"{r['wall_s']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
