"""Write ``predict`` results to a CSV: columns kept from the scored file (ids), source row index, score,
0/1 label at the stored threshold, truth."""

from __future__ import annotations

import bz2
import glob
import gzip
import os
import secrets
import time
from pathlib import Path

import pandas as pd
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities.exceptions import SIGTERMException

from dagmm_lightning.data.datamodule import TABLE
from dagmm_lightning.data.loaders import columns_named
from dagmm_lightning.data.streaming import KeptColumns, column_names
from dagmm_lightning.data.tables import EXACT_CSV_FLOATS
from dagmm_lightning.errors import DataError, make_folder_of, room_to_write, warn
from dagmm_lightning.scoring import flagged_far_above

#: the predictions' file names, by how the CSV is compressed (those the table readers read)
COMPRESSION_OF = {".csv": None, ".csv.gz": "gzip", ".csv.bz2": "bz2"}
COLUMNS = {"index": torch.long, "score": torch.float64, "prediction": torch.long, "label": torch.long}


def compression_of(path: Path) -> str | None:
    """How the predictions' file ``path`` is compressed, by its name (``COMPRESSION_OF``); other names are
    refused (had: plain CSV written under a .csv.gz, .zip or .parquet name)."""
    name = path.name.lower()
    for ending, compression in COMPRESSION_OF.items():
        if name.endswith(ending):
            return compression
    raise DataError(
        f"--prediction_writer.output_path {path}: the predictions are CSV; name a .csv file (.csv.gz or .csv.bz2 "
        "to compress it), or a folder (ending in /) for predictions.csv in it"
    )


def flagged_far_above_message(share: float | None, rows: int, flagged: int) -> str | None:
    """A warning's text where ``flagged`` of ``rows`` is far above the ``share`` of rows the threshold was
    set to flag (about ``contamination`` of rows like the val rows; ``scoring.flagged_far_above``): rows
    unlike the training table's, most often."""
    if not flagged_far_above(share, rows, flagged):
        return None
    return (
        f"{100 * flagged / rows:.3g} % of the rows score above the threshold, which flags about {100 * share:.3g} % "
        "of rows like the training table's: these rows differ from it (a column's units, coding or source "
        "changed?), or hold that many anomalies"
    )


