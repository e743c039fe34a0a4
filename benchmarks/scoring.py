"""Scoring speed and memory of ``DAGMMDetector.decision_function`` on a large float32 array.

    python benchmarks/scoring.py --rows 1000000 --features 118

A detector with the paper's KDDCUP99 networks (118-60-30-10-1, estimation 3-10-4, K = 4; one model unless
``--members``) is fitted for one
epoch on 20,000 random rows (scoring cost does not depend on how well it is trained), then scores ``--rows``
random rows. Reports rows per second (wall time of the call, median of ``--repeats``) and the peak resident
memory during the call above its level before (Linux: VmHWM, reset through /proc/self/clear_refs).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from dagmm_lightning import DAGMMDetector


def resident_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=118)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--members", type=int, default=1, help="models in the detector's ensemble")
    parser.add_argument("--n-jobs", type=int, default=-1, help="the detector's n_jobs (-1: every core's thread)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    sizes = dict(hidden_dims=(60, 30, 10), latent_dim=1, n_components=4, members=args.members)
    detector = DAGMMDetector(epochs=1, random_state=0, n_jobs=args.n_jobs, **sizes)
    detector.fit(rng.random((20_000, args.features), dtype=np.float32))
    x = rng.random((args.rows, args.features), dtype=np.float32)
    seconds, peaks = [], []
    for _ in range(args.repeats):
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak to the current resident size
        before = resident_kib("VmRSS")
        start = time.perf_counter()
        scores = detector.decision_function(x)
        seconds.append(time.perf_counter() - start)
        peaks.append((resident_kib("VmHWM") - before) / 1024)
    assert scores.shape == (args.rows,) and np.isfinite(scores).all()
    median = statistics.median(seconds)
    print(f"torch threads {detector._threads()}; {args.rows:,} x {args.features} float32 rows")
    print(f"decision_function: {median:.3f} s median of {args.repeats} -> {args.rows / median / 1e6:.2f} M rows/s")
    print(
        f"peak resident memory above the level before the call: {max(peaks):.0f} MiB "
        f"(the input itself: {x.nbytes / 2**20:.0f} MiB)"
    )


if __name__ == "__main__":
    main()
