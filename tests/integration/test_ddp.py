"""Multi-process behaviour on CPU: 2 ``ddp_spawn`` processes (gloo) against 1 process; one test runs the
README's ``ddp`` command."""

import os
import subprocess
import sys

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from dagmm_lightning.callbacks import AnomalyMetrics, PredictionCSVWriter
from dagmm_lightning.data import AnomalyDataModule
from dagmm_lightning.distributed import rank
from dagmm_lightning.models import DAGMM
from dagmm_lightning.sizing import latent_cap, latent_size

from ..callbacks import SavesAtStep
from ..conftest import read_csv
from ..events import logged_steps

BUFFERS = {
    "gaussian": (
        "model.mixture.weights",
        "model.mixture.means",
        "model.mixture.covariances",
        "model.mixture.scale_tril",
        "model.calibration.threshold",
    ),
    "laplace": ("model.mixture.weights", "model.mixture.means", "model.mixture.scales", "model.calibration.threshold"),
}
BUFFERS["gaussian+laplace"] = (*BUFFERS["gaussian"], "model.mixture.scales")
pytestmark = [pytest.mark.ddp, pytest.mark.slow]


def small_data():
    # eval batches of 10 rows: several batches per rank and shards of unequal length
    return AnomalyDataModule("breast_cancer", seed=0, batch_size=32, eval_batch_size=10)


def small_model(mixture="gaussian", members=1):
    return DAGMM(
        input_dim=30,
        hidden_dims=(8,),
        latent_dim=1,
        n_components=2,
        lr=1e-3,
        contamination=0.1,
        mixture=mixture,
        members=members,
    )


def trainer(devices, **kwargs):
    return L.Trainer(
        accelerator="cpu",
        devices=devices,
        strategy="ddp_spawn" if devices > 1 else "auto",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **kwargs,
    )


class RefitAndRecord(L.Callback):
    """Refit the mixture before validating (``validate`` does not), then save the fitted buffers (the
    mixture's and the threshold) and the metrics from rank 0."""

    def __init__(self, path):
        self.path = path

    def on_validation_start(self, trainer, pl_module):
        pl_module.refit()

    def on_validation_end(self, trainer, pl_module):
        if rank() == 0:
            metrics = next(c for c in trainer.callbacks if isinstance(c, AnomalyMetrics)).last_metrics["val"]
            state = pl_module.state_dict()
            names = BUFFERS[pl_module.hparams.mixture]
            record = {"buffers": {k: state[k] for k in names}, "metrics": metrics}
            torch.save(record | {"rows_fitted": pl_module.model.rows_fitted}, self.path)


TRAINED = {}  # one checkpoint per parameter (a test's own parametrize of it sets its fixture up again)


@pytest.fixture(scope="module", params=["gaussian", "laplace", "gaussian+laplace-3-members"])
def checkpoint(request, tmp_path_factory):
    if request.param in TRAINED:
        return TRAINED[request.param]
    path = tmp_path_factory.mktemp("ddp") / "model.ckpt"
    L.seed_everything(0)
    fit = trainer(1, max_epochs=3, enable_checkpointing=False, limit_val_batches=0)
    mixture, members = (request.param.split("-")[0], 3) if "members" in request.param else (request.param, 1)
    fit.fit(small_model(mixture, members), datamodule=small_data())
    fit.save_checkpoint(path)
    TRAINED[request.param] = path
    return path


def test_refit_and_validate_with_two_processes_equal_one(checkpoint, tmp_path):
    results = {}
    # the ensemble of both families also refines its fit by EM, whose sums are synced over ranks too
    em_steps = 3 if DAGMM.load_from_checkpoint(checkpoint).hparams.mixture == "gaussian+laplace" else 0
    fit_rows = 100 if em_steps else None  # there also a fit of 100 of the ~160 training rows: the same ones
    for devices in (1, 2):
        out = tmp_path / f"devices{devices}.pt"
        model = DAGMM.load_from_checkpoint(checkpoint, em_steps=em_steps, fit_rows=fit_rows)
        # float64 networks: per-row outputs then do not depend on how rows are batched across ranks,
        # so the only difference left is the order of the float64 sums
        validate = trainer(devices, precision="64-true", callbacks=[AnomalyMetrics(), RefitAndRecord(out)])
        validate.validate(model, datamodule=small_data())
        results[devices] = torch.load(out)
    assert results[1]["rows_fitted"] == results[2]["rows_fitted"]
    assert fit_rows is None or results[2]["rows_fitted"][0] == fit_rows < results[2]["rows_fitted"][1]
    for name in results[1]["buffers"]:
        torch.testing.assert_close(results[2]["buffers"][name], results[1]["buffers"][name], rtol=1e-10, atol=1e-12)
    assert results[2]["metrics"].keys() == results[1]["metrics"].keys()
    for name, value in results[1]["metrics"].items():
        assert results[2]["metrics"][name] == pytest.approx(value, rel=1e-9), name
    # and the refit changed nothing the checkpoint did not already hold: it was fitted at the same step
    stored = torch.load(checkpoint, weights_only=False)["state_dict"]
    if em_steps == 0:  # (EM moves the fit on from there)
        torch.testing.assert_close(results[1]["buffers"]["model.mixture.means"], stored["model.mixture.means"])
    else:
        assert not torch.allclose(results[1]["buffers"]["model.mixture.means"], stored["model.mixture.means"])


