"""Data set loaders: each returns a ``RawTable`` from a local file, a download, or an embedded copy."""

from __future__ import annotations

import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dagmm_lightning.data.tables import (
    CUT_SHORT,
    EXACT_CSV_FLOATS,
    NOT_UTF8,
    RawTable,
    category_text,
    check_header_names_unique,
    check_no_repeated_header,
    check_rows_complete,
    check_unlisted_text,
    csv_delimiter,
    ignoring,
    infer_symbolic_columns,
    is_parquet,
    ragged_line,
    warn_if_csv_texts_read_as_missing,
    warn_if_headerless,
)
from dagmm_lightning.errors import DataError, MissingLabelError, existing_file, warn

KDDCUP99_COLUMNS = """
duration protocol_type service flag src_bytes dst_bytes land wrong_fragment urgent hot
num_failed_logins logged_in num_compromised root_shell su_attempted num_root num_file_creations
num_shells num_access_files num_outbound_cmds is_host_login is_guest_login count srv_count
serror_rate srv_serror_rate rerror_rate srv_rerror_rate same_srv_rate diff_srv_rate
srv_diff_host_rate dst_host_count dst_host_srv_count dst_host_same_srv_rate dst_host_diff_srv_rate
dst_host_same_src_port_rate dst_host_srv_diff_host_rate dst_host_serror_rate
dst_host_srv_serror_rate dst_host_rerror_rate dst_host_srv_rerror_rate
""".split()  # the 41 features, in file order
KDDCUP99_SYMBOLIC = ["protocol_type", "service", "flag"]
KDDCUP99_FILES = ["kddcup.data_10_percent.gz", "kddcup.data_10_percent", "kddcup.data.gz", "kddcup.data"]


def read_kddcup99_file(path: str | Path) -> RawTable:
    """A KDD Cup 1999 file in the raw format: no header, 41 features, optionally the label (``normal.``
    is the anomaly class in the DAGMM protocol)."""
    path = existing_file(path)
    try:
        frame = pd.read_csv(path, header=None, low_memory=False, **EXACT_CSV_FLOATS)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} is empty") from None
    except UnicodeDecodeError:
        raise DataError(f"{path} {NOT_UTF8}") from None
    except EOFError:
        raise DataError(f"{path} {CUT_SHORT}") from None
    except (ValueError, OSError) as err:  # (had: pandas' or gzip's own error, through the CLI as a stack trace)
        raise DataError(f"{path} is not a readable KDD Cup 1999 file: {str(err).splitlines()[0]}") from None
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
    if not data_dir.is_dir() and (data_dir.exists() or data_dir != Path("data")):  # mistyped: no download into it
        what = "is a file" if data_dir.exists() else "does not exist"
        raise DataError(
            f"the data folder {data_dir} {what}: point --data.data_dir / DAGMM_DATA_DIR at the folder that holds "
            f"'{KDDCUP99_FILES[0]}' (or create it, and KDDCUP99 is downloaded into it)"
        )
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


