"""A new user's first hour: results left by every run, checkpoints that need nothing else, a table's own
defaults, a quick and quiet command line."""

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from dagmm_lightning import DAGMMDetector
from dagmm_lightning.callbacks import AnomalyMetrics
from dagmm_lightning.cli import build_cli
from dagmm_lightning.data.datamodule import TRAINING_VALUES
from dagmm_lightning.errors import DataError, torch_load_failure

from ..conftest import QUICK, ROOT, read_csv, rows_with_groups_of_anomalies

pytestmark = pytest.mark.usefixtures("in_root")


def run(args, tmp_path):
    return build_cli([*args, "--trainer.logger.init_args.save_dir", str(tmp_path / "logs"), *QUICK])


def test_a_fit_without_a_method_config_or_an_epoch_count_says_what_it_trains(tmp_path):
    data_alone = ["fit", "--config", "configs/data/thyroid.yaml", "--trainer.limit_train_batches", "0"]  # (no steps)
    with pytest.warns(UserWarning) as caught:  # had: Lightning's "max_epochs was not set", with its file's path
        run(data_alone, tmp_path / "a")
    said = [str(w.message) for w in caught if "no --trainer.max_epochs" in str(w.message)]
    assert said == [
        "no --trainer.max_epochs or max_steps: Lightning trains 1000 epochs; no method config names the model, so "
        "it is DAGMM's defaults (the paper's KDDCUP99 networks): name one first, e.g. --config "
        "configs/improved.yaml --config configs/data/thyroid.yaml"
    ]
    with pytest.warns(UserWarning) as caught:  # a method named: only the epochs said
        run([*data_alone, "--model", "DAGMMVAE"], tmp_path / "b")
    assert [str(w.message) for w in caught if "no --trainer.max_epochs" in str(w.message)] == [
        "no --trainer.max_epochs or max_steps: Lightning trains 1000 epochs"
    ]
    with pytest.warns(UserWarning) as caught:  # named in a config given with -c, or by --model.class_path
        run([*data_alone, "--model.class_path", "dagmm_lightning.models.DAGMMVAE"], tmp_path / "d")
    assert not [w for w in caught if "no method config" in str(w.message)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run(["fit", *QS, "--trainer.limit_train_batches", "0"], tmp_path / "c")
    assert not [w for w in caught if "no --trainer.max_epochs" in str(w.message)]


def test_prediction_settings_given_to_a_fit_are_said_to_play_no_part(tmp_path):
    out = tmp_path / "scores.csv"  # (had: a fit that ended well, and no file, without a word)
    asked = ["--data.predict_file", "new_rows.csv", "--prediction_writer.output_path", str(out)]
    with pytest.warns(UserWarning) as caught:
        run(["fit", "--config", "configs/quickstart.yaml", "--trainer.max_epochs", "1", *asked], tmp_path)
    said = [str(w.message) for w in caught if "plays no part in fit" in str(w.message)]
    assert said == [
        f"{option} {value} plays no part in fit: score rows after it with `dagmm predict --ckpt_path CKPT "
        "--data.predict_file ROWS --prediction_writer.output_path OUT` (the fit's summary names CKPT)"
        for option, value in (("--data.predict_file", "new_rows.csv"), ("--prediction_writer.output_path", out))
    ]
    assert not out.exists()


def test_a_run_shorter_than_the_validation_interval_validates_and_keeps_its_last_epoch(tmp_path, caplog):
    fitted = run(["fit", "--config", "configs/quickstart.yaml", "--trainer.max_epochs", "3"], tmp_path)  # val every 10
    metrics = next(c for c in fitted.trainer.callbacks if isinstance(c, AnomalyMetrics))
    assert "val" in metrics.last_metrics and np.isfinite(metrics.last_metrics["val"]["roc_auc"])
    assert [p.name for p in (tmp_path / "logs").rglob("*.ckpt")] == ["last.ckpt"]
    # TensorBoard's hparams view reads the first record: one, with the final validation's metrics
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    events = [e for f in (tmp_path / "logs").rglob("events.out.tfevents.*") for e in EventFileLoader(str(f)).Load()]
    values = [v for e in events for v in e.summary.value]
    records = [v.metadata.plugin_data.content for v in values if v.tag == "_hparams_/experiment"]
    assert len(records) == 1
    shown = {m.name.tag for m in HParamsPluginData.FromString(records[0]).experiment.metric_infos}
    assert {"hp/roc_auc", "hp/f1_rho"} <= shown and "hp_metric" not in shown
    (started,) = [v.metadata.plugin_data.content for v in values if v.tag == "_hparams_/session_start_info"]
    settings = HParamsPluginData.FromString(started).session_start_info.hparams
    given = {name: settings[name].WhichOneof("kind") for name in settings}
    seed = settings["seed_everything"].number_value  # had: none of these (config.yaml only)
    assert seed == 0 and settings["trainer/devices"].number_value == 1  # (quickstart.yaml's seed)
    assert settings["trainer/max_epochs"].number_value == 3 and settings["trainer/max_steps"].number_value == -1
    assert settings["trainer/strategy"].string_value == "single_device" and given["trainer/precision"] == "string_value"
    summary = "\n".join(r.getMessage() for r in caplog.records if "fit finished" in r.getMessage())
    assert "train 158 rows, val 20 (2 anomalies), test 199 (18 anomalies)" in summary
    assert "last.ckpt" in summary and "dagmm test --ckpt_path" in summary and "roc_auc" in summary


def test_a_positive_unlabeled_fit_reaches_the_hparams_view_with_its_c(tmp_path):
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    args = ["fit", "--config", "configs/pu.yaml", "--data.dataset", "breast_cancer", "--trainer.max_epochs", "3"]
    fitted = run(args, tmp_path)  # its val rows are labelled normal rows: no label metric, c only
    events = [e for f in (tmp_path / "logs").rglob("events.out.tfevents.*") for e in EventFileLoader(str(f)).Load()]
    values = [v for e in events for v in e.summary.value]
    records = [v.metadata.plugin_data.content for v in values if v.tag == "_hparams_/experiment"]
    assert len(records) == 1  # had: none, so the run was missing from the hparams view
    shown = {m.name.tag for m in HParamsPluginData.FromString(records[0]).experiment.metric_infos}
    assert shown == {"hp/c", "hp/reconstruction", "hp/flagged_share", "hp/threshold"}  # c and the label-free ones
    from tensorboard.util.tensor_util import make_ndarray

    (c,) = [
        float(make_ndarray(v.tensor)) if v.HasField("tensor") else v.simple_value for v in values if v.tag == "hp/c"
    ]
    assert c == pytest.approx(float(fitted.model.model.c), rel=1e-6)


def test_a_contamination_far_from_the_labels_share_is_warned(tmp_path):
    import warnings

    far = "contamination 0.1, but the labels mark 2.47 % of the rows as anomalies: the threshold flags about 10 %"
    args = ["fit", "--config", "configs/quickstart.yaml", "--trainer.max_epochs", "1"]
    with pytest.warns(UserWarning, match=far):  # had: silence (a method config's share kept for other data)
        run([*args, "--data.dataset", "thyroid"], tmp_path / "thyroid")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run(args, tmp_path / "breast_cancer")  # its own share, 10 %
        run([*args, "--data.dataset", "thyroid", "--model.init_args.contamination", "0.03"], tmp_path / "near")
    assert not [w for w in caught if "but the labels mark" in str(w.message)]


def test_a_runs_saved_config_runs_again_without_a_progress_bar(tmp_path):
    from lightning.pytorch.callbacks import ProgressBar

    logs = ["--trainer.logger.init_args.save_dir", str(tmp_path / "logs"), "--trainer.max_epochs", "1"]
    build_cli(["fit", "--config", "configs/quickstart.yaml", *logs])  # with the bar the CLI adds
    saved = next((tmp_path / "logs").rglob("config.yaml"))
    assert "ProgressReport" in saved.read_text()
    build_cli(["fit", "--config", str(saved), "--trainer.logger.init_args.save_dir", str(tmp_path / "same")])
    resaved = next((tmp_path / "same").rglob("config.yaml")).read_text()
    assert resaved == saved.read_text().replace(str(tmp_path / "logs"), str(tmp_path / "same"))  # had: the bar's
    # two other arguments, written out by the second run
    again = run(["fit", "--config", str(saved), "--trainer.max_epochs", "1"], tmp_path)  # QUICK: no bar
    assert not any(isinstance(c, ProgressBar) for c in again.trainer.callbacks)


def test_progress_in_a_log_file_is_a_line_now_and_then(tmp_path, capsys, monkeypatch):
    from lightning.pytorch.callbacks import TQDMProgressBar

    from dagmm_lightning.callbacks import ProgressReport

    due = ProgressReport._due
    monkeypatch.setattr(ProgressReport, "_due", lambda self: False)  # a slow machine's 30 s pass: no line more

    logs = ["--trainer.logger.init_args.save_dir", str(tmp_path / "logs"), "--trainer.max_epochs", "12"]
    build_cli(["fit", "--config", "configs/quickstart.yaml", *logs])  # stdout captured: not a terminal
    out = capsys.readouterr().out
    assert "\r" not in out and "it/s" not in out  # had: the bar's redraws, 31 kB for the quick start's 60 epochs
    lines = out.splitlines()
    assert len(lines) == 2 and lines[0].startswith("epoch 1/12 (step 2): train/loss ")
    assert re.fullmatch(r"epoch 12/12 \(step 24\): train/loss [0-9.]+, val/roc_auc [0-9.]+ \[\d+ s\]", lines[1])
    last = str(next((tmp_path / "logs").rglob("last.ckpt")))  # a resumed fit's first epoch is said too
    build_cli(
        ["fit", "--config", "configs/quickstart.yaml", *logs[:2], "--trainer.max_epochs", "14", "--ckpt_path", last]
    )
    assert [line.split(" (")[0] for line in capsys.readouterr().out.splitlines()] == ["epoch 13/14", "epoch 14/14"]
    # the line's loss is its step's: 9 steps an epoch, logged every 4th (had: the last logged step's, the 8th)
    short = ["--trainer.max_epochs", "1", "--data.batch_size", "16", "--trainer.log_every_n_steps", "4"]
    one = build_cli(["fit", "--config", "configs/quickstart.yaml", *short, *logs[:2]])
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith(f"epoch 1/1 (step 9): train/loss {one.model.last_training_loss:.4g} [")
    # every epoch once the interval is 0; an older run's saved config.yaml (the TQDM bar the CLI added then)
    # gets the report, a bar of the user's own settings stays
    saved = next((tmp_path / "logs").rglob("config.yaml"))
    older = saved.read_text().replace(
        "dagmm_lightning.callbacks.ProgressReport", "lightning.pytorch.callbacks.TQDMProgressBar"
    )
    older = re.sub(r"\n +(line_interval|lines): .*", "", older)  # (the TQDM bar's arguments only, as then)
    (tmp_path / "older.yaml").write_text(older)
    every = ["--trainer.max_epochs", "3", "--trainer.logger.init_args.save_dir", str(tmp_path / "again")]
    again = build_cli(["fit", "--config", str(tmp_path / "older.yaml"), *every])
    bars = [c for c in again.trainer.callbacks if isinstance(c, TQDMProgressBar)]
    assert len(bars) == 1 and type(bars[0]) is ProgressReport
    assert len(capsys.readouterr().out.splitlines()) == 2
    (tmp_path / "own.yaml").write_text(older.replace("refresh_rate: 20", "refresh_rate: 5"))
    own = build_cli(["fit", "--config", str(tmp_path / "own.yaml"), *every])
    bars = [c for c in own.trainer.callbacks if isinstance(c, TQDMProgressBar)]
    assert len(bars) == 1 and type(bars[0]) is TQDMProgressBar and bars[0].refresh_rate == 5
    capsys.readouterr()
    monkeypatch.setattr(ProgressReport, "_due", due)  # (not undo(): that would leave the root folder too)
    interval = ["--trainer.callbacks+=dagmm_lightning.callbacks.ProgressReport", "--trainer.callbacks.line_interval=0"]
    build_cli(["fit", "--config", "configs/quickstart.yaml", *every, *interval])
    lines = capsys.readouterr().out.splitlines()  # and within an epoch: its first of two batches
    assert [line.split(" (")[0] for line in lines if "(step" in line] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert [line.split(" [")[0] for line in lines if "(step" not in line] == [
        f"epoch {e}/3: batch 1/2" for e in (1, 2, 3)
    ]


def test_progress_lines_within_an_epoch_only_where_the_epoch_is_long(tmp_path, capsys, monkeypatch):
    from types import SimpleNamespace

    from dagmm_lightning.callbacks import progress
    from dagmm_lightning.models import DAGMM

    clock, step = {"t": 0.0}, DAGMM.training_step

    def step_of_four_seconds(self, *args, **kwargs):
        clock["t"] += 4.0
        return step(self, *args, **kwargs)

    monkeypatch.setattr(progress, "time", SimpleNamespace(monotonic=lambda: clock["t"]))
    monkeypatch.setattr(DAGMM, "training_step", step_of_four_seconds)
    every = ["--trainer.callbacks+=ProgressReport", "--trainer.callbacks.line_interval=10", "--trainer.max_epochs", "5"]
    build_cli(["fit", "--config", "configs/quickstart.yaml", "--trainer.default_root_dir", str(tmp_path), *every])
    lines = [line.split(" (")[0] for line in capsys.readouterr().out.splitlines()]
    # 2 batches (8 s) an epoch: due at 20 s, in epoch 3's first batch, said at its end (had: a batch line
    # there, and epoch 3's metrics line skipped)
    assert lines == ["epoch 1/5", "epoch 3/5", "epoch 5/5"]


def test_progress_on_a_terminal_is_the_bar(monkeypatch):
    from dagmm_lightning.callbacks import ProgressReport

    class Terminal:
        def isatty(self):
            return True

    assert ProgressReport().writes_lines  # pytest's captured stdout is no terminal
    monkeypatch.setattr(sys, "stdout", Terminal())
    assert not ProgressReport().writes_lines and ProgressReport(lines=True).writes_lines

    class NotebookOutput:  # ipykernel's stdout: no terminal, but it redraws a line in place
        def isatty(self):
            return False

    NotebookOutput.__module__ = "ipykernel.iostream"
    monkeypatch.setattr(sys, "stdout", NotebookOutput())
    assert not ProgressReport().writes_lines


def test_validating_the_best_checkpoint_is_quiet_about_its_callbacks(tmp_path):
    import warnings

    best = ["--checkpoint.monitor", "val/roc_auc", "--checkpoint.mode", "max", "--trainer.check_val_every_n_epoch", "1"]
    run(["fit", "--config", "configs/quickstart.yaml", "--trainer.max_epochs", "2", *best], tmp_path)
    chosen = next(p for p in (tmp_path / "logs").rglob("*.ckpt") if p.name != "last.ckpt")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run(["validate", "--ckpt_path", str(chosen)], tmp_path)  # Lightning asks for the fit's ModelCheckpoint
    assert not [w for w in caught if "callbacks used to create the checkpoint" in str(w.message)]


def test_default_root_dir_moves_the_logs_and_checkpoints(tmp_path):
    build_cli(["fit", *QS, "--trainer.max_epochs", "1", "--trainer.default_root_dir", str(tmp_path / "x"), *QUICK])
    assert [p.name for p in (tmp_path / "x" / "lightning_logs").rglob("*.ckpt")] == ["last.ckpt"]


def test_test_from_the_checkpoint_alone_restores_its_split_and_refuses_another(tmp_path, caplog):
    fitted = run(
        ["fit", "--config", "configs/quickstart.yaml", "--trainer.max_epochs", "2", "--seed_everything", "3"], tmp_path
    )
    assert "Seed set to 3" in caplog.text
    caplog.clear()
    last = str(next((tmp_path / "logs").rglob("last.ckpt")))
    x_test, y_test = fitted.datamodule.arrays("test")  # the split of seed 3
    fitted.model.eval()
    with torch.no_grad():
        expected = fitted.model.score(torch.from_numpy(x_test)).numpy()
    tested = run(["test", "--ckpt_path", last], tmp_path)  # no config: everything from the checkpoint
    assert "Seed set to" not in caplog.text  # a fit's news only
    np.testing.assert_array_equal(tested.datamodule.splits.test, fitted.datamodule.splits.test)
    metrics = next(c for c in tested.trainer.callbacks if isinstance(c, AnomalyMetrics)).last_metrics["test"]
    from sklearn.metrics import roc_auc_score

    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(y_test, expected))
    with pytest.raises(
        ValueError, match="split differs from the checkpoint.s .*: its test rows may hold rows the model was trained on"
    ):
        run(["test", "--ckpt_path", last, "--data.seed", "0"], tmp_path)
    with pytest.raises(ValueError, match=r"keeps the model settings it was trained with \(lr 0.001\)"):
        run(["fit", "--ckpt_path", last, "--model.init_args.lr", "0.05", "--trainer.max_epochs", "3"], tmp_path)
    with pytest.raises(
        ValueError,
        match=r"\(contamination 0.1\), .*: to flag another share s of rows .*, cut that column at the \(1 - s\) "
        r"quantile",
    ):
        run(["predict", "--ckpt_path", last, "--model.init_args.contamination", "0.05"], tmp_path)  # (had: no way)
    (tmp_path / "lr.yaml").write_text("model:\n  init_args:\n    lr: 0.05\n    latent_dim: null\n")
    with pytest.raises(
        ValueError,
        match=r"settings it was trained with \(lr 0.001\), not those given .* in configs; test with others needs a "
        r"model trained with them \(dagmm fit without --ckpt_path\)$",  # (had: "to train with others", for a test)
    ):
        run(["test", "--ckpt_path", last, "--config", str(tmp_path / "lr.yaml")], tmp_path)
    with pytest.raises(ValueError, match=r"trained with \(model 'DAGMM'\)"):
        run(["test", "--ckpt_path", last, "--model", "DAGMMVAE"], tmp_path)
    vae_settings = r"\(model 'DAGMM', contamination 0.1, hidden_dims \(16, 8\), lr 0.001, n_components 2\), not"
    with pytest.raises(ValueError, match=rf"trained with {vae_settings}"):  # (had: beta None, ... the VAE's own)
        vae = ["--config", "configs/vae.yaml", "--data.dataset", "breast_cancer"]  # (its data set: refused first)
        run(["test", "--ckpt_path", last, *vae, "--model.init_args.lr", "0.05"], tmp_path)
    (tmp_path / "dotted.yaml").write_text("model.init_args.lr: 0.05\n")  # a config's dotted key
    with pytest.raises(ValueError, match=r"trained with \(lr 0.001\)"):
        run(["test", "--ckpt_path", last, "--config", str(tmp_path / "dotted.yaml")], tmp_path)
    assert run(["test", "--ckpt_path", last, "--model", "DAGMM"], tmp_path).model.hparams.lr == 0.001  # its own class
    by_hand = run(["test", "--ckpt_path", last, "--data.batch_size", "1024"], tmp_path)  # the default, set by hand
    assert tested.datamodule.batch_size == 64 and by_hand.datamodule.batch_size == 1024


