"""DAGMM-VAE: a variational autoencoder as the compression network (the seed's "DAGMM-VAE Loss")."""

from __future__ import annotations

import torch
from torch import nn

from dagmm_lightning.models.dagmm import DAGMM, Compression
from dagmm_lightning.networks import VariationalAutoencoder, gaussian_kl


class DAGMMVAE(DAGMM):
    """DAGMM whose encoder gives a mean and a log-variance; adds ``beta * KL(q(z|x) || N(0, I))``.

    In training the reparameterised sample feeds the decoder, the reconstruction features and the batch
    mixture; in eval mode (training-set refit, validation, test, predict) the mean does, so scores are
    deterministic.

    Args:
        beta: weight of the KL term.
        **kwargs: everything ``DAGMM`` takes.
    """

    def __init__(self, *args, beta: float = 1.0, **kwargs) -> None:
        if beta < 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        super().__init__(*args, **kwargs)

    def build_compression(self) -> nn.Module:
        hp = self.hparams
        return VariationalAutoencoder(hp.input_dim, hp.hidden_dims, hp.latent_dim, hp.activation)

    def compress(self, x: torch.Tensor) -> Compression:
        mean, log_var = self.compression.encode(x)
        if not self.training:
            return Compression(mean, self.compression.decode(mean))
        z = mean + torch.randn_like(mean) * (0.5 * log_var).exp()
        kl = gaussian_kl(mean, log_var).mean()
        return Compression(z, self.compression.decode(z), {"kl": self.hparams.beta * kl})
