"""The paper's other data sets, a user's own table, and training contamination."""

import numpy as np
import pandas as pd
import pytest
import torch

from dagmm_lightning.cli import build_cli
from dagmm_lightning.data import AnomalyDataModule, DataError
from dagmm_lightning.labels import UNLABELLED

from ..conftest import ROOT, read_csv

pytestmark = pytest.mark.data
QUICK = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


@pytest.mark.parametrize(
    "name, rows, features, anomalies",
    [("thyroid", 3772, 6, 93), ("arrhythmia", 452, 274, 66), ("kddcup_rev", 121_597, 118, 24_319)],
)
def test_loader_shapes_and_anomaly_counts(paper_data, name, rows, features, anomalies):
    dm = AnomalyDataModule(name, data_dir=str(paper_data), seed=0)
    assert len(dm.is_anomaly) == rows and dm.input_dim == features and int(dm.is_anomaly.sum()) == anomalies


def test_kddcup_rev_redraws_attacks_per_seed(paper_data):
    a = AnomalyDataModule("kddcup_rev", data_dir=str(paper_data), seed=0)
    b = AnomalyDataModule("kddcup_rev", data_dir=str(paper_data), seed=1)
    a._load(), b._load()
    assert not a._table.features.equals(b._table.features)


def test_missing_data_file_says_where_to_get_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "here").mkdir()
    said = rf"thyroid.npz \(or thyroid.mat\) is not in {tmp_path.resolve() / 'here'}; download it from https://odds"
    with pytest.raises(DataError, match=said):
        AnomalyDataModule("thyroid", data_dir="here").input_dim  # the folder in full, wherever the run started
    missing = f"the data folder {tmp_path.resolve() / 'dat'} does not exist: point --data.data_dir"
    with pytest.raises(DataError, match=missing):  # a mistyped folder (had: download thyroid.npz into it)
        AnomalyDataModule("thyroid", data_dir="dat").input_dim


def test_thyroid_reads_the_mat_file_odds_serves_where_no_npz_is_there(tmp_path):
    import scipy.io

    from dagmm_lightning.data.loaders import load_thyroid

    shipped = np.load(ROOT / "data" / "thyroid.npz")  # (had: told to download a .npz from a page serving .mat)
    scipy.io.savemat(tmp_path / "thyroid.mat", {"X": shipped["X"], "y": shipped["y"].reshape(-1, 1).astype(float)})
    table = load_thyroid(tmp_path, 0)
    np.testing.assert_array_equal(table.features.to_numpy(), shipped["X"])
    np.testing.assert_array_equal(table.is_anomaly, shipped["y"].ravel() == 1)
    data, reference = (AnomalyDataModule("thyroid", data_dir=str(d), seed=3) for d in (tmp_path, ROOT / "data"))
    data.setup("fit"), reference.setup("fit")
    np.testing.assert_array_equal(data.arrays("train")[0], reference.arrays("train")[0])  # the same split
    scipy.io.savemat(tmp_path / "thyroid.mat", {"X": shipped["X"]})
    with pytest.raises(DataError, match=r"thyroid.mat holds the matrices \['X'\]; expected ODDS's 'X' and 'y'"):
        load_thyroid(tmp_path, 0)


