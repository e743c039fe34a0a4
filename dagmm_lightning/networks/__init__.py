"""Plain torch modules (no Lightning): compression networks, reconstruction features, estimation net."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dagmm_lightning.distributed import all_reduce_sum, broadcast_from_rank_zero

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
    x_norm = x.norm(dim=1)
    relative = (x - x_hat).norm(dim=1) / x_norm.clamp_min(eps)
    cosine = (x * x_hat).sum(dim=1) / (x_norm.clamp_min(eps) * x_hat.norm(dim=1).clamp_min(eps))
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


class VariationalAutoencoder(nn.Module):
    """Encoder ``input_dim -> hidden_dims -> (mean, log-variance)`` of size ``latent_dim`` each, and the
    mirrored decoder of ``Autoencoder``."""

    def __init__(self, input_dim: int, hidden_dims: Sequence[int], latent_dim: int, activation: str = "tanh") -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.encoder = mlp([input_dim, *hidden_dims, 2 * latent_dim], activation)
        self.decoder = mlp([latent_dim, *reversed(hidden_dims), input_dim], activation)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (N, input_dim) -> mean, log-variance, each (N, latent_dim)."""
        mean, log_var = self.encoder(x).split(self.latent_dim, dim=1)
        return mean, log_var

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)


def gaussian_kl(mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(log_var)) || N(0, I)) per row, closed form: (N, D) twice -> (N,)."""
    return 0.5 * (mean.pow(2) + log_var.exp() - 1.0 - log_var).sum(dim=1)


class VectorQuantizer(nn.Module):
    """Nearest-code quantisation with a straight-through gradient (van den Oord et al., 2017).

    Args:
        codebook_size: number of codes.
        code_dim: size of each code (the encoder's output size).
        beta: weight of the commitment term ||z_e - sg[e]||^2.
        ema_decay: if set, the codebook follows an exponential moving average of the encoder outputs
            assigned to each code (no codebook loss term); if None, the codebook loss ||sg[z_e] - e||^2
            trains it.
        restart_dead_codes: in training, codes left unused by a batch are moved onto randomly chosen
            encoder outputs of that batch (against codebook collapse).
    """

    def __init__(
        self,
        codebook_size: int,
        code_dim: int,
        beta: float = 0.25,
        ema_decay: float | None = None,
        restart_dead_codes: bool = False,
    ) -> None:
        super().__init__()
        if codebook_size < 1:
            raise ValueError(f"codebook_size must be >= 1, got {codebook_size}")
        if ema_decay is not None and not 0.0 < ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in (0, 1), got {ema_decay}")
        self.beta, self.ema_decay, self.restart_dead_codes = beta, ema_decay, restart_dead_codes
        self.codebook = nn.Parameter(torch.empty(codebook_size, code_dim).uniform_(-1 / codebook_size, 1 / codebook_size))
        if ema_decay is not None:
            self.codebook.requires_grad_(False)
            self.register_buffer("ema_count", torch.ones(codebook_size))
            self.register_buffer("ema_sum", self.codebook.detach().clone())

    def nearest(self, z_e: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code for each row: (N, code_dim) -> (N,)."""
        return torch.cdist(z_e, self.codebook.to(z_e.dtype)).argmin(dim=1)

    def forward(self, z_e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """z_e (N, code_dim) -> (straight-through z_q (N, code_dim), codes (N,), loss terms)."""
        codes = self.nearest(z_e)
        e = self.codebook.to(z_e.dtype)[codes]
        losses = {"commitment": self.beta * (z_e - e.detach()).pow(2).sum(1).mean()}
        if self.ema_decay is None:
            losses["codebook"] = (z_e.detach() - e).pow(2).sum(1).mean()
        if self.training:
            self._update_codebook(z_e.detach(), codes)
        return z_e + (e - z_e).detach(), codes, losses

    @torch.no_grad()
    def _update_codebook(self, z_e: torch.Tensor, codes: torch.Tensor) -> None:
        # Counts and sums are summed over DDP ranks and restarts come from rank 0, so the codebook
        # (changed outside the gradient all-reduce) stays identical on every rank.
        one_hot = torch.nn.functional.one_hot(codes, self.codebook.shape[0]).to(z_e.dtype)
        counts = all_reduce_sum(one_hot.sum(0))
        if self.ema_decay is not None:
            d = self.ema_decay
            self.ema_count.mul_(d).add_((1 - d) * counts.to(self.ema_count.dtype))
            self.ema_sum.mul_(d).add_((1 - d) * all_reduce_sum(one_hot.T @ z_e).to(self.ema_sum.dtype))
            self.codebook.data.copy_(self.ema_sum / self.ema_count.clamp_min(1e-5).unsqueeze(1))
        if self.restart_dead_codes:
            dead = torch.nonzero(counts == 0).flatten()
            if len(dead):
                chosen = z_e[torch.randint(len(z_e), (len(dead),), device=z_e.device)]
                chosen = broadcast_from_rank_zero(chosen.contiguous())
                self.codebook.data[dead] = chosen.to(self.codebook.dtype)
                if self.ema_decay is not None:
                    self.ema_sum[dead] = chosen.to(self.ema_sum.dtype)
                    self.ema_count[dead] = 1.0


def code_usage(codes: torch.Tensor, codebook_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Perplexity exp(H(p)) of the code frequencies p and the number of unused codes, for (N,) codes."""
    p = torch.bincount(codes, minlength=codebook_size).double() / max(len(codes), 1)
    entropy = -(p[p > 0] * p[p > 0].log()).sum()
    return entropy.exp(), (p == 0).sum()


class VectorQuantizedAutoencoder(nn.Module):
    """``Autoencoder`` with a ``VectorQuantizer`` between encoder and decoder; codes have ``latent_dim``."""

    def __init__(
        self, input_dim: int, hidden_dims: Sequence[int], latent_dim: int, activation: str, quantizer: VectorQuantizer
    ) -> None:
        super().__init__()
        self.autoencoder = Autoencoder(input_dim, hidden_dims, latent_dim, activation)
        self.quantizer = quantizer

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, input_dim) -> continuous encoder output z_e (N, latent_dim)."""
        return self.autoencoder.encode(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.autoencoder.decode(z)
