import gzip
import logging
import re
import warnings
import zipfile

import numpy as np
import pandas as pd
import pytest
import torch

from dagmm_lightning.data import (
    AnomalyDataModule,
    DataError,
    InMemoryBatches,
    RawTable,
    TablePreprocessor,
    make_splits,
    read_kddcup99_file,
)
from dagmm_lightning.data import batches as batches_module
from dagmm_lightning.data.loaders import anomaly_labels
from dagmm_lightning.data.tables import SCALED_LIMIT, category_codes, category_text, infer_symbolic_columns
from dagmm_lightning.errors import ConfigurationError, DAGMMWarning, MissingLabelError

from ..conftest import read_csv

pytestmark = pytest.mark.data


@pytest.fixture(scope="module")
def kdd(paper_data):
    dm = AnomalyDataModule("kddcup99", data_dir=str(paper_data), seed=0)
    dm.setup("fit")
    return dm


def test_kddcup99_loader_counts(kdd):
    assert len(kdd.is_anomaly) == 494_021
    assert kdd.input_dim == 118
    assert int(kdd.is_anomaly.sum()) == 97_278
    assert kdd.rho == 20.0


def test_kddcup99_paper_split_sizes_and_disjoint(kdd):
    s, y = kdd.splits, kdd.is_anomaly
    train_side = 494_021 // 2
    assert len(s.test) == 494_021 - train_side
    assert not y[s.train].any()
    assert len(s.train) + len(s.val) + len(s.spare) == train_side  # the training half, nothing lost or added
    assert y[s.spare].all()
    n_normal_side = train_side - int(y[s.val].sum()) - len(s.spare)
    assert len(s.train) == n_normal_side - round(0.1 * n_normal_side)
    rows = np.concatenate([s.train, s.val, s.test, s.spare])
    assert len(np.unique(rows)) == len(rows) == 494_021
    # test and val keep the natural anomaly ratio (19.69 %)
    assert abs(y[s.test].mean() - y.mean()) < 0.005
    assert abs(y[s.val].mean() - y.mean()) < 0.001


def test_reimplementation_split_composition():
    y = np.r_[np.zeros(1000, bool), np.ones(200, bool)]
    s = make_splits(y, "reimplementation", seed=1, val_fraction=0.1)
    assert not y[s.train].any() and len(s.train) == 450
    assert y[s.val].sum() == 20 and (~y[s.val]).sum() == 50
    assert y[s.test].sum() == 180 and (~y[s.test]).sum() == 500
    rows = np.concatenate([s.train, s.val, s.test])
    assert len(np.unique(rows)) == len(rows) == 1200
    again = make_splits(y, "reimplementation", seed=1, val_fraction=0.1)
    assert all(
        np.array_equal(a, b)
        for a, b in zip((s.train, s.val, s.test), (again.train, again.val, again.test), strict=True)
    )
    assert not np.array_equal(s.train, make_splits(y, "reimplementation", seed=2).train)


def test_scaling_is_fitted_on_training_rows_only(kdd):
    x_train, _ = kdd.arrays("train")
    x_test, _ = kdd.arrays("test")
    varying = x_train.max(0) > x_train.min(0)
    np.testing.assert_allclose(x_train.min(0), 0.0, atol=1e-6)
    np.testing.assert_allclose(x_train.max(0)[varying], 1.0, atol=1e-6)
    assert (x_test.max(0) > 1.0 + 1e-6).any()  # test rows are not rescaled to [0, 1]


def test_a_split_of_few_training_rows_is_warned_about():
    with pytest.warns(UserWarning, match=r"only 2 training rows \(val_fraction 0.99 of the training side held out\)"):
        AnomalyDataModule(val_fraction=0.99).setup("fit")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(AnomalyDataModule(val_fraction=0.5).splits.train) >= 20


def test_a_split_without_training_rows_says_how_many_normal_rows_there_are():
    with pytest.raises(DataError, match="no normal rows for training: the table has 1 normal row of 1"):
        make_splits(np.array([False]), "paper", 0, 0.1)
    with pytest.raises(DataError, match="the table has 0 normal rows of 10"):
        make_splits(np.ones(10, dtype=bool), "reimplementation", 0, 0.1)


def test_a_checkpoint_trained_in_memory_tests_out_of_core_on_the_same_rows(tmp_path):
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"a": rng.normal(size=300), "k": rng.choice(["x", "y", "z"], 300), "label": 0})
    frame.loc[:14, "label"] = 1
    frame.to_csv(tmp_path / "rows.csv", index=False)
    settings = dict(dataset="table", path=str(tmp_path / "rows.csv"), label_column="label", seed=0)
    fitted = AnomalyDataModule(**settings)
    fitted.setup("fit")
    chunked = AnomalyDataModule(**settings, out_of_core=True)  # dagmm test --data.out_of_core true
    chunked.setup("test")
    chunked.load_state_dict(fitted.state_dict())
    for split in ("test", "val"):
        (x, y), (x_chunked, y_chunked) = fitted.arrays(split), chunked.arrays(split)
        np.testing.assert_array_equal(np.asarray(x_chunked), np.asarray(x))
        np.testing.assert_array_equal(np.asarray(y_chunked), np.asarray(y))


@pytest.mark.parametrize("out_of_core", [False, True])
def test_a_restored_data_module_encodes_as_its_checkpoint_and_checks_the_training_values(tmp_path, out_of_core):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=200), "k": rng.choice(["x", "y"], 200), "label": 0})
    path = tmp_path / "rows.csv"
    frame.to_csv(path, index=False)
    settings = dict(dataset="table", path=str(path), label_column="label", seed=0, out_of_core=out_of_core)
    fitted = AnomalyDataModule(**settings)
    fitted.setup("fit")
    state, test_row = fitted.state_dict(), fitted.splits.test[0]
    frame.loc[test_row, "k"] = "z"  # a category the fit never saw, in a test row
    frame.to_csv(path, index=False)
    restored = AnomalyDataModule(**settings)
    restored.setup("test")
    restored.load_state_dict(state)  # the training rows are the fit's
    assert restored.preprocessor.categories == {"k": ["x", "y"]}
    x, _ = restored.arrays("test")
    np.testing.assert_array_equal(np.asarray(x)[restored.splits.test == test_row][0, 1:], [0, 0])  # all zeros
    frame.loc[fitted.splits.train[0], "a"] += 1.0  # a training row edited
    frame.to_csv(path, index=False)
    edited = AnomalyDataModule(**settings)
    edited.setup("test")
    with pytest.raises(DataError, match="the values of its training rows changed"):
        edited.load_state_dict(state)


def test_an_npz_scored_against_a_model_of_named_columns_says_it_has_no_names(tmp_path):
    frame = pd.DataFrame({"speed": np.arange(60.0) % 7, "size": np.arange(60.0) % 5, "label": 0})
    frame.to_csv(tmp_path / "rows.csv", index=False)
    np.savez(tmp_path / "rows.npz", X=frame[["speed", "size"]].to_numpy())
    settings = dict(dataset="table", path=str(tmp_path / "rows.csv"), label_column="label", seed=0)
    fitted = AnomalyDataModule(**settings)
    fitted.setup("fit")
    scoring = AnomalyDataModule(**settings, predict_file=str(tmp_path / "rows.npz"))
    scoring.setup("predict")
    scoring.load_state_dict(fitted.state_dict())
    message = r"missing from the input: \['speed', 'size'\].* \(rows.npz is an NPZ file: its columns have no names"
    with pytest.raises(DataError, match=message):
        scoring.predict_dataloader()


def test_a_file_not_in_a_paper_data_sets_format_names_that_format(tmp_path):
    thyroid = AnomalyDataModule(dataset="thyroid", seed=0)
    thyroid.setup("fit")
    x, _ = thyroid.arrays("test")
    pd.DataFrame(x, columns=[f"x{i}" for i in range(6)]).to_csv(tmp_path / "rows.csv", index=False)
    np.savez(tmp_path / "rows.npz", X=x)
    thyroid.predict_file = str(tmp_path / "rows.csv")
    message = r"holds no NPZ archive.* \(a model of the data set 'thyroid' scores files in its format: an NPZ file"
    with pytest.raises(DataError, match=message):  # had: 'no NPZ archive' alone, for a table of its features
        thyroid.predict_dataloader()
    thyroid.predict_file = str(tmp_path / "rows.npz")  # its format: scored
    assert thyroid.predict_dataloader().x.shape == x.shape
    np.savez(tmp_path / "odd.npz", X=x, y=np.full(len(x), "maybe"))
    thyroid.predict_file = str(tmp_path / "odd.npz")  # its format, a fault of its own: no word of the format
    with pytest.raises(DataError) as refused:
        thyroid.predict_dataloader()
    assert "scores files in its format" not in str(refused.value)
    for wider in (np.hstack([x, x[:, :1]]), np.hstack([np.arange(len(x))[:, None], x])):  # had: scored, exit 0
        np.savez(tmp_path / "wide.npz", X=wider)
        thyroid.predict_file = str(tmp_path / "wide.npz")
        with pytest.raises(DataError, match=rf"^{tmp_path}/wide.npz: X has 7 columns, the model was trained on 6"):
            thyroid.predict_dataloader()  # (the path as given: had, its name alone)
    np.savez(tmp_path / "empty.npz", X=x[:0])
    thyroid.predict_file = str(tmp_path / "empty.npz")
    with pytest.raises(DataError, match=rf"^'X' in {tmp_path}/empty.npz has no rows$"):  # had: the table has no rows
        thyroid.predict_dataloader()


@pytest.mark.parametrize("out_of_core", [False, True])
def test_reading_a_large_table_file_is_said_before_it_starts(tmp_path, monkeypatch, caplog, out_of_core):
    import dagmm_lightning.data.datamodule as datamodule

    pd.DataFrame({"speed": np.arange(60.0) % 7, "label": 0}).to_csv(tmp_path / "rows.csv", index=False)
    size = (tmp_path / "rows.csv").stat().st_size
    caplog.set_level(logging.INFO)
    for limit in (size + 1, size):
        monkeypatch.setattr(datamodule, "LARGE_FILE_BYTES", limit)
        caplog.clear()
        module = AnomalyDataModule(dataset="table", path=str(tmp_path / "rows.csv"), out_of_core=out_of_core)
        module.setup("fit")
        said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("reading")]
        how = "in chunks, its rows written to a temporary folder" if out_of_core else "into memory"
        assert said == ([] if limit > size else [f"reading rows.csv (0 MiB) {how}"])


def test_predict_warns_of_a_large_file_it_reads_whole_and_not_of_one_read_in_chunks(tmp_path, monkeypatch):
    import dagmm_lightning.data.datamodule as datamodule

    frame = pd.DataFrame({"speed": np.arange(60.0) % 7, "size": np.arange(60.0) % 5, "label": 0})
    frame.to_csv(tmp_path / "rows.csv", index=False)
    frame.to_csv(tmp_path / "rows.csv.xz", index=False)
    settings = dict(dataset="table", path=str(tmp_path / "rows.csv"), label_column="label", seed=0)
    fitted = AnomalyDataModule(**settings)
    fitted.setup("fit")
    size = (tmp_path / "rows.csv.xz").stat().st_size
    message = "rows.csv.xz (0 MiB) is read whole into memory: only .csv, .csv.gz, .csv.bz2, .parquet, .pq files "
    message += "are read in chunks; convert a file larger than memory"
    for limit, said in ((size + 1, False), (size, True)):
        monkeypatch.setattr(datamodule, "LARGE_FILE_BYTES", limit)
        for name in ("rows.csv.xz", "rows.csv"):
            scoring = AnomalyDataModule(**settings, predict_file=str(tmp_path / name))
            scoring.setup("predict")
            scoring.load_state_dict(fitted.state_dict())
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                assert len(list(scoring.predict_dataloader())) == 1
            whole = [str(w.message) for w in caught if "read whole into memory" in str(w.message)]
            assert whole == ([message] if said and name.endswith(".xz") else [])  # a .csv: in chunks, any size


