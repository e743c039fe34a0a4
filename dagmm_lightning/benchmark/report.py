"""Results files of ``dagmm benchmark`` (one CSV row per run) and the tables and figures made from them."""

from __future__ import annotations

import csv
import hashlib
import importlib
import inspect
import json
import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from dagmm_lightning.errors import DataError

PERCENTILES = (10, 20, 30, 40, 50, 60)
TOP = [f"{m}_top{p}" for p in PERCENTILES for m in ("precision", "recall", "f1")]
METRICS = ["roc_auc", "average_precision", "precision_rho", "recall_rho", "f1_rho", *TOP]
METRICS += "precision_threshold recall_threshold f1_threshold roc_auc_energy c".split()
FIELDS = "method dataset protocol seed epochs selected_epoch seconds final_loss status configs".split() + METRICS
FIELDS += ["settings"]  # what else made the run (requested epochs, --set, selection): a resumed grid must match
FIELDS += ["resolved"]  # the run's settings, defaults filled in (runner.resolved_config): so must they
# F1 at rho of DAGMM as Zong et al. (2018) report it (section 4, mean of 20 runs, paper protocol)
PAPER_DAGMM_F1 = {"kddcup99": 0.9369, "thyroid": 0.4782, "arrhythmia": 0.4983, "kddcup_rev": 0.9380}
GRID_BASELINES = ("isolation_forest", "gaussian_mixture")  # (and a --tag): rows that come beside any config


def variant_source(class_path: str) -> str | None:
    """A fingerprint (16 hex digits of SHA-256) of the source file of a model class of one's own (None for
    the package's own classes, or where the source cannot be read)."""
    module_name = class_path.rpartition(".")[0]
    if not module_name or module_name == "dagmm_lightning" or module_name.startswith("dagmm_lightning."):
        return None
    try:
        source = inspect.getsource(importlib.import_module(module_name))
    except (ImportError, OSError, TypeError):
        return None
    return hashlib.sha256(source.encode()).hexdigest()[:16]


# Settings added since results files first recorded them whose defaults in some method are not what the
# code did before: a record without one held what its absence meant (two-sided error feature, plain KL,
# the code as the VQ-VAE's latent)
ABSENT_MEANT = {"model.one_sided_error": False, "model.calibrated_decoder": False, "model.continuous_latent": False}


def changed_settings(held: Iterable[str], now: str) -> tuple[str, str]:
    """What differs between the JSON records of resolved settings ``held`` (a results file's) and ``now``:
    the keys both hold with other values (``model.lr 0.01 there, 0.001 now; ...``: a change; a key of
    ``ABSENT_MEANT`` a record lacks holds the value its absence meant), and the keys one side lacks (a
    parameter added or dropped since, as a rule at a default that changes nothing: told, not refused).
    Values compare as numbers (1 == 1.0); each empty where nothing differs."""
    current, changed, one_sided = _flat(json.loads(now)), [], []
    for record in sorted(set(held)):
        then = _flat(json.loads(record))
        then |= {key: meant for key, meant in ABSENT_MEANT.items() if key in current and key not in then}
        changed += [
            f"{key} {then[key]} there, {current[key]} now"
            for key in sorted(then.keys() & current.keys())
            if then[key] != current[key]
        ]
        one_sided += [f"{key} only {'there' if key in then else 'now'}" for key in sorted(then.keys() ^ current.keys())]
    return "; ".join(dict.fromkeys(changed)), "; ".join(dict.fromkeys(one_sided))


def _flat(settings: dict, prefix: str = "") -> dict:
    """``{"model": {"lr": 0.01}}`` as ``{"model.lr": 0.01}``."""
    flat = {}
    for key, value in settings.items():
        if isinstance(value, dict):
            flat |= _flat(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def add_columns(path: Path, fields: list[str]) -> None:
    """``path`` (a results CSV) written again with the ``fields`` its header lacks added, blank, at the end."""
    with path.open(newline="") as file:
        header = next(csv.reader(file), [])
    if set(fields) <= set(header):
        return
    rows, partial = read_rows(path), path.with_suffix(".csv.part")
    with partial.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=header + [f for f in fields if f not in header])
        writer.writeheader()
        writer.writerows(rows)
    partial.replace(path)


def read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open() as f:
        return list(csv.DictReader(f))


