"""Figures in TensorBoard at validation and test: score histograms, ROC and precision-recall curves, the
latent view."""

from __future__ import annotations

import math

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger

from dagmm_lightning.callbacks.metrics import EvaluationRows
from dagmm_lightning.errors import ConfigurationError


class AnomalyFigures(L.Callback):
    """Figures in TensorBoard: score histograms, ROC and precision-recall curves, the mixture's rows.

    At the first and then every ``every_n_validations``-th validation of a fit, at every validation of a
    finished model, and at test, from the steps' outputs: the score histogram of normal and anomalous rows
    with the stored threshold marked, ROC and precision-recall curves, and a 2-D view of the rows the
    mixture sees (the first two of [z, relative distance, cosine]) coloured by label and by most likely
    mixture component. Written with ``add_figure`` to a TensorBoard logger (other loggers: skipped).

    Args:
        every_n_validations: draw at every n-th validation (1: every one).
        max_points: rows drawn at most in the 2-D view (a seeded subsample beyond that).
    """

    def __init__(self, every_n_validations: int = 4, max_points: int = 5000) -> None:
        if every_n_validations < 1:
            raise ConfigurationError(f"every_n_validations must be >= 1, got {every_n_validations}")
        self.every_n_validations = every_n_validations
        self.max_points = max_points
        self._validations = 0
        self._drawing = False
        self._threshold = math.nan
        self.rows = EvaluationRows(
            {
                "index": torch.long,
                "score": torch.float64,
                "label": torch.long,
                "row0": torch.float64,
                "row1": torch.float64,
                "component": torch.long,
            }
        )

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._drawing = False
        if trainer.sanity_checking or not isinstance(trainer.logger, TensorBoardLogger):
            return
        if trainer.state.fn == "fit":
            self._validations += 1
            self._drawing = (self._validations - 1) % self.every_n_validations == 0
        else:  # a finished model's (`dagmm validate`, or the one `dagmm fit` adds after a last epoch without one)
            self._drawing = True
        if self._drawing:
            self.rows.start(pl_module.device)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if self._drawing:
            if batch_idx == 0:  # the rows' own: weight averaging swaps its model out before the epoch-end hooks
                self._threshold = float(pl_module.model.calibration.threshold)
            rows = outputs["rows"]
            self.rows.update(
                {
                    "index": outputs["index"],
                    "score": outputs["score"],
                    "label": outputs["label"],
                    "row0": rows[:, 0],
                    "row1": rows[:, 1],
                    "component": outputs["gamma"].argmax(1),
                }
            )

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._draw("val", trainer, pl_module)

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._drawing = isinstance(trainer.logger, TensorBoardLogger)  # every test: there is one a run
        if self._drawing:
            self.rows.start(pl_module.device)

    on_test_batch_end = on_validation_batch_end

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._draw("test", trainer, pl_module)

    def _draw(self, stage: str, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._drawing:
            return
        data = self.rows.compute()
        self.rows.reset()
        if not trainer.is_global_zero or len(data["score"]) == 0:
            return
        for tag, figure in draw(data, self._threshold, self.max_points).items():
            trainer.logger.experiment.add_figure(f"{stage}/{tag}", figure, global_step=scalar_step(trainer), close=True)

    def state_dict(self) -> dict:
        return {"validations": self._validations}  # a resumed fit draws where the uninterrupted one would

    def load_state_dict(self, state_dict: dict) -> None:
        self._validations = int(state_dict.get("validations", 0))


def scalar_step(trainer: L.Trainer) -> int:
    """The step Lightning's logger gives the scalars logged now: the batches that stepped so far, which
    during a validation within fit does not count yet the batch it follows (global_step - 1 where each call
    of Lightning's loop is one optimiser step)."""
    return trainer.fit_loop.epoch_loop._batches_that_stepped


LEGEND_ENTRIES = 10  # more distinct values (components) get a colour bar


def draw(data: dict[str, np.ndarray], threshold: float, max_points: int) -> dict:
    """Matplotlib figures by tag from val rows: ``score``, ``label``, ``row0``, ``row1``, ``component`` (N,)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve, roc_curve

    score, label = data["score"], data["label"]
    labelled = (label >= 0).all() and len(np.unique(label)) == 2
    figures = {}

    fig, ax = plt.subplots(figsize=(5, 3.5))
    bins = np.histogram_bin_edges(score, bins=60)
    groups = (
        [("normal", label == 0), ("anomalous", label == 1)] if labelled else [("all rows", np.ones_like(score, bool))]
    )
    for name, mask in groups:
        ax.hist(score[mask], bins=bins, alpha=0.6, label=f"{name} ({int(mask.sum())})", density=True)
    if np.isfinite(threshold):
        ax.axvline(threshold, color="k", linestyle="--", label="stored threshold")
    ax.set_xlabel("score")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    fig.tight_layout()
    figures["score_histogram"] = fig

    if labelled:
        fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3.5))
        fpr, tpr, _ = roc_curve(label, score)
        left.plot(fpr, tpr)
        left.plot([0, 1], [0, 1], color="grey", linestyle=":")
        left.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
        precision, recall, _ = precision_recall_curve(label, score)
        right.plot(recall, precision)
        right.set(xlabel="recall", ylabel="precision", title="precision-recall")
        fig.tight_layout()
        figures["roc_and_pr_curves"] = fig

    keep = np.arange(len(score))
    if len(score) > max_points:
        keep = np.sort(np.random.default_rng(0).choice(len(score), max_points, replace=False))
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3.5))
    for ax, colour, title, cmap in (
        (left, label, "by label (1 = anomaly)", "coolwarm"),
        (right, data["component"], "by mixture component", "tab10"),
    ):
        points = ax.scatter(data["row0"][keep], data["row1"][keep], c=colour[keep], s=4, cmap=cmap)
        ax.set(xlabel="mixture row dim 0 (z)", ylabel="mixture row dim 1", title=title)
        values = np.unique(colour[keep])
        if len(values) <= LEGEND_ENTRIES:  # labels and components are whole numbers: a key, not a scale
            handles, _ = points.legend_elements(num=None)
            ax.legend(handles, [f"{v:g}" for v in values], fontsize=7, markerscale=0.7, loc="best")
        else:
            fig.colorbar(points, ax=ax)
    fig.tight_layout()
    figures["latent_view"] = fig
    return figures