def load_kddcup_rev(data_dir: Path, seed: int) -> RawTable:
    """KDDCUP-Rev (Zong et al. 2018): all ``normal.`` rows kept as the normal class, attack rows drawn at
    random (seeded) so that normal:attack is 4:1; the attacks are the anomalies (20 %)."""
    kdd = load_kddcup99(data_dir, seed)
    normal_traffic = np.flatnonzero(kdd.is_anomaly)
    attacks = np.flatnonzero(~kdd.is_anomaly)
    drawn = np.random.default_rng([seed, 7]).choice(attacks, len(normal_traffic) // 4, replace=False)
    rows = np.sort(np.concatenate([normal_traffic, drawn]))
    labels = ~kdd.is_anomaly[rows]
    # one-hot over the services, protocols and flags of the whole file, as for KDDCUP99 (118 features)
    categories = {c: sorted(kdd.features[c].astype(str).unique().tolist()) for c in KDDCUP99_SYMBOLIC}
    return RawTable(kdd.features.iloc[rows].reset_index(drop=True), labels, list(KDDCUP99_SYMBOLIC), categories)


def _attacks_are_anomalies(table: RawTable) -> RawTable:
    if table.is_anomaly is not None:
        table.is_anomaly = ~table.is_anomaly
    return table


def read_npz_file(path: str | Path, missing_unknown: bool = False) -> RawTable:
    """A numpy archive with ``X`` (rows x features) and optionally ``y`` (1 = anomaly; ``missing_unknown``:
    rows to score, NaN is -1, unknown)."""
    path = existing_file(path)
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise DataError(f"{path} holds one array, not an NPZ archive with 'X' (and optionally 'y')")
        with archive:
            if "X" not in archive.files:
                raise DataError(f"{path} holds {archive.files}; expected an array 'X' (and optionally 'y')")
            x = np.asarray(archive["X"])
            y = anomaly_labels(pd.Series(archive["y"].ravel()), "y", missing_unknown) if "y" in archive.files else None
    except ValueError as err:  # numpy says so of an object array, and of a file that is no archive at all
        if isinstance(err, DataError):
            raise
        kind = "arrays of Python objects (text?)" if zipfile.is_zipfile(path) else "no NPZ archive"
        raise DataError(f"{path} holds {kind}; X must be numbers and y 0/1 (np.savez(path, X=..., y=...))") from None
    except (OSError, EOFError, zipfile.BadZipFile) as err:
        raise DataError(f"{path} is not a readable NPZ file: {err}") from None
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool) or np.issubdtype(x.dtype, np.complexfloating):
        raise DataError(f"'X' in {path} must hold real numbers, got dtype {x.dtype}")
    if x.ndim != 2:
        raise DataError(f"'X' in {path} must be 2-D (rows x features), got shape {x.shape}")
    if len(x) == 0:  # (had: "the table has no rows", unnamed)
        raise DataError(f"'X' in {path} has no rows")
    return RawTable(pd.DataFrame(x, columns=[f"x{i}" for i in range(x.shape[1])]), y, [])


def load_thyroid(data_dir: Path, seed: int) -> RawTable:
    """ODDS Thyroid: ``thyroid.npz`` in ``data_dir`` (3,772 x 6; 93 hyperfunction rows are anomalies), or
    ODDS's own ``thyroid.mat`` (the same ``X`` and ``y``), which its page serves (had: told to download a
    .npz from there)."""
    served = data_dir / "thyroid.mat"
    if not (data_dir / "thyroid.npz").is_file() and served.is_file():
        return read_odds_mat_file(served)
    source = "https://odds.cs.stonybrook.edu/thyroid-disease-dataset/ (its thyroid.mat)"
    return read_npz_file(_require(data_dir / "thyroid.npz", source, also=served.name))


def read_odds_mat_file(path: Path) -> RawTable:
    """An ODDS MATLAB file: ``X`` (rows x features) and ``y`` (1 = anomaly), as ``read_npz_file`` reads
    a .npz of the same arrays."""
    contents = read_mat_file(path)
    if "X" not in contents or "y" not in contents:
        held = sorted(key for key in contents if not key.startswith("__"))
        raise DataError(f"{path} holds the matrices {held}; expected ODDS's 'X' and 'y'")
    return odds_table(contents, path)


def odds_table(contents: dict, path: Path, prefix: str = "x") -> RawTable:
    """The table of an ODDS file's matrices ``X`` (rows x features) and ``y`` (1 = anomaly); columns named
    ``prefix`` and their number."""
    try:
        x, y = np.asarray(contents["X"], dtype=np.float64), np.asarray(contents["y"], dtype=np.float64).reshape(-1)
    except (ValueError, TypeError):  # a struct or cell array
        raise DataError(f"{path}: 'X' and 'y' are not matrices of numbers") from None
    if x.ndim != 2 or len(x) != len(y):
        raise DataError(f"{path}: 'X' {x.shape} and 'y' {y.shape} are not rows x features and one label a row")
    labels = anomaly_labels(pd.Series(y), "y")
    return RawTable(pd.DataFrame(x, columns=[f"{prefix}{i}" for i in range(x.shape[1])]), labels, [])


