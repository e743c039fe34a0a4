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
        **kwargs: what ``DAGMM`` takes, but one model (``members`` 1, so no ``gaussian+laplace``).
    """

    ensembles = False

    def __init__(self, *args, beta: float = 1.0, **kwargs) -> None:
        if beta < 0:
            raise ConfigurationError(f"beta must be >= 0, got {beta}")
        super().__init__(*args, **kwargs)

    def build_compression(self) -> nn.Module:
        hp = self.hparams
        return VariationalAutoencoder(hp.input_dim, hp.hidden_dims, hp.latent_dim, hp.activation, hp.beta)
