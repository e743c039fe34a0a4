"""Every term of every training objective in one place (paper eq. 7 and the study's additions).

All terms are per-batch scalars or per-row vectors; the LightningModules weight and sum them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import torch
import torch.nn.functional as F

from dagmm_lightning.errors import ConfigurationError

AnomalyLoss = Literal["hinge", "softplus", "inverse"]


def gaussian_kl(mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(log_var)) || N(0, I)) per row, closed form: (N, D) twice -> (N,). The VAE's term."""
    return 0.5 * (mean.pow(2) + log_var.exp() - 1.0 - log_var).sum(dim=1)


def vector_quantization_losses(z_e: torch.Tensor, e: torch.Tensor, beta: float, train_codebook: bool) -> dict:
    """The VQ-VAE's terms for encoder outputs z_e and their codes e (N, D): commitment beta ||z_e - sg[e]||^2
    and, unless an EMA moves the codebook, the codebook term ||sg[z_e] - e||^2 (batch means)."""
    losses = {"commitment": beta * (z_e - e.detach()).pow(2).sum(1).mean()}
    if train_codebook:
        losses["codebook"] = (z_e.detach() - e).pow(2).sum(1).mean()
    return losses


def anomaly_energy_loss(
    anomalous: torch.Tensor, normal: torch.Tensor, kind: AnomalyLoss, margin: float
) -> torch.Tensor:
    """Per-row term that raises the energy of labelled anomalies (the study's "modified loss").

    With E_a the anomalies' energies ((members,) A) and Ebar the mean of the normal rows' energies (no
    gradient; per member):
    ``hinge`` max(0, m - (E_a - Ebar)), ``softplus`` softplus(m - (E_a - Ebar)), or ``inverse``, the
    study's 1 / E_a. The study's form is flawed: E can be zero or negative, so 1/E is unbounded and flips
    sign (minimising it drives E to 0 from below); it is kept faithful except that |E| is floored at 1e-3
    (sign kept) so that it never divides by zero.
    """
    if kind == "inverse":
        floor = torch.full_like(anomalous, 1e-3)
        return 1.0 / torch.where(anomalous < 0, -torch.maximum(-anomalous, floor), torch.maximum(anomalous, floor))
    gap = margin - (anomalous - normal.detach().mean(-1, keepdim=True))
    return F.relu(gap) if kind == "hinge" else F.softplus(gap)


def dagmm_objective(
    error: torch.Tensor,
    energy: torch.Tensor | None,
    penalty: torch.Tensor | None,
    labelled_anomaly: torch.Tensor | None,
    lambda_energy: float,
    lambda_cov: float,
    anomaly_loss: AnomalyLoss = "hinge",
    anomaly_margin: float = 5.0,
) -> dict[str, torch.Tensor]:
    """The weighted terms of J = mean reconstruction error + lambda1 * mean energy + lambda2 * P (paper eq. 7)
    over the normal rows, plus lambda1 * the anomaly term over rows labelled as anomalies (mixed split).

    error, energy ((M,) N) per row; penalty the mixture's scalar P; labelled_anomaly (N,) bool, None where
    the batch has no labelled anomaly (no data-dependent branch then, for a compiled step). An
    ensemble's (M, N) terms are the sums over its members of each member's J. A batch made only of
    labelled anomalies has no energy (no mixture to fit): it gives a zero reconstruction term.
    """
    if energy is None:
        return {"reconstruction": error.sum() * 0.0}
    if labelled_anomaly is not None and not bool(labelled_anomaly.any()):
        labelled_anomaly = None
    normal = slice(None) if labelled_anomaly is None else ~labelled_anomaly
    terms = {
        "reconstruction": error[..., normal].mean(-1).sum(),
        "energy": lambda_energy * energy[..., normal].mean(-1).sum(),
        "penalty": lambda_cov * penalty,
    }
    if labelled_anomaly is not None:
        anomalous = anomaly_energy_loss(
            energy[..., labelled_anomaly], energy[..., normal], anomaly_loss, anomaly_margin
        )
        terms["anomaly_energy"] = lambda_energy * anomalous.mean(-1).sum()
    return terms


def labelled_classifier_loss(logit: torch.Tensor, labelled: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of the positive-unlabeled classifier h ("is this row labelled?"): (N,) twice."""
    return F.binary_cross_entropy_with_logits(logit, labelled.to(logit.dtype))


def summed_terms(terms: dict[str, torch.Tensor]) -> torch.Tensor:
    """The objective, a float64 scalar: the sum of a batch's weighted terms, each one number (a variant's
    ``training_terms`` that gives a row-wise term is named here, not met as a stacking error)."""
    if not isinstance(terms, Mapping):
        raise ConfigurationError(
            "training_terms must give a dict of the batch's weighted terms (name: 0-d tensor), got "
            f"{type(terms).__name__}"
        )
    for name, term in terms.items():
        if not isinstance(term, torch.Tensor) or term.ndim:
            got = f"shape {tuple(term.shape)}" if isinstance(term, torch.Tensor) else type(term)
            raise ConfigurationError(
                f"training_terms must give each term as one number (a 0-d tensor); {name!r}: {got}"
            )
    return torch.stack([t.to(torch.float64) for t in terms.values()]).sum()
