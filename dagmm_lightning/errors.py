"""The package's own errors and warnings: one base class each, so that the command line prints their
message, not a traceback."""

from __future__ import annotations

import difflib
import errno
import importlib
import numbers
import re
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, get_args

import numpy as np

# The modules a warning is not shown as coming from: ours, and those between a user's call and our code
# (a detector's fit runs the model's hooks inside Lightning's loops)
LIBRARIES = ("dagmm_lightning.", "lightning.", "lightning_fabric.", "pytorch_lightning.", "lightning_utilities.")
LIBRARIES += ("torch.", "jsonargparse.", "sklearn.", "joblib.")  # (a CLI built in Python; a grid search's fits)


class DAGMMError(Exception):
    """Base of every error this package raises on purpose; its message names the problem and the fix."""


class ConfigurationError(DAGMMError, ValueError):
    """A setting out of its range or not one of its choices."""


class DataError(DAGMMError, ValueError):
    """Input data the framework cannot use."""


class DataTypeError(DataError, TypeError):
    """Input values of a type no table column holds (neither a number nor text: a dict, a list)."""


class MissingLabelError(DataError):
    """A label column with rows that hold no label (no value, or one not 0/1 or true/false: -1, 'unknown'),
    where every row needs one (the training table); ``blank``: the first kind."""

    def __init__(self, message: str, blank: bool = True) -> None:
        super().__init__(message)
        self.blank = blank


class NonFiniteError(DAGMMError, FloatingPointError):
    """Training produced NaN or inf, or a covariance no jitter could repair."""


class NotFittedError(DAGMMError, RuntimeError):
    """Scoring was asked of a model whose mixture has not been fitted on training rows."""


class DAGMMWarning(UserWarning):
    """A warning of this package's about the data or the settings (filterable by this category)."""


def warn(message: str) -> None:
    """Warns (on rank 0 only) as from the first caller outside this package and the libraries it runs in
    (``LIBRARIES``): a notebook cell's or a script's line, not one of ours."""
    from lightning.fabric.utilities.rank_zero import rank_zero_only  # sets .rank for this process

    if getattr(rank_zero_only, "rank", 0) != 0:
        return
    frame, level = sys._getframe(1), 2  # level 2: the caller of this function
    while frame is not None and str(frame.f_globals.get("__name__")).startswith(LIBRARIES):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, DAGMMWarning, stacklevel=level)


def own_error(err: BaseException | None) -> DAGMMError | None:
    """The package's own error behind ``err`` (also when a config parser wrapped it, or a spawned worker
    raised it: ``worker_error``), or None."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, DAGMMError):
            return err
        if type(err).__name__ == "ProcessRaisedException":
            return worker_error(str(err))
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def worker_error(traceback_text: str) -> DAGMMError | None:
    """The package's error a spawned worker's traceback (torch's ``ProcessRaisedException``, which carries
    it as text only) ends on, made again here, or None (had: that traceback, and exit code 1, where one
    process says one line and exits with 2)."""
    text = traceback_text.rstrip()
    lines = list(re.finditer(r"^dagmm_lightning\.errors\.(\w+): ", text, re.MULTILINE))
    kind = globals().get(lines[-1].group(1)) if lines else None  # (the last: a chained traceback's raised one)
    if not (isinstance(kind, type) and issubclass(kind, DAGMMError)):
        return None
    return kind(text[lines[-1].end() :])


def home_expanded(path):
    """``path`` (text or a Path) with a leading ``~`` or ``~/`` made the home folder: one no shell expanded
    (quoted, or after ``--option=``); other paths as given (``~backup.csv`` is a file's own name)."""
    text = str(path)
    if text != "~" and not text.startswith("~/"):
        return path
    try:
        expanded = Path(text).expanduser()
    except RuntimeError:  # no home folder to be found
        return path
    return expanded if isinstance(path, Path) else str(expanded)


def existing_file(path: str | Path) -> Path:
    """``path`` as a Path; a ``DataError`` where no file is there."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path} is a folder; name the file in it")
    if not path.is_file():
        raise DataError(f"no such file: {path}")
    return path


def torch_load_failure(err: Exception) -> str:
    """What ``torch.load(weights_only=True)`` said of a file it could not read, in a few words: torch's own
    texts run for lines, and one advises loading with ``weights_only=False`` (unsafe for a file of unknown
    origin)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(err)).strip()  # (torch's bold, in ANSI)
    if "zip archive" in text or "central directory" in text:
        return "damaged or cut short: not the whole zip archive torch.save writes"
    unpickler = re.search(r"WeightsUnpickler error:\s*(\S.*)", text)  # (after the advice)
    first = unpickler.group(1) if unpickler else (text.splitlines() or [""])[0]
    return f"{type(err).__name__}: {first[:200]}".rstrip(": ")


