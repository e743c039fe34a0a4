"""The paper's compression network: a deterministic autoencoder."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from dagmm_lightning.networks.layers import Activation, mlp


@dataclass
class Compressed:
    """What a compression network gives for a batch x (N, F): latent ``z`` (N, latent_dim), reconstruction
    ``x_hat`` (N, F), its own loss terms (already weighted) and, for a quantiser, the chosen ``codes`` (N,)."""

    z: torch.Tensor
    x_hat: torch.Tensor
    losses: dict[str, torch.Tensor] = field(default_factory=dict)
    codes: torch.Tensor | None = None


class Autoencoder(nn.Module):
    """Encoder ``input_dim -> hidden_dims -> latent_dim`` and a mirrored decoder; no activation on the latent
    or output layer (the paper's FC stacks). ``members`` > 1: that many independent autoencoders
    (``layers.MemberLinear``) on inputs (members, N, input_dim)."""

    def __init__(
        self,
        input_dim: int,
        hidden_dims: Sequence[int],
        latent_dim: int,
        activation: Activation = "tanh",
        members: int = 1,
    ):
        super().__init__()
        sizes = [input_dim, *hidden_dims, latent_dim]
        self.encoder = mlp(sizes, activation, members=members)
        self.decoder = mlp(sizes[::-1], activation, members=members)

    def forward(self, x: torch.Tensor) -> Compressed:
        z = self.encoder(x)
        return Compressed(z, self.decoder(z))
