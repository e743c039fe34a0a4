"""LightningCLI for ``dagmm fit|validate|test|predict``, with the data module's input size linked into the model."""

from __future__ import annotations

import os

# Lightning's CLI still calls jsonargparse APIs that newer releases flag as deprecated; that noise is
# not the user's to act on.
os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "off")

from jsonargparse import Namespace  # noqa: E402
from lightning.pytorch.callbacks import ModelCheckpoint  # noqa: E402
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback  # noqa: E402

from dagmm_lightning.callbacks import AnomalyFigures, AnomalyMetrics, PredictionCSVWriter  # noqa: E402
from dagmm_lightning.data import AnomalyDataModule  # noqa: E402
from dagmm_lightning.models import DAGMM  # noqa: E402

PROGRESS_REFRESH_RATE = 20
TRAINER_DEFAULTS = {
    "logger": {"class_path": "lightning.pytorch.loggers.TensorBoardLogger", "init_args": {"save_dir": "logs"}}
}


class DAGMMCLI(LightningCLI):
    def before_instantiate_classes(self) -> None:
        # Redrawing the progress bar after every step cost ~1.5 ms a step, 10 % of a KDDCUP99 epoch;
        # unless the config brings its own bar or none, draw it every PROGRESS_REFRESH_RATE steps.
        config = self.config[self.subcommand] if self.subcommand else self.config
        trainer = config.get("trainer")
        if trainer is None or trainer.get("enable_progress_bar") is False:
            return
        callbacks = list(trainer.get("callbacks") or [])
        if any("ProgressBar" in str(getattr(c, "class_path", c)) for c in callbacks):
            return
        bar = Namespace(
            class_path="lightning.pytorch.callbacks.TQDMProgressBar",
            init_args=Namespace(refresh_rate=PROGRESS_REFRESH_RATE, leave=False),
        )
        trainer["callbacks"] = [*callbacks, bar]

    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("data.input_dim", "model.init_args.input_dim", apply_on="instantiate")
        parser.add_lightning_class_args(AnomalyMetrics, "metrics")
        parser.add_lightning_class_args(PredictionCSVWriter, "prediction_writer")
        parser.add_lightning_class_args(AnomalyFigures, "figures")
        # Save at the end of every training epoch, not only after validations, so the checkpoint of the
        # last epoch exists (the model refits its mixture before a checkpoint is written).
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults({"checkpoint.save_on_train_epoch_end": True})


def build_cli(args: list[str] | None = None, run: bool = True, save_config: bool = True) -> DAGMMCLI:
    """The CLI on ``args`` (default: the command line); with ``run=False`` only parsed and instantiated;
    ``save_config=False`` writes no ``config.yaml`` (without a logger it would land in the working folder)."""
    return DAGMMCLI(
        DAGMM,
        AnomalyDataModule,
        subclass_mode_model=True,
        seed_everything_default=0,
        trainer_defaults=TRAINER_DEFAULTS,
        save_config_callback=SaveConfigCallback if save_config else None,
        save_config_kwargs={"overwrite": True},
        args=args,
        run=run,
    )