def append_rows(path: Path, rows: list[dict], fields: list[str] = FIELDS) -> None:
    new = not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    if not new:  # keep an existing file's columns, so that rows stay aligned with its header
        with path.open() as f:
            fields = next(csv.reader(f))
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        if new:
            writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.4f}" if isinstance(v, float) and k in METRICS else v) for k, v in row.items()})


def _ok(row: dict, metric: str = "status") -> bool:
    return row.get("status", "ok") == "ok" and row.get(metric) not in (None, "")


def exact_mean(values) -> float:
    """The mean by an exactly rounded sum (``math.fsum``): the same whatever the rows' order (a grid's
    jobs write them as they finish; numpy's pairwise sum could round a table's 0.2275 either way)."""
    values = [float(v) for v in values]
    return math.fsum(values) / len(values) if values else float("nan")


def _values(rows: list[dict], metric: str) -> list[float]:
    return [float(r[metric]) for r in rows if _ok(r, metric)]


def is_baseline(row: dict) -> bool:
    """Whether a results row is a reference detector's (``GRID_BASELINES``, with a --tag; never trained)."""
    return row["method"].startswith(GRID_BASELINES) and str(row.get("epochs")) == "0"


def told_apart(rows: list[dict]) -> list[dict]:
    """``rows``, where one method name holds trained runs of several configs, or of one configs with several
    recorded settings, on one data set and protocol (a file from before ``dagmm benchmark`` refused that,
    or files joined by hand), with the method named by what sets each apart: ``dagmm [configs/dagmm.yaml
    configs/paper/thyroid.yaml]``, ``lmm [epochs=500]``. Rows that record none (from before the columns) go
    with any. A table's line averages the runs of one method."""
    made: dict[tuple[str, str, str], list[dict]] = {}
    for row in rows:
        if not is_baseline(row):
            made.setdefault((row["dataset"], row["protocol"], row["method"]), []).append(row)
    labels: dict[int, str] = {}
    for group in made.values():
        for column in ("configs", "settings"):
            recorded = {row.get(column) for row in group} - {None, ""}
            if len(recorded) > 1:
                shown = _settings_apart(recorded) if column == "settings" else {v: v for v in recorded}
                labels |= {id(row): shown.get(row.get(column), "no record") for row in group}
                break
    return [dict(row, method=f"{row['method']} [{labels[id(row)]}]") if id(row) in labels else row for row in rows]


def _settings_apart(records: set[str]) -> dict[str, str]:
    """Each JSON record of settings named by the values it holds of the keys where the records differ
    (``epochs=500``; the whole record where one cannot be read)."""
    try:
        flat = {record: _flat(json.loads(record)) for record in records}
    except (ValueError, AttributeError):
        return {record: record for record in records}
    keys = sorted({k for f in flat.values() for k in f if len({json.dumps(g.get(k)) for g in flat.values()}) > 1})
    return {record: ", ".join(f"{k}={f.get(k)}" for k in keys) for record, f in flat.items()}


def _groups(rows: list[dict], keys: tuple[str, ...]) -> dict[tuple[str, ...], list[dict]]:
    groups: dict[tuple[str, ...], list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in keys), []).append(row)
    return dict(sorted(groups.items()))


def _stats(values: list[float], digits: int = 4) -> str:
    """Mean ± sample standard deviation (the value alone when there is one), NaN left out; "n/a" when
    nothing is left."""
    values = [v for v in values if not math.isnan(v)]
    if len(values) < 2:
        return f"{values[0]:.{digits}f}" if values else "n/a"
    return f"{exact_mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f}"


def markdown_table(header: list[str], lines: list[list]) -> str:
    """A markdown table of a header row and rows of cells (any values, shown with str)."""
    text = ["| " + " | ".join(str(c) for c in row) + " |" for row in [header, *lines]]
    return "\n".join([text[0], "|" + "---|" * len(header), *text[1:]]) + "\n"


def summarize(rows: list[dict]) -> str:
    """Markdown table: one line per data set, protocol and method; mean ± std over seeds."""
    lines = []
    for (dataset, protocol, method), group in _groups(rows, ("dataset", "protocol", "method")).items():
        ok = [r for r in group if _ok(r)]
        epochs = "/".join(sorted({str(r.get("epochs", "")) for r in ok}))
        at_threshold = [_values(ok, f"{m}_threshold") for m in ("precision", "recall", "f1")]
        threshold_cell = " / ".join(f"{exact_mean(v):.4f}" for v in at_threshold) if all(at_threshold) else "n/a"
        cells = [_stats(_values(ok, m)) for m in ("precision_rho", "recall_rho", "f1_rho", "roc_auc")]
        lines.append([dataset, protocol, method, len(ok), epochs, *cells, threshold_cell, len(group) - len(ok)])
    header = "data set|protocol|method|seeds|epochs|precision@rho|recall@rho|F1@rho|ROC AUC"
    return markdown_table([*header.split("|"), "P / R / F1 at the stored threshold", "failed"], lines)


