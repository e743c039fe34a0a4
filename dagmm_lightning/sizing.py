"""Network sizes chosen from the training rows, for models built with ``latent_dim=None``."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

EXPLAINED_VARIANCE = 0.99  # chosen on the development suite (BENCHMARKS.md, "Defaults that fit the data")
MAX_WIDTH = 64
BLOCK_ROWS = 16384


def latent_size(x, explained: float = EXPLAINED_VARIANCE, keep: np.ndarray | None = None) -> int:
    """The number of principal components of the rows x (N, F) that explain ``explained`` of their total
    variance (at least 1): the latent size of a linear autoencoder that keeps that much of the data.
    x: an array, or anything read by row slices (``streaming.DiskRows``); read ``BLOCK_ROWS`` at a time.
    keep: (N,) bool, the rows to count (None: all)."""

    def block(start: int) -> np.ndarray:
        rows = np.asarray(x[start : start + BLOCK_ROWS], dtype=np.float64)
        return rows if keep is None else rows[keep[start : start + BLOCK_ROWS]]

    starts = range(0, len(x), BLOCK_ROWS)
    n = len(x) if keep is None else int(np.count_nonzero(keep))
    mean = sum(block(start).sum(axis=0) for start in starts) / n
    scatter = sum((c := block(start) - mean).T @ c for start in starts)
    variances = np.linalg.eigvalsh(scatter)[::-1].clip(min=0.0)
    total = variances.sum()
    if total <= 0:  # every row the same: nothing to keep
        return 1
    return int(min(np.searchsorted(np.cumsum(variances) / total, explained) + 1, x.shape[1]))


def latent_cap(n_rows: int, n_components: int, extra_columns: int = 2) -> int:
    """The largest latent size L (at least 1) whose mixture rows, D = L + ``extra_columns`` wide (the
    reconstruction features after z), leave each of the K components, on an equal share of the rows, as
    many rows as its mean and covariance have parameters: D (D + 3) / 2 <= n_rows / K. A wider latent
    fits covariances that the rows cannot determine."""
    dim = 1
    while (dim + 1) * (dim + 4) / 2 <= n_rows / n_components:
        dim += 1
    return max(1, dim - extra_columns)


COMPONENTS = (4, 8, 16, 32)  # the choices for n_components null (BENCHMARKS.md, "Defaults that fit the data")


def mixture_components(n_rows: int, latent: int, extra_columns: int = 2) -> int:
    """The most components of ``COMPONENTS`` whose equal shares of the rows still fit the mixture rows of a
    latent of size ``latent`` (as ``latent_cap`` counts: D (D + 3) / 2 parameters per component for rows
    D = latent + ``extra_columns`` wide); the fewest where none does."""
    dim = latent + extra_columns
    fitting = [k for k in COMPONENTS if dim * (dim + 3) / 2 <= n_rows / k]
    return max(fitting, default=COMPONENTS[0])


class NetworkSizes(NamedTuple):
    """What ``network_sizes`` chose, and the latent that 99 % of the variance alone would have taken."""

    hidden_dims: tuple[int, int]
    latent_dim: int
    n_components: int
    explained_latent: int


def network_sizes(
    x, n_components: int | None = 4, extra_columns: int = 2, keep: np.ndarray | None = None, fit_rows: int | None = None
) -> NetworkSizes:
    """Encoder widths (h, max(latent, h // 2)), latent size and K for the training rows x (N, F) (those of
    ``keep``, (N,) bool, if given): the latent keeps ``EXPLAINED_VARIANCE`` of their variance, at most
    ``latent_cap`` for K components and mixture rows L + ``extra_columns`` wide; h = max(2 * latent,
    min(F, 64)): the hidden layers never narrower than the latent. K = ``n_components``, or where None
    ``mixture_components``: as many components as the rows can fit at that latent. The rows counted for
    the caps: at most ``fit_rows`` (those a mixture fit reads; None: all)."""
    n = len(x) if keep is None else int(np.count_nonzero(keep))
    n = n if fit_rows is None else min(n, fit_rows)
    wanted = latent_size(x, keep=keep)
    components = n_components if n_components is not None else mixture_components(n, wanted, extra_columns)
    latent = min(wanted, latent_cap(n, components, extra_columns))
    width = max(2 * latent, min(x.shape[1], MAX_WIDTH))
    return NetworkSizes((width, max(latent, width // 2)), latent, components, wanted)
