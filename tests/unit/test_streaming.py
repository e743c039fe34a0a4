"""Chunked reading of CSV and Parquet files for predict: the same rows as reading them whole."""

import hashlib
import mmap
import os

import numpy as np
import pandas as pd
import pytest
import torch

from dagmm_lightning.data import DataError, RawTable, TablePreprocessor
from dagmm_lightning.data import streaming as streaming_module
from dagmm_lightning.data.streaming import FileRows

from ..conftest import read_csv


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


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".CSV.GZ", ".parquet"])
def test_chunks_of_a_file_equal_the_whole_file_encoded(tmp_path, preprocessor, suffix):
    frame = table()
    frame.loc[:2, "colour"] = "purple"  # unseen in training: all-zero one-hot
    path = tmp_path / f"rows{suffix}"
    frame.to_csv(path, index=False) if "csv" in suffix.lower() else frame.to_parquet(path, row_group_size=10)
    x, y, index = read_all(FileRows(path, preprocessor, "anomaly", batch_size=5, chunk_rows=7))
    if suffix == ".parquet":  # a length for progress bars: 7 chunks of 7 rows (2 batches each) and one of 4
        assert len(FileRows(path, preprocessor, "anomaly", batch_size=5, chunk_rows=7)) == 15
    else:
        with pytest.raises(TypeError):
            len(FileRows(path, preprocessor, "anomaly", batch_size=5, chunk_rows=7))
    expected = preprocessor.scale(preprocessor.encode(frame.drop(columns="anomaly")))
    np.testing.assert_array_equal(x, expected)
    np.testing.assert_array_equal(y, frame["anomaly"])
    np.testing.assert_array_equal(index, np.arange(len(frame)))
    _, unlabelled, _ = read_all(FileRows(path, preprocessor, None, batch_size=5, chunk_rows=7))
    assert (unlabelled == -1).all()
    if "csv" in suffix.lower():  # an ignored column is read as text, whatever its first values look like
        frame.assign(flow=np.arange(len(frame))).to_csv(path, index=False)
        ignoring = FileRows(path, preprocessor, "anomaly", batch_size=5, chunk_rows=7, ignored=["flow"])
        assert next(ignoring._frames())["flow"].tolist()[:3] == ["0", "1", "2"]
        np.testing.assert_array_equal(read_all(ignoring)[0], expected)


def test_columns_the_model_does_not_read_are_not_read_whatever_their_values(tmp_path, preprocessor):
    frame = table(n=60_000)  # past pyarrow's first block (1 MiB), from which it guessed a column's type
    frame["visits"] = [str(v) if i < 50_000 else f"{v}.5" for i, v in enumerate(frame["count"])]  # int, then not
    frame["notes"] = np.where(np.arange(len(frame)) < 50_000, None, "late")  # blank, then text
    path = tmp_path / "rows.csv"
    frame.to_csv(path, index=False)
    x, y, _ = read_all(FileRows(path, preprocessor, "anomaly", batch_size=4096))  # (had: 'CSV conversion error
    expected = preprocessor.scale(preprocessor.encode(frame[["size", "colour", "count"]]))  # to int64 ... 32.5')
    np.testing.assert_array_equal(x, expected)
    np.testing.assert_array_equal(y, frame["anomaly"])
    frame.rename(columns={"size": " size "}).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"the input's names have spaces around them \(e.g. ' size '\)"):
        list(FileRows(path, preprocessor, "anomaly", batch_size=4096))  # (its column read: the hint kept)


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
    frame.loc[40, "size"] = np.nan
    frame.to_csv(path, index=False)
    # the file's row, not the chunk's
    with pytest.raises(DataError, match=r"the first in column 'size' at row 40 \(the 41st data row\);"):
        list(FileRows(path, preprocessor, "anomaly", batch_size=5, chunk_rows=7))
    with pytest.raises(DataError, match="no such file"):
        FileRows(tmp_path / "none.csv", preprocessor, None, batch_size=5)
    lines = path.read_text().splitlines()
    lines[41] += ",7"  # row 40, after the header line: one field too many
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"rows.csv: CSV parse error \(line 42\): Expected 4 columns, got 5"):
        list(FileRows(path, preprocessor, "anomaly", batch_size=5, chunk_rows=7))
    lines[1] = lines[1].replace(",", ',"two\nlines",', 1)  # row 0: a field too many, on lines 2-3
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"CSV parse error \(line 2\)"):  # where the row starts
        list(FileRows(path, preprocessor, "anomaly", batch_size=5, chunk_rows=7))
    (tmp_path / "bad.parquet").write_text("size\n1\n")
    with pytest.raises(DataError, match="bad.parquet: Parquet file size"):
        len(FileRows(tmp_path / "bad.parquet", preprocessor, None, batch_size=5))
    # a header without rows: its columns checked, then no batch (Lightning iterates a file of unknown length)
    table().iloc[:0].to_parquet(tmp_path / "empty.parquet")
    (tmp_path / "empty.csv").write_text("count,colour,size\n")
    for name in ("empty.parquet", "empty.csv"):
        with pytest.raises(TypeError):
            len(FileRows(tmp_path / name, preprocessor, None, batch_size=5))
        with pytest.warns(UserWarning, match=f"{name} has a header but no rows: nothing to score"):
            assert list(FileRows(tmp_path / name, preprocessor, "anomaly", batch_size=5)) == []
    pd.DataFrame({"size": []}).to_parquet(tmp_path / "empty.parquet")
    with pytest.raises(
        DataError, match=r"empty.parquet \(a header without rows\): columns missing .*\['count', 'colour'\]"
    ):
        list(FileRows(tmp_path / "empty.parquet", preprocessor, None, batch_size=5))
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="empty.csv is empty"):  # no header to check
        list(FileRows(tmp_path / "empty.csv", preprocessor, None, batch_size=5))


