"""DAGMM-VAE: a variational autoencoder as the compression network (the study's "DAGMM-VAE Loss")."""

from __future__ import annotations

from torch import nn

from dagmm_lightning.errors import ConfigurationError
from dagmm_lightning.models.dagmm import DAGMM
from dagmm_lightning.networks import VariationalAutoencoder


class DAGMMVAE(DAGMM):
    """DAGMM with a variational autoencoder as its compression network.

    Its encoder gives a mean and a log-variance; the loss adds ``beta * KL(q(z|x) || N(0, I))``. In
    training the reparameterised sample feeds the decoder, the reconstruction features and the batch
    mixture; in eval mode (refit, validation, test, predict) the mean does, so scores are deterministic.

    Args:
        beta: weight of the KL term.
        calibrated_decoder: weigh the KL term by 2 sigma^2 as well, sigma^2 the batch's mean squared
            reconstruction error per value: the ELBO of a Gaussian decoder with its variance fitted
            (``VariationalAutoencoder``). False (the study's loss as configs/vae.yaml trains it): the latent
            collapses to the prior on most tables; ``DAGMMDetector(variant="vae")`` sets True (BENCHMARKS.md,
            "The VAE's latent collapsed").
        **kwargs: what ``DAGMM`` takes, but one model (``members`` 1, so no ``gaussian+laplace``).
    """

    ensembles = False

    def __init__(self, *args, beta: float = 1.0, calibrated_decoder: bool = False, **kwargs) -> None:
        if beta < 0:
            raise ConfigurationError(f"beta must be >= 0, got {beta}")
        super().__init__(*args, **kwargs)

    def build_compression(self) -> nn.Module:
        hp = self.hparams
        calibrated = hp.get("calibrated_decoder", False)  # (checkpoints saved before the option: False)
        return VariationalAutoencoder(hp.input_dim, hp.hidden_dims, hp.latent_dim, hp.activation, hp.beta, calibrated)
