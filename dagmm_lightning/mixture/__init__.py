"""The one place for mixture math: statistics, M-step, energy, penalty, for each family."""

from typing import Literal

from dagmm_lightning.errors import check_choice
from dagmm_lightning.mixture.base import MixtureDtype, MixtureEnergy, SufficientStatistics
from dagmm_lightning.mixture.gaussian import GaussianMixtureEnergy, cholesky_with_jitter, gaussian_log_prob
from dagmm_lightning.mixture.laplace import LaplaceMixtureEnergy, laplace_log_prob

MixtureFamily = Literal["gaussian", "laplace"]
MIXTURE_FAMILIES: dict[str, type[MixtureEnergy]] = {"gaussian": GaussianMixtureEnergy, "laplace": LaplaceMixtureEnergy}


def build_mixture(
    family: MixtureFamily, n_components: int, dim: int, jitter: float, dtype: MixtureDtype
) -> MixtureEnergy:
    """The mixture of ``family`` over rows of size ``dim``."""
    check_choice("mixture", family, MixtureFamily)
    return MIXTURE_FAMILIES[family](n_components=n_components, dim=dim, jitter=jitter, dtype=dtype)
