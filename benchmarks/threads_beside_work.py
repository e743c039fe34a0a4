"""Seconds of a ``DAGMMDetector`` fit with 1 torch thread and with one per core, on an idle machine and
beside other work (processes that keep cores busy, as a second job or a notebook would): why ``n_jobs``
None means 1 thread.

    python benchmarks/threads_beside_work.py --busy 1

Random normal rows (fixed seed), each case ``ROWSxFEATURES:EPOCHS``; the networks sized from the rows (the
detector's defaults), one model (``members=1``: the ensemble's cost scales alike). Each fit runs in this
process, one at a time; ``--busy`` processes spin in pure Python beside the second half of the fits.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time
import warnings

import numpy as np

from dagmm_lightning import DAGMMDetector


def spin() -> None:
    while True:
        pass


def fit_seconds(rows: int, features: int, epochs: int, n_jobs: int) -> float:
    x = np.random.default_rng(0).normal(size=(rows, features))
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        DAGMMDetector(epochs=epochs, members=1, n_jobs=n_jobs, random_state=0).fit(x)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="+", default=["3000x6:80", "20000x16:4", "50000x100:1"])
    parser.add_argument("--busy", type=int, default=1, help="spinning processes beside the second round")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    cases = [(*map(int, size.split("x")), int(epochs)) for size, epochs in (c.split(":") for c in args.cases)]
    seconds: dict[tuple, float] = {}
    for load in ("idle", "busy"):
        spinners = []
        if load == "busy":
            spinners = [multiprocessing.Process(target=spin, daemon=True) for _ in range(args.busy)]
            for process in spinners:
                process.start()
            time.sleep(1.0)
        try:
            for rows, features, epochs in cases:
                for n_jobs in (1, -1):
                    seconds[(rows, features, epochs, load, n_jobs)] = fit_seconds(rows, features, epochs, n_jobs)
                    print(
                        f"{rows}x{features}, {epochs} epochs, {load}, n_jobs {n_jobs}: "
                        f"{seconds[(rows, features, epochs, load, n_jobs)]:.1f} s",
                        flush=True,
                    )
        finally:
            for process in spinners:
                process.terminate()
    print(f"\n{cores} cores; busy: {args.busy} spinning process(es)\n")
    print("| rows x features, epochs | idle: 1 thread | idle: every core | busy: 1 thread | busy: every core |")
    print("|---|---|---|---|---|")
    for rows, features, epochs in cases:
        cells = [f"{seconds[(rows, features, epochs, load, j)]:.1f} s" for load in ("idle", "busy") for j in (1, -1)]
        print(f"| {rows:,} x {features}, {epochs} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
