"""dagmm_lightning: Deep Autoencoding Gaussian Mixture Models and variants on PyTorch Lightning."""

from dagmm_lightning.data import AnomalyDataModule
from dagmm_lightning.detector import DAGMMDetector
from dagmm_lightning.models import DAGMM, DAGMMPU, DAGMMVAE, DAGMMVQVAE

__version__ = "0.1.0"
__all__ = ["DAGMM", "DAGMMPU", "DAGMMVAE", "DAGMMVQVAE", "AnomalyDataModule", "DAGMMDetector", "__version__"]
