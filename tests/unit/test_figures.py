import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from dagmm_lightning.callbacks.figures import HISTOGRAM_BINS, draw, histogram_range


@pytest.fixture(autouse=True)
def closed_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")  # (draw returns open figures: the callback closes them as TensorBoard takes them)


def rows(components: int = 3, labelled: bool = True, n: int = 300) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    label = (np.arange(n) % 10 == 0).astype(np.int64) if labelled else np.full(n, -1)
    score = rng.normal(size=n) + 3 * (label == 1)
    return dict(
        score=score, label=label, row0=rng.normal(size=n), row1=rng.normal(size=n), component=np.arange(n) % components
    )


def test_the_latent_view_keys_labels_and_few_components_by_colour_anomalies_drawn_last():
    data = rows(3)
    fig = draw(data, 0.5, max_points=1000, row_names=("z", "relative distance"))["latent_view"]
    by_label, by_component = fig.axes  # had: each with a continuous colour bar (two more axes)
    order = np.argsort(data["label"], kind="stable")  # as drawn: the anomalies over the normal rows
    for ax, values in ((by_label, data["label"]), (by_component, data["component"])):
        assert (ax.get_xlabel(), ax.get_ylabel()) == ("z", "relative distance")
        legend = ax.get_legend()
        assert [t.get_text() for t in legend.get_texts()] == [str(v) for v in np.unique(values)]
        points = ax.collections[0]
        np.testing.assert_array_equal(points.get_array(), values[order])
        np.testing.assert_array_equal(points.get_offsets()[:, 0], data["row0"][order])
        colours = points.to_rgba(points.get_array())  # each point's colour, as drawn
        for value, handle in zip(np.unique(values), legend.legend_handles, strict=True):
            np.testing.assert_allclose(handle.get_color()[:3], colours[np.flatnonzero(values[order] == value)[0]][:3])
    assert (by_label.collections[0].get_array()[-30:] == 1).all()  # (30 anomalies of 300)
    fewer = rows(3)
    fewer["component"] = fewer["component"] + 2  # components 2, 3, 4: each keeps its colour (had: rescaled)
    points = draw(fewer, 0.5, max_points=1000)["latent_view"].axes[1].collections[0]
    import matplotlib

    tab10 = matplotlib.colormaps["tab10"]
    np.testing.assert_allclose(points.to_rgba(np.array([2, 3, 4]))[:, :3], [tab10(k)[:3] for k in (2, 3, 4)])
    many = draw(rows(12), 0.5, max_points=1000)["latent_view"]
    assert len(many.axes) == 3 and many.axes[1].get_legend() is None  # 12 components: a colour bar


def test_rows_without_labels_get_one_latent_panel_no_curves_and_one_histogram():
    data = rows(labelled=False)
    figures = draw(data, 1.0, max_points=1000)
    assert set(figures) == {"score_histogram", "latent_view"}  # had: a panel of -1 "labels"
    (ax,) = figures["latent_view"].axes[:1]
    assert "component" in ax.get_title() and len(figures["latent_view"].axes) == 1
    labels = [t.get_text() for t in figures["score_histogram"].axes[0].get_legend().get_texts()]
    assert labels[0] == "rows without labels (300)"
    one_class = rows()
    one_class["label"][:] = 0  # the positive-unlabeled split's val rows: labelled normal only
    labels = [t.get_text() for t in draw(one_class, 1.0, 1000)["score_histogram"].axes[0].get_legend().get_texts()]
    assert labels[0] == "normal (300)"  # had: "all rows"


def test_histogram_range_centres_on_the_threshold_and_counts_every_row():
    score = np.concatenate([np.linspace(-5, 5, 1000), np.full(250, 200.0)])  # KDDCUP99-like: a far tail
    low, high = histogram_range(score, 4.0)
    assert low == pytest.approx(np.quantile(score, 0.01)) and high == pytest.approx(4.0 + (4.0 - low))
    assert histogram_range(np.full(5, 2.0), np.nan) == (1.5, 2.5)  # one value: an axis around it
    normal = np.random.default_rng(0).normal(10, 1, 1000)
    percentiles = tuple(np.quantile(normal, [0.005, 0.995]))
    for outside in (5.0, 50.0, np.inf):  # a threshold the rows do not reach or all pass (drift): theirs
        assert histogram_range(normal, outside) == pytest.approx(percentiles)  # had: (5, 9.9), (-2.4, 102)
    with_inf = np.r_[normal, [np.inf, -np.inf, np.nan]]  # (had: NaN bins, a ValueError in the fit)
    assert histogram_range(with_inf, 10.0) == pytest.approx(histogram_range(normal, 10.0))
    ax = draw(
        dict(score=with_inf, label=np.zeros(1003, int), row0=with_inf, row1=with_inf, component=np.zeros(1003, int)),
        50.0,
        10,
    )["score_histogram"].axes[0]
    assert ax.get_xlim() == pytest.approx(percentiles) and "stored threshold 50 (above the axis)" in [
        t.get_text() for t in ax.get_legend().get_texts()
    ]
    data = dict(
        score=score, label=(score > 100).astype(np.int64), row0=score, row1=score, component=np.zeros(1250, int)
    )
    ax = draw(data, 4.0, max_points=100, title=", val rows at step 7", score_name="energy")["score_histogram"].axes[0]
    heights = [sum(bar.get_height() for bar in patch) for patch in ax.containers]  # (empty: stepfilled)
    counts = []
    for patch in ax.patches:  # a stepfilled histogram is one polygon per class: its bin heights are its corners
        corners = patch.get_xy()
        counts.append(corners[1:-1:2, 1][:HISTOGRAM_BINS])
    assert heights == [] and [c.sum() for c in counts] == [1000, 250]  # every row, the far ones in the end bin
    assert counts[1][-1] == 250
    (line,) = ax.lines
    assert (
        line.get_xdata()[0] == 4.0
        and ax.get_yscale() == "log"
        and ax.get_title() == "score histogram, val rows at step 7"
    )
    assert ax.get_xlabel().startswith("energy\n") and "250 rows above" in ax.get_xlabel()