def read_mat_file(path: Path) -> dict:
    """A MATLAB file's matrices by name (scipy's ``loadmat``), or a ``DataError`` saying why not."""
    from scipy.io import loadmat

    try:
        return loadmat(str(path))
    except NotImplementedError:  # scipy reads no MATLAB v7.3 (HDF5) file
        raise DataError(f"{path} is a MATLAB v7.3 file, which scipy cannot read: save it with -v7") from None
    except (ValueError, OSError, TypeError) as err:  # scipy's MatReadError is a ValueError (had: stack traces)
        raise DataError(f"{path} is not a readable MATLAB file: {str(err).splitlines()[0]}") from None


ARRHYTHMIA_ANOMALY_CLASSES = (3, 4, 5, 7, 8, 9, 14, 15)


def read_arrhythmia_file(path: str | Path) -> RawTable:
    """UCI Arrhythmia as a MATLAB file with one matrix ``arrhythmia``: 274 features, then the class."""
    path = existing_file(path)
    contents = read_mat_file(path)
    if "arrhythmia" not in contents and {"X", "y"} <= set(contents):  # ODDS's own copy: its y marks those classes
        table = odds_table(contents, path, "a")
        if table.features.shape[1] != 274:
            raise DataError(f"{path}: expected Arrhythmia's 274 features in 'X', got shape {table.features.shape}")
        return table
    if "arrhythmia" not in contents:
        held = sorted(key for key in contents if not key.startswith("__"))
        raise DataError(f"{path} holds the matrices {held}; expected one named 'arrhythmia' (or ODDS's 'X' and 'y')")
    try:
        matrix = np.asarray(contents["arrhythmia"], dtype=np.float64)
    except (ValueError, TypeError):  # a struct or cell array
        raise DataError(f"{path}: 'arrhythmia' is not a matrix of numbers") from None
    if matrix.ndim != 2 or matrix.shape[1] != 275:
        raise DataError(f"{path}: expected 274 features and the class (275 columns), got shape {matrix.shape}")
    features = pd.DataFrame(matrix[:, :-1], columns=[f"a{i}" for i in range(274)])
    return RawTable(features, np.isin(matrix[:, -1], ARRHYTHMIA_ANOMALY_CLASSES), [])


def load_arrhythmia(data_dir: Path, seed: int) -> RawTable:
    """UCI Arrhythmia: ``arrhythmia.mat`` in ``data_dir`` (452 x 274; classes 3, 4, 5, 7, 8, 9, 14, 15
    are the anomalies, 66 rows)."""
    source = "https://odds.cs.stonybrook.edu/arrhythmia-dataset/"
    return read_arrhythmia_file(_require(data_dir / "arrhythmia.mat", source))


def _require(path: Path, source: str, also: str | None = None) -> Path:
    """``path``, or a ``DataError`` naming where to get it (``also``: another file name read in its place)."""
    if not path.is_file():
        folder = path.parent.resolve()
        if not folder.is_dir():  # a mistyped folder: not a file to download
            what = "is a file" if folder.exists() else "does not exist"
            raise DataError(
                f"the data folder {folder} {what}: point --data.data_dir / DAGMM_DATA_DIR at the folder that holds "
                f"{path.name}, or make that folder and download it from {source} into it"
            )
        name = f"{path.name} (or {also})" if also else path.name
        raise DataError(
            f"{name} is not in {folder}; download it from {source} into that folder, or point "
            f"--data.data_dir / DAGMM_DATA_DIR at the folder that holds it"
        )
    return path


LABEL_TEXTS = {"0", "1", "true", "false"}


