"""Plain torch modules (no Lightning): compression networks, reconstruction features, estimation net."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "sigmoid": nn.Sigmoid,
}


def mlp(sizes: Sequence[int], activation: str, dropout: float = 0.0) -> nn.Sequential:
    """Dense layers ``sizes[0] -> ... -> sizes[-1]``; activation (and dropout) between layers, none after
    the last one."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    if any(int(s) < 1 for s in sizes):
        raise ValueError(f"layer sizes must be positive, got {list(sizes)}")
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(int(n_in), int(n_out)))
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class Autoencoder(nn.Module):
    """Deterministic compression network: encoder ``input_dim -> hidden_dims -> latent_dim`` and a
    mirrored decoder; no activation on the latent or output layer (the paper's FC stacks)."""

    def __init__(self, input_dim: int, hidden_dims: Sequence[int], latent_dim: int, activation: str = "tanh") -> None:
        super().__init__()
        sizes = [input_dim, *hidden_dims, latent_dim]
        self.encoder = mlp(sizes, activation)
        self.decoder = mlp(sizes[::-1], activation)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, input_dim) -> z_c (N, latent_dim)."""
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z_c (N, latent_dim) -> x' (N, input_dim)."""
        return self.decoder(z)


def reconstruction_features(x: torch.Tensor, x_hat: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Relative Euclidean distance ||x - x'|| / ||x|| and cosine similarity: (N, F) twice -> (N, 2).

    A zero row x would divide by zero; its norm is floored at ``eps``, and the cosine of a zero vector
    is 0 (torch's convention).
    """
    relative = (x - x_hat).norm(dim=1) / x.norm(dim=1).clamp_min(eps)
    cosine = F.cosine_similarity(x, x_hat, dim=1, eps=eps)
    return torch.stack([relative, cosine], dim=1)


def squared_error(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """Per-row reconstruction error ||x - x'||^2: (N, F) twice -> (N,)."""
    return (x - x_hat).pow(2).sum(dim=1)


class EstimationNetwork(nn.Module):
    """MLP + softmax: mixture memberships gamma (N, K) from the rows z (N, D) the mixture sees."""

    def __init__(
        self, input_dim: int, hidden_dims: Sequence[int], n_components: int, activation: str = "tanh", dropout: float = 0.5
    ) -> None:
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.net = mlp([input_dim, *hidden_dims, n_components], activation, dropout)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(z), dim=1)
