"""DAGMM (Zong et al., ICLR 2018) as a LightningModule; the base every variant builds on.

Variants override ``build_compression`` and ``compress`` (and ``score`` for another inference
criterion); the training step, the training-set mixture fit, the stored threshold and the
validate/test/predict flow stay here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import lightning as L
import torch
from torch import nn

from dagmm_lightning.distributed import gather_uneven
from dagmm_lightning.mixture import build_mixture
from dagmm_lightning.networks import Autoencoder, EstimationNetwork, reconstruction_features, squared_error

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


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
    ) -> None:
        super().__init__()
        if input_dim < 1:
            raise ValueError(f"input_dim must be >= 1, got {input_dim}")
        if not 0.0 < contamination <= 0.5:
            raise ValueError(f"contamination must be in (0, 0.5], got {contamination}")
        self.save_hyperparameters()
        self.compression = self.build_compression()
        mixture_dim = latent_dim + 2
        self.estimation = EstimationNetwork(mixture_dim, estimation_hidden, n_components, activation, dropout)
        self.mixture = build_mixture(mixture, n_components, mixture_dim, jitter, mixture_dtype)
        self.register_buffer("threshold", torch.tensor(float("nan"), dtype=torch.float64))
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
        """Anomaly score of each row (N,), higher = more anomalous: the sample energy under the
        training-set mixture. Call in eval mode."""
        mixture_rows, _ = self.mixture_rows(x)
        return self.mixture.energy(mixture_rows)

    def penalty_dims(self) -> slice | None:
        """Dimensions of the mixture rows that the degeneracy penalty covers (None: all)."""
        return None

    # --- shared flow ------------------------------------------------------------------------------
    def mixture_rows(self, x: torch.Tensor) -> tuple[torch.Tensor, Compression]:
        """Rows the mixture sees, [z_c, relative distance, cosine] (N, latent_dim + 2), and the compression."""
        compression = self.compress(x)
        return torch.cat([compression.z, reconstruction_features(x, compression.x_hat)], dim=1), compression

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        x = batch[0]
        rows, compression = self.mixture_rows(x)
        gamma = self.estimation(rows)
        try:
            params = self.mixture.batch_parameters(rows, gamma)
        except FloatingPointError as err:
            raise FloatingPointError(f"at {self._where()}: {err}") from None
        hp = self.hparams
        terms = {
            "reconstruction": squared_error(x, compression.x_hat).mean(),
            "energy": hp.lambda_energy * self.mixture.energy(rows, params).mean(),
            "penalty": hp.lambda_cov * self.mixture.penalty(params, self.penalty_dims()),
            **compression.losses,
        }
        loss = torch.stack([t.to(torch.float64) for t in terms.values()]).sum()
        self._check_finite(loss, terms)
        self.log("train/loss", loss, prog_bar=True)
        self.log_dict({f"train/{name}": value for name, value in terms.items()})
        return loss.to(x.dtype)

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
        """Fit the mixture on all rows of ``batches`` (every training row once across ranks), in eval
        mode with the current weights; then store the (1 - contamination) quantile of their scores."""
        was_training = self.training
        self.eval()
        try:
            for pass_index in range(self.mixture.fit_passes):
                stats = self.mixture.new_statistics(pass_index).to(self.device)
                for x, _, _ in batches:
                    rows, _ = self.mixture_rows(self._as_input(x))
                    self.mixture.accumulate(stats, pass_index, rows, self.estimation(rows))
                self.mixture.finish_pass(stats.all_reduce(), pass_index)
            scores = self.score_batches(batches)
            self.threshold.fill_(torch.quantile(scores.double(), 1.0 - self.hparams.contamination).item())
            self._training_scores = scores
        finally:
            self.train(was_training)
        self.fitted_at_step.fill_(self.global_step)

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
        """Scores of all training rows under the current fit (cached by the last refit)."""
        if self._training_scores is None:
            self._training_scores = self.score_batches(self._training_batches())
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
        # A checkpoint written without a validation first (no val rows, validation every n epochs)
        # still carries the mixture of its weights; the state dict was taken before this hook.
        if self.trainer.state.fn == "fit" and self._refit_if_stale():
            state = checkpoint["state_dict"]
            for name, value in self.state_dict().items():
                if name in state and (name.startswith("mixture.") or name in ("threshold", "fitted_at_step")):
                    state[name] = value

    def on_train_end(self) -> None:
        self._refit_if_stale()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self._training_scores = None

    # --- evaluation -------------------------------------------------------------------------------
    def validation_step(self, batch: Batch, batch_idx: int) -> dict[str, torch.Tensor]:
        x, y, index = batch
        return {"score": self.score(x), "label": y, "index": index}

    test_step = validation_step

    def predict_step(self, batch: Batch, batch_idx: int, dataloader_idx: int = 0) -> dict[str, torch.Tensor]:
        x, y, index = batch
        scores = self.score(x)
        return {"index": index, "score": scores, "prediction": (scores > self.threshold).long(), "label": y}
