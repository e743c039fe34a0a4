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
    loss term; in eval mode the mean is the latent (deterministic scores) and there is no term."""

    def __init__(
        self,
        input_dim: int,
        hidden_dims: Sequence[int],
        latent_dim: int,
        activation: Activation = "tanh",
        beta: float = 1.0,
    ) -> None:
        super().__init__()
        self.latent_dim, self.beta = latent_dim, beta
        self.encoder = mlp([input_dim, *hidden_dims, 2 * latent_dim], activation)
        self.decoder = mlp([latent_dim, *reversed(hidden_dims), input_dim], activation)

    def forward(self, x: torch.Tensor) -> Compressed:
        mean, log_var = self.encoder(x).split(self.latent_dim, dim=1)
        if not self.training:
            return Compressed(mean, self.decoder(mean))
        z = mean + torch.randn_like(mean) * (0.5 * log_var).exp()
        return Compressed(z, self.decoder(z), {"kl": self.beta * gaussian_kl(mean, log_var).mean()})
