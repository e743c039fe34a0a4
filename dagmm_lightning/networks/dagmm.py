"""The whole DAGMM chain as one plain torch module (no Lightning): x -> one ``DAGMMOutput``.

compression -> z_c, x' -> rows [z_c, relative distance, cosine(, log error)] -> memberships gamma -> energy
-> score
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from dagmm_lightning.distributed import gather_rows, rank
from dagmm_lightning.errors import ConfigurationError, DataError, NonFiniteError
from dagmm_lightning.mixture import MixtureEnergy, padded_memberships
from dagmm_lightning.networks.estimation import EstimationNetwork
from dagmm_lightning.scoring import ScoreCalibration

SCALED_LIMIT = 1e6  # the largest |scaled value| the networks take: past it float32 sums of squares overflow


def reconstruction_features(
    x: torch.Tensor, x_hat: torch.Tensor, floor: float = 1e-3
) -> tuple[torch.Tensor, torch.Tensor]:
    """Relative Euclidean distance ||x - x'|| / ||x|| and cosine similarity, (..., N, 2), and the squared
    reconstruction error ||x - x'||^2, (..., N), of x (N, F) and x' (..., N, F).

    Two (N, F) temporaries (x - x' and x * x'), each reduced once: ||x - x'|| gives the distance and the
    error. ||x|| is floored at ``floor`` in both features: a zero row (every feature at its training minimum)
    would otherwise divide by ~0 and give ~1e7, a value that dominates the mixture; with the floor the
    distance is at most ||x'|| / floor, and the cosine goes to 0 with ||x|| (unfloored, the cosine of a row
    1e-8 from zero, as float32 scaling leaves one, is anything in [-1, 1], and of zero itself 0).
    """
    x_norm, x_hat_norm = torch.linalg.vector_norm(x, dim=-1), torch.linalg.vector_norm(x_hat, dim=-1)
    distance = torch.linalg.vector_norm(x - x_hat, dim=-1)
    x_floored = x_norm.clamp_min(floor)
    cosine = (x * x_hat).sum(dim=-1) / (x_floored * x_hat_norm.clamp_min(1e-8))
    return torch.stack([distance / x_floored, cosine], dim=-1), distance.square()


ERROR_FLOOR = 1e-6  # log(squared error + floor): a perfectly reconstructed row stays finite


@contextmanager
def in_mode(module: nn.Module, training: bool):
    """``module`` in training or eval mode inside, its mode restored after."""
    was_training = module.training
    module.train(training)
    try:
        yield module
    finally:
        module.train(was_training)


def evaluating(module: nn.Module):
    """``module`` in eval mode (no dropout, VAE means, no codebook updates) inside, its mode restored after."""
    return in_mode(module, False)


def is_ours(cls: type) -> bool:
    """Whether a class is this package's (tested here), not a variant's of one's own."""
    return cls.__module__.startswith("dagmm_lightning.")


class _Reiterable:
    """An iterable that calls ``make`` for every new iteration (one pass over the rows each)."""

    def __init__(self, make) -> None:
        self.make = make

    def __iter__(self):
        return self.make()


FIT_INPUT = "x tensors (N, F), re-iterable: a list of them, or a DataLoader of TensorDataset(x)"


