"""``DAGMMDetector()``'s defaults on the first rows of ``text_heavy_table.py``'s table, with the latent
capped or not, beside IsolationForest, GaussianMixture and k-NN: does a latent narrower than 99 % of the
variance lose the anomalies there?

    python benchmarks/text_heavy_probe.py --rows 100000 --work /tmp/text_heavy --latent-cap none 40 8

The first ``--rows`` rows of the 2,000,000-row table (written if absent), the text columns one-hot
encoded; the development suite's protocol (its README): the normal rows shuffled with seed 0 and split
in half, min-max scaled on the training half, the test rows the other half plus every anomaly; ROC AUC
of the test rows. A cap N makes the sizing take min(N, the latent for 99 % of the variance), as a cap in
``sizing.network_sizes`` would (the row-count cap and everything else as in the defaults).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from text_heavy_table import write_table  # this folder's script

import dagmm_lightning.sizing as sizing
from dagmm_lightning import DAGMMDetector
from dagmm_lightning.benchmark.suite import baseline_scores


def split(rows: int, work: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    frame = pd.read_csv(write_table(2_000_000, work), nrows=rows)
    labels = frame.pop("label").to_numpy()
    x = pd.get_dummies(frame, columns=[c for c in frame.columns if c.startswith("text")]).to_numpy(float)
    normal = np.random.default_rng(0).permutation(np.flatnonzero(labels == 0))
    train, test = normal[: len(normal) // 2], np.r_[normal[len(normal) // 2 :], np.flatnonzero(labels == 1)]
    low, span = x[train].min(0), x[train].max(0) - x[train].min(0)
    x = (x - low) / np.where(span > 0, span, 1.0)
    return x[train], x[test], labels[test]


def capped(latent_size, limit: int | None):
    """``latent_size`` (``sizing.latent_size``), at most ``limit`` (None: as it is)."""

    def size(*args, **kwargs) -> int:
        wanted = latent_size(*args, **kwargs)
        return wanted if limit is None else min(wanted, limit)

    return size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/text_heavy"))
    parser.add_argument("--latent-cap", nargs="+", default=["none"], help="caps to try; none: no cap")
    parser.add_argument("--baselines", action="store_true", help="also IsolationForest, GaussianMixture, k-NN")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    x_train, x_test, y_test = split(args.rows, args.work)
    uncapped = sizing.latent_size
    for cap in args.latent_cap:
        sizing.latent_size = capped(uncapped, None if cap == "none" else int(cap))
        start = time.perf_counter()
        detector = DAGMMDetector(random_state=0).fit(x_train)
        auc = roc_auc_score(y_test, detector.decision_function(x_test))
        hp = detector.model_.hparams
        shown = dict(method="dagmm_detector", latent_cap=cap, latent=hp.latent_dim, fit_components=hp.fit_components)
        print(json.dumps(shown | {"roc_auc": round(auc, 4), "seconds": round(time.perf_counter() - start)}), flush=True)
    sizing.latent_size = uncapped
    for name in ("isolation_forest", "gaussian_mixture", "knn") if args.baselines else ():
        auc = roc_auc_score(y_test, baseline_scores(name, x_train, x_test, 0))
        print(json.dumps({"method": name, "roc_auc": round(auc, 4)}), flush=True)


if __name__ == "__main__":
    main()