# --- training out of core: the splits' scaled rows on disk ------------------------------------------------
def out_of_core_pair(tmp_path, monkeypatch, suffix, n=600, **extra):
    from dagmm_lightning.data import AnomalyDataModule
    from dagmm_lightning.data import datamodule as datamodule_module

    monkeypatch.setattr(datamodule_module, "CHUNK_ROWS", 64)  # many chunks, one split's rows in each
    frame = table(n)
    frame["anomaly"] = (np.arange(n) % 10 == 0).astype(int)
    path = tmp_path / f"rows{suffix}"
    frame.to_csv(path, index=False) if "csv" in suffix else frame.to_parquet(path, row_group_size=50)
    settings = dict(dataset="table", path=str(path), label_column="anomaly", seed=3, batch_size=32, **extra)
    modules = [AnomalyDataModule(**settings, out_of_core=flag) for flag in (False, True)]
    for module in modules:
        module.setup("fit")
    return modules


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".csv.bz2", ".parquet"])
def test_out_of_core_splits_equal_the_in_memory_ones(tmp_path, monkeypatch, suffix):
    in_memory, on_disk = out_of_core_pair(tmp_path, monkeypatch, suffix)
    assert on_disk.preprocessor.state_dict() == in_memory.preprocessor.state_dict()
    assert on_disk.training_rows_fingerprint() == in_memory.training_rows_fingerprint()
    values = hashlib.sha256(in_memory.arrays("train")[0].tobytes()).hexdigest()[:16]  # chunks of 64 on disk
    assert on_disk.training_values_fingerprint() == in_memory.training_values_fingerprint() == values
    assert on_disk.anomaly_share == in_memory.anomaly_share == 0.1
    for split in ("train", "val", "test"):
        (x, y), (x_disk, y_disk) = in_memory.arrays(split), on_disk.arrays(split)
        assert isinstance(x_disk, streaming_module.DiskRows) and x_disk.shape == x.shape
        np.testing.assert_array_equal(np.asarray(x_disk), x)
        np.testing.assert_array_equal(y_disk, y)
    batches = [list(module.train_dataloader()) for module in (in_memory, on_disk)]
    for (x, y, i), (x_disk, y_disk, i_disk) in zip(*batches, strict=True):
        assert torch.equal(x, x_disk) and torch.equal(y, y_disk) and torch.equal(i, i_disk)


