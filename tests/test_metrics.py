import numpy as np
import pytest
from sklearn.metrics import average_precision_score, precision_recall_fscore_support, roc_auc_score

from dagmm_lightning.callbacks import AnomalyMetrics
from dagmm_lightning.metrics import average_precision, precision_recall_f1, roc_auc, top_percent_threshold


def scores_and_labels(seed, n=500, scale=1.0, ties=False):
    rng = np.random.default_rng(seed)
    labels = rng.random(n) < 0.2
    scores = rng.normal(size=n) + 1.5 * labels
    if ties:
        scores = np.round(scores, 1)
    return scores * scale, labels


@pytest.mark.parametrize("scale", [1.0, 1e4, -1e6])  # energies far outside [0, 1], either sign
@pytest.mark.parametrize("ties", [False, True])
def test_ranking_metrics_match_sklearn(scale, ties):
    scores, labels = scores_and_labels(0, scale=scale, ties=ties)
    assert roc_auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert average_precision(scores, labels) == pytest.approx(average_precision_score(labels, scores), abs=1e-12)


def test_precision_recall_f1_match_sklearn():
    rng = np.random.default_rng(1)
    labels, predicted = rng.random(300) < 0.3, rng.random(300) < 0.25
    expected = precision_recall_fscore_support(labels, predicted, average="binary")[:3]
    np.testing.assert_allclose(precision_recall_f1(predicted, labels), expected)
    assert precision_recall_f1(np.zeros(5), np.ones(5)) == (0.0, 0.0, 0.0)


def test_single_class_gives_nan_not_error():
    assert np.isnan(roc_auc([1.0, 2.0], [0, 0]))
    assert np.isnan(average_precision([1.0, 2.0], [0, 0]))


def test_callback_metrics_at_percentiles_match_numpy_and_sklearn():
    scores, labels = scores_and_labels(2, n=1000, scale=1e3)
    metrics = AnomalyMetrics().compute(scores, labels, [20.0], threshold=500.0)
    flagged = scores > np.percentile(scores, 80)
    assert flagged.sum() == 200
    p, r, f, _ = precision_recall_fscore_support(labels, flagged, average="binary")
    assert (metrics["precision_top20"], metrics["recall_top20"], metrics["f1_top20"]) == pytest.approx((p, r, f))
    p, r, f, _ = precision_recall_fscore_support(labels, scores > 500.0, average="binary")
    assert metrics["f1_threshold"] == pytest.approx(f)
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(labels, scores))


def test_reference_rows_change_the_percentile_cut():
    # Reimplementations take "top 20 %" over training + evaluated rows: with many low training
    # scores, more evaluated rows are flagged than over the evaluated rows alone.
    scores, labels = scores_and_labels(3, n=400)
    train = np.random.default_rng(4).normal(size=1600) - 1.0
    alone = AnomalyMetrics().compute(scores, labels, [20.0], None)
    pooled = AnomalyMetrics().compute(scores, labels, [20.0], None, reference_scores=np.r_[train, scores])
    cut = np.quantile(np.r_[train, scores], 0.8)
    assert pooled["recall_top20"] == pytest.approx((scores[labels] > cut).mean())
    assert pooled["recall_top20"] > alone["recall_top20"]


def test_threshold_and_argument_checks():
    assert top_percent_threshold(np.arange(101.0), 10) == pytest.approx(90.0)
    with pytest.raises(ValueError, match="percent"):
        top_percent_threshold([1.0], 0)
    with pytest.raises(ValueError, match="percentile_reference"):
        AnomalyMetrics(percentile_reference="test")
    with pytest.raises(ValueError, match="NaN"):
        roc_auc([np.nan, 1.0], [0, 1])