# rows and their order are the writer's, whatever the model: the ensemble of both families alone (its three
# members' scores averaged; a one-member model's spawned predict runs in the CLI test below)
@pytest.mark.parametrize("checkpoint", ["gaussian+laplace-3-members"], indirect=True)
def test_two_process_predict_writes_each_row_once_as_one_process_does(checkpoint, tmp_path):
    from sklearn.datasets import load_breast_cancer

    frames = {}
    rows = load_breast_cancer(as_frame=True).data.iloc[:95]  # a file of new rows with an id column to keep
    ids = [f"{i:03d}" for i in range(len(rows))]  # written with leading zeros: kept as text, not read as 7
    rows.assign(case=ids).to_csv(tmp_path / "rows.csv", index=False)
    for devices, predict_file in [(1, None), (2, None), (1, "rows.csv"), (2, "rows.csv")]:
        out = tmp_path / f"predictions{devices}{predict_file or ''}.csv"
        writer = PredictionCSVWriter(str(out), keep_columns=["case"] if predict_file else None)
        predict = trainer(devices, precision="64-true", callbacks=[writer])
        data = small_data()
        data.predict_file = str(tmp_path / predict_file) if predict_file else None
        predict.predict(DAGMM.load_from_checkpoint(checkpoint), datamodule=data, return_predictions=False)
        frames[devices, predict_file] = read_csv(out, dtype={"case": str})
    written = [
        "predictions1.csv",
        "predictions1rows.csv.csv",
        "predictions2.csv",
        "predictions2rows.csv.csv",
        "rows.csv",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == written  # parts joined
    for predict_file in (None, "rows.csv"):
        one, two = frames[1, predict_file], frames[2, predict_file]
        np.testing.assert_array_equal(two["index"], one["index"])
        # to float64's last digits: the join reads them back (a row's energy may differ by an ulp with the rows
        # scored beside it, as the two processes split them)
        np.testing.assert_allclose(two["score"], one["score"], rtol=1e-12, atol=1e-12)
    assert list(two.columns) == ["case", "index", "score", "prediction", "label"]
    assert two["case"].tolist() == ids and one["case"].tolist() == ids  # each row's own id, as written


def test_two_process_fit_gives_finite_metrics_and_resumes_within_an_epoch_as_it_ran(tmp_path):
    L.seed_everything(1)
    model = small_model()
    within = tmp_path / "within.ckpt"  # after the first of the second epoch's two batches
    quiet = dict(enable_checkpointing=False, default_root_dir=tmp_path)
    run = trainer(2, max_epochs=2, callbacks=[AnomalyMetrics(), SavesAtStep(within, 3)], **quiet)
    run.fit(model, datamodule=small_data())
    assert np.isfinite(float(run.callback_metrics["val/roc_auc"]))
    assert np.isfinite(float(run.callback_metrics["val/f1_top10"]))
    assert bool(model.model.mixture.is_fitted) and torch.isfinite(model.model.calibration.threshold)
    # each process's dropout draws and the epoch's next batch go on from the checkpoint
    assert len(torch.load(within, weights_only=False)["dagmm_generators"]["states"]) == 2
    resumed = small_model()
    trainer(2, max_epochs=2, **quiet).fit(resumed, datamodule=small_data(), ckpt_path=within)
    for name, value in model.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[name], value, rtol=1e-6, atol=1e-7, msg=name)


def test_data_sized_model_in_spawned_processes_is_sized_first():
    # spawned processes would size the networks but hand back only weights the main module cannot hold
    model = DAGMM(input_dim=30, hidden_dims=None, latent_dim=None, n_components=2)
    with pytest.raises(Exception, match="use --trainer.strategy ddp, set latent_dim and hidden_dims, or call"):
        trainer(2, max_epochs=1, enable_checkpointing=False).fit(model, datamodule=small_data())
    data = small_data()  # sized before spawning, it trains
    data.setup("fit")
    model.size_from_data(data)
    trainer(2, max_epochs=1, enable_checkpointing=False).fit(model, datamodule=data)
    x_train = data.arrays("train")[0]
    assert model.hparams.latent_dim == min(latent_size(x_train), latent_cap(len(x_train), 2))
    assert bool(model.model.mixture.is_fitted) and torch.isfinite(model.model.calibration.threshold)


class OwnData(AnomalyDataModule):
    """A data module of one's own (multiprocessing's pickler picks a reducer by the exact type)."""


class SlottedData(AnomalyDataModule):
    """One with a slot (its state a (dict, slots) pair)."""

    __slots__ = ("extra",)


def test_a_spawned_launchs_arguments_fit_its_pipe_and_the_rows_arrive_through_a_file(tmp_path, monkeypatch):
    """A ddp_spawn launch writes each process's arguments into a pipe of 64 kB and waits at a full one until
    that process has imported torch and Lightning: the CLI's (trainer with callbacks, model, data module)
    fit in it, so that the processes start together; the rows go through a file the process removes."""
    import io
    import pickle
    import tempfile
    from multiprocessing.reduction import ForkingPickler

    from dagmm_lightning.cli import SaveRunConfig, build_cli

    from ..conftest import ROOT

    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    args = ["--config", "configs/quickstart.yaml", "--trainer.devices", "2", "--trainer.strategy", "ddp_spawn"]
    args += ["--trainer.accelerator", "cpu", "--trainer.logger.init_args.save_dir", str(tmp_path / "logs")]
    cli = build_cli(args, run=False)
    cli.datamodule.trainer = cli.trainer  # (as a fit attaches it: the process gets one trainer, not two)
    handed = io.BytesIO()
    ForkingPickler(handed).dump((cli.trainer, cli.model, cli.datamodule))
    assert len(handed.getvalue()) < 2**16  # had: 480 kB (the parser 273 kB, the rows 200 kB)
    (written,) = tmp_path.glob("dagmm-rows-*/*.pickle")  # in a folder a killed run's successor removes
    trainer, model, data = pickle.loads(handed.getvalue())  # as the spawned process reads them
    assert not written.exists() and data is not cli.datamodule and data.trainer is trainer
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(getattr(data.splits, split), getattr(cli.datamodule.splits, split))
    rows = cli.datamodule.splits.train
    np.testing.assert_array_equal(data._encoded[rows], cli.datamodule._encoded[rows])
    (saver,) = (c for c in trainer.callbacks if isinstance(c, SaveRunConfig))
    (original,) = (c for c in cli.trainer.callbacks if isinstance(c, SaveRunConfig))
    original.parser.save(original.config, tmp_path / "direct.yaml", skip_none=False, overwrite=True, multifile=False)
    assert saver.parser is None and saver._rendered == (tmp_path / "direct.yaml").read_text()  # as Lightning writes
    ForkingPickler(io.BytesIO()).dump(OwnData("breast_cancer"))  # a subclass's too
    assert len(list(tmp_path.glob("dagmm-rows-*/*.pickle"))) == 1
    slotted = SlottedData("breast_cancer")
    slotted.extra = 5
    handed = io.BytesIO()
    ForkingPickler(handed).dump(slotted)
    assert pickle.loads(handed.getvalue()).extra == 5  # whole, as plain pickle takes it (had: a ValueError)


