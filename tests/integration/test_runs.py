"""Seeing a run (figures, hparams) and trusting it (same seed, same result; resume = uninterrupted)."""

import os
import warnings

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import EMAWeightAveraging, ModelCheckpoint
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from dagmm_lightning.callbacks import AnomalyMetrics, LastEpochCheckpoint
from dagmm_lightning.cli import build_cli
from dagmm_lightning.data import AnomalyDataModule
from dagmm_lightning.models import DAGMM, DAGMMVAE
from dagmm_lightning.models import dagmm as dagmm_module
from dagmm_lightning.networks.dagmm import DAGMMModel as DAGMMNetwork

from ..conftest import QUICK, ROOT
from ..events import logged_steps

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("in_root")]


def test_figures_and_hparams_reach_tensorboard(tmp_path):
    build_cli(
        [
            "fit",
            "--config",
            "configs/quickstart.yaml",
            "--trainer.max_epochs",
            "2",
            "--trainer.check_val_every_n_epoch",
            "1",
            "--figures.every_n_validations",
            "1",
            "--model.init_args.contamination",
            "null",
            "--trainer.logger.init_args.save_dir",
            str(tmp_path),
            *QUICK,
        ]
    )
    events = EventAccumulator(str(next(tmp_path.rglob("events.out.tfevents*"))), size_guidance={"images": 0})
    events.Reload()
    images = events.Tags()["images"]
    for tag in ("val/score_histogram", "val/roc_and_pr_curves", "val/latent_view"):
        assert tag in images
        assert len(events.Images(tag)) == 2  # one per validation
        assert events.Images(tag)[0].encoded_image_string[:4] == b"\x89PNG"
    assert "val/roc_auc" in events.Tags()["scalars"]
    hparams = {}
    for path in tmp_path.rglob("events.out.tfevents*"):
        acc = EventAccumulator(str(path))
        acc.Reload()
        try:
            hparams.update(acc.PluginTagToContent("hparams"))
        except KeyError:
            pass
    assert "_hparams_/session_start_info" in hparams  # TensorBoard's hparams view has the run
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    shown = HParamsPluginData.FromString(hparams["_hparams_/session_start_info"]).session_start_info.hparams
    assert {"lr", "n_components", "data/dataset", "data/protocol", "data/batch_size"} <= set(shown)  # model and data
    seed = shown["data/seed"]  # the split seed taken (seed_everything's; had: 'None', as given)
    assert seed.WhichOneof("kind") == "number_value" and seed.number_value == 0
    assert not [k for k in shown if k.removeprefix("data/").startswith("_")]  # no _class_path, _instantiator
    share = AnomalyDataModule("breast_cancer", seed=0).anomaly_share  # null: the labels' share (had: 'None')
    assert shown["contamination"].number_value == pytest.approx(share) and 0.05 < share < 0.2
    last = str(next(tmp_path.rglob("last.ckpt")))
    build_cli(["test", "--ckpt_path", last, "--trainer.logger.init_args.save_dir", str(tmp_path / "test"), *QUICK])
    events = EventAccumulator(str(next((tmp_path / "test").rglob("events.out.tfevents*"))), size_guidance={"images": 0})
    events.Reload()
    assert {"test/score_histogram", "test/roc_and_pr_curves", "test/latent_view"} <= set(events.Tags()["images"])


def fit_metrics(tmp_path, name, epochs, ckpt=None, extra=()):
    args = [
        "fit",
        "--config",
        "configs/quickstart.yaml",
        "--trainer.max_epochs",
        str(epochs),
        "--trainer.check_val_every_n_epoch",
        "1",
        "--trainer.logger.init_args.save_dir",
        str(tmp_path / name),
        *QUICK,
        *extra,
    ]
    if ckpt is not None:
        args += ["--ckpt_path", str(ckpt)]
    cli = build_cli(args)
    metrics = next(c for c in cli.trainer.callbacks if isinstance(c, AnomalyMetrics)).last_metrics.get("val")
    return cli, metrics  # without label metrics (the positive-unlabeled split's val rows) the label-free ones


