"""Diagnostic (reads the test labels, chooses nothing): the improved DAGMM trained with its 4 components,
scored by a training-set fit with 4 x S components: each network component's rows (by their largest
membership) split by k-means into S, then EM steps (``MixtureEnergy.refine``). Compare with training the
network itself with 32 components (``benchmarks/components_probe.py --set model.init_args.n_components=null``),
which costs 2.3x per training step (``benchmarks/mixture_cost_probe.py``):

    OMP_NUM_THREADS=1 python benchmarks/split_components_probe.py --seed 3 --split 8 --steps 0 10 30
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.metrics import roc_auc_score

from dagmm_lightning.benchmark.runner import Job, _cli_args
from dagmm_lightning.cli import build_cli
from dagmm_lightning.labels import LABELLED_ANOMALY
from dagmm_lightning.mixture import build_mixture


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--split", type=int, default=8)
    parser.add_argument("--steps", type=int, nargs="+", default=[0, 10, 30])
    args = parser.parse_args()
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    job = Job(("configs/improved.yaml", "configs/data/kddcup99.yaml"), args.seed, "paper", None, (), False, False, 2)
    cli = build_cli(_cli_args(job), run=False, save_config=False)
    dm, model, trainer = cli.datamodule, cli.model, cli.trainer
    start = time.perf_counter()
    trainer.fit(model, datamodule=dm)
    print("training s", round(time.perf_counter() - start, 1), flush=True)
    x_train, train_labels = dm.arrays("train")
    x_train = x_train[train_labels != LABELLED_ANOMALY]
    x_test, y_test = dm.arrays("test")
    y_test = np.asarray(y_test).astype(bool)
    rho = dm.rho / 100 if dm.rho > 1 else dm.rho

    @torch.no_grad()
    def outputs(x):
        model.eval()
        outs = [model.model(model.model.as_input(torch.as_tensor(x[i : i + 8192]))) for i in range(0, len(x), 8192)]
        return torch.cat([o.rows for o in outs], -2).double(), torch.cat([o.gamma for o in outs], -2).double()

    def f1_at_rho(score):  # the paper protocol: the top rho of the test rows' scores flagged
        flagged = score > np.quantile(score, 1 - rho)
        return 2 * (flagged & y_test).sum() / (flagged.sum() + y_test.sum())

    rows, gamma = outputs(x_train)
    rows_test, _ = outputs(x_test)
    members, n_rows, dim = rows.shape
    k, s = gamma.shape[-1], args.split
    largest = gamma.argmax(-1).numpy()
    labels = np.zeros((members, n_rows), dtype=int)
    for m in range(members):
        for component in range(k):
            index = np.where(largest[m] == component)[0]
            if len(index):
                kmeans = KMeans(min(s, len(index)), n_init=1, random_state=0).fit(rows[m, index].numpy())
                labels[m, index] = component * s + kmeans.labels_
    split = torch.nn.functional.one_hot(torch.as_tensor(labels), k * s).double()
    mixture = build_mixture(model.hparams.mixture, k * s, dim, model.hparams.jitter, "float64", members=members)
    mixture.fit([(rows, split)])
    batches = [rows[:, i : i + 4096] for i in range(0, n_rows, 4096)]
    done = 0
    for steps in sorted(args.steps):
        start = time.perf_counter()
        mixture.refine(batches, steps - done)
        done = steps
        e_train, e_test = mixture.energy(rows).numpy(), mixture.energy(rows_test).numpy()
        z = (e_test - e_train.mean(-1, keepdims=True)) / e_train.std(-1, keepdims=True)
        combined = z.mean(0)
        print(
            f"K = {k * s}, EM steps {steps:3d}: F1 at rho {f1_at_rho(combined):.3f}  ROC AUC "
            f"{roc_auc_score(y_test, combined):.3f}  members' F1 {' '.join(f'{f1_at_rho(v):.3f}' for v in z)}  "
            f"({time.perf_counter() - start:.1f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
