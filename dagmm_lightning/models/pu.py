"""Positive-unlabeled DAGMM (the seed's "modified training setup"; Elkan and Noto, 2008).

Positive = normal. A classifier h gives the probability that a row is *labelled*; with labelled rows
selected completely at random from the normal rows, p(normal | x) = h(x) / c with c = p(labelled |
normal), estimated as the mean of h over held-out labelled rows (probabilities, not logits). A row is
predicted normal iff h(x) >= c / 2, i.e. p(normal | x) >= 0.5; no percentile hyperparameter.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dagmm_lightning.data.splits import KNOWN_NORMAL
from dagmm_lightning.distributed import all_reduce_sum
from dagmm_lightning.models.dagmm import DAGMM, Batch
from dagmm_lightning.networks import mlp


class DAGMMPU(DAGMM):
    """DAGMM plus a labelled-vs-unlabelled classifier h on the DAGMM representation.

    h sees the mixture rows [z_c, relative distance, cosine] and asinh of the row's energy (asinh keeps
    the input bounded in growth, whatever the energy's scale). It is trained jointly with the DAGMM
    objective, which runs over all training rows (labelled and unlabelled alike, as in the unsupervised
    setting): loss = DAGMM + ``lambda_pu`` * BCE(h, labelled). The BCE gradient reaches the compression
    network through z_c, not through the energy (detached as an input to h).

    The score is 1 - h(x) (higher = more anomalous); the stored threshold is 1 - c / 2, so "score above
    threshold" is exactly h(x) < c / 2. The estimate c is stored in the ``c`` buffer and logged as
    ``val/c`` and ``test/c``; ``test/roc_auc_energy`` is the ROC AUC of the energy for comparison.
    It needs the data module's ``positive_unlabeled`` split, whose val rows are held-out labelled rows.

    Args:
        lambda_pu: weight of the classifier's binary cross-entropy.
        classifier_hidden: hidden layer sizes of h.
        **kwargs: everything ``DAGMM`` takes.
    """

    def __init__(self, *args, lambda_pu: float = 1.0, classifier_hidden: tuple[int, ...] = (10,), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        hp = self.hparams
        if hp.inference != "energy":
            raise ValueError(
                f"DAGMMPU scores with its classifier (1 - h), so inference={hp.inference!r} would be ignored; "
                "leave inference at 'energy'"
            )
        self.classifier = mlp([hp.latent_dim + 3, *classifier_hidden, 1], hp.activation)
        self.register_buffer("c", torch.tensor(float("nan"), dtype=torch.float64))

    def labelled_logit(self, rows: torch.Tensor, energy: torch.Tensor) -> torch.Tensor:
        """Logit of h: mixture rows (N, D) and energies (N,) -> (N,)."""
        features = torch.cat([rows, torch.asinh(energy.detach()).to(rows.dtype).unsqueeze(1)], dim=1)
        return self.classifier(features).squeeze(1)

    def training_terms(self, x: torch.Tensor, y: torch.Tensor, index: torch.Tensor) -> dict[str, torch.Tensor]:
        terms, batch = self.dagmm_terms(x, y)
        logit = self.labelled_logit(batch["rows"], batch["energy"])
        labelled = (y == KNOWN_NORMAL).to(logit.dtype)
        terms["classifier"] = self.hparams.lambda_pu * F.binary_cross_entropy_with_logits(logit, labelled)
        return terms

    def labelled_probability(self, x: torch.Tensor) -> torch.Tensor:
        """h(x): probability that a row is labelled (N,). Eval mode."""
        rows, _ = self.mixture_rows(x)
        return torch.sigmoid(self.labelled_logit(rows, self.mixture.energy(rows))).double()

    def score(self, x: torch.Tensor) -> torch.Tensor:
        return 1.0 - self.labelled_probability(x)

    @torch.no_grad()
    def fit_threshold(self, training_scores: torch.Tensor) -> float:
        datamodule = self.trainer.datamodule if self._trainer is not None else None
        if datamodule is None or getattr(datamodule, "split", None) != "positive_unlabeled":
            raise ValueError("DAGMMPU needs the data module's split: positive_unlabeled (held-out labelled rows for c)")
        total = torch.zeros(2, dtype=torch.float64, device=self.device)
        for x, _, _ in datamodule.val_dataloader():
            h = self.labelled_probability(self._as_input(x))
            total += torch.stack([h.sum(), torch.tensor(float(len(h)), dtype=torch.float64, device=self.device)])
        all_reduce_sum(total)
        self.c.fill_((total[0] / total[1]).item())
        return 1.0 - float(self.c) / 2.0

    def validation_step(self, batch: Batch, batch_idx: int) -> dict[str, torch.Tensor]:
        x, y, index = batch
        rows, _ = self.mixture_rows(x)
        energy = self.mixture.energy(rows)
        h = torch.sigmoid(self.labelled_logit(rows, energy)).double()
        return {"score": 1.0 - h, "label": y, "index": index, "energy": energy}

    test_step = validation_step

    def on_validation_epoch_end(self) -> None:
        self.log("val/c", float(self.c))

    def on_test_epoch_end(self) -> None:
        self.log("test/c", float(self.c))
