"""LightningDataModule: load a data set, split it by protocol, encode it, serve whole batches."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import uuid
import warnings
import weakref
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info

from dagmm_lightning.data.batches import InMemoryBatches
from dagmm_lightning.data.handed import hand_through_a_file
from dagmm_lightning.data.loaders import DATASETS, read_user_table
from dagmm_lightning.data.splits import (
    Protocol,
    Split,
    Splits,
    make_splits,
    positive_unlabeled,
    unlabelled_splits,
    with_contamination,
    with_labelled_anomalies,
)
from dagmm_lightning.data.streaming import (
    CHUNK_ROWS,
    ROW_FOLDER_PREFIX,
    STREAMED_SUFFIXES,
    DiskRows,
    FileRows,
    claim_row_folder,
    column_types,
    read_frames,
    scan_file,
    streamed,
    write_split_rows,
)
from dagmm_lightning.data.tables import (
    MISSING_SHOWN,
    EncodedRows,
    RawTable,
    TablePreprocessor,
    label_like_columns,
    text_labels,
)
from dagmm_lightning.errors import (
    ConfigurationError,
    DataError,
    MissingLabelError,
    check_choice,
    check_range,
    home_expanded,
    room_to_write,
    warn,
)
from dagmm_lightning.labels import KNOWN_NORMAL, LABELLED_ANOMALY

MISSING_CATEGORY = {"nan": MISSING_SHOWN}  # a symbolic column's missing values: a category of their own
ARRAYS = "arrays"  # the data set name of a data module made by ``from_table`` / ``from_arrays``
SHARE_OF_SPLIT = {"labelled_anomalies": "mixed", "labelled_fraction": "positive_unlabeled"}  # the split using it
DEFAULT_SHARE = 0.5  # of each, in its split
SPLIT_SETTINGS = ("protocol", "split", "val_fraction", "labelled_anomalies", "labelled_fraction", "train_contamination")
TABLE = "table"  # a user's CSV / Parquet / NPZ file, given by ``path``
FEW_TRAINING_ROWS = 20  # fewer are warned about
LARGE_FILE_BYTES = 64 * 2**20  # a table file reading is said of; predict reading one whole (not in chunks) warns
TRAINING_VALUES = "training_values_v1"  # the key of their hash: a new one when encoding or scaling rows changes
Dataset = Literal["breast_cancer", "kddcup99", "kddcup_rev", "thyroid", "arrhythmia", "table"]


def default_data_dir() -> Path:
    return Path(os.environ.get("DAGMM_DATA_DIR", "data"))


@contextmanager
def naming_the_file(path: str | Path | None):
    """A DataError raised inside that does not name ``path`` is raised again with it in front (None: as is)."""
    try:
        yield
    except DataError as err:
        if path is None or str(path) in str(err):
            raise
        raise type(err)(f"{path}: {err}") from None


class AnomalyDataModule(L.LightningDataModule):
    """Rows of a named data set, split into train / val / test by an evaluation protocol.

    Args:
        dataset: ``kddcup99``, ``kddcup_rev``, ``thyroid``, ``arrhythmia``, ``breast_cancer`` (embedded in
            scikit-learn, no download), or ``table``: a user's file given by ``path``.
        data_dir: folder holding the data files; default ``$DAGMM_DATA_DIR``, else ``./data``.
        protocol: ``paper`` (Zong et al. 2018) or ``reimplementation``: both keep about half the rows for
            test (``make_splits``; a table without labels keeps none).
        val_fraction: share of the training side's normal rows held out for validation (positive_unlabeled:
            of its labelled normal rows, held out for estimating c; a table without labels: of all its rows).
        batch_size: training rows per step (per process under DDP).
        eval_batch_size: rows per step for refitting, validation, test and predict.
        seed: seed of the split and of the epoch shuffles; default: the run's ``seed_everything`` (0 where it
            is false).
        predict_file: score the rows of this file (the data set's raw format) at ``predict`` instead of
            the test rows. A table's CSV or Parquet file is read in chunks (``streaming.FileRows``), so
            it may be larger than memory.
        rho: percentage of rows the paper flags as anomalous; default: the data set's own.
        split: which rows train, and with which labels: ``normal_only`` (the protocol's normal rows),
            ``mixed`` (plus ``labelled_anomalies`` of the anomalies kept out of test, labelled; paper
            protocol: val holds anomalies at the data's ratio, the others are set aside; reimplementation:
            the labelled ones come out of val's 10 %) or ``positive_unlabeled`` (paper
            protocol: ``labelled_fraction`` of the training half's normal rows labelled, all its other rows
            unlabelled; val holds out labelled rows).
        labelled_anomalies: share of the non-test anomalies that join training in the mixed split; default
            0.5 there (another value given with another split plays no part: warned).
        labelled_fraction: share of the training half's normal rows labelled in the positive-unlabeled split;
            default 0.5 there (another value given with another split plays no part: warned).
        train_contamination: share of anomalies among the training rows (the unsupervised setting of the
            paper's Table 3): anomalies kept out of test join training, unlabelled. 0 = clean training. Not
            with the positive-unlabeled split, whose unlabelled rows hold the training half's anomalies.
        path: the file of ``dataset: table`` (CSV, Parquet or NPZ with ``X`` and optionally ``y``).
        label_column: its 0/1 anomaly column (CSV/Parquet); None: no labels (it trains and scores, but
            metrics need labels). Without labels every row trains but ``val_fraction`` of them, and none is
            kept for test (``splits.unlabelled_splits``).
        symbolic_columns: its columns to one-hot encode; default: the non-numeric ones.
        ignore_columns: its columns left out of the features (ids, timestamps, free text).
        out_of_core: read ``path`` (CSV or Parquet) in chunks and keep the scaled rows of each split in
            files on disk (``streaming.DiskRows``, in the system's temporary folder), for a table larger
            than memory; the rows equal an in-memory encoding's. Column types come from the file's first
            block: name ``symbolic_columns`` when a text column starts with numbers. Under DDP the first
            process of each machine writes the files; the machine's other processes read them.
    """

    def __init__(
        self,
        dataset: Dataset = "breast_cancer",
        data_dir: str | None = None,
        protocol: Protocol = "paper",
        val_fraction: float = 0.1,
        batch_size: int = 1024,
        eval_batch_size: int = 8192,
        seed: int | None = None,
        predict_file: str | None = None,
        rho: float | None = None,
        split: Split = "normal_only",
        labelled_anomalies: float | None = None,
        labelled_fraction: float | None = None,
        train_contamination: float = 0.0,
        path: str | None = None,
        label_column: str | None = None,
        symbolic_columns: list[str] | None = None,
        ignore_columns: list[str] | None = None,
        out_of_core: bool = False,
    ) -> None:
        super().__init__()
        if dataset != ARRAYS:
            check_choice("dataset", dataset, Dataset)
        if dataset == TABLE and path is None:
            raise ConfigurationError("dataset 'table' needs --data.path pointing at a CSV, Parquet or NPZ file")
        table_only = (("path", path), ("label_column", label_column), ("symbolic_columns", symbolic_columns))
        given = [n for n, v in table_only if v]
        if (ignore_columns or given) and dataset != TABLE:  # a built-in data set brings its own columns and labels
            name = "ignore_columns" if ignore_columns else given[0]
            raise ConfigurationError(
                f"{name} is for dataset 'table' (a CSV or Parquet file's columns), and the dataset is {dataset!r} "
                "here (the default, or a config or --data.dataset that set it): give --data.dataset table, or "
                "compose configs/table.yaml after the method's and any data set's config; with --ckpt_path (test, "
                "predict) leave out --data.dataset: the checkpoint brings its own"
            )
        both = sorted(set(ignore_columns or []) & {*(symbolic_columns or []), label_column})
        if both:
            raise ConfigurationError(f"{both} listed in ignore_columns and as label or symbolic column")
        if label_column is not None and label_column in (symbolic_columns or []):
            raise ConfigurationError(
                f"{label_column!r} is the label column and in symbolic_columns: the label is no feature"
            )
        check_range("train_contamination", train_contamination, 0.0, 0.5, high_open=True)
        if seed is not None and not 0 <= seed < 2**32:
            raise ConfigurationError(f"seed must be in [0, {2**32 - 1}] (numpy's seeds), got {seed}")
        for name, size in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if size < 1:
                raise ConfigurationError(f"{name} must be >= 1, got {size}")
        if out_of_core and dataset != TABLE:
            raise ConfigurationError(f"out_of_core reads a user's table (dataset 'table', its path), not {dataset!r}")
        if out_of_core and not streamed(path):
            raise ConfigurationError(
                f"out_of_core reads a file by chunks: a CSV ({', '.join(STREAMED_SUFFIXES[:3])}) or Parquet file "
                f"({', '.join(STREAMED_SUFFIXES[3:])}); {Path(path).name} is neither: convert it, or train in memory"
            )
        check_choice("protocol", protocol, Protocol)
        check_choice("split", split, Split)
        if split == "positive_unlabeled" and protocol != "paper":
            raise ConfigurationError(
                f"the positive_unlabeled split is defined for the paper protocol only, not {protocol!r}: leave "
                "out --data.protocol (or give paper)"
            )
        if rho is not None and not 0 < rho < 100:
            raise ConfigurationError(f"rho is a percentage in (0, 100), got {rho}")
        if split == "positive_unlabeled" and train_contamination > 0:
            raise ConfigurationError(
                f"train_contamination {train_contamination:g} is for the normal_only and mixed splits: the "
                "positive_unlabeled split trains on the training half's unlabelled rows, anomalies and all; "
                "set it to 0"
            )
        for name, value in (("labelled_anomalies", labelled_anomalies), ("labelled_fraction", labelled_fraction)):
            # (0.5, the default, is what configs saved before these defaults were None held for any split)
            if value not in (None, DEFAULT_SHARE) and split != SHARE_OF_SPLIT[name]:
                its_split = SHARE_OF_SPLIT[name]
                warn(f"{name} {value:g} is for split {its_split!r}; with split {split!r} it plays no part")
        self.save_hyperparameters()  # as given: None where the split's default applies
        vars(self).update(self.hparams)  # every setting is an attribute of its own name
        self.path, self.predict_file = home_expanded(self.path), home_expanded(self.predict_file)  # (no shell's)
        self.labelled_anomalies = DEFAULT_SHARE if labelled_anomalies is None else labelled_anomalies
        self.labelled_fraction = DEFAULT_SHARE if labelled_fraction is None else labelled_fraction
        self.data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
        self._rho = rho
        self.preprocessor = TablePreprocessor()
        self._table: RawTable | None = None
        self._encoded: EncodedRows | None = None
        self._truth: np.ndarray | None = None  # (N,) bool, None without labels
        self._label_like: str | None = None  # a feature that looks like labels, where the table has none
        self._half_unlabelled = False  # rows without labels split by the protocol (checkpoints before the change)
        self._on_disk: dict[str, DiskRows] | None = None
        self._splits: Splits | None = None
        self._scaled: dict[str, InMemoryBatches] = {}
        self._scaled_rows: dict[str, torch.Tensor | DiskRows] = {}
        self._given_table: RawTable | None = None
        self._given_splits: Splits | None = None
        self._values_fingerprint: str | None = None
        self._encoding_loaded = False  # a checkpoint's encoding and scaling (load_state_dict)

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        hand_through_a_file(cls)  # (multiprocessing's pickler picks a class's reducer by its exact type)

    @classmethod
    def from_table(cls, table: RawTable, splits: Splits | None = None, **kwargs) -> AnomalyDataModule:
        """A data module over an in-memory ``table``, split by ``splits`` when given (else by the protocol);
        other arguments as for the constructor (``dataset`` and ``data_dir`` excepted)."""
        module = cls(dataset=ARRAYS, **kwargs)
        module._given_table, module._given_splits = table, splits
        return module

    @classmethod
    def from_arrays(cls, x: np.ndarray, is_anomaly: np.ndarray | None = None, **kwargs) -> AnomalyDataModule:
        """A data module over in-memory rows x (N, F) with labels (N,): 1 (or True) = anomaly, 0 = normal;
        None: no labels (every row counts as normal). Other arguments as for ``from_table``. Its rows are
        split as any data set's (test and predict see the test rows only): to score every row of new data
        with a fitted model, ``DAGMMDetector.from_checkpoint(path).decision_function(x)``."""
        import pandas as pd

        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2:
            raise DataError(f"x must be a 2-D array (rows x features), got shape {x.shape}")
        frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(x.shape[1])])
        return cls.from_table(
            RawTable(frame, None if is_anomaly is None else zero_one_labels(is_anomaly, len(x)), []), **kwargs
        )

    def __str__(self) -> str:  # Lightning's would build every dataloader (and failed on the batch iterables)
        where = f"path={str(self.path)!r}" if self.dataset == TABLE else f"dataset={self.dataset!r}"
        text = f"{type(self).__name__}({where}, split={self.split!r}, protocol={self.protocol!r}, seed={self.seed}"
        if self._splits is not None:
            splits = self._splits
            text += f"; rows: train {len(splits.train)}, val {len(splits.val)}, test {len(splits.test)}"
        return text + ")"

    __repr__ = __str__

    # --- facts the CLI links into the model ----------------------------------------------------------
    @property
    def resolved_seed(self) -> int:
        return self.seed if self.seed is not None else int(os.environ.get("PL_GLOBAL_SEED", 0))

    @property
    def input_dim(self) -> int:
        """Number of encoded features (after one-hot), i.e. the model's input size."""
        self._load()
        return self.preprocessor.n_features

    @property
    def rho(self) -> float:
        if self._rho is not None:
            return self._rho
        if self.dataset in DATASETS:
            return DATASETS[self.dataset].rho
        return round(100.0 * float(self.is_anomaly.mean()), 2) or 10.0

    @property
    def anomaly_share(self) -> float | None:
        """The share of anomalies in the data's labels; None without labels."""
        self._load()
        return None if self._truth is None else float(self._truth.mean())

    @property
    def splits(self) -> Splits:
        self._load()
        assert self._splits is not None
        return self._splits

    @property
    def is_anomaly(self) -> np.ndarray:
        """The truth (N,) bool of all rows; raises for a table without labels."""
        self._load()
        if self._truth is None:
            raise DataError("the table has no labels")
        return self._truth

    def describe(self) -> str:
        """One line: each split's rows and anomalies (training rows: those labelled, and those that train
        unlabelled, as ``train_contamination`` or the positive-unlabeled split leave them)."""
        splits, parts = self.splits, []
        labelled = int((splits.train_labels == LABELLED_ANOMALY).sum())
        unlabelled = int((self._labels[splits.train] == 1).sum()) - labelled
        notes = [f"{labelled:,} labelled anomal{'y' if labelled == 1 else 'ies'}"] if labelled else []
        if self.split == "positive_unlabeled":
            notes.append(f"{int((splits.train_labels == KNOWN_NORMAL).sum()):,} labelled normal")
        notes += [f"{unlabelled:,} anomal{'y' if unlabelled == 1 else 'ies'} unlabelled"] if unlabelled > 0 else []
        parts.append(f"train {len(splits.train):,} rows" + (f" ({', '.join(notes)})" if notes else ""))
        for name in ("val", "test"):
            rows = getattr(splits, name)
            labels = self._labels[rows]
            count = int((labels == 1).sum())
            labelled_all = len(rows) and (labels >= 0).all()
            known = f"{count:,} anomal{'y' if count == 1 else 'ies'}" if labelled_all else "no labels"
            parts.append(f"{name} {len(rows):,} ({known})" if len(rows) else f"{name} none")
        if len(splits.spare):  # (every row accounted for: the protocol sets them aside)
            parts.append(f"{len(splits.spare):,} anomal{'y' if len(splits.spare) == 1 else 'ies'} set aside")
        if self._label_like is not None:  # (said as the table was read, often scrolled away by the fit's output)
            parts.append(f"{self._label_like!r} looks like labels and trained as a feature: --data.label_column")
        how = "no labels" if self._all_rows_train else f"{self.protocol} protocol"
        return f"{self.dataset} ({how}, split seed {self.resolved_seed}): " + ", ".join(parts)

    def describe_columns(self) -> str:
        """One line: what became of the table's columns (numbers, one-hot encoded categories, constant on
        the training rows; left out, labels), as the preprocessor encodes them."""

        def names(columns: list, shown: int = 8) -> str:
            return ", ".join(map(str, columns[:shown])) + (f", ... ({len(columns)})" if len(columns) > shown else "")

        prep, parts = self.preprocessor, []
        if prep.numeric:
            parts.append(f"{len(prep.numeric)} number{'s' * (len(prep.numeric) != 1)} ({names(prep.numeric)})")
        if prep.categories:
            each = [
                f"{column}: {len(values)} categor{'ies' if len(values) != 1 else 'y'}"
                + (f", {MISSING_SHOWN} one of them" if "nan" in values else "")
                for column, values in prep.categories.items()
            ]
            width = sum(len(values) for values in prep.categories.values())
            parts.append(f"{len(each)} one-hot encoded as {width} features ({names(each, 5)})")
        constant = prep.constant if prep.constant is not None else np.zeros(prep.n_features, dtype=bool)
        flat = [column for i, column in enumerate(prep.numeric) if constant[i]]
        flat += [c for c, at in prep.category_features() if at.stop > at.start and constant[at].all()]  # one category
        if flat:
            parts.append(f"constant on the training rows: {names(flat)}")
        ignored = list(getattr(self, "ignore_columns", None) or [])
        if ignored:
            parts.append(f"left out: {names(ignored)} (ignore_columns)")
        if getattr(self, "label_column", None):
            parts.append(f"labels: {self.label_column}")
        return "; ".join(parts)

    @property
    def _all_rows_train(self) -> bool:
        """Rows without labels split by ``unlabelled_splits`` (all but val's train, no test rows), not by
        the protocol (a data module's given splits; a checkpoint from before that change)."""
        return self._truth is None and self._given_splits is None and not self._half_unlabelled

    # --- loading ---------------------------------------------------------------------------------------
    def _load(self) -> None:
        if self._table is not None:
            return
        try:
            self._read()
        except MissingLabelError as err:
            if self.split == "normal_only":
                lead = f"{err}: fill them" if err.blank else f"{err} where they are labels"
                raise MissingLabelError(
                    f"{lead}; for a table labelled in part (never mark its unknown rows 0: they would count as "
                    "normal rows in training and in the metrics), leave out --data.label_column (every row then "
                    "trains unlabelled; --model.init_args.contamination sets the share to flag) or train "
                    "DAGMMDetector(variant='mixed_loss') with y NaN or -1 where unknown"
                ) from None
            variant, split = (
                ("pu", "positive_unlabeled") if self.split == "positive_unlabeled" else ("mixed_loss", "mixed")
            )
            raise MissingLabelError(
                f"{err} (the {split} split draws its labelled rows from a fully labelled table; for a table whose "
                f"unlabelled rows have no label, DAGMMDetector(variant='{variant}') takes y with NaN or -1 there)"
            ) from None
        share = None if self._truth is None else float(self._truth.mean())
        if self._rho is not None and self._rho < 1 and share is not None and share >= 0.01:
            # a fraction given for the percentage flags 100 times too few rows (a rate below 1 % is no mistake)
            warn(
                f"rho {self._rho:g} flags {self._rho:g} % of the rows, and the labels hold {100 * share:.3g} % "
                f"anomalies: rho is a percentage ({100 * self._rho:g} % is rho {100 * self._rho:g})"
            )

    def _read(self) -> None:
        if self.dataset == TABLE and self._given_table is None:
            size = Path(self.path).stat().st_size if Path(self.path).is_file() else 0
            if size >= LARGE_FILE_BYTES:  # (a 2M-row CSV file takes half a minute before anything else is said)
                how = "in chunks, its rows written to a temporary folder" if self.out_of_core else "into memory"
                rank_zero_info(f"reading {Path(self.path).name} ({size / 2**20:,.0f} MiB) {how}")
        if self.out_of_core:
            scan = scan_file(Path(self.path), self.label_column, self.symbolic_columns, CHUNK_ROWS, self.ignore_columns)
            table, truth, n_rows = scan.head, scan.is_anomaly, scan.n_rows
        else:
            if self._given_table is not None:
                table = self._given_table
            elif self.dataset == TABLE:
                table = read_user_table(
                    self.path, self.label_column, self.symbolic_columns, ignore_columns=self.ignore_columns
                )
            else:
                table = DATASETS[self.dataset].load(self.data_dir, self.resolved_seed)
            truth, n_rows = table.is_anomaly, len(table.features)
        if truth is None and self._given_splits is None:
            if self.split != "normal_only" or self.train_contamination > 0:
                if self.split == "normal_only":
                    what, other = f"train_contamination {self.train_contamination:g}", ", or set it to 0"
                elif self.split == "mixed":
                    what = "split 'mixed'"
                    other = (
                        " (the split labels labelled_anomalies of the anomalies itself; for a table whose few labelled "
                        "anomalies are marked and the rest unlabelled, DAGMMDetector(variant='mixed_loss') takes y), "
                        "or train with --data.split normal_only"
                    )
                else:  # positive_unlabeled: DAGMMPU trains on no other split
                    what = f"split {self.split!r}"
                    other = (
                        " (the split labels labelled_fraction of the normal rows itself; for a table whose labelled "
                        "normal rows are marked and the rest unlabelled, DAGMMDetector(variant='pu') takes y)"
                    )
                raise DataError(
                    f"{what} needs labels (which rows are anomalies), but the table has none: name its label column "
                    f"with --data.label_column{other}"
                )
            labels = label_like_columns(table.features) if self.dataset == TABLE else []
            hint = (
                f"; {labels[0]!r} looks like labels and is trained on as a feature: --data.label_column"
                if labels
                else ""
            )
            self._label_like = labels[0] if labels else None
            if labels and (table.features[labels[0]].astype(str).str.strip().isin(["-1", "-1.0"])).any():
                hint += " (after mapping its values to 0/1, 1 = anomaly: scikit-learn's -1 is the outlier)"
            elif labels and text_labels(table.features[labels[0]]):
                hint += " (after mapping its values to 0/1, 1 = anomaly)"
            warn(
                f"the table has no labels: every row counts as normal, and all but val_fraction of them train (no "
                f"test rows); metrics need labels{hint}"
            )
        self.preprocessor.fit_columns(table)
        with naming_the_file(self.path if self.dataset == TABLE else None):
            self._encoded = None if self.out_of_core else self.preprocessor.encode_compact(table.features)
        self._splits = self._make_splits(
            truth if truth is not None else np.zeros(n_rows, dtype=bool), truth is not None
        )
        if truth is not None and not truth.any() and self._given_splits is None:
            label = f"--data.label_column {self.label_column}" if self.dataset == TABLE else "the data set's labels"
            then = {  # (had: said of the normal-only split only; the mixed split refuses such labels)
                "normal_only": f": without {label} every row counts as normal and all but val_fraction of them train",
                "positive_unlabeled": ": what the c / 2 rule flags is checked against nothing",
            }.get(self.split, "")
            warn(
                f"the labels mark no row as an anomaly, and the {self.protocol} protocol holds half of the normal rows "
                f"out as test rows ({len(self._splits.test):,}), which give no anomaly metrics{then}"
            )
        if len(self._splits.train) < FEW_TRAINING_ROWS:
            held = self.val_fraction and self._given_splits is None
            warn(
                f"only {len(self._splits.train)} training rows"
                + (f" (val_fraction {self.val_fraction} of the training side held out)" if held else "")
                + ": too few to fit a mixture's covariances; the scores will mean little"
            )
        self._labels = truth.astype(np.int64) if truth is not None else np.full(n_rows, -1)
        self._table, self._truth = table, truth

    def val_anomalies_trained(self) -> int:
        """How many of the anomalies the protocol gives val the mixed split (``labelled_anomalies``) or
        ``train_contamination`` moved into training (they take the spare ones first)."""
        moving = self.split == "mixed" or self.train_contamination > 0
        if not moving or self._given_splits is not None or self.anomaly_share is None:
            return 0
        truth = self.is_anomaly
        protocol = make_splits(truth, self.protocol, self.resolved_seed, self.val_fraction)
        return int(truth[protocol.val].sum() - truth[self.splits.val].sum())

    def _make_splits(self, is_anomaly: np.ndarray, labelled: bool = True) -> Splits:
        if self._given_splits is not None:
            return self._given_splits
        seed = self.resolved_seed
        if not labelled and not self._half_unlabelled:  # (normal_only: the other splits need labels)
            return unlabelled_splits(len(is_anomaly), seed, self.val_fraction)
        if self.split == "positive_unlabeled":
            return positive_unlabeled(is_anomaly, self.labelled_fraction, seed, self.val_fraction)
        splits = make_splits(is_anomaly, self.protocol, seed, self.val_fraction)
        if self.split == "mixed":
            splits = with_labelled_anomalies(splits, is_anomaly, self.labelled_anomalies, seed)
        if self.train_contamination > 0:
            splits = with_contamination(splits, is_anomaly, self.train_contamination, seed)
        return splits

    def setup(self, stage: str) -> None:
        if stage == "predict" and self.predict_file is not None and self._table is None:
            return  # a checkpoint's encoding scores the file: the training table is not read (predict_dataloader)
        self._load()
        self._values_fingerprint = None
        if self.out_of_core:
            # once: the scaling depends on the training rows only; scoring a file needs none of the rows
            if self._on_disk is None and not (stage == "predict" and self.predict_file is not None):
                self._on_disk = self._write_rows_to_disk()
        else:
            self.preprocessor.fit_scaling(self._encoded, self._splits.train)
            self._scaled.clear()
            self._scaled_rows.clear()
        # a user's table only (the built-in data sets' are known: KDDCUP99's attack-only services)
        outside = self.preprocessor.categories_outside_training() if stage == "fit" and self.dataset == TABLE else {}
        if outside:
            shown = {column: [MISSING_CATEGORY.get(c, repr(c)) for c in cats] for column, cats in outside.items()}
            named = "; ".join(
                f"{column!r} {', '.join(cats[:3])}{', ...' if len(cats) > 3 else ''}" for column, cats in shown.items()
            )
            warn(
                f"categories only rows outside training hold ({named}): no training row had them, so the model "
                "cannot tell them apart (such rows score as of no category); where they mark anomalies, that is "
                "lost to the score"
            )

    def teardown(self, stage: str) -> None:
        if stage == "predict":  # a checkpoint's encoding was for that run: the next takes its own model's
            self._encoding_loaded = False

    def _write_rows_to_disk(self, fit_scaling: bool = True) -> dict[str, DiskRows]:
        """Each split's scaled rows in a temporary folder (``write_split_rows``; ``fit_scaling`` False: with
        the preprocessor's scaling as it is). Under DDP the first process of each machine writes them, once,
        and that machine's other processes read the same files."""
        strategy = self.trainer.strategy if self.trainer is not None else None
        shared = strategy is not None and strategy.world_size > 1
        folder_name = f"{ROW_FOLDER_PREFIX}{uuid.uuid4().hex}"
        folder = Path(tempfile.gettempdir()) / (strategy.broadcast(folder_name) if shared else folder_name)
        splits = {name: getattr(self.splits, name) for name in ("train", "val", "test")}
        if not shared or strategy.local_rank == 0:
            weakref.finalize(self, shutil.rmtree, folder, True)
            types = column_types(self.preprocessor, self.label_column, self.ignore_columns)
            frames = lambda: read_frames(Path(self.path), CHUNK_ROWS, types)  # noqa: E731
            room = "set TMPDIR to a folder on a disk with room (the rows take 4 bytes a feature)"
            try:
                with room_to_write(f"the out-of-core rows to {folder.parent}", room):
                    claim_row_folder(folder)  # (its owner file written: a full disk is said as the rows' is)
                with room_to_write(f"the out-of-core rows to {folder.parent}", room), naming_the_file(self.path):
                    rows = write_split_rows(folder, frames, self.preprocessor, splits, len(self._labels), fit_scaling)
            except BaseException:  # rows written in part: of no use, and a full disk's space back at once
                shutil.rmtree(folder, True)
                raise
        if not shared:
            return rows
        strategy.barrier("dagmm-rows-written")
        prep = self.preprocessor
        prep.minimum, prep.range, prep.constant = strategy.broadcast((prep.minimum, prep.range, prep.constant))
        return rows if strategy.local_rank == 0 else {name: DiskRows(folder / f"{name}.npy") for name in splits}

    def _rows(self, name: str, shuffle: bool, batch_size: int, pad_ranks: bool = False) -> InMemoryBatches:
        """Batches of split ``name`` (cached per split; the order is set per epoch by the batches)."""
        key = f"{name}:{shuffle}:{batch_size}:{pad_ranks}"
        if key not in self._scaled:
            rows = getattr(self.splits, name)
            # training rows carry their training labels, evaluation rows the truth (-1: unknown)
            labels = self.splits.train_labels if name == "train" else self._labels[rows]
            if self._on_disk is not None:
                self._scaled_rows[name] = self._on_disk[name]
            elif name not in self._scaled_rows:  # one scaled copy per split, shared by its batchings
                self._scaled_rows[name] = torch.from_numpy(self.preprocessor.scale(self._encoded, rows))
            columns = (torch.from_numpy(labels.astype(np.int64)), torch.from_numpy(rows.astype(np.int64)))
            self._scaled[key] = InMemoryBatches(
                self._scaled_rows[name], *columns, batch_size, shuffle, self.resolved_seed, pad_ranks
            )
        return self._scaled[key]

    def arrays(self, split: str) -> tuple[np.ndarray | DiskRows, np.ndarray]:
        """Scaled rows (N, F) float32 and labels (N,) of split ``train``, ``val`` or ``test``; for
        shallow baselines on the very same rows. Training rows carry training labels (0 normal,
        1 labelled anomaly, -1 unlabelled), the others the truth (1 = anomaly). Out of core the rows
        stay on disk (``DiskRows``: read by slices; ``np.asarray`` reads them whole)."""
        batches = self._rows(split, shuffle=False, batch_size=self.eval_batch_size)
        x = batches.x
        return (x if isinstance(x, DiskRows) else x.numpy()), batches.y.numpy()

    def train_dataloader(self) -> InMemoryBatches:
        # Trainer(overfit_batches=n) trains on the same first n batches each epoch (Lightning turns a
        # DataLoader's shuffling off for it; these batches are our own)
        overfit = self.trainer is not None and self.trainer.overfit_batches > 0
        return self._rows("train", shuffle=not overfit, batch_size=self.batch_size)

    def refit_dataloader(self, split: str = "train") -> InMemoryBatches:
        """All rows of ``split`` once, in order, sharded across ranks without padding: for fits that sum
        over rows (the training-set mixture; PU's c over the val rows)."""
        return self._rows(split, shuffle=False, batch_size=self.eval_batch_size)

    def val_dataloader(self) -> InMemoryBatches:
        return self._rows("val", shuffle=False, batch_size=self.eval_batch_size, pad_ranks=True)

    def test_dataloader(self) -> InMemoryBatches:
        if self._all_rows_train:
            raise DataError(
                "the table has no labels, so no rows were kept to test (all but val_fraction trained): score rows "
                "with dagmm predict --ckpt_path CKPT --data.predict_file ROWS (the table itself, or new rows); in "
                "Python, DAGMMDetector.from_checkpoint(CKPT).decision_function(rows)"
            )
        return self._rows("test", shuffle=False, batch_size=self.eval_batch_size, pad_ranks=True)

    def predict_dataloader(self) -> InMemoryBatches:
        # Lightning's predict loop looks for a DataLoader's batch sampler to record batch indices for a
        # prediction writer; these batches carry each row's id instead (the writer's index column)
        warnings.filterwarnings(
            "ignore",
            message="Couldn't infer the batch indices fetched from your dataloader: `(InMemoryBatches|FileRows)`",
        )
        if self.predict_file is None:
            return self.test_dataloader()
        if self._table is None and not self._encoding_loaded:  # no checkpoint's: the training table's own
            self._load()
            if self.out_of_core:
                self._on_disk = self._write_rows_to_disk()
            else:
                self.preprocessor.fit_scaling(self._encoded, self._splits.train)
        if self.dataset == TABLE and streamed(self.predict_file):
            prep, label = self.preprocessor, self.label_column
            return FileRows(self.predict_file, prep, label, self.eval_batch_size, ignored=self.ignore_columns)
        if self.dataset == TABLE:
            size = Path(self.predict_file).stat().st_size if Path(self.predict_file).is_file() else 0
            if size >= LARGE_FILE_BYTES:  # (an .xz file of 4M rows took 12 GB)
                warn(
                    f"{Path(self.predict_file).name} ({size / 2**20:,.0f} MiB) is read whole into memory: only "
                    f"{', '.join(STREAMED_SUFFIXES)} files are read in chunks; convert a file larger than memory"
                )
            symbolic = list(self.preprocessor.categories)  # as trained: nothing inferred from these rows
            table = read_user_table(self.predict_file, self.label_column, symbolic, True, self.ignore_columns)
        elif self.dataset in DATASETS:
            spec = DATASETS[self.dataset]
            try:
                table = spec.read_file(self.predict_file)
            except DataError as err:  # (had: 'thy.csv holds no NPZ archive', for a table of the right columns)
                name = Path(self.predict_file).name.lower()
                if not Path(self.predict_file).is_file() or not spec.file_suffixes or name.endswith(spec.file_suffixes):
                    raise  # (a file of the format's kind: its own message says what is wrong with it)
                raise DataError(
                    f"{err} (a model of the data set {self.dataset!r} scores files in its format: {spec.file_format})"
                ) from None
        else:
            raise DataError("a data module made from arrays has no file format for predict_file")
        trained = [*self.preprocessor.numeric, *self.preprocessor.categories]
        by_position = trained == [f"x{i}" for i in range(len(trained))]  # a model of an NPZ's X (or of thyroid)
        width = table.features.shape[1]
        if Path(self.predict_file).suffix.lower() == ".npz" and by_position and width != len(trained):
            raise DataError(  # (had: the columns past the model's left out, silently, or every one shifted)
                f"{self.predict_file}: X has {width} columns, the model was trained on {len(trained)}; an "
                "NPZ's columns have no names, so they are read by position: give X with the training columns only, "
                "in their order"
            )
        try:
            with naming_the_file(self.predict_file):
                encoded = self.preprocessor.encode_compact(table.features)  # (made dense by slices to scale)
        except DataError as err:
            npz = self.dataset == TABLE and Path(self.predict_file).suffix.lower() == ".npz"
            if not (npz and "columns missing" in str(err)):  # a model of an NPZ has columns x0, x1, ...
                raise
            raise DataError(
                f"{err} ({Path(self.predict_file).name} is an NPZ file: its columns have no names, x0, x1, ...; "
                "score a CSV or Parquet file with the training table's columns)"
            ) from None
        labels = np.full(len(encoded), -1) if table.is_anomaly is None else table.is_anomaly.astype(np.int64)
        x = torch.from_numpy(self.preprocessor.scale(encoded))
        return InMemoryBatches(
            x, torch.from_numpy(labels), torch.arange(len(encoded)), self.eval_batch_size, False, pad_ranks=True
        )

    # --- the encoding and the split travel with checkpoints -------------------------------------------
    def training_rows_fingerprint(self) -> str:
        """A hash of the training rows' ids: two splits with the same fingerprint train on the same rows."""
        return hashlib.sha256(np.asarray(self.splits.train, dtype=np.int64).tobytes()).hexdigest()[:16]

    def training_values_fingerprint(self) -> str | None:
        """A hash of the training rows' scaled values in split order: it tells the same row ids over rows
        that changed (a table reordered among its normal rows) from the rows the model was trained on.
        None out of core before the rows are written (a predict of a file of its own writes none)."""
        if self._on_disk is None and self._encoded is None:
            return None
        if self._values_fingerprint is None:
            digest, train = hashlib.sha256(), self.splits.train
            for first in range(0, len(train), CHUNK_ROWS):  # row by row, as scaled: the same bytes in chunks
                if self._on_disk is not None:
                    digest.update(self._on_disk["train"][first : first + CHUNK_ROWS].numpy())
                else:
                    digest.update(self.preprocessor.scale(self._encoded, train[first : first + CHUNK_ROWS]))
            self._values_fingerprint = digest.hexdigest()[:16]
        return self._values_fingerprint

    def split_settings(self) -> dict:
        """Every setting that decides which rows train (with the table's labels and row count)."""
        return {"seed": self.resolved_seed, **{key: getattr(self, key) for key in SPLIT_SETTINGS}}

    def state_dict(self) -> dict:
        split = {"split_seed": self.resolved_seed, "training_rows": self.training_rows_fingerprint()}
        split[TRAINING_VALUES] = self.training_values_fingerprint()
        split |= {"protocol": self.protocol, "split": self.split, "n_rows": len(self._labels)}
        if self._all_rows_train:
            split["unlabelled_rows"] = "train_and_val"  # (a checkpoint without it trained on the protocol's half)
        split["split_settings"] = self.split_settings()
        # where the data lay, in full: a run from the checkpoint in another folder finds it (cli._parse_ckpt_path)
        found = {"data_dir": str(self.data_dir.resolve())}
        if self.path:
            found["path"] = str(Path(self.path).resolve())
        return {"dataset": self.dataset, "preprocessor": self.preprocessor.state_dict(), **split, "found_at": found}

    def is_data_of(self, state_dict: dict) -> bool:
        """Whether this module loads the data a checkpoint's state (``state_dict``) was saved from: the same
        data set, the same file for a table, and as many rows (arrays: as many rows). Not where predict
        scores a file without reading the data (``setup``)."""
        if state_dict.get("dataset") != self.dataset or self._table is None:
            return False
        path = state_dict.get("found_at", {}).get("path")
        if self.dataset == TABLE and path and self.path and Path(self.path).resolve() != Path(path):
            return False
        rows = state_dict.get("n_rows")
        return rows is None or rows == len(self._labels)

    def load_state_dict(self, state_dict: dict, other_data: bool = False) -> None:
        """A checkpoint's encoding and scaling, refusing a split whose test rows would overlap the rows it was
        trained on; ``other_data``: rows that are not the checkpoint's data (``is_data_of``), encoded and
        scaled as it was trained, nothing to overlap."""
        if state_dict.get("dataset") != self.dataset and not other_data:
            raise DataError(
                f"the checkpoint was trained on data set {state_dict.get('dataset')!r}, "
                f"this run loads {self.dataset!r}; pass the data config it was trained with"
            )
        scoring_a_file = self.predict_file is not None and self.trainer is not None and self.trainer.predicting
        scoring_a_file = scoring_a_file or other_data
        rows = state_dict.get("training_rows")  # None: older checkpoints
        resplit = (
            not scoring_a_file
            and rows not in (None, self.training_rows_fingerprint())
            and self._truth is None
            and self._given_splits is None
            and "unlabelled_rows" not in state_dict
        )
        if resplit:  # trained before rows without labels all trained: on the protocol's half, as then
            self._half_unlabelled = True
            self._splits = self._make_splits(np.zeros(len(self._labels), dtype=bool), labelled=False)
        if not scoring_a_file and rows not in (None, self.training_rows_fingerprint()):
            self._refuse_other_training_rows(state_dict)
        columns = (self.preprocessor.numeric, self.preprocessor.categories)
        self.preprocessor.load_state_dict(state_dict["preprocessor"])
        self._encoding_loaded = True
        self._values_fingerprint = None
        self._scaled.clear()
        self._scaled_rows.clear()
        # encoded as the checkpoint encodes (a category it never saw, in a row since changed: all zeros)
        other_columns = columns != (self.preprocessor.numeric, self.preprocessor.categories)
        if self._encoded is not None and other_columns:
            try:
                self._encoded = self.preprocessor.encode_compact(self._table.features, own_rows=True)
            except DataError as err:
                given = self._given_table
                unnamed = given is not None and all(re.fullmatch(r"x\d+", str(c)) for c in given.features.columns)
                if not (unnamed and "columns missing" in str(err)):  # (from_arrays: x0, x1, ...)
                    raise
                raise DataError(  # (from_arrays names its columns x0, x1, ...)
                    f"{err}; the rows given to this data module have no such names: make it with "
                    "AnomalyDataModule.from_table(RawTable(frame, labels, symbolic columns)) from a DataFrame with "
                    "the training table's column names"
                ) from None
        if self._on_disk is not None and (other_columns or self.preprocessor.constant is None or resplit):
            # setup wrote them with this run's columns, or before the constant columns' clip: written again
            self._on_disk = self._write_rows_to_disk(fit_scaling=False)
        values = state_dict.get(TRAINING_VALUES)
        now = None if scoring_a_file else self.training_values_fingerprint()
        if None not in (values, now) and values != now:
            self._refuse_other_training_rows(state_dict, same_rows=True)

    def _refuse_other_training_rows(self, state_dict: dict, same_rows: bool = False) -> None:
        """The checkpoint trained on other rows than this run's training split, so its test rows would
        overlap them: say which split settings differ or, where none does, that the data did
        (``same_rows``: the split's row numbers are the checkpoint's, their values are not)."""
        then = state_dict.get("split_settings") or {  # a checkpoint saved before the settings were recorded
            key: state_dict.get(saved) for key, saved in (("seed", "split_seed"), ("protocol",) * 2, ("split",) * 2)
        }
        now = self.split_settings()
        differ = [
            f"{key} {now.get(key)!r}, the checkpoint's {then[key]!r}" for key in then if now.get(key) != then[key]
        ]
        if differ:
            raise DataError(
                f"this run's split differs from the checkpoint's ({'; '.join(differ)}): its test rows may hold rows "
                "the model was trained on. Leave the data settings to the checkpoint, or pass its own."
            )
        where = self.path if self.dataset == TABLE and self.path else f"data set {self.dataset!r}"
        rows_then = state_dict.get("n_rows")
        if rows_then is not None and rows_then != len(self._labels):
            cause = f"it has {len(self._labels)} rows, the checkpoint was trained on {rows_then}"
        elif same_rows:
            cause = "the values of its training rows changed: rows reordered or edited"
        elif "split_settings" in state_dict:
            cause = "its rows or their labels changed"
        else:  # saved before every split setting was recorded
            cause = "its rows or their labels changed, or a split setting given here differs"
        risk = (
            "this run's val rows would not be the checkpoint's"
            if self._all_rows_train
            else "this run's test rows would overlap the rows the model was trained on"
        )
        raise DataError(
            f"{where} is not the data the checkpoint was trained on ({cause}): with the same split settings, {risk}; "
            "use the data it was trained on"
        )


hand_through_a_file(AnomalyDataModule)  # its rows to a ddp_spawn process: not through the 64 kB pipe


def zero_one_labels(labels, n_rows: int) -> np.ndarray:
    """Labels (N,) of 0/1 or False/True as a bool array (True = anomaly); anything else refused with a hint."""
    values = np.asarray(labels)
    if values.ndim != 1 or len(values) != n_rows:
        raise DataError(f"is_anomaly must hold one label per row ({n_rows}), got shape {values.shape}")
    if values.dtype == bool:
        return values
    if values.dtype.kind in "iuf" and np.isin(values, (0, 1)).all():  # the usual case, without a Python loop
        return values.astype(bool)
    numeric = np.asarray(values, dtype=object)
    known = np.array([isinstance(v, (int, float, np.integer, np.floating)) and v in (0, 1) for v in numeric])
    if not known.all():
        other = sorted({repr(v.item() if hasattr(v, "item") else v) for v in numeric[~known]})
        minus_one = any(isinstance(v, (int, float, np.integer, np.floating)) and v == -1 for v in numeric[~known])
        hint = " (scikit-learn's -1 is the outlier: map it to 1, the inliers' 1 to 0)" if minus_one else ""
        raise DataError(f"is_anomaly holds 1 = anomaly and 0 = normal, but also {', '.join(other[:5])}{hint}")
    return numeric.astype(float).astype(bool)