def test_out_of_core_names_the_files_row_of_a_missing_value(tmp_path, monkeypatch):
    from dagmm_lightning.data import AnomalyDataModule
    from dagmm_lightning.data import datamodule as datamodule_module

    monkeypatch.setattr(datamodule_module, "CHUNK_ROWS", 64)
    frame = table(600)
    frame.loc[300, "size"] = np.nan  # in the fifth chunk
    frame.to_csv(tmp_path / "rows.csv", index=False)
    for out_of_core in (False, True):
        data = AnomalyDataModule(dataset="table", path=str(tmp_path / "rows.csv"), out_of_core=out_of_core)
        with pytest.raises(DataError, match=r"the first in column 'size' at row 300 \(the 301st data row\);"):
            data.setup("fit")


def test_out_of_core_reads_columns_as_the_whole_file_types_them(tmp_path):
    """pyarrow types CSV columns from the first 1 MiB: a true/false column must still be symbolic text in
    every pass, and an integer column that holds a decimal further down must read as float."""
    from dagmm_lightning.data import AnomalyDataModule

    n = 40_000  # about 1.3 MB: the decimal lies beyond the first block
    frame = pd.DataFrame({"count": np.arange(n) % 7, "flag": np.where(np.arange(n) % 3 == 0, "true", "false")})
    frame["count"] = frame["count"].astype(object)
    frame.loc[n - 5, "count"] = 2.5
    frame["anomaly"] = (np.arange(n) % 10 == 0).astype(int)
    path = tmp_path / "rows.csv"
    frame.to_csv(path, index=False)
    settings = dict(dataset="table", path=str(path), label_column="anomaly", seed=0)
    in_memory, on_disk = (AnomalyDataModule(**settings, out_of_core=flag) for flag in (False, True))
    for module in (in_memory, on_disk):
        module.setup("fit")
    for split in ("train", "test"):
        x, x_disk = in_memory.arrays(split)[0], np.asarray(on_disk.arrays(split)[0])
        np.testing.assert_array_equal(x_disk, x)
    assert np.asarray(on_disk.arrays("train")[0])[:, 1:].sum(1).min() == 1  # every row one flag category
    assert on_disk.preprocessor.state_dict() == in_memory.preprocessor.state_dict()
    assert on_disk.preprocessor.categories["flag"] == ["false", "true"]
    rows = frame.drop(columns="anomaly").astype({"count": float})
    capitalised = rows.assign(flag=rows["flag"].str.capitalize())  # as pandas writes bools
    np.testing.assert_array_equal(on_disk.preprocessor.encode(capitalised), in_memory.preprocessor.encode(rows))


def test_row_folders_that_killed_runs_left_are_removed_by_the_next_out_of_core_fit(tmp_path, monkeypatch):
    import socket
    import subprocess
    import sys
    import tempfile

    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead, host = int(ended.stdout), socket.gethostname()
    namespace = os.readlink("/proc/self/ns/pid")
    temporary = tmp_path / "tmp"
    owners = {
        "killed": f"{host} {dead} {namespace}",
        "running": f"{host} {os.getpid()} {namespace}",
        "elsewhere": f"other-{host} {dead} {namespace}",
        "container": f"{host} {dead} pid:[1]",  # another pid namespace: its pids are not ours to test
    }
    for name, owner in owners.items():
        (temporary / f"dagmm-rows-{name}").mkdir(parents=True)
        (temporary / f"dagmm-rows-{name}" / "train.npy").write_bytes(b"rows")
        (temporary / f"dagmm-rows-{name}" / "owner").write_text(owner + "\n")
    (temporary / "dagmm-rows-being-made").mkdir()  # no owner file yet (or an older version's)
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    _, on_disk = out_of_core_pair(tmp_path, monkeypatch, ".csv")
    left = {p.name for p in temporary.iterdir()}
    kept = {f"dagmm-rows-{name}" for name in ("running", "elsewhere", "container", "being-made")}
    assert kept < left and "dagmm-rows-killed" not in left and len(left) == 5  # had: killed left too
    (written,) = left - kept
    assert (temporary / written / "owner").read_text() == f"{host} {os.getpid()} {namespace}\n"
    assert np.asarray(on_disk.arrays("train")[0]).shape[0] == len(on_disk.splits.train)


