"""Rows of a CSV or Parquet file too large for memory, read in chunks (pyarrow): ``FileRows`` for
``predict``, and for training (``out_of_core``) a scan of the file's columns and labels and the scaled
rows of each split written to disk (``DiskRows``)."""

from __future__ import annotations

import csv as stdlib_csv
import os
import re
import shutil
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import torch
from pyarrow import csv, parquet

from dagmm_lightning.data.loaders import (
    absent_columns,
    anomaly_labels,
    check_parquet_columns_unique,
    columns_named,
    table_file,
)
from dagmm_lightning.data.tables import (
    CUT_SHORT,
    MISSING_TEXT,
    NOT_UTF8,
    PARQUET_SUFFIXES,
    REPEATED_HEADER,
    ColumnExtremes,
    RawTable,
    TablePreprocessor,
    category_text,
    check_header_names_unique,
    check_no_repeated_header,
    check_unlisted_text,
    csv_delimiter,
    empty_column_error,
    identifier_error,
    identifier_like,
    ignoring,
    infer_symbolic_columns,
    is_parquet,
    line_of_value,
    not_numbers,
    open_text,
    ordinal,
    ragged_line,
    refuse_columns,
    warn_if_csv_texts_read_as_missing,
    warn_if_headerless,
)
from dagmm_lightning.distributed import rank, world_size
from dagmm_lightning.errors import DataError, warn

STREAMED_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", *PARQUET_SUFFIXES)  # pyarrow reads these by chunks


def streamed(path: Path | str) -> bool:
    """Whether ``path`` names a file read by chunks (a CSV, maybe gzip or bzip2 compressed, or Parquet)."""
    return str(path).lower().endswith(STREAMED_SUFFIXES)


