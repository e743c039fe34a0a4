"""Row splits of the two evaluation protocols (README, "Protocols").

Every split has three disjoint row sets: ``train`` (normal rows only), ``val`` (held-out normal rows of
the training side plus anomalies that never reach test; never trained on: the stored threshold (the
contamination quantile of their scores, by default), checkpoint selection and early stopping, PU's c)
and ``test`` (only for `test` and `predict`; the reported numbers come from it). Val keeps the anomaly
ratio of test, so its "top rho %" metrics mean what the test's do; training-side anomalies that val
does not need are kept in ``spare`` (never evaluated; the mixed-label split draws from them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from dagmm_lightning.errors import ConfigurationError, DataError, check_choice
from dagmm_lightning.labels import KNOWN_NORMAL, LABELLED_ANOMALY, UNLABELLED

Protocol = Literal["paper", "reimplementation"]
Split = Literal["normal_only", "mixed", "positive_unlabeled"]


@dataclass(frozen=True)
class Splits:
    """Sorted row indices of each set; ``train_labels`` (len(train),) holds each training row's
    training label: ``KNOWN_NORMAL`` (0), ``LABELLED_ANOMALY`` (1) or ``UNLABELLED`` (-1)."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    train_labels: np.ndarray | None = None
    spare: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.train_labels is None:
            object.__setattr__(self, "train_labels", np.zeros(len(self.train), dtype=np.int64))
        if self.spare is None:
            object.__setattr__(self, "spare", np.zeros(0, dtype=np.int64))


def _take(rows: np.ndarray, share: float) -> tuple[np.ndarray, np.ndarray]:
    n = int(round(share * len(rows)))
    return rows[:n], rows[n:]


def unlabelled_splits(n_rows: int, seed: int = 0, val_fraction: float = 0.1) -> Splits:
    """Seeded split of ``n_rows`` rows without labels: every row trains but ``val_fraction`` of them, held
    out for val (the threshold's rows, the validation loss); no test rows, as there is nothing to test
    against (a protocol's held-out half would leave half the rows unused)."""
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigurationError(f"val_fraction must be in [0, 1), got {val_fraction}")
    val, train = _take(np.random.default_rng(seed).permutation(n_rows), val_fraction)
    if len(train) == 0:
        raise DataError(f"the split left no rows for training: the table has {n_rows} row{'s' * (n_rows != 1)}")
    return Splits(np.sort(train), np.sort(val), np.zeros(0, dtype=np.int64))


