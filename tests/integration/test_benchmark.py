import csv
import itertools
import json
import logging
import os
import re
import signal
from concurrent.futures import Future, ProcessPoolExecutor

import numpy as np
import pytest
import torch

from dagmm_lightning.__main__ import main as dagmm_main
from dagmm_lightning.benchmark import runner
from dagmm_lightning.benchmark.report import read_rows, summarize, told_apart
from dagmm_lightning.benchmark.runner import main, parse_seeds, resolved_config

from ..conftest import ROOT

pytestmark = pytest.mark.slow


class InProcessPool:
    """Stands in for the runner's pool of spawned workers: the same jobs, run here one after another (a
    worker's interpreter start-up cost ~4 s a grid); what a job sets process-wide is put back."""

    def __init__(self, *args, **kwargs):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def shutdown(self, *args, **kwargs):
        pass

    def submit(self, fn, *args):
        future, threads, level = Future(), torch.get_num_threads(), logging.getLogger("lightning.pytorch").level
        try:
            future.set_result(fn(*args))
        except Exception as err:
            future.set_exception(err)
        finally:
            torch.set_num_threads(threads)
            logging.getLogger("lightning.pytorch").setLevel(level)
        return future


@pytest.fixture(autouse=True)
def jobs_in_this_process(monkeypatch):
    monkeypatch.setattr(runner, "ProcessPoolExecutor", InProcessPool)


def test_parse_seeds():
    assert parse_seeds("0-2") == [0, 1, 2]
    assert parse_seeds("0,3,5-6") == [0, 3, 5, 6]
    for text in ("0-2,2", "0..2", "0-"):
        with pytest.raises(ValueError, match="--seeds"):
            parse_seeds(text)
    with pytest.raises(ValueError, match=r"--seeds '3-1': a range goes from low to high \(1-3\)"):
        parse_seeds("3-1")
    with pytest.raises(ValueError, match=r"seeds are in \[0, 4294967295\]"):
        parse_seeds("4294967295-4294967296")
    with pytest.raises(ValueError, match=r"--seeds '0,-1': seeds are in \[0, 4294967295\]"):
        parse_seeds("0,-1")  # had: 'takes ranges and lists such as 0-4'


def test_files_that_are_not_results_and_an_out_that_cannot_be_written_stop_before_any_run(tmp_path, capsys):
    (tmp_path / "rows.csv").write_text("a,b\n1,2\n")
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "afile").write_text("x")
    (tmp_path / "grid.csv").mkdir()
    config = str(ROOT / "configs/quickstart.yaml")
    for args, message in [
        (["--report", str(tmp_path / "rows.csv")], "not a results file that --out wrote: .*rows.csv"),
        (["--matrix", str(tmp_path / "empty.csv"), "--out", str(tmp_path / "m")], "not a results file .*empty.csv"),
        (["--configs", config, "--out", str(tmp_path / "afile" / "grid")], "afile is a file; --out names results"),
        (["--configs", config, "--out", str(tmp_path / "grid")], "grid.csv is a folder; --out names results"),
    ]:
        with pytest.raises(SystemExit):
            main(args)
        assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "m.md").exists()
    results = tmp_path / "results.csv"
    results.write_text(",".join(["method", "dataset", "protocol", "seed"]) + "\n")
    main(["--matrix", str(results), "--out", str(tmp_path / "new" / "m")])  # its folder made
    assert (tmp_path / "new" / "m.md").is_file()


def test_modes_and_options_that_play_no_part_are_refused_before_any_run(tmp_path, capsys, monkeypatch):
    # (a user trial: each had been ignored without a word, or run twice and counted twice in the means)
    monkeypatch.chdir(ROOT)  # (--data thyroid: configs/data/thyroid.yaml is near it here)
    results = tmp_path / "results.csv"
    results.write_text(",".join(["method", "dataset", "protocol", "seed"]) + "\n")
    config, out = str(ROOT / "configs/quickstart.yaml"), str(tmp_path / "m")
    for args, message in [
        (["--matrix", str(results), "--configs", config, "--out", out], r"^--configs and --matrix: one at a time"),
        (["--report", str(results), "--matrix", str(results), "--out", out], r"^--report and --matrix: one at a"),
        (["--matrix", str(results), "--suite", str(tmp_path), "--out", out], r"^--suite and --matrix: one at a time"),
        (["--matrix", str(results), "--seeds", "0-9", "--baselines", "--out", out], r"^--baselines, --seeds: for "),
        (["--report", str(results), "--epochs", "3"], r"^--epochs: for --configs and --suite runs; --report reads"),
        (["--matrix", str(results), str(results), "--out", out], r"^--matrix: .*results.csv given twice$"),
        (["--configs", config, config, "--out", out], r"^--configs: .*quickstart.yaml given twice$"),
        (["--configs", config, "--val-every", "2", "--out", out], r"^--val-every: the epochs between validations"),
        (["--configs", config, "--data", "thyroid", "--out", out], r"thyroid \(did you mean configs/data/thyroid.yaml"),
        (["--configs", config, "--data", "kddcup99.yaml", "--out", out], r"\(did you mean configs/data/kddcup99.yaml"),
    ]:
        with pytest.raises(SystemExit):
            main(args)
        err = next(line for line in capsys.readouterr().err.splitlines() if "error: " in line)
        assert re.search(message, err.split("error: ", 1)[1]), err
    assert not list(tmp_path.glob("m*"))
    grid = tmp_path / "grid"
    main([*quick_run(grid), "--protocol", "reimplementation"])
    with pytest.raises(ValueError, match=r"holds breast_cancer runs of the reimplementation protocol; its runs of"):
        main(quick_run(grid))  # (had: added, and --matrix then refused the file)
    main([*quick_run(grid), "--set", "data.dataset=thyroid", "--epochs", "1"])  # another data set: its own protocol
    assert {(r["dataset"], r["protocol"]) for r in read_rows(grid.with_suffix(".csv"))} == {
        ("breast_cancer", "reimplementation"),
        ("thyroid", "paper"),
    }