def test_keys_given_on_the_command_line_and_in_config_files(tmp_path):
    from dagmm_lightning.cli import keys_given

    (tmp_path / "base.yaml").write_text("data:\n  batch_size: 1024\n  dataset: thyroid\n")
    (tmp_path / "top.yaml").write_text("config: base.yaml\nmodel:\n  init_args:\n    lr: 0.1\n")
    args = ["test", "--config", str(tmp_path / "top.yaml"), "--data.seed=0", "--data.rho", "0.2", "--ckpt_path", "x"]
    assert keys_given(args, "data") == {"batch_size", "dataset", "seed", "rho"}
    assert keys_given(["test", "--ckpt_path", "x", "--model.init_args.lr", "1"], "data") == set()
    (tmp_path / "data.yaml").write_text("val_fraction: 0.2\nshuffle: false\n")  # the data group's own file
    assert keys_given(["test", "--data", str(tmp_path / "data.yaml")], "data") == {"val_fraction", "shuffle"}
    assert keys_given(["test", "--data={seed: 3}", "--data", "not: [valid"], "data") == {"seed"}
    (tmp_path / "vae.yaml").write_text("model:\n  class_path: dagmm_lightning.models.DAGMMVAE\n")
    model = ["--config", str(tmp_path / "top.yaml"), "--config", str(tmp_path / "vae.yaml"), "--model.jitter", "1"]
    assert keys_given(["test", *model, "--model.help", "DAGMM"], "model") == {"lr", "class_path", "jitter"}
    assert keys_given(["test", "--model", "DAGMMVAE"], "model") == {"class_path"}


def table(path, n=400, labels=True, sep=",", ids=False):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "proto": rng.choice(["tcp", "udp"], n)})
    frame.loc[:19, ["a", "b"]] += 5.0  # 20 anomalies: 5 %
    if labels:
        frame["is_attack"] = (np.arange(n) < 20).astype(int)
    if ids:
        frame.insert(0, "flow_id", [f"f{i:05d}" for i in range(n)])
    frame.to_csv(path, index=False, sep=sep)
    return path


