"""An ensemble whose members alternate between the two families: member m is Gaussian for even m,
Laplacian for odd m (five members: three Gaussian, two Laplacian).

Each family wins on tables where the other loses (BENCHMARKS.md, "Both mixture families in one
ensemble"); averaging their z-scored energies keeps most of each family's gains. Both families share the
first pass of the M-step (weights and means); in the second pass each member sums its own family's
spread only, and each member's energy uses its own family's parameters only.
"""

from __future__ import annotations

import torch

from dagmm_lightning.errors import ConfigurationError
from dagmm_lightning.mixture.base import MixtureDtype, deviations, row_deviations
from dagmm_lightning.mixture.gaussian import (
    GaussianMixtureEnergy,
    gaussian_log_prob_of_deviations,
    gaussian_one_sided_deviations,
)
from dagmm_lightning.mixture.laplace import LaplaceMixtureEnergy, laplace_log_prob_of_deviations

GAUSSIAN_MEMBERS, LAPLACE_MEMBERS = slice(0, None, 2), slice(1, None, 2)


def placed(value: torch.Tensor, members: slice, count: int) -> torch.Tensor:
    """``value`` (M_family, ...) at the ``members`` rows of zeros (count, ...). Differentiable."""
    full = value.new_zeros((count, *value.shape[1:]))
    full[members] = value
    return full


