"""torch.distributed for datasets: start from torchrun's environment, split the work, meet at barriers.

``torchrun`` (``python -m torch.distributed.run``) starts the processes and sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; :func:`init_from_env` joins the process group with nccl
when the generator runs on CUDA (one GPU per local rank) and gloo on CPUs (or when a node runs more processes
than it has GPUs, which nccl does not allow). Without those variables (a plain
``python main.py sample``) there is no process group and every helper here is a no-op for one process.

The split: the seed list is cut into *global* batches of ``--batch`` consecutive seeds, and the batches still
missing are dealt round-robin to the ranks. A head is therefore always synthesised in the same batch, whatever
the number of processes and however often the job was resumed: StyleGAN's convolutions do not give
bit-identical results for different batch compositions, and this keeps the files byte-identical.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

T = TypeVar("T")

DIST_TIMEOUT = _dt.timedelta(minutes=30)  # a rank may spend minutes in one batch of big renders


@dataclass(frozen=True)
class DistContext:
    """Who this process is in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None  # "gloo" | "nccl" | None (single process)

    @property
    def distributed(self) -> bool:
        return self.backend is not None

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_rank() -> int:
    """This process's rank from torchrun's environment (0 without torchrun): usable before any init."""
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def init_from_env(device: str) -> tuple[DistContext, str]:
    """Join the process group torchrun set up; returns the context and the device this rank should use
    (``cuda:LOCAL_RANK`` on GPUs, so each process of a node gets its own GPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "cuda" and torch.cuda.is_available():
        device = f"cuda:{local_rank % max(1, torch.cuda.device_count())}"  # one GPU per process of a node
    if device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.set_device(torch.device(device))
    if world <= 1:
        return DistContext(), device
    import torch.distributed as dist

    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    # nccl refuses two ranks on one GPU; more processes than GPUs on a node fall back to gloo (CPU tensors).
    on_gpus = device.startswith("cuda") and local_world <= torch.cuda.device_count()
    backend = "nccl" if on_gpus else "gloo"
    if not dist.is_initialized():
        kwargs: dict[str, Any] = {"backend": backend, "timeout": DIST_TIMEOUT}
        if backend == "nccl":
            kwargs["device_id"] = torch.device(device)
        dist.init_process_group(**kwargs)
    return DistContext(rank=rank, world_size=world, local_rank=local_rank, backend=backend), device


def shutdown(ctx: DistContext) -> None:
    if ctx.distributed:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        import torch.distributed as dist

        dist.barrier()


def broadcast_object(ctx: DistContext, obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (pickled; small values only: a plan, an error line)."""
    if not ctx.distributed:
        return obj
    import torch.distributed as dist

    box = [obj if ctx.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_reduce_sum(ctx: DistContext, value: int, device: str) -> int:
    """Sum of ``value`` over the ranks (nccl needs the tensor on this rank's GPU)."""
    if not ctx.distributed:
        return int(value)
    import torch.distributed as dist

    t = torch.tensor([int(value)], dtype=torch.int64, device=device if ctx.backend == "nccl" else "cpu")
    dist.all_reduce(t)
    return int(t.item())


def global_batches(seeds: Sequence[int], batch: int) -> list[list[int]]:
    """``seeds`` cut into consecutive batches of ``batch`` (the last may be shorter)."""
    return [list(seeds[i:i + batch]) for i in range(0, len(seeds), batch)]


def deal(items: Sequence[T], rank: int, world_size: int) -> list[T]:
    """Round-robin share of ``items`` for ``rank``: balanced to within one item, every item exactly once."""
    return list(items[rank::world_size])


def rounds(n_items: int, world_size: int) -> int:
    """How many lock-step rounds every rank runs (the same number on every rank, so collectives match)."""
    return -(-n_items // world_size)
