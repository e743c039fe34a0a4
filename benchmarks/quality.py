"""Quality benchmark: fit a config for several seeds, test on the protocol's test rows, and score an
IsolationForest on the very same splits. Resumable: runs already in the CSV are skipped.

    python benchmarks/quality.py --config configs/dagmm.yaml --protocol paper --seeds 0 1 2 \
        --out benchmarks/results/kddcup99_paper.csv
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.ensemble import IsolationForest

from dagmm_lightning.callbacks import AnomalyMetrics
from dagmm_lightning.cli import build_cli

PERCENTILES = [10, 20, 30, 40, 50, 60]
FIELDS = ["method", "config", "protocol", "seed", "epochs", "seconds", "final_loss", "roc_auc", "average_precision",
          "precision_rho", "recall_rho", "f1_rho",
          *[f"{m}_top{p}" for p in PERCENTILES for m in ("precision", "recall", "f1")]]


def done_runs(path: Path) -> set[tuple[str, str, int]]:
    if not path.exists():
        return set()
    with path.open() as f:
        return {(r["method"], r["protocol"], int(r["seed"])) for r in csv.DictReader(f)}


def append(path: Path, row: dict) -> None:
    new = not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        if new:
            writer.writeheader()
        writer.writerow(row)


def rho_metrics(metrics: dict, rho: float) -> dict:
    """The CSV's metric columns: ranking metrics, P/R/F1 at the data set's rho and at PERCENTILES."""
    name = f"{rho:g}"
    row = {"roc_auc": metrics["roc_auc"], "average_precision": metrics["average_precision"],
           "precision_rho": metrics[f"precision_top{name}"], "recall_rho": metrics[f"recall_top{name}"],
           "f1_rho": metrics[f"f1_top{name}"]}
    row.update({k: metrics[k] for k in FIELDS if k in metrics and k not in row})
    return row


def run_dagmm(config: str, protocol: str, seed: int, epochs: int, extra: list[str]) -> tuple[dict, float, float]:
    args = ["--config", config, "--seed_everything", str(seed), "--data.protocol", protocol,
            "--trainer.max_epochs", str(epochs), "--trainer.limit_val_batches", "0",
            "--checkpoint.save_top_k", "0", "--trainer.enable_progress_bar", "false",
            "--trainer.logger", "false", *extra]
    cli = build_cli(args, run=False)
    start = time.perf_counter()
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    seconds = time.perf_counter() - start
    loss = float(cli.trainer.callback_metrics.get("train/loss", float("nan")))
    cli.trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)
    metrics_cb = next(c for c in cli.trainer.callbacks if isinstance(c, AnomalyMetrics))
    return rho_metrics(metrics_cb.last_metrics["test"], cli.datamodule.rho), seconds, loss


def run_isolation_forest(config: str, protocol: str, seed: int) -> tuple[dict, float]:
    cli = build_cli(["--config", config, "--seed_everything", str(seed), "--data.protocol", protocol,
                     "--trainer.logger", "false"], run=False)
    dm = cli.datamodule
    dm.setup("fit")
    x_train, _ = dm.arrays("train")
    x_test, y_test = dm.arrays("test")
    start = time.perf_counter()
    forest = IsolationForest(random_state=seed, n_jobs=1).fit(x_train)
    seconds = time.perf_counter() - start
    scores = -forest.score_samples(x_test)
    reference = np.concatenate([-forest.score_samples(x_train), scores]) if protocol == "reimplementation" else None
    metrics = AnomalyMetrics().compute(scores, y_test, sorted({*PERCENTILES, dm.rho}), None, reference)
    return rho_metrics(metrics, dm.rho), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/dagmm.yaml")
    parser.add_argument("--protocol", default="paper", choices=["paper", "reimplementation"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("extra", nargs="*", help="more CLI overrides, after --")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    done = done_runs(args.out)
    method = Path(args.config).stem
    for seed in args.seeds:
        base = {"config": args.config, "protocol": args.protocol, "seed": seed}
        if not args.no_baseline and ("isolation_forest", args.protocol, seed) not in done:
            metrics, seconds = run_isolation_forest(args.config, args.protocol, seed)
            append(args.out, {**base, "method": "isolation_forest", "epochs": 0, "seconds": f"{seconds:.1f}",
                              "final_loss": "", **{k: f"{v:.4f}" for k, v in metrics.items()}})
        if (method, args.protocol, seed) not in done:
            metrics, seconds, loss = run_dagmm(args.config, args.protocol, seed, args.epochs, args.extra)
            append(args.out, {**base, "method": method, "epochs": args.epochs, "seconds": f"{seconds:.1f}",
                              "final_loss": f"{loss:.4f}", **{k: f"{v:.4f}" for k, v in metrics.items()}})
        print(f"done: {method} {args.protocol} seed {seed}", flush=True)


if __name__ == "__main__":
    main()
