"""What more mixture components cost at KDDCUP99's sizes (a probe, no data read): one EM step of the
training-set fit (``MixtureEnergy.refine``) over 178,671 random rows of five members' 13-dimensional mixture
rows with 32 components, in batches of 256 as the fit keeps them; then one training step of the improved
DAGMM (118 inputs, latent 10, five members, both families, batches of 256) with 4 and with 32 components.

    python benchmarks/mixture_cost_probe.py --threads 2
"""

from __future__ import annotations

import argparse
import time

import torch

from dagmm_lightning.mixture import build_mixture
from dagmm_lightning.models import DAGMM


def em_step_seconds(rows: int = 178_671, members: int = 5, dim: int = 13, components: int = 32) -> float:
    generator = torch.Generator().manual_seed(0)
    centres = torch.randn(components, dim, generator=generator) * 3
    picks = torch.randint(components, (members, rows), generator=generator)
    z = (centres[picks] + 0.5 * torch.randn(members, rows, dim, generator=generator)).float()
    gamma = torch.softmax(torch.randn(members, rows, components, generator=generator), -1)
    batches = [(z[:, i : i + 256], gamma[:, i : i + 256]) for i in range(0, rows, 256)]
    mixture = build_mixture("gaussian+laplace", components, dim, 1e-4, "float64", members=members)
    mixture.fit(batches)
    start = time.perf_counter()
    mixture.refine([rows for rows, _ in batches], 1)
    return time.perf_counter() - start


def training_step_ms(components: int, steps: int = 50) -> float:
    torch.manual_seed(0)
    model = DAGMM(
        input_dim=118, hidden_dims=(64, 32), latent_dim=10, n_components=components, mixture="gaussian+laplace",
        members=5, lambda_cov=0.0, energy_trains_compression=False, jitter=1e-4, error_feature=True,
    )  # fmt: skip
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.rand(256, 118), torch.zeros(256)

    def step():
        loss, _ = model._loss(x, y, None)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for _ in range(5):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    torch.set_num_threads(parser.parse_args().threads)
    print(f"one EM step, 5 members x 178,671 rows, K = 32: {em_step_seconds():.2f} s", flush=True)
    for components in (4, 32):
        print(f"one training step, K = {components}: {training_step_ms(components):.1f} ms", flush=True)


if __name__ == "__main__":
    main()
