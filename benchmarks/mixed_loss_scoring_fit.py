"""Which training-set fit the ``mixed_loss`` detector should score with: the network's own (the paper's)
or the re-seeded, EM-refined fit of more components (the label-free default's until a0a56df, and
``configs/improved.yaml``'s: ``RESEEDED_FIT``).

Protocol (ours, for this question only): each table's rows split in halves, stratified by the truth
(scikit-learn's ``train_test_split``, ``random_state`` = seed); on the training half a third of the
anomalies are labelled (y = 1, drawn with ``numpy.random.default_rng(seed)``), the rest of them stay
among the training rows unlabelled (y = 0), as a user's labels would leave them; ROC AUC and average
precision of ``decision_function`` on the other half. Three detectors per seed, ``contamination=0.05``,
``random_state`` = seed, the detector's defaults otherwise: ``dagmm`` (no labels) and ``mixed_loss`` with
the re-seeded fit (``RESEEDED_FIT``), ``mixed_loss`` with the network's fit.

    python benchmarks/mixed_loss_scoring_fit.py --tables thyroid 6_cardio 23_mammography 29_Pima \
        --suite ../shared/data/dev --seeds 0 1 2 --threads 1

``thyroid`` is the project's ``data/thyroid.npz``; other names are ``--suite`` tables (``X``, ``y``).
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import train_test_split

from dagmm_lightning import DAGMMDetector

ROOT = Path(__file__).resolve().parents[1]
NETWORK_FIT = {"fit_components": None, "em_steps": 0, "em_reseed": 0, "fit_rows": None}
RESEEDED_FIT = {"fit_components": "auto", "em_steps": 10, "em_reseed": 0.05, "fit_rows": 2**16}
SETTINGS = {  # name: (variant, model_kwargs)
    "dagmm": ("dagmm", dict(RESEEDED_FIT)),
    "mixed_loss, scoring fit": ("mixed_loss", dict(RESEEDED_FIT)),
    "mixed_loss, network's fit": ("mixed_loss", NETWORK_FIT),
}


def table(name: str, suite: Path | None) -> tuple[np.ndarray, np.ndarray]:
    path = ROOT / "data/thyroid.npz" if name == "thyroid" else (suite or Path(".")) / f"{name}.npz"
    arrays = np.load(path)
    return arrays["X"].astype(float), arrays["y"].ravel().astype(int)


def run(name: str, x: np.ndarray, y: np.ndarray, seed: int, threads: int) -> list[dict]:
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.5, stratify=y, random_state=seed)
    labels = np.zeros(len(x_train))
    anomalies = np.flatnonzero(y_train == 1)
    labels[np.random.default_rng(seed).choice(anomalies, max(1, len(anomalies) // 3), replace=False)] = 1
    rows = []
    for setting, (variant, kwargs) in SETTINGS.items():
        start = time.perf_counter()
        detector = DAGMMDetector(
            variant=variant, contamination=0.05, random_state=seed, model_kwargs=kwargs, n_jobs=threads
        )
        detector.fit(x_train, labels if variant == "mixed_loss" else None)
        scores = detector.decision_function(x_test)
        rows.append(
            dict(
                table=name,
                seed=seed,
                setting=setting,
                roc_auc=roc_auc_score(y_test, scores),
                average_precision=average_precision_score(y_test, scores),
                seconds=time.perf_counter() - start,
            )
        )
        print(f"{name} seed {seed} {setting}: ROC AUC {rows[-1]['roc_auc']:.3f}", flush=True)
    return rows


def report(rows: list[dict]) -> str:
    lines = ["| table | " + " | ".join(SETTINGS) + " |", "|---|" + "---|" * len(SETTINGS)]
    for name in dict.fromkeys(r["table"] for r in rows):
        cells = []
        for setting in SETTINGS:
            mine = [r for r in rows if r["table"] == name and r["setting"] == setting]
            auc, ap = np.mean([r["roc_auc"] for r in mine]), np.mean([r["average_precision"] for r in mine])
            cells.append(f"{auc:.3f} / {ap:.3f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", nargs="+", default=["thyroid"])
    parser.add_argument("--suite", type=Path, default=None, help="folder of the other tables' .npz files")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")  # the detector's notes on the data (constant columns, ...) are not the point
    rows = []
    for name in args.tables:
        x, y = table(name, args.suite)
        for seed in args.seeds:
            rows += run(name, x, y, seed, args.threads)
    print("\nmean ROC AUC / average precision over the seeds on the test halves\n")
    print(report(rows))


if __name__ == "__main__":
    main()