CHUNK_ROWS = 16384


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
        chunk_rows: int = CHUNK_ROWS,
        ignored: list[str] | None = None,
    ) -> None:
        self.path, self.preprocessor, self.label_column = table_file(path), preprocessor, label_column
        self.ignored = ignored  # columns read as text and left out
        self.batch_size, self.chunk_rows = batch_size, chunk_rows

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        first_row, ranks, me, warned = 0, world_size(), rank(), set()
        for number, frame in enumerate(self._frames()):
            if number % ranks == me:
                labels = np.full(len(frame), -1, dtype=np.int64)
                if self.label_column is not None and self.label_column in frame.columns:
                    column = frame.pop(self.label_column)
                    labels = anomaly_labels(column, self.label_column, missing_unknown=True, warned=warned)
                try:
                    encoded = self.preprocessor.encode(frame, first_row, warned=warned)
                    x = torch.from_numpy(self.preprocessor.scale(encoded))
                except DataError as err:
                    rows = f" (in its rows {first_row:,} to {first_row + len(frame) - 1:,})"
                    placed = "at row" in str(err) or "columns missing" in str(err)  # (NaN/inf: its row; a column: all)
                    raise DataError(f"{self.path}: {err}{'' if placed else rows}") from None
                rows = torch.arange(first_row, first_row + len(frame))
                yield from zip(
                    x.split(self.batch_size),
                    torch.from_numpy(labels).split(self.batch_size),
                    rows.split(self.batch_size),
                    strict=True,
                )
            first_row += len(frame)
        if first_row == 0:  # a header without rows (a quiet day's file): its columns checked, nothing to score
            types = column_types(self.preprocessor, self.label_column, self.ignored)
            header = file_columns(self.path)
            empty = {
                name: pd.Series(dtype=np.float64 if types.get(name) == pa.float64() else object) for name in header
            }
            try:
                self.preprocessor.encode(pd.DataFrame(empty), warned=warned)
            except DataError as err:
                raise DataError(f"{self.path} (a header without rows): {err}") from None
            if me == 0:
                warn(f"{self.path} has a header but no rows: nothing to score")

    def __len__(self) -> int:
        """The batches of a Parquet file read by one process (its row count is in its metadata: progress
        bars show a total); a CSV file's rows are not known before reading it (TypeError: no total)."""
        if is_parquet(self.path) and world_size() == 1:
            try:
                n = parquet.ParquetFile(self.path).metadata.num_rows
            except (pa.ArrowInvalid, OSError) as err:
                raise DataError(f"{self.path}: {str(err).splitlines()[0]}") from None
            if n == 0:  # read as a file of unknown length (Lightning skips a predict run of none): __iter__ checks
                raise TypeError("a file without rows: its columns are checked by reading it")
            chunks = [min(self.chunk_rows, n - start) for start in range(0, n, self.chunk_rows)]
            return sum(-(-rows // self.batch_size) for rows in chunks)
        raise TypeError("the batches of a CSV file (or of a process's share) are not known before reading it")

    def _frames(self) -> Iterator[pd.DataFrame]:
        types = column_types(self.preprocessor, self.label_column, self.ignored)
        columns = None
        if not is_parquet(self.path):  # a CSV's other columns: not read at all (had:
            # their types guessed from its first block, and a later value refused: a column the model never reads)
            header = file_columns(self.path)  # (names with spaces around them kept: the missing-columns hint)
            columns = [c for c in header if c in types or c.strip() in types] or None
        return read_frames(self.path, self.chunk_rows, types, columns)


def file_columns(path: Path) -> list[str]:
    """The column names of a CSV file's header (as pandas and ``read_frames`` name them) or a Parquet
    file's schema."""
    try:
        if is_parquet(path):
            return [str(c) for c in parquet.ParquetFile(path).schema_arrow.names]
        return [str(c) for c in header_names(path, csv_delimiter(path))]
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} is empty") from None
    except EOFError:  # (a compressed file cut short within its header's block)
        raise DataError(f"{path} {CUT_SHORT}") from None


def column_types(
    preprocessor: TablePreprocessor, label_column: str | None, ignored: list[str] | None = None
) -> dict[str, pa.DataType]:
    """The types a fitted ``preprocessor`` reads its columns as: numeric float64; symbolic, label and
    ``ignored`` columns text."""
    text = [*preprocessor.categories, *([label_column] if label_column else []), *(ignored or [])]
    return dict.fromkeys(preprocessor.numeric, pa.float64()) | dict.fromkeys(text, pa.string())


def read_frames(
    path: Path, chunk_rows: int, types: dict[str, pa.DataType] | None = None, columns: list[str] | None = None
) -> Iterator[pd.DataFrame]:
    """A CSV or Parquet file as DataFrames of ``chunk_rows`` rows (the last one shorter); ``types``: the
    CSV columns' types (others inferred from the file's first block); ``columns``: only these, in this
    order (a Parquet file's as text). A CSV file reads as the in-memory reader (pandas) reads it: its
    column names (``Unnamed: 0`` for an empty one; a name given twice is refused), missing values (blank, NA,
    null ... in text columns too) and quoted line breaks."""
    pool = pa.default_memory_pool()
    try:
        if not is_parquet(path):  # a CSV (pyarrow decompresses .gz and .bz2)
            batches = open_csv_reader(path, types, columns)
        else:
            batches = parquet_batches(path, chunk_rows, columns)
        pending = None
        for batch in batches:
            undecoded = [f.name for f in batch.schema if pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)]
            if undecoded and not is_parquet(path):  # pyarrow's type for text not UTF-8
                raise DataError(f"{path} {NOT_UTF8} (column {undecoded[0]!r})")
            frame = batch.to_pandas()
            pending = frame if pending is None else pd.concat([pending, frame], ignore_index=True)
            while len(pending) >= chunk_rows:
                yield pending.iloc[:chunk_rows].reset_index(drop=True)
                pending = pending.iloc[chunk_rows:]
                pool.release_unused()  # pyarrow's allocator keeps freed blocks otherwise: 100s of MiB
        if pending is not None and len(pending):
            yield pending.reset_index(drop=True)
    except DataError:
        raise
    except UnicodeDecodeError:
        raise DataError(f"{path} {NOT_UTF8}") from None
    except EOFError:
        raise DataError(f"{path} {CUT_SHORT}") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} is empty") from None
    except (pa.ArrowInvalid, OSError, ValueError) as err:
        # ("Row #3: ": pyarrow's serial reader, as under OMP_NUM_THREADS=1, numbers rows; the line is found here)
        message = named_columns(re.sub(r"Row #\d+: ", "", str(err).splitlines()[0]), path)
        if "Truncated compressed stream" in message:  # pyarrow's EOFError
            raise DataError(f"{path} {CUT_SHORT}") from None
        if "invalid UTF8 data" in message:  # a text column's type given (a later pass, or scoring)
            column = re.search(r"CSV column '(.*)':", message)
            raise DataError(f"{path} {NOT_UTF8}" + (f" (column {column[1]!r})" if column else "")) from None
        if re.match(r"CSV parse error: Expected \d+ columns, got \d+", message):
            message = re.sub(r"^(CSV parse error)", r"\1" + ragged_line(path, csv_delimiter(path)), message)
            message += " (a separator inside values, or a line above the header: a title, a comment, Excel's sep=?)"
        raise DataError(f"{path}: {message}") from None


