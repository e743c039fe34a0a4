"""``dagmm benchmark --suite``: the development suite's one-class protocol on a folder of tables."""

import csv
import json
import re
import signal

import joblib
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from dagmm_lightning import detector as detector_module
from dagmm_lightning.benchmark import suite
from dagmm_lightning.benchmark.report import changed_settings
from dagmm_lightning.benchmark.runner import main

from ..conftest import ROOT


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


def test_contaminated_split_by_hand():
    x = np.arange(20, dtype=np.float64)[:, None]
    y = np.r_[np.zeros(15, int), np.ones(5, int)]
    x_train, x_test, y_test = suite.contaminated_split(x, y, seed=4)
    rng = np.random.default_rng(4)
    normal, anomalies = rng.permutation(15), 15 + rng.permutation(5)  # normal rows shuffled first
    train, test = np.r_[normal[:7], anomalies[:2]], np.r_[normal[7:], anomalies[2:]]
    low, high = train.min(), train.max()
    np.testing.assert_allclose(x_train[:, 0], (train - low) / (high - low))
    np.testing.assert_allclose(x_test[:, 0], (test - low) / (high - low))
    np.testing.assert_array_equal(y_test, [0] * 8 + [1] * 3)
    assert suite.SPLITS == {"one-class": suite.one_class_split, "contaminated": suite.contaminated_split}


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


def test_lof_baseline_on_fewer_training_rows_than_neighbours_scores_as_scikit_learn_without_its_warning():
    import warnings

    from sklearn.neighbors import LocalOutlierFactor

    rng = np.random.default_rng(0)
    x_train, x_test = rng.normal(size=(13, 2)), rng.normal(size=(5, 2)) * 3
    with warnings.catch_warnings(record=True) as clamped:
        warnings.simplefilter("always")
        expected = -LocalOutlierFactor(n_neighbors=20, novelty=True).fit(x_train).score_samples(x_test)
    assert any("n_neighbors (20) is greater than" in str(w.message) for w in clamped)  # (it takes 12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # had: scikit-learn's warning printed to the suite's user
        np.testing.assert_allclose(suite.baseline_scores("lof", x_train, x_test, seed=0), expected, rtol=1e-12)