def test_predict_as_a_nightly_job_writes_its_own_part_file_and_stops_on_sigterm(tmp_path, monkeypatch, caplog):
    from dagmm_lightning.callbacks import PredictionCSVWriter
    from dagmm_lightning.models import DAGMM

    flows = table(tmp_path / "flows.csv", ids=True)
    fit = ["fit", "--config", "configs/table.yaml", "--data.path", str(flows), "--data.label_column", "is_attack"]
    run([*fit, "--data.ignore_columns", "[flow_id]", "--trainer.max_epochs", "2"], tmp_path)
    last = str(next((tmp_path / "logs").rglob("last.ckpt")))
    new_rows = table(tmp_path / "new_rows.csv", n=30, labels=False, ids=True)
    out = tmp_path / "out" / "scores.csv"
    predict = ["predict", "--ckpt_path", last, "--data.predict_file", str(new_rows)]
    predict += ["--prediction_writer.output_path", str(out)]
    out.parent.mkdir()
    other = out.parent / "scores.csv.0a1b2c3d.part"  # another run's, writing the same output
    other.write_text("another run's rows\n")
    with pytest.warns(
        UserWarning,
        match=r"scores.csv.0a1b2c3d.part beside .*scores.csv \(written 0 min ago\): another predict writing it",
    ):
        run(predict, tmp_path)  # had: both wrote scores.csv.part, rows of each in one file
    assert len(read_csv(out)) == 30 and other.read_text() == "another run's rows\n"
    read_csv(new_rows).drop(columns="flow_id").to_csv(tmp_path / "no_ids.csv", index=False)
    with pytest.warns(UserWarning, match=r"ignored columns \['flow_id'\] of the training table are not in no_ids.csv"):
        run([*predict[:3], "--data.predict_file", str(tmp_path / "no_ids.csv")], tmp_path)  # had: silent
    normal = read_csv(table(tmp_path / "day.csv", n=80, labels=False, ids=True)).iloc[20:]  # (the first 20: odd)
    normal.to_csv(tmp_path / "day.csv", index=False)
    normal.assign(a=normal["a"] * 1000).to_csv(tmp_path / "drift.csv", index=False)  # a column's units changed
    with pytest.warns(UserWarning, match=r"% of the rows score above the threshold, which flags about 5 %"):
        run([*predict[:3], "--data.predict_file", str(tmp_path / "drift.csv")], tmp_path)  # had: exit 0, silent
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run([*predict[:3], "--data.predict_file", str(tmp_path / "day.csv")], tmp_path)
    assert not [w for w in caught if "score above the threshold" in str(w.message)]
    normal.iloc[:0].to_csv(tmp_path / "quiet_day.csv", index=False)  # a header, no rows: done, an empty output
    with pytest.warns(UserWarning, match="quiet_day.csv has a header but no rows: nothing to score"):
        quiet = tmp_path / "quiet_scores.csv"
        run(
            [
                *predict[:3],
                "--data.predict_file",
                str(tmp_path / "quiet_day.csv"),
                "--prediction_writer.output_path",
                str(quiet),
            ],
            tmp_path,
        )  # had: exit 2
    assert list(read_csv(quiet).columns) == ["flow_id", "index", "score", "prediction", "label"]  # (ids kept)
    assert len(read_csv(quiet)) == 0
    job = tmp_path / "job"  # a scheduled run's working folder, without a logger: nothing but its output there
    job.mkdir()
    monkeypatch.chdir(job)
    build_cli([*predict[:3], "--data.predict_file", str(tmp_path / "day.csv"), "--trainer.logger", "false", *QUICK])
    written = sorted(p.relative_to(job).as_posix() for p in job.rglob("*") if p.is_file())
    assert written == ["logs/predictions.csv"]  # its output only (had: also logs/config.yaml, rewritten each run)
    monkeypatch.chdir(ROOT)
    normal.iloc[:0].drop(columns="a").to_parquet(tmp_path / "quiet_day.parquet")  # ... of the model's columns only
    with pytest.raises(DataError, match=r"quiet_day.parquet \(a header without rows\): columns missing .*\['a'\]"):
        run([*predict[:3], "--data.predict_file", str(tmp_path / "quiet_day.parquet")], tmp_path)
    # SIGTERM (a scheduler's stop, `timeout`): no output, no part file, exit 143 (had: went on, then 0)
    write = PredictionCSVWriter.write_on_batch_end

    def stopped_at_the_first_batch(self, trainer, *args, **kwargs):
        trainer._signal_connector.received_sigterm = True
        return write(self, trainer, *args, **kwargs)

    monkeypatch.setattr(PredictionCSVWriter, "write_on_batch_end", stopped_at_the_first_batch)
    out.unlink()
    with pytest.raises(SystemExit) as stop:
        run(predict, tmp_path)
    assert stop.value.code == 143 and sorted(p.name for p in out.parent.iterdir()) == [other.name]
    assert "predict stopped by SIGTERM (no predictions written)" in caplog.text

    def ctrl_c_at_the_first_batch(self, trainer, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(PredictionCSVWriter, "write_on_batch_end", ctrl_c_at_the_first_batch)
    caplog.clear()
    with pytest.raises(SystemExit) as stop:
        run(predict, tmp_path)
    assert stop.value.code == 130 and sorted(p.name for p in out.parent.iterdir()) == [other.name]
    assert "predict stopped by Ctrl-C (no predictions written)" in caplog.text  # (had: Lightning's line alone)
    step = DAGMM.training_step

    def stopped_step(self, *args, **kwargs):
        self.trainer._signal_connector.received_sigterm = True
        return step(self, *args, **kwargs)

    monkeypatch.setattr(DAGMM, "training_step", stopped_step)
    with pytest.raises(SystemExit) as stop:
        run([*fit, "--data.ignore_columns", "[flow_id]", "--trainer.max_epochs", "2"], tmp_path)
    assert stop.value.code == 143  # had: 0, as a finished fit


@pytest.mark.parametrize("method", ["vae", "vqvae", "pu", "improved"])
def test_a_method_config_composed_with_the_table_config_keeps_its_model_and_trains_on_the_table(
    method, tmp_path, capsys
):
    flows = table(tmp_path / "flows.csv")
    labelled = ["--data.path", str(flows), "--data.label_column", "is_attack", "--trainer.max_epochs", "1"]
    fitted = run(["fit", "--config", f"configs/{method}.yaml", "--config", "configs/table.yaml", *labelled], tmp_path)
    few = ["--data.labelled_fraction", "0.05"]
    expected = {"vae": "DAGMMVAE", "vqvae": "DAGMMVQVAE", "pu": "DAGMMPU", "improved": "DAGMM"}[method]
    assert type(fitted.model).__name__ == expected  # table.yaml had set DAGMM over the method's class
    assert fitted.datamodule.dataset == "table" and fitted.trainer.current_epoch == 1
    assert fitted.trainer.max_steps == 6000 and fitted.trainer.check_val_every_n_epoch is None  # the table's schedule
    if method == "improved":
        assert fitted.model.hparams.members == 5  # the method's settings stay
    if method == "pu":  # c from a handful of held-out labelled rows: said (had: silent)
        with pytest.warns(UserWarning, match=r"c \(and the threshold c / 2\) is estimated from \d held-out labelled"):
            run(["fit", "--config", "configs/pu.yaml", "--config", "configs/table.yaml", *labelled, *few], tmp_path)
        with pytest.raises(ValueError, match=r"lambda_pu must be in \(0, inf\), got 0"):
            run(["fit", "--config", "configs/pu.yaml", "--model.init_args.lambda_pu", "0"], tmp_path)
    capsys.readouterr()
    with pytest.raises(SystemExit):  # (had: "path is for dataset 'table' ... the dataset is 'kddcup99' here")
        run(["fit", "--config", "configs/table.yaml", "--config", f"configs/{method}.yaml", *labelled], tmp_path)
    assert re.search(
        f"table.yaml sets data.batch_size, .*; configs/{method}.yaml, named after", capsys.readouterr().err
    )
    with pytest.raises(SystemExit):  # had: trained on KDDCUP99, silently
        run(["fit", "--config", "configs/data/thyroid.yaml", "--config", f"configs/{method}.yaml"], tmp_path)
    message = f"thyroid.yaml sets data.dataset, model.contamination; configs/{method}.yaml, named after it, is a method"
    assert message in capsys.readouterr().err


def test_table_column_mistakes_are_named(tmp_path):
    flows = table(tmp_path / "flows.csv")
    args = ["fit", "--config", "configs/table.yaml", "--data.path", str(flows), "--data.label_column", "is_attack"]
    with pytest.raises(ValueError, match="'is_attack' is the label column and in symbolic_columns"):
        run([*args, "--data.symbolic_columns", "[is_attack]"], tmp_path)  # had said: not in flows.csv
    for out_of_core in ["false", "true"]:  # had said: 'proto' should be numeric (in memory)
        with pytest.raises(ValueError, match=r"'proto' holds text \(e.g. '(tcp|udp)'\) but is not in symbolic_columns"):
            run([*args, "--data.symbolic_columns", "[b]", "--data.out_of_core", out_of_core], tmp_path)
    with pytest.raises(
        ValueError,
        match=r"no feature columns left: .* label column 'is_attack' and ignore_columns \['a', 'b', 'proto'\]",
    ):
        run([*args, "--data.ignore_columns", "[a,b,proto]"], tmp_path)  # had said: input_dim must be >= 1, got 0
    indexed = tmp_path / "indexed.csv"
    read_csv(flows).to_csv(indexed)  # pandas' index: a column 'Unnamed: 0' of row numbers
    quick = ["--data.path", str(indexed), "--trainer.max_epochs", "1"]
    with pytest.warns(
        UserWarning, match=r"'Unnamed: 0' .* if it is an id, leave it out with ignore_columns '\["
    ) as caught:
        run([*args, *quick], tmp_path / "indexed")
    (warned,) = [str(w.message) for w in caught if "Unnamed: 0" in str(w.message)]
    given = shlex.split(re.search(r"ignore_columns ('.*')$", warned)[1])[
        0
    ]  # as the warning writes it (had: [Unnamed: 0], a mapping)
    fitted = run([*args, *quick, "--data.ignore_columns", given], tmp_path / "left_out")
    assert fitted.datamodule.preprocessor.numeric == ["a", "b"]
    bare = tmp_path / "bare.csv"
    read_csv(flows).to_csv(bare, index=False, header=False)  # no header line: its first row became the names
    with pytest.warns(UserWarning, match="bare.csv: its header line holds numbers .* a file without a header"):
        run(["fit", *args[1:4], str(bare), "--data.label_column", "1", "--trainer.max_epochs", "1"], tmp_path)


def test_a_table_takes_its_contamination_from_its_labels_and_predicts_from_the_checkpoint_alone(tmp_path, caplog):
    flows = table(tmp_path / "flows.csv", sep=";", ids=True)  # semicolons, and an id column to leave out
    args = ["fit", "--config", "configs/table.yaml", "--data.path", str(flows), "--data.label_column", "is_attack"]
    with pytest.raises(ValueError, match="column 'flow_id' holds 400 different text values in 400 rows"):
        run([*args, "--trainer.max_epochs", "2"], tmp_path)
    fitted = run([*args, "--data.ignore_columns", "[flow_id]", "--trainer.max_epochs", "2"], tmp_path)
    assert fitted.model.model.calibration.contamination == pytest.approx(0.05)
    assert fitted.datamodule.preprocessor.numeric == ["a", "b"] and list(fitted.datamodule.preprocessor.categories) == [
        "proto"
    ]
    metrics = next(c for c in fitted.trainer.callbacks if isinstance(c, AnomalyMetrics)).last_metrics["val"]
    assert "f1_rho" in metrics and not any(k.endswith("_top5") for k in metrics)  # rho 5 %: logged once
    last = str(next((tmp_path / "logs").rglob("last.ckpt")))
    new_rows = table(tmp_path / "new_rows.csv", n=30, labels=False, sep="\t", ids=True)
    out = tmp_path / "scores.csv"
    run(
        [
            "predict",
            "--ckpt_path",
            last,
            "--data.predict_file",
            str(new_rows),
            "--prediction_writer.output_path",
            str(out),
        ],
        tmp_path,
    )
    scores = read_csv(out)
    assert len(scores) == 30 and (scores["label"] == -1).all() and np.isfinite(scores["score"]).all()
    # the ignored id column goes beside each row's score (had: the row's number alone, to join by position)
    assert list(scores.columns) == ["flow_id", "index", "score", "prediction", "label"]
    assert f"wrote 30 predictions with the file's flow_id column to {out}; " in caplog.text
    assert "limit_predict_batches" not in caplog.text
    caplog.clear()
    part = ["--trainer.limit_predict_batches", "2", "--data.eval_batch_size", "8"]  # 2 of the 4 batches of 30
    run(["predict", "--ckpt_path", last, "--data.predict_file", str(new_rows), *part], tmp_path)
    assert "wrote 16 predictions " in caplog.text  # (had: that alone, as if the file held 16 rows)
    assert "(--trainer.limit_predict_batches 2: only those batches of the rows were scored)" in caplog.text
    shutil.rmtree(next((tmp_path / "logs").rglob("predictions.csv")).parent)
    assert scores["flow_id"].tolist() == read_csv(new_rows, sep="\t")["flow_id"].tolist()
    truth = pd.Series([1, None, 0, None] + [0] * 26, dtype="Int64")  # some rows' truth unknown: -1, not refused
    for name in ("partly.csv", "partly.csv.gz", "partly.csv.xz", "partly.parquet"):  # read in chunks, and whole
        partly = read_csv(new_rows, sep="\t").assign(is_attack=truth)
        if name.endswith("parquet"):
            partly.to_parquet(tmp_path / name)
        else:
            partly.to_csv(tmp_path / name, index=False)
        run(["predict", "--ckpt_path", last, "--data.predict_file", str(tmp_path / name)], tmp_path)
        written = read_csv(next((tmp_path / "logs").rglob("predictions.csv")))
        assert written["label"].tolist() == truth.fillna(-1).tolist(), name
        assert written["flow_id"].tolist() == partly["flow_id"].tolist(), name
        shutil.rmtree(next((tmp_path / "logs").rglob("predictions.csv")).parent)
    keep = ["predict", "--ckpt_path", last, "--prediction_writer.output_path", str(tmp_path / "kept.csv")]
    run([*keep, "--prediction_writer.keep_columns", "[a,flow_id]"], tmp_path)  # the test rows, named
    kept = read_csv(tmp_path / "kept.csv")
    table_rows = read_csv(flows, sep=";").iloc[kept["index"]]
    assert kept["flow_id"].tolist() == table_rows["flow_id"].tolist() and kept["a"].tolist() == table_rows["a"].tolist()
    run([*keep, "--prediction_writer.keep_columns", "[]"], tmp_path)
    assert list(read_csv(tmp_path / "kept.csv").columns) == ["index", "score", "prediction", "label"]
    with pytest.raises(
        ValueError, match=r"keep_columns \['host'\] are not in .*flows.csv; its columns are \['flow_id'"
    ):
        run([*keep, "--prediction_writer.keep_columns", "[host]"], tmp_path)
    read_csv(new_rows, sep="\t").assign(label=1).to_csv(tmp_path / "clash.csv", index=False)
    with pytest.raises(ValueError, match=r"keep_columns \['label'\]: the predictions have columns of those names"):
        run(
            [*keep, "--prediction_writer.keep_columns", "[label]", "--data.predict_file", str(tmp_path / "clash.csv")],
            tmp_path,
        )
    # the columns are the checkpoint's: others given are refused (predict had changed only the columns kept
    # beside the scores, silently; test said a column it had left out was missing from the file)
    for option, value, said in (
        ("ignore_columns", "[flow_id,a]", r"\['flow_id', 'a'\]: a run from a checkpoint reads the columns it was"),
        ("symbolic_columns", "[proto,b]", r"\['proto', 'b'\]: .* \(symbolic_columns \['proto'\]\); to train on"),
        ("label_column", "proto", r"'proto' is a column the checkpoint was trained on \(a feature\), not labels"),
        ("label_column", "null", r"null: the checkpoint's table holds its labels in 'is_attack', which the model"),
    ):
        for subcommand in ("predict", "test"):
            with pytest.raises(ValueError, match=rf"--data.{option} {said}"):
                run([subcommand, "--ckpt_path", last, f"--data.{option}", value], tmp_path)
    run([*keep, "--data.ignore_columns", "[flow_id]", "--data.symbolic_columns", "[proto]"], tmp_path)  # its own
    run([*keep, "--data.symbolic_columns", "null"], tmp_path)  # null: as the fit found them (its config.yaml's)
    rows = read_csv(flows, sep=";")
    rows.iloc[::-1].to_csv(flows, sep=";", index=False)  # the file changed since the fit: refused, and why
    with pytest.raises(ValueError, match="flows.csv is not the data the checkpoint .* rows or their labels changed"):
        run(["test", "--ckpt_path", last], tmp_path)
    shuffled = np.r_[np.arange(20), 20 + np.random.default_rng(1).permutation(380)]  # normal rows only
    rows.iloc[shuffled].to_csv(flows, sep=";", index=False)  # the same labels at the same row numbers
    with pytest.raises(ValueError, match="values of its training rows changed: rows reordered or edited"):
        run(["test", "--ckpt_path", last], tmp_path)
    rows.to_csv(flows, sep=";", index=False)  # as trained: tested
    assert run(["test", "--ckpt_path", last], tmp_path).datamodule.splits.test.size
    with pytest.raises(ValueError, match=r"--data.dataset 'thyroid': the checkpoint was trained on 'table', and a run"):
        run(["test", "--ckpt_path", last, "--data.dataset", "thyroid"], tmp_path)  # had: a count of features
    with pytest.raises(ValueError, match=r"the data set 'arrhythmia' \(from a config given\): the checkpoint was tr"):
        run(["test", "--ckpt_path", last, "--config", str(ROOT / "configs/data/arrhythmia.yaml")], tmp_path)
        # (had: only its contamination refused, as a model setting the checkpoint keeps)
    other = tmp_path / "other.csv"  # another export of the table (had: its new text column refused as not in
    rows.assign(note="x").drop(columns="b").to_csv(other, index=False)  # symbolic_columns, never named)
    said = r"other.csv has columns the fit's table had not: \['note'\]; lacks columns it trained on: \['b'\]"
    with pytest.raises(ValueError, match=said + r" \(the checkpoint trained on \['a', 'b', 'proto'\]\)"):
        run(["test", "--ckpt_path", last, "--data.path", str(other)], tmp_path)
    rows.assign(proto=rows["proto"].where(rows.index != fitted.datamodule.splits.test[0], "sctp")).to_csv(
        flows, sep=";", index=False
    )
    with pytest.raises(ValueError, match="model takes 4 encoded features, this run's data encodes to 5: .* categories"):
        run(["test", "--ckpt_path", last], tmp_path)  # a category the fit never saw, in a test row
    rows.to_csv(flows, sep=";", index=False)
    with pytest.raises(
        ValueError, match=r"split differs from the checkpoint's \(val_fraction 0.3, the checkpoint's 0.1\)"
    ):
        run(["test", "--ckpt_path", last, "--data.val_fraction", "0.3"], tmp_path)
    pd.concat([rows, rows.iloc[:10]]).to_csv(flows, sep=";", index=False)
    with pytest.raises(ValueError, match="it has 410 rows, the checkpoint was trained on 400"):
        run(["test", "--ckpt_path", last], tmp_path)
    predict = ["predict", "--ckpt_path", last, "--data.predict_file", str(new_rows)]
    run([*predict, "--prediction_writer.output_path", str(out)], tmp_path)  # a file of its own: scored all the same
    assert len(read_csv(out)) == 30
    scored = read_csv(out)
    flows.rename(tmp_path / "moved.csv")  # the training table gone (another machine, an export rotated)
    run([*predict, "--prediction_writer.output_path", str(out)], tmp_path)  # had: no such file: .../flows.csv
    pd.testing.assert_frame_equal(read_csv(out), scored)
    (tmp_path / "moved.csv").rename(flows)
    for path, message in [(new_rows, "is the file being scored"), (tmp_path / "s.parquet", "predictions are CSV")]:
        with pytest.raises(ValueError, match=message):
            run([*predict, "--prediction_writer.output_path", str(path)], tmp_path)
    broken = read_csv(new_rows, sep="\t")
    broken.loc[20, "a"] = np.nan
    broken.to_csv(new_rows, sep="\t", index=False)
    with pytest.raises(ValueError, match="at row 20"):
        run([*predict, "--prediction_writer.output_path", str(out)], tmp_path)
    assert len(read_csv(out)) == 30 and not list(tmp_path.glob("*.part"))  # the earlier file, no partial one
    with pytest.raises(ValueError, match="--data.predict_file is scored by predict only; test takes the split's"):
        run(["test", "--ckpt_path", last, "--data.predict_file", str(new_rows)], tmp_path)  # had tested the split


@pytest.mark.parametrize(
    ("method", "text"), [("table", True), ("pu", False), ("improved", False), ("mixed_loss", False)]
)
def test_a_checkpoint_scores_dataframes_in_python_as_dagmm_predict_scores_its_file(method, text, tmp_path, monkeypatch):
    from dagmm_lightning import DAGMMDetector
    from dagmm_lightning.errors import ConfigurationError, DataError

    flows = table(tmp_path / "flows.csv")
    if not text:  # numeric columns only: scaled as the data module scales them (had: in float32, labels flipped),
        numeric = read_csv(flows).drop(columns="proto").rename(columns={"a": "x1", "b": "x0"})  # found by name
        numeric.to_csv(flows, index=False)  # (had: columns named x0, x1, ... taken by position)
    args = ["--config", f"configs/{method}.yaml", "--config", "configs/table.yaml", "--data.path", str(flows)]
    run(["fit", *args, "--data.label_column", "is_attack", "--trainer.max_epochs", "2"], tmp_path)
    last = str(next((tmp_path / "logs").rglob("last.ckpt")))
    rows = read_csv(flows).sample(60, random_state=1)  # anomalies among them
    rows.to_csv(tmp_path / "new.csv", index=False)
    out = tmp_path / "scores.csv"
    run(["predict", "--ckpt_path", last, "--data.predict_file", str(tmp_path / "new.csv")]
        + ["--prediction_writer.output_path", str(out)], tmp_path)  # fmt: skip
    written = read_csv(out)
    before = torch.get_rng_state()
    detector = DAGMMDetector.from_checkpoint(last)
    assert torch.equal(torch.get_rng_state(), before)  # the caller's draws go on as they would have
    # (mixed_loss: had "dagmm", whose fit would have trained without the labels)
    assert detector.variant == {"table": "dagmm", "pu": "pu", "improved": "dagmm", "mixed_loss": "mixed_loss"}[method]
    assert detector.contamination == (0.1 if method == "pu" else 0.05)  # the labels' share (configs: null)
    features = rows.drop(columns="is_attack")[["proto", "b", "a"] if text else ["x0", "x1"]]  # by name, any order
    np.testing.assert_array_equal(detector.decision_function(features), written["score"])
    np.testing.assert_array_equal(detector.predict(features), written["prediction"])
    assert 0 < written["prediction"].sum() < 60 or method == "pu"  # (2 epochs: PU's h may flag none)
    if text:  # the table's column order is not recorded: no columns by position (and no warning that says so)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(DataError, match=r"no names: .* pass a DataFrame with columns \['a', 'b', 'proto'\]"):
                detector.decision_function(features.set_axis(range(3), axis=1))
    else:  # the numeric columns' order is the table's
        unnamed = rows[["x1", "x0"]].to_numpy()
        with pytest.warns(UserWarning, match="X does not have valid feature names"):
            np.testing.assert_array_equal(detector.decision_function(unnamed), written["score"])
    np.testing.assert_array_equal(detector.decision_function(rows), written["score"])  # its label left out, as
    with pytest.raises(DataError, match=r"columns the detector was not fitted on: \['id'\]; drop them"):  # predict
        detector.decision_function(rows.assign(id=1))
    with pytest.raises(ConfigurationError, match="predict_proba needs the training rows' scores"):
        detector.predict_proba(features)
    with pytest.raises(DataError, match="is a Lightning checkpoint .*: DAGMMDetector.from_checkpoint loads it"):
        DAGMMDetector.load(last)
    if method == "table":
        fitted = DAGMMDetector(epochs=1, members=1, random_state=0).fit(features)
        fitted.save(tmp_path / "detector.pt")
        with pytest.raises(DataError, match="detector.pt was written by DAGMMDetector.save: DAGMMDetector.load loads"):
            DAGMMDetector.from_checkpoint(tmp_path / "detector.pt")  # had: a safe load refusing numpy's globals
        torch.save({"state_dict": {}, "hyper_parameters": {"lr": 0.1}}, tmp_path / "other.ckpt")
        with pytest.raises(DataError, match="holds no DAGMM model"):  # had: a TypeError from Lightning
            DAGMMDetector.from_checkpoint(tmp_path / "other.ckpt")
        (tmp_path / "broken_variants.py").write_text("class BrokenDAGMM(\n")
        monkeypatch.syspath_prepend(str(tmp_path))
        torch.save({"state_dict": {}, "hyper_parameters": {"_class_path": "broken_variants.BrokenDAGMM"}}, last)
        with pytest.raises(DataError, match=r"broken_variants.BrokenDAGMM model, which does not import here \(Syntax"):
            DAGMMDetector.from_checkpoint(last)  # had: the SyntaxError's traceback
        torch.save({"state_dict": {}, "hyper_parameters": {}, "datamodule_hyper_parameters": {"path": Path("t")}}, last)
        with pytest.raises(DataError, match=r"holds a pathlib.PosixPath, which a safe load .* \(a Path\? pass paths"):
            DAGMMDetector.from_checkpoint(last)  # had: 'not a checkpoint that dagmm fit wrote ... DAGMMDetector.load'


def test_a_checkpoint_tests_with_the_columns_it_was_trained_on(tmp_path):
    hosts = tmp_path / "hosts.csv"
    frame = read_csv(table(tmp_path / "flows.csv"))
    frame.assign(host=[f"h{i % 250}" for i in range(len(frame))]).to_csv(hosts, index=False)  # id-like now
    args = ["fit", "--config", "configs/table.yaml", "--data.path", str(hosts), "--data.label_column", "is_attack"]
    fitted = run([*args, "--data.symbolic_columns", "[proto, host]", "--trainer.max_epochs", "1"], tmp_path)
    last = next((tmp_path / "logs").rglob("last.ckpt"))
    checkpoint = torch.load(last, weights_only=True)
    checkpoint["datamodule_hyper_parameters"]["symbolic_columns"] = None  # as before ids were refused
    torch.save(checkpoint, last)
    tested = run(["test", "--ckpt_path", str(last)], tmp_path)
    assert tested.datamodule.input_dim == fitted.datamodule.input_dim == 2 + 2 + 250


def test_groups_of_anomalies_in_a_table_without_labels_score_above_its_normal_rows(tmp_path):
    # table.yaml's scoring fit is the network's own: improved.yaml's re-seeding gave the groups components of
    # their own (the unlabelled-table trial: 14 of 60 odd rows flagged; BENCHMARKS.md, section 13)
    (x, _), (x_new, y_new) = rows_with_groups_of_anomalies(0), rows_with_groups_of_anomalies(1)
    pd.DataFrame(x, columns=list("abcdef")).to_csv(tmp_path / "metrics.csv", index=False)
    args = ["fit", "--config", "configs/improved.yaml", "--config", "configs/table.yaml"]
    args += ["--data.path", str(tmp_path / "metrics.csv"), "--model.init_args.contamination", "0.02"]
    args += ["--model.init_args.members", "1", "--model.init_args.mixture", "gaussian", "--trainer.max_steps", "240"]
    reseeding = ["--model.init_args.fit_components", "auto", "--model.init_args.em_reseed", "0.05"]
    reseeding += ["--model.init_args.em_steps", "10"]  # (README: what brings improved.yaml's fit back)
    for extra, run_dir in (([], "table"), (reseeding, "reseeded")):
        with pytest.warns(UserWarning, match="no labels"):
            fitted = run([*args, *extra], tmp_path / run_dir)
        scores = DAGMMDetector.from_checkpoint(next((tmp_path / run_dir).rglob("last.ckpt")))
        auc = roc_auc_score(y_new, scores.decision_function(pd.DataFrame(x_new, columns=list("abcdef"))))
        if not extra:
            hp = fitted.model.hparams
            assert hp.fit_components is None and hp.em_reseed == 0 and hp.em_steps == 0
            assert auc > 0.9
        else:  # improved.yaml's own fit, for rows known to be normal
            assert fitted.model.model.components_reseeded > 0 and fitted.model.model.em_steps_run == 10 and auc < 0.2


def test_a_table_without_labels_asks_for_contamination_and_is_not_offered_a_test(tmp_path, caplog):
    flows = table(tmp_path / "flows.csv", labels=False)
    with (
        pytest.raises(ValueError, match="set --model.init_args.contamination"),
        pytest.warns(UserWarning, match="no labels"),
    ):
        run(["fit", "--config", "configs/table.yaml", "--data.path", str(flows), "--trainer.max_epochs", "1"], tmp_path)
    improved = ["fit", "--config", "configs/improved.yaml", "--config", "configs/table.yaml", "--data.path", str(flows)]
    with (
        caplog.at_level("INFO"),
        pytest.raises(ValueError, match="but the data has no labels: set --model.init_args.contamination"),
        pytest.warns(UserWarning, match="no labels"),
    ):
        run(improved, tmp_path / "sized")
    assert "networks sized from" not in caplog.text  # refused before the sizing (had: after it, and its summary)
    unlabelled = ["--model.init_args.contamination", "0.05", "--trainer.max_epochs", "1"]
    stopping = ["--trainer.callbacks+=EarlyStopping", "--trainer.callbacks.monitor", "val/reconstruction"]
    with pytest.warns(UserWarning, match="no labels") as seen:
        fitted = run(
            ["fit", "--config", "configs/table.yaml", "--data.path", str(flows), *unlabelled, *stopping], tmp_path
        )
    assert sum("rows without labels" in str(w.message) for w in seen) == 1  # had: at every validation
    assert fitted.trainer.callback_metrics["val/reconstruction"] > 0  # a value to monitor without labels (had: none)
    splits = fitted.datamodule.splits  # every row trains but val's tenth (had: the protocol's half, the rest test)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (360, 40, 0)
    summary = "\n".join(r.getMessage() for r in caplog.records if "fit finished" in r.getMessage())
    assert "next:        dagmm predict --ckpt_path" in summary and "dagmm test" not in summary  # nothing to test
    assert "table (no labels, split seed 0): train 360 rows, val 40 (no labels), test none" in summary
    assert re.search(r"no anomaly metrics \(the val rows need .*\); reconstruction \d+\.\d{4}  flagged_share", summary)
    last = str(next((tmp_path / "logs").rglob("last.ckpt")))
    with pytest.raises(ValueError, match=r"no labels, so no rows were kept to test .* --data.predict_file ROWS"):
        run(["test", "--ckpt_path", last], tmp_path)
    scored = tmp_path / "scored.csv"
    writer = ["--prediction_writer.output_path", str(scored)]
    run(["predict", "--ckpt_path", last, "--data.predict_file", str(flows), *writer], tmp_path)
    assert len(read_csv(scored)) == 400  # the table itself, every row
    caplog.clear()
    validated = run(["validate", "--ckpt_path", last], tmp_path).trainer.callback_metrics  # its val rows, no labels
    assert "(the checkpoint's: predict flags the rows scored above it)" in caplog.text  # not: "the *_threshold metrics"
    assert validated.keys() >= {"val/reconstruction", "val/flagged_share"} and "val/roc_auc" not in validated
    # a checkpoint of before (the protocol's half trained, the other half test): tested as then, on its test rows
    from dagmm_lightning.data import AnomalyDataModule

    before = AnomalyDataModule("table", path=str(flows), batch_size=256)
    before._half_unlabelled = True
    with pytest.warns(UserWarning, match="no labels"):
        before.setup("fit")
    checkpoint = torch.load(last, weights_only=False)
    state = next(v for v in checkpoint.values() if isinstance(v, dict) and "training_rows" in v)
    del state["unlabelled_rows"]
    state["training_rows"] = before.training_rows_fingerprint()
    state[TRAINING_VALUES] = before.training_values_fingerprint()
    state["preprocessor"] = before.preprocessor.state_dict()  # (scaled on those rows, as then)
    torch.save(checkpoint, tmp_path / "before.ckpt")
    with pytest.warns(UserWarning, match="rows without labels"):  # tested: no metrics (had: refused, other rows)
        tested = run(["test", "--ckpt_path", str(tmp_path / "before.ckpt")], tmp_path)
    assert len(tested.datamodule.splits.test) == len(before.splits.test) == 200
    edited = read_csv(flows)
    edited["a"] += 1.0  # the training rows' values: this is not the data of the checkpoint
    edited.to_csv(flows, index=False)
    with pytest.raises(ValueError, match=r"rows reordered or edited\): with the same split settings, this run's val"):
        run(["validate", "--ckpt_path", last], tmp_path)  # (had: 'test rows would overlap': there are none)
    for setting, what, fix in [  # (mixed: as for pu below, the detector that takes partial labels; had: not said)
        (
            "--data.split=mixed",
            "split 'mixed'",
            r" \(.*\(variant='mixed_loss'\) takes y\), or train with --data.split normal_only",
        ),
        ("--data.train_contamination=0.02", "train_contamination 0.02", ", or set it to 0"),
    ]:
        with pytest.raises(ValueError, match=rf"^{what} needs labels .*, but the table has none: .*label_column{fix}$"):
            run(["fit", "--config", "configs/table.yaml", "--data.path", str(flows), setting, *unlabelled], tmp_path)
    with pytest.raises(
        ValueError, match=r"labels labelled_fraction of the normal rows itself; .*\(variant='pu'\) takes y"
    ):
        run(
            ["fit", "--config", "configs/pu.yaml", "--config", "configs/table.yaml", "--data.path", str(flows)],
            tmp_path,
        )
    partly = tmp_path / "partly.csv"  # a real positive-unlabeled table: only some rows labelled
    read_csv(table(tmp_path / "flows.csv")).assign(is_attack=lambda f: f["is_attack"].where(f.index % 2 == 0)).to_csv(
        partly, index=False
    )
    pu = ["fit", "--config", "configs/pu.yaml", "--config", "configs/table.yaml", "--data.label_column", "is_attack"]
    with pytest.raises(
        ValueError, match=r"has no value at row 1 \(200 of 400 rows have none\); .* DAGMMDetector\(variant='pu'\)"
    ):
        run([*pu, "--data.path", str(partly)], tmp_path)
    mixed = ["--config", "configs/mixed_loss.yaml", *pu[3:], "--data.path", str(partly)]  # had: no way named
    with pytest.raises(ValueError, match=r"has no value at row 1 .*\(variant='mixed_loss'\) takes y with NaN or -1"):
        run(["fit", *mixed], tmp_path)
    plain = ["fit", "--config", "configs/table.yaml", *pu[5:], "--data.path", str(partly)]  # had: no way named
    with pytest.raises(ValueError, match=r"none\); every row needs 0/1 or true/false: fill them; for a table "):
        run(plain, tmp_path)
    for unknown in (-1, "unknown"):  # the unknown rows marked otherwise (had: 'map them to 0/1 first', no more)
        marked = tmp_path / "marked.csv"
        frame = read_csv(partly)
        frame["is_attack"] = (
            frame["is_attack"].astype("Int64").astype(object).where(frame["is_attack"].notna(), unknown)
        )
        frame.to_csv(marked, index=False)
        with pytest.raises(
            ValueError,
            match=rf"holds \['{unknown}'\]; map them to 0/1 first where they are labels; "
            r"for a table labelled in part \(never mark its unknown rows 0: .*\(variant='mixed_loss'\)",
        ):
            run([*plain[:-1], str(marked)], tmp_path)
        with pytest.raises(ValueError, match=rf"holds \['{unknown}'\].*\(variant='pu'\) takes y with NaN or -1"):
            run([*pu, "--data.path", str(marked)], tmp_path)
    normal = tmp_path / "normal.csv"
    read_csv(table(tmp_path / "flows.csv")).assign(is_attack=0).to_csv(normal, index=False)
    args = ["fit", "--config", "configs/table.yaml", "--data.path", str(normal), "--data.label_column", "is_attack"]
    with pytest.raises(ValueError, match="the labels mark no row as an anomaly"):
        run([*args, "--trainer.max_epochs", "1"], tmp_path)
    inverted = tmp_path / "inverted.csv"
    flipped = read_csv(table(tmp_path / "flows.csv"))
    flipped.assign(is_attack=1 - flipped["is_attack"]).to_csv(inverted, index=False)
    args[args.index(str(normal))] = str(inverted)  # had: contamination silently 0.5
    with pytest.raises(ValueError, match=r"the labels mark 9\d\.?\d* % of the rows as anomalies: are they inverted"):
        run([*args, "--trainer.max_epochs", "1"], tmp_path)
    pu = ["fit", "--config", "configs/pu.yaml", *args[1:]]  # its threshold is c / 2: contamination plays no part there
    with pytest.warns(UserWarning, match="c \\(and the threshold c / 2\\) is estimated from 1 held-out labelled row"):
        assert type(run([*pu, "--trainer.max_epochs", "1"], tmp_path).model).__name__ == "DAGMMPU"
    pu[pu.index(str(inverted))] = str(normal)  # no anomaly at all: PU trains (had: "the labels mark no row")
    assert type(run([*pu, "--trainer.max_epochs", "1"], tmp_path / "normal").model).__name__ == "DAGMMPU"


def test_a_run_stopped_by_a_data_error_leaves_no_empty_log_folder(tmp_path):
    flat = tmp_path / "flat.csv"
    pd.DataFrame({"a": np.full(30, 2.0), "b": np.full(30, -1.0), "label": [0] * 27 + [1] * 3}).to_csv(flat, index=False)
    args = ["fit", "--config", "configs/table.yaml", "--data.path", str(flat), "--data.label_column", "label"]
    with pytest.raises(ValueError, match="every feature is constant on the training rows"):
        run(args, tmp_path)
    assert list((tmp_path / "logs" / "lightning_logs").iterdir()) == []  # its version_0 was removed
    earlier = tmp_path / "logs" / "lightning_logs" / "exp1"  # a folder this run did not make is kept
    earlier.mkdir()
    (earlier / "hparams.yaml").write_text("{}\n")  # (events there: refused before the data is read)
    with pytest.raises(ValueError, match="every feature is constant"):
        run([*args, "--trainer.logger.init_args.version", "exp1"], tmp_path)
    assert (earlier / "hparams.yaml").exists()
    shutil.rmtree(earlier)
    run(["fit", "--config", "configs/quickstart.yaml", "--trainer.max_epochs", "1"], tmp_path)
    assert [p.name for p in (tmp_path / "logs" / "lightning_logs").iterdir()] == ["version_0"]  # a real run's stays


def test_help_lists_every_subcommand_without_importing_torch():
    code = "import sys; from dagmm_lightning.__main__ import main; main(['--help']); print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    for command in ("fit", "validate", "test", "predict", "benchmark"):
        assert f"\n  {command} " in result.stdout
    assert "A variant of your own (compression, mixture family, loss term, score): README, 'Your own variant'" in (
        result.stdout
    )  # (had: nothing pointed there)
    readme = (ROOT / "README.md").read_text()
    assert (
        "### Your own variant" in readme and "dagmm fit --config configs/quickstart.yaml --model my_variants." in readme
    )
    assert result.stdout.strip().endswith("False")


def test_the_command_ends_without_the_interpreters_teardown_once_its_atexit_functions_ran():
    # the teardown of every module took about 1 s after a run (torch, Lightning); a signal in it turned a
    # finished predict's exit code into 143 or 130
    code = """
import atexit, sys, threading
class Module:
    def __del__(self):
        print("torn down", flush=True)
kept = Module()  # (a module's global: the interpreter's teardown deletes it)
atexit.register(lambda: print("atexit ran"))
from dagmm_lightning.__main__ import exit_now
if sys.argv[1] == "thread":  # another thread still runs: the interpreter's own exit, which waits for it
    threading.Thread(target=lambda: threading.Event().wait(0.5)).start()
print("written", end="")  # (not flushed)
import ctypes
ctypes.CDLL(None).printf(b"C")  # a C library's print: stdio's buffer, block-buffered into a pipe
exit_now(eval(sys.argv[2]))
print(" and on")
"""
    buffered = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # (it unbuffers C's stdout too)
    for thread, given, returned in (("none", "3", 3), ("none", "None", 0), ("thread", "3", 3), ("none", "'x'", 1)):
        result = subprocess.run(
            [sys.executable, "-c", code, thread, given], capture_output=True, text=True, env=buffered
        )
        assert result.returncode == returned, result.stderr
        if thread == "none" and given != "'x'":
            assert result.stdout == "writtenatexit ran\nC"  # flushed (C's too, last), atexit run; no teardown
        else:  # Python's own exit (it waits for the thread; a text is printed as the error): with its teardown
            said = result.stdout.replace("C", "", 1)  # (C's buffer written first there)
            assert (
                "C" in result.stdout
                and said == "writtenatexit ran\ntorn down\n"
                and result.stderr.endswith("x\n" * (given == "'x'"))
            )


def test_a_sigterm_while_the_command_exits_ends_it_with_its_code_and_no_traceback():
    """A ddp run's launcher stops its other processes, and their parent's death signal comes, as the first
    process exits: a SIGTERM then (here: from an exit function) had raised StoppedBySigterm in the exit
    functions, 'Exception ignored in atexit callback' and a traceback after the run's last line."""
    code = """
import atexit, os, signal, sys, time
from dagmm_lightning.__main__ import exit_now, stop_on_sigterm
stop_on_sigterm()
def late():
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(2)
atexit.register(late)
print("done")
exit_now(int(sys.argv[1]))
"""
    for code_given in (0, 143):
        result = subprocess.run([sys.executable, "-c", code, str(code_given)], capture_output=True, text=True)
        assert result.returncode == code_given and result.stdout == "done\n" and not result.stderr, result.stderr


def test_a_detector_from_a_cli_checkpoint_in_a_script_of_its_own_warns_of_nothing(tmp_path):
    run(["fit", "--config", "configs/quickstart.yaml", "--trainer.max_epochs", "1"], tmp_path)
    last = next((tmp_path / "logs").rglob("last.ckpt"))
    code = "import sys; from dagmm_lightning import DAGMMDetector; DAGMMDetector.from_checkpoint(sys.argv[1])"
    env = {k: v for k, v in os.environ.items() if k != "JSONARGPARSE_DEPRECATION_WARNINGS"}  # (cli.py sets it)
    command = [sys.executable, "-W", "default", "-c", code, str(last)]
    loaded = subprocess.run(command, capture_output=True, text=True, env=env)
    assert loaded.returncode == 0 and "instantiate_classes" not in loaded.stderr  # had: jsonargparse's deprecation


def test_sigterm_while_a_fit_reads_its_data_stops_it_with_its_message_and_exit_143(tmp_path):
    code = """
import os, signal, sys
from dagmm_lightning.data.datamodule import AnomalyDataModule
setup = AnomalyDataModule.setup
def stopped(self, stage=None):  # a scheduler's stop while the rows are read (minutes for a large file)
    os.kill(os.getpid(), signal.SIGTERM)
    return setup(self, stage)
AnomalyDataModule.setup = stopped
sys.argv = ["dagmm", "fit", "--config", "configs/quickstart.yaml", "--trainer.default_root_dir", sys.argv[1]]
from dagmm_lightning.__main__ import script
script()
"""
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    said = result.stdout + result.stderr
    # had: ended at once by the signal (Lightning's handler comes after the data), without a word
    assert result.returncode == 128 + signal.SIGTERM and "fit interrupted before its first training step" in said
    assert not list(tmp_path.rglob("*.ckpt"))


def test_an_interrupted_fit_without_a_checkpoint_says_whether_it_began_training():
    import lightning as L

    from dagmm_lightning.cli import interrupted_fit_summary

    alone = L.Trainer(accelerator="cpu", devices=1, logger=False)
    assert interrupted_fit_summary(alone) == "fit interrupted before its first training step: nothing to go on from"
    assert interrupted_fit_summary(alone, "old/last.ckpt") == (
        "fit interrupted before its first training step; old/last.ckpt is as it was: go on from it"
    )
    # spawned: the steps ran in the workers (this process counts none): had "before its first training step"
    spawning = L.Trainer(accelerator="cpu", devices=2, strategy="ddp_spawn", logger=False)
    assert interrupted_fit_summary(spawning).startswith("fit interrupted; no checkpoint written yet")


SIGNAL_AT_START = """
import os, signal, sys
class SignalAtLightningsImport:
    def find_spec(self, name, path=None, target=None):
        if name == "lightning":
            os.kill(os.getpid(), signal.{signal})
sys.meta_path.insert(0, SignalAtLightningsImport())
sys.argv = ["dagmm", "fit", "--config", "configs/quickstart.yaml"{more}]
from dagmm_lightning.__main__ import script
script()
"""  # the command, sent a signal while Lightning imports (the seconds before a run handles signals itself)


def test_ctrl_c_while_the_command_starts_is_one_line_and_exit_130():
    # the handler is set here: CI's background run starts with SIGINT ignored
    code = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"
    code += SIGNAL_AT_START.format(signal="SIGINT", more="")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 130 and result.stderr == "dagmm: interrupted\n"  # had: an import traceback


def test_sigterm_before_a_run_handles_it_is_one_line_and_exit_143(tmp_path):
    # SIGTERM while the command starts (or reads a table out of core before its run: minutes)
    code = SIGNAL_AT_START.format(signal="SIGTERM", more="")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 143 and result.stderr == "dagmm: stopped by SIGTERM\n"  # had: no word at all
    ignored = "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"  # (nohup's, a trap's)
    ignored += SIGNAL_AT_START.format(signal="SIGTERM", more=', "--print_config"')
    result = subprocess.run([sys.executable, "-c", ignored], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0 and "stopped by SIGTERM" not in result.stderr  # ignored by choice: it stays so
    forked = """
import os, signal, sys
from dagmm_lightning.__main__ import stop_on_sigterm
stop_on_sigterm()
child = os.fork()
if child == 0:
    os.kill(os.getpid(), signal.SIGTERM)
    os._exit(0)
print(os.waitpid(child, 0)[1] & 0x7F)
"""
    result = subprocess.run([sys.executable, "-c", forked], capture_output=True, text=True, cwd=ROOT)
    assert result.stdout.strip() == str(int(signal.SIGTERM))  # a forked child dies of it, as by default


def test_version_is_the_projects(capsys):
    from dagmm_lightning.__main__ import main

    main(["--version"])
    pyproject = (ROOT / "pyproject.toml").read_text()  # read as text: Python 3.10 has no tomllib
    version = re.search(r'^version = "(.+)"$', pyproject, re.MULTILINE)[1]
    assert capsys.readouterr().out == f"dagmm {version}\n"


def test_a_model_class_help_under_python_m_names_the_dagmm_command():
    command = [sys.executable, "-m", "dagmm_lightning", "fit", "--model.help", "DAGMMVAE"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=True)
    assert result.stdout.startswith("usage: dagmm ") and "--model.beta" in result.stdout


@pytest.mark.parametrize(
    "variant, said, refused",
    [  # (had: the variants' help listed DAGMM's options as DAGMM's, without what the variant refuses)
        ("DAGMMPU", "``energy`` only: the score is the classifier's", {"inference": "energy+reconstruction"}),
        ("DAGMMVAE", "the only value of the VAE, VQ-VAE and positive-unlabeled", {"members": 2}),
        ("DAGMMVQVAE", "Not the VQ-VAE variant's", {"compile": True}),
    ],
)
def test_a_variants_help_says_the_settings_it_refuses(variant, said, refused, capsys):
    from dagmm_lightning import models
    from dagmm_lightning.__main__ import main

    with pytest.raises(SystemExit) as exit_:
        main(["fit", "--model.help", variant])
    assert exit_.value.code == 0 and said in " ".join(capsys.readouterr().out.split())
    with pytest.raises(ValueError):
        getattr(models, variant)(input_dim=4, **refused)


def test_dagmms_docstring_names_the_variants_that_refuse_members_and_compile():
    import inspect

    from dagmm_lightning import models

    named = {"DAGMMVAE": "VAE", "DAGMMVQVAE": "VQ-VAE", "DAGMMPU": "positive-unlabeled"}  # (a new variant: add it)
    variants = [c for _, c in inspect.getmembers(models, inspect.isclass) if issubclass(c, models.DAGMM)]
    doc = " ".join(models.DAGMM.__doc__.split())
    members = doc[doc.index("members: ") : doc.index("compile: ")]
    listed = re.search(r"the only value of the (.*?) variants", members)[1].replace(" and ", ", ").split(", ")
    assert sorted(listed) == sorted(named[c.__name__] for c in variants if not c.ensembles)
    compile_ = doc[doc.index("compile: ") : doc.index("steps_per_call: ")]
    assert [named[c.__name__] for c in variants if not c.compiles] == ["VQ-VAE"] and "Not the VQ-VAE" in compile_


def test_the_installed_command_imports_a_users_module_from_the_current_folder(tmp_path):
    # the console script's sys.path has its own folder, not the current one (python -m has that)
    script = shutil.which("dagmm")
    assert script is not None, "the dagmm command is installed (pip install -e .)"
    (tmp_path / "my_variants.py").write_text(
        "from dagmm_lightning.models import DAGMM\n\n\nclass Wider(DAGMM):\n    pass\n"
    )
    result = subprocess.run(
        [script, "fit", "--model.help", "my_variants.Wider"], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr  # had: No module named 'my_variants'
    assert "--model.latent_dim" in result.stdout


def test_a_configuration_error_is_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "dagmm_lightning", "fit", "--config", str(tmp_path / "no.yaml")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2 and lines[0] == f"dagmm: error: no such config file: {tmp_path / 'no.yaml'}"


def test_a_table_without_a_method_config_is_told_of_the_improved_method(tmp_path):
    flows = table(tmp_path / "flows.csv")
    data = ["--data.dataset", "table", "--data.path", str(flows), "--data.label_column", "is_attack"]
    with pytest.warns(UserWarning, match=r"no method config: .* --config configs/improved.yaml --config configs/tab"):
        run(["fit", *data, "--trainer.max_epochs", "1"], tmp_path / "a")  # had: the paper's KDDCUP99 model, silently
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run(["fit", "--config", "configs/table.yaml", *data[2:], "--trainer.max_steps", "2"], tmp_path / "b")
    assert not [w for w in caught if "no method config" in str(w.message)]


def test_a_missing_config_names_what_its_folder_holds(tmp_path, capsys, monkeypatch):
    from dagmm_lightning.__main__ import main

    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit):
        main(["fit", "--config", "configs/quickstar.yaml"])
    err = capsys.readouterr().err
    assert (
        "no such config file: configs/quickstar.yaml (configs/ holds dagmm.yaml, " in err and " quickstart.yaml," in err
    )
    with pytest.raises(SystemExit):
        main(["fit", "--config", "configs/laplacian.yaml"])  # (had: lmm.yaml in the list, unexplained)
    assert "vqvae.yaml; lmm.yaml: the Laplacian mixture)" in capsys.readouterr().err
    for args, name in (([], "configs/paper/thyroid"), (["configs/quickstart.yaml", "--data"], "configs/data/thyroid")):
        with pytest.raises(SystemExit):  # (had: jsonargparse's 'Parser key "config": File does not exist')
            main(["fit", "--config", *args, name])
        said = f"dagmm: error: no such config file: {name} (did you mean {name}.yaml?)"
        assert capsys.readouterr().err.splitlines()[0] == said
    with pytest.raises(SystemExit):
        main(["fit", "--config", "configs/nothing"])
    assert capsys.readouterr().err.startswith(
        "dagmm: error: no such config file: configs/nothing (configs/ holds dagmm"
    )
    with pytest.raises(SystemExit):
        main(["fit", "--config", "myrun"])  # a name without a folder (had: jsonargparse's 'File does not exist')
    assert capsys.readouterr().err.startswith("dagmm: error: no such config file: myrun\n")
    copied = tmp_path / "vae.yaml"  # a config copied away from the one it includes (had: the path alone)
    copied.write_text((ROOT / "configs/vae.yaml").read_text())
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(copied)])
    said = f"no such config file: {tmp_path / 'paper/kddcup99.yaml'} (included by {copied}: its config: paper/kdd"
    assert said in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)  # elsewhere, as a user of an installed package: no configs/ here
    with pytest.raises(SystemExit):
        main(["fit", "--config", "configs/quickstart.yaml"])
    assert "(configs/ is the repository's folder: run dagmm in the repository's root" in capsys.readouterr().err


