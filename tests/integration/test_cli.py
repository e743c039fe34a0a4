import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from dagmm_lightning import DAGMMDetector
from dagmm_lightning.callbacks import AnomalyMetrics, LastEpochCheckpoint
from dagmm_lightning.callbacks.metrics import anomaly_metrics
from dagmm_lightning.cli import NODE_LAUNCH_VARIABLES, build_cli, fit_log_folder, top_row
from dagmm_lightning.data.tables import SCALED_LIMIT
from dagmm_lightning.errors import DAGMMWarning
from dagmm_lightning.sizing import latent_cap

from ..conftest import QUICK, ROOT, read_csv
from ..events import logged_steps, logged_values

CONFIGS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "configs").rglob("*.yaml"))


pytestmark = pytest.mark.usefixtures("in_root")


def run(args, tmp_path):
    return build_cli([*args, "--trainer.logger.init_args.save_dir", str(tmp_path / "logs"), *QUICK])


@pytest.mark.parametrize("config", CONFIGS)
def test_print_config(config, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_cli(["fit", "--config", config, "--print_config"])
    assert exit_info.value.code in (0, None)
    assert "model:" in capsys.readouterr().out


def test_help_titles_the_options_of_each_class_with_a_whole_sentence():
    # `dagmm fit --help` heads each class's options with its docstring's first line: four had been cut mid-
    # sentence ("... ROC AUC and:")
    from dagmm_lightning.callbacks import AnomalyFigures, PredictionCSVWriter
    from dagmm_lightning.data import AnomalyDataModule
    from dagmm_lightning.models import DAGMM, DAGMMPU, DAGMMVAE, DAGMMVQVAE

    classes = [AnomalyMetrics, AnomalyFigures, PredictionCSVWriter, LastEpochCheckpoint, AnomalyDataModule]
    for cls in [*classes, DAGMM, DAGMMVAE, DAGMMVQVAE, DAGMMPU]:
        first, *rest = cls.__doc__.strip().splitlines()
        assert first.rstrip().endswith(".") and (not rest or not rest[0].strip()), (cls.__name__, first)


def test_fit_warns_where_other_work_keeps_the_cores_busy(tmp_path, monkeypatch):
    import os

    from dagmm_lightning import cores

    before = torch.get_num_threads()
    count = len(os.sched_getaffinity(0))
    monkeypatch.setattr(cores, "cores_busy", lambda seconds=0.25: float(count))  # every core busy elsewhere
    args = ["fit", "--config", "configs/quickstart.yaml", "--trainer.max_epochs", "1"]
    try:
        torch.set_num_threads(2)
        busy = rf"other work keeps {count}.0 of {count} cores busy, and torch runs 2 threads that wait on each other "
        with pytest.warns(UserWarning, match=busy + r"at every operator: the fit can take several times as long"):
            run(args, tmp_path / "two")
        last = str(next((tmp_path / "two").rglob("last.ckpt")))
        with pytest.warns(UserWarning, match=r"cores busy, and torch runs 2 .*: scoring can take several times"):
            run(["predict", "--ckpt_path", last], tmp_path / "two")  # a nightly job's (had: fit's warning only)
        torch.set_num_threads(1)  # (as OMP_NUM_THREADS=1 starts it)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run(args, tmp_path / "one")
        assert not [w for w in caught if "cores busy" in str(w.message)]
    finally:
        torch.set_num_threads(before)


def test_the_summary_model_line_names_what_sets_a_variant_apart():
    from types import SimpleNamespace

    from dagmm_lightning.cli import model_traits
    from dagmm_lightning.models import DAGMM

    mixed, normal_only = SimpleNamespace(split="mixed"), SimpleNamespace(split="normal_only")
    assert model_traits(DAGMM(input_dim=4), normal_only) == ""  # the paper's form: the class says it
    assert model_traits(DAGMM(input_dim=4, mixture="laplace"), normal_only) == "; mixture laplace"  # (lmm.yaml)
    both = DAGMM(input_dim=4, mixture="gaussian+laplace", members=5, inference="energy+reconstruction")
    assert model_traits(both, normal_only) == "; mixture gaussian+laplace, score energy+reconstruction, 5 members"
    hinge = "; labelled anomalies: the hinge term, margin 5"  # (mixed_loss.yaml; had: 'DAGMM' alone)
    assert model_traits(DAGMM(input_dim=4), mixed) == hinge and model_traits(DAGMM(input_dim=4), normal_only) == ""
    assert model_traits(DAGMM(input_dim=4, anomaly_loss="inverse"), mixed) == "; labelled anomalies: the inverse term"


def test_fit_without_checkpointing_writes_no_checkpoint(tmp_path, caplog):
    args = ["--config", "configs/quickstart.yaml", "--trainer.max_epochs", "1"]
    args += ["--trainer.enable_checkpointing", "false"]
    fitted = run(["fit", *args], tmp_path)
    assert fitted.trainer.checkpoint_callback is None and not list((tmp_path / "logs").rglob("*.ckpt"))
    assert "fit finished after 1 epoch;" in caplog.text and "checkpoint:" not in caplog.text
    assert "  model:       DAGMM (dagmm_lightning.models.dagmm)\n" in caplog.text  # which class trained (had: unsaid)
    caplog.clear()
    run(["fit", *args[:4], "--trainer.limit_val_batches", "0"], tmp_path)
    assert "validation:  off (no val rows, or --trainer.limit_val_batches 0)" in caplog.text
    caplog.clear()
    run(["fit", *args[:2], "--trainer.max_epochs", "0"], tmp_path)
    assert "checkpoint:  none written (no epoch trained)" in caplog.text and "next:" not in caplog.text


def test_a_fit_resumed_at_its_end_keeps_and_reports_the_checkpoints_fit_not_the_sanity_checks(tmp_path, caplog):
    args = ["fit", "--config", "configs/quickstart.yaml", "--trainer.max_epochs", "2"]
    fitted = run(args, tmp_path)
    last = next((tmp_path / "logs").rglob("last.ckpt"))
    saved = torch.load(last, weights_only=False)["state_dict"]
    metrics = {k: float(v) for k, v in fitted.trainer.callback_metrics.items() if k.startswith("val/")}
    caplog.clear()
    resumed = run([*args, "--ckpt_path", str(last)], tmp_path)  # between epochs: the sanity check runs
    assert "nothing trained" in caplog.text
    for name, value in resumed.model.state_dict().items():  # had: the sanity check's fit of the training rows
        torch.testing.assert_close(value, saved[name], rtol=0, atol=0, msg=name)  # (its threshold theirs)
    assert f"threshold:   {saved['model.calibration.threshold'].item():g} (the top 10 % of val rows'" in caplog.text
    assert f"f1_threshold {metrics['val/f1_threshold']:.4f}" in caplog.text
    caplog.clear()
    stopped = run([*args, "--checkpoint.save_weights_only", "true"], tmp_path / "weights")
    weights = next((tmp_path / "weights").rglob("last.ckpt"))
    from dagmm_lightning.cli import interrupted_fit_summary

    assert interrupted_fit_summary(stopped.trainer) == (  # as a stopped fit's (had: a go-on command, refused)
        f"fit interrupted; {weights} holds its first 2 epochs, weights only: test and predict take it, a fit "
        "cannot resume from it"
    )
    assert f"{weights} (its last epoch; weights only: test and predict take it, a fit cannot resume" in caplog.text
    folders = sorted((tmp_path / "weights").rglob("version_*"))
    with pytest.raises(ValueError, match=r"holds the model's weights only \(--checkpoint.save_weights_only true\)"):
        run([*args[:4], "3", "--ckpt_path", str(weights)], tmp_path / "weights")  # had: Lightning's KeyError
    assert sorted((tmp_path / "weights").rglob("version_*")) == folders  # (had: a stray version_N folder)
    run(["test", "--ckpt_path", str(weights)], tmp_path / "weights")  # what it is for


def test_fit_summary_counts_steps_and_shows_our_last_checkpoint_beside_a_users(tmp_path, caplog):
    fitted = run(["fit", "--config", "configs/quickstart.yaml", "--trainer.max_steps", "3"], tmp_path)
    per_epoch = fitted.trainer.num_training_batches
    assert per_epoch == 2 and fitted.trainer.global_step == 3  # so the second epoch ran half
    assert "fit finished after 3 steps (--trainer.max_steps), in 2 epochs;" in caplog.text  # had: after 2 epochs
    caplog.clear()
    last = next((tmp_path / "logs").rglob("last.ckpt"))
    args = ["fit", "--config", "configs/quickstart.yaml", "--trainer.max_steps", "3", "--ckpt_path", str(last)]
    run(args, tmp_path)  # resumed where it had ended: no step to take
    assert "nothing trained: the checkpoint resumed had reached the fit's end already (step 3); raise" in caplog.text
    assert "(the resumed fit, unchanged)" in caplog.text
    caplog.clear()
    run([*args[:4], "4", *args[5:]], tmp_path)
    assert "nothing trained" not in caplog.text and "fit finished after 4 steps" in caplog.text
    caplog.clear()
    run(["fit", "--config", "configs/quickstart.yaml", "--trainer.fast_dev_run", "1"], tmp_path / "dev")
    assert "fit finished after 1 step (--trainer.fast_dev_run), in 1 epoch;" in caplog.text  # had: 1 steps (max_steps)
    caplog.clear()
    added = ["--trainer.callbacks+=ModelCheckpoint", "--trainer.callbacks.monitor", "val/roc_auc"]
    added += ["--trainer.callbacks.mode", "max", "--trainer.check_val_every_n_epoch", "1"]
    fitted = run(["fit", "--config", "configs/quickstart.yaml", "--trainer.max_epochs", "2", *added], tmp_path / "b")
    user = fitted.trainer.checkpoint_callback  # Lightning's first: the one the user added, not --checkpoint's
    last = next((tmp_path / "b").rglob("last.ckpt"))
    assert user.best_model_path and not user.last_model_path
    assert (
        f"checkpoint:  {last} (its last epoch)" in caplog.text
        and f"next:        dagmm test --ckpt_path {last}" in caplog.text
    )
    assert f"best:        {user.best_model_path} (val/roc_auc {float(user.best_model_score):.4f})" in caplog.text
    caplog.clear()
    monitored = ["--checkpoint.monitor", "val/roc_auc", "--checkpoint.mode", "max", "--trainer.max_epochs", "1"]
    fitted = run(["fit", "--config", "configs/quickstart.yaml", *monitored], tmp_path / "c")  # validates every 10
    assert not fitted.trainer.checkpoint_callback.best_model_path  # had: not a word of it
    never = "best:        none written: no validation during the fit logged val/roc_auc (every 10 epochs: --trainer."
    assert never in caplog.text


def test_fit_summary_says_one_row_lies_above_a_contamination_under_one_row(tmp_path, caplog):
    rare = ["--model.init_args.contamination", "0.001", "--trainer.max_epochs", "1"]  # 0.02 of the 20 val rows
    fitted = run(["fit", "--config", "configs/quickstart.yaml", *rare], tmp_path)
    threshold = float(fitted.model.model.calibration.threshold)
    with torch.no_grad():
        scores = fitted.model.eval().score(torch.from_numpy(fitted.datamodule.arrays("val")[0])).numpy()
    assert len(scores) == 20 and int((scores > threshold).sum()) == 1  # numpy's quantile: between the top two
    said = "(the top 0.1 % of val rows' scores (not trained on), under one of 20 rows: the threshold lies between the"
    assert f"threshold:   {threshold:.6g} {said} two highest scores, so one row lies above it)" in caplog.text
    assert "about 0.02 of 20 rows" not in caplog.text  # had: beside flagged_share 0.05
    tied = torch.tensor([0.1, 0.2, 0.3, 0.5, 0.9, 0.9])  # the quantile at 0.1 of 6 rows: the tied top score
    threshold = float(np.quantile(tied.numpy(), 0.9))
    assert threshold == pytest.approx(0.9) and top_row(tied, threshold).endswith("so no row lies above it")
    assert top_row(tied[:-1], float(np.quantile(tied[:-1].numpy(), 0.9))).endswith("so one row lies above it")


def test_the_fit_summary_counts_the_few_val_rows_above_the_threshold(tmp_path, caplog):
    fit = ["fit", "--config", "configs/quickstart.yaml", "--trainer.max_epochs", "1"]
    fitted = run([*fit, "--model.init_args.contamination", "0.06"], tmp_path)  # 1.2 of 20 val rows
    threshold = float(fitted.model.model.calibration.threshold)
    with torch.no_grad():
        scores = fitted.model.eval().score(torch.from_numpy(fitted.datamodule.arrays("val")[0])).numpy()
    above = int((scores > threshold).sum())  # the quantile lies between two rows: 2 above it
    assert above == 2 and f"; {above} of 20 rows: a cut of so few rows is noisy" in caplog.text  # had: about 1.2


def test_fit_summary_shows_the_threshold_and_test_says_where_it_logged(tmp_path, caplog, capsys):
    predict_file = ["--data.predict_file", "new_rows.csv"]  # a config's, for predict: test does not refuse it
    fitted = run(["fit", "--config", "configs/quickstart.yaml", "--trainer.max_epochs", "1", *predict_file], tmp_path)
    threshold = float(fitted.model.model.calibration.threshold)
    with torch.no_grad():
        scores = fitted.model.eval().score(torch.from_numpy(fitted.datamodule.arrays("val")[0])).numpy()
    assert (scores > threshold).mean() == pytest.approx(0.1, abs=0.02)  # quickstart's contamination, of the val rows
    above = f"threshold:   {threshold:.6g} (the top 10 % of val rows' scores (not trained on) lie above"
    few = f"; 2 of {len(scores)} rows: a cut of so few rows is noisy"  # 20 val rows (had: not said)
    assert len(scores) == 20 and above + few in caplog.text
    last, saved = next((tmp_path / "logs").rglob("last.ckpt")), next((tmp_path / "logs").rglob("config.yaml"))
    with pytest.raises(SystemExit):  # the run's config.yaml holds ckpt_path: null, which had started afresh
        run(["fit", "--ckpt_path", str(last), "--config", str(saved)], tmp_path)
    assert f"--ckpt_path {last} comes before --config {saved}, which sets it again" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # it had printed the defaults (DAGMM on breast_cancer), not what runs
        build_cli(["test", "--ckpt_path", str(last), "--print_config"])
    assert f"brings its own settings; what it runs with is in the config.yaml its fit wrote ({saved})" in (
        capsys.readouterr().err
    )
    in_file = tmp_path / "test.yaml"  # the checkpoint named in a config file: as on the command line
    in_file.write_text(f"ckpt_path: {last}\n")
    with pytest.raises(SystemExit):
        build_cli(["test", "--config", str(in_file), "--print_config"])
    assert f"what it runs with is in the config.yaml its fit wrote ({saved})" in capsys.readouterr().err
    caplog.clear()
    tested = run(["test", "--ckpt_path", str(next((tmp_path / "logs").rglob("last.ckpt")))], tmp_path)
    assert f"logs:        {tested.trainer.log_dir}   (tensorboard --logdir {tmp_path / 'logs'})" in caplog.text
    # with no folder given, a checkpoint's test logs beside its fit (a new version), not in ./logs
    beside = build_cli(["test", "--ckpt_path", str(last), *QUICK])
    assert Path(beside.trainer.log_dir) == tmp_path / "logs" / "lightning_logs" / "version_2"
    elsewhere = build_cli(["test", "--ckpt_path", str(last), "--trainer.default_root_dir", str(tmp_path / "t"), *QUICK])
    assert Path(elsewhere.trainer.log_dir) == tmp_path / "t" / "lightning_logs" / "version_0"  # as given
    assert fit_log_folder(Path("runs/tb/version_3/checkpoints/last.ckpt")) == (Path("runs"), "tb")
    assert fit_log_folder(Path("runs/last.ckpt")) is None and fit_log_folder(Path("v/checkpoints/x.ckpt")) is None


def test_more_components_than_training_rows_are_refused(tmp_path):
    args = ["fit", "--config", "configs/quickstart.yaml", "--model.init_args.n_components", "200"]
    with pytest.raises(
        ValueError, match=r"n_components 200 is more than the 158 training rows: .* \(--model.init_args.n_comp"
    ):
        run([*args, "--trainer.max_epochs", "1"], tmp_path)


def test_a_csv_logger_fits_and_validates(tmp_path):
    csv_logger = ["--trainer.logger", "lightning.pytorch.loggers.CSVLogger"]
    run(["fit", "--config", "configs/quickstart.yaml", "--trainer.max_epochs", "1", *csv_logger], tmp_path)
    last = str(next((tmp_path / "logs").rglob("last.ckpt")))
    validated = run(["validate", "--ckpt_path", last, *csv_logger], tmp_path)  # hparams with metrics: TB only
    assert np.isfinite(validated.trainer.callback_metrics["val/roc_auc"])


def test_fit_then_test_and_predict_from_checkpoint_reproduce_scores(tmp_path):
    args = [
        "--config",
        "configs/quickstart.yaml",
        "--trainer.max_epochs",
        "3",
        "--trainer.check_val_every_n_epoch",
        "2",
    ]
    fitted = run(["fit", *args], tmp_path)
    model, dm = fitted.model, fitted.datamodule
    ckpts = list((tmp_path / "logs").rglob("*.ckpt"))
    assert len(ckpts) == 1
    model.eval()
    x_test, y_test = dm.arrays("test")
    with torch.no_grad():
        expected = model.score(torch.from_numpy(x_test)).numpy()
    assert np.isfinite(expected).all()
    # The last epoch had no validation, so the checkpoint hook refitted: buffers match the final weights.
    state = torch.load(ckpts[0], weights_only=False)["state_dict"]
    torch.testing.assert_close(state["model.mixture.means"], model.model.mixture.means)
    torch.testing.assert_close(state["model.calibration.threshold"], model.model.calibration.threshold)

    tested = run(["test", *args, "--ckpt_path", str(ckpts[0])], tmp_path)
    metrics = next(c for c in tested.trainer.callbacks if isinstance(c, AnomalyMetrics)).last_metrics["test"]
    reference = anomaly_metrics(
        expected, y_test, [10, 20, 30, 40, 50, 60], float(model.model.calibration.threshold), rho=10
    )
    assert metrics["f1_rho"] == metrics["f1_top10"]  # the embedded table's rho is 10 %
    threshold = float(model.model.calibration.threshold)
    reference["flagged_share"] = float(np.mean(expected > threshold))  # the threshold itself, the rows' own error:
    reference["threshold"] = threshold
    with torch.no_grad():
        x = torch.from_numpy(x_test).to(model.dtype)
        mask = model.model.input_mask  # (columns constant on the training rows: hidden from the encoder)
        x_hat = model.model.compression(x if mask is None else x * mask).x_hat  # (one member)
        reference["reconstruction"] = float(((x - x_hat) ** 2).sum(-1).mean())
    assert metrics == pytest.approx(reference)

    out = tmp_path / "predictions.csv"
    predicted = run(
        ["predict", *args, "--ckpt_path", str(ckpts[0]), "--prediction_writer.output_path", str(out)], tmp_path
    )
    # predict never refits: the loaded buffers are the checkpoint's
    torch.testing.assert_close(predicted.model.model.mixture.covariances, model.model.mixture.covariances)
    assert predicted.trainer.predict_loop.return_predictions is False  # the writer has them; no copy kept
    # predict logs nothing for TensorBoard: no event file in its version folder, where test's logged metrics
    # (had: one of the header alone, a run without data in TensorBoard's list)
    assert not list(Path(predicted.trainer.log_dir).glob("events.out.tfevents.*"))
    assert list(Path(tested.trainer.log_dir).glob("events.out.tfevents.*"))
    frame = read_csv(out)
    assert list(frame.columns) == ["index", "score", "prediction", "label"]
    np.testing.assert_array_equal(frame["index"], dm.splits.test)
    np.testing.assert_allclose(frame["score"], expected, rtol=1e-6)
    np.testing.assert_array_equal(frame["prediction"], expected > float(model.model.calibration.threshold))
    np.testing.assert_array_equal(frame["label"], y_test)


def test_a_checkpoint_whose_data_settings_name_every_share_tests_without_a_warning(tmp_path):
    fit = ["fit", "--config", "configs/quickstart.yaml", "--trainer.max_epochs", "1"]
    run(fit, tmp_path)
    last = next((tmp_path / "logs").rglob("last.ckpt"))
    checkpoint = torch.load(last, weights_only=True)
    assert checkpoint["datamodule_hyper_parameters"]["labelled_anomalies"] is None
    checkpoint["datamodule_hyper_parameters"].update(labelled_anomalies=0.5, labelled_fraction=0.5)  # as older fits
    torch.save(checkpoint, last)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tested = run(["test", "--config", "configs/quickstart.yaml", "--ckpt_path", str(last)], tmp_path)
    assert not [w for w in caught if "plays no part" in str(w.message)]
    assert tested.datamodule.split == "normal_only"
    with pytest.warns(UserWarning, match="labelled_fraction 0.3 is for split 'positive_unlabeled'"):
        run(["test", "--ckpt_path", str(last), "--data.labelled_fraction", "0.3"], tmp_path)  # given: still said


def test_a_resume_on_another_number_of_processes_says_it_trains_on_differently(tmp_path, caplog):
    from dagmm_lightning.models.dagmm import PROCESSES_KEY, THREADS_KEY

    fit = ["fit", "--config", "configs/quickstart.yaml", "--trainer.max_epochs", "2"]
    run(fit, tmp_path / "a")
    last = next((tmp_path / "a").rglob("last.ckpt"))
    checkpoint = torch.load(last, weights_only=False)
    threads = torch.get_num_threads()
    assert checkpoint[PROCESSES_KEY] == 1 and checkpoint[THREADS_KEY] == threads
    resume = [*fit[:-1], "3", "--ckpt_path", str(last)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run(resume, tmp_path / "b")  # as it was trained: not a word
    assert not [w for w in caught if "process(es)" in str(w.message)] and "thread(s)" not in caplog.text
    checkpoint[PROCESSES_KEY] = 2  # as a 2-process fit's checkpoint (a global batch twice as large)
    torch.save(checkpoint, last)
    with pytest.warns(UserWarning, match=r"^the checkpoint was trained by 2 process\(es\), this fit runs 1: each"):
        run(resume, tmp_path / "c")  # had: no notice
    checkpoint[PROCESSES_KEY], checkpoint[THREADS_KEY] = 1, threads + 1  # another machine's thread count
    torch.save(checkpoint, last)
    run(resume, tmp_path / "d")  # (had: not recorded; the README's reproducibility rests on it)
    told = f"the checkpoint's fit ran {threads + 1} torch thread(s) a process, this one {threads}: its weights go on"
    assert told in caplog.text and f"(OMP_NUM_THREADS={threads + 1} resumes as it ran)" in caplog.text


def test_a_fits_config_yaml_notes_its_thread_count_and_a_rerun_on_another_is_warned_of(tmp_path):
    run(["fit", "--config", "configs/quickstart.yaml", "--trainer.max_epochs", "1"], tmp_path / "a")
    saved = next((tmp_path / "a").rglob("config.yaml"))
    threads = torch.get_num_threads()
    text = saved.read_text()
    assert text.endswith(
        f"# dagmm: this fit ran {threads} torch thread(s) a process; on another count a fit of this "
        f"file trains other weights (OMP_NUM_THREADS={threads} repeats it)\n"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", DAGMMWarning)
        run(["fit", "--config", str(saved)], tmp_path / "b")  # the same count: not a word
    saved.write_text(text.replace(f"ran {threads} torch", f"ran {threads + 1} torch"))  # another machine's
    with pytest.warns(
        DAGMMWarning,
        match=rf"is a fit's config that ran {threads + 1} torch thread\(s\), this one runs "
        rf"{threads}: .* OMP_NUM_THREADS={threads + 1} repeats it",
    ):
        run(["fit", "--config", str(saved)], tmp_path / "c")  # had: other weights, unsaid (a user trial)


def test_scoring_a_checkpoint_at_another_precision_than_its_fits_is_warned_of(tmp_path):
    import lightning as L

    from dagmm_lightning.data import AnomalyDataModule
    from dagmm_lightning.models import DAGMM
    from dagmm_lightning.models.dagmm import PRECISION_KEY

    run(["fit", "--config", "configs/quickstart.yaml", "--trainer.max_epochs", "1"], tmp_path / "a")
    last = next((tmp_path / "a").rglob("last.ckpt"))
    assert torch.load(last, weights_only=False)[PRECISION_KEY] == "32-true"
    with warnings.catch_warnings():
        warnings.simplefilter("error", DAGMMWarning)
        run(["test", "--ckpt_path", str(last)], tmp_path / "b")  # as fitted: not a word
    with pytest.warns(
        DAGMMWarning,
        match=r"^test: precision bf16-mixed, the checkpoint's fit ran at 32-true: .* "
        r"--trainer.precision 32-true scores as the fit did",
    ):
        run(["test", "--ckpt_path", str(last), "--trainer.precision", "bf16-mixed"], tmp_path / "c")  # had: unsaid
    model = DAGMM.load_from_checkpoint(last)  # one model, scored twice: the second at another precision is said
    data = AnomalyDataModule("breast_cancer")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DAGMMWarning)
        L.Trainer(logger=False, enable_progress_bar=False, callbacks=[AnomalyMetrics()]).test(model, data)
    with pytest.warns(DAGMMWarning, match=r"^predict: precision bf16-mixed, the checkpoint's fit ran at 32-true"):
        L.Trainer(logger=False, enable_progress_bar=False, precision="bf16-mixed").predict(model, data)
    older = torch.load(last, weights_only=False)
    del older[PRECISION_KEY]  # saved before the key: its precision unknown, nothing said
    torch.save(older, last)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DAGMMWarning)
        run(["test", "--ckpt_path", str(last), "--trainer.precision", "bf16-mixed"], tmp_path / "d")


def test_the_fit_summary_suggests_a_file_of_the_data_sets_own_format_to_predict(tmp_path, caplog):
    args = ["fit", "--config", "configs/quickstart.yaml", "--config", "configs/data/thyroid.yaml"]
    run([*args, "--trainer.max_epochs", "1"], tmp_path)
    last = next(tmp_path.rglob("last.ckpt"))
    assert f"dagmm predict --ckpt_path {last} --data.predict_file ROWS.npz" in caplog.text  # had: ROWS.csv, refused


def test_a_split_without_val_rows_is_said_by_the_summary_not_by_lightnings_warning(tmp_path):
    import subprocess
    import sys

    rng = np.random.default_rng(0)
    table = pd.DataFrame({"a": rng.normal(size=12), "b": rng.normal(size=12), "label": [0] * 11 + [1]})
    table.to_csv(tmp_path / "tiny.csv", index=False)
    fit = ["fit", "--config", str(ROOT / "configs/quickstart.yaml"), "--config", str(ROOT / "configs/table.yaml")]
    fit += ["--trainer.max_epochs", "1", "--data.path", "tiny.csv", "--data.label_column", "label", *QUICK]
    # a process of its own: the CLI's warning filters as a user's run has them (pytest resets them per test)
    done = subprocess.run([sys.executable, "-m", "dagmm_lightning", *fit], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "val none" in done.stderr and "validation:  off (no val rows" in done.stderr
    assert "Total length of `InMemoryBatches`" not in done.stderr  # had: Lightning's warning beside them


VARIANT_CONFIGS = ["vae", "vqvae", "lmm", "mixed_loss", "mixed_loss_inverse", "recon_inference", "pu"]


@pytest.mark.parametrize("variant", VARIANT_CONFIGS)
def test_the_improvements_compose_after_every_variant_and_keep_it(variant, capsys):
    configs = [f"configs/{variant}.yaml", "configs/table.yaml", "configs/improvements.yaml"]
    alone, improved = [], []
    for printed, names in ((alone, configs[:2]), (improved, configs)):
        with pytest.raises(SystemExit):
            build_cli(["fit", *(a for c in names for a in ("--config", c)), "--print_config"])
        printed.append(capsys.readouterr().out)
    own = ("  class_path: dagmm", "    beta:", "    lambda_pu:", "    anomaly_loss:", "    mixture:", "    inference:")
    kept = [line for line in alone[0].splitlines() if line.startswith((*own, "  split:"))]
    assert kept and all(line in improved[0].splitlines() for line in kept)  # the variant's own settings stay
    assert "    hidden_dims: null" in improved[0] and "    lr: 0.01" in improved[0] and "lr: 0.0001" in alone[0]


def test_positive_unlabeled_on_a_table_with_the_improvements_trains(tmp_path):
    rows = np.random.default_rng(0).normal(size=(300, 4))
    rows[:15] += 4.0  # anomalies
    pd.DataFrame(rows, columns=list("abcd")).assign(y=[1] * 15 + [0] * 285).to_csv(tmp_path / "t.csv", index=False)
    configs = ["--config", "configs/pu.yaml", "--config", "configs/table.yaml", "--config", "configs/improvements.yaml"]
    fitted = run(["fit", *configs, "--data.path", str(tmp_path / "t.csv"), "--data.label_column", "y"]
                 + ["--trainer.max_steps", "40"], tmp_path)  # fmt: skip
    assert type(fitted.model).__name__ == "DAGMMPU" and fitted.model.hparams.latent_dim is not None  # sized
    assert fitted.model.hparams.hidden_dims != [60, 30, 10] and np.isfinite(float(fitted.model.model.c))


MODEL_CONFIGS = [c for c in CONFIGS if "/data/" not in c]


@pytest.mark.parametrize("config", MODEL_CONFIGS)
def test_every_config_trains_and_scores_on_small_data(config, tmp_path):
    args = ["fit", "--config", config, "--data.dataset", "breast_cancer", "--trainer.max_epochs", "2"]
    args += ["--trainer.check_val_every_n_epoch", "1", "--trainer.val_check_interval", "1.0"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fitted = run(args, tmp_path)
    # the positive-unlabeled split's val rows are labelled normal rows by design (had: a warning at every fit)
    assert not [w for w in caught if "every evaluated row" in str(w.message)]
    metrics = fitted.trainer.callback_metrics
    assert np.isfinite(float(metrics["train/loss"]))
    # the positive-unlabeled split validates on held-out labelled (normal) rows only: c, no ROC AUC
    assert np.isfinite(float(metrics["val/c" if "pu" in config else "val/roc_auc"]))
    assert np.isfinite(float(fitted.model.model.calibration.threshold))
    fitted.model.eval()
    x_test, _ = fitted.datamodule.arrays("test")
    with torch.no_grad():
        assert torch.isfinite(fitted.model.score(torch.from_numpy(x_test))).all()


@pytest.mark.data
def test_dagmm_config_trains_a_few_steps_on_kddcup99(tmp_path, paper_data):
    fitted = run(
        [
            "fit",
            "--config",
            "configs/dagmm.yaml",
            "--data.data_dir",
            str(paper_data),
            "--trainer.max_epochs",
            "1",
            "--trainer.limit_train_batches",
            "3",
            "--trainer.limit_val_batches",
            "2",
        ],
        tmp_path,
    )
    assert fitted.model.hparams.input_dim == 118
    assert np.isfinite(float(fitted.trainer.callback_metrics["train/loss"]))
    assert bool(fitted.model.model.mixture.is_fitted) and torch.isfinite(fitted.model.model.calibration.threshold)


def test_the_chosen_sizes_and_the_rows_the_scoring_fit_read_are_said(tmp_path, caplog):
    args = ["--config", "configs/improved.yaml", "--data.dataset", "breast_cancer", "--trainer.max_steps", "3"]
    fitted = run(["fit", *args, "--model.init_args.fit_rows", "50"], tmp_path)
    x_train, _ = fitted.datamodule.arrays("train")
    rows, hp = len(x_train), fitted.model.hparams
    read = 50  # a fixed random subset of the training rows
    assert fitted.model.model.rows_fitted == (read, rows) and read < rows
    # the fit scored its own rows only: every training row's scores are computed when asked for
    assert fitted.model._training_scores is None and len(fitted.model.training_scores()) == rows
    messages = [record.getMessage() for record in caplog.records]
    summary = next(message for message in messages if "fit finished" in message)
    assert f"fitted on {read} of the {rows} training rows, a fixed random subset (fit_rows)" in summary
    sized = next(message for message in messages if message.startswith("networks sized"))
    assert sized.startswith(f"networks sized from {rows} training rows of 30 features: latent {hp.latent_dim} (")
    assert sized.endswith(
        f"hidden widths {tuple(hp.hidden_dims)}, K 4; the mixture that scores: {hp.fit_components} components, "
        "fitted on 50 of those rows, a fixed random subset (fit_rows)"
    )


def test_a_fit_ending_between_validations_logs_its_last_fits_counts(tmp_path):
    args = ["--config", "configs/improved.yaml", "--data.dataset", "breast_cancer", "--trainer.max_steps", "12"]
    em = ["--model.init_args.em_steps", "50", "--model.init_args.em_tolerance", "0.001"]  # a count of its own
    fitted = run(["fit", *args, *em, "--trainer.val_check_interval", "100"], tmp_path)  # no validation in the fit
    logs = tmp_path / "logs"
    # had: only in the fit's summary (a user trial: the README says they are logged at each validation)
    assert logged_steps(logs, "train/em_steps") == logged_steps(logs, "val/roc_auc") == [11]
    assert logged_steps(logs, "train/components_reseeded") == [11]
    (value,) = logged_values(logs, "train/em_steps")
    assert value == fitted.model.model.em_steps_run > 0
    # the last checkpoint's record (a spawned fit's summary reads it) is of the fit it holds (had: the sanity
    # check's, on the initial weights: all 50 steps)
    saved = torch.load(fitted.trainer.checkpoint_callback.last_model_path, weights_only=False)["dagmm_fit_counts"]
    assert saved["em_steps"] == value < 50


def test_a_step_checkpoint_at_a_validation_logs_its_fits_counts_once_and_validation_scores_that_fit(tmp_path):
    args = ["--config", "configs/improved.yaml", "--data.dataset", "breast_cancer", "--trainer.max_steps", "24"]
    args += ["--model.init_args.em_steps", "50", "--model.init_args.em_tolerance", "0.001"]
    every = ["--trainer.val_check_interval", "6", "--checkpoint.every_n_train_steps", "12"]  # at every other one
    fitted = run(["fit", *args, *every, "--checkpoint.save_top_k", "-1"], tmp_path)
    logs = tmp_path / "logs"
    # the checkpoint, written just before the validation at its step, fits the mixture of its weights;
    # validation scores with that fit (had: fitted again, and the counts logged twice at each such step;
    # validations with and without a checkpoint before them in one fit must not upset Lightning's logging)
    assert logged_steps(logs, "train/em_steps") == logged_steps(logs, "val/roc_auc") == [5, 11, 17, 23]
    saved = {p.name: torch.load(p, weights_only=False)["dagmm_fit_counts"] for p in logs.rglob("epoch=*.ckpt")}
    by_step = [saved[f"epoch={step - 1}-step={step}.ckpt"]["em_steps"] for step in (12, 24)]
    assert logged_values(logs, "train/em_steps")[1::2] == by_step
    assert float(fitted.trainer.callback_metrics["train/em_steps"]) == by_step[-1]


def test_data_sized_model_keeps_its_sizes_and_em_refined_fit_in_the_checkpoint(tmp_path, caplog, monkeypatch):
    args = ["--config", "configs/improved.yaml", "--data.dataset", "breast_cancer", "--trainer.max_steps", "12"]
    em = ["--model.init_args.em_steps", "50", "--model.init_args.em_tolerance", "0.001"]
    em += ["--model.init_args.fit_components", "6", "--model.init_args.em_reseed", "0.1"]  # the network's 4 + 2
    fitted = run(["fit", *args, *em, "--trainer.val_check_interval", "6"], tmp_path)
    steps_run = fitted.model.model.em_steps_run
    assert 2 <= steps_run <= 50 and float(fitted.trainer.callback_metrics["train/em_steps"]) == steps_run
    summary = "\n".join(r.getMessage() for r in caplog.records if "fit finished" in r.getMessage())
    assert f"refined by {steps_run} EM steps (at most 50)" in summary
    assert "6 components (the estimation network's 4)" in summary and fitted.model.model.components_reseeded >= 1
    x_train, _ = fitted.datamodule.arrays("train")
    cumulative = np.cumsum(np.linalg.svd(x_train - x_train.mean(0), compute_uv=False) ** 2)
    latent = int(np.argmax(cumulative / cumulative[-1] >= 0.99)) + 1  # principal components for 99 %
    latent = min(latent, latent_cap(len(x_train), 4, 3))  # rows [z, 2 features, log error] the rows can fit, K = 4
    assert fitted.model.hparams.latent_dim == latent == fitted.model.model.compression.encoder[-1].out_features
    (ckpt,) = (tmp_path / "logs").rglob("last.ckpt")
    hyper_parameters = torch.load(ckpt, weights_only=False)["hyper_parameters"]
    assert hyper_parameters["latent_dim"] == latent and hyper_parameters["fit_components"] == 6
    fitted.model.eval()
    x_test, _ = fitted.datamodule.arrays("test")
    with torch.no_grad():
        expected = fitted.model.score(torch.from_numpy(x_test)).numpy()
    run(["predict", "--ckpt_path", str(ckpt), "--prediction_writer.output_path", str(tmp_path)], tmp_path)
    out = tmp_path / "predictions.csv"  # an existing folder: the file in it
    np.testing.assert_allclose(read_csv(out)["score"], expected, rtol=1e-6)
    new_folder = f"{tmp_path / 'new'}/"  # a name ending in /: a folder made for it (had: a file named 'new')
    run(["predict", "--ckpt_path", str(ckpt), "--prediction_writer.output_path", new_folder], tmp_path)
    pd.testing.assert_frame_equal(read_csv(tmp_path / "new/predictions.csv"), read_csv(out))
    for name in ("p.csv.gz", "p.CSV.BZ2"):  # compressed as named (had: plain text under the name)
        run(["predict", "--ckpt_path", str(ckpt), "--prediction_writer.output_path", str(tmp_path / name)], tmp_path)
        compression = "gzip" if name.endswith("gz") else "bz2"
        pd.testing.assert_frame_equal(read_csv(tmp_path / name, compression=compression), read_csv(out))
    for name in ("p.csv.zip", "p.tsv", "p"):  # (had: comma-separated plain text under each)
        with pytest.raises(ValueError, match=rf"output_path .*{name}: the predictions are CSV; name a .csv file"):
            run(
                ["predict", "--ckpt_path", str(ckpt), "--prediction_writer.output_path", str(tmp_path / name)], tmp_path
            )
        assert not (tmp_path / name).exists()
    with pytest.raises(ValueError, match="cannot write .*predictions.csv/x.csv: a file stands where its folder"):
        run(["predict", "--ckpt_path", str(ckpt), "--prediction_writer.output_path", str(out / "x.csv")], tmp_path)
    from dagmm_lightning.callbacks import predictions

    monkeypatch.setattr(predictions.secrets, "token_hex", lambda n: "0a1b2c3d")  # the run's part file, known
    (tmp_path / "kept.csv.0a1b2c3d.part").mkdir()  # where the rows are written first: cannot be opened as a file
    with pytest.raises(ValueError, match=r"cannot write .*kept.csv \(tried kept.csv.0a1b2c3d.part beside it\): Is a"):
        run(
            ["predict", "--ckpt_path", str(ckpt), "--prediction_writer.output_path", str(tmp_path / "kept.csv")],
            tmp_path,
        )
    import builtins
    import errno

    class FullDisk:  # the part file on a disk that fills up after its header line
        def __init__(self, path, *args, **kwargs):
            self.file = builtins.open(path, *args, **kwargs)

        def write(self, text):
            if self.file.tell():
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.file.write(text)

        def __getattr__(self, name):
            return getattr(self.file, name)

    monkeypatch.setattr(predictions, "open", FullDisk, raising=False)
    monkeypatch.setattr(predictions.secrets, "token_hex", lambda n: "feedbeef")
    with pytest.raises(ValueError) as full:  # (had: the OSError's traceback, and the part file left behind)
        run(["predict", "--ckpt_path", str(ckpt), "--prediction_writer.output_path", str(tmp_path / "f.csv")], tmp_path)
    said = f"cannot write {tmp_path / 'f.csv'}: No space left on device; free space there, or give --prediction_writer."
    assert str(full.value).startswith(said) and not list(tmp_path.glob("f.csv*"))


def test_fit_summary_says_when_training_scores_tie_at_the_threshold(tmp_path, caplog):
    rows = np.random.default_rng(0).normal(size=(400, 3))
    rows[:396] = rows[0]  # 99 % copies of one row: their scores tie, among the val rows too
    pd.DataFrame(rows, columns=list("abc")).to_csv(tmp_path / "copies.csv", index=False)
    table = ["--data.dataset", "table", "--data.path", str(tmp_path / "copies.csv")]
    for rows in ("train", "val"):
        caplog.clear()
        args = ["fit", "--config", "configs/quickstart.yaml", "--trainer.max_epochs", "1", *table]
        fitted = run([*args, "--model.init_args.threshold_rows", rows], tmp_path / rows)
        if rows == "train":
            scores = fitted.model.training_scores()
        else:
            with torch.no_grad():
                scores = fitted.model.eval().score(torch.from_numpy(fitted.datamodule.arrays("val")[0])).double()
        threshold = fitted.model.model.calibration.threshold
        tied = torch.isclose(scores, threshold.to(scores), rtol=1e-5).double()
        share = (scores > threshold).double().mean()
        assert share < 0.08 and tied.mean() > 0.9  # numpy's quantile of the scores lies on the tied value
        said = "training scores" if rows == "train" else "val rows' scores (not trained on)"
        assert f"{100 * float(share):.3g} % of {said} lie above, not 10 %: {100 * float(tied.mean()):.3g} % tie" in (
            caplog.text
        )


def test_a_resumed_checkpoint_counts_as_finished_only_at_the_trainers_limits():
    from types import SimpleNamespace

    from dagmm_lightning.cli import limits_reached

    # a spawned resume that wrote no checkpoint trained nothing only if the resumed one was at a limit
    by_steps = SimpleNamespace(max_steps=10, max_epochs=-1)
    assert limits_reached(by_steps, 3, 10) and not limits_reached(by_steps, 3, 9)
    by_epochs = SimpleNamespace(max_steps=-1, max_epochs=4)
    assert limits_reached(by_epochs, 4, 3) and not limits_reached(by_epochs, 3, 100)
    assert not limits_reached(SimpleNamespace(max_steps=-1, max_epochs=None), 10**6, 10**6)


def test_threshold_rows_val_sets_the_threshold_on_the_held_out_rows(tmp_path, caplog):
    args = ["fit", "--config", "configs/quickstart.yaml", "--trainer.max_epochs", "3"]
    fitted = run(args, tmp_path / "val")  # the default, auto: the val rows, since there are some
    x, y = fitted.datamodule.arrays("val")
    model = fitted.model.eval()
    with torch.no_grad():
        scores = model.score(torch.from_numpy(x)).double().numpy()  # every val row, its anomalies too
    threshold = float(model.model.calibration.threshold)
    assert 0 < (y == 1).sum() and threshold == pytest.approx(np.quantile(scores, 0.9), rel=1e-6)
    assert "of val rows' scores (not trained on) lie above" in caplog.text
    trained = run([*args, "--model.init_args.threshold_rows", "train"], tmp_path / "train")  # the same fit
    assert float(trained.model.model.calibration.threshold) == pytest.approx(
        np.quantile(trained.model.training_scores().numpy(), 0.9), rel=1e-6
    )
    last = next((tmp_path / "val").rglob("last.ckpt"))
    tested = run(["test", "--ckpt_path", str(last)], tmp_path / "val")  # the checkpoint keeps it
    assert float(tested.model.model.calibration.threshold) == threshold
    assert f"threshold:   {threshold:.6g} (the checkpoint's: the *_threshold metrics" in caplog.text  # had: none
    with pytest.raises(ValueError, match="threshold_rows 'val' sets the threshold on the val rows, but there are none"):
        run([*args, "--model.init_args.threshold_rows", "val", "--data.val_fraction", "0"], tmp_path / "none")
    unvalidated = run([*args, "--data.val_fraction", "0"], tmp_path / "auto")  # auto without val rows: training rows'
    assert float(unvalidated.model.model.calibration.threshold) == pytest.approx(
        np.quantile(unvalidated.model.training_scores().numpy(), 0.9), rel=1e-6
    )
    caplog.clear()
    thyroid = ["--data.dataset", "thyroid"]  # (pu.yaml's KDDCUP99 takes 5 s to load; these check the method's text)
    with warnings.catch_warnings(record=True) as caught:  # auto: c / 2
        warnings.simplefilter("always")
        pu = run(["fit", "--config", "configs/pu.yaml", *thyroid, "--trainer.max_epochs", "1"], tmp_path / "pu_auto")
    assert not [w for w in caught if "plays no part" in str(w.message)]  # pu.yaml keeps its base's contamination
    given = [
        "fit",
        "--config",
        "configs/pu.yaml",
        "--trainer.max_steps",
        "1",
        "--model.init_args.contamination",
        "0.05",
        *thyroid,
    ]
    with pytest.warns(UserWarning, match=r"contamination 0.05 plays no part for DAGMMPU: its threshold is c / 2"):
        run(given, tmp_path / "pu_given")  # had: taken without a word
    with warnings.catch_warnings(record=True) as caught:  # a data config's rho is the data set's, not a choice
        warnings.simplefilter("always")  # (had: the README's own pu.yaml + configs/data/thyroid.yaml warned)
        run(
            ["fit", "--config", "configs/pu.yaml", "--config", "configs/data/thyroid.yaml", *given[3:5]], tmp_path / "d"
        )
    assert not [w for w in caught if "plays no part" in str(w.message)]
    own = tmp_path / "own_pu.yaml"
    own.write_text(
        f"config: {ROOT / 'configs/pu.yaml'}\nmodel:\n  class_path: dagmm_lightning.models.DAGMMPU\n"
        "  init_args:\n    contamination: 0.05\n"
    )
    inline = ["--config", "configs/pu.yaml", "--model", '{"init_args": {"contamination": 0.05}}']
    for i, where in enumerate((["--config", str(own)], inline)):  # had: the command line's option only
        with pytest.warns(
            UserWarning, match=r"contamination 0.05 \(set in (--config .*own_pu.yaml|--model \{...\})\) plays"
        ):
            one_step = run(["fit", *where, *thyroid, "--trainer.max_steps", "1"], tmp_path / f"pu_given{i}")
    share, c_one = np.mean(one_step.datamodule.splits.train_labels == 0), float(one_step.model.model.c)
    assert 1 - share / c_one < 0.005  # after one step h is about the labelled share on every row
    hint = "c not clearly above that share: the estimate says little, the c/2 rule does not use it)"
    assert f"share {share:.4f} / c; {hint}" in caplog.text  # had: 'train longer', which well-trained c's also got
    c = float(pu.model.model.c)
    assert float(pu.model.model.calibration.threshold) == pytest.approx(1 - c / 2)
    labelled = np.mean(pu.datamodule.splits.train_labels == 0)  # Elkan and Noto: labelled share = c * normal share
    on_scores = f"predict's score is 1 - h, its threshold 1 - c/2 = {1 - c / 2:.6g})"  # as predict writes them
    assert f"validation:  c {c:.4f} (an anomaly where the classifier's h < c/2; {on_scores}" in caplog.text
    estimate = max(0, 1 - labelled / c)
    little = "; c not clearly above that share: the estimate says little" if estimate < 0.005 else ""
    assert f"by c, {100 * estimate:.3g} % of the training rows are anomalies (1 - their labelled share " in caplog.text
    assert f"{labelled:.4f} / c{little}" in caplog.text  # had: the hint whatever the share
    x_train, _ = pu.datamodule.arrays("train")
    with torch.no_grad():
        h = 1 - pu.model.eval().score(torch.from_numpy(np.asarray(x_train))).double().numpy()
    flagged = int((h < c / 2).sum())  # what predict would flag of them (had: not said; 0 passed unnoticed)
    line = f"c/2 flags {flagged:,} of the {len(h):,} training rows ({100 * flagged / len(h):.3g} %)"
    assert line + (": none, the classifier learned too little" if flagged == 0 else "\n") in caplog.text
    for rows in ("val", "train"):  # had: 'train' taken and ignored
        with pytest.raises(ValueError, match=f"threshold_rows '{rows}' is for a contamination quantile, not DAGMMPU's"):
            refused = ["--model.init_args.threshold_rows", rows, "--trainer.max_steps", "1"]  # (short, if not)
            run(["fit", "--config", "configs/pu.yaml", *thyroid, *refused], tmp_path / "pu")


def test_a_checkpoint_finds_its_data_from_another_folder(tmp_path, monkeypatch):
    args = ["--config", "configs/quickstart.yaml", "--trainer.max_epochs", "1"]
    run(["fit", *args, "--data.dataset", "thyroid"], tmp_path / "thyroid")  # data/thyroid.npz, relative
    flows = pd.DataFrame(np.random.default_rng(0).normal(size=(300, 3)), columns=list("abc"))
    flows.assign(y=np.r_[np.ones(15, int), np.zeros(285, int)]).to_csv(tmp_path / "flows.csv", index=False)
    monkeypatch.chdir(tmp_path)
    table = ["--data.dataset", "table", "--data.path", "flows.csv", "--data.label_column", "y"]
    run(["fit", "--config", str(ROOT / args[1]), *args[2:], *table], tmp_path / "table")  # flows.csv, relative
    monkeypatch.chdir(tmp_path / "table")  # neither data/ nor flows.csv here
    monkeypatch.delenv("DAGMM_DATA_DIR", raising=False)
    for name, data in (("thyroid", ROOT / "data"), ("table", tmp_path / "flows.csv")):
        tested = run(["test", "--ckpt_path", str(next((tmp_path / name).rglob("last.ckpt")))], tmp_path / name)
        assert (tested.datamodule.data_dir if name == "thyroid" else Path(tested.datamodule.path)) == data
        assert tested.datamodule.splits.test.size
    ckpt = str(next((tmp_path / "thyroid").rglob("last.ckpt")))
    tested = run(["test", "--ckpt_path", ckpt, "--data.data_dir", "null"], tmp_path / "thyroid")  # the default, as
    assert tested.datamodule.data_dir == ROOT / "data"  # a run's config.yaml holds it (had: 'data folder ... does
    # not exist' where a resume was given the run's config.yaml)
    (tmp_path / "flows.csv").rename(tmp_path / "moved.csv")
    ckpt = ["test", "--ckpt_path", str(next((tmp_path / "table").rglob("last.ckpt")))]
    with pytest.raises(ValueError) as refused:  # (had: 'no such file: flows.csv', as if the command had named it)
        run(ckpt, tmp_path / "table")
    assert str(refused.value) == (
        f"no such file: flows.csv, the table the checkpoint's fit read (at {tmp_path / 'flows.csv'} then); if it has "
        "moved, give --data.path where it is now"
    )
    assert run([*ckpt, "--data.path", str(tmp_path / "moved.csv")], tmp_path / "table").datamodule.splits.test.size


def test_a_checkpoint_of_arrays_given_in_python_is_refused_by_the_commands_in_a_line(tmp_path):
    import lightning as L

    from dagmm_lightning.data import AnomalyDataModule
    from dagmm_lightning.models import DAGMM

    x = np.random.default_rng(0).normal(size=(300, 4))
    data, model = AnomalyDataModule.from_arrays(x, np.r_[np.ones(10, int), np.zeros(290, int)]), DAGMM(input_dim=4)
    trainer = L.Trainer(max_epochs=1, default_root_dir=tmp_path, logger=False, enable_progress_bar=False)
    trainer.callbacks.append(LastEpochCheckpoint(dirpath=tmp_path, save_last=True))
    trainer.fit(model, data)
    last = str(tmp_path / "last.ckpt")
    said = f"{last} was trained on arrays given in Python .* DAGMMDetector.from_checkpoint\\(path\\) scores new rows"
    for command in (["test"], ["predict", "--data.predict_file", str(tmp_path / "rows.csv")]):
        with pytest.raises(ValueError, match=said):  # (had: jsonargparse's traceback, 'Expected a Literal[...]')
            run([*command, "--ckpt_path", last], tmp_path)
    assert DAGMMDetector.from_checkpoint(last).decision_function(x[:3]).shape == (3,)  # as said


def test_trainer_options_do_what_they_say(tmp_path, monkeypatch):
    args = ["fit", "--config", "configs/quickstart.yaml", "--trainer.max_epochs", "2"]
    seeds = []
    for i in (0, 1):  # each a new process, as two commands would be
        monkeypatch.delenv("PL_GLOBAL_SEED", raising=False)
        seeds.append(run([*args, "--seed_everything", "true"], tmp_path / f"s{i}").config.fit.seed_everything)
    assert seeds[0] != seeds[1]  # a random seed each (Lightning's own would be 0), and recorded:
    assert f"seed_everything: {seeds[0]}" in next((tmp_path / "s0").rglob("config.yaml")).read_text()
    monkeypatch.delenv("PL_GLOBAL_SEED", raising=False)
    with pytest.warns(
        UserWarning, match=r"seed_everything false: the weights start from an unseeded draw, so this fit"
    ):
        unseeded = run([*args, "--seed_everything", "false"], tmp_path / "u")  # had: silent
    assert unseeded.datamodule.resolved_seed == 0  # the split's, as said
    quiet = run([*args, "--trainer.log_every_n_steps", "0"], tmp_path / "q")
    assert quiet.trainer.log_every_n_steps == 0  # no step logging, not every step
    run([*args, "--checkpoint.every_n_train_steps", "3"], tmp_path / "n")
    assert sorted(p.name for p in (tmp_path / "n").rglob("*.ckpt")) == ["epoch=1-step=3.ckpt", "last.ckpt"]
    monkeypatch.chdir(tmp_path)
    run([*args[:2], str(ROOT / args[2]), "--trainer.fast_dev_run", "true"], tmp_path / "f")
    assert not [*(tmp_path / "f").rglob("*.ckpt"), *tmp_path.glob("logs/**/*.ckpt")]  # none with fast_dev_run
    monkeypatch.setenv("WORLD_SIZE", "2")  # launched separately (torchrun, several nodes): no shared random seed
    with pytest.raises(ValueError, match="separately launched processes .* would each draw their own seed"):
        run([*args[:2], str(ROOT / args[2]), "--seed_everything", "true"], tmp_path / "w")
    monkeypatch.delenv("WORLD_SIZE")
    for variable in NODE_LAUNCH_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    with pytest.raises(ValueError, match="num_nodes 2: nothing says where the other machines are"):
        run([*args[:2], str(ROOT / args[2]), "--trainer.num_nodes", "2"], tmp_path / "nodes")  # would wait forever
    assert not (tmp_path / "nodes").exists()


def test_a_second_fit_into_a_used_log_folder_is_refused_unless_it_goes_on_from_there(tmp_path):
    args = ["fit", "--config", "configs/quickstart.yaml", "--trainer.max_epochs", "1"]
    args += ["--trainer.logger.init_args.version", "mine"]
    run(args, tmp_path)
    folder = tmp_path / "logs" / "lightning_logs" / "mine"
    events = sorted(folder.glob("events.out.tfevents.*"))
    with pytest.raises(
        ValueError, match=r"mine holds an earlier run .* or go on with that run \(--ckpt_path its last.ckpt"
    ):
        run(args, tmp_path)  # had written a second run's events beside the first's, and last-v1.ckpt
    assert sorted(folder.glob("events.out.tfevents.*")) == events
    went_on = run(
        [*args[:-4], "--trainer.max_epochs", "2", *args[-2:], "--ckpt_path", str(folder / "checkpoints" / "last.ckpt")],
        tmp_path,
    )
    assert went_on.trainer.current_epoch == 2 and sorted(p.name for p in folder.rglob("*.ckpt")) == ["last.ckpt"]
    # without a logger, the checkpoints' folder (default_root_dir/checkpoints) tells: had written last-v1.ckpt
    plain = [*args[:-2], "--trainer.logger", "false", "--trainer.default_root_dir", str(tmp_path / "plain"), *QUICK]
    build_cli(plain)
    with pytest.raises(
        ValueError, match=r"checkpoints holds an earlier run .* give another --trainer.default_root_dir"
    ):
        build_cli(plain)
    assert [p.name for p in (tmp_path / "plain" / "checkpoints").iterdir()] == ["last.ckpt"]
    dirpath = ["--checkpoint.dirpath", str(tmp_path / "plain" / "checkpoints")]  # with a logger: its own folder
    with pytest.raises(ValueError, match=r"checkpoints holds an earlier run .* give another --checkpoint.dirpath"):
        run([*args[:-2], *dirpath], tmp_path)


def test_a_model_loaded_in_python_brings_its_data_state_to_test_and_predict(tmp_path, caplog):
    import lightning as L

    from dagmm_lightning.data import AnomalyDataModule, DataError
    from dagmm_lightning.models import DAGMM

    run(["fit", "--config", "configs/quickstart.yaml", "--trainer.max_epochs", "1"], tmp_path)
    last = next((tmp_path / "logs").rglob("last.ckpt"))
    quiet = dict(logger=False, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    quiet["default_root_dir"] = tmp_path  # the resumed fit below saves checkpoints there, not in the repository
    model = DAGMM.load_from_checkpoint(last)
    with pytest.raises(DataError, match=r"split differs from the checkpoint's \(seed 1, the checkpoint's 0\)"):
        L.Trainer(**quiet).test(model, datamodule=AnomalyDataModule("breast_cancer", seed=1))  # had: tested
    tester = L.Trainer(**quiet, callbacks=[AnomalyMetrics()])
    tested = tester.test(DAGMM.load_from_checkpoint(last), datamodule=AnomalyDataModule(seed=0))
    by_cli = run(["test", "--ckpt_path", str(last)], tmp_path).trainer.callback_metrics["test/roc_auc"]
    assert tested[0]["test/roc_auc"] == pytest.approx(float(by_cli))
    # a file scored by a data module of another split: scaled as the checkpoint scales, as dagmm predict does
    from sklearn.datasets import load_breast_cancer

    from dagmm_lightning.data import TablePreprocessor

    table = load_breast_cancer(as_frame=True).data.iloc[:40]
    table.to_csv(tmp_path / "rows.csv", index=False)
    other = AnomalyDataModule("breast_cancer", seed=1, predict_file=str(tmp_path / "rows.csv"))
    predicted = L.Trainer(**quiet).predict(DAGMM.load_from_checkpoint(last), datamodule=other)
    out = tmp_path / "scored.csv"
    run(
        ["predict", "--ckpt_path", str(last), "--data.predict_file", str(tmp_path / "rows.csv")]
        + ["--prediction_writer.output_path", str(out)],
        tmp_path,
    )
    np.testing.assert_allclose(torch.cat([p["score"] for p in predicted]).numpy(), read_csv(out)["score"], rtol=1e-6)
    flagged = int((read_csv(out)["prediction"] == 1).sum())  # had: not said (a PU fit's none went unnoticed)
    assert f"wrote 40 predictions to {out}; {flagged} flagged as anomalies ({100 * flagged / 40:.3g} %)" in caplog.text
    caplog.clear()
    run(  # again to the same file: replaced, and said so (had: silently)
        ["predict", "--ckpt_path", str(last), "--data.predict_file", str(tmp_path / "rows.csv")]
        + ["--prediction_writer.output_path", str(out)],
        tmp_path,
    )
    assert f"wrote 40 predictions to {out} (replacing an earlier file); {flagged} flagged" in caplog.text
    model.eval()
    scaling = TablePreprocessor()
    scaling.load_state_dict(torch.load(last, weights_only=False)["AnomalyDataModule"]["preprocessor"])
    x = scaling.scale(scaling.encode(table))  # float32 numpy: taken as it is
    with torch.no_grad():
        np.testing.assert_allclose(model.score(x).numpy(), read_csv(out)["score"], rtol=1e-5)
        np.testing.assert_array_equal(model(x).numpy(), model.score(x).numpy())  # had: NotImplementedError
        with pytest.raises(DataError, match=r"score takes rows \(N, 30\) of 30 encoded features, got shape \(40, 29\)"):
            model.score(x[:, :29])
        far, at_limit = x.astype(np.float64), x.astype(np.float64)
        far[3, 0], at_limit[3, 0] = 1e200, SCALED_LIMIT  # past float32: clipped as the preprocessor clips (had: NaN)
        np.testing.assert_array_equal(model.score(far).numpy(), model.score(at_limit).numpy())
        assert np.isfinite(model.score(far).numpy()).all() and model.score(far)[3] > model.score(x).max()
        huge = np.full((2, 30), np.iinfo(np.int64).max)  # integers whose float32 squares overflow: clipped too
        np.testing.assert_array_equal(model.score(huge).numpy(), model.score(np.full((2, 30), SCALED_LIMIT)).numpy())
        x[5, 2] = np.inf
        with pytest.raises(DataError, match="score takes finite rows: row 5 holds NaN or inf; fill or drop"):
            model.score(x)  # (had: NaN scores)
        x[5, 2] = at_limit[5, 2]
        with pytest.raises(ValueError, match="score needs eval mode: call model.eval"):  # had: fitted to the rows
            model.train().score(x)
    with torch.inference_mode():  # as Trainer.test's batches are
        batch = torch.from_numpy(x).float()
    # had: "Inference tensors cannot be saved for backward"
    scored = model.eval().score(batch).detach().numpy()
    np.testing.assert_allclose(scored, read_csv(out)["score"], rtol=1e-5, atol=1e-4)
    # other data (a table of new labelled rows): encoded and scaled as the checkpoint was, nothing to overlap
    labelled = table.assign(malignant=(load_breast_cancer().target[:40] == 0).astype(int))
    labelled.to_csv(tmp_path / "labelled.csv", index=False)
    new_rows = AnomalyDataModule("table", path=str(tmp_path / "labelled.csv"), label_column="malignant", seed=1)
    with pytest.warns(UserWarning, match=r"test: no AnomalyMetrics callback, so no metric is computed: give the"):
        L.Trainer(**quiet).test(DAGMM.load_from_checkpoint(last), datamodule=new_rows)  # had: refused, "overlap"
    np.testing.assert_array_equal(new_rows.preprocessor.minimum, scaling.minimum)
    # a checkpoint saved before threshold_rows keeps the training rows' threshold (also when a fit resumes it)
    old = torch.load(last, weights_only=False)
    del old["hyper_parameters"]["threshold_rows"]
    torch.save(old, tmp_path / "old.ckpt")
    assert DAGMM.load_from_checkpoint(tmp_path / "old.ckpt").hparams.threshold_rows == "train"
    resumed = DAGMM.load_from_checkpoint(last)
    L.Trainer(**quiet, max_epochs=2).fit(resumed, datamodule=AnomalyDataModule(seed=0), ckpt_path=last)
    assert resumed._trained_on is None  # trained in this process: no checkpoint's data state to restore later


def test_optimizer_options_say_what_they_replace_and_refuse_what_they_cannot(tmp_path, recwarn):
    quick = ["fit", "--config", "configs/quickstart.yaml", "--trainer.max_epochs", "1"]
    with pytest.raises(ValueError, match="--lr_scheduler takes effect only beside --optimizer"):  # had: ignored
        run([*quick, "--lr_scheduler", "StepLR", "--lr_scheduler.step_size", "5"], tmp_path)
    with pytest.raises(ValueError, match="--optimizer with --model.init_args.compile true: the compiled step"):
        run([*quick, "--optimizer", "SGD", "--optimizer.lr", "0.01", "--model.init_args.compile", "true"], tmp_path)
    fitted = run([*quick, "--optimizer", "SGD", "--optimizer.lr", "0.01"], tmp_path)
    assert isinstance(fitted.trainer.optimizers[0], torch.optim.SGD)
    said = [str(w.message) for w in recwarn]
    assert any("--optimizer SGD replaces the model's Adam: its lr and lr_schedule are not used" in m for m in said)
    assert not any("configure_optimizers` will be overridden" in m for m in said)  # Lightning's, said better above


def test_a_variant_whose_module_fails_to_import_is_named_with_that_failure(tmp_path, monkeypatch, capsys):
    import re

    (tmp_path / "broken_variant.py").write_text("import torch\nclass V(:\n    pass\n")
    flipped = "from dagmm_lightning import DAGMM\n\n\nclass Flip(DAGMM):\n    def score(self, x):\n        return -x\n"
    (tmp_path / "refused_variant.py").write_text(flipped)
    monkeypatch.syspath_prepend(str(tmp_path))
    for model, message in [
        ("broken_variant.V", r"--model: broken_variant.V does not import \(SyntaxError: invalid syntax"),
        (
            "refused_variant.Flip",
            r"refused_variant.Flip does not import \(TypeError: Flip overrides DAGMM.score, which",
        ),
    ]:
        with pytest.raises(SystemExit):
            run(["fit", "--config", "configs/quickstart.yaml", "--model", model], tmp_path)
        err = capsys.readouterr().err
        assert re.search(message, err), err  # had: "expected dagmm_lightning.models.dagmm.DAGMM or null, got ..."
    with pytest.raises(SystemExit):  # a value of another type: not imported as a module
        run(["fit", "--config", "configs/quickstart.yaml", "--trainer.max_epochs", "broken_variant.V"], tmp_path)
    assert "does not import" not in capsys.readouterr().err


def test_the_readmes_own_variant_trains_from_the_command_line_and_loads_in_python(tmp_path, monkeypatch):
    import re

    import lightning as L

    from dagmm_lightning.data import AnomalyDataModule

    readme = (ROOT / "README.md").read_text()
    (code,) = re.findall(r"```python\n(# my_variants.py\n.*?)```", readme, flags=re.S)
    (tmp_path / "my_variants.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    args = ["fit", "--config", "configs/quickstart.yaml", "--model", "my_variants.DeepDAGMM"]
    fitted = run([*args, "--trainer.max_epochs", "2"], tmp_path)
    assert type(fitted.model).__name__ == "DeepDAGMM" and fitted.model.model.compression.encoder[2].p == 0.1
    assert fitted.model.model.compression.encoder[0].out_features == 16  # the config's hidden_dims (had: 32)
    last = next((tmp_path / "logs").rglob("last.ckpt"))
    model = type(fitted.model).load_from_checkpoint(last)
    quiet = dict(logger=False, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    L.Trainer(**quiet, callbacks=[AnomalyMetrics()]).test(model, datamodule=AnomalyDataModule(seed=0))
    x, _ = fitted.datamodule.arrays("test")
    with torch.no_grad():
        scores = model.eval().score(x)
    assert scores.shape == (len(x),) and torch.isfinite(scores).all()
    with pytest.raises(
        ValueError, match=r"built for DAGMM's autoencoder, not DeepDAGMM, got 2; set members to 1 \(on the command"
    ):  # (had: no way out named)
        run([*args, "--model.init_args.members", "2"], tmp_path / "ensemble")
    trainer = L.Trainer(**quiet, max_epochs=1, callbacks=[AnomalyMetrics(), LastEpochCheckpoint(tmp_path / "own")])
    trainer.fit(type(fitted.model)(input_dim=30), datamodule=AnomalyDataModule(seed=0))  # trained in Python
    (own,) = (tmp_path / "own").glob("*.ckpt")
    tested = run(["test", "--ckpt_path", str(own)], tmp_path / "python")  # had: DAGMM built, its options refused
    assert type(tested.model).__name__ == "DeepDAGMM" and type(model).load_from_checkpoint(own).hparams.input_dim == 30
    from dagmm_lightning.models import DAGMMVAE

    trainer = L.Trainer(**quiet, max_epochs=1, callbacks=[AnomalyMetrics(), LastEpochCheckpoint(tmp_path / "vae")])
    trainer.fit(DAGMMVAE(input_dim=30, beta=0.5), datamodule=AnomalyDataModule(seed=0))  # __init__ takes **kwargs
    (vae,) = (tmp_path / "vae").glob("*.ckpt")
    assert DAGMMVAE.load_from_checkpoint(vae).hparams.beta == 0.5  # (a first try handed it _class_path)
    assert type(run(["test", "--ckpt_path", str(vae)], tmp_path / "python_vae").model) is DAGMMVAE
    import sys

    sys.path.remove(str(tmp_path))
    sys.modules.pop("my_variants")
    with pytest.raises(
        ValueError,
        match=r"holds a my_variants.DeepDAGMM model, which does not import here \(ModuleNotFoundError: .*\): put",
    ):
        run(["test", "--ckpt_path", str(last)], tmp_path)  # had: a stray line from Lightning after the error
    namespace = {"__name__": "__main__"}  # the README's class as a notebook defines it, my_variants not importable
    exec(compile(code, "<notebook>", "exec"), namespace)
    detector = DAGMMDetector.from_checkpoint(last, variant=namespace["DeepDAGMM"])  # had: Lightning's import error
    assert type(detector.model_) is namespace["DeepDAGMM"] and np.isfinite(detector.threshold_)
    with torch.no_grad():
        assert torch.equal(detector.model_.score(x), scores)  # the checkpoint's weights and fitted mixture


def test_a_second_metrics_callback_in_trainer_callbacks_is_refused(tmp_path, monkeypatch):
    # (it had run, and TensorBoard's val/f1_top20 was the mean of the two callbacks' values)
    extra = ["--trainer.callbacks+=AnomalyMetrics", "--trainer.callbacks.percentiles", "[20]"]
    with pytest.raises(
        ValueError, match=r"adds another AnomalyMetrics beside the one every dagmm command has \(--metrics\)"
    ):
        run(["fit", "--config", "configs/quickstart.yaml", *extra], tmp_path)
    assert not (tmp_path / "logs").exists()  # refused before training
    for extra in (
        ["--trainer.callbacks+=dagmm_lightning.callbacks.AnomalyFigures"],
        ["--trainer.callbacks", "AnomalyFigures"],
    ):
        with pytest.raises(
            ValueError, match=r"another AnomalyFigures beside the one every dagmm command has \(--figures\)"
        ):
            run(["fit", "--config", "configs/quickstart.yaml", *extra], tmp_path)  # (alone, without +=: had crashed)
    (tmp_path / "my_callbacks.py").write_text(
        "from dagmm_lightning.callbacks import PredictionCSVWriter\n\n\nclass Mine(PredictionCSVWriter):\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError, match=r"a subclass of PredictionCSVWriter .*: use yours with a Trainer of your own"):
        run(["fit", "--config", "configs/quickstart.yaml", "--trainer.callbacks+=my_callbacks.Mine"], tmp_path)
    args = ["--trainer.callbacks", "EarlyStopping", "--trainer.callbacks.monitor", "val/roc_auc"]
    run(["fit", "--config", "configs/quickstart.yaml", "--trainer.max_epochs", "1", *args], tmp_path)  # had: crashed


def test_a_metric_that_needs_labels_monitored_on_a_table_without_them_is_refused_before_training(tmp_path):
    # (a user trial: Lightning's "could not find the monitored key" once the first validation had run)
    rows = pd.DataFrame(np.random.default_rng(0).normal(size=(200, 3)), columns=["a", "b", "c"])
    rows.to_csv(tmp_path / "rows.csv", index=False)
    data = ["--data.path", str(tmp_path / "rows.csv"), "--model.init_args.contamination", "0.05"]
    for monitor, refused in (("val/roc_auc", True), ("val/f1_top20", True), ("val/reconstruction", False)):
        args = ["fit", "--config", "configs/table.yaml", *data, "--trainer.max_steps", "2"]
        args += ["--checkpoint.monitor", monitor, "--checkpoint.mode", "min"]
        if refused:
            with pytest.raises(
                ValueError,
                match=rf"^--checkpoint.monitor {monitor}: validation cannot log it, the data has no labels; ",
            ):
                run(args, tmp_path / monitor[4:])
            assert not (tmp_path / monitor[4:] / "logs").exists()
        else:
            run(args, tmp_path / monitor[4:])  # logged without labels


def test_a_monitored_checkpoint_waits_for_the_validations_without_being_told_to(tmp_path):
    # (a user trial: without --checkpoint.save_on_train_epoch_end false, Lightning's "could not find the
    # monitored key" at the first epoch's end, before any validation had logged it)
    args = ["fit", "--config", "configs/quickstart.yaml", "--trainer.max_epochs", "4"]
    args += [
        "--trainer.check_val_every_n_epoch",
        "2",
        "--checkpoint.monitor",
        "val/roc_auc",
        "--checkpoint.mode",
        "max",
    ]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fitted = run(args, tmp_path)
    assert not [w for w in caught if "could not find the monitored key" in str(w.message)]
    best = Path(fitted.trainer.checkpoint_callback.best_model_path)
    assert best.name in ("epoch=1-step=4.ckpt", "epoch=3-step=8.ckpt")  # at a validation's end
    assert (best.parent / "last.ckpt").is_file()


def test_the_fit_summary_says_what_became_of_each_column(tmp_path, caplog):
    # (a user trial: only 'networks sized from ... of 16 features'; the one-hot encoding and the missing-value
    # category were found only in the checkpoint)
    rng = np.random.default_rng(0)
    n = 400
    table = pd.DataFrame(
        {
            "txn_id": [f"T{i}" for i in range(n)],
            "age": rng.normal(40, 10, n),
            "flat": 1.0,
            "merchant": rng.choice(["food", "fuel", "travel", None], n),
            "online": rng.random(n) < 0.3,
            "region": "north",
            "is_fraud": (rng.random(n) < 0.05).astype(int),
        }
    )
    table.to_csv(tmp_path / "tx.csv", index=False)
    data = ["--data.path", str(tmp_path / "tx.csv"), "--data.label_column", "is_fraud"]
    data += ["--data.ignore_columns", "[txn_id]", "--trainer.max_steps", "2"]
    fitted = run(["fit", "--config", "configs/table.yaml", *data], tmp_path)
    summary = "\n".join(r.getMessage() for r in caplog.records if "fit finished" in r.getMessage())
    columns = next(line for line in summary.splitlines() if line.startswith("  columns:"))
    assert columns == (
        "  columns:     2 numbers (age, flat); 3 one-hot encoded as 7 features (merchant: 4 categories, missing "
        "values one of them, online: 2 categories, region: 1 category); constant on the training rows: flat, "
        "region; left out: txn_id (ignore_columns); labels: is_fraud"
    )  # (region, one category, had been left out of the constant ones)
    assert fitted.model.hparams.input_dim == 2 + 7  # as the line counts them
