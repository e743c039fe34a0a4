"""Anomaly scores and the decision threshold: the paper's energy, the study's modified inference
(energy + reconstruction error), the positive-unlabeled c / 2 rule.

Every score is "higher = more anomalous"; a row is flagged when its score is above the threshold.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import nn

from dagmm_lightning.errors import check_choice, check_range

Inference = Literal["energy", "energy+reconstruction"]


def upper_quantile(scores: torch.Tensor, contamination: float) -> float:
    """The (1 - contamination) quantile of scores (N,), linearly interpolated: the share ``contamination``
    of the rows lies above it."""
    # numpy: torch.quantile refuses inputs of more than 2^24 elements
    return float(np.quantile(scores.detach().double().cpu().numpy(), 1.0 - contamination))


class ScoreCalibration(nn.Module):
    """Turns per-row energies and reconstruction errors into scores, and holds the decision threshold.

    ``inference="energy"``: the score is the energy (Zong et al. 2018). ``"energy+reconstruction"`` (the
    study's modified inference): z-score of the energy + ``reconstruction_weight`` * z-score of the squared
    reconstruction error, both with the training rows' mean and standard deviation (buffer
    ``normalisation`` = [energy mean, energy std, error mean, error std]), so the weight has no units.
    The threshold (buffer) is the (1 - ``contamination``) quantile of the training rows' scores.
    """

    def __init__(
        self, inference: Inference = "energy", reconstruction_weight: float = 1.0, contamination: float | None = 0.1
    ):
        super().__init__()
        check_choice("inference", inference, Inference)
        if contamination is not None:  # None: set before the first fit (from the data's labels)
            check_range("contamination", contamination, 0.0, 0.5, low_open=True)
        self.inference, self.reconstruction_weight, self.contamination = inference, reconstruction_weight, contamination
        self.register_buffer("normalisation", torch.tensor([0.0, 1.0, 0.0, 1.0], dtype=torch.float64))
        self.register_buffer("threshold", torch.tensor(float("nan"), dtype=torch.float64))

    def fit(self, energy: torch.Tensor, error: torch.Tensor) -> torch.Tensor:
        """Normalisation and threshold from the training rows' energies and errors (N,); returns their scores."""
        spread = [energy.std().clamp_min(1e-12), error.std().clamp_min(1e-12)]
        self.normalisation.copy_(torch.stack([energy.mean(), spread[0], error.mean(), spread[1]]).double())
        scores = self(energy, error)
        self.threshold.fill_(upper_quantile(scores, self.contamination))
        return scores

    def forward(self, energy: torch.Tensor, error: torch.Tensor) -> torch.Tensor:
        """Scores (N,) of rows with energies and reconstruction errors (N,)."""
        if self.inference == "energy":
            return energy
        e_mean, e_std, r_mean, r_std = self.normalisation
        return (energy - e_mean) / e_std + self.reconstruction_weight * (error - r_mean) / r_std


def positive_unlabeled_threshold(c: float) -> float:
    """The PU decision on the score 1 - h: h < c / 2, i.e. p(normal | x) = h / c < 1/2 (Elkan and Noto,
    2008), is "1 - h above 1 - c / 2"."""
    return 1.0 - c / 2.0