def test_a_wrong_detector_setting_stops_the_suite_before_any_row(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "suite").mkdir()
    np.savez(tmp_path / "suite" / "t.npz", X=rng.normal(size=(60, 3)), y=np.r_[np.zeros(54), np.ones(6)])
    with pytest.raises(ValueError, match="^--detector: epochs must be an integer >= 1"):  # had: not named
        main(["--suite", str(tmp_path / "suite"), "--detector", '{"epochs": 0}', "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out.csv").exists()


def test_runner_writes_csv_table_figure_and_resumes(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(runner, "ProcessPoolExecutor", ProcessPoolExecutor)  # the spawned workers, here
    out = tmp_path / "grid"
    args = [
        "--configs",
        str(ROOT / "configs/quickstart.yaml"),
        str(ROOT / "configs/vae.yaml"),
        "--seeds",
        "0-1",
        "--epochs",
        "2",
        "--baselines",
        "--out",
        str(out),
        "--set",
        "data.dataset=breast_cancer",
    ]
    main(args)
    with out.with_suffix(".csv").open() as f:
        rows = list(csv.DictReader(f))
    methods = sorted(r["method"] for r in rows)
    # 2 configs x 2 seeds, plus IsolationForest and GaussianMixture once per seed
    assert methods == sorted(["quickstart"] * 2 + ["vae"] * 2 + ["isolation_forest"] * 2 + ["gaussian_mixture"] * 2)
    assert all(r["status"] == "ok" and 0.0 <= float(r["f1_rho"]) <= 1.0 for r in rows)
    table = out.with_suffix(".md").read_text()
    assert "| breast_cancer | paper | vae | 2 |" in table and "isolation_forest" in table
    assert out.with_suffix(".png").stat().st_size > 1000
    capsys.readouterr()
    main(args)  # started again: nothing to redo
    assert "0 runs to do, 4 already in" in capsys.readouterr().out
    with out.with_suffix(".csv").open() as f:
        assert len(list(csv.DictReader(f))) == len(rows)


def test_baselines_run_on_the_data_set_of_every_config_that_brings_its_own(tmp_path):
    quickstart = (ROOT / "configs/quickstart.yaml").read_text()
    for name in ("cancer", "cancer_again"):
        (tmp_path / f"{name}.yaml").write_text(quickstart)
    (tmp_path / "thyroid.yaml").write_text(quickstart.replace("dataset: breast_cancer", "dataset: thyroid"))
    configs = [str(tmp_path / f"{name}.yaml") for name in ("cancer", "cancer_again", "thyroid")]
    main(["--configs", *configs, "--seeds", "0", "--epochs", "1", "--baselines", "--out", str(tmp_path / "grid")])
    with (tmp_path / "grid.csv").open() as f:
        rows = list(csv.DictReader(f))
    baselines = sorted(r["dataset"] for r in rows if r["method"] == "isolation_forest")
    assert baselines == ["breast_cancer", "thyroid"]  # once per data set and seed
    from dagmm_lightning.benchmark.runner import own_data

    # a config's data set as the CLI reads it: through the config it includes (vae.yaml: paper/kddcup99.yaml's)
    kdd = own_data(ROOT / "configs/dagmm.yaml", [])
    assert own_data(ROOT / "configs/vae.yaml", []) == kdd and "kddcup99" in kdd
    assert own_data(ROOT / "configs/vae.yaml", ["--data.dataset", "thyroid"]) == own_data(tmp_path / "thyroid.yaml", [])


def test_summary_mean_and_std_over_seeds():
    rows = [
        {
            "dataset": "d",
            "protocol": "paper",
            "method": "m",
            "epochs": "5",
            "status": "ok",
            "precision_rho": p,
            "recall_rho": p,
            "f1_rho": p,
            "roc_auc": "0.9",
        }
        for p in ("0.5", "0.7")
    ]
    line = summarize(rows).splitlines()[2]
    assert "0.6000 ± 0.1414" in line and "| 2 |" in line


def test_summary_means_do_not_depend_on_the_order_of_the_rows():
    # a grid's jobs write rows as they finish; numpy's sum of these four F1 values rounds to 0.7871 in some
    # orders and 0.7872 in others (their exact mean is 0.787150)
    values = ["0.7718", "0.9675", "0.9079", "0.5014"]
    lines = {
        summarize([_row("m", "d", seed, values[seed]) for seed in order]).splitlines()[2]
        for order in itertools.permutations(range(4))
    }
    assert len(lines) == 1 and "| 0.7872 ± " in lines.pop()


def test_bad_set_argument():
    with pytest.raises(SystemExit):
        main(["--configs", "x.yaml", "--out", "o", "--set", "novalue"])


def test_baselines_train_on_the_normal_only_split_whichever_config_comes_first(tmp_path):
    # (a researcher's trial: with configs/pu.yaml listed first, the baselines had trained on the PU split's rows,
    # unlabelled anomalies among them: Thyroid's IsolationForest F1 0.508 against 0.725, under the same name)
    from sklearn.ensemble import IsolationForest
    from sklearn.metrics import roc_auc_score

    from dagmm_lightning.data.datamodule import AnomalyDataModule

    pu, quickstart = str(ROOT / "configs/pu.yaml"), str(ROOT / "configs/quickstart.yaml")
    common = ["--seeds", "0", "--epochs", "1", "--baselines", "--set", "data.dataset=breast_cancer"]
    forests = []
    for order in ((pu, quickstart), (quickstart, pu)):
        out = tmp_path / order[0].rsplit("/", 1)[-1].removesuffix(".yaml")
        main(["--configs", *order, *common, "--out", str(out)])
        with out.with_suffix(".csv").open() as f:
            rows = [r for r in csv.DictReader(f) if r["method"] == "isolation_forest"]
        assert len(rows) == 1
        forests.append(float(rows[0]["roc_auc"]))
    data = AnomalyDataModule(dataset="breast_cancer", protocol="paper", seed=0)
    data.setup("fit")
    (train, _), (test, labels) = data.arrays("train"), data.arrays("test")
    forest = IsolationForest(random_state=0, n_jobs=1).fit(train)
    expected = roc_auc_score(labels, -forest.score_samples(test))
    assert forests == pytest.approx([expected, expected], abs=1e-4)


def test_a_pu_run_whose_c_half_rule_flags_no_anomaly_says_so(tmp_path, capsys):
    # (a researcher's trial: a one-epoch pu run in a grid ranked rows backwards, F1 0, without a word; dagmm fit's
    # summary says 'c/2 flags 0 ... train longer', the grid had not)
    out = tmp_path / "pu"
    args = ["--configs", str(ROOT / "configs/pu.yaml"), "--set", "data.dataset=breast_cancer"]
    main([*args, "--seeds", "0", "--epochs", "1", "--out", str(out)])
    with out.with_suffix(".csv").open() as f:
        (row,) = list(csv.DictReader(f))
    assert float(row["recall_threshold"]) == 0.0 and float(row["f1_threshold"]) == 0.0
    expected = f"pu seed 0: c/2 flags no anomaly among the test rows (c {float(row['c']):.4f}): the classifier"
    assert expected in capsys.readouterr().out


def test_a_grid_workers_warnings_read_as_the_commands_own():
    # (a README check: in dagmm benchmark they printed in Python's format, from concurrent/futures/process.py)
    import subprocess
    import sys

    code = (
        "import warnings\n"
        "from dagmm_lightning.benchmark.runner import _start_worker\n"
        "from dagmm_lightning.errors import DAGMMWarning\n"
        "_start_worker()\n"
        "warnings.warn('a table note', DAGMMWarning)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert done.stderr == "dagmm: warning: a table note\n"


def test_select_on_and_recon_inference_with_the_pu_split(tmp_path, capfd):
    out = tmp_path / "selected"
    args = [
        "--configs",
        str(ROOT / "configs/quickstart.yaml"),
        str(ROOT / "configs/pu.yaml"),
        "--seeds",
        "0",
        "--epochs",
        "4",
        "--select-on",
        "f1_rho",
        "--val-every",
        "2",
        "--recon-inference",
        "--out",
        str(out),
        "--set",
        "data.dataset=breast_cancer",
    ]
    main(args)
    with out.with_suffix(".csv").open() as f:
        rows = {r["method"]: r for r in csv.DictReader(f)}
    # the energy+reconstruction rescoring applies to energy-scored models only, not to PU's 1 - h
    assert sorted(rows) == ["pu", "quickstart", "quickstart+recon_inference"]
    assert rows["quickstart"]["status"] == "ok" and rows["quickstart"]["selected_epoch"] in ("2", "4")
    # PU validates on labelled normal rows only: nothing to select on, so the last epoch is tested
    assert rows["pu"]["status"] == "ok" and rows["pu"]["selected_epoch"] == ""
    assert 0.0 <= float(rows["pu"]["roc_auc"]) <= 1.0
    assert "--select-on ignored" in capfd.readouterr().out  # printed by the run's own process
    main(args)  # resumed: PU's selection, turned off in the run, is the one asked for in the settings
    assert "0 runs to do, 2 already in" in capfd.readouterr().out


def _write(path, rows):
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _row(method, dataset, seed, f1, epochs="10", selected=""):
    return {
        "method": method,
        "dataset": dataset,
        "protocol": "paper",
        "seed": seed,
        "epochs": epochs,
        "selected_epoch": selected,
        "status": "ok",
        "f1_rho": f1,
    }


def test_matrix_of_methods_by_data_sets_from_several_results_files(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    _write(
        a,
        [
            _row("dagmm", "thyroid", 0, "0.2"),
            _row("dagmm", "thyroid", 1, "0.4"),
            _row("isolation_forest", "thyroid", 0, "0.7", epochs="0"),
            _row("isolation_forest", "thyroid", 1, "0.9", epochs="0"),
        ],
    )
    pu = {**_row("pu", "kddcup99", 0, "0.85"), "c": "0.4", "f1_threshold": "0.7"}
    _write(
        b,
        [
            {**_row("dagmm", "kddcup99", 0, "0.95", selected="5"), "c": "", "f1_threshold": "0.5"},
            {**_row("vae", "kddcup99", 0, "0.90", selected="7"), "c": "", "f1_threshold": ""},
            pu,
        ],
    )
    out = tmp_path / "summary"
    main(["--matrix", str(a), str(b), "--out", str(out)])
    lines = out.with_suffix(".md").read_text().splitlines()
    assert lines[0] == "| method | kddcup99 | thyroid |"  # the paper's data set order
    assert lines[2] == "| DAGMM, the paper | 0.937 | 0.478 |"
    # mean ± sample std over seeds (one seed: its value alone); the best of each column in bold; blank where
    # a method has no runs
    assert "| dagmm | **0.950** | 0.300 ± 0.141 |" in lines
    assert "| isolation_forest |  | **0.800 ± 0.141** |" in lines
    assert "| vae | 0.900 |  |" in lines
    assert "| pu | 0.850 |  |" in lines and "| pu (c/2 rule) | 0.700 |  |" in lines
    text = "\n".join(lines)
    assert f"`{a}`: thyroid; paper protocol; 10 epochs, last epoch" in text
    assert f"`{b}`: kddcup99; paper protocol; 10 epochs, checkpoint chosen on validation" in text
    assert "different seeds" not in text
    # seeds added to one method only (a grid rerun without --baselines): said under the table (had: unsaid)
    _write(b, [_row("dagmm", "thyroid", s, "0.5") for s in (2, 3, 5)])
    main(["--matrix", str(a), str(b), "--out", str(out)])
    assert "| dagmm | 0.420 ± 0.130 |" in out.with_suffix(".md").read_text().splitlines()
    assert (
        out.with_suffix(".md")
        .read_text()
        .endswith(
            "- thyroid: the methods ran on different seeds, so their means average other splits (dagmm seeds 0-3, 5; "
            "isolation_forest seeds 0-1)\n"
        )
    )
    _write(b, [_row("dagmm", "thyroid", 1, "0.5")])  # the same run in two files
    with pytest.raises(ValueError, match=r"dagmm on thyroid \(paper protocol\) seed 1 is in both"):
        main(["--matrix", str(a), str(b), "--out", str(out)])
    # the baselines of two grids on one data set and seed (each run with --baselines): the same rows, kept once
    # (a researcher's trial: refused as 'in both', the README's grids-then-matrix way blocked)
    _write(b, [_row("dagmm", "kddcup99", 0, "0.9"), _row("isolation_forest", "thyroid", 1, "0.9", epochs="0")])
    main(["--matrix", str(a), str(b), "--out", str(out)])
    assert "| isolation_forest |  | **0.800 ± 0.141** |" in out.with_suffix(".md").read_text().splitlines()
    _write(b, [_row("isolation_forest", "thyroid", 1, "0.9", epochs="0")] * 2)  # twice in one file: refused
    with pytest.raises(ValueError, match=r"isolation_forest on thyroid \(paper protocol\) seed 1 is twice in"):
        main(["--matrix", str(b), "--out", str(out)])
    _write(b, [_row("isolation_forest", "thyroid", 1, "0.6", epochs="0")])  # other results under one name
    with pytest.raises(
        ValueError, match=r"isolation_forest on thyroid \(paper protocol\) seed 1 is in both .*, with other"
    ):
        main(["--matrix", str(a), str(b), "--out", str(out)])
    _write(b, [_row("dagmm", "kddcup99", 1, "0.5"), _row("dagmm", "kddcup99", 1, "0.5")])  # twice in one file
    with pytest.raises(ValueError, match=r"dagmm on kddcup99 \(paper protocol\) seed 1 is twice in"):
        main(["--matrix", str(a), str(b), "--out", str(out)])
    with pytest.raises(SystemExit) as exit_info:  # had: a traceback
        dagmm_main(["benchmark", "--matrix", str(a), str(b), "--out", str(out)])
    assert exit_info.value.code == 2
    _write(b, [{**_row("dagmm", "thyroid", 2, "0.5"), "protocol": "reimplementation"}])  # had: averaged together
    with pytest.raises(ValueError, match="thyroid has runs of the paper and the reimplementation protocol"):
        main(["--matrix", str(a), str(b), "--out", str(out)])


def quick_run(out, *extra):
    """Arguments of a one-epoch, one-seed benchmark of the quickstart config on the embedded table."""
    config = str(ROOT / "configs/quickstart.yaml")
    return [
        "--configs",
        config,
        "--seeds",
        "0",
        "--epochs",
        "1",
        *extra,
        "--out",
        str(out),
        "--set",
        "data.dataset=breast_cancer",
    ]


def test_tagged_grids_share_one_csv(tmp_path, capsys):
    out = tmp_path / "sweep"
    common = quick_run(out, "--baselines")
    main(common + ["--tag", " c=0"])
    main(common + ["--tag", " c=0.05", "--set", "data.train_contamination=0.05"])
    with out.with_suffix(".csv").open() as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["method"] for r in rows) == sorted(
        f"{m}{t}" for m in ("quickstart", "isolation_forest", "gaussian_mixture") for t in (" c=0", " c=0.05")
    )
    capsys.readouterr()
    main(common + ["--tag", " c=0.05", "--set", "data.train_contamination=0.05"])
    assert "0 runs to do, 1 already in" in capsys.readouterr().out


def test_a_resumed_grid_must_match_its_settings_and_gains_baselines_added_later(tmp_path, capsys):
    out = tmp_path / "grid"
    main(quick_run(out))
    main(quick_run(out, "--baselines"))  # the baseline rows join; the trained run is not repeated
    with out.with_suffix(".csv").open() as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["method"] for r in rows) == ["gaussian_mixture", "isolation_forest", "quickstart"]
    assert len({r["settings"] for r in rows}) == 1 and '"epochs": 1' in rows[0]["settings"]
    other = tmp_path / "other.yaml"  # a second method on the same data set, seed and protocol
    other.write_text((ROOT / "configs/quickstart.yaml").read_text())
    main([*quick_run(out, "--baselines"), "--configs", str(other)])  # had: the baselines run and stored again
    with out.with_suffix(".csv").open() as f:
        methods = sorted(r["method"] for r in csv.DictReader(f))
    assert methods == ["gaussian_mixture", "isolation_forest", "other", "quickstart"]
    other.unlink()  # an earlier row's config since removed: its rows still resume (had: exit on the file)
    capsys.readouterr()
    main(quick_run(out, "--baselines"))
    assert "0 runs to do, 1 already in" in capsys.readouterr().out
    with pytest.raises(ValueError, match="quickstart seed 0 run without --recon-inference .* cannot be added"):
        main(quick_run(out, "--recon-inference"))  # had: skipped, no recon row and no word of it
    with pytest.raises(ValueError, match=r"quickstart seed 0 run with other settings \(\{\"epochs\": 1"):
        main([*quick_run(out), "--epochs", "2"])
    with pytest.raises(ValueError, match=r"quickstart seed 0 run with other settings \(.*now .*lr=0.01"):
        main(quick_run(out, "--set", "model.init_args.lr=0.01"))
    with pytest.raises(ValueError, match=r"quickstart seed 0 run with other settings \(.*now .*lr=0.01"):
        main([*quick_run(out)[:3], "1", *quick_run(out, "--set", "model.init_args.lr=0.01")[4:]])  # had: seed 1 ran
    swapped = tmp_path / "swapped"
    main(quick_run(swapped, "--set", "model.init_args.lr=0.01", "--set", "data.batch_size=32"))
    main(quick_run(swapped, "--set", "data.batch_size=32", "--set", "model.init_args.lr=0.01"))  # the same runs
    assert "0 runs to do, 1 already in" in capsys.readouterr().out
    for wrong, message in [
        (["--set", "data.protocol=reimplementation"], "use --protocol"),
        (["--epochs", "0"], "--epochs must be at least 1"),
        (["--configs", str(ROOT / "configs/data/thyroid.yaml")], "sets no model class nor training"),
        (["--data", str(ROOT / "configs/vae.yaml")], "sets a model class or includes a config (a method)"),
    ]:
        with pytest.raises(SystemExit):
            main([*quick_run(out), *wrong])
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--report", str(out.with_suffix(".md"))])
    assert "not " + str(out.with_suffix(".md")) in capsys.readouterr().err


def test_a_bad_set_value_is_one_line_before_any_run(tmp_path, capfd, monkeypatch):
    # had: the model's range check failed in the spawned worker (a long remote traceback), and a misspelled
    # key was said twice, after "1 run to do", pointing at 'dagmm --help' (which lists no options)
    monkeypatch.setattr(runner, "ProcessPoolExecutor", ProcessPoolExecutor)  # as the command runs it
    for setting, message in [
        ("model.init_args.lr=-1", "dagmm: error: lr must be in (0, inf), got -1.0\n"),
        (
            "model.init_args.latnt_dim=2",
            "latent_dim?)\n  ('dagmm fit --help' lists the options; 'dagmm fit --model.help DAGMM' a model's)\n",
        ),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            dagmm_main(["benchmark", *quick_run(tmp_path / "grid", "--set", setting)])
        captured = capfd.readouterr()
        assert exit_info.value.code == 2 and captured.err.endswith(message) and captured.err.count("error") == 1
        assert captured.out == "" and not list(tmp_path.iterdir())


def test_select_on_without_a_validation_tests_the_last_epoch(tmp_path, capfd):
    out = tmp_path / "short"
    main(quick_run(out, "--select-on", "f1_rho", "--val-every", "5"))
    with out.with_suffix(".csv").open() as f:
        (row,) = list(csv.DictReader(f))
    assert row["status"] == "ok" and row["selected_epoch"] == ""
    printed = capfd.readouterr().out
    assert "no validation before the last epoch" in printed
    assert "[1/1] quickstart seed 0: F1@rho " in printed  # a config alone (had: 'quickstart  seed 0')


def test_select_on_a_config_that_validates_every_thousand_steps_validates_at_the_epochs_ends(tmp_path):
    # improved.yaml's val_check_interval 1000 had stayed beside --val-every: Lightning refused it on a table of
    # fewer batches an epoch, a traceback after the grid's other runs
    out = tmp_path / "improved"
    args = ["--configs", str(ROOT / "configs/improved.yaml"), "--seeds", "0", "--epochs", "2", "--out", str(out)]
    main([*args, "--set", "data.dataset=breast_cancer", "--select-on", "roc_auc", "--val-every", "1"])
    with out.with_suffix(".csv").open() as f:
        (row,) = list(csv.DictReader(f))
    assert row["status"] == "ok" and row["selected_epoch"] in ("1", "2")


def test_reports_of_missing_results_files_are_refused(tmp_path):
    with pytest.raises(SystemExit):
        main(["--matrix", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "summary")])
    with pytest.raises(SystemExit):
        main(["--report", str(tmp_path / "nope.csv")])
    assert not list(tmp_path.iterdir())


def test_a_failing_baseline_is_a_row_not_the_end_of_the_grid(monkeypatch):
    from sklearn.mixture import GaussianMixture

    from dagmm_lightning.benchmark.runner import run_baselines
    from dagmm_lightning.data import AnomalyDataModule

    def collapse(self, x, y=None):
        raise ValueError("Fitting the mixture model failed because some components have ill-defined covariance")

    monkeypatch.setattr(GaussianMixture, "fit", collapse)
    dm = AnomalyDataModule(dataset="breast_cancer", seed=0)
    dm.setup("fit")
    rows = {r["method"]: r for r in run_baselines(dm, 0, 4, {"dataset": "breast_cancer", "seed": 0})}
    assert rows["gaussian_mixture"]["status"].startswith("failed: Fitting the mixture model failed")
    assert "f1_rho" not in rows["gaussian_mixture"]
    assert rows["isolation_forest"]["status"] == "ok" and 0.0 <= rows["isolation_forest"]["f1_rho"] <= 1.0


def test_a_dot_in_out_is_part_of_the_name():
    # had: --out res/lr0.01 wrote res/lr0.csv, and a sweep's --out res/lr0.02 resumed from it
    assert str(runner.out_path("res/lr0.01", ".csv")) == "res/lr0.01.csv"
    assert str(runner.out_path("res/lr0.02", ".md")) == "res/lr0.02.md"
    assert str(runner.out_path("res/grid.csv", ".md")) == "res/grid.md"  # a results suffix given: replaced
    assert str(runner.out_path("grid", ".png")) == "grid.png"


def test_an_interrupted_grid_stops_its_workers_reports_its_rows_and_exits_130(tmp_path, capsys, monkeypatch):
    # had: a KeyboardInterrupt traceback from as_completed, no report, and a wait on (or a hang in) the workers
    workers = []

    class RecordedPool(ProcessPoolExecutor):  # the command's pool, its worker processes noted
        def submit(self, *args):
            future = super().submit(*args)
            workers.extend(p for p in self._processes.values() if p not in workers)
            return future

    def first_then_interrupt(futures, as_completed=runner.as_completed):
        yield next(iter(as_completed(futures)))
        assert any(p.is_alive() for p in workers)  # a run under way
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "ProcessPoolExecutor", RecordedPool)
    monkeypatch.setattr(runner, "as_completed", first_then_interrupt)
    out, caller_handler = tmp_path / "grid", signal.getsignal(signal.SIGINT)
    with pytest.raises(SystemExit) as exit_info:
        main([*quick_run(out, "--jobs", "1"), "--seeds", "0-2"])
    assert exit_info.value.code == 130
    assert (
        f"interrupted: wrote {out}.md and {out}.png of the runs so far; the command resumes" in capsys.readouterr().out
    )
    assert len(runner.read_rows(out.with_suffix(".csv"))) == 1 and out.with_suffix(".md").is_file()
    assert workers and all(p.exitcode == -signal.SIGKILL for p in workers)  # killed, not waited for (SIGTERM: a
    # worker within trainer.fit stops after the batch, then runs the run queued for it)
    assert signal.getsignal(signal.SIGINT) is caller_handler  # the caller's Ctrl-C handling, given back


def test_a_grid_stopped_by_sigterm_stops_its_workers_and_exits_143(tmp_path):
    # had: the command died at once (exit 143 without a word), its worker trained on, orphaned
    import subprocess
    import sys
    import time
    from contextlib import suppress

    out = tmp_path / "grid"
    command = [sys.executable, "-m", "dagmm_lightning", "benchmark", *quick_run(out, "--epochs", "100000")]
    grid = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        deadline, workers = time.monotonic() + 60, []
        while not workers and time.monotonic() < deadline:  # a run under way in the pool's worker
            listed = subprocess.run(
                ["ps", "-ww", "-o", "pid=,args=", "--ppid", str(grid.pid)], capture_output=True, text=True
            )
            workers = [int(line.split()[0]) for line in listed.stdout.splitlines() if "spawn_main" in line]
            time.sleep(0.5)
        assert workers, "no worker started"
        time.sleep(3)  # (into its training)
        os.kill(grid.pid, signal.SIGTERM)  # to the command alone, as a scheduler may
        said, _ = grid.communicate(timeout=60)
    finally:
        with suppress(ProcessLookupError):
            os.killpg(grid.pid, signal.SIGKILL)
    assert grid.returncode == 128 + signal.SIGTERM, said[-2000:]
    assert "stopped by SIGTERM before a run ended: nothing written; the command starts again" in said
    left = subprocess.run(["ps", "-o", "pid=,stat=", "-p", ",".join(map(str, workers))], capture_output=True, text=True)
    assert [line for line in left.stdout.splitlines() if not line.split()[1].startswith("Z")] == []


def test_sigterm_outside_the_runs_ends_the_benchmark_with_143(monkeypatch, capsys):
    import time

    def setting_up(argv):  # e.g. while the configs are parsed, before any run
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)

    monkeypatch.setattr(runner, "_main", setting_up)
    callers = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as stopped:
        main([])
    assert stopped.value.code == 143  # had: KeyboardInterrupt's 130 and "dagmm: interrupted"
    assert capsys.readouterr().err == "dagmm: stopped by SIGTERM\n" and signal.getsignal(signal.SIGTERM) is callers