@pytest.mark.slow
def test_suite_runs_every_table_and_method_resumably(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "tables"
    folder.mkdir()
    for number, shift in ((1, 3.0), (2, 4.0)):
        rng = np.random.default_rng(number)
        x = rng.normal(size=(200, 3))
        x[:15] += shift
        np.savez(folder / f"{number}_toy.npz", X=x, y=np.r_[np.ones(15, int), np.zeros(185, int)])
    out = tmp_path / "suite"
    args = ["--suite", str(folder), "--seeds", "0", "--detector", '{"epochs": 2}', "--out", str(out)]
    detector_threads = []
    used = detector_module._torch_threads
    monkeypatch.setattr(detector_module, "_torch_threads", lambda n: (detector_threads.append(n), used(n))[1])
    baseline_jobs, scored = [], suite.baseline_scores
    monkeypatch.setattr(
        suite, "baseline_scores", lambda *a: (baseline_jobs.append(joblib.effective_n_jobs(None)), scored(*a))[1]
    )
    main([*args, "--threads", "3", "--tables", "1_toy.npz"])  # had: refused with --suite
    assert set(detector_threads) == {3}  # (the detector's n_jobs None: 1 but for --threads)
    assert baseline_jobs == [1] * 4  # the baselines keep their own (scikit-learn's n_jobs None: 1)
    assert {r["table"] for r in suite.read_rows(out.with_suffix(".csv"))} == {"1_toy"}
    capsys.readouterr()
    main([*args, "--tables", "2_toy"])  # into a file of the other table's rows (had: 'another folder's')
    printed = capsys.readouterr().out
    assert f"5 runs to do, 0 already in {out.with_suffix('.csv')}" in printed
    assert "dagmm_detector rows were timed with 3 threads, these with 1: its seconds per seed will mix" in printed
    threads = {r["table"]: r["threads"] for r in suite.read_rows(out.with_suffix(".csv")) if r["threads"]}
    assert threads == {"1_toy": "3", "2_toy": "1"}  # (had: not recorded)
    main([*args, "--threads", "2"])  # nothing to do: nothing timed (had: warned of mixing all the same)
    printed = capsys.readouterr().out
    assert "0 runs to do, 10 already in" in printed and "timed with" not in printed
    with out.with_suffix(".csv").open() as f:
        rows = list(csv.DictReader(f))
    assert sorted({r["method"] for r in rows}) == sorted(["dagmm_detector", *suite.BASELINES])
    assert len(rows) == 2 * 5 and all(r["status"] == "ok" and 0 <= float(r["roc_auc"]) <= 1 for r in rows)
    table = out.with_suffix(".md").read_text()
    assert "| 1_toy |" in table and "| **mean** |" in table and out.with_suffix(".png").stat().st_size > 1000
    capsys.readouterr()
    main(args)  # nothing left to do
    printed = capsys.readouterr().out
    assert "ROC AUC" not in printed and "0 runs to do, 10 already in" in printed
    with pytest.raises(ValueError, match=r"--tables: no 3_toy in .* \(its tables: 1_toy, 2_toy\)"):
        main([*args, "--tables", "1_toy,3_toy"])
    for empty in ("", "1_toy,,2_toy"):
        with pytest.raises(SystemExit):
            main([*args, "--tables", empty])
        assert "table names separated by commas" in capsys.readouterr().err
    suite_options = (["--detector", '{"epochs": 2}'], ["--tables", "1_toy"], ["--suite-protocol", "one-class"])
    for suite_only in suite_options:  # had: ignored without --suite
        with pytest.raises(SystemExit):
            main(["--configs", str(ROOT / "configs/quickstart.yaml"), *suite_only, "--out", str(tmp_path / "grid")])
        assert f"{suite_only[0]}: only with --suite" in capsys.readouterr().err
    with pytest.raises(ValueError, match="holds dagmm_detector rows with other --detector settings"):
        main([*args[:5], '{"epochs": 3}', *args[6:]])
    with pytest.raises(ValueError, match="--detector: epochs must be an integer >= 1 or None, got -3"):
        main([*args[:5], '{"epochs": -3}', *args[6:]])  # had: 'other --detector settings'
    capsys.readouterr()
    main([*args[:5], '{"epochs": 2, "n_components": 4, "contamination": 0.1}', *args[6:]])  # the defaults, named
    assert "0 runs to do, 10 already in" in capsys.readouterr().out  # had: refused as other settings
    with pytest.raises(ValueError, match="no such folder"):
        main(["--suite", str(tmp_path / "none"), "--out", str(out)])
    with pytest.raises(
        ValueError,
        match=r"1_toy.npz is a file; --suite takes the folder of .npz tables that holds it \(--tables 1_toy to",
    ):
        main(["--suite", str(folder / "1_toy.npz"), "--out", str(out)])
    (tmp_path / "rows.csv").write_text("a,b\n1,2\n")
    with pytest.raises(
        ValueError, match=r"rows.csv is a file; --suite takes a folder of .npz tables \(arrays X and y\)"
    ):
        main(["--suite", str(tmp_path / "rows.csv"), "--out", str(out)])  # had: 'the folder ... that holds it'


def test_a_method_of_a_few_milliseconds_records_its_time_not_zero(tmp_path, monkeypatch):
    folder = tmp_path / "tables"
    folder.mkdir()
    x = np.random.default_rng(0).normal(size=(100, 2))
    np.savez(folder / "1_toy.npz", X=x, y=np.r_[np.ones(10, int), np.zeros(90, int)])
    monkeypatch.setattr(suite, "baseline_scores", lambda name, x_train, x_test, seed: x_test[:, 0])  # instant
    out = tmp_path / "suite"
    main(["--suite", str(folder), "--seeds", "0", "--detector", '{"epochs": 1}', "--out", str(out)])
    rows = suite.read_rows(out.with_suffix(".csv"))
    assert len(rows) == 5 and all(0 < float(r["seconds"]) for r in rows)  # had: 0.0 (rounded to 0.01 s)


def suite_rows(path, cells):
    """A --suite results file of (table, method, roc_auc, status) rows, seed 0."""
    rows = [dict(table=t, seed=0, method=m, roc_auc=a, seconds=1, status=s, settings="") for t, m, a, s in cells]
    suite.append_rows(path, rows, suite.SUITE_FIELDS)
    return suite.read_rows(path)


def test_a_failed_cell_is_shown_and_the_means_cover_the_same_tables(tmp_path):
    rows = suite_rows(
        tmp_path / "s.csv",
        [
            ("1_a", "dagmm_detector", 0.9, "ok"),
            ("1_a", "knn", 0.8, "ok"),
            ("1_a", "lof", 0.7, "ok"),
            ("2_b", "dagmm_detector", "nan", "failed: NaN in X"),
            ("2_b", "knn", "nan", "failed: NaN in X"),
            ("2_b", "lof", 0.6, "ok"),
        ],
    )
    lines = suite.summarize_suite(rows).splitlines()
    assert "| 2_b | failed | failed | 0.600 | 0.600 |" in lines  # the best baseline among those that scored
    assert "| **mean** (1 of 2 tables) | **0.900** | **0.800** | **0.700** | |" in lines  # 1_a only, for all
    failing = [(t, "dagmm_detector_pu", "nan", "failed: y") for t in ("1_a", "2_b")]
    rows = suite_rows(tmp_path / "t.csv", [("1_a", "knn", 0.6, "ok"), ("2_b", "knn", 0.7, "ok"), *failing])
    lines = suite.summarize_suite(rows).splitlines()  # a method that failed on every table: the others' means stand
    assert "| **mean** | failed | **0.650** | |" in lines and "| 2_b | failed | 0.700 | 0.700 |" in lines
    assert "| seconds per seed | n/a | 2 | |" in lines  # (had: every mean n/a, 0 of 2 tables)


def test_the_report_names_its_seeds_and_does_not_round_short_times_to_zero(tmp_path):
    rows = suite_rows(tmp_path / "s.csv", [("1_a", "dagmm_detector", 0.9, "ok"), ("1_a", "knn", 0.8, "ok")])
    rows[1]["seconds"] = "0.42"
    text = suite.summarize_suite(rows)
    assert text.startswith("ROC AUC on the test rows, seed 0:")  # had: "mean over seeds 0"
    assert "| seconds per seed | 1 | 0.42 | |" in text.splitlines()  # had: 0
    rows += [dict(r, seed="2", seconds="30.4") for r in rows]
    text = suite.summarize_suite(rows)
    assert text.startswith("ROC AUC on the test rows, mean over seeds 0, 2:")
    assert "| seconds per seed | 16 | 15 | |" in text.splitlines()  # (1 + 30.4) / 2, (0.42 + 30.4) / 2


def test_seconds_per_seed_cover_the_tables_the_means_cover(tmp_path):
    done = [(t, m, 0.9, "ok") for t in ("1_a", "2_b") for m in ("dagmm_detector", "knn")]
    rows = suite_rows(tmp_path / "s.csv", [*done, ("1_a", "dagmm_detector_wide", 0.95, "ok")])  # a tag, unfinished
    for row, seconds in zip(rows, ["10", "1", "30", "2", "12"], strict=True):
        row["seconds"] = seconds
    lines = suite.summarize_suite(rows).splitlines()
    assert "| **mean** (1 of 2 tables) | **0.900** | **0.950** | **0.900** | |" in lines
    assert "| seconds per seed (1 of 2 tables) | 10 | 12 | 1 | |" in lines  # had: 40 | 12 | 3, other tables
    rows = rows[:4]
    lines = suite.summarize_suite(rows).splitlines()
    assert "| seconds per seed | 40 | 3 | |" in lines


def test_a_cell_not_run_or_failed_on_some_seeds_says_so(tmp_path):
    rows = suite_rows(
        tmp_path / "s.csv", [("1_a", "dagmm_detector", 0.9, "ok"), ("1_a", "knn", 0.8, "ok"), ("2_b", "knn", 0.7, "ok")]
    )
    rows += [dict(rows[0], seed="1", roc_auc="nan", status="failed: NaN")]  # seed 1 of the detector failed
    lines = suite.summarize_suite(rows).splitlines()
    assert "| 1_a | 0.900 (1 of 2 seeds) | 0.800 | 0.800 |" in lines and "| 2_b | not run | 0.700 | 0.700 |" in lines
    assert "| **mean** (0 of 2 tables) | n/a | n/a | |" in lines  # no table every method scored fully


def test_a_table_run_on_another_seed_alone_is_marked_and_left_out_of_the_means(tmp_path):
    """Seed 0 on both tables, seed 1 on 1_a alone: 1_a's cells are of 2 seeds, 2_b's of 1 of them; the
    means cover 1_a only, and say so (had: 2_b's seed 0 averaged with 1_a's seeds 0-1, unmarked, under
    'mean over seeds 0, 1')."""
    done = [(t, m, 0.8, "ok") for t in ("1_a", "2_b") for m in ("dagmm_detector", "knn")]
    rows = suite_rows(tmp_path / "s.csv", done)
    rows += [dict(r, seed="1", roc_auc="0.6") for r in rows if r["table"] == "1_a"]
    lines = suite.summarize_suite(rows).splitlines()
    assert lines[0] == "ROC AUC on the test rows, mean over seeds 0, 1:"
    assert "| 1_a | 0.700 | 0.700 | 0.700 |" in lines
    assert "| 2_b | 0.800 (1 of 2 seeds) | 0.800 (1 of 2 seeds) | 0.800 |" in lines
    assert "| **mean** (1 of 2 tables) | **0.700** | **0.700** | |" in lines
    title = suite.suite_figure(rows).axes[0].get_title()
    assert "mean over seeds 0, 1 (error bars: their standard deviation), some bars of fewer seeds" in title
    # a method's own seeds: one tag run on seed 0 alone beside baselines of seeds 0-1 is complete, and a
    # table run twice on a seed (two processes over overlapping halves) counts that seed once
    rows = [r for r in rows if r["method"] == "knn"] + [r for r in rows if r["method"] != "knn" and r["seed"] == "0"]
    rows += [dict(next(r for r in rows if r["method"] == "knn" and r["seed"] == "0"), roc_auc="0.2")]  # again
    lines = suite.summarize_suite(rows).splitlines()
    # knn's seed 0 on 1_a twice (0.8, 0.2): their mean 0.5 once beside seed 1's 0.6 (had: 0.533, three rows)
    assert "| 1_a | 0.800 | 0.550 | 0.550 |" in lines
    assert "| 2_b | 0.800 | 0.800 (1 of 2 seeds) | 0.800 |" in lines
    assert "| **mean** (1 of 2 tables) | **0.800** | **0.550** | |" in lines
    assert "fewer seeds" not in suite.suite_figure([r for r in rows if r["table"] == "1_a"]).axes[0].get_title()


def test_report_rewrites_a_suite_file_and_matrix_refuses_one(tmp_path, capsys):
    path = tmp_path / "s.csv"
    suite_rows(path, [("1_a", "dagmm_detector", 0.9, "ok"), ("1_a", "knn", 0.8, "ok")])
    main(["--report", str(path)])
    assert "| 1_a | 0.900 | 0.800 | 0.800 |" in path.with_suffix(".md").read_text()
    with pytest.raises(SystemExit):
        main(["--report", str(tmp_path / "s")])  # --out's name, without .csv
    assert f"no such results file: {tmp_path / 's'} (did you mean {path}?)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--matrix", str(path), "--out", str(tmp_path / "m")])
    assert "--suite results (ROC AUC per table); --matrix combines --configs runs" in capsys.readouterr().err


