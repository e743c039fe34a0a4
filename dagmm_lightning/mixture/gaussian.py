"""Gaussian mixture energy (Zong et al. 2018, eq. 5-6), computed from the Cholesky factor only."""

from __future__ import annotations

import math

import torch

from dagmm_lightning.mixture.base import MixtureEnergy, SufficientStatistics, memberships_check


def cholesky_with_jitter(cov: torch.Tensor, jitter: float, max_tries: int = 8) -> torch.Tensor:
    """Lower Cholesky factor of ``cov`` (..., D, D), which already holds ``jitter`` on its diagonal.

    Where a matrix is still not positive definite (rounding, a collapsed latent), the diagonal is raised
    tenfold per try, starting from ``max(jitter, 1e-10)`` times its mean variance; the result is always a
    valid factor or a clear error, never NaN.
    """
    factor, info = torch.linalg.cholesky_ex(cov)
    if not bool((info > 0).any()):
        return factor
    eye = torch.eye(cov.shape[-1], dtype=cov.dtype, device=cov.device)
    scale = cov.diagonal(dim1=-2, dim2=-1).abs().mean(-1, keepdim=True).clamp_min(1.0).unsqueeze(-1)
    extra = max(jitter, 1e-10)
    for _ in range(max_tries):
        failed = (info > 0).to(cov.dtype)[..., None, None]
        cov = cov + failed * extra * scale * eye
        factor, info = torch.linalg.cholesky_ex(cov)
        if not bool((info > 0).any()):
            return factor
        extra *= 10.0
    raise FloatingPointError(
        "covariance is not positive definite even after adding jitter; the latent rows hold NaN/inf "
        "or collapsed completely (try a larger `jitter`)"
    )


def gaussian_log_prob(z: torch.Tensor, means: torch.Tensor, scale_tril: torch.Tensor) -> torch.Tensor:
    """log N(z_i | mu_k, L_k L_k^T): z (N, D), means (K, D), scale_tril (K, D, D) -> (N, K).

    The Mahalanobis term comes from a triangular solve and the log-determinant from the factor's
    diagonal; no inverse or determinant is formed.
    """
    diff = (z.unsqueeze(0) - means.unsqueeze(1)).transpose(1, 2)  # (K, D, N)
    solved = torch.linalg.solve_triangular(scale_tril, diff, upper=False)  # (K, D, N)
    mahalanobis = solved.pow(2).sum(1)  # (K, N)
    log_det = 2.0 * scale_tril.diagonal(dim1=-2, dim2=-1).log().sum(-1)  # (K,)
    dim = z.shape[1]
    return (-0.5 * (dim * math.log(2.0 * math.pi) + log_det.unsqueeze(1) + mahalanobis)).T


class GaussianMixtureEnergy(MixtureEnergy):
    """K full-covariance Gaussians; penalty P = sum_k sum_j 1 / Sigma_k[j, j] (paper eq. 7).

    Buffers: ``weights`` (K,), ``means`` (K, D), ``covariances`` (K, D, D) with the jitter included,
    ``scale_tril`` (K, D, D), their Cholesky factor.
    """

    parameter_names = ("weights", "means", "covariances", "scale_tril")

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        k, d = self.n_components, self.dim
        return {"weights": (k,), "means": (k, d), "covariances": (k, d, d), "scale_tril": (k, d, d)}

    def _with_jitter(self, cov: torch.Tensor) -> dict[str, torch.Tensor]:
        cov = 0.5 * (cov + cov.transpose(-1, -2))
        cov = cov + self.jitter * torch.eye(self.dim, dtype=cov.dtype, device=cov.device)
        return {"covariances": cov, "scale_tril": cholesky_with_jitter(cov, self.jitter)}

    def batch_parameters(self, z: torch.Tensor, gamma: torch.Tensor) -> dict[str, torch.Tensor]:
        """The seed's "GMM parameter updates" on one batch: z (N, D), gamma (N, K)."""
        memberships_check(z, gamma, self.n_components)
        with torch.autocast(device_type=z.device.type, enabled=False):
            z, gamma = self.cast(z), self.cast(gamma)
            mass = gamma.sum(0)  # (K,)
            safe_mass = mass.clamp_min(torch.finfo(self.dtype).tiny).unsqueeze(1)
            means = gamma.T @ z / safe_mass  # (K, D)
            diff = z.unsqueeze(1) - means.unsqueeze(0)  # (N, K, D)
            cov = torch.einsum("nk,nkd,nke->kde", gamma, diff, diff) / safe_mass.unsqueeze(2)
            return {"weights": mass / z.shape[0], "means": means, **self._with_jitter(cov)}

    def component_log_prob(self, z: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        return gaussian_log_prob(z, params["means"], params["scale_tril"])

    def penalty(self, params: dict[str, torch.Tensor], dims: slice | None = None) -> torch.Tensor:
        variances = params["covariances"].diagonal(dim1=-2, dim2=-1)
        return variances[:, dims if dims is not None else slice(None)].reciprocal().sum()

    # --- training-set fit: one pass of N, sum gamma, sum gamma z, sum gamma z z^T ----------------
    def new_statistics(self, pass_index: int) -> SufficientStatistics:
        k, d = self.n_components, self.dim
        return SufficientStatistics(rows=(), mass=(k,), first=(k, d), second=(k, d, d))

    def accumulate(self, stats: SufficientStatistics, pass_index: int, z: torch.Tensor, gamma: torch.Tensor) -> None:
        memberships_check(z, gamma, self.n_components)
        z, gamma = z.detach().double(), gamma.detach().double()
        stats.add(
            rows=torch.tensor(float(z.shape[0]), dtype=torch.float64, device=z.device),
            mass=gamma.sum(0),
            first=gamma.T @ z,
            second=torch.einsum("nk,nd,ne->kde", gamma, z, z),
        )

    def finish_pass(self, stats: SufficientStatistics, pass_index: int) -> None:
        if float(stats["rows"]) == 0:
            raise ValueError("cannot fit the mixture on zero training rows")
        mass = stats["mass"].clamp_min(torch.finfo(torch.float64).tiny)
        means = stats["first"] / mass.unsqueeze(1)
        cov = stats["second"] / mass[:, None, None] - means.unsqueeze(2) * means.unsqueeze(1)
        self.store(weights=stats["mass"] / stats["rows"], means=means, **self._with_jitter(cov))
        self.is_fitted.fill_(True)