def test_own_tables_are_told_apart_by_their_file_names(tmp_path, capfd):
    # had: every own table recorded as data set 'table': two tables' runs averaged as one, --matrix refused
    rng = np.random.default_rng(0)
    configs = []
    for name, anomalies in (("blobs", 8), ("digits", 10)):  # 4 % and 5 % anomalies; quickstart.yaml's 0.1
        x = np.r_[rng.normal(size=(200 - anomalies, 4)), rng.normal(4, 1, size=(anomalies, 4))]
        np.savez(tmp_path / f"{name}.npz", X=x, y=np.r_[np.zeros(200 - anomalies), np.ones(anomalies)])
        config = tmp_path / f"data_{name}.yaml"
        config.write_text(f"data:\n  dataset: table\n  path: {tmp_path / name}.npz\n")
        configs.append(str(config))
    out = tmp_path / "own"
    main(
        ["--configs", str(ROOT / "configs/quickstart.yaml"), "--data", *configs, "--seeds", "0", "--epochs", "1"]
        + ["--out", str(out)]
    )
    rows = runner.read_rows(out.with_suffix(".csv"))
    assert sorted(r["dataset"] for r in rows) == ["table:blobs", "table:digits"]  # (not thyroid, for thyroid.npz)
    printed = capfd.readouterr().out  # (the runs' workers print it) as dagmm fit warns of it; had: silent
    told = "quickstart seed 0: contamination 0.1, but the labels mark 4 % of the rows as anomalies: the threshold"
    assert told in printed and "--set model.init_args.contamination=null takes the labels' share" in printed
    assert printed.count("but the labels mark") == 1  # digits' 5 % is within a factor of two of 0.1
    main(["--matrix", str(out.with_suffix(".csv")), "--out", str(tmp_path / "matrix")])
    assert "| method | table:blobs | table:digits |" in (tmp_path / "matrix.md").read_text()


