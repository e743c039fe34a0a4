"""How many new rows like the training rows ``DAGMMDetector.predict`` flags, against ``contamination``,
with the threshold set on the training rows' own scores (``calibration_fraction`` 0, the default) and on
held-out rows (``calibration_fraction`` > 0):

    python benchmarks/threshold_calibration.py --rows 1000 --features 10 --fractions 0 0.1 0.2

Training rows and new rows are drawn from the same standard normal distribution (numpy, seed 0), so a
calibrated threshold flags about ``contamination`` of the new rows.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from dagmm_lightning import DAGMMDetector


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--features", type=int, default=10)
    parser.add_argument("--new-rows", type=int, default=20000)
    parser.add_argument("--contamination", type=float, default=0.05)
    parser.add_argument("--members", type=int, default=None, help="the detector's members (default: its own)")
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.0, 0.1, 0.2])
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    train = rng.normal(size=(args.rows, args.features))
    new = rng.normal(size=(args.new_rows, args.features))
    print("| calibration_fraction | new rows flagged | X's rows flagged (labels_) | seconds |\n|---|---|---|---|")
    for fraction in args.fractions:
        start = time.perf_counter()
        settings = dict(contamination=args.contamination, members=args.members, random_state=0)
        detector = DAGMMDetector(**settings, calibration_fraction=fraction).fit(train)
        flagged = detector.predict(new).mean()
        seconds = time.perf_counter() - start
        print(f"| {fraction:g} | {flagged:.3f} | {detector.labels_.mean():.3f} | {seconds:.0f} |", flush=True)
    print(f"\ncontamination {args.contamination}; {args.rows:,} training rows x {args.features} features")


if __name__ == "__main__":
    main()