class XBatches:
    """The x tensors of ``batches`` as ``DAGMMModel.fit`` takes them: a tensor (N, F) is one batch, a
    batch of one tensor (a ``TensorDataset(x)`` loader's ``[x]``) its x; a batch of (x, labels, row ids)
    is refused (its labelled anomalies would be fitted: ``TrainingRows`` leaves them out). Re-iterable;
    ``ordered`` is ``batches``' own (True where it does not say)."""

    def __init__(self, batches) -> None:
        if isinstance(batches, torch.Tensor):
            if batches.ndim != 2:
                raise DataError(f"fit takes {FIT_INPUT}; got a tensor of shape {tuple(batches.shape)}")
            batches = [batches]
        shuffled = isinstance(getattr(batches, "sampler", None), torch.utils.data.RandomSampler)  # (a DataLoader's)
        self.batches, self.ordered = batches, getattr(batches, "ordered", not shuffled)

    def __iter__(self) -> Iterator[torch.Tensor]:
        for batch in self.batches:
            if isinstance(batch, (tuple, list)) and len(batch) == 1:
                batch = batch[0]
            if not isinstance(batch, torch.Tensor):
                got = f"a {type(batch).__name__} of {len(batch)}" if isinstance(batch, (tuple, list)) else type(batch)
                raise DataError(
                    f"fit takes {FIT_INPUT}; a batch was {got} (batches of (x, labels, row ids): "
                    "TrainingRows(loader), from dagmm_lightning.models.dagmm, gives their x less labelled anomalies)"
                )
            yield batch


FIT_ROWS_SEED = 0  # the fixed subset of rows a fit with ``fit_rows`` reads


def fit_positions(total: int, limit: int) -> torch.Tensor:
    """The positions, sorted ((limit,) int64), of the ``limit`` rows of ``total`` that a fit reads: a fixed
    random subset (numpy's generator seeded with ``FIT_ROWS_SEED``, without replacement; no global
    random state is touched), the same at every fit (of one numpy version) and whatever the number of
    processes. Random, not evenly spaced: rows stored in a repeating order (interleaved sensors) would
    leave a stride on one phase."""
    drawn = np.random.default_rng(FIT_ROWS_SEED).choice(total, size=limit, replace=False)
    return torch.from_numpy(np.sort(drawn).astype(np.int64))


class SampledRows:
    """The rows at ``positions`` (sorted (L,) int64, among all ranks' rows) of the x batches (N_b, F) of
    ``batches`` (re-iterable), whose first row is at position ``first`` (this rank's offset), in their order
    and in batches as long as the longest of ``batches`` so far (the last one shorter). Re-iterable.

    Gathered again into full batches because each batch's share of the positions has a length of its own:
    oneDNN keeps a compiled kernel per input shape, and a large table's hundreds of lengths had held
    hundreds of MiB (BENCHMARKS.md, section 12)."""

    def __init__(self, batches: Iterable[torch.Tensor], positions: torch.Tensor, first: int = 0) -> None:
        self.batches, self.positions, self.first = batches, positions, first

    def __iter__(self) -> Iterator[torch.Tensor]:
        start, parts, held, size = self.first, [], 0, 0
        for x in self.batches:
            size = max(size, len(x))  # (the longest so far: a first batch of few rows, its anomalies left out)
            low, high = torch.searchsorted(self.positions, torch.tensor([start, start + len(x)])).tolist()
            if high > low:
                parts.append(x[(self.positions[low:high] - start).to(x.device)])
                held += high - low
            start += len(x)
            if size and held >= size:
                joined = torch.cat(parts)
                while len(joined) >= size:
                    yield joined[:size]
                    joined = joined[size:]
                parts, held = [joined], len(joined)
        if held:
            yield torch.cat(parts)


def row_counts(batches: Iterable[torch.Tensor], device: torch.device) -> tuple[int, int]:
    """The position of this rank's first row among all ranks' rows of ``batches`` (x tensors; under DDP each
    rank its own contiguous share, in rank order), and the rows of all ranks: (first, total). One pass that
    reads the batches only; the counts travel on ``device`` (NCCL takes no CPU tensor)."""
    local = torch.tensor([sum(len(x) for x in batches)], dtype=torch.int64, device=device)
    counts = gather_rows(local).cpu()
    return int(counts[: rank()].sum()), int(counts.sum())


ROWS_KEPT_BYTES = 256 * 2**20