def test_help_into_a_closed_pipe_is_no_traceback():
    for args in (["--help"], ["--version"]):  # as `dagmm --help | head -0`: had BrokenPipeError's traceback
        command = subprocess.Popen(
            [sys.executable, "-m", "dagmm_lightning", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT
        )
        command.stdout.close()  # the reader gone before the command writes (Python starts in ~50 ms)
        err = command.stderr.read().decode()
        assert command.wait() == 1 and err == "", err


def test_the_commands_own_warnings_are_lines_of_their_own(tmp_path):
    command = [sys.executable, "-m", "dagmm_lightning", "fit", "--config", str(ROOT / "configs/quickstart.yaml")]
    command += ["--config", str(ROOT / "configs/improvements.yaml")]  # (its cosine schedule counts the steps)
    command += ["--data.labelled_anomalies", "0.8", "--trainer.max_steps", "1", "--trainer.logger", "false"]
    command += ["--trainer.enable_progress_bar", "false", "--checkpoint.save_last", "false"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    # had: ".../dagmm_lightning/data/datamodule.py:170: labelled_anomalies ..."
    expected = "dagmm: warning: labelled_anomalies 0.8 is for split 'mixed'; with split 'normal_only' it plays no part"
    assert expected in result.stderr.splitlines()
    assert "datamodule.py" not in result.stderr
    assert "to estimate number of stepping batches" not in result.stderr + result.stdout  # (had: Lightning's note)


def test_only_the_commands_own_user_warnings_are_relabelled(monkeypatch):
    import warnings

    from dagmm_lightning import scoring
    from dagmm_lightning.__main__ import own_warnings_as_lines
    from dagmm_lightning.errors import DAGMMWarning

    def before(message, category, filename, lineno, line=None):  # Python's, or Lightning's, or an earlier main()'s
        return f"{filename}:{lineno}: {category.__name__}: {message}\n"

    monkeypatch.setattr(warnings, "formatwarning", before)  # (put back afterwards)
    own_warnings_as_lines()
    installed = warnings.formatwarning
    own_warnings_as_lines()  # main called again in the process: had wrapped its own wrapper
    assert warnings.formatwarning is installed is not before
    ours = scoring.__file__
    assert warnings.formatwarning("few rows", DAGMMWarning, "/elsewhere/cell.py", 8) == "dagmm: warning: few rows\n"
    numpy_like = warnings.formatwarning("invalid value encountered in divide", RuntimeWarning, ours, 80)
    assert numpy_like == before("invalid value encountered in divide", RuntimeWarning, ours, 80)  # had: relabelled
    lightnings = warnings.formatwarning("self.log called", UserWarning, ours, 80)  # its stacklevel in our hook
    assert lightnings == before("self.log called", UserWarning, ours, 80)
    elsewhere = warnings.formatwarning("x", UserWarning, "/elsewhere/module.py", 3)
    assert elsewhere == before("x", UserWarning, "/elsewhere/module.py", 3)


def test_a_warning_printed_while_a_progress_bar_is_drawn_starts_a_line_of_its_own(monkeypatch):
    import io
    import sys
    import warnings

    from tqdm import tqdm

    from dagmm_lightning.__main__ import own_warnings_as_lines
    from dagmm_lightning.errors import DAGMMWarning

    monkeypatch.setattr(warnings, "formatwarning", lambda message, *_, **__: f"{message}\n")  # (put back after)

    def python_s(message, category, filename, lineno, file=None, line=None):  # (pytest's records instead)
        (file or sys.stderr).write(warnings.formatwarning(message, category, filename, lineno, line))

    monkeypatch.setattr(warnings, "showwarning", python_s)
    own_warnings_as_lines()
    terminal = io.StringIO()
    monkeypatch.setattr(sys, "stderr", terminal)
    bar = tqdm(total=10, file=terminal, desc="Predicting DataLoader 0", mininterval=0)
    bar.update(3)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("column 'c' holds categories not seen in training", DAGMMWarning, stacklevel=1)
    bar.update(1)
    bar.close()
    before, after = terminal.getvalue().split("dagmm: warning: column 'c' holds categories not seen in training\n")
    assert before.endswith("\r") and before.split("\r")[-2].strip() == ""  # the bar cleared (had: '3/10 [...]')
    assert "Predicting DataLoader 0:  30%" in after  # and drawn again


def test_an_error_raised_while_a_progress_bar_is_drawn_starts_a_line_of_its_own(monkeypatch):
    import io
    import sys

    from tqdm import tqdm

    import dagmm_lightning.cli
    from dagmm_lightning.__main__ import main
    from dagmm_lightning.errors import DataError

    terminal = io.StringIO()
    monkeypatch.setattr(sys, "stderr", terminal)

    drawn = []

    def failing_predict(argv):
        drawn.append(tqdm(total=None, file=terminal, desc="Predicting", mininterval=0))  # drawn, not closed
        raise DataError("new.parquet has columns that share a name: ['x']; rename them")

    monkeypatch.setattr(dagmm_lightning.cli, "build_cli", failing_predict)
    with pytest.raises(SystemExit):
        main(["predict", "--ckpt_path", "last.ckpt"])
    assert "\ndagmm: error: new.parquet has columns that share a name" in terminal.getvalue()  # had: after the bar


QS = ["--config", "configs/quickstart.yaml"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["fti"], "no subcommand 'fti'; choose from fit, validate, test, predict, benchmark"),
        (  # (had: "Option 'model.init_args.hidden_dims' is not accepted before subcommand 'fit'")
            ["--config", "configs/quickstart.yaml", "fit", "--trainer.max_epochs", "2"],
            r"the subcommand comes first: dagmm fit --config configs/quickstart.yaml --trainer.max_epochs 2$",
        ),
        (["--seed_everything", "3"], r"no subcommand; give one first: dagmm \{fit,validate,test,predict,benchmark\}"),
        (  # a subcommand's name as an option's value is no subcommand
            ["--trainer.logger.init_args.name", "test", "fit", *QS],
            r"comes first: dagmm fit --trainer.logger.init_args.name test --config configs/quickstart.yaml$",
        ),
        (["fit"], "say what to train, e.g. 'dagmm fit --config configs/quickstart.yaml'"),
        (["predict"], "dagmm predict needs --ckpt_path"),
        (["test", "--ckpt_path", "no_such.ckpt"], "no such checkpoint file: no_such.ckpt"),
        (["test", "--ckpt_path", "configs"], "configs is a folder; give a checkpoint file$"),
        (["fit", "--config", "configs"], "configs is a folder, not a config file$"),
        (["validate", "--ckpt_path", "README.md"], "README.md is not a checkpoint that `dagmm fit` wrote"),
        (["benchmark", "--configs", "configs/quickstart.yaml", "--seeds", "0..2", "--out", "x"], "--seeds takes"),
        (["benchmark", "--suite", "no_such_folder", "--out", "x"], "no such folder: no_such_folder"),
        (["benchmark", "--suite", "data", "--detector", '{"epoch": 2}', "--out", "x"], r"\['epoch'\] are not"),
        (
            ["fit", *QS, "--model.init_args.mixture", "gausian"],
            r"--model.mixture: 'gausian' is not one of gaussian, "
            r"laplace, gaussian\+laplace \(did you mean 'gaussian'\?\)",
        ),
        (
            ["fit", *QS, "--model.init_args.mixtur", "gaussian"],
            r"--model.mixtur: \S*DAGMM has no such option \(did "
            r"you mean --model.mixture\?\)",
        ),
        (  # another variant's option: its class named, not a near name of this one's (had: lambda_cov?)
            ["fit", *QS, "--model.init_args.lambda_pu", "1"],
            r"--model.lambda_pu: \S*DAGMM has no such option; it is DAGMMPU's \(--model DAGMMPU, as configs/pu.yaml",
        ),
        (
            ["fit", *QS, "--model.init_args.beta", "1"],
            r"it is DAGMMVAE's \(--model DAGMMVAE, as configs/vae.yaml sets it\) and DAGMMVQVAE's \(--model DAGMMVQVAE",
        ),
        (  # the paper's names (had: lambda1 'did you mean --model.lambda_cov?', its lambda2; K no hint)
            ["fit", *QS, "--model.init_args.lambda1", "0.3"],
            r"--model.lambda1: \S*DAGMM has no such option \(the paper's lambda1 is --model.lambda_energy\)$",
        ),
        (["fit", *QS, "--model.init_args.K", "3"], r"\(the paper's K is --model.n_components\)$"),
        (["fit", *QS, "--lambda2", "0.1"], r"no option --lambda2 \(did you mean --model.init_args.lambda_cov\?\)$"),
        (["fit", *QS, "--data.protocl", "paper"], r"no option --data.protocl \(did you mean --data.protocol\?\)"),
        # no abbreviations: a truncated option is a typo, as any other
        (
            ["fit", *QS, "--trainer.max_epoch", "1"],
            r"no option --trainer.max_epoch \(did you mean --trainer.max_epochs",
        ),
        (
            ["benchmark", "--config", "configs/quickstart.yaml", "--out", "x"],
            r"no option --config \(did you mean --configs",
        ),
        (["fit", *QS, "--model.init_args.latent_dim", "abc"], "--model.latent_dim: expected int or null, got abc$"),
        (
            ["fit", *QS, "--trainer.precision", "bf16-mxed"],  # a union of Literals: one list of choices
            r"--trainer.precision: 'bf16-mxed' is not one of 64, 32, 16, .*bf16-mixed, .*, null "
            r"\(did you mean 'bf16-mixed'\?\)$",
        ),
        (
            ["fit", *QS, "--model", "DAGMMVE"],
            r"--model: no model DAGMMVE; choose from DAGMM, .*\(did you mean 'DAGMMVAE'\?\)",
        ),
        (["fit", "--model.help", "DAGMMM"], r"--model: no model DAGMMM; choose from .*\(did you mean 'DAGMM'\?\)"),
        (["fit", *QS, "--model", "DAGMMVae"], r"no model DAGMMVae; choose from .*\(did you mean 'DAGMMVAE'\?\)"),
        (["fit", *QS, "--trainer.accelerator", "gpuu"], "trainer settings: You selected an invalid accelerator"),
        (["benchmark", "--suite", "data", "--out", "x", "--jobs", "abc"], "--jobs: expected int, got abc$"),
        (  # (had: a traceback, since f9fc19a)
            ["benchmark", "--configs", "x", "--lr", "3"],
            r"no option --lr \(did you mean --set model.init_args.lr=VALUE\?\)$",
        ),
        (["benchmark", "--suite", "data", "--out", "x", "--jobs", "0"], "--jobs must be at least 1, got 0$"),
        (["benchmark"], r"give --configs CONFIG \.\.\. --out PATH, --suite DIR --out PATH, --report CSV"),
        (["fit", *QS, "--seed_everything", "-1"], r"seed_everything must be in \[0, 4294967295\] .*got -1$"),
        (["fit", *QS, "--data.seed", "-1"], r"seed must be in \[0, 4294967295\] \(numpy's seeds\), got -1$"),
        (["fit", *QS, "--data.eval_batch_size", "0"], "eval_batch_size must be >= 1, got 0$"),
        (["fit", *QS, "--model.init_args.lr", "fast"], "--model.lr: expected float, got fast$"),
        (["fit", *QS, "--checkpoint.monitor", "val/f1rho"], r"no metric .*\(did you mean 'val/f1_rho'\?\)"),
        (["fit", *QS, "--checkpoint.monitor", "roc_auc"], r"roc_auc: no metric .*\(did you mean 'val/roc_auc'\?\)"),
        (["fit", *QS, "--checkpoint.monitor", "val/c"], "val/c: no metric of that name is logged"),  # DAGMMPU's
        (  # had: Lightning's "could not find the monitored key" at the first validation, after training began
            [
                "fit",
                *QS,
                "--data.split",
                "mixed",
                "--data.labelled_anomalies",
                "1",
                "--checkpoint.monitor",
                "val/f1_rho",
            ],
            r"val/f1_rho: validation cannot log it, its 18 rows are all normal \(labelled_anomalies or "
            r"train_contamination moved its 2 anomalies into training\); .* or leave the option out",
        ),
        (
            ["fit", *QS, "--trainer.callbacks+=EarlyStopping", "--trainer.callbacks.monitor", "val/f1"],
            r"--trainer.callbacks.monitor \(EarlyStopping\) val/f1: no metric .*\(did you mean 'val/f1_rho'",
        ),  # had failed with a traceback once validation ran
        (["fit", *QS, "--data.label_column", "target"], "label_column is for dataset 'table'"),  # had been ignored
        (  # Lightning's ValueError came from deep in its loop, in a traceback
            ["fit", *QS, "--trainer.val_check_interval", "1000"],
            r"val_check_interval 1000 counts batches within an epoch \(check_val_every_n_epoch is 10\), which has 2:",
        ),
        (
            ["fit", *QS, "--trainer.barebones", "true"],
            "barebones true turns off what a dagmm run is for",
        ),  # object repr
        (  # a later --config sets it again: jsonargparse had dropped the option silently
            ["fit", "--trainer.max_epochs", "5", *QS],
            r"--trainer.max_epochs 5 comes before --config configs/quickstart.yaml, which sets it again: .* after",
        ),
        (["fit", "--seed_everything", "3", *QS], "--seed_everything 3 comes before --config .* give it after"),
        (  # benchmark's --data takes these; fit's had failed on "Group 'data' does not accept option 'model...'"
            ["fit", *QS, "--data", "configs/data/thyroid.yaml"],
            r"--data configs/data/thyroid.yaml is a whole config \(its data, model sections\): give it with --config",
        ),
        (["fit", "--model", "DAGMMVAE", *QS], "--model DAGMMVAE comes before --config .* give it after"),
        (
            [
                "fit",
                "--model.init_args.lr=0.1",
                "--config",
                "configs/vae.yaml",
                "--config",
                "configs/data/thyroid.yaml",
            ],
            r"--model.init_args.lr=0.1 comes before --config configs/vae.yaml, which sets it again",
        ),
        # Lightning's checks once the run starts: its message, in one line
        (["fit", *QS, "--trainer.limit_val_batches", "0.5"], r"requested to check 0.5 of the `val_dataloader`"),
        # Lightning had divided by zero in its loops (a traceback), or read -1 as every epoch
        (
            ["fit", *QS, "--trainer.check_val_every_n_epoch", "0"],
            r"check_val_every_n_epoch must be >= 1 or null .*got 0; --trainer.limit_val_batches 0 validates never$",
        ),
        (["fit", *QS, "--trainer.check_val_every_n_epoch", "-1"], r"check_val_every_n_epoch must be >= 1 .*got -1;"),
        (["fit", *QS, "--trainer.accumulate_grad_batches", "0"], "accumulate_grad_batches must be >= 1, got 0$"),
        (["fit", *QS, "--figures.max_points", "0"], "max_points must be >= 1, got 0$"),  # had: after training
        # a setting without its section, a config without --config (had: "did you mean --help?", and no hint)
        (["fit", *QS, "--lr", "0.1"], r"no option --lr \(did you mean --model.init_args.lr\?\)$"),
        (["fit", *QS, "--batch_size", "3"], r"no option --batch_size \(did you mean --data.batch_size\?\)$"),
        (
            ["fit", "configs/quickstart.yaml"],
            r"unrecognized arguments: configs/quickstart.yaml \(a config file\? give it with --config configs/quick",
        ),
    ],
)
def test_setting_and_option_mistakes_are_one_line_errors(args, message, capsys, in_root_like_folder):
    from dagmm_lightning.__main__ import main

    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("  ('dagmm ")]
    assert err[-1].startswith("dagmm: error:") and re.search(message, err[-1])


