"""The checkpoint callback every ``fit`` of the CLI uses."""

from __future__ import annotations

import re
import time

from lightning.pytorch.callbacks import ModelCheckpoint


class LastEpochCheckpoint(ModelCheckpoint):
    """Checkpoints: last.ckpt as the fit ends, and while it runs at most every 5 minutes.

    Lightning's ``ModelCheckpoint`` whose ``last.ckpt`` holds the fit as it ends, and while it runs an
    epoch's end or a validation within an epoch (any validation where it saves at validations: with
    ``save_on_train_epoch_end=False``, or a monitor and no validation every epoch) at most every
    ``LAST_EVERY_SECONDS``: an interrupted or failed fit goes on from there. Since Lightning 2.6
    ``save_last`` writes only beside a top-k checkpoint of the same step: with ``save_top_k=0`` (what the
    CLI sets where nothing is monitored) an interrupted fit left none, and with a monitor last.ckpt stayed
    at the best step. The
    interval bounds the cost: a checkpoint refits the mixture on the training rows (the model's
    ``on_save_checkpoint``; the improved config: at most 65,536 of them), seconds to a minute."""

    LAST_EVERY_SECONDS = 300.0

    @property
    def state_key(self) -> str:  # ModelCheckpoint's, so that checkpoints of either class resume alike
        return super().state_key.replace(type(self).__qualname__, ModelCheckpoint.__qualname__, 1)

    def _format_checkpoint_name(self, filename, metrics, prefix=None, auto_insert_metric_name=True) -> str:
        # our metrics are named val/...: in a filename template the slash would make a subfolder
        if filename:
            filename = re.sub(r"\{[^}:]*", lambda field: field.group(0).replace("/", "_"), filename)
        metrics = {name.replace("/", "_"): value for name, value in metrics.items()}
        return super()._format_checkpoint_name(filename, metrics, prefix, auto_insert_metric_name)

    def _should_save_on_train_epoch_end(self, trainer) -> bool:
        # not given (None): at each epoch's end where nothing is monitored; with a monitor, Lightning's rule
        # (at a validation's end unless one ends every epoch: had, at an epoch's end without one, Lightning's
        # "could not find the monitored key" at the first step under a schedule of steps)
        if self._save_on_train_epoch_end is None and self.monitor is None:
            return True
        return super()._should_save_on_train_epoch_end(trainer)

    def on_train_start(self, trainer, pl_module) -> None:
        super().on_train_start(trainer, pl_module)
        self._last_saved_at = time.monotonic()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._save_last(trainer, when_due=True)

    def on_validation_end(self, trainer, pl_module) -> None:
        super().on_validation_end(trainer, pl_module)
        # also a validation within an epoch (val_check_interval): an epoch may outlast the whole fit
        within_epoch = not trainer.fit_loop.epoch_loop.batch_progress.is_last_batch
        if not self._should_save_on_train_epoch_end(trainer) or within_epoch:
            self._save_last(trainer, when_due=True)

    def on_train_end(self, trainer, pl_module) -> None:  # not Lightning's: it writes even under fast_dev_run
        if getattr(pl_module, "weights_changed_since_fit", lambda: False)():  # SWA's swap: no step, new weights
            self._last_global_step_saved = -1  # so this step's checkpoint is written again, with them
        self._save_last(trainer, when_due=False)

    def _save_last(self, trainer, when_due: bool) -> None:
        due = time.monotonic() - getattr(self, "_last_saved_at", 0.0) >= self.LAST_EVERY_SECONDS
        due = trainer.strategy.broadcast(due)  # the first process's clock: a save is collective (refit, barrier)
        # skipped when this step has a checkpoint already (super() wrote one), in sanity checks and outside fit
        if self.save_last and (due or not when_due) and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
            self._last_saved_at = time.monotonic()