def test_an_out_of_core_fit_on_a_full_disk_names_the_folder_and_tmpdir_and_leaves_no_rows(tmp_path, monkeypatch):
    import errno
    import tempfile

    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))

    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "pwritev", full)
    with pytest.raises(DataError) as refused:  # (had: the OSError's traceback from inside DiskRows.write)
        out_of_core_pair(tmp_path, monkeypatch, ".csv")
    said = f"cannot write the out-of-core rows to {temporary}: No space left on device; set TMPDIR to a folder on a"
    assert str(refused.value).startswith(said) and not list(temporary.iterdir())  # its rows removed at once
    monkeypatch.setattr(streaming_module, "process_identity", full)  # full before the owner file is written
    with pytest.raises(DataError) as refused:
        out_of_core_pair(tmp_path, monkeypatch, ".csv")
    assert str(refused.value).startswith(said) and not list(temporary.iterdir())  # (had: a folder without owner)


def test_disk_rows_read_no_rows(tmp_path):
    np.save(tmp_path / "rows.npy", np.zeros((0, 3), dtype=np.float32))
    rows = streaming_module.DiskRows(tmp_path / "rows.npy")
    assert rows[:].shape == (0, 3) and rows[torch.zeros(0, dtype=torch.long)].shape == (0, 3)
    assert np.asarray(rows).shape == (0, 3)


def test_out_of_core_predict_on_a_file_writes_no_rows(tmp_path, monkeypatch):
    from dagmm_lightning.data import AnomalyDataModule

    in_memory, _ = out_of_core_pair(tmp_path, monkeypatch, ".csv")
    settings = dict(in_memory.hparams, out_of_core=True, predict_file=str(tmp_path / "rows.csv"))
    scoring = AnomalyDataModule(**settings)
    scoring.setup("predict")
    scoring.load_state_dict(in_memory.state_dict())  # as from the checkpoint
    assert scoring._on_disk is None
    x, _, _ = (torch.cat(part) for part in zip(*scoring.predict_dataloader(), strict=True))
    expected = in_memory.preprocessor.scale(in_memory.preprocessor.encode(read_csv(tmp_path / "rows.csv")))
    np.testing.assert_array_equal(x.numpy(), expected)


def resident_kib() -> int:
    return int(next(line for line in open("/proc/self/status") if line.startswith("VmRSS:")).split()[1])


def test_disk_rows_read_like_a_tensor_and_keep_nothing_of_the_file(tmp_path):
    values = np.random.default_rng(0).normal(size=(400_000, 20)).astype(np.float32)  # 32 MiB
    path = tmp_path / "rows.npy"
    np.save(path, values)
    rows = streaming_module.DiskRows(path)
    del values  # from here on, the file is the only copy
    values = np.load(path, mmap_mode="r")
    before = resident_kib()
    index = torch.tensor([5, 399_999, 0, 5])
    assert torch.equal(rows[index], torch.from_numpy(values[index.numpy()]))
    assert torch.equal(rows[np.arange(10) % 3 == 0], torch.from_numpy(values[[0, 3, 6, 9]]))
    assert len(rows) == 400_000 and rows.shape == (400_000, 20)
    for start in range(0, len(rows), 20_000):
        assert torch.equal(rows[start : start + 20_000], torch.from_numpy(np.array(values[start : start + 20_000])))
        values._mmap.madvise(mmap.MADV_DONTNEED)  # the reference's pages do not count either
    assert resident_kib() - before < 8 * 1024  # the file is 32 MiB
    np.testing.assert_array_equal(np.asarray(rows), values)
    with pytest.raises(IndexError):
        rows[torch.tensor([400_000])]


def test_training_out_of_core_equals_training_in_memory(tmp_path, monkeypatch):
    import lightning as L

    from dagmm_lightning.models import DAGMM

    results = []
    for module in out_of_core_pair(tmp_path, monkeypatch, ".csv"):
        L.seed_everything(0, verbose=False)
        model = DAGMM(module.input_dim, None, None, n_components=2, members=2, lr=1e-2)
        trainer = L.Trainer(max_steps=12, logger=False, enable_checkpointing=False, enable_progress_bar=False)
        trainer.fit(model, datamodule=module)
        results.append(model.state_dict())
    assert results[0].keys() == results[1].keys()
    for name, value in results[0].items():
        torch.testing.assert_close(results[1][name], value, rtol=0, atol=0, msg=name)


