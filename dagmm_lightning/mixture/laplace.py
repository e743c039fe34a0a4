"""Laplacian mixture energy (the seed's "Laplacian Mixture Models" slide): per-dimension scales.

Parameters from memberships follow the seed: location = weighted mean, scale = weighted mean absolute
deviation around it. This is not the Laplace maximum-likelihood fit (its location is the weighted
median, which has no mergeable sufficient statistics); it is what the seed uses, and it makes the
training-set fit exact with two passes over the rows: pass 0 sums gamma and gamma z (locations), pass 1
sums gamma |z - mu_k| around the final locations (scales). Both passes are summed over DDP ranks.
"""

from __future__ import annotations

import torch

from dagmm_lightning.mixture.base import MixtureEnergy, SufficientStatistics, memberships_check


def laplace_log_prob(z: torch.Tensor, means: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """sum_j log Laplace(z_ij | mu_kj, b_kj): z (N, D), means and scales (K, D) -> (N, K)."""
    deviation = (z.unsqueeze(1) - means.unsqueeze(0)).abs() / scales.unsqueeze(0)  # (N, K, D)
    return -(deviation + torch.log(2.0 * scales).unsqueeze(0)).sum(-1)


class LaplaceMixtureEnergy(MixtureEnergy):
    """K products of independent Laplace distributions; penalty sum_k sum_j 1 / b_kj against vanishing
    scales (the counterpart of the Gaussian's covariance-diagonal penalty).

    Buffers: ``weights`` (K,), ``means`` (K, D), ``scales`` (K, D) with the jitter included.
    """

    parameter_names = ("weights", "means", "scales")
    fit_passes = 2

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        k, d = self.n_components, self.dim
        return {"weights": (k,), "means": (k, d), "scales": (k, d)}

    def batch_parameters(self, z: torch.Tensor, gamma: torch.Tensor) -> dict[str, torch.Tensor]:
        memberships_check(z, gamma, self.n_components)
        with torch.autocast(device_type=z.device.type, enabled=False):
            z, gamma = self.cast(z), self.cast(gamma)
            mass = gamma.sum(0)
            safe_mass = mass.clamp_min(torch.finfo(self.dtype).tiny).unsqueeze(1)
            means = gamma.T @ z / safe_mass
            deviation = (z.unsqueeze(1) - means.unsqueeze(0)).abs()  # (N, K, D)
            scales = torch.einsum("nk,nkd->kd", gamma, deviation) / safe_mass + self.jitter
            return {"weights": mass / z.shape[0], "means": means, "scales": scales}

    def component_log_prob(self, z: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        return laplace_log_prob(z, params["means"], params["scales"])

    def penalty(self, params: dict[str, torch.Tensor], dims: slice | None = None) -> torch.Tensor:
        return params["scales"][:, dims if dims is not None else slice(None)].reciprocal().sum()

    def new_statistics(self, pass_index: int) -> SufficientStatistics:
        k, d = self.n_components, self.dim
        if pass_index == 0:
            return SufficientStatistics(rows=(), mass=(k,), first=(k, d))
        return SufficientStatistics(absolute=(k, d))

    def accumulate(self, stats: SufficientStatistics, pass_index: int, z: torch.Tensor, gamma: torch.Tensor) -> None:
        memberships_check(z, gamma, self.n_components)
        z, gamma = z.detach().double(), gamma.detach().double()
        if pass_index == 0:
            stats.add(
                rows=torch.tensor(float(z.shape[0]), dtype=torch.float64, device=z.device),
                mass=gamma.sum(0),
                first=gamma.T @ z,
            )
        else:
            deviation = (z.unsqueeze(1) - self.means.double().unsqueeze(0)).abs()
            stats.add(absolute=torch.einsum("nk,nkd->kd", gamma, deviation))

    def finish_pass(self, stats: SufficientStatistics, pass_index: int) -> None:
        if pass_index == 0:
            if float(stats["rows"]) == 0:
                raise ValueError("cannot fit the mixture on zero training rows")
            self._mass = stats["mass"].clamp_min(torch.finfo(torch.float64).tiny)
            self.store(weights=stats["mass"] / stats["rows"], means=stats["first"] / self._mass.unsqueeze(1))
            self.is_fitted.fill_(False)  # scales are not known until pass 1
        else:
            self.store(scales=stats["absolute"] / self._mass.unsqueeze(1) + self.jitter)
            self.is_fitted.fill_(True)

