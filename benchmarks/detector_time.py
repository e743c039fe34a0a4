"""Seconds of one ``DAGMMDetector`` fit and score on a development table (seed 0's split of the suite's
protocol), with its defaults or other settings: for same-hour comparisons on a machine whose speed varies.

    python benchmarks/detector_time.py --suite ../shared/data/dev --table 14_glass
    python benchmarks/detector_time.py --suite ../shared/data/dev --table 14_glass \
        --detector '{"model_kwargs": {"fit_components": "auto", "em_reseed": 0.05, "em_steps": 10}}'
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import joblib
import numpy as np
from sklearn.metrics import roc_auc_score

from dagmm_lightning.benchmark.suite import detector_scores, one_class_split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", type=Path, required=True, help="folder of the .npz tables")
    parser.add_argument("--table", required=True, help="e.g. 14_glass")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="the detector's threads (default: its n_jobs, 1)")
    parser.add_argument("--detector", type=json.loads, default={}, help="DAGMMDetector settings (JSON)")
    args = parser.parse_args()
    table = np.load(args.suite / f"{args.table}.npz")
    x_train, x_test, y_test = one_class_split(table["X"], table["y"], args.seed)
    start = time.perf_counter()
    with joblib.parallel_config(n_jobs=args.threads):  # the detector's n_jobs None reads it
        scores = detector_scores(args.detector, x_train, x_test, args.seed)
    seconds = time.perf_counter() - start
    print(
        f"{args.table} seed {args.seed}: {seconds:.1f} s, ROC AUC {roc_auc_score(y_test, scores):.4f}, {args.detector}"
    )


if __name__ == "__main__":
    main()