def test_data_sized_model_on_a_mixed_split_out_of_core_leaves_the_labelled_anomalies_out(tmp_path, monkeypatch):
    from dagmm_lightning.labels import LABELLED_ANOMALY
    from dagmm_lightning.models import DAGMM
    from dagmm_lightning.sizing import network_sizes

    sizes = []
    for module in out_of_core_pair(tmp_path, monkeypatch, ".csv", split="mixed"):
        model = DAGMM(module.input_dim, None, None, n_components=2)
        model.size_from_data(module)
        sizes.append((model.hparams.hidden_dims, model.hparams.latent_dim, model.hparams.n_components))
    x, y = module.arrays("train")
    assert (y == LABELLED_ANOMALY).any()
    assert sizes[0] == sizes[1] == network_sizes(np.asarray(x)[y != LABELLED_ANOMALY], 2)[:3]


def test_out_of_core_needs_a_table_file():
    from dagmm_lightning.data import AnomalyDataModule
    from dagmm_lightning.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="out_of_core"):
        AnomalyDataModule(dataset="kddcup99", out_of_core=True)
    with pytest.raises(ConfigurationError, match=r"\.csv, \.csv\.gz, \.csv\.bz2\) or Parquet .*; rows.npz is neither"):
        AnomalyDataModule(dataset="table", path="rows.npz", out_of_core=True)
    with pytest.raises(ConfigurationError, match="rows.csv.xz is neither"):
        AnomalyDataModule(dataset="table", path="rows.csv.xz", out_of_core=True)


def test_out_of_core_chooses_symbolic_columns_by_the_in_memory_rule(tmp_path):
    from dagmm_lightning.data import AnomalyDataModule

    n = 200
    frame = table(n).assign(code=lambda f: f["count"].astype(str), anomaly=(np.arange(n) % 10 == 0).astype(int))
    frame.to_parquet(tmp_path / "rows.parquet")  # "code": a text column of numbers only, read as numbers
    settings = dict(dataset="table", path=str(tmp_path / "rows.parquet"), label_column="anomaly", seed=0)
    in_memory, on_disk = (AnomalyDataModule(**settings, out_of_core=flag) for flag in (False, True))
    for module in (in_memory, on_disk):
        module.setup("fit")
    assert on_disk.preprocessor.state_dict() == in_memory.preprocessor.state_dict()
    assert list(in_memory.preprocessor.categories) == ["colour"] and "code" in in_memory.preprocessor.numeric
    np.testing.assert_array_equal(np.asarray(on_disk.arrays("train")[0]), in_memory.arrays("train")[0])
    dated = frame.assign(when=pd.date_range("2026-01-01", periods=n, freq="h"))
    dated.to_parquet(tmp_path / "dated.parquet")
    dated.to_csv(tmp_path / "dated.csv", index=False)  # in a CSV the dates are text: "2026-01-01 00:00:00"
    for flag, name in [(False, "dated.parquet"), (True, "dated.parquet"), (False, "dated.csv"), (True, "dated.csv")]:
        module = AnomalyDataModule(**{**settings, "path": str(tmp_path / name)}, out_of_core=flag)
        with pytest.raises(DataError, match="column 'when' holds dates or times"):
            module.setup("fit")


