"""DAGMM-VAE: a variational autoencoder as the compression network (the study's "DAGMM-VAE Loss")."""

from __future__ import annotations

import torch
from torch import nn

from dagmm_lightning.errors import ConfigurationError, check_flags
from dagmm_lightning.models.dagmm import DAGMM
from dagmm_lightning.networks import DAGMMOutput, VariationalAutoencoder


class DAGMMVAE(DAGMM):
    """DAGMM with a variational autoencoder as its compression network.

    Its encoder gives a mean and a log-variance; the loss adds ``beta * KL(q(z|x) || N(0, I))``. In
    training the reparameterised sample feeds the decoder, the reconstruction features and the batch
    mixture; in eval mode (refit, validation, test, predict) the mean does, so scores are deterministic.

    Args:
        beta: weight of the KL term.
        calibrated_decoder: weigh the KL term by 2 sigma^2 as well, sigma^2 the batch's mean squared
            reconstruction error per value over its normal rows (no gradient through it). Beside DAGMM's
            reconstruction term ||x - x'||^2 that is the negative ELBO of a Gaussian decoder whose variance
            sigma^2 is at its maximum-likelihood value, times 2 sigma^2 (Rybkin et al., 2021, "sigma-VAE").
            False, the study's loss as configs/vae.yaml trains it: ||x - x'||^2 stands for -log p(x|z) with
            sigma^2 = 1/2, and on min-max scaled rows (squared errors of ~1e-3 a value against a KL of ~1 nat
            a dimension) the KL can win: in a user's trial the latent collapsed to the prior, the same mean z
            for every row;
            ``DAGMMDetector(variant="vae")`` sets True (BENCHMARKS.md, section 14).
        **kwargs: what ``DAGMM`` takes, but one model (``members`` 1, so no ``gaussian+laplace``).
    """

    ensembles = False
    detector_defaults = {"calibrated_decoder": True}  # (uncalibrated, its latent collapsed)

    def __init__(self, *args, beta: float = 1.0, calibrated_decoder: bool = False, **kwargs) -> None:
        if beta < 0:
            raise ConfigurationError(f"beta must be >= 0, got {beta}")
        check_flags(calibrated_decoder=calibrated_decoder)
        super().__init__(*args, **kwargs)

    def build_compression(self) -> nn.Module:
        hp = self.hparams
        return VariationalAutoencoder(hp.input_dim, hp.hidden_dims, hp.latent_dim, hp.activation, hp.beta)

    def training_terms(
        self, out: DAGMMOutput, y: torch.Tensor, labelled: torch.Tensor | None
    ) -> dict[str, torch.Tensor]:
        terms = super().training_terms(out, y, labelled)
        if self.hparams.calibrated_decoder and "kl" in terms:
            errors = out.error.detach() if labelled is None else out.error.detach()[~labelled]  # ||x - x'||^2 (N,)
            variance = errors.sum() / max(errors.numel() * self.hparams.input_dim, 1)  # (no normal row: 0)
            terms["kl"] = 2.0 * variance * terms["kl"]
        return terms
