"""LightningModules: DAGMM and its variants on one shared base."""

from dagmm_lightning.models.dagmm import DAGMM, Compression

__all__ = ["DAGMM", "Compression"]
