"""Where the VAE and VQ-VAE variants lose to the autoencoder: per development-suite table (its protocol,
one seed), the test ROC AUC of ``DAGMMDetector`` with one member (``members=1, mixture="gaussian"``),
``variant="vae"`` and ``variant="vqvae"``, each model's training rows' median relative reconstruction
distance ||x - x'|| / ||x||, the ROC AUC of that distance alone on the test rows (below 0.5: the anomalies
are reconstructed better than the normal rows), and the latent dimensions the VAE keeps alive (the spread
of the posterior mean over the training rows above its mean posterior standard deviation):

    python benchmarks/variant_reconstruction.py ../shared/data/dev --seed 0 [--tables 44_Wilt,6_cardio]

Diagnostic only: the labels are read for the report, nothing is chosen from them. One torch thread a model.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from dagmm_lightning import DAGMMDetector
from dagmm_lightning.benchmark.suite import one_class_split, read_table, table_order

MODELS = {
    "autoencoder": dict(members=1, mixture="gaussian"),
    "vae": dict(variant="vae"),
    "vqvae": dict(variant="vqvae"),
}


def relative_distance(detector: DAGMMDetector, x: np.ndarray) -> np.ndarray:
    """||x - x'|| / ||x|| of each row (N,), on the rows as the model sees them (encoded and scaled)."""
    model = detector.model_.eval().model
    rows = torch.cat(list(detector._chunks(x))).double()
    with torch.no_grad():
        out = model(model.as_input(rows), memberships=False)
    distance = out.rows[..., out.z.shape[-1]]  # the first reconstruction feature, after z
    return distance.reshape(-1, len(x))[0].numpy()  # (the first member's, for an ensemble)


def live_dimensions(detector: DAGMMDetector, x: np.ndarray) -> tuple[int, int]:
    """The VAE's latent dimensions whose posterior means spread more over the rows than its posterior
    standard deviation, and its latent size."""
    network = detector.model_.eval().model.compression
    rows = torch.cat(list(detector._chunks(x))).float()
    with torch.no_grad():
        mean, log_var = network.encoder(rows).split(network.latent_dim, dim=1)
    alive = mean.std(0) > (0.5 * log_var).exp().mean(0)
    return int(alive.sum()), network.latent_dim


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("suite", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tables", default="", help="comma-separated table names (default: every .npz file)")
    args = parser.parse_args()
    names = args.tables.split(",") if args.tables else [p.stem for p in args.suite.glob("*.npz")]
    print("| table | model | ROC AUC | median relative distance (training rows) | distance's ROC AUC | live dims |")
    print("|---|---|---|---|---|---|")
    for name in sorted(names, key=table_order):
        x, y = read_table(args.suite / f"{name}.npz")
        x_train, x_test, y_test = one_class_split(x, y, args.seed)
        for model, settings in MODELS.items():
            detector = DAGMMDetector(random_state=args.seed, n_jobs=1, **settings).fit(x_train)
            auc = roc_auc_score(y_test, detector.decision_function(x_test))
            distance_auc = roc_auc_score(y_test, relative_distance(detector, x_test))
            median = np.median(relative_distance(detector, x_train))
            live = "{} of {}".format(*live_dimensions(detector, x_train)) if model == "vae" else ""
            print(f"| {name} | {model} | {auc:.3f} | {median:.4f} | {distance_auc:.3f} | {live} |", flush=True)


if __name__ == "__main__":
    main()
