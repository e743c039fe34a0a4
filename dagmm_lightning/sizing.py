"""Network sizes chosen from the training rows, for models built with ``latent_dim=None``."""

from __future__ import annotations

import numpy as np

EXPLAINED_VARIANCE = 0.99  # chosen on the development suite (BENCHMARKS.md, "Defaults that fit the data")
MAX_WIDTH = 64


def latent_size(x: np.ndarray, explained: float = EXPLAINED_VARIANCE) -> int:
    """The number of principal components of the rows x (N, F) that explain ``explained`` of their total
    variance (at least 1): the latent size of a linear autoencoder that keeps that much of the data."""
    centred = x.astype(np.float64) - x.mean(axis=0)
    variances = np.linalg.eigvalsh(centred.T @ centred)[::-1].clip(min=0.0)
    total = variances.sum()
    if total <= 0:  # every row the same: nothing to keep
        return 1
    return int(min(np.searchsorted(np.cumsum(variances) / total, explained) + 1, x.shape[1]))


def network_sizes(x: np.ndarray) -> tuple[tuple[int, int], int]:
    """Encoder widths (h, max(latent, h // 2)) and latent size for the training rows x (N, F), with
    h = max(2 * latent, min(F, 64)): the hidden layers never narrower than the latent."""
    latent = latent_size(x)
    width = max(2 * latent, min(x.shape[1], MAX_WIDTH))
    return (width, max(latent, width // 2)), latent