def test_a_config_with_a_subcommands_section_may_come_before_the_subcommand(tmp_path, monkeypatch):
    from dagmm_lightning.__main__ import subcommand_sections

    monkeypatch.chdir(ROOT)
    (tmp_path / "top.yaml").write_text("fit:\n  trainer:\n    max_epochs: 1\n")  # LightningCLI's way: taken
    assert subcommand_sections(["--config", str(tmp_path / "top.yaml")])
    assert subcommand_sections([f"-c={tmp_path / 'top.yaml'}"])
    assert not subcommand_sections(["--config", "configs/quickstart.yaml"])  # a method config: not before fit
    assert not subcommand_sections(["--config", str(tmp_path / "missing.yaml"), "--seed_everything", "3"])


def test_a_mistyped_checkpoint_name_is_given_the_near_one_of_its_folder(capsys, tmp_path):
    from dagmm_lightning.__main__ import main

    (tmp_path / "last.ckpt").write_bytes(b"")  # (its name is all that counts here)
    for name, near in (("lats.ckpt", f" (did you mean {tmp_path / 'last.ckpt'}?)"), ("other.ckpt", "")):
        with pytest.raises(SystemExit):
            main(["test", "--ckpt_path", str(tmp_path / name)])
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert err == f"dagmm: error: no such checkpoint file: {tmp_path / name}{near}"