def test_out_of_core_rows_follow_an_old_checkpoints_scaling(tmp_path):
    from dagmm_lightning.data import AnomalyDataModule

    n = 200
    anomaly = (np.arange(n) % 10 == 0).astype(int)
    table(n).assign(flat=5.0 * anomaly, anomaly=anomaly).to_csv(tmp_path / "rows.csv", index=False)
    settings = dict(dataset="table", path=str(tmp_path / "rows.csv"), label_column="anomaly", seed=0)
    fitted = AnomalyDataModule(**settings)
    fitted.setup("fit")  # "flat" is 0 on every training row (normal), 5 on the anomalies
    state = fitted.state_dict()
    old = {**state, "preprocessor": {k: v for k, v in state["preprocessor"].items() if k != "constant"}}
    modules = [AnomalyDataModule(**settings, out_of_core=flag) for flag in (False, True)]
    for module in modules:
        module.setup("test")  # out of core: rows written with this version's scaling, before the checkpoint
        module.load_state_dict(old)
    in_memory, on_disk = (np.asarray(module.arrays("test")[0]) for module in modules)
    np.testing.assert_array_equal(on_disk, in_memory)
    flat = modules[0].preprocessor.numeric.index("flat")  # numeric columns come first
    assert in_memory[:, flat].max() == 5.0  # unclipped, as the old checkpoint's model was trained to see


def test_rows_to_score_read_a_missing_label_as_unknown(tmp_path):
    from dagmm_lightning.data.loaders import read_npz_file

    np.savez(tmp_path / "rows.npz", X=np.ones((3, 2)), y=np.array([1.0, np.nan, 0.0]))
    assert read_npz_file(tmp_path / "rows.npz", missing_unknown=True).is_anomaly.tolist() == [1, -1, 0]
    with pytest.raises(DataError, match="label column 'y' has no value at row 1"):
        read_npz_file(tmp_path / "rows.npz")  # training rows: every label known


def test_a_column_typed_numeric_on_the_first_rows_names_that_rule_at_a_later_text_value(tmp_path):
    grade = [str(1 + i % 5) for i in range(300)] + ["A", "B"] * 50  # numbers in the first chunk only
    pd.DataFrame({"x": np.arange(400.0), "grade": grade}).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(
        DataError,
        match=r"not a number: 'A' \(line 302: row 300, the 301st data row\): out of core, a column's type comes from "
        r"the file's first 100 rows, "
        r"where 'grade' holds numbers only; if it is a text column, list it in symbolic_columns",
    ):
        streaming_module.scan_file(tmp_path / "t.csv", None, None, chunk_rows=100)
    named = streaming_module.scan_file(tmp_path / "t.csv", None, ["grade"], chunk_rows=100)  # as the message says
    assert named.head.categories == {"grade": ["1", "2", "3", "4", "5", "A", "B"]}
    pd.DataFrame({"x": np.arange(400.0), "grade": grade}).to_parquet(tmp_path / "t.parquet")  # a text column
    with pytest.raises(DataError, match=r"column 'grade' holds 'A': out of core, a column's type comes from the fi"):
        streaming_module.scan_file(tmp_path / "t.parquet", None, None, chunk_rows=100)
    padded = [str(1 + i % 5) for i in range(300)] + [" NA "] * 100  # pyarrow reads only NA itself as missing
    pd.DataFrame({"x": np.arange(400.0), "grade": padded}).to_csv(tmp_path / "padded.csv", index=False)
    with pytest.raises(
        DataError,
        match=r"\(line 302: row 300, the 301st data row\): numeric column 'grade' has a missing value "
        r"\(' ?NA ?'\); fill",
    ):
        streaming_module.scan_file(tmp_path / "padded.csv", None, None, chunk_rows=100)


def test_a_column_empty_in_the_first_block_of_a_file_is_read_by_its_later_values(tmp_path):
    wide = pd.DataFrame(np.random.default_rng(0).normal(size=(30_000, 6))).add_prefix("x")  # ~110 bytes a row:
    rows = np.arange(len(wide))  # pyarrow types a column by its first block (1 MiB, ~9,500 rows here)
    for empty_until in (12_000, 20_000):  # within the first chunk of 16,384 rows, and past it
        wide.assign(note=np.where(rows < empty_until, None, "late")).to_csv(tmp_path / "text.csv", index=False)
        scanned = streaming_module.scan_file(tmp_path / "text.csv", None, None, chunk_rows=16_384)  # (had: 'CSV
        assert scanned.head.categories == {"note": ["late", "nan"]} and scanned.n_rows == 30_000  # conversion
        # error to null: invalid value 'late'', pyarrow's words); as the in-memory reader: text, one-hot encoded
    numbers = np.where(rows < 12_000, np.nan, wide["x0"])  # numbers in the first chunk: a numeric column
    wide.assign(note=numbers).to_csv(tmp_path / "numbers.csv", index=False)
    assert streaming_module.scan_file(tmp_path / "numbers.csv", None, None, chunk_rows=16_384).head.categories == {}
    wide.assign(note=np.where(rows < 20_000, np.nan, wide["x0"])).to_csv(tmp_path / "numbers.csv", index=False)
    with pytest.raises(
        DataError,
        match=r"numbers.csv: column 'note' is empty in the file's first 16,384 rows and holds numbers further on "
        r"\(e.g. '-?\d\.\d+', row 20,000\): out of core, a column's type comes from those rows; fill its missing",
    ):
        streaming_module.scan_file(tmp_path / "numbers.csv", None, None, chunk_rows=16_384)