def test_a_table_without_labels_or_anomalies_stops_the_suite_before_any_row(tmp_path, capsys):
    folder = tmp_path / "tables"
    folder.mkdir()
    x = np.random.default_rng(0).normal(size=(60, 3))
    np.savez(folder / "1_ok.npz", X=x, y=np.r_[np.zeros(54), np.ones(6)])
    for bad, arrays, message in [
        ("2_no_y.npz", dict(X=x), r"2_no_y.npz holds no y; a suite table holds X \(rows x features\) and y"),
        ("2_normal.npz", dict(X=x, y=np.zeros(60)), "y marks 0 anomalies in 60 rows"),
        ("2_inverted.npz", dict(X=x, y=np.r_[np.ones(54), np.zeros(6)]), r"y marks 90 % of the rows as anomalies: inv"),
        ("2_short.npz", dict(X=x, y=np.ones(59)), "2_short.npz: 59 labels for 60 rows"),
        (
            "2_nan_y.npz",
            dict(X=x, y=np.r_[np.zeros(54), np.nan, np.ones(5)]),
            "2_nan_y.npz: label .* no value at row 54",
        ),
        ("2_two.npz", dict(X=x, y=np.r_[np.ones(54), np.full(6, 2.0)]), r"2_two.npz: label .* also holds \['2'\]"),
        ("2_nan_x.npz", dict(X=np.where(np.eye(60, 3, -7) > 0, np.nan, x), y=np.ones(60)), "nan at row 7, column 0"),
        ("2_text.npz", dict(X=np.full((60, 3), "abc"), y=np.ones(60)), "must hold real numbers, got dtype <U3"),
        ("2_cut.npz", None, "2_cut.npz is not a readable NPZ file"),
        ("2_no_columns.npz", dict(X=np.zeros((60, 0)), y=np.r_[np.zeros(54), np.ones(6)]), "X has no columns"),
    ]:
        if arrays is None:  # a file cut short
            np.savez(folder / bad, X=x, y=np.ones(60))
            (folder / bad).write_bytes((folder / bad).read_bytes()[:300])
        else:
            np.savez(folder / bad, **arrays)
        with pytest.raises(ValueError, match=message):
            main(["--suite", str(folder), "--seeds", "0", "--out", str(tmp_path / "out")])
        assert not (tmp_path / "out.csv").exists()  # 1_ok.npz did not run either
        assert "runs to do" not in capsys.readouterr().out  # (had: counted, then stopped)
        (folder / bad).unlink()


