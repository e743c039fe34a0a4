"""Callbacks shared by tests. Not in conftest: importing Lightning there, before pytest's log capture is
set up, makes Lightning's logger stop propagating (caplog would see none of its records)."""

import lightning as L


class SavesAtStep(L.Callback):
    """Writes a checkpoint to ``path`` after the training step that brings the global step to ``step``."""

    def __init__(self, path, step):
        self.path, self.step = path, step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            trainer.save_checkpoint(self.path)
