"""Progress on a terminal as Lightning's bar; in a log file or a pipe as a line now and then."""

from __future__ import annotations

import sys
import time

import torch
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm

REFRESH_RATE = 20  # the bar's redraw every step cost ~1.5 ms a step, 10 % of a KDDCUP99 epoch
LINE_INTERVAL = 30.0  # seconds between progress lines in a log file
SHOWN_VALIDATION = ("val/roc_auc", "val/c", "val/reconstruction")  # the line's validation metric: the first one logged


class ProgressReport(TQDMProgressBar):
    """Lightning's TQDM bar where stdout is a terminal (or a notebook's). Where it is a file or a pipe
    (``nohup``, a scheduler's log) the bar's redraws would fill it with carriage returns; there it prints a
    line instead, at most every ``line_interval`` seconds, the first and the last epoch of a run always::

        epoch 12/200 (step 1,440): train/loss 4.71, val/roc_auc 0.8333 [31 s]

    (the last validation's metric), and within an epoch, test or predict run longer than that
    ``epoch 3/200: batch 500/1,400 [45 s]``.

    Args:
        refresh_rate: the bar's redraw interval, in steps.
        leave: keep each epoch's bar.
        line_interval: seconds between lines.
        lines: True / False for lines / the bar whatever stdout is; None: lines unless stdout is a terminal
            or a Jupyter notebook's.
    """

    def __init__(
        self,
        refresh_rate: int = REFRESH_RATE,
        leave: bool = False,
        line_interval: float = LINE_INTERVAL,
        lines: bool | None = None,
    ) -> None:
        super().__init__(refresh_rate=refresh_rate, leave=leave)
        if not line_interval >= 0:
            raise ValueError(f"line_interval must be >= 0 seconds, got {line_interval}")
        self.line_interval = float(line_interval)
        self.lines = lines
        self._started = self._printed = 0.0
        self._epochs_reported = 0  # epochs this run has ended (a resumed fit's first one is said too)
        self._epoch_started = 0.0
        self._lines_now = False  # writes_lines, as a run's setup found it (not asked at every batch)

    def setup(self, trainer, pl_module, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        self._lines_now = self.writes_lines

    @property
    def writes_lines(self) -> bool:
        if self.lines is not None:
            return bool(self.lines)
        if type(sys.stdout).__module__.startswith("ipykernel"):  # a notebook redraws the bar's line in place
            return False
        isatty = getattr(sys.stdout, "isatty", None)
        return not (isatty is not None and isatty())

    def init_sanity_tqdm(self) -> Tqdm:
        return Tqdm(disable=True) if self._lines_now else super().init_sanity_tqdm()

    def init_train_tqdm(self) -> Tqdm:
        return Tqdm(disable=True) if self._lines_now else super().init_train_tqdm()

    def init_validation_tqdm(self) -> Tqdm:
        return Tqdm(disable=True) if self._lines_now else super().init_validation_tqdm()

    def init_test_tqdm(self) -> Tqdm:
        return Tqdm(disable=True) if self._lines_now else super().init_test_tqdm()

    def init_predict_tqdm(self) -> Tqdm:
        return Tqdm(disable=True) if self._lines_now else super().init_predict_tqdm()

    def _due(self) -> bool:
        return time.monotonic() - self._printed >= self.line_interval

    def _line(self, text: str) -> None:
        now = time.monotonic()
        self._printed = now
        print(f"{text} [{now - self._started:.0f} s]", file=sys.stdout, flush=True)

    def _start(self) -> None:
        self._started = self._printed = time.monotonic()

    def _epoch(self, trainer) -> str:
        if trainer.max_epochs is not None and trainer.max_epochs > 0:
            return f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}"
        return f"epoch {trainer.current_epoch + 1}"

    def _reporting(self) -> bool:
        return self._lines_now and self.is_enabled

    def on_train_start(self, trainer, pl_module) -> None:
        super().on_train_start(trainer, pl_module)
        self._start()
        self._epochs_reported = 0

    def on_train_epoch_start(self, trainer, *args) -> None:
        super().on_train_epoch_start(trainer, *args)
        self._epoch_started = time.monotonic()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if not self._reporting():
            return
        total = self.total_train_batches
        long_epoch = time.monotonic() - self._epoch_started >= self.line_interval  # (else its end's line says it)
        if long_epoch and self._due() and batch_idx + 1 < total:
            shown = f"/{int(total):,}" if total != float("inf") else ""
            self._line(f"{self._epoch(trainer)}: batch {batch_idx + 1:,}{shown}")

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if not self._reporting():
            return
        last = trainer.should_stop or (
            trainer.max_epochs is not None
            and trainer.max_epochs > 0
            and trainer.current_epoch + 1 >= trainer.max_epochs
        )
        steps_done = trainer.max_steps is not None and 0 < trainer.max_steps <= trainer.global_step
        self._epochs_reported += 1
        if self._epochs_reported == 1 or last or steps_done or self._due():
            steps = f"/{trainer.max_steps:,}" if trainer.max_steps is not None and trainer.max_steps > 0 else ""
            step = f"step {trainer.global_step:,}{steps}"
            self._line(f"{self._epoch(trainer)} ({step}): {self._metrics(trainer, pl_module)}")

    def _metrics(self, trainer, pl_module) -> str:
        shown = {k: v for k, v in self.get_metrics(trainer, pl_module).items() if k != "v_num"}
        last = getattr(pl_module, "last_training_loss", None)  # the line's step's (the bar's: the last step
        if "train/loss" in shown and last is not None and last == last:  # logged, every log_every_n_steps)
            shown["train/loss"] = last
        for name in SHOWN_VALIDATION:
            value = trainer.callback_metrics.get(name)
            if value is not None:
                shown[name] = value
                break
        text = [
            f"{k} {float(v):.4g}" if isinstance(v, (int, float, torch.Tensor)) else f"{k} {v}" for k, v in shown.items()
        ]
        return ", ".join(text) or "no metrics logged yet"

    def on_test_start(self, trainer, pl_module) -> None:
        super().on_test_start(trainer, pl_module)
        self._start()

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        super().on_test_batch_end(trainer, pl_module, outputs, batch, batch_idx, dataloader_idx)
        self._eval_line("test", self.total_test_batches_current_dataloader, batch_idx)

    def on_predict_start(self, trainer, pl_module) -> None:
        super().on_predict_start(trainer, pl_module)
        self._start()

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        super().on_predict_batch_end(trainer, pl_module, outputs, batch, batch_idx, dataloader_idx)
        self._eval_line("predict", self.total_predict_batches_current_dataloader, batch_idx)

    def _eval_line(self, stage: str, total: float, batch_idx: int) -> None:
        if self._reporting() and self._due() and batch_idx + 1 < total:
            shown = f"/{int(total):,}" if total != float("inf") else ""
            self._line(f"{stage}: batch {batch_idx + 1:,}{shown}")
