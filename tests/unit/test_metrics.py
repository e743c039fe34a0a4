from pathlib import Path

import numpy as np
import pytest
import torch

from dagmm_lightning.callbacks import AnomalyMetrics
from dagmm_lightning.callbacks.metrics import EvaluationRows, anomaly_metrics, top_percent_threshold


def test_unbounded_scores_rank_as_they_are():
    # Anomalies score 1e6 and 3, normal rows -1e6 and 5e5: of the 4 (anomaly, normal) pairs the anomaly
    # outscores the normal row in 3, so ROC AUC = 3/4 whatever the scale (a sigmoid would tie 1e6 and 5e5).
    scores, labels = np.array([1e6, -1e6, 5e5, 3.0]), np.array([1, 0, 0, 1])
    metrics = anomaly_metrics(scores, labels, [50.0])
    assert metrics["roc_auc"] == pytest.approx(0.75)
    # ranked: 1e6 (hit), 5e5, 3 (hit): precision 1 at recall 1/2, 2/3 at recall 1 -> AP = 1/2 + 1/2 * 2/3
    assert metrics["average_precision"] == pytest.approx(0.5 + 0.5 * 2 / 3)
    # top 50 %: above the median (251.5 + ...) -> rows 1e6 and 5e5 flagged: P 1/2, R 1/2
    assert (metrics["precision_top50"], metrics["recall_top50"], metrics["f1_top50"]) == pytest.approx((0.5, 0.5, 0.5))


def test_percentile_cut_and_stored_threshold_by_hand():
    scores = np.arange(10.0)  # 0 ... 9
    labels = np.array([0, 0, 0, 0, 0, 0, 0, 1, 1, 0])
    metrics = anomaly_metrics(scores, labels, [20.0], threshold=6.5, rho=20.0)
    # top 20 %: above the 0.8 quantile 7.2 -> rows 8 and 9 flagged, one of them an anomaly
    assert (metrics["precision_top20"], metrics["recall_top20"]) == pytest.approx((0.5, 0.5))
    assert metrics["f1_rho"] == metrics["f1_top20"]
    # above 6.5: rows 7, 8, 9 -> both anomalies among 3 flagged
    assert (metrics["precision_threshold"], metrics["recall_threshold"]) == pytest.approx((2 / 3, 1.0))
    assert metrics["f1_threshold"] == pytest.approx(2 * (2 / 3) / (2 / 3 + 1))
    # nothing flagged: precision 0, not an error
    assert anomaly_metrics(scores, labels, [], threshold=100.0)["precision_threshold"] == 0.0


def test_reference_rows_change_the_percentile_cut():
    # Reimplementations take "top 20 %" over training + evaluated rows: with many low training scores,
    # more evaluated rows are flagged than over the evaluated rows alone.
    rng = np.random.default_rng(3)
    labels = rng.random(400) < 0.2
    scores = rng.normal(size=400) + 1.5 * labels
    train = np.random.default_rng(4).normal(size=1600) - 1.0
    alone = anomaly_metrics(scores, labels, [20.0])
    pooled = anomaly_metrics(scores, labels, [20.0], reference_scores=np.r_[train, scores])
    cut = np.quantile(np.r_[train, scores], 0.8)
    assert pooled["recall_top20"] == pytest.approx((scores[labels] > cut).mean())
    assert pooled["recall_top20"] > alone["recall_top20"]


def test_evaluation_rows_concatenate_and_count_each_row_once():
    from dagmm_lightning.errors import DataError

    rows = EvaluationRows({"index": torch.long, "score": torch.float64}).start(torch.device("cpu"))
    rows.update({"index": torch.tensor([3, 1]), "score": torch.tensor([0.3, 0.1], dtype=torch.float64)})
    rows.update({"index": torch.tensor([2]), "score": torch.tensor([0.2], dtype=torch.float64)})
    rows.index.append(torch.tensor([3]))  # row 3 again from another rank, as a sync gathers it (its padding)
    rows.score.append(torch.tensor([0.3], dtype=torch.float64))
    out = rows.compute()
    assert out["index"].tolist() == [1, 2, 3] and out["score"].tolist() == [0.1, 0.2, 0.3]
    rows.update({"index": torch.tensor([1]), "score": torch.tensor([0.9], dtype=torch.float64)})  # this process's own
    with pytest.raises(DataError, match="1 evaluated rows have a row id that another row of the same process has"):
        rows.compute()  # ids that are not rows' own (a loader of one's own): not a padding