def anomaly_labels(raw: pd.Series, name: str, missing_unknown: bool = False, warned: set | None = None) -> np.ndarray:
    """A label column's 0/1 or true/false values as bools (True = anomaly), read as numbers or as text
    (``1.00`` and ``+1`` are 1); anything else is an error. ``missing_unknown`` (rows to score, whose
    labels are only passed through): a row without a value, -1 (predict's own "unknown") or another
    value (a warning names them, once each where ``warned`` collects them over a file's chunks) is
    unknown, and the labels are int64 with -1 there; otherwise it is an error."""
    text = category_text(raw).str.lower()
    missing = (raw.isna() | (text == "nan")).to_numpy()  # also a blank, NA ... (category_text's missing text)
    if missing.any() and not missing_unknown:
        row = int(np.flatnonzero(missing)[0])
        raise MissingLabelError(
            f"label column {name!r} has no value at row {row} ({int(missing.sum()):,} of {len(raw):,} rows have "
            "none); every row needs 0/1 or true/false"
        )
    other = sorted(set(pd.unique(text[~missing])) - LABEL_TEXTS)
    if other and not missing_unknown:  # (a MissingLabelError: they may mark rows without a label, as -1 does)
        raise MissingLabelError(
            f"label column {name!r} must hold 0/1 or true/false (1 = anomaly), but also holds {other[:5]}"
            f"{' ...' if len(other) > 5 else ''}; map them to 0/1 first",
            blank=False,
        )
    if other:
        warned = set() if warned is None else warned
        new = [value for value in other if value != "-1" and value not in warned]
        if new:
            warn(
                f"label column {name!r} holds {new[:5]}{' ...' if len(new) > 5 else ''}, not 0/1 or true/false "
                "(1 = anomaly): those rows' labels are written as -1 (unknown); map them to 0/1 to carry them"
            )
            warned.update(new)
        missing = missing | ~text.isin(LABEL_TEXTS).to_numpy()
    labels = text.isin(["1", "true"]).to_numpy()
    return np.where(missing, -1, labels).astype(np.int64) if missing_unknown else labels


def columns_named(columns, wanted: list[str]) -> str:
    """A file's column names (the first 20), for a message about ``wanted`` names it lacks; where a name
    differs only by surrounding spaces (a header written ``a, b, y``), says so."""
    text = f"its columns are {list(columns)[:20]}"
    spaced = [c for c in columns if isinstance(c, str) and c != c.strip() and c.strip() in wanted]
    return text + (f"; {spaced[0]!r} has spaces around its name (write the header without them)" if spaced else "")


OTHER_ARRAY_FORMATS = (".npy", ".pt", ".pth", ".pkl", ".pickle", ".h5", ".hdf5", ".mat")
OTHER_TABLE_FORMATS = (".json", ".jsonl", ".ndjson", ".xlsx", ".xls", ".feather", ".arrow", ".orc", ".avro")
COMPRESSION_SUFFIXES = (".gz", ".bz2", ".xz", ".zst", ".zip")  # rows.jsonl.gz is a JSON file too


def table_file(path: str | Path) -> Path:
    """``path`` as a Path; a ``DataError`` where no file is there or it is an array format not read."""
    path = existing_file(path)
    if path.suffix.lower() in OTHER_ARRAY_FORMATS:
        raise DataError(
            f"{path.name}: {path.suffix} files are not read; save the rows as NPZ, np.savez('rows.npz', X=X, y=y) "
            "(y, 1 for anomalies, is optional), or as CSV or Parquet"
        )
    suffixes = [s.lower() for s in path.suffixes]
    inner = suffixes[-2] if len(suffixes) > 1 and suffixes[-1] in COMPRESSION_SUFFIXES else path.suffix.lower()
    if inner in OTHER_TABLE_FORMATS:  # (read as CSV, a JSON file's errors had named its braces)
        raise DataError(
            f"{path.name}: {inner} files are not read; save the table as CSV or Parquet (with pandas: "
            "frame.to_csv('rows.csv', index=False) or frame.to_parquet('rows.parquet'))"
        )
    return path


def check_parquet_columns_unique(path: Path) -> None:
    """Refuses a Parquet file with two columns of one name (pyarrow writes them, from a join, say): pandas
    and pyarrow would fail on them with their own words, or take one of them."""
    from pyarrow import parquet

    try:
        names = parquet.read_schema(path).names
    except Exception:  # noqa: BLE001 - not a Parquet file, or a broken one: the reader names that
        return
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise DataError(f"{path} has columns that share a name: {repeated[:10]}; rename them")