def test_a_fit_that_max_steps_ended_resumes_logging_at_the_steps_of_one_uninterrupted_fit(tmp_path):
    """Lightning resumes a fit saved at a validation's step after the step was counted (the fit's end) by
    skipping that validation, and had counted a batch for it: each resume logged one step further ahead."""
    args = ["fit", "--config", "configs/quickstart.yaml", *QUICK, "--trainer.max_epochs", "-1"]
    args += ["--trainer.check_val_every_n_epoch", "null", "--trainer.val_check_interval", "3"]
    ckpt = []
    for name, steps in (("first", 3), ("second", 6), ("third", 9), ("straight", 9)):
        saved = ["--trainer.logger.init_args.save_dir", str(tmp_path / name), "--trainer.max_steps", str(steps)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # (the batches a resume skips of a cut epoch: said, as it should be)
            build_cli([*args, *saved, *(ckpt if name != "straight" else [])])
        (last,) = (tmp_path / name).rglob("last.ckpt")
        ckpt = ["--ckpt_path", str(last)]
        loops = torch.load(last, weights_only=False)["loops"]["fit_loop"]
        assert loops["epoch_loop.state_dict"]["_batches_that_stepped"] == steps  # had: 7 and 11 after resumes
    assert logged_steps(tmp_path / "straight", "val/roc_auc") == [2, 5, 8]  # Lightning's: global_step - 1
    assert [logged_steps(tmp_path / n, "val/roc_auc") for n in ("first", "second", "third")] == [[2], [5], [8]]


def test_figures_share_their_validations_step_and_cadence_across_a_resume(tmp_path):
    every_third = ["--figures.every_n_validations", "3"]
    fit_metrics(tmp_path, "straight", 4, extra=every_third)  # 2 steps an epoch, a validation at each end
    assert logged_steps(tmp_path / "straight", "val/roc_auc") == [1, 3, 5, 7]  # Lightning's: global_step - 1
    assert logged_steps(tmp_path / "straight", "val/score_histogram") == [1, 7]  # the 1st and 4th validation
    fit_metrics(tmp_path, "half", 2, extra=every_third)
    fit_metrics(tmp_path, "resumed", 4, next((tmp_path / "half").rglob("last.ckpt")), every_third)
    assert logged_steps(tmp_path / "half", "val/score_histogram") == [1, 3]  # and its last: the final model's
    assert logged_steps(tmp_path / "resumed", "val/score_histogram") == [7]  # the count goes on (had restarted)
    last = str(next((tmp_path / "straight").rglob("last.ckpt")))
    validated = ["--trainer.logger.init_args.save_dir", str(tmp_path / "validated"), *every_third, *QUICK]
    build_cli(["validate", "--ckpt_path", last, *validated])  # a finished model's validation: always drawn
    assert len(logged_steps(tmp_path / "validated", "val/score_histogram")) == 1  # (not the fit's 5th of every 3)
    every_second_epoch = ["--trainer.check_val_every_n_epoch", "2", "--figures.every_n_validations", "1"]
    fit_metrics(tmp_path, "added", 3, extra=every_second_epoch)  # the CLI validates the last epoch's model
    assert logged_steps(tmp_path / "added", "val/roc_auc") == [3, 5]
    assert logged_steps(tmp_path / "added", "val/latent_view") == [3, 5]
    every_third = ["--trainer.check_val_every_n_epoch", "2", "--figures.every_n_validations", "3"]
    fit_metrics(tmp_path, "stale", 5, extra=every_third)  # validations at epochs 2 and 4, then the CLI's
    assert logged_steps(tmp_path / "stale", "val/roc_auc") == [3, 7, 9]
    assert logged_steps(tmp_path / "stale", "val/latent_view") == [3, 9]  # not epoch 4's: the model trained on


def test_the_sanity_check_fits_the_first_rows_only_and_the_fit_goes_on_as_without_it(tmp_path, monkeypatch):
    monkeypatch.setattr(dagmm_module, "SANITY_FIT_ROWS", 20)
    fitted = []
    fit = DAGMMNetwork.fit

    def counting(self, batches):
        fitted.append(sum(len(x) for x in batches))
        return fit(self, batches)

    monkeypatch.setattr(DAGMMNetwork, "fit", counting)
    small = ["--data.eval_batch_size", "16"]  # the refit's batches
    cli, checked = fit_metrics(tmp_path, "checked", 3, extra=small)
    assert fitted == [32, 158, 158, 158]  # the sanity check's: the first batches that hold 20 rows
    fitted.clear()
    _, unchecked = fit_metrics(tmp_path, "unchecked", 3, extra=[*small, "--trainer.num_sanity_val_steps", "0"])
    assert fitted == [158, 158, 158] and checked == unchecked  # nothing of that fit stays
    assert int(cli.model.fitted_at_step) == cli.trainer.global_step


def test_same_seed_same_metrics(tmp_path):
    _, first = fit_metrics(tmp_path, "a", 3)
    _, second = fit_metrics(tmp_path, "b", 3)
    assert first == second
    _, other = fit_metrics(tmp_path, "c", 3, extra=["--seed_everything", "1"])
    assert other != first


def test_resume_equals_uninterrupted_run(tmp_path, monkeypatch):
    straight, metrics = fit_metrics(tmp_path, "straight", 4)
    fit_metrics(tmp_path, "half", 2)
    ckpt = next((tmp_path / "half").rglob("*.ckpt"))
    resumed, resumed_metrics = fit_metrics(tmp_path, "resumed", 4, ckpt=ckpt)
    for name, value in straight.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[name], value, rtol=1e-6, atol=1e-7, msg=name)
    assert resumed_metrics == pytest.approx(metrics, rel=1e-6)
    # from within an epoch (two batches each, a validation and last.ckpt after each: stopped after the first
    # of the third epoch), with dropout: that epoch's next batch and the generator's next draws
    monkeypatch.setattr(LastEpochCheckpoint, "LAST_EVERY_SECONDS", 0.0)
    within = [
        "--trainer.max_epochs",
        "4",
        "--trainer.val_check_interval",
        "1",
        "--trainer.check_val_every_n_epoch",
        "1",
    ]
    save_dir = ["--trainer.logger.init_args.save_dir", str(tmp_path / "within")]
    cli = build_cli(["--config", "configs/quickstart.yaml", *within, *save_dir, *QUICK], run=False)
    cli.trainer.callbacks.append(FailsAtStep(5))
    with pytest.raises(RuntimeError, match="stopped"):
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    ckpt = next((tmp_path / "within").rglob("last.ckpt"))
    saved = torch.load(ckpt, weights_only=False)
    assert saved["global_step"] == 5 and saved["loops"]["fit_loop"]["state_dict"]["combined_loader"] == [
        {"epoch": 2, "batches": 1}
    ]
    resumed, resumed_metrics = fit_metrics(tmp_path, "resumed_within", 4, ckpt=ckpt)
    assert resumed.trainer.global_step == straight.trainer.global_step == 8
    # a fit that max_steps ended within an epoch: Lightning counts that epoch done and goes on with the next,
    # whose seed is its own (no generator states to go on with)
    fit_metrics(tmp_path, "steps", -1, extra=["--trainer.max_steps", "5"])
    ended = torch.load(next((tmp_path / "steps").rglob("last.ckpt")), weights_only=False)
    assert ended["global_step"] == 5 and "dagmm_generators" not in ended and "dagmm_generators" in saved
    cut = r"stopped within its epoch 3 \(step 5; --trainer.max_steps or max_time\), which Lightning counts done: "
    with pytest.warns(UserWarning, match=cut + r".* epoch 4; the 1 "):  # (README: "One that --trainer.max_steps
        # ended") had: silent
        fit_metrics(
            tmp_path, "steps_on", -1, next((tmp_path / "steps").rglob("last.ckpt")), ["--trainer.max_steps", "8"]
        )
    # a fit resumed so goes on by whole epochs from there: its own cut is counted from where its epoch began
    # (had: from the steps as if no epoch had been cut before, "the 2 batch(es)" here and for a whole epoch)
    with pytest.warns(UserWarning, match=r"stopped within its epoch 5 \(step 8; .* epoch 6; the 1 batch"):
        on = ["--trainer.max_steps", "10"]
        fit_metrics(tmp_path, "steps_on_2", -1, next((tmp_path / "steps_on").rglob("last.ckpt")), on)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        on = ["--trainer.max_steps", "12"]
        fit_metrics(tmp_path, "steps_on_3", -1, next((tmp_path / "steps_on_2").rglob("last.ckpt")), on)
    assert not [w for w in caught if "stopped within its epoch" in str(w.message)]  # its epoch ended at step 10
    loaded = DAGMM.load_from_checkpoint(next((tmp_path / "steps").rglob("last.ckpt")))  # a fresh fit of it: none
    quiet = dict(logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        L.Trainer(max_epochs=1, **quiet).fit(loaded, datamodule=AnomalyDataModule("breast_cancer", seed=0))
    assert not [w for w in caught if "stopped within its epoch" in str(w.message)]  # (had: said, from its load)
    for name, value in straight.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[name], value, rtol=1e-6, atol=1e-7, msg=name)
    assert resumed_metrics == pytest.approx(metrics, rel=1e-6)
    # a fit that max_steps ended at an epoch's end, resumed for more steps, from the checkpoint of that epoch's
    # end (written every epoch; also after an epoch without a validation) or of the fit's end: each epoch
    # trains its own two batches in its own order (had: a replay of the epoch's end trained a batch more, or
    # the next epoch ran one batch, shifting the rest by a step, and the fit reported an epoch more)
    sparse = ["--trainer.check_val_every_n_epoch", "3"]
    straight_sparse, _ = fit_metrics(tmp_path, "straight_sparse", -1, extra=["--trainer.max_steps", "8", *sparse])
    for every, name, validations in [(0.0, "epoch_end", []), (3600.0, "fit_end", []), (0.0, "no_val", sparse)]:
        monkeypatch.setattr(LastEpochCheckpoint, "LAST_EVERY_SECONDS", every)
        fit_metrics(tmp_path, name, -1, extra=["--trainer.max_steps", "4", *validations])
        at_end = next((tmp_path / name).rglob("last.ckpt"))
        progress = torch.load(at_end, weights_only=False)["loops"]["fit_loop"]["epoch_progress"]["current"]
        assert progress["completed"] == progress["processed"] == 2  # saved as between epochs
        more = ["--trainer.max_steps", "8", *validations]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            resumed, resumed_metrics = fit_metrics(tmp_path, f"{name}_on", -1, at_end, more)
        assert not [w for w in caught if "stopped within its epoch" in str(w.message)]  # whole epochs: nothing cut
        reference = straight_sparse if validations else straight
        assert resumed.trainer.current_epoch == reference.trainer.current_epoch == 4
        for key, value in reference.model.state_dict().items():
            torch.testing.assert_close(resumed.model.state_dict()[key], value, rtol=1e-6, atol=1e-7, msg=key)
        if not validations:
            assert resumed_metrics == pytest.approx(metrics, rel=1e-6)