def test_histogram_counts_are_labelled_as_plain_numbers_on_the_log_axis():
    """A few rows a bin (the quick start's val rows) span less than a decade: matplotlib then labelled
    minor ticks 6x10^-1, 2x10^0, 3x10^0; the axis labels counts as 1, 2, 5, 10 ... whatever the span."""
    for n, expected in ((20, {"1", "2"}), (30_000, {"1", "10", "100", "1,000"})):
        ax = draw(rows(n=n), 1.0, max_points=100)["score_histogram"].axes[0]
        ax.figure.canvas.draw()
        shown = {t.get_text() for t in ax.get_yticklabels() + ax.get_yticklabels(minor=True) if t.get_text()}
        assert expected <= shown and all(text.replace(",", "").isdigit() for text in shown), shown


def test_curves_are_steps_with_their_auc_and_the_thresholds_point():
    data = rows()
    fig = draw(data, 1.0, max_points=1000, title=", test rows at step 3")["roc_and_pr_curves"]
    roc, pr = fig.axes
    assert roc.get_title() == f"ROC (AUC {roc_auc_score(data['label'], data['score']):.4f})"
    assert pr.get_title() == f"precision-recall (AP {average_precision_score(data['label'], data['score']):.4f})"
    assert pr.lines[0].get_drawstyle() == "steps-post"  # had: straight lines between points, overstating it
    flagged, anomalous = data["score"] > 1.0, data["label"] == 1
    (point,) = [line for line in roc.lines if line.get_marker() == "o"]
    assert (point.get_xdata()[0], point.get_ydata()[0]) == (flagged[~anomalous].mean(), flagged[anomalous].mean())
    (point,) = [line for line in pr.lines if line.get_marker() == "o"]
    assert (point.get_xdata()[0], point.get_ydata()[0]) == (flagged[anomalous].mean(), anomalous[flagged].mean())


def test_the_suite_figure_starts_at_zero_with_the_seeds_spread_and_chance_line():
    from dagmm_lightning.benchmark.suite import suite_figure

    aucs = {("2_b", "knn"): [0.9, 0.8], ("2_b", "dagmm_detector"): [0.6, 0.4], ("10_a", "knn"): [0.7, 0.7]}
    rows = [
        dict(table=t, method=m, seed=str(seed), roc_auc=str(v), status="ok")
        for (t, m), values in aucs.items()
        for seed, v in enumerate(values)
    ]
    ax = suite_figure(rows).axes[0]
    assert ax.get_ylim() == (0.0, 1.0)  # had: from 0.3, a 0.5 bar a quarter of a 0.9 one
    assert [t.get_text() for t in ax.get_xticklabels()] == ["2_b", "10_a"]
    from matplotlib.container import BarContainer

    detector, knn = [c for c in ax.containers if isinstance(c, BarContainer)]  # (the detector first)
    np.testing.assert_allclose([bar.get_height() for bar in detector], [0.5, np.nan])
    np.testing.assert_allclose([bar.get_height() for bar in knn], [0.85, 0.7])
    spread = detector.errorbar.lines[2][0].get_segments()[0][:, 1]  # the first bar's error bar: mean -+ std
    np.testing.assert_allclose(spread, [0.5 - np.std([0.6, 0.4], ddof=1), 0.5 + np.std([0.6, 0.4], ddof=1)])
    assert any(line.get_ydata()[0] == 0.5 for line in ax.lines)  # a random ranking's line
    assert "seeds 0, 1" in ax.get_title()


def test_drawing_settings_out_of_range_are_refused_before_any_training():
    from dagmm_lightning.callbacks.figures import AnomalyFigures
    from dagmm_lightning.errors import ConfigurationError

    for settings, said in (
        (dict(every_n_validations=0), "every_n_validations must be >= 1, got 0"),
        (dict(max_points=0), "max_points must be >= 1, got 0"),  # had: a traceback at the first drawing
        (dict(max_points=-3), "max_points must be >= 1, got -3"),
    ):
        with pytest.raises(ConfigurationError, match=said):
            AnomalyFigures(**settings)
    assert AnomalyFigures(max_points=1).max_points == 1


def test_the_histogram_axis_label_fits_the_figure_with_rows_beyond_both_ends():
    rng = np.random.default_rng(0)  # a PU-like score in (0, 1), its threshold above every row
    score = np.r_[rng.uniform(0.2, 0.4, 200_000), np.full(900, 0.999), np.full(900, 0.0001)]
    data = dict(score=score, label=np.zeros(len(score), int), row0=score, row1=score, component=np.zeros(len(score)))
    fig = draw(data, 0.65912, 10, score_name="1 - h (h: the classifier's output)")["score_histogram"]
    fig.canvas.draw()
    label = fig.axes[0].xaxis.label
    assert " rows below " in label.get_text() and " rows above " in label.get_text()
    box, page = label.get_window_extent(fig.canvas.get_renderer()), fig.bbox
    assert page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0  # (had: its ')' cut off at the right)