def parquet_index_columns(path: Path) -> list[str]:
    """The names of the index pandas wrote with a Parquet file (``frame.to_parquet`` of a frame indexed by
    ``txn_id``; ``__index_level_0__`` for an unnamed one; an evenly spaced one is stored as a range, not
    a column): readers restore it as the index, not as columns, so it is no feature; [] for a file
    pandas did not write."""
    from pyarrow import parquet

    try:
        metadata = parquet.read_schema(path).pandas_metadata or {}
    except Exception:  # noqa: BLE001 - not a Parquet file, or a broken one: the reader names that
        return []
    names = [entry if isinstance(entry, str) else entry.get("name") for entry in metadata.get("index_columns", [])]
    return [name for name in names if isinstance(name, str)]


def absent_columns(named: list[str], columns, path: Path) -> list[str]:
    """Of the columns ``named`` (ignore_columns), those not in a file's ``columns``; a Parquet file's stored
    index is there (``parquet_index_columns``: the readers leave it out; predict writes one stored as a
    column, and says that one stored as a range is not in the file)."""
    index = parquet_index_columns(path) if is_parquet(path) else []
    return [c for c in named if c not in columns and c not in index]


def read_user_table(
    path: str | Path,
    label_column: str | None = None,
    symbolic_columns: list[str] | None = None,
    label_optional: bool = False,
    ignore_columns: list[str] | None = None,
) -> RawTable:
    """A user's table: CSV or Parquet with a header, or NPZ with ``X`` (and ``y``).

    ``label_column``: the 0/1 (or true/false) anomaly label, left out of the features; None for a table
    without labels (it still trains and scores; metrics need labels). ``symbolic_columns``: columns to
    one-hot encode; None takes every non-numeric column, except one whose values are mostly numbers,
    which is an error (a typo in a numeric column must not silently become a category).
    ``label_optional``: a missing label column means no labels rather than an error (rows to score).
    ``ignore_columns``: columns left out of the features (ids, timestamps, free text); with
    ``label_optional``, those missing from the file are no error either.
    """
    path = table_file(path)
    if path.suffix.lower() == ".npz":
        if ignore_columns and not label_optional:  # scoring: a checkpoint's ignored columns are simply not there
            raise DataError(f"{path.name} is an NPZ file: its columns have no names to ignore (ignore_columns)")
        if label_column not in (None, "y") and not label_optional:
            raise DataError(f"{path.name} is an NPZ file: its labels are its array 'y', not a column {label_column!r}")
        return read_npz_file(path, missing_unknown=label_optional)
    parquet = is_parquet(path)
    delimiter = None if parquet else csv_delimiter(path)
    if parquet:
        check_parquet_columns_unique(path)
    try:
        with warnings.catch_warnings():  # index_col=False: a row longer than the header is an error, not an index
            warnings.simplefilter("error", pd.errors.ParserWarning)
            # named symbolic columns as text, as written (007, as the chunked reader reads them), not numbers
            text = dict.fromkeys(symbolic_columns or [], str)
            frame = (
                pd.read_parquet(path)
                if parquet
                else pd.read_csv(path, sep=delimiter, index_col=False, dtype=text, **EXACT_CSV_FLOATS)
            )
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} is empty") from None
    except pd.errors.ParserWarning:
        raise DataError(
            f"{path}: rows have more fields than the header{ragged_line(path, delimiter)}; a separator "
            "inside values (a decimal comma?), or "
            "a line above the header (a title, a comment, Excel's sep=)?"
        ) from None
    except UnicodeDecodeError:
        raise DataError(f"{path} {NOT_UTF8}") from None
    except EOFError:
        raise DataError(f"{path} {CUT_SHORT}") from None
    except (ValueError, OSError) as err:  # pandas' ParserError, a decoding error, pyarrow's ArrowInvalid
        raise DataError(f"{path} is not a readable table: {str(err).splitlines()[0]}") from None
    if not parquet:
        warn_if_headerless(list(frame.columns), path)
        check_no_repeated_header(frame, path)
        check_header_names_unique(path, delimiter)
        check_rows_complete(path, delimiter, frame)
    if len(frame) == 0:
        raise DataError(f"{path} has a header but no rows")
    labels = None
    if label_column is not None and not (label_optional and label_column not in frame.columns):
        if label_column not in frame.columns:
            named = columns_named(frame.columns, [label_column])
            raise DataError(f"label column {label_column!r} is not in {path}; {named}")
        labels = anomaly_labels(frame.pop(label_column), label_column, missing_unknown=label_optional)
    absent = absent_columns(ignore_columns or [], frame.columns, path)
    if absent and not label_optional:
        raise DataError(f"ignore_columns {absent} are not in {path}; {columns_named(frame.columns, absent)}")
    frame = frame.drop(columns=[c for c in ignore_columns or [] if c in frame.columns])
    if frame.shape[1] == 0:
        ignored = [c for c in ignore_columns or [] if c not in absent]
        label = f"the label column {label_column!r} and " if labels is not None else ""
        raise DataError(f"{path} has no feature columns left: its columns are {label}ignore_columns {ignored}")
    as_read, inferred = frame, symbolic_columns is None  # (inferring makes ' NA ' missing, and warns of it)
    with ignoring(ignore_columns):
        if symbolic_columns is None:
            frame, symbolic_columns = infer_symbolic_columns(frame)
        missing = [c for c in symbolic_columns if c not in frame.columns]
        if missing:
            raise DataError(f"symbolic columns {missing} are not in {path}")
        if not label_optional:  # (scoring: the checkpoint's list, and the encoding names a text value)
            check_unlisted_text(frame, symbolic_columns)
        if not parquet:
            warn_if_csv_texts_read_as_missing(path, as_read, symbolic_columns, inferred)
    frame = frame.rename(columns=str)
    return RawTable(frame, labels, [str(c) for c in symbolic_columns])