def open_csv_reader(path: Path, types: dict[str, pa.DataType] | None, columns: list[str] | None = None):
    """pyarrow's streaming reader of a CSV file, as ``read_frames`` reads it (``types``: the columns' types,
    others inferred from its first block of 1 MiB; ``columns``: only these)."""
    delimiter = csv_delimiter(path)
    names = [str(c) for c in header_names(path, delimiter)]
    warn_if_headerless(names, path)
    options = csv.ConvertOptions(column_types=types or {}, null_values=MISSING_TEXT, strings_can_be_null=True)
    options.include_columns = columns or []
    read = csv.ReadOptions(block_size=1 << 20, column_names=names, skip_rows=header_lines(path, delimiter))
    parse = csv.ParseOptions(delimiter=delimiter, newlines_in_values=True)
    # the compression named, not left to pyarrow: it matches .gz and .bz2 in lower case only
    codec = {".gz": "gzip", ".bz2": "bz2"}.get(path.suffix.lower())
    source = pa.input_stream(str(path), compression=codec) if codec else path
    return csv.open_csv(source, read_options=read, parse_options=parse, convert_options=options)


def header_names(path: Path, delimiter: str) -> list:
    """The names in a CSV file's header. (pandas 2 decodes a whole first block for them: bytes not UTF-8 in
    a row below would fail the header's read, not the column's, which the row reader then names.)"""
    names = list(pd.read_csv(path, sep=delimiter, index_col=False, nrows=0, encoding_errors="replace").columns)
    if any("\ufffd" in str(name) for name in names):  # (the header itself not UTF-8)
        raise DataError(f"{path} {NOT_UTF8} (its header)")
    check_header_names_unique(path, delimiter)
    return names


def header_lines(path: Path, delimiter: str) -> int:
    """The lines of a CSV file up to its header row, that row included (blank lines before it and line
    breaks inside its quoted cells count): pyarrow's ``skip_rows`` counts lines, not rows."""
    with open_text(path, newline="", encoding="utf-8-sig", errors="replace") as file:
        reader = stdlib_csv.reader(file, delimiter=delimiter)  # (a line of spaces is blank, as pandas reads it)
        return next((reader.line_num for row in reader if row and (len(row) > 1 or row[0].strip())), 0)


def named_columns(message: str, path: Path) -> str:
    """pyarrow's CSV message with "column #3" replaced by the column's name (from the header line)."""
    if is_parquet(path) or "column #" not in message:
        return message
    with open_text(path, newline="", errors="replace") as file:
        names = next(stdlib_csv.reader(file, delimiter=csv_delimiter(path)), [])

    def name(match: re.Match) -> str:
        number = int(match.group(1))
        return f"column {names[number]!r}" if number < len(names) else match.group(0)

    message = re.sub(r"column #(\d+)", name, message)
    message = message.replace("CSV conversion error to double: invalid value", "not a number:")
    bad = re.match(r"In CSV column '(.*)': not a number: '(.*)'$", message)
    if bad and bad[1] in names:  # pyarrow says what, not where
        found = line_of_value(path, names.index(bad[1]), bad[2])
        if bad[2] == bad[1] and found:
            return REPEATED_HEADER.format(where=f"line {found[0]}")
        if found:  # (both: other messages count data rows from 0)
            line, row = found
            message += f" (line {line}: row {row}, the {ordinal(row + 1)} data row)"
    return message