def test_a_fit_of_epochs_of_another_length_resumed_at_an_epochs_end_is_not_said_cut_short(tmp_path):
    # epochs of one batch (as a fit on more processes has fewer batches an epoch), resumed with two: the
    # checkpoint's epochs were whole (had: counted against this fit's epochs, "stopped within its epoch 2")
    fit_metrics(tmp_path, "short_epochs", 2, extra=["--trainer.limit_train_batches", "0.5"])
    last = next((tmp_path / "short_epochs").rglob("last.ckpt"))
    assert torch.load(last, weights_only=False)["dagmm_batches_per_epoch"] == 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resumed, _ = fit_metrics(tmp_path, "whole_epochs", 3, last)
    assert not [w for w in caught if "stopped within its epoch" in str(w.message)]
    assert resumed.trainer.global_step == 2 + 2  # (it trained on: one epoch of two batches)


class FailsAtStep(L.Callback):
    def __init__(self, step):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            raise RuntimeError("stopped")


def test_checkpoint_from_another_variant_is_a_clear_error(tmp_path):
    # (The CLI takes the model class and its arguments from the checkpoint itself; from Python, a
    # module of another kind can be handed a checkpoint.)
    fit_metrics(tmp_path, "dagmm", 1)
    ckpt = next((tmp_path / "dagmm").rglob("*.ckpt"))
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    data = AnomalyDataModule("breast_cancer", seed=0)
    sizes = dict(input_dim=30, hidden_dims=(16, 8), n_components=2)
    with pytest.raises(
        ValueError,
        match=r"holds DAGMM .* but this run built DAGMMVAE .*; leave out --config.*DAGMM.load_from_checkpoint\(path\)",
    ):
        trainer.test(DAGMMVAE(**sizes), datamodule=data, ckpt_path=ckpt, weights_only=False)
    with pytest.raises(ValueError, match="mixture 'laplace'"):
        trainer.test(DAGMM(**sizes, mixture="laplace"), datamodule=data, ckpt_path=ckpt, weights_only=False)
    ran = ckpt.parent.parent / "config.yaml"  # a resume takes the trainer's settings from the configs: those
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, max_epochs=2)
    with pytest.raises(
        ValueError, match=rf"mixture 'laplace'.*; resume with the configs the fit ran with \(--config {ran}"
    ):
        trainer.fit(DAGMM(**sizes, mixture="laplace"), datamodule=data, ckpt_path=ckpt, weights_only=False)


