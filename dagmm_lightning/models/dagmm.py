"""DAGMM (Zong et al., ICLR 2018) as a LightningModule: the training step, the training-set refit and
the evaluation steps around the plain ``DAGMMModel``. Variants change only ``build_compression`` (and
what the step adds) and say what they support by the class attributes below it (``ensembles``,
``compiles``, ...); every score, loss and mixture lives in its own module."""

from __future__ import annotations

import copy
import inspect
import math
import numbers
import os
import warnings
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Literal

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import nn

from dagmm_lightning.errors import warn

try:
    from lightning.pytorch.callbacks import WeightAveraging
except ImportError:  # Lightning < 2.6 has none
    WeightAveraging = ()

from dagmm_lightning.distributed import destroy_process_group_at_exit
from dagmm_lightning.errors import (
    ConfigurationError,
    DAGMMError,
    DataError,
    NonFiniteError,
    check_choice,
    check_flags,
    check_layer_sizes,
    check_range,
)
from dagmm_lightning.labels import BATCH_FORMAT, KNOWN_NORMAL, LABELLED_ANOMALY, UNLABELLED
from dagmm_lightning.losses import AnomalyLoss, dagmm_objective, summed_terms
from dagmm_lightning.mixture import (
    MIXTURE_FAMILIES,
    MixtureDtype,
    MixtureEnergy,
    MixtureFamily,
    build_mixture,
    check_family,
    reseedable_components,
)
from dagmm_lightning.models.compiled_step import CompiledAdamStep, plain_adam_problem
from dagmm_lightning.networks import Activation, Autoencoder, Compressed, DAGMMModel, DAGMMOutput, EstimationNetwork
from dagmm_lightning.networks.dagmm import SCALED_LIMIT, in_mode, is_ours
from dagmm_lightning.scoring import Inference, ScoreCalibration
from dagmm_lightning.sizing import EXPLAINED_VARIANCE, NetworkSizes, mixture_components, network_sizes

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
# settings the fitted state (threshold, training-set mixture, score calibration) was made under, kept in
# a checkpoint under FITTED_UNDER_KEY
FITTED_UNDER_KEY = "dagmm_fitted_under"
FITTED_UNDER = (
    "contamination",
    "threshold_rows",
    "inference",
    "reconstruction_weight",
    "fit_components",
    "fit_rows",
    "em_steps",
    "em_tolerance",
    "em_reseed",
    "jitter",
    "one_sided_error",
)


def check_sizes_set_together(latent_dim: int | None, hidden_dims: tuple[int, ...] | None) -> None:
    if (latent_dim is None) != (hidden_dims is None):
        raise ConfigurationError("latent_dim and hidden_dims are chosen from the data together: set both or none")


LRSchedule = Literal["constant", "cosine"]
ThresholdRows = Literal["auto", "train", "val"]
VARIANT_RECORD_KEY = "dagmm_variant"  # what a checkpoint must match to load (class, mixture, input size)
CONTAMINATION_KEY = "dagmm_contamination"  # the share the threshold was taken at (null: the labels')
FIT_COUNTS_KEY = "dagmm_fit_counts"  # the last training-set fit's re-seeded components, EM steps, rows read
PROCESSES_KEY = "dagmm_training_processes"  # how many processes trained a checkpoint (the fit's world size)
PRECISION_KEY = "dagmm_fit_precision"  # the Trainer precision the fit ran at (absent: saved before it was kept)
BATCHES_KEY = "dagmm_batches_per_epoch"  # each process's training batches an epoch in the fit that wrote it
EPOCH_BATCHES_KEY = "dagmm_batches_into_epoch"  # the batches the checkpoint's last epoch had trained (at its save)
THREADS_KEY = "dagmm_training_threads"  # torch's threads in each of them (sums split by them: last digits)
GENERATORS_KEY = "dagmm_generators"  # a fit checkpoint's epoch and each rank's generator states
SANITY_FIT_ROWS = 8192  # training rows (each process's) the mixture is fitted on for the sanity-check validation
# the terms the package's own parts compute (the objective's, mixed_loss's, PU's classifier's, the VAE's
# and VQ-VAE's compression losses): another is a variant's own
PACKAGE_TERMS = {"reconstruction", "energy", "penalty", "anomaly_energy", "classifier", "kl", "commitment", "codebook"}
_EMPTY_WITHOUT_RESEEDING = (
    "fit_components: the components beyond the estimation network's start empty, and only re-seeding gives "
    "them rows: set em_reseed > 0 (e.g. 0.05)"
)


def batch_parts(batch) -> Batch:
    """``batch``'s (x, labels, row ids); another shape (a loader of one's own) is refused with the format."""
    if isinstance(batch, (tuple, list)) and len(batch) == 3:
        return batch
    got = f"{type(batch).__name__} of {len(batch)}" if isinstance(batch, (tuple, list, dict)) else type(batch).__name__
    raise DataError(
        f"{BATCH_FORMAT}; the loader gave a {got} (TensorDataset(x, labels, torch.arange(len(x))) gives them; "
        "README, 'Loaders of your own')"
    )


def refuse_non_finite_rows(x: torch.Tensor, ids: torch.Tensor, stage: str, where: str = "") -> None:
    """A ``DataError`` (its message after ``where``) naming the first row ids (N,) of ``stage`` rows x (N, F)
    that hold NaN or inf, if any (a loader of one's own: ``AnomalyDataModule`` refuses such rows)."""
    finite = torch.isfinite(x).all(dim=-1) if x.is_floating_point() else torch.ones(len(x), dtype=torch.bool)
    if not bool(finite.all()):
        bad = torch.as_tensor(ids).to(finite.device)[~finite][:5].tolist() if len(ids) == len(x) else "?"
        raise DataError(
            f"{where}{int((~finite).sum())} {stage} row(s) hold NaN or inf (row ids {bad}): fill or drop such values "
            "in the loader's rows"
        )


class TrainingRows:
    """The x of every batch of ``batches`` (x, training labels, row ids), less rows labelled as anomalies:
    the rows a mixture is fitted on. Re-iterable. ``ordered``: whether every pass gives the same rows in the
    same order (``batches``' own, True where it does not say), which a fit of some of them (``fit_rows``)
    needs."""

    def __init__(self, batches: Iterable[Batch]) -> None:
        self.batches = batches
        self.ordered = getattr(batches, "ordered", True)

    def __iter__(self) -> Iterator[torch.Tensor]:
        for batch in self.batches:
            x, y, _ = batch_parts(batch)
            keep = y != LABELLED_ANOMALY
            yield x if bool(keep.all()) else x[keep]


class FirstBatches:
    """The first batches of ``batches`` that hold at least ``rows`` rows a mixture is fitted on between
    them (labelled anomalies not counted); ``cut`` tells whether a pass left batches out. Re-iterable."""

    def __init__(self, batches: Iterable[Batch], rows: int) -> None:
        self.batches, self.rows, self.cut = batches, rows, False
        self.ordered = getattr(batches, "ordered", True)

    def __iter__(self) -> Iterator[Batch]:
        seen = 0
        for batch in self.batches:
            if seen >= self.rows:
                self.cut = True
                return
            yield batch
            seen += int((batch_parts(batch)[1] != LABELLED_ANOMALY).sum())


def sizes_summary(sizes: NetworkSizes, rows: int, features: int, fit_components: int, fitted_rows: int) -> str:
    """One line on the networks ``network_sizes`` chose for ``rows`` training rows of ``features`` columns,
    and on the mixture that scores (``fit_components`` components, fitted on ``fitted_rows`` rows)."""
    latent = f"latent {sizes.latent_dim}"
    if sizes.latent_dim < sizes.explained_latent:
        latent += (
            f" ({sizes.explained_latent} would keep {100 * EXPLAINED_VARIANCE:.0f} % of the variance; as wide as the "
            "rows fit a mixture on)"
        )
    else:
        latent += f" (keeps {100 * EXPLAINED_VARIANCE:.0f} % of the variance)"
    line = f"networks sized from {rows:,} training rows of {features} features: {latent}, hidden widths "
    line += f"{tuple(sizes.hidden_dims)}, K {sizes.n_components}; the mixture that scores: {fit_components} components"
    if fitted_rows < rows:
        line += f", fitted on {fitted_rows:,} of those rows, a fixed random subset (fit_rows)"
    return line


class UnorderedBatches:
    """A loader of the user's, whose passes may give the rows in another order (shuffled, a
    ``DistributedSampler``): marked so that a fit reads every row of it (``TrainingRows.ordered``)."""

    ordered = False

    def __init__(self, loader: Iterable[Batch]) -> None:
        self.loader = loader

    def __iter__(self) -> Iterator[Batch]:
        return iter(self.loader)


def contamination_from_labels(share: float) -> float:
    """The contamination a fit with ``contamination`` null takes from its labels' anomaly share, clipped to
    (0, 0.5] (``DAGMM.setup`` refuses a share of 0, and one above 0.5 where the threshold is contamination's)."""
    return min(max(share, 1e-4), 0.5)


CLI_INSTANTIATOR = "lightning.pytorch.cli.instantiate_module"  # (what LightningCLI saves beside _class_path)


