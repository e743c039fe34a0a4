"""Seconds of one training-set fit (``DAGMMModel.fit``: the mixture that scores, and the score calibration)
of the improved config's ensemble on a paper data set's training rows, with and without the scoring fit's
re-seeding and EM steps. The weights are untrained (the cost does not depend on them):

    python benchmarks/scoring_fit_cost.py --dataset kddcup_rev --threads 2
"""

from __future__ import annotations

import argparse
import time

import torch

from dagmm_lightning.data.datamodule import AnomalyDataModule
from dagmm_lightning.models import DAGMM

IMPROVED = dict(
    hidden_dims=None, latent_dim=None, n_components=4, mixture="gaussian+laplace", lambda_cov=0.0, jitter=1e-4,
    energy_trains_compression=False, error_feature=True, members=5, contamination=0.2,
)  # fmt: skip
FITS = {
    "the network's K, no EM": {},
    "fit_components auto, re-seeding only": dict(fit_components="auto", em_reseed=0.05),
    "the default: re-seeding + 10 EM steps": dict(fit_components="auto", em_reseed=0.05, em_steps=10),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="kddcup_rev")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = AnomalyDataModule(dataset=args.dataset, protocol="paper", seed=0)
    data.setup("fit")
    batches = [batch[0] for batch in data.refit_dataloader()]
    for name, settings in FITS.items():
        torch.manual_seed(0)
        model = DAGMM(data.input_dim, **IMPROVED, **settings)
        model.size_from_data(data)
        start = time.perf_counter()
        model.model.fit(batches)
        seconds = time.perf_counter() - start
        rows, k = sum(len(x) for x in batches), model.model.mixture.n_components
        print(f"{args.dataset}: {name}: {seconds:.1f} s ({rows} rows, {k} components, {args.threads} threads)")


if __name__ == "__main__":
    main()
