"""Interface shared by every mixture family.

A family turns latent rows ``z`` (N, D) and soft memberships ``gamma`` (N, K) into mixture parameters,
and parameters into a per-row energy ``E(z) = -log sum_k phi_k p_k(z)``. Parameters come from one
M-step per family, fed by float64 sufficient statistics:

* **batch parameters**, differentiable: the statistics of one training batch (the DAGMM objective);
* **the training-set fit**: the same statistics summed over the training rows (all, or the model's
  ``fit_rows`` of them) and DDP ranks (a
  torchmetrics ``Metric`` with sum reduction), stored in registered buffers so that a checkpoint carries
  it.

Both families take two passes: weights and means first, then the spread around those means (centred
sums: an uncentred E[zz^T] - mu mu^T loses the digits of a nearly collapsed component, and its
gradients with them). Each pass sees the parameters of the passes before it.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from typing import Literal

import numpy as np
import torch
from sklearn.cluster import KMeans
from torch import nn
from torchmetrics import Metric

from dagmm_lightning.distributed import all_reduce_sum, broadcast_from_rank_zero, gather_rows
from dagmm_lightning.errors import (
    ConfigurationError,
    DataError,
    DataTypeError,
    NonFiniteError,
    NotFittedError,
    check_choice,
)

MixtureDtype = Literal["float64", "float32"]
_DTYPES = {"float32": torch.float32, "float64": torch.float64}
# Rows per slice in the passes over all training rows (fit, re-seeding, EM): their float64 deviations from
# every component, (..., K, D, rows), then stay in cache; an EM step ran 2.9x faster than on 8,192-row
# batches (44,000 rows, 5 members, 32 components, 10 dimensions, two threads), the same sums to 1e-14.
PASS_ROWS = 1024


def row_slices(*tensors: torch.Tensor) -> Iterator[tuple[torch.Tensor, ...]]:
    """The tensors (..., N, ·), sliced together along their rows into ``PASS_ROWS``-row parts."""
    return zip(*(t.split(PASS_ROWS, dim=-2) for t in tensors), strict=True)


class SufficientStatistics(Metric):
    """Named float64 sums over rows: ``update`` per batch; ``sums`` adds them up over DDP ranks.

    Any split of the rows into batches and ranks gives the sums of one pass over all rows.
    """

    full_state_update = False

    def __init__(self, shapes: dict[str, tuple[int, ...]]) -> None:
        super().__init__(compute_with_cache=False)
        self.shapes = shapes
        for name, shape in shapes.items():
            self.add_state(name, torch.zeros(shape, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, sums: dict[str, torch.Tensor]) -> None:
        for name, value in sums.items():
            state = getattr(self, name)
            setattr(self, name, state + value.detach().to(device=state.device, dtype=torch.float64))

    def compute(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, name) for name in self.shapes}

    def sums(self) -> dict[str, torch.Tensor]:
        """The sums over every rank, in their declared shapes (``compute`` squeezes one-element tensors)."""
        return {name: value.reshape(self.shapes[name]) for name, value in self.compute().items()}

    def local_sums(self) -> dict[str, torch.Tensor]:
        """This process's sums alone (no exchange between ranks), in their declared shapes."""
        return {name: getattr(self, name).reshape(shape) for name, shape in self.shapes.items()}


