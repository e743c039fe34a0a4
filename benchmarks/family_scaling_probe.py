"""Probe behind the ``gaussian+laplace`` mixture (BENCHMARKS.md, "Both mixture families in one ensemble"):
``DAGMMDetector()`` with its defaults on each table of a suite folder (the development suite's protocol,
``benchmark.suite.one_class_split``), varying only the mixture family and the feature scaling. Scores of
the training and test rows go to ``<out>/<table>_<seed>.npz``; ROC AUC on the test rows is printed.

    python benchmarks/family_scaling_probe.py --suite /tmp/dev10 --seed 0 --mixture gaussian laplace \
        --out /tmp/fsp/a/minmax
    python benchmarks/family_scaling_probe.py --suite /tmp/dev10 --seed 0 --scaling standard --out /tmp/fsp/a/standard
    python benchmarks/family_scaling_probe.py --suite /tmp/dev10 --seed 0 --scaling standard \
        --mixture gaussian+laplace --out /tmp/fsp/b/standard
    python benchmarks/family_scaling_probe.py --suite /tmp/dev10 --seed 0 --scaling standard_floor \
        --mixture gaussian+laplace --out /tmp/fsp/b/standard_floor
    python benchmarks/family_scaling_probe.py --summary /tmp/fsp/a/minmax /tmp/fsp/a/standard /tmp/fsp/b/standard \
        /tmp/fsp/b/standard_floor --out benchmarks/results/family_scaling_probe.md

Given two mixtures, each is its own five-member detector, and the row "(two detectors)" scores with the
sum of the two scores, each z-scored on its training rows; ``gaussian+laplace`` given as one mixture is
the package's one five-member ensemble whose members alternate between the families. ``--scaling
standard`` replaces the package's min-max scaling (fitted on the training rows) by the training rows'
mean and standard deviation, for this probe only (the package has no such option); ``standard_floor``
keeps the divisor at least a tenth of the min-max range (a near-constant column is blown up at most
tenfold against min-max).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from dagmm_lightning.benchmark.suite import one_class_split, table_order
from dagmm_lightning.data.tables import TablePreprocessor
from dagmm_lightning.detector import DAGMMDetector


def standard_scaling(self, encoded_train, floor: float = 0.0):
    """Mean and standard deviation (min-max range where the deviation is 0) instead of min and range; with
    ``floor`` > 0 the divisor is at least that share of the min-max range."""
    spread = encoded_train.max(0) - encoded_train.min(0)
    deviation = np.maximum(encoded_train.std(0), floor * spread)
    self.minimum = encoded_train.mean(0)
    self.range = np.where(deviation > 0, deviation, np.where(spread > 0, spread, 1.0))
    return self


SCALINGS = {"standard": standard_scaling, "standard_floor": lambda self, x: standard_scaling(self, x, floor=0.1)}


def zscored(scores: dict, name: str) -> np.ndarray:
    train = scores[f"{name}_train"]
    return (scores[f"{name}_test"] - train.mean()) / train.std()


def summary(folders: list[Path], out: Path | None) -> None:
    """ROC AUC per table (the mean over the seeds a folder holds) of every setting in ``folders`` (the
    folder's name, then the mixture), and the mean over the tables."""
    rows: dict[str, dict[str, list[float]]] = {}
    for folder in folders:
        for path in sorted(folder.glob("*.npz"), key=lambda p: table_order(p.stem)):
            scores = np.load(path)
            names = sorted(k[: -len("_test")] for k in scores.files if k.endswith("_test"))
            columns = {name: zscored(scores, name) for name in names}
            if len(names) == 2:
                columns["+".join(names) + " (two detectors)"] = columns[names[0]] + columns[names[1]]
            table = path.stem.rsplit("_", 1)[0]
            for name, column in columns.items():
                rows.setdefault(f"{folder.name}: {name}", {}).setdefault(table, []).append(
                    roc_auc_score(scores["y"], column)
                )
    tables = list(next(iter(rows.values())))
    lines = [f"| setting | {' | '.join(tables)} | mean | seeds |", "|---" * (len(tables) + 3) + "|"]
    for name, aucs in rows.items():
        means = [np.mean(aucs[t]) for t in tables]
        values = " | ".join(f"{m:.3f}" for m in means)
        lines.append(f"| `{name}` | {values} | **{np.mean(means):.3f}** | {len(aucs[tables[0]])} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if out is not None:
        out.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mixture", nargs="+", default=["gaussian"])
    parser.add_argument("--scaling", choices=["minmax", "standard", "standard_floor"], default="minmax")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--summary", type=Path, nargs="+", help="folders of earlier runs: their table (to --out)")
    args = parser.parse_args()
    if args.summary:
        return summary(args.summary, args.out)
    if args.scaling != "minmax":
        TablePreprocessor.fit_scaling = SCALINGS[args.scaling]
    args.out.mkdir(parents=True, exist_ok=True)
    for path in sorted(args.suite.glob("*.npz"), key=lambda p: table_order(p.stem)):
        target = args.out / f"{path.stem}_{args.seed}.npz"
        if target.exists():  # resumable
            continue
        table = np.load(path)
        x_train, x_test, y_test = one_class_split(table["X"], table["y"], args.seed)
        scores = {}
        for mixture in args.mixture:
            start = time.time()
            detector = DAGMMDetector(mixture=mixture, random_state=args.seed).fit(x_train)
            scores[f"{mixture}_train"] = detector.decision_scores_
            scores[f"{mixture}_test"] = detector.decision_function(x_test)
            auc = roc_auc_score(y_test, scores[f"{mixture}_test"])
            print(path.stem, mixture, f"{auc:.3f}", f"{time.time() - start:.0f} s", flush=True)
        np.savez(target, y=y_test, **scores)


if __name__ == "__main__":
    main()
