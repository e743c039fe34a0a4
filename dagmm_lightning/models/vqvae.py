"""DAGMM-VQ-VAE: a vector-quantised autoencoder as the compression network (the seed's "DAGMM-VQ-VAE Loss")."""

from __future__ import annotations

import torch
from torch import nn

from dagmm_lightning.models.dagmm import DAGMM, Compression
from dagmm_lightning.networks import VectorQuantizedAutoencoder, VectorQuantizer, code_usage


class DAGMMVQVAE(DAGMM):
    """DAGMM whose latent code is the nearest entry of a learned codebook (straight-through gradient);
    adds the codebook term ||sg[z_e] - e||^2 (unless EMA updates the codebook) and the commitment term
    beta * ||z_e - sg[e]||^2. The mixture sees the quantised code plus the reconstruction features.

    The codebook size is its own setting, not the mixture's K. Since the code part of the mixture rows
    takes only a few discrete values, a component's variance along it can be ~0: the covariance-diagonal
    penalty P = sum 1/Sigma_jj then explodes. Here P covers only the continuous part (the reconstruction
    features), and the mixture's ``jitter`` is the variance floor of the code part (the config uses 1e-4).
    Code usage (perplexity, dead codes) is logged as ``train/code_perplexity`` and ``train/dead_codes``.

    Args:
        codebook_size: number of codes.
        beta: weight of the commitment term.
        ema_decay: if set, EMA codebook updates with this decay instead of the codebook loss.
        restart_dead_codes: move codes unused by a training batch onto encoder outputs of that batch.
        **kwargs: everything ``DAGMM`` takes (``latent_dim`` is the code size).
    """

    def __init__(
        self,
        *args,
        codebook_size: int = 32,
        beta: float = 0.25,
        ema_decay: float | None = None,
        restart_dead_codes: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)

    def build_compression(self) -> nn.Module:
        hp = self.hparams
        quantizer = VectorQuantizer(hp.codebook_size, hp.latent_dim, hp.beta, hp.ema_decay, hp.restart_dead_codes)
        return VectorQuantizedAutoencoder(hp.input_dim, hp.hidden_dims, hp.latent_dim, hp.activation, quantizer)

    def compress(self, x: torch.Tensor) -> Compression:
        z_q, codes, losses = self.compression.quantizer(self.compression.encode(x))
        if self.training and self._trainer is not None and self.is_logging_step():
            perplexity, dead = code_usage(codes, self.hparams.codebook_size)
            self.log_dict({"train/code_perplexity": perplexity.float(), "train/dead_codes": dead.float()})
        return Compression(z_q, self.compression.decode(z_q), losses)

    def penalty_dims(self) -> slice:
        return slice(self.hparams.latent_dim, None)