class MixtureEnergy(nn.Module, ABC):
    """Base of the mixture families: statistics, M-step, energy, degeneracy penalty, fitted buffers.

    Args:
        n_components: K, the number of mixture components.
        dim: D, the size of the rows the mixture sees (latent code plus reconstruction features).
        jitter: added to every variance (covariance diagonal or scale) before it is used; > 0.
        dtype: ``"float64"`` or ``"float32"``: the energy is computed in this type whatever the precision of
            the networks (Cholesky fails in half precision); statistics are always summed in float64.
        members: M > 1: M independent mixtures at once (an ensemble); every row, membership, statistic and
            parameter tensor then has a leading M axis: z (M, N, D), gamma (M, N, K), means (M, K, D), ...
    """

    #: names of the fitted parameter tensors (buffers); empty: those of ``parameter_shapes``
    parameter_names: tuple[str, ...] = ()
    #: passes over the training rows that the M-step needs
    fit_passes: int = 2

    def __init__(
        self, n_components: int, dim: int, jitter: float = 1e-6, dtype: MixtureDtype = "float64", members: int = 1
    ) -> None:
        super().__init__()
        if n_components < 1:
            raise ConfigurationError(f"n_components must be >= 1, got {n_components}")
        if dim < 1:
            raise ConfigurationError(f"dim must be >= 1, got {dim}")
        if not 0 < jitter < float("inf"):  # the variance floor: without it a collapsed component has energy -inf
            raise ConfigurationError(f"jitter must be a finite number > 0, got {jitter}")
        check_choice("mixture dtype", dtype, MixtureDtype)
        self.n_components, self.dim, self.jitter = n_components, dim, jitter
        self.dtype = _DTYPES[dtype]
        self.members = members
        self.member_shape = (members,) if members > 1 else ()  # the leading axis of every tensor, if any
        shapes = self.parameter_shapes()
        if not self.parameter_names:  # a family that names its parameters by their shapes only
            self.parameter_names = tuple(shapes)
        missing = [n for n in ("weights", "means", *self.parameter_names) if n not in shapes]
        if missing:
            raise ConfigurationError(
                f"{type(self).__name__}.parameter_shapes has no {missing}: it gives the shape of every fitted "
                "parameter, 'weights' (K,) and 'means' (K, D) included"
            )
        for name, shape in shapes.items():
            self.register_buffer(name, torch.zeros((*self.member_shape, *shape), dtype=self.dtype))
        self.register_buffer("is_fitted", torch.tensor(False))

    # --- what each family defines -------------------------------------------------------------
    # Shapes below are one mixture's; an ensemble's tensors carry a leading members axis (``...``).
    @classmethod
    def check_members(cls, members: int) -> None:  # noqa: B027 - a family that needs no check leaves it empty
        """Refuses (``ConfigurationError``) an ensemble size the family cannot take."""

    @abstractmethod
    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shapes of the fitted parameter tensors, by name."""

    @abstractmethod
    def spread_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shapes of the second pass's sums (the spread around the means)."""

    @abstractmethod
    def spread_statistics(self, gamma: torch.Tensor, diff: torch.Tensor) -> dict[str, torch.Tensor]:
        """The second pass's float64 sums from gamma (..., N, K) and z_i - mu_k (..., N, K, D). Differentiable."""

    @abstractmethod
    def spread_m_step(self, stats: dict[str, torch.Tensor], mass: torch.Tensor) -> dict[str, torch.Tensor]:
        """The spread parameters from the second pass's sums and the component masses (..., K)."""

    @abstractmethod
    def log_prob_of_deviations(self, diff: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """log p_k(z_i) for every component and row from z_i - mu_k (..., K, D, N) -> (..., K, N)."""

    @abstractmethod
    def recentred_spread(
        self, stats: dict[str, torch.Tensor], mass: torch.Tensor, shift: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """The second pass's sums around new means from those around old ones (an EM step's single pass):
        ``stats`` summed with deviations from the old means, ``shift`` = new - old means (..., K, D)."""

    @abstractmethod
    def penalty(self, params: dict[str, torch.Tensor], dims: slice | None = None) -> torch.Tensor:
        """Scalar penalty against vanishing variances, over dimensions ``dims`` of the rows (all by default),
        summed over an ensemble's members."""

    # --- shared ---------------------------------------------------------------------------------
    @torch.no_grad()
    def try_on_random_rows(self, one_sided_last: bool = False) -> None:
        """The family's methods run once on a few random rows (a generator of its own; no buffer written, no
        sum over DDP ranks) and their results' names and shapes checked: a family's slip (a parameter it
        does not give, a log-density not summed over D) is named as the model is built, not met as a shape
        or key error deep in the first training step; ``one_sided_last``: the energy read so too (a model
        that scores so). Raises ConfigurationError."""
        k, d, m, name = self.n_components, self.dim, self.member_shape, type(self).__name__
        generator = torch.Generator().manual_seed(0)
        n = max(8, 2 * k)
        z = torch.randn((*m, n, d), generator=generator, dtype=torch.float64)
        gamma = torch.softmax(torch.randn((*m, n, k), generator=generator, dtype=torch.float64), -1)

        def expect(what: str, value, shape: tuple[int, ...]) -> None:
            got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            if got != shape:
                raise ConfigurationError(
                    f"{name}.{what} gives {got} for {n} rows of {d} dimensions and {k} components"
                    f"{f', {m[0]} members' if m else ''}; expected {shape}"
                )

        method = "batch_parameters"
        try:
            params = self.batch_parameters(z, gamma)
            for parameter, shape in self.parameter_shapes().items():
                if parameter not in params:
                    raise ConfigurationError(
                        f"{name}'s M-step (m_step, spread_m_step) gives no {parameter!r} (it gives {sorted(params)}): "
                        "parameter_shapes names it"
                    )
                expect(f"M-step's {parameter!r}", params[parameter], (*m, *shape))
            method = "log_prob_of_deviations"
            log_prob = self.component_log_prob(z.to(self.dtype), params)  # (in the mixture dtype, as log_joint)
            expect(method + " (..., K, D, N) -> (..., K, N)", log_prob, (*m, k, n))
            method = "energy"
            energy = self.energy(z, params)
            if one_sided_last:
                method = "energy(one_sided_last=True)"
                one_sided = self.energy(z, params, one_sided_last=True)
                expect(method, one_sided, (*m, n))
                energy = torch.cat([energy, one_sided], -1)
            if not bool(torch.isfinite(energy).all()):
                raise ConfigurationError(f"{name} gives NaN or inf energies for {n} random rows (standard normal)")
            method = "penalty"
            expect(method, self.penalty(params), ())
            method = "recentred_spread"
            stats = self.spread_statistics(*deviations(z, gamma, params["means"]))
            spread = self.recentred_spread(stats, params["mass"], torch.zeros_like(params["means"]))
            for key, shape in self.spread_shapes().items():
                if key not in spread:
                    raise ConfigurationError(f"{name}.recentred_spread gives no {key!r} (spread_shapes names it)")
                expect(f"recentred_spread's {key!r}", spread[key], (*m, *shape))
        except ConfigurationError:
            raise
        except Exception as err:
            raise ConfigurationError(
                f"{name}.{method} fails on {n} random rows of {d} dimensions and {k} components"
                f"{f', {m[0]} members' if m else ''}: {type(err).__name__}: {err}"
            ) from err

    def one_sided_deviations(self, diff: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """diff = z_i - mu_k (..., K, D, N) with each row's last coordinate raised, where it lies below, to the
        value component k expects there given the row's other coordinates: here (independent dimensions) its
        location, a deviation of 0. A family whose dimensions depend on each other overrides it (the
        Gaussian: the conditional mean)."""
        return torch.cat([diff[..., :-1, :], diff[..., -1:, :].clamp_min(0)], dim=-2)

    def component_log_prob(
        self, z: torch.Tensor, params: dict[str, torch.Tensor], one_sided_last: bool = False
    ) -> torch.Tensor:
        """log p_k(z_i) for every component and row: z (..., N, D) -> (..., K, N); ``one_sided_last``: at the
        rows' ``one_sided_deviations`` (a last coordinate below what the component expects costs nothing)."""
        diff = row_deviations(z, params["means"])
        return self.log_prob_of_deviations(self.one_sided_deviations(diff, params) if one_sided_last else diff, params)

    def statistic_shapes(self, pass_index: int) -> dict[str, tuple[int, ...]]:
        """Shapes of the sums that pass ``pass_index`` of the M-step needs."""
        k, d, m = self.n_components, self.dim, self.member_shape
        if pass_index == 0:
            return {"rows": (), "mass": (*m, k), "first": (*m, k, d)}
        return {name: (*m, *shape) for name, shape in self.spread_shapes().items()}

    def statistics(
        self, z: torch.Tensor, gamma: torch.Tensor, pass_index: int, params: dict
    ) -> dict[str, torch.Tensor]:
        """Float64 sums of pass ``pass_index`` over rows z (..., N, D) with memberships gamma (..., N, K);
        ``params`` holds the parameters of the earlier passes. Differentiable."""
        if pass_index == 0:
            return weighted_sums(z, gamma)
        return self.spread_statistics(*deviations(z, gamma, params["means"]))

    def m_step(self, stats: dict[str, torch.Tensor], pass_index: int, params: dict) -> dict[str, torch.Tensor]:
        """Parameters from the sums of pass ``pass_index`` (and those of earlier passes in ``params``)."""
        if pass_index == 0:
            first = weights_and_means(stats)
            return {
                "weights": self._parameter(first["weights"]),
                "means": self._parameter(first["means"]),
                "mass": first["mass"],
            }
        return self.spread_m_step(emptied(stats, params["mass"]), params["mass"])

    def new_statistics(self, pass_index: int) -> SufficientStatistics:
        """Empty accumulators for pass ``pass_index`` of the training-set fit."""
        return SufficientStatistics(self.statistic_shapes(pass_index))

    def batch_parameters(self, z: torch.Tensor, gamma: torch.Tensor) -> dict[str, torch.Tensor]:
        """Differentiable parameters of the rows z (..., N, D) with memberships gamma (..., N, K): every pass
        of the M-step on this batch alone. K may be fewer than ``n_components`` (an estimation network with
        fewer components than the training-set fit): the parameters then have gamma's K."""
        self.check_memberships(z, gamma, at_most=True)
        if z.shape[-2] == 0:  # its weights would be 0 and its covariances the jitter
            raise DataError("cannot fit the mixture on a batch of zero rows")
        params: dict[str, torch.Tensor] = {}
        with torch.autocast(device_type=z.device.type, enabled=False):
            z, gamma = z.to(torch.float64), gamma.to(torch.float64)  # once: one gradient cast back per input
            for pass_index in range(self.fit_passes):
                params |= self.m_step(self.statistics(z, gamma, pass_index, params), pass_index, params)
        return params

    @torch.no_grad()
    def sliced_parameters(self, z: torch.Tensor, gamma: torch.Tensor) -> dict[str, torch.Tensor]:
        """``batch_parameters`` of rows z (..., N, D) with memberships gamma (..., N, K) from sums over their
        ``PASS_ROWS``-row slices: memory bounded whatever N (the float64 deviations of every row and
        component at once would take N x K x D x 8 bytes per member); this process's rows only (no sum
        over ranks), not differentiable."""
        return self._m_step_passes([(z, gamma)], over_ranks=False, fewer_components=True)

    @torch.no_grad()
    def fit(self, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """The training-set fit: every pass of the M-step on the sums over all (z (..., N, D), gamma
        (..., N, K)) batches of ``batches`` (re-iterable, once per pass; under DDP each rank its own rows),
        stored in the buffers. (Memberships with fewer components: ``padded_memberships`` first.)"""
        params = self._m_step_passes(batches, over_ranks=True, fewer_components=False)
        for name in self.parameter_names:
            getattr(self, name).copy_(params[name])
        self.is_fitted.fill_(True)

    def _m_step_passes(
        self, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], over_ranks: bool, fewer_components: bool
    ) -> dict[str, torch.Tensor]:
        """Every pass of the M-step on float64 sums over the ``PASS_ROWS``-row slices of the (z, gamma)
        batches of ``batches`` (read once per pass), summed over DDP ranks too where ``over_ranks``."""
        params: dict[str, torch.Tensor] = {}
        with torch.autocast(device_type=self.is_fitted.device.type, enabled=False):
            for pass_index in range(self.fit_passes):
                stats = self.new_statistics(pass_index).to(self.is_fitted.device)
                shapes = self.statistic_shapes(pass_index)
                stats.update({name: torch.zeros(shape) for name, shape in shapes.items()})  # a rank without rows syncs
                local_rows = 0
                for z, gamma in batches:
                    self.check_memberships(z, gamma, at_most=fewer_components)
                    for z_part, gamma_part in row_slices(z.to(torch.float64), gamma.to(torch.float64)):
                        stats.update(self.statistics(z_part, gamma_part, pass_index, params))
                    local_rows += z.shape[-2]
                if pass_index == 0:
                    first_pass_rows = local_rows
                elif local_rows != first_pass_rows:  # a one-pass iterable (a generator) would leave this pass empty
                    raise ConfigurationError(
                        f"the mixture fit reads its batches once per pass ({self.fit_passes} passes): pass "
                        f"{pass_index} saw {local_rows} rows, pass 0 {first_pass_rows}; pass a list or re-iterable"
                    )
                sums = stats.sums() if over_ranks else stats.local_sums()
                if pass_index == 0 and float(sums["rows"]) == 0:
                    raise DataError("cannot fit the mixture on zero training rows")
                params |= self.m_step(sums, pass_index, params)
        return params

    def fitted_parameters(self) -> dict[str, torch.Tensor]:
        # (a compiled step reads a mixture fitted before it; the check would break its graph at bool())
        if not torch.compiler.is_compiling() and not bool(self.is_fitted):
            raise NotFittedError(
                "the mixture has not been fitted on the training rows yet: run `fit` first, or load a "
                "checkpoint written by `fit`"
            )
        return {name: getattr(self, name) for name in self.parameter_names}

    def log_joint(
        self, z: torch.Tensor, params: dict[str, torch.Tensor] | None = None, one_sided_last: bool = False
    ) -> torch.Tensor:
        """log phi_k + log p_k(z_i) for every component and row: z (..., N, D) -> (..., K, N), in the mixture
        dtype (autocast off). With ``params`` None the training-set fit (buffers) is used; ``one_sided_last``:
        as ``energy``'s."""
        params = self.fitted_parameters() if params is None else params
        self.check_rows(z)
        with torch.autocast(device_type=z.device.type, enabled=False):
            options = {"one_sided_last": True} if one_sided_last else {}  # (a family's own may not take it)
            try:
                log_prob = self.component_log_prob(z.to(self.dtype), params, **options)
            except TypeError as err:
                if not options or "one_sided_last" not in str(err):
                    raise
                raise ConfigurationError(_NOT_ONE_SIDED.format(name=type(self).__name__)) from err
            return log_prob + self.log_weights(params)

    def log_weights(self, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """log phi_k (..., K, 1), an empty component's floored at the dtype's smallest number (not -inf)."""
        return torch.log(params["weights"].clamp_min(torch.finfo(self.dtype).tiny)).unsqueeze(-1)

    def energy(
        self, z: torch.Tensor, params: dict[str, torch.Tensor] | None = None, one_sided_last: bool = False
    ) -> torch.Tensor:
        """E(z) = -log sum_k phi_k p_k(z), by log-sum-exp: z (..., N, D) -> (..., N), in the mixture dtype.

        ``one_sided_last``: each component reads a row's last coordinate only where it lies above what the
        component expects there (``one_sided_deviations``): a low value of it (a reconstruction error lower
        than the fit's rows had) adds no energy. Not a density: for scores, never for a fit.

        With ``params`` None the training-set fit (buffers) is used, over ``PASS_ROWS``-row slices (scoring:
        the (..., K, D, N) float64 deviations of an 8,192-row batch of a 5-member ensemble with 8 components
        of 91 dimensions took 240 MB, twice). Rows holding NaN or inf give NaN or inf energies (not checked
        here: that would read every batch's values; the data module refuses such rows).
        """
        self.check_rows(z)
        with torch.autocast(device_type=z.device.type, enabled=False):
            if params is None and z.shape[-2] > PASS_ROWS:
                fitted = self.fitted_parameters()
                parts = z.split(PASS_ROWS, -2)
                joints = (self.log_joint(part, fitted, one_sided_last) for part in parts)
                return torch.cat([energy_from_log_joint(joint) for joint in joints], -1)
            return energy_from_log_joint(self.log_joint(z, params, one_sided_last))

    @torch.no_grad()
    def refine(self, rows: Iterable[torch.Tensor], steps: int, tolerance: float = 0.0) -> int:
        """Up to ``steps`` EM iterations (``em_step``) from the current training-set fit over the rows z
        (..., N, D) of ``rows`` (re-iterable). Stops early once the rows' mean energy (every member's) moved
        by less than ``tolerance`` in one iteration (0: never), as scikit-learn's ``GaussianMixture`` stops
        on its ``tol``. Returns the iterations run.

        The estimation network's memberships start the fit; the iterations then move the components to
        where the rows are, and on KDDCUP99 they gave rows to components the network had left nearly empty
        (BENCHMARKS.md, section 10, "more components and an EM-refined training-set fit")."""
        if iter(rows) is rows:  # a generator: the second step would see no rows
            raise ConfigurationError("EM reads the rows once per step: pass a list or re-iterable, not a generator")
        previous = None
        for step in range(1, steps + 1):
            energy = self.em_step(rows)
            if previous is not None and float((energy - previous).abs().max()) < tolerance:
                return step
            previous = energy
        return steps

    @torch.no_grad()
    def reseed_empty(self, rows: Iterable[torch.Tensor], fraction: float, seed: int = 0) -> torch.Tensor:
        """Move the components that hold fewer rows than ``dim + 1`` (too few for their spread: the estimation
        network left them empty; never a member's largest) to the rows the fit explains worst: the
        ``fraction`` of the rows z (..., N, D) of ``rows`` (re-iterable; under DDP each rank its own) with the
        highest energy, split by k-means (scikit-learn, ``seed``) into one cluster per such component. Each
        cluster of at least dim + 1 rows gets a component (its rows' M-step; weight = its share of all
        rows), the others' weights scale to keep the sum 1; stored in the buffers, for the EM steps that
        follow (``refine``). Returns the components moved per member ((M,) or ()).

        EM alone never revives an empty component: without it, small tight clusters of normal rows
        (KDDCUP99's rarer attack types) stay without a component and score as anomalies (BENCHMARKS.md,
        section 10, "empty components re-seeded")."""
        if not 0 < fraction <= 0.5:  # beyond, the components that keep their rows would lose most of their weight
            raise ConfigurationError(f"the re-seeded fraction of rows must be in (0, 0.5], got {fraction}")
        if iter(rows) is rows:
            raise ConfigurationError("re-seeding reads the rows twice: pass a list or re-iterable, not a generator")
        old = self.fitted_parameters()
        members = max(self.members, 1)
        energies = [  # (M, n) per batch
            torch.cat([self.energy(part).to(torch.float64) for (part,) in row_slices(z)], -1).reshape(members, -1)
            for z in rows
        ]
        local = torch.cat(energies, -1) if energies else torch.zeros(members, 0, dtype=torch.float64)
        device = self.is_fitted.device
        counts = torch.tensor([local.shape[-1], (~torch.isfinite(local)).sum()], dtype=torch.float64, device=device)
        total, non_finite = (int(c) for c in all_reduce_sum(counts))
        if total == 0:
            raise DataError("cannot re-seed the mixture on zero training rows")
        if non_finite:
            raise NonFiniteError(
                f"{non_finite} training rows have a NaN or infinite energy: cannot re-seed the mixture"
            )
        count = min(total, max(1, math.ceil(fraction * total)))
        # the count-th highest energy over every rank: each rank's own top count holds the global top count
        top = local.topk(min(count, local.shape[-1]), dim=-1).values
        threshold = gather_rows(top.T.to(device)).T.topk(count, dim=-1).values[:, -1:]  # (M, 1)
        chosen = [[] for _ in range(members)]
        for z, energy in zip(rows, energies, strict=True):  # the same batches again: rows at or above it
            z = z.reshape(members, -1, z.shape[-1]).to(torch.float64)
            for m in range(members):
                keep = energy[m] >= threshold[m].to(energy.device)
                chosen[m].append(torch.cat([energy[m, keep, None], z[m, keep]], -1))
        mass = (old["weights"].to(torch.float64) * total).reshape(members, -1)
        empty = (mass < self.dim + 1) & (mass < mass.max(-1, keepdim=True).values)  # the largest one stays
        gamma = torch.zeros(members, count, self.n_components, dtype=torch.float64)
        candidates = torch.zeros(members, count, self.dim, dtype=torch.float64)
        for m in range(members):
            local_rows = torch.cat(chosen[m]) if chosen[m] else torch.zeros(0, self.dim + 1, dtype=torch.float64)
            found = gather_rows(local_rows.to(device)).cpu()
            # highest energy first, ties by the rows' values: the order (and k-means) whatever the ranks
            values = found.numpy()
            found = found[np.lexsort((*values[:, :0:-1].T, -values[:, 0]))[:count]]
            candidates[m] = found[:, 1:]
            targets = torch.where(empty[m].cpu())[0]  # gamma (CPU) is indexed with it
            distinct = len(torch.unique(found[:, 1:], dim=0))
            clusters = min(len(targets), distinct, reseedable_components(total, fraction, self.dim))
            if clusters == 0:
                continue
            labels = torch.as_tensor(KMeans(clusters, n_init=1, random_state=seed).fit(found[:, 1:].numpy()).labels_)
            # a cluster of fewer rows than dim + 1 would collapse onto its few (outlying) rows: it moves nothing
            large = torch.bincount(labels, minlength=clusters)[labels] >= self.dim + 1
            gamma[m, torch.arange(count)[large], targets[labels[large]]] = 1.0
        gamma = broadcast_from_rank_zero(gamma.to(device)).cpu()  # rank 0's k-means for every rank
        shape = (*self.member_shape, count)
        candidates, gamma = candidates.reshape(*shape, self.dim).to(device), gamma.reshape(*shape, -1).to(device)
        new = self.sliced_parameters(candidates, gamma)
        moved, share = gamma.sum(-2) > 0, gamma.sum(-2) / total  # (..., K)
        kept = torch.where(moved, 0.0, old["weights"].to(torch.float64))
        rest = (1 - share.sum(-1, keepdim=True)) / kept.sum(-1, keepdim=True).clamp_min(torch.finfo(torch.float64).tiny)
        weights = torch.where(moved, share, kept * rest)
        for name in self.parameter_names:
            value = weights if name == "weights" else torch.where(_expand(moved, new[name]), new[name], old[name])
            getattr(self, name).copy_(value)
        return moved.sum(-1)

    @torch.no_grad()
    def em_step(self, rows: Iterable[torch.Tensor]) -> torch.Tensor:
        """One EM iteration in one pass over the rows z (..., N, D) of ``rows`` (under DDP each rank its
        own): the memberships the current fit gives every row (E-step), then the M-step of ``fit`` on
        them, stored in the buffers. Returns the rows' mean energy ((M,)) under the fit before the step.

        The spread is summed around the old means and recentred (``recentred_spread``): for Gaussian
        members exactly the scatter around the new means (scikit-learn's EM step); the Laplacian scales
        stay the mean absolute deviations around the old means (the study's M-step is not the Laplace
        maximum-likelihood one anyway), which has the same fixed points."""
        old = self.fitted_parameters()
        shapes = self.statistic_shapes(0) | self.statistic_shapes(1) | {"energy": self.member_shape}
        stats = SufficientStatistics(shapes).to(self.is_fitted.device)
        stats.update({name: torch.zeros(shape) for name, shape in shapes.items()})  # every rank syncs, rows or not
        with torch.autocast(device_type=self.is_fitted.device.type, enabled=False):
            log_weights = self.log_weights(old)
            old_means = old["means"].to(torch.float64)
            for (z,) in (part for batch in rows for part in row_slices(batch.to(torch.float64))):
                diff = row_deviations(z, old_means)  # (..., K, D, N), float64: the spread sums recentre exactly
                log_joint = self.log_prob_of_deviations(diff.to(self.dtype), old) + log_weights
                gamma = posterior_from_log_joint(log_joint).to(torch.float64)
                energy = energy_from_log_joint(log_joint).to(torch.float64).sum(-1)
                stats.update(weighted_sums(z, gamma) | {"energy": energy})
                stats.update(self.spread_statistics(gamma, diff.movedim(-1, -3)))
        sums = stats.sums()
        if float(sums["rows"]) == 0:
            raise DataError("cannot refine the mixture on zero training rows")
        params = self.m_step(sums, 0, {})
        shift = sums["first"] / params["mass"].unsqueeze(-1) - old_means
        # with the raw mass: an emptied component (mass 0) recentres nothing and gets jitter * I, not -mu mu^T
        spread = emptied(self.recentred_spread(sums, sums["mass"], shift), params["mass"])
        params |= self.spread_m_step(spread, params["mass"])
        for name in self.parameter_names:
            getattr(self, name).copy_(params[name])
        return sums["energy"] / sums["rows"]

    def check_rows(self, z: torch.Tensor) -> None:
        """z a tensor (..., N, D) with this mixture's D, else a DataTypeError or ConfigurationError."""
        if not isinstance(z, torch.Tensor):
            raise DataTypeError(f"the mixture takes z as a torch.Tensor (..., N, {self.dim}), got {type(z).__name__}")
        if z.ndim < 2 or z.shape[-1] != self.dim:
            raise ConfigurationError(f"expected z (..., N, {self.dim}), got {tuple(z.shape)}")

    def check_memberships(self, z: torch.Tensor, gamma: torch.Tensor, at_most: bool = False) -> None:
        """z (..., N, D) and gamma (..., N, K) with K = ``n_components`` (K <= ``n_components`` where
        ``at_most``), else a ConfigurationError. (Memberships summing to 1 over K are not checked: that
        would read every batch's values.)"""
        self.check_rows(z)
        if not isinstance(gamma, torch.Tensor):
            raise DataTypeError(f"the mixture takes gamma as a torch.Tensor, got {type(gamma).__name__}")
        m, k = self.member_shape, self.n_components
        components = gamma.shape[-1] if gamma.ndim else 0
        if (
            tuple(z.shape[:-2]) != m
            or z.ndim != 2 + len(m)
            or gamma.shape[:-1] != z.shape[:-1]
            or not (1 <= components <= k if at_most else components == k)
        ):
            expected = f"K <= {k}" if at_most else k
            raise ConfigurationError(
                f"expected z {(*m, 'N', 'D')} and gamma {(*m, 'N', expected)}, got {tuple(z.shape)} and "
                f"{tuple(gamma.shape)}"
            )

    def _parameter(self, value: torch.Tensor) -> torch.Tensor:
        """An M-step result in the mixture dtype."""
        return value.to(self.dtype)

    def extra_repr(self) -> str:
        members = f", members={self.members}" if self.members > 1 else ""
        return f"n_components={self.n_components}, dim={self.dim}, jitter={self.jitter}, dtype={self.dtype}{members}"


_NOT_ONE_SIDED = (
    "{name}.component_log_prob takes no one_sided_last, which a model that reads its error feature one-sided "
    "(error_feature with one_sided_error, the improved default) scores with: take it and pass it on to "
    "MixtureEnergy.component_log_prob (or apply one_sided_deviations), or set one_sided_error false"
)


def energy_from_log_joint(log_joint: torch.Tensor) -> torch.Tensor:
    """-log sum_k exp(log_joint) by log-sum-exp: (..., K, N) -> (..., N)."""
    return -torch.logsumexp(log_joint, dim=-2)


def posterior_from_log_joint(log_joint: torch.Tensor) -> torch.Tensor:
    """Posterior memberships softmax_k(log_joint): (..., K, N) -> (..., N, K)."""
    return torch.softmax(log_joint, dim=-2).transpose(-1, -2)


def reseedable_components(rows: int, fraction: float, dim: int) -> int:
    """The most components one ``reseed_empty`` of ``fraction`` of ``rows`` rows can place: its
    ceil(fraction * rows) rows split into clusters of at least dim + 1."""
    return min(rows, max(1, math.ceil(fraction * rows))) // (dim + 1)


def padded_memberships(gamma: torch.Tensor, components: int) -> torch.Tensor:
    """gamma (..., N, K) with zero columns up to ``components``: the components beyond K start empty (weight
    0, jitter spread), for ``MixtureEnergy.reseed_empty`` to place."""
    return torch.nn.functional.pad(gamma, (0, components - gamma.shape[-1]))


def weighted_sums(z: torch.Tensor, gamma: torch.Tensor) -> dict[str, torch.Tensor]:
    """Row count, sum_i gamma_ik and sum_i gamma_ik z_i in float64: z (..., N, D), gamma (..., N, K)."""
    z, gamma = z.to(torch.float64), gamma.to(torch.float64)
    return {
        "rows": torch.tensor(float(z.shape[-2]), dtype=torch.float64, device=z.device),
        "mass": gamma.sum(-2),
        "first": gamma.transpose(-1, -2) @ z,
    }


EMPTY_MASS = 1e-20  # sum_i gamma_ik below it: an empty component (its mean 0, its spread the jitter's)


def safe(mass: torch.Tensor) -> torch.Tensor:
    """Component masses floored at ``EMPTY_MASS``. Not lower: the float32 softmax leaves a component whose
    logit trails by ~100 with memberships of 1e-44 or exactly 0, and the gradient of its spread, 1 / mass
    times the penalty's 1 / jitter^2, overflowed float32 (a finite loss, NaN in every weight); here it
    stays below 1e32 for a jitter of 1e-6."""
    return mass.clamp_min(EMPTY_MASS)


def weights_and_means(stats: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The first pass of every family's M-step: phi_k = sum_i gamma_ik / N and mu_k = sum_i gamma_ik z_i /
    sum_i gamma_ik (0 for an empty component); ``mass`` (sum_i gamma_ik, floored) goes on to the second
    pass."""
    mass = safe(stats["mass"])
    means = (stats["first"] / mass.unsqueeze(-1)).masked_fill((mass <= EMPTY_MASS).unsqueeze(-1), 0.0)
    return {"weights": stats["mass"] / stats["rows"].clamp_min(1.0), "means": means, "mass": mass}


def emptied(spread: dict[str, torch.Tensor], mass: torch.Tensor) -> dict[str, torch.Tensor]:
    """The spread sums (..., K, ...) with those of empty components (floored ``mass`` (..., K) at
    ``EMPTY_MASS``) zeroed: their spread is the jitter's, whatever rows weigh on them below the floor."""
    empty = mass <= EMPTY_MASS
    return {name: value.masked_fill(_expand(empty, value), 0.0) for name, value in spread.items()}


def _expand(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A per-component mask (..., K) with trailing axes for a parameter ``like`` (..., K, ...)."""
    return mask.reshape(*mask.shape, *([1] * (like.ndim - mask.ndim)))


def row_deviations(z: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    """z_i - mu_k for every component and row: z (..., N, D), means (..., K, D) -> (..., K, D, N) (rows last:
    the sums over D and over K run along N; torch reduces a short innermost axis slowly)."""
    # + (-mu), the same floats as - mu: the backward pass then negates the small means' gradient, not
    # the deviations' (that negation held a tenth of the operator time in a profile of a K = 32 training step)
    return z.transpose(-1, -2).unsqueeze(-3) + (-means).unsqueeze(-1)


def deviations(z: torch.Tensor, gamma: torch.Tensor, means: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """gamma (..., N, K) and z - mu_k (..., N, K, D) in float64, for the second pass (spread around the final
    means)."""
    z, gamma = z.to(torch.float64), gamma.to(torch.float64)
    return gamma, z.unsqueeze(-2) + (-means.to(torch.float64)).unsqueeze(-3)  # + (-mu): as row_deviations
