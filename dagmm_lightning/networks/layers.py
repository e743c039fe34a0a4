"""Dense stacks shared by every network."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from torch import nn

from dagmm_lightning.errors import ConfigurationError, check_choice

Activation = Literal["tanh", "relu", "leaky_relu", "elu", "gelu", "sigmoid"]
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "sigmoid": nn.Sigmoid,
}


def mlp(sizes: Sequence[int], activation: Activation, dropout: float = 0.0) -> nn.Sequential:
    """Dense layers ``sizes[0] -> ... -> sizes[-1]``; activation (and dropout) between layers, none after
    the last one."""
    check_choice("activation", activation, Activation)
    if any(int(s) < 1 for s in sizes):
        raise ConfigurationError(f"layer sizes must be positive, got {list(sizes)}")
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(int(n_in), int(n_out)))
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)
