"""Rows of a CSV or Parquet file too large for memory, read in chunks (pyarrow) for ``predict``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import torch
from pyarrow import csv, parquet

from dagmm_lightning.data.loaders import anomaly_labels
from dagmm_lightning.data.tables import TablePreprocessor
from dagmm_lightning.distributed import rank, world_size
from dagmm_lightning.errors import DataError

STREAMED_SUFFIXES = (".csv", ".parquet", ".pq")


class FileRows:
    """Batches ``(x (B, F) float32, y (B,) long, -1 where unlabelled, row number (B,) long)`` of a CSV or
    Parquet file, encoded and scaled by a fitted ``preprocessor``, read ``chunk_rows`` at a time: memory
    is bounded by the chunk, whatever the file's length. Under DDP each rank takes every world-size-th
    chunk. ``label_column``: read as the truth where the file has it.
    """

    def __init__(
        self,
        path: str | Path,
        preprocessor: TablePreprocessor,
        label_column: str | None,
        batch_size: int,
        chunk_rows: int = 65536,
    ) -> None:
        self.path, self.preprocessor, self.label_column = Path(path), preprocessor, label_column
        self.batch_size, self.chunk_rows = batch_size, chunk_rows
        if not self.path.is_file():
            raise DataError(f"no such file: {self.path}")

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        first_row, ranks, me = 0, world_size(), rank()
        for number, frame in enumerate(self._frames()):
            if number % ranks == me:
                labels = np.full(len(frame), -1, dtype=np.int64)
                if self.label_column is not None and self.label_column in frame.columns:
                    labels = anomaly_labels(frame.pop(self.label_column), self.label_column).astype(np.int64)
                try:
                    x = torch.from_numpy(self.preprocessor.scale(self.preprocessor.encode(frame)))
                except DataError as err:
                    raise DataError(f"{self.path}, rows from {first_row}: {err}") from None
                rows = torch.arange(first_row, first_row + len(frame))
                yield from zip(
                    x.split(self.batch_size),
                    torch.from_numpy(labels).split(self.batch_size),
                    rows.split(self.batch_size),
                    strict=True,
                )
            first_row += len(frame)

    def _frames(self) -> Iterator[pd.DataFrame]:
        numeric = dict.fromkeys(self.preprocessor.numeric, pa.float64())
        text = dict.fromkeys(
            [*self.preprocessor.categories, *([self.label_column] if self.label_column else [])], pa.string()
        )
        try:
            if self.path.suffix == ".csv":
                options = csv.ConvertOptions(column_types={**numeric, **text})
                read = csv.ReadOptions(block_size=1 << 22)
                batches = csv.open_csv(self.path, read_options=read, convert_options=options)
            else:
                batches = row_group_batches(parquet.ParquetFile(self.path), self.chunk_rows)
            pending = None
            for batch in batches:
                frame = batch.to_pandas()
                pending = frame if pending is None else pd.concat([pending, frame], ignore_index=True)
                while len(pending) >= self.chunk_rows:
                    yield pending.iloc[: self.chunk_rows].reset_index(drop=True)
                    pending = pending.iloc[self.chunk_rows :]
            if pending is not None and len(pending):
                yield pending.reset_index(drop=True)
        except (pa.ArrowInvalid, OSError) as err:
            raise DataError(f"{self.path}: {str(err).splitlines()[0]}") from None


def row_group_batches(reader: parquet.ParquetFile, rows: int) -> Iterator[pa.RecordBatch]:
    """A Parquet file's record batches of at most ``rows`` rows, one row group in memory at a time
    (``iter_batches`` kept the decoded buffers of earlier row groups alive: memory grew with the file)."""
    for group in range(reader.num_row_groups):
        yield from reader.read_row_group(group).to_batches(max_chunksize=rows)