def test_spawned_cli_fit_summary_names_the_columns_constant_on_the_training_rows(tmp_path, caplog, capfd):
    from dagmm_lightning.cli import build_cli

    from ..conftest import QUICK

    rng = np.random.default_rng(0)
    rows = pd.DataFrame(rng.normal(size=(60, 4)), columns=list("abcd")).assign(flat=1.0)
    rows.assign(label=(np.arange(60) < 4).astype(int)).to_csv(tmp_path / "rows.csv", index=False)  # (val: normal)
    args = ["fit", "--config", "configs/quickstart.yaml", "--data.dataset", "table", "--data.label_column", "label"]
    args += ["--data.path", str(tmp_path / "rows.csv"), "--trainer.max_epochs", "1", "--trainer.devices", "2"]
    args += ["--trainer.strategy", "ddp_spawn", "--trainer.accelerator", "cpu"]
    build_cli([*args, "--trainer.default_root_dir", str(tmp_path), *QUICK])
    summary = "\n".join(r.getMessage() for r in caplog.records if "fit finished" in r.getMessage())
    # the workers scaled the rows; the main process reads their scaling from their checkpoint (had: no note)
    assert "columns:     5 numbers (a, b, c, d, flat); constant on the training rows: flat; labels: label" in summary
    said = capfd.readouterr().err  # the workers' own (this process's go to pytest's record of warnings)
    assert "dagmm: warning: val: every evaluated row is normal" in said and "DAGMMWarning" not in said  # had:
    # Python's format, "multiprocessing/process.py:108: DAGMMWarning: ..."