@pytest.mark.parametrize("out_of_core", [False, True])
def test_a_category_only_rows_outside_training_hold_is_named_at_fit_and_when_scored(tmp_path, out_of_core):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=200), "color": rng.choice(["red", "blue"], 200), "label": 0})
    frame.loc[:9, ["color", "label"]] = ["purple", 1]  # the anomalies' own category: none of them trains
    frame.to_csv(tmp_path / "rows.csv", index=False)
    settings = dict(dataset="table", path=str(tmp_path / "rows.csv"), label_column="label", seed=0)
    fitted = AnomalyDataModule(**settings, out_of_core=out_of_core)
    with pytest.warns(
        UserWarning, match=r"categories only rows outside training hold \('color' 'purple'\): no"
    ) as said:
        fitted.setup("fit")  # had: no word (the model masks the feature, constant on the training rows)
    assert not [w for w in said if "not seen in training" in str(w.message)]  # once, not again as rows are written
    assert fitted.preprocessor.categories_outside_training() == {"color": ["purple"]}
    frame.loc[:9, "color"] = None  # the anomalies' colour missing: said so (had: 'nan', as if a colour)
    frame.to_csv(tmp_path / "blank.csv", index=False)
    blank = AnomalyDataModule(**{**settings, "path": str(tmp_path / "blank.csv")}, out_of_core=out_of_core)
    with pytest.warns(UserWarning, match=r"categories only rows outside training hold \('color' missing values\)"):
        blank.setup("fit")
    frame.loc[:9, "color"] = "purple"
    pd.DataFrame({"a": [0.0, 0.1], "color": ["purple", "red"]}).to_csv(tmp_path / "new.csv", index=False)
    frame.replace("purple", "red").to_csv(tmp_path / "rows.csv", index=False)  # (only the scored file holds it)
    scoring = AnomalyDataModule(**settings, predict_file=str(tmp_path / "new.csv"))
    with pytest.warns(UserWarning, match=r"column 'color' holds categories not seen in training \('purple'\) "):
        scoring.setup("predict")
        scoring.load_state_dict(fitted.state_dict())
        list(scoring.predict_dataloader())  # had: silent (the table had held the category)
    # a file read by chunks: each column once a file, not at every chunk (had: a warning per 16,384 rows)
    from dagmm_lightning.data.streaming import FileRows

    new = pd.DataFrame({"a": np.zeros(6), "color": ["red", "purple", "red", "green", "purple", "pink"]})
    new.to_csv(tmp_path / "new.csv", index=False)
    with pytest.warns(UserWarning, match="not seen in training") as said:
        list(FileRows(tmp_path / "new.csv", fitted.preprocessor, None, batch_size=2, chunk_rows=2))
    unseen = [str(w.message) for w in said if "not seen in training" in str(w.message)]
    assert len(unseen) == 1 and "('purple') in 1 of the rows 0 to 1 (later rows may hold others" in unseen[0]


@pytest.mark.parametrize("out_of_core", [False, True])
def test_rows_to_score_without_a_checkpoints_encoding_are_scaled_as_the_training_rows(tmp_path, out_of_core):
    frame = pd.DataFrame({"speed": np.arange(60.0) % 7, "size": np.arange(60.0) % 5, "label": 0})
    frame.to_csv(tmp_path / "rows.csv", index=False)
    new = pd.DataFrame({"speed": [0.0, 3.0, 12.0], "size": [4.0, -2.0, 1.0]})
    new.to_csv(tmp_path / "new.csv", index=False)
    settings = dict(dataset="table", path=str(tmp_path / "rows.csv"), label_column="label", seed=0)
    fitted = AnomalyDataModule(**settings)
    fitted.setup("fit")
    # a model trained in this process has no checkpoint's encoding to give: the training table's is taken
    scoring = AnomalyDataModule(**settings, predict_file=str(tmp_path / "new.csv"), out_of_core=out_of_core)
    scoring.setup("predict")
    (x, labels, _), *_ = list(scoring.predict_dataloader())
    expected = fitted.preprocessor.scale(fitted.preprocessor.encode(new))
    np.testing.assert_allclose(x.numpy(), expected, rtol=1e-6)
    assert labels.tolist() == [-1, -1, -1]
    if out_of_core:  # (its rows on disk keep the scaling they were written with, as before)
        return
    # a checkpoint's encoding is its run's: after that predict, the next without one takes the table's again
    scoring = AnomalyDataModule(**settings, predict_file=str(tmp_path / "new.csv"))
    other = AnomalyDataModule(**{**settings, "path": str(tmp_path / "other.csv")})
    frame.assign(speed=frame["speed"] * 10).to_csv(tmp_path / "other.csv", index=False)
    other.setup("fit")
    for state in (other.state_dict(), None):  # a loaded model's run, then an in-process model's
        scoring.setup("predict")
        if state is not None:
            scoring.load_state_dict(state, other_data=True)
        (x, _, _), *_ = list(scoring.predict_dataloader())
        scaling = other.preprocessor if state is not None else fitted.preprocessor
        np.testing.assert_allclose(x.numpy(), scaling.scale(scaling.encode(new)), rtol=1e-6)
        scoring.teardown("predict")  # had: the loaded scaling kept for the second


@pytest.mark.parametrize("out_of_core", [False, True])
def test_rows_to_score_pass_a_label_column_of_words_through_as_unknown(tmp_path, out_of_core):
    frame = pd.DataFrame({"speed": np.arange(60.0) % 7, "size": np.arange(60.0) % 5, "label": 0})
    frame.to_csv(tmp_path / "rows.csv", index=False)
    new = frame.head(5).assign(label=["1", "attack", "0", "normal", "true"])  # 'attack': not 0/1
    new.to_csv(tmp_path / "new.csv", index=False)
    settings = dict(dataset="table", path=str(tmp_path / "rows.csv"), label_column="label", seed=0)
    fitted = AnomalyDataModule(**settings)
    fitted.setup("fit")
    scoring = AnomalyDataModule(**settings, predict_file=str(tmp_path / "new.csv"), out_of_core=out_of_core)
    with pytest.warns(UserWarning, match=r"label column 'label' holds \['attack', 'normal'\], not 0/1"):
        scoring.setup("predict")
        scoring.load_state_dict(fitted.state_dict())
        batches = list(scoring.predict_dataloader())
    assert torch.cat([labels for _, labels, _ in batches]).tolist() == [1, -1, 0, -1, 1]  # had: refused
    with pytest.raises(DataError, match=r"must hold 0/1 or true/false \(1 = anomaly\), but also holds \['attack'"):
        AnomalyDataModule(**{**settings, "path": str(tmp_path / "new.csv")}).setup("fit")  # training: refused


