"""Shared fixtures. Markers: ``slow`` (trains for more than a few seconds), ``ddp`` (spawns processes),
``data`` (reads the paper's data sets)."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAPER_DATA = ROOT / "data"  # the paper's three files, shipped with the project
QUICK = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


@pytest.fixture(scope="session")
def paper_data() -> Path:
    """The folder of the paper's data sets (``data/`` in the repository)."""
    return PAPER_DATA


@pytest.fixture
def in_root(monkeypatch):
    """Run from the repository root, where the configs' relative paths hold."""
    monkeypatch.chdir(ROOT)
