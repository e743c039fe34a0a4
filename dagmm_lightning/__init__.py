"""dagmm_lightning: Deep Autoencoding Gaussian Mixture Models and variants on PyTorch Lightning.

The names below load on first use, so that importing one part (``dagmm_lightning.models``) does not
import the others.
"""

from importlib import import_module

__version__ = "0.1.0"
_EXPORTS = {
    "DAGMM": "dagmm_lightning.models",
    "DAGMMPU": "dagmm_lightning.models",
    "DAGMMVAE": "dagmm_lightning.models",
    "DAGMMVQVAE": "dagmm_lightning.models",
    "AnomalyDataModule": "dagmm_lightning.data",
    "DAGMMDetector": "dagmm_lightning.detector",
    "DAGMMModel": "dagmm_lightning.networks",
    "DAGMMWarning": "dagmm_lightning.errors",
}
__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'dagmm_lightning' has no attribute {name!r}")