def test_words_in_a_label_column_to_score_are_named_once_per_file_and_minus_one_is_silent():
    from dagmm_lightning.data.loaders import anomaly_labels

    warned = set()
    chunks = [pd.Series(["dos", "0", "-1"]), pd.Series(["probe", "dos", "-1.0", "1"])]  # two chunks of one file
    with pytest.warns(UserWarning) as caught:
        labels = [anomaly_labels(chunk, "y", missing_unknown=True, warned=warned).tolist() for chunk in chunks]
    assert labels == [[-1, 0, -1], [-1, -1, -1, 1]]
    assert [str(w.message).split(", not")[0] for w in caught] == [
        "label column 'y' holds ['dos']",
        "label column 'y' holds ['probe']",
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # -1, predict's own "unknown", as a scored file carries it again
        assert anomaly_labels(pd.Series([-1, 0, 1]), "y", missing_unknown=True).tolist() == [-1, 0, 1]


PU = "positive_unlabeled"


def test_labels_that_mark_no_anomaly_are_said_to_leave_half_of_the_rows_to_a_test_without_metrics(tmp_path):
    rng = np.random.default_rng(0)
    rows = pd.DataFrame({"a": rng.normal(size=80), "b": rng.normal(size=80), "is_attack": 0})
    rows.to_csv(tmp_path / "normal.csv", index=False)
    said = (
        r"the labels mark no row as an anomaly, and the paper protocol holds half of the normal rows out as test "
        r"rows \(40\), which give no anomaly metrics: without --data.label_column is_attack every row counts"
    )
    with pytest.warns(UserWarning, match=said):
        data = AnomalyDataModule("table", path=str(tmp_path / "normal.csv"), label_column="is_attack")
        assert len(data.splits.test) == 40 and len(data.splits.train) + len(data.splits.val) == 40
    with pytest.warns(UserWarning, match=r"the labels mark no row as an anomaly, .* metrics: what the c / 2 rule"):
        pu = AnomalyDataModule("table", path=str(tmp_path / "normal.csv"), label_column="is_attack", split=PU)
        assert pu.splits.test.size == 40  # had: no word (a user trial)
    rows.loc[3, "is_attack"] = 1
    rows.to_csv(tmp_path / "normal.csv", index=False)
    with warnings.catch_warnings(record=True) as caught:  # one anomaly: the metrics have both classes
        warnings.simplefilter("always")
        AnomalyDataModule("table", path=str(tmp_path / "normal.csv"), label_column="is_attack").splits  # noqa: B018
    assert not [w for w in caught if "mark no row" in str(w.message)]


def test_a_table_without_a_label_column_names_a_column_that_looks_like_labels(tmp_path):
    from dagmm_lightning.data.tables import label_like_columns

    rng = np.random.default_rng(0)
    flows = pd.DataFrame(
        {"a": rng.normal(size=80), "b": rng.normal(size=80), "is_attack": (np.arange(80) % 10 == 0) * 1}
    )
    flows.to_csv(tmp_path / "flows.csv", index=False)
    with pytest.warns(UserWarning, match=r"no labels: .*; 'is_attack' looks like labels and is trained on as a"):
        unlabelled = AnomalyDataModule("table", path=str(tmp_path / "flows.csv"))
        assert unlabelled.input_dim == 3
    # said again in the split's description, which the fit's summary prints (the warning scrolls away)
    assert unlabelled.describe().endswith(
        ", 'is_attack' looks like labels and trained as a feature: --data.label_column"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # with the label column named: no such warning
        labelled = AnomalyDataModule("table", path=str(tmp_path / "flows.csv"), label_column="is_attack")
        assert labelled.input_dim == 2 and "looks like labels" not in labelled.describe()
    others = pd.DataFrame({"y": [0, 1, 2, 0], "class": ["normal", "dos", "normal", "dos"], "Label": [True, False] * 2})
    assert label_like_columns(others.assign(target=["a", "b", "a", "b"])) == ["class", "Label"]  # (y: three
    # values; target: words, none that names the normal class; class: had been missed, trained on silently)
    kdd = pd.DataFrame({"label": ["normal.", "smurf.", "neptune.", "normal."], "outlier": ["no", "yes", "no", "no"]})
    assert label_like_columns(kdd) == ["label"]
    flows.assign(is_attack=np.where(flows["is_attack"] == 1, "attack", "benign")).to_csv(
        tmp_path / "words.csv", index=False
    )
    with pytest.warns(
        UserWarning, match=r"'is_attack' looks like .* \(after mapping its values to 0/1, 1 = anomaly\)$"
    ):
        assert (
            AnomalyDataModule("table", path=str(tmp_path / "words.csv")).input_dim == 4  # (one-hot: 2)
        )
    flows["is_attack"] = np.where(flows["is_attack"] == 1, -1, 1)  # scikit-learn's outlier labels
    flows.to_csv(tmp_path / "flows.csv", index=False)
    with pytest.warns(UserWarning, match=r"'is_attack' looks like .* \(after mapping its values to 0/1, 1 = anomaly"):
        assert AnomalyDataModule("table", path=str(tmp_path / "flows.csv")).input_dim == 3


def test_embedded_default_needs_no_file(tmp_path):
    dm = AnomalyDataModule("breast_cancer", data_dir=str(tmp_path), seed=3)
    assert dm.input_dim == 30
    assert len(dm.is_anomaly) == 397 and int(dm.is_anomaly.sum()) == 40


@pytest.mark.parametrize("world", [2, 3])
def test_eval_batches_serve_every_row_once_across_ranks(monkeypatch, world):
    x = torch.arange(23, dtype=torch.float32)[:, None]
    served = []
    for r in range(world):
        monkeypatch.setattr(batches_module, "world_size", lambda: world)
        monkeypatch.setattr(batches_module, "rank", lambda r=r: r)
        batches = InMemoryBatches(x, torch.zeros(23), torch.arange(23), batch_size=4, shuffle=False)
        local = [idx for _, _, idx in batches]
        assert len(local) == len(batches)
        served += torch.cat(local).tolist()
    assert sorted(served) == list(range(23))


def test_training_batches_have_equal_steps_per_rank_and_cover_all_rows(monkeypatch):
    x = torch.arange(23, dtype=torch.float32)[:, None]
    steps, served = [], []
    for r in range(2):
        monkeypatch.setattr(batches_module, "world_size", lambda: 2)
        monkeypatch.setattr(batches_module, "rank", lambda r=r: r)
        batches = InMemoryBatches(x, torch.zeros(23), torch.arange(23), 5, shuffle=True, seed=7, min_batch_size=1)
        batches.sampler.set_epoch(3)
        local = [idx for _, _, idx in batches]
        steps.append(len(local))
        served += torch.cat(local).tolist()
    assert steps[0] == steps[1] == 3
    assert set(served) == set(range(23)) and len(served) == 24  # one row repeated as padding


def test_training_batches_go_on_within_the_epoch_a_checkpoint_was_written_in():
    x = torch.arange(20, dtype=torch.float32)[:, None]
    batches = InMemoryBatches(x, torch.zeros(20), torch.arange(20), batch_size=5, shuffle=True, seed=3)
    batches.sampler.set_epoch(1)
    order = [idx for _, _, idx in batches]
    served = iter(batches)
    next(served), next(served)
    state = batches.state_dict()
    assert state == {"epoch": 1, "batches": 2}
    batches.load_state_dict(state)  # resumed in epoch 1: its last two batches
    assert [idx.tolist() for _, _, idx in batches] == [idx.tolist() for idx in order[2:]]
    assert batches.state_dict() == {"epoch": 1, "batches": 4}
    batches.load_state_dict(state)
    batches.sampler.set_epoch(2)  # resumed in the next epoch (an epoch-end checkpoint): all of it
    assert len([idx for _, _, idx in batches]) == 4 and batches.state_dict() == {"epoch": 2, "batches": 4}


def test_a_short_training_tail_joins_the_batch_before_it():
    x = torch.arange(1000, dtype=torch.float32)[:, None]
    batches = InMemoryBatches(x, torch.zeros(1000), torch.arange(1000), batch_size=333, shuffle=True)
    sizes = [len(idx) for _, _, idx in batches]
    assert sizes == [333, 333, 334] and len(batches) == 3  # not [333, 333, 333, 1]
    kept = InMemoryBatches(x, torch.zeros(1000), torch.arange(1000), batch_size=300, shuffle=True)
    assert [len(idx) for _, _, idx in kept] == [300, 300, 300, 100]  # a tail of 100 rows is a batch
    evaluation = InMemoryBatches(x, torch.zeros(1000), torch.arange(1000), batch_size=333, shuffle=False)
    assert [len(idx) for _, _, idx in evaluation] == [333, 333, 333, 1]  # evaluation batches are never merged
    small = InMemoryBatches(x[:64], torch.zeros(64), torch.arange(64), batch_size=16, shuffle=True)
    assert [len(idx) for _, _, idx in small] == [16, 16, 16, 16] and len(small) == 4  # a full batch stays one
    tail = InMemoryBatches(x[:70], torch.zeros(70), torch.arange(70), batch_size=16, shuffle=True)
    assert [len(idx) for _, _, idx in tail] == [16, 16, 16, 22]  # a tail of 6 still joins its neighbour


def test_evaluation_ranks_without_rows_serve_a_padding_row(monkeypatch):
    x = torch.arange(2, dtype=torch.float32)[:, None]
    served = []
    for r in range(3):
        monkeypatch.setattr(batches_module, "world_size", lambda: 3)
        monkeypatch.setattr(batches_module, "rank", lambda r=r: r)
        padded = InMemoryBatches(x, torch.zeros(2), torch.arange(2), batch_size=4, shuffle=False, pad_ranks=True)
        plain = InMemoryBatches(x, torch.zeros(2), torch.arange(2), batch_size=4, shuffle=False)
        served.append([idx.tolist() for _, _, idx in padded])
        assert len(padded) == 1 and len(plain) == (0 if r == 2 else 1)
    assert served == [[[0]], [[1]], [[1]]]  # rank 2 repeats the last row; metrics count row ids once


def test_epochs_shuffle_differently_and_reproducibly():
    def make():
        return InMemoryBatches(torch.arange(50.0)[:, None], torch.zeros(50), torch.arange(50), 50, True, seed=1)

    a, b = make(), make()
    a.sampler.set_epoch(0)
    b.sampler.set_epoch(0)
    first = next(iter(a))[2]
    assert torch.equal(first, next(iter(b))[2])
    a.sampler.set_epoch(1)
    assert not torch.equal(first, next(iter(a))[2])


# --- bad input ---------------------------------------------------------------------------------------


def test_a_mistyped_kddcup99_folder_is_named_and_not_made(tmp_path):
    from dagmm_lightning.data.loaders import load_kddcup99

    typo = tmp_path / "dtaa"
    with pytest.raises(DataError, match=rf"^the data folder {typo} does not exist: point --data.data_dir"):
        load_kddcup99(typo, seed=0)  # had: made it (scikit-learn's download folder in it) and tried to download
    assert not typo.exists()
    typo.write_text("")
    with pytest.raises(DataError, match=rf"^the data folder {typo} is a file: point"):
        load_kddcup99(typo, seed=0)


def test_missing_file_is_named(tmp_path):
    from dagmm_lightning.data.loaders import read_user_table
    from dagmm_lightning.data.streaming import scan_file

    with pytest.raises(DataError, match="no such file"):
        read_kddcup99_file(tmp_path / "nope.csv")
    with pytest.raises(DataError, match=f"{tmp_path} is a folder; name the file in it"):
        read_user_table(tmp_path)
    np.save(tmp_path / "rows.npy", np.eye(3))
    for read in (read_user_table, lambda path: scan_file(path, None, None, 10)):
        with pytest.raises(DataError, match=r"rows.npy: .npy files are not read; save the rows as NPZ, np.savez\("):
            read(tmp_path / "rows.npy")
    pd.DataFrame({"a": [0.0, 1.0], "label": [1, 0]}).to_json(tmp_path / "rows.jsonl.gz", orient="records", lines=True)
    for read in (read_user_table, lambda path: scan_file(path, None, None, 10)):
        with pytest.raises(
            DataError, match=r"rows.jsonl.gz: .jsonl files are not read; save the table as CSV or Parquet"
        ):
            read(tmp_path / "rows.jsonl.gz")  # had: read as a CSV file, its columns '{"a":0.0' and 'label:1}'


def test_wrong_column_count_is_named(tmp_path):
    path = tmp_path / "short.csv"
    pd.DataFrame(np.zeros((3, 10))).to_csv(path, header=False, index=False)
    with pytest.raises(DataError, match="10 columns"):
        read_kddcup99_file(path)


def kdd_rows(paper_data, n=20):
    with gzip.open(paper_data / "kddcup.data_10_percent.gz", "rt") as f:
        return [next(f) for _ in range(n)]


@pytest.mark.parametrize(
    "row, column, value, message",
    [(3, 0, "nan", "NaN/inf values.*'duration' at row 3"), (0, 4, "lots", "'src_bytes' should be numeric")],
)
def test_bad_values_are_named(kdd, paper_data, tmp_path, row, column, value, message):
    lines = kdd_rows(paper_data)
    fields = lines[row].split(",")
    fields[column] = value
    lines[row] = ",".join(fields)
    path = tmp_path / "bad.csv"
    path.write_text("".join(lines))
    with pytest.raises(DataError, match=message):
        kdd.preprocessor.encode(read_kddcup99_file(path).features)


def test_predict_file_with_other_features_is_rejected(kdd, tmp_path):
    path = tmp_path / "other.csv"
    pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]}).to_csv(path, index=False)
    with pytest.raises(
        DataError,
        match=r"columns missing from the input: .* 41 columns: none of them is there \(another table, or rows "
        r"without their column names: a file without its header line\?\)$",
    ):
        kdd.preprocessor.encode(read_csv(path))
    x = np.random.default_rng(0).normal(size=(60, 3))
    named = AnomalyDataModule.from_table(RawTable(pd.DataFrame(x, columns=["a", "b", "c"]), None, []))
    named.setup("fit")  # a model's table, its columns named, and rows of an array scored by its checkpoint
    arrays = AnomalyDataModule.from_arrays(x)
    arrays.setup("fit")
    with pytest.raises(
        DataError,
        match=r"3 columns: none of them is there .*; the rows given to this data module have no such names: "
        r".*\.from_table",
    ):
        arrays.load_state_dict(named.state_dict())  # had: the missing names alone
    other = AnomalyDataModule.from_table(RawTable(pd.DataFrame(x, columns=["a", "b", "d"]), None, []))
    other.setup("fit")
    with pytest.raises(
        DataError,
        match=r"columns missing from the input: \['c'\]; the model was trained on 3 columns \('a', 'b', 'c'\): give "
        r"rows with every one of them, named as in training$",
    ):
        other.load_state_dict(named.state_dict())  # named rows: no hint to name them


def test_a_file_to_score_whose_header_has_spaces_around_its_names_is_told_so(tmp_path):
    from dagmm_lightning.data.streaming import FileRows

    (tmp_path / "rows.csv").write_text(" a, b, y\n1,2,0\n3,4,1\n")  # written 'a, b, y'
    prep = TablePreprocessor().fit_columns(RawTable(pd.DataFrame({"a": [1.0, 2.0], "b": [0.0, 1.0]}), None))
    with pytest.raises(DataError, match=r"the input's names have spaces around them \(e.g. ' a'\): write the header"):
        list(FileRows(tmp_path / "rows.csv", prep.fit_scaling(np.eye(2)), "y", 10))  # had: 'none of them is there'