def test_cli_reports_bad_input_without_a_traceback(tmp_path, capsys, monkeypatch):
    # in this process: the command's own entry point (a subprocess per case cost ~8 s of imports; one
    # subprocess run of the command is in test_first_hour's test_a_configuration_error_is_one_line)
    from dagmm_lightning.__main__ import main

    monkeypatch.chdir(ROOT)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    cases = {
        "is empty": ["--data.dataset", "table", "--data.path", str(empty)],
        r"contamination must be in (0, 0.5]": ["--model.init_args.contamination", "0.9"],
        # a list option given one value (had: no word of how to write a list)
        "got id (a list: --data.ignore_columns '[id]', or --data.ignore_columns+ id to add one)": [
            "--data.ignore_columns",
            "id",
        ],
        # two method configs: the later's class had silently replaced the earlier's (VAE and beta dropped)
        "configs/quickstart.yaml trains DAGMM and configs/vae.yaml DAGMMVAE: a later --config replaces": [
            "--config",
            "configs/vae.yaml",
        ],
        # the same class: merged key by key (had: the quick start's sizes and lr under the paper's, silently)
        "configs/quickstart.yaml and configs/lmm.yaml both configure DAGMM: the later is merged": [
            "--config",
            "configs/lmm.yaml",
        ],
        "configs/quickstart.yaml trains DAGMM and configs/pu.yaml DAGMMPU": ["-c", "configs/pu.yaml"],  # -c too
        # the paper's DAGMM after a method (had: merged over it, as the variants' base, without a word)
        "configs/quickstart.yaml and configs/dagmm.yaml both configure DAGMM: the later is merged": [
            "--config",
            "configs/dagmm.yaml",
        ],
    }
    for message, options in cases.items():
        with pytest.raises(SystemExit) as exit_info:  # any other exception: a traceback
            main(["fit", "--config", "configs/quickstart.yaml", *options, "--trainer.default_root_dir", str(tmp_path)])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert "dagmm: error:" in err and message in err and "Traceback" not in err


def test_the_papers_dagmm_config_is_refused_after_a_variant_and_its_base_composes(capsys, monkeypatch):
    from dagmm_lightning.__main__ import main

    monkeypatch.chdir(ROOT)

    def printed(*configs):
        with pytest.raises(SystemExit) as exit_info:
            main(["fit", *(a for c in configs for a in ("--config", c)), "--print_config"])
        out, err = capsys.readouterr()
        return exit_info.value.code or 0, out, err

    code, _, err = printed("configs/vae.yaml", "configs/dagmm.yaml")  # had: the VAE with the base merged over it
    assert code == 2 and "configs/vae.yaml trains DAGMMVAE and configs/dagmm.yaml DAGMM" in err
    # the base every variant includes composes after one (as configs/paper/thyroid.yaml does): nothing changes
    assert printed("configs/vae.yaml", "configs/paper/kddcup99.yaml")[1] == printed("configs/vae.yaml")[1]
    code, out, _ = printed("configs/dagmm.yaml", "configs/paper/thyroid.yaml")
    assert code == 0 and "dataset: thyroid" in out and "class_path: dagmm_lightning.models.DAGMM\n" in out
    # model settings alone before a method: its base set them again (had: sizes and lr reverted, silently)
    code, _, err = printed("configs/improvements.yaml", "configs/vae.yaml")
    assert code == 2 and "configs/improvements.yaml holds model settings alone, and configs/vae.yaml after it" in err
    code, out, _ = printed("configs/vae.yaml", "configs/improvements.yaml")
    assert code == 0 and "    hidden_dims: null" in out and "DAGMMVAE" in out