class MixedFamilyEnergy(GaussianMixtureEnergy, LaplaceMixtureEnergy):
    """Members 0, 2, 4, ... Gaussian (full covariances), members 1, 3, ... Laplacian (per-dimension scales).

    Buffers: the Gaussian's ``weights``, ``means``, ``covariances``, ``scale_tril`` and the Laplacian's
    ``scales``, each with the leading members axis (M, ...); a member's energy and penalty read only its
    own family's (the other family's entries hold jitter * I or jitter, unread). Needs ``members`` >= 2.
    """

    parameter_names = (*GaussianMixtureEnergy.parameter_names, "scales")

    def __init__(
        self, n_components: int, dim: int, jitter: float = 1e-6, dtype: MixtureDtype = "float64", members: int = 1
    ) -> None:
        self.check_members(members)
        super().__init__(n_components=n_components, dim=dim, jitter=jitter, dtype=dtype, members=members)

    @classmethod
    def check_members(cls, members: int) -> None:
        if members < 2:
            raise ConfigurationError(
                f"mixture 'gaussian+laplace' alternates the family over an ensemble's members: it needs "
                f"members >= 2, got {members}"
            )

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        return GaussianMixtureEnergy.parameter_shapes(self) | LaplaceMixtureEnergy.parameter_shapes(self)

    def spread_shapes(self) -> dict[str, tuple[int, ...]]:
        return GaussianMixtureEnergy.spread_shapes(self) | LaplaceMixtureEnergy.spread_shapes(self)

    def statistics(
        self, z: torch.Tensor, gamma: torch.Tensor, pass_index: int, params: dict
    ) -> dict[str, torch.Tensor]:
        if pass_index == 0:
            return super().statistics(z, gamma, pass_index, params)
        # the deviations of each family's members only (as in component_log_prob)
        g, lap = GAUSSIAN_MEMBERS, LAPLACE_MEMBERS
        scatter = GaussianMixtureEnergy.spread_statistics(self, *deviations(z[g], gamma[g], params["means"][g]))
        absolute = LaplaceMixtureEnergy.spread_statistics(self, *deviations(z[lap], gamma[lap], params["means"][lap]))
        return self._placed_spread(scatter["scatter"], absolute["absolute"])

    def spread_statistics(self, gamma: torch.Tensor, diff: torch.Tensor) -> dict[str, torch.Tensor]:
        # each family's sums over its own members only; the other members' entries stay 0
        g, lap = GAUSSIAN_MEMBERS, LAPLACE_MEMBERS
        scatter = GaussianMixtureEnergy.spread_statistics(self, gamma[g], diff[g])["scatter"]
        absolute = LaplaceMixtureEnergy.spread_statistics(self, gamma[lap], diff[lap])["absolute"]
        return self._placed_spread(scatter, absolute)

    def _placed_spread(self, scatter: torch.Tensor, absolute: torch.Tensor) -> dict[str, torch.Tensor]:
        return {
            "scatter": placed(scatter, GAUSSIAN_MEMBERS, self.members),
            "absolute": placed(absolute, LAPLACE_MEMBERS, self.members),
        }

    def spread_m_step(self, stats: dict[str, torch.Tensor], mass: torch.Tensor) -> dict[str, torch.Tensor]:
        # from the zero sums of the other family's members: jitter * I covariances, jitter scales (unread)
        gaussian = GaussianMixtureEnergy.spread_m_step(self, stats, mass)
        return gaussian | LaplaceMixtureEnergy.spread_m_step(self, stats, mass)

    def component_log_prob(
        self, z: torch.Tensor, params: dict[str, torch.Tensor], one_sided_last: bool = False
    ) -> torch.Tensor:
        # each family's deviations from its own members' rows: slicing the (M, K, D, N) deviations instead
        # would cost their size again in the backward pass (zeros, then a copy)
        g, lap = GAUSSIAN_MEMBERS, LAPLACE_MEMBERS
        means, scale_tril, scales = params["means"], params["scale_tril"][g], params["scales"][lap]
        gaussian, laplace = row_deviations(z[g], means[g]), row_deviations(z[lap], means[lap])
        if one_sided_last:
            gaussian = gaussian_one_sided_deviations(gaussian, scale_tril)
            laplace = LaplaceMixtureEnergy.one_sided_deviations(self, laplace, {})
        return self._joined(
            gaussian_log_prob_of_deviations(gaussian, scale_tril), laplace_log_prob_of_deviations(laplace, scales)
        )

    def one_sided_deviations(self, diff: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        g, lap = GAUSSIAN_MEMBERS, LAPLACE_MEMBERS
        raised = diff.clone()
        raised[g] = gaussian_one_sided_deviations(diff[g], params["scale_tril"][g])
        raised[lap] = LaplaceMixtureEnergy.one_sided_deviations(self, diff[lap], {})
        return raised

    def log_prob_of_deviations(self, diff: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        g, lap = GAUSSIAN_MEMBERS, LAPLACE_MEMBERS
        gaussian = gaussian_log_prob_of_deviations(diff[g], params["scale_tril"][g])  # (M_g, K, N)
        laplace = laplace_log_prob_of_deviations(diff[lap], params["scales"][lap])  # (M_l, K, N)
        return self._joined(gaussian, laplace)

    def _joined(self, gaussian: torch.Tensor, laplace: torch.Tensor) -> torch.Tensor:
        """Both families' log p_k (M_g, K, N) and (M_l, K, N) at their members' places: (M, K, N)."""
        log_prob = placed(gaussian, GAUSSIAN_MEMBERS, self.members)
        log_prob[LAPLACE_MEMBERS] = laplace
        return log_prob

    def recentred_spread(
        self, stats: dict[str, torch.Tensor], mass: torch.Tensor, shift: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        g = GAUSSIAN_MEMBERS  # the Laplacian members' scatter stays 0 (unread)
        gaussian = GaussianMixtureEnergy.recentred_spread(self, {"scatter": stats["scatter"][g]}, mass[g], shift[g])
        return {"scatter": placed(gaussian["scatter"], g, len(mass)), "absolute": stats["absolute"]}

    def penalty(self, params: dict[str, torch.Tensor], dims: slice | None = None) -> torch.Tensor:
        dims = dims if dims is not None else slice(None)
        g, lap = GAUSSIAN_MEMBERS, LAPLACE_MEMBERS
        variances = params["covariances"][g].diagonal(dim1=-2, dim2=-1)[..., dims]
        return variances.reciprocal().sum() + params["scales"][lap][..., dims].reciprocal().sum()