def summarize_percentiles(rows: list[dict]) -> str:
    """Markdown table of the study's shape: precision / recall / F1 at the top 10 ... 60 % (means over seeds)."""
    lines = []
    for key, group in _groups([r for r in rows if _ok(r, "f1_top10")], ("dataset", "protocol", "method")).items():
        cells = []
        for p in PERCENTILES:
            mean = {m: exact_mean(_values(group, f"{m}_top{p}")) for m in ("precision", "recall", "f1")}
            cells.append(f"{mean['precision']:.3f} / {mean['recall']:.3f} / **{mean['f1']:.3f}**")
        lines.append([*key, len(group), *cells])
    return markdown_table(["data set", "protocol", "method", "seeds", *[f"top {p} %" for p in PERCENTILES]], lines)


def summarize_positive_unlabeled(rows: list[dict]) -> str:
    """Markdown table of the PU runs: c, the c / 2 rule's P/R/F1, ROC AUC of 1 - h and of the energy."""
    pu = [r for r in rows if _ok(r, "c")]
    if not pu:
        return ""
    metrics = ("c", "precision_threshold", "recall_threshold", "f1_threshold", "roc_auc", "roc_auc_energy")
    lines = [
        [*key, len(group), *[_stats(_values(group, m)) for m in metrics]]
        for key, group in _groups(pu, ("dataset", "method")).items()
    ]
    header = "data set|method|seeds|c|precision|recall|F1|ROC AUC of 1 - h|ROC AUC of the energy"
    table = markdown_table(header.split("|"), lines)
    return "\nPositive-unlabeled runs (a row is an anomaly iff h < c / 2):\n\n" + table


def summarize_matrix(sources: list[tuple[Path, list[dict]]]) -> str:
    """Markdown table of F1 at rho, methods x data sets (mean ± std over seeds), the paper's DAGMM on top
    and each column's best method in bold (positive-unlabeled runs add a row for their c / 2 rule's F1);
    one line per source file says how its runs were made. A method, data set and seed found twice (but
    baseline rows of equal results, two grids' ``--baselines``), or a data set run under two protocols, is
    an error (a table must not mix runs)."""
    cells: dict[tuple[str, str], list[float]] = {}
    seen: dict[tuple[str, str, str, str], tuple[Path, dict]] = {}
    protocol_of: dict[str, str] = {}
    seeds_of: dict[str, dict[str, set[int]]] = {}  # data set -> method -> seeds
    notes = []
    for path, rows in sources:
        ok = [r for r in told_apart(rows) if _ok(r, "f1_rho")]
        for r in ok:
            key = (r["method"], r["dataset"], r["protocol"], str(r["seed"]))
            if key in seen:
                first, row = seen[key]
                same = all(r.get(m) == row.get(m) for m in ("f1_rho", "roc_auc", "average_precision"))
                if first != path and is_baseline(r) and same:
                    continue  # the same reference rows of two grids' --baselines (had: refused)
                where = f"twice in {path}" if first == path else f"in both {first} and {path}"
                other = ", with other results" if is_baseline(r) else ""
                raise DataError(
                    f"{key[0]} on {key[1]} ({key[2]} protocol) seed {key[3]} is {where}{other}: give each run "
                    "once (a sweep's rows apart with --tag)"
                )
            seen[key] = (path, r)
            protocols = protocol_of.setdefault(r["dataset"], r["protocol"])
            if protocols != r["protocol"]:
                raise DataError(
                    f"{r['dataset']} has runs of the {protocols} and the {r['protocol']} protocol: a column "
                    "averages runs of one; give --matrix the results of one protocol"
                )
            cells.setdefault((r["method"], r["dataset"]), []).append(float(r["f1_rho"]))
            seeds_of.setdefault(r["dataset"], {}).setdefault(r["method"], set()).add(int(r["seed"]))
            if r.get("c") not in (None, "") and r.get("f1_threshold") not in (None, ""):
                # the positive-unlabeled method's own decision: anomaly iff h < c / 2, no rho involved
                cells.setdefault((r["method"] + " (c/2 rule)", r["dataset"]), []).append(float(r["f1_threshold"]))
        trained = [r for r in ok if str(r.get("epochs", "0")) not in ("", "0")]
        epochs = "/".join(sorted({str(r["epochs"]) for r in trained})) or "-"
        chosen = "checkpoint chosen on validation" if any(r.get("selected_epoch") for r in trained) else "last epoch"
        datasets = ", ".join(sorted({r["dataset"] for r in ok}))
        protocols = ", ".join(sorted({r["protocol"] for r in ok}))
        plural = "epoch" if epochs == "1" else "epochs"
        notes.append(f"- `{path}`: {datasets}; {protocols} protocol; {epochs} {plural}, {chosen}")
    datasets = [d for d in PAPER_DAGMM_F1 if any(d == ds for _, ds in cells)]
    datasets += sorted({ds for _, ds in cells} - set(datasets))
    best = {d: max((exact_mean(v), m) for (m, ds), v in cells.items() if ds == d)[1] for d in datasets}
    lines = [["DAGMM, the paper", *[f"{PAPER_DAGMM_F1[d]:.3f}" if d in PAPER_DAGMM_F1 else "" for d in datasets]]]
    for method in sorted({m for m, _ in cells}):
        row = []
        for d in datasets:
            values = cells.get((method, d))
            text = "" if values is None else _stats(values, digits=3)
            row.append(f"**{text}**" if values is not None and best[d] == method else text)
        lines.append([method, *row])
    for d in datasets:  # (had: a method's mean over seeds 0-4 beside a baseline's over 0-2, unsaid)
        if len({frozenset(s) for s in seeds_of[d].values()}) > 1:
            runs = "; ".join(f"{m} {seed_ranges(s)}" for m, s in sorted(seeds_of[d].items()))
            notes.append(f"- {d}: the methods ran on different seeds, so their means average other splits ({runs})")
    return (
        markdown_table(["method", *datasets], lines)
        + "\nF1 at each data set's rho on the test rows, mean ± std over seeds; sources:\n\n"
        + "\n".join(notes)
        + "\n"
    )


