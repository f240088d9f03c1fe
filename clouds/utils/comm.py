"""torch.distributed helpers that degrade to a single process when no process group is set up.

Every module that needs the rank, the world size or a cross-process reduction goes through
here, so "is a process group initialised?" is answered in one place.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.distributed as dist

__all__ = [
    "all_reduce",
    "barrier",
    "get_rank",
    "get_world_size",
    "is_distributed",
    "is_main_process",
]

_OPS = {"sum": dist.ReduceOp.SUM, "min": dist.ReduceOp.MIN, "max": dist.ReduceOp.MAX}


def is_distributed() -> bool:
    """True when torch.distributed is available and a process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    """Global rank of this process (0 without a process group)."""
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    """Number of processes in the group (1 without a process group)."""
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """True on global rank 0, and always without a process group."""
    return get_rank() == 0


def barrier() -> None:
    """Wait for every process of the group; nothing to wait for without one."""
    if is_distributed():
        dist.barrier()


def all_reduce(tensor: torch.Tensor, op: Literal["sum", "min", "max"] = "sum") -> torch.Tensor:
    """Reduce ``tensor`` in place across processes (a no-op without a process group).

    Under the NCCL backend a CPU tensor is reduced on the current CUDA device and copied back.

    Args:
        tensor: any shape; every process passes the same shape and dtype.
        op: "sum", "min" or "max".

    Returns:
        ``tensor`` itself, now holding the reduction over all processes.
    """
    if op not in _OPS:
        raise ValueError(f"all_reduce: unknown op {op!r}; expected one of {sorted(_OPS)}")
    if not is_distributed():
        return tensor
    if dist.get_backend() == "nccl" and tensor.device.type != "cuda":
        on_device = tensor.to(torch.device("cuda", torch.cuda.current_device()))
        dist.all_reduce(on_device, op=_OPS[op])
        tensor.copy_(on_device.cpu())
        return tensor
    dist.all_reduce(tensor, op=_OPS[op])
    return tensor