def test_predict_file_in_raw_format_encodes_like_training(kdd, paper_data, tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("".join(kdd_rows(paper_data, 50)))
    kdd.predict_file = str(path)
    try:
        batches = kdd.predict_dataloader()
    finally:
        kdd.predict_file = None
    x_all = kdd.preprocessor.scale(kdd.preprocessor.encode(read_kddcup99_file(path).features))
    assert batches.x.shape == (50, 118)
    np.testing.assert_array_equal(batches.x.numpy(), x_all)
    # the first 50 rows of the file are the first 50 rows of the data set
    first = np.flatnonzero(np.isin(kdd.splits.test, np.arange(50)))
    x_test, _ = kdd.arrays("test")
    np.testing.assert_allclose(batches.x.numpy()[kdd.splits.test[first]], x_test[first])


@pytest.mark.parametrize("out_of_core", [False, True])
def test_a_missing_value_in_a_table_file_is_named_with_the_file_and_how_rows_count(tmp_path, out_of_core):
    frame = pd.DataFrame({"a": np.arange(100.0), "b": np.arange(100.0) % 3, "label": 0})
    frame.loc[57, "a"] = frame.loc[80, "b"] = np.nan  # file line 59: the header is line 1
    path = tmp_path / "rows.csv"
    frame.to_csv(path, index=False)
    module = AnomalyDataModule(dataset="table", path=str(path), label_column="label", out_of_core=out_of_core)
    message = f"{path}: NaN/inf values in the input, the first in column 'a' at row 57 (the 58th data row; 2 rows"
    message += " read hold such values)"  # (had: the first alone)
    with pytest.raises(DataError, match=re.escape(message)):  # had: no file named, nor how rows count
        module.setup("fit")
    if out_of_core:
        return
    fitted = AnomalyDataModule(dataset="table", path=str(tmp_path / "clean.csv"), label_column="label")
    frame.dropna().to_csv(tmp_path / "clean.csv", index=False)
    fitted.setup("fit")
    frame.to_csv(tmp_path / "rows.csv.xz", index=False)  # read whole to score it
    scoring = AnomalyDataModule(
        dataset="table",
        path=str(tmp_path / "clean.csv"),
        label_column="label",
        predict_file=str(tmp_path / "rows.csv.xz"),
    )
    scoring.setup("predict")
    scoring.load_state_dict(fitted.state_dict())
    with pytest.raises(DataError, match=re.escape(f"{tmp_path / 'rows.csv.xz'}: NaN/inf values in the input")):
        scoring.predict_dataloader()


def test_bad_options_are_named():
    with pytest.raises(ValueError, match="dataset must be one of"):
        AnomalyDataModule("mnist")
    with pytest.raises(ValueError, match="protocol"):
        AnomalyDataModule(protocol="mine")
    with pytest.raises(ValueError, match=r"rho is a percentage in \(0, 100\), got 100"):
        AnomalyDataModule(rho=100)
    with pytest.warns(
        UserWarning, match=r"rho 0.3 flags 0.3 % of the rows, and the labels hold \d+.?\d* % anomalies: rho is"
    ):
        assert AnomalyDataModule("breast_cancer", rho=0.3).input_dim == 30
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a percentage of one or more, or a rate below 1 % where labels agree
        assert AnomalyDataModule("breast_cancer", rho=2.5).input_dim == 30
        y = np.zeros(1000)
        y[:3] = 1  # 0.3 % anomalies
        assert AnomalyDataModule.from_arrays(np.random.default_rng(0).normal(size=(1000, 2)), y, rho=0.3).input_dim == 2


def test_scaled_rows_equal_the_table_scaling_and_name_bad_values():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(50, 3)) * [1.0, 1e-3, 10.0] + [0.0, 5.0, -3.0]
    prep = TablePreprocessor()
    prep.numeric = ["a", "b", "c"]
    prep.fit_scaling(train)
    rows = rng.normal(size=(20, 3)).astype(np.float32)
    rows.flags.writeable = False  # a read-only array (a memory map) is read, never written
    np.testing.assert_allclose(prep.scale_rows(rows).numpy(), prep.scale(rows.astype(np.float64)), rtol=1e-6, atol=1e-6)
    bad = rows.copy()
    bad[7, 2] = np.nan
    with pytest.raises(DataError, match="NaN/inf values in the input.*'c' at row 107"):
        prep.scale_rows(bad, first_row=100)
    bad[7, 2], bad[4, 1] = 0.0, 3e37  # finite, but beyond float32 once divided by b's range (~1e-3)
    scaled = prep.scale_rows(bad).numpy()  # computed in float64, then clipped like every scaled value
    assert scaled[4, 1] == SCALED_LIMIT and np.array_equal(scaled, prep.scale(bad.astype(np.float64)))
    beyond = rows.astype(np.float64)
    beyond[2, 0] = 1e300  # finite in float64, beyond float32 before any scaling
    assert prep.scale_rows(beyond).numpy()[2, 0] == SCALED_LIMIT