def test_lightnings_checkpoint_names_are_refused_with_the_newest_file(tmp_path, capsys, monkeypatch):
    from dagmm_lightning.__main__ import main

    monkeypatch.chdir(tmp_path)  # the default root, logs/, is here

    def refused(subcommand, name):
        config = ["--config", str(ROOT / "configs/quickstart.yaml")] if subcommand == "fit" else []
        with pytest.raises(SystemExit) as exit_info:
            main([subcommand, *config, "--ckpt_path", name])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and f"dagmm: error: --ckpt_path {name}: " in err, err
        return err

    # had: a traceback (best, hpc), an untrained model (predict, test: last), a fit from scratch (fit: last)
    for subcommand, name in (("predict", "best"), ("fit", "last"), ("test", "hpc")):
        err = refused(subcommand, name)
        assert ("SLURM requeue" if name == "hpc" else "a fit in the same process") in err
        assert "give the checkpoint file (none under logs/ yet)" in err
    assert "Lightning's model registry, which dagmm does not read" in refused("validate", "registry")
    for version, seconds in (("version_0", 2e9), ("version_1", 1e9)):  # the newest by time, not by name
        checkpoint = tmp_path / f"logs/lightning_logs/{version}/checkpoints/last.ckpt"
        checkpoint.parent.mkdir(parents=True)
        checkpoint.write_bytes(b"")
        os.utime(checkpoint, (seconds, seconds))
    assert "e.g. the newest under logs/: logs/lightning_logs/version_0/checkpoints/last.ckpt" in refused("test", "last")
    (tmp_path / "runs/ckpts").mkdir(parents=True)  # where --checkpoint.dirpath put them (had: only logs/ searched)
    (tmp_path / "runs/ckpts/last.ckpt").write_bytes(b"")
    os.utime(tmp_path / "runs/ckpts/last.ckpt", (3e9, 3e9))
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(ROOT / "configs/quickstart.yaml"), "--checkpoint.dirpath", "runs/ckpts"]
             + ["--ckpt_path", "last"])  # fmt: skip
    assert "the newest under runs/ckpts/, logs/: runs/ckpts/last.ckpt" in capsys.readouterr().err
    (tmp_path / "registry_run.ckpt").write_bytes(b"")  # a file of that name is a file (had: refused as the registry)
    with pytest.raises(SystemExit):
        main(["test", "--ckpt_path", "registry_run.ckpt"])
    assert "model registry" not in capsys.readouterr().err