def test_a_gpu_asked_for_where_torch_finds_none_says_what_to_give(capsys, monkeypatch, in_root_like_folder):
    import torch
    from lightning.pytorch.accelerators import CUDAAccelerator, MPSAccelerator

    from dagmm_lightning.__main__ import main

    # a machine without a GPU, wherever the test runs (Lightning asks its accelerators; our hint, torch)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(CUDAAccelerator, "is_available", staticmethod(lambda: False))
    monkeypatch.setattr(MPSAccelerator, "is_available", staticmethod(lambda: False))
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *QS, "--trainer.accelerator", "gpu"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]  # had: Lightning's "No supported gpu backend found!"
    assert err.startswith("dagmm: error: trainer settings: ") and err.endswith(
        "(torch finds no CUDA GPU here: --trainer.accelerator cpu, or auto to use one where any)"
    )


def test_a_resume_past_max_epochs_says_what_to_give(capsys, tmp_path, in_root_like_folder):
    from dagmm_lightning.__main__ import main

    quiet = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
    main(["fit", *QS, "--trainer.max_epochs", "2", *quiet])
    last = next((tmp_path / "logs").rglob("last.ckpt"))
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *QS, "--trainer.max_epochs", "1", "--ckpt_path", str(last), *quiet])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]  # had: Lightning's sentence alone
    assert err.startswith("dagmm: error: You restored a checkpoint with current_epoch=2, but")
    assert "trained 2 epochs already: give --trainer.max_epochs above 2 to train on (or test the checkpoint" in err