def _kept_if_small(items: Iterable[tuple[torch.Tensor, ...]]) -> Iterable[tuple[torch.Tensor, ...]]:
    """The tuples of tensors of ``items`` (re-iterable) kept in a list when they take at most
    ``ROWS_KEPT_BYTES``, so that later passes skip the networks; else ``items`` itself (every pass computes
    them again; the pass that tried to keep them is lost)."""
    kept, size = [], 0
    for item in items:
        size += sum(t.numel() * t.element_size() for t in item)
        if size > ROWS_KEPT_BYTES:
            return items
        kept.append(item)
    return kept


@dataclass
class DAGMMOutput:
    """Everything DAGMM computes for a batch x (N, F); an ensemble's tensors have a leading members axis.

    z (N, latent), x_hat (N, F), rows (N, latent + 2, or + 3 with the log error) the mixture sees, gamma
    (N, K) memberships (None where not asked for), error (N,) squared reconstruction error, energy (N,)
    (in training under the batch's own fit, in eval mode under the training-set fit: ``NotFittedError``
    before ``fit``; None in training for a batch without rows to fit), params the mixture parameters of the
    batch fit (training only; None in eval mode), losses the compression's own terms, codes (N,) a
    quantiser's codes.
    """

    z: torch.Tensor
    x_hat: torch.Tensor
    rows: torch.Tensor
    gamma: torch.Tensor
    error: torch.Tensor
    energy: torch.Tensor | None = None
    params: dict[str, torch.Tensor] | None = None
    losses: dict[str, torch.Tensor] = field(default_factory=dict)
    codes: torch.Tensor | None = None


def one_score_per_row(score, owner: str):
    """``score(self, out)`` checked to give a tensor (N,) for the N rows of ``out`` (a variant's own score:
    a (N, 1) one had trained and validated, then broke predict's table; a 0-d one broke deep in torch)."""

    @functools.wraps(score)
    def checked(self, out: DAGMMOutput) -> torch.Tensor:
        scores = score(self, out)
        if out.rows is None:  # (an output made by hand, without the mixture's rows: nothing to count)
            return scores
        rows = out.rows.shape[-2]  # rows (N, D), or (M, N, D) for an ensemble
        if not isinstance(scores, torch.Tensor) or tuple(scores.shape) != (rows,):
            gave = f"shape {tuple(scores.shape)}" if isinstance(scores, torch.Tensor) else type(scores).__name__
            raise ConfigurationError(f"{owner}.score must give one score per row, a tensor ({rows},); it gave {gave}")
        return scores

    return checked


