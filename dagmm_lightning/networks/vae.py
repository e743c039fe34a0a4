"""The study's VAE compression: a variational autoencoder (reparameterised sample in training, mean in eval)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dagmm_lightning.losses import gaussian_kl
from dagmm_lightning.networks.autoencoder import Compressed
from dagmm_lightning.networks.layers import Activation, mlp


class VariationalAutoencoder(nn.Module):
    """Encoder ``input_dim -> hidden_dims -> (mean, log-variance)`` of size ``latent_dim`` each, mirrored
    decoder. In training the reparameterised sample is the latent and ``beta * KL(q(z|x) || N(0, I))`` its
    loss term; in eval mode the mean is the latent (deterministic scores) and there is no term.

    ``calibrated``: the KL term weighted by ``2 sigma^2`` too, sigma^2 the batch's mean squared reconstruction
    error per value (no gradient). Beside DAGMM's reconstruction term ||x - x'||^2 that is the negative ELBO of a
    Gaussian decoder whose variance sigma^2 is at its maximum-likelihood value, times 2 sigma^2 (Rybkin et al.,
    2021, "sigma-VAE"). Uncalibrated, the sum ||x - x'||^2 stands for -log p(x|z) with sigma^2 = 1/2: on
    min-max scaled rows, errors of ~1e-3 against a KL of ~1 nat a dimension, the KL wins and every latent
    dimension collapses to the prior (the mean z the same for every row)."""

    def __init__(
        self,
        input_dim: int,
        hidden_dims: Sequence[int],
        latent_dim: int,
        activation: Activation = "tanh",
        beta: float = 1.0,
        calibrated: bool = False,
    ) -> None:
        super().__init__()
        self.latent_dim, self.beta, self.calibrated = latent_dim, beta, calibrated
        self.encoder = mlp([input_dim, *hidden_dims, 2 * latent_dim], activation)
        self.decoder = mlp([latent_dim, *reversed(hidden_dims), input_dim], activation)

    def forward(self, x: torch.Tensor) -> Compressed:
        mean, log_var = self.encoder(x).split(self.latent_dim, dim=1)
        if not self.training:
            return Compressed(mean, self.decoder(mean))
        z = mean + torch.randn_like(mean) * (0.5 * log_var).exp()
        x_hat = self.decoder(z)
        weight = self.beta * (2.0 * (x - x_hat).detach().pow(2).mean() if self.calibrated else 1.0)
        return Compressed(z, x_hat, {"kl": weight * gaussian_kl(mean, log_var).mean()})
