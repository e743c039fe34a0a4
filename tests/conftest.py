"""Shared fixtures. Markers: ``slow`` (trains for more than a few seconds), ``ddp`` (spawns processes),
``data`` (reads the paper's data sets)."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
QUICK = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "kddcup.data_10_percent.gz").is_file():
        raise FileNotFoundError(f"the project's tests read real data from {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def in_root(monkeypatch):
    """Run from the repository root, where the configs' relative paths hold."""
    monkeypatch.chdir(ROOT)
