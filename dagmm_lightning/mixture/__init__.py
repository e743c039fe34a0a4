"""The one place for mixture math: parameters from memberships, energy, penalty, training-set fit."""

from dagmm_lightning.mixture.base import MixtureEnergy, SufficientStatistics
from dagmm_lightning.mixture.gaussian import GaussianMixtureEnergy, cholesky_with_jitter, gaussian_log_prob
from dagmm_lightning.mixture.laplace import LaplaceMixtureEnergy, laplace_log_prob

MIXTURE_FAMILIES: dict[str, type[MixtureEnergy]] = {"gaussian": GaussianMixtureEnergy, "laplace": LaplaceMixtureEnergy}


def build_mixture(family: str, n_components: int, dim: int, jitter: float, dtype: str) -> MixtureEnergy:
    """The mixture of ``family`` (one of ``MIXTURE_FAMILIES``) over rows of size ``dim``."""
    if family not in MIXTURE_FAMILIES:
        raise ValueError(f"mixture must be one of {sorted(MIXTURE_FAMILIES)}, got {family!r}")
    return MIXTURE_FAMILIES[family](n_components=n_components, dim=dim, jitter=jitter, dtype=dtype)


__all__ = [
    "MIXTURE_FAMILIES",
    "GaussianMixtureEnergy",
    "LaplaceMixtureEnergy",
    "MixtureEnergy",
    "SufficientStatistics",
    "build_mixture",
    "cholesky_with_jitter",
    "gaussian_log_prob",
    "laplace_log_prob",
]