def test_options_of_configs_runs_and_another_results_file_are_refused_with_a_suite(tmp_path, capsys):
    folder = tmp_path / "tables"
    folder.mkdir()
    x = np.random.default_rng(0).normal(size=(60, 3))
    np.savez(folder / "²_superscript.npz", X=x, y=np.r_[np.zeros(54), np.ones(6)])
    assert suite.table_order("²_superscript") == (0, "²_superscript") and suite.table_order("12_a") == (12, "12_a")
    for extra, message in [
        (["--epochs", "1"], "^dagmm: error: --epochs: for --configs runs, not --suite; the detector's .* --detector"),
        (["--select-on", "f1_rho", "--recon-inference"], "--recon-inference, --select-on: for --configs runs, not"),
        (
            ["--jobs", "2"],
            r"--jobs: for --configs runs, not --suite \(it runs one table at a time; --threads sets a "
            r"run's threads\)$",
        ),  # had: settings in --detector
        (["--baselines", "--epochs", "2"], "^dagmm: error: --epochs: for --configs"),  # (--baselines: always run)
        (["--protocol", "reimplementation"], "--protocol is for --configs runs; the suite's is --suite-protocol"),
        (["--protocol", "paper"], "--protocol is for --configs runs"),  # had: its default, so not told, not run
        (["--jobs=1"], "--jobs: for --configs runs, not --suite"),
        (["--suite-protocol", "contaminate"], "--suite-protocol: 'contaminate' is not one of"),  # had: --suite_protocol
        (
            ["--baselines"],
            "--suite always runs the baselines .*: leave out --baselines$",
        ),  # had: takes ... in --detector
    ]:
        with pytest.raises(SystemExit):
            main(["--suite", str(folder), "--out", str(tmp_path / "out"), *extra])
        assert re.search(message, capsys.readouterr().err.splitlines()[0])
    (tmp_path / "grid.csv").write_text("method,dataset,protocol,seed,status,settings\n")
    with pytest.raises(SystemExit):
        main(["--suite", str(folder), "--out", str(tmp_path / "grid")])
    assert "grid.csv is no --suite results file" in capsys.readouterr().err