def test_spawned_cli_fit_summary_names_its_epochs_checkpoint_metrics_and_one_log_folder(tmp_path, caplog, monkeypatch):
    from dagmm_lightning.cli import build_cli

    from ..conftest import QUICK, ROOT

    monkeypatch.chdir(ROOT)
    logs = tmp_path / "logs"
    args = ["fit", "--config", "configs/quickstart.yaml", "--trainer.max_epochs", "3", "--trainer.devices", "2"]
    args += ["--trainer.strategy", "ddp_spawn", "--trainer.accelerator", "cpu"]
    args += ["--model.init_args.contamination", "null"]  # taken from the labels, in the workers
    args += ["--model.init_args.em_steps", "3"]  # the workers' scoring fit refines: the summary says so
    build_cli([*args, "--trainer.logger.init_args.save_dir", str(logs), *QUICK])
    summary = "\n".join(r.getMessage() for r in caplog.records if "fit finished" in r.getMessage())
    (last,) = logs.rglob("last.ckpt")
    em_steps = torch.load(last, weights_only=False)["dagmm_fit_counts"]["em_steps"]
    assert 0 < em_steps and f"mixture:     refined by {em_steps} EM steps (at most 3)" in summary  # had: no line
    assert "fit finished after 3 epochs" in summary and f"dagmm test --ckpt_path {last}" in summary
    assert "roc_auc" in summary  # the validation after fit ran in spawned processes too
    assert [p.name for p in (logs / "lightning_logs").iterdir()] == ["version_0"]  # fit and validation share it
    # the workers validated the last step, which their schedule (every 10 epochs) did not: not started again
    assert len(list((logs / "lightning_logs" / "version_0").glob("events.out.tfevents.*"))) == 1  # had: 2
    saved = (logs / "lightning_logs" / "version_0" / "config.yaml").read_text()  # by the first worker, as rendered
    assert "strategy: ddp_spawn" in saved and "dataset: breast_cancer" in saved
    # that validation (the schedule had none at the last epoch) is logged where one in the fit logs the last
    # step (Lightning's global_step - 1), as the workers counted it
    steps, state = (torch.load(last, weights_only=False)[key] for key in ("global_step", "state_dict"))
    threshold = float(state["model.calibration.threshold"])  # had: no threshold line (the workers set it)
    labelled = AnomalyDataModule("breast_cancer").anomaly_share  # (then: nor with contamination from the labels)
    above = f"the top {100 * labelled:.3g} % of val rows' scores (not trained on) lie above"  # the workers' rows (auto)
    val = len(AnomalyDataModule("breast_cancer").splits.val)
    count = int((np.arange(val) > np.quantile(np.arange(val), 1 - labelled)).sum())  # the main process counts
    few = f"; about {count} of {val} rows: a cut of so few rows is noisy"  # (had: 'about 4.7 of 189')
    assert f"threshold:   {threshold:.6g} ({above}{few}" in summary
    assert steps > 1 and logged_steps(logs / "lightning_logs" / "version_0", "val/roc_auc") == [steps - 1]
    caplog.clear()
    from sklearn.datasets import load_breast_cancer

    # 31 rows: shards of unequal length
    load_breast_cancer(as_frame=True).data.iloc[:31].assign(case=range(31)).to_csv(tmp_path / "rows.csv", index=False)
    out, alone = tmp_path / "scored.csv.gz", tmp_path / "alone.csv"  # (the workers' parts joined, compressed)
    out.write_text("an earlier run's predictions\n")
    predict = ["predict", "--ckpt_path", str(last), "--trainer.accelerator", "cpu"]
    predict += ["--data.predict_file", str(tmp_path / "rows.csv"), "--prediction_writer.keep_columns", "[case]"]
    spawned = ["--trainer.devices", "2", "--trainer.strategy", "ddp_spawn"]
    build_cli([*predict, *spawned, "--prediction_writer.output_path", str(out)])
    written = read_csv(out, compression="gzip")
    assert written["case"].tolist() == list(range(31))  # each row once, in the file's order
    flagged = int(written["prediction"].sum())  # counted in the main process from the workers' file:
    wrote = f"wrote 31 predictions with the file's case column to {out} (replacing an earlier file); {flagged} flagged"
    assert f"{wrote} as anomalies (" in caplog.text
    build_cli([*predict, "--trainer.devices", "1", "--prediction_writer.output_path", str(alone)])
    np.testing.assert_allclose(written["score"], read_csv(alone)["score"], rtol=1e-12)  # as one process scores
    caplog.clear()
    every_epoch = ["--trainer.check_val_every_n_epoch", "1", "--checkpoint.monitor", "val/roc_auc"]
    every_epoch += ["--checkpoint.mode", "max"]
    build_cli([*args, *every_epoch, "--trainer.logger.init_args.save_dir", str(logs), *QUICK])
    summary = "\n".join(r.getMessage() for r in caplog.records if "fit finished" in r.getMessage())
    assert "roc_auc" in summary and "(val/roc_auc" in summary  # best checkpoint named (its score stayed in the workers)
    # the workers validated the last epoch: no second validation, no second event file
    (best,) = logs.rglob("epoch=*.ckpt")  # (the fit's folder: the predictions above have theirs)
    (events,) = best.parent.parent.glob("events.out.tfevents.*")
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    values = [v for e in EventFileLoader(str(events)).Load() for v in e.summary.value]
    (started,) = [v.metadata.plugin_data.content for v in values if v.tag == "_hparams_/session_start_info"]
    settings = HParamsPluginData.FromString(started).session_start_info.hparams  # how the run ran (had: not said)
    assert settings["trainer/strategy"].string_value == "ddp_spawn" and settings["trainer/devices"].number_value == 2
    caplog.clear()
    resumed = [*args, "--trainer.max_steps", str(steps), "--ckpt_path", str(last)]  # at its end: nothing to train
    build_cli([*resumed, "--trainer.logger.init_args.save_dir", str(logs), *QUICK])
    summary = "\n".join(r.getMessage() for r in caplog.records if "fit finished" in r.getMessage())
    assert f"fit finished after {steps} steps (--trainer.max_steps), in 3 epochs" in summary  # had: after 0 epochs
    assert f"(step {steps}); raise --trainer.max_steps" in summary and f"threshold:   {threshold:.6g}" in summary
    assert f"checkpoint:  {last} (the resumed fit, unchanged)" in summary  # had: none written
    caplog.clear()
    unsaved = tmp_path / "unsaved"  # no checkpoint to count the workers' epochs: they hand their counts back
    build_cli([*args, "--trainer.enable_checkpointing", "false", "--trainer.logger.init_args.save_dir", str(unsaved)])
    summary = "\n".join(r.getMessage() for r in caplog.records if "fit finished" in r.getMessage())
    assert "fit finished after 3 epochs" in summary and "checkpoint:" not in summary  # had: after 0 epochs
    assert logged_steps(unsaved / "lightning_logs" / "version_0", "val/roc_auc") == [steps - 1]  # had: step 0


