"""Probes that chose the improved DAGMM's defaults (BENCHMARKS.md, "Defaults that fit the data").

Each setting is a DAGMMDetector whose sizes follow a label-free rule of the scaled training rows, on
every table of a suite folder (the development suite's protocol, ``benchmark.suite.one_class_split``);
ROC AUC on the test rows, one CSV row per setting, table and seed (resumable), and a table of means:

    python benchmarks/dev_suite_probe.py --suite /tmp/dev10 --seeds 0 \
        --out benchmarks/results/dev_suite_probe_dev10.csv v99_e2e v99_det ...

Rule of every setting: latent = principal components for ``explained`` of the training rows' variance,
hidden widths (h, max(latent, h // 2)) with h = max(2 * latent, min(features, 64)), K = ``k``, batch 256,
jitter 1e-4, epochs = max(100, enough for ``steps`` optimiser steps).
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from dagmm_lightning.benchmark.suite import one_class_split, table_order
from dagmm_lightning.detector import DAGMMDetector
from dagmm_lightning.sizing import latent_cap, latent_size


def setting(
    explained=0.99,
    end_to_end=False,
    lambda_cov=0.005,
    inference="energy+reconstruction",
    k=4,
    steps=0,
    activation="tanh",
    lr=1e-3,
    schedule="constant",
    members=1,
    row_cap=False,
):
    def detector_args(x: np.ndarray) -> dict:
        latent = latent_size(x, explained)
        latent = min(latent, latent_cap(len(x), k)) if row_cap else latent
        width = max(2 * latent, min(x.shape[1], 64))
        epochs = max(100, int(np.ceil(steps / np.ceil(len(x) / 256))))
        model = dict(lr_schedule=schedule, activation=activation, jitter=1e-4, lambda_energy=0.1)
        model |= dict(lambda_cov=lambda_cov, energy_trains_compression=end_to_end)
        return dict(
            lr=lr,
            batch_size=256,
            latent_dim=latent,
            hidden_dims=(width, max(latent, width // 2)),
            n_components=k,
            members=members,
            inference=inference,
            epochs=epochs,
            model_kwargs=model,
        )

    return detector_args


SETTINGS = {
    "v99_e2e": setting(end_to_end=True),
    "v99_det": setting(),
    "v99_det_energy": setting(inference="energy"),
    "v95_det": setting(explained=0.95),
    "v99_det_s3k": setting(steps=3000),
    "s3k_energy": setting(steps=3000, inference="energy"),
    "s3k_lc0": setting(steps=3000, lambda_cov=0.0),
    "lc0_elu": setting(steps=3000, lambda_cov=0.0, activation="elu"),
    "lc0_k8": setting(steps=3000, lambda_cov=0.0, k=8),
    "lc0_v995": setting(steps=3000, lambda_cov=0.0, explained=0.995),
    "lr1e2": setting(steps=3000, lr=1e-2),
    "lc0_lr1e2": setting(steps=3000, lambda_cov=0.0, lr=1e-2),
    "lc0_lr3e3": setting(steps=3000, lambda_cov=0.0, lr=3e-3),
    "lc0_lr1e2_cos": setting(steps=3000, lambda_cov=0.0, lr=1e-2, schedule="cosine"),
    "lc0_lr1e2_s6k_cos": setting(steps=6000, lambda_cov=0.0, lr=1e-2, schedule="cosine"),
    "lc0_lr1e2_s6k_cos_energy": setting(steps=6000, lambda_cov=0.0, lr=1e-2, schedule="cosine", inference="energy"),
    "lc0_lr1e2_s6k_cos_m5": setting(steps=6000, lambda_cov=0.0, lr=1e-2, schedule="cosine", members=5),
    "m5_rowcap": setting(steps=6000, lambda_cov=0.0, lr=1e-2, schedule="cosine", members=5, row_cap=True),
    # the detector's own defaults (which size the networks themselves), with one argument changed
    "defaults_energy": lambda x: dict(inference="energy"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("settings", nargs="+", choices=list(SETTINGS))
    args = parser.parse_args()
    fields = ["setting", "table", "seed", "roc_auc", "seconds"]
    rows = list(csv.DictReader(args.out.open())) if args.out.exists() else []
    done = {(r["setting"], r["table"], int(r["seed"])) for r in rows}
    tables = sorted(args.suite.glob("*.npz"), key=lambda p: table_order(p.stem))
    for name in args.settings:
        for table in tables:
            with np.load(table) as archive:
                x, y = archive["X"].astype(np.float64), archive["y"].ravel()
            for seed in (s for s in args.seeds if (name, table.stem, s) not in done):
                x_train, x_test, y_test = one_class_split(x, y, seed)
                start = time.perf_counter()
                detector = DAGMMDetector(random_state=seed, **SETTINGS[name](x_train)).fit(x_train)
                auc = roc_auc_score(y_test, detector.decision_function(x_test))
                row = dict(setting=name, table=table.stem, seed=seed, roc_auc=f"{auc:.4f}")
                rows.append(row | {"seconds": f"{time.perf_counter() - start:.1f}"})
                with args.out.open("w", newline="") as f:
                    csv.DictWriter(f, fields).writeheader()
                    csv.DictWriter(f, fields).writerows(rows)
                print(name, table.stem, seed, row["roc_auc"], flush=True)
    names = [n for n in SETTINGS if any(r["setting"] == n for r in rows)]
    columns = sorted({r["table"] for r in rows}, key=table_order)
    lines = ["| setting | " + " | ".join(columns) + " | mean |", "|---" * (len(columns) + 2) + "|"]
    for name in names:
        auc = {
            c: np.mean([float(r["roc_auc"]) for r in rows if (r["setting"], r["table"]) == (name, c)]) for c in columns
        }
        cells = " | ".join(f"{auc[c]:.3f}" for c in columns)
        lines.append(f"| `{name}` | {cells} | **{np.mean(list(auc.values())):.3f}** |")
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
