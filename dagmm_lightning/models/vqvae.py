"""DAGMM-VQ-VAE: a vector-quantised autoencoder as the compression network (the study's "DAGMM-VQ-VAE Loss")."""

from __future__ import annotations

import torch
from torch import nn

from dagmm_lightning.errors import check_flags
from dagmm_lightning.models.dagmm import DAGMM
from dagmm_lightning.networks import DAGMMOutput, VectorQuantizedAutoencoder, VectorQuantizer, code_usage


class DAGMMVQVAE(DAGMM):
    """DAGMM with a vector-quantised autoencoder (VQ-VAE) as its compression network.

    The latent code is the nearest entry of a learned codebook (straight-through gradient); the loss adds
    the codebook term (unless EMA updates the codebook) and the commitment term.

    The codebook size is its own setting, not the mixture's K. Where the mixture rows hold the code (not
    ``continuous_latent``), that part takes only a few discrete values, so a component's variance along it
    can be ~0: the covariance-diagonal penalty P = sum 1/Sigma_jj would explode. There P covers only the
    continuous part (the reconstruction features), and the mixture's ``jitter`` is the variance floor of
    the code part (the config uses 1e-4).
    Code usage is logged as ``train/code_perplexity`` and ``train/dead_codes``.

    Args:
        codebook_size: number of codes.
        beta: weight of the commitment term.
        ema_decay: if set, EMA codebook updates with this decay instead of the codebook loss.
        restart_dead_codes: move codes unused by a training batch onto encoder outputs of that batch.
        continuous_latent: the mixture reads the encoder's output before quantisation (the decoder still
            reads the code), the penalty all its dimensions. False, the study's form: the code, at most
            ``codebook_size`` distinct points, which a Gaussian component spans only partly (the jitter's
            variance elsewhere), so rows on a code of a component that does not span it score far above
            anomalies on common codes (development suite: BENCHMARKS.md, section 14);
            ``DAGMMDetector(variant="vqvae")`` sets True.
        **kwargs: what ``DAGMM`` takes (``latent_dim`` is the code size), but one model (``members`` 1, so
            no ``gaussian+laplace``) and no ``compile``.
    """

    ensembles = False
    detector_defaults = {"continuous_latent": True}  # (on the code, normal rows on rare codes scored high)
    compiles = False  # codebook updates and usage logging inside the step

    def __init__(
        self,
        *args,
        codebook_size: int = 32,
        beta: float = 0.25,
        ema_decay: float | None = None,
        restart_dead_codes: bool = True,
        continuous_latent: bool = False,
        **kwargs,
    ) -> None:
        check_flags(restart_dead_codes=restart_dead_codes, continuous_latent=continuous_latent)
        super().__init__(*args, **kwargs)

    def build_compression(self) -> nn.Module:
        hp = self.hparams
        quantizer = VectorQuantizer(hp.codebook_size, hp.latent_dim, hp.beta, hp.ema_decay, hp.restart_dead_codes)
        return VectorQuantizedAutoencoder(
            hp.input_dim, hp.hidden_dims, hp.latent_dim, hp.activation, quantizer, hp.continuous_latent
        )

    def model_options(self) -> dict:
        return {} if self.hparams.continuous_latent else {"penalty_dims": slice(self.hparams.latent_dim, None)}

    def training_terms(
        self, out: DAGMMOutput, y: torch.Tensor, labelled: torch.Tensor | None
    ) -> dict[str, torch.Tensor]:
        if self.is_logging_step():
            perplexity, dead = code_usage(out.codes, self.hparams.codebook_size)
            self.log_dict({"train/code_perplexity": perplexity.float(), "train/dead_codes": dead.float()})
        return super().training_terms(out, y, labelled)
