"""`main.py sample` on CUDA: nccl process group, one GPU per rank, the same files for 1 and N processes.

CUDA only: skipped on machines without a CUDA GPU (the CPU/gloo tests are in test_sample_dataset.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

if not torch.cuda.is_available():
    pytest.skip("needs a CUDA GPU (nccl sharding of main.py sample)", allow_module_level=True)

from conftest import REPO_ROOT  # noqa: E402

ARGS = ["main.py", "-q", "sample", "--seeds", "0-5", "--views", "2", "--resolution", "64", "--batch", "2",
        "--device", "cuda", "--alpha", "--ply", "--transforms"]


def _run(out: Path, nproc: int, backend: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, *(["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)]
                             if nproc > 1 else []), *ARGS, "--backend", backend, "--out", str(out)]
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", OMP_NUM_THREADS="1", PYTHONPATH=str(REPO_ROOT))
    return subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("backend", ["torch", "gsplat"])
def test_nccl_processes_write_the_same_files_as_one(tmp_path, backend) -> None:
    nproc = 2  # nccl with 2+ GPUs; with one GPU both ranks share it over gloo (nccl refuses that)
    one = _run(tmp_path / "one", 1, backend)
    assert one.returncode == 0, one.stderr[-2000:]
    many = _run(tmp_path / "many", nproc, backend)
    assert many.returncode == 0, many.stderr[-2000:]
    ref, got = _files(tmp_path / "one"), _files(tmp_path / "many")
    assert sorted(ref) == sorted(got)
    differing = [k for k in ref if ref[k] != got[k]]
    assert differing == [], differing[:5]
    labels = json.loads((tmp_path / "many" / "dataset.json").read_text())["labels"]
    assert len(labels) == 12
