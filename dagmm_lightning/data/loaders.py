"""Data set loaders: each returns a ``RawTable`` from a local file, a download, or an embedded copy."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dagmm_lightning.data.tables import DataError, RawTable

KDDCUP99_COLUMNS = [
    "duration", "protocol_type", "service", "flag", "src_bytes", "dst_bytes", "land", "wrong_fragment",
    "urgent", "hot", "num_failed_logins", "logged_in", "num_compromised", "root_shell", "su_attempted",
    "num_root", "num_file_creations", "num_shells", "num_access_files", "num_outbound_cmds",
    "is_host_login", "is_guest_login", "count", "srv_count", "serror_rate", "srv_serror_rate",
    "rerror_rate", "srv_rerror_rate", "same_srv_rate", "diff_srv_rate", "srv_diff_host_rate",
    "dst_host_count", "dst_host_srv_count", "dst_host_same_srv_rate", "dst_host_diff_srv_rate",
    "dst_host_same_src_port_rate", "dst_host_srv_diff_host_rate", "dst_host_serror_rate",
    "dst_host_srv_serror_rate", "dst_host_rerror_rate", "dst_host_srv_rerror_rate",
]  # fmt: skip
KDDCUP99_SYMBOLIC = ["protocol_type", "service", "flag"]
KDDCUP99_FILES = ["kddcup.data_10_percent.gz", "kddcup.data_10_percent", "kddcup.data.gz", "kddcup.data"]


def read_kddcup99_file(path: str | Path) -> RawTable:
    """A KDD Cup 1999 file in the raw format: no header, 41 features, optionally the label (``normal.``
    is the anomaly class in the DAGMM protocol)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no such file: {path}")
    frame = pd.read_csv(path, header=None, low_memory=False)
    if frame.shape[1] not in (41, 42):
        raise DataError(
            f"{path} has {frame.shape[1]} columns; a KDD Cup 1999 file has 41 features and optionally the label"
        )
    labels = None
    if frame.shape[1] == 42:
        labels = frame.pop(41).astype(str).str.rstrip(".").to_numpy() == "normal"
    frame.columns = KDDCUP99_COLUMNS
    return RawTable(frame, labels, list(KDDCUP99_SYMBOLIC))


def load_kddcup99(data_dir: Path, seed: int) -> RawTable:
    """KDDCUP99 from ``data_dir`` (10 % file or full file, gzip or not); otherwise scikit-learn's download
    of the 10 % file into ``data_dir``."""
    for name in KDDCUP99_FILES:
        if (data_dir / name).is_file():
            return read_kddcup99_file(data_dir / name)
    try:
        from sklearn.datasets import fetch_kddcup99

        bunch = fetch_kddcup99(data_home=str(data_dir), percent10=True, download_if_missing=True, as_frame=True)
    except OSError as err:  # URLError and socket errors are OSErrors
        raise DataError(
            f"KDDCUP99 is not in {data_dir} and could not be downloaded ({err}). Put "
            f"'kddcup.data_10_percent.gz' (http://kdd.ics.uci.edu/databases/kddcup99/) there, or point "
            f"--data.data_dir / DAGMM_DATA_DIR at the folder that holds it"
        ) from err
    frame = bunch.frame
    labels = frame.pop("labels").map(lambda v: v.decode() if isinstance(v, bytes) else str(v))
    frame.columns = KDDCUP99_COLUMNS
    for column in KDDCUP99_SYMBOLIC:
        frame[column] = frame[column].map(lambda v: v.decode() if isinstance(v, bytes) else str(v))
    numeric = [c for c in KDDCUP99_COLUMNS if c not in KDDCUP99_SYMBOLIC]
    frame[numeric] = frame[numeric].astype(np.float64)
    return RawTable(frame, labels.str.rstrip(".").to_numpy() == "normal", list(KDDCUP99_SYMBOLIC))


BREAST_CANCER_ANOMALY_SHARE = 0.10


def load_breast_cancer_anomalies(data_dir: Path, seed: int) -> RawTable:
    """scikit-learn's embedded breast-cancer table (no download): all 357 benign rows are normal, and a
    seeded draw of malignant rows makes up 10 % of the result as anomalies (40 of 397 rows)."""
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer(as_frame=True)
    frame, malignant = bunch.data, bunch.target.to_numpy() == 0
    normal_rows = np.flatnonzero(~malignant)
    n_anomalies = round(BREAST_CANCER_ANOMALY_SHARE / (1 - BREAST_CANCER_ANOMALY_SHARE) * len(normal_rows))
    drawn = np.random.default_rng(seed).choice(np.flatnonzero(malignant), n_anomalies, replace=False)
    rows = np.sort(np.concatenate([normal_rows, drawn]))
    return RawTable(frame.iloc[rows].reset_index(drop=True), malignant[rows], [])


def read_named_columns_file(path: str | Path, label_column: str = "is_anomaly") -> RawTable:
    """A CSV or Parquet file with a header naming the feature columns, and optionally a 0/1 label column."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no such file: {path}")
    frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    labels = frame.pop(label_column).to_numpy().astype(bool) if label_column in frame.columns else None
    return RawTable(frame, labels, [])


@dataclass(frozen=True)
class DatasetSpec:
    """How to load a named data set, how to read a file of new rows for it, and its paper threshold."""

    load: Callable[[Path, int], RawTable]
    read_file: Callable[[str | Path], RawTable]
    #: share of rows flagged as anomalous in the paper's evaluation, in percent
    rho: float


DATASETS: dict[str, DatasetSpec] = {
    "kddcup99": DatasetSpec(load_kddcup99, read_kddcup99_file, rho=20.0),
    "breast_cancer": DatasetSpec(
        load_breast_cancer_anomalies, read_named_columns_file, rho=100 * BREAST_CANCER_ANOMALY_SHARE
    ),
}