def test_a_bar_in_a_table_name_stays_in_its_markdown_cell(tmp_path):
    rows = suite_rows(tmp_path / "s.csv", [("1_a|b", "dagmm_detector", 0.9, "ok"), ("1_a|b", "knn", 0.8, "ok")])
    assert "| 1_a\\|b | 0.900 | 0.800 | 0.800 |" in suite.summarize_suite(rows).splitlines()


def test_random_state_is_refused_and_an_interrupted_suite_reports_its_rows(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "tables"
    folder.mkdir()
    x = np.random.default_rng(0).normal(size=(60, 3))
    for name in ("1_a", "2_b"):
        np.savez(folder / f"{name}.npz", X=x, y=np.r_[np.zeros(54), np.ones(6)])
    out = tmp_path / "out"
    with pytest.raises(SystemExit):
        main(["--suite", str(folder), "--detector", '{"random_state": 5}', "--out", str(out)])
    assert "random_state is each run's seed; give the seeds with --seeds" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # (had: --threads 2 left for the detector's n_jobs 1 without a word)
        main(["--suite", str(folder), "--detector", '{"n_jobs": 1}', "--threads", "2", "--out", str(out)])
    assert "--threads and --detector's n_jobs both set the detector's threads: give one" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # (had: "expected dict, got {epochs: 2", not why)
        main(["--suite", str(folder), "--detector", "{epochs: 2", "--out", str(out)])
    said = "--detector: expected dict, got {epochs: 2 (not valid JSON or YAML: expected ',' or '}', but got '<stream"
    assert said in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"\['epoch'\] are not DAGMMDetector settings \(did you mean 'epochs'\?\)"):
        main(["--suite", str(folder), "--detector", '{"epoch": 2}', "--out", str(out)])
    for variant in ("pu", "mixed_loss"):  # had: a failed row per table, recorded as done, and every mean blank
        with pytest.raises(ValueError, match=f"--detector: variant '{variant}' trains on labelled rows; the suite"):
            main(["--suite", str(folder), "--detector", f'{{"variant": "{variant}"}}', "--out", str(out)])
    with pytest.raises(ValueError, match=r"^--detector: n_jobs must be None or a nonzero integer"):
        main(["--suite", str(folder), "--detector", '{"n_jobs": 0}', "--out", str(out)])
    assert not out.with_suffix(".csv").exists()

    def failing(settings, x_train, x_test, seed, threads):
        raise ValueError("Input contains NaN")

    monkeypatch.setattr(suite, "detector_scores", failing)
    monkeypatch.setattr(suite, "MAX_ROWS", 50)
    main(["--suite", str(folder), "--seeds", "0", "--tables", "1_a", "--out", str(tmp_path / "failed")])
    printed = capsys.readouterr().out
    assert "1_a seed 0 dagmm_detector: FAILED, Input contains NaN (" in printed  # had: ROC AUC nan
    assert "1_a: 60 rows, cut to 50 (a fixed random subset) before it splits" in printed  # had: silent
    monkeypatch.setattr(suite, "MAX_ROWS", 20_000)

    def scores(settings, x_train, x_test, seed, threads):  # the detector stands in: the second table is "interrupted"
        if len(suite.read_rows(out.with_suffix(".csv"))) >= 5:
            raise KeyboardInterrupt
        return x_test.sum(axis=1)

    monkeypatch.setattr(suite, "detector_scores", scores)
    with pytest.raises(SystemExit) as stopped:
        main(["--suite", str(folder), "--seeds", "0", "--out", str(out)])
    assert stopped.value.code == 130 and "the command resumes" in capsys.readouterr().out
    table = out.with_suffix(".md").read_text()
    assert "| 1_a | 0." in table and len(suite.read_rows(out.with_suffix(".csv"))) == 5

    def stopped_in_its_fit(settings, x_train, x_test, seed, threads):  # SIGTERM within the detector's fit,
        try:  # which Lightning's handler (run before the one set beside it) turns into the fit's SystemExit 143
            signal.getsignal(signal.SIGTERM)(signal.SIGTERM, None)
        except KeyboardInterrupt:
            raise SystemExit(128 + signal.SIGTERM) from None

    monkeypatch.setattr(suite, "detector_scores", stopped_in_its_fit)
    callers = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as stopped:  # had: ended at once, no report
        main(["--suite", str(folder), "--seeds", "0", "--out", str(out)])
    assert stopped.value.code == 143 and "stopped by SIGTERM: wrote " in capsys.readouterr().out
    assert signal.getsignal(signal.SIGTERM) is callers  # given back
    assert "| 2_b | not run | not run |" in table  # the table not reached (had: left out of the report, and
    assert "| **mean** (1 of 2 tables) |" in table  # the means read as if over every table)