@dataclass(frozen=True)
class DatasetSpec:
    """How to load a named data set, how to read a file of new rows for it, and its paper threshold."""

    load: Callable[[Path, int], RawTable]
    read_file: Callable[[str | Path], RawTable]
    #: share of rows flagged as anomalous in the paper's evaluation, in percent
    rho: float
    #: the format ``read_file`` reads, as messages name it
    file_format: str = "a table (CSV or Parquet) with the training table's columns"
    #: the file names of that format end so (empty: any name)
    file_suffixes: tuple[str, ...] = ()

    @property
    def example_file(self) -> str:
        """A file name of that format, for the commands a fit's summary suggests."""
        return "ROWS" + (self.file_suffixes[0] if self.file_suffixes else ".csv")


KDDCUP99_FORMAT = "KDD Cup 1999's raw CSV (no header, 41 features, optionally the label)"
DATASETS: dict[str, DatasetSpec] = {
    "kddcup99": DatasetSpec(load_kddcup99, read_kddcup99_file, rho=20.0, file_format=KDDCUP99_FORMAT),
    "kddcup_rev": DatasetSpec(
        load_kddcup_rev,
        lambda path: _attacks_are_anomalies(read_kddcup99_file(path)),
        rho=20.0,
        file_format=KDDCUP99_FORMAT,
    ),
    "thyroid": DatasetSpec(
        load_thyroid,
        read_npz_file,
        rho=2.5,
        file_format="an NPZ file with X (rows x 6 features) and optionally y",
        file_suffixes=(".npz",),
    ),
    "arrhythmia": DatasetSpec(
        load_arrhythmia,
        read_arrhythmia_file,
        rho=15.0,
        file_format="a MATLAB file with one matrix 'arrhythmia' (274 features, then the class)",
        file_suffixes=(".mat",),
    ),
    "breast_cancer": DatasetSpec(
        load_breast_cancer_anomalies,
        lambda path: read_user_table(path, None, [], True),
        rho=100 * BREAST_CANCER_ANOMALY_SHARE,
    ),
}
