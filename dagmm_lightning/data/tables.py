"""Raw tables and their encoding: one-hot for symbolic columns, min-max scaling fitted on training rows."""

from __future__ import annotations

import bz2
import csv
import gzip
import importlib.util
import io
import json
import lzma
import re
import shlex
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from dagmm_lightning.errors import DataError, warn
from dagmm_lightning.networks.dagmm import SCALED_LIMIT

# pandas 2's read_csv and to_numeric round about a third of decimal texts to a neighbouring float (pandas 3
# and pyarrow read every one exactly): ask pandas 2 for the exact parser, so that a file reads to the
# same numbers whichever reader, version or path (in memory, out of core, predict) reads it
EXACT_CSV_FLOATS = {"float_precision": "round_trip"} if int(pd.__version__.split(".")[0]) < 3 else {}


def numbers_of(values: pd.Series) -> pd.Series:
    """``pd.to_numeric(values, errors="coerce")``, a text's number read exactly (Python's float) where
    pandas would round it (``EXACT_CSV_FLOATS``)."""
    coerced = pd.to_numeric(values, errors="coerce")
    if not EXACT_CSV_FLOATS or pd.api.types.is_numeric_dtype(values):
        return coerced
    texts = values.map(lambda v: isinstance(v, str)).to_numpy(dtype=bool) & coerced.notna().to_numpy()
    if texts.any():
        exact = []
        for text, number in zip(values[texts], coerced[texts], strict=True):
            try:
                exact.append(float(text))
            except ValueError:  # (a text to_numeric reads that float() does not: its reading)
                exact.append(number)
        coerced = coerced.astype(np.float64)
        coerced[texts] = exact
    return coerced


def category_text(values: pd.Series, as_number: bool = False, missing_text: bool = True) -> pd.Series:
    """A symbolic column's values as the text its categories are named by, without surrounding spaces;
    true/false in any case (a pandas bool, or the words as read from a CSV file) become ``true`` / ``false``;
    a whole number is written as an integer without sign for 0 or +, also when written as a decimal
    (``2.0``: integers that pandas read as floats, one value being missing); leading zeros stay (``007``);
    a missing value becomes ``nan`` (its own category, whatever pandas' version: pandas 3 keeps it missing
    in ``astype(str)``), and so does (``missing_text``) a text the CSV readers read as missing (a blank,
    ``NA``, ``null`` ...: ``MISSING_TEXT``), so that a Parquet file or a DataFrame reads as its CSV does.
    ``as_number``: every number as its value (``007`` is ``7``, ``1.50`` is ``1.5``), for matching a value
    to a category written otherwise. Worked out once per distinct value."""
    try:
        codes, uniques = pd.factorize(values, use_na_sentinel=False)
    except TypeError:  # unhashable: lists, dicts, arrays
        raise DataError(f"column {values.name!r} holds lists or other containers, not single values") from None
    if (codes < 0).any():  # (pandas 2 keeps a missing value's -1 for a pyarrow dictionary column)
        codes, uniques = np.where(codes < 0, len(uniques), codes), pd.Index([*uniques, None], dtype=object)
    distinct = pd.Series(uniques)
    text = distinct.astype(str).str.strip()
    if distinct.hasnans:
        text = text.where(distinct.notna(), "nan")
    if missing_text:
        text = text.where(~text.isin(MISSING_TEXT), "nan")
    text = text.str.replace(WHOLE_NUMBER, r"\1", regex=True).replace("-0", "0")
    if as_number:
        whole = text.str.fullmatch(r"-?\d+")
        text[whole] = [str(int(t)) for t in text[whole]]  # exactly, past 2**53 too
        number = pd.to_numeric(text.where(~whole), errors="coerce")
        decimal = np.isfinite(number) & ~whole
        text[decimal] = [str(int(v)) if v.is_integer() else repr(v) for v in number[decimal].astype(float)]
    lower = text.str.lower()
    text = lower.where(lower.isin(["true", "false"]), text)
    return pd.Series(text.to_numpy(dtype=object)[codes], index=values.index, dtype=object)


WHOLE_NUMBER = r"^\+?(-?\d+)(?:\.0*)?$"
# what pandas' read_csv reads as missing (its documented defaults); pyarrow is told to read them alike
MISSING_TEXT = [
    *["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>"],
    *["N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"],
]
TRUTH_AS_NUMBER = {"true": "1", "false": "0"}


def category_codes(categories: list[str], values: pd.Series) -> np.ndarray:
    """Each value's position in the trained ``categories`` (N,), -1 for a category not seen in training.
    Values and categories compare as ``category_text`` writes them, so 2 and 2.0 are one category; a value
    found in none compares as a number (``as_number``: 7 finds ``007``, trained on a file that kept the
    text, and ``007`` finds ``7``, trained on one pandas read as numbers); a column trained on true/false
    (and missing values) reads 1/0 as true/false, one trained on 1/0 reads true/false as 1/0; a missing
    value finds a category named by a missing-value text (``""``: checkpoints trained out of core before
    blanks were read as missing there). A missing-value text (``""``, ``NA`` ...) is the missing value
    unless the categories name it apart (checkpoints trained on a Parquet file or a DataFrame before such
    texts were read as missing there)."""
    names = category_text(pd.Series(categories, dtype=object), missing_text=False)  # as saved
    text = category_text(values, missing_text=False)
    known = set(names) - {"nan"}
    if known and known <= set(TRUTH_AS_NUMBER):
        text = text.replace({number: word for word, number in TRUTH_AS_NUMBER.items()})
    elif known and known <= set(TRUTH_AS_NUMBER.values()):
        text = text.replace(TRUTH_AS_NUMBER)
    codes = positions(names, text)
    unseen = codes < 0
    if unseen.any():
        text[unseen] = text[unseen].where(~text[unseen].isin(MISSING_TEXT), "nan")
        codes[unseen] = positions(names, text[unseen])
        unseen = codes < 0
    if unseen.any():
        codes[unseen] = positions(
            category_text(names, as_number=True, missing_text=False), category_text(text[unseen], as_number=True)
        )
    missing = (codes < 0) & (text == "nan").to_numpy()
    saved = [i for i, name in enumerate(names) if name in MISSING_TEXT and name != "nan"]
    if missing.any() and saved and "nan" not in set(names):
        codes[missing] = saved[0]
    return codes


def positions(names: pd.Series, text: pd.Series) -> np.ndarray:
    """Each of ``text``'s position in ``names`` (its first occurrence: older checkpoints may list 2 and
    2.0 apart), -1 where absent."""
    first = ~names.duplicated()
    code_of = pd.Series(np.flatnonzero(first), index=names[first].to_numpy())
    return text.map(code_of).fillna(-1).to_numpy(dtype=np.int64)


IGNORE = "leave it out with ignore_columns {}"  # the column as a list in JSON, quoted for a shell
NOT_UTF8 = "is not UTF-8 text (another encoding, or a binary file such as gzip or Excel?); save it as a UTF-8 CSV"
TIME_KINDS = ("datetime", "date", "timedelta", "time", "period")  # pandas' infer_dtype names of times
DATE_ADVICE = "turn them into numbers (e.g. hour, weekday)"
CSV_DELIMITERS = ",;\t|"
PARQUET_SUFFIXES = (".parquet", ".pq")
MISSING_SHOWN = "missing values"  # a category of missing values (pandas' nan), as messages name it
REPEATED_HEADER = "{where} repeats the header line (files joined together?); remove it"
# a decimal comma (1,5), thousands separators (1,234,567.5; 1.234,5; 1 234; 1'234) or a percentage (12%);
# not 192.168.100.200 (dots between groups only with a decimal comma after them)
FORMATTED_NUMBER = re.compile(
    r"^\s*[-+]?(?:\d*,\d+|\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d{1,3}(?:\.\d{3})+,\d+"
    r"|\d{1,3}(?:['\s\u00a0\u202f]\d{3})+(?:[.,]\d+)?|\d+(?:[.,]\d+)?\s*%)\s*$"
)