def test_a_suite_resumes_only_with_its_folders_tables_unchanged_and_out_must_name_files(tmp_path, capsys, monkeypatch):
    folder, other = tmp_path / "tables", tmp_path / "other"
    folder.mkdir()
    other.mkdir()
    rng = np.random.default_rng(0)
    tables = {name: (rng.normal(size=(60, 3)), np.r_[np.zeros(54), np.ones(6)]) for name in ("1_a", "2_b")}
    for name, (x, y) in tables.items():
        np.savez(folder / f"{name}.npz", X=x, y=y)
    np.savez(other / "1_a.npz", X=tables["1_a"][0], y=tables["1_a"][1])
    monkeypatch.setattr(suite, "detector_scores", lambda settings, x_train, x_test, seed, threads: x_test.sum(axis=1))
    out = tmp_path / "out"
    args = ["--suite", str(folder), "--seeds", "0", "--out", str(out)]
    main(args)
    rows = suite.read_rows(out.with_suffix(".csv"))
    assert {r["data"] for r in rows if r["table"] == "2_b"} == {
        suite.table_fingerprint(*suite.read_table(folder / "2_b.npz"))
    }
    assert {r["protocol"] for r in rows} == {"one-class"}
    with pytest.raises(ValueError, match=r"one-class protocol, not contaminated: resume it with --suite-protocol one"):
        main([*args, "--suite-protocol", "contaminated"])  # one file, one protocol: its means would mix them
    resolved = json.dumps(detector_module.DAGMMDetector().resolved_settings(), sort_keys=True)
    assert [r["resolved"] for r in rows] == [resolved if r["method"] == "dagmm_detector" else "" for r in rows]
    assert json.loads(resolved)["model"]["em_steps"] == 0  # each detector row: its settings, defaults filled in
    monkeypatch.setattr(detector_module, "SCORING_FIT_DEFAULTS", dict(em_steps=10, fit_rows=2**16))  # a new default
    with pytest.raises(
        ValueError,
        match=r"out.csv holds dagmm_detector rows trained with other defaults \(model.em_"
        r"steps 0 there, 10 now\): the same --detector settings give another detector now",
    ):
        main([*args[:3], "0,1", *args[4:]])  # had: resumed, seed 1 at the new default, the two means mixed
    assert len(suite.read_rows(out.with_suffix(".csv"))) == 10
    before = suite.SUITE_FIELDS[: suite.SUITE_FIELDS.index("data")]  # written before the hashes (and after)
    old = [{key: r[key] for key in before} for r in rows]
    with out.with_suffix(".csv").open("w", newline="") as file:
        csv.DictWriter(file, before).writeheader()
        csv.DictWriter(file, before).writerows(old)
    capsys.readouterr()
    main([*args[:3], "0,1", *args[4:]])  # resumed: seed 1 added, the columns too (old rows blank, unchecked)
    assert (
        "dagmm_detector rows of before the resolved column: their defaults are not checked" in capsys.readouterr().out
    )
    rows = suite.read_rows(out.with_suffix(".csv"))
    assert [bool(r["data"]) for r in rows] == [False] * 10 + [True] * 10 and rows[0]["roc_auc"] == old[0]["roc_auc"]
    assert [r["protocol"] for r in rows] == [""] * 10 + ["one-class"] * 10  # blank: written before, one-class
    assert json.loads(rows[10]["resolved"])["model"]["em_steps"] == 10 and not rows[0]["resolved"]
    with pytest.raises(ValueError, match=r"out.csv holds results of the one-class protocol, not contaminated"):
        main([*args, "--suite-protocol", "contaminated"])
    contaminated = tmp_path / "contaminated"
    main([*args[:4], "--out", str(contaminated), "--suite-protocol", "contaminated"])
    rows = suite.read_rows(contaminated.with_suffix(".csv"))
    assert len(rows) == 10 and {r["protocol"] for r in rows} == {"contaminated"}
    x_train, x_test, y_test = suite.contaminated_split(*suite.read_table(folder / "1_a.npz"), seed=0)
    expected = roc_auc_score(y_test, x_test.sum(axis=1))  # the stand-in detector's scores on that split's rows
    assert [float(r["roc_auc"]) for r in rows if r["method"] == "dagmm_detector"][0] == round(expected, 4)
    assert (
        contaminated.with_suffix(".md")
        .read_text()
        .startswith(
            "ROC AUC on the test rows (contaminated protocol: half of each table's anomalies trained among its rows), "
            "seed 0:"
        )
    )
    main([*args[:3], "0,1", "--out", str(contaminated), "--suite-protocol", "contaminated"])  # resumed: seed 1 added
    assert [r["protocol"] for r in suite.read_rows(contaminated.with_suffix(".csv"))] == ["contaminated"] * 20
    with pytest.raises(ValueError, match=r"contaminated protocol, not one-class: resume it with --suite-protocol cont"):
        main([*args[:4], "--out", str(contaminated)])  # the flag forgotten
    header_only = tmp_path / "header_only"  # a file of before the columns, no rows yet: its header rewritten
    header_only.with_suffix(".csv").write_text(",".join(before) + "\n")
    main([*args[:4], "--out", str(header_only), "--suite-protocol", "contaminated"])
    assert {r["protocol"] for r in suite.read_rows(header_only.with_suffix(".csv"))} == {"contaminated"}
    np.savez(folder / "2_b.npz", X=tables["2_b"][0], y=tables["2_b"][1][::-1])  # relabelled since
    with pytest.raises(ValueError, match=r"out.csv holds results of 2_b from other X or y than the folder's now"):
        main(args)  # had: resumed, nothing run, 2_b's old numbers kept
    with pytest.raises(ValueError, match=r"out.csv holds results of tables .*other lacks \(2_b\): another folder's"):
        main(["--suite", str(other), *args[2:]])  # had: 1_a and 2_b both in its report and mean
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["--suite", str(folder), "--out", f"{tmp_path / 'res'}/"])
    assert "res/: a folder; --out names results files to write" in capsys.readouterr().err
    assert not (tmp_path / "res.csv").exists()  # had: ran, then wrote res.csv beside the folder
    with pytest.raises(SystemExit):  # (/proc takes no file or folder of a user's, root's either)
        main(["--suite", str(folder), "--out", "/proc/dagmm_results/run"])
    said = capsys.readouterr().err  # had: found after the first run had trained, a traceback from append_rows
    assert "--out /proc/dagmm_results/run: cannot write /proc/dagmm_results/run.csv: No such file or dir" in said
    grid = ["--configs", str(ROOT / "configs/dagmm.yaml"), "--data", str(ROOT / "configs/data/arrhythmia.yaml")]
    with pytest.raises(SystemExit):
        main([*grid, "--seeds", "0", "--out", str(out)])
    assert "out.csv holds --suite results; give another --out" in capsys.readouterr().err  # had: KeyError
    monkeypatch.setattr(suite, "detector_scores", lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(SystemExit) as stopped:
        main(["--suite", str(folder), "--seeds", "0", "--out", str(tmp_path / "early")])
    assert stopped.value.code == 130 and "interrupted before a run ended: nothing written" in capsys.readouterr().out


def test_a_file_of_before_the_resolved_column_gains_it_and_differences_are_read_as_values(
    tmp_path, capsys, monkeypatch
):
    folder = tmp_path / "tables"
    folder.mkdir()
    rng = np.random.default_rng(0)
    np.savez(folder / "1_a.npz", X=rng.normal(size=(60, 3)), y=np.r_[np.zeros(54), np.ones(6)])
    monkeypatch.setattr(suite, "detector_scores", lambda settings, x_train, x_test, seed, threads: x_test.sum(axis=1))
    out = tmp_path / "out"
    main(["--suite", str(folder), "--seeds", "0", "--out", str(out)])
    rows = suite.read_rows(out.with_suffix(".csv"))
    fields = suite.SUITE_FIELDS[: suite.SUITE_FIELDS.index("resolved")]  # committed files of before it: no resolved
    with out.with_suffix(".csv").open("w", newline="") as file:
        csv.DictWriter(file, fields, extrasaction="ignore").writeheader()
        csv.DictWriter(file, fields, extrasaction="ignore").writerows(rows)
    capsys.readouterr()
    main(["--suite", str(folder), "--seeds", "0,1", "--out", str(out)])
    assert "rows of before the resolved column: their defaults are not checked" in capsys.readouterr().out
    assert [
        bool(r["resolved"]) for r in suite.read_rows(out.with_suffix(".csv")) if r["method"] == "dagmm_detector"
    ] == [False, True]
    changed, one_sided = changed_settings(
        {'{"model": {"lr": 1, "old": 2, "none": {}}}'}, '{"model": {"lr": 1.0, "new": 3}}'
    )
    assert changed == "" and one_sided == "model.new only now; model.old only there"  # 1 == 1.0: no change
    changed, _ = changed_settings({'{"a": 1}', '{"a": 2}'}, '{"a": 1}')
    assert changed == "a 2 there, 1 now"
    older = {'{"model": {"beta": 1.0}}'}  # a VAE's record of before calibrated_decoder: it trained uncalibrated
    assert changed_settings(older, '{"model": {"beta": 1.0, "calibrated_decoder": true}}')[0] == (
        "model.calibrated_decoder False there, True now"  # (had: only told, and the file's means mixed the two)
    )
    assert changed_settings(older, '{"model": {"beta": 1.0, "calibrated_decoder": false}}') == ("", "")
    assert changed_settings(older, '{"model": {"beta": 1.0, "continuous_latent": true}}')[0] == (
        "model.continuous_latent False there, True now"
    )


DEEP_VARIANT = """from torch import nn

from dagmm_lightning.models import DAGMM
from dagmm_lightning.networks import Compressed


class DeepAutoencoder(nn.Module):
    def __init__(self, features, hidden, latent):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(features, hidden), nn.Tanh(), nn.Linear(hidden, latent))
        self.decoder = nn.Sequential(nn.Linear(latent, hidden), nn.Tanh(), nn.Linear(hidden, features))

    def forward(self, x):
        z = self.encoder(x)
        return Compressed(z, self.decoder(z))


class DeepDAGMM(DAGMM):
    ensembles = False

    def build_compression(self):
        return DeepAutoencoder(self.hparams.input_dim, self.hparams.hidden_dims[0], self.hparams.latent_dim)
"""


def test_a_variant_of_ones_own_runs_by_its_dotted_path_and_its_code_is_fingerprinted(tmp_path, capsys, monkeypatch):
    # JSON settings carry no class: --detector '{"variant": "my.Class"}' had been refused (names only)
    import hashlib
    import importlib

    from dagmm_lightning.detector import DAGMMDetector

    (tmp_path / "suite_variants.py").write_text(DEEP_VARIANT)
    monkeypatch.syspath_prepend(str(tmp_path))
    folder = tmp_path / "tables"
    folder.mkdir()
    rng = np.random.default_rng(5)
    x = rng.normal(size=(200, 3))
    x[:15] += 3.0
    y = np.r_[np.ones(15, int), np.zeros(185, int)]
    np.savez(folder / "1_toy.npz", X=x, y=y)
    out = tmp_path / "suite"
    settings = '{"variant": "suite_variants.DeepDAGMM", "epochs": 2}'
    args = ["--suite", str(folder), "--seeds", "0", "--detector", settings, "--out", str(out)]
    main(args)
    (row,) = [r for r in suite.read_rows(out.with_suffix(".csv")) if r["method"] == "dagmm_detector"]
    assert row["status"] == "ok"
    x_train, x_test, y_test = suite.one_class_split(x, y, 0)
    deep = importlib.import_module("suite_variants").DeepDAGMM
    by_class = DAGMMDetector(variant=deep, epochs=2, random_state=0).fit(x_train)
    assert float(row["roc_auc"]) == round(roc_auc_score(y_test, by_class.decision_function(x_test)), 4)
    plain = DAGMMDetector(epochs=2, random_state=0).fit(x_train)  # (an ensemble of 5: another score)
    assert not np.allclose(plain.decision_function(x_test), by_class.decision_function(x_test))
    by_path = DAGMMDetector(variant="suite_variants.DeepDAGMM", epochs=2, random_state=0).fit(x_train)
    by_path.save(tmp_path / "deep.pt")  # (had: load's KeyError 'DeepDAGMM', the package's names only)
    loaded = DAGMMDetector.load(tmp_path / "deep.pt")
    assert type(loaded.model_) is deep and loaded.variant == "suite_variants.DeepDAGMM"
    np.testing.assert_array_equal(loaded.decision_function(x_test), by_class.decision_function(x_test))
    resolved = json.loads(row["resolved"])
    assert resolved["detector"]["variant"] == "suite_variants.DeepDAGMM"
    assert resolved["model_source"] == hashlib.sha256(DEEP_VARIANT.encode()).hexdigest()[:16]
    (tmp_path / "suite_variants.py").write_text(DEEP_VARIANT.replace("nn.Tanh()", "nn.ReLU()"))
    with pytest.raises(ValueError, match=r"holds dagmm_detector rows trained with other defaults \(model_source "):
        main([*args, "--seeds", "1"])  # (had: the old code's rows and the new code's in one mean)
    for path, why in (
        ("suite_variants.Wider", "suite_variants has no Wider"),
        ("no_such_module.DeepDAGMM", "ModuleNotFoundError: No module named 'no_such_module'"),
    ):
        detector = f'{{"variant": "{path}"}}'
        with pytest.raises(ValueError, match=re.escape(f"--detector: variant '{path}' does not import ({why})")):
            main([*args[:5], detector, "--out", str(tmp_path / "other")])
    with pytest.raises(ValueError, match="variant must be a name or a DAGMM subclass, got OrderedDict"):
        DAGMMDetector(variant="collections.OrderedDict").fit(x_train)
    for path, what in (("os.path", "module"), ("os.sep", "str")):
        with pytest.raises(ValueError, match=f"variant '{path}' names a {what}, not a DAGMM subclass"):
            DAGMMDetector(variant=path).fit(x_train)
