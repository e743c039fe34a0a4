"""Diagnostic (reads the test labels, chooses nothing): how many components the improved DAGMM needs on a
paper data set, and what EM refinement of its training-set fit does. One seed of the benchmark's run
(`dagmm benchmark --configs configs/improved.yaml --data configs/data/kddcup99.yaml`, paper protocol,
the same CLI arguments), then the test rows' F1 at rho and ROC AUC of the fit after 0, 1, 3 and 10 EM
steps (`MixtureEnergy.refine`), for the whole ensemble and for each member's z-scored energy:

    python benchmarks/components_probe.py --seed 0
    python benchmarks/components_probe.py --seed 0 --set model.init_args.n_components=32

The network's memberships per component (member 0) show how many components the estimation network uses.
With ``--split S`` the fit has S times the network's components instead: each network component's rows
(by their largest membership) split into S by k-means, the fit's start for the EM steps (a network trained
with few components, cheap, scored by a fit with many):

    python benchmarks/components_probe.py --seed 0 --split 8 --steps 0 10

``--reseed 0.05`` re-seeds the empty components (``MixtureEnergy.reseed_empty``) before the EM steps.
``--fit-components 32`` gives the fit 32 components over the network's (``DAGMM(fit_components=32)``): the
extra start empty, for ``--reseed`` to place:

    python benchmarks/components_probe.py --seed 3 --fit-components 32 --reseed 0.05 --steps 0 10 30

``--save rows.pt`` keeps the training and test mixture rows, the network's memberships and the test labels
for analysis without training again.
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


def split_memberships(rows: torch.Tensor, gamma: torch.Tensor, split: int) -> torch.Tensor:
    """One-hot memberships (M, N, K * split): each component's rows (largest gamma) split by k-means."""
    members, n_rows, _ = rows.shape
    k = gamma.shape[-1]
    largest = gamma.argmax(-1).numpy()
    labels = np.zeros((members, n_rows), dtype=int)
    for m in range(members):
        for component in range(k):
            index = np.where(largest[m] == component)[0]
            if len(index):
                kmeans = KMeans(min(split, len(index)), n_init=1, random_state=0).fit(rows[m, index].numpy())
                labels[m, index] = component * split + kmeans.labels_
    return torch.nn.functional.one_hot(torch.as_tensor(labels), k * split).double()


def energy_in_batches(mixture, rows: torch.Tensor) -> np.ndarray:
    """The fit's energy of rows (M, N, D) 8,192 at a time (all at once would hold (M, K, D, N) deviations)."""
    return torch.cat([mixture.energy(rows[..., i : i + 8192, :]) for i in range(0, rows.shape[-2], 8192)], -1).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default="configs/data/kddcup99.yaml")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--steps", type=int, nargs="+", default=[0, 1, 3, 10])
    parser.add_argument("--split", type=int, default=0, help="S > 0: the fit's components = S x the network's")
    parser.add_argument("--reseed", type=float, default=0.0, help="re-seed empty components from this fraction")
    parser.add_argument("--fit-components", type=int, default=0, help="K > 0: the fit's components (extra empty)")
    parser.add_argument("--save", default=None, help="a .pt file for the mixture rows, memberships and labels")
    args = parser.parse_args()
    if args.fit_components and not args.reseed:
        parser.error("--fit-components: the extra components start empty; only --reseed gives them rows")
    extra = tuple(a for item in args.set for a in ("--" + item.partition("=")[0], item.partition("=")[2]))
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    job = Job(("configs/improved.yaml", args.data), args.seed, "paper", None, extra, False, False, 2)
    cli = build_cli(_cli_args(job), run=False, save_config=False)
    dm, model, trainer = cli.datamodule, cli.model, cli.trainer
    start = time.perf_counter()
    trainer.fit(model, datamodule=dm)
    print(f"training {time.perf_counter() - start:.1f} s", flush=True)
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

    rows_train, gamma = outputs(x_train)
    rows_test, _ = outputs(x_test)
    if args.save:
        torch.save({"rows_train": rows_train, "gamma": gamma, "rows_test": rows_test, "y_test": y_test}, args.save)
    print("mixture rows", tuple(rows_train.shape), "K", model.hparams.n_components, flush=True)
    print("network memberships, member 0, % per component:", (gamma[0].mean(0) * 100).round().tolist())
    mixture = model.model.mixture
    if args.split or args.fit_components:
        gamma = split_memberships(rows_train, gamma, args.split) if args.split else gamma
        hp, k = model.hparams, max(gamma.shape[-1], args.fit_components)
        mixture = build_mixture(hp.mixture, k, rows_train.shape[-1], hp.jitter, "float64", hp.members)
    mixture.fit([(rows_train, gamma)])
    batches = [rows_train[..., i : i + 4096, :] for i in range(0, rows_train.shape[-2], 4096)]
    if args.reseed:
        print("components re-seeded per member:", mixture.reseed_empty(batches, args.reseed).tolist())
    done = 0
    for steps in sorted(args.steps):
        start = time.perf_counter()
        mixture.refine(batches, steps - done)
        seconds, done = time.perf_counter() - start, steps
        e_train, e_test = (energy_in_batches(mixture, rows) for rows in (rows_train, rows_test))
        z = (e_test - e_train.mean(-1, keepdims=True)) / e_train.std(-1, keepdims=True)
        combined = z.mean(0) if z.ndim == 2 else z
        members = " ".join(f"{f1_at_rho(s):.3f}" for s in z) if z.ndim == 2 else ""
        print(
            f"K {mixture.n_components}, EM steps {steps:3d}: train energy {e_train.mean():.3f}  F1 at rho "
            f"{f1_at_rho(combined):.3f}  ROC AUC {roc_auc_score(y_test, combined):.3f}  members' F1 {members}  "
            f"({seconds:.1f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