#: said of a compressed file whose data ends early (Python's EOFError, pyarrow's error)
CUT_SHORT = "ends within its compressed data (a file cut short: a copy or a download that stopped?)"

LEADING_ZERO = re.compile(r"^\s*[-+]?0\d")  # '007', '00501': a code's zeros; not '0', '0.5'


def is_parquet(path: str | Path) -> bool:
    """Whether ``path`` names a Parquet file (by its suffix, any case); other tables are CSV or NPZ."""
    return str(path).lower().endswith(PARQUET_SUFFIXES)


def open_text(path: Path, **options):
    """A text file for reading, decompressed on the fly where its name ends in .gz, .bz2 or .xz."""
    opener = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}.get(Path(path).suffix.lower(), open)
    return opener(path, "rt", **options)


def opened_by_pandas_only(path: Path) -> bool:
    """Whether ``path`` is an archive pandas opens itself (.zip, .zst, .tar, .tgz, .tar.gz ...), whose text
    ``open_text`` cannot read."""
    name = str(path).lower()
    return name.endswith((".zip", ".zst", ".tar", ".tgz", ".tar.gz", ".tar.bz2", ".tar.xz"))


def check_header_names_unique(path: Path, delimiter: str) -> None:
    """Refuses a CSV file whose header names a column twice: pandas would call the second ``a`` ``a.1``,
    a feature of its own in training, and a file of new rows would be scored on its first ``a``, the
    other left out as a column the model does not know, without a word. The header row is read as pandas
    reads it (archives, a byte-order mark, blank lines before it); empty header cells name none."""
    header = pd.read_csv(
        path,
        sep=delimiter,
        header=None,
        nrows=1,
        dtype=str,
        keep_default_na=False,
        index_col=False,
        encoding_errors="replace",
        **EXACT_CSV_FLOATS,  # (text only here; as every read_csv call of the package)
    )
    counts = Counter(name for name in header.iloc[0].tolist() if name) if len(header) else Counter()
    repeated = sorted(name for name, count in counts.items() if count > 1)
    if not repeated:
        return
    if all(pd.to_numeric(pd.Series(repeated), errors="coerce").notna()):  # data rows repeat values, names rarely
        raise DataError(
            f"{path}: its first line names the columns {', '.join(repeated[:5])} more than once: a file "
            "without a header? Add a header line"
        )
    raise DataError(f"{path}: its header names {', '.join(map(repr, repeated[:5]))} more than once; rename them")


def csv_delimiter(path: Path) -> str:
    """A CSV file's field separator: of comma, semicolon, tab and bar, the one that splits the header row
    and the next rows (up to five) into as many fields each, the most (quotes respected); where none does
    (a ragged row), the one that splits the header row into the most. A comma on a tie, for one column,
    and for the archives pandas opens itself (.zip, .zst, .tar)."""
    suffix = Path(path).suffix.lower()
    if suffix == ".zst" and importlib.util.find_spec("zstandard") is None:  # (every CSV read asks this first)
        raise DataError(
            f"{path}: pandas reads .zst files with the zstandard package, which is not installed: pip install "
            "zstandard, or decompress it (zstd -d) or recompress it as .gz"
        )
    if opened_by_pandas_only(path):
        return ","
    try:
        with open_text(path, errors="replace", newline="") as file:
            head = file.read(1 << 16)
    except (OSError, EOFError, lzma.LZMAError):
        return ","  # the reader names the problem
    widths = {}
    for delimiter in CSV_DELIMITERS:
        rows = []
        try:
            for row in csv.reader(io.StringIO(head, newline=""), delimiter=delimiter):
                rows += [len(row)] if row else []
                if len(rows) > 6:
                    break
        except csv.Error:  # an unbalanced quote: the rows before it
            pass
        if len(rows) > 6 or (len(head) == 1 << 16 and len(rows) > 1):
            rows.pop()  # past the six, or cut short by the read
        widths[delimiter] = rows
    consistent = [d for d, rows in widths.items() if len(rows) > 1 and rows[0] > 1 and len(set(rows)) == 1]
    candidates = consistent or list(CSV_DELIMITERS)
    return max(candidates, key=lambda d: widths[d][0] if widths[d] else 0)


def line_of_value(path: Path, column: int, value: str) -> tuple[int, int] | None:
    """(line, data row) of a CSV file's first row (after the header) holding ``value`` in its ``column``: the
    line where it starts, and its number among the data rows (from 0, blank lines skipped as pandas skips
    them); or None."""
    try:
        with open_text(path, newline="", encoding="utf-8-sig", errors="replace") as file:
            reader = csv.reader(file, delimiter=csv_delimiter(path))
            next((row for row in reader if row), None)  # the header
            start, data_row = reader.line_num + 1, 0
            for row in reader:
                if len(row) > column and row[column].strip() == value.strip():
                    return start, data_row
                start, data_row = reader.line_num + 1, data_row + bool(row)
    except (csv.Error, OSError, EOFError, lzma.LZMAError):  # a field past csv's size limit, an archive: not said
        pass
    return None


def first_ragged_row(path: Path, delimiter: str) -> tuple[int, list[str], int] | None:
    """(line, fields, header width) of the first row of a CSV file with another number of fields than its
    header row (blank lines skipped, as pandas skips them, quotes respected: the line is where the row
    starts), or None; None for an archive pandas opens itself (``opened_by_pandas_only``)."""
    if opened_by_pandas_only(path):
        return None
    try:
        with open_text(path, newline="", encoding="utf-8-sig", errors="replace") as file:
            reader = csv.reader(file, delimiter=delimiter)
            header = next((row for row in reader if row), [])
            start = reader.line_num + 1  # where the next row starts (its quoted cells may span lines)
            for row in reader:
                if row and len(row) != len(header) and not (len(row) == 1 and not row[0].strip()):
                    return start, row, len(header)
                start = reader.line_num + 1
            return None
    except (csv.Error, OSError, EOFError, lzma.LZMAError):  # an archive pandas opens itself (.zip): not said
        return None


def ragged_line(path: Path, delimiter: str) -> str:
    """ " (line N)" for the first row of a CSV file whose number of fields differs from its header's, or
    "": the readers' messages say what, not where."""
    ragged = first_ragged_row(path, delimiter)
    return f" (line {ragged[0]})" if ragged else ""


def check_rows_complete(path: Path, delimiter: str, frame: pd.DataFrame) -> None:
    """A ``DataError`` where a row of a CSV file holds fewer fields than its header (a row cut short, or
    the file: a copy or a download that stopped): pandas' reader fills the missing fields with NaN, which a
    text column takes as a category (the chunked reader refuses such a row). Such a row leaves the last
    column missing, so the file is read again (in Python) only where that column has a missing value."""
    if frame.shape[1] < 2 or not frame.iloc[:, -1].isna().any():
        return
    ragged = first_ragged_row(path, delimiter)
    if ragged is not None and len(ragged[1]) < ragged[2]:
        line, fields, width = ragged
        text = delimiter.join(fields)
        raise DataError(
            f"{path}: line {line} holds {len(fields)} field{'s' * (len(fields) != 1)}, the header {width} "
            f"(a row cut short, or the file: a copy or a download that stopped?): {text[:80]!r}; "
            "complete or remove it"
        )


HEADERLESS_WARNED: set[str] = set()