@pytest.mark.parametrize(
    "sent, to",
    [
        ("SIGTERM", "the spawning process"),
        ("SIGTERM", "the process group"),
        ("SIGTERM", "one worker"),
        ("SIGTERM", "the only worker"),
        ("SIGINT", "the spawning process"),
    ],
)
def test_a_spawned_fit_stopped_by_a_signal_stops_its_workers_and_says_how_to_go_on(tmp_path, sent, to):
    import os
    import signal
    import time
    from contextlib import suppress

    from ..conftest import QUICK, ROOT

    command = [sys.executable, "-m", "dagmm_lightning", "fit", "--config", str(ROOT / "configs/improved.yaml")]
    command += ["--data.dataset", "breast_cancer", "--trainer.max_steps", "100000", "--checkpoint.every_n_epochs", "1"]
    devices = 1 if to == "the only worker" else 2  # (one spawned worker: had waited for its result for good)
    command += ["--trainer.default_root_dir", str(tmp_path), "--trainer.devices", str(devices)]
    command += ["--trainer.strategy", "ddp_spawn", "--trainer.accelerator", "cpu", *QUICK]
    fit = subprocess.Popen(  # in a process group of its own, as a scheduler's job; SIGINT as a terminal's
        command,  # (a test run under nohup or `&` ignores it, and so would the fit)
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 120
        while not list(tmp_path.rglob("last.ckpt")) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert list(tmp_path.rglob("last.ckpt")), "no checkpoint written"
        children = subprocess.run(
            ["ps", "-ww", "-o", "pid=,args=", "--ppid", str(fit.pid)], capture_output=True, text=True
        )
        workers = [int(line.split()[0]) for line in children.stdout.splitlines() if "spawn_main" in line]
        assert len(workers) == devices, children.stdout
        sent_at, number = time.monotonic(), getattr(signal, sent)
        if to == "the process group":  # (as `timeout` and schedulers send SIGTERM: the workers get it too)
            os.killpg(fit.pid, number)
        elif to in ("one worker", "the only worker"):  # (had: it stopped alone, the other's gloo error: exit 1)
            os.kill(workers[-1], number)
        else:
            os.kill(fit.pid, number)
        said, _ = fit.communicate(timeout=90)
    finally:
        with suppress(ProcessLookupError):  # whatever of the group is left (a failing run's orphaned workers)
            os.killpg(fit.pid, signal.SIGKILL)
    # had: SIGTERM: this process died at once, its workers trained on (orphaned); sent to the group, the
    # workers waited on each other for good; SIGINT to this process alone: it waited for them at its exit
    assert fit.returncode == 128 + number and time.monotonic() - sent_at < 30
    assert "fit interrupted; " in said and "  go on:       dagmm fit --config " in said and "did not stop" not in said

    def running(pid):  # (a zombie, reaped soon, runs no more)
        state = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True).stdout
        return state.strip() not in ("", "Z")

    deadline = time.monotonic() + 10
    while any(running(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in workers if running(pid)]


@pytest.mark.parametrize("sent, devices", [("SIGTERM", 1), ("SIGINT", 1), ("SIGTERM", 2)])
def test_a_node_waiting_for_the_others_to_join_ends_on_sigterm_or_ctrl_c(tmp_path, sent, devices):
    import signal
    import socket
    import time
    from contextlib import suppress

    from ..conftest import QUICK, ROOT

    with socket.socket() as free:  # a port no first node listens on: the second node waits for it
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "NODE_RANK": "1"}
    command = [sys.executable, "-m", "dagmm_lightning", "fit", "--config", str(ROOT / "configs/quickstart.yaml")]
    command += ["--trainer.strategy", "ddp", "--trainer.num_nodes", "2", "--trainer.devices", str(devices), *QUICK]
    command += ["--trainer.accelerator", "cpu", "--trainer.default_root_dir", str(tmp_path)]
    said = tmp_path / "said.txt"
    with said.open("w") as out:
        node = subprocess.Popen(  # SIGINT as a terminal's (a test run under nohup or `&` ignores it)
            command, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while "Initializing distributed" not in said.read_text() and time.monotonic() < deadline:
            time.sleep(0.5)
        member = f"Initializing distributed: GLOBAL_RANK: {devices}, MEMBER: {devices + 1}/{2 * devices}"
        assert member in said.read_text()
        time.sleep(3)  # (within torch's rendezvous, its connection retried)

        def session() -> list[str]:  # the node's processes: the first and those it started
            listed = subprocess.run(["ps", "-o", "pid=,stat=", "-s", str(node.pid)], capture_output=True, text=True)
            return [line for line in listed.stdout.splitlines() if not line.split()[1].startswith("Z")]

        assert len(session()) == devices
        sent_at = time.monotonic()
        os.kill(node.pid, getattr(signal, sent))  # the first process alone
        node.wait(timeout=30)  # had: both ignored until the rendezvous's 30-minute timeout
        while session() and time.monotonic() - sent_at < 10:  # (had: the second process left waiting)
            time.sleep(0.2)
        assert not session()
    finally:
        with suppress(ProcessLookupError):
            os.killpg(node.pid, signal.SIGKILL)
    assert node.returncode == -getattr(signal, sent) and time.monotonic() - sent_at < 10
    assert not list(tmp_path.rglob("version_*"))  # nothing written


def test_the_rendezvous_keeps_an_ignored_ctrl_c_and_only_lightnings_own_ranks_end_with_their_launcher(monkeypatch):
    import ctypes
    import signal
    from types import SimpleNamespace

    from lightning.fabric.plugins.environments import LightningEnvironment

    from dagmm_lightning import cli

    seen = {}

    def setup_distributed():
        seen.update(sigint=signal.getsignal(signal.SIGINT), sigterm=signal.getsignal(signal.SIGTERM))

    strategy = SimpleNamespace(cluster_environment=LightningEnvironment(), launcher=None)
    strategy.setup_distributed = setup_distributed
    trainer = SimpleNamespace(strategy=strategy)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a job started with `&`, or after `trap '' INT`
    try:
        with cli.signals_end_the_rendezvous(trainer):
            trainer.strategy.setup_distributed()
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
    assert seen == {"sigint": signal.SIG_IGN, "sigterm": signal.SIG_DFL}  # (had: Ctrl-C turned on again)
    calls = []
    monkeypatch.setattr(ctypes, "CDLL", lambda name: SimpleNamespace(prctl=lambda *args: calls.append(args)))
    monkeypatch.delenv(cli.LAUNCHER_PID, raising=False)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    with cli.ends_with_the_process_that_started_it(trainer):  # the first process: its pid for its children
        assert os.environ[cli.LAUNCHER_PID] == str(os.getpid())
    assert cli.LAUNCHER_PID not in os.environ and not calls  # (had: left for this process's later runs)
    monkeypatch.setenv("LOCAL_RANK", "1")
    with cli.ends_with_the_process_that_started_it(trainer):  # a rank started by hand: left alone (had: prctl)
        pass
    assert not calls
    monkeypatch.setenv(cli.LAUNCHER_PID, str(os.getppid()))  # one Lightning started: ends with its launcher
    with cli.ends_with_the_process_that_started_it(trainer):
        assert cli.LAUNCHER_PID not in os.environ  # (not handed on to what it starts)
    assert calls == [(1, int(signal.SIGTERM))]


LATE_STOP = """
import os, signal, time

import lightning as L


class StoppedAsTheFitEnds(L.Callback):
    def on_train_end(self, trainer, pl_module):  # after the workers' last agreement on SIGTERM
        if trainer.global_rank == 0:
            os.kill(os.getppid(), signal.SIGTERM)  # a scheduler's stop: the spawning process passes it on
            time.sleep(3)  # (it reaches the workers within their fit)


class StoppedAfterTheTeardown(L.Callback):
    def teardown(self, trainer, pl_module, stage):  # Lightning's handlers put back: Python's default
        if trainer.global_rank == 0 and stage == "fit":
            os.killpg(os.getpgid(0), signal.SIGTERM)  # to every process of the run, as `timeout` sends it
            time.sleep(3)
"""


@pytest.mark.parametrize("stop", ["StoppedAsTheFitEnds", "StoppedAfterTheTeardown"])
def test_a_spawned_fit_that_gets_sigterm_after_its_last_step_ends_as_it_would_have(tmp_path, stop):
    (tmp_path / "late_stop.py").write_text(LATE_STOP)
    from ..conftest import QUICK, ROOT

    command = [sys.executable, "-m", "dagmm_lightning", "fit", "--config", str(ROOT / "configs/quickstart.yaml")]
    command += ["--trainer.max_epochs", "2", f"--trainer.callbacks+=late_stop.{stop}"]
    command += ["--trainer.default_root_dir", str(tmp_path), "--trainer.devices", "2"]
    command += ["--trainer.strategy", "ddp_spawn", "--trainer.accelerator", "cpu", *QUICK]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))}
    # (a session of its own: the process group the second stop signals is the run's alone; had, there, a
    # worker ended by SIGTERM before its result and torch's ProcessExitedException in a traceback, exit 1)
    done = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300, start_new_session=True
    )
    said = done.stdout + done.stderr
    # had: the spawning process reported the finished fit interrupted, exit 143, with a command to go on
    assert done.returncode == 0, said[-3000:]
    assert "SIGTERM came after the fit's last step: the fit ends as it would have" in said
    assert "fit finished after 2 epochs" in said and "interrupted" not in said