def seed_ranges(seeds: set[int]) -> str:
    """``{0, 1, 2, 4}`` as ``seeds 0-2, 4`` (``seed 3`` for one)."""
    ordered, spans = sorted(seeds), []
    for seed in ordered:
        if spans and seed == spans[-1][1] + 1:
            spans[-1][1] = seed
        else:
            spans.append([seed, seed])
    text = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)
    return f"seed{'s' if len(ordered) > 1 else ''} {text}"


def plot(rows: list[dict], path: Path) -> None:
    """F1 at rho per method (mean ± std over seeds), one panel per data set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if _ok(r, "f1_rho")]
    datasets = sorted({f"{r['dataset']} ({r['protocol']})" for r in ok})
    if not datasets:
        return
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.5 * len(datasets), 3.6), squeeze=False)
    for ax, name in zip(axes[0], datasets, strict=True):
        subset = [r for r in ok if f"{r['dataset']} ({r['protocol']})" == name]
        methods = sorted({r["method"] for r in subset})
        values = [[float(r["f1_rho"]) for r in subset if r["method"] == m] for m in methods]
        ax.bar(
            range(len(methods)),
            [exact_mean(v) for v in values],
            yerr=[np.std(v, ddof=1) if len(v) > 1 else 0 for v in values],
            capsize=3,
            color="tab:blue",
        )
        ax.set_xticks(range(len(methods)), methods, rotation=35, ha="right", fontsize=8)
        ax.set_ylim(0, 1)
        counts = sorted({len(v) for v in values})
        seeds = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
        ax.set_title(f"{name}\nmean over {seeds} seed(s) a method, error bar: their std", fontsize=9)
        ax.set_ylabel("F1 at the data set's rho (test rows)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_reports(csv_path: Path) -> None:
    """``<csv>.md`` (the summary, the percentile table, the PU table) and ``<csv>.png`` from a results file."""
    rows = told_apart(read_rows(csv_path))
    percentiles = (
        "\nPrecision / recall / **F1** at the top p % of scores (mean over seeds):\n\n" + summarize_percentiles(rows)
    )
    csv_path.with_suffix(".md").write_text(summarize(rows) + percentiles + summarize_positive_unlabeled(rows))
    plot(rows, csv_path.with_suffix(".png"))
