"""``dagmm benchmark --suite``: the development suite's one-class protocol on a folder of tables."""

import csv

import numpy as np
import pytest

from dagmm_lightning.benchmark import suite
from dagmm_lightning.benchmark.runner import main


def test_one_class_split_by_hand():
    x = np.arange(20, dtype=np.float64)[:, None] * np.array([[1.0, 0.0]])  # second column constant
    y = np.r_[np.zeros(16, int), np.ones(4, int)]
    x_train, x_test, y_test = suite.one_class_split(x, y, seed=3)
    normal = np.random.default_rng(3).permutation(16)
    train = normal[:8]
    assert len(x_train) == 8 and len(x_test) == 8 + 4 and y_test.sum() == 4
    low, high = train.min(), train.max()
    np.testing.assert_allclose(x_train[:, 0], (train - low) / (high - low))
    np.testing.assert_allclose(x_test[:, 0], (np.r_[normal[8:], np.arange(16, 20)] - low) / (high - low))
    assert (x_train[:, 1] == 0).all()  # a constant column is divided by 1


def test_large_tables_are_subsampled_first(monkeypatch):
    monkeypatch.setattr(suite, "MAX_ROWS", 50)
    x, y = np.random.default_rng(0).normal(size=(80, 2)), np.r_[np.zeros(70, int), np.ones(10, int)]
    x_train, x_test, y_test = suite.one_class_split(x, y, seed=0)
    assert len(x_train) + len(x_test) == 50
    kept = np.random.default_rng(0).choice(80, 50, replace=False)
    assert y_test.sum() == y[kept].sum()


def test_knn_baseline_is_the_distance_to_the_fifth_training_row():
    x_train = np.arange(10, dtype=np.float64)[:, None]
    scores = suite.baseline_scores("knn", x_train, np.array([[0.0], [20.0]]), seed=0)
    np.testing.assert_allclose(scores, [4.0, 15.0])  # neighbours 0..4 of 0.0; 9..5 of 20.0


@pytest.mark.slow
def test_suite_runs_every_table_and_method_resumably(tmp_path, capsys):
    folder = tmp_path / "tables"
    folder.mkdir()
    for number, shift in ((1, 3.0), (2, 4.0)):
        rng = np.random.default_rng(number)
        x = rng.normal(size=(200, 3))
        x[:15] += shift
        np.savez(folder / f"{number}_toy.npz", X=x, y=np.r_[np.ones(15, int), np.zeros(185, int)])
    out = tmp_path / "suite"
    args = ["--suite", str(folder), "--seeds", "0", "--detector", '{"epochs": 2}', "--out", str(out)]
    main(args)
    with out.with_suffix(".csv").open() as f:
        rows = list(csv.DictReader(f))
    assert sorted({r["method"] for r in rows}) == sorted(["dagmm_detector", *suite.BASELINES])
    assert len(rows) == 2 * 5 and all(r["status"] == "ok" and 0 <= float(r["roc_auc"]) <= 1 for r in rows)
    table = out.with_suffix(".md").read_text()
    assert "| 1_toy |" in table and "| **mean** |" in table and out.with_suffix(".png").stat().st_size > 1000
    capsys.readouterr()
    main(args)  # nothing left to do
    assert "ROC AUC" not in capsys.readouterr().out
    with pytest.raises(ValueError, match="holds dagmm_detector rows with other --detector settings"):
        main([*args[:5], '{"epochs": 3}', *args[6:]])
    with pytest.raises(ValueError, match="no such folder"):
        main(["--suite", str(tmp_path / "none"), "--out", str(out)])