def parquet_batches(path: Path, rows: int, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    """A Parquet file's record batches of ``rows`` rows, read page by page: no pre-buffering of whole
    column chunks (a row group decoded at once, or pre-buffered, peaked at 1.1 GB on 5 M rows; this way
    680 MiB). ``columns``: only these, as text (an integer id with nulls stays 12, not 12.0)."""
    check_parquet_columns_unique(path)
    reader = parquet.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)
    for batch in reader.iter_batches(batch_size=rows, use_threads=False, columns=columns):
        if columns:
            batch = pa.RecordBatch.from_arrays([integers_as_text(batch[c]) for c in columns], names=columns)
        yield batch


def integers_as_text(values: pa.Array) -> pa.Array:
    """An integer column as text (pandas would make one with nulls float: 12 -> 12.0, large ids rounded);
    any other as it is."""
    return values.cast(pa.string()) if pa.types.is_integer(values.type) else values


def as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Each value as pandas shows it (a timestamp 2020-01-01 01:02:03, a boolean True, a list [1, 2]),
    None where missing."""
    return frame.apply(_column_as_text)


def _column_as_text(column: pd.Series) -> pd.Series:
    if pd.api.types.is_string_dtype(column):  # (a CSV's: text already; no call per value)
        return column.astype(object).where(column.notna(), None)
    return column.astype(object).map(lambda v: None if _missing(v) else str(v))


def _missing(value) -> bool:
    return value is None or (not isinstance(value, (list, tuple, dict, np.ndarray)) and bool(pd.isna(value)))


def column_names(path: Path | str) -> list[str] | None:
    """A CSV or Parquet table's column names, as the readers name them; None for an NPZ file (no names)."""
    path = table_file(path)
    if path.suffix.lower() == ".npz":
        return None
    try:
        if is_parquet(path):
            check_parquet_columns_unique(path)
            schema = parquet.read_schema(path)
            # pandas' stored index (a filtered frame's __index_level_0__): the readers restore it, not a column
            index = {c for c in (schema.pandas_metadata or {}).get("index_columns", []) if isinstance(c, str)}
            return [str(c) for c in schema.names if c not in index]
        return [str(c) for c in header_names(path, csv_delimiter(path))]
    except (pa.ArrowInvalid, pd.errors.EmptyDataError, UnicodeDecodeError, EOFError, ValueError, OSError) as err:
        raise DataError(f"{path} is not a readable table: {str(err).splitlines()[0]}") from None


class KeptColumns:
    """Columns of a CSV or Parquet table (ids) by row number, as text (missing values blank), for the rows
    ``predict`` scores: read in step with them, a chunk at a time (rows asked for in rising order, as the
    readers give them; a step back reads the file again from its start), or ``whole`` (the file is read
    whole by the rest of the run too: a table trained in memory, a ``.csv.xz``)."""

    def __init__(self, path: Path | str, columns: list[str], whole: bool = False) -> None:
        self.path, self.columns = table_file(path), columns
        self._whole = self._read_whole() if whole or not streamed(self.path) else None
        self._frames: Iterator[pd.DataFrame] | None = None
        self._start, self._buffer = 0, pd.DataFrame(columns=columns)  # rows _start, _start + 1, ...

    def _read_whole(self) -> pd.DataFrame:
        if is_parquet(self.path):
            table = parquet.read_table(self.path, columns=self.columns)
            return as_text(pd.DataFrame({c: integers_as_text(table[c]).to_pandas() for c in self.columns}))
        frame = pd.read_csv(self.path, sep=csv_delimiter(self.path), index_col=False, usecols=self.columns, dtype=str)
        return as_text(frame[self.columns])

    def rows(self, index: np.ndarray) -> pd.DataFrame:
        """The kept columns of rows ``index`` (B,), in that order."""
        if len(index) == 0:
            return pd.DataFrame(columns=self.columns)
        low, high = int(index.min()), int(index.max())
        if self._whole is not None:
            if high >= len(self._whole):
                raise DataError(f"{self.path} has fewer rows than were scored: changed while it was scored?")
            return self._whole.iloc[index].reset_index(drop=True)
        if self._frames is None or low < self._start:  # (first, or back to an earlier row)
            self._frames = read_frames(self.path, CHUNK_ROWS, dict.fromkeys(self.columns, pa.string()), self.columns)
            self._start, self._buffer = 0, pd.DataFrame(columns=self.columns)
        drop = min(max(0, low - self._start), len(self._buffer))  # rows before these: never asked again
        self._buffer, self._start = self._buffer.iloc[drop:], self._start + drop
        chunks, end = [self._buffer], self._start + len(self._buffer)
        while end <= high:
            frame = next(self._frames, None)
            if frame is None:
                raise DataError(f"{self.path} has fewer rows than were scored: changed while it was scored?")
            if end + len(frame) <= low and len(chunks) == 1 and chunks[0].empty:  # (another rank's chunk: passed)
                self._start = end = end + len(frame)
                continue
            chunks.append(as_text(frame[self.columns]))
            end += len(frame)
        if len(chunks) > 1:
            self._buffer = pd.concat(chunks, ignore_index=True)  # (once: a batch across many chunks copies once)
        return self._buffer.iloc[index - self._start].reset_index(drop=True)