class DAGMMModel(nn.Module):
    """Compression network + reconstruction features + estimation network + mixture energy + score.

    In training mode ``forward`` fits the mixture on the batch (differentiably, on the rows of
    ``fit_mask``) and gives every row's energy under that fit (none when ``fit_mask`` selects no row);
    in eval mode the energy comes from the training-set fit stored by ``fit``.

    Args:
        compression: a module x -> ``Compressed`` (autoencoder, VAE, VQ-VAE).
        estimation: memberships from mixture rows.
        mixture: the mixture family.
        calibration: score and threshold.
        penalty_dims: dimensions of the mixture rows the degeneracy penalty covers (None: all).
        detach_rows: the mixture rows carry no gradient back to the compression network (the energy and
            penalty then train only the estimation network; the compression learns to reconstruct).
        error_feature: the mixture rows gain a last column, log(squared reconstruction error + 1e-6), so
            that the energy also sees how well a row is reconstructed.
        one_sided_error: with ``error_feature``, the energy of a model in eval mode (its scores, their
            calibration and threshold) reads that column one-sided (``MixtureEnergy.energy``'s
            ``one_sided_last``): an error lower than the component expects adds nothing, so that rows at the
            centre of the data, reconstructed better than the fit's rows, do not score as anomalies. Training
            and the mixture's fit read it as it is, but for the rows labelled as anomalies (outside
            ``fit_mask``), whose energy the anomaly term pushes up as the score reads it (and the PU
            classifier's input, ``DAGMMPUModel``).
        em_steps: EM iterations that refine the training-set fit after its M-step from the estimation
            network's memberships (``MixtureEnergy.refine``); the mixture rows and memberships are kept in
            memory for them up to ``ROWS_KEPT_BYTES``. 0: the paper's fit.
        em_tolerance: stop the EM iterations before ``em_steps`` once the training rows' mean energy moved
            by less than this in one iteration (0: run them all). ``em_steps_run`` holds the count of the
            last fit.
        em_reseed: before the EM steps, the components the network left (nearly) empty move to this fraction
            of the training rows, those with the highest energy, split by k-means
            (``MixtureEnergy.reseed_empty``); 0: none. ``components_reseeded`` holds the most moved in a
            member by the last fit.
        fit_rows: the training-set fit (the mixture's M-step, re-seeding and EM steps, then the score's
            calibration and threshold quantile) reads at most this many of the training rows, a fixed random
            subset (``fit_positions``), after a pass that counts them; batches that say they are not
            ``ordered`` (the same rows in the same order at every pass) are all read. None: every row. ``rows_fitted``
            holds (rows the last fit read, training rows); ``sampled_fit`` whether they differ.

    ``input_mask`` (F,) or None: 0 for the features the compression does not see (``mask_inputs``); the
    reconstruction features still compare every feature.
    """

    threshold_is_quantile = True  # the (1 - contamination) quantile of the training rows' scores (PU: c / 2)

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if inspect.isfunction(vars(cls).get("score")):  # a variant's own score: one number per row, or an error
            cls.score = one_score_per_row(vars(cls)["score"], cls.__name__)

    def __init__(
        self,
        compression: nn.Module,
        estimation: EstimationNetwork,
        mixture: MixtureEnergy,
        calibration: ScoreCalibration,
        penalty_dims: slice | None = None,
        detach_rows: bool = False,
        error_feature: bool = False,
        one_sided_error: bool = False,
        em_steps: int = 0,
        em_tolerance: float = 0.0,
        em_reseed: float = 0.0,
        fit_rows: int | None = None,
    ) -> None:
        super().__init__()
        self.compression, self.estimation = compression, estimation  # built in this order (parameter order)
        self.mixture, self.calibration = mixture, calibration
        self.penalty_dims, self.detach_rows = penalty_dims, detach_rows
        self.error_feature, self.one_sided_error = error_feature, one_sided_error
        self.em_steps, self.em_tolerance = em_steps, em_tolerance
        self.em_reseed, self.em_steps_run, self.components_reseeded = em_reseed, 0, 0
        self.fit_rows, self.rows_fitted = fit_rows, (0, 0)
        self.register_buffer("input_mask", None)

    def mask_inputs(self, hidden: torch.Tensor | None) -> None:
        """Hide the features where ``hidden`` (F,) bool is True from the compression, or none (None or no True).

        For features constant on the training rows: their scaled value is 0 in every training row, so the
        compression's first weights for them get no gradient and stay as initialised; a scored row that differs
        there would reach the latent through those untrained weights and move its score either way. Hidden,
        the difference reaches the score only through the reconstruction features (the decoder learned to
        give the training value). Training is unchanged: x * mask = x on the training rows.
        """
        if hidden is None or not bool(hidden.any()):
            self.input_mask = None
            return
        reference = next(self.parameters())
        mask = (~hidden).to(device=reference.device, dtype=reference.dtype)
        if self.input_mask is not None and self.input_mask.shape == mask.shape:
            self.input_mask.copy_(mask)  # in place: a DDP wrapper keeps the buffers it was given
        else:
            self.input_mask = mask

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        saved = state_dict.get(prefix + "input_mask")  # absent in models saved before the mask, or without one
        if saved is None:
            self.input_mask = None
        elif self.input_mask is None or self.input_mask.shape != saved.shape:
            self.input_mask = next(self.parameters()).new_ones(saved.shape)  # the saved one is copied in below
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def represent(self, x: torch.Tensor, memberships: bool = True) -> DAGMMOutput:
        """Everything but the energy: x (N, F) (any dtype: computed in the parameters'). ``memberships=False``
        skips the estimation network (gamma None), which scoring does not need."""
        x = self.as_input(x)
        inputs = x if self.input_mask is None else x * self.input_mask
        compressed = self.compression(inputs)  # an ensemble's first layers take x (N, F) for every member
        features, error = reconstruction_features(x, compressed.x_hat)
        columns = [compressed.z, features]
        if self.error_feature:
            columns.append(torch.log(error + ERROR_FLOOR).unsqueeze(-1))
        rows = torch.cat(columns, dim=-1)
        rows = rows.detach() if self.detach_rows else rows
        gamma = self.estimation(rows) if memberships else None
        return DAGMMOutput(
            compressed.z, compressed.x_hat, rows, gamma, error, losses=compressed.losses, codes=compressed.codes
        )

    def forward(self, x: torch.Tensor, fit_mask: torch.Tensor | None = None, memberships: bool = True) -> DAGMMOutput:
        out = self.represent(x, memberships or self.training)
        if self.training:
            if fit_mask is not None and not bool(fit_mask.any()):
                return out  # no rows to fit a mixture on: no energy for this batch
            fit = slice(None) if fit_mask is None else fit_mask
            out.params = self.mixture.batch_parameters(out.rows[..., fit, :], out.gamma[..., fit, :])
        out.energy = self.mixture.energy(out.rows, out.params, one_sided_last=self.scores_one_sided)
        if self.training and fit_mask is not None and self.one_sided_error and self.error_feature:
            # rows labelled as anomalies: their energy (pushed up by the anomaly term) as the score reads it
            labelled = ~fit_mask
            out.energy = out.energy.clone()
            out.energy[..., labelled] = self.mixture.energy(out.rows[..., labelled, :], out.params, one_sided_last=True)
        return out

    @property
    def scores_one_sided(self) -> bool:
        """Whether this model's energy now reads the error column one-sided (``one_sided_error``, eval mode)."""
        return self.one_sided_error and self.error_feature and not self.training

    def penalty(self, out: DAGMMOutput) -> torch.Tensor:
        """The mixture's degeneracy penalty P for the batch fit of ``out``."""
        return self.mixture.penalty(out.params, self.penalty_dims)

    def score(self, out: DAGMMOutput) -> torch.Tensor:
        """Anomaly score (N,) of an eval-mode output, higher = more anomalous."""
        if out.params is not None:  # (had: scored silently under the scored batch's own mixture fit)
            raise ConfigurationError(
                "score takes the output of a model in eval mode (model.eval() after fit): in training mode the "
                "forward pass fits the mixture to the batch itself"
            )
        return self.calibration(out.energy, out.error.to(out.energy.dtype))

    @classmethod
    def score_is_calibrated(cls) -> bool:
        """Whether ``score`` is the calibration's (energy, or energy + reconstruction error), not a subclass's."""
        return cls.score is DAGMMModel.score

    def as_input(self, x: torch.Tensor) -> torch.Tensor:
        """x on this model's device and in its parameters' dtype (x itself where it is already)."""
        reference = next(self.parameters())
        return x.to(device=reference.device, dtype=reference.dtype)

    @torch.no_grad()
    def score_batches(self, batches: Iterable[torch.Tensor]) -> torch.Tensor:
        """Scores of every row of ``batches`` (x tensors, as ``fit`` takes them), gathered from every rank in
        rank order: (N,)."""
        with evaluating(self):
            local = [self.score(self(self.as_input(x), memberships=False)) for x in XBatches(batches)]
        empty = torch.zeros(0, dtype=torch.float64, device=self.calibration.threshold.device)  # a rank without rows
        scores = gather_rows(torch.cat(local).double() if local else empty)
        missing = int(scores.isnan().sum())  # (every rank's rows: every rank decides alike)
        if missing:  # a NaN has no place among scores (a threshold of NaN had flagged no row, silently)
            raise NonFiniteError(
                f"{type(self).__name__}.score gave NaN for {missing:,} of the {len(scores):,} rows scored for the "
                "threshold: scores must be numbers (ordered: -inf and inf are)"
            )
        return scores

    @torch.no_grad()
    def fit(self, batches: Iterable[torch.Tensor] | torch.Tensor) -> torch.Tensor:
        """Training-set fit in eval mode with the current weights: the mixture from the rows of ``batches``
        (x tensors (N, F), re-iterable, or one tensor; under DDP each rank its own share), then the score
        calibration; both from at most ``fit_rows`` of them (``fit_positions``) where it is set. Returns the
        scores (N,) of the rows fitted (all ranks). A subclass with a ``score`` of its own takes the
        threshold on its own scores (one more pass). The model keeps its mode: score in eval mode."""
        batches = XBatches(batches)
        with evaluating(self):
            fitted, self.rows_fitted = batches, (0, 0)
            if self.fit_rows is not None and getattr(batches, "ordered", True):  # (positions need a fixed order)
                first, total = row_counts(batches, self.calibration.threshold.device)
                if total > self.fit_rows:
                    fitted = SampledRows(batches, fit_positions(total, self.fit_rows), first)
                self.rows_fitted = (min(total, self.fit_rows), total)
            outputs = _Reiterable(lambda: ((o.rows, o.gamma) for o in map(self.represent, map(self.as_input, fitted))))
            refined = self.em_steps > 0 or self.em_reseed > 0
            if refined:  # every EM step reads the rows once more: keep them if they are small
                outputs = _kept_if_small(outputs)
            k = self.mixture.n_components  # more than the network's: the extra start empty (``fit_components``)
            self.mixture.fit(_Reiterable(lambda: ((rows, padded_memberships(gamma, k)) for rows, gamma in outputs)))
            if refined:  # re-seeding and EM read the rows only (no memberships from the network)
                again = lambda: (self.represent(self.as_input(x), memberships=False).rows for x in fitted)  # noqa: E731
                rows = [rows for rows, _ in outputs] if isinstance(outputs, list) else _Reiterable(again)
                if self.em_reseed > 0:
                    self.components_reseeded = int(self.mixture.reseed_empty(rows, self.em_reseed).max())
                self.em_steps_run = self.mixture.refine(rows, self.em_steps, self.em_tolerance)
            scored = (self(self.as_input(x), memberships=False) for x in fitted)
            parts = [(out.energy, out.error.to(out.energy.dtype)) for out in scored]
            energy, error = (self._every_rank([part[i] for part in parts]) for i in (0, 1))
            scores = self.calibration.fit(energy, error)
        if self.threshold_is_quantile and not self.score_is_calibrated():  # a subclass's own score: its own
            scores = self.score_batches(fitted)  # quantile (the calibration's was of the calibration's scores)
            self.calibration.set_threshold(scores)
        return scores

    @property
    def sampled_fit(self) -> bool:
        """Whether the last fit read only some of the training rows (``fit_rows``)."""
        return self.rows_fitted[0] < self.rows_fitted[1]

    def _every_rank(self, parts: list[torch.Tensor]) -> torch.Tensor:
        """Per-row values ((M,) n) of this rank's batches, concatenated over batches and ranks: ((M,) N)."""
        empty = torch.zeros(
            (*self.mixture.member_shape, 0), dtype=self.mixture.dtype, device=self.calibration.threshold.device
        )
        local = torch.cat(parts, dim=-1) if parts else empty  # a rank without rows still joins the gather
        return gather_rows(local.movedim(-1, 0)).movedim(0, -1)
