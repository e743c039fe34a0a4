"""Collective operations that are no-ops in a single process.

Mixture statistics are reduced by torchmetrics (``SufficientStatistics``); what is left here: the VQ-VAE
codebook's counts (summed outside the gradient all-reduce), rank 0's restarts, and gathering rows of
unequal length from every rank; the process group's end at exit; and what a spawned process is handed.
"""

from __future__ import annotations

import atexit
import os
import pickle
import tempfile
from multiprocessing.reduction import ForkingPickler

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


_HANDED_FILES: set[str] = set()  # files written for spawned processes that have not read them yet
SHARED_ATTRIBUTES = ("trainer",)  # references to objects a spawned process's arguments hold besides


def hand_through_a_file(cls: type) -> None:
    """Have multiprocessing's pickler (the one a ``ddp_spawn`` launch writes each new process's arguments
    with) hand instances of ``cls`` through a temporary file, which that process reads and removes.

    Why: the arguments go through a pipe of 64 kB, and the launching process waits at a full pipe until
    the new process has imported torch and Lightning (seconds) and read it, before it starts the next: with
    a table in the arguments the processes started one after another (a 2-process spawn 5 s later). Each
    process gets a file of its own (the temporary folder holds one copy of the state per process until
    each has read its own). ``SHARED_ATTRIBUTES`` stay in the pipe, so that the trainer stays one object.
    Plain ``pickle`` of ``cls`` is unchanged.
    """
    ForkingPickler.register(cls, _reduce_through_a_file)


def _reduce_through_a_file(obj):
    state = obj.__getstate__() if hasattr(obj, "__getstate__") else None  # (Python 3.10: none by default)
    state = dict(obj.__dict__ if state is None else state)
    shared = {key: state.pop(key) for key in SHARED_ATTRIBUTES if key in state}
    fd, path = tempfile.mkstemp(prefix="dagmm-handed-", suffix=".pickle")
    with os.fdopen(fd, "wb") as file:
        pickle.dump(state, file, protocol=pickle.HIGHEST_PROTOCOL)
    if not _HANDED_FILES:
        atexit.register(_remove_handed_files)  # those of processes that never read theirs
    _HANDED_FILES.add(path)
    return _rebuild_from_a_file, (type(obj), shared, path)


def _rebuild_from_a_file(cls: type, shared: dict, path: str):
    with open(path, "rb") as file:
        state = pickle.load(file)
    os.unlink(path)
    obj = cls.__new__(cls)
    state.update(shared)
    if hasattr(obj, "__setstate__"):
        obj.__setstate__(state)
    else:
        obj.__dict__.update(state)
    return obj


def _remove_handed_files() -> None:
    for path in _HANDED_FILES:
        try:
            os.unlink(path)
        except FileNotFoundError:  # read by its process
            pass
