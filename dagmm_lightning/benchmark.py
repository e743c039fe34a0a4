"""``dagmm benchmark``: configs x data sets x seeds, resumable, with shallow reference rows.

    dagmm benchmark --configs configs/dagmm.yaml configs/vae.yaml --data configs/data/thyroid.yaml \
        --seeds 0-2 --epochs 500 --jobs 2 --baselines --out benchmarks/results/thyroid

writes ``<out>.csv`` (one row per run; finished runs are skipped when started again), ``<out>.md``
(mean and std over seeds of P/R/F1 at the data set's rho and ROC AUC) and ``<out>.png`` (F1 per method
with error bars). Each run trains on the protocol's training rows and is scored on its test rows, with
validation and checkpointing off, or, with ``--select-on METRIC``, validating every ``--val-every``
epochs and testing the checkpoint with the best validation value (val rows never reach test);
``--baselines`` adds scikit-learn's IsolationForest and a
GaussianMixture fitted on the very same scaled training rows of the same split. ``--tag`` names a grid
(for example a ``--set data.train_contamination=0.02`` sweep) so that several share one CSV;
``--matrix CSV ...`` writes F1 at rho as a methods x data sets table from finished results files.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import logging
import tempfile
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch

PERCENTILES = (10, 20, 30, 40, 50, 60)
METRICS = ["roc_auc", "average_precision", "precision_rho", "recall_rho", "f1_rho",
           *[f"{m}_top{p}" for p in PERCENTILES for m in ("precision", "recall", "f1")],
           "precision_threshold", "recall_threshold", "f1_threshold", "roc_auc_energy", "c"]  # fmt: skip
FIELDS = ["method", "dataset", "protocol", "seed", "epochs", "selected_epoch", "seconds", "final_loss", "status",
          "configs", *METRICS]  # fmt: skip
SELECTABLE = ("f1_rho", "roc_auc", "average_precision")
RECON = "+recon_inference"


@dataclass(frozen=True)
class Job:
    configs: tuple[str, ...]
    seed: int
    protocol: str
    epochs: int | None
    extra: tuple[str, ...]
    baselines: bool
    recon_inference: bool
    threads: int
    select_on: str | None = None
    val_every: int = 5
    checkpoint_dir: str = ""
    tag: str = ""

    @property
    def method(self) -> str:
        return Path(self.configs[0]).stem + self.tag


def parse_seeds(text: str) -> list[int]:
    """``"0-2"`` -> [0, 1, 2]; ``"0,3,5"`` -> [0, 3, 5]."""
    seeds: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        seeds += list(range(int(lo), int(hi) + 1)) if hi else [int(lo)]
    return seeds


def _metric_row(metrics: dict, rho: float) -> dict:
    name = f"{rho:g}"
    row = {"roc_auc": metrics["roc_auc"], "average_precision": metrics["average_precision"],
           "precision_rho": metrics[f"precision_top{name}"], "recall_rho": metrics[f"recall_top{name}"],
           "f1_rho": metrics[f"f1_top{name}"]}  # fmt: skip
    row.update({k: metrics[k] for k in METRICS if k in metrics and k not in row})
    return row


def _cli_args(job: Job) -> list[str]:
    args = [a for c in job.configs for a in ("--config", c)]
    args += ["--seed_everything", str(job.seed), "--data.protocol", job.protocol]
    if job.epochs is not None:
        args += ["--trainer.max_epochs", str(job.epochs)]
    if job.select_on is None:
        args += ["--trainer.limit_val_batches", "0", "--checkpoint.save_top_k", "0"]
    else:  # keep the checkpoint of the best validation (val rows only; test rows are never looked at)
        args += ["--trainer.check_val_every_n_epoch", str(job.val_every), "--checkpoint.save_top_k", "1",
                 "--checkpoint.mode", "max", "--checkpoint.save_on_train_epoch_end", "false",
                 "--checkpoint.dirpath", job.checkpoint_dir]  # fmt: skip
    args += ["--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
             "--trainer.enable_model_summary", "false", *job.extra]  # fmt: skip
    return args


def run_job(job: Job) -> list[dict]:
    """Train and test one config on one seed (and the baselines on its split); rows for the CSV."""
    torch.set_num_threads(job.threads)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # the progress line says enough
    sys.argv = sys.argv[:1]  # a spawned worker inherits the parent's arguments; the CLI gets its own
    with tempfile.TemporaryDirectory() as checkpoint_dir:
        return _run_job(dataclasses.replace(job, checkpoint_dir=checkpoint_dir))


def _monitored_args(job: Job) -> list[str]:
    if job.select_on is not None:
        return _cli_args(job) + ["--checkpoint.monitor", f"val/{job.select_on}"]
    # a config's own checkpoint monitor must not wait for validations that never come
    return _cli_args(job) + ["--checkpoint.monitor", "null"]


def _run_job(job: Job) -> list[dict]:
    from dagmm_lightning.callbacks import AnomalyMetrics
    from dagmm_lightning.cli import build_cli

    cli = build_cli(_monitored_args(job), run=False, save_config=False)
    if job.select_on is not None and cli.datamodule.split == "positive_unlabeled":
        # its val rows are labelled normal rows (for c): no anomaly metric to select on, so the last epoch
        print(f"{job.method}: the positive-unlabeled split has no anomalies in val; --select-on ignored, "
              "the last epoch is tested", flush=True)  # fmt: skip
        job = dataclasses.replace(job, select_on=None)
        cli = build_cli(_monitored_args(job), run=False, save_config=False)
    dm, model, trainer = cli.datamodule, cli.model, cli.trainer
    base = {"dataset": dm.dataset, "protocol": job.protocol, "seed": job.seed, "configs": " ".join(job.configs)}
    rows = []
    start = time.perf_counter()
    try:
        trainer.fit(model, datamodule=dm)
        seconds = time.perf_counter() - start
        loss = float(trainer.callback_metrics.get("train/loss", float("nan")))
        metrics_cb = next(c for c in trainer.callbacks if isinstance(c, AnomalyMetrics))
        selected = ""
        if job.select_on is not None:
            best = torch.load(trainer.checkpoint_callback.best_model_path, weights_only=False)
            selected = best["epoch"] + 1
            trainer.test(model, datamodule=dm, verbose=False, ckpt_path="best", weights_only=False)
        else:
            trainer.test(model, datamodule=dm, verbose=False)
        common = {**base, "epochs": trainer.current_epoch, "selected_epoch": selected, "seconds": round(seconds, 1),
                  "final_loss": loss}  # fmt: skip
        main_row = {**common, "method": job.method, "status": "ok", **_metric_row(metrics_cb.last_metrics["test"], dm.rho)}
        if hasattr(model, "c"):  # the positive-unlabeled estimate of p(labelled | normal)
            main_row["c"] = float(model.c)
        rows.append(main_row)
        # only where the score is the energy: the PU model scores with its classifier, which the
        # energy+reconstruction inference would not change
        if job.recon_inference and model.hparams.get("inference") == "energy" and model.score_follows_inference():
            model.hparams.inference = "energy+reconstruction"
            model.refit_mixture(dm.refit_dataloader())  # same weights: new normalisation and threshold
            trainer.test(model, datamodule=dm, verbose=False)
            row = _metric_row(metrics_cb.last_metrics["test"], dm.rho)
            rows.append({**common, "method": job.method + RECON, "status": "ok", **row})
    except FloatingPointError as err:
        rows.append({**base, "method": job.method, "status": f"non-finite: {err}"[:200],
                     "seconds": round(time.perf_counter() - start, 1)})  # fmt: skip
    if job.baselines:
        rows += [{**row, "method": row["method"] + job.tag}
                 for row in run_baselines(dm, job.seed, int(model.hparams.n_components), base)]
    return rows


def run_baselines(dm, seed: int, n_components: int, base: dict) -> list[dict]:
    """IsolationForest and GaussianMixture on the data module's scaled training rows, scored on its test
    rows; the percentile reference follows the protocol as for the trained models."""
    from sklearn.ensemble import IsolationForest
    from sklearn.mixture import GaussianMixture

    from dagmm_lightning.callbacks import AnomalyMetrics

    x_train, train_labels = dm.arrays("train")
    x_fit = x_train[train_labels != 1]  # never the labelled anomalies of a mixed split
    x_test, y_test = dm.arrays("test")
    detectors = {
        "isolation_forest": IsolationForest(random_state=seed, n_jobs=1),
        "gaussian_mixture": GaussianMixture(n_components, covariance_type="full", reg_covar=1e-6, random_state=seed),
    }
    rows = []
    for name, detector in detectors.items():
        start = time.perf_counter()
        detector.fit(x_fit)
        seconds = time.perf_counter() - start
        scores = -detector.score_samples(x_test)
        reference = np.r_[-detector.score_samples(x_fit), scores] if dm.protocol == "reimplementation" else None
        metrics = AnomalyMetrics().compute(scores, y_test, sorted({*PERCENTILES, dm.rho}), None, reference)
        rows.append({**base, "method": name, "epochs": 0, "seconds": round(seconds, 1), "status": "ok",
                     **_metric_row(metrics, dm.rho)})  # fmt: skip
    return rows


# --- results files -------------------------------------------------------------------------------------
def read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open() as f:
        return list(csv.DictReader(f))


def append_rows(path: Path, rows: list[dict]) -> None:
    new = not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = FIELDS
    if not new:  # keep an existing file's columns, so that rows stay aligned with its header
        with path.open() as f:
            fields = next(csv.reader(f))
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        if new:
            writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.4f}" if isinstance(v, float) and k in METRICS else v) for k, v in row.items()})


def _stats(values: list[float], digits: int = 4) -> str:
    """Mean ± sample standard deviation (0 for one value), NaN left out; "n/a" when nothing is left."""
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return "n/a"
    std = np.std(values, ddof=1) if len(values) > 1 else 0.0
    return f"{np.mean(values):.{digits}f} ± {std:.{digits}f}"


def summarize(rows: list[dict]) -> str:
    """Markdown table: one line per data set, protocol and method; mean ± std over seeds."""
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["dataset"], row["protocol"], row["method"]), []).append(row)
    lines = ["| data set | protocol | method | seeds | epochs | precision@rho | recall@rho | F1@rho | ROC AUC "
             "| P / R / F1 at the stored threshold | failed |", "|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for (dataset, protocol, method), group in sorted(groups.items()):
        ok = [r for r in group if r.get("status", "ok") == "ok"]
        values = {m: [float(r[m]) for r in ok if r.get(m) not in (None, "")] for m in ("precision_rho", "recall_rho", "f1_rho", "roc_auc")}
        epochs = sorted({str(r.get("epochs", "")) for r in ok})
        at_threshold = [[float(r[m]) for r in ok if r.get(m) not in (None, "")] for m in
                        ("precision_threshold", "recall_threshold", "f1_threshold")]  # fmt: skip
        threshold_cell = " / ".join(f"{np.mean(v):.4f}" for v in at_threshold) if all(at_threshold) else "n/a"
        lines.append(
            f"| {dataset} | {protocol} | {method} | {len(ok)} | {'/'.join(epochs)} | {_stats(values['precision_rho'])} "
            f"| {_stats(values['recall_rho'])} | {_stats(values['f1_rho'])} | {_stats(values['roc_auc'])} "
            f"| {threshold_cell} | {len(group) - len(ok)} |"
        )
    return "\n".join(lines) + "\n"


def summarize_percentiles(rows: list[dict]) -> str:
    """Markdown table of the seed's shape: precision / recall / F1 at the top 10 ... 60 % (means over seeds)."""
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for row in rows:
        if row.get("status", "ok") == "ok" and row.get("f1_top10") not in (None, ""):
            groups.setdefault((row["dataset"], row["protocol"], row["method"]), []).append(row)
    header = " | ".join(f"top {p} %" for p in PERCENTILES)
    lines = [f"| data set | protocol | method | seeds | {header} |", "|---|---|---|---|" + "---|" * len(PERCENTILES)]
    for (dataset, protocol, method), group in sorted(groups.items()):
        cells = []
        for p in PERCENTILES:
            mean = {m: np.mean([float(r[f"{m}_top{p}"]) for r in group]) for m in ("precision", "recall", "f1")}
            cells.append(f"{mean['precision']:.3f} / {mean['recall']:.3f} / **{mean['f1']:.3f}**")
        lines.append(f"| {dataset} | {protocol} | {method} | {len(group)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def summarize_positive_unlabeled(rows: list[dict]) -> str:
    """Markdown table of the PU runs: c, the c / 2 rule's P/R/F1, ROC AUC of 1 - h and of the energy."""
    pu = [r for r in rows if r.get("status", "ok") == "ok" and r.get("c") not in (None, "")]
    if not pu:
        return ""
    lines = ["| data set | method | seeds | c | precision | recall | F1 | ROC AUC of 1 - h | ROC AUC of the energy |",
             "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for (dataset, method) in sorted({(r["dataset"], r["method"]) for r in pu}):
        group = [r for r in pu if (r["dataset"], r["method"]) == (dataset, method)]
        cells = [_stats([float(r[m]) for r in group]) for m in
                 ("c", "precision_threshold", "recall_threshold", "f1_threshold", "roc_auc", "roc_auc_energy")]  # fmt: skip
        lines.append(f"| {dataset} | {method} | {len(group)} | " + " | ".join(cells) + " |")
    return "\nPositive-unlabeled runs (a row is an anomaly iff h < c / 2):\n\n" + "\n".join(lines) + "\n"


# F1 at rho of DAGMM as Zong et al. (2018) report it (section 4, mean of 20 runs, paper protocol)
PAPER_DAGMM_F1 = {"kddcup99": 0.9369, "thyroid": 0.4782, "arrhythmia": 0.4983, "kddcup_rev": 0.9380}


def summarize_matrix(sources: list[tuple[Path, list[dict]]]) -> str:
    """Markdown table of F1 at rho, methods x data sets (mean ± std over seeds), the paper's DAGMM on top
    and each column's best method in bold (positive-unlabeled runs add a row for their c / 2 rule's F1);
    one line per source file says how its runs were made. A method, data set and seed found in two
    sources is an error (a table must not mix two runs)."""
    cells: dict[tuple[str, str], list[float]] = {}
    seen: dict[tuple[str, str, str, str], Path] = {}
    notes = []
    for path, rows in sources:
        ok = [r for r in rows if r.get("status", "ok") == "ok" and r.get("f1_rho") not in (None, "")]
        for r in ok:
            key = (r["method"], r["dataset"], r["protocol"], str(r["seed"]))
            if key in seen and seen[key] != path:
                raise ValueError(f"{key[0]} on {key[1]} seed {key[3]} is in both {seen[key]} and {path}")
            seen[key] = path
            cells.setdefault((r["method"], r["dataset"]), []).append(float(r["f1_rho"]))
            if r.get("c") not in (None, "") and r.get("f1_threshold") not in (None, ""):
                # the positive-unlabeled method's own decision: anomaly iff h < c / 2, no rho involved
                cells.setdefault((r["method"] + " (c/2 rule)", r["dataset"]), []).append(float(r["f1_threshold"]))
        trained = [r for r in ok if str(r.get("epochs", "0")) not in ("", "0")]
        epochs = "/".join(sorted({str(r["epochs"]) for r in trained})) or "-"
        chosen = "checkpoint chosen on validation" if any(r.get("selected_epoch") for r in trained) else "last epoch"
        datasets = ", ".join(sorted({r["dataset"] for r in ok}))
        protocols = ", ".join(sorted({r["protocol"] for r in ok}))
        notes.append(f"- `{path}`: {datasets}; {protocols} protocol; {epochs} epochs, {chosen}")
    datasets = [d for d in PAPER_DAGMM_F1 if any(d == ds for _, ds in cells)]
    datasets += sorted({ds for _, ds in cells} - set(datasets))
    best = {d: max((np.mean(v), m) for (m, ds), v in cells.items() if ds == d)[1] for d in datasets}
    lines = ["| method | " + " | ".join(datasets) + " |", "|---|" + "---|" * len(datasets),
             "| DAGMM, the paper | " + " | ".join(f"{PAPER_DAGMM_F1[d]:.3f}" if d in PAPER_DAGMM_F1 else "" for d in datasets) + " |"]  # fmt: skip
    for method in sorted({m for m, _ in cells}):
        row = []
        for d in datasets:
            values = cells.get((method, d))
            if values is None:
                row.append("")
                continue
            text = _stats(values, digits=3)
            row.append(f"**{text}**" if best[d] == method else text)
        lines.append(f"| {method} | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n\nF1 at each data set's rho on the test rows, mean ± std over seeds; sources:\n\n" + "\n".join(notes) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    """F1 at rho per method (mean ± std over seeds), one panel per data set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if r.get("status", "ok") == "ok" and r.get("f1_rho") not in (None, "")]
    datasets = sorted({f"{r['dataset']} ({r['protocol']})" for r in ok})
    if not datasets:
        return
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.5 * len(datasets), 3.6), squeeze=False)
    for ax, name in zip(axes[0], datasets):
        subset = [r for r in ok if f"{r['dataset']} ({r['protocol']})" == name]
        methods = sorted({r["method"] for r in subset})
        values = [[float(r["f1_rho"]) for r in subset if r["method"] == m] for m in methods]
        ax.bar(range(len(methods)), [np.mean(v) for v in values],
               yerr=[np.std(v, ddof=1) if len(v) > 1 else 0 for v in values], capsize=3, color="tab:blue")  # fmt: skip
        ax.set_xticks(range(len(methods)), methods, rotation=35, ha="right", fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_title(name, fontsize=9)
        ax.set_ylabel("F1 at rho (test rows)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_reports(csv_path: Path) -> None:
    rows = read_rows(csv_path)
    percentiles = "\nPrecision / recall / **F1** at the top p % of scores (mean over seeds):\n\n" + summarize_percentiles(rows)
    csv_path.with_suffix(".md").write_text(summarize(rows) + percentiles + summarize_positive_unlabeled(rows))
    plot(rows, csv_path.with_suffix(".png"))


# --- command line ---------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="dagmm benchmark", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--configs", nargs="+", help="model configs (one method each)")
    parser.add_argument("--report", type=Path, nargs="+", metavar="CSV",
                        help="only rewrite the table and figure of these results files")
    parser.add_argument("--matrix", type=Path, nargs="+", metavar="CSV",
                        help="write <out>.md: F1 at rho, methods x data sets, from these results files")
    parser.add_argument("--data", nargs="*", default=[None], help="data configs composed with each model config")
    parser.add_argument("--seeds", default="0-2", help="e.g. 0-4 or 0,3,7")
    parser.add_argument("--protocol", default="paper", choices=["paper", "reimplementation"])
    parser.add_argument("--epochs", type=int, default=None, help="override the configs' max_epochs")
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel (processes)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per run (default: cores / jobs)")
    parser.add_argument("--baselines", action="store_true", help="add IsolationForest and GaussianMixture rows")
    parser.add_argument("--recon-inference", action="store_true",
                        help="also score energy-inference models with energy+reconstruction (same weights)")
    parser.add_argument("--select-on", choices=SELECTABLE, default=None,
                        help="test the checkpoint with the best validation value of this metric (val rows only)")
    parser.add_argument("--val-every", type=int, default=5, help="epochs between validations with --select-on")
    parser.add_argument("--out", type=Path, help="results path without suffix")
    parser.add_argument("--tag", default="",
                        help="appended to every method name, so that runs with other --set values share a CSV")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a `dagmm fit` option for every run, e.g. --set data.data_dir=../shared/data")
    args = parser.parse_args(argv)
    if args.report:
        for path in args.report:
            write_reports(path)
            print(f"wrote {path.with_suffix('.md')}, {path.with_suffix('.png')}")
        return
    if args.matrix:
        if args.out is None:
            parser.error("--matrix needs --out")
        table = summarize_matrix([(path, read_rows(path)) for path in args.matrix])
        args.out.with_suffix(".md").write_text(table)
        print(f"wrote {args.out.with_suffix('.md')}")
        return
    if not args.configs or args.out is None:
        parser.error("--configs and --out are required (or --report CSV ...)")
    csv_path = args.out.with_suffix(".csv")
    extra: tuple[str, ...] = ()
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set takes KEY=VALUE, got {item!r}")
        extra += (f"--{key.lstrip('-')}", value)
    threads = args.threads or max(1, (os.cpu_count() or 1) // max(args.jobs, 1))
    done = {(r["method"], r["configs"], r["protocol"], int(r["seed"])) for r in read_rows(csv_path)}
    jobs, skipped = [], 0
    for config in args.configs:
        for data in args.data:
            configs = (config,) if data is None else (config, data)
            for seed in parse_seeds(args.seeds):
                # the shallow rows once per data set and seed, with the first model config's split
                baselines = args.baselines and config == args.configs[0]
                job = Job(configs, seed, args.protocol, args.epochs, extra, baselines,
                          args.recon_inference, threads, args.select_on, args.val_every, tag=args.tag)  # fmt: skip
                if (job.method, " ".join(configs), args.protocol, seed) in done:
                    skipped += 1
                else:
                    jobs.append(job)
    print(f"{len(jobs)} runs to do, {skipped} already in {csv_path}", flush=True)
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=max(args.jobs, 1), mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(run_job, job): job for job in jobs}
        for i, future in enumerate(as_completed(futures), 1):
            job = futures[future]
            rows = future.result()
            append_rows(csv_path, rows)
            main_row = rows[0]
            f1 = main_row.get("f1_rho")
            summary = f"F1@rho {f1:.4f}, ROC AUC {main_row['roc_auc']:.4f}" if isinstance(f1, float) else main_row["status"]
            elapsed = time.perf_counter() - started
            print(f"[{i}/{len(jobs)}] {job.method} {' '.join(job.configs[1:])} seed {job.seed}: {summary} "
                  f"({main_row.get('seconds')} s; {elapsed / 60:.1f} min elapsed)", flush=True)  # fmt: skip
    write_reports(csv_path)
    print(f"wrote {csv_path}, {csv_path.with_suffix('.md')}, {csv_path.with_suffix('.png')}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
