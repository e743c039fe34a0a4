"""Laplacian mixture energy (the study's "Laplacian Mixture Models" slide): per-dimension scales.

Parameters from memberships follow the study: location = weighted mean, scale = weighted mean absolute
deviation around it. This is not the Laplace maximum-likelihood fit (its location is the weighted
median, which has no mergeable sufficient statistics); it is what the study uses, and it makes the
training-set fit exact with two passes over the rows: pass 0 sums gamma and gamma z (locations), pass 1
sums gamma |z - mu_k| around the final locations (scales).
"""

from __future__ import annotations

import torch

from dagmm_lightning.mixture.base import MixtureEnergy


def laplace_log_prob_of_deviations(diff: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """sum_j log Laplace(z_ij | mu_kj, b_kj) from diff = z_i - mu_k (..., K, D, N), scales (..., K, D)
    -> (..., K, N)."""
    deviation = diff.abs() / scales.unsqueeze(-1)  # (..., K, D, N)
    return -(deviation.sum(-2) + torch.log(2.0 * scales).sum(-1, keepdim=True))


class LaplaceMixtureEnergy(MixtureEnergy):
    """K products of independent Laplace distributions; penalty sum_k sum_j 1 / b_kj against vanishing
    scales (the counterpart of the Gaussian's covariance-diagonal penalty).

    Buffers: ``weights`` (K,), ``means`` (K, D), ``scales`` (K, D) with the jitter included.
    """

    parameter_names = ("weights", "means", "scales")

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        k, d = self.n_components, self.dim
        return {"weights": (k,), "means": (k, d), "scales": (k, d)}

    def spread_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"absolute": (self.n_components, self.dim)}

    def spread_statistics(self, gamma: torch.Tensor, diff: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"absolute": torch.einsum("...nk,...nkd->...kd", gamma, diff.abs())}

    def spread_m_step(self, stats: dict[str, torch.Tensor], mass: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"scales": self._parameter(stats["absolute"] / mass.unsqueeze(-1) + self.jitter)}

    def log_prob_of_deviations(self, diff: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        return laplace_log_prob_of_deviations(diff, params["scales"])

    def recentred_spread(
        self, stats: dict[str, torch.Tensor], mass: torch.Tensor, shift: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        # absolute deviations do not recentre: the EM step keeps those around the old means (same fixed points)
        return {"absolute": stats["absolute"]}

    def penalty(self, params: dict[str, torch.Tensor], dims: slice | None = None) -> torch.Tensor:
        return params["scales"][..., dims if dims is not None else slice(None)].reciprocal().sum()
