"""Dense stacks shared by every network."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
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


class MemberLinear(nn.Module):
    """``members`` independent dense layers in one batched matrix product: x (M, N, n_in) -> (M, N, n_out);
    an input shared by every member, x (N, n_in), takes one matrix product with all members' weights.

    Each member's weight and bias start as ``nn.Linear``'s do: uniform in +-1 / sqrt(n_in).
    """

    def __init__(self, members: int, n_in: int, n_out: int) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(n_in)
        self.weight = nn.Parameter(torch.empty(members, n_in, n_out).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(members, 1, n_out).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 3:
            return torch.baddbmm(self.bias, x, self.weight)
        members, n_in, n_out = self.weight.shape
        shared = x @ self.weight.transpose(0, 1).reshape(n_in, members * n_out)  # (N, M * n_out)
        return shared.view(len(x), members, n_out).transpose(0, 1) + self.bias

    @property
    def in_features(self) -> int:
        return self.weight.shape[1]

    @property
    def out_features(self) -> int:
        return self.weight.shape[2]

    def extra_repr(self) -> str:
        members, n_in, n_out = self.weight.shape
        return f"members={members}, n_in={n_in}, n_out={n_out}"


class Dropout(nn.Dropout):
    """``nn.Dropout``, but inside ``torch.compile`` its mask is uniform draws compared with p: the compiled
    step draws them with torch's generator (``fallback_random``) in ~0.1 ms a step of the paper's KDDCUP99
    model, where ``nn.Dropout``'s ``aten.bernoulli_`` took ~0.2 ms. Eager runs draw exactly as ``nn.Dropout``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and 0 < self.p < 1 and torch.compiler.is_compiling()):
            return super().forward(x)
        return x * (torch.rand_like(x) >= self.p) / (1 - self.p)


def mlp(sizes: Sequence[int], activation: Activation, dropout: float = 0.0, members: int = 1) -> nn.Sequential:
    """Dense layers ``sizes[0] -> ... -> sizes[-1]``; activation (and dropout) between layers, none after
    the last one. ``members`` > 1: that many independent stacks at once (``MemberLinear``), on inputs
    (members, N, sizes[0])."""
    check_choice("activation", activation, Activation)
    if any(int(s) < 1 for s in sizes):
        raise ConfigurationError(f"layer sizes must be positive, got {list(sizes)}")
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(
            nn.Linear(int(n_in), int(n_out)) if members == 1 else MemberLinear(members, int(n_in), int(n_out))
        )
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
            if dropout > 0:
                layers.append(Dropout(dropout))
    return nn.Sequential(*layers)