class PredictionCSVWriter(BasePredictionWriter):
    """Writes predict's scores and 0/1 labels to a CSV (kept columns, index, score, prediction, label).

    Appends every predicted batch to a part file as it comes, so memory stays flat whatever the number
    of rows, and names it the CSV when every row is written (a run that fails leaves no file there, and an
    earlier one as it was); under DDP each rank writes a part file and rank 0 joins them at the end,
    sorted by row index (each row once).

    Args:
        output_path: the CSV to write (a folder, existing or ending in ``/``: ``predictions.csv`` in it);
            default ``predictions.csv`` in the run's log folder. Column
            ``label`` is the known truth (1 = anomaly) or -1 where the rows carry no labels.
        keep_columns: columns of the scored file (``--data.predict_file``, else the table whose test rows
            are scored) copied before each row's score, as text (a missing value blank): ids to find the
            flagged rows by. Default: the data's ``ignore_columns`` that the file has (ids, timestamps,
            text the model was not given); ``[]`` none. A file read by chunks is read so for them too,
            beside its rows (a second pass, these columns only).
    """

    def __init__(self, output_path: str | None = None, keep_columns: list[str] | None = None) -> None:
        super().__init__(write_interval="batch")
        self.output_path = output_path
        self.keep_columns = keep_columns
        self._kept: KeptColumns | None = None
        self.columns_kept: list[str] = []  # those of the last predict
        self.written_to: Path | None = None
        self.rows_written = 0
        self.rows_flagged = 0  # prediction 1
        self._part = None
        self._compression: str | None = None
        self._token = ""

    ROOM = "free space there, or give --prediction_writer.output_path a disk with room"

    def _part_path(self, trainer, rank: int | None) -> Path:
        """This run's part file of ``rank`` (None: the joined one), named by a token of the run's own: two
        runs writing one output each write their own, and the last to end names the output."""
        path = self.written_to
        rank_part = "" if trainer.world_size == 1 or rank is None else f".rank{rank}"
        return path.with_name(f"{path.name}.{self._token}{rank_part}.part")

    def target(self, trainer) -> Path:
        """The file the predictions go to: ``output_path``, or predictions.csv in that folder or the run's."""
        path = Path(self.output_path or trainer.log_dir or ".")
        folder = not self.output_path or path.is_dir() or str(self.output_path).endswith(("/", os.sep))
        return path / "predictions.csv" if folder else path  # (a name ending in / is a folder, made if need be)

    def on_predict_start(self, trainer, pl_module) -> None:
        self.written_to = self.target(trainer)
        self._compression = compression_of(self.written_to)
        source = getattr(trainer.datamodule, "predict_file", None)
        if source is not None and Path(source).resolve() == self.written_to.resolve():
            raise DataError(f"--prediction_writer.output_path {self.written_to} is the file being scored; name another")
        self._kept = self._read_kept_columns(trainer.datamodule)
        make_folder_of(self.written_to)
        others = {}  # other runs' part files, listed before this run's ranks open theirs
        for other in self.written_to.parent.glob(f"{glob.escape(self.written_to.name)}.*.part"):
            try:
                others[other.name] = other.stat().st_mtime
            except OSError:  # (gone meanwhile: its run ended)
                pass
        self._token = trainer.strategy.broadcast(secrets.token_hex(4))  # one per run, the same on every rank
        if others and trainer.is_global_zero:
            name, written = max(others.items(), key=lambda item: item[1])
            warn(
                f"{name} beside {self.written_to} (written {(time.time() - written) / 60:.0f} min ago): another "
                "predict writing it, or a killed run's leftover (delete it then)? Each run writes a part file of "
                "its own and the last to end names the output; give each run an output_path of its own"
            )
        part = self._part_path(trainer, trainer.global_rank)
        try:
            opener = {None: open, "gzip": gzip.open, "bz2": bz2.open}[self._compression]
            self._part = opener(part, "wt", newline="")
        except OSError as err:  # a folder one cannot write to (permissions, /proc, a read-only disk)
            why = err.strerror or str(err)
            raise DataError(f"cannot write {self.written_to} (tried {part.name} beside it): {why}") from None
        self.columns_kept = [] if self._kept is None else self._kept.columns
        pd.DataFrame(columns=[*self.columns_kept, *COLUMNS]).to_csv(self._part, index=False)
        self.rows_written = self.rows_flagged = 0

    def _read_kept_columns(self, datamodule) -> KeptColumns | None:
        """The kept columns of the file scored (None: none to keep); refuses names the file lacks."""
        option, given = "--prediction_writer.keep_columns", self.keep_columns is not None
        wanted = list(self.keep_columns if given else getattr(datamodule, "ignore_columns", None) or [])
        table = getattr(datamodule, "dataset", None) == TABLE
        predict_file = getattr(datamodule, "predict_file", None)
        source = predict_file or (datamodule.path if table else None)
        try:
            names = column_names(source) if wanted and source is not None else None
        except DataError:
            if given:
                raise
            return None  # (the file's problem is the scoring reader's to name, in its own words)
        if not wanted or (names is None and not given):
            return None
        if names is None:
            what = "come from no table file" if source is None else f"are an NPZ file's ({Path(source).name})"
            raise DataError(f"{option} {wanted}: the rows scored {what}, whose columns have no names to keep")
        if given:
            absent = [c for c in wanted if c not in names]
            if absent:
                raise DataError(f"{option} {absent} are not in {source}; {columns_named(names, absent)}")
        else:  # the ignored columns this file has
            absent = [c for c in wanted if c not in names]
            if absent:  # (a join by id would find nothing)
                warn(
                    f"ignored columns {absent} of the training table are not in {Path(source).name}: the "
                    "predictions go without them (--prediction_writer.keep_columns '[...]' names the columns a "
                    "file must have, '[]' none and no warning)"
                )
            wanted = [c for c in wanted if c not in absent]
        taken = [c for c in wanted if c in COLUMNS]
        if taken and given:
            raise DataError(f"{option} {taken}: the predictions have columns of those names; rename them in the file")
        if taken:
            warn(f"ignored columns {taken} are not copied to the predictions, which have columns of those names")
        wanted = [c for c in dict.fromkeys(wanted) if c not in COLUMNS]
        # a table's test rows: read whole, as the fit read the table, unless it trained out of core
        whole = predict_file is None and not getattr(datamodule, "out_of_core", False)
        return KeptColumns(source, wanted, whole) if wanted else None

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx=0):
        if trainer.received_sigterm:  # a scheduler's or `timeout`'s stop (Lightning's predict loop goes on)
            raise SIGTERMException
        frame = pd.DataFrame({c: prediction[c].to(dtype).cpu().numpy() for c, dtype in COLUMNS.items()})
        if self._kept is not None:
            frame = pd.concat([self._kept.rows(frame["index"].to_numpy()), frame], axis=1)
        with room_to_write(str(self.written_to), self.ROOM):
            frame.to_csv(self._part, header=False, index=False)
        self.rows_written += len(frame)
        self.rows_flagged += int(frame["prediction"].sum())

    def on_predict_end(self, trainer, pl_module) -> None:
        with room_to_write(str(self.written_to), self.ROOM):
            self._join_parts(trainer)
        many = flagged_far_above_message(
            getattr(pl_module, "threshold_share", None), self.rows_written, self.rows_flagged
        )
        if many and trainer.is_global_zero:
            warn(many)

    def _join_parts(self, trainer) -> None:
        kept = self.columns_kept
        self._close()
        if trainer.world_size == 1:
            self._part_path(trainer, 0).replace(self.written_to)
            return
        trainer.strategy.barrier()
        if trainer.is_global_zero:
            parts = [self._part_path(trainer, r) for r in range(trainer.world_size)]
            # a rank without rows of its own scored a padding row again: each row id once
            # (kept columns as text, "007" not 7; scores to the last digit)
            read = dict(dtype=dict.fromkeys(kept, str), keep_default_na=not kept, **EXACT_CSV_FLOATS)
            frames = (pd.read_csv(part, compression=self._compression, **read) for part in parts)
            frame = pd.concat(frames).drop_duplicates("index").sort_values("index", kind="stable")
            joined = self._part_path(trainer, None)
            frame.to_csv(joined, index=False, compression=self._compression)
            joined.replace(self.written_to)
            self.rows_written, self.rows_flagged = len(frame), int(frame["prediction"].sum())
            for part in parts:
                part.unlink()
        trainer.strategy.barrier()

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if not self._token:  # (no run of its own started)
            return
        try:
            self._close()
        except OSError:  # its buffer's flush failed as the write did (a full disk): removed all the same
            pass
        # a partial file would pass for the predictions; the first process removes the joined one and every
        # process's part (the others may wait at the join's barrier for good)
        ranks = range(trainer.world_size) if trainer.is_global_zero else [trainer.global_rank]
        for rank in (*ranks, *([None] if trainer.is_global_zero else [])):
            try:
                self._part_path(trainer, rank).unlink(missing_ok=True)
            except OSError:  # (not a file: not this run's)
                pass
        self._token = ""

    def _close(self) -> None:
        self._kept = None
        part, self._part = self._part, None
        if part is not None:
            part.close()
