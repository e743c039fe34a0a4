"""Anomaly scores and the decision threshold: the paper's energy, the study's modified inference
(energy + reconstruction error), the positive-unlabeled c / 2 rule.

Every score is "higher = more anomalous"; a row is flagged when its score is above the threshold.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
from scipy.stats import binom
from torch import nn

from dagmm_lightning.errors import check_choice, check_range

Inference = Literal["energy", "energy+reconstruction"]


def upper_quantile(scores: torch.Tensor, contamination: float) -> float:
    """The (1 - contamination) quantile of scores (N,), linearly interpolated: the share ``contamination``
    of the rows lies above it."""
    # numpy: torch.quantile refuses inputs of more than 2^24 elements
    return float(np.quantile(scores.detach().double().cpu().numpy(), 1.0 - contamination))


def rows_above_quantile(rows: int, share: float) -> int:
    """How many of ``rows`` different scores lie above their (1 - ``share``) quantile, linearly interpolated
    (``upper_quantile``): those past its position (rows - 1)(1 - share) in the sorted scores."""
    return rows - 1 - math.floor(round((rows - 1) * (1.0 - share), 9))


def ties_at_threshold(scores: torch.Tensor, threshold: float, contamination: float) -> tuple[float, float] | None:
    """(share of scores (N,) above ``threshold``, share within 1e-5 of it) where ties at the quantile
    (duplicate rows) leave fewer than ``contamination`` above it (more than its interpolation's one row);
    else None."""
    if not len(scores):
        return None
    scores = scores.detach().double().cpu()
    above = float((scores > threshold).double().mean())
    if above >= contamination - 1.0 / len(scores):
        return None
    tied = torch.isclose(scores, torch.tensor(threshold, dtype=torch.float64), rtol=1e-5, atol=0)
    return above, float(tied.double().mean())


def flagged_far_above(share: float | None, rows: int, flagged: int) -> bool:
    """Whether ``flagged`` of ``rows`` is far above the ``share`` of rows a threshold was set to flag: at
    least max(share + 0.1, min(0.5, 3x share)) of them, a count that chance (binomial, at ``share``) gives
    less than once in 10,000 runs."""
    if not share or not rows:
        return False
    return flagged / rows >= max(share + 0.1, min(0.5, 3 * share)) and binom.sf(flagged - 1, rows, share) < 1e-4


class ScoreCalibration(nn.Module):
    """Turns per-row energies and reconstruction errors into scores, and holds the decision threshold.

    ``inference="energy"``: the score is the energy (Zong et al. 2018). ``"energy+reconstruction"`` (the
    study's modified inference): z-score of the energy + ``reconstruction_weight`` * z-score of the squared
    reconstruction error, both with the training rows' (those the fit read) mean and standard deviation (buffer
    ``normalisation`` = [energy mean, energy std, error mean, error std]), so the weight has no units.
    The threshold (buffer) is the (1 - ``contamination``) quantile of the training rows' scores, or of the
    rows the model sets it on (``DAGMM``'s ``threshold_rows``, ``DAGMMDetector``'s ``calibration_fraction``).

    An ensemble (``members`` = M > 1) gives energies and errors (M, N): each member's score as above
    (``normalisation`` (M, 4)), then the mean over members of those scores z-scored with the member's
    training mean and standard deviation (buffer ``member_normalisation`` (M, 2)): one score (N,).
    """

    def __init__(
        self,
        inference: Inference = "energy",
        reconstruction_weight: float = 1.0,
        contamination: float | None = 0.1,
        members: int = 1,
    ):
        super().__init__()
        check_choice("inference", inference, Inference)
        if contamination is not None:  # None: set before the first fit (from the data's labels)
            check_range("contamination", contamination, 0.0, 0.5, low_open=True)
        self.inference, self.reconstruction_weight, self.contamination = inference, reconstruction_weight, contamination
        unit = torch.tensor([0.0, 1.0, 0.0, 1.0], dtype=torch.float64)
        self.register_buffer("normalisation", unit if members == 1 else unit.repeat(members, 1))
        if members > 1:
            self.register_buffer("member_normalisation", unit[:2].repeat(members, 1))
        self.register_buffer("threshold", torch.tensor(float("nan"), dtype=torch.float64))

    def fit(self, energy: torch.Tensor, error: torch.Tensor) -> torch.Tensor:
        """Normalisation and threshold from the training rows' energies and errors ((M,) N); returns their
        scores (N,)."""
        self.normalisation.copy_(torch.stack([*mean_and_spread(energy), *mean_and_spread(error)], -1).double())
        if hasattr(self, "member_normalisation"):
            member_scores = self.member_scores(energy, error)
            self.member_normalisation.copy_(torch.stack(mean_and_spread(member_scores), -1).double())
        scores = self(energy, error)
        if self.contamination is not None:  # None: a threshold of another rule (DAGMMPU's c / 2) follows
            self.set_threshold(scores)
        return scores

    def set_threshold(self, scores: torch.Tensor, contamination: float | None = None) -> None:
        """The threshold: the (1 - contamination) quantile of ``scores`` (N,) (None: this calibration's)."""
        self.threshold.fill_(upper_quantile(scores, self.contamination if contamination is None else contamination))

    def member_scores(self, energy: torch.Tensor, error: torch.Tensor) -> torch.Tensor:
        """Each member's own score ((M,) N) from its energies and reconstruction errors ((M,) N)."""
        if self.inference == "energy":
            return energy
        e_mean, e_std, r_mean, r_std = self.normalisation.unsqueeze(-1).unbind(-2)
        return (energy - e_mean) / e_std + self.reconstruction_weight * (error - r_mean) / r_std

    def combined_energy(self, energy: torch.Tensor) -> torch.Tensor:
        """An ensemble's energies (M, N) combined as the score combines its members: the mean of the
        members' energies z-scored on the training rows, (N,)."""
        mean, spread = self.normalisation[..., :2].unsqueeze(-1).unbind(-2)
        return ((energy - mean) / spread).mean(0)

    def forward(self, energy: torch.Tensor, error: torch.Tensor) -> torch.Tensor:
        """Scores (N,) of rows with energies and reconstruction errors ((M,) N)."""
        scores = self.member_scores(energy, error)
        if not hasattr(self, "member_normalisation"):
            return scores
        mean, spread = self.member_normalisation.unsqueeze(-1).unbind(-2)
        return ((scores - mean) / spread).mean(0)


def mean_and_spread(values: torch.Tensor) -> list[torch.Tensor]:
    """Mean and standard deviation over the last axis: (..., N) -> two (...). The deviation is floored at
    ``SPREAD_FLOOR`` times the values' mean magnitude (and 1e-12; of one value: the floor): training rows
    that score alike (identical rows, a collapsed member) differ by float noise only, which must not
    become z-scores of 1e5."""
    mean = values.mean(-1)
    spread = values.std(-1) if values.shape[-1] > 1 else torch.zeros_like(mean)
    return [mean, torch.maximum(spread, (SPREAD_FLOOR * values.abs().mean(-1)).clamp_min(1e-12))]


SPREAD_FLOOR = 1e-5  # relative; float32 scores vary by ~1e-6 with the batch they are computed in


def positive_unlabeled_threshold(c: float) -> float:
    """The PU decision on the score 1 - h: h < c / 2, i.e. p(normal | x) = h / c < 1/2 (Elkan and Noto,
    2008), is "1 - h above 1 - c / 2"."""
    return 1.0 - c / 2.0