def _agree_on_sigterm(process, world, init_file, out):
    """One worker's callback over 2 * SIGTERM_SYNC_BATCHES training batches, SIGTERM seen by the last rank
    only: after each batch, whether this rank's trainer now stops; then at a validation's start and an
    epoch's end."""
    from types import SimpleNamespace

    import torch.distributed as dist
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from dagmm_lightning.cli import SIGTERM_SYNC_BATCHES, InterruptAtNextBatch

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=process, world_size=world)
    connector = SimpleNamespace(received_sigterm=False)
    trainer = SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device("cpu")), _signal_connector=connector)
    callback = InterruptAtNextBatch()
    callback._agreeing = True  # (as setup sets it in a spawned worker)
    callback.spawner = os.getppid()  # the test's process, as a node's spawning process
    callback.sigterm_seen = process == world - 1
    stops = []
    for _ in range(2 * SIGTERM_SYNC_BATCHES):
        callback.on_train_batch_end(trainer, None, None, None, 0)
        stops.append(connector.received_sigterm)
    connector.received_sigterm = callback.sigterm_seen = False  # a validation starts: nobody got it, then one
    callback.on_validation_start(trainer, None)
    callback.sigterm_seen = process == world - 1
    try:
        callback.on_validation_start(trainer, None)  # (before its mixture fit over every training row)
    except SIGTERMException:
        stops.append("stopped")
    connector.received_sigterm = False
    callback.on_train_epoch_end(trainer, None)  # Lightning stops at the epoch's end
    stops.append(connector.received_sigterm)
    (out / f"rank{process}.txt").write_text(" ".join(str(int(s)) if isinstance(s, bool) else s for s in stops))
    dist.destroy_process_group()


def test_spawned_workers_stop_after_the_same_batch_when_one_of_them_got_sigterm(tmp_path):
    import signal

    from dagmm_lightning.cli import SIGTERM_SYNC_BATCHES

    told = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: told.append(signum))
    try:
        torch.multiprocessing.spawn(_agree_on_sigterm, args=(2, tmp_path / "init", tmp_path), nprocs=2)
    finally:
        signal.signal(signal.SIGTERM, previous)
    # the rank that learnt of it from the other tells its spawning process (another node's, in a run of
    # several: had waited for its workers' result for good)
    assert told
    expected = " ".join(["0"] * (SIGTERM_SYNC_BATCHES - 1) + ["1"] * (SIGTERM_SYNC_BATCHES + 1) + ["stopped", "1"])
    # had: each rank acted on its own SIGTERM after its batch; the other ran on into a broken connection
    assert [(tmp_path / f"rank{r}.txt").read_text() for r in (0, 1)] == [expected, expected]


def test_a_ddp_runs_sigterm_handler_marks_the_run_and_starts_no_collective(tmp_path):
    """Under ddp (a process per rank, not spawned) Lightning's SIGTERM handler broadcasts from within the
    collective the signal came in (a refit's all-gather: the other rank waited in its own, for good; a
    trial hung 2 of 5 times). The handler is InterruptAtNextBatch's: it marks the run (a fit: its ranks
    agree at their next agreement point; test or predict: after the batch), and the first process sends it
    on to the processes its launcher started, as Lightning's did; no collective."""
    from types import SimpleNamespace

    import torch.distributed as dist

    from dagmm_lightning.cli import InterruptAtNextBatch

    class Launcher:  # (its class name: not the spawning launcher's)
        def __init__(self):
            self.killed = []

        def kill(self, signum):
            self.killed.append(signum)

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'init'}", rank=0, world_size=1)
    try:
        for stage, marked in (("fit", False), ("test", True)):
            connector = SimpleNamespace(received_sigterm=False, _sigterm_notifier_fn=None)
            launcher = Launcher()
            trainer = SimpleNamespace(
                world_size=2, strategy=SimpleNamespace(launcher=launcher), _signal_connector=connector
            )
            callback = InterruptAtNextBatch()
            callback.setup(trainer, None, stage)
            assert connector._sigterm_notifier_fn == callback._on_sigterm and callback._agreeing == (stage == "fit")
            connector._sigterm_notifier_fn(15, None)  # (had: dist.broadcast here)
            connector._sigterm_notifier_fn(15, None)  # a second one: sent on once
            assert callback.sigterm_seen and connector.received_sigterm == marked and launcher.killed == [15]
    finally:
        dist.destroy_process_group()