@dataclass
class FileScan:
    """What one pass over a file tells before anything is encoded: ``head`` (its first rows, with every
    symbolic column's categories over the whole file, for ``TablePreprocessor.fit_columns``), the labels
    (N,) bool or None, and the number of rows."""

    head: RawTable
    is_anomaly: np.ndarray | None
    n_rows: int


ID_GUARD = 100_000  # distinct values a symbolic column may gather before the id rule is checked mid-file


def check_categories(column: str, categories: set[str], present: int) -> None:
    """The id rule (``identifier_like``) on a column's categories (missing values not counted) in its
    ``present`` values."""
    n_distinct = len(categories) - ("nan" in categories)
    if identifier_like(n_distinct, present):
        raise identifier_error(column, n_distinct, present, next(iter(categories - {"nan"})))


def scan_file(
    path: Path,
    label_column: str | None,
    symbolic_columns: list[str] | None,
    chunk_rows: int,
    ignore_columns: list[str] | None = None,
) -> FileScan:
    """One pass over a CSV or Parquet file: columns, category sets and labels. Without
    ``symbolic_columns`` they are chosen on the file's first chunk by the in-memory reader's rule
    (``infer_symbolic_columns``: text and true/false; text of numbers only is numeric; dates and ids
    refused, ids also on the whole file); the pass reads every other column as float64 and these as text,
    as the encoding passes do; ``ignore_columns`` are read as text and left out."""
    with ignoring(ignore_columns):  # (advice to ignore a column keeps those given)
        return _scan_file(path, label_column, symbolic_columns, chunk_rows, ignore_columns)


