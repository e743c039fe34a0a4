"""Shared fixtures. Markers: ``slow`` (trains for more than a few seconds), ``ddp`` (spawns processes),
``data`` (reads the paper's data sets)."""

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
PAPER_DATA = ROOT / "data"  # the paper's three files, shipped with the project
QUICK = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def read_csv(path, **kwargs) -> pd.DataFrame:
    """``pd.read_csv`` with the exact float parser pandas 2 must be asked for (``EXACT_CSV_FLOATS``; pandas
    3's default): the tests compare the numbers files hold to the last digit."""
    from dagmm_lightning.data.tables import EXACT_CSV_FLOATS

    return pd.read_csv(path, **{**EXACT_CSV_FLOATS, **kwargs})


def rows_with_groups_of_anomalies(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """3,000 normal rows (6 correlated features) and three groups of 20 near-copies of an odd row each (the
    same three places whatever the seed): X (3060, 6) and y (1 = anomaly), a table that holds its anomalies."""
    spread = np.abs(np.random.default_rng(123).normal(size=(6, 6)) * 0.5)
    centres = np.random.default_rng(7).uniform(-3, 3, size=(3, 6))
    rng = np.random.default_rng(seed)
    groups = [centre + 0.05 * rng.normal(size=(20, 6)) for centre in centres]
    return np.vstack([rng.normal(size=(3000, 6)) @ spread, *groups]), np.r_[np.zeros(3000), np.ones(60)]


def cores() -> int:
    """The CPUs this process may run on (its affinity: a container's or a batch job's share, not the host's)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def pytest_xdist_auto_num_workers(config):
    """pytest-xdist's worker count for pyproject's ``-n auto``: one a CPU this process may use (xdist's own
    count, with psutil installed, is the host's: 128 workers for a 4-CPU job on a large node)."""
    return cores()


def pytest_configure(config):
    """Each pytest-xdist worker gets its share of the cores for torch's and the BLAS's threads, and so do
    the processes it starts (OMP_NUM_THREADS): two workers running two OpenMP threads each on 2 cores spun
    on each other, and the suite took longer than in one process. An OMP_NUM_THREADS of the user's is kept
    (workers x its threads may then outnumber the cores)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1 and "OMP_NUM_THREADS" not in os.environ:
        share = max(1, cores() // workers)
        os.environ["OMP_NUM_THREADS"] = str(share)
        import torch
        from threadpoolctl import threadpool_limits

        torch.set_num_threads(share)
        threadpool_limits(share)  # numpy's BLAS sized its pool as conftest imported it


@pytest.fixture(scope="session")
def paper_data() -> Path:
    """The folder of the paper's data sets (``data/`` in the repository)."""
    return PAPER_DATA


@pytest.fixture
def in_root(monkeypatch):
    """Run from the repository root, where the configs' relative paths hold."""
    monkeypatch.chdir(ROOT)


@pytest.fixture
def in_root_like_folder(tmp_path, monkeypatch):
    """Run from a fresh folder holding the repository's configs, data and README (links): relative paths
    hold as from the root, and a run's default logs/ lands under tmp_path."""
    for name in ("configs", "data", "README.md"):
        (tmp_path / name).symlink_to(ROOT / name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session", autouse=True)
def repository_stays_as_it_was():
    """No test writes into the repository's ``logs/`` (a run's default folder) or beside its top-level files
    (a Trainer without ``default_root_dir`` saves ``checkpoints/`` in the working folder): tests write under
    tmp_path."""
    pytest_cache = {ROOT / ".pytest_cache"}
    before = set((ROOT / "logs").rglob("*")) | set(ROOT.iterdir()) | pytest_cache
    yield
    written = sorted(str(p.relative_to(ROOT)) for p in (set((ROOT / "logs").rglob("*")) | set(ROOT.iterdir())) - before)
    assert not written, (  # (a user's own files made beside the run too: a trial had been told the tests wrote them)
        f"new in the repository after the tests: {', '.join(written[:5])}; written by a test, or by something "
        "beside the run (then remove them and run the tests again)"
    )


@pytest.fixture(autouse=True)
def no_load_sampling(monkeypatch):
    """`dagmm fit` samples the cores' load for a quarter second (``cores.cores_busy``) and warns if other
    work keeps them busy: off in tests, whose machine may well be busy (tests/unit/test_cores.py tests it)."""
    from dagmm_lightning import cores

    monkeypatch.setattr(cores, "cores_busy", lambda seconds=cores.SAMPLE_SECONDS: None)
