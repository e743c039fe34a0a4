"""Validation- and test-time anomaly metrics: rows collected in torchmetrics states (synced over DDP
ranks, each row once), metrics computed by scikit-learn on the raw scores.

torchmetrics' own binary metrics squash scores outside [0, 1] with a sigmoid batch by batch, which
saturates on energies; hence collect with torchmetrics, compute with scikit-learn.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Sequence
from typing import Literal

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.trainer.states import TrainerFn
from sklearn.metrics import average_precision_score, precision_recall_fscore_support, roc_auc_score
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from dagmm_lightning.distributed import all_reduce_sum
from dagmm_lightning.errors import ConfigurationError, DataError, NonFiniteError, check_choice, warn
from dagmm_lightning.labels import BATCH_FORMAT

PercentileReference = Literal["protocol", "evaluated", "train+evaluated"]


class EvaluationRows(Metric):
    """Per-row columns of evaluation steps (``index`` among them), concatenated over batches and ranks.

    ``compute`` gives numpy arrays sorted by row index with each row once (a sampler that pads ranks by
    repeating rows, or ranks that each see every row, cannot count a row twice); ids repeated within one
    process's rows are refused: they are not rows' own (ranks that each number their own rows from 0
    cannot be told from ranks that see the same rows: keep ids unique over the whole split).
    """

    full_state_update = False

    def __init__(self, columns: dict[str, torch.dtype]) -> None:
        super().__init__(compute_with_cache=False)
        self.columns = columns
        for name in columns:
            self.add_state(name, default=[], dist_reduce_fx="cat")
        self._ids_here: list[torch.Tensor] = []  # this process's row ids (not synced)

    def reset(self) -> None:
        super().reset()
        self._ids_here = []

    def update(self, values: dict[str, torch.Tensor]) -> None:
        for name, dtype in self.columns.items():
            getattr(self, name).append(values[name].detach().to(dtype))
        self._ids_here.append(values["index"].detach())

    def start(self, device: torch.device) -> EvaluationRows:
        """Empty the states and add a zero-row update, so that a rank without rows still syncs."""
        self.reset()
        self.to(device)
        self.update({name: torch.zeros(0, dtype=dtype, device=device) for name, dtype in self.columns.items()})
        return self

    def compute(self) -> dict[str, np.ndarray]:
        columns = {name: dim_zero_cat(getattr(self, name)) for name in self.columns}
        here = torch.cat(self._ids_here) if self._ids_here else torch.zeros(0, dtype=torch.long)
        repeated = torch.tensor(len(here) - len(torch.unique(here)), device=columns["index"].device)
        repeated = int(all_reduce_sum(repeated))  # (every rank decides alike: none waits in a collective alone)
        if repeated:  # (a sampler's padding repeats a row on another rank, not on its own)
            raise DataError(
                f"{repeated:,} evaluated rows have a row id that another row of the same process has (ids that are "
                "not rows' own, or several loaders each numbering its rows from 0): the metrics would "
                f"count each id once; {BATCH_FORMAT}"
            )
        _, first = np.unique(columns["index"].cpu().numpy(), return_index=True)
        return {name: value.cpu().numpy()[first] for name, value in columns.items()}


def top_percent_threshold(reference_scores: np.ndarray, percent: float) -> float:
    """Score above which the top ``percent`` % of ``reference_scores`` lie (linearly interpolated quantile)."""
    if not 0 < percent < 100:
        raise ConfigurationError(f"percent must be in (0, 100), got {percent}")
    return float(np.quantile(np.asarray(reference_scores, dtype=np.float64), 1.0 - percent / 100.0))


def anomaly_metrics(
    scores: np.ndarray,
    labels: np.ndarray,
    percentiles: Sequence[float],
    threshold: float | None = None,
    reference_scores: np.ndarray | None = None,
    rho: float | None = None,
) -> dict[str, float]:
    """ROC AUC, average precision, and precision/recall/F1 of the rows flagged at each "top p %" of
    ``reference_scores`` (default: ``scores``) and above ``threshold``; scores (N,), labels (N,) 1 = anomaly.
    With ``rho``, P/R/F1 at the top rho % as ``*_rho``: one name on any data set (also ``*_top{rho}`` when
    rho is one of ``percentiles``)."""
    labels = np.asarray(labels).astype(bool)
    reference_scores = scores if reference_scores is None else reference_scores
    metrics = {
        "roc_auc": float(roc_auc_score(labels, scores)),
        "average_precision": float(average_precision_score(labels, scores)),
    }
    cuts = {f"top{p:g}": top_percent_threshold(reference_scores, p) for p in percentiles}
    if rho is not None:
        cuts["rho"] = top_percent_threshold(reference_scores, rho)
    if threshold is not None and np.isfinite(threshold):
        cuts["threshold"] = threshold
    for name, cut in cuts.items():
        p, r, f, _ = precision_recall_fscore_support(labels, scores > cut, average="binary", zero_division=0)
        metrics.update({f"precision_{name}": float(p), f"recall_{name}": float(r), f"f1_{name}": float(f)})
    return metrics


#: the metrics logged whether the rows have labels or not
LABEL_FREE = ("reconstruction", "flagged_share", "threshold")


def label_free_metrics(scores: np.ndarray, errors: np.ndarray, threshold: float) -> dict[str, float]:
    """What the evaluated rows say without labels: ``reconstruction``, the mean of their squared
    reconstruction errors ||x - x'||^2 (errors (N,), summed over the features; an ensemble's: the members'
    mean), ``flagged_share``, the share of their scores (N,) above ``threshold`` (NaN where the model has
    none; where the threshold is these rows' own quantile, ``contamination`` by construction), and the
    ``threshold`` itself (the model's stored one, as it scored these rows)."""
    if len(scores) == 0:
        return {}
    flagged = float(np.mean(scores > threshold)) if np.isfinite(threshold) else math.nan
    return {"reconstruction": float(np.mean(errors)), "flagged_share": flagged, "threshold": float(threshold)}


LAST_STEP_VALIDATED = "fit/last_step_validated"  #: 1 when the fit validated its final model
FIT_EPOCHS, FIT_STEPS = "fit/epochs", "fit/steps"  #: the fit's counters (a spawned fit's stay in its workers)


def run_settings(trainer: L.Trainer) -> dict:
    """What a run ran with beyond its model's and data's settings (the hparams view tells runs apart by them
    too): the global seed, and the trainer's strategy, devices, precision and, for the run that trained
    (``dagmm validate`` of a checkpoint trains none), its length."""
    strategy = trainer.strategy
    name = getattr(strategy, "strategy_name", type(strategy).__name__)
    start = getattr(strategy, "_start_method", None)
    if isinstance(strategy, DDPStrategy) and isinstance(start, str):  # the name it was asked for by
        name = "ddp" if start == "popen" else f"ddp_{start}"
    seed = os.environ.get("PL_GLOBAL_SEED")  # (seed_everything's, inherited by spawned workers)
    settings = {
        "seed_everything": int(seed) if seed is not None and seed.lstrip("-").isdigit() else "none",
        "trainer/strategy": name,
        "trainer/devices": trainer.num_devices,
        "trainer/num_nodes": trainer.num_nodes,
        "trainer/precision": str(trainer.precision),
    }
    if trainer.global_step > 0:  # (the fit's steps, also at the validation dagmm fit adds after them)
        settings |= {"trainer/max_epochs": trainer.max_epochs, "trainer/max_steps": trainer.max_steps}
    return settings


class AnomalyMetrics(L.Callback):
    """Validation and test metrics: precision, recall, F1, ROC AUC and average precision of the scores.

    Precision, recall and F1 at "top p %" thresholds and at the model's stored threshold, ROC AUC and
    average precision of the raw scores; logged as ``val/...`` and ``test/...``. The data set's rho is
    logged under rho-free names (``val/f1_rho``; ``val/f1_top{rho}`` too when it is one of ``percentiles``),
    for checkpoint selection in any config. Rows without labels (or of one class) get only the label-free
    ``reconstruction``, ``flagged_share`` and ``threshold`` (``label_free_metrics``), which labelled rows
    get too.

    Args:
        percentiles: the p values, in percent; the data module's ``rho`` is scored too, as ``*_rho``.
        percentile_reference: the rows whose scores define "top p %": ``evaluated`` (the rows being
            evaluated, the paper's protocol), ``train+evaluated`` (training plus evaluated rows, as the
            reimplementations do) or ``protocol`` (whichever the data module's protocol uses).
    """

    def __init__(
        self,
        percentiles: Sequence[float] = (10, 20, 30, 40, 50, 60),
        percentile_reference: PercentileReference = "protocol",
    ) -> None:
        check_choice("percentile_reference", percentile_reference, PercentileReference)
        for p in percentiles:
            if not 0 < p < 100:
                raise ConfigurationError(f"percentiles are in (0, 100), got {p}")
        self.percentiles = [float(p) for p in percentiles]
        self.percentile_reference = percentile_reference
        self.rows = EvaluationRows(
            {
                "score": torch.float64,
                "label": torch.long,
                "index": torch.long,
                "energy": torch.float64,
                "error": torch.float64,
            }
        )
        self.last_metrics: dict[str, dict[str, float]] = {}
        self.validated_at_step = -1  #: the global step of the last validation in fit
        self._threshold = math.nan
        self._warned: set[str] = set()

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # Lightning advises sync_dist=True for epoch-level values logged under DDP; these are computed from
        # every rank's rows, gathered, and the same on each rank (here: in every process, spawned ones too)
        names = "|".join(re.escape(name) for name in self.metric_names())
        warnings.filterwarnings("ignore", message=rf"It is recommended to use `self.log\('(val|test)/({names})'")

    def metric_names(self) -> list[str]:
        """The names this callback logs under ``val/`` (and ``test/``), for checking a monitored one."""
        cuts = [f"top{p:g}" for p in self.percentiles] + ["rho", "threshold"]
        scored = [f"{kind}_{cut}" for cut in cuts for kind in ("precision", "recall", "f1")]
        labelled = ["roc_auc", "average_precision", "roc_auc_energy", "c", *scored]  # c, roc_auc_energy: DAGMMPU's
        return [*labelled, *LABEL_FREE]

    def _start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.rows.start(pl_module.device)
        self._threshold = math.nan

    def _collect(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if batch_idx == 0:  # the rows' own: weight averaging swaps its model out before the epoch-end hooks
            self._threshold = float(pl_module.model.calibration.threshold)
        self.rows.update(outputs)

    on_validation_epoch_start = on_test_epoch_start = _start
    on_validation_batch_end = on_test_batch_end = _collect

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.validated_at_step = trainer.global_step
        self._finish("val", trainer, pl_module)
        if trainer.state.fn == TrainerFn.VALIDATING:  # also the validation `dagmm fit` adds after a last epoch
            self._log_final(trainer, pl_module)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._finish("test", trainer, pl_module)

    def reference(self, trainer: L.Trainer) -> str:
        if self.percentile_reference != "protocol":
            return self.percentile_reference
        protocol = getattr(trainer.datamodule, "protocol", "paper")
        return "train+evaluated" if protocol == "reimplementation" else "evaluated"

    def _finish(self, stage: str, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        rows = self.rows.compute()
        self.rows.reset()
        scores, labels = rows["score"], rows["label"]
        missing = np.isnan(scores)
        if missing.any():  # (had: scikit-learn's 'Input contains NaN' from the metrics, no row named)
            ours = hasattr(getattr(trainer, "datamodule", None), "refit_dataloader")  # AnomalyDataModule's: finite
            why = (
                "the model gives NaN (a precision too low for its sums? --trainer.precision 32-true), or a score of "
                "one's own does"
                if ours
                else "NaN or inf in their x (a loader of one's own: fill or drop such values), or a score of one's "
                "own that gives NaN"
            )
            raise (NonFiniteError if ours else DataError)(
                f"{stage}: {int(missing.sum()):,} of {len(scores):,} rows scored NaN (row ids "
                f"{rows['index'][missing][:5].tolist()}): {why}"
            )
        free = {} if trainer.sanity_checking else label_free_metrics(scores, rows["error"], self._threshold)
        if stage == "val" and not trainer.sanity_checking:  # the hparams view gets its record, labels or not
            self.last_metrics[stage] = free
        if free:
            pl_module.log_dict({f"{stage}/{k}": v for k, v in free.items() if np.isfinite(v)}, sync_dist=False)
        if len(scores) == 0 or (labels < 0).any():  # (said once a run: the same at each validation)
            coded = set(np.unique(labels).tolist()) == {-1, 1}  # (had: said only 'rows without labels')
            why = (
                " (labels -1 and 1 only: scikit-learn's outlier coding, -1 an outlier? Here 1 is an anomaly, 0 "
                "normal and -1 unknown: map them)"
                if coded
                else ""
            )
            self._warn_once(
                f"{stage} unlabelled",
                f"{stage}: rows without labels{why}; anomaly metrics need labels and are skipped (logged: "
                f"{', '.join(f'{stage}/{name}' for name in LABEL_FREE)})",
            )
            return
        if trainer.sanity_checking:
            return
        if len(np.unique(labels)) < 2:
            pu = getattr(trainer.datamodule, "split", None) == "positive_unlabeled"
            if pu and stage == "val" and not labels[0]:  # by design: its val rows are labelled normal rows,
                return  # for c (README; had: a warning at each fit)
            why = (
                f"the split put {len(labels)} row(s) there, none {'normal' if labels[0] else 'an anomaly'}: "
                "few rows, or anomalies moved to the training rows (train_contamination, labelled_anomalies)"
            )
            self._warn_once(
                stage,
                f"{stage}: every evaluated row is {'an anomaly' if labels[0] else 'normal'} ({why}); ROC AUC, "
                "precision, recall and F1 need both classes and are skipped",
            )
            return
        reference = None
        if self.reference(trainer) == "train+evaluated":
            reference = np.concatenate([pl_module.training_scores().double().cpu().numpy(), scores])
        rho = getattr(trainer.datamodule, "rho", None)
        metrics = anomaly_metrics(scores, labels, self.percentiles, self._threshold, reference, rho)
        if not pl_module.score_is_energy:
            metrics["roc_auc_energy"] = float(roc_auc_score(labels.astype(bool), rows["energy"]))
        self.last_metrics[stage] = {**free, **metrics}
        pl_module.log_dict({f"{stage}/{k}": v for k, v in metrics.items() if np.isfinite(v)}, sync_dist=False)

    def _warn_once(self, stage: str, message: str) -> None:
        if stage not in self._warned:
            self._warned.add(stage)
            warn(message)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        validated = self.validated_at_step == trainer.global_step
        # a ddp_spawn fit's callback metrics are what its workers hand back: the CLI reads there whether to
        # validate, and how far the fit went where no checkpoint says it
        trainer.callback_metrics[LAST_STEP_VALIDATED] = torch.tensor(float(validated))
        trainer.callback_metrics[FIT_EPOCHS] = torch.tensor(trainer.current_epoch, dtype=torch.float64)
        trainer.callback_metrics[FIT_STEPS] = torch.tensor(trainer.global_step, dtype=torch.float64)  # (exact)
        if validated:  # else the metrics are not the final model's
            self._log_final(trainer, pl_module)

    def _log_final(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """TensorBoard's hparams view: the hyperparameters with the final validation metrics. TensorBoard
        shows a run's first such record, which is why the CLI's logger writes no placeholder."""
        final = self.last_metrics.get("val")
        if final is None:
            return
        metrics = {f"hp/{k}": v for k, v in final.items() if np.isfinite(v)}
        c = getattr(getattr(pl_module, "model", None), "c", None)  # positive-unlabeled: its val rows give c only
        if c is not None and math.isfinite(float(c)):
            metrics["hp/c"] = float(c)
        data = dict(getattr(trainer.datamodule, "hparams", {}))  # the data set and split tell runs apart too
        if data.get("seed", 0) is None and hasattr(trainer.datamodule, "resolved_seed"):  # the split seed it took
            data["seed"] = trainer.datamodule.resolved_seed
        settings = {**{f"data/{k}": v for k, v in data.items()}, **pl_module.hparams}
        calibration = getattr(getattr(pl_module, "model", None), "calibration", None)
        if settings.get("contamination", 0) is None and getattr(calibration, "contamination", None) is not None:
            settings["contamination"] = calibration.contamination  # the share taken from the labels
        settings = {k: v for k, v in settings.items() if not k.removeprefix("data/").startswith("_")}  # jsonargparse's
        settings.update(run_settings(trainer))
        for logger in trainer.loggers:  # other loggers take no metrics here; they have the hparams already
            if isinstance(logger, TensorBoardLogger):
                logger.log_hyperparams(settings, metrics)