def _scan_file(
    path: Path, label_column: str | None, symbolic_columns: list[str] | None, chunk_rows: int, ignore_columns
) -> FileScan:
    table_file(path)
    label, ignored = [label_column] if label_column else [], list(ignore_columns or [])
    text = dict.fromkeys([*(symbolic_columns or []), *label, *ignored], pa.string())
    blank = [] if is_parquet(path) else blank_first_rows(path, text)
    text |= dict.fromkeys(blank, pa.string())  # (had: pyarrow's null type, and its error at the first value)
    first = next(read_frames(path, chunk_rows, text), None)
    if first is None:
        raise DataError(f"{path} has no rows")
    check_no_repeated_header(first, path)
    if label_column is not None and label_column not in first.columns:
        named = columns_named(first.columns, [label_column])
        raise DataError(f"label column {label_column!r} is not in {path}; {named}")
    absent = absent_columns(ignored, first.columns, path)
    if absent:
        raise DataError(f"ignore_columns {absent} are not in {path}; {columns_named(first.columns, absent)}")
    features = first.drop(columns=label + [c for c in ignored if c in first.columns])
    inferred = symbolic_columns is None
    if inferred:  # the in-memory reader's rule, on the first chunk (its id rule also on the whole file below)
        symbolic_columns = infer_symbolic_columns(features, empty_is_error=False, whole=False)[1]  # empty: below
    missing = [c for c in symbolic_columns if c not in features.columns]
    if missing:
        raise DataError(f"symbolic columns {missing} are not in {path}")
    check_unlisted_text(features, symbolic_columns)
    if not is_parquet(path):  # (on the first chunk's rows)
        warn_if_csv_texts_read_as_missing(path, features, symbolic_columns, inferred)
    numeric = [c for c in features.columns if c not in symbolic_columns]
    types = dict.fromkeys(numeric, pa.float64()) | dict.fromkeys([*symbolic_columns, *label, *ignored], pa.string())
    categories, labels, n_rows = {c: set() for c in symbolic_columns}, [], 0
    present = dict.fromkeys(symbolic_columns, 0)
    numbers_first = numeric if inferred else []
    chosen = [c for c in symbolic_columns if isinstance(features[c].dtype, pd.CategoricalDtype)]  # (warned of)
    id_checked = [c for c in symbolic_columns if c not in chosen] if inferred else []
    # empty in the first chunk too (else its values chose): text, or numbers further on?
    late = [c for c in blank if c in symbolic_columns and first[c].isna().all()] if inferred else []
    for frame in typed_by_first_rows(read_frames(path, chunk_rows, types), numbers_first, chunk_rows, path):
        late = refuse_numbers_after_blank_rows(frame, late, n_rows, chunk_rows, path)
        if label_column is not None:
            labels.append(anomaly_labels(frame[label_column], label_column))
        n_rows += len(frame)
        for column in symbolic_columns:
            text = category_text(frame[column])
            categories[column].update(text.unique().tolist())
            present[column] += int((text != "nan").sum())  # a blank, NA ... is missing (in-memory reader's rule)
            if column in id_checked and len(categories[column]) > ID_GUARD:  # an id's grow as large as the file
                check_categories(column, categories[column], present[column])
    refused = []
    for column in symbolic_columns if inferred else []:  # the in-memory reader's rules, on the whole file
        try:
            if column in id_checked:  # (a categorical is the user's choice: warned of on the first rows)
                check_categories(column, categories[column], present[column])
            if not present[column]:
                raise empty_column_error(column)
        except DataError as err:  # each such column named at once, as the in-memory reader does
            refused.append((column, err))
    refuse_columns(refused)
    head = RawTable(features.head(1000), None, [str(c) for c in symbolic_columns])
    head.categories = {c: sorted(values) for c, values in categories.items()}
    return FileScan(head, np.concatenate(labels) if label_column is not None else None, n_rows)


def blank_first_rows(path: Path, text: dict[str, pa.DataType]) -> list[str]:
    """The columns of a CSV file, other than those of ``text``, without a value in the block pyarrow types
    its columns by (1 MiB): it types them null and refuses their first value further on; read as text."""
    try:
        schema = open_csv_reader(path, text).schema
    except (pa.ArrowInvalid, OSError, ValueError, EOFError, UnicodeDecodeError):  # (the reading pass names it)
        return []
    return [field.name for field in schema if pa.types.is_null(field.type) and field.name not in text]


def refuse_numbers_after_blank_rows(frame: pd.DataFrame, late: list, first_row: int, chunk_rows: int, path) -> list:
    """``late``: columns empty in the file's first ``chunk_rows`` rows, made symbolic by that; a
    ``DataError`` where one's first values (in ``frame``, rows from ``first_row``) are numbers, else the
    columns still without a value."""
    left = []
    for column in late:
        present = frame[column].dropna()
        if not len(present):
            left.append(column)
        elif pd.to_numeric(present, errors="coerce").notna().all():
            row = first_row + int(present.index[0])
            raise DataError(
                f"{path}: column {column!r} is empty in the file's first {chunk_rows:,} rows and holds numbers "
                f"further on (e.g. {present.iloc[0]!r}, row {row:,}): out of core, a column's type comes from those "
                "rows; fill its missing values (a model reads no missing number), or list it in symbolic_columns "
                "(with every other text column) if its numbers are codes"
            )
    return left


