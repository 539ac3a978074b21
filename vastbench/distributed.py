"""torchrun helpers: process group set-up, sharding, reductions (DESIGN.md section 10).

``torchrun --nproc_per_node=N -m vastbench run --suite S`` starts N copies of
the CLI with ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and ``MASTER_ADDR/PORT``
set.  :func:`init` joins them into one process group (gloo on CPU, NCCL when
each rank has a GPU); without those variables everything here is a no-op and
the code runs single-process unchanged.

How the runner uses it:

* rank 0 builds the dataset and writes every shared file (run manifest, requests,
  errors, summary, tables, report); the others wait at a barrier and read;
* training jobs that support DDP (the VAST expression model) run on all ranks
  together, the rest on rank 0 while the others wait;
* generation and per-clip metrics take the requests ``r[rank::world]``: each rank
  writes only its own clip files and per-clip metric files, so no two ranks write
  one file;
* set-level metrics (FID) accumulate float64 sufficient statistics per rank; rank 0
  merges them (``SetMetric.merge``) and computes the value, equal to a one-process run.
"""

from __future__ import annotations

import datetime as _dt
import os
from typing import Any, Sequence, TypeVar

T = TypeVar("T")


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_initialized() -> bool:
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return dist.is_available() and dist.is_initialized()


def init(device: str = "cpu", timeout_s: float = 1800.0) -> bool:
    """Join the torchrun process group when launched by torchrun (WORLD_SIZE > 1); True if distributed.

    ``device``: "cuda" picks NCCL and this rank's GPU (``LOCAL_RANK``); anything else gloo.
    """
    if env_world_size() <= 1:
        return False
    if is_initialized():
        return True
    import torch
    import torch.distributed as dist

    backend = "nccl" if device.startswith("cuda") and torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend, timeout=_dt.timedelta(seconds=timeout_s))
    return True


def shutdown() -> None:
    if is_initialized():
        import torch.distributed as dist

        dist.destroy_process_group()


def rank() -> int:
    if not is_initialized():
        return 0
    import torch.distributed as dist

    return dist.get_rank()


def world_size() -> int:
    if not is_initialized():
        return 1
    import torch.distributed as dist

    return dist.get_world_size()


def is_main() -> bool:
    return rank() == 0


def local_device(device: str) -> str:
    """"cuda" -> "cuda:LOCAL_RANK" under torchrun (one GPU per rank); other devices unchanged."""
    if device == "cuda" and is_initialized():
        return f"cuda:{os.environ.get('LOCAL_RANK', '0')}"
    return device


def barrier() -> None:
    if is_initialized():
        import torch.distributed as dist

        dist.barrier()


def shard(items: Sequence[T]) -> list[T]:
    """This rank's share of ``items``: every ``world``-th item starting at ``rank`` (all of them single-process)."""
    return list(items[rank()::world_size()])


def all_gather_object(obj: Any) -> list[Any]:
    """[obj of rank 0, obj of rank 1, ...] on every rank ([obj] single-process)."""
    if not is_initialized():
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank."""
    if not is_initialized():
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]