def test_the_readmes_ddp_command_fits_and_predicts_each_row_once_as_one_process_scores(tmp_path):
    """The README's multi-process command: --trainer.strategy ddp, whose launcher starts the other rank by
    running the same command again (the tests above spawn theirs)."""
    from sklearn.datasets import load_breast_cancer

    from dagmm_lightning.cli import build_cli

    from ..conftest import QUICK, ROOT

    table = load_breast_cancer(as_frame=True)
    normal = table.data[table.target == 1].iloc[:31]  # (benign: what the checkpoint learned as normal)
    normal.assign(case=range(31)).to_csv(tmp_path / "rows.csv", index=False)
    command = [sys.executable, "-m", "dagmm_lightning"]
    processes = ["--trainer.devices", "2", "--trainer.strategy", "ddp", "--trainer.accelerator", "cpu", *QUICK]
    fit = ["fit", "--config", str(ROOT / "configs/quickstart.yaml"), "--trainer.max_epochs", "3"]
    fit += ["--trainer.logger.init_args.save_dir", str(tmp_path / "logs"), "--trainer.check_val_every_n_epoch", "1"]
    done = subprocess.run([*command, *fit, *processes], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Starting with 2 processes" in done.stderr + done.stdout and "fit finished after 3 epochs" in done.stderr
    (last,) = (tmp_path / "logs").rglob("last.ckpt")
    validated = logged_steps(last.parents[1], "val/roc_auc")  # at each epoch's end; the figures at the 1st
    assert len(validated) == 3 and logged_steps(last.parents[1], "val/latent_view") == validated[::2]  # and last
    predict = ["predict", "--ckpt_path", str(last), "--data.predict_file", str(tmp_path / "rows.csv")]
    predict += ["--prediction_writer.keep_columns", "[case]"]
    out, alone = tmp_path / "two.csv", tmp_path / "one.csv"
    done = subprocess.run(
        [*command, *predict, *processes, "--prediction_writer.output_path", str(out)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    written = read_csv(out)
    assert written["case"].tolist() == list(range(31))  # 31 rows (shards of 16 and 15): each once, in order
    assert f"wrote 31 predictions with the file's case column to {out}" in done.stderr
    build_cli([*predict, *QUICK, "--trainer.accelerator", "cpu", "--prediction_writer.output_path", str(alone)])
    np.testing.assert_allclose(written["score"], read_csv(alone)["score"], rtol=1e-12)
    assert not list(tmp_path.glob("*.part*")) and sorted(p.name for p in tmp_path.glob("*.csv")) == [
        "one.csv",
        "rows.csv",
        "two.csv",
    ]


def test_spawned_positive_unlabeled_fit_summary_gives_the_workers_c(tmp_path, caplog, monkeypatch):
    from dagmm_lightning.cli import build_cli

    from ..conftest import QUICK, ROOT

    monkeypatch.chdir(ROOT)
    logs = tmp_path / "logs"
    args = ["fit", "--config", "configs/pu.yaml", "--config", "configs/data/thyroid.yaml", "--trainer.max_epochs", "2"]
    args += ["--trainer.devices", "2", "--trainer.strategy", "ddp_spawn", "--trainer.accelerator", "cpu"]
    fitted = build_cli([*args, "--trainer.logger.init_args.save_dir", str(logs), *QUICK])
    summary = "\n".join(r.getMessage() for r in caplog.records if "fit finished" in r.getMessage())
    (last,) = logs.rglob("last.ckpt")
    c = float(torch.load(last, weights_only=False)["state_dict"]["model.c"])
    labelled = np.mean(fitted.datamodule.splits.train_labels == 0)
    assert (
        f"validation:  c {c:.4f} (an anomaly where the classifier's h < c/2" in summary
    )  # had: 'validation:' and nothing (no roc_auc)
    assert f"by c, {100 * max(0, 1 - labelled / c):.3g} % of the training rows are anomalies" in summary
    assert "c/2 flags" not in summary  # (the workers' rows: not counted in the main process)
    caplog.clear()
    unsaved = ["--trainer.enable_checkpointing", "false", "--trainer.max_steps", "2"]  # no last.ckpt to read c from
    build_cli([*args, *unsaved, "--trainer.logger.init_args.save_dir", str(tmp_path / "unsaved"), *QUICK])
    summary = "\n".join(r.getMessage() for r in caplog.records if "fit finished" in r.getMessage())
    assert "validation:  c " in summary and "c/2 flags" not in summary  # had: the main process's rows, unscaled


class RecordRowsFile(L.Callback):
    """Each rank writes the file its training rows are read from."""

    def __init__(self, folder):
        self.folder = folder

    def on_validation_end(self, trainer, pl_module):
        (self.folder / f"rank{rank()}.txt").write_text(str(trainer.datamodule.arrays("train")[0].path))


def test_out_of_core_rows_are_written_once_per_machine_and_validate_as_in_memory(tmp_path, monkeypatch):
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    frame.assign(malignant=1 - frame.pop("target")).to_csv(tmp_path / "table.csv", index=False)
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))  # the spawned processes' temporary folder
    (tmp_path / "tmp").mkdir()
    torch.manual_seed(0)
    weights = small_model().state_dict()
    results = {}
    for devices, out_of_core in ((1, False), (2, True)):
        out = tmp_path / f"devices{devices}.pt"
        csv = str(tmp_path / "table.csv")
        data = AnomalyDataModule(
            "table", path=csv, label_column="malignant", seed=0, eval_batch_size=10, out_of_core=out_of_core
        )
        callbacks = [AnomalyMetrics(), RefitAndRecord(out)] + [RecordRowsFile(tmp_path)] * out_of_core
        model = small_model()
        model.load_state_dict(weights)
        trainer(devices, precision="64-true", callbacks=callbacks).validate(model, datamodule=data)
        results[devices] = torch.load(out)
    paths = {(tmp_path / f"rank{r}.txt").read_text() for r in (0, 1)}
    assert len(paths) == 1 and paths.pop().startswith(str(tmp_path / "tmp" / "dagmm-rows-"))  # one copy, shared
    assert list((tmp_path / "tmp").iterdir()) == []  # removed when the run ended
    for name, value in results[1]["buffers"].items():
        torch.testing.assert_close(results[2]["buffers"][name], value, rtol=1e-6, atol=1e-9)
    for name, value in results[1]["metrics"].items():
        assert results[2]["metrics"][name] == pytest.approx(value, rel=1e-6), name


def _reseed_and_refine(process, world, init_file, out, z, gamma):
    """One rank's share (every world-th row) of a mixed-family fit, re-seeded and refined; rank 0 saves."""
    import torch.distributed as dist

    from dagmm_lightning.mixture import build_mixture

    if world > 1:
        dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=process, world_size=world)
    shard, memberships = z[:, process::world], gamma[:, process::world]
    mixture = build_mixture("gaussian+laplace", 3, 2, 1e-4, "float64", members=2)
    mixture.fit([(shard[:, :150], memberships[:, :150]), (shard[:, 150:], memberships[:, 150:])])
    batches = [shard[:, :150], shard[:, 150:]]
    moved = mixture.reseed_empty(batches, fraction=0.05)
    mixture.refine(batches, 2)
    if process == 0:
        torch.save({"moved": moved, **{n: getattr(mixture, n) for n in mixture.parameter_names}}, out)
    if world > 1:
        dist.destroy_process_group()