def typed_by_first_rows(
    frames: Iterator[pd.DataFrame], numeric: list, chunk_rows: int, path: Path
) -> Iterator[pd.DataFrame]:
    """``frames``, whose columns ``numeric`` were found numeric on the first ``chunk_rows`` rows: a text value
    further on (a CSV value pyarrow cannot read as a number, a Parquet text column's) is named with that rule
    (in memory, the whole column decides); a missing value written with spaces (`` NA ``) as missing."""

    def refuse(column: str, value: str, where: str) -> DataError:
        if value.strip() in MISSING_TEXT:
            return DataError(f"{where}: numeric column {column!r} has a missing value ({value!r}); fill or drop it")
        return DataError(
            f"{where}: out of core, a column's type comes from the file's first {chunk_rows:,} rows, where "
            f"{column!r} holds numbers only; if it is a text column, list it in symbolic_columns (with every other "
            "text column), or fix the value"
        )

    try:
        for frame in frames:
            for column in [c for c in numeric if not pd.api.types.is_numeric_dtype(frame[c])]:  # (Parquet text)
                text = not_numbers(frame[column], pd.to_numeric(frame[column], errors="coerce"))
                if text:
                    raise refuse(column, str(text[0]), f"{path}: column {column!r} holds {text[0]!r}")
            yield frame
    except DataError as err:
        late = re.search(r"In CSV column '(.*)': not a number: '(.*)'", str(err))
        if late is None or late[1] not in numeric:
            raise
        raise refuse(late[1], late[2], str(err)) from None


