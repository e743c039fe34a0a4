"""Collective operations that are no-ops in a single process.

Lightning's ``strategy.reduce`` averages by default and ``all_gather`` needs equal shapes; mixture
statistics need a *sum* and evaluation scores come in shards of unequal length, so both live here.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over all processes (in place, returned for chaining)."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def gather_uneven(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` (N_r, ...) from every rank along dim 0, in rank order; N_r may differ."""
    if not is_distributed():
        return tensor
    n_local = torch.tensor([tensor.shape[0]], dtype=torch.long, device=tensor.device)
    sizes = [torch.zeros_like(n_local) for _ in range(world_size())]
    dist.all_gather(sizes, n_local)
    sizes = [int(s.item()) for s in sizes]
    padded = tensor.new_zeros((max(sizes), *tensor.shape[1:]))
    padded[: tensor.shape[0]] = tensor
    chunks = [torch.zeros_like(padded) for _ in sizes]
    dist.all_gather(chunks, padded)
    return torch.cat([chunk[:size] for chunk, size in zip(chunks, sizes)])


def broadcast_from_rank_zero(tensor: torch.Tensor) -> torch.Tensor:
    """Overwrite ``tensor`` on every rank with rank 0's values (in place)."""
    if is_distributed():
        dist.broadcast(tensor, src=0)
    return tensor
