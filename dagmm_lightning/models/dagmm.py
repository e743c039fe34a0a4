"""DAGMM (Zong et al., ICLR 2018) as a LightningModule; the base every variant builds on.

Variants override ``build_compression`` and ``compress`` (and ``score`` for another inference
criterion); the training step, the training-set mixture fit, the stored threshold and the
validate/test/predict flow stay here.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field

import lightning as L
import torch
from torch import nn

import torch.nn.functional as F

from dagmm_lightning.data.splits import LABELLED_ANOMALY
from dagmm_lightning.distributed import gather_uneven
from dagmm_lightning.mixture import build_mixture
from dagmm_lightning.networks import Autoencoder, EstimationNetwork, reconstruction_features, squared_error

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
INFERENCES = ("energy", "energy+reconstruction")
ANOMALY_LOSSES = ("hinge", "softplus", "inverse")


@dataclass
class Compression:
    """What a compression network gives for a batch: latent ``z`` (N, latent_dim), reconstruction
    ``x_hat`` (N, F), and its own extra loss terms (already weighted), added to the DAGMM objective."""

    z: torch.Tensor
    x_hat: torch.Tensor
    losses: dict[str, torch.Tensor] = field(default_factory=dict)


class DAGMM(L.LightningModule):
    """Compression network + reconstruction features + estimation network + mixture energy.

    Args:
        input_dim: number of input features; the CLI links it from the data module.
        hidden_dims: encoder layer sizes between input and latent; the decoder mirrors them.
        latent_dim: size of the compressed code z_c.
        activation: activation between layers of every network (``tanh`` in the paper).
        estimation_hidden: hidden layer sizes of the estimation network.
        dropout: dropout after each hidden layer of the estimation network.
        n_components: K, the number of mixture components.
        lambda_energy: lambda1, weight of the mean sample energy.
        lambda_cov: lambda2, weight of the covariance-diagonal penalty.
        lr: Adam learning rate.
        mixture: mixture family, ``gaussian`` or ``laplace``.
        jitter: added to the covariance diagonal before every Cholesky factorisation.
        mixture_dtype: ``float64`` or ``float32``; the mixture never runs in half precision.
        contamination: expected share of anomalies; the stored threshold is the (1 - contamination)
            quantile of the training rows' scores.
        inference: the score: ``energy`` (the paper), or ``energy+reconstruction`` (the seed's modified
            inference): z-score of the energy + ``reconstruction_weight`` * z-score of the per-row
            squared reconstruction error, both z-scores with the training rows' mean and standard
            deviation (stored with the model), so the weight does not depend on units.
        reconstruction_weight: w in the combined score.
        anomaly_loss: the term for training rows labelled as anomalies (the mixed-label split; the seed's
            "modified loss"). With E_a an anomaly's energy and Ebar the batch's mean normal energy
            (no gradient): ``hinge`` max(0, m - (E_a - Ebar)) (default), ``softplus``
            softplus(m - (E_a - Ebar)), or ``inverse``, the seed's 1 / E_a. The seed's form is flawed:
            E can be zero or negative, so 1/E is unbounded and flips sign (minimising it drives E to
            0 from below); it is kept faithful except that |E| is floored at 1e-3 (sign kept) so it
            never divides by zero. Labelled anomalies take no part in the reconstruction term or in
            the mixture statistics (batch and training-set fit), which come from normal rows only.
        anomaly_margin: m, in energy units above the mean normal energy.
    """

    def __init__(
        self,
        input_dim: int,
        hidden_dims: tuple[int, ...] = (60, 30, 10),
        latent_dim: int = 1,
        activation: str = "tanh",
        estimation_hidden: tuple[int, ...] = (10,),
        dropout: float = 0.5,
        n_components: int = 4,
        lambda_energy: float = 0.1,
        lambda_cov: float = 0.005,
        lr: float = 1e-4,
        mixture: str = "gaussian",
        jitter: float = 1e-6,
        mixture_dtype: str = "float64",
        contamination: float = 0.1,
        inference: str = "energy",
        reconstruction_weight: float = 1.0,
        anomaly_loss: str = "hinge",
        anomaly_margin: float = 5.0,
    ) -> None:
        super().__init__()
        if input_dim < 1:
            raise ValueError(f"input_dim must be >= 1, got {input_dim}")
        if not 0.0 < contamination <= 0.5:
            raise ValueError(f"contamination must be in (0, 0.5], got {contamination}")
        if inference not in INFERENCES:
            raise ValueError(f"inference must be one of {INFERENCES}, got {inference!r}")
        if anomaly_loss not in ANOMALY_LOSSES:
            raise ValueError(f"anomaly_loss must be one of {ANOMALY_LOSSES}, got {anomaly_loss!r}")
        self.save_hyperparameters()
        self.compression = self.build_compression()
        mixture_dim = latent_dim + 2
        self.estimation = EstimationNetwork(mixture_dim, estimation_hidden, n_components, activation, dropout)
        self.mixture = build_mixture(mixture, n_components, mixture_dim, jitter, mixture_dtype)
        self.register_buffer("threshold", torch.tensor(float("nan"), dtype=torch.float64))
        # mean and standard deviation of the training rows' energy and reconstruction error
        self.register_buffer("score_normalisation", torch.tensor([0.0, 1.0, 0.0, 1.0], dtype=torch.float64))
        self.register_buffer("fitted_at_step", torch.tensor(-1, dtype=torch.long))
        self._training_scores: torch.Tensor | None = None

    # --- what a variant changes -------------------------------------------------------------------
    def build_compression(self) -> nn.Module:
        hp = self.hparams
        return Autoencoder(hp.input_dim, hp.hidden_dims, hp.latent_dim, hp.activation)

    def compress(self, x: torch.Tensor) -> Compression:
        """Latent code and reconstruction of x (N, F); deterministic in eval mode."""
        z = self.compression.encode(x)
        return Compression(z, self.compression.decode(z))

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """Anomaly score of each row (N,), higher = more anomalous (see ``inference``). Eval mode."""
        return self.combine_scores(*self.energy_and_error(x))

    @classmethod
    def score_follows_inference(cls) -> bool:
        """True unless a variant scores otherwise than ``inference`` says (the PU model scores with 1 - h)."""
        return cls.score is DAGMM.score

    def combine_scores(self, energy: torch.Tensor, error: torch.Tensor) -> torch.Tensor:
        """The ``inference`` score from energies and reconstruction errors (N,) each."""
        if self.hparams.inference == "energy":
            return energy
        e_mean, e_std, r_mean, r_std = self.score_normalisation
        return (energy - e_mean) / e_std + self.hparams.reconstruction_weight * (error - r_mean) / r_std

    def energy_and_error(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Energy under the training-set mixture and squared reconstruction error: (N,) each."""
        rows, compression = self.mixture_rows(x)
        return self.mixture.energy(rows), squared_error(x, compression.x_hat).to(self.mixture.dtype)

    def penalty_dims(self) -> slice | None:
        """Dimensions of the mixture rows that the degeneracy penalty covers (None: all)."""
        return None

    # --- shared flow ------------------------------------------------------------------------------
    def mixture_rows(self, x: torch.Tensor) -> tuple[torch.Tensor, Compression]:
        """Rows the mixture sees, [z_c, relative distance, cosine] (N, latent_dim + 2), and the compression."""
        compression = self.compress(x)
        return torch.cat([compression.z, reconstruction_features(x, compression.x_hat)], dim=1), compression

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        terms = self.training_terms(*batch)
        loss = torch.stack([t.to(torch.float64) for t in terms.values()]).sum()
        self._check_finite(loss, terms)
        if self.is_logging_step():
            self.log("train/loss", loss, prog_bar=True)
            self.log_dict({f"train/{name}": value for name, value in terms.items()})
        return loss.to(batch[0].dtype)

    def is_logging_step(self) -> bool:
        """True on the steps whose logged values the logger writes (every ``log_every_n_steps``).

        Each ``self.log`` call costs Lightning about a millisecond of bookkeeping; for networks this
        small, logging every step made an epoch almost twice as slow as the same loop in plain PyTorch.
        """
        if self._trainer is None:
            return True
        return (self.global_step + 1) % max(self.trainer.log_every_n_steps, 1) == 0 or self.global_step == 0

    def training_terms(self, x: torch.Tensor, y: torch.Tensor, index: torch.Tensor) -> dict[str, torch.Tensor]:
        """The weighted terms of the objective on one batch; ``y`` holds the training labels."""
        terms, _ = self.dagmm_terms(x, y)
        return terms

    def dagmm_terms(self, x: torch.Tensor, y: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """DAGMM objective terms, and the batch's mixture rows and energies for a subclass to reuse."""
        hp = self.hparams
        rows, compression = self.mixture_rows(x)
        gamma = self.estimation(rows)
        labelled = y == LABELLED_ANOMALY
        has_labelled = bool(labelled.any())
        normal = ~labelled if has_labelled else slice(None)
        try:
            params = self.mixture.batch_parameters(rows[normal], gamma[normal])
        except FloatingPointError as err:
            raise FloatingPointError(f"at {self._where()}: {err}") from None
        energy = self.mixture.energy(rows, params)
        terms = {
            "reconstruction": squared_error(x[normal], compression.x_hat[normal]).mean(),
            "energy": hp.lambda_energy * energy[normal].mean(),
            "penalty": hp.lambda_cov * self.mixture.penalty(params, self.penalty_dims()),
            **compression.losses,
        }
        if has_labelled:
            terms["anomaly_energy"] = hp.lambda_energy * self.anomaly_term(energy[labelled], energy[normal]).mean()
        return terms, {"rows": rows, "energy": energy}

    def anomaly_term(self, anomalous: torch.Tensor, normal: torch.Tensor) -> torch.Tensor:
        """Per-row loss that raises the energy of labelled anomalies (see ``anomaly_loss``)."""
        if self.hparams.anomaly_loss == "inverse":
            floor = torch.full_like(anomalous, 1e-3)
            return 1.0 / torch.where(anomalous < 0, -torch.maximum(-anomalous, floor), torch.maximum(anomalous, floor))
        gap = self.hparams.anomaly_margin - (anomalous - normal.detach().mean())
        return F.relu(gap) if self.hparams.anomaly_loss == "hinge" else F.softplus(gap)

    def _check_finite(self, loss: torch.Tensor, terms: dict[str, torch.Tensor]) -> None:
        if bool(torch.isfinite(loss)):
            return
        bad = [name for name, value in terms.items() if not bool(torch.isfinite(value).all())]
        raise FloatingPointError(
            f"training loss is {loss.item()} at {self._where()}: non-finite term(s) "
            f"{bad or ['(sum overflowed)']}; check the input for NaN/inf, lower the learning rate or raise `jitter`"
        )

    def _where(self) -> str:
        return f"epoch {self.current_epoch}, step {self.global_step}"

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)

    # --- training-set fit of the mixture and the threshold ----------------------------------------
    @torch.no_grad()
    def refit_mixture(self, batches: Iterable[Batch]) -> None:
        """Fit the mixture on all rows of ``batches`` (every training row once across ranks; rows
        labelled as anomalies are left out), in eval mode with the current weights; then the score
        normalisation and the decision threshold from the same rows."""
        batches = NormalRows(batches)
        was_training = self.training
        self.eval()
        try:
            for pass_index in range(self.mixture.fit_passes):
                stats = self.mixture.new_statistics(pass_index).to(self.device)
                for x, _, _ in batches:
                    rows, _ = self.mixture_rows(self._as_input(x))
                    self.mixture.accumulate(stats, pass_index, rows, self.estimation(rows))
                self.mixture.finish_pass(stats.all_reduce(), pass_index)
            energy, error = (gather_uneven(torch.cat(part)) for part in zip(
                *(self.energy_and_error(self._as_input(x)) for x, _, _ in batches)
            ))
            self.score_normalisation.copy_(torch.stack([
                energy.mean(), energy.std().clamp_min(1e-12), error.mean(), error.std().clamp_min(1e-12)
            ]).double())
            # the energies and errors just gathered give the scores, unless a variant scores otherwise
            own_score = not self.score_follows_inference()
            scores = self.score_batches(batches) if own_score else self.combine_scores(energy, error)
            self.threshold.fill_(self.fit_threshold(scores))
            self._training_scores = scores
        finally:
            self.train(was_training)
        self.fitted_at_step.fill_(self.global_step)

    def fit_threshold(self, training_scores: torch.Tensor) -> float:
        """The decision threshold (rows scoring above it are anomalies): the (1 - contamination)
        quantile of the training rows' scores."""
        return torch.quantile(training_scores.double(), 1.0 - self.hparams.contamination).item()

    @torch.no_grad()
    def score_batches(self, batches: Iterable[Batch]) -> torch.Tensor:
        """Scores of all rows in ``batches``, gathered from every rank (each row once): (N,)."""
        local = [self.score(self._as_input(x)) for x, _, _ in batches]
        return gather_uneven(torch.cat(local) if local else torch.zeros(0, dtype=self.mixture.dtype, device=self.device))

    def _as_input(self, x: torch.Tensor) -> torch.Tensor:
        # batches iterated here bypass Lightning's transfer and precision hooks
        return x.to(device=self.device, dtype=self.dtype)

    def _training_batches(self) -> Iterable[Batch]:
        datamodule = self.trainer.datamodule
        if datamodule is not None and hasattr(datamodule, "refit_dataloader"):
            return datamodule.refit_dataloader()
        return self.trainer.train_dataloader

    def training_scores(self) -> torch.Tensor:
        """Scores of all training rows (less labelled anomalies) under the current fit; cached by the refit."""
        if self._training_scores is None:
            self._training_scores = self.score_batches(NormalRows(self._training_batches()))
        return self._training_scores

    def _refit_if_stale(self) -> bool:
        if int(self.fitted_at_step) == self.global_step:
            return False
        self.refit_mixture(self._training_batches())
        return True

    def on_validation_start(self) -> None:
        # Lightning validates inside the training epoch, before `on_train_epoch_end`: refit here, so
        # validation (and a checkpoint written after it) uses the mixture of the current weights.
        if self.trainer.state.fn == "fit":
            self.refit_mixture(self._training_batches())

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["dagmm_variant"] = self._variant_record()
        # A checkpoint written without a validation first (no val rows, validation every n epochs)
        # still carries the mixture of its weights; the state dict was taken before this hook.
        if self.trainer.state.fn == "fit" and self._refit_if_stale():
            state = checkpoint["state_dict"]
            for name, value in self.state_dict().items():
                if name in state and (name.startswith("mixture.") or name in ("threshold", "fitted_at_step")):
                    state[name] = value

    def on_train_end(self) -> None:
        self._refit_if_stale()

    def on_train_epoch_start(self) -> None:
        # Dropout, VAE noise and codebook restarts draw from the global generator, whose state
        # Lightning checkpoints do not carry: seeding it from (run seed, epoch, rank) makes a resumed
        # run draw exactly what an uninterrupted one would.
        seed = int(os.environ.get("PL_GLOBAL_SEED", 0))
        torch.manual_seed((seed * 1_000_003 + self.current_epoch) * 1_009 + self.global_rank)

    def _variant_record(self) -> dict:
        """What a checkpoint must match to load into this module."""
        return {"class": type(self).__name__, "mixture": self.hparams.mixture, "input_dim": self.hparams.input_dim}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self._training_scores = None
        saved = checkpoint.get("dagmm_variant")
        if saved is None:
            return
        mine = self._variant_record()
        if saved != mine:
            raise ValueError(
                f"the checkpoint holds {saved['class']} (mixture {saved['mixture']!r}, {saved['input_dim']} "
                f"input features) but this run built {mine['class']} (mixture {mine['mixture']!r}, "
                f"{mine['input_dim']} input features); pass the configs the checkpoint was trained with"
            )

    # --- evaluation -------------------------------------------------------------------------------
    def validation_step(self, batch: Batch, batch_idx: int) -> dict[str, torch.Tensor]:
        x, y, index = batch
        return {"score": self.score(x), "label": y, "index": index}

    test_step = validation_step

    def predict_step(self, batch: Batch, batch_idx: int, dataloader_idx: int = 0) -> dict[str, torch.Tensor]:
        x, y, index = batch
        scores = self.score(x)
        return {"index": index, "score": scores, "prediction": (scores > self.threshold).long(), "label": y}


class NormalRows:
    """The batches of ``batches`` without the rows labelled as anomalies (mixed-label split)."""

    def __init__(self, batches: Iterable[Batch]) -> None:
        self.batches = batches

    def __iter__(self):
        for x, y, index in self.batches:
            keep = y != LABELLED_ANOMALY
            yield (x, y, index) if bool(keep.all()) else (x[keep], y[keep], index[keep])
