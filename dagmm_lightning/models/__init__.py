"""LightningModules: DAGMM and its variants around the plain ``networks.DAGMMModel``."""

from dagmm_lightning.models.dagmm import DAGMM, TrainingRows
from dagmm_lightning.models.pu import DAGMMPU
from dagmm_lightning.models.vae import DAGMMVAE
from dagmm_lightning.models.vqvae import DAGMMVQVAE
