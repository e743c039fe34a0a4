"""Gaussian mixture energy (Zong et al. 2018, eq. 5-7), computed from the Cholesky factor only."""

from __future__ import annotations

import math

import torch

from dagmm_lightning.errors import NonFiniteError
from dagmm_lightning.mixture.base import MixtureEnergy


def cholesky_with_jitter(cov: torch.Tensor, jitter: float, max_tries: int = 8) -> torch.Tensor:
    """Lower Cholesky factor of ``cov`` (..., D, D) or of the matrix it was raised to (``factored``)."""
    return factored(cov, jitter, max_tries)[1]


def factored(cov: torch.Tensor, jitter: float, max_tries: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """``cov`` (..., D, D), which already holds ``jitter`` on its diagonal, as factored, and its lower
    Cholesky factor: (cov, L) with L L^T = cov.

    Where a matrix is still not positive definite (rounding, a collapsed latent, collinear dimensions), each
    diagonal entry is raised in proportion to itself (at least 1), tenfold per try, starting from
    ``max(jitter, 1e-10)`` times it: a dimension of small variance beside collinear ones of a large variance
    keeps its own scale (a bump by their mean variance had drowned it). The result is always a valid factor
    or a clear error, never NaN.

    Inside a ``torch.compile`` graph (``DAGMM(compile=True)``) a data-dependent retry would break the graph:
    there a failed factor is all NaN instead, so that the loss is NaN and the training step reruns the
    batch eagerly, through the retry.
    """
    factor, info = torch.linalg.cholesky_ex(cov)
    if torch.compiler.is_compiling():
        return cov, factor.masked_fill((info > 0)[..., None, None], float("nan"))
    if not bool((info > 0).any()):
        return cov, factor
    scale = torch.diag_embed(cov.diagonal(dim1=-2, dim2=-1).abs().clamp_min(1.0))  # (..., D, D), per dimension
    extra = max(jitter, 1e-10)
    for _ in range(max_tries):
        failed = (info > 0).to(cov.dtype)[..., None, None]
        cov = cov + failed * extra * scale
        factor, info = torch.linalg.cholesky_ex(cov)
        if not bool((info > 0).any()):
            return cov, factor  # (the raised matrix: the penalty reads the variances the energy uses)
        extra *= 10.0
    raise NonFiniteError(
        "covariance is not positive definite even after adding jitter; the latent rows hold NaN/inf "
        "or collapsed completely (try a larger `jitter`)"
    )


def gaussian_log_prob_of_deviations(diff: torch.Tensor, scale_tril: torch.Tensor) -> torch.Tensor:
    """log N(z_i | mu_k, L_k L_k^T) from diff = z_i - mu_k (..., K, D, N) -> (..., K, N).

    The Mahalanobis term is |L_k^-1 (z_i - mu_k)|^2 with L_k^-1 from one triangular solve of the identity
    (D x D) per component, applied to the differences by one batched matrix product (a solve with all N
    rows took longer than the rest of the energy). The differences come first: L^-1 z - L^-1 mu would
    cancel digits for rows far from the origin (float32: an error growing with |mu| / sigma). The
    log-determinant comes from the factor's diagonal; no covariance is inverted and no determinant is
    formed.
    """
    dim = scale_tril.shape[-1]
    identity = torch.eye(dim, dtype=scale_tril.dtype, device=scale_tril.device)
    whitening = torch.linalg.solve_triangular(scale_tril, identity, upper=False)  # (..., K, D, D): L^-1
    mahalanobis = (whitening @ diff).square().sum(-2)  # (..., K, N)
    log_det = 2.0 * scale_tril.diagonal(dim1=-2, dim2=-1).log().sum(-1)  # (..., K)
    return -0.5 * (dim * math.log(2.0 * math.pi) + log_det.unsqueeze(-1) + mahalanobis)


def gaussian_one_sided_deviations(diff: torch.Tensor, scale_tril: torch.Tensor) -> torch.Tensor:
    """diff = z_i - mu_k (..., K, D, N) with the last coordinate raised, where it lies below, to its
    conditional mean given the others under N(0, L_k L_k^T).

    With W = L^-1 (lower triangular) the last whitened coordinate W[D-1] . diff is the only one that reads
    the last coordinate, and it is 0 at the conditional mean: -(W[D-1, :D-1] . diff[:D-1]) / W[D-1, D-1].
    """
    dim = scale_tril.shape[-1]
    identity = torch.eye(dim, dtype=scale_tril.dtype, device=scale_tril.device)
    last_row = torch.linalg.solve_triangular(scale_tril, identity, upper=False)[..., -1, :]  # (..., K, D)
    expected = -(last_row[..., :-1].unsqueeze(-1) * diff[..., :-1, :]).sum(-2) / last_row[..., -1:]  # (..., K, N)
    return torch.cat([diff[..., :-1, :], torch.maximum(diff[..., -1, :], expected).unsqueeze(-2)], dim=-2)


class GaussianMixtureEnergy(MixtureEnergy):
    """K full-covariance Gaussians; penalty P = sum_k sum_j 1 / Sigma_k[j, j] (paper eq. 7).

    M-step (the study's "GMM parameter updates"): phi_k and mu_k from N, sum gamma and sum gamma z (pass
    0); Sigma_k = sum_i gamma_ik (z_i - mu_k)(z_i - mu_k)^T / sum_i gamma_ik + jitter I (pass 1). Buffers:
    ``weights`` (K,), ``means`` (K, D), ``covariances`` (K, D, D) with the jitter included, ``scale_tril``
    (K, D, D), their Cholesky factor.
    """

    parameter_names = ("weights", "means", "covariances", "scale_tril")

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        k, d = self.n_components, self.dim
        return {"weights": (k,), "means": (k, d), "covariances": (k, d, d), "scale_tril": (k, d, d)}

    def spread_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"scatter": (self.n_components, self.dim, self.dim)}

    def spread_statistics(self, gamma: torch.Tensor, diff: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"scatter": torch.einsum("...nk,...nkd,...nke->...kde", gamma, diff, diff)}

    def spread_m_step(self, stats: dict[str, torch.Tensor], mass: torch.Tensor) -> dict[str, torch.Tensor]:
        cov = stats["scatter"] / mass[..., None, None]
        cov = self._parameter(0.5 * (cov + cov.transpose(-1, -2)))
        cov, scale_tril = factored(
            cov + self.jitter * torch.eye(self.dim, dtype=cov.dtype, device=cov.device), self.jitter
        )
        return {"covariances": cov, "scale_tril": scale_tril}

    def log_prob_of_deviations(self, diff: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        return gaussian_log_prob_of_deviations(diff, params["scale_tril"])

    def one_sided_deviations(self, diff: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        return gaussian_one_sided_deviations(diff, params["scale_tril"])

    def recentred_spread(
        self, stats: dict[str, torch.Tensor], mass: torch.Tensor, shift: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        # sum_i g (z - mu_new)(z - mu_new)^T = sum_i g (z - mu_old)(z - mu_old)^T - m (mu_new - mu_old)(...)^T,
        # exact; the sums are float64 over float64 deviations, so what cancels is float64 rounding
        return {"scatter": stats["scatter"] - mass[..., None, None] * shift.unsqueeze(-1) * shift.unsqueeze(-2)}

    def penalty(self, params: dict[str, torch.Tensor], dims: slice | None = None) -> torch.Tensor:
        variances = params["covariances"].diagonal(dim1=-2, dim2=-1)
        return variances[..., dims if dims is not None else slice(None)].reciprocal().sum()
