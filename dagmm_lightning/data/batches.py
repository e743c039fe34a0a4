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


class InMemoryBatches:
    """Batches ``(x (B, F) float32, y (B,) long with -1 for unknown, row index (B,) long)``."""

    def __init__(
        self, x: torch.Tensor, y: torch.Tensor, index: torch.Tensor, batch_size: int, shuffle: bool, seed: int = 0
    ) -> None:
        if batch_size < 1:
            raise ConfigurationError(f"batch_size must be >= 1, got {batch_size}")
        if not (len(x) == len(y) == len(index)):
            raise DataError("x, y and index must have the same number of rows")
        self.x, self.y, self.index = x, y, index
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.sampler = EpochOrder(seed)
        self.batch_sampler = None  # Lightning inspects both attributes of anything it iterates

    def _local_rows(self) -> torch.Tensor | None:
        """Row positions this rank serves this epoch; None means all rows in order (no copy)."""
        n, ranks, me = len(self.x), world_size(), rank()
        if self.shuffle:
            order = self.sampler.permutation(n)
            if ranks == 1:
                return order
            per_rank = math.ceil(n / ranks)
            order = order.repeat(math.ceil(per_rank * ranks / max(n, 1)))[: per_rank * ranks]
            return order[me::ranks]
        if ranks == 1:
            return None
        per_rank = math.ceil(n / ranks)
        return torch.arange(me * per_rank, min(n, (me + 1) * per_rank))

    def __len__(self) -> int:
        n, ranks = len(self.x), world_size()
        if self.shuffle:
            n = math.ceil(n / ranks)
        elif ranks > 1:
            per_rank = math.ceil(n / ranks)
            n = max(0, min(n, (rank() + 1) * per_rank) - rank() * per_rank)
        return math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        rows = self._local_rows()
        n = len(self.x) if rows is None else len(rows)
        for start in range(0, n, self.batch_size):
            if rows is None:
                part = slice(start, start + self.batch_size)
            else:
                part = rows[start : start + self.batch_size]
            yield self.x[part], self.y[part], self.index[part]
