"""Write ``predict`` results to a CSV: source row index, score, 0/1 label at the stored threshold, truth."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pandas as pd
import torch
from lightning.pytorch.utilities import rank_zero_info

from dagmm_lightning.distributed import gather_uneven, rank

COLUMNS = ("index", "score", "prediction", "label")


class PredictionCSVWriter(L.Callback):
    """Gathers every rank's predictions and writes one CSV, sorted by row index.

    Args:
        output_path: the CSV to write; default ``predictions.csv`` in the run's log folder. Column
            ``label`` is the known truth (1 = anomaly) or -1 where the rows carry no labels.
    """

    def __init__(self, output_path: str | None = None) -> None:
        self.output_path = output_path
        self._parts: dict[str, list[torch.Tensor]] = {}
        self.written_to: Path | None = None

    def on_predict_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._parts = {c: [] for c in COLUMNS}

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        for column in COLUMNS:
            self._parts[column].append(outputs[column].detach())

    def on_predict_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        columns = {}
        for column, parts in self._parts.items():
            local = torch.cat(parts) if parts else torch.zeros(0, device=pl_module.device)
            columns[column] = gather_uneven(local).cpu().numpy()
        self._parts = {}
        if rank() != 0:
            return
        path = Path(self.output_path) if self.output_path else Path(trainer.log_dir or ".") / "predictions.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        frame = pd.DataFrame(columns).sort_values("index", kind="stable")
        frame.to_csv(path, index=False)
        self.written_to = path
        rank_zero_info(f"wrote {len(frame)} predictions to {path}")