def test_recon_inference_rows_of_a_contamination_from_the_labels_have_a_threshold(tmp_path):
    out = tmp_path / "labels_share"
    main(quick_run(out, "--recon-inference", "--set", "model.init_args.contamination=null"))
    with out.with_suffix(".csv").open() as f:
        rows = {r["method"]: r for r in csv.DictReader(f)}
    recon = rows["quickstart+recon_inference"]  # had: the quantile of None (a TypeError, or NaN where skipped)
    assert recon["status"] == "ok" and np.isfinite(float(recon["f1_threshold"]))
    energy = rows["quickstart"]  # the same weights, scored by their energy: a fit logs it as val/roc_auc_energy
    assert energy["roc_auc_energy"] == "" and recon["roc_auc_energy"] == energy["roc_auc"]  # (had: blank)


def test_a_grid_resumes_only_at_the_settings_its_configs_resolved_to(tmp_path, capsys):
    config = tmp_path / "mine.yaml"  # the same file name, its content edited between two runs of the grid
    config.write_text((ROOT / "configs/quickstart.yaml").read_text())
    out = tmp_path / "grid"
    args = [*quick_run(out)[:1], str(config), *quick_run(out)[2:]]
    main(args)
    rows = read_rows(out.with_suffix(".csv"))
    resolved = json.loads(rows[0]["resolved"])  # the model's arguments, defaults filled in, and the rest
    assert resolved["model"]["init_args"]["lr"] == 0.001 and resolved["model"]["init_args"]["jitter"] == 1e-6
    assert resolved["trainer"]["max_epochs"] == 1 and resolved["data"]["dataset"] == "breast_cancer"
    config.write_text(config.read_text().replace("lr: 0.001", "lr: 0.002"))
    for seeds in ("0", "1"):  # the same seed (had: 0 runs to do, the old row kept), or a new one (had: ran beside it)
        with pytest.raises(
            ValueError,
            match=r"mine runs whose configs resolved to other settings than now, the configs', the defaults' or "
            r"what this version of dagmm benchmark sets \(or, model_source, a variant's code\) "
            r"\(model.init_args.lr 0.001 there, 0.002 now\)",
        ):
            main([*args[:3], seeds, *args[4:]])
    config.write_text(config.read_text().replace("lr: 0.002", "lr: 0.001"))
    header = list(rows[0])[:-1]  # a file of before the column: resumed, unchecked (said so), the column added
    with out.with_suffix(".csv").open("w", newline="") as file:
        csv.DictWriter(file, header, extrasaction="ignore").writeheader()
        csv.DictWriter(file, header, extrasaction="ignore").writerows(rows)
    capsys.readouterr()
    main([*args[:3], "0,1", *args[4:]])
    assert (
        "holds runs of before the resolved column: their configs' settings are not checked" in capsys.readouterr().out
    )
    rows = read_rows(out.with_suffix(".csv"))
    assert [bool(r["resolved"]) for r in rows] == [False, True] and rows[1]["resolved"] == json.dumps(
        resolved, sort_keys=True
    )


