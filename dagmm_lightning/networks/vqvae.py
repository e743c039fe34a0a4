"""The study's VQ-VAE compression: an autoencoder whose latent is the nearest code of a learned codebook."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dagmm_lightning.distributed import all_reduce_sum, broadcast_from_rank_zero
from dagmm_lightning.errors import ConfigurationError
from dagmm_lightning.losses import vector_quantization_losses
from dagmm_lightning.networks.autoencoder import Autoencoder, Compressed
from dagmm_lightning.networks.layers import Activation


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
            raise ConfigurationError(f"codebook_size must be >= 1, got {codebook_size}")
        if ema_decay is not None and not 0.0 < ema_decay < 1.0:
            raise ConfigurationError(f"ema_decay must be in (0, 1), got {ema_decay}")
        self.beta, self.ema_decay, self.restart_dead_codes = beta, ema_decay, restart_dead_codes
        self.codebook = nn.Parameter(
            torch.empty(codebook_size, code_dim).uniform_(-1 / codebook_size, 1 / codebook_size)
        )
        if ema_decay is not None:
            self.codebook.requires_grad_(False)
            self.register_buffer("ema_count", torch.ones(codebook_size))
            self.register_buffer("ema_sum", self.codebook.detach().clone())

    def forward(self, z_e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """z_e (N, code_dim) -> (straight-through z_q (N, code_dim), codes (N,), loss terms)."""
        codebook = self.codebook.to(z_e.dtype)
        codes = torch.cdist(z_e, codebook).argmin(dim=1)
        e = codebook[codes]
        losses = vector_quantization_losses(z_e, e, self.beta, train_codebook=self.ema_decay is None)
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
    """``Autoencoder`` with a ``VectorQuantizer`` between encoder and decoder; codes have ``latent_dim``.

    The decoder reads the quantised code (straight-through). The latent the mixture sees is that code
    (``continuous_latent`` False: a few discrete values, so the model's penalty skips those dimensions and
    the jitter floors their variance) or the encoder's output before quantisation (True).
    """

    def __init__(
        self,
        input_dim: int,
        hidden_dims: Sequence[int],
        latent_dim: int,
        activation: Activation,
        quantizer: VectorQuantizer,
        continuous_latent: bool = False,
    ) -> None:
        super().__init__()
        self.autoencoder = Autoencoder(input_dim, hidden_dims, latent_dim, activation)
        self.quantizer = quantizer
        self.continuous_latent = continuous_latent

    def forward(self, x: torch.Tensor) -> Compressed:
        z_e = self.autoencoder.encoder(x)
        z_q, codes, losses = self.quantizer(z_e)
        return Compressed(z_e if self.continuous_latent else z_q, self.autoencoder.decoder(z_q), losses, codes)
