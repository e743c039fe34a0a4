"""LightningModules: DAGMM and its variants on one shared base."""

from dagmm_lightning.models.dagmm import DAGMM, Compression
from dagmm_lightning.models.vae import DAGMMVAE
from dagmm_lightning.models.pu import DAGMMPU
from dagmm_lightning.models.vqvae import DAGMMVQVAE

__all__ = ["DAGMM", "DAGMMPU", "DAGMMVAE", "DAGMMVQVAE", "Compression"]