def test_configs_of_one_file_name_on_one_data_set_are_not_added_to_one_method(tmp_path, capsys):
    moved = tmp_path / "moved" / "quickstart.yaml"  # the same file name elsewhere (a config moved, or a copy)
    moved.parent.mkdir()
    moved.write_text((ROOT / "configs/quickstart.yaml").read_text())
    out = tmp_path / "grid"
    main(quick_run(out, "--baselines"))
    # had: trained and added, and the report averaged both as one "quickstart" with 2 seeds of seed 0
    with pytest.raises(
        ValueError,
        match=r"grid.csv holds quickstart runs on breast_cancer of .*configs/quickstart.yaml, and this grid's "
        r"quickstart is .*moved/quickstart.yaml: a report would average them",
    ):
        main([*quick_run(out)[:1], str(moved), *quick_run(out)[2:]])
    with pytest.raises(ValueError, match=r"this grid runs quickstart on breast_cancer twice \(.*configs/quicks"):
        main([*quick_run(tmp_path / "two")[:2], str(moved), *quick_run(tmp_path / "two")[2:]])
    assert not (tmp_path / "two.csv").exists()  # refused before any run
    rows = read_rows(out.with_suffix(".csv"))
    _write(out.with_suffix(".csv"), [{**r, "configs": os.path.relpath(r["configs"])} for r in rows])
    with pytest.raises(ValueError, match=r"grid.csv names these configs .*configs/quickstart.yaml: give them so"):
        main(quick_run(out))  # the same file named otherwise (had: its runs made again, beside the old)
    _write(out.with_suffix(".csv"), rows)
    main([*quick_run(out)[:1], str(moved), *quick_run(out)[2:], "--tag", " moved"])  # a tag tells them apart
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "blobs.npz", X=rng.normal(size=(100, 4)), y=np.r_[np.zeros(90), np.ones(10)])
    table = ["data.dataset=table", "--set", f"data.path={tmp_path / 'blobs.npz'}"]
    main([*quick_run(out)[:1], str(moved), *quick_run(out)[2:-1], *table])  # another data set: another line
    methods = [(r["method"], r["dataset"]) for r in read_rows(out.with_suffix(".csv")) if r["epochs"] != "0"]
    assert sorted(methods) == [
        ("quickstart", "breast_cancer"),
        ("quickstart", "table:blobs"),
        ("quickstart moved", "breast_cancer"),
    ]
    np.savez(tmp_path / "blobs.npz", X=rng.normal(size=(80, 4)), y=np.r_[np.zeros(72), np.ones(8)])  # rows changed
    seed_1 = [*quick_run(out)[:1], str(moved), *quick_run(out)[2:-1], *table]
    seed_1[seed_1.index("--seeds") + 1] = "1"
    changed = rf"grid.csv holds runs of {tmp_path / 'blobs.npz'} as it was then \(quickstart seed 0\): the file has"
    with pytest.raises(ValueError, match=changed):  # had: run, and averaged with the seed 0 run of the file as it was
        main(seed_1)
    with pytest.raises(ValueError, match=changed):  # another method: reported beside the old file's runs
        main([*seed_1, "--tag", " new"])


