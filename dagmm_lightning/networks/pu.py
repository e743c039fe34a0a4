"""The study's positive-unlabeled DAGMM (Elkan and Noto, 2008; positive = normal) as a plain torch module.

A classifier h gives the probability that a row is *labelled*; with labelled rows drawn completely at
random from the normal rows, p(normal | x) = h(x) / c with c = p(labelled | normal), estimated as the
mean of h over held-out labelled rows. A row is predicted normal iff h(x) >= c / 2: no percentile.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

from dagmm_lightning.errors import DataError
from dagmm_lightning.mixture import SufficientStatistics
from dagmm_lightning.networks.dagmm import DAGMMModel, DAGMMOutput, evaluating
from dagmm_lightning.networks.layers import mlp
from dagmm_lightning.scoring import positive_unlabeled_threshold


class PositiveUnlabeledDAGMMModel(DAGMMModel):
    """``DAGMMModel`` plus h on the mixture rows [z_c, relative distance, cosine] and asinh of the row's
    energy under the stored training-set mixture, in training as in scoring (bounded growth whatever the
    energy's scale; detached, so the classifier's gradient reaches the compression through z_c only; the
    batch's own fit would give h inputs in training that scoring never shows it). Score 1 - h;
    threshold 1 - c / 2; buffer ``c``.

    Args:
        classifier_hidden: hidden layer sizes of h.
        activation: its activation.
        **kwargs: what ``DAGMMModel`` takes.
    """

    threshold_is_quantile = False

    def __init__(self, *args, classifier_hidden: Sequence[int] = (10,), activation: str = "tanh", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.classifier = mlp([self.mixture.dim + 1, *classifier_hidden, 1], activation)
        self.register_buffer("c", torch.tensor(float("nan"), dtype=torch.float64))

    def labelled_logit(self, out: DAGMMOutput) -> torch.Tensor:
        """Logit of h (N,) for an output; needs the stored training-set mixture."""
        with torch.no_grad():
            # (as scored: one-sided where the model scores so, ``one_sided_error``)
            one_sided = self.one_sided_error and self.error_feature
            energy = self.mixture.energy(out.rows, None, one_sided_last=one_sided) if self.training else out.energy
        features = torch.cat([out.rows, torch.asinh(energy).to(out.rows.dtype).unsqueeze(1)], dim=1)
        return self.classifier(features).squeeze(1)

    def labelled_probability(self, out: DAGMMOutput) -> torch.Tensor:
        """h (N,): the probability that a row is labelled, in float64 as ``score``'s 1 - h (c, their mean, sets
        the threshold 1 - c / 2 those scores are compared with)."""
        return torch.sigmoid(self.labelled_logit(out).double())

    def score(self, out: DAGMMOutput) -> torch.Tensor:
        # 1 - h as sigmoid(-logit) in float64: distinct up to logits of ~700, where 1 - h in float32 ties
        # every row at 0 once the logit passes 17
        return torch.sigmoid(-self.labelled_logit(out).double())

    @torch.no_grad()
    def fit(self, batches: Iterable[torch.Tensor], labelled_batches: Iterable[torch.Tensor] | None = None) -> None:
        """The mixture as ``DAGMMModel.fit``; then c = mean h over ``labelled_batches`` (held-out labelled
        rows, all ranks) and the threshold 1 - c / 2; without them (None) the mixture only, c and the threshold
        left as they were (NaN before a fit with them). The training scores need another pass: None."""
        super().fit(batches)
        if labelled_batches is None:
            return None
        with evaluating(self):
            total = SufficientStatistics({"sum": (), "count": ()}).to(self.c.device)
            total.update({"sum": torch.zeros(()), "count": torch.zeros(())})  # every rank syncs, rows or not
            for x in labelled_batches:
                h = self.labelled_probability(self(self.as_input(x)))
                total.update({"sum": h.sum(), "count": torch.tensor(float(len(h)), dtype=torch.float64)})
            sums = total.sums()
        if sums["count"] == 0:  # (had: c and the threshold NaN, and no row ever flagged)
            raise DataError("c is the mean of h over held-out labelled rows: labelled_batches held no row")
        self.c.fill_((sums["sum"] / sums["count"]).item())
        self.calibration.threshold.fill_(positive_unlabeled_threshold(float(self.c)))
        return None
