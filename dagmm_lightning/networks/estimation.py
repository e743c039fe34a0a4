"""The estimation network: mixture memberships from the rows the mixture sees."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dagmm_lightning.errors import ConfigurationError, check_range
from dagmm_lightning.networks.layers import Activation, mlp


class EstimationNetwork(nn.Module):
    """MLP + softmax: memberships gamma (N, K) from the mixture rows (N, D) (paper eq. 4); with ``members``
    > 1, (members, N, K) from (members, N, D)."""

    def __init__(
        self,
        input_dim: int,
        hidden_dims: Sequence[int],
        n_components: int,
        activation: Activation = "tanh",
        dropout: float = 0.5,
        members: int = 1,
    ) -> None:
        super().__init__()
        check_range("dropout", dropout, 0.0, 1.0, high_open=True)
        self.net = mlp([input_dim, *hidden_dims, n_components], activation, dropout, members)

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        width = self.net[0].in_features
        if rows.shape[-1] != width:  # (had: 'the network takes rows of 4 features', read as the data's)
            raise ConfigurationError(
                f"the estimation network takes mixture rows of {width} columns (latent + 2, or latent + 3 with "
                f"error_feature); got rows of shape {tuple(rows.shape)}: build it with input_dim {rows.shape[-1]}"
            )
        return torch.softmax(self.net(rows), dim=-1)
