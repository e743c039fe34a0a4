"""Diagnostic: anomalies among the rows a detector is fitted on, scattered or grouped. 400 rows, 5
features, standard normal; rows 0-9 replaced by anomalies of three kinds (each seeded):

- ``scattered``: uniform in [-6, 6] on every feature;
- ``shifted``: standard normal + 6 on every feature (a group as spread as the normal rows);
- ``tight group``: normal with standard deviation 0.3 around 4 on every feature (near-copies).

Each detector is fitted twice, on all 400 rows (anomalies included, as ``fit(X)`` on unlabelled data) and
on the 390 normal rows only, and scores all 400 rows; ROC AUC of the anomalies against the normal rows:

    python benchmarks/contaminated_training.py --seeds 0 1 2 --out benchmarks/results/contaminated_training.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import NearestNeighbors

from dagmm_lightning import DAGMMDetector
from dagmm_lightning.benchmark.report import markdown_table

N, D, ANOMALIES = 400, 5, 10


def rows(kind: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, D))
    if kind == "scattered":
        x[:ANOMALIES] = rng.uniform(-6, 6, size=(ANOMALIES, D))
    elif kind == "shifted":
        x[:ANOMALIES] += 6
    else:
        x[:ANOMALIES] = 4 + 0.3 * rng.normal(size=(ANOMALIES, D))
    return x


def knn_distance(train: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Distance to the 5th nearest training row other than the row itself."""
    distances = NearestNeighbors(n_neighbors=6).fit(train).kneighbors(x)[0]
    itself = distances[:, 0] == 0
    return np.where(itself, distances[:, 5], distances[:, 4])


def scores(train: np.ndarray, x: np.ndarray, seed: int, threads: int) -> dict[str, np.ndarray]:
    return {
        "DAGMMDetector()": DAGMMDetector(random_state=seed, n_jobs=threads).fit(train).decision_function(x),
        "GaussianMixture(4)": -GaussianMixture(4, random_state=seed).fit(train).score_samples(x),
        "k-NN (5th)": knn_distance(train, x),
        "IsolationForest": -IsolationForest(random_state=seed).fit(train).score_samples(x),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=2, help="the detector's threads (its n_jobs)")
    parser.add_argument("--out", type=Path, default=None, help="write the markdown table here")
    args = parser.parse_args()
    labels = np.r_[np.ones(ANOMALIES), np.zeros(N - ANOMALIES)]
    auc: dict[tuple[str, str, str], list[float]] = {}
    for kind in ("scattered", "shifted", "tight group"):
        for seed in args.seeds:
            x = rows(kind, seed)
            for fitted_on, train in (("all rows", x), ("normal rows", x[ANOMALIES:])):
                for method, score in scores(train, x, seed, args.threads).items():
                    auc.setdefault((kind, fitted_on, method), []).append(roc_auc_score(labels, score))
                print(kind, seed, fitted_on, flush=True)
    methods = list(dict.fromkeys(method for _, _, method in auc))
    cases = dict.fromkeys((kind, fitted_on) for kind, fitted_on, _ in auc)
    cells = [[*case, *(f"{np.mean(auc[(*case, m)]):.3f}" for m in methods)] for case in cases]
    seeds = ", ".join(map(str, args.seeds))
    caption = f"ROC AUC of the 10 anomalies among 400 rows, mean over seeds {seeds}."
    table = markdown_table(["anomalies", "fitted on", *methods], cells) + f"\n{caption}\n"
    print(table)
    if args.out is not None:
        args.out.write_text(table)


if __name__ == "__main__":
    main()
