"""Interface shared by every mixture family.

A family turns latent rows ``z`` (N, D) and soft memberships ``gamma`` (N, K) into mixture parameters,
and parameters into a per-row energy ``E(z) = -log sum_k phi_k p_k(z)``. Two fits exist:

* **batch parameters**, differentiable, from one training batch (the DAGMM training objective);
* **the training-set fit**, from sufficient statistics accumulated in float64 over all training rows
  (and summed over DDP ranks), stored in registered buffers so that a checkpoint carries it. A family
  whose fit needs several passes over the rows (Laplace: location first, then scale) says so in
  ``fit_passes``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn

from dagmm_lightning.distributed import all_reduce_sum

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def resolve_dtype(name: str) -> torch.dtype:
    if name not in _DTYPES:
        raise ValueError(f"mixture dtype must be one of {sorted(_DTYPES)}, got {name!r}")
    return _DTYPES[name]


class SufficientStatistics:
    """Named float64 sums over rows: ``add`` per batch, ``all_reduce`` over ranks; any split of the rows
    into batches and ranks gives the sums of one pass."""

    def __init__(self, **shapes: tuple[int, ...]) -> None:
        self.sums = {name: torch.zeros(shape, dtype=torch.float64) for name, shape in shapes.items()}

    def to(self, device: torch.device) -> "SufficientStatistics":
        self.sums = {name: value.to(device) for name, value in self.sums.items()}
        return self

    def add(self, **values: torch.Tensor) -> None:
        for name, value in values.items():
            self.sums[name] += value.detach().to(torch.float64)

    def all_reduce(self) -> "SufficientStatistics":
        for value in self.sums.values():
            all_reduce_sum(value)
        return self

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.sums[name]


class MixtureEnergy(nn.Module, ABC):
    """Base of the mixture families: parameters, energy, degeneracy penalty and the training-set fit.

    Args:
        n_components: K, the number of mixture components.
        dim: D, the size of the rows the mixture sees (latent code plus reconstruction features).
        jitter: added to every variance (covariance diagonal or scale) before it is used.
        dtype: ``"float64"`` or ``"float32"``; the mixture math runs in this type whatever the
            precision of the networks (Cholesky fails in half precision).
    """

    #: names of the parameter tensors, in the order ``parameter_shapes`` gives them
    parameter_names: tuple[str, ...] = ()
    #: number of passes over the training rows that the exact training-set fit needs
    fit_passes: int = 1

    def __init__(self, n_components: int, dim: int, jitter: float = 1e-6, dtype: str = "float64") -> None:
        super().__init__()
        if n_components < 1:
            raise ValueError(f"n_components must be >= 1, got {n_components}")
        if jitter < 0:
            raise ValueError(f"jitter must be >= 0, got {jitter}")
        self.n_components = n_components
        self.dim = dim
        self.jitter = jitter
        self.dtype = resolve_dtype(dtype)
        for name, shape in self.parameter_shapes().items():
            self.register_buffer(name, torch.zeros(shape, dtype=self.dtype))
        self.register_buffer("is_fitted", torch.tensor(False))

    # --- what each family defines -------------------------------------------------------------
    @abstractmethod
    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shapes of the parameter tensors, by name."""

    @abstractmethod
    def batch_parameters(self, z: torch.Tensor, gamma: torch.Tensor) -> dict[str, torch.Tensor]:
        """Differentiable parameters from one batch: z (N, D), gamma (N, K) -> tensors by name."""

    @abstractmethod
    def component_log_prob(self, z: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """log p_k(z_i) for every row and component: z (N, D) -> (N, K)."""

    @abstractmethod
    def penalty(self, params: dict[str, torch.Tensor], dims: slice | None = None) -> torch.Tensor:
        """Scalar penalty against degenerate (vanishing) variances, over dimensions ``dims`` (all by default)."""

    @abstractmethod
    def new_statistics(self, pass_index: int) -> SufficientStatistics:
        """Empty accumulators for pass ``pass_index`` of the training-set fit."""

    @abstractmethod
    def accumulate(self, stats: SufficientStatistics, pass_index: int, z: torch.Tensor, gamma: torch.Tensor) -> None:
        """Add one batch (z (N, D), gamma (N, K)) to the statistics of pass ``pass_index``."""

    @abstractmethod
    def finish_pass(self, stats: SufficientStatistics, pass_index: int) -> None:
        """Turn the (already all-reduced) statistics of a pass into fitted buffers."""

    # --- shared ---------------------------------------------------------------------------------
    def cast(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.to(self.dtype)

    def fitted_parameters(self) -> dict[str, torch.Tensor]:
        if not bool(self.is_fitted):
            raise RuntimeError(
                "the mixture has not been fitted on the training rows yet: run `fit` first, or load a "
                "checkpoint written by `fit`"
            )
        return {name: getattr(self, name) for name in self.parameter_names}

    def energy(self, z: torch.Tensor, params: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """E(z) = -log sum_k phi_k p_k(z), by log-sum-exp: z (N, D) -> (N,), in the mixture dtype.

        With ``params`` None the training-set fit (buffers) is used.
        """
        params = self.fitted_parameters() if params is None else params
        with torch.autocast(device_type=z.device.type, enabled=False):
            z = self.cast(z)
            log_weights = torch.log(params["weights"].clamp_min(torch.finfo(self.dtype).tiny))
            return -torch.logsumexp(self.component_log_prob(z, params) + log_weights, dim=1)

    def store(self, **params: torch.Tensor) -> None:
        for name, value in params.items():
            getattr(self, name).copy_(value.detach().to(self.dtype))

    def extra_repr(self) -> str:
        return f"n_components={self.n_components}, dim={self.dim}, jitter={self.jitter}, dtype={self.dtype}"


def memberships_check(z: torch.Tensor, gamma: torch.Tensor, n_components: int) -> None:
    if z.ndim != 2 or gamma.ndim != 2 or z.shape[0] != gamma.shape[0] or gamma.shape[1] != n_components:
        raise ValueError(
            f"expected z (N, D) and gamma (N, {n_components}), got {tuple(z.shape)} and {tuple(gamma.shape)}"
        )