def test_columns_far_from_zero_for_their_range_keep_their_spread_when_scored():
    rng = np.random.default_rng(1)  # float32 holds 1e12 to within 2^16, 1.6e15 (microseconds) to within 2^27
    train = np.c_[1e12 + rng.uniform(0, 1000, 200), 1.6e15 + rng.integers(0, 10**6, 200), rng.normal(size=200)]
    prep = TablePreprocessor()
    prep.numeric = ["a", "b", "c"]
    prep.fit_scaling(train)
    by_hand = (train - train.min(0)) / (train.max(0) - train.min(0))  # numpy, float64
    np.testing.assert_allclose(prep.scale_rows(train).numpy(), by_hand, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(prep.scale_rows(train[50:60], first_row=50).numpy(), by_hand[50:60], atol=1e-6)


def test_a_column_constant_in_training_is_clipped_to_one_range_in_its_own_units():
    train = np.c_[np.linspace(0.0, 2.0, 5), np.full(5, 7.0)]  # b is constant: range 1, clip +-1
    prep = TablePreprocessor()
    prep.numeric = ["a", "b"]
    prep.fit_scaling(train)
    rows = np.array([[1.0, 7.0], [3.0, 57.0], [-4.0, 6.5], [0.5, -100.0]])
    expected = np.array([[0.5, 0.0], [1.5, 1.0], [-2.0, -0.5], [0.25, -1.0]], dtype=np.float32)
    np.testing.assert_array_equal(prep.scale(rows), expected)
    np.testing.assert_array_equal(prep.scale_rows(rows).numpy(), expected)
    restored = TablePreprocessor()
    restored.load_state_dict(prep.state_dict())
    np.testing.assert_array_equal(restored.scale_rows(rows.astype(np.float32)).numpy(), expected)
    old = {k: v for k, v in prep.state_dict().items() if k != "constant"}  # a checkpoint from before the clip
    restored.load_state_dict(old)
    assert restored.scale(rows)[1, 1] == 50.0 and restored.scale_rows(rows).numpy()[3, 1] == -107.0
    with pytest.raises(DataError, match="every feature is constant on one training row"):
        TablePreprocessor().fit_scaling(train[:1])
    with pytest.raises(DataError, match="no feature columns"):
        TablePreprocessor().fit_scaling(np.zeros((5, 0)))


def test_a_range_past_float64_is_named_and_values_past_it_clip_without_warnings():
    prep = TablePreprocessor()
    prep.numeric = ["a", "b"]
    with pytest.raises(DataError, match=r"column 'b' spans -1.7e\+308 to 1.7e\+308 .* rescale it"):
        prep.fit_scaling(np.array([[0.0, 1.7e308], [1.0, -1.7e308], [2.0, 0.0]]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's overflow warnings too
        prep.fit_scaling(np.array([[0.0, -1e308], [1.0, 0.0]]))
        assert prep.scale(np.array([[0.5, 1.7e308]]))[0, 1] == SCALED_LIMIT  # x - min overflows: clipped
        prep.fit_scaling(np.array([[0.0, 0.0], [1.0, 1.0]]))
        assert prep.scale_rows(np.array([[0.5, 1e300]])).numpy()[0, 1] == SCALED_LIMIT  # past float32


def test_categories_match_as_written_whatever_the_dtype_and_dates_are_refused_as_numbers():
    train = pd.DataFrame({"x": [0.5, 1.5, 2.5, 3.5], "k": [1, 2, 3, 2], "flag": [True, False, True, True]})
    prep = TablePreprocessor().fit_columns(RawTable(train, None, ["k", "flag"]))
    assert prep.categories == {"k": ["1", "2", "3"], "flag": ["false", "true"]}
    expected = prep.encode(train)
    np.testing.assert_array_equal(expected[:, 1:], [[1, 0, 0, 0, 1], [0, 1, 0, 1, 0], [0, 0, 1, 0, 1], [0, 1, 0, 0, 1]])
    as_read = train.assign(k=[1.0, 2.0, 3.0, 2.0], flag=[1, 0, 1, 1])  # pandas' floats (a blank cell), 0/1
    np.testing.assert_array_equal(prep.encode(as_read), expected)
    np.testing.assert_array_equal(prep.encode(train.assign(k=["1", " 2.0", "3.00", "2"])), expected)
    unseen = prep.encode(train.assign(k=[1.5, 4.0, 3.0, 2.0], flag=["yes", "TRUE", "0", "1.0"]))
    np.testing.assert_array_equal(unseen[:, 1:], [[0, 0, 0, 0, 0], [0, 0, 0, 0, 1], [0, 0, 1, 1, 0], [0, 1, 0, 0, 1]])
    numbers = TablePreprocessor().fit_columns(RawTable(train.assign(flag=[1, 0, 1, 1]), None, ["flag"]))
    assert numbers.categories == {"flag": ["0", "1"]}  # trained on 1/0: true/false read as 1/0
    np.testing.assert_array_equal(numbers.encode(train)[:, -2:], [[0, 1], [1, 0], [0, 1], [0, 1]])
    gaps = TablePreprocessor().fit_columns(RawTable(train.assign(flag=[True, None, False, True]), None, ["flag"]))
    assert gaps.categories == {"flag": ["false", "nan", "true"]}  # a blank: 1/0 still read as true/false
    np.testing.assert_array_equal(gaps.encode(train.assign(flag=[1, 0, None, 1]))[:, -3:], np.eye(3)[[2, 0, 1, 2]])
    written = ["+3", " 3 ", "3.", "-0.0", "0", "007", "1.50", "1e3", "12345678901234567891", "tcp "]
    assert list(category_text(pd.Series(written))) == [
        *["3", "3", "3", "0", "0", "007", "1.50", "1e3", "12345678901234567891", "tcp"]
    ]
    as_numbers = category_text(pd.Series(written), as_number=True)  # for a value no category names as written
    assert list(as_numbers) == ["3", "3", "3", "0", "0", "7", "1.5", "1000", "12345678901234567891", "tcp"]
    # a value finds its category as written first, then as a number; a blank one a checkpoint's "" category
    assert list(category_codes(["007", "7", "a"], pd.Series(["7", "007", 7.0, "a"]))) == [1, 0, 1, 2]
    assert list(category_codes(["1234", "1.5"], pd.Series(["01234", "1.50", "x"]))) == [0, 1, -1]
    assert list(category_codes(["", "u"], pd.Series([None, "u"]))) == [0, 1]
    assert list(category_codes(["nan", "", "u"], pd.Series([None, ""]))) == [0, 1]
    old = TablePreprocessor()
    old.load_state_dict(prep.state_dict() | {"categories": {"k": ["1.0", "2.0", "3.0"], "flag": ["false", "true"]}})
    np.testing.assert_array_equal(old.encode(train), expected)  # a checkpoint that named them as decimals
    for dates in (pd.date_range("2020-01-01", periods=4), pd.period_range("2020-01", periods=4, freq="M")):
        with pytest.raises(DataError, match="column 'x' holds dates or times, the model was trained on numbers"):
            prep.encode(train.assign(x=dates))


@pytest.mark.parametrize(
    "values, dates",
    [
        (["2021-01-03", "2021-02-04 10:00"], True),
        (["2021-01-01T00:00+01:00", "2021-06-01T00:00+02:00"], True),  # mixed UTC offsets (summer time)
        (([str(1000 + i) for i in range(100)] + [f"A{i:02d}" for i in range(50)]) * 3, False),  # codes, not years
        (["now", "today"], False),
        (["1.2.3", "T1", "12-34"], False),
        # forms ISO-8601 does not cover (had: one-hot encoded, a category per day)
        (["05/01/2021", "12/31/2021", "1/5/21"], True),
        (["05.01.2021", "05-01-2021 10:30"], True),
        (["01/05/2021", "12/31/9999", "01.01.1899"], True),  # a sentinel year, an old one
        (["5 Jan 2021", "05-Jan-2021", "Jan 5, 2021", "January 5th, 2021 9:05 pm"], True),
        (["10:30", "23:59:59", "9:05 pm"], True),  # times of day
        (["0 days 00:20:00", "1 day 02:00:00.5", "-1 days +23:59:00"], True),  # durations as pandas writes them
        # each column of one kind, with digits, of a date's shape but not its ranges
        (["1.2.10", "2.0.11", "3.1.12"], False),  # versions
        (["6.1.7601", "6.3.9600", "10.0.19045"], False),  # builds
        (["98:87", "12:75", "31:60"], False),  # scores, not times
        (["10-12", "20-30"], False),  # ranges
        (["40/12/2021", "13/45/2020"], False),  # no day or month that large
    ],
)
def test_dates_held_as_text_are_refused_and_codes_are_not(values, dates):
    from dagmm_lightning.data.tables import infer_symbolic_columns

    frame = pd.DataFrame({"c": values})
    if dates:
        with pytest.raises(DataError, match="column 'c' holds dates or times as text"):
            infer_symbolic_columns(frame)
    else:
        assert infer_symbolic_columns(frame)[1] == ["c"]


@pytest.mark.parametrize("name, content", [("rows.csv", b'a,b\n1,2\n3,4,5,6\n"x\n'), ("rows.parquet", b"not parquet")])
def test_a_file_that_is_not_a_table_is_named(tmp_path, name, content):
    from dagmm_lightning.data.loaders import read_user_table

    (tmp_path / name).write_bytes(content)
    with pytest.raises(DataError, match=f"{name} is not a readable table"):
        read_user_table(tmp_path / name, None, None)


def test_the_separator_is_read_from_the_header_respecting_quotes_and_archives(tmp_path):
    from dagmm_lightning.data.tables import csv_delimiter

    (tmp_path / "q.csv").write_text('"x,y,z";b\n1;2\n')
    assert csv_delimiter(tmp_path / "q.csv") == ";"
    (tmp_path / "one.csv").write_text("value\n1\n")
    assert csv_delimiter(tmp_path / "one.csv") == ","
    (tmp_path / "names.csv").write_text("rate, per s;size, in bytes;y\n1.5;2;0\n2.5;3;1\n")  # 3 fields both ways
    assert csv_delimiter(tmp_path / "names.csv") == ";"  # the rows agree with the header on semicolons only
    (tmp_path / "ragged.csv").write_text("a;b,c,d\n1,2,3,4\n5,6,7,8,9\n")  # no separator splits every row alike
    assert csv_delimiter(tmp_path / "ragged.csv") == ","  # the header's: the reader names the ragged line
    with gzip.open(tmp_path / "t.csv.gz", "wt") as f:
        f.write("a\tb\n1\t2\n")
    assert csv_delimiter(tmp_path / "t.csv.gz") == "\t"
    pd.DataFrame({"a": [1, 2], "b": [3, 4]}).to_csv(tmp_path / "z.csv.zip", index=False)
    assert csv_delimiter(tmp_path / "z.csv.zip") == ","  # pandas opens the archive itself


def test_a_csv_cut_short_in_its_last_line_is_refused_in_memory_as_in_chunks(tmp_path):
    from dagmm_lightning.data.loaders import read_user_table
    from dagmm_lightning.data.streaming import scan_file

    frame = pd.DataFrame({"a": np.arange(60.0) % 7, "b": np.arange(60.0) % 5, "kind": ["tcp", "udp", "icmp"] * 20})
    whole = frame.to_csv(index=False)
    (tmp_path / "cut.csv").write_text(whole[: whole.rindex(",")])  # the last row lost its text field
    with gzip.open(tmp_path / "cut.csv.gz", "wt") as f:  # compressed: no tail to seek
        f.write(whole[: whole.rindex(",")])
    for name in ("cut.csv", "cut.csv.gz"):
        for read in (read_user_table, lambda path: scan_file(path, None, None, 10)):
            with pytest.raises(DataError, match=r"(line 61 holds 2 fields, the header 3 \(a row cut short|Expected 3)"):
                read(tmp_path / name)  # in memory had: trained, the missing field a category 'nan'
    (tmp_path / "whole.csv").write_text(whole.rstrip("\n"))  # no newline at the end: complete all the same
    assert read_user_table(tmp_path / "whole.csv").features.shape == (60, 3)


def test_a_short_row_in_the_middle_of_a_csv_is_refused_in_memory_with_its_line(tmp_path):
    from dagmm_lightning.data.loaders import read_user_table

    lines = pd.DataFrame({"a": np.arange(60.0) / 2, "kind": ["tcp", "udp"] * 30, "flag": [True, False, False] * 20})
    lines = lines.to_csv(index=False).splitlines()
    lines[30] = lines[30].rsplit(",", 1)[0]  # the 30th data row lost its last field
    (tmp_path / "short.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"short.csv: line 31 holds 2 fields, the header 3 .*'14.5,udp'"):
        read_user_table(tmp_path / "short.csv")  # had: trained, flag's missing field a category 'nan'
    lines[30] += ","  # a blank field: missing, the row complete
    lines.insert(10, "   ")  # a line of spaces: skipped by pandas, not a short row
    (tmp_path / "blank.csv").write_text("\n".join(lines) + "\n")
    table = read_user_table(tmp_path / "blank.csv")
    assert table.features["flag"].isna().sum() == 1 and table.features.shape == (60, 3)
    frame = table.features.assign(flag=table.features["flag"].astype(object))
    for archive in ("blank.csv.zip", "blank.csv.tar"):  # archives pandas opens itself: not read as text
        frame.to_csv(tmp_path / archive, index=False)  # (had: their bytes refused as 'line 2 holds 1 field')
        assert read_user_table(tmp_path / archive).features["flag"].isna().sum() == 1


@pytest.mark.parametrize("suffix", [".gz", ".bz2"])
def test_a_compressed_csv_whose_stream_ends_early_is_refused_in_one_line(tmp_path, suffix):
    import bz2

    from dagmm_lightning.data.loaders import read_user_table
    from dagmm_lightning.data.streaming import scan_file

    text = pd.DataFrame({"a": np.arange(20000.0), "b": np.arange(20000.0) % 3}).to_csv(index=False).encode()
    data = (gzip.compress if suffix == ".gz" else bz2.compress)(text)
    (tmp_path / f"t.csv{suffix}").write_bytes(data[: len(data) // 2])
    from dagmm_lightning.data import RawTable, TablePreprocessor
    from dagmm_lightning.data.streaming import FileRows

    rows = pd.DataFrame({"a": np.arange(20000.0), "b": np.arange(20000.0) % 3})
    fitted = TablePreprocessor().fit_columns(RawTable(rows, None, []))
    fitted.fit_scaling(fitted.encode(rows))
    scored = lambda path: list(FileRows(path, fitted, None, 100))  # noqa: E731  (predict's reader)
    for read in (read_user_table, lambda path: scan_file(path, None, None, 1000), scored):
        with pytest.raises(DataError, match=rf"t.csv{suffix} ends within its compressed data \(a file cut short"):
            read(tmp_path / f"t.csv{suffix}")  # had: Python's EOFError in memory, pyarrow's words in chunks


def test_a_zst_csv_without_zstandard_is_refused_in_one_line(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "zstandard" else real(name, *a))
    (tmp_path / "t.csv.zst").write_bytes(b"\x28\xb5\x2f\xfd not really zstd")
    from dagmm_lightning.data.loaders import read_user_table
    from dagmm_lightning.data.streaming import scan_file

    for read in (read_user_table, lambda path: scan_file(path, None, None, 10)):  # had: pandas' ImportError, deep
        with pytest.raises(DataError, match=r"t.csv.zst: pandas reads .zst files with the zstandard package, which"):
            read(tmp_path / "t.csv.zst")


@pytest.mark.parametrize("sep", [";", "\t", "|"])
def test_a_csv_separated_by_semicolons_tabs_or_bars_reads_as_with_commas(tmp_path, sep):
    from dagmm_lightning.data.loaders import read_user_table
    from dagmm_lightning.data.streaming import read_frames

    frame = pd.DataFrame({"a": [1.5, 2.0, 3.25], "b b": ["x", "y", "x"], "label": [0, 1, 0]})
    frame.to_csv(tmp_path / "commas.csv", index=False)
    frame.to_csv(tmp_path / "other.csv", index=False, sep=sep)
    commas, other = (read_user_table(tmp_path / f, "label") for f in ("commas.csv", "other.csv"))
    pd.testing.assert_frame_equal(other.features, commas.features)
    assert other.symbolic == ["b b"] and other.is_anomaly.tolist() == [False, True, False]
    pd.testing.assert_frame_equal(next(read_frames(tmp_path / "other.csv", 10)), frame)


def test_a_symbolic_column_of_more_than_a_thousand_categories_is_warned_about():
    from dagmm_lightning.data.tables import RawTable, TablePreprocessor

    def fit(n_categories: int) -> TablePreprocessor:
        frame = pd.DataFrame({"city": [f"c{i % n_categories}" for i in range(3000)], "a": np.arange(3000.0)})
        return TablePreprocessor().fit_columns(RawTable(frame, None, ["city"]))

    with pytest.warns(UserWarning, match="'city' 1,001 categories, 1,002 features in all"):
        assert fit(1001).n_features == 1002
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit(1000)


def test_a_categorical_of_as_many_values_as_rows_trains_with_a_warning(tmp_path):
    from dagmm_lightning.data.loaders import read_user_table
    from dagmm_lightning.data.streaming import scan_file
    from dagmm_lightning.data.tables import infer_symbolic_columns

    n = 60  # (a warehouse Parquet keeps pandas' category dtype: a text id would be refused, this one is chosen)
    frame = pd.DataFrame({"cust": pd.Categorical([f"c{i}" for i in range(n)]), "a": np.arange(n) / 4})
    frame["kind"] = pd.Categorical(["p", "q", None] * (n // 3))
    frame.to_parquet(tmp_path / "rows.parquet")
    with pytest.warns(DAGMMWarning) as caught:  # had: 61 features without a word
        table = read_user_table(tmp_path / "rows.parquet")
    said = [str(w.message) for w in caught if "categorical" in str(w.message)]
    assert said == [
        "column 'cust' (a categorical) holds 60 different values in 60 rows (e.g. 'c0'): an identifier? Each "
        "value is a feature, and every new row would bring a category never seen in training; if so, leave it "
        """out with ignore_columns '["cust"]'"""
    ]
    assert table.symbolic == ["cust", "kind"]  # still the user's choice
    with pytest.warns(DAGMMWarning, match=r"column 'cust' \(a categorical\) holds 60 different values"):
        scan = scan_file(tmp_path / "rows.parquet", None, None, 1000)  # out of core alike (had: refused as an id)
    assert scan.head.symbolic == ["cust", "kind"]
    with pytest.warns(DAGMMWarning, match=r"holds 60 different values in 60 rows \(e.g. 0\)"):  # (had: np.int64(0))
        infer_symbolic_columns(pd.DataFrame({"n": pd.Categorical(range(n))}))
    frame.iloc[:49].to_parquet(tmp_path / "few.parquet")  # fewer than 50 rows cannot tell
    with warnings.catch_warnings():
        warnings.simplefilter("error", DAGMMWarning)
        read_user_table(tmp_path / "few.parquet")


def test_identifiers_and_decimal_commas_are_refused_and_an_ignored_column_is_left_out(tmp_path):
    from dagmm_lightning.data.loaders import read_user_table
    from dagmm_lightning.data.streaming import scan_file
    from dagmm_lightning.data.tables import infer_symbolic_columns

    n = 60
    frame = pd.DataFrame({"id": [f"r{i}" for i in range(n)], "a": np.arange(n) / 4, "kind": ["p", "q"] * (n // 2)})
    path = tmp_path / "rows.csv"
    frame.to_csv(path, index=False)
    for read in (lambda **kw: read_user_table(path, **kw), lambda **kw: scan_file(path, None, None, 1000, **kw).head):
        with pytest.raises(DataError, match="column 'id' holds 60 different text values in 60 rows"):
            read()
        kept = read(ignore_columns=["id"])
        assert list(kept.features.columns) == ["a", "kind"] and kept.symbolic == ["kind"]
        with pytest.raises(DataError, match=r"ignore_columns \['idd'\] are not in"):
            read(ignore_columns=["idd"])
    with pytest.raises(DataError, match="column 'id' holds 60 different text values in 60 rows"):
        scan_file(path, None, None, 10)  # a first chunk too short to tell: the rule on the whole file
    assert scan_file(path, None, ["id", "kind"], 10).head.symbolic == ["id", "kind"]  # one-hot if asked
    assert read_user_table(path, symbolic_columns=["id", "kind"]).symbolic == ["id", "kind"]
    assert read_user_table(path, ignore_columns=["id"]).features.shape == (60, 2)
    european = frame.assign(a=[f"{v:g}".replace(".", ",") for v in frame["a"]])  # 0, 0,25, 0,5, ... 14,75
    european.to_csv(path, index=False, sep=";")
    with pytest.raises(DataError, match=r"column 'a' holds numbers written with a comma, .* \(e.g. '0,25'\)"):
        read_user_table(path, ignore_columns=["id"])
    (tmp_path / "one.csv").write_text("value\n1,5\n2,5\n")  # one column, decimal commas: not an index
    with pytest.raises(DataError, match=r"rows have more fields than the header \(line 2\)"):
        read_user_table(tmp_path / "one.csv")
    small = pd.DataFrame({"kind": [f"k{i % 15}" for i in range(25)], "a": np.arange(25.0)})
    assert infer_symbolic_columns(small)[1] == ["kind"]  # 15 categories in 25 rows: too few rows to tell
    numbered = pd.DataFrame({"n": np.random.default_rng(0).permutation(60) + 7, "f": np.arange(60) + 7.0})
    for column in ("n", "f"):  # consecutive integers, each once: trained on, with a warning
        with pytest.warns(UserWarning, match=f"column '{column}' holds the integers 7 to 66, each once: a row"):
            infer_symbolic_columns(numbered[[column]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # a gap, not integers, repeats: no warning; too few rows to tell
        infer_symbolic_columns(pd.DataFrame({"gap": np.r_[np.arange(59), 60], "half": np.arange(60) + 0.5}))
        infer_symbolic_columns(pd.DataFrame({"twice": np.arange(60) // 2, "two": np.arange(60) % 2}))
        infer_symbolic_columns(pd.DataFrame({"few": np.arange(49)}))
        decimals = ["0", "0.5", "-0.25", "+0.75", "10", "1e-3"] * 10  # numbers as text without codes' zeros
        assert infer_symbolic_columns(pd.DataFrame({"d": decimals}))[0]["d"].dtype.kind == "f"
        small_integers = (np.arange(300) % 2).astype(np.uint8), (np.arange(300) % 3 - 1).astype(np.int8)
        infer_symbolic_columns(pd.DataFrame(dict(zip(("u8", "i8"), small_integers, strict=True))))  # no overflow
    with pytest.warns(UserWarning, match="column 'n' holds the integers 0 to 199, each once"):
        infer_symbolic_columns(pd.DataFrame({"n": np.arange(200, dtype=np.uint8)}))
    ids = np.random.default_rng(1).choice(np.arange(100_000, 1_000_000), 300, replace=False)  # not consecutive
    for name in ("customer_id", "CustomerID", "userId", "ID", "user.uuid"):  # trained on, with a warning
        with pytest.warns(UserWarning, match=f"column '{name}' holds a different integer on each row and is named"):
            infer_symbolic_columns(pd.DataFrame({name: ids}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not an id's name; repeats; too few rows; not integers
        infer_symbolic_columns(pd.DataFrame({"paid": ids, "valid": ids, "amount": ids, "idle": ids}))
        infer_symbolic_columns(pd.DataFrame({"store_id": ids // 1000, "device_id": ids / 7}))
        infer_symbolic_columns(pd.DataFrame({"id": ids[:49]}))
    zips = pd.DataFrame({"zip": ["00501", "90210", "02134", "10001"] * 15}, dtype="string")
    with pytest.warns(UserWarning, match=r"column 'zip' holds numbers written as text, some with leading zeros \(e.g."):
        read, symbolic = infer_symbolic_columns(zips)  # had: silently 501, 90210, ...
    assert symbolic == [] and read["zip"].iloc[0] == 501
    ids = np.uint64(2**63 + 1) + np.arange(0, 3000, 3, dtype=np.uint64)  # float64 is 2^11 apart there: 2 values
    assert len(np.unique(ids.astype(np.float64))) == 2
    with pytest.warns(UserWarning, match=r"column 'id' holds integers beyond 2\^53 \(e.g. 9223372036854775809\)"):
        infer_symbolic_columns(pd.DataFrame({"id": ids, "a": np.arange(1000.0) % 7}))
    with warnings.catch_warnings():  # large, but each exactly a float64
        warnings.simplefilter("error")
        infer_symbolic_columns(pd.DataFrame({"mask": np.int64(2**60) * (np.arange(60) % 5)}))


@pytest.mark.parametrize(
    "labels, message",
    [
        (["0", "1", "attack", "0"], r"also holds \['attack'\]; map them to 0/1"),
        ([0, 1, 2, 0], r"also holds \['2'\]"),
        ([0, 1, None, 0], "has no value at row 2"),
        (["0", "1", " ", "0"], "has no value at row 2"),
    ],
)
def test_a_bad_label_column_names_what_it_holds(tmp_path, labels, message):
    from dagmm_lightning.data.loaders import read_user_table

    pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "y": labels}).to_csv(tmp_path / "rows.csv", index=False)
    with pytest.raises(DataError, match=message):
        read_user_table(tmp_path / "rows.csv", "y")
    y = np.array(labels) if isinstance(labels[0], str) else np.array([np.nan if v is None else v for v in labels])
    np.savez(tmp_path / "rows.npz", X=np.ones((4, 2)), y=y)  # an NPZ's y: the same rule
    with pytest.raises(DataError, match=message):
        read_user_table(tmp_path / "rows.npz")


def test_an_npz_file_takes_its_labels_from_y_only(tmp_path):
    from dagmm_lightning.data.loaders import read_user_table

    np.savez(tmp_path / "rows.npz", X=np.ones((4, 2)), y=[False, True, False, False])
    np.testing.assert_array_equal(read_user_table(tmp_path / "rows.npz", "y").is_anomaly, [0, 1, 0, 0])
    with pytest.raises(DataError, match="rows.npz is an NPZ file: its labels are its array 'y', not a column 'label'"):
        read_user_table(tmp_path / "rows.npz", "label")
    with pytest.raises(DataError, match="rows.npz is an NPZ file: its columns have no names to ignore"):
        read_user_table(tmp_path / "rows.npz", ignore_columns=["id"])
    scored = read_user_table(tmp_path / "rows.npz", "is_attack", None, True, ["id"])  # a checkpoint's settings
    assert scored.features.shape == (4, 2)


def test_a_value_that_is_not_a_number_in_a_streamed_file_names_its_column(tmp_path):
    import pyarrow as pa

    from dagmm_lightning.data.streaming import read_frames

    (tmp_path / "rows.csv").write_text("a;b\n1;2\n3;4x\n")
    threads = pa.cpu_count()
    try:
        pa.set_cpu_count(2)  # pyarrow's threaded reader (whatever the tests' OMP_NUM_THREADS)
        with pytest.raises(DataError, match=r"column 'b': not a number: '4x'"):
            list(read_frames(tmp_path / "rows.csv", 10, {"a": pa.float64(), "b": pa.float64()}))
        # its serial reader (OMP_NUM_THREADS=1, as README advises beside other work) says 'Row #2: '
        pa.set_cpu_count(1)
        with pytest.raises(
            DataError, match=r"rows.csv: In CSV column 'b': not a number: '4x' \(line 3: row 1, the 2nd data row\)$"
        ):
            list(read_frames(tmp_path / "rows.csv", 10, {"a": pa.float64(), "b": pa.float64()}))
    finally:
        pa.set_cpu_count(threads)


def test_a_csv_reads_alike_in_memory_and_streamed(tmp_path):
    """pandas (in memory, a .tsv predict file) and pyarrow (out of core, a .csv predict file) give the
    same columns, categories, missing values and labels."""
    from dagmm_lightning.data.loaders import read_user_table
    from dagmm_lightning.data.streaming import column_types, read_frames, scan_file

    rng = np.random.default_rng(0)
    n = 40_000  # past pyarrow's 1 MiB block, where a quoted line break split a row
    frame = pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "kind": rng.choice(["u", "v", None, "NA"], n),  # None: a blank; NA: missing to pandas
            "zip": rng.choice(["01234", "02139", "10001"], n),  # numbers to pandas, text to pyarrow
            "code": rng.choice(["1.50", "2", "x"], n),
            "note": rng.choice(["line one\nline two", "plain"], n),
            "y": np.where(np.arange(n) % 50 == 0, "1.00", "+0"),
        }
    )
    frame.to_csv(tmp_path / "rows.csv")  # pandas' default: an index column with an empty header cell
    symbolic = ["kind", "zip", "code", "note"]
    table = read_user_table(tmp_path / "rows.csv", "y", symbolic)
    assert list(table.features.columns) == ["Unnamed: 0", "a", *symbolic]
    np.testing.assert_array_equal(table.is_anomaly, np.arange(n) % 50 == 0)
    prep = TablePreprocessor().fit_columns(table)
    assert prep.categories == {  # as written: the named columns are read as text, as pyarrow reads them
        "kind": ["nan", "u", "v"],
        "zip": ["01234", "02139", "10001"],
        "code": ["1.50", "2", "x"],
        "note": ["line one\nline two", "plain"],
    }
    chunks = list(read_frames(tmp_path / "rows.csv", 4096, column_types(prep, "y")))
    streamed = pd.concat(chunks, ignore_index=True)
    assert list(streamed.columns) == ["Unnamed: 0", "a", *symbolic, "y"]
    np.testing.assert_array_equal(prep.encode(streamed.drop(columns="y")), prep.encode(table.features))
    scan = scan_file(tmp_path / "rows.csv", "y", symbolic, 4096)
    assert scan.head.categories == prep.categories and scan.n_rows == n
    np.testing.assert_array_equal(scan.is_anomaly, table.is_anomaly)
    (tmp_path / "empty.csv").write_text("a,b,,\n1,2,5,6\n3,4,6,7\n")  # empty header cells
    names = ["a", "b", "Unnamed: 2", "Unnamed: 3"]
    assert list(next(read_frames(tmp_path / "empty.csv", 10)).columns) == names
    assert list(read_user_table(tmp_path / "empty.csv").features.columns) == names
    # a column named twice: refused (had: pandas' 'a.1', a feature of its own; a file of new rows was
    # scored on its first 'a' and the other left out as a column the model does not know)
    twice = "a,b,a,b,c\n1,2,5,6,7\n3,4,6,7,8\n"
    (tmp_path / "twice.csv").write_text(twice)
    (tmp_path / "spaced.csv").write_text("   \n" + twice)  # a line of spaces above: blank, as pandas reads it
    with gzip.open(tmp_path / "twice.csv.gz", "wt") as file:
        file.write(twice)
    with zipfile.ZipFile(tmp_path / "twice.csv.zip", "w") as archive:  # (pandas opens the archive itself)
        archive.writestr("twice.csv", twice)
    readers = (read_user_table, lambda path: next(read_frames(path, 10)), lambda path: scan_file(path, None, None, 10))
    for name in ("twice.csv", "spaced.csv", "twice.csv.gz"):
        for read in readers:
            with pytest.raises(DataError, match=name + r": its header names 'a', 'b' more than once; rename them$"):
                read(tmp_path / name)
    with pytest.raises(DataError, match=r"twice.csv.zip: its header names 'a', 'b' more than once"):
        read_user_table(tmp_path / "twice.csv.zip")
    (tmp_path / "bare.csv").write_text("1,0,1,2\n3,0,1,5\n4,1,0,6\n")  # no header: numbers repeat
    with pytest.raises(DataError, match=r"bare.csv: its first line names the columns 1 more than once: a file with"):
        read_user_table(tmp_path / "bare.csv")
    (tmp_path / "spaced_ok.csv").write_text("   \na,b\n1,2\n3,4\n")  # (had, out of core: 'line 2 repeats the header')
    expected = read_user_table(tmp_path / "spaced_ok.csv").features
    pd.testing.assert_frame_equal(next(read_frames(tmp_path / "spaced_ok.csv", 10)), expected, check_dtype=False)
    # a header row with a quoted line break, blank lines before the header: the rows start after it
    for content in ('"speed\n(km/h)",kind\n1,x\n2,y\n', "\n\nspeed,kind\n1,x\n2,y\n"):
        (tmp_path / "head.csv").write_text(content)
        expected = read_user_table(tmp_path / "head.csv").features
        pd.testing.assert_frame_equal(next(read_frames(tmp_path / "head.csv", 10)), expected, check_dtype=False)
        assert expected["kind"].tolist() == ["x", "y"]
    (tmp_path / "spaced.csv").write_text("a, b, y\n1, 2, 0\n")  # "comma + space"
    spaced = r"its columns are \['a', ' b', ' y'\]; ' y' has spaces around its name"
    with pytest.raises(DataError, match=spaced):
        read_user_table(tmp_path / "spaced.csv", "y")
    with pytest.raises(DataError, match=spaced):
        scan_file(tmp_path / "spaced.csv", "y", None, 10)


@pytest.mark.parametrize(
    "name, write, message",
    [
        (
            "latin.csv",
            lambda p: p.write_bytes("caf\xe9,y\n1,0\n".encode("latin-1")),
            r"is not UTF-8 text \(another encoding, .*\); save it as a UTF-8 CSV",
        ),
        ("title.csv", lambda p: p.write_text("# exported\na,b,y\n1,2,0\n"), "a line above the header"),
        ("header.csv", lambda p: p.write_text("a,b,y\n"), "has (a header but )?no rows"),
        ("joined.csv", lambda p: p.write_text("a,b,y\n1,2,0\n\na,b,y\n3,4,1\n"), "line 4 repeats the header line"),
    ],
)
def test_a_csv_the_readers_cannot_use_says_why_in_memory_and_streamed(tmp_path, name, write, message):
    from dagmm_lightning.data.loaders import read_user_table
    from dagmm_lightning.data.streaming import FileRows

    write(tmp_path / name)
    with pytest.raises(DataError, match=message):
        read_user_table(tmp_path / name, "y")
    prep = TablePreprocessor().fit_columns(RawTable(pd.DataFrame({"a": [1.0, 2.0], "b": [0.0, 1.0]}), None))
    rows = FileRows(tmp_path / name, prep.fit_scaling(np.eye(2)), "y", 10)
    if name == "header.csv":  # rows to score, none today: nothing to score (a training table is refused above)
        with pytest.warns(UserWarning, match="header.csv has a header but no rows: nothing to score"):
            assert list(rows) == []
        return
    with pytest.raises(DataError, match=message):
        list(rows)


def test_a_value_that_is_not_a_number_is_placed_by_its_line_when_scored(tmp_path):
    from dagmm_lightning.data.streaming import FileRows

    (tmp_path / "rows.csv").write_text('a,b,y\n1,2,0\n3,4,"\n"\n5,oops,1\n')  # line 3 holds a line break
    # (the data row too: had the line alone, where other messages count data rows)
    prep = TablePreprocessor().fit_columns(RawTable(pd.DataFrame({"a": [1.0, 2.0], "b": [0.0, 1.0]}), None))
    with pytest.raises(
        DataError, match=r"rows.csv: In CSV column 'b': not a number: 'oops' \(line 5: row 2, the 3rd data row\)$"
    ):
        list(FileRows(tmp_path / "rows.csv", prep.fit_scaling(np.eye(2)), "y", 10))


def test_a_repeated_header_is_found_with_spaces_twice_named_columns_and_in_an_archive(tmp_path):
    from dagmm_lightning.data.loaders import read_user_table

    for name, header in (("spaced.csv", "a, b,y"), ("dotted.csv", "a,a.1,y")):  # (pandas' name of a second 'a')
        (tmp_path / name).write_text(f"{header}\n1,2,0\n{header}\n5,6,0\n")
        with pytest.raises(DataError, match=f"{name}: line 3 repeats the header line"):
            read_user_table(tmp_path / name, "y")
    frame = pd.DataFrame({"a": ["1", "a", "5"], "y": ["0", "y", "1"]})
    frame.to_csv(tmp_path / "joined.csv.zip", index=False)  # pandas opens the archive; no line to count
    with pytest.raises(DataError, match="joined.csv.zip: data row 2 repeats the header line"):
        read_user_table(tmp_path / "joined.csv.zip", "y")


def test_a_field_past_the_csv_modules_size_limit_leaves_the_message_without_a_line(tmp_path):
    from dagmm_lightning.data.streaming import FileRows

    (tmp_path / "rows.csv").write_text(f'a,b,y\n1,2,"{"x" * 200_000}"\n5,oops,1\n')
    prep = TablePreprocessor().fit_columns(RawTable(pd.DataFrame({"a": [1.0, 2.0], "b": [0.0, 1.0]}), None))
    with pytest.raises(DataError, match=r"rows.csv: In CSV column 'b': not a number: 'oops'$"):
        list(FileRows(tmp_path / "rows.csv", prep.fit_scaling(np.eye(2)), "y", 10))


def test_a_text_column_not_utf8_is_named_in_memory_out_of_core_and_when_scored(tmp_path):
    from dagmm_lightning.data.loaders import read_user_table
    from dagmm_lightning.data.streaming import FileRows, scan_file

    rows = pd.DataFrame({"a": np.arange(60.0), "city": ["Köln", "Bonn", "Genève"] * 20, "y": 0})
    rows.to_csv(tmp_path / "latin.csv", index=False, encoding="latin-1")
    message = r"latin.csv is not UTF-8 text \(another encoding, .*\); save it as a UTF-8 CSV"
    with pytest.raises(DataError, match=message):
        read_user_table(tmp_path / "latin.csv", "y")
    with pytest.raises(DataError, match=message + r" \(column 'city'\)"):  # had: a UnicodeDecodeError
        scan_file(tmp_path / "latin.csv", "y", None, 25)
    rows.rename(columns={"a": "Größe"}).to_csv(tmp_path / "header.csv", index=False, encoding="latin-1")
    with pytest.raises(DataError, match=r"header.csv is not UTF-8 text .* \(its header\)"):  # (read, not mangled)
        scan_file(tmp_path / "header.csv", "y", None, 25)
    rows.to_csv(tmp_path / "utf8.csv", index=False)
    prep = TablePreprocessor().fit_columns(read_user_table(tmp_path / "utf8.csv", "y"))
    prep.fit_scaling(prep.encode(rows.drop(columns="y")))
    assert len(torch.cat([x for x, _, _ in FileRows(tmp_path / "utf8.csv", prep, "y", 25)])) == 60
    with pytest.raises(DataError, match=message + r" \(column 'city'\)"):  # had: pyarrow's "invalid UTF8 data"
        list(FileRows(tmp_path / "latin.csv", prep, "y", 25))


def missing_text_warnings(dm: AnomalyDataModule) -> list[str]:
    """The warnings of a missing-value text beside missing values that ``dm.setup("fit")`` gives."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dm.setup("fit")
    return [str(w.message) for w in caught if "which reads as missing" in str(w.message)]


def test_a_blank_or_na_text_is_a_missing_value_in_parquet_and_dataframes_as_in_csv(tmp_path):
    rng = np.random.default_rng(0)
    n, y = 400, (rng.random(400) < 0.05).astype(int)
    city = rng.choice(["paris", "rome", "", " NA ", "null", None], n)
    frame = pd.DataFrame({"x": rng.normal(size=n) + 5 * y, "city": city, "y": y})
    frame.to_parquet(tmp_path / "t.parquet")
    frame.to_csv(tmp_path / "t.csv", index=False)  # pandas reads the blanks, NA and null back as missing
    encoded = {}
    for name in ("t.parquet", "t.csv"):
        for out_of_core in (False, True):
            dm = AnomalyDataModule("table", path=tmp_path / name, label_column="y", out_of_core=out_of_core)
            merged = missing_text_warnings(dm)
            # (had: no word) a CSV reader reads null as missing, but not NA with spaces around it
            texts = "'NA', 'null'" if name == "t.parquet" else "'NA'"
            assert merged == [
                f"column 'city' holds missing values and the text {texts}, which reads as missing too: they are "
                "one category; if it is a value (NA for North America?), write it otherwise (e.g. 'N.A.')"
            ], (name, out_of_core)
            assert dm.preprocessor.categories == {"city": ["nan", "paris", "rome"]}, (name, out_of_core)
            encoded[name, out_of_core] = dm.preprocessor.encode(frame.drop(columns="y"))
    missing = pd.isna(city) | np.isin(city, ["", " NA ", "null"])
    for rows in encoded.values():  # each file, in memory and out of core: the same rows in the 'nan' category
        np.testing.assert_array_equal(rows[:, 1:], np.c_[missing, city == "paris", city == "rome"])
    numbers = pd.DataFrame({"amount": [1.5, None, "NA", 2.0] * 20, "k": ["x", "y"] * 40})  # no category: no word
    with warnings.catch_warnings():
        warnings.simplefilter("error", DAGMMWarning)
        assert infer_symbolic_columns(numbers)[1] == ["k"]
    frame.assign(note="").to_parquet(tmp_path / "blank.parquet")  # a column of blanks has no values
    for out_of_core in (False, True):  # (had: out of core, one category 'nan')
        with pytest.raises(DataError, match="column 'note' has no values"):
            AnomalyDataModule(
                "table", path=tmp_path / "blank.parquet", label_column="y", out_of_core=out_of_core
            ).setup("fit")
    frame.assign(note="", memo=None).to_parquet(tmp_path / "blanks.parquet")  # two: named in one error by both
    for out_of_core in (False, True):  # (had: out of core, one a run)
        with pytest.raises(
            DataError, match=r"(?s)^2 columns cannot be.*'note' has no.*'memo' has no.*\[\"note\", \"memo\"\]"
        ):
            AnomalyDataModule(
                "table", path=tmp_path / "blanks.parquet", label_column="y", out_of_core=out_of_core
            ).setup("fit")
    # a checkpoint trained before (on a Parquet file) named them apart: its rows keep their categories
    old = category_codes(["", "NA", "nan", "paris"], pd.Series(["", " NA ", None, "null", "paris", "rome"]))
    assert list(old) == [0, 1, 2, 2, 3, -1]
    assert list(category_codes(["nan", "u"], pd.Series(["", "N/A", None, "u", "x"]))) == [0, 0, 0, 1, -1]
    # a numeric column stored as text, with blanks: numbers, and a blank is a missing value, as in a CSV
    numbers = pd.DataFrame({"x": ["1.5", "2", "", "3"] * 20, "k": ["a", "b"] * 40})
    prep = TablePreprocessor().fit_columns(RawTable(numbers.iloc[[0, 1, 3]], None, infer_symbolic_columns(numbers)[1]))
    assert prep.numeric == ["x"]
    with pytest.raises(DataError, match=r"missing|NaN"):
        prep.encode(numbers)
    labels = anomaly_labels(pd.Series(["1", "0", "", "NA"]), "y", missing_unknown=True)
    assert list(labels) == [1, 0, -1, -1]
    with pytest.raises(MissingLabelError, match="label column 'y' has no value at row 2"):
        anomaly_labels(pd.Series(["1", "0", ""]), "y")


def test_a_parquet_files_index_is_left_out_both_ways_and_its_suffix_may_be_upper_case(tmp_path):
    from dagmm_lightning.data.loaders import read_user_table
    from dagmm_lightning.data.streaming import read_frames, scan_file

    frame = pd.DataFrame({"flow": [7, 9, 11], "a": [0.5, 1.5, 2.5]}).set_index("flow")  # e.g. an id
    frame.to_parquet(tmp_path / "rows.PARQUET")  # (an evenly spaced index: stored as a range, no column)
    frame.set_index(pd.Index([7, 9, 12], name="flow")).to_parquet(tmp_path / "ids.parquet")  # (a column)
    for name in ("rows.PARQUET", "ids.parquet"):
        assert list(read_user_table(tmp_path / name).features.columns) == ["a"]
        assert list(next(read_frames(tmp_path / name, 10)).columns) == ["a"]
        # named in ignore_columns, as a user who knows it would (had: "are not in rows.PARQUET")
        assert list(read_user_table(tmp_path / name, ignore_columns=["flow"]).features.columns) == ["a"]
        assert list(scan_file(tmp_path / name, None, None, 10, ["flow"]).head.features.columns) == ["a"]
        with pytest.raises(DataError, match=r"ignore_columns \['flows'\] are not in"):
            read_user_table(tmp_path / name, ignore_columns=["flows"])
        with pytest.raises(DataError, match=r"ignore_columns \['flows'\] are not in"):
            scan_file(tmp_path / name, None, None, 10, ["flows"])


@pytest.mark.parametrize(
    "values, message",
    [
        (["1,000,000", "2,500,000", "3,250,000"] * 20, r"thousands separators or a % sign \(e.g. '1,000,000'\)"),
        (["1.234,5", "2.000,25", "7"] * 20, r"thousands separators or a % sign \(e.g. '1.234,5'\)"),
        (["12%", "3 %", "7.5%"] * 20, r"thousands separators or a % sign \(e.g. '12%'\); .* or list it in symb"),
        ([None] * 60, r"column 'c' has no values; leave it out"),
        ([[1, 2]] * 60, r"column 'c' holds lists or other containers"),
        (["x", "y"] * 29 + ["x", [1, 2]], r"column 'c' holds lists or other containers"),  # the last one
        ([1j, 2.0, 3.5j] * 20, r"column 'c' holds complex numbers"),
    ],
)
def test_columns_that_are_no_numbers_nor_categories_are_refused(values, message):
    from dagmm_lightning.data.tables import infer_symbolic_columns

    with pytest.raises(DataError, match=message):
        infer_symbolic_columns(pd.DataFrame({"a": np.arange(60.0) % 7, "c": values}))
    addresses = pd.DataFrame({"ip": ["192.168.100.200", "10.0.0.1", "1.234.567"] * 20})
    assert infer_symbolic_columns(addresses)[1] == ["ip"]  # dotted groups, no decimal comma: categories


def test_an_empty_trailing_column_and_complex_scoring_rows_are_named(tmp_path):
    from dagmm_lightning.data.loaders import read_user_table

    (tmp_path / "rows.csv").write_text("a,b,\n" + "".join(f"{i % 5},{i % 3},\n" for i in range(60)))
    with pytest.raises(DataError, match=r"column 'Unnamed: 2' has no values \(a separator at the end of every"):
        read_user_table(tmp_path / "rows.csv")
    train = pd.DataFrame({"a": [0.5, 1.5, 2.5]})
    prep = TablePreprocessor().fit_columns(RawTable(train, None))
    with pytest.raises(DataError, match="column 'a' holds complex numbers; the model was trained on reals"):
        prep.encode(train * 1j)


def test_an_npz_file_that_holds_no_numbers_is_named(tmp_path):
    from dagmm_lightning.data.loaders import read_npz_file

    np.savez(tmp_path / "objects.npz", X=np.array([[1, "a"]], dtype=object))
    np.savez(tmp_path / "complex.npz", X=np.ones((3, 2)) * 1j)
    np.save(tmp_path / "one.npy", np.ones((3, 2)))
    (tmp_path / "one.npy").rename(tmp_path / "one.npz")
    (tmp_path / "garbage.npz").write_bytes(b"garbage" * 10)
    for name, message in [
        ("objects", r"holds arrays of Python objects \(text\?\); X must be numbers"),
        ("complex", "'X' in .* must hold real numbers, got dtype complex128"),
        ("one", "holds one array, not an NPZ archive"),
        ("garbage", "holds no NPZ archive"),
    ]:
        with pytest.raises(DataError, match=message):
            read_npz_file(tmp_path / f"{name}.npz")


def test_out_of_core_takes_a_column_empty_in_its_first_rows_as_the_whole_file_types_it(tmp_path):
    from dagmm_lightning.data.loaders import read_user_table
    from dagmm_lightning.data.streaming import scan_file

    (tmp_path / "rows.csv").write_text("a,b\n" + "".join(f"{i},{'' if i < 20 else 'xy'[i % 2]}\n" for i in range(60)))
    assert read_user_table(tmp_path / "rows.csv").symbolic == ["b"]
    assert scan_file(tmp_path / "rows.csv", None, None, 16).head.symbolic == ["b"]
    (tmp_path / "empty.csv").write_text("a,b\n" + "".join(f"{i},\n" for i in range(60)))
    for read in (
        lambda: read_user_table(tmp_path / "empty.csv"),
        lambda: scan_file(tmp_path / "empty.csv", None, None, 16),
    ):
        with pytest.raises(DataError, match="column 'b' has no values; leave it out"):
            read()


def test_arrays_without_labels_or_with_labels_other_than_zero_one_and_the_modules_text():
    x = np.random.default_rng(0).normal(size=(100, 3))
    unlabelled = AnomalyDataModule.from_arrays(x)  # had: TypeError, len() of unsized object
    with pytest.warns(UserWarning, match="the table has no labels"):
        unlabelled.setup("fit")
    splits = unlabelled.splits  # all rows but val's tenth train (had: 45, the protocol's half less val)
    assert unlabelled.anomaly_share is None and (len(splits.train), len(splits.val), len(splits.test)) == (90, 10, 0)
    assert np.array_equal(np.sort(np.r_[splits.train, splits.val]), np.arange(100))
    y = np.r_[np.ones(10), np.zeros(90)]
    labelled = AnomalyDataModule.from_arrays(x, y.astype(int))
    assert labelled.anomaly_share == pytest.approx(0.1)
    assert AnomalyDataModule.from_arrays(x, y == 1).anomaly_share == pytest.approx(0.1)
    with pytest.raises(DataError, match="also -1 .scikit-learn's -1 is the outlier: map it to 1"):  # had: 1 = anomaly
        AnomalyDataModule.from_arrays(x, np.where(y == 1, -1, 1))
    with pytest.raises(DataError, match="also nan"):
        AnomalyDataModule.from_arrays(x, np.where(y == 1, np.nan, 0))
    with pytest.raises(DataError, match=r"one label per row \(100\), got shape \(50,\)"):
        AnomalyDataModule.from_arrays(x, y[:50])
    labelled = AnomalyDataModule.from_arrays(x, y)  # not loaded yet
    text = str(labelled)  # had: AttributeError from Lightning's, which built every dataloader
    assert text == "AnomalyDataModule(dataset='arrays', split='normal_only', protocol='paper', seed=None)"
    labelled.setup("fit")
    splits = labelled.splits
    rows = f"rows: train {len(splits.train)}, val {len(splits.val)}, test {len(splits.test)}"
    assert repr(labelled) == text[:-1] + f"; {rows})" and len(splits.test) == 50


def test_a_csv_whose_na_text_and_blanks_both_read_as_missing_is_warned_of(tmp_path):
    # (pandas' and pyarrow's CSV readers make 'NA' missing, as a blank: a Parquet file had been warned of, a CSV not)
    rng = np.random.default_rng(0)
    region = rng.choice(["AS", "EU", "NA"], 300).astype(object)
    region[:5] = None
    frame = pd.DataFrame({"x": rng.normal(size=300), "region": region, "y": np.r_[np.ones(10), np.zeros(290)]})
    frame.to_csv(tmp_path / "t.csv", index=False)
    frame.fillna({"region": "EU"}).to_csv(tmp_path / "no_blanks.csv", index=False)
    for name, expected in (("t.csv", 1), ("no_blanks.csv", 0)):
        for out_of_core in (False, True):
            dm = AnomalyDataModule("table", path=tmp_path / name, label_column="y", out_of_core=out_of_core)
            merged = missing_text_warnings(dm)
            assert (
                merged
                == [
                    "column 'region' holds missing values and the text 'NA', which reads as missing too: they are one "
                    "category; if it is a value (NA for North America?), write it otherwise (e.g. 'N.A.')"
                ]
                * expected
            ), (name, out_of_core)


def test_a_named_text_column_whose_na_and_blanks_read_as_missing_is_warned_of_once(tmp_path):
    # (symbolic_columns named: nothing inferred, so no earlier warning; ' NA ' kept as text had hidden 'NA')
    region = np.array(["AS", "EU", "NA", " NA ", ""] * 60, dtype=object)
    frame = pd.DataFrame({"x": np.random.default_rng(0).normal(size=300), "region": region})
    frame.to_csv(tmp_path / "t.csv", index=False)
    merged = missing_text_warnings(AnomalyDataModule("table", path=tmp_path / "t.csv", symbolic_columns=["region"]))
    assert len(merged) == 1 and "the text 'NA'" in merged[0], merged


def test_table_options_with_a_built_in_data_set_name_both_ways_out():
    # had: 'compose configs/table.yaml after the method's config' to a user who had, then a paper data config
    # after it, and to a test run of a table's checkpoint with --data.dataset thyroid (a user trial)
    said = r"\(the default, or a config or --data.dataset that set it\): .*after the method's and any data set's "
    said += r"config; with --ckpt_path \(test, predict\) leave out"
    with pytest.raises(ConfigurationError, match=r"the dataset is 'thyroid' here " + said):
        AnomalyDataModule(dataset="thyroid", path="flows.csv")
    with pytest.raises(ConfigurationError, match=r"the dataset is 'breast_cancer' here " + said):
        AnomalyDataModule(path="flows.csv")  # the default data set: the most common case


def test_a_path_with_a_tilde_no_shell_expanded_is_the_home_folders(tmp_path, monkeypatch):
    """'~/rows.csv' quoted, or --data.path=~/rows.csv (no shell expands a tilde after '='): the home
    folder's file (had: 'no such file: ~/rows.csv'); the benchmark's --out alike (had: a folder named '~'
    made in the current one). A name that only begins with '~' is a file's own (~backup.csv)."""
    from dagmm_lightning.benchmark.runner import out_path

    monkeypatch.setenv("HOME", str(tmp_path))
    pd.DataFrame({"a": np.arange(60.0) % 7, "b": np.arange(60.0) % 5}).to_csv(tmp_path / "rows.csv", index=False)
    data = AnomalyDataModule("table", path="~/rows.csv", predict_file="~/new.csv")
    assert data.path == str(tmp_path / "rows.csv") and data.predict_file == str(tmp_path / "new.csv")
    assert data.input_dim == 2
    assert out_path("~/results/run", ".csv") == tmp_path / "results" / "run.csv"
    from dagmm_lightning.cli import check_table_columns_as_trained

    with pytest.raises(DataError, match=r"rows.csv has columns the fit's table had not: \['b'\]"):  # (had: skipped,
        check_table_columns_as_trained({"path": "~/rows.csv"}, {"numeric": ["a", "z"]})  # ~/rows.csv no file)
    assert str(out_path("~run", ".csv")) == "~run.csv"  # (had: expanduser's RuntimeError, no user 'run')
    assert AnomalyDataModule("table", path="~backup.csv").path == "~backup.csv"
