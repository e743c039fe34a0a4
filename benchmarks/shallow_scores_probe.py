"""Diagnostic (reads the test labels, chooses nothing): how far a density, distance or reconstruction score
on the scaled inputs gets on Thyroid and Arrhythmia, where IsolationForest leads. The paper protocol's
splits (`AnomalyDataModule`, the same seeds as `dagmm benchmark`), F1 at each data set's rho on the test
rows, mean +- std over the seeds; every score is computed on the min-max scaled training rows:

    python benchmarks/shallow_scores_probe.py --seeds 0 1 2 3 4 --out benchmarks/results/shallow_scores_probe.md

- ``isolation_forest``: scikit-learn's defaults (as `dagmm benchmark --baselines`);
- ``gaussian_mixture_k``: full covariances, k components, ``reg_covar`` 1e-6 (the benchmark's, K = 4);
- ``gaussian_mixture_diag_k``: diagonal covariances, ``reg_covar`` 1e-4;
- ``laplace_diag``: one product of Laplace marginals (median, mean absolute deviation): the L1 energy of a
  one-component Laplacian mixture on the inputs themselves;
- ``cauchy_diag``: one product of Cauchy marginals (the same centre and spread): the sum over features of
  log(1 + deviation^2), a heavy-tailed density in which one far feature counts little more than a near one;
- ``*_pca_axes``, ``*_random_axes``: the same two on the inputs turned to their principal axes, or by a
  random rotation (seeded): what they keep when the features they see are a rotation of the inputs, as an
  autoencoder's code is;
- ``knn_5``, ``lof_20``: distance to the 5th nearest training row; LOF of 20 neighbours;
- ``pca_k_error``: squared error of a k-component PCA reconstruction (a linear autoencoder);
- ``quantile_gaussian_mixture_4``: four full components (``reg_covar`` 1e-4) after a per-feature quantile
  transform to a normal (heavy tails pulled in);
- ``hbos_20``: the sum over features of minus the log of a 20-bin histogram density;
- ``cauchy_inputs_pca_k_gm4_plus_error``: a linear DAGMM on heavy-tail-compressed inputs: each feature's
  deviation d (the centre and spread of ``cauchy_diag``) becomes sign(d) sqrt(log(1 + d^2)) (so that the
  squared norm of a row is ``cauchy_diag``), a k-component PCA is the code, the score is the energy of four
  full components fitted on the codes plus the squared reconstruction error over its training mean.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import LocalOutlierFactor, NearestNeighbors
from sklearn.preprocessing import QuantileTransformer

from dagmm_lightning.benchmark.report import markdown_table
from dagmm_lightning.callbacks.metrics import anomaly_metrics
from dagmm_lightning.data.datamodule import AnomalyDataModule


def histogram_score(train: np.ndarray, test: np.ndarray, bins: int) -> np.ndarray:
    """HBOS: minus the summed log histogram densities (a value outside the training range has density 0)."""
    score = np.zeros(len(test))
    for j in range(train.shape[1]):
        low, high = train[:, j].min(), train[:, j].max()
        if high <= low:
            continue
        density, edges = np.histogram(train[:, j], bins=bins, range=(low, high), density=True)
        index = np.clip(np.searchsorted(edges, test[:, j], side="right") - 1, 0, bins - 1)
        inside = (test[:, j] >= low) & (test[:, j] <= high)
        score -= np.log(np.where(inside, density[index], 0.0) + 1e-3)
    return score


def scores(train: np.ndarray, test: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Anomaly scores (higher = more anomalous) of the test rows, each method fitted on the training rows."""
    out = {"isolation_forest": -IsolationForest(random_state=seed).fit(train).score_samples(test)}
    for k in (1, 4):
        mixture = GaussianMixture(k, covariance_type="full", reg_covar=1e-6, random_state=seed)
        out[f"gaussian_mixture_{k}"] = -mixture.fit(train).score_samples(test)
    mixture = GaussianMixture(4, covariance_type="diag", reg_covar=1e-4, random_state=seed)
    out["gaussian_mixture_diag_4"] = -mixture.fit(train).score_samples(test)
    centre = train.mean(axis=0)
    random_axes = np.linalg.qr(np.random.default_rng(seed).normal(size=(train.shape[1],) * 2))[0]
    rotations = {"": None, "_pca_axes": np.linalg.eigh(np.cov(train.T))[1], "_random_axes": random_axes}
    for suffix, axes in rotations.items():
        a, b = (train, test) if axes is None else ((train - centre) @ axes, (test - centre) @ axes)
        median = np.median(a, axis=0)
        deviation = np.abs(b - median) / (np.abs(a - median).mean(axis=0) + 1e-4)
        out[f"laplace_diag{suffix}"] = deviation.sum(axis=1)
        out[f"cauchy_diag{suffix}"] = np.log1p(deviation**2).sum(axis=1)
    out["knn_5"] = NearestNeighbors(n_neighbors=5).fit(train).kneighbors(test)[0][:, -1]
    out["lof_20"] = -LocalOutlierFactor(n_neighbors=20, novelty=True).fit(train).score_samples(test)
    for k in (2, 5):
        pca = PCA(k, random_state=seed).fit(train)
        out[f"pca_{k}_error"] = ((test - pca.inverse_transform(pca.transform(test))) ** 2).sum(axis=1)
    quantile = QuantileTransformer(output_distribution="normal", n_quantiles=min(1000, len(train)), random_state=0)
    quantile.fit(train)
    mixture = GaussianMixture(4, covariance_type="full", reg_covar=1e-4, random_state=seed)
    out["quantile_gaussian_mixture_4"] = -mixture.fit(quantile.transform(train)).score_samples(quantile.transform(test))
    out["hbos_20"] = histogram_score(train, test, 20)
    median = np.median(train, axis=0)
    spread = np.abs(train - median).mean(axis=0) + 1e-4
    compressed = [np.sign(d) * np.sqrt(np.log1p(d**2)) for d in ((train - median) / spread, (test - median) / spread)]
    for k in (1, 2):
        pca = PCA(k, random_state=seed).fit(compressed[0])
        codes, errors = [], []
        for rows in compressed:
            codes.append(pca.transform(rows))
            errors.append(((rows - pca.inverse_transform(codes[-1])) ** 2).sum(axis=1))
        mixture = GaussianMixture(4, covariance_type="full", reg_covar=1e-6, random_state=seed).fit(codes[0])
        energy = -mixture.score_samples(codes[1])
        out[f"cauchy_inputs_pca_{k}_gm4_plus_error"] = energy + errors[1] / errors[0].mean()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["thyroid", "arrhythmia"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--out", type=Path, default=None, help="write the markdown table here")
    args = parser.parse_args()
    f1: dict[tuple[str, str], list[float]] = {}
    for dataset in args.datasets:
        for seed in args.seeds:
            data = AnomalyDataModule(dataset=dataset, protocol="paper", seed=seed)
            data.setup("fit")
            (train, _), (test, labels) = data.arrays("train"), data.arrays("test")
            for name, score in scores(np.asarray(train, np.float64), np.asarray(test, np.float64), seed).items():
                metrics = anomaly_metrics(score, labels, [data.rho], None, None, data.rho)
                f1.setdefault((name, dataset), []).append(float(metrics["f1_rho"]))
    methods = list(dict.fromkeys(name for name, _ in f1))
    cells = [
        [name, *(f"{np.mean(f1[name, d]):.3f} ± {np.std(f1[name, d], ddof=1):.3f}" for d in args.datasets)]
        for name in methods
    ]
    seeds = ", ".join(map(str, args.seeds))
    caption = f"F1 at rho on the test rows (paper protocol), mean ± std over seeds {seeds}."
    table = markdown_table(["score", *args.datasets], cells) + f"\n{caption}\n"
    print(table)
    if args.out is not None:
        args.out.write_text(table)


if __name__ == "__main__":
    main()
