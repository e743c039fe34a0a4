"""Chunked reading of CSV and Parquet files for predict: the same rows as reading them whole."""

import numpy as np
import pandas as pd
import pytest
import torch

from dagmm_lightning.data import DataError, RawTable, TablePreprocessor
from dagmm_lightning.data import streaming as streaming_module
from dagmm_lightning.data.streaming import FileRows


def table(n=53, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "size": rng.normal(10, 2, n),
            "colour": rng.choice(["red", "green", "blue"], n),
            "count": rng.integers(0, 5, n),
            "anomaly": rng.integers(0, 2, n),
        }
    )


@pytest.fixture
def preprocessor():
    frame = table(seed=1).drop(columns="anomaly")
    prep = TablePreprocessor().fit_columns(RawTable(frame, None, ["colour"]))
    return prep.fit_scaling(prep.encode(frame))


def read_all(rows: FileRows) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    batches = list(rows)
    assert all(len(x) <= rows.batch_size for x, _, _ in batches)
    return tuple(torch.cat(part).numpy() for part in zip(*batches, strict=True))


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_chunks_of_a_file_equal_the_whole_file_encoded(tmp_path, preprocessor, suffix):
    frame = table()
    frame.loc[:2, "colour"] = "purple"  # unseen in training: all-zero one-hot
    path = tmp_path / f"rows{suffix}"
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path, row_group_size=10)
    x, y, index = read_all(FileRows(path, preprocessor, "anomaly", batch_size=5, chunk_rows=7))
    expected = preprocessor.scale(preprocessor.encode(frame.drop(columns="anomaly")))
    np.testing.assert_array_equal(x, expected)
    np.testing.assert_array_equal(y, frame["anomaly"])
    np.testing.assert_array_equal(index, np.arange(len(frame)))
    _, unlabelled, _ = read_all(FileRows(path, preprocessor, None, batch_size=5, chunk_rows=7))
    assert (unlabelled == -1).all()


def test_ranks_share_the_chunks_each_row_once(tmp_path, preprocessor, monkeypatch):
    path = tmp_path / "rows.csv"
    table().to_csv(path, index=False)
    monkeypatch.setattr(streaming_module, "world_size", lambda: 2)
    seen = []
    for me in (0, 1):
        monkeypatch.setattr(streaming_module, "rank", lambda me=me: me)
        seen.append(read_all(FileRows(path, preprocessor, "anomaly", batch_size=4, chunk_rows=10))[2])
    assert len(seen[0]) and len(seen[1])
    np.testing.assert_array_equal(np.sort(np.concatenate(seen)), np.arange(53))


def test_a_bad_value_deep_in_the_file_is_named(tmp_path, preprocessor):
    frame = table().astype({"size": object})
    frame.loc[40, "size"] = "n/a?"
    path = tmp_path / "rows.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(DataError, match="rows.csv"):
        list(FileRows(path, preprocessor, "anomaly", batch_size=5, chunk_rows=7))
    with pytest.raises(DataError, match="no such file"):
        FileRows(tmp_path / "none.csv", preprocessor, None, batch_size=5)
