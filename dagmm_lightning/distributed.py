"""Collective operations that are no-ops in a single process.

Mixture statistics are reduced by torchmetrics (``SufficientStatistics``); what is left here: the VQ-VAE
codebook's counts (summed outside the gradient all-reduce), rank 0's restarts, and gathering rows of
unequal length from every rank; and the process group's end at exit.
"""

from __future__ import annotations

import atexit

import torch
import torch.distributed as dist
from torchmetrics.utilities.distributed import gather_all_tensors


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


_destroy_registered = False


def destroy_process_group_at_exit() -> None:
    """Have this process destroy its process group at exit (once; nothing where none is initialized).

    Lightning does so for NCCL only. A gloo group left to the interpreter's teardown now and then aborts
    the process after its work has finished ('terminate called without an active exception', SIGABRT):
    a ``ddp_spawn`` fit that trained well then fails on a worker's exit code.
    """
    global _destroy_registered
    if not _destroy_registered and dist.is_available() and dist.is_initialized():
        atexit.register(_destroy_process_group)
        _destroy_registered = True


def _destroy_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over all processes (in place, returned for chaining)."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def broadcast_from_rank_zero(tensor: torch.Tensor) -> torch.Tensor:
    """Overwrite ``tensor`` on every rank with rank 0's values (in place)."""
    if is_distributed():
        dist.broadcast(tensor, src=0)
    return tensor


def gather_rows(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` (N_r, ...) of every rank concatenated in rank order (torchmetrics pads uneven N_r)."""
    return torch.cat(gather_all_tensors(tensor)) if is_distributed() else tensor