def test_a_parquet_file_with_two_columns_of_one_name_is_refused_by_both_readers(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from dagmm_lightning.data.loaders import read_user_table
    from dagmm_lightning.data.streaming import read_frames

    columns = [pa.array(np.arange(5.0)), pa.array(np.ones(5)), pa.array(np.zeros(5, dtype=np.int64))]
    pq.write_table(pa.Table.from_arrays(columns, names=["x", "x", "label"]), tmp_path / "joined.parquet")
    message = r"joined.parquet has columns that share a name: \['x'\]; rename them"
    with pytest.raises(DataError, match=message):  # had: pyarrow's 'Multiple matches for FieldRef.Name(x)'
        read_user_table(tmp_path / "joined.parquet", "label")
    with pytest.raises(DataError, match=message):  # had: an AttributeError from pandas, deep in encoding
        next(read_frames(tmp_path / "joined.parquet", 100))


@pytest.mark.parametrize("name", ["ids.csv", "ids.csv.gz", "ids.csv.xz", "ids.parquet"])
@pytest.mark.parametrize("whole", [False, True])
def test_kept_columns_are_read_as_text_in_step_with_the_rows(tmp_path, monkeypatch, name, whole):
    from dagmm_lightning.data.streaming import KeptColumns, column_names

    monkeypatch.setattr(streaming_module, "CHUNK_ROWS", 4)  # rows asked for across chunks
    ids = ["007", "", "a;b", "line\nbreak", "NA", *[f"r{i}" for i in range(5, 23)]]
    frame = pd.DataFrame({"id": ids, "x": np.arange(23) / 2, "host": [f"h{i % 3}" for i in range(23)]})
    path = tmp_path / name
    if name.endswith("parquet"):
        frame.to_parquet(path)
    else:
        frame.to_csv(path, sep=";", index=False)  # a semicolon inside a quoted value, a line break in one
    assert column_names(path) == ["id", "x", "host"]
    kept = KeptColumns(path, ["host", "id"], whole)
    expected = frame[["host", "id"]]  # a Parquet file's text as it is; a CSV's missing values (blank, NA) blank
    expected = expected if name.endswith("parquet") else expected.replace({"id": {"NA": ""}})
    for index in [np.arange(0, 5), np.arange(5, 13), np.array([13, 17, 21]), np.array([2, 3]), np.array([22])]:
        got = kept.rows(index).fillna("")  # in rising order, strided as a rank's share, a step back, the last
        pd.testing.assert_frame_equal(got, expected.iloc[index].reset_index(drop=True), check_dtype=False)
    with pytest.raises(DataError, match="has fewer rows than were scored: changed while it was scored"):
        kept.rows(np.array([23]))


def test_a_parquet_files_stored_pandas_index_is_no_column(tmp_path):
    from dagmm_lightning.data.loaders import read_user_table
    from dagmm_lightning.data.streaming import column_names

    frame = pd.DataFrame({"a": np.arange(6.0), "b": np.arange(6.0) % 2, "y": [0, 0, 0, 0, 0, 1]})
    frame[frame["a"] > 1].to_parquet(tmp_path / "filtered.parquet")  # its index stored as __index_level_0__
    frame.set_index("a").to_parquet(tmp_path / "indexed.parquet")  # a named index
    for name, columns in (("filtered.parquet", ["a", "b", "y"]), ("indexed.parquet", ["b", "y"])):
        read = read_user_table(tmp_path / name, "y")
        assert column_names(tmp_path / name) == columns == [*read.features.columns, "y"]  # as the reader reads it


def test_parquet_timestamps_booleans_and_lists_are_kept_as_pandas_shows_them(tmp_path):
    from dagmm_lightning.data.streaming import KeptColumns

    frame = pd.DataFrame(
        {
            "at": pd.to_datetime(["2020-01-01 01:02:03", None, "2021-05-06 00:00:00"]),
            "ok": pd.array([True, None, False], dtype="boolean"),
            "tags": [[1, 2], [], None],
            "x": [1.0, 2.0, 3.0],
        }
    )
    frame.to_parquet(tmp_path / "kinds.parquet")
    for whole in (False, True):  # (had: Arrow's own text, 2020-01-01 01:02:03.000000 and true; a list: a traceback)
        got = KeptColumns(tmp_path / "kinds.parquet", ["at", "ok", "tags"], whole).rows(np.arange(3))
        assert {k: [None if pd.isna(v) else v for v in values] for k, values in got.to_dict("list").items()} == {
            "at": ["2020-01-01 01:02:03", None, "2021-05-06 00:00:00"],
            "ok": ["True", None, "False"],
            "tags": ["[1 2]", "[]", None],
        }


def test_a_parquet_integer_id_with_nulls_is_kept_as_written(tmp_path):
    import pyarrow as pa
    from pyarrow import parquet

    from dagmm_lightning.data.streaming import KeptColumns

    ids = pa.array([12345678901234567, None, 3], type=pa.int64())  # (no pandas metadata: pyarrow's, Spark's)
    parquet.write_table(pa.table({"id": ids, "x": [1.0, 2.0, 3.0]}), tmp_path / "ids.parquet")
    for whole in (False, True):
        got = KeptColumns(tmp_path / "ids.parquet", ["id"], whole).rows(np.arange(3))["id"].tolist()
        assert [None if pd.isna(v) else v for v in got] == ["12345678901234567", None, "3"]  # had: 1.23...e+16, 3.0


def test_kept_columns_of_rows_without_names_are_refused_by_name(tmp_path):
    from types import SimpleNamespace

    from dagmm_lightning.callbacks import PredictionCSVWriter

    np.savez(tmp_path / "rows.npz", X=np.zeros((3, 2)))
    npz = SimpleNamespace(dataset="table", predict_file=str(tmp_path / "rows.npz"), ignore_columns=None)
    with pytest.raises(DataError, match=r"keep_columns \['id'\]: the rows scored are an NPZ file's \(rows.npz\)"):
        PredictionCSVWriter(keep_columns=["id"])._read_kept_columns(npz)
    assert PredictionCSVWriter()._read_kept_columns(npz) is None  # nothing asked: nothing kept, no error
    named = SimpleNamespace(dataset="kddcup99", predict_file=None, ignore_columns=None)
    with pytest.raises(DataError, match=r"keep_columns \['id'\]: the rows scored come from no table file"):
        PredictionCSVWriter(keep_columns=["id"])._read_kept_columns(named)


def test_the_scans_id_warnings_say_they_read_the_first_chunk_only(tmp_path):
    """Out of core, the row-number and id-name rules read the file's first chunk: the warnings say so, and
    quote that chunk's range, not as if it were the column's (had: 'the integers 30000000 to 30000099,
    each once' of a 250-row column)."""
    rows = np.arange(250)
    frame = pd.DataFrame({"n": 30_000_000 + rows, "user_id": rows[::-1] * 7, "v": np.sin(rows)})
    frame.to_csv(tmp_path / "t.csv", index=False)
    with pytest.warns(UserWarning) as caught:
        streaming_module.scan_file(tmp_path / "t.csv", None, None, chunk_rows=100)
    said = [str(w.message) for w in caught]
    assert any("'n' holds the integers 30000000 to 30000099, each once in its first 100 rows: a row" in m for m in said)
    assert any("'user_id' holds a different integer on each of its first 100 rows and is named" in m for m in said)