@pytest.mark.parametrize(
    "content, message",
    [
        # named with the file that sets them (had: as if given on the command line)
        (
            "trainer:\n  max_epoch: 1\n",
            r"no option --trainer.max_epoch \(in \S+mine.yaml\) \(did you mean --trainer.max_epochs\?\)$",
        ),
        (
            "model:\n  init_args:\n    latnet_dim: 3\n",
            r"--model.latnet_dim \(in \S+mine.yaml\): \S*DAGMM has no such option \(did you mean "
            r"--model.latent_dim\?\)$",
        ),
        # every unknown setting of the file at once (had: the first only, a run to find each of the others)
        (
            "trainer:\n  max_epoch: 1\n  limit_val_batchs: 1\n  logger:\n    init_args:\n      save_dir: x\n"
            "model:\n  init_args:\n    latnet_dim: 3\n    lr: 0.01\nseed_everythin: 1\n",
            r"--model.latnet_dim \(in \S+mine.yaml\): \S*DAGMM has no such option \(did you mean --model.latent_dim"
            r"\?\); \S+mine.yaml also sets seed_everythin \(did you mean seed_everything\?\), trainer.limit_val_batchs "
            r"\(did you mean trainer.limit_val_batches\?\), trainer.max_epoch \(did you mean trainer.max_epochs\?\): "
            r"no options either$",
        ),
        ("model:\n  init_args:\n    lr: fast\n", "--model.lr: expected float, got fast$"),
        ("model:\n  class_path: DAGMM\n  init_args:\n    lr: fast\n", "--model.lr: expected float, got fast$"),
        # jsonargparse names neither the file nor the line of these
        (
            "trainer:\n  max_epochs: [1\n",
            r"mine.yaml is not valid YAML: expected ',' or '\]', but got '<stream end>' at line 3, column 1 "
            r"\(while parsing a flow sequence from line 2, column 15\)$",
        ),
        ("trainer:\n\tmax_epochs: 1\n", r"mine.yaml is not valid YAML: found character '\\t' .* at line 2, column 1$"),
        ("", r"mine.yaml is empty; a config holds settings as KEY: VALUE lines"),
        ("- 1\n- 2\n", r"mine.yaml holds a YAML list, not settings as KEY: VALUE lines"),
        ("\x89PNG\r\n", r"mine.yaml is not a text file; a config is YAML$"),
        # a setting's line without its colon: YAML reads it as the section's text (had: "no class DAGMM ('str'
        # object has no attribute 'keys')", "Unable to load config 'batch_size 32'")
        (
            "model:\n  init_args:\n    lr 0.01\n",
            r"mine.yaml: model.init_args holds the text 'lr 0.01' where settings were expected: a missing colon "
            r"\(`lr: 0.01`\)\?$",
        ),
        ("data:\n  batch_size 32\n", r"mine.yaml: data holds the text 'batch_size 32' .* \(`batch_size: 32`\)\?$"),
    ],
)
def test_mistakes_in_a_config_file_read_as_on_the_command_line(tmp_path, content, message, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    from dagmm_lightning.__main__ import main

    (tmp_path / "mine.yaml").write_bytes(content.encode("latin-1"))
    with pytest.raises(SystemExit):
        main(["fit", *QS, "--config", str(tmp_path / "mine.yaml")])
    err = capsys.readouterr().err.strip().splitlines()
    hint = "  ('dagmm fit --help' lists the options; 'dagmm fit --model.help DAGMM' a model's)"  # (had: no model's)
    assert re.search(message, err[-2]) and err[-1] == hint


def test_a_variants_unknown_settings_are_matched_against_dagmms_too(tmp_path, capsys, monkeypatch):
    """DAGMMVAE takes DAGMM's settings through **kwargs: a misspelt one of those gets its 'did you mean'
    (had: none, the variant's own two settings the only ones compared)."""
    monkeypatch.chdir(ROOT)
    from dagmm_lightning.__main__ import main

    (tmp_path / "mine.yaml").write_text("model:\n  init_args:\n    lrr: 0.01\n    bta: 2\n")
    with pytest.raises(SystemExit):
        main(["fit", "--config", "configs/vae.yaml", "--config", str(tmp_path / "mine.yaml")])
    err, hint = capsys.readouterr().err.strip().splitlines()[-2:]
    assert hint == "  ('dagmm fit --help' lists the options; 'dagmm fit --model.help DAGMMVAE' a model's)"  # (had:
    # DAGMM: jsonargparse reads a config in its own folder, where configs/vae.yaml was not found)
    said = (
        r"\S*DAGMMVAE has no such option \(did you mean --model.(lr|beta)\?\); \S+mine.yaml also sets model.(lrr|bta) "
    )
    assert re.search(said + r"\(did you mean model.(lr|beta)\?\): no option either$", err), err


def test_an_unknown_setting_of_a_data_file_is_named_with_the_file(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    from dagmm_lightning.__main__ import main

    (tmp_path / "d.yaml").write_text("batch_sise: 3\n")  # --data FILE: the data section's keys
    with pytest.raises(SystemExit):
        main(["fit", *QS, "--data", str(tmp_path / "d.yaml")])
    expected = f"dagmm: error: no option --data.batch_sise (in {tmp_path / 'd.yaml'}) (did you mean --data.batch_size?)"
    assert capsys.readouterr().err.strip().splitlines()[0] == expected


@pytest.mark.parametrize(
    "args, model",
    [
        (["--config", "configs/vae.yaml"], "DAGMMVAE"),
        (["--config", "configs/quickstart.yaml", "--model", "DAGMMVQVAE"], "DAGMMVQVAE"),
        (["--config", "configs/quickstart.yaml"], "DAGMM"),
        (["--config", "configs/quickstart.yaml", "--model", "{class_path: DAGMMVAE}"], "DAGMMVAE"),  # (had: DAGMM)
        (["--config", "configs/quickstart.yaml", "--model.class_path", "DAGMMPU"], "DAGMMPU"),
    ],
)
def test_an_errors_hint_names_the_help_of_the_model_the_command_trains(args, model, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    from dagmm_lightning.__main__ import main

    with pytest.raises(SystemExit):
        main(["fit", *args, "--model.init_args.betta", "2"])
    hint = f"  ('dagmm fit --help' lists the options; 'dagmm fit --model.help {model}' a model's)"  # (had: DAGMM)
    assert capsys.readouterr().err.strip().splitlines()[-1] == hint


def test_a_config_file_named_with_a_space_is_no_missing_colon():
    from pathlib import Path

    from dagmm_lightning.cli import missing_colon

    assert missing_colon({"data": "my data.yaml", "model": {"class_path": "DAGMMVAE"}}, Path("c.yaml")) is None
    said = missing_colon({"trainer": {"max_epochs": 3}, "data": "batch_size 32"}, Path("c.yaml"))
    assert said == "c.yaml: data holds the text 'batch_size 32' where settings were expected: a missing colon " + (
        "(`batch_size: 32`)?"
    )


def test_a_broken_data_config_is_named_by_fit_and_benchmark(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    from dagmm_lightning.__main__ import main

    (tmp_path / "data.yaml").write_text("dataset: [thyroid\n")
    broken = f"{tmp_path / 'data.yaml'} is not valid YAML: expected ',' or ']'"
    for args, prefix in [
        (["fit", *QS, "--data", str(tmp_path / "data.yaml")], ""),
        (["benchmark", "--configs", "configs/quickstart.yaml", "--data", str(tmp_path / "data.yaml")], "--data: "),
        (["benchmark", "--configs", "configs/quickstart.yaml", "--data", str(tmp_path / "no.yaml")], "--data: "),
    ]:
        with pytest.raises(SystemExit):
            main([*args, "--out", str(tmp_path / "r")] if args[0] == "benchmark" else args)
        err = capsys.readouterr().err.strip().splitlines()
        expected = broken if "data.yaml" in args[-1] else f"no such config file: {tmp_path / 'no.yaml'}"
        assert err[0].startswith(f"dagmm: error: {prefix}{expected}") and len(err) == 2
    assert not (tmp_path / "r.csv").exists()


def test_configs_jsonargparse_reads_are_not_refused_before_it(tmp_path, capsys, monkeypatch):
    # JSON indented with tabs (libyaml takes it), a pipe (--config <(...)): the early check leaves them be
    monkeypatch.chdir(ROOT)
    from dagmm_lightning.__main__ import main

    (tmp_path / "tabs.json").write_text('{\n\t"trainer": {"max_epochs": 7}\n}\n')
    os.mkfifo(tmp_path / "pipe.yaml")
    writer = threading.Thread(target=lambda: (tmp_path / "pipe.yaml").write_text("model:\n  init_args:\n    lr: 0.5\n"))
    writer.start()
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "fit",
                *QS,
                "--config",
                str(tmp_path / "tabs.json"),
                "--config",
                str(tmp_path / "pipe.yaml"),
                "--print_config",
            ]
        )
    writer.join()
    out = capsys.readouterr().out
    assert exit_info.value.code in (0, None) and "max_epochs: 7" in out and "lr: 0.5" in out


def test_a_config_that_includes_a_variants_config_keeps_its_class_and_settings_or_is_refused(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(ROOT)
    from dagmm_lightning.__main__ import main

    vae, settings = ROOT / "configs/vae.yaml", "model:\n  init_args:\n    lr: 0.5\n"
    (tmp_path / "short.yaml").write_text("model: dagmm_lightning.models.DAGMMVAE\n")  # the class as a string
    refused = {  # each had trained with a setting or the class dropped, silently
        f"config: {vae}\n{settings}": r"\(which names dagmm_lightning.models.DAGMMVAE\) without a model class_path",
        f"config: short.yaml\n{settings}": r"\(which names dagmm_lightning.models.DAGMMVAE\) without a model class_pa",
        f"{settings}config: {vae}\n": "sets model.lr before its `config: .*vae.yaml` line, and that file sets it again",
    }
    for i, (content, message) in enumerate(refused.items()):
        (tmp_path / f"no{i}.yaml").write_text(content)
        with pytest.raises(SystemExit) as exit_info:
            main(["fit", "--config", str(tmp_path / f"no{i}.yaml"), "--print_config"])
        err = capsys.readouterr().err.strip().splitlines()
        assert exit_info.value.code == 2 and re.search(message, err[0]), err[0]
    named = settings.replace("model:\n", "model:\n  class_path: dagmm_lightning.models.DAGMMVAE\n")
    kept = {  # content: whether it trains DAGMMVAE
        f"config: {vae}\n{named}": True,
        f"config: {vae}\nmodel.init_args.lr: 0.5\n": True,
        f"model:\n  init_args:\n    em_steps: 3\nconfig: {vae}\ntrainer.max_epochs: 3\n": True,  # not vae.yaml's
        f"config: {ROOT / 'configs/dagmm.yaml'}\n{settings}": False,  # the default class: nothing to lose
    }
    for i, (content, variant) in enumerate(kept.items()):
        (tmp_path / f"ok{i}.yaml").write_text(content)
        with pytest.raises(SystemExit) as exit_info:
            main(["fit", "--config", str(tmp_path / f"ok{i}.yaml"), "--print_config"])
        out = capsys.readouterr().out
        assert exit_info.value.code in (0, None) and ("lr: 0.5" in out) == ("lr: 0.5" in content)
        assert ("DAGMMVAE" in out) == variant
        assert ("em_steps: 3" in out) == ("em_steps" in content)


def test_a_checkpoint_torch_cannot_read_is_said_so_in_a_few_words_without_the_unsafe_advice(tmp_path, capsys):
    from dagmm_lightning import DAGMMDetector
    from dagmm_lightning.__main__ import main as dagmm_main

    whole = tmp_path / "whole.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1000)}}, whole)
    (tmp_path / "cut.ckpt").write_bytes(whole.read_bytes()[:2000])  # a copy that stopped early
    (tmp_path / "text.ckpt").write_text("# notes\n")  # not a zip archive: read as a legacy pickle
    said = {}
    for name in ("cut.ckpt", "text.ckpt"):
        with pytest.raises(Exception) as caught:
            torch.load(tmp_path / name, weights_only=True)
        said[name] = torch_load_failure(caught.value)
        assert "weights_only" in str(caught.value) or "zip" in str(caught.value)  # torch's own text, as tested
    assert said["cut.ckpt"] == "damaged or cut short: not the whole zip archive torch.save writes"
    assert said["text.ckpt"] == "UnpicklingError: Unsupported operand 35"  # '#', after torch's advice (had: it)
    with pytest.raises(DataError, match=r"cut.ckpt is not a checkpoint that `dagmm fit` wrote \(damaged or cut short"):
        DAGMMDetector.from_checkpoint(tmp_path / "cut.ckpt")
    with pytest.raises(SystemExit):  # the command line's words (had: the error's class name alone)
        dagmm_main(["test", "--ckpt_path", str(tmp_path / "text.ckpt")])
    assert "text.ckpt is not a checkpoint that `dagmm fit` wrote (UnpicklingError: Unsupported operand 35)" in (
        capsys.readouterr().err
    )


def test_a_dagmm_setting_a_class_of_ones_own_does_not_take_names_no_variant_for_it(tmp_path, capsys, monkeypatch):
    """A variant takes DAGMM's settings through **kwargs: those are not a variant's own to point to where a
    class that does not pass them on refuses one (had: 'it is DAGMMVAE's ... and DAGMMPU's' for lr)."""
    from dagmm_lightning.__main__ import main
    from dagmm_lightning.cli import PARSED_CWD

    module = "from dagmm_lightning.models import DAGMM\n\n\nclass Small(DAGMM):\n"
    module += (
        "    def __init__(self, input_dim: int = 3, depth: int = 2):\n        super().__init__(input_dim=input_dim)\n"
    )
    (tmp_path / "small_variants.py").write_text(module)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(SystemExit):
        main(
            [
                "fit",
                "--config",
                str(ROOT / "configs/quickstart.yaml"),
                "--model",
                "small_variants.Small",
                "--model.lr",
                "1",
            ]
        )
    err = capsys.readouterr().err
    assert "small_variants.Small has no such option" in err and "DAGMMVAE's" not in err, err
    assert not PARSED_CWD  # (cleared once parsed: a later parser's error goes back to no stale folder)