def test_a_report_tells_apart_the_runs_one_method_name_holds_of_several_configs_or_settings():
    rows = [
        {**_row("dagmm", "thyroid", 0, "0.5"), "configs": "configs/dagmm.yaml configs/data/thyroid.yaml"},
        {**_row("dagmm", "thyroid", 1, "0.7"), "configs": "configs/dagmm.yaml configs/data/thyroid.yaml"},
        {
            **_row("dagmm", "thyroid", 0, "0.9", epochs="500"),
            "configs": "configs/dagmm.yaml configs/paper/thyroid.yaml",
        },
        {
            **_row("isolation_forest", "thyroid", 0, "0.6", epochs="0"),
            "configs": "configs/dagmm.yaml configs/data/thyroid.yaml",
        },
        {
            **_row("isolation_forest", "thyroid", 1, "0.8", epochs="0"),
            "configs": "configs/lmm.yaml configs/data/thyroid.yaml",
        },
        {**_row("lmm", "thyroid", 0, "0.4"), "configs": "c/lmm.yaml", "settings": '{"epochs": 10}'},
        {**_row("lmm", "thyroid", 1, "0.2"), "configs": "c/lmm.yaml", "settings": '{"epochs": 20}'},
    ]
    for row in rows:
        row.update(precision_rho=row["f1_rho"], recall_rho=row["f1_rho"], roc_auc="0.9")
    lines = summarize(told_apart(rows)).splitlines()[2:]
    cells = [[c.strip() for c in line.split("|")[3:7]] for line in lines]
    assert cells == [  # had: one dagmm line of 3 runs, 0.7000 ± 0.2000, epochs 10/500; one lmm line 0.3000
        ["dagmm [configs/dagmm.yaml configs/data/thyroid.yaml]", "2", "10", "0.6000 ± 0.1414"],
        ["dagmm [configs/dagmm.yaml configs/paper/thyroid.yaml]", "1", "500", "0.9000"],
        ["isolation_forest", "2", "0", "0.7000 ± 0.1414"],  # baselines come beside any config
        ["lmm [epochs=10]", "1", "10", "0.4000"],
        ["lmm [epochs=20]", "1", "10", "0.2000"],
    ]
    resumed = [  # a file from before the settings column, resumed: its rows record none, the new ones do
        {**_row("vae", "thyroid", 0, "0.5"), "configs": "c/vae.yaml", "settings": ""},
        {**_row("vae", "thyroid", 1, "0.7"), "configs": "c/vae.yaml", "settings": '{"epochs": 10}'},
    ]
    for row in resumed:
        row.update(precision_rho=row["f1_rho"], recall_rho=row["f1_rho"], roc_auc="0.9")
    assert told_apart(resumed) == resumed  # one method (had: split into [no record] and [{...}])


def test_a_grid_of_a_variant_of_ones_own_resumes_only_at_the_code_it_ran(tmp_path, monkeypatch):
    module = tmp_path / "my_grid_variants.py"
    module.write_text("from dagmm_lightning.models import DAGMM\n\n\nclass Mine(DAGMM):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    config = tmp_path / "mine.yaml"
    config.write_text(
        (ROOT / "configs/quickstart.yaml").read_text().replace("dagmm_lightning.models.DAGMM", "my_grid_variants.Mine")
    )
    out = tmp_path / "grid"
    args = [*quick_run(out)[:1], str(config), *quick_run(out)[2:]]
    main(args)
    fingerprint = json.loads(read_rows(out.with_suffix(".csv"))[0]["resolved"])["model_source"]
    assert len(fingerprint) == 16 and "model_source" not in json.loads(
        resolved_config(["--config", str(ROOT / "configs/quickstart.yaml")])
    )
    module.write_text(module.read_text().replace("    pass", "    ensembles = False  # edited since"))
    with pytest.raises(ValueError, match=r"\(model_source [0-9a-f]{16} there, [0-9a-f]{16} now\)"):
        main(args)  # had: "0 runs to do", the old code's rows kept as the new code's