class DAGMM(L.LightningModule):
    """Compression network + reconstruction features + estimation network + mixture energy.

    The defaults are the paper's KDDCUP99 model (section 4): FC(in,60)-FC(60,30)-FC(30,10)-FC(10,1) with
    tanh, mirrored decoder, estimation FC(3,10)-tanh-dropout 0.5-FC(10,4), K = 4, lambda1 0.1, lambda2
    0.005, Adam lr 1e-4.

    Args:
        input_dim: number of input features; the CLI links it from the data module.
        hidden_dims: encoder layer sizes between input and latent; the decoder mirrors them.
        latent_dim: size of the compressed code z_c. None (with ``hidden_dims`` None): both chosen from
            the training rows when training starts (``sizing.network_sizes``); a checkpoint keeps them.
        activation: activation between layers of every network (``tanh`` in the paper).
        estimation_hidden: hidden layer sizes of the estimation network.
        dropout: dropout after each hidden layer of the estimation network.
        n_components: K, the number of mixture components. None (with the sizes None): chosen with them from
            the training rows, as many components (4, 8, 16 or 32) as the rows (at most ``fit_rows``) can fit
            mixture rows of the chosen latent (``sizing.mixture_components``).
        lambda_energy: lambda1, weight of the mean sample energy.
        lambda_cov: lambda2, weight of the covariance-diagonal penalty.
        lr: Adam learning rate.
        lr_schedule: ``constant`` (the paper) or ``cosine`` (from ``lr`` down to 0 over the run's steps).
        mixture: mixture family, ``gaussian``, ``laplace`` or ``gaussian+laplace`` (an ensemble whose members
            alternate between the two, Gaussian first; needs ``members`` >= 2).
        jitter: added to the covariance diagonal before every Cholesky factorisation.
        mixture_dtype: ``float64`` or ``float32``; the mixture never runs in half precision.
        contamination: expected share of anomalies; the stored threshold is the (1 - contamination)
            quantile of the scores of ``threshold_rows``. None: the share of anomalies in the data's labels
            (a user's table with a label column; an error for a table without labels).
        threshold_rows: the rows whose scores set the threshold: ``train`` (the training rows, normal ones
            only where the split has labels: that share of normal rows is flagged, and the anomalies caught
            come on top; the rows trained on score lower than new ones) or ``val`` (every val row, anomalies
            included at the data's ratio, none of which the model trained on: about that share of rows like
            them is flagged; ``DAGMMDetector``'s ``calibration_fraction``); the val metrics at the threshold
            are then measured on the rows that set it. ``auto``: ``val`` where the run has val rows (the
            AnomalyDataModule's) and the threshold is a contamination quantile, else ``train``. A model with
            a threshold of its own (PU's c / 2) takes ``auto`` only.
        inference: the score: ``energy`` (the paper) or ``energy+reconstruction`` (the study's modified
            inference; see ``ScoreCalibration``).
        reconstruction_weight: w in the combined score.
        anomaly_loss: the term for training rows labelled as anomalies (mixed-label split; the study's
            "modified loss"): ``hinge``, ``softplus`` or the study's ``inverse`` (see
            ``losses.anomaly_energy_loss``). Labelled anomalies take no part in the reconstruction term
            or in the mixture statistics (batch and training-set fit).
        anomaly_margin: m, in energy units above the mean normal energy.
        energy_trains_compression: whether the energy and penalty terms train the compression network
            too (the paper: end to end). False: they train only the estimation network, and the
            compression network learns only to reconstruct, so the energy cannot shrink the latent.
        error_feature: the mixture rows gain log(squared reconstruction error + 1e-6) after [z_c, relative
            distance, cosine]: the energy then weighs how well a row is reconstructed by what is usual for
            rows like it (the improved config; BENCHMARKS.md, "The reconstruction error as a mixture
            feature").
        one_sided_error: with ``error_feature``, the score reads that feature one-sided: an error lower than
            a row's component expects (given the row's other mixture features) adds no energy, so that rows
            at the centre of the data, reconstructed better than the training rows, are not flagged for it
            (``MixtureEnergy.energy``'s ``one_sided_last``; BENCHMARKS.md, "Rows at the centre of the
            data"). Training and the mixture's fit read the feature as it is, but for the anomaly term's
            labelled anomalies and the PU classifier's input, which read it as the score does. Checkpoints
            saved before the option score as they were trained (two-sided).
        members: M, the models of an ensemble trained at once as one vectorised model (stacked weights,
            one forward pass for all; each from its own initialisation, on the same batches); the score is
            the mean of the members' scores, each z-scored on the training rows the fit reads. 1: one model
            (the only value of the VAE, VQ-VAE and positive-unlabeled variants: ``ensembles = False``).
        compile: run each training step (forward, backward and Adam's update) as one ``torch.compile`` graph
            (``CompiledAdamStep``): the same math, compiled once at the first step (up to a minute; on CPU
            it needs a C++ compiler); an epoch then takes ~0.58x the time of a plain eager PyTorch loop of
            the same math (with ``steps_per_call`` 8: 0.44-0.57x on an AVX2 CPU, 0.38-0.41x on an AVX-512
            one; BENCHMARKS.md, "Speed"). Between the checks
            at every epoch's start, a setting changed in place reaches the compiled graph only if it is a
            hyperparameter (``CompiledAdamStep``). Dropout masks are drawn another way (uniform draws, not
            ``bernoulli_``), so a run differs from an eager one beyond float rounding. Batches with labelled
            anomalies, runs of more than one process and precisions other than 32 and 64 take the step
            eagerly. Scoring stays eager. The step updates the weights itself (Lightning's manual
            optimisation), so the Trainer's ``gradient_clip_val`` and ``accumulate_grad_batches`` are
            refused (by Lightning) with it; ``torch.compile(model)`` of the whole module is not supported.
            Not the VQ-VAE variant's (``compiles = False``).
        steps_per_call: with ``compile``, up to that many batches (optimizer steps) per call of Lightning's
            training loop (its experimental ``dataloader_iter`` form), which share the loop's per-call
            work: ~1 ms here, a fifth of a compiled step of the paper's KDDCUP99 model. The same batches in
            the same order, so the same result; but what counts batches counts calls: per-batch callbacks
            (``on_train_batch_start/end``, ``every_n_train_steps``) run once a call, ``log_every_n_steps``
            and the logger's step axis count calls, and a checkpoint saved within an epoch does not resume
            exactly. Runs that validate within an epoch, and loaders of unknown length, take one batch a
            call. Without ``compile`` it has no effect.
        em_steps: EM iterations that refine the training-set fit of the mixture (the one that scores) after
            its M-step from the estimation network's memberships (``MixtureEnergy.refine``; for Laplacian members
            an EM-like iteration); each is one pass over the training rows' mixture rows, kept in memory
            (with their memberships, for the fit) up to 256 MiB, else computed again every pass. 0: the paper's fit.
        em_tolerance: stop the EM iterations before ``em_steps`` once the training rows' mean energy (of
            every member) moved by less than this in one iteration, as scikit-learn's ``GaussianMixture``
            stops on its ``tol``; 0: run all ``em_steps``. The count run is logged as ``train/em_steps``.
        em_reseed: before any EM steps, the components the estimation network left
            (nearly) empty (fewer rows than the mixture rows' size + 1) move to this fraction of the
            training rows, those the fit explains worst (highest energy), split by k-means
            (``MixtureEnergy.reseed_empty``); 0: none. EM alone never revives an empty component.
        fit_components: components of the training-set fit (the mixture that scores), at least the
            estimation network's ``n_components``: those beyond the network's start empty, and re-seeding
            (``em_reseed`` > 0, needed) places them, EM refines them. The training step costs what K =
            ``n_components`` costs (but the PU variant's, which reads the fit); the score gets the finer
            mixture. None: ``n_components`` (the paper). ``"auto"`` (with the sizes None): as many (4 to 32)
            as the training rows the fit reads (``fit_rows``) can fit mixture rows of the chosen latent
            (``sizing.mixture_components``),
            but no more than one re-seeding can place (the re-seeded rows hold dim + 1 rows per component;
            none without ``em_reseed``), at least ``n_components``.
        fit_rows: the training-set fit (the mixture's M-step, re-seeding and EM steps; the score's
            normalisation and, with ``threshold_rows`` train, its threshold quantile) reads at most this
            many training rows, a fixed random subset (``networks.dagmm.fit_positions``). An EM step of K
            full-covariance components on N rows D wide costs N K D^2: on millions of rows each
            validation's fit would take many minutes. With the sizes None, the latent's cap and K count
            these rows. None: every row (the paper).
    """

    def __init__(
        self,
        input_dim: int,
        hidden_dims: tuple[int, ...] | None = (60, 30, 10),
        latent_dim: int | None = 1,
        activation: Activation = "tanh",
        estimation_hidden: tuple[int, ...] = (10,),
        dropout: float = 0.5,
        n_components: int | None = 4,
        lambda_energy: float = 0.1,
        lambda_cov: float = 0.005,
        lr: float = 1e-4,
        lr_schedule: LRSchedule = "constant",
        mixture: MixtureFamily = "gaussian",
        jitter: float = 1e-6,
        mixture_dtype: MixtureDtype = "float64",
        contamination: float | None = 0.1,
        threshold_rows: ThresholdRows = "auto",
        inference: Inference = "energy",
        reconstruction_weight: float = 1.0,
        anomaly_loss: AnomalyLoss = "hinge",
        anomaly_margin: float = 5.0,
        energy_trains_compression: bool = True,
        error_feature: bool = False,
        one_sided_error: bool = True,
        members: int = 1,
        compile: bool = False,
        steps_per_call: int = 1,
        em_steps: int = 0,
        em_tolerance: float = 0.0,
        em_reseed: float = 0.0,
        fit_components: int | Literal["auto"] | None = None,
        fit_rows: int | None = None,
    ) -> None:
        super().__init__()
        if input_dim < 1:
            raise ConfigurationError(f"input_dim must be >= 1, got {input_dim}")
        if contamination is not None:
            check_range("contamination", contamination, 0.0, 0.5, low_open=True)
        check_range("lr", lr, 0.0, math.inf, low_open=True, high_open=True)
        weights = dict(lambda_energy=lambda_energy, lambda_cov=lambda_cov, anomaly_margin=anomaly_margin)
        for name, weight in dict(weights, reconstruction_weight=reconstruction_weight).items():
            check_range(name, weight, 0.0, math.inf, high_open=True)  # below 0 a loss rewards what it should not
        check_flags(
            energy_trains_compression=energy_trains_compression,
            error_feature=error_feature,
            one_sided_error=one_sided_error,
            compile=compile,
        )
        for name, sizes in dict(hidden_dims=hidden_dims, estimation_hidden=estimation_hidden).items():
            if sizes is not None:
                check_layer_sizes(name, sizes)
        if latent_dim is not None and not latent_dim >= 1:
            raise ConfigurationError(f"latent_dim must be >= 1 (or null: from the data), got {latent_dim}")
        if n_components is not None and not n_components >= 1:
            raise ConfigurationError(f"n_components must be >= 1 (or null: from the data), got {n_components}")
        check_choice("inference", inference, Inference)
        check_choice("threshold_rows", threshold_rows, ThresholdRows)
        if threshold_rows != "auto" and not self.threshold_from_contamination:  # (had: 'train' ignored)
            raise ConfigurationError(
                f"threshold_rows {threshold_rows!r} is for a contamination quantile, not {type(self).__name__}'s "
                "threshold: leave it at 'auto'"
            )
        check_choice("anomaly_loss", anomaly_loss, AnomalyLoss)
        check_choice("lr_schedule", lr_schedule, LRSchedule)
        if members > 1 and self.ensembles and self._compression_without_members():
            raise ConfigurationError(
                f"members {members}: {type(self).__name__} builds its own compression network, and an ensemble "
                "needs one that takes the members axis (as Autoencoder(..., members) does); set members 1, or the "
                "class attribute ensembles = True in the class that defines build_compression once it does"
            )
        if members < 1 or (members > 1 and not self.ensembles):
            what = (
                "must be >= 1"
                if members < 1
                else f"> 1 (an ensemble) is built for DAGMM's autoencoder, not {type(self).__name__}"
            )
            fix = (  # (configs/improved.yaml sets 5: its variant's way is the variant's config + improvements.yaml)
                "; set members to 1 (on the command line, where configs/improved.yaml sets 5: a variant takes the "
                "improved method's settings from its own config composed with configs/improvements.yaml)"
                if members > 1
                else ""
            )
            raise ConfigurationError(f"members {what}, got {members}{fix}")
        if mixture == "gaussian+laplace" and not self.ensembles:  # else: 'needs members >= 2', which it refuses
            raise ConfigurationError(
                "mixture 'gaussian+laplace' alternates the family over an ensemble's members, and "
                f"{type(self).__name__} trains no ensemble: choose 'gaussian' or 'laplace'"
            )
        if type(self).build_mixture_energy is DAGMM.build_mixture_energy:  # (a variant's own may ignore it)
            check_family(mixture, members)  # here, not in setup after the data is read (a deep traceback)
        if compile and not self.compiles:
            raise ConfigurationError(f"compile is not available for {type(self).__name__} (its step updates state)")
        if steps_per_call < 1:
            raise ConfigurationError(f"steps_per_call must be >= 1, got {steps_per_call}")
        if steps_per_call > 1 and not compile:
            warn(f"steps_per_call {steps_per_call} has no effect without compile true")
        self.save_hyperparameters()
        for name, value in self.hparams.items():  # numpy's True (check_flags): a checkpoint of it loads unsafely only
            if isinstance(value, np.bool_):
                self.hparams[name] = self._hparams_initial[name] = bool(value)
        self.automatic_optimization = not compile  # the compiled step updates the weights itself
        check_sizes_set_together(latent_dim, hidden_dims)
        if n_components is None and latent_dim is not None:
            raise ConfigurationError("n_components null (chosen from the data) needs latent_dim and hidden_dims null")
        if em_steps < 0:
            raise ConfigurationError(f"em_steps must be >= 0, got {em_steps}")
        if not em_tolerance >= 0:
            raise ConfigurationError(f"em_tolerance must be >= 0, got {em_tolerance}")
        if not 0 <= em_reseed <= 0.5:
            raise ConfigurationError(f"em_reseed must be in [0, 0.5], got {em_reseed}")
        if fit_components == "auto" and latent_dim is not None:
            raise ConfigurationError(
                f"fit_components 'auto' (from the data) needs latent_dim and hidden_dims null, got latent_dim "
                f"{latent_dim} (configs/paper/* and configs/dagmm.yaml set the paper's sizes: compose "
                "configs/improved.yaml with configs/data/* only; or give fit_components null or a number)"
            )
        if fit_rows is not None and not (
            isinstance(fit_rows, numbers.Integral) and not isinstance(fit_rows, bool) and fit_rows >= 1
        ):
            raise ConfigurationError(f"fit_rows must be an integer >= 1 or null (every row), got {fit_rows!r}")
        whole = isinstance(fit_components, numbers.Integral) and not isinstance(fit_components, bool)
        if fit_components not in (None, "auto") and not (whole and fit_components >= 1):
            raise ConfigurationError(f"fit_components must be an integer >= 1, 'auto' or null, got {fit_components!r}")
        if whole and n_components is not None:
            self._check_fit_components(int(fit_components), n_components, em_reseed)
        self.model = self.build_model() if latent_dim is not None else None
        self.register_buffer("fitted_at_step", torch.tensor(-1, dtype=torch.long))
        self._fitted_weights: torch.Tensor | None = None  # mark_fitted's record (a checkpoint keeps the step only)
        self._training_scores: torch.Tensor | None = None
        self._threshold_scores: torch.Tensor | None = None  # the scores the threshold is the quantile of
        self._warned_unordered = False  # fit_rows with a loader of no fixed order: said once
        self._warned_labelled_rows = False  # labelled anomalies in a loader of one's own: said once
        # what the fitted state (threshold, mixture, calibration) was made under: set by each fit, or a checkpoint
        self._fitted_under: dict | None = None  # the FITTED_UNDER settings
        self._fitted_share: float | None = None  # the share of rows the threshold flags (threshold_share)
        self._fitted_record_step: int | None = None  # the fitted_at_step they belong to (a spawned refit's
        # workers set theirs, and only the state dict, fitted_at_step with it, comes back)
        self.resumed_at_step: int | None = None  # a checkpoint's global step, once one is loaded
        self._trained_on: dict | None = None  # load_from_checkpoint: the data module state it was trained with

    # --- what a variant changes -------------------------------------------------------------------
    model_class: type[DAGMMModel] = DAGMMModel

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        for name in ("score", "forward", "_scores"):
            if name in vars(cls):  # the steps and the threshold would not use it: scores that disagree, silently
                raise TypeError(
                    f"{cls.__name__} overrides DAGMM.{name}, which the steps and the threshold do not all go "
                    "through (they score with the network); change the score in a DAGMMModel subclass "
                    f"(score(self, out)) and set {cls.__name__}.model_class to it (README, 'Your own variant')"
                )
        network = vars(cls).get("model_class")
        if network is not None and not (isinstance(network, type) and issubclass(network, DAGMMModel)):
            raise TypeError(  # (had: an AttributeError from the first setup)
                f"{cls.__name__}.model_class must be a subclass of DAGMMModel (dagmm_lightning.networks), got "
                f"{network!r}"
            )
        terms = vars(cls).get("training_terms")
        if inspect.isfunction(terms):  # called as self.training_terms(out, y, labelled) in every step
            try:
                inspect.signature(terms).bind(cls, None, None, None)
            except (TypeError, ValueError):
                raise TypeError(
                    f"{cls.__name__}.training_terms{inspect.signature(terms)} does not take (self, out, y, "
                    "labelled), as each training step calls it (README, 'Your own variant')"
                ) from None

    ensembles = True  # whether ``members`` > 1 is supported
    learns_from_known_normals = False  # the positive-unlabeled split's labelled normal rows: DAGMMPU's
    threshold_from_contamination = True  # the (1 - contamination) quantile of some rows' scores (not PU's c / 2)
    compiles = True  # whether ``compile`` is supported
    detector_defaults: dict = {}  # settings DAGMMDetector gives this variant beside its own (model_kwargs win)

    @classmethod
    def _compression_without_members(cls) -> bool:
        """Whether a subclass defines ``build_compression`` below the class that says it ``ensembles``."""
        mro = cls.__mro__
        builds = next(i for i, c in enumerate(mro) if "build_compression" in vars(c))
        says = next(i for i, c in enumerate(mro) if "ensembles" in vars(c))
        return builds < says

    def build_compression(self) -> nn.Module:
        """The compression network: a module mapping x (N, F) to a ``Compressed`` (latent z (N, latent_dim),
        reconstruction x_hat (N, F), its own loss terms); with ``members`` > 1, z and x_hat carry a leading
        members axis (M, N, ...)."""
        hp = self.hparams
        return Autoencoder(hp.input_dim, hp.hidden_dims, hp.latent_dim, hp.activation, hp.members)

    def build_mixture_energy(self, n_components: int, dim: int) -> MixtureEnergy:
        """The mixture: ``n_components`` components over rows of size ``dim``, of the ``mixture`` family (a
        variant may return a ``MixtureEnergy`` of its own family), ``members`` of them at once."""
        hp = self.hparams
        return build_mixture(hp.mixture, n_components, dim, hp.jitter, hp.mixture_dtype, hp.members)

    def model_options(self) -> dict:
        """Extra arguments of ``model_class``."""
        return {}

    def training_terms(
        self, out: DAGMMOutput, y: torch.Tensor, labelled: torch.Tensor | None
    ) -> dict[str, torch.Tensor]:
        """The weighted terms of the objective on one batch; ``y`` holds the training labels, ``labelled``
        (N,) the rows labelled as anomalies (None where there are none)."""
        hp = self.hparams
        penalty = self.model.penalty(out) if out.params is not None else None
        weights = (hp.lambda_energy, hp.lambda_cov, hp.anomaly_loss, hp.anomaly_margin)
        return {**dagmm_objective(out.error, out.energy, penalty, labelled, *weights), **out.losses}

    @property
    def score_is_energy(self) -> bool:
        """Whether the score is the plain energy (else the energy's ROC AUC is logged beside the score's)."""
        return self.hparams.inference == "energy" and self.model_class.score_is_calibrated()

    def score_description(self) -> str:
        """What the score is, in a few words (the figures' axis)."""
        hp = self.hparams
        if not self.model_class.score_is_calibrated():
            return f"score ({self.model_class.__name__}.score)"
        one = "energy" if hp.inference == "energy" else f"z(energy) + {hp.reconstruction_weight:g} z(recon. error)"
        return one if hp.members == 1 else f"mean of {hp.members} members' z-scored {one}"

    def mixture_row_names(self) -> list[str]:
        """The names of the mixture rows' columns: [z_c, relative distance, cosine(, log error)]."""
        hp = self.hparams
        codes = ["z"] if hp.latent_dim == 1 else [f"z[{i}]" for i in range(hp.latent_dim)]
        return [*codes, "relative distance", "cosine similarity", *["log recon. error"] * bool(hp.error_feature)]

    def read_error_as_set(self) -> None:
        """The model reads the error feature as ``one_sided_error`` says (a loaded checkpoint's model reads it
        as its fit did until a refit, which calls this)."""
        self.model.one_sided_error = bool(self.hparams.one_sided_error)

    def refit(self) -> None:
        """Fit the mixture and the score calibration on the training rows (labelled anomalies left out; at
        most ``fit_rows`` of them) with the current weights."""
        self.read_error_as_set()
        with self.forward_context():
            rows = TrainingRows(self._training_batches())
            if self.hparams.get("fit_rows") is not None and not rows.ordered and not self._warned_unordered:
                self._warned_unordered = True
                warn(
                    f"fit_rows {self.hparams.fit_rows}: the training loader gives its rows in no fixed order (no "
                    "AnomalyDataModule, a loader of your own), so the mixture is fitted on every training row"
                )
            self._training_scores = self._threshold_scores = self.model.fit(rows)
            if self.model.sampled_fit:  # the scores of the rows fitted only: every row's when asked for
                self._training_scores = None
            if self.threshold_on_val_rows and not self.trainer.sanity_checking:  # (the sanity check's fit is forgotten)
                self._threshold_scores = self._threshold_from_val_rows()
        self.mark_fitted()

    @property
    def threshold_on_val_rows(self) -> bool:
        """Whether the threshold is the val rows' quantile (``threshold_rows``; older checkpoints have none:
        the training rows')."""
        return self.threshold_on_val_rows_of(getattr(self._trainer, "datamodule", None))

    def threshold_on_val_rows_of(self, datamodule) -> bool:
        """Whether a fit on ``datamodule`` takes the threshold on its val rows (``auto`` resolved)."""
        rows = self.hparams.get("threshold_rows", "train")
        if rows != "auto":
            return rows == "val"
        if not self.threshold_from_contamination or not hasattr(datamodule, "refit_dataloader"):
            return False
        return bool(len(datamodule.splits.val))

    def _threshold_from_val_rows(self) -> torch.Tensor:
        """threshold_rows 'val': the (1 - contamination) quantile of the scores of every val row (all
        processes' rows); returns those scores (N,)."""
        datamodule = self.trainer.datamodule
        if not hasattr(datamodule, "refit_dataloader"):
            raise ConfigurationError("threshold_rows 'val' needs the AnomalyDataModule's val rows")
        scores = self.model.score_batches(x for x, _, _ in datamodule.refit_dataloader("val"))
        self.model.calibration.set_threshold(scores)
        return scores

    def mark_fitted(self) -> None:
        """Record which weights the mixture was fitted with: the step, and the weights themselves (weight
        averaging, SWA, swaps them in at the end of training without a step)."""
        self.fitted_at_step.fill_(self.global_step)
        self._fitted_weights = self._weights_fingerprint()
        self._fitted_under = self._fit_settings()
        self._fitted_share = self.model.calibration.contamination
        self._fitted_record_step = self.global_step
        self._fit_counts_logged = False

    def _fit_settings(self) -> dict:
        return {name: self.hparams[name] for name in FITTED_UNDER if name in self.hparams}

    def weights_changed_since_fit(self) -> bool:
        """Whether the weights differ from those the mixture was last fitted with (False when unknown)."""
        return self._fitted_weights is not None and not torch.equal(self._fitted_weights, self._weights_fingerprint())

    def _weights_fingerprint(self) -> torch.Tensor:
        """One float64 sum per parameter, on the CPU (teardown moves the module there, not this record)."""
        sums = [p.detach().double().sum() for p in self.parameters()] if self.model is not None else []
        return torch.stack(sums).cpu() if sums else torch.zeros(0)

    def forward_context(self):
        """The Trainer's precision context (autocast under mixed precision), so that passes outside the
        steps (refit, training scores) compute what the steps compute."""
        return self.trainer.precision_plugin.forward_context() if self._trainer is not None else nullcontext()

    # --- shared flow ------------------------------------------------------------------------------
    def build_model(self) -> DAGMMModel:
        hp = self.hparams
        compression = self._checked_compression()
        dim = hp.latent_dim + 2 + hp.error_feature  # [z_c, relative distance, cosine(, log error)]
        members = hp.members
        estimation = EstimationNetwork(dim, hp.estimation_hidden, hp.n_components, hp.activation, hp.dropout, members)
        fit_components = int(hp.get("fit_components") or hp.n_components)  # absent from older checkpoints
        self._check_fit_components(fit_components, hp.n_components, hp.em_reseed)
        mixture = self._checked_mixture(fit_components, dim)
        calibration = ScoreCalibration(hp.inference, hp.reconstruction_weight, hp.contamination, members)
        options = {"detach_rows": not hp.energy_trains_compression, "error_feature": hp.error_feature}
        options |= {"one_sided_error": hp.one_sided_error}  # (an older checkpoint's: False, on_load_checkpoint)
        options |= {"em_steps": hp.em_steps, "em_tolerance": hp.em_tolerance, "em_reseed": hp.em_reseed}
        options |= {"fit_rows": hp.get("fit_rows")}  # absent from older checkpoints: every row
        options |= self.model_options()
        return self.model_class(compression, estimation, mixture, calibration, **options)

    def _checked_compression(self) -> nn.Module:
        """``build_compression``'s network, run once in eval mode on two rows of zeros: a variant's mistake is
        named here, not met as a shape or attribute error deep in the first training step."""
        hp, name = self.hparams, type(self).__name__
        try:
            compression = self.build_compression()
        except DAGMMError:
            raise
        except Exception as err:
            raise ConfigurationError(f"{name}.build_compression failed: {type(err).__name__}: {err}") from err
        if not isinstance(compression, nn.Module):
            raise ConfigurationError(f"{name}.build_compression must return an nn.Module, got {type(compression)}")
        # a network of one's own also in training mode (its draws and state as they were: dropout, noise,
        # running statistics; after the eval pass, which initialises lazy layers)
        for mode in ("eval",) if is_ours(type(compression)) else ("eval", "training"):
            state = copy.deepcopy(compression.state_dict()) if mode == "training" else None
            try:
                with torch.random.fork_rng(devices=[]), torch.no_grad():
                    with in_mode(compression, mode == "training"):
                        out = compression(torch.zeros(2, hp.input_dim))
            except Exception as err:
                raise ConfigurationError(
                    f"{name}'s compression network fails in {mode} mode on rows of shape (2, {hp.input_dim}): "
                    f"{type(err).__name__}: {err}"
                ) from err
            finally:
                if state is not None:
                    compression.load_state_dict(state)
            self._check_compressed(out, mode)
        return compression

    def _check_compressed(self, out, mode: str) -> None:
        hp, name = self.hparams, type(self).__name__
        if not isinstance(out, Compressed):
            raise ConfigurationError(
                f"{name}'s compression network must return Compressed(z, x_hat) (dagmm_lightning.networks), got "
                f"{type(out).__name__}"
            )
        members = (hp.members,) if hp.members > 1 else ()
        for field, width in (("z", hp.latent_dim), ("x_hat", hp.input_dim)):
            shape, expected = tuple(getattr(out, field).shape), (*members, 2, width)
            if shape != expected:
                raise ConfigurationError(
                    f"{name}'s compression network gives {field} of shape {shape} in {mode} mode for rows of shape "
                    f"(2, {hp.input_dim}); expected {expected} (latent_dim {hp.latent_dim}, {hp.input_dim} input "
                    f"features{f', members {hp.members}' if members else ''})"
                )

    def _checked_mixture(self, n_components: int, dim: int) -> MixtureEnergy:
        """``build_mixture_energy``'s mixture, its sizes and methods checked (``try_on_random_rows``): a
        variant's mistake named as it is built."""
        name, members = type(self).__name__, self.hparams.members
        try:
            mixture = self.build_mixture_energy(n_components, dim)
        except DAGMMError:
            raise
        except Exception as err:  # (a family missing an abstract method: TypeError, can't instantiate)
            raise ConfigurationError(f"{name}.build_mixture_energy failed: {type(err).__name__}: {err}") from err
        if not isinstance(mixture, MixtureEnergy):
            raise ConfigurationError(
                f"{name}.build_mixture_energy must return a MixtureEnergy (dagmm_lightning.mixture), got "
                f"{type(mixture).__name__}"
            )
        built = (mixture.n_components, mixture.dim, mixture.members)
        if built != (n_components, dim, members):
            raise ConfigurationError(
                f"{name}.build_mixture_energy built n_components {built[0]}, dim {built[1]}, members {built[2]}; "
                f"the model needs {n_components}, {dim}, {members}: pass them on"
            )
        if not is_ours(type(mixture)):  # (ours: tested)
            mixture.try_on_random_rows()
        return mixture

    @staticmethod
    def _check_fit_components(fit_components: int, n_components: int, em_reseed: float) -> None:
        if fit_components < n_components:
            raise ConfigurationError(
                f"fit_components ({fit_components}) must be at least n_components ({n_components}): the fit "
                "starts from the estimation network's memberships"
            )
        if fit_components > n_components and em_reseed == 0:
            raise ConfigurationError(_EMPTY_WITHOUT_RESEEDING)

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        x, y, ids = batch_parts(batch)
        if y.shape != (len(x),):
            raise DataError(f"training labels of shape {tuple(y.shape)} for {len(x)} rows; {BATCH_FORMAT}")
        labelled = y == LABELLED_ANOMALY
        other = (y != KNOWN_NORMAL) & (y != UNLABELLED) & ~labelled  # (a loader of one's own: 2, or its ids)
        any_labelled, any_other = torch.stack([labelled.any(), other.any()]).tolist()  # one read for both
        if any_other:
            raise DataError(f"a training batch holds the label {y[other][0].item()!r}; {BATCH_FORMAT}")
        labelled = labelled if any_labelled else None
        if labelled is not None and not self._warned_labelled_rows:
            self._warn_of_labelled_rows_in_own_loader()
        logging = self.is_logging_step()  # before the step, which advances global_step
        try:
            if self.automatic_optimization:
                loss, terms = self._loss(x, y, labelled)
                self._check_finite(loss, terms)
            else:
                loss, terms = self._manual_step(x, y, labelled)
        except NonFiniteError:  # the input's, not the model's, where the rows hold NaN (a loader of one's own)
            refuse_non_finite_rows(x, ids, "training", f"at {self._where()}: ")
            raise
        self._last_loss = loss.detach()  # no sync here; read as last_training_loss
        if logging:
            self.log("train/loss", loss, prog_bar=True, batch_size=len(x))
            self.log_dict({f"train/{name}": value for name, value in terms.items()}, batch_size=len(x))
        return loss.to(next(self.model.parameters()).dtype)  # (float x's own; integer x trains in it too)

    @property
    def last_training_loss(self) -> float:
        """The loss of the last training step (``train/loss`` is logged every ``log_every_n_steps`` only)."""
        last = getattr(self, "_last_loss", None)
        return float("nan") if last is None else float(last)

    def _training_steps(self, dataloader_iter: Iterator) -> torch.Tensor:
        """``steps_per_call`` > 1: up to that many batches (training steps) from Lightning's iterator of
        (batch, batch_idx, dataloader_idx), each prepared as Lightning prepares a batch; fewer at the end of
        the epoch, at ``max_steps`` and when the trainer should stop; one where the loader's length is
        unknown (the iterator's end would then fall inside a call). Returns the last batch's loss. Stands
        in for ``training_step`` during such a fit (``setup``)."""
        trainer, loss = self.trainer, None
        steps = self.hparams.steps_per_call if dataloader_iter.length is not None else 1
        for _ in range(steps):
            if loss is not None and (trainer.should_stop or 0 <= trainer.max_steps <= self.global_step):
                break
            try:
                batch, batch_idx, _ = next(dataloader_iter)
            except StopIteration:
                if loss is None:
                    raise
                break
            batch = self._on_before_batch_transfer(trainer.precision_plugin.convert_input(batch), dataloader_idx=0)
            loss = type(self).training_step(self, trainer.strategy.batch_to_device(batch, dataloader_idx=0), batch_idx)
        return loss

    @property
    def threshold_share(self) -> float | None:
        """The share of rows the threshold was set to flag (``contamination``, or the labels' share it was
        taken from); None before a fit or a checkpoint sets it."""
        if not self.threshold_from_contamination:  # (PU: c / 2)
            return None
        if self._fitted_share is not None and self._fitted_record_is_current():
            return self._fitted_share
        return getattr(getattr(self.model, "calibration", None), "contamination", None)

    def _fitted_record_is_current(self) -> bool:
        return self._fitted_record_step is not None and int(self.fitted_at_step) == self._fitted_record_step

    def _warn_of_fit_settings_given_at_load(self, saved: dict) -> None:
        """load_from_checkpoint(path, contamination=...): the threshold, mixture and score calibration are
        the checkpoint's, fitted under its settings (``saved``; Lightning has put the new values into the
        checkpoint's hparams already); another value shows in hparams, but acts at a new fit."""
        given = [
            f"{name} {self.hparams[name]!r} (the checkpoint's {saved[name]!r})"
            for name in FITTED_UNDER
            if name in saved and name in self.hparams and self.hparams[name] != saved[name]
        ]
        if given:
            warn(
                f"load_from_checkpoint: {', '.join(given)}: the threshold, mixture and score calibration are the "
                "checkpoint's, fitted with its settings; these take effect only when a fit refits them (trainer.fit)"
            )

    def _warn_of_labelled_rows_in_own_loader(self) -> None:
        """AnomalyDataModule labels training rows as anomalies only for the mixed-label split, which asks
        for it; a loader of one's own that carries the truth (1 = anomaly) would train on it unawares."""
        self._warned_labelled_rows = True
        if not hasattr(getattr(self._trainer, "datamodule", None), "refit_dataloader"):
            warn(
                "training batches hold rows labelled 1: labelled anomalies, which train the mixed loss "
                f"(anomaly_loss {self.hparams.anomaly_loss!r}) and are left out of the mixture; to train without "
                "labels, give training rows 0 (normal) or -1 (unknown)"
            )

    def _loss(
        self, x: torch.Tensor, y: torch.Tensor, labelled: torch.Tensor | None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The objective (float64 scalar) and its weighted terms on one batch."""
        try:
            out = self.model(x, fit_mask=None if labelled is None else ~labelled)
        except NonFiniteError as err:
            raise NonFiniteError(f"at {self._where()}: {err}") from None
        terms = self.training_terms(out, y, labelled)
        return summed_terms(terms), terms

    def _manual_step(
        self, x: torch.Tensor, y: torch.Tensor, labelled: torch.Tensor | None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The optimisation step of ``compile``: compiled where it can be, else (and where the compiled loss
        is NaN: its Cholesky factorisation has no retry) eager, on the same Adam."""
        optimizer, loss = self.optimizers(), None
        step = self._compiled_step(optimizer.optimizer) if labelled is None and self._step_compiles() else None
        if step is not None and step.accepts(x):
            try:
                loss, terms = step(x, y)
            except torch._dynamo.exc.BackendCompilerFailed as err:
                raise ConfigurationError(
                    f"compile: torch.compile could not compile the training step ({err.inner_exception!r}); set "
                    "--model.init_args.compile false, or install what its backend needs (on CPU a C++ compiler)"
                ) from None
        if loss is None or not math.isfinite(loss.item()):  # .item(): no tensor op on the hot path
            loss, terms = self._loss(x, y, labelled)
            self._check_finite(loss, terms)
            self.manual_backward(loss)
            optimizer.step()
            optimizer.zero_grad()
        else:  # updated already: count the step by the hooks LightningOptimizer.step runs around the torch step
            # (step() itself, with no gradients to apply, cost ~0.7 ms; the tests check global_step)
            optimizer._on_before_step()
            optimizer._on_after_step()
        scheduler = self.lr_schedulers()
        if scheduler is not None:
            scheduler.step()
        return loss, terms

    def _step_compiles(self) -> bool:
        trainer = self.trainer
        return trainer.world_size == 1 and str(trainer.precision) in ("32-true", "64-true")

    def _compiled_step(self, optimizer: torch.optim.Optimizer) -> CompiledAdamStep:
        """The compiled step for this model and optimizer, made once (kept out of the module's state)."""
        step = self.__dict__.get("_adam_step")
        if step is None or step.optimizer is not optimizer or step.model is not self.model:
            objective = lambda x, y: self.training_terms(self.model(x), y, None)  # noqa: E731
            settings = lambda: dict(self.hparams)  # noqa: E731  (what training_terms reads besides tensors)
            step = self.__dict__["_adam_step"] = CompiledAdamStep(self.model, objective, optimizer, settings)
        return step

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state.pop("_adam_step", None)  # compiled again where the model trains (a spawned process)
        state.pop("training_step", None)  # set again by setup
        return state

    def is_logging_step(self) -> bool:
        """True on the calls of the training loop whose logged values the logger writes (Lightning's own
        rule: every ``log_every_n_steps`` calls), and on the first step; call it before the step.

        Each ``self.log`` call costs Lightning about a millisecond of bookkeeping; for networks this
        small, logging every step made an epoch almost twice as slow as the same loop in plain PyTorch.
        """
        if self._trainer is None:
            return False  # nothing to log to
        return self.trainer._logger_connector.should_update_logs or self.global_step == 0

    def _check_finite(self, loss: torch.Tensor, terms: dict[str, torch.Tensor]) -> None:
        if math.isfinite(loss.item()):
            return
        bad = [name for name, value in terms.items() if not bool(torch.isfinite(value).all())]
        raise NonFiniteError(
            f"training loss is {loss.item()} at {self._where()}: non-finite term(s) {bad or ['(sum overflowed)']}"
            f"{self._own_parts_of(bad)}; check the input for NaN/inf, lower the learning rate or raise `jitter`"
        )

    def _own_parts_of(self, bad: list[str]) -> str:
        """Which of the non-finite terms ``bad`` a part of one's own computes, e.g. `` (energy: StudentT, a
        mixture family of your own)``; empty where the package's own parts compute them."""
        mixture, compression = type(self.model.mixture), type(self.model.compression)
        parts, family_terms = [], [name for name in ("energy", "penalty") if name in bad]
        if family_terms and not is_ours(mixture):
            parts.append(f"{' and '.join(family_terms)}: {mixture.__name__}, a mixture family of your own")
        if "reconstruction" in bad and not is_ours(compression):
            parts.append(f"reconstruction: {compression.__name__}, a compression of your own")
        others = [name for name in bad if name not in PACKAGE_TERMS]
        definer = next(c for c in type(self).__mro__ if "training_terms" in vars(c))  # (DAGMM's at the latest)
        sources = [f"{definer.__name__}.training_terms"] * (not is_ours(definer))
        sources += [f"{compression.__name__}'s losses"] * (not is_ours(compression))
        if others and sources:
            parts.append(f"{', '.join(others)}: {' or '.join(sources)}, of your own")
        return f" ({'; '.join(parts)})" if parts else ""

    def _where(self) -> str:
        return f"epoch {self.current_epoch}, step {self.global_step}"

    def configure_optimizers(self):
        params = list(self.parameters())
        # one fused kernel per step instead of a dozen small ones per tensor: ~0.5 ms of a ~6 ms step on CPU
        fused = all(p.device.type in ("cpu", "cuda") and p.dtype.is_floating_point for p in params)
        optimizer = torch.optim.Adam(params, lr=self.hparams.lr, fused=fused or None)
        if self.hparams.lr_schedule == "constant":
            return optimizer
        steps = self.trainer.estimated_stepping_batches
        if not math.isfinite(steps):
            raise ConfigurationError("lr_schedule 'cosine' needs a known run length: set max_epochs or max_steps")
        cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(int(steps), 1))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": cosine, "interval": "step"}}

    # --- training-set fit -------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        destroy_process_group_at_exit()
        # (Lightning's sync_dist advice for these counts, logged at validation: the same on every rank)
        warnings.filterwarnings(
            "ignore", message=r"It is recommended to use `self.log\('train/(em_steps|components_reseeded)'"
        )
        self._drop_iterator_step()
        datamodule = self.trainer.datamodule
        if stage == "fit":
            self._warned_labelled_rows = False  # said once a fit
            self._trained_on = None  # trained on this run's data from now on
            latent, width = self.hparams.latent_dim, self.hparams.input_dim
            if latent is not None and latent > width:  # (at fit, not each time a checkpoint loads)
                warn(
                    f"latent_dim {latent} is wider than the {width} input features: the autoencoder compresses "
                    "nothing (DAGMM's latent is narrower than its input; null chooses it from the data)"
                )
        elif self._trained_on is not None and hasattr(datamodule, "is_data_of"):  # a loaded model
            # the checkpoint's encoding and scaling; refused where this split's test rows overlap its training
            # rows (other data, a table of new rows, has none to overlap)
            datamodule.load_state_dict(self._trained_on, other_data=not datamodule.is_data_of(self._trained_on))
        if self.model is None:
            self._size_from_training_rows()
        mixture = self.model.mixture
        if stage == "fit" and self.model.one_sided_error and self.model.error_feature and not is_ours(type(mixture)):
            mixture.try_on_random_rows(one_sided_last=True)  # (not as the model is built: an older checkpoint's loads)
        if stage == "fit":  # a resume then loads the checkpoint's own mask
            constant = getattr(getattr(datamodule, "preprocessor", None), "constant", None)
            usable = constant is not None and len(constant) == self.hparams.input_dim
            hidden = torch.from_numpy(constant) if usable else None
            # weight averaging copied the module before this hook: its copy's buffers must pair with these
            for module in [self, *self._averaged_copies()]:
                if module.model is not None:
                    module.model.mask_inputs(hidden)
        splits = getattr(self.trainer.datamodule, "splits", None) if stage == "fit" else None
        pu_split = splits is not None and self.trainer.datamodule.split == "positive_unlabeled"
        if pu_split and not self.learns_from_known_normals:
            warn(
                f"split 'positive_unlabeled' is DAGMMPU's (configs/pu.yaml): {type(self).__name__} trains on "
                "every training row as unlabelled, and its val rows (labelled normal only) measure no anomaly"
            )
        if splits is not None and self.threshold_on_val_rows and not len(splits.val):
            raise DataError(
                "threshold_rows 'val' sets the threshold on the val rows, but there are none: set "
                "--data.val_fraction (e.g. 0.1), or threshold_rows 'train'"
            )
        components = self.hparams.n_components
        if splits is not None and components is not None and components > len(splits.train):
            raise ConfigurationError(
                f"n_components {components} is more than the {len(splits.train)} training rows: a mixture "
                "component needs rows to fit; choose fewer (--model.init_args.n_components N, or null: from the data)"
            )
        if str(self.trainer.precision).endswith("16-true"):
            raise ConfigurationError(
                f"precision {self.trainer.precision!r} casts every buffer, the float64 mixture and threshold "
                "included, to half precision; use '16-mixed' or 'bf16-mixed' (networks in half precision, the "
                "mixture in float64; on a CPU both run as bf16-mixed, Lightning's only half precision there)"
            )
        if self.hparams.compile and stage == "fit" and not self._step_compiles():
            warn(
                f"compile: the training step runs eagerly with {self.trainer.world_size} processes and precision "
                f"{self.trainer.precision!r} (it compiles for one process at precision 32-true or 64-true)"
            )
        if self.hparams.compile and self.hparams.steps_per_call > 1 and stage == "fit" and self._step_compiles():
            interval = self.trainer.val_check_interval
            if isinstance(interval, float) and interval == 1.0:  # validation at epoch ends only: calls keep them
                self.training_step = self._training_steps  # Lightning then hands the step its iterator
            else:
                warn("steps_per_call: one batch per call, since the run validates within an epoch")
        if self.hparams.contamination is None and stage == "fit" and self.threshold_from_contamination:
            share = self.share_for_contamination(self.trainer.datamodule)
            self.model.calibration.contamination = contamination_from_labels(share)
        if splits is not None and self.threshold_on_val_rows and len(splits.val):
            self._warn_if_val_lacks_anomalies(splits)
        if splits is not None:
            self._warn_of_options_without_effect(splits)

    def share_for_contamination(self, datamodule) -> float:
        """The labels' share of anomalies, for ``contamination`` null; refuses data without labels, or whose
        labels mark no anomaly or more than half the rows (``ConfigurationError``)."""
        share = getattr(datamodule, "anomaly_share", None)
        if share is None:
            raise ConfigurationError(
                "contamination is null (take it from the data's labels), but the data has no labels: set "
                "--model.init_args.contamination to the share of anomalies you expect, e.g. 0.05"
            )
        if share == 0:
            raise ConfigurationError(
                "contamination is null (take it from the data's labels), but the labels mark no row as an "
                "anomaly: check the label column, or set --model.init_args.contamination, e.g. 0.05"
            )
        if share > 0.5:  # it flags at most half the rows
            raise ConfigurationError(
                f"contamination is null (take it from the data's labels), but the labels mark {100 * share:.3g} % "
                "of the rows as anomalies: are they inverted (1 = anomaly)? Map them, or set "
                "--model.init_args.contamination (at most 0.5)"
            )
        return share

    def _warn_of_options_without_effect(self, splits) -> None:
        """Options given with other values than their defaults where this fit does not use them."""
        hp, defaults = self.hparams, inspect.signature(DAGMM.__init__).parameters
        if not (splits.train_labels == LABELLED_ANOMALY).any():
            given = [
                f"{name} {hp[name]!r}"
                for name in ("anomaly_loss", "anomaly_margin")
                if hp[name] != defaults[name].default
            ]
            if given:
                warn(
                    f"{' and '.join(given)}: for training rows labelled as anomalies (split 'mixed', "
                    "configs/mixed_loss.yaml; DAGMMDetector(variant='mixed_loss') with y), and this fit has none: they "
                    "play no part"
                )
        family = MIXTURE_FAMILIES.get(hp.mixture)
        if hp.mixture != defaults["mixture"].default and family and not isinstance(self.model.mixture, family):
            warn(  # a variant's build_mixture_energy of its own family
                f"mixture {hp.mixture!r} plays no part: {type(self).__name__}.build_mixture_energy builds a "
                f"{type(self.model.mixture).__name__}"
            )
        own_score = not self.model_class.score_is_calibrated() and not is_ours(self.model_class)
        weight = hp.reconstruction_weight
        given = [f"inference {hp.inference!r}"] * (hp.inference != "energy")
        given += [f"reconstruction_weight {weight:g}"] * (weight != defaults["reconstruction_weight"].default)
        if own_score and given:
            warn(
                f"{' and '.join(given)}: {self.model_class.__name__}.score is the variant's own; they act only "
                "where it calls DAGMMModel.score (the calibration's energy and reconstruction error)"
            )
        elif hp.inference == "energy" and weight != defaults["reconstruction_weight"].default:
            warn(
                f"reconstruction_weight {weight:g} weighs the reconstruction error in inference "
                "'energy+reconstruction' (configs/recon_inference.yaml); with inference 'energy' it plays no part "
                "in the model's score (dagmm benchmark --recon-inference rescores with it)"
            )

    def _warn_if_val_lacks_anomalies(self, splits) -> None:
        """The val rows' quantile flags about ``contamination`` of rows like them: where their anomalies went
        to training (``labelled_anomalies``, ``train_contamination``), that share of normal rows is flagged.
        (Where val holds the anomalies its split gives it, a contamination above their share is the user's.)"""
        datamodule = self.trainer.datamodule
        trained = getattr(datamodule, "val_anomalies_trained", lambda: 0)()
        if not trained:  # val as split, or no labels
            return
        val = datamodule.is_anomaly[splits.val]
        contamination, held = float(self.model.calibration.contamination), int(val.sum())
        if val.mean() < contamination / 2:
            warn(
                f"the threshold is the top {100 * contamination:.3g} % of the val rows' scores, but val holds "
                f"{held} {'anomaly' if held == 1 else 'anomalies'} in {len(val)} rows ({100 * val.mean():.3g} %; "
                f"labelled_anomalies or train_contamination moved {trained} of its anomalies into training): it "
                "flags about that share of normal rows, the anomalies come on top; lower those options to keep "
                "anomalies in val, or set --model.init_args.contamination to the share of normal rows to flag"
            )

    def teardown(self, stage: str) -> None:
        self._drop_iterator_step()

    def _drop_iterator_step(self) -> None:
        if self.__dict__.get("training_step") == self._training_steps:  # set by setup for steps_per_call
            del self.__dict__["training_step"]

    def _size_from_training_rows(self) -> None:
        if type(self.trainer.strategy.launcher).__name__ == "_MultiProcessingLauncher":
            raise ConfigurationError(
                "latent_dim null (sizes from the data) builds the networks in each process, and a spawned "
                "process (ddp_spawn, ddp_fork, ddp_notebook) cannot hand them back to the main one: use "
                "--trainer.strategy ddp, set latent_dim and hidden_dims, or call size_from_data first"
            )
        self.size_from_data(self.trainer.datamodule)

    def size_from_data(self, datamodule) -> None:
        """Build the networks of a ``latent_dim=None`` model, sized from ``datamodule``'s training rows
        (an ``AnomalyDataModule``, set up; ``sizing.network_sizes``); the sizes go into the hparams."""
        if not hasattr(datamodule, "arrays"):
            raise ConfigurationError("latent_dim null (sizes from the data) needs the AnomalyDataModule; set the sizes")
        x, y = datamodule.arrays("train")
        normal = y != LABELLED_ANOMALY
        hp = self.hparams
        keep = None if normal.all() else normal  # labelled anomalies left out, read block by block
        sizes = network_sizes(x, hp.n_components, 2 + hp.error_feature, keep, hp.get("fit_rows"))
        hidden, latent, components = sizes[:3]
        self.hparams.update(hidden_dims=hidden, latent_dim=latent, n_components=components)
        rows = len(x) if keep is None else int(keep.sum())
        fitted = min(rows, hp.get("fit_rows") or rows)  # the rows the scoring fit reads
        if hp.get("fit_components") == "auto":
            fitting = mixture_components(fitted, latent, 2 + hp.error_feature)
            placeable = reseedable_components(fitted, hp.em_reseed, latent + 2 + hp.error_feature)
            self.hparams.update(fit_components=max(components, min(fitting, components + placeable)))
        rank_zero_info(sizes_summary(sizes, rows, x.shape[1], int(hp.get("fit_components") or components), fitted))
        self.model = self.build_model()

    def _training_batches(self) -> Iterable[Batch]:
        batches = self._every_training_batch()
        if not self.trainer.sanity_checking:
            return batches
        # the sanity check's scores are not logged: a fit of the first rows tries the path (a fit of every
        # row had cost a refit of its own before training, minutes on a large table); forgotten after it
        self._sanity_batches = FirstBatches(batches, SANITY_FIT_ROWS)
        return self._sanity_batches

    def _every_training_batch(self) -> Iterable[Batch]:
        datamodule = self.trainer.datamodule
        if datamodule is not None and hasattr(datamodule, "refit_dataloader"):
            return datamodule.refit_dataloader()
        if self.trainer.train_dataloader is None:  # the sanity check runs before Lightning loads it
            self.trainer.fit_loop.setup_data()
        loader = self.trainer.train_dataloader
        # A pass of its own where the loader offers one: iterating the training loader would move its
        # position, and a checkpoint written after the refit would resume past the rest of the epoch.
        ordered_pass = getattr(loader, "ordered_pass", None)
        return ordered_pass() if callable(ordered_pass) else UnorderedBatches(loader)

    def training_scores(self) -> torch.Tensor:
        """Scores of all training rows (less labelled anomalies) under the current fit; cached (by the refit
        where it read every row)."""
        if self._training_scores is None:
            with self.forward_context():
                self._training_scores = self.model.score_batches(TrainingRows(self._training_batches()))
        return self._training_scores

    def _fit_is_current(self) -> bool:
        """Whether the mixture was fitted with the current weights (at this step; a checkpoint's own fit)."""
        return int(self.fitted_at_step) == self.global_step and not self.weights_changed_since_fit()

    def _refit_if_stale(self) -> bool:
        if self._fit_is_current():
            return False
        self.refit()
        if self._trainer is not None and self.trainer.state.fn == "fit" and (counts := self._fit_counts()):
            # a fit between validations (a checkpoint's, the fit's last, PU's at an epoch's start): its counts
            # too, at the step a validation there would log at (had: only in the fit's summary): the batches that
            # stepped before this one (Lightning's logging step), and after the loop global_step - 1
            step = min(self.trainer.fit_loop.epoch_loop._batches_that_stepped, self.global_step - 1)
            self._log_fit_counts(counts, max(step, 0))
        return True

    def _log_fit_counts(self, counts: dict[str, float], step: int) -> None:
        """The loggers get the last fit's ``counts`` at ``step``: once a fit (a validation just after a
        checkpoint's fit scores with it)."""
        for logger in self.loggers:
            logger.log_metrics(counts, step=step)
        self._fit_counts_logged = True

    def on_validation_epoch_start(self) -> None:
        # Lightning validates inside the training epoch, before `on_train_epoch_end`: refit here, so
        # validation (and a checkpoint written after it) uses the mixture of the current weights; at the
        # epoch's start, after the callbacks' hooks: weight averaging swaps its weights in there.
        if self.trainer.state.fn == "fit" and not self._fit_is_current():  # (current: a resumed checkpoint's
            # fit at the sanity check, a fit resumed at its end training nothing more; a step checkpoint's just
            # before this validation, which validation then scores with, as the checkpoint holds it)
            self.refit()

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            first = self.__dict__.pop("_sanity_batches", None)
            if first is not None and (first.cut or self.threshold_on_val_rows):  # of the first rows, or without
                # the val rows' threshold: the next use refits
                self.fitted_at_step.fill_(-1)
                self._fitted_weights, self._training_scores, self._threshold_scores = None, None, None
            return
        if self.trainer.state.fn == "fit":  # of the fit that validation scored with
            counts = self._fit_counts()
            for name, value in counts.items():  # (for callbacks and the bar; `logger` the same at every call:
                self.log(name, value, batch_size=1, logger=False)  # Lightning refuses a key logged otherwise)
            if counts and not getattr(self, "_fit_counts_logged", False):  # (at the step Lightning logs this
                self._log_fit_counts(counts, self.trainer.fit_loop.epoch_loop._batches_that_stepped)  # validation at)

    def _fit_counts(self) -> dict[str, float]:
        """The last training-set fit's counts that are not loss terms, as logged (where the fit has them)."""
        counts = {}
        if self.hparams.em_steps > 0:
            counts["train/em_steps"] = float(self.model.em_steps_run)
        if self.hparams.em_reseed > 0:
            counts["train/components_reseeded"] = float(self.model.components_reseeded)
        return counts

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint[VARIANT_RECORD_KEY] = self._variant_record()
        current = self._fitted_under is not None and self._fitted_record_is_current()
        if current:  # (unknown: an older checkpoint's model never refitted here, or a spawned refit's)
            checkpoint[FITTED_UNDER_KEY] = self._fitted_under
        contamination = self.threshold_share  # (a loaded model's, not a setting given at load)
        if contamination is None and self.model is not None:  # (PU's: its setting, as before)
            contamination = self.model.calibration.contamination
        if contamination is not None:
            checkpoint[CONTAMINATION_KEY] = float(contamination)
        hparams, own = checkpoint.get("hyper_parameters"), type(self)
        importable = own.__module__ != "__main__" and own.__qualname__ == own.__name__  # (not nested, not local)
        if isinstance(hparams, dict) and "_class_path" not in hparams and importable:  # a fit outside the CLI:
            # its class as the CLI records it, so that `dagmm test/predict --ckpt_path` build it (had: DAGMM,
            # refusing its options); with the CLI's instantiator, which load_from_checkpoint then goes through
            # (a class taking **kwargs would be handed _class_path as an argument)
            recorded = {"_class_path": f"{own.__module__}.{own.__name__}", "_instantiator": CLI_INSTANTIATOR}
            checkpoint["hyper_parameters"] = {**hparams, **recorded}
        fitting = self.trainer.state.fn == "fit"
        precision = str(self.trainer.precision) if fitting else getattr(self, "_fit_precision", None)
        if precision is not None:  # (a checkpoint saved again outside a fit keeps its fit's)
            checkpoint[PRECISION_KEY] = precision
        counts = self._fit_record() if self.model is not None else None
        if fitting:  # A checkpoint written without a validation first (no val rows, validation every n epochs)
            # still carries the fit of its weights: the state dict was taken before this hook.
            weights = checkpoint["state_dict"]
            averaged = "current_model_state" in checkpoint  # WeightAveraging's: the state dict holds the average
            if averaged and "_weights_at_epoch_end" in self.__dict__:  # (between an epoch's end and the next's start)
                checkpoint["current_model_state"] = self.__dict__["_weights_at_epoch_end"]
            if averaged and not self._holds_weights(weights):
                checkpoint["state_dict"], counts = self._fitted_state(weights)
            elif self._refit_if_stale():
                checkpoint["state_dict"], counts = self.state_dict(), self._fit_record()
        if counts is not None:  # what the fit this checkpoint holds did, for a summary in another process
            checkpoint[FIT_COUNTS_KEY] = counts
        if not fitting:
            return
        epochs, loop = self.trainer.fit_loop.epoch_progress.current, self.trainer.fit_loop.epoch_loop
        checkpoint[PROCESSES_KEY] = self.trainer.world_size
        if 0 < self.trainer.num_training_batches < math.inf:
            checkpoint[BATCHES_KEY] = int(self.trainer.num_training_batches)
        checkpoint[THREADS_KEY] = torch.get_num_threads()
        if epochs.started > epochs.processed and loop.batch_progress.current.processed > 0:  # within its batches:
            # a resume goes on within this epoch (not after max_steps ended it: Lightning counts it done)
            checkpoint[GENERATORS_KEY] = {"epoch": self.current_epoch, "states": self._generator_states()}
        saved = checkpoint.get("loops", {}).get("fit_loop", {})
        epoch_progress, batches = saved.get("epoch_progress"), saved.get("epoch_loop.batch_progress")
        if epochs.processed == epochs.started and epoch_progress is not None and batches is not None:
            # Between epochs (an epoch's end, or the fit's): saved as a fit bounded by epochs resumes from
            # there, the epoch completed and no batch of the next one counted. Lightning resumes a step-bounded
            # fit saved at an epoch's end by replaying that end (where, without a validation due, it trained one
            # batch more) or with the epoch's batch count carried into the next (which then ran one batch)
            for progress in epoch_progress.values():
                progress["completed"] = progress["processed"]
            checkpoint[EPOCH_BATCHES_KEY] = int(batches["current"]["processed"])  # (fewer: max_steps cut it short)
            batches["current"] = {key: 0 for key in batches["current"]}
            batches["is_last_batch"] = False

    def _generator_states(self) -> list[torch.Tensor]:
        """Each rank's global generator state (CPU, and the accelerator's where it has one), as uint8
        tensors on the CPU: a fit resumed within an epoch draws on from there."""
        state = torch.get_rng_state()
        if self.device.type == "cuda":
            state = torch.cat([state, torch.cuda.get_rng_state(self.device)])
        if self.trainer.world_size == 1:
            return [state]
        return [row.clone() for row in self.all_gather(state.to(self.device)).cpu()]

    def _holds_weights(self, weights: dict[str, torch.Tensor]) -> bool:
        """Whether this module's parameters equal those of the state dict ``weights`` (maybe on the CPU)."""
        return all(
            torch.equal(p.detach().to(weights[name].device), weights[name]) for name, p in self.named_parameters()
        )

    def _fitted_state(self, weights: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict]:
        """A state dict of ``weights`` with the mixture fitted to them, and that fit's record
        (``_fit_record``); this module left as it was."""
        own = {name: value.clone() for name, value in self.state_dict().items()}
        record, scores = self._fitted_weights, (self._training_scores, self._threshold_scores)
        network, marks = self.model, ("_fit_counts_logged", "_fitted_record_step", "_fitted_under", "_fitted_share")
        counters = network.components_reseeded, network.em_steps_run, network.rows_fitted
        marked = {name: self.__dict__[name] for name in marks if name in self.__dict__}
        self.load_state_dict(weights)
        self.refit()
        fitted, fit_record = {name: value.clone() for name, value in self.state_dict().items()}, self._fit_record()
        self.load_state_dict(own)
        self._fitted_weights, (self._training_scores, self._threshold_scores) = record, scores
        network.components_reseeded, network.em_steps_run, network.rows_fitted = counters
        self.__dict__.update(marked)  # (what mark_fitted set of the average's fit: the live fit's again)
        return fitted, fit_record

    def _fit_record(self) -> dict:
        """The last training-set fit's counts as a checkpoint keeps them (``FIT_COUNTS_KEY``)."""
        network = self.model
        counts = {"reseeded": network.components_reseeded, "em_steps": network.em_steps_run}
        return counts | {"rows_fitted": list(network.rows_fitted)}

    def on_train_end(self) -> None:
        self.__dict__.pop("_weights_at_epoch_end", None)  # (the final checkpoint, the callbacks', is written)
        self._refit_if_stale()
        # Weight averaging has copied its average in; its copy's mixture state (buffers it averaged
        # too) would come back with each swap at a later validation: give it the fit just made.
        for average in self._averaged_copies():
            for mine, theirs in zip(self.buffers(), average.buffers(), strict=True):
                theirs.copy_(mine)

    def _averaged_copies(self) -> list[DAGMM]:
        """The copies of this module that weight averaging (Lightning's ``WeightAveraging``) keeps."""
        callbacks = self.trainer.callbacks if self._trainer is not None else []
        averages = [getattr(c, "_average_model", None) for c in callbacks if isinstance(c, WeightAveraging)]
        return [average.module for average in averages if average is not None]

    def on_train_epoch_end(self) -> None:
        # Weight averaging copies its average in when the fit ends, before the final checkpoint, whose
        # training weights (current_model_state) would then be the average too: keep this epoch's, so that
        # a longer fit resumed from it trains on as one uninterrupted fit
        if any(isinstance(callback, WeightAveraging) for callback in self.trainer.callbacks):
            self._weights_at_epoch_end = {name: value.detach().clone() for name, value in self.state_dict().items()}

    def on_train_start(self) -> None:
        self._fit_precision = str(self.trainer.precision)  # this process's fit: what later scoring compares with
        if not (self.training and self.model.training):  # model.eval() to score, then a fit: Lightning keeps a
            self.train()  # module's mode, and in eval mode no batch mixture is fitted (had: a TypeError in the loss)
        if self.hparams.compile and self._step_compiles():  # before any step (mixed_loss's run eagerly at first)
            optimizer = self.optimizers()
            problem = plain_adam_problem(getattr(optimizer, "optimizer", optimizer), self.model)
            if problem is not None:  # another optimizer: the CLI's --optimizer, a subclass's configure_optimizers
                raise ConfigurationError(
                    f"compile: {problem}; the compiled step is the model's own Adam (lr, lr_schedule): leave out "
                    "--optimizer / --lr_scheduler, or set --model.init_args.compile false"
                )
        self.__dict__.pop("_weights_at_epoch_end", None)
        # Lightning resumes a checkpoint written within an epoch (or at its end) without that epoch's
        # on_train_epoch_start: the checkpoint's generator states go on, or the epoch's seed is set here
        saved = self.__dict__.pop("_resumed_generators", None) or {}
        loop = self.trainer.fit_loop
        processes = self.__dict__.pop("_resumed_processes", None)
        if processes not in (None, self.trainer.world_size) and not (loop.restarted_mid_epoch and saved):
            warn(  # (within an epoch, the warning below says it)
                f"the checkpoint was trained by {processes} process(es), this fit runs {self.trainer.world_size}: "
                "each takes --data.batch_size rows a step, so from here it trains as a fit on "
                f"{self.trainer.world_size} would, not as the uninterrupted fit would have"
            )
        threads = self.__dict__.pop("_resumed_threads", None)
        if threads not in (None, torch.get_num_threads()):  # (README, reproducibility: a count of its own)
            rank_zero_info(
                f"the checkpoint's fit ran {threads} torch thread(s) a process, this one {torch.get_num_threads()}: "
                "its weights go on to differ from an uninterrupted fit's (torch's sums split by the threads; scores "
                f"differ visibly after a few hundred steps) (OMP_NUM_THREADS="
                f"{threads} resumes as it ran)"
            )
        resumed = self.trainer.ckpt_path is not None  # (a model loaded before, then fitted afresh: not resumed)
        self._resumed_step_count = loop.epoch_loop._batches_that_stepped if resumed else None
        if not self.model_class.score_is_calibrated() and not is_ours(self.model_class) and not resumed:
            self._try_own_score()  # (ours, PU's: tested)
        if resumed and not loop.restarted_mid_epoch:
            self._warn_of_an_epoch_cut_short(processes)
        if not (loop.restarted_mid_epoch or loop.restarted_on_epoch_end):  # (then on_train_epoch_start seeds)
            return
        states = saved.get("states", []) if saved.get("epoch") == self.current_epoch else []
        cpu_bytes = len(torch.get_rng_state())
        same_device = all((len(state) > cpu_bytes) == (self.device.type == "cuda") for state in states)
        if loop.restarted_mid_epoch and len(states) == self.trainer.world_size and same_device:
            state = states[self.global_rank]
            torch.set_rng_state(state[:cpu_bytes].clone())
            if self.device.type == "cuda":
                torch.cuda.set_rng_state(state[cpu_bytes:].clone(), self.device)
        else:
            if loop.restarted_mid_epoch and states:
                written_on = "CUDA" if len(states[0]) > cpu_bytes else "CPU"
                warn(
                    f"the checkpoint was written within an epoch by {len(states)} process(es) on {written_on}, this "
                    f"fit runs {self.trainer.world_size} on {self.device.type}: the rest of that epoch is not what an "
                    "uninterrupted fit would have trained (its draws start from the epoch's seed)"
                )
            self._seed_generators()

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        restored = self.__dict__.pop("_resumed_step_count", None)
        loop = self.trainer.fit_loop.epoch_loop
        if restored == self.global_step and loop._batches_that_stepped == restored + 1:
            # Lightning resumes a fit saved at a validation's step past its end (written after the step was
            # counted: the fit's end, an epoch's) by skipping that validation, and counts a batch for it that
            # none trained: the logging step (TensorBoard's) ran one ahead per such resume
            loop._batches_that_stepped = restored

    def _try_own_score(self) -> None:
        """A variant's own score, tried on the first training rows before the first step (a fit without a
        sanity check, as DAGMMDetector's, had met a wrong shape, e.g. an ensemble's (members, N) scores, only
        after training): its checks raise now. The random draws and the buffers (the fitted state) are left as
        they were; the fit's counters (rows_fitted, em_steps_run) are the next fit's to set."""
        state = {name: buffer.clone() for name, buffer in self.model.named_buffers()}
        devices = [self.device] if self.device.type == "cuda" else []
        rows = TrainingRows(FirstBatches(self._every_training_batch(), SANITY_FIT_ROWS))
        try:
            with torch.random.fork_rng(devices=devices), self.forward_context():
                self.model.fit(rows)
                if not self.model.threshold_is_quantile:  # (else its fit scored them)
                    self.model.score_batches(rows)
        finally:
            self.model.load_state_dict(state, strict=False)

    def _warn_of_an_epoch_cut_short(self, processes: int | None) -> None:
        """A resumed fit whose checkpoint's fit stopped within an epoch at its end (--trainer.max_steps,
        max_time): Lightning counts that epoch done, and the fit goes on with the next one (README: "One
        that --trainer.max_steps ended"). ``processes``: the checkpoint's fit's (None: not recorded)."""
        trainer, steps, epochs = self.trainer, self.global_step, self.current_epoch  # (restored)
        # the batches an epoch of the fit that wrote it (another process count, --trainer.limit_train_batches:
        # epochs of another length; had: this fit's, a false warning for a 2-process fit resumed in one)
        per_epoch = self.__dict__.pop("_resumed_batches", None)
        trained = self.__dict__.pop("_resumed_epoch_batches", None)  # of its last epoch
        if per_epoch is None and processes in (None, trainer.world_size):  # (saved before it was recorded)
            per_epoch = trainer.num_training_batches
        more = trainer.max_steps < 0 or trainer.max_steps > steps
        if not more or trainer.accumulate_grad_batches != 1 or per_epoch is None or not 0 < per_epoch < math.inf:
            return  # (steps count optimizer steps: with accumulation, not batches)
        # (saved before the count was recorded: the steps of full epochs, wrong after a resume that skipped some)
        left = epochs * per_epoch - steps if trained is None else per_epoch - trained if 0 < trained else 0
        if left > 0:
            warn(
                f"the checkpoint's fit stopped within its epoch {epochs} (step {steps:,}; --trainer.max_steps or "
                f"max_time), which Lightning counts done: this fit goes on with epoch {epochs + 1}; the "
                f"{left:,} batch(es) left of that epoch, which one longer fit would have trained, are skipped"
            )

    def on_train_epoch_start(self) -> None:
        self.__dict__.pop("_weights_at_epoch_end", None)
        self._seed_generators()
        if "_adam_step" in self.__dict__:
            self.__dict__["_adam_step"].check_guards()  # what a callback changed in place is seen each epoch

    def _seed_generators(self) -> None:
        # Dropout, VAE noise and codebook restarts draw from the global generator, whose state
        # Lightning checkpoints do not carry: seeding it from (run seed, epoch, rank) at each epoch's
        # start makes a run resumed there draw exactly what an uninterrupted one would; within an epoch,
        # the checkpoint's own states go on (on_save_checkpoint, on_train_start).
        seed = int(os.environ.get("PL_GLOBAL_SEED", 0))
        seed = (seed * 1_000_003 + self.current_epoch) * 1_009 + self.global_rank
        if self.device.type == "cpu":  # torch.manual_seed would also seed every accelerator's generators:
            torch.default_generator.manual_seed(seed)  # 0.3 ms, a table of one batch pays it at each step
        else:
            torch.manual_seed(seed)

    def _variant_record(self) -> dict:
        """What a checkpoint must match to load into this module."""
        return {"class": type(self).__name__, "mixture": self.hparams.mixture, "input_dim": self.hparams.input_dim}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self._fitted_weights = None  # the checkpoint's fit is of its own weights (its step says so)
        self._training_scores = self._threshold_scores = None
        self._resumed_generators = checkpoint.get(GENERATORS_KEY)
        self._fitted_share = checkpoint.get(CONTAMINATION_KEY)
        self._fitted_under = checkpoint.get(FITTED_UNDER_KEY)  # (None: older, none kept)
        fitted_step = checkpoint.get("state_dict", {}).get("fitted_at_step")  # (loaded after this hook)
        self._fitted_record_step = None if fitted_step is None else int(fitted_step)
        self._resumed_processes = checkpoint.get(PROCESSES_KEY)  # (None: saved before it was recorded)
        self._resumed_batches = checkpoint.get(BATCHES_KEY)  # (None: as the last, or a loader of no length)
        self._resumed_epoch_batches = checkpoint.get(EPOCH_BATCHES_KEY)  # (None: saved before it was recorded)
        self._resumed_threads = checkpoint.get(THREADS_KEY)
        self._fit_precision = checkpoint.get(PRECISION_KEY)  # (None: saved before it was kept, unknown)
        if "threshold_rows" not in checkpoint.get("hyper_parameters", {"threshold_rows": None}):
            self.hparams.threshold_rows = "train"  # saved before the option: its threshold rule, also on a resume
        if "one_sided_error" not in checkpoint.get("hyper_parameters", {"one_sided_error": None}):
            self.hparams.one_sided_error = False  # saved before the option: scored two-sided, also on a resume
        fitted = (self._fitted_under or {}).get("one_sided_error", self.hparams.one_sided_error)
        if self.model is not None:  # the checkpoint's fit read it so, whatever is given now (until a refit)
            self.model.one_sided_error = bool(fitted)  # (None: sizes from the data, built from the hparams later)
        if self._trainer is None:  # load_from_checkpoint (not a resume, nor a run's own ckpt_path)
            self._warn_of_fit_settings_given_at_load(self._fitted_under or {})
            # the data module's state (split, encoding, scaling): restored into one given to test / validate /
            # predict without ckpt_path, as ckpt_path restores it (AnomalyDataModule.state_dict's keys)
            states = [v for v in checkpoint.values() if isinstance(v, dict) and {"dataset", "preprocessor"} <= set(v)]
            self._trained_on = states[0] if len(states) == 1 else None
        self.resumed_at_step = checkpoint.get("global_step")  # the fit summary tells a resume that trained nothing
        if self._trainer is not None and self.trainer.state.fn != "fit":  # in the process that restores it
            # Lightning asks for the fit's callbacks (a monitored ModelCheckpoint); scoring needs none of them
            warnings.filterwarnings("ignore", message="Be aware that when using `ckpt_path`")
        saved = checkpoint.get(VARIANT_RECORD_KEY)
        mine = self._variant_record()
        advice = "leave out --config and --data options: a checkpoint brings its own settings"
        ckpt_path = self.trainer.ckpt_path if self._trainer is not None else None
        if ckpt_path and self.trainer.state.fn == "fit":  # (a resume takes the trainer's settings from configs)
            ran = Path(ckpt_path).parent.parent / "config.yaml"  # (a run's folder: version_N/checkpoints/)
            named = ran.is_file() and Path(ckpt_path).parent.name == "checkpoints"
            advice = f"resume with the configs the fit ran with{f' (--config {ran})' if named else ''}"
        if saved is not None and {**saved, "input_dim": mine["input_dim"]} == mine != saved:
            raise DataError(
                f"the checkpoint's model takes {saved['input_dim']} encoded features, this run's data encodes to "
                f"{mine['input_dim']}: this run loads other data ({advice}), or the data's columns or a symbolic "
                "column's categories changed since the fit (use the data it was trained on)"
            )
        if saved is not None and saved != mine:
            raise ConfigurationError(
                f"the checkpoint holds {saved['class']} (mixture {saved['mixture']!r}, {saved['input_dim']} "
                f"input features) but this run built {mine['class']} (mixture {mine['mixture']!r}, "
                f"{mine['input_dim']} input features); {advice}, or pass the configs it was trained with; in "
                f"Python, {saved['class']}.load_from_checkpoint(path) loads it"
            )

    # --- evaluation -------------------------------------------------------------------------------
    def score(self, x: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Anomaly scores (N,) of scaled rows x (N, F) (a tensor or array in any float dtype; from a table:
        the data module's ``preprocessor.scale(preprocessor.encode(frame))``), higher = more anomalous. In eval
        mode (``model.eval()``); under ``torch.no_grad()`` unless gradients are wanted."""
        if self.training:
            raise ConfigurationError(
                "score needs eval mode: call model.eval() first (in training mode the mixture would be fitted to "
                "these rows; load_from_checkpoint returns a model in training mode)"
            )
        x = torch.as_tensor(x)  # (an inference tensor, a batch of Trainer.test, too: the clamp below copies it)
        self._check_width(x)
        finite = torch.isfinite(x).all(dim=1)
        if not bool(finite.all()):
            row = int(torch.nonzero(~finite)[0])
            raise DataError(f"score takes finite rows: row {row} holds NaN or inf; fill or drop such values first")
        # clipped where the preprocessor clips a numeric column: past float32's range (float64 or integer
        # input) a value would score NaN
        wide = x.is_floating_point() and torch.finfo(x.dtype).max > SCALED_LIMIT  # (float16's 65504: the clamp failed)
        x = x if wide else x.double()
        return self._scores(x.clamp(-SCALED_LIMIT, SCALED_LIMIT))

    def _check_width(self, x: torch.Tensor) -> None:
        width = self.hparams.input_dim
        if x.ndim != 2 or x.shape[1] != width:
            raise DataError(f"score takes rows (N, {width}) of {width} encoded features, got shape {tuple(x.shape)}")

    def _scores(self, x: torch.Tensor) -> torch.Tensor:
        """``score`` without its checks, for rows the data module scaled (finite and clipped)."""
        return self.model.score(self.model(self.model.as_input(x), memberships=False))

    def on_validation_start(self) -> None:
        self._hint_metrics("validate")
        self._warn_of_another_precision("validate")

    def on_test_start(self) -> None:
        self._hint_metrics("test")
        self._warn_of_another_precision("test")

    def on_predict_start(self) -> None:
        self._warn_of_another_precision("predict")

    def _warn_of_another_precision(self, stage: str) -> None:
        """A loaded checkpoint scored at another Trainer precision than its fit's: the networks' sums round
        otherwise, so scores (and labels near the threshold, which the fit's precision set) differ."""
        fitted, now = getattr(self, "_fit_precision", None), str(self.trainer.precision)
        warned = self.__dict__.setdefault("_precisions_warned", set())
        if fitted is not None and now != fitted and self.trainer.state.fn != "fit" and (fitted, now) not in warned:
            warned.add((fitted, now))
            warn(
                f"{stage}: precision {now}, the checkpoint's fit ran at {fitted}: the networks compute otherwise, so "
                f"scores differ from the fit's and rows near its threshold can flip; --trainer.precision {fitted} "
                "scores as the fit did"
            )

    def _hint_metrics(self, stage: str) -> None:
        """A Trainer of one's own without AnomalyMetrics evaluates nothing: say what adds the metrics."""
        from dagmm_lightning.callbacks import AnomalyMetrics  # (the callbacks import the models)

        if not any(isinstance(c, AnomalyMetrics) for c in self.trainer.callbacks) and not self.trainer.sanity_checking:
            warn(
                f"{stage}: no AnomalyMetrics callback, so no metric is computed: give the Trainer "
                "callbacks=[AnomalyMetrics()] (from dagmm_lightning.callbacks) for ROC AUC, precision, recall and F1"
            )

    def forward(self, x: torch.Tensor | np.ndarray) -> torch.Tensor:
        """``model(x)``: the scores of ``score``."""
        return self.score(x)

    def validation_step(self, batch: Batch, batch_idx: int) -> dict[str, torch.Tensor]:
        x, y, index = batch_parts(batch)
        out = self.model(x)
        energy, rows, gamma, error = out.energy, out.rows, out.gamma, out.error
        if self.hparams.members > 1:  # the members' energies combined as the score combines them; member 0's rows
            energy, rows, gamma = self.model.calibration.combined_energy(energy), rows[0], gamma[0]
            error = error.mean(0)  # (the members' mean)
        return {
            "score": self.model.score(out),
            "label": y,
            "index": index,
            "energy": energy,
            "error": error,
            "rows": rows,
            "gamma": gamma,
        }

    test_step = validation_step

    def predict_step(self, batch: Batch, batch_idx: int, dataloader_idx: int = 0) -> dict[str, torch.Tensor]:
        x, y, index = batch_parts(batch)
        self._check_width(x)
        scores = self._scores(x)
        threshold = self.model.calibration.threshold
        return {"index": index, "score": scores, "prediction": (scores > threshold).long(), "label": y}