def test_reseeding_with_two_processes_equals_one(tmp_path):
    rng = np.random.default_rng(13)
    blob, cluster = rng.normal(size=(470, 2)), rng.normal(size=(30, 2)) * 0.01 + 8.0
    z = torch.tensor(np.concatenate([blob, cluster])[rng.permutation(500)]).expand(2, -1, -1).contiguous()
    gamma = torch.zeros(2, 500, 3, dtype=torch.float64)
    gamma[..., 0] = 1.0  # components 1 and 2 empty
    results = {}
    for world in (1, 2):
        out = tmp_path / f"world{world}.pt"
        args = (world, tmp_path / f"init{world}", out, z, gamma)
        if world == 1:
            _reseed_and_refine(0, *args)
        else:
            torch.multiprocessing.spawn(_reseed_and_refine, args=args, nprocs=2)
        results[world] = torch.load(out)
    assert results[1]["moved"].tolist() in ([1, 2], [2, 1], [2, 2])  # each member moved one or both
    for name, value in results[1].items():
        torch.testing.assert_close(results[2][name], value, rtol=1e-10, atol=1e-12)


def test_the_input_mask_of_a_spawned_fit_reaches_the_main_process_and_a_resume(tmp_path):
    # the workers set the mask of a column constant on the training rows; the main process's module
    # gets their state dict, and a fit resumed from their checkpoint keeps it
    x = np.c_[np.random.default_rng(0).normal(size=(200, 3)), np.full(200, 2.0)]
    model = DAGMM(input_dim=4, hidden_dims=(6,), latent_dim=1, n_components=2, contamination=0.1)
    saved = ModelCheckpoint(dirpath=tmp_path, save_last=True)
    trainer(2, max_epochs=1, callbacks=[saved]).fit(model, datamodule=AnomalyDataModule.from_arrays(x, batch_size=32))
    assert model.model.input_mask.tolist() == [1.0, 1.0, 1.0, 0.0]
    last = tmp_path / "last.ckpt"  # (the spawned workers' ModelCheckpoint wrote it; the main one knows no path)
    older = torch.load(last, weights_only=False)
    del older["state_dict"]["model.input_mask"]  # as saved before the mask: resumed, it trains and scores unmasked
    torch.save(older, tmp_path / "older.ckpt")
    for path, mask in ((last, [1.0, 1.0, 1.0, 0.0]), (tmp_path / "older.ckpt", None)):
        resumed = DAGMM(input_dim=4, hidden_dims=(6,), latent_dim=1, n_components=2, contamination=0.1)
        data = AnomalyDataModule.from_arrays(x, batch_size=32)
        with pytest.warns(UserWarning, match=r"trained by 2 process\(es\), this fit runs 1: each takes"):
            trainer(1, max_epochs=2, enable_checkpointing=False).fit(resumed, datamodule=data, ckpt_path=path)
        assert (resumed.model.input_mask if mask is None else resumed.model.input_mask.tolist()) == mask


def test_a_process_that_fits_destroys_its_process_group_at_exit(tmp_path):
    # Lightning destroys NCCL groups only; a gloo group left to the interpreter's teardown aborted a
    # spawned worker now and then after a good fit ('terminate called without an active exception')
    script = f"""
import atexit, numpy as np, lightning as L, torch.distributed as dist
from dagmm_lightning.data import AnomalyDataModule
from dagmm_lightning.models import DAGMM
dist.init_process_group("gloo", init_method="file://{tmp_path / "store"}", rank=0, world_size=1)
atexit.register(lambda: print("group at exit:", dist.is_initialized()))  # runs after those registered later
x = np.random.default_rng(0).normal(size=(64, 3))
model = DAGMM(input_dim=3, hidden_dims=(4,), latent_dim=1, n_components=2, contamination=0.1)
trainer = L.Trainer(max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False)
trainer.fit(model, datamodule=AnomalyDataModule.from_arrays(x, batch_size=32))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "group at exit: False" in done.stdout  # had: True (left to the teardown)