def warn_if_headerless(names: list, path: Path) -> None:
    """Warn when a CSV's header line looks like data (half its names or more are numbers, one with a
    fraction or exponent): a file without a header loses its first row to the column names."""
    numbers = [n for n in map(str, names) if re.fullmatch(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*", n)]
    data_like = numbers and 2 * len(numbers) >= len(names) and any(re.search(r"[.eE]", n) for n in numbers)
    if data_like and str(path) not in HEADERLESS_WARNED:  # once: a file out of core is read in several passes
        HEADERLESS_WARNED.add(str(path))
        warn(
            f"{path}: its header line holds numbers ({', '.join(numbers[:3])}, ...): a file without a header? Its "
            "first row became the column names and is no row; add a header line"
        )


def repeated_header_row(frame: pd.DataFrame) -> int | None:
    """The position of the first row of ``frame`` whose every value is its column's name (a CSV file's
    header line repeated inside it, as when files are joined), or None."""
    text = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if not text or len(text) < len(frame.columns):  # a numeric column cannot hold its name
        return None
    cells = {c: {str(c), re.sub(r"\.\d+$", "", str(c))} for c in frame.columns}  # pandas' a.1 for a second a
    candidates = frame[text[0]].astype(object).isin(cells[text[0]])
    cells = {c: {cell.strip() for cell in names} for c, names in cells.items()}
    for position in np.flatnonzero(candidates.to_numpy(dtype=bool, na_value=False))[:10]:
        if all(str(frame[c].iloc[position]).strip() in cells[c] for c in frame.columns):
            return int(position)
    return None


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, ..., 11th, 12th, 13th, ..., 21st, ..."""
    suffix = "th" if n % 100 in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n:,}{suffix}"


def check_no_repeated_header(frame: pd.DataFrame, path: Path) -> None:
    """A ``DataError`` naming the line where a CSV file's rows (``frame``, its first rows) repeat its header."""
    row = None if is_parquet(path) else repeated_header_row(frame)
    if row is not None:
        found = line_of_value(path, 0, str(frame[frame.columns[0]].iloc[row]))
        where = f"line {found[0]}" if found else f"data row {row + 1}"
        raise DataError(f"{path}: " + REPEATED_HEADER.format(where=where))


LABEL_NAMES = re.compile(r"(is_?)?(anomal\w*|attack\w*|label\w*|outlier\w*|fraud\w*|target|class|y)", re.I)


NORMAL_WORDS = {"normal", "benign", "inlier", "legit", "legitimate", "negative"}  # a text label's normal class
BINARY_LABEL_TEXTS = {"0", "1", "0.0", "1.0", "true", "false", "-1", "-1.0"}  # 0/1, true/false, scikit-learn's -1/1


def label_like_columns(frame: pd.DataFrame) -> list:
    """Columns whose name says label (``is_attack``, ``label``, ``y`` ...) and that hold two values such
    as 0/1, true/false or -1/1 (scikit-learn's outlier labels), or a few texts one of which names the normal
    class (normal/attack; KDDCUP99's normal., smurf., ...: ``NORMAL_WORDS``): in a table read without a
    label column, likely the labels."""
    found = []
    for column in frame.columns:
        if LABEL_NAMES.fullmatch(str(column).strip()):
            values = {str(v).strip().lower() for v in frame[column].dropna().unique()[:50]}
            if len(values) == 2 and values <= BINARY_LABEL_TEXTS:
                found.append(column)
            elif 2 <= len(values) < 50 and {v.rstrip(".") for v in values} & NORMAL_WORDS:
                found.append(column)
    return found


def text_labels(values: pd.Series) -> bool:
    """Whether a label-like column (``label_like_columns``) holds text labels (normal/attack), not numbers."""
    return not {str(v).strip().lower() for v in values.dropna().unique()[:50]} <= BINARY_LABEL_TEXTS


def identifier_like(n_distinct: int, n_rows: int) -> bool:
    """Whether a text column's values are too varied to be categories: more than half of 50 or more
    (present) values differ (an id, a name, free text)."""
    return n_rows >= 50 and n_distinct > 0.5 * n_rows


def identifier_error(
    column, n_distinct: int, n_rows: int, example, hint: str = "list it in symbolic_columns", drop: str = IGNORE
) -> DataError:
    return DataError(
        f"column {column!r} holds {n_distinct} different text values in {n_rows} rows (e.g. {example!r}): an "
        "identifier or free text, not categories (one-hot encoded, every new row would bring a category never "
        f"seen in training); {leave_out(drop, column)}, or {hint} to one-hot encode it"
    )


IGNORED_ALREADY: ContextVar[tuple[str, ...]] = ContextVar("ignored_already", default=())


@contextmanager
def ignoring(columns: list | None):
    """Inside, ``leave_out`` names ``columns`` (the ignore_columns given) before the column it advises to
    leave out: its advice, copied, keeps them (it had named that one alone)."""
    token = IGNORED_ALREADY.set(tuple(str(c) for c in columns or ()))
    try:
        yield
    finally:
        IGNORED_ALREADY.reset(token)


def leave_out(drop: str, column) -> str:
    """``drop`` (how to leave a column out) for ``column`` (or a list of them): ``IGNORE`` names them as the
    list to give, quoted (``ignore_columns '["Unnamed: 0"]'``: without the double quotes, YAML reads that colon
    as a mapping; without the single ones, a shell drops the double ones), after the columns ignored already
    (``ignoring``)."""
    given = column if isinstance(column, list) else [column]
    columns = list(dict.fromkeys([*IGNORED_ALREADY.get(), *map(str, given)]))
    return drop.format(shlex.quote(json.dumps(columns, ensure_ascii=False)))


def refuse_columns(refused: list[tuple], drop: str = IGNORE, also: str = "") -> None:
    """Raises ``refused``'s one error, or one naming each of its (column, error) pairs and how to leave out
    together those whose own advice is to leave them out (``drop``); ``also`` (a sentence) ends it."""
    if len(refused) == 1:
        err = refused[0][1]
        raise DataError(f"{err}\n{also}") if also else err
    if refused:
        each = "\n".join(f"- {err}" for _, err in refused)
        # (only the columns whose own advice is to leave them out: a number written with a decimal comma is a
        # feature to fix, not to drop)
        advised = [column for column, err in refused if drop.split("{")[0].strip() in str(err)]
        them = "them all" if len(advised) == len(refused) else "those"
        together = leave_out(
            drop.replace("leave it out", f"leave {them} out").replace("drop it", f"drop {them}"), advised
        )
        last = f"\n(or {together})" if len(advised) > 1 else ""
        last += f"\n{also}" if also else ""
        raise DataError(f"{len(refused)} columns cannot be features as they are:\n{each}{last}")


def missing_values_note(frame: pd.DataFrame, converted: dict, left: set) -> str:
    """A sentence naming the numeric columns of ``frame`` (read as ``converted``, where it holds them; those in
    ``left`` left out) that hold NaN or inf, with their counts of rows, which training refuses; or ""."""
    gaps = {}
    for column in frame.columns:
        values = converted.get(column, frame[column])
        if column in left or not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            continue
        rows = int((~np.isfinite(values.to_numpy(dtype=np.float64, na_value=np.nan))).sum())
        if rows:
            gaps[column] = rows
    if not gaps:
        return ""
    listed = ", ".join(f"{column!r} ({rows:,} row{'s' * (rows != 1)})" for column, rows in gaps.items())
    return (
        f"Next, training would refuse NaN/inf values in column{'s' * (len(gaps) > 1)} {listed}: fill or drop those rows"
    )


def empty_column_error(column, drop: str = IGNORE) -> DataError:
    why = " (a separator at the end of every line?)" if str(column).startswith("Unnamed: ") else ""
    return DataError(f"column {column!r} has no values{why}; {leave_out(drop, column)}")


def row_numbers(values: pd.Series) -> bool:
    """Whether a numeric column holds consecutive integers, each once, in 50 or more rows (a row number)."""
    present = values.dropna()
    # the span in floats: in a uint8 column's own type, min + 299 overflows
    if len(present) < 50 or float(present.max()) - float(present.min()) != len(present) - 1 or not present.is_unique:
        return False
    return bool((present == np.round(present)).all())


ID_NAMES = re.compile(r"(?:.*[\W_])?(?:id|uuid|guid|identifier)", re.I)  # customer_id, id, user.uuid
CAMEL_ID_NAMES = re.compile(r".*[a-z0-9]I[dD]")  # CustomerID, customerId


def id_named_integers(column, values: pd.Series) -> bool:
    """Whether a numeric column named like an id (``customer_id``, ``CustomerID``, ``uuid``) holds a
    different integer on each of 50 or more rows (present values)."""
    name = str(column).strip()
    if not (ID_NAMES.fullmatch(name) or CAMEL_ID_NAMES.fullmatch(name)):
        return False
    present = values.dropna()
    return len(present) >= 50 and present.is_unique and bool((present == np.round(present)).all())


def follows_the_row_order(values: pd.Series) -> bool:
    """Whether a numeric column looks like a timestamp or a counter, whose later values lie outside its
    training range: integers that only rise (or only fall) from row to row, over 100 or more rows and 50 or
    more different values, far from zero for their span (Unix time: 1.7e9, a day's span 86,400). A file
    sorted by an ordinary feature (an amount, an age: near zero for their span, or not integers) is not."""
    present = values.dropna().to_numpy(dtype=np.float64)
    if len(present) < 100 or not (present == np.round(present)).all():
        return False
    low, high = present.min(), present.max()
    with np.errstate(over="ignore", invalid="ignore"):  # (values near float64's limit: an inf span)
        if min(abs(low), abs(high)) / 2 < high - low:  # spans much of its own magnitude: an ordinary feature
            return False
        steps = np.diff(present)
    return bool(((steps >= 0).all() or (steps <= 0).all()) and len(np.unique(present)) >= 50)


MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?"
DAY = r"(?:0?[1-9]|[12]\d|3[01])"  # a day or a month: 1 to 31
YEAR = r"(?:1\d{3}|2\d{3}|9999)"  # (9999: a sentinel, "valid until further notice")
CLOCK = r"(?:[01]?\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d+)?)?(?:\s?[ap]\.?m\.?)?"
# dates and times ISO-8601 does not cover: 05/01/2021 or 5/1/21 (with - or ., a four-digit year), 5 Jan
# 2021, Jan 5, 2021 (each with an optional time), a time of day (10:30, 9:05 pm), a duration as pandas
# writes it; numbers out of those ranges (versions 6.1.7601, scores 98:87) are not dates
OTHER_DATE_TEXT = re.compile(
    rf"^(?:(?:{DAY}/{DAY}/(?:{YEAR}|\d{{2}})|{DAY}([.-]){DAY}\1{YEAR}"
    rf"|{DAY}[ -]{MONTH}[ -](?:{YEAR}|\d{{2}})|{MONTH} {DAY}(?:st|nd|rd|th)?,? {YEAR})(?:,?[ T]{CLOCK})?"
    rf"|{CLOCK}|[-+]?\d+ days?,? [-+]?{CLOCK})$",
    re.IGNORECASE,
)


def looks_like_dates(texts: pd.Series) -> bool:
    """Whether every one of ``texts`` (not numbers) is a date, time or duration: ISO-8601 with digits in
    it ("now" parses too; mixed UTC offsets count as dates), or one of ``OTHER_DATE_TEXT``'s forms."""
    if len(texts) == 0 or not texts.str.contains(r"\d").all():
        return False
    if texts.str.strip().str.fullmatch(OTHER_DATE_TEXT).all():
        return True
    try:
        return bool(pd.to_datetime(texts, format="ISO8601", errors="coerce", utc=True).notna().all())
    except (ValueError, OverflowError, TypeError):
        return False


def integers_merged_as_float(values: pd.Series) -> object | None:
    """One of an integer column's values past 2^53 when float64 rounds those into fewer different values,
    else None."""
    large = values[(values > 2**53) | (values < -(2**53))]
    merged = bool(len(large)) and large.nunique() > large.astype(np.float64).nunique()
    return large.iloc[0] if merged else None


def check_unlisted_text(frame: pd.DataFrame, symbolic_columns: list) -> None:
    """With ``symbolic_columns`` named, every other column is read as numbers: one that holds text is named,
    with the rule that surprised its user (the list replaces the detection of text columns)."""
    for column in frame.columns:
        values = frame[column]
        if column in symbolic_columns or pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            continue
        if pd.api.types.infer_dtype(values, skipna=True).startswith(TIME_KINDS):
            continue  # (the encoding names dates as such)
        text = not_numbers(values, pd.to_numeric(values, errors="coerce"))
        if text:
            raise DataError(
                f"column {column!r} holds text (e.g. {text[0]!r}) but is not in symbolic_columns: naming "
                "symbolic_columns turns off the detection of text columns, so list every one there, or "
                + leave_out(IGNORE, column)
            )


def not_numbers(values: pd.Series, coerced: pd.Series) -> list:
    """The first of ``values`` (a list of at most one) that ``coerced`` (its ``pd.to_numeric(...,
    errors="coerce")``) could not read as a number; a missing value (or a text read as one: ``MISSING_TEXT``)
    is none."""
    failed = values[coerced.isna() & values.notna()]
    return failed[~failed.astype(str).str.strip().isin(MISSING_TEXT)].iloc[:1].tolist()


def warn_if_missing_text_beside_missing(column, values: pd.Series) -> None:
    """Warn where a column that becomes categories holds missing values and also a text read as one (``NA``,
    ``null`` ...: ``MISSING_TEXT``, a blank aside; a CSV reader turns most of them into missing values
    itself, so a Parquet file or a DataFrame shows them): both become one category, which is wrong where
    the text is a value (``NA``, North America)."""
    if not values.isna().any():
        return
    distinct = pd.Series(values.dropna().unique(), dtype=object).astype(str).str.strip()
    texts = sorted(set(distinct[distinct.isin(MISSING_TEXT) & (distinct != "")]))
    if texts:
        warn(
            f"column {column!r} holds missing values and the text {', '.join(map(repr, texts))}, which reads as "
            "missing too: they are one category; if it is a value (NA for North America?), write it otherwise "
            "(e.g. 'N.A.')"
        )


def warn_if_csv_texts_read_as_missing(path: Path, frame: pd.DataFrame, columns: list, inferred: bool = True) -> None:
    """``warn_if_missing_text_beside_missing`` for a CSV file's ``columns`` that became categories: the
    readers have made both blanks and texts such as ``NA`` missing values, so those columns of ``frame``
    (the file's first ``len(frame)`` rows), where they hold a missing value, are read again as written;
    ``inferred``: ``infer_symbolic_columns`` chose them (and warned of texts it kept, such as ' NA ')."""

    def told(values: pd.Series) -> bool:  # a text kept as written (' NA '): infer_symbolic_columns warned
        return inferred and bool(values.dropna().astype(str).str.strip().isin(MISSING_TEXT).any())

    missing = [c for c in columns if c in frame.columns and frame[c].isna().any() and not told(frame[c])]
    if not missing:
        return
    kept = pd.read_csv(  # (only these columns, as text, and only the rows of frame)
        path,
        sep=csv_delimiter(path),
        index_col=False,
        usecols=missing,
        nrows=len(frame),
        dtype=str,
        keep_default_na=False,
        encoding_errors="replace",
    )
    for column in missing:
        written = kept[column]
        warn_if_missing_text_beside_missing(column, written.where(written.str.strip() != "", None))


def infer_symbolic_columns(
    frame: pd.DataFrame,
    bools_symbolic: bool = True,
    hint: str = "list it in symbolic_columns",
    drop: str = IGNORE,
    empty_is_error: bool = True,
    whole: bool = True,
) -> tuple[pd.DataFrame, list]:
    """The columns of ``frame`` to one-hot encode: text, categoricals and (``bools_symbolic``) booleans. A
    text column of numbers only is read as numbers (the returned frame holds it converted); one of mostly
    numbers, of numbers with a decimal comma, of dates (typed, or as text: ``looks_like_dates`` on its first
    100 values) or of more different values than half its rows (an identifier) is an error (a typo in a
    numeric column, a timestamp or an id must not silently become thousands of categories); ``hint`` says how to one-hot
    encode such a column anyway, ``drop`` how to leave one out. A column without values is an error, or
    with ``empty_is_error=False`` (the first rows of a file) a symbolic column. Where columns are refused and
    ``frame`` is the whole table (``whole``), the refusal also names the numeric columns holding NaN or inf,
    which training refuses next."""
    symbolic, converted, refused = [], {}, []

    def read_column(column) -> None:
        values = frame[column]
        if isinstance(values.dtype, pd.ArrowDtype) and not pd.api.types.is_numeric_dtype(values):
            # pyarrow text (read_csv(dtype_backend="pyarrow")): to_numeric's failures would be NaN, not missing
            values = converted[column] = values.astype(object).where(values.notna(), None)
        kind = pd.api.types.infer_dtype(values, skipna=True)
        if isinstance(values.dtype, pd.CategoricalDtype) or (bools_symbolic and kind == "boolean"):
            symbolic.append(column)  # a categorical is the user's choice; true/false: two categories
            if kind != "boolean":
                warn_if_missing_text_beside_missing(column, values)
            present = values.dropna()
            distinct = present.nunique()
            if kind != "boolean" and identifier_like(distinct, len(present)):  # (warned, not refused)
                example = present.iloc[0].item() if isinstance(present.iloc[0], np.generic) else present.iloc[0]
                warn(
                    f"column {column!r} (a categorical) holds {distinct} different values in "
                    f"{len(present)} rows (e.g. {example!r}): an identifier? Each value is a feature, and "
                    f"every new row would bring a category never seen in training; if so, {leave_out(drop, column)}"
                )
            return
        if kind.startswith(TIME_KINDS):
            raise DataError(f"column {column!r} holds dates or times; {DATE_ADVICE}, or {leave_out(drop, column)}")
        if kind.startswith("complex"):
            raise DataError(f"column {column!r} holds complex numbers; give real and imaginary parts as two columns")
        if not pd.api.types.is_numeric_dtype(values):  # a blank, NA, null ... is missing, as in a CSV file
            blank = values.notna() & values.astype(str).str.strip().isin(MISSING_TEXT)
            if blank.any():
                values = converted[column] = values.where(~blank, None)
        if values.isna().all() and empty_is_error:
            raise empty_column_error(column, drop)
        if pd.api.types.is_numeric_dtype(values) or kind == "boolean":
            example = integers_merged_as_float(values) if kind == "integer" else None
            if example is not None:
                warn(
                    f"column {column!r} holds integers beyond 2^53 (e.g. {example}) that float64, which the "
                    "features are computed in, rounds to fewer different values; an id or a bit mask? If so, "
                    + leave_out(drop, column)
                )
            if kind != "boolean" and row_numbers(values):
                low, high = (f"{v:.0f}" if isinstance(v, float) else str(v) for v in (values.min(), values.max()))
                first = "" if whole else f" in its first {len(values):,} rows"  # (a file read by chunks)
                warn(
                    f"column {column!r} holds the integers {low} to {high}, each once{first}: a "
                    f"row number or id? It is used as a feature; if it is an id, {leave_out(drop, column)}"
                )
            elif kind != "boolean" and id_named_integers(column, values):
                warn(
                    f"column {column!r} holds a different integer on each "
                    + ("row" if whole else f"of its first {len(values):,} rows")
                    + " and is named like an id: it is used "
                    f"as a feature (the model reads its values as amounts); if it is an id, {leave_out(drop, column)}"
                )
            elif kind != "boolean" and follows_the_row_order(values):
                warn(
                    f"column {column!r} holds integers that rise (or fall) with the row order: a timestamp or a "
                    "counter? It is used as a feature, and rows of a later period lie outside its training range "
                    f"and score as anomalies; if so, {leave_out(drop, column)}, or turn it into values that repeat "
                    "(hour, weekday); if the file is only sorted by it, nothing to do"
                )
            return
        present = values.dropna()
        if present.map(lambda v: isinstance(v, (list, tuple, dict, set, np.ndarray))).any():
            raise DataError(
                f"column {column!r} holds lists or other containers, not single values; {leave_out(drop, column)}"
            )
        numeric = pd.to_numeric(present, errors="coerce")
        if len(present) and numeric.notna().all():
            converted[column] = numbers_of(values)
            written = present.astype(str).str.strip()
            long = written.str.fullmatch(r"[+-]?0*[1-9]\d{15,}")  # integers past float64's: some become one
            if long.any() and written[long].str.lstrip("+0").nunique() > numeric[long].astype(float).nunique():
                warn(
                    f"column {column!r} holds integers written with more digits than float64 keeps (e.g. "
                    f"{present[long].iloc[0]!r}), which it rounds to fewer different values; codes (a card or "
                    f"SIM number)? If so, {leave_out(drop, column)}"
                )
            padded = present.astype(str).str.match(LEADING_ZERO)
            if padded.any():  # a code written with its zeros (zip, id): as numbers, '00501' and '501' are one
                warn(
                    f"column {column!r} holds numbers written as text, some with leading zeros (e.g. "
                    f"{present[padded].iloc[0]!r}): read as numbers; if the column holds codes, {hint} to one-hot "
                    "encode it as written"
                )
            return
        formatted = present.astype(str).str.match(FORMATTED_NUMBER) & numeric.isna()
        if len(present) and formatted.any() and (formatted | numeric.notna()).mean() >= 0.9:
            raise DataError(
                f"column {column!r} holds numbers written with a comma, thousands separators or a % sign (e.g. "
                f"{present[formatted].iloc[0]!r}); write them as plain numbers with a decimal point, or {hint} "
                "to one-hot encode them"
            )
        distinct = present.nunique()
        share, many = numeric.notna().mean() if len(present) else 0.0, identifier_like(distinct, len(present))
        if share >= 0.9 or share >= 0.5 and many:  # numbers with some text in them
            bad = pd.unique(present[numeric.isna()].to_numpy())[:3].tolist()  # three different ones
            row = int(np.flatnonzero(values.notna().to_numpy())[np.flatnonzero(numeric.isna().to_numpy())[0]])
            error = DataError(
                f"column {column!r} looks numeric but holds non-numeric values, e.g. {bad} (the first at row "
                f"{row}, the {ordinal(row + 1)} data row); fix them, or "
                + (f"if it is an id, {leave_out(drop, column)}" if many else f"{hint} to one-hot encode it")
            )
            error.row = row  # (a DataFrame's caller adds that row's index label)
            raise error
        if looks_like_dates(present[numeric.isna()].iloc[:100].astype(str)):
            # one-hot encoding: for a few dates that repeat (a day of a batch), not timestamps (every row's own)
            repeat = "" if many else f", {hint} to one-hot encode it"
            raise DataError(
                f"column {column!r} holds dates or times as text (e.g. {present.iloc[0]!r}); {DATE_ADVICE}{repeat}, "
                f"or {leave_out(drop, column)}"
            )
        typed = present.astype(str).str.replace("\u2212", "-").str.replace("\xa0", "").str.strip()
        if share < 0.9 and len(present) and pd.to_numeric(typed, errors="coerce").notna().mean() >= 0.9:
            odd = present[numeric.isna()].iloc[0]
            raise DataError(
                f"column {column!r} holds numbers written with a typographic minus (\u2212) or non-breaking spaces "
                f"(e.g. {odd!r}): write them with '-' and without those spaces"
            )
        if many:
            raise identifier_error(column, distinct, len(present), present.iloc[0], hint, drop)
        # many different numbers with text in many rows: categories, each number one (placeholders such as '-'?);
        # a few numbers beside text ('0', '1', '2', '3+'; floors '1', '2', 'G') are categories as meant; ten or
        # more in a fifth of the rows or more (an amount 'unknown' in most; had: in half) are warned of, not
        # a code column's few numeric codes among its names
        if share >= 0.2 and numeric.nunique() >= 10:
            bad = pd.unique(present[numeric.isna()].to_numpy())[:3].tolist()
            warn(
                f"column {column!r} holds numbers in {100 * share:.0f} % of its rows and text in the others (e.g. "
                f"{bad}): it is one-hot encoded, each different number a category of its own; if the text marks "
                f"missing values, fill them with numbers or drop those rows; to keep it as categories, {hint}"
            )
        warn_if_missing_text_beside_missing(column, frame[column])  # (as given: before the texts became missing)
        symbolic.append(column)

    for column in frame.columns:
        try:
            read_column(column)
        except DataError as err:  # every such column named at once (had: one a run)
            refused.append((column, err))
    if refused:  # (whole: also the NaN values training refuses next; had: said on the next run)
        left = {c for c, _ in refused} | set(symbolic)
        refuse_columns(refused, drop, missing_values_note(frame, converted, left) if whole else "")
    if converted:
        frame = frame.copy()
        for column, values in converted.items():
            frame[column] = values
    return frame, symbolic


@dataclass
class RawTable:
    """A data set as read from its source, before encoding.

    ``features``: one row per sample, numeric and symbolic columns; ``is_anomaly``: (N,) bool (in rows to
    score int64, -1 where unknown), or None when the source has no labels; ``symbolic``: the columns to
    one-hot encode.
    """

    features: pd.DataFrame
    is_anomaly: np.ndarray | None
    symbolic: list[str] = field(default_factory=list)
    #: category sets of symbolic columns, where they come from a larger source than these rows
    categories: dict[str, list[str]] | None = None

    def __post_init__(self) -> None:
        if len(self.features) == 0:
            raise DataError("the table has no rows")
        if self.is_anomaly is not None and len(self.is_anomaly) != len(self.features):
            raise DataError(f"{len(self.is_anomaly)} labels for {len(self.features)} rows")


MANY_CATEGORIES = 1000  # a symbolic column with more is warned about (KDDCUP99's widest has 70)
CONSTANT_LIMIT = 1.0  # BENCHMARKS.md, "Columns constant on the training rows"
OFFSET_LIMIT = 16.0  # a column whose minimum is more than this many ranges from zero is scaled from float64


LONE_EXTREME = 0.999  # the share of a column's range between its extreme and the next value, warned above


class ColumnExtremes:
    """The two smallest and the two largest different values of each column of rows seen slice by slice:
    ``low`` and ``high`` (2, F) each, the extreme first (-inf / inf where a column holds one value)."""

    def __init__(self) -> None:
        self.low: np.ndarray | None = None
        self.high: np.ndarray | None = None

    def update(self, part: np.ndarray) -> None:
        """Takes a slice of rows (N, F)."""
        part = np.asarray(part, dtype=np.float64)
        self.high = _top_two(part, self.high)
        self.low = -_top_two(-part, None if self.low is None else -self.low)


def _top_two(part: np.ndarray, earlier: np.ndarray | None) -> np.ndarray:
    """The two largest different values of each column of ``part`` (N, F) and ``earlier`` (2, F): (2, F)."""
    first = part.max(axis=0)
    second = np.where(part < first, part, -np.inf).max(axis=0)
    candidates = np.stack([first, second] if earlier is None else [first, second, *earlier])
    top = candidates.max(axis=0)
    return np.stack([top, np.where(candidates < top, candidates, -np.inf).max(axis=0)])


SLICE_ROWS = 65536  # rows per slice where whole-table float64 temporaries would double the memory


def row_slices(array: np.ndarray | EncodedRows, rows: np.ndarray | None = None) -> Iterator[np.ndarray]:
    """``array`` (N, F), or its ``rows`` (in that order), as consecutive slices of ``SLICE_ROWS`` rows."""
    n_rows = len(array) if rows is None else len(rows)
    for start in range(0, n_rows, SLICE_ROWS):
        yield array[start : start + SLICE_ROWS] if rows is None else array[rows[start : start + SLICE_ROWS]]


class EncodedRows:
    """A table's encoded rows, compact: its numeric columns (N, n_numeric) float64 and each symbolic
    column's category codes (N,) (-1: none of its ``widths[i]`` categories). Indexed by rows (a slice or
    an index array) it gives them as ``TablePreprocessor.encode`` does: float64 (n, n_features), numeric
    columns first, then each symbolic column's one-hot block. The one-hot blocks of a table with many
    categories would take most of its memory (2 M rows of 110 features: 1.8 GB as float64, 0.3 GB so)."""

    def __init__(self, numbers: np.ndarray, codes: list[np.ndarray], widths: list[int]) -> None:
        self.numbers, self.codes, self.widths = numbers, codes, widths
        self.shape = (len(numbers), numbers.shape[1] + sum(widths))

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows) -> np.ndarray:
        numbers = self.numbers[rows]
        dense = np.zeros((len(numbers), self.shape[1]))
        dense[:, : numbers.shape[1]] = numbers
        start = numbers.shape[1]
        for codes, width in zip(self.codes, self.widths, strict=True):
            picked = codes[rows]
            known = np.flatnonzero(picked >= 0)
            dense[known, start + picked[known]] = 1.0
            start += width
        return dense


class TablePreprocessor:
    """Encodes a ``RawTable``'s features as float32 rows.

    ``fit_columns`` records the column order and each symbolic column's category set (unseen categories
    encode as all zeros); ``fit_scaling`` records min and range per encoded feature from the training rows
    only. Its ``state_dict`` is saved in checkpoints, so rows read at predict time encode exactly as the
    training rows did. Scaled values are clipped to +-``SCALED_LIMIT`` (a million training ranges beyond
    the training rows): past it, float32 sums of squares in the reconstruction features would overflow,
    and such a row would score NaN instead of as an anomaly. A feature constant on the training rows has
    no range: it keeps range 1 (in its own units) and is clipped to +-``CONSTANT_LIMIT``, so any value
    other than the training one is at most one "range" away, as an unseen one-hot category is, whatever
    the column's units (unclipped, a value of 50 in such a column outweighed all the others).
    """

    def __init__(self) -> None:
        self.numeric: list[str] = []
        self.categories: dict[str, list[str]] = {}
        self.minimum: np.ndarray | None = None
        self.range: np.ndarray | None = None
        self.constant: np.ndarray | None = None  # (n_features,) bool: constant on the training rows
        self._warned: set[str] = set()  # said once: a data module refits its scaling at each stage's setup

    @property
    def n_features(self) -> int:
        return len(self.numeric) + sum(len(c) for c in self.categories.values())

    def category_features(self) -> Iterator[tuple[str, slice]]:
        """Each symbolic column and the slice of its one-hot features among the encoded ones."""
        offset = len(self.numeric)
        for column, cats in self.categories.items():
            yield column, slice(offset, offset + len(cats))
            offset += len(cats)

    def categories_outside_training(self) -> dict[str, list[str]]:
        """Per symbolic column, the categories no training row had (their one-hot feature is 0 on every
        training row: the model masks it, so such a row looks like no category); empty before ``fit_scaling``."""
        absent = {}
        for column, features in self.category_features() if self.constant is not None else ():
            zero = self.constant[features] & (self.minimum[features] == 0)
            if zero.any():
                absent[column] = [self.categories[column][j] for j in np.flatnonzero(zero)]
        return absent

    def fit_columns(self, table: RawTable) -> TablePreprocessor:
        self.minimum = self.range = self.constant = None  # a scaling is of its columns: fitted again after
        self.numeric = [str(c) for c in table.features.columns if c not in table.symbolic]
        given = table.categories or {}
        self.categories = {
            str(c): list(given[c]) if c in given else sorted(category_text(table.features[c]).unique().tolist())
            for c in table.symbolic
        }
        wide = {c: len(cats) for c, cats in self.categories.items() if len(cats) > MANY_CATEGORIES}
        if wide:
            named = ", ".join(f"{c!r} {n:,}" for c, n in wide.items())
            warn(
                f"one-hot encoding makes a feature of each category: {named} categories, {self.n_features:,} "
                "features in all (slow, and a category seen in few rows says little); group rare values, or leave "
                "such a column out"
            )
        return self

    def encode(
        self, frame: pd.DataFrame, first_row: int = 0, own_rows: bool = False, warned: set | None = None
    ) -> np.ndarray:
        """Unscaled encoded rows (N, n_features), float64; clear errors for missing or bad columns (rows
        numbered from ``first_row``), a warning for categories not seen in training (``own_rows``: the
        table's own rows, whose categories outside training its fit names once, not warned of again;
        ``warned``: a file's chunks share it, so that each column is warned of once a file)."""
        return self.encode_compact(frame, first_row, own_rows, warned)[:]

    def encode_compact(
        self, frame: pd.DataFrame, first_row: int = 0, own_rows: bool = False, warned: set | None = None
    ) -> EncodedRows:
        """``encode``'s rows kept as numbers and category codes (``EncodedRows``), for a whole table."""
        frame = frame.rename(columns=str)
        missing = [c for c in [*self.numeric, *self.categories] if c not in frame.columns]
        if missing:
            trained = [*self.numeric, *self.categories]
            listed = f" ({', '.join(map(repr, trained[:12]))}{', ...' if len(trained) > 12 else ''})"
            spaced = [c for c in frame.columns if c != c.strip() and c.strip() in missing]
            fix = (
                f"the input's names have spaces around them (e.g. {spaced[0]!r}): write the header without them"
                if spaced  # (had: 'none of them is there ... without its header line?')
                else "none of them is there (another table, or rows without their column names: a file without its "
                "header line?)"
                if len(missing) == len(trained)
                else "give rows with every one of them, named as in training"
            )
            raise DataError(
                f"columns missing from the input: {missing[:10]}{' ...' if len(missing) > 10 else ''}; "
                f"the model was trained on {len(trained)} columns{listed if len(missing) < len(trained) else ''}: "
                f"{fix}"
            )
        numbers, codes = np.zeros((len(frame), len(self.numeric))), []
        if self.numeric:
            numeric = frame[self.numeric]
            complex_columns = [c for c in self.numeric if pd.api.types.is_complex_dtype(numeric[c])]
            if complex_columns:
                raise DataError(f"column {complex_columns[0]!r} holds complex numbers; the model was trained on reals")
            for column in [c for c in self.numeric if not pd.api.types.is_numeric_dtype(numeric[c])]:
                if pd.api.types.infer_dtype(numeric[column], skipna=True).startswith(TIME_KINDS):
                    raise DataError(f"column {column!r} holds dates or times, the model was trained on numbers")
                coerced = numbers_of(numeric[column])  # numbers stored as text are numbers
                words = numeric[column].astype("string").str.strip().str.lower()
                if words.notna().any() and words.dropna().isin(["true", "false"]).all():  # as pandas reads a CSV's
                    coerced = words.map({"true": 1.0, "false": 0.0}).astype(np.float64)  # (missing: refused below)
                example = not_numbers(numeric[column], coerced)
                if example:
                    raise DataError(f"column {column!r} should be numeric but holds non-numeric values, e.g. {example}")
                numeric = numeric.assign(**{column: coerced})
            numbers = self._finite(numeric.to_numpy(dtype=np.float64), first_row)
        outside = {} if own_rows else self.categories_outside_training()
        for column, cats in self.categories.items():
            codes.append(category_codes(cats, frame[column]))
            known = codes[-1] >= 0
            untrained = ~known | np.isin(codes[-1], [cats.index(c) for c in outside.get(column, [])])
            if untrained.any() and (warned is None or ("unseen", column) not in warned):  # (a changed spelling
                unseen = pd.unique(frame[column].to_numpy()[untrained])  # would mis-score every row)
                absent = np.asarray(pd.isna(unseen), dtype=bool)  # (a missing value: no category a value names)
                shown = ", ".join(repr(v.item() if isinstance(v, np.generic) else v) for v in unseen[~absent][:3])
                shown += ", ..." if (~absent).sum() > 3 else ""
                shown = ", ".join([*([MISSING_SHOWN] if absent.any() else []), *([shown] if shown else [])])
                count = f"{int(untrained.sum()):,} of the"
                where = f" in {count} {len(frame):,} rows" if len(frame) > 1 else ""
                if warned is not None:  # a file read by chunks: said at the first chunk that holds any
                    warned.add(("unseen", column))
                    rows = f"{first_row:,} to {first_row + len(frame) - 1:,}"
                    where = f" in {count} rows {rows} (later rows may hold others: said once a file)"
                warn(
                    f"column {column!r} holds categories not seen in training ({shown}){where}; those rows are "
                    "encoded as no category, which no training row had: their scores say nothing sure of them "
                    "(often higher, not always); add such rows to the training table, or map the new values to "
                    "known ones"
                )
        return EncodedRows(numbers, codes, [len(cats) for cats in self.categories.values()])

    def scale_rows(self, array: np.ndarray, first_row: int = 0, exact: bool = False) -> torch.Tensor:
        """Scaled float32 rows (N, n_features) of a numeric array that ``encode`` would give unchanged (a table
        without symbolic columns), for scoring many rows: a torch tensor, computed by torch's threads
        without a float64 copy. It differs from ``scale`` (float64, then rounded) by float32 rounding, within
        ~1e-6 of a column's range: columns far from zero for their range (timestamps, 1e12 + a few thousand)
        are scaled from float64, as float32 would round away their spread. ``first_row``: the row number of
        ``array``'s first row in the caller's table, for error messages. ``exact``: ``scale``'s own values (in
        float64, then rounded), as the data module gives them."""
        if exact:
            return torch.from_numpy(self.scale(self._finite(np.asarray(array, dtype=np.float64), first_row)))
        with np.errstate(over="ignore"):  # a value past float32's reach is redone in float64 below
            rows = np.ascontiguousarray(array, dtype=np.float32)
        copied = not np.shares_memory(rows, array)
        if not rows.flags.writeable:  # torch warns on read-only arrays (memory maps)
            rows, copied = rows.copy(), True
        values = torch.from_numpy(rows)
        # x / range - minimum / range: one pass over the rows (the factors from float64, then rounded)
        with np.errstate(over="ignore", divide="ignore"):  # a range near 1e-300: inf in float32, redone below
            inverse = torch.from_numpy((1.0 / self.range).astype(np.float32))
            offset = torch.from_numpy((-self.minimum / self.range).astype(np.float32))
        values = torch.addcmul(offset, values, inverse, out=values if copied else None)  # the caller's array stays
        if values.numel() == 0:
            return values
        offset_heavy = np.flatnonzero(np.abs(self.minimum) / OFFSET_LIMIT > self.range)  # no overflow near 1e308
        if len(offset_heavy):  # float32's rounding of x (2^-24 |x|) would be more than 1e-6 of the range
            with np.errstate(over="ignore", invalid="ignore"):  # inf / NaN: found below, as for the others
                exact = (
                    np.asarray(array)[:, offset_heavy].astype(np.float64) - self.minimum[offset_heavy]
                ) / self.range[offset_heavy]
            values[:, torch.from_numpy(offset_heavy)] = torch.from_numpy(exact.astype(np.float32))
        low, high = torch.aminmax(values)  # NaN if any is NaN
        if not (torch.isfinite(low) and torch.isfinite(high)):  # a NaN or inf in the input, or beyond float32
            exact = self._finite(np.asarray(array, dtype=np.float64), first_row)
            return torch.from_numpy(self.scale(exact))  # finite, but past float32 before the clip: in float64
        if low < -SCALED_LIMIT or high > SCALED_LIMIT:
            values.clamp_(-SCALED_LIMIT, SCALED_LIMIT)
        if self.constant is not None and self.constant.any():
            columns = torch.from_numpy(np.flatnonzero(self.constant))
            values.index_copy_(1, columns, values.index_select(1, columns).clamp_(-CONSTANT_LIMIT, CONSTANT_LIMIT))
        return values

    def _warn_of_lone_extremes(self, extremes: ColumnExtremes, spread: np.ndarray) -> None:
        """Warns of a numeric column whose range one training value sets nearly alone (a glitch such as 1e6
        among values near 1: min-max scaling squeezes the others into a sliver of it, and the model hardly
        sees them); columns of three different values or more. Real tables' widest lone gap was 0.993 of a
        range (KDDCUP99's src_bytes); ``LONE_EXTREME`` is above it."""
        (low, next_low), (high, next_high) = extremes.low, extremes.high
        numeric = slice(0, len(self.numeric))
        with np.errstate(invalid="ignore", over="ignore"):
            top = np.where(next_high > low, (high - next_high) / spread, 0.0)[numeric]
            bottom = np.where(next_low < high, (next_low - low) / spread, 0.0)[numeric]
        for j in np.flatnonzero((np.maximum(top, bottom) > LONE_EXTREME) & (spread[numeric] > 0)):
            lone, rest = (high[j], (low[j], next_high[j])) if top[j] >= bottom[j] else (low[j], (next_low[j], high[j]))
            message = (
                f"column {self.numeric[j]!r}: one training value, {lone:g}, sets its range nearly alone (the others "
                f"lie within {rest[0]:g} to {rest[1]:g}): min-max scaling squeezes them into "
                f"{100 * (1 - max(top[j], bottom[j])):.2g} % of it, and the model hardly tells them apart; a "
                "glitch? fix or drop that row"
            )
            if message not in self._warned:
                self._warned.add(message)
                warn(message)

    def _finite(self, values: np.ndarray, first_row: int = 0, where: str = "in the input") -> np.ndarray:
        finite = np.isfinite(values)
        if not finite.all():
            row, col = np.argwhere(~finite)[0]
            rows = int((~finite).any(axis=1).sum())
            counted = f"; {rows:,} rows read hold such values" if rows > 1 else ""  # (by chunks: this chunk's)
            error = DataError(
                f"NaN/inf values {where}, the first in column {self.numeric[col]!r} at row "
                f"{first_row + int(row)} (the {ordinal(first_row + int(row) + 1)} data row{counted}); fill or drop "
                "them before training or scoring"
            )
            error.row = first_row + int(row)  # (a DataFrame's caller adds that row's index label)
            raise error
        return values

    def fit_scaling(self, encoded: np.ndarray | EncodedRows, rows: np.ndarray | None = None) -> TablePreprocessor:
        """Minimum and range per feature of the training rows: ``encoded`` (N, n_features), or its ``rows``
        (read in slices: no copy of them)."""
        n_rows = len(encoded) if rows is None else len(rows)
        if n_rows == 0:
            raise DataError("no training rows to fit the scaling on")
        if encoded.shape[1] == 0:
            raise DataError("the table has no feature columns (only labels?): there is nothing to learn")
        extremes = ColumnExtremes()
        for part in row_slices(encoded, rows):
            extremes.update(part)
        return self.fit_extremes(extremes, n_rows)

    def fit_extremes(self, extremes: ColumnExtremes, n_rows: int) -> TablePreprocessor:
        """The scaling from the training rows' ``extremes`` (``n_rows`` of them): min-max, each feature's."""
        minimum, maximum = extremes.low[0], extremes.high[0]
        with np.errstate(over="ignore"):
            spread = maximum - minimum
        if not np.isfinite(spread).all():  # numeric columns come first in the encoding
            j = int(np.flatnonzero(~np.isfinite(spread))[0])
            raise DataError(
                f"column {self.numeric[j]!r} spans {minimum[j]:g} to {maximum[j]:g} on the training "
                "rows, a range past what float64 holds; rescale it (e.g. divide it by a power of ten)"
            )
        self._warn_of_lone_extremes(extremes, spread)
        constant = ~(spread > 0)
        if constant.all():
            rows = "one training row" if n_rows == 1 else "the training rows"
            raise DataError(
                f"every feature is constant on {rows}: there is nothing to learn (every row would score the "
                "same); check that the table holds the columns meant, and enough rows"
            )
        self.minimum, self.constant, self.range = minimum, constant, np.where(constant, 1.0, spread)
        return self

    def scale(self, encoded: np.ndarray | EncodedRows, rows: np.ndarray | None = None) -> np.ndarray:
        """Scaled float32 rows (N, n_features), C order, of ``encoded`` (N, n_features) or of its ``rows``;
        computed in float64 slices of rows (memory: the float32 result and one slice)."""
        if self.minimum is None or self.range is None:
            raise DataError("the scaling has not been fitted on training rows yet")
        if encoded.shape[1] != len(self.minimum):
            raise DataError(f"rows have {encoded.shape[1]} encoded features, the model expects {len(self.minimum)}")
        # C order: row batches are contiguous, and matmul kernels do not depend on how the input was laid out
        scaled = np.empty((len(encoded) if rows is None else len(rows), encoded.shape[1]), dtype=np.float32)
        limit = SCALED_LIMIT if self.constant is None else np.where(self.constant, CONSTANT_LIMIT, SCALED_LIMIT)
        start = 0
        for part in row_slices(encoded, rows):
            with np.errstate(over="ignore"):  # a value past float64's reach from the minimum is clipped all the same
                part = np.subtract(part, self.minimum, dtype=np.float64)
                part /= self.range
            scaled[start : start + len(part)] = np.clip(part, -limit, limit, out=part)
            start += len(part)
        return scaled

    def state_dict(self) -> dict:
        return {
            "numeric": self.numeric,
            "categories": self.categories,
            "minimum": None if self.minimum is None else self.minimum.tolist(),
            "range": None if self.range is None else self.range.tolist(),
            "constant": None if self.constant is None else self.constant.tolist(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.numeric = list(state["numeric"])
        self.categories = {k: list(v) for k, v in state["categories"].items()}
        self.minimum = None if state["minimum"] is None else np.asarray(state["minimum"], dtype=np.float64)
        self.range = None if state["range"] is None else np.asarray(state["range"], dtype=np.float64)
        # saved before constant columns were clipped (None): scaled as they were then
        constant = state.get("constant")
        self.constant = None if constant is None else np.asarray(constant, dtype=bool)