class DiskRows:
    """Float32 rows (N, F) of a ``.npy`` file, read like a tensor: ``rows[a:b]`` or ``rows[index]`` (a copy,
    as a tensor), straight from the file (``pread``, no memory map): none of the file stays in this
    process's memory however large it is (the operating system's page cache keeps what it can).
    ``np.asarray(rows)`` reads it whole."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with open(path, "rb") as file:
            npy = np.lib.format
            version = npy.read_magic(file)
            read_header = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
            self.shape, fortran_order, dtype = read_header(file)
            self._offset = file.tell()
        if fortran_order or dtype != np.float32 or len(self.shape) != 2:
            raise DataError(f"{path} does not hold float32 rows")
        self._row_bytes = self.shape[1] * 4

    @classmethod
    def create(cls, path: Path, shape: tuple[int, int]) -> DiskRows:
        """A new file of ``shape`` float32 rows (zeros until written)."""
        with open(path, "wb") as file:
            header = {"descr": "<f4", "fortran_order": False, "shape": tuple(shape)}
            np.lib.format.write_array_header_1_0(file, header)
            file.truncate(file.tell() + shape[0] * shape[1] * 4)
        return cls(path)

    def write(self, positions: np.ndarray, values: np.ndarray) -> None:
        """Rows ``values`` (n, F) into rows ``positions`` (n,), one write per run of consecutive positions."""
        values = np.ascontiguousarray(values, dtype=np.float32)
        runs = np.flatnonzero(np.diff(positions) != 1) + 1
        with open(self.path, "r+b", buffering=0) as file:
            for where, block in zip(np.split(positions, runs), np.split(values, runs), strict=True):
                if block.size:
                    offset = self._offset + int(where[0]) * self._row_bytes
                    self._transfer(os.pwritev, file, memoryview(block).cast("B"), offset)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index) -> torch.Tensor:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                raise IndexError("DiskRows reads row ranges with step 1 only")
            runs = [(start, max(stop - start, 0))]
        else:
            index = np.asarray(index)
            index = np.flatnonzero(index) if index.dtype == bool else index.astype(np.int64).ravel()
            if index.size and not 0 <= index.min() <= index.max() < len(self):
                raise IndexError(f"row index out of range for {len(self)} rows")
            runs = [(int(row), 1) for row in index]
        out = np.empty((sum(n for _, n in runs), self.shape[1]), dtype=np.float32)
        if out.size:
            buffer, at, file = memoryview(out).cast("B"), 0, self._reader()
            for first, n in runs:
                size = n * self._row_bytes
                self._transfer(os.preadv, file, buffer[at : at + size], self._offset + first * self._row_bytes)
                at += size
        return torch.from_numpy(out)

    def _reader(self):
        """The file, opened once per process and kept open: it stays readable when the process that wrote
        it (DDP's first process on this machine) removes its folder first."""
        if self.__dict__.get("_file") is None:
            self._file = open(self.path, "rb", buffering=0)  # noqa: SIM115 (closed with this object)
        return self._file

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_file": None}  # a process that unpickles these rows opens its own

    def _transfer(self, call, file, view: memoryview, offset: int) -> None:
        """``os.preadv`` or ``os.pwritev`` of the bytes ``view`` at ``offset``, repeated until every byte
        has moved (one call moves at most about 2 GiB)."""
        while len(view):
            moved = call(file.fileno(), [view], offset)
            if moved <= 0:
                raise DataError(f"{self.path}: could not {'read' if call is os.preadv else 'write'} its rows")
            view, offset = view[moved:], offset + moved

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        rows = self[:].numpy()
        return rows if dtype is None else rows.astype(dtype)


ROW_FOLDER_PREFIX = "dagmm-rows-"
ROW_FOLDER_OWNER = "owner"  # "<host> <pid> <pid namespace>" of the process that wrote the rows and removes them


def process_identity() -> str:
    """This machine and process as an owner file names them: host, pid, and the pid namespace (containers
    that share a temporary folder and a host name count pids apart)."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = "-"
    return f"{socket.gethostname()} {os.getpid()} {namespace}"


def claim_row_folder(folder: Path) -> None:
    """Create ``folder`` for a run's rows, marked as this process's, and remove the row folders beside it
    that killed runs left (SIGKILL, the out-of-memory killer: no clean-up runs; each can hold GBs), those
    first: their space back before this one's owner file is written."""
    for other in folder.parent.glob(f"{ROW_FOLDER_PREFIX}*"):
        if other != folder and not owner_running(other):
            shutil.rmtree(other, ignore_errors=True)
    folder.mkdir()
    (folder / ROW_FOLDER_OWNER).write_text(process_identity() + "\n")


def owner_running(folder: Path) -> bool:
    """False only where ``folder``'s owner file names this machine and pid namespace and a process that has
    ended; a folder without one (being made, or an older version's), another machine's or container's (a
    shared temporary folder), or on a system without POSIX signals counts as in use."""
    try:
        host, pid, namespace = (folder / ROW_FOLDER_OWNER).read_text().split()
        own_host, _, own_namespace = process_identity().split()
        if os.name != "posix" or (host, namespace) != (own_host, own_namespace):
            return True
        os.kill(int(pid), 0)  # signal 0: only whether the process exists
    except ProcessLookupError:
        return False
    except (OSError, ValueError):  # unreadable, not ours to signal (PermissionError: it runs), malformed
        return True
    return True


def write_split_rows(
    folder: Path,
    frames: Callable[[], Iterator[pd.DataFrame]],
    preprocessor: TablePreprocessor,
    splits: dict[str, np.ndarray],
    n_rows: int,
    fit_scaling: bool = True,
) -> dict[str, DiskRows]:
    """Encode the file's rows chunk by chunk and write each split's scaled rows, in the split's order, to
    ``<folder>/<split>.npy``. ``frames``: a fresh pass over the file's chunks; ``splits``: the row numbers
    of each split (disjoint). The scaling is fitted first (unless ``fit_scaling`` is False: the
    preprocessor's own), in a pass of its own, on the training rows' minimum and maximum, so the rows
    equal an in-memory encoding."""
    names = list(splits)
    split_of = np.full(n_rows, -1, dtype=np.int8)  # row number -> its split (-1: none), position in it
    position = np.zeros(n_rows, dtype=np.int64)
    for number, rows in enumerate(splits.values()):
        split_of[rows], position[rows] = number, np.arange(len(rows))
    if fit_scaling:
        extremes, first, trained = ColumnExtremes(), 0, 0
        for frame in frames():  # the scaling's extremes over the training rows
            chunk = split_of[first : first + len(frame)] == names.index("train")
            if chunk.any():
                extremes.update(preprocessor.encode(frame, first, own_rows=True)[chunk])
                trained += int(chunk.sum())
            first += len(frame)
        if not trained:
            raise DataError("no training rows to fit the scaling on")
        preprocessor.fit_extremes(extremes, trained)  # min-max scaling depends on nothing else
    width = preprocessor.n_features
    outputs = [DiskRows.create(folder / f"{name}.npy", (len(rows), width)) for name, rows in splits.items()]
    first = 0
    for frame in frames():
        scaled = preprocessor.scale(preprocessor.encode(frame, first, own_rows=True))
        for number, output in enumerate(outputs):
            mine = split_of[first : first + len(frame)] == number
            output.write(position[first : first + len(frame)][mine], scaled[mine])
        first += len(frame)
    return dict(zip(splits, outputs, strict=True))
