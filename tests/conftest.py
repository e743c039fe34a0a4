from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "kddcup.data_10_percent.gz").is_file():
        raise FileNotFoundError(f"the project's tests read real data from {SHARED_DATA}")
    return SHARED_DATA
