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

    At the first and then every ``every_n_validations``-th validation of a fit and at its last one (when
    it validated its final model), at every validation of a finished model, and at test, from the steps'
    outputs: the score histogram of normal and anomalous rows (counts, log scale) with the stored
    threshold marked, ROC and precision-recall curves with the threshold's point, and a 2-D view of the
    rows the mixture sees (z, or its first column, against the relative distance; an ensemble's member 0)
    coloured by label and by the estimation network's likeliest component. Written with ``add_figure`` to
    a TensorBoard logger (other loggers: skipped).

    Args:
        every_n_validations: draw at every n-th validation (1: every one).
        max_points: rows drawn at most in the 2-D view (a seeded subsample beyond that).
    """

    def __init__(self, every_n_validations: int = 4, max_points: int = 5000) -> None:
        if every_n_validations < 1:
            raise ConfigurationError(f"every_n_validations must be >= 1, got {every_n_validations}")
        if max_points < 1:  # (else found at the first drawing, after that much training)
            raise ConfigurationError(f"max_points must be >= 1, got {max_points}")
        self.every_n_validations = every_n_validations
        self.max_points = max_points
        self._validations = 0
        self._collecting = self._drawing = False
        self._undrawn: tuple[int, int] | None = None  # (global step, logged step) of a fit's validation not drawn
        self._threshold = math.nan
        self._columns = (0, 1)  # the mixture rows' columns the latent view shows
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
        self._collecting = self._drawing = False
        self._undrawn = None
        if trainer.sanity_checking or not isinstance(trainer.logger, TensorBoardLogger):
            return
        if trainer.state.fn == "fit":
            self._validations += 1
            self._drawing = (self._validations - 1) % self.every_n_validations == 0
        else:  # a finished model's (`dagmm validate`, or the one `dagmm fit` adds after a last epoch without one)
            self._drawing = True
        self._collecting = True  # (a fit's validation not due is kept: it may be the final model's)
        self._start(pl_module)

    def _start(self, pl_module: L.LightningModule) -> None:
        names = list(getattr(pl_module, "mixture_row_names", lambda: [])())
        second = names.index("relative distance") if "relative distance" in names[1:] else 1
        self._columns = (0, second)
        self.rows.start(pl_module.device)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if self._collecting:
            if batch_idx == 0:  # the rows' own: weight averaging swaps its model out before the epoch-end hooks
                self._threshold = float(pl_module.model.calibration.threshold)
            rows = outputs["rows"]
            self.rows.update(
                {
                    "index": outputs["index"],
                    "score": outputs["score"],
                    "label": outputs["label"],
                    "row0": rows[:, self._columns[0]],
                    "row1": rows[:, self._columns[1]],
                    "component": outputs["gamma"].argmax(1),
                }
            )

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._collecting and not self._drawing:  # drawn at the fit's end if no step follows it
            self._undrawn = (trainer.global_step, scalar_step(trainer))
            return
        self._draw("val", trainer, pl_module, scalar_step(trainer))

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._undrawn is not None and self._undrawn[0] == trainer.global_step:  # the final model's validation
            self._drawing = True
            self._draw("val", trainer, pl_module, self._undrawn[1])
        self._undrawn = None
        self.rows.reset()

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._collecting = self._drawing = isinstance(trainer.logger, TensorBoardLogger)  # every test: one a run
        if self._drawing:
            self._start(pl_module)

    on_test_batch_end = on_validation_batch_end

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._draw("test", trainer, pl_module, scalar_step(trainer))

    def _draw(self, stage: str, trainer: L.Trainer, pl_module: L.LightningModule, step: int) -> None:
        if not self._drawing:
            return
        self._collecting = self._drawing = False
        data = self.rows.compute()
        self.rows.reset()
        if not trainer.is_global_zero or len(data["score"]) == 0:
            return
        names = list(getattr(pl_module, "mixture_row_names", lambda: [])())
        row_names = tuple(names[c] if c < len(names) else f"mixture row column {c}" for c in self._columns)
        members = getattr(pl_module, "hparams", {}).get("members", 1)
        if members > 1:
            row_names = tuple(f"{name} (member 0 of {members})" for name in row_names)
        describe = getattr(pl_module, "score_description", None)
        title = f", {stage} rows at step {step:,}"
        score_name = describe() if describe is not None else "score"
        for tag, figure in draw(data, self._threshold, self.max_points, title, score_name, row_names).items():
            trainer.logger.experiment.add_figure(f"{stage}/{tag}", figure, global_step=step, close=True)

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
HISTOGRAM_BINS = 60


def histogram_range(score: np.ndarray, threshold: float) -> tuple[float, float]:
    """The score axis of the histogram (finite scores only): centred on the decision where the threshold
    lies among the scores, from the 1st percentile to as far above the threshold as that lies below it
    (rows beyond go to the end bins: a tail of far anomalies would otherwise squeeze every normal row into
    one bin); else (no threshold, or one past the 1st or 99th percentile: rows unlike those it was set
    on) the 0.5th to the 99.5th percentile."""
    score = score[np.isfinite(score)]
    if len(score) == 0:
        return -0.5, 0.5
    q01, q99 = np.quantile(score, [0.01, 0.99])
    if np.isfinite(threshold) and q01 <= threshold <= q99:
        low, high = float(q01), threshold + (threshold - float(q01))
    else:
        low, high = (float(q) for q in np.quantile(score, [0.005, 0.995]))
    if not high > low:  # (every row the same score)
        low, high = low - 0.5, high + 0.5
    return low, high


def draw(
    data: dict[str, np.ndarray],
    threshold: float,
    max_points: int,
    title: str = "",
    score_name: str = "score",
    row_names: tuple[str, str] = ("mixture row column 0", "mixture row column 1"),
) -> dict:
    """Matplotlib figures by tag from evaluated rows: ``score``, ``label``, ``row0``, ``row1``, ``component``
    (N,); ``title`` (stage and step), ``score_name`` (the score axis) and ``row_names`` (the latent view's
    axes) label them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

    score, label = data["score"], data["label"]
    labelled = bool((label >= 0).all()) and len(np.unique(label)) == 2
    known = np.unique(label[label >= 0]) if (label >= 0).all() else np.array([])
    figures = {}

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    low, high = histogram_range(score, threshold)
    bins = np.linspace(low, high, HISTOGRAM_BINS + 1)
    if len(known):  # (one class too: the positive-unlabeled split validates on labelled normal rows)
        groups = [(("normal", "anomalous")[int(v)], label == v) for v in known]
    else:
        groups = [("rows without labels", np.ones_like(score, bool))]
    for name, mask in groups:  # counts, not densities: the classes' sizes show
        shown = np.clip(score[mask & ~np.isnan(score)], low, high)  # (rows beyond the axis in its end bins)
        ax.hist(shown, bins=bins, alpha=0.55, label=f"{name} ({int(mask.sum()):,})", histtype="stepfilled")
    if np.isfinite(threshold):
        off = " (below the axis)" if threshold < low else " (above the axis)" if threshold > high else ""
        ax.axvline(
            min(max(threshold, low), high), color="k", linestyle="--", label=f"stored threshold {threshold:.4g}{off}"
        )
    beyond = [
        f"{int(n):,} row{'s' * bool(n != 1)} {side} {edge:.3g}"
        for n, side, edge in ((np.sum(score < low), "below", low), (np.sum(score > high), "above", high))
        if n
    ]
    # a line each: both on one ran past a 5.5-inch figure's edge ("1,898 rows below 0.201 and 1,905 rows above ...")
    ax.set_xlabel(score_name + ("\n(the end bins also count " + ",\n".join(beyond) + ")" if beyond else ""))
    ax.set(xlim=(low, high), ylabel="rows (log scale)")
    if np.isfinite(score).any():
        ax.set_yscale("log")
        ax.set_ylim(bottom=0.5)  # (a bin of one row is a bar, not a sliver at the axis)
        # counts as plain numbers at 1, 2, 5, 10 ...: a log axis spanning less than a decade (a few rows a
        # bin) would label its minor ticks 6x10^-1, 2x10^0 ...
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else ""))
        ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_title(f"score histogram{title}", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    figures["score_histogram"] = fig

    if labelled:
        flagged = score > threshold if np.isfinite(threshold) else None
        fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3.8))
        fpr, tpr, _ = roc_curve(label, score)
        left.plot(fpr, tpr)
        left.plot([0, 1], [0, 1], color="grey", linestyle=":")
        left.set(xlabel="false positive rate", ylabel="true positive rate")
        left.set_title(f"ROC (AUC {roc_auc_score(label, score):.4f})", fontsize=9)
        precision, recall, _ = precision_recall_curve(label, score)
        right.plot(recall, precision, drawstyle="steps-post")  # (straight lines between points overstate it)
        right.axhline(label.mean(), color="grey", linestyle=":")  # (a random ranking's precision)
        right.set(xlabel="recall", ylabel="precision", ylim=(0, 1.02))
        right.set_title(f"precision-recall (AP {average_precision_score(label, score):.4f})", fontsize=9)
        if flagged is not None:  # where the stored threshold operates
            anomalous = label == 1
            point = dict(color="k", marker="o", linestyle="none", label="stored threshold")
            left.plot(flagged[~anomalous].mean(), flagged[anomalous].mean(), **point)
            if flagged.any():
                right.plot(flagged[anomalous].mean(), anomalous[flagged].mean(), **point)
            left.legend(fontsize=7, loc="lower right")
        fig.suptitle(title.strip(" ,"), fontsize=9)
        fig.tight_layout()
        figures["roc_and_pr_curves"] = fig

    keep = np.arange(len(score))
    if len(score) > max_points:
        keep = np.sort(np.random.default_rng(0).choice(len(score), max_points, replace=False))
    keep = keep[np.argsort(label[keep], kind="stable")]  # anomalies drawn last, over the normal rows
    panels = [(data["component"], "by the estimation network's likeliest component", "tab10")]
    if labelled:
        panels.insert(0, (label, "by label (1 = anomaly)", "coolwarm"))
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.8), squeeze=False)
    for ax, (colour, panel_title, cmap) in zip(axes[0], panels, strict=True):
        # a component's colour the same in every figure (its number's in tab10), whichever components are there
        if cmap == "tab10" and colour.max() >= LEGEND_ENTRIES:  # (tab10 has 10 colours: a scale beyond)
            cmap = "viridis"
        scale = dict(vmin=0, vmax=max(LEGEND_ENTRIES - 1, int(colour.max()))) if cmap != "coolwarm" else {}
        points = ax.scatter(data["row0"][keep], data["row1"][keep], c=colour[keep], s=4, cmap=cmap, alpha=0.7, **scale)
        ax.set(xlabel=row_names[0], ylabel=row_names[1])
        ax.set_title(panel_title, fontsize=9)
        values = np.unique(colour[keep])
        if len(values) <= LEGEND_ENTRIES:  # labels and components are whole numbers: a key, not a scale
            handles, _ = points.legend_elements(num=None)
            ax.legend(handles, [f"{v:g}" for v in values], fontsize=7, markerscale=0.7, loc="best")
        else:
            fig.colorbar(points, ax=ax)
    fig.suptitle(f"the rows the mixture sees{title}", fontsize=9)
    fig.tight_layout()
    figures["latent_view"] = fig
    return figures