def test_damaged_files_of_kddcup99_and_arrhythmia_are_refused_in_a_line(tmp_path):
    """Had: pandas', gzip's and scipy's own errors, through the CLI as stack traces (exit 1); a user trial."""

    import scipy.io

    from dagmm_lightning.data.loaders import read_arrhythmia_file, read_kddcup99_file

    source = (ROOT / "data" / "kddcup.data_10_percent.gz").read_bytes()
    (tmp_path / "cut.gz").write_bytes(source[:300_000])  # a download that stopped
    rows = ["0,tcp,http,SF,181,5450" + ",0" * 35 + ",normal."] * 3
    (tmp_path / "wide.csv").write_text("\n".join([rows[0], rows[1].replace(",tcp,", ",tcp,x,"), rows[2]]) + "\n")
    (tmp_path / "utf16.csv").write_bytes("\n".join(rows).encode("utf-16"))
    for name, match in [
        ("cut.gz", "cut.gz ends within its compressed data"),
        ("wide.csv", r"wide.csv is not a readable KDD Cup 1999 file: Error tokenizing data"),
        ("utf16.csv", "utf16.csv is not UTF-8"),
    ]:
        with pytest.raises(DataError, match=match):
            read_kddcup99_file(tmp_path / name)
    (tmp_path / "junk.mat").write_bytes(b"not a MATLAB file at all" * 10)
    scipy.io.savemat(tmp_path / "other.mat", {"X": np.ones((5, 3))})
    (tmp_path / "cut.mat").write_bytes((ROOT / "data" / "arrhythmia.mat").read_bytes()[:50_000])
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, HDF5 schema 1.00 .".ljust(116) + bytes(8) + b"\x00\x02IM"
    (tmp_path / "v73.mat").write_bytes(header + bytes(512))  # (scipy: NotImplementedError)
    scipy.io.savemat(tmp_path / "struct.mat", {"arrhythmia": {"a": np.ones(3), "b": "x"}})
    for name, match in [
        ("v73.mat", "v73.mat is a MATLAB v7.3 file, which scipy cannot read: save it with -v7"),
        ("struct.mat", "struct.mat: 'arrhythmia' is not a matrix of numbers"),
        ("junk.mat", "junk.mat is not a readable MATLAB file"),
        (
            "other.mat",
            r"other.mat holds the matrices \['X'\]; expected one named 'arrhythmia' \(or ODDS's 'X' and 'y'\)",
        ),
        ("cut.mat", "cut.mat is not a readable MATLAB file"),
    ]:
        with pytest.raises(DataError, match=match):
            read_arrhythmia_file(tmp_path / name)
    shipped = read_arrhythmia_file(ROOT / "data" / "arrhythmia.mat")  # ODDS's copy: X and y (classes merged)
    served = {"X": shipped.features.to_numpy(), "y": shipped.is_anomaly.astype(float).reshape(-1, 1)}
    scipy.io.savemat(tmp_path / "odds.mat", served)
    odds = read_arrhythmia_file(tmp_path / "odds.mat")  # (had: refused, 'expected one named arrhythmia')
    pd.testing.assert_frame_equal(odds.features, shipped.features)
    np.testing.assert_array_equal(odds.is_anomaly, shipped.is_anomaly)
    assert odds.is_anomaly.sum() == 66
    scipy.io.savemat(tmp_path / "narrow.mat", {"X": np.ones((10, 3)), "y": np.zeros((10, 1))})
    with pytest.raises(DataError, match=r"narrow.mat: expected Arrhythmia's 274 features in 'X', got shape \(10, 3\)"):
        read_arrhythmia_file(tmp_path / "narrow.mat")
    scipy.io.savemat(tmp_path / "cells.mat", {"X": np.array([[1, "a"]], dtype=object), "y": np.zeros((1, 1))})
    with pytest.raises(DataError, match=r"cells.mat: 'X' and 'y' are not matrices of numbers"):
        read_arrhythmia_file(tmp_path / "cells.mat")


def write_tables(tmp_path):
    rng = np.random.default_rng(0)
    n = 400
    frame = pd.DataFrame(
        {
            "size": rng.normal(10, 2, n),
            "colour": rng.choice(["red", "green", "blue"], n),
            "weight": rng.normal(3, 1, n),
            "anomaly": (rng.random(n) < 0.1).astype(int),
        }
    )
    frame.loc[frame.anomaly == 1, "size"] += 8
    train = tmp_path / "train.csv"
    frame.to_csv(train, index=False)
    new = frame.iloc[:25][["weight", "anomaly", "colour", "size"]].copy()  # other column order
    new.loc[new.index[:3], "colour"] = "purple"  # a category never seen in training
    predict = tmp_path / "new.csv"
    new.to_csv(predict, index=False)
    return train, predict, new