def make_splits(
    is_anomaly: np.ndarray, protocol: Protocol = "paper", seed: int = 0, val_fraction: float = 0.1
) -> Splits:
    """Seeded split of rows with labels ``is_anomaly`` (N,) bool.

    * ``paper`` (Zong et al. 2018): all rows split 50/50 at random; the training half's normal rows train
      (less ``val_fraction`` of them, held out for val); val adds as many of the training half's
      anomalies as give it the data set's anomaly ratio (the rest are spare, dropped as in the paper);
      test is the other half with its natural anomaly ratio.
    * ``reimplementation`` (danieltan07/dagmm): ``val_fraction`` of the anomalies are set aside for val
      first; the normal rows are split 50/50, the first half trains (less ``val_fraction`` held out for
      val); test is the other half of the normal rows plus the remaining anomalies.
    """
    check_choice("protocol", protocol, Protocol)
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigurationError(f"val_fraction must be in [0, 1), got {val_fraction}")
    is_anomaly = np.asarray(is_anomaly, dtype=bool)
    rng = np.random.default_rng(seed)
    if protocol == "paper":
        rows = rng.permutation(len(is_anomaly))
        train_side, test = rows[: len(rows) // 2], rows[len(rows) // 2 :]
        normal_side = train_side[~is_anomaly[train_side]]
        val_normal, train = _take(normal_side, val_fraction)
        ratio = float(is_anomaly.mean())
        n_val_anomalies = round(len(val_normal) * ratio / max(1.0 - ratio, 1e-12))
        side_anomalies = train_side[is_anomaly[train_side]]
        val = np.concatenate([val_normal, side_anomalies[:n_val_anomalies]])
        spare = side_anomalies[n_val_anomalies:]
    else:
        anomalies = rng.permutation(np.flatnonzero(is_anomaly))
        normals = rng.permutation(np.flatnonzero(~is_anomaly))
        val_anomalies, test_anomalies = _take(anomalies, val_fraction)
        train_side, test_normal = normals[: len(normals) // 2], normals[len(normals) // 2 :]
        val_normal, train = _take(train_side, val_fraction)
        val = np.concatenate([val_normal, val_anomalies])
        test = np.concatenate([test_normal, test_anomalies])
        spare = np.zeros(0, dtype=np.int64)
    if len(train) == 0:
        normal = int((~is_anomaly).sum())
        raise DataError(
            f"the split left no normal rows for training: the table has {normal} normal row"
            f"{'' if normal == 1 else 's'} of {len(is_anomaly)}; about half go to test, val_fraction of the rest to val"
        )
    return Splits(np.sort(train), np.sort(val), np.sort(test), spare=np.sort(spare))


def with_labelled_anomalies(splits: Splits, is_anomaly: np.ndarray, share: float, seed: int) -> Splits:
    """The mixed-label split: a seeded ``share`` of the anomalies that ``splits`` keeps out of test (the
    spare ones first, then val's) joins the training rows, labelled; val keeps those of its anomalies
    not drawn; test is unchanged. No evaluated row is trained on."""
    if not 0.0 < share <= 1.0:
        raise ConfigurationError(f"labelled_anomalies must be in (0, 1], got {share}")
    rng = np.random.default_rng([seed, 1])
    # spare anomalies first, so val keeps its anomalies as long as possible
    val_anomalies = splits.val[is_anomaly[splits.val]]
    pool = np.concatenate([rng.permutation(splits.spare), rng.permutation(val_anomalies)])
    moved = pool[: int(round(share * len(pool)))]
    if len(moved) == 0:
        if len(pool) == 0:
            held = int(is_anomaly.sum())
            where = (
                "has no anomalies" if held == 0 else f"has {held} anomal{'y' if held == 1 else 'ies'}, all test rows"
            )
            raise DataError(
                f"the mixed split labels anomalies outside the test rows, and the data {where}: without anomalies "
                "to label, train the plain model (split normal_only)"
            )
        raise DataError(
            f"labelled_anomalies {share} of the {len(pool)} anomalies outside the test rows labels none; raise it"
        )
    train = np.concatenate([splits.train, moved])
    labels = np.r_[np.full(len(splits.train), KNOWN_NORMAL), np.full(len(moved), LABELLED_ANOMALY)]
    order = np.argsort(train)
    kept = np.setdiff1d(splits.val[is_anomaly[splits.val]], moved)
    val = np.sort(np.concatenate([splits.val[~is_anomaly[splits.val]], kept]))
    return Splits(train[order], val, splits.test, labels[order], np.sort(np.setdiff1d(splits.spare, moved)))


def positive_unlabeled(
    is_anomaly: np.ndarray, labelled_fraction: float, seed: int = 0, val_fraction: float = 0.1
) -> Splits:
    """Positive-unlabeled split (Elkan and Noto, 2008; positive = normal), paper protocol only.

    All rows split 50/50; on the training half, a random ``labelled_fraction`` of the normal rows is
    labelled (selected completely at random, as the method assumes); ``val_fraction`` of those labelled
    rows is held out as ``val`` (for estimating c); every other training-half row, normal or anomalous,
    trains as ``UNLABELLED``. Test is the other half.
    """
    if not 0.0 < labelled_fraction < 1.0:
        raise ConfigurationError(f"labelled_fraction must be in (0, 1), got {labelled_fraction}")
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigurationError(f"val_fraction must be in [0, 1), got {val_fraction}")
    is_anomaly = np.asarray(is_anomaly, dtype=bool)
    rng = np.random.default_rng(seed)
    rows = rng.permutation(len(is_anomaly))
    train_side, test = rows[: len(rows) // 2], rows[len(rows) // 2 :]
    normals = train_side[~is_anomaly[train_side]]
    labelled, unlabelled_normals = _take(normals, labelled_fraction)
    val, labelled_train = _take(labelled, max(val_fraction, 1.0 / max(len(labelled), 1)))
    unlabelled = np.concatenate([unlabelled_normals, train_side[is_anomaly[train_side]]])
    train = np.concatenate([labelled_train, unlabelled])
    labels = np.r_[np.full(len(labelled_train), KNOWN_NORMAL), np.full(len(unlabelled), UNLABELLED)]
    order = np.argsort(train)
    if len(normals) == 0:
        normal = int((~is_anomaly).sum())
        raise DataError(
            f"the split left no normal rows to label: the table has {normal} normal row{'' if normal == 1 else 's'} "
            f"of {len(is_anomaly)}, about half of them test rows"
        )
    if len(labelled_train) == 0 or len(val) == 0:
        lower = ", or lower val_fraction" if len(labelled) > 1 else ""  # (one row is held out whatever it is)
        raise DataError(
            f"too few labelled rows for training and for estimating c ({len(labelled)} of the training half's "
            f"{len(normals)} normal rows labelled, val_fraction {val_fraction} of them held out); raise "
            f"labelled_fraction{lower}"
        )
    return Splits(train[order], np.sort(val), np.sort(test), labels[order])


def with_contamination(splits: Splits, is_anomaly: np.ndarray, share: float, seed: int) -> Splits:
    """The unsupervised setting: anomalies kept out of test (spare first, then val's) join the training
    rows, unlabelled, until they are ``share`` of the training rows. Test is unchanged."""
    n_train = len(splits.train)
    n_add = int(round(share / (1.0 - share) * n_train))
    rng = np.random.default_rng([seed, 2])
    val_anomalies = splits.val[is_anomaly[splits.val]]
    pool = np.concatenate([rng.permutation(splits.spare), rng.permutation(val_anomalies)])
    if n_add > len(pool):
        raise DataError(
            f"train_contamination {share} needs {n_add} anomalies outside the test rows; only {len(pool)} exist"
        )
    added = pool[:n_add]
    train = np.concatenate([splits.train, added])
    labels = np.r_[splits.train_labels, np.full(n_add, UNLABELLED)]
    order = np.argsort(train)
    val = np.sort(np.setdiff1d(splits.val, added))
    return Splits(train[order], val, splits.test, labels[order], np.sort(np.setdiff1d(splits.spare, added)))
