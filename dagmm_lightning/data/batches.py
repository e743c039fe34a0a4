"""Whole batches sliced out of in-memory tensors, sharded across DDP ranks by us.

A per-row ``Dataset.__getitem__`` with collation costs more than the tiny DAGMM networks; indexing a
batch out of one tensor does not. Lightning injects its distributed sampler only into ``DataLoader``s,
so this plain iterable shards rows itself:

* training (``shuffle=True``): one permutation per epoch, seeded by (seed, epoch), identical on every
  rank; padded by wrapping to a multiple of the world size so all ranks run the same number of steps;
* evaluation (``shuffle=False``): contiguous, unpadded shards, so every row is scored exactly once.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch

from dagmm_lightning.distributed import rank, world_size
from dagmm_lightning.errors import ConfigurationError, DataError


class EpochOrder:
    """Row order of each epoch; Lightning calls ``set_epoch`` on ``.sampler`` before every epoch."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def permutation(self, n: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return torch.randperm(n, generator=generator)


def batch_bounds(n: int, batch_size: int, shuffle: bool, min_batch_size: int = 32) -> list[tuple[int, int]]:
    """(start, stop) of each batch of ``n`` rows; in training (``shuffle``) a short tail joins the batch
    before it (see ``InMemoryBatches``)."""
    starts = list(range(0, n, batch_size))
    if shuffle and len(starts) > 1 and n - starts[-1] < min(min_batch_size, batch_size):
        starts.pop()  # the short tail joins the batch before it
    return list(zip(starts, [*starts[1:], n][: len(starts)], strict=True))


class InMemoryBatches:
    """Batches ``(x (B, F) float32, y (B,) long with -1 for unknown, row index (B,) long)``.

    Training (``shuffle=True``): a training batch of a handful of rows makes its covariance little more
    than the jitter (the penalty then spikes), so an epoch's tail shorter than both ``min_batch_size`` and
    ``batch_size`` joins the batch before it. Evaluation with ``pad_ranks``: a rank left without rows (fewer rows than
    ranks) serves the last row again, so that every rank runs the loop and its collectives; metrics and
    predictions count each row id once.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        index: torch.Tensor,
        batch_size: int,
        shuffle: bool,
        seed: int = 0,
        pad_ranks: bool = False,
        min_batch_size: int = 32,
    ) -> None:
        if batch_size < 1:
            raise ConfigurationError(f"batch_size must be >= 1, got {batch_size}")
        if not (len(x) == len(y) == len(index)):
            raise DataError("x, y and index must have the same number of rows")
        self.x, self.y, self.index = x, y, index
        self.batch_size, self.shuffle, self.pad_ranks, self.min_batch_size = (
            batch_size,
            shuffle,
            pad_ranks,
            min_batch_size,
        )
        self.sampler = EpochOrder(seed)
        self.batch_sampler = None  # Lightning inspects both attributes of anything it iterates
        self._served = (0, 0)  # (epoch, batches) the latest iterator has yielded
        self._resume: tuple[int, int] | None = None  # (epoch, batches) a checkpoint had served

    def state_dict(self) -> dict[str, int]:
        """What a checkpoint keeps of the training order: the epoch and the batches served in it (Lightning
        fetches no batch ahead of a loader with a length), so that a fit resumed within an epoch goes on
        with that epoch's next batch instead of starting its order again."""
        epoch, batches = self._resume or self._served
        return {"epoch": epoch, "batches": batches}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._resume = (int(state["epoch"]), int(state["batches"]))

    def ordered_pass(self) -> InMemoryBatches:
        """The same rows once, in order, sharded across ranks without padding, with a position of its own:
        a refit's pass over the training rows leaves this loader's place in the epoch as it was."""
        return InMemoryBatches(self.x, self.y, self.index, self.batch_size, shuffle=False)

    def _shard(self) -> range:
        """Positions (in this epoch's order) that this rank serves."""
        n, ranks, me = len(self.x), world_size(), rank()
        if ranks == 1:
            return range(n)
        per_rank = math.ceil(n / ranks)
        if self.shuffle:  # padded by wrapping: every rank runs the same number of steps
            return range(me, per_rank * ranks, ranks)
        shard = range(me * per_rank, min(n, (me + 1) * per_rank))
        return range(n - 1, n) if len(shard) == 0 and self.pad_ranks and n > 0 else shard

    def _bounds(self, n: int) -> list[tuple[int, int]]:
        return batch_bounds(n, self.batch_size, self.shuffle, self.min_batch_size)

    def __len__(self) -> int:
        return len(self._bounds(len(self._shard())))

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        n, shard = len(self.x), self._shard()
        if self.shuffle:
            order = self.sampler.permutation(n)
            rows = order.repeat(math.ceil(len(shard) * world_size() / max(n, 1)) or 1)[
                shard.start : shard.stop : shard.step
            ]
        elif shard == range(n):
            rows = None  # all rows in order: slices, no copies
        else:
            rows = torch.arange(shard.start, shard.stop)
        tensors = (self.x, self.y, self.index)
        bounds = self._bounds(len(shard))
        resume, self._resume, epoch = self._resume, None, self.sampler.epoch
        skip = resume[1] if resume is not None and resume[0] == epoch else 0
        for number, (start, stop) in enumerate(bounds[skip:], skip + 1):
            self._served = (epoch, number)
            if rows is None:
                yield tuple(t[start:stop] for t in tensors)
            else:
                yield tuple(_take(t, rows[start:stop]) for t in tensors)


def _take(rows_of, positions: torch.Tensor):
    """rows_of[positions]: for a tensor by ``index_select``, a third of the time of advanced indexing for a
    batch of 1,024 rows of 118 floats (0.1 against 0.3 ms); anything else (``DiskRows``) by its indexing."""
    return torch.index_select(rows_of, 0, positions) if isinstance(rows_of, torch.Tensor) else rows_of[positions]
