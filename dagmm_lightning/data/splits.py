"""Row splits of the two evaluation protocols in ``shared/data/README.md``.

Every split has three disjoint row sets: ``train`` (normal rows only), ``val`` (held-out normal rows of
the training side plus anomalies that never reach test; for checkpoint selection and early stopping)
and ``test`` (only for `test` and `predict`; the reported numbers come from it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PROTOCOLS = ("paper", "reimplementation")


@dataclass(frozen=True)
class Splits:
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def _take(rows: np.ndarray, share: float) -> tuple[np.ndarray, np.ndarray]:
    n = int(round(share * len(rows)))
    return rows[:n], rows[n:]


def make_splits(is_anomaly: np.ndarray, protocol: str = "paper", seed: int = 0, val_fraction: float = 0.1) -> Splits:
    """Seeded split of rows with labels ``is_anomaly`` (N,) bool.

    * ``paper`` (Zong et al. 2018): all rows split 50/50 at random; the training half's normal rows train
      (less ``val_fraction`` of them, held out for val), its anomalies go to val; test is the other half
      with its natural anomaly ratio.
    * ``reimplementation`` (danieltan07/dagmm): ``val_fraction`` of the anomalies are set aside for val
      first; the normal rows are split 50/50, the first half trains (less ``val_fraction`` held out for
      val); test is the other half of the normal rows plus the remaining anomalies.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    is_anomaly = np.asarray(is_anomaly, dtype=bool)
    rng = np.random.default_rng(seed)
    if protocol == "paper":
        rows = rng.permutation(len(is_anomaly))
        train_side, test = rows[: len(rows) // 2], rows[len(rows) // 2 :]
        normal_side = train_side[~is_anomaly[train_side]]
        val_normal, train = _take(normal_side, val_fraction)
        val = np.concatenate([val_normal, train_side[is_anomaly[train_side]]])
    else:
        anomalies = rng.permutation(np.flatnonzero(is_anomaly))
        normals = rng.permutation(np.flatnonzero(~is_anomaly))
        val_anomalies, test_anomalies = _take(anomalies, val_fraction)
        train_side, test_normal = normals[: len(normals) // 2], normals[len(normals) // 2 :]
        val_normal, train = _take(train_side, val_fraction)
        val = np.concatenate([val_normal, val_anomalies])
        test = np.concatenate([test_normal, test_anomalies])
    if len(train) == 0:
        raise ValueError("the split left no normal rows for training")
    return Splits(np.sort(train), np.sort(val), np.sort(test))
