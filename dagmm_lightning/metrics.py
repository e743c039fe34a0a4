"""Anomaly metrics on raw, unbounded scores (higher = more anomalous) and 0/1 labels (1 = anomaly).

Computed from ranks and counts in float64: no sigmoid, no clipping, so energies far outside [0, 1]
rank exactly as they are (torchmetrics' binary metrics squash such scores batch by batch).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def _as_arrays(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel()
    if scores.shape != labels.shape:
        raise ValueError(f"{scores.size} scores for {labels.size} labels")
    if not np.isfinite(scores).all():
        raise ValueError("scores hold NaN or inf")
    return scores, labels.astype(bool)


def roc_auc(scores, labels) -> float:
    """Area under the ROC curve: the Mann-Whitney probability that an anomaly outscores a normal row,
    ties counted as one half. NaN when only one class is present."""
    scores, labels = _as_arrays(scores, labels)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)  # average ranks for ties
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def average_precision(scores, labels) -> float:
    """sum_n (R_n - R_{n-1}) P_n over the distinct score thresholds, from the highest down (the
    step-wise definition, no interpolation). NaN without anomalies."""
    scores, labels = _as_arrays(scores, labels)
    n_pos = int(labels.sum())
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    scores, labels = scores[order], labels[order]
    last_of_tie = np.r_[scores[1:] != scores[:-1], True]
    true_pos = np.cumsum(labels)[last_of_tie]
    flagged = np.flatnonzero(last_of_tie) + 1
    precision = true_pos / flagged
    recall = true_pos / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def precision_recall_f1(predicted, labels) -> tuple[float, float, float]:
    """Precision, recall and F1 of the anomaly class for 0/1 predictions; 0 where undefined."""
    predicted, labels = np.asarray(predicted).astype(bool).ravel(), np.asarray(labels).astype(bool).ravel()
    true_pos = int((predicted & labels).sum())
    precision = true_pos / max(int(predicted.sum()), 1)
    recall = true_pos / max(int(labels.sum()), 1)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return precision, recall, f1


def top_percent_threshold(reference_scores, percent: float) -> float:
    """Score above which the top ``percent`` % of ``reference_scores`` lie (linear-interpolated
    quantile); rows with a score strictly above it are flagged."""
    if not 0 < percent < 100:
        raise ValueError(f"percent must be in (0, 100), got {percent}")
    return float(np.quantile(np.asarray(reference_scores, dtype=np.float64), 1.0 - percent / 100.0))


def percent_label(percent: float) -> str:
    """``20.0 -> '20'``, ``2.5 -> '2.5'``: metric-name friendly."""
    return f"{percent:g}"
