"""Write ``predict`` results to a CSV: source row index, score, 0/1 label at the stored threshold, truth."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
from lightning.pytorch.callbacks import BasePredictionWriter

from dagmm_lightning.distributed import gather_rows

COLUMNS = {"index": torch.long, "score": torch.float64, "prediction": torch.long, "label": torch.long}


class PredictionCSVWriter(BasePredictionWriter):
    """Gathers every rank's predictions at the end of ``predict`` and writes one CSV, sorted by row index.

    Args:
        output_path: the CSV to write; default ``predictions.csv`` in the run's log folder. Column
            ``label`` is the known truth (1 = anomaly) or -1 where the rows carry no labels.
    """

    def __init__(self, output_path: str | None = None) -> None:
        super().__init__(write_interval="epoch")
        self.output_path = output_path
        self.written_to: Path | None = None
        self.rows_written = 0

    def write_on_epoch_end(self, trainer, pl_module, predictions, batch_indices) -> None:
        batches = predictions[0] if predictions and isinstance(predictions[0], list) else predictions
        columns = {}
        for column, dtype in COLUMNS.items():
            local = torch.cat([b[column].to(dtype) for b in batches]) if batches else torch.zeros(0, dtype=dtype)
            columns[column] = gather_rows(local.to(pl_module.device)).cpu().numpy()
        if not trainer.is_global_zero:
            return
        path = Path(self.output_path) if self.output_path else Path(trainer.log_dir or ".") / "predictions.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        # a rank without rows of its own scored a padding row again: each row id once
        frame = pd.DataFrame(columns).drop_duplicates("index").sort_values("index", kind="stable")
        frame.to_csv(path, index=False)
        self.written_to, self.rows_written = path, len(frame)  # the CLI says where, after the progress bar