def test_the_last_training_loss_is_the_last_steps_whatever_is_logged():
    class LastLoss(L.Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            self.loss = float(outputs["loss"])

    seen = LastLoss()
    model = DAGMM(input_dim=30, hidden_dims=(16, 8), n_components=2)
    quiet = dict(logger=False, enable_checkpointing=False, enable_progress_bar=False, limit_val_batches=0)
    trainer = L.Trainer(max_epochs=2, log_every_n_steps=50, callbacks=[seen], **quiet)  # 6 steps: step 0 logged
    trainer.fit(model, datamodule=AnomalyDataModule("breast_cancer", seed=0, batch_size=32))
    assert trainer.global_step > 1 and model.last_training_loss == pytest.approx(seen.loss, rel=1e-6)
    assert model.last_training_loss != pytest.approx(float(trainer.callback_metrics["train/loss"]), rel=1e-6)


class FailsAtEpoch(L.Callback):
    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == self.epoch:
            raise RuntimeError("stopped")


def test_last_ckpt_follows_the_fit_even_when_it_stops_or_a_monitor_stays_put(tmp_path, monkeypatch):
    # Lightning 2.6 writes last.ckpt only beside a top-k checkpoint: the CLI's keeps it at epochs' ends
    monkeypatch.setattr(LastEpochCheckpoint, "LAST_EVERY_SECONDS", 0.0)  # every epoch's end, not every 5 min
    root = ["--trainer.default_root_dir", str(tmp_path / "a")]  # its config.yaml there, not in ./logs
    cli = build_cli(["--config", "configs/quickstart.yaml", "--trainer.logger", "false", *root, *QUICK], run=False)
    cli.trainer.callbacks.append(FailsAtEpoch(3))
    cli.trainer.checkpoint_callback.dirpath = str(tmp_path / "a")
    with pytest.raises(RuntimeError, match="stopped"):
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    saved = torch.load(tmp_path / "a" / "last.ckpt", weights_only=False)
    assert saved["epoch"] == 2 and saved["global_step"] == cli.trainer.global_step  # 3 epochs done, all in it
    fit_metrics(tmp_path, "m", 3, extra=["--checkpoint.monitor", "epoch", "--checkpoint.mode", "min"])
    best, last = next((tmp_path / "m").rglob("epoch=*.ckpt")), next((tmp_path / "m").rglob("last.ckpt"))
    assert torch.load(best, weights_only=False)["epoch"] == 0  # the "best" epoch: the first
    assert torch.load(last, weights_only=False)["epoch"] == 2  # last.ckpt: the last, not the best
    monkeypatch.setattr(LastEpochCheckpoint, "LAST_EVERY_SECONDS", 3600.0)
    cli, _ = fit_metrics(tmp_path, "steps", 3, extra=["--trainer.max_steps", "5"])  # ends inside epoch 3
    last = torch.load(next((tmp_path / "steps").rglob("last.ckpt")), weights_only=False)
    assert last["global_step"] == cli.trainer.global_step == 5  # the fit's end, whatever the interval


def test_a_ctrl_c_python_dropped_stops_the_fit_at_the_next_batch(tmp_path, monkeypatch, caplog):
    import signal

    from dagmm_lightning import cli

    step = DAGMM.training_step

    def handler_ran_but_its_error_was_dropped(self, batch, batch_idx):
        if self.current_epoch == 2:  # as when KeyboardInterrupt is raised inside a weakref callback
            cli.CTRL_C_SEEN.set()  # (what the run's handler did before its KeyboardInterrupt was lost)
        return step(self, batch, batch_idx)

    handler = {}

    def handler_seen(self, batch, batch_idx):
        handler.setdefault("run", signal.getsignal(signal.SIGINT))
        return step(self, batch, batch_idx)

    # Python's own handler, as a process starts (Lightning leaves Ctrl-C ignored once it handled one)
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        monkeypatch.setattr(DAGMM, "training_step", handler_ran_but_its_error_was_dropped)
        with caplog.at_level("INFO"), pytest.raises(SystemExit) as stopped:
            fit_metrics(tmp_path, "dropped", 50)
        assert stopped.value.code == 130 and "fit interrupted;" in caplog.text  # had: trained on to epoch 50
        assert not cli.CTRL_C_SEEN.is_set()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        monkeypatch.setattr(DAGMM, "training_step", handler_seen)
        fit_metrics(tmp_path, "handler", 1)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the run's, given back
        with pytest.raises(KeyboardInterrupt):  # Ctrl-C's handler during a run: raises as Python's, and remembers
            handler["run"](signal.SIGINT, None)
        assert cli.CTRL_C_SEEN.is_set()
    finally:
        cli.CTRL_C_SEEN.clear()
        signal.signal(signal.SIGINT, before)


def test_an_interrupted_fit_says_where_its_checkpoint_is_and_how_to_go_on(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(LastEpochCheckpoint, "LAST_EVERY_SECONDS", 0.0)
    step = DAGMM.training_step

    def interrupted(self, batch, batch_idx):
        if self.current_epoch == 2:

            def peer_gone(*args, **kwargs):  # under ddp the other process has ended: a collective fails
                raise RuntimeError("Connection reset by peer")  # (had: Trainer.log_dir's broadcast, a traceback)

            self.trainer.strategy.broadcast = peer_gone
            raise KeyboardInterrupt  # Ctrl-C in the third epoch; Lightning ends the run with sys.exit(1)
        return step(self, batch, batch_idx)

    monkeypatch.setattr(DAGMM, "training_step", interrupted)
    with caplog.at_level("INFO"), pytest.raises(SystemExit) as stopped:
        fit_metrics(tmp_path, "i", 5)
    assert stopped.value.code == 130  # as `dagmm benchmark` and the shell say Ctrl-C (Lightning's: 1)
    last = next((tmp_path / "i").rglob("last.ckpt"))
    config = next((tmp_path / "i").rglob("config.yaml"))
    assert f"fit interrupted; {last} holds its first 2 epochs" in caplog.text
    assert f"go on:       dagmm fit --config {config} --ckpt_path {last}" in caplog.text
    monkeypatch.setattr(LastEpochCheckpoint, "LAST_EVERY_SECONDS", 3600.0)
    with caplog.at_level("INFO"), pytest.raises(SystemExit):
        fit_metrics(tmp_path, "j", 5)  # stopped before the first save was due
    assert (
        "no checkpoint written yet (last.ckpt comes at an epoch's end or a validation, every 3600 s, the first 3600 s "
        "into the fit; --checkpoint.every_n_epochs 1 writes one at each epoch's end)"
    ) in caplog.text
    assert not list((tmp_path / "j").rglob("*.ckpt"))
    save = DAGMM.on_save_checkpoint

    def interrupted_at_the_end(self, checkpoint):
        if self.trainer.fit_loop.done:
            raise KeyboardInterrupt  # Ctrl-C during the final refit (minutes on a large table)
        return save(self, checkpoint)

    monkeypatch.setattr(DAGMM, "training_step", step)
    monkeypatch.setattr(DAGMM, "on_save_checkpoint", interrupted_at_the_end)
    with caplog.at_level("INFO"), pytest.raises(SystemExit):
        fit_metrics(tmp_path, "k", 2)
    assert "fit interrupted after its training ended (4 steps), while the mixture was fitted" in caplog.text
    monkeypatch.setattr(DAGMM, "on_save_checkpoint", save)
    monkeypatch.setattr(DAGMM, "training_step", interrupted)
    monkeypatch.setattr(LastEpochCheckpoint, "LAST_EVERY_SECONDS", 0.0)

    def stopped_at_batch_6(self, batch, batch_idx):
        if batch_idx == 6:
            raise KeyboardInterrupt
        return step(self, batch, batch_idx)

    monkeypatch.setattr(DAGMM, "training_step", stopped_at_batch_6)
    within = ["--data.batch_size", "16", "--trainer.val_check_interval", "4"]  # 9 batches an epoch
    with caplog.at_level("INFO"), pytest.raises(SystemExit):
        fit_metrics(tmp_path, "k", 1, extra=within)  # a fit shorter than its one epoch: saved at its validation
    last = next((tmp_path / "k").rglob("last.ckpt"))
    assert torch.load(last, weights_only=False)["global_step"] == 4
    assert f"fit interrupted; {last} holds its first 4 steps (0 epochs whole)" in caplog.text


def test_exponential_weight_averaging_validates_and_checkpoints_the_average_with_its_own_mixture(tmp_path):
    # EMAWeightAveraging swaps its copy (weights and buffers: the mixture too) in at each validation,
    # writes it as a checkpoint's state dict and copies it in at the end; it had failed ("not fitted")
    ema = ["--trainer.callbacks+=EMAWeightAveraging", "--trainer.callbacks.decay", "0.5"]
    every_epoch = ["--checkpoint.every_n_epochs", "1", "--checkpoint.save_top_k", "-1"]
    saved, final = {}, {}
    for every in (1, 3):
        name = f"every{every}"
        cli, final[every] = fit_metrics(
            tmp_path, name, 4, extra=[*ema, *every_epoch, "--trainer.check_val_every_n_epoch", str(every)]
        )
        saved[every] = {p.name: torch.load(p, weights_only=False) for p in (tmp_path / name).rglob("*.ckpt")}
    assert (
        sorted(saved[1]) == sorted(saved[3]) == [f"epoch={e}-step={2 * e + 2}.ckpt" for e in range(4)] + ["last.ckpt"]
    )
    for checkpoint, state in saved[1].items():  # validated before it or not: the same average, the same fit of it
        other = saved[3][checkpoint]["state_dict"]
        for key, value in state["state_dict"].items():
            torch.testing.assert_close(other[key], value, rtol=1e-5, atol=1e-6, msg=f"{checkpoint} {key}")
    middle = saved[1]["epoch=1-step=4.ckpt"]
    encoder = next(k for k in middle["state_dict"] if k.endswith("weight"))
    assert not torch.equal(middle["state_dict"][encoder], middle["current_model_state"][encoder])  # the average
    tested = build_cli(["validate", "--ckpt_path", str(next((tmp_path / "every3").rglob("last.ckpt"))), *QUICK])
    validated = next(c for c in tested.trainer.callbacks if isinstance(c, AnomalyMetrics)).last_metrics["val"]
    assert final[3] == pytest.approx(validated) and final[1] == pytest.approx(validated)  # the summary's numbers


def test_a_finished_averaged_fit_goes_on_from_its_training_weights_as_one_longer_fit(tmp_path):
    # EMAWeightAveraging copies its average in before the final last.ckpt: that checkpoint had kept the
    # average as the training weights too, and a longer fit resumed from it trained on from the average
    ema = ["--trainer.callbacks+=EMAWeightAveraging", "--trainer.callbacks.decay", "0.5"]
    _, metrics = fit_metrics(tmp_path, "straight", 4, extra=ema)
    fit_metrics(tmp_path, "half", 2, extra=ema)
    half = torch.load(next((tmp_path / "half").rglob("last.ckpt")), weights_only=False)
    encoder = next(k for k in half["state_dict"] if k.endswith("weight"))
    assert not torch.equal(half["state_dict"][encoder], half["current_model_state"][encoder])
    _, resumed_metrics = fit_metrics(tmp_path, "resumed", 4, next((tmp_path / "half").rglob("last.ckpt")), ema)
    assert resumed_metrics == pytest.approx(metrics, rel=1e-6)
    straight, resumed = (
        torch.load(next((tmp_path / name).rglob("last.ckpt")), weights_only=False) for name in ("straight", "resumed")
    )
    for part in ("state_dict", "current_model_state"):  # the average and the training weights
        for key, value in straight[part].items():
            torch.testing.assert_close(resumed[part][key], value, rtol=1e-6, atol=1e-7, equal_nan=True, msg=key)


def test_an_averaged_checkpoint_records_the_fit_of_the_average_it_holds(tmp_path):
    x = np.random.default_rng(0).normal(size=(300, 4))
    L.seed_everything(0)
    model = DAGMM(input_dim=4, hidden_dims=(6,), latent_dim=2, n_components=2, lr=1e-2, em_steps=200, em_tolerance=1e-6)
    saves = ModelCheckpoint(dirpath=tmp_path, every_n_epochs=1, save_top_k=-1)
    fit = L.Trainer(
        max_epochs=2,
        logger=False,
        callbacks=[EMAWeightAveraging(decay=0.5), saves],
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    fit.fit(model, AnomalyDataModule.from_arrays(x, batch_size=64, val_fraction=0))  # no validation: each
    # checkpoint fits the average it holds, the training weights having none of their own since the first
    saved = torch.load(tmp_path / "epoch=1-step=10.ckpt", weights_only=False)
    model.load_state_dict(saved["current_model_state"])
    model.refit()
    live = model.model.em_steps_run
    model.load_state_dict(saved["state_dict"])
    model.refit()
    assert saved["dagmm_fit_counts"]["em_steps"] == model.model.em_steps_run != live  # had: the live weights'
    for name, value in saved["state_dict"].items():
        if "mixture" in name:
            torch.testing.assert_close(model.state_dict()[name], value, msg=name)


def test_positive_unlabeled_logs_the_c_of_the_averaged_weights_it_validated(tmp_path):
    ema = ["--trainer.callbacks+=EMAWeightAveraging", "--trainer.callbacks.decay", "0.5"]
    pu = ["--model", "DAGMMPU", "--data.split", "positive_unlabeled", "--checkpoint.every_n_epochs", "1"]
    cli, _ = fit_metrics(tmp_path, "pu", 2, extra=[*pu, "--checkpoint.save_top_k", "-1", *ema])
    saved = torch.load(next((tmp_path / "pu").rglob("epoch=1-*.ckpt")), weights_only=False)
    assert float(cli.trainer.callback_metrics["val/c"]) == pytest.approx(float(saved["state_dict"]["model.c"]))
    assert not torch.equal(saved["state_dict"]["model.c"], saved["current_model_state"]["model.c"])  # not the live c


def test_weights_swapped_in_at_the_end_get_their_own_mixture(tmp_path):
    # StochasticWeightAveraging swaps the averaged weights in when training ends, without a step: the
    # checkpoint's mixture and threshold must be fitted with those, whichever epochs validated
    swa = ["--trainer.callbacks+=StochasticWeightAveraging", "--trainer.callbacks.swa_lrs", "0.01"]
    saved = []
    for every in (1, 3):
        name = f"every{every}"
        fit_metrics(tmp_path, name, 4, extra=[*swa, "--trainer.check_val_every_n_epoch", str(every)])
        saved.append(torch.load(next((tmp_path / name).rglob("last.ckpt")), weights_only=False)["state_dict"])
    for key, value in saved[0].items():  # the same averaged weights, so the same fit of them
        torch.testing.assert_close(saved[1][key], value, rtol=1e-5, atol=1e-6, msg=key)
    # its config.yaml names its torch.device (had: 'Unable to serialize instance cpu'), and resumes from it
    config = next((tmp_path / "every1").rglob("config.yaml"))
    assert "      device: cpu\n" in config.read_text()
    last = str(config.parent / "checkpoints/last.ckpt")
    resumed = build_cli(["fit", "--config", str(config), "--ckpt_path", last, "--trainer.max_epochs", "5"])
    swa = next(c for c in resumed.trainer.callbacks if type(c).__name__ == "StochasticWeightAveraging")
    assert resumed.trainer.current_epoch == 5 and swa._device == torch.device("cpu")


def test_a_column_constant_in_training_is_hidden_from_the_encoder_and_seen_by_the_reconstruction(tmp_path, monkeypatch):
    x = np.c_[np.random.default_rng(0).normal(size=(300, 3)), np.full(300, 5.0)]  # the last column constant

    def fit():
        L.seed_everything(0)
        dm = AnomalyDataModule.from_arrays(x, batch_size=64)
        model = DAGMM(input_dim=4, hidden_dims=(6,), latent_dim=2, n_components=2, contamination=0.1)
        trainer = L.Trainer(
            max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False, limit_val_batches=0
        )
        trainer.fit(model, dm)
        return model, dm, trainer

    masked, dm, trainer = fit()
    trained = {name: value.detach().clone() for name, value in masked.named_parameters()}
    assert masked.model.input_mask.tolist() == [1.0, 1.0, 1.0, 0.0]
    rows = torch.from_numpy(dm.preprocessor.scale(np.array([[0.2, 0.1, -0.3, 5.0], [0.2, 0.1, -0.3, 5.8]])))
    assert rows[:, 3].tolist() == pytest.approx([0.0, 0.8])
    with torch.no_grad():
        out = masked.eval().model.represent(rows, memberships=False)
    torch.testing.assert_close(out.z[0], out.z[1], rtol=0, atol=0)  # the encoder does not see the column
    decoded = out.x_hat[0, 3].double()  # both rows decode alike; the error sees the column's difference
    assert float(out.error[1] - out.error[0]) == pytest.approx(0.8**2 - 2 * 0.8 * float(decoded), abs=1e-5)

    path = tmp_path / "masked.ckpt"
    trainer.save_checkpoint(path)
    loaded = DAGMM.load_from_checkpoint(path)
    assert loaded.model.input_mask.tolist() == [1.0, 1.0, 1.0, 0.0]
    torch.testing.assert_close(loaded.eval().score(rows), masked.score(rows))
    saved_before = {k: v for k, v in masked.state_dict().items() if k != "model.input_mask"}  # an older model
    loaded.load_state_dict(saved_before)
    assert loaded.model.input_mask is None

    varying = np.random.default_rng(1).normal(size=(300, 4))
    again = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    # fitted again after model.eval() (it scored above): trains in training mode (had: a TypeError in the loss)
    again.fit(masked, AnomalyDataModule.from_arrays(varying, batch_size=64))
    assert not any(torch.equal(trained[name], value) for name, value in masked.named_parameters())  # it trained
    assert masked.model.input_mask is None  # no column is constant on these rows

    # weight averaging copies the module before its setup: the copy's buffers must pair with the module's
    averaging = EMAWeightAveraging(decay=0.5)
    L.seed_everything(0)
    averaged = DAGMM(input_dim=4, hidden_dims=(6,), latent_dim=2, n_components=2, contamination=0.1)
    last = ModelCheckpoint(dirpath=tmp_path / "averaged", save_last=True)
    L.Trainer(max_epochs=2, logger=False, callbacks=[averaging, last], enable_progress_bar=False).fit(
        averaged, AnomalyDataModule.from_arrays(x, batch_size=64, val_fraction=0.2)
    )  # had: "The size of tensor a (2) must match the size of tensor b (4)"
    assert averaging._average_model.module.model.input_mask.tolist() == [1.0, 1.0, 1.0, 0.0]
    saved = torch.load(tmp_path / "averaged" / "last.ckpt", weights_only=False)
    assert saved["state_dict"]["model.input_mask"].tolist() == [1.0, 1.0, 1.0, 0.0]  # the average's state
    assert DAGMM.load_from_checkpoint(last.last_model_path).model.input_mask.tolist() == [1.0, 1.0, 1.0, 0.0]

    monkeypatch.setattr(DAGMMNetwork, "mask_inputs", lambda self, hidden: None)  # as before the mask
    plain, _, _ = fit()
    for (name, a), b in zip(trained.items(), plain.parameters(), strict=True):  # training unchanged
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    with torch.no_grad():
        z = plain.eval().model.represent(rows, memberships=False).z
    assert not torch.equal(z[0], z[1])  # the column's untrained weights move the latent