def test_user_table_round_trip(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    train, predict, new = write_tables(tmp_path)
    common = [
        "--config",
        "configs/quickstart.yaml",
        "--data.dataset",
        "table",
        "--data.path",
        str(train),
        "--data.label_column",
        "anomaly",
        "--trainer.max_epochs",
        "3",
        "--trainer.logger.init_args.save_dir",
        str(tmp_path / "logs"),
        *QUICK,
    ]
    fitted = build_cli(["fit", *common])
    assert fitted.datamodule.input_dim == 5  # 2 numeric + 3 colours
    ckpt = next((tmp_path / "logs").rglob("*.ckpt"))
    out = tmp_path / "scores.csv"
    build_cli(
        [
            "predict",
            *common,
            "--ckpt_path",
            str(ckpt),
            "--data.predict_file",
            str(predict),
            "--prediction_writer.output_path",
            str(out),
        ]
    )
    scores = read_csv(out)
    assert len(scores) == 25 and np.isfinite(scores["score"]).all()
    np.testing.assert_array_equal(scores["label"], new["anomaly"])
    # the same rows in the training column order score the same: encoding is by name
    model = fitted.model.eval()
    encoded = fitted.datamodule.preprocessor
    x = encoded.scale(encoded.encode(read_csv(predict).drop(columns="anomaly")))
    with torch.no_grad():
        np.testing.assert_allclose(scores["score"], model.score(torch.from_numpy(x)).numpy(), rtol=1e-6)
    assert (x[:3, 2:] == 0).all()  # unseen category: all-zero one-hot

    missing = tmp_path / "missing.csv"
    new.drop(columns="weight").to_csv(missing, index=False)
    with pytest.raises(DataError, match=r"columns missing from the input: \['weight'\]"):
        build_cli(["predict", *common, "--ckpt_path", str(ckpt), "--data.predict_file", str(missing)])


def test_user_table_errors(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match="is empty"):
        AnomalyDataModule("table", path=str(empty)).input_dim
    frame = pd.DataFrame({"a": ["1", "2", "x", "4", "5", "6", "7", "8", "9", "10", "11"], "b": range(11)})
    typo = tmp_path / "typo.csv"
    frame.to_csv(typo, index=False)
    with pytest.raises(
        DataError, match=r"'a' looks numeric but holds non-numeric values, e.g. \['x'\] \(the first at row 2, the 3rd "
    ):
        AnomalyDataModule("table", path=str(typo)).input_dim
    with pytest.raises(DataError, match="label column 'label' is not in"):
        AnomalyDataModule("table", path=str(typo), label_column="label", symbolic_columns=["a"]).input_dim
    stray = pd.DataFrame({"a": np.r_[np.linspace(0, 1, 150), np.zeros(50)].astype(object), "b": range(200)})
    stray.loc[150:, "a"] = "x"  # a quarter of a numeric column's values are text: not an identifier
    stray.loc[199, "a"] = "y"
    stray.loc[:9, "a"] = None  # missing values before the text do not shift the row named
    stray.to_csv(typo, index=False)
    said = r"'a' looks numeric but holds non-numeric values, e.g. \['x', 'y'\] \(the first at row 150, the 151st data"
    with pytest.raises(DataError, match=said):
        AnomalyDataModule("table", path=str(typo)).input_dim
    constant = tmp_path / "constant.csv"
    pd.DataFrame({"a": np.arange(20.0), "c": 1.0}).to_csv(constant, index=False)
    dm = AnomalyDataModule("table", path=str(constant))  # a constant column is fine; no labels is fine
    with pytest.warns(UserWarning, match="no labels"):
        dm.setup("fit")
    x, y = dm.arrays("test")
    assert np.isfinite(x).all() and (y == -1).all()
    with pytest.raises(ValueError, match="needs --data.path"):
        AnomalyDataModule("table")


def test_training_contamination_share(paper_data):
    dm = AnomalyDataModule("thyroid", data_dir=str(paper_data), seed=0, train_contamination=0.02)
    s, y = dm.splits, dm.is_anomaly
    assert y[s.train].mean() == pytest.approx(0.02, abs=0.001)
    assert (s.train_labels[y[s.train]] == UNLABELLED).all()
    hidden = int(y[s.train].sum())  # the run's summary counts them
    assert f"train {len(s.train):,} rows ({hidden} anomalies unlabelled), val" in dm.describe()
    mixed = AnomalyDataModule("thyroid", data_dir=str(paper_data), seed=0, split="mixed")
    assert f"({int(mixed.is_anomaly[mixed.splits.train].sum())} labelled anomalies), val" in mixed.describe()
    pu = AnomalyDataModule("thyroid", data_dir=str(paper_data), seed=0, split="positive_unlabeled")
    known, hidden = int((pu.splits.train_labels == 0).sum()), int(pu.is_anomaly[pu.splits.train].sum())
    assert f"({known:,} labelled normal, {hidden} anomalies unlabelled), val" in pu.describe()  # had: no labelled
    clean = AnomalyDataModule("thyroid", data_dir=str(paper_data), seed=0)
    np.testing.assert_array_equal(s.test, clean.splits.test)  # test rows unchanged
    aside = len(clean.is_anomaly) - sum(map(len, (clean.splits.train, clean.splits.val, clean.splits.test)))
    assert aside > 0 and clean.describe().endswith(f", {aside} anomalies set aside")  # had: rows unaccounted for
    assert len(np.intersect1d(s.train, np.r_[s.val, s.test])) == 0
    with pytest.raises(ValueError, match="only .* exist"):
        AnomalyDataModule("thyroid", data_dir=str(paper_data), seed=0, train_contamination=0.3).splits