def make_folder_of(path: Path) -> None:
    """Makes the folder ``path`` is written to, where missing; a ``DataError`` where it cannot be."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise DataError(f"cannot write {path}: a file stands where its folder would be") from None
    except OSError as err:
        raise DataError(f"cannot write {path}: {err.strerror or err}") from None


@contextmanager
def room_to_write(what: str, advice: str):
    """A full disk (or quota) while writing ``what`` as a ``DataError`` naming it and ``advice`` (had: the
    OSError's traceback from deep inside a writer); other errors as they are."""
    try:
        yield
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise DataError(f"cannot write {what}: {err.strerror or 'no space left on device'}; {advice}") from None


def did_you_mean(given: str, candidates: list[str], quote: bool = True, prefix: str = "") -> str:
    """`` (did you mean 'X'?)`` for the candidate closest to ``given``, case aside (``DAGMMVae``: ``DAGMMVAE``),
    or "" where none is close."""
    lowered = {candidate.lower(): candidate for candidate in reversed(candidates)}  # (the first of equals)
    close = difflib.get_close_matches(given.lower(), list(lowered), n=1, cutoff=0.6)
    if not close:
        return ""
    return f" (did you mean {prefix}{repr(lowered[close[0]]) if quote else lowered[close[0]]}?)"


def check_choice(name: str, value: Any, choices: Any) -> None:
    """Raise ``ConfigurationError`` unless ``value`` is one of ``choices`` (a ``Literal`` type or a collection)."""
    allowed = get_args(choices) or tuple(choices)
    if value not in allowed:
        hint = did_you_mean(value, [str(a) for a in allowed]) if isinstance(value, str) else ""
        raise ConfigurationError(f"{name} must be one of {list(allowed)}, got {value!r}{hint}")


def check_range(
    name: str, value: float, low: float, high: float, low_open: bool = False, high_open: bool = False
) -> None:
    """Raise ``ConfigurationError`` unless ``value`` is a number with ``low <= value <= high`` (``<`` on an
    open side)."""
    interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise ConfigurationError(f"{name} must be a number in {interval}, got {value!r}")
    above = value > low if low_open else value >= low
    below = value < high if high_open else value <= high
    if not (above and below):
        raise ConfigurationError(f"{name} must be in {interval}, got {value}")


def check_flags(**flags: Any) -> None:
    """Raise ``ConfigurationError`` unless each value is True or False (numpy's too): ``"false"`` or
    ``"no"``, being truthy, would switch an option on."""
    for name, value in flags.items():
        if not isinstance(value, (bool, np.bool_)):
            raise ConfigurationError(f"{name} must be True or False, got {value!r}")


def check_layer_sizes(name: str, sizes: Any) -> None:
    """Raise ``ConfigurationError`` unless ``sizes`` is a list or tuple of layer widths, each an integer >= 1."""
    widths = sizes if isinstance(sizes, (list, tuple)) else [None]
    if not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1 for v in widths):
        raise ConfigurationError(
            f"{name} must be a list of layer widths, each an integer >= 1 (e.g. [60, 30]), got {sizes!r}"
        )


def imported_class(class_path: str):
    """The class a dotted path names (``dagmm_lightning.DAGMMVAE`` and ``dagmm_lightning.models.DAGMMVAE``
    name one class), or the path itself where it imports nothing."""
    module, _, name = str(class_path).rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except Exception:  # noqa: BLE001 - whatever its module raises (a SyntaxError too): import_failure says what
        return class_path


def import_failure(class_path: str) -> str | None:
    """Why a dotted class path does not import (its module's error, a SyntaxError or a check refusing a
    class as it is made included; or "module has no Name"), or None where it does."""
    module, _, name = class_path.rpartition(".")
    try:
        return None if hasattr(importlib.import_module(module), name) else f"{module} has no {name}"
    except Exception as err:  # (whatever the module raises is the answer)
        return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}".rstrip(": ")


def own_warnings_as_lines() -> None:
    """The command's own warnings (``DAGMMWarning``) printed as ``dagmm: warning: ...`` lines, as its errors
    are (Python's format, and Lightning's once imported, starts with a source file and line); other warnings
    as before. Every warning printed while a progress bar is drawn starts a line of its own (the bars are
    cleared, then drawn again: tqdm's ``external_write_mode``); it had continued the bar's line."""
    if getattr(warnings.formatwarning, "dagmm", False):  # installed already (main called again in a process)
        return
    earlier, earlier_shown = warnings.formatwarning, warnings.showwarning

    def formatted(message, category, filename, lineno, line=None) -> str:
        if issubclass(category, DAGMMWarning):
            return f"dagmm: warning: {message}\n"
        return earlier(message, category, filename, lineno, line)  # numpy's RuntimeWarning etc. as they were

    def shown(message, category, filename, lineno, file=None, line=None) -> None:
        bars = sys.modules.get("tqdm.std")  # (imported by Lightning's bar: none drawn before)
        if bars is None or file not in (None, sys.stderr):
            return earlier_shown(message, category, filename, lineno, file, line)
        with bars.tqdm.external_write_mode(file=sys.stderr):  # bars on stdout too: one terminal
            earlier_shown(message, category, filename, lineno, file, line)

    formatted.dagmm = True
    warnings.formatwarning, warnings.showwarning = formatted, shown
