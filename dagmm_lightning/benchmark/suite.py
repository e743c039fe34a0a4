"""``dagmm benchmark --suite DIR``: DAGMMDetector settings over a folder of ``.npz`` tables (``X``, ``y``)
beside four shallow detectors, with the development suite's one-class protocol:

a table of more than 20,000 rows is subsampled to 20,000 (``default_rng(0)``); for each seed the normal
rows are shuffled (``default_rng(seed)``) and halved: the first half trains (no labels), the test rows are
the other half plus every anomaly; features are min-max scaled on the training rows; the score is ROC AUC.

Or (``--suite-protocol contaminated``, the setting of a user whose table holds its anomalies, ADBench's
unsupervised one) the normal rows and the anomalies are each shuffled (``default_rng(seed)``, normal rows
first) and halved: the first halves train together (anomalies among them, no labels), the second halves
are the test rows.

Each results row records a hash of its table's X and y: a results file is resumed only with the same
folder's tables, unchanged; and each detector row what the detector trained with, its defaults filled in
(``DAGMMDetector.resolved_settings``): a file is resumed only at the same defaults.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import re
import time
from pathlib import Path

import joblib
import numpy as np
from sklearn.metrics import roc_auc_score

from dagmm_lightning.benchmark.report import (
    add_columns,
    append_rows,
    changed_settings,
    exact_mean,
    read_rows,
    variant_source,
)
from dagmm_lightning.data.loaders import read_npz_file
from dagmm_lightning.errors import ConfigurationError, DataError

SUITE_FIELDS = [
    *["table", "seed", "method", "roc_auc", "seconds", "status", "settings", "data", "protocol", "resolved"],
    "threads",  # the detector's torch threads (its seconds depend on them)
]
BASELINES = ("isolation_forest", "knn", "lof", "gaussian_mixture")
MAX_ROWS = 20_000


def is_suite_file(csv_path: Path) -> bool:
    """Whether a results file holds ``--suite`` rows (a ``table`` column), not ``--configs`` runs."""
    return "table" in results_header(csv_path)


def results_header(csv_path: Path) -> list[str]:
    """A CSV file's first row (its column names); empty for an empty file."""
    with open(csv_path, newline="") as file:
        return next(csv.reader(file), [])


def read_table(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A suite table's X (rows x features, float64) and y (rows,), checked: both there, as many labels as
    rows, normal rows and anomalies both present (ROC AUC needs the two), anomalies at most half the rows."""
    try:
        table = read_npz_file(path)  # X real numbers, y 0/1 (as a data set's file): one rule for both
    except DataError as err:  # named with its table
        raise DataError(str(err) if str(path) in str(err) else f"{path}: {err}") from None
    if table.is_anomaly is None:
        raise DataError(f"{path} holds no y; a suite table holds X (rows x features) and y (a label each)")
    x, y = table.features.to_numpy(dtype=np.float64), table.is_anomaly.astype(np.int64)
    if x.shape[1] == 0:  # (had: read, and a failed row of every method)
        raise DataError(f"{path}: X has no columns; a suite table holds X (rows x features) and y (a label each)")
    if not np.isfinite(x).all():
        row, column = np.argwhere(~np.isfinite(x))[0]
        raise DataError(
            f"{path}: X holds {x[row, column]} at row {row}, column {column}; the suite needs finite values"
        )
    if (y == 0).sum() < 2 or (y != 0).sum() < 1:
        raise DataError(
            f"{path}: y marks {(y != 0).sum()} anomalies in {len(y)} rows; ROC AUC needs normal rows and anomalies"
        )
    if (y != 0).mean() > 0.5:  # (had: run, trained on a few rows, ROC AUC 1.000 for every method)
        raise DataError(
            f"{path}: y marks {100 * (y != 0).mean():.3g} % of the rows as anomalies: inverted (1 = anomaly)? "
            "The suite trains on normal rows; map y"
        )
    return x, y


def table_fingerprint(x: np.ndarray, y: np.ndarray) -> str:
    """A short hash of a table's X and y (a results row's ``data``): a table changed since is not resumed."""
    digest = hashlib.sha256(repr((x.shape, y.shape)).encode())
    for array in (x, y):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:12]


def check_results_match(csv_path: Path, rows: list[dict], folder: Path, fingerprints: dict[str, str]) -> None:
    """Refuse to resume into ``csv_path`` where its ``rows`` hold tables that ``folder`` lacks, or that its
    tables' ``fingerprints`` say have changed since (their numbers would be kept, and averaged with the new)."""

    def listed(names: list[str]) -> str:
        return ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")

    absent = sorted({r["table"] for r in rows} - set(fingerprints))
    if absent:
        raise DataError(
            f"{csv_path} holds results of tables {folder} lacks ({listed(absent)}): another folder's; give "
            "another --out"
        )
    changed = sorted({r["table"] for r in rows if r.get("data") and r["data"] != fingerprints[r["table"]]})
    if changed:
        raise DataError(
            f"{csv_path} holds results of {listed(changed)} from other X or y than the folder's now; give another "
            "--out (or remove those rows)"
        )


