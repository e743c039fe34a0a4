"""Positive-unlabeled DAGMM (the study's "modified training setup"): the Lightning side of
``PositiveUnlabeledDAGMMModel``."""

from __future__ import annotations

import math

import torch

from dagmm_lightning.errors import ConfigurationError, check_range, warn
from dagmm_lightning.labels import KNOWN_NORMAL
from dagmm_lightning.losses import labelled_classifier_loss
from dagmm_lightning.models.dagmm import DAGMM, TrainingRows
from dagmm_lightning.networks import DAGMMOutput, PositiveUnlabeledDAGMMModel

MIN_ROWS_FOR_C = 10  # held-out labelled rows below which c is warned about
THRESHOLD_RULE = "its threshold is c / 2 (c, the classifier's mean output on held-out labelled rows)"
SPLIT_NEEDED = "DAGMMPU needs the data module's split: positive_unlabeled (held-out labelled rows for c)"


class DAGMMPU(DAGMM):
    """Positive-unlabeled DAGMM: a classifier h of labelled normal rows, threshold c / 2.

    DAGMM plus a labelled-vs-unlabelled classifier h, trained jointly: loss = DAGMM objective over all
    training rows (labelled and unlabelled alike, as in the unsupervised setting) + ``lambda_pu`` *
    BCE(h, labelled). The score is 1 - h; the stored threshold 1 - c / 2 (anomaly iff h < c / 2), with
    c = mean h over the data module's val rows, which the ``positive_unlabeled`` split holds out from the
    labelled rows. Logs ``val/c`` and ``test/c``, and the energy's ROC AUC beside the score's.

    Args:
        lambda_pu: weight of the classifier's binary cross-entropy (> 0: without it h never trains).
        classifier_hidden: hidden layer sizes of h.
        contamination: plays no part (the threshold is c / 2; configs/pu.yaml keeps its base's value).
        inference: ``energy`` only: the score is the classifier's 1 - h (the energy's ROC AUC is logged
            beside it).
        **kwargs: what ``DAGMM`` takes, but one model (``members`` 1, so no ``gaussian+laplace``).
    """

    ensembles = False
    learns_from_known_normals = True
    threshold_from_contamination = False

    model_class = PositiveUnlabeledDAGMMModel

    def __init__(
        self,
        *args,
        lambda_pu: float = 1.0,
        classifier_hidden: tuple[int, ...] = (10,),
        contamination: float | None = None,
        **kwargs,
    ) -> None:
        if kwargs.get("inference", "energy") != "energy":
            raise ConfigurationError(
                f"DAGMMPU scores with its classifier (1 - h), so inference={kwargs['inference']!r} would be ignored; "
                "leave inference at 'energy'"
            )
        check_range("lambda_pu", lambda_pu, 0.0, math.inf, low_open=True, high_open=True)  # 0: h never trains
        super().__init__(*args, contamination=contamination, **kwargs)

    def setup(self, stage: str) -> None:
        super().setup(stage)
        datamodule = getattr(self.trainer, "datamodule", None)
        if stage == "fit" and getattr(datamodule, "split", None) != "positive_unlabeled":
            raise ConfigurationError(
                f"{SPLIT_NEEDED}; from the command line --data.split positive_unlabeled (as configs/pu.yaml sets it); "
                "in Python AnomalyDataModule(..., split='positive_unlabeled') (from_arrays and from_table take it "
                "too) or DAGMMDetector(variant='pu') with y, not loaders of one's own"
            )
        if stage != "fit":
            return
        held_out = len(datamodule.splits.val)
        if held_out < MIN_ROWS_FOR_C:
            warn(
                f"c (and the threshold c / 2) is estimated from {held_out} held-out labelled row(s): too few to "
                "trust; label more normal rows (DAGMMDetector: more rows with y == 0, of which it holds out a "
                "tenth, at least 10 where that leaves as many to train; the CLI: --data.labelled_fraction, "
                "--data.val_fraction)"
            )

    def model_options(self) -> dict:
        return {"classifier_hidden": self.hparams.classifier_hidden, "activation": self.hparams.activation}

    @property
    def score_is_energy(self) -> bool:
        return False

    def score_description(self) -> str:
        return "1 - h (h: the classifier's output)"

    def training_terms(
        self, out: DAGMMOutput, y: torch.Tensor, labelled: torch.Tensor | None
    ) -> dict[str, torch.Tensor]:
        terms = super().training_terms(out, y, labelled)
        terms["classifier"] = self.hparams.lambda_pu * labelled_classifier_loss(
            self.model.labelled_logit(out), y == KNOWN_NORMAL
        )
        return terms

    def refit(self) -> None:
        datamodule = self.trainer.datamodule if self._trainer is not None else None
        if datamodule is None or getattr(datamodule, "split", None) != "positive_unlabeled":
            raise ConfigurationError(SPLIT_NEEDED)
        self._training_scores = None
        self.read_error_as_set()
        with self.forward_context():
            self.model.fit(TrainingRows(self._training_batches()), TrainingRows(datamodule.refit_dataloader("val")))
        self.mark_fitted()

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        # h reads the energy under the training-set mixture: fitted with this epoch's starting weights
        # (unless a validation just did, with the same weights)
        self._refit_if_stale()

    def on_validation_epoch_start(self) -> None:
        super().on_validation_epoch_start()
        self._validated_c = float(self.model.c)  # the validated weights' (weight averaging swaps back first)

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        self.log("val/c", self._validated_c)

    def on_test_epoch_end(self) -> None:
        self.log("test/c", float(self.model.c))
