"""How many new rows at the centre of the training data ``DAGMMDetector`` flags, with the log reconstruction
error (a mixture feature) read one-sided by the score (``one_sided_error``, the default) and both ways:

    python benchmarks/centre_rows.py --threads 1

Two tables (numpy, seed 0): 2,000 rows of 8 correlated Gaussian features (x = N(0, I) A, A of standard
normal entries), the detector's defaults (``random_state=0``); 300 rows of 3 standard normal features, a
short fit (``epochs=20, members=1, random_state=2``). New rows: 500 at distances uniform in [0, 0.5] from the
centre (random directions), and the training rows moved 4x away from the centre (far rows). A row counts
as flagged above ``threshold_`` (contamination 0.1).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from dagmm_lightning import DAGMMDetector


def tables() -> dict[str, tuple[np.ndarray, dict]]:
    rng = np.random.default_rng(0)
    mixing = rng.normal(size=(8, 8))
    correlated = rng.normal(size=(2000, 8)) @ mixing
    small = np.random.default_rng(0).normal(size=(300, 3))
    return {
        "8 correlated features, 2,000 rows, defaults": (correlated, dict(random_state=0)),
        "3 features, 300 rows, epochs=20 members=1": (small, dict(epochs=20, members=1, random_state=2)),
    }


def centre_rows(x: np.ndarray, n: int = 500) -> np.ndarray:
    rng = np.random.default_rng(1)
    directions = rng.normal(size=(n, x.shape[1]))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    return x.mean(0) + directions * rng.uniform(0, 0.5, (n, 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print("| table | error read | centre rows flagged | far rows flagged | X's rows flagged | seconds |")
    print("|---|---|---|---|---|---|")
    for name, (x, settings) in tables().items():
        for one_sided in (True, False):
            start = time.perf_counter()
            detector = DAGMMDetector(**settings, model_kwargs={"one_sided_error": one_sided}).fit(x)
            centre = detector.predict(centre_rows(x)).mean()
            far = detector.predict(x.mean(0) + 4 * (x - x.mean(0))).mean()
            seconds = time.perf_counter() - start
            read = "one-sided" if one_sided else "both ways"
            print(f"| {name} | {read} | {centre:.3f} | {far:.3f} | {detector.labels_.mean():.3f} | {seconds:.0f} |")


if __name__ == "__main__":
    main()