def row_protocol(row: dict) -> str:
    """A results row's protocol; rows written before the column are the one-class protocol's."""
    return row.get("protocol") or "one-class"


def table_order(name: str) -> tuple[int, str]:
    """ADBench's numbered names (``2_annthyroid``) in their number's order."""
    number = re.match(r"[0-9]+(?=_)", name)  # ASCII digits: str.isdigit takes ² too, which int() refuses
    return (int(number.group()) if number else 0, name)


def one_class_split(x: np.ndarray, y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scaled training rows, scaled test rows and test labels (1 = anomaly) of one table and seed: half the
    normal rows train, the test rows are the other half and every anomaly."""
    x, y = _subsampled(x, y)
    normal = np.random.default_rng(seed).permutation(np.flatnonzero(y == 0))
    train, test = normal[: len(normal) // 2], np.r_[normal[len(normal) // 2 :], np.flatnonzero(y != 0)]
    return _scaled(x, y, train, test)


def contaminated_split(x: np.ndarray, y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """As ``one_class_split``, but half the normal rows and half the anomalies train together (a table of
    n anomalies trains on n // 2 of them), the other halves are the test rows."""
    x, y = _subsampled(x, y)
    rng = np.random.default_rng(seed)
    normal, anomalies = rng.permutation(np.flatnonzero(y == 0)), rng.permutation(np.flatnonzero(y != 0))
    train = np.r_[normal[: len(normal) // 2], anomalies[: len(anomalies) // 2]]
    test = np.r_[normal[len(normal) // 2 :], anomalies[len(anomalies) // 2 :]]
    return _scaled(x, y, train, test)


SPLITS = {"one-class": one_class_split, "contaminated": contaminated_split}


def _subsampled(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A table of more than ``MAX_ROWS`` rows cut to that many (``default_rng(0)``, whatever the seed)."""
    if len(x) > MAX_ROWS:
        keep = np.random.default_rng(0).choice(len(x), MAX_ROWS, replace=False)
        x, y = x[keep], y[keep]
    return x, y


def _scaled(
    x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``train`` and ``test`` rows min-max scaled with the training rows' min and max, and test labels."""
    low, span = x[train].min(0), x[train].max(0) - x[train].min(0)
    span = np.where(span > 0, span, 1.0)
    return (x[train] - low) / span, (x[test] - low) / span, (y[test] != 0).astype(int)


def baseline_scores(name: str, x_train: np.ndarray, x_test: np.ndarray, seed: int) -> np.ndarray:
    """Anomaly scores (higher = more anomalous) of one shallow detector, as the suite's README sets them."""
    from sklearn.ensemble import IsolationForest
    from sklearn.mixture import GaussianMixture
    from sklearn.neighbors import LocalOutlierFactor, NearestNeighbors

    if name == "knn":  # distance to the 5th nearest training row
        return NearestNeighbors(n_neighbors=5).fit(x_train).kneighbors(x_test)[0][:, -1]
    detector = {
        "isolation_forest": lambda: IsolationForest(random_state=seed),
        # (fewer training rows: the neighbours scikit-learn would take, without its warning)
        "lof": lambda: LocalOutlierFactor(n_neighbors=min(20, len(x_train) - 1), novelty=True),
        "gaussian_mixture": lambda: GaussianMixture(4, covariance_type="full", reg_covar=1e-4, random_state=seed),
    }[name]()
    return -detector.fit(x_train).score_samples(x_test)


def detector_scores(
    settings: dict, x_train: np.ndarray, x_test: np.ndarray, seed: int, threads: int | None = None
) -> np.ndarray:
    """The detector's test scores; ``threads``: its torch threads where ``settings`` leave ``n_jobs`` None
    (joblib's setting, which its n_jobs None reads; the baselines keep theirs)."""
    from dagmm_lightning.detector import DAGMMDetector

    with joblib.parallel_config(n_jobs=threads) if threads else contextlib.nullcontext():
        return DAGMMDetector(**{"random_state": seed, **settings}).fit(x_train).decision_function(x_test)


def detector_threads(settings: dict, threads: int | None) -> int:
    """The torch threads a detector of ``settings`` trains with under ``--threads`` (``detector_scores``)."""
    from dagmm_lightning.detector import DAGMMDetector

    with joblib.parallel_config(n_jobs=threads) if threads else contextlib.nullcontext():
        return DAGMMDetector(**settings)._threads()


def resolved_json(settings: dict) -> str:
    """JSON of what a detector of ``settings`` trains with, its defaults filled in (its ``resolved_settings``);
    for a variant of one's own (``{"variant": "my_variants.Wider"}``) also its module's fingerprint
    (``model_source``): a resume after its code changed is refused, as a grid's is."""
    from dagmm_lightning.detector import DAGMMDetector

    try:
        detector = DAGMMDetector(**settings)
        resolved = detector.resolved_settings()
        model_class = detector._model_class
    except ConfigurationError as err:
        raise ConfigurationError(f"--detector: {err}") from None
    source = variant_source(f"{model_class.__module__}.{model_class.__qualname__}")
    if source is not None:
        resolved["model_source"] = source
    return json.dumps(resolved, sort_keys=True, default=repr)


def check_resolved_settings(csv_path: Path, rows: list[dict], method: str, resolved: str) -> None:
    """Refuse to add ``method``'s runs at ``resolved`` to its ``rows`` in ``csv_path`` that another version's
    defaults trained (the file's means would mix the two); rows written before the column go unchecked, and
    a setting only one side names is told, not refused (``changed_settings``)."""
    changed, one_sided = changed_settings({r["resolved"] for r in rows if r.get("resolved")}, resolved)
    if changed:
        raise ConfigurationError(
            f"{csv_path} holds {method} rows trained with other defaults ({changed}): the same --detector "
            "settings give another detector now; give another --out, or --tag"
        )
    if one_sided:
        print(f"({csv_path}'s {method} rows and this version name different settings: {one_sided})", flush=True)


def run_suite(
    folder: Path,
    seeds: list[int],
    settings: dict,
    method: str,
    baselines: bool,
    csv_path: Path,
    only: list[str] | None = None,
    threads: int | None = None,
    protocol: str = "one-class",
) -> None:
    """Every table (of ``only``'s names, if given) x seed x method not yet in ``csv_path``, one CSV row each
    (resumable); ``threads``: the detector's (``detector_scores``); ``protocol``: a key of ``SPLITS`` (a results
    file holds one)."""
    if protocol not in SPLITS:
        raise ConfigurationError(f"protocol {protocol!r}: one of {', '.join(SPLITS)}")
    if not folder.is_dir():
        if folder.is_file() and folder.suffix == ".npz":
            raise DataError(
                f"{folder} is a file; --suite takes the folder of .npz tables that holds it "
                f"(--tables {folder.stem} to run that table only)"
            )
        if folder.is_file():
            raise DataError(f"{folder} is a file; --suite takes a folder of .npz tables (arrays X and y)")
        raise DataError(f"no such folder: {folder}")
    tables = sorted(folder.glob("*.npz"), key=lambda p: table_order(p.stem))
    if not tables:
        raise DataError(f"no .npz tables in {folder}")
    if only is not None:
        missing = [name for name in only if name not in {p.stem for p in tables}]
        if missing:
            shown = ", ".join(p.stem for p in tables[:20]) + (", ..." if len(tables) > 20 else "")
            raise DataError(f"--tables: no {', '.join(missing)} in {folder} (its tables: {shown})")
    rows = read_rows(csv_path)
    fingerprints = {path.stem: table_fingerprint(*read_table(path)) for path in tables} if rows else {}
    if rows:  # (every table read, and checked, before any run: a bad one stops the suite, not its middle)
        check_results_match(csv_path, rows, folder, fingerprints)
        held = sorted({row_protocol(r) for r in rows} - {protocol})
        if held:
            raise ConfigurationError(
                f"{csv_path} holds results of the {held[0]} protocol, not {protocol}: resume it with "
                f"--suite-protocol {held[0]}, or give another --out"
            )
    resolved = resolved_json(settings)  # (first: a bad value is named as such, not as 'other settings')

    other = {  # settings as typed, or where those differ (a default spelled out), as resolved (--seeds: the seed)
        r["settings"]
        for r in rows
        if r["method"] == method and json.loads(r.get("settings") or "{}") != settings and r.get("resolved") != resolved
    }
    if other:
        raise ConfigurationError(
            f"{csv_path} holds {method} rows with other --detector settings ({', '.join(sorted(other))}); give "
            "another --out, or --tag"
        )
    check_resolved_settings(csv_path, [r for r in rows if r["method"] == method], method, resolved)
    if any(r["method"] == method and not r.get("resolved") for r in rows):
        print(f"({csv_path}'s {method} rows of before the resolved column: their defaults are not checked)")
    try:
        used = detector_threads(settings, threads)
    except ConfigurationError as err:
        raise ConfigurationError(f"--detector: {err}") from None
    timed = sorted({r["threads"] for r in rows if r["method"] == method and r.get("threads")} - {str(used)})
    if csv_path.is_file():  # written before the hashes, the protocol or the resolved column: those added
        add_columns(csv_path, SUITE_FIELDS)  # (old rows blank there: unchecked, one-class)
    done = {(r["table"], int(r["seed"]), r["method"]) for r in rows}
    methods = [method, *(BASELINES if baselines else ())]
    chosen = [p for p in tables if only is None or p.stem in only]  # (the file's other tables checked above)
    pending = [p for p in chosen if any((p.stem, s, m) not in done for s in seeds for m in methods)]
    runs = [(p.stem, s, m) for p in chosen for s in seeds for m in methods]
    to_do = sum(run not in done for run in runs)
    for path in pending:  # every table checked before any runs (and the count): a bad one stops the suite first
        if path.stem not in fingerprints:
            fingerprints[path.stem] = table_fingerprint(*read_table(path))
    print(f"{to_do} run{'' if to_do == 1 else 's'} to do, {len(runs) - to_do} already in {csv_path}", flush=True)
    if timed and any(run not in done for run in runs if run[2] == method):  # (the ROC AUC hardly moves; the
        unit = "thread" if timed == ["1"] else "threads"  # seconds do; had: said with no run to do too)
        print(
            f"({csv_path}'s {method} rows were timed with {', '.join(timed)} {unit}, these with {used}: its seconds "
            "per seed will mix them)"
        )
    for path in pending:
        x, y = read_table(path)
        if len(x) > MAX_ROWS:  # (the protocol's rule: said, as the README's protocol says)
            print(f"{path.stem}: {len(x):,} rows, cut to {MAX_ROWS:,} (a fixed random subset) before it splits")
        for seed in seeds:
            todo = [m for m in methods if (path.stem, seed, m) not in done]
            if not todo:
                continue
            x_train, x_test, y_test = SPLITS[protocol](x, y, seed)
            for name in todo:
                start, status, auc = time.perf_counter(), "ok", float("nan")
                try:
                    scores = (
                        detector_scores(settings, x_train, x_test, seed, threads)
                        if name == method
                        else baseline_scores(name, x_train, x_test, seed)
                    )
                    auc = float(roc_auc_score(y_test, scores))
                except ConfigurationError as err:  # a wrong setting fails every table alike: stop, write no rows
                    if name != method:
                        raise
                    raise ConfigurationError(f"--detector: {err}") from None
                except (FloatingPointError, ValueError) as err:  # a failed run is a result, not the grid's end
                    status = f"failed: {err}"[:200]
                seconds = time.perf_counter() - start  # (to 0.01 s, but 3 digits under 1 s: a toy table's LOF is not 0)
                seconds = round(seconds, 2) if seconds >= 1 else float(f"{seconds:.3g}")
                row = {
                    "table": path.stem,
                    "seed": seed,
                    "method": name,
                    "roc_auc": round(auc, 4),
                    "seconds": seconds,
                    "status": status,
                    "settings": json.dumps(settings) if name == method else "",
                    "data": fingerprints[path.stem],
                    "protocol": protocol,
                    "resolved": resolved if name == method else "",
                    "threads": used if name == method else "",
                }
                append_rows(csv_path, [row], SUITE_FIELDS)
                result = f"ROC AUC {auc:.4f}" if status == "ok" else f"FAILED, {status[len('failed: ') :]}"
                print(f"{path.stem} seed {seed} {name}: {result} ({seconds} s)", flush=True)


def seed_scores(rows: list[dict]) -> list[float]:
    """The ROC AUC of each seed of ``rows`` (one method on one table) that scored, in seed order: the mean of
    a seed's rows where a table was run twice on it (two processes over overlapping halves), once each."""
    by_seed: dict[int, list[float]] = {}
    for row in rows:
        if row["status"] == "ok":
            by_seed.setdefault(int(row["seed"]), []).append(float(row["roc_auc"]))
    return [float(exact_mean(values)) for _, values in sorted(by_seed.items())]


def summarize_suite(rows: list[dict], tables: list[str] | None = None) -> str:
    """Markdown: ROC AUC per table (mean over seeds) x method, the mean over tables, the best baseline's
    gap, and each method's total seconds per seed; ``tables``: those the run was to cover (after Ctrl-C, a
    table not reached is listed as not run and left out of the means, which say so)."""
    methods = sorted({r["method"] for r in rows}, key=lambda m: (m in BASELINES, m))
    tables = sorted({r["table"] for r in rows} | set(tables or []), key=table_order)
    seeds = sorted({int(r["seed"]) for r in rows})

    runs = {(m, t): [r for r in rows if r["method"] == m and r["table"] == t] for m in methods for t in tables}
    ok = {key: seed_scores(found) for key, found in runs.items()}
    cells = {key: float(exact_mean(values)) if values else float("nan") for key, values in ok.items()}
    method_seeds = {m: {int(r["seed"]) for r in rows if r["method"] == m} for m in methods}  # (methods may differ)
    ok_seeds = {key: {int(r["seed"]) for r in found if r["status"] == "ok"} for key, found in runs.items()}

    def shown(key: tuple[str, str]) -> str:
        if not runs[key]:
            return "not run"
        if not ok[key]:
            return "failed"
        # fewer than the method's seeds (on any table), failed or not run (a table given another seed alone):
        # marked, and left out of the means (had: unmarked, and the means' tables of different seeds)
        expected = method_seeds[key[0]]
        partly = f" ({len(ok_seeds[key])} of {len(expected)} seeds)" if ok_seeds[key] != expected else ""
        return f"{cells[key]:.3f}{partly}"

    lines = ["| table | " + " | ".join(methods) + " | best baseline |", "|---|" + "---|" * (len(methods) + 1)]
    for t in tables:
        scored = [cells[(m, t)] for m in methods if m in BASELINES and np.isfinite(cells[(m, t)])]
        cells_shown = [shown((m, t)) for m in methods]
        name = t.replace("|", "\\|")  # a bar in a file's name would end the Markdown cell
        lines.append(f"| {name} | " + " | ".join(cells_shown) + (f" | {max(scored):.3f} |" if scored else " | |"))
    # the means over the same tables for every method: those where each scored every seed it ran (a method
    # that scored on no table at all is left out of that rule: its mean says failed, the others' stand)
    scoring = [m for m in methods if any(ok[(m, t)] for t in tables)]
    complete = [t for t in tables if all(ok_seeds[(m, t)] == method_seeds[m] for m in scoring)]
    means = {m: exact_mean([cells[(m, t)] for t in complete]) if complete else float("nan") for m in methods}
    label = "**mean**" if len(complete) == len(tables) else f"**mean** ({len(complete)} of {len(tables)} tables)"
    mean_cells = ["failed" if m not in scoring else f"**{means[m]:.3f}**" if complete else "n/a" for m in methods]
    lines.append(f"| {label} | " + " | ".join(mean_cells) + " | |")
    seeds_run = {m: len({r["seed"] for r in rows if r["method"] == m}) for m in methods}
    # one seed of the tables the means cover: a method that ran on fewer tables is not summed over fewer
    per_seed = {key: exact_mean([float(r["seconds"]) for r in found]) for key, found in runs.items() if found}
    seconds = {m: sum(per_seed[(m, t)] for t in complete) for m in scoring}
    timed = "seconds per seed" + ("" if len(complete) == len(tables) else f" ({len(complete)} of {len(tables)} tables)")
    timings = [_seconds(seconds[m]) if complete and m in scoring else "n/a" for m in methods]
    lines.append(f"| {timed} | " + " | ".join(timings) + " | |")
    lines.append("| seeds | " + " | ".join(str(seeds_run[m]) for m in methods) + " | |")
    over = f"mean over seeds {', '.join(map(str, seeds))}" if len(seeds) != 1 else f"seed {seeds[0]}"
    protocols = sorted({row_protocol(r) for r in rows})
    among = " (contaminated protocol: half of each table's anomalies trained among its rows)"
    setting = among if protocols == ["contaminated"] else "" if protocols == ["one-class"] else " (mixed protocols)"
    return f"ROC AUC on the test rows{setting}, {over}:\n\n" + "\n".join(lines) + "\n"


def _seconds(value: float) -> str:
    """Whole seconds, but two significant digits under 10 (a baseline's 0.4 s is not 0)."""
    return f"{value:.0f}" if value >= 10 else f"{value:.2g}"


def plot_suite(rows: list[dict], path: Path) -> None:
    """``suite_figure`` of the rows, written to ``path``."""
    import matplotlib.pyplot as plt

    fig = suite_figure(rows)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def suite_figure(rows: list[dict]):
    """ROC AUC per table and method: the mean over seeds, the standard deviation as an error bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = sorted({r["method"] for r in rows}, key=lambda m: (m in BASELINES, m))
    tables = sorted({r["table"] for r in rows}, key=table_order)
    fig, ax = plt.subplots(figsize=(max(8, len(tables) * 0.8), 4.2))
    width, ok = 0.8 / len(methods), [r for r in rows if r["status"] == "ok"]
    for i, m in enumerate(methods):
        values = [seed_scores([r for r in ok if r["method"] == m and r["table"] == t]) for t in tables]
        means = [exact_mean(v) if v else np.nan for v in values]
        spread = [np.std(v, ddof=1) if len(v) > 1 else 0.0 for v in values]
        ax.bar(np.arange(len(tables)) + i * width, means, width, yerr=spread, capsize=1.5, label=m)
    ax.axhline(0.5, color="grey", linestyle=":", linewidth=1)  # a random ranking's ROC AUC
    ax.set_xticks(np.arange(len(tables)) + 0.4 - width / 2, tables, rotation=40, ha="right", fontsize=8)
    among = {row_protocol(r) for r in rows} == {"contaminated"}
    label = "ROC AUC (test rows" + ("; contaminated)" if among else ")")  # (anomalies trained)
    ax.set(ylim=(0.0, 1.0), ylabel=label)  # from 0: bars from a higher floor exaggerate differences
    seeds = sorted({str(r["seed"]) for r in ok}, key=int)
    over = (
        f"the mean over seeds {', '.join(seeds)} (error bars: their standard deviation)"
        if len(seeds) > 1
        else (f"seed {seeds[0]}" if seeds else "no finished run")
    )
    method_seeds = {m: {int(r["seed"]) for r in rows if r["method"] == m} for m in methods}
    found = {
        (m, t): {int(r["seed"]) for r in ok if r["method"] == m and r["table"] == t} for m in methods for t in tables
    }
    if any(seeds_of and seeds_of != method_seeds[m] for (m, _), seeds_of in found.items()):  # (the .md marks which)
        over += ", some bars of fewer seeds (the report marks them)"
    ax.set_title(f"ROC AUC per table, {over}; dotted: 0.5, a random ranking", fontsize=8, pad=28)
    ax.legend(fontsize=7, ncol=min(len(methods), 5), loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    fig.tight_layout()  # the legend above the axes: over the bars it hid the tallest
    return fig


def suite_tables(folder: Path, only: list[str] | None = None) -> list[str]:
    """The names of the .npz tables in ``folder`` (of ``only``'s, if given) that a run covers."""
    return [p.stem for p in folder.glob("*.npz") if only is None or p.stem in only]


def write_suite_reports(csv_path: Path, tables: list[str] | None = None) -> None:
    rows = read_rows(csv_path)
    csv_path.with_suffix(".md").write_text(summarize_suite(rows, tables))
    plot_suite(rows, csv_path.with_suffix(".png"))
