"""The one place for mixture math: statistics, M-step, energy, penalty, for each family."""

from typing import Literal

from dagmm_lightning.errors import check_choice
from dagmm_lightning.mixture.base import (
    MixtureDtype,
    MixtureEnergy,
    SufficientStatistics,
    padded_memberships,
    reseedable_components,
)
from dagmm_lightning.mixture.gaussian import GaussianMixtureEnergy, cholesky_with_jitter
from dagmm_lightning.mixture.laplace import LaplaceMixtureEnergy
from dagmm_lightning.mixture.mixed import MixedFamilyEnergy

MixtureFamily = Literal["gaussian", "laplace", "gaussian+laplace"]
MIXTURE_FAMILIES: dict[str, type[MixtureEnergy]] = {
    "gaussian": GaussianMixtureEnergy,
    "laplace": LaplaceMixtureEnergy,
    "gaussian+laplace": MixedFamilyEnergy,
}


def check_family(family: MixtureFamily, members: int) -> None:
    """``family`` one of ``MixtureFamily``, for ``members`` at once (a model's arguments, checked before
    any data is read)."""
    check_choice("mixture", family, MixtureFamily)
    MIXTURE_FAMILIES[family].check_members(members)


def build_mixture(
    family: MixtureFamily, n_components: int, dim: int, jitter: float, dtype: MixtureDtype, members: int = 1
) -> MixtureEnergy:
    """The mixture of ``family`` over rows of size ``dim`` (``members`` > 1: that many at once)."""
    check_family(family, members)
    family_class = MIXTURE_FAMILIES[family]
    return family_class(n_components=n_components, dim=dim, jitter=jitter, dtype=dtype, members=members)
