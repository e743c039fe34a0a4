"""What a ``ddp_spawn`` launch hands each process it starts: data modules through a file, not the pipe."""

from __future__ import annotations

import atexit
import os
import pickle
import shutil
import tempfile
import uuid
from multiprocessing.reduction import ForkingPickler
from pathlib import Path

from dagmm_lightning.data.streaming import ROW_FOLDER_PREFIX, claim_row_folder

SHARED_ATTRIBUTES = ("trainer",)  # references to objects a spawned process's arguments hold besides
_folder: Path | None = None  # this process's folder of handed files


def hand_through_a_file(cls: type) -> None:
    """Have multiprocessing's pickler (the one a ``ddp_spawn`` launch writes each new process's arguments
    with) hand instances of ``cls`` through a temporary file, which that process reads once and removes.

    Why: the arguments go through a pipe of 64 kB, and the launching process waits at a full pipe until
    the new process has imported torch and Lightning (seconds) and read it, before it starts the next: with
    a table in the arguments the processes started one after another (a 2-process spawn 5 s later). Each
    process gets a file of its own in a folder of the launching process's (``claim_row_folder``: removed at
    its exit, or by a later run where it was killed). ``SHARED_ATTRIBUTES`` stay in the pipe, so that the
    trainer stays one object. Plain ``pickle`` of ``cls`` is unchanged.
    """
    ForkingPickler.register(cls, _reduce_through_a_file)


def _handed_folder() -> Path:
    global _folder
    if _folder is None or _folder.parent != Path(tempfile.gettempdir()) or not _folder.is_dir():
        _folder = Path(tempfile.gettempdir()) / f"{ROW_FOLDER_PREFIX}{uuid.uuid4().hex}"
        claim_row_folder(_folder)  # (and removes those killed runs left)
        atexit.register(shutil.rmtree, _folder, True)
    return _folder


def _reduce_through_a_file(obj):
    fd, path = tempfile.mkstemp(suffix=".pickle", dir=_handed_folder())
    cls = type(obj)
    state = obj.__getstate__() if hasattr(obj, "__getstate__") else obj.__dict__  # (Python 3.10: none by default)
    own_reduce = cls.__reduce_ex__ is not object.__reduce_ex__ or cls.__reduce__ is not object.__reduce__
    slots = any("__slots__" in vars(c) for c in cls.__mro__)
    with os.fdopen(fd, "wb") as file:
        if not isinstance(state, dict) or own_reduce or slots:  # whole, as plain pickle takes it
            pickle.dump(obj, file, protocol=pickle.HIGHEST_PROTOCOL)
            return _read_a_file, (path,)
        state = dict(state)
        shared = {key: state.pop(key) for key in SHARED_ATTRIBUTES if key in state}
        pickle.dump(state, file, protocol=pickle.HIGHEST_PROTOCOL)
    return _rebuild_from_a_file, (cls, shared, path)


def _read_a_file(path: str):
    with open(path, "rb") as file:
        obj = pickle.load(file)
    os.unlink(path)
    return obj


def _rebuild_from_a_file(cls: type, shared: dict, path: str):
    state = _read_a_file(path)
    state.update(shared)
    obj = cls.__new__(cls)
    if hasattr(obj, "__setstate__"):
        obj.__setstate__(state)
    else:
        obj.__dict__.update(state)
    return obj
