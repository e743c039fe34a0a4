"""Validation- and test-time anomaly metrics, gathered over DDP ranks (each row counted once)."""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from dagmm_lightning.distributed import gather_uneven
from dagmm_lightning.metrics import (
    average_precision,
    percent_label,
    precision_recall_f1,
    roc_auc,
    top_percent_threshold,
)

REFERENCES = ("protocol", "evaluated", "train+evaluated")


class AnomalyMetrics(L.Callback):
    """Precision, recall and F1 at "top p %" thresholds and at the model's stored threshold, ROC AUC and
    average precision of the raw scores; logged as ``val/...`` and ``test/...``. The data set's rho is
    also logged under rho-free names (``val/f1_rho``), for checkpoint selection in any config.

    Args:
        percentiles: the p values, in percent; the data module's ``rho`` is added when it has one.
        percentile_reference: the rows whose scores define "top p %": ``evaluated`` (the rows being
            evaluated, the paper's protocol), ``train+evaluated`` (training plus evaluated rows, as the
            reimplementations do) or ``protocol`` (whichever the data module's protocol uses).
        summary: print the last validation metrics when ``fit`` ends.
    """

    def __init__(
        self,
        percentiles: Sequence[float] = (10, 20, 30, 40, 50, 60),
        percentile_reference: str = "protocol",
        summary: bool = True,
    ) -> None:
        if percentile_reference not in REFERENCES:
            raise ValueError(f"percentile_reference must be one of {REFERENCES}, got {percentile_reference!r}")
        for p in percentiles:
            if not 0 < p < 100:
                raise ValueError(f"percentiles are in (0, 100), got {p}")
        self.percentiles = [float(p) for p in percentiles]
        self.percentile_reference = percentile_reference
        self.summary = summary
        self._scores: list[torch.Tensor] = []
        self._labels: list[torch.Tensor] = []
        self._energies: list[torch.Tensor] = []
        self.last_metrics: dict[str, dict[str, float]] = {}
        self._warned: set[str] = set()

    # --- collection -------------------------------------------------------------------------------
    def _reset(self, *args) -> None:
        self._scores, self._labels, self._energies = [], [], []

    def _collect(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._scores.append(outputs["score"].detach())
        self._labels.append(outputs["label"].detach())
        if "energy" in outputs:  # a model whose score is not the energy reports it too
            self._energies.append(outputs["energy"].detach())

    on_validation_epoch_start = on_test_epoch_start = _reset
    on_validation_batch_end = on_test_batch_end = _collect

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._finish("val", trainer, pl_module)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._finish("test", trainer, pl_module)

    # --- computation ------------------------------------------------------------------------------
    def reference(self, trainer: L.Trainer) -> str:
        if self.percentile_reference != "protocol":
            return self.percentile_reference
        protocol = getattr(trainer.datamodule, "protocol", "paper")
        return "train+evaluated" if protocol == "reimplementation" else "evaluated"

    def all_percentiles(self, trainer: L.Trainer) -> list[float]:
        rho = getattr(trainer.datamodule, "rho", None)
        extra = [float(rho)] if rho is not None and float(rho) not in self.percentiles else []
        return sorted(self.percentiles + extra)

    def compute(
        self,
        scores: np.ndarray,
        labels: np.ndarray,
        percentiles: Sequence[float],
        threshold: float | None,
        reference_scores: np.ndarray | None = None,
        rho: float | None = None,
    ) -> dict[str, float]:
        """All metrics for scores (N,) and labels (N,); ``reference_scores`` define the percentiles
        (default: ``scores`` themselves). With ``rho`` (one of ``percentiles``), its P/R/F1 are repeated
        as ``precision_rho``, ``recall_rho``, ``f1_rho``: one name to monitor on any data set."""
        reference_scores = scores if reference_scores is None else reference_scores
        metrics = {"roc_auc": roc_auc(scores, labels), "average_precision": average_precision(scores, labels)}
        for p in percentiles:
            cut = top_percent_threshold(reference_scores, p)
            prec, rec, f1 = precision_recall_f1(scores > cut, labels)
            name = percent_label(p)
            metrics.update({f"precision_top{name}": prec, f"recall_top{name}": rec, f"f1_top{name}": f1})
        if rho is not None:
            name = percent_label(rho)
            for m in ("precision", "recall", "f1"):
                metrics[f"{m}_rho"] = metrics[f"{m}_top{name}"]
        if threshold is not None and np.isfinite(threshold):
            prec, rec, f1 = precision_recall_f1(scores > threshold, labels)
            metrics.update({"precision_threshold": prec, "recall_threshold": rec, "f1_threshold": f1})
        return metrics

    def _finish(self, stage: str, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        device = pl_module.device
        local_scores = torch.cat(self._scores) if self._scores else torch.zeros(0, dtype=torch.float64, device=device)
        local_labels = torch.cat(self._labels) if self._labels else torch.zeros(0, dtype=torch.long, device=device)
        scores = gather_uneven(local_scores.double()).cpu().numpy()
        labels = gather_uneven(local_labels.long()).cpu().numpy()
        energies = gather_uneven(torch.cat(self._energies).double()).cpu().numpy() if self._energies else None
        self._reset()
        reference = None
        if self.reference(trainer) == "train+evaluated":
            train_scores = pl_module.training_scores().double().cpu().numpy()
            reference = np.concatenate([train_scores, scores])
        if len(scores) == 0 or (labels < 0).any():
            rank_zero_warn(f"{stage}: rows without labels; anomaly metrics need labels and are skipped")
            return
        if trainer.sanity_checking:
            return
        if len(np.unique(labels)) < 2:
            self._warn_once(
                stage, f"{stage}: every evaluated row is {'an anomaly' if labels[0] else 'normal'} (as with the "
                "positive-unlabeled split, which validates on labelled normal rows); ROC AUC, precision, recall "
                "and F1 need both classes and are skipped"
            )
            return
        threshold = getattr(pl_module, "threshold", None)
        threshold = None if threshold is None else float(threshold)
        rho = getattr(trainer.datamodule, "rho", None)
        metrics = self.compute(scores, labels, self.all_percentiles(trainer), threshold, reference, rho)
        if energies is not None:
            metrics["roc_auc_energy"] = roc_auc(energies, labels)
        self.last_metrics[stage] = metrics
        loggable = {f"{stage}/{k}": v for k, v in metrics.items() if np.isfinite(v)}
        pl_module.log_dict(loggable, sync_dist=False)

    def _warn_once(self, stage: str, message: str) -> None:
        if stage not in self._warned:
            self._warned.add(stage)
            rank_zero_warn(message)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        final = self.last_metrics.get("val")
        if final is None:
            return
        if self.summary:
            rank_zero_info(format_metrics("validation metrics after the last epoch", final))
        if trainer.logger is not None:  # TensorBoard's hparams view: hyperparameters with final metrics
            trainer.logger.log_hyperparams(
                dict(pl_module.hparams), {f"hp/{k}": v for k, v in final.items() if np.isfinite(v)}
            )


def format_metrics(title: str, metrics: dict[str, float]) -> str:
    width = max(len(k) for k in metrics)
    lines = [title] + [f"  {k:<{width}}  {v:.4f}" for k, v in metrics.items()]
    return "\n".join(lines)