def test_threshold_and_argument_checks():
    assert top_percent_threshold(np.arange(101.0), 10) == pytest.approx(90.0)
    with pytest.raises(ValueError, match="percent"):
        top_percent_threshold([1.0], 0)
    with pytest.raises(ValueError, match="percentile_reference"):
        AnomalyMetrics(percentile_reference="test")
    with pytest.raises(ValueError, match="NaN"):
        anomaly_metrics(np.array([np.nan, 1.0]), np.array([0, 1]), [])


def test_checkpoint_filenames_that_name_our_metrics_stay_in_the_folder(tmp_path):
    from dagmm_lightning.callbacks import LastEpochCheckpoint

    checkpoint = LastEpochCheckpoint(dirpath=tmp_path, filename="{epoch}-{val/roc_auc:.3f}")
    name = checkpoint.format_checkpoint_name({"epoch": 3, "val/roc_auc": torch.tensor(0.75)})
    assert Path(name) == tmp_path / "epoch=3-val_roc_auc=0.750.ckpt"  # had been epoch=3-val/roc_auc=0.750.ckpt
    plain = LastEpochCheckpoint(dirpath=tmp_path, filename="run-{epoch:02d}", auto_insert_metric_name=False)
    assert Path(plain.format_checkpoint_name({"epoch": 3})) == tmp_path / "run-03.ckpt"


def test_a_flagged_share_far_above_the_thresholds_is_said_past_chance_only():
    from scipy.stats import binom

    from dagmm_lightning.callbacks.predictions import flagged_far_above_message
    from dagmm_lightning.models import DAGMM, DAGMMPU
    from dagmm_lightning.scoring import flagged_far_above

    assert binom.sf(2, 3, 0.05) > 1e-4 > binom.sf(3, 4, 0.05)  # 3 of 3 rows can be chance at 5 %, 4 of 4 hardly
    assert flagged_far_above_message(0.05, 3, 3) is None and "100 % of the rows" in flagged_far_above_message(
        0.05, 4, 4
    )
    assert flagged_far_above_message(0.05, 1000, 140) is None  # 14 %: under contamination + 0.1
    assert flagged_far_above_message(0.05, 1000, 160).startswith("16 % of the rows score above the threshold")
    assert flagged_far_above_message(0.5, 1000, 550) is None and flagged_far_above_message(
        0.5, 1000, 620
    )  # (had: 50 % warned)
    assert flagged_far_above_message(0.05, 1000, 0) is None and flagged_far_above_message(None, 10, 10) is None
    assert (
        flagged_far_above(0.05, 4, 4) and not flagged_far_above(0.05, 3, 3) and not flagged_far_above(0.1, 0, 0)
    )  # the rule alone
    assert DAGMM(input_dim=4, contamination=0.2).threshold_share == 0.2
    assert DAGMMPU(input_dim=4, contamination=0.2).threshold_share is None  # its threshold: c / 2


def test_rows_above_a_quantile_count_as_numpy_cuts_them():
    import numpy as np

    from dagmm_lightning.scoring import rows_above_quantile

    for rows in (1, 2, 20, 101, 189, 1000):
        scores = np.random.default_rng(rows).normal(size=rows)
        for share in (0.001, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.5):
            expected = int((scores > np.quantile(scores, 1 - share)).sum())
            assert rows_above_quantile(rows, share) == expected, (rows, share)
    assert rows_above_quantile(189, 0.025) == 5  # the summary said 'about 4.7 of 189 rows'
