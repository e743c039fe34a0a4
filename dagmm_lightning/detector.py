"""``DAGMMDetector``: the PyOD way to use the same LightningModules and data module from Python.

from dagmm_lightning import DAGMMDetector
det = DAGMMDetector(contamination=0.05, random_state=0).fit(X_train)
scores = det.decision_function(X_new)   # higher = more anomalous
labels = det.predict(X_new)             # 1 = anomaly, by det.threshold_
"""

from __future__ import annotations

import importlib
import inspect
import io
import logging
import os
import random
import re
import signal
import threading
import warnings
import zipfile
from collections.abc import Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Literal, get_args

import joblib
import lightning as L
import numpy as np
import pandas as pd
import scipy.special
import scipy.stats
import torch
from lightning.pytorch.utilities.warnings import PossibleUserWarning
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from dagmm_lightning.callbacks import ProgressReport
from dagmm_lightning.data import AnomalyDataModule, RawTable, Splits, TablePreprocessor
from dagmm_lightning.data.datamodule import TABLE
from dagmm_lightning.data.tables import (
    MISSING_TEXT,
    TRUTH_AS_NUMBER,
    infer_symbolic_columns,
    label_like_columns,
    text_labels,
)
from dagmm_lightning.errors import (
    ConfigurationError,
    DAGMMError,
    DataError,
    DataTypeError,
    check_choice,
    check_range,
    did_you_mean,
    existing_file,
    import_failure,
    imported_class,
    make_folder_of,
    torch_load_failure,
    warn,
)
from dagmm_lightning.labels import KNOWN_NORMAL, LABELLED_ANOMALY, UNLABELLED
from dagmm_lightning.mixture import check_family
from dagmm_lightning.models import DAGMM, DAGMMPU, DAGMMVAE, DAGMMVQVAE
from dagmm_lightning.models.dagmm import CONTAMINATION_KEY, VARIANT_RECORD_KEY, check_sizes_set_together
from dagmm_lightning.models.pu import MIN_ROWS_FOR_C, THRESHOLD_RULE
from dagmm_lightning.scoring import flagged_far_above, ties_at_threshold
from dagmm_lightning.sizing import COMPONENTS

Variant = Literal["dagmm", "vae", "vqvae", "mixed_loss", "pu"]
LAPLACE = "DAGMMDetector(mixture='laplace') (the Laplacian mixture; 'gaussian+laplace' alternates the members)"
RECONSTRUCTION = "DAGMMDetector(inference='energy+reconstruction') (the modified inference)"
SETTINGS_NOT_VARIANTS = {  # names a user may try as variants
    **dict.fromkeys(("laplace", "laplacian", "lmm", "laplacian_mixture"), LAPLACE),
    **dict.fromkeys(("recon", "recon_inference", "modified_inference", "energy+reconstruction"), RECONSTRUCTION),
}
LABELLED_VARIANTS = ("mixed_loss", "pu")  # trained with y: labelled anomalies, or labelled normal rows
VARIANTS: dict[str, type[DAGMM]] = {
    "dagmm": DAGMM,
    "vae": DAGMMVAE,
    "vqvae": DAGMMVQVAE,
    "mixed_loss": DAGMM,  # DAGMM trained with labelled anomalies (y == 1) and the anomaly term
    "pu": DAGMMPU,
}
MODEL_DEFAULTS = dict(
    energy_trains_compression=False, lambda_cov=0.0, jitter=1e-4, lr_schedule="cosine", error_feature=True
)
# The scoring fit of the label-free dagmm variant with sizes from the data: the network's own fit (its K
# components, from its memberships), on at most fit_rows rows. Not configs/improved.yaml's re-seeded extra
# components: X may hold anomalies, and re-seeding gives the worst-explained rows, groups of them, components
# of their own (BENCHMARKS.md, section 13, "Anomalies among the training rows": the development suite with
# anomalies among the training rows, 0.748 re-seeded, 0.786 without). Nor EM steps from it: 10 of them
# measured 0.783 there, and 0.8836 against 0.8843 without anomalies among the training rows (seeds 0-2;
# all four with the error feature read both ways, before one_sided_error).
SCORING_FIT_DEFAULTS = dict(em_steps=0, fit_rows=2**16)
DEFAULT_CONTAMINATION = 0.1
TRAINING_STEPS = 6000
ENSEMBLE_MEMBERS = 5
SCORING_BATCH = 16384  # rows a step: the networks' matrices stay in cache (2x faster than 65,536)
# Lightning-internal, nothing a user can do; for the whole process too: fits in threads (joblib's threading
# backend) restore each other's warning filters (catch_warnings is not thread-safe), and it had leaked
warnings.filterwarnings("ignore", message=".*treespec.*")
TRAINER = dict(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, limit_val_batches=0)


def model_parameters(model_class: type[DAGMM]) -> dict[str, inspect.Parameter]:
    """The named arguments a model class takes: its ``__init__``'s and, where that passes ``**kwargs`` on,
    those of the classes it passes them to (a variant of a variant: ``MyVAE(DAGMMVAE)`` takes ``beta``);
    the nearer class's default wins."""
    parameters: dict[str, inspect.Parameter] = {}
    for cls in model_class.__mro__:
        if "__init__" not in vars(cls):
            continue
        signature = inspect.signature(cls.__init__).parameters
        named = {k: p for k, p in list(signature.items())[1:] if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
        parameters = {**named, **parameters}
        if cls is DAGMM or not any(p.kind is p.VAR_KEYWORD for p in signature.values()):
            break
    return parameters


def row_hashes(frame: pd.DataFrame) -> np.ndarray:
    """(n,) uint64: a hash of each row's values (pandas'), the same for equal rows."""
    return pd.util.hash_pandas_object(frame, index=False).to_numpy()


class DAGMMDetector(BaseEstimator):
    """DAGMM anomaly detector with PyOD's conventions (``decision_function``: higher = more anomalous;
    ``predict``: 1 = anomaly).

    Args:
        variant: ``dagmm``, ``vae``, ``vqvae``, ``mixed_loss`` (y marks labelled anomalies, 1) or ``pu``
            (y marks labelled normal rows, 0; -1, NaN or blank the unlabelled; 1 is refused); or a DAGMM
            subclass (README, "Your own variant") or its dotted path (``"my_variants.Wider"``), trained as
            ``dagmm`` (as ``pu`` if it subclasses DAGMMPU) with the same defaults (but the scoring fit,
            ``dagmm``'s own: give it in ``model_kwargs``). A variant class's ``detector_defaults`` join
            these (``vae``, and a DAGMMVAE subclass: ``calibrated_decoder`` True, its KL weighed by the
            reconstruction's fitted variance; ``vqvae``: ``continuous_latent`` True, the mixture on the
            encoder's output, not the code), unless ``model_kwargs`` says otherwise.
        mixture: ``gaussian``, ``laplace`` or ``gaussian+laplace`` (the ensemble's members alternate between
            the families; needs members >= 2). None: ``gaussian+laplace`` for an ensemble, else ``gaussian``.
        contamination: expected share of anomalies in (0, 0.5]; ``threshold_`` is the (1 - contamination)
            quantile of the training scores (``mixed_loss``: of the rows not labelled as anomalies, so
            ``labels_`` flags that share of those, besides the labelled ones that score above it; fewer
            where scores tie at it, with a warning), or of the held-out rows' with ``calibration_fraction``
            (the pu variant's threshold is c / 2: another value is warned about). New rows like the training
            rows score higher than those, far higher on small tables, so ``predict`` can flag far more than
            that share of them (83 % of new rows at 0.05 after a fit on 100 rows; it warns where it flags far
            more): see ``calibration_fraction``.
        epochs: passes over the rows; None trains for ``TRAINING_STEPS`` optimiser steps whatever the
            table's size (a small table gets as many updates as a large one).
        batch_size, lr: the rest of the schedule (Adam, cosine decay from ``lr`` to 0).
        hidden_dims, latent_dim: encoder sizes; None (both) chooses them from the scaled training rows
            (``sizing.network_sizes``: the latent keeps 99 % of their variance, and no more dimensions than
            the rows can fit a mixture on).
        n_components: K, the estimation network's components; None (with the sizes None): as many (4 to
            32) as the training rows can fit (``sizing.mixture_components``). The mixture that scores is the
            network's own fit (its memberships' M-step, the paper's), with the sizes None (variant ``dagmm``;
            the others fit every row) on at most ``fit_rows`` 65,536 of the rows, a fixed random subset
            (``SCORING_FIT_DEFAULTS``; see ``DAGMM``).
            For rows known to be normal, ``configs/improved.yaml``'s fit of more components
            (``model_kwargs={"fit_components": "auto", "em_reseed": 0.05, "em_steps": 10}``) gives rare normal
            kinds of rows components of their own (KDDCUP99's); among rows that hold anomalies it does that
            for groups of anomalies too, which then score as normal.
        members: models in the ensemble, trained at once as one vectorised model (``dagmm`` and
            ``mixed_loss`` variants); the score is the mean of their training-z-scored scores. None:
            ``ENSEMBLE_MEMBERS`` where the variant supports ensembles, else 1.
        inference: ``energy`` or ``energy+reconstruction`` (see ``DAGMM``); None: ``energy``, of mixture rows
            that hold the log reconstruction error (``error_feature``), read one-sided (``one_sided_error``:
            a lower error than expected adds nothing; ``mixed_loss`` reads it both ways) (the PU variant
            scores with its classifier instead).
        calibration_fraction: the share of X's rows held out of training (at random, by ``random_state``)
            to set ``threshold_`` on, in [0, 0.5): then ``predict`` flags about ``contamination`` of new
            rows like X's (the training rows' own scores are lower, far lower on small tables); the
            scores' normalisation still comes from the training rows. 0 (the default, PyOD's convention):
            every row trains, and the threshold is the training scores' quantile. Variants ``dagmm``,
            ``vae``, ``vqvae``.
        n_jobs: torch threads for ``fit`` and scoring, as scikit-learn's ``n_jobs``: None is 1 (unless inside
            joblib's ``parallel_config(n_jobs=...)``), -1 every core. One thread: as fast as two on small
            tables, up to 1.6x slower on larger ones on an idle machine, and 6-10x faster where other work
            keeps a core busy (torch's threads wait on each other then: BENCHMARKS.md section 12, "Threads
            beside other work").
        random_state: seed of initialisation, shuffling and dropout (an integer, or a numpy RandomState or
            Generator that ``fit`` draws one from); None draws one from numpy's global generator, as
            scikit-learn does (``np.random.seed`` before ``fit`` makes fits repeat). Fits in threads of one
            process take turns: training seeds the process's generators.
        verbose: show Lightning's progress bar and summaries.
        model_kwargs: more ``DAGMM`` (or variant) arguments over ``MODEL_DEFAULTS`` (and the scoring fit's), e.g.
            ``{"energy_trains_compression": True}`` for the paper's end-to-end training.

    The defaults are ``configs/improved.yaml``'s method (BENCHMARKS.md, "Defaults that fit the data"), but
    for its scoring fit, re-seeded and refined by EM there (``SCORING_FIT_DEFAULTS``: X may hold anomalies).

    After ``fit``: ``decision_scores_`` (the scores of X's rows), ``threshold_``, ``labels_`` (0/1 on
    X's rows), ``model_`` (the LightningModule), ``preprocessor_``, ``n_features_in_``, ``feature_names_in_``
    (fitted on a DataFrame whose column names are all text, as in scikit-learn; otherwise columns are
    taken by position, also from a DataFrame),
    ``calibration_rows_`` (the row numbers of X held out by ``calibration_fraction``; empty without),
    ``threshold_rows_`` (the row numbers of X whose scores ``threshold_`` is the quantile of; empty for ``pu``).
    """

    def __init__(
        self,
        variant: Variant | type[DAGMM] | str = "dagmm",
        mixture: str | None = None,
        contamination: float = DEFAULT_CONTAMINATION,
        epochs: int | None = None,
        batch_size: int = 256,
        lr: float = 1e-2,
        hidden_dims: tuple[int, ...] | None = None,
        latent_dim: int | None = None,
        n_components: int | None = 4,
        members: int | None = None,
        inference: str | None = None,
        calibration_fraction: float = 0.0,
        n_jobs: int | None = None,
        random_state: int | np.random.RandomState | np.random.Generator | None = None,
        verbose: bool = False,
        model_kwargs: dict | None = None,
    ) -> None:
        self.variant = variant
        self.mixture = mixture
        self.contamination = contamination
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.hidden_dims = hidden_dims
        self.latent_dim = latent_dim
        self.n_components = n_components
        self.members = members
        self.inference = inference
        self.calibration_fraction = calibration_fraction
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.verbose = verbose
        self.model_kwargs = model_kwargs

    # --- input ----------------------------------------------------------------------------------------
    @staticmethod
    def _as_frame(X) -> pd.DataFrame:
        _refuse_series(X)
        if isinstance(X, pd.DataFrame):
            frame = X.copy()
            if _feature_names(X) is None:  # no text names: columns go by position, as an array's
                frame.columns = [f"x{i}" for i in range(frame.shape[1])]
            duplicated = sorted(set(frame.columns[frame.columns.duplicated()]))
            if duplicated:
                raise DataError(f"X has duplicate column names: {duplicated}")
        else:
            if np.ma.is_masked(X):  # np.asarray drops the mask: the masked cells' values would count
                raise DataError("X is a masked array with masked values; fill them (X.filled(...)) or drop those rows")
            if hasattr(X, "toarray") and hasattr(X, "nnz"):  # scipy.sparse, without importing it
                raise DataError(
                    "X is a sparse matrix; pass X.toarray() (DAGMM's networks take dense rows), or, in a Pipeline, "
                    "make the step before dense: OneHotEncoder(sparse_output=False), ColumnTransformer(..., "
                    "sparse_threshold=0)"
                )
            try:
                array = np.asarray(X)
            except ValueError as err:  # e.g. rows of different lengths
                raise DataError(f"X is not a table of rows x features: {err}") from None
            if isinstance(X, Mapping):  # columns by name
                raise DataError("X is a dict; pass pd.DataFrame(X), which makes its entries the columns")
            if array.ndim == 0:  # None, a string, a number
                raise DataError(
                    "X must be a table of rows x features (a numpy array or a pandas DataFrame), got an object of "
                    f"type {type(X).__name__}"
                )
            if array.ndim == 1 and len(array) and isinstance(array[0], Mapping):  # records
                raise DataError("X is a list of dicts (one per row?): pass pd.DataFrame(X), which names the columns")
            if array.ndim == 1:
                raise DataError(
                    f"X must be 2-D (rows x features), got shape {array.shape}: Reshape your data with "
                    "X.reshape(-1, 1) if it is one feature, X.reshape(1, -1) if it is one row"
                )
            if array.ndim != 2:  # (had the 1-D advice: X.reshape(-1, 1) of (300, 1, 3) made 900 rows of one feature)
                raise DataError(
                    f"X must be 2-D (rows x features), got shape {array.shape}: one row per sample, its values "
                    "flattened, is X.reshape(len(X), -1)"
                )
            if array.dtype.kind == "c":
                raise DataError(
                    "Complex data not supported: X holds complex numbers; pass their real part or magnitude"
                )
            if array.dtype == object or array.dtype.kind in "USb":
                try:
                    array = array.astype(np.float64)
                except (TypeError, ValueError):
                    odd = next(((at, v) for at, v in np.ndenumerate(array) if _neither_text_nor_number(v)), None)
                    if odd is not None:  # a dict, a list, ...: no column holds one
                        (row, column), value = odd
                        raise DataTypeError(
                            f"X holds a {type(value).__name__} at row {row}, column {column}: each value's argument "
                            "must be a string or a number"
                        ) from None
                    text, missing = None, None  # the first text value, else the first missing one
                    for at, v in np.ndenumerate(array):
                        if not _is_number(v):
                            if v is not None and str(v).strip() not in MISSING_TEXT:
                                text = (at, v)
                                break
                            missing = missing or (at, v)
                    first, advice = (
                        (text, "text; pass a pandas DataFrame to one-hot encode text columns")
                        if text
                        else (missing, "fill missing values with numbers")
                    )
                    where = (
                        ""
                        if first is None
                        else f", the first {str(first[1])!r} at row {first[0][0]}, column {first[0][1]}"
                    )
                    raise DataError(f"X holds non-numeric values{where}: {advice}") from None
            frame = pd.DataFrame(array, columns=[f"x{i}" for i in range(array.shape[1])])
        if len(frame) == 0 or frame.shape[1] == 0:  # scikit-learn's words, as its estimator checks expect
            what = "0 sample(s)" if len(frame) == 0 else "0 feature(s)"
            raise DataError(f"X is empty: {what} (shape={frame.shape}) while a minimum of 1 is required.")
        return frame

    def _chunks(self, X):
        """X's rows, encoded and scaled as in training, as float32 tensors of ``SCORING_BATCH`` rows (divided
        by an ensemble's members, so that its activations stay as large as one model's); a numeric array is
        read chunk by chunk, never copied whole."""
        _refuse_series(X)
        left_out = getattr(self, "_columns_left_out", [])
        if left_out and isinstance(X, pd.DataFrame):  # a checkpoint's label and ignored columns, as predict does
            X = X.drop(columns=[c for c in X.columns if c in left_out])
        n_fitted, preprocessor = len(self.preprocessor_.numeric), self.preprocessor_
        step = max(1024, SCORING_BATCH // int(self.model_.hparams.get("members", 1)))
        named, has_names = hasattr(self, "feature_names_in_"), _feature_names(X) is not None
        from_checkpoint = hasattr(self, "checkpoint_path_")
        if from_checkpoint and preprocessor.categories and not has_names:
            raise DataError(
                "X's columns have no names: a checkpoint of a table with text columns keeps their names, not their "
                f"order; pass a DataFrame with columns {list(self.feature_names_in_)[:10]}"
            )
        if has_names != named:  # scikit-learn's warnings: columns go by position then
            warn(
                "X has feature names, but DAGMMDetector was fitted without feature names (columns are taken by "
                "position)"
                if named is False
                else "X does not have valid feature names, but DAGMMDetector was fitted with feature names "
                "(columns are taken by position)"
            )
        labels = getattr(self, "_column_labels", None)
        if (
            isinstance(X, pd.DataFrame)
            and not named
            and not has_names
            and labels
            and not X.columns.equals(pd.Index(labels))
        ):
            if X.columns.is_unique and len(X.columns) == len(labels) and set(X.columns) == set(labels):
                X = X[labels]  # the fit's columns in another order: by their labels
            elif X.shape[1] == len(labels):
                warn(
                    f"X's column labels {list(X.columns)[:10]} are not those DAGMMDetector was fitted with "
                    f"({labels[:10]}): columns are taken by position"
                )
        if isinstance(X, pd.DataFrame) and not (named and has_names):  # columns by position, as scikit-learn's
            if X.shape[1] != self.n_features_in_:
                raise DataError(self._wrong_width(X.shape[1], " (columns are taken by position)"))
            X = X.set_axis(list(self.feature_names_in_) if named else [f"x{i}" for i in range(X.shape[1])], axis=1)
        if isinstance(X, pd.DataFrame) or preprocessor.categories:
            try:
                frame = self._as_frame(X)
            except DataError as err:
                if isinstance(X, pd.DataFrame):
                    raise
                text = list(preprocessor.categories)[:5]
                raise DataError(f"{err} (the detector was fitted on a DataFrame with text columns {text})") from None
            fitted = list(getattr(self, "feature_names_in_", frame.columns))
            known = set(fitted)
            extra = [c for c in frame.columns if c not in known] if isinstance(X, pd.DataFrame) else []
            if extra:  # as scikit-learn: a column the detector never saw is not silently left out
                present = set(frame.columns)
                missing = [c for c in fitted if c not in present]
                lacks = f", and lacks {missing[:10]} it was fitted on (renamed?)" if missing else "; drop them first"
                raise DataError(f"X has columns the detector was not fitted on: {extra[:10]}{lacks}")
            if not isinstance(X, pd.DataFrame) and frame.shape[1] != self.n_features_in_:
                raise DataError(self._wrong_width(frame.shape[1], " (with text columns: pass a DataFrame with them)"))
            encoded = preprocessor.encode_compact(frame)
            if preprocessor.categories:  # one-hot columns: the whole table's encoding, scaled as in training
                yield from torch.from_numpy(preprocessor.scale(encoded)).split(step)
                return
            X = encoded.numbers  # numeric columns in the training order: scaled below, as an array would be
        try:
            array = None if hasattr(X, "nnz") else np.asarray(X)  # nnz: a scipy.sparse matrix
        except ValueError:  # e.g. rows of different lengths
            array = None
        if array is None or array.ndim != 2 or array.dtype.kind not in "fiu" or not array.size or np.ma.is_masked(X):
            self._as_frame(X)  # its checks name the problem (sparse, shape, text, complex, emptiness, a mask)
        if array.shape[1] != n_fitted:
            raise DataError(self._wrong_width(array.shape[1]))
        for start in range(0, len(array), step):  # (a checkpoint's threshold: on rows its data module scaled)
            yield preprocessor.scale_rows(array[start : start + step], start, exact=from_checkpoint)

    def _wrong_width(self, width: int, why: str = "") -> str:
        """scikit-learn's message for X with another number of columns than the fit's (``n_features_in_``)."""
        name = type(self).__name__
        return f"X has {width} features, but {name} is expecting {self.n_features_in_} features as input{why}"

    def _splits(self, y, n: int) -> Splits:
        """All rows train (with training labels: 0 normal, 1 labelled anomaly, -1 unlabelled); for PU, a
        tenth of the labelled rows is held out as val (for c), at least ``MIN_ROWS_FOR_C`` where that leaves
        as many to train."""
        rows = np.arange(n)
        if self._kind not in LABELLED_VARIANTS:
            return Splits(rows, rows[:0], rows[:0])
        if y is None:
            raise DataError(  # scikit-learn's words (its estimator checks look for them), then ours
                f"variant {self._kind!r} requires y to be passed, but the target y is None: "
                + (
                    "1 for labelled anomalies, 0, -1 or NaN for the other rows"
                    if self._kind == "mixed_loss"
                    else "0 for labelled normal rows, -1 or NaN for unlabelled ones"
                )
            )
        shape = np.shape(y)
        if len(shape) != 1 and not (len(shape) == 2 and shape[1] == 1):
            raise DataError(f"y must be one label per row (1-D), got shape {shape}")
        raw = pd.Series(np.asarray(y).ravel())
        raw = raw.mask(raw.map(lambda v: isinstance(v, str) and v.strip() in MISSING_TEXT))  # '', 'NA': unknown
        # 'true' / 'false' in any case as 1 / 0, as a label column of a table file is read (had: refused)
        raw = raw.map(lambda v: TRUTH_AS_NUMBER.get(v.strip().lower(), v) if isinstance(v, str) else v)
        y = pd.to_numeric(raw, errors="coerce")
        kept = [-1, 0] if self._kind == "pu" else [-1, 0, 1]
        other = sorted({str(v) for v in raw[raw.notna() & ~y.isin(kept)]})
        if other and self._kind == "pu" and set(other) <= {"1", "1.0", "True"}:
            raise DataError(
                f"variant 'pu' takes y 0 for labelled normal rows and -1 or NaN for unlabelled ones, but y holds 1 "
                f"({int((y == 1).sum())} rows): pu has no labelled anomalies, and the common PU coding (1 labelled, 0 "
                "unlabelled; or True / False) would be read the wrong way round; map labelled rows to 0, the others "
                "to -1"
            )
        if other:
            held = "0 (labelled normal) and -1 or NaN (unlabelled)"
            if self._kind != "pu":
                held = "1 (labelled anomaly) and 0, -1 or NaN (the other rows)"
            raise DataError(f"y holds {held}, but also {other[:5]}; map them to those first")
        y = y.fillna(-1).to_numpy()
        if len(y) != n:
            raise DataError(f"y has {len(y)} entries for {n} rows")
        if self._kind == "mixed_loss":
            if (y == 1).all():
                raise DataError("every row of y is a labelled anomaly: mixed_loss trains its mixture on the others")
            if not (y == 1).any():
                warn("y labels no anomaly (1): mixed_loss trains as the plain model")
            if (y == 1).mean() > 0.5:  # anomalies are the few: another coding, read the wrong way round
                coding = (
                    "; scikit-learn's outlier coding (-1 outlier, 1 inlier) is the other way round: pass "
                    "(y == -1).astype(int)"
                    if set(np.unique(y)) == {-1, 1}
                    else ""
                )
                raise DataError(
                    f"y marks {int((y == 1).sum())} of {n} rows as labelled anomalies (1): mixed_loss reads 1 as a "
                    f"known anomaly, 0, -1 or NaN as the others{coding}"
                )
            return Splits(rows, rows[:0], rows[:0], np.where(y == 1, LABELLED_ANOMALY, KNOWN_NORMAL).astype(np.int64))
        labelled = np.flatnonzero(y == 0)
        if len(labelled) < 10:
            raise DataError("variant 'pu' needs at least 10 labelled normal rows (y == 0)")
        if len(labelled) == n:  # all scores had come out 0.0
            raise DataError(
                "variant 'pu' learns what sets the labelled normal rows (y == 0) apart from the unlabelled ones, and "
                "every row is labelled normal: mark the rows nobody checked -1 or NaN"
            )
        rng = np.random.default_rng(self._seed)
        held_out = max(len(labelled) // 10, min(MIN_ROWS_FOR_C, len(labelled) // 2))  # c from 10 rows where it can
        holdout = np.sort(rng.choice(labelled, held_out, replace=False))
        train = np.setdiff1d(rows, holdout)
        return Splits(train, holdout, rows[:0], np.where(y[train] == 0, KNOWN_NORMAL, UNLABELLED).astype(np.int64))

    def __setstate__(self, state: dict) -> None:
        state.setdefault("n_jobs", None)  # pickled before n_jobs existed: get_params, clone and save need it
        super().__setstate__(state)

    def _threads(self) -> int:
        """torch threads for ``n_jobs`` (joblib's reading of it: None is 1, or its parallel_config's)."""
        n_jobs = self.n_jobs
        if n_jobs is not None and not (_is_integer(n_jobs) and n_jobs != 0):
            raise ConfigurationError(f"n_jobs must be None or a nonzero integer (-1: every core), got {n_jobs!r}")
        return max(1, joblib.effective_n_jobs(n_jobs))

    @property
    def _variant_class(self) -> type | None:
        """The class ``variant`` gives, or names by its dotted path (``my_variants.Wider``: JSON settings such
        as ``dagmm benchmark --suite --detector`` carry no class), imported; None for a variant's name."""
        if isinstance(self.variant, type):
            return self.variant
        if not (isinstance(self.variant, str) and "." in self.variant):
            return None
        return _class_at(self.variant)

    @property
    def _kind(self) -> str:
        """The variant's name, for what fit does with y: a DAGMM subclass given as ``variant`` (or named by
        its dotted path) is ``pu`` where it subclasses DAGMMPU, else ``dagmm`` (label-free)."""
        variant_class = self._variant_class
        if variant_class is not None:
            return "pu" if issubclass(variant_class, DAGMMPU) else "dagmm"
        return self.variant

    @property
    def _model_class(self) -> type[DAGMM]:
        variant_class = self._variant_class
        return variant_class if variant_class is not None else VARIANTS[self.variant]

    # --- scikit-learn / PyOD API ------------------------------------------------------------------------
    def __sklearn_tags__(self):
        """scikit-learn's tags (its 1.6 and later read them): y is required by the variants that train on
        labels."""
        tags = super().__sklearn_tags__()
        tags.target_tags.required = self._kind in LABELLED_VARIANTS
        return tags

    def set_params(self, **params) -> DAGMMDetector:
        """scikit-learn's, with ``model_kwargs__NAME=value`` setting one entry of ``model_kwargs`` (as a
        grid search names it), the others kept."""
        entries = {key: params.pop(key) for key in list(params) if key.startswith("model_kwargs__")}
        if entries:
            kwargs = dict(params.get("model_kwargs", self.model_kwargs) or {})
            params["model_kwargs"] = kwargs | {key.removeprefix("model_kwargs__"): v for key, v in entries.items()}
        return super().set_params(**params)

    def fit(self, X, y=None) -> DAGMMDetector:
        """Trains on the rows of X (n, d) (numpy, or a DataFrame whose text columns are one-hot encoded);
        ``y`` only for the ``mixed_loss`` variant (1 labelled anomaly; 0, -1 or NaN the other rows, which
        train as normal ones) and the ``pu`` variant (0 labelled normal, -1 or NaN unlabelled). Sets
        ``decision_scores_``, ``threshold_`` and ``labels_``."""
        try:
            with _PROCESS_STATE, _torch_threads(self._threads()):  # one fit at a time: threads share the
                return self._fit(X, y)  # generators (the seed's draw included) and torch's thread count
        except BaseException as err:  # Ctrl-C included: unfitted, not half of this fit and half of an earlier one
            for name in [name for name in vars(self) if name.endswith("_") and not name.startswith("__")]:
                delattr(self, name)
            _name_index_label(err, X)
            raise

    def _fit(self, X, y) -> DAGMMDetector:
        self._model_arguments()  # every parameter checked before any work
        seed = self.random_state
        if isinstance(seed, np.random.RandomState):  # scikit-learn's convention: a seed drawn from it
            seed = int(seed.randint(0, 2**31))
        elif isinstance(seed, np.random.Generator):
            seed = int(seed.integers(0, 2**31))
        if seed is not None and not (_is_integer(seed) and 0 <= seed < 2**32):
            raise ConfigurationError(
                f"random_state must be None, an integer in [0, {2**32 - 1}], or a numpy RandomState or Generator, "
                f"got {seed!r}"
            )
        # None: drawn from numpy's global generator, as scikit-learn does (np.random.seed makes fits repeat)
        self._seed = int(seed) if seed is not None else int(np.random.randint(0, 2**31))
        minimum = max(2, self.n_components or COMPONENTS[0])  # None: at least the fewest it chooses from
        try:
            frame = self._as_frame(X)
        except DataError as err:  # (scikit-learn's words kept: a fit needs more than its "minimum of 1")
            if "0 sample(s)" not in str(err):
                raise  # (as raised: a DataTypeError, also a TypeError, as scikit-learn's checks expect)
            raise DataError(f"{str(err).rstrip('.')}; fit needs at least {minimum} rows") from None
        if len(frame) < minimum:
            why = ""
            if minimum > 2:  # fewer components fit fewer rows (the CLI's message says so too)
                chosen = f"n_components {self.n_components}" if self.n_components else f"at least {minimum} components"
                fewer = f": give n_components={len(frame)} or fewer, or more rows" if len(frame) >= 2 else ""
                why = f" ({chosen}{fewer})"
            raise DataError(f"X has {len(frame)} sample(s) (rows); the detector needs at least {minimum}{why}")
        check_range("calibration_fraction", self.calibration_fraction, 0.0, 0.5, high_open=True)
        if self.calibration_fraction and self._kind in LABELLED_VARIANTS:
            raise ConfigurationError(f"calibration_fraction is for the label-free variants, not {self._kind!r}")
        if self._kind == "pu" and self.contamination != DEFAULT_CONTAMINATION:
            warn(f"contamination {self.contamination:g} plays no part for the pu variant: {THRESHOLD_RULE}")
        for column in label_like_columns(frame):  # (the command line warns alike: datamodule's table reading)
            where = {
                "mixed_loss": "pass it as y",
                "pu": "pass it as y: 0 for the rows known to be normal, -1 for the others",
            }.get(self._kind, "the variants 'mixed_loss' and 'pu' take it as y")
            if text_labels(frame[column]):  # normal/attack: y takes 0/1
                where += ", its values mapped to 0/1 first, 1 = anomaly"
            warn(f"column {column!r} of X looks like labels and is trained on as a feature: drop it from X ({where})")
        frame, symbolic = infer_symbolic_columns(frame, False, "cast it to 'category'", "drop it from X")
        table = RawTable(frame, None, symbolic)
        split = "positive_unlabeled" if self._kind == "pu" else "normal_only"
        splits, held_out = self._splits(y, len(frame)), None
        if y is not None and self._kind not in LABELLED_VARIANTS:
            _warn_if_scorers_read_y_reversed(y, self._kind)
        if self.calibration_fraction:
            rows = np.random.default_rng(self._seed).permutation(len(frame))
            count = int(round(self.calibration_fraction * len(frame)))
            if not 1 <= count <= len(frame) - minimum:
                raise DataError(
                    f"calibration_fraction {self.calibration_fraction} of {len(frame)} rows holds out {count}"
                )
            held_out = np.sort(rows[:count])
            splits = Splits(np.sort(rows[count:]), rows[:0], rows[:0])
        self.calibration_rows_ = held_out if held_out is not None else np.zeros(0, dtype=np.int64)
        data = AnomalyDataModule.from_table(table, splits, split=split, batch_size=self.batch_size, seed=self._seed)
        self.preprocessor_ = data.preprocessor
        self.n_features_in_ = frame.shape[1]
        names = _feature_names(X)  # scikit-learn's convention: a DataFrame's text column names
        if names is not None:
            self.feature_names_in_ = names
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        # a DataFrame's names that are not text (0, 1, ...): columns go by position, but the same ones reordered
        # are put back in order (had: scored by position, silently wrong)
        self._column_labels = list(X.columns) if isinstance(X, pd.DataFrame) and names is None else None
        with _callers_random_state():
            self._train(data, len(frame))
        self.model_.eval()
        self.decision_scores_ = self.decision_function(X)
        if self._kind != "pu":  # PU's threshold is c / 2, not a quantile
            # the quantile of the scores just computed: the training pass's own scores can differ from them
            # in the last bits (other batch sizes), which flags every row of a tie at the threshold
            rows = held_out if held_out is not None else splits.train[splits.train_labels != LABELLED_ANOMALY]
            self.threshold_rows_ = np.asarray(rows, dtype=np.int64)
            scores = torch.from_numpy(self.decision_scores_[rows])  # held-out rows: ones the model did not train on
            self.model_.model.calibration.set_threshold(scores, self.contamination)
            ties = ties_at_threshold(scores, float(self.model_.model.calibration.threshold), self.contamination)
            if ties is not None:
                above, tied = ties
                warn(
                    f"{100 * above:.3g} % of the rows lie above threshold_, not contamination's "
                    f"{100 * self.contamination:g} %: {100 * tied:.3g} % score the same as it (duplicate rows?); new "
                    "rows like those are flagged all or none"
                )
        else:
            self.threshold_rows_ = np.zeros(0, dtype=np.int64)
        self.threshold_ = float(self.model_.model.calibration.threshold)
        self.labels_ = (self.decision_scores_ > self.threshold_).astype(int)
        self._x_rows = np.unique(row_hashes(frame))  # (X's own rows, told apart from new ones by content)
        if self._kind == "pu" and not self.labels_.any():
            c = float(self.model_.model.c)
            warn(
                f"variant 'pu' flags none of X's rows: its classifier h is at or above c/2 on every row (c {c:.4g}); "
                "where the unlabelled rows hold anomalies, h learned little to tell them from the labelled ones: "
                "train longer (epochs) or label more normal rows"
            )
        return self

    def _check_parameters(self) -> None:
        """The parameters' types and ranges (ConfigurationError), before any work."""
        variant_class = self._variant_class
        if variant_class is not None:
            if not issubclass(variant_class, DAGMM):
                raise ConfigurationError(f"variant must be a name or a DAGMM subclass, got {variant_class.__name__}")
        else:
            setting = SETTINGS_NOT_VARIANTS.get(str(self.variant).lower().replace("-", "_"))
            if setting is not None:  # the study's other methods: settings every variant takes
                raise ConfigurationError(
                    f"variant {self.variant!r}: not a variant but a setting the variants take, {setting}; the "
                    f"variants are {list(get_args(Variant))}"
                )
            check_choice("variant", self.variant, Variant)
        check_range("contamination", self.contamination, 0.0, 0.5, low_open=True)
        if self.model_kwargs is not None and not isinstance(self.model_kwargs, Mapping):
            raise ConfigurationError(
                f"model_kwargs must be a dict of DAGMM arguments (or None), got a {type(self.model_kwargs).__name__}"
            )
        for name in ("epochs", "members", "batch_size", "n_components", "latent_dim"):
            value, optional = getattr(self, name), name != "batch_size"
            if not (value is None and optional) and not (_is_integer(value) and value >= 1):
                what = "an integer >= 1" + (" or None" if optional else "")
                raise ConfigurationError(f"{name} must be {what}, got {value!r}")

    def _train(self, data: AnomalyDataModule, n_rows: int) -> None:
        """Seeds, builds ``model_`` and trains it on ``data`` (``n_rows``: X's rows, for the log interval)."""
        # seed_everything's seeding, CPU only (the detector trains on CPU): torch.manual_seed would also
        # replace the seed CUDA or MPS queue for the caller, which _callers_random_state cannot give back
        os.environ["PL_GLOBAL_SEED"] = str(self._seed)  # the model's seeding at each epoch start reads it
        random.seed(self._seed)
        np.random.seed(self._seed)
        torch.default_generator.manual_seed(self._seed)
        self.model_ = self._build_model(data.input_dim)
        with _quiet(not self.verbose):
            shown = dict(enable_progress_bar=self.verbose, enable_model_summary=self.verbose)
            if self.verbose:  # the bar's loss is computed on logging steps: at least one an epoch
                shown["log_every_n_steps"] = max(1, min(50, n_rows // self.batch_size))
                shown["callbacks"] = [ProgressReport()]  # (in a log file: a line now and then)
            steps = dict(max_epochs=-1, max_steps=TRAINING_STEPS) if self.epochs is None else {}
            epochs = None if self.epochs is None else int(self.epochs)  # Lightning takes no numpy integer
            trainer = L.Trainer(**{"max_epochs": epochs, **steps}, **shown, **TRAINER)
            handler = signal.getsignal(signal.SIGINT)
            try:
                trainer.fit(self.model_, datamodule=data)
            except SystemExit:  # Lightning ends an interrupted fit with sys.exit(1): a caller expects Ctrl-C's own
                if not trainer.interrupted:
                    raise
                if trainer.received_sigterm:  # a scheduler's or `timeout`'s SIGTERM: the process ends, as it asked,
                    raise SystemExit(128 + signal.SIGTERM) from None
                if threading.current_thread() is threading.main_thread():  # Lightning left Ctrl-C ignored
                    signal.signal(signal.SIGINT, handler)
                raise KeyboardInterrupt from None  # half trained: fit leaves the detector unfitted

    def _build_model(self, d: int) -> DAGMM:
        model_class, arguments = self._model_arguments()
        return model_class(d, **arguments)

    def resolved_settings(self) -> dict:
        """What this detector trains with, the data aside: ``detector``, its own parameters (but
        ``random_state``, ``n_jobs``, ``verbose``; ``training_steps``, None where ``epochs`` is set) and ``model``,
        every argument of its model class, defaults filled in (sizes None where the data choose them).
        ``dagmm benchmark --suite`` records it with each run: a results file resumed at other defaults is
        refused, not mixed. A change inside a rule (sizes from the data, preprocessing) does not show here."""
        model_class, arguments = self._model_arguments()
        defaults = {name: p.default for name, p in model_parameters(model_class).items() if p.default is not p.empty}
        skipped = {"random_state", "n_jobs", "verbose", "model_kwargs"}  # (model_kwargs: in model's arguments)
        detector = {key: value for key, value in self.get_params().items() if key not in skipped}
        detector["variant"] = model_class.__name__ if isinstance(self.variant, type) else self.variant
        detector["training_steps"] = TRAINING_STEPS if self.epochs is None else None
        return {"detector": detector, "model": {**defaults, **arguments}}

    def _model_arguments(self) -> tuple[type[DAGMM], dict]:
        """The model class and its arguments but ``input_dim``, checked (ConfigurationError)."""
        self._check_parameters()
        hidden = self.hidden_dims  # an array of integers as a tuple of ints; anything else DAGMM checks
        if isinstance(hidden, np.ndarray) and hidden.dtype.kind in "iu":
            hidden = tuple(hidden.tolist())
        latent = None if self.latent_dim is None else int(self.latent_dim)
        inference = self.inference or "energy"
        model_class = self._model_class
        ensembles = model_class.ensembles and not model_class._compression_without_members()
        members = self.members or (ENSEMBLE_MEMBERS if ensembles else 1)
        if members > 1 and not model_class.ensembles:  # (the model's message speaks of configs)
            raise ConfigurationError(
                f"members {members}: {model_class.__name__} trains one model (an ensemble is built for DAGMM's "
                "autoencoder: variant 'dagmm' or 'mixed_loss'); leave members None"
            )
        mixture = self.mixture or ("gaussian+laplace" if members > 1 else "gaussian")
        contamination = None if self._kind == "pu" else self.contamination  # (pu: the threshold is c / 2)
        settings = dict(lr=self.lr, mixture=mixture, contamination=contamination, inference=inference)
        if self.mixture is None and model_class.build_mixture_energy is not DAGMM.build_mixture_energy:
            del settings["mixture"]  # a variant's own family: no default of ours to record (as if chosen)
        # (mixed_loss keeps the network's fit: re-seeding and EM fit the rows' density, giving unlabelled
        # anomalies like the labelled ones components of their own, which undid the labels; BENCHMARKS s.13)
        label_free = model_class is DAGMM and self._kind == "dagmm"
        scoring_fit = SCORING_FIT_DEFAULTS if self.latent_dim is None and label_free else {}
        unknown = sorted(set(self.model_kwargs or {}) - set(model_parameters(model_class)), key=str)
        if unknown:
            hint = (
                did_you_mean(unknown[0], sorted(model_parameters(model_class))) if isinstance(unknown[0], str) else ""
            )
            raise ConfigurationError(f"model_kwargs {unknown} are not {model_class.__name__} arguments{hint}")
        own = {"input_dim", "hidden_dims", "latent_dim", "n_components", "members", "mixture", *settings}  # lr, ...
        if "threshold_rows" in (self.model_kwargs or {}):  # the detector has no val rows
            raise ConfigurationError(
                "model_kwargs threshold_rows: the detector's threshold is its training rows' quantile, or held-out "
                "rows' with calibration_fraction (e.g. 0.1)"
            )
        owned = sorted(set(self.model_kwargs or {}) & own)
        if owned:
            raise ConfigurationError(f"model_kwargs {owned}: set them as DAGMMDetector's own parameters")
        # (mixed_loss reads its error feature two-sided: its anomaly term may set labelled anomalies apart by an
        # error lower than the normal rows' (near-copies of one event), which a one-sided reading would not see)
        labelled = {"one_sided_error": False} if self._kind == "mixed_loss" else {}
        variant = model_class.detector_defaults  # (the VAE's calibrated decoder, the VQ-VAE's continuous latent)
        settings |= {**MODEL_DEFAULTS, **scoring_fit, **labelled, **variant, **(self.model_kwargs or {})}
        sizes = dict(n_components=None if self.n_components is None else int(self.n_components), members=int(members))
        check_sizes_set_together(latent, hidden)  # (here: before the data is read; the model checks them again)
        if model_class.build_mixture_energy is DAGMM.build_mixture_energy and ensembles:  # (else the model says why)
            check_family(settings["mixture"], int(members))
        return model_class, dict(hidden_dims=hidden, latent_dim=latent, **sizes, **settings)

    def decision_function(self, X) -> np.ndarray:
        """Anomaly score of each row of X (n,), higher = more anomalous."""
        check_is_fitted(self, "model_")
        self.model_.eval()
        try:
            with _torch_threads(self._threads()), torch.inference_mode():  # (not behind another thread's fit)
                return np.concatenate([self.model_.score(chunk).cpu().numpy() for chunk in self._chunks(X)])
        except DataError as err:
            _name_index_label(err, X)
            raise

    def fit_predict(self, X, y=None) -> np.ndarray:
        """``fit(X, y)``, then the 0/1 labels of X's rows (``labels_``; 1 = anomaly)."""
        return self.fit(X, y).labels_

    def predict(self, X, return_confidence: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """1 for anomalies (score above ``threshold_``), 0 for normal rows (n,); with ``return_confidence``
        also ``predict_confidence``'s (n,) values, as PyOD returns them."""
        scores = self.decision_function(X)
        labels = self._labels(scores)
        self._warn_if_flagged_far_above(labels, X)
        return (labels, self._confidence(scores, labels)) if return_confidence else labels

    def _rows_of_x(self, X) -> bool:
        """Whether every row of X is one of the rows the detector was fitted on (by content: their hashes)."""
        fitted = getattr(self, "_x_rows", None)
        if fitted is None or not len(fitted):
            return False
        try:
            return bool(np.isin(row_hashes(self._as_frame(X)), fitted).all())
        except (TypeError, ValueError, DataError):  # (rows predict could score but not hash: as new rows)
            return False

    def _warn_if_flagged_far_above(self, labels: np.ndarray, X) -> None:
        """A warning where ``predict`` flags far more of its rows (n,) than the share ``threshold_`` was set
        to flag, or than ``labels_`` flags of X (``mixed_loss``: its labelled anomalies besides;
        ``scoring.flagged_far_above``): with the threshold on X's own scores, most often a model that
        scores its training rows lower than new rows like them (a small table). None for rows of X itself."""
        share, flagged = self.model_.threshold_share, int(labels.sum())
        own = getattr(self, "labels_", None)
        expected = share if share is None or own is None or not len(own) else max(share, float(own.mean()))
        if not flagged_far_above(expected, len(labels), flagged) or self._rows_of_x(X):
            return  # (X's own rows, chosen: flagged as labels_ flags them)
        said = f"predict flagged {100 * flagged / len(labels):.3g} % of these {len(labels):,} rows; threshold_ "
        if own is not None and self._kind != "pu" and not len(self.calibration_rows_):
            remedy = (
                "calibration_fraction (e.g. 0.2) sets threshold_ on rows held out of training, so that it flags about "
                "contamination of new rows; "
                if self._kind not in LABELLED_VARIANTS
                else ""
            )
            rows = "X's own rows" if self._kind != "mixed_loss" else "X's rows not labelled as anomalies"
            warn(
                f"{said}flags {100 * share:.3g} % of {rows}, which the model, trained on them ({len(own):,} rows), "
                f"scores lower than new rows like them (far lower on small tables): {remedy}or these rows differ "
                "from X's, or hold that many anomalies"
            )
        else:
            warn(
                f"{said}flags about {100 * share:.3g} % of rows like those it was set on: these rows differ from "
                "them (a column's units, coding or source changed?), or hold that many anomalies"
            )

    def _labels(self, scores: np.ndarray) -> np.ndarray:
        return (scores > self.threshold_).astype(int)

    def predict_confidence(self, X) -> np.ndarray:
        """(n,) confidence in [0, 1] of ``predict``'s label for each row, by ExCeed (Perini et al. 2020),
        PyOD's method: with the score's rank among the n scores ``threshold_`` was taken on (the training
        rows', or the held-out ones' with ``calibration_fraction``), p = (1 + rows at or below it) / (2 + n),
        and the chance that a fresh set of n such rows would flag it is 1 - BinomCDF(n - floor(n *
        contamination); n, p): that for a row labelled 1, one minus it for a row labelled 0. Not for the
        ``pu`` variant (its threshold is c / 2, not a quantile)."""
        scores = self.decision_function(X)
        return self._confidence(scores, self._labels(scores))

    def _confidence(self, scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
        if self._kind == "pu":
            raise ConfigurationError("predict_confidence: the pu variant's threshold is c / 2, not a quantile")
        reference = np.sort(self._training_scores("predict_confidence")[self._threshold_rows()])
        n = len(reference)
        p = (1 + np.searchsorted(reference, scores, side="right")) / (2 + n)
        flagged = scipy.stats.binom.sf(n - int(n * self.contamination), n, p)  # 1 - cdf, without cancellation
        return np.where(labels == 1, flagged, 1 - flagged)

    def _training_scores(self, asked: str) -> np.ndarray:
        """``decision_scores_``, which ``asked`` reads; a detector made by ``from_checkpoint`` has none."""
        scores = getattr(self, "decision_scores_", None)
        if scores is None:
            raise ConfigurationError(
                f"{asked} needs the training rows' scores (decision_scores_), which a checkpoint does not hold: "
                "a detector made by from_checkpoint has decision_function and predict; fit one in Python for "
                f"{asked}"
            )
        return scores

    def _threshold_rows(self) -> np.ndarray:
        """The rows of X whose scores ``threshold_`` was taken on (detectors saved before it was stored:
        the held-out rows, or all of X's)."""
        rows = getattr(self, "threshold_rows_", None)
        if rows is None or not len(rows):
            held = getattr(self, "calibration_rows_", None)
            rows = held if held is not None and len(held) else np.arange(len(self.decision_scores_))
        return rows

    def predict_proba(
        self, X, method: Literal["linear", "unify"] = "linear", return_confidence: bool = False
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """(n, 2): [p(normal), p(anomaly)] from the score, as PyOD's methods give it: ``linear`` min-max
        scaled by ``decision_scores_``, ``unify`` erf of the score standardised by their mean and standard
        deviation (Kriegel et al. 2011); clipped to [0, 1]. A ranking, not a calibrated probability:
        ``threshold_`` maps to wherever it lies, not to 0.5; ``predict`` gives the labels. With
        ``return_confidence`` also ``predict_confidence``'s (n,) values."""
        check_choice("method", method, ("linear", "unify"))
        scores = self.decision_function(X)
        training = self._training_scores("predict_proba")
        if method == "linear":
            low, high = training.min(), training.max()
            p = (scores - low) / max(high - low, 1e-12)
        else:
            spread = max(float(training.std()), 1e-12)
            p = scipy.special.erf((scores - training.mean()) / (spread * np.sqrt(2)))
        p = np.clip(p, 0.0, 1.0)
        proba = np.stack([1 - p, p], axis=1)
        return (proba, self._confidence(scores, self._labels(scores))) if return_confidence else proba

    # --- persistence -----------------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Writes the fitted detector (weights, mixture, threshold, encoding, parameters) to ``path`` (its
        folder made if missing; ``~`` is the home folder)."""
        check_is_fitted(self, "model_")
        path = Path(path).expanduser()
        if path.is_dir():
            raise DataError(f"{path} is a folder; name a file in it (e.g. {path / 'detector.pt'})")
        model = {"variant_class": type(self.model_).__name__, "hparams": dict(self.model_.hparams)}
        scores = self._training_scores("save")
        fitted = {"preprocessor": self.preprocessor_.state_dict(), "decision_scores": scores}
        fitted["calibration_rows"] = getattr(self, "calibration_rows_", np.zeros(0, dtype=np.int64))
        fitted["threshold_rows"] = getattr(self, "threshold_rows_", np.zeros(0, dtype=np.int64))
        state = {"params": self.get_params(), "state_dict": self.model_.state_dict(), **model, **fitted}
        names = getattr(self, "feature_names_in_", None)
        state["feature_names_in"] = None if names is None else names.tolist()
        state["column_labels"] = getattr(self, "_column_labels", None)
        make_folder_of(path)
        try:
            with open(path, "wb") as file:  # opened here: torch.save's own open fails with a RuntimeError
                torch.save({**state, "n_features_in": self.n_features_in_}, file)
        except OSError as err:
            raise DataError(f"cannot write {path}: {err.strerror or err}") from None

    @classmethod
    def load(cls, path: str | Path) -> DAGMMDetector:
        """A detector written by ``save``, ready to score. The file is unpickled (the variant's class by its
        import path): load only files you trust, as with ``torch.load``."""
        path = existing_file(Path(path).expanduser())
        try:
            state = torch.load(path, weights_only=False)
        except (AttributeError, ImportError) as err:  # pickled by an import path this process lacks
            raise DataError(
                f"{path} needs a class this process does not have ({err}): import or define the detector's variant "
                "before load (a class defined in a script or notebook is found by its name in the one that loads)"
            ) from None
        except Exception as err:  # noqa: BLE001 - whatever the unpickler makes of another kind of file
            raise DataError(
                f"{path} is not a file written by DAGMMDetector.save ({type(err).__name__}: {err})"
            ) from None
        if isinstance(state, dict) and {"state_dict", "hyper_parameters"} <= set(state):
            raise DataError(
                f"{path} is a Lightning checkpoint (`dagmm fit`'s?): DAGMMDetector.from_checkpoint loads it"
            )
        if not isinstance(state, dict) or "variant_class" not in state:
            raise DataError(f"{path} is not a file written by DAGMMDetector.save")
        detector = cls(**state["params"])
        variant = state["params"]["variant"]  # a class: pickled by its import path; or a name, or a dotted path
        if isinstance(variant, str) and "." in variant and import_failure(variant) is not None:
            raise DataError(
                f"{path} holds a {variant} model, which does not import here ({import_failure(variant)}): put its "
                "module on the import path before load"
            )
        model_class = detector._model_class
        detector.model_ = model_class(**{"one_sided_error": False, **state["hparams"]})  # (saved before: two-sided)
        detector.model_.load_state_dict(state["state_dict"])
        detector.model_.eval()
        detector.preprocessor_ = TablePreprocessor()
        detector.preprocessor_.load_state_dict(state["preprocessor"])
        detector.decision_scores_ = state["decision_scores"]
        detector.calibration_rows_ = state.get("calibration_rows", np.zeros(0, dtype=np.int64))
        detector.threshold_rows_ = state.get("threshold_rows", np.zeros(0, dtype=np.int64))
        detector.threshold_ = float(detector.model_.model.calibration.threshold)
        detector.labels_ = (detector.decision_scores_ > detector.threshold_).astype(int)
        detector.n_features_in_ = state["n_features_in"]
        names, prep = state.get("feature_names_in"), detector.preprocessor_
        if "feature_names_in" not in state and prep.numeric != [f"x{i}" for i in range(len(prep.numeric))]:
            names = [*prep.numeric, *prep.categories]  # saved before the names were: fitted on a DataFrame
        if names is not None:
            detector.feature_names_in_ = np.asarray(names, dtype=object)
        detector._column_labels = state.get("column_labels")
        return detector

    @classmethod
    def from_checkpoint(cls, path: str | Path, variant: type[DAGMM] | str | None = None) -> DAGMMDetector:
        """A detector that scores as a checkpoint of ``dagmm fit`` (or of a Trainer with an
        ``AnomalyDataModule``) does: its weights, fitted mixture and threshold, and its table's encoding and
        scaling, so that ``decision_function`` and ``predict`` give what ``dagmm predict`` writes for the same
        rows: a DataFrame's columns by name (its label and ignored columns, if there, left out); columns
        without names (an array's) by position, only where the table had no text columns (a checkpoint keeps
        no order of those). A checkpoint holds no training rows' scores: ``decision_scores_``, ``labels_``,
        ``predict_proba``, ``predict_confidence`` and ``save`` are for detectors fitted in Python.
        ``variant`` and ``contamination`` are the checkpoint's (its labels' share where it took that), the
        other parameters the defaults (they only matter to ``fit``). Its model class is imported by the path
        the checkpoint records (load only checkpoints you trust); ``variant``: the class, where none is
        recorded (a class of a script or notebook) or the one recorded does not import here (it is used
        instead, if of the same name), or its dotted path (``"my_variants.Wider"``). ``checkpoint_path_``: the file."""
        path = existing_file(Path(path).expanduser())
        try:
            checkpoint = torch.load(path, weights_only=True, map_location="cpu")
        except Exception as err:  # noqa: BLE001 - whatever the unpickler makes of another kind of file
            refused = re.search(r"Unsupported global: GLOBAL ([\w.]+)", re.sub(r"\x1b\[[0-9;]*m", "", str(err)))
            if refused is not None and _written_by_save(path):
                raise DataError(f"{path} was written by DAGMMDetector.save: DAGMMDetector.load loads it") from None
            if refused is not None:  # a detector's file, or a checkpoint holding an object such a load refuses
                raise DataError(
                    f"{path} holds a {refused.group(1)}, which a safe load (torch.load, weights_only=True) refuses: "
                    "a file of DAGMMDetector.save loads with DAGMMDetector.load; a checkpoint's hyperparameters "
                    "must be numbers, text, lists or dicts (a Path? pass paths as text)"
                ) from None
            checkpoint = torch_load_failure(err)
        hparams = checkpoint.get("hyper_parameters") if isinstance(checkpoint, dict) else None
        if not isinstance(hparams, dict) or "state_dict" not in checkpoint:
            why = f" ({checkpoint})" if isinstance(checkpoint, str) else ""
            raise DataError(
                f"{path} is not a checkpoint that `dagmm fit` wrote{why}; a file of DAGMMDetector.save loads with "
                "DAGMMDetector.load"
            )
        record, saved = checkpoint.get(VARIANT_RECORD_KEY), hparams.get("_class_path")
        if not isinstance(record, dict) and saved is None:
            raise DataError(f"{path} holds no DAGMM model (a checkpoint of another LightningModule?)")
        held = record.get("class") if isinstance(record, dict) else saved.rpartition(".")[2]
        if isinstance(variant, str) and "." in variant:  # (a name of ours is not asked for: the file says it)
            variant = _class_at(variant)
        if variant is not None:
            if not (isinstance(variant, type) and issubclass(variant, DAGMM)):
                raise ConfigurationError(f"variant must be a DAGMM subclass or its dotted path, got {variant!r}")
            if variant.__name__ != held:
                raise ConfigurationError(f"{path} holds a {held} model, not a {variant.__name__}")
            model_class = variant
        elif saved is not None:
            model_class = imported_class(saved)
            if isinstance(model_class, str):
                raise DataError(
                    f"{path} holds a {saved} model, which does not import here ({import_failure(saved)}): import "
                    "the module that defines it, or put it on PYTHONPATH"
                )
            if not (isinstance(model_class, type) and issubclass(model_class, DAGMM)):
                raise DataError(f"{path} holds a {saved}, not a DAGMM model")
        else:
            model_class = {c.__name__: c for c in VARIANTS.values()}.get(held)
            if model_class is None:  # (a class of __main__ or a nested one: its import path is not recorded)
                raise DataError(
                    f"{path} holds a {held} model, whose import path the checkpoint does not record (defined in a "
                    f"script or notebook?): pass the class, DAGMMDetector.from_checkpoint(path, variant={held})"
                )
        source = path
        if variant is not None and saved is not None:  # the class given, not the import path recorded (as
            # Lightning would import: blocked where that module does not import, e.g. a notebook's copy)
            hparams = {k: v for k, v in hparams.items() if k not in ("_class_path", "_instantiator")}
            source = io.BytesIO()
            torch.save({**checkpoint, "hyper_parameters": hparams}, source)
            source.seek(0)
        with _callers_random_state():  # building the networks draws their first weights from the global generator
            try:
                with warnings.catch_warnings():  # jsonargparse's deprecations of what Lightning calls: not the user's
                    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"lightning\.pytorch\.cli")
                    model = model_class.load_from_checkpoint(source, map_location="cpu").eval()
            except DAGMMError:
                raise
            except Exception as err:  # noqa: BLE001 - Lightning's, the class's own: named, not a traceback
                raise DataError(
                    f"{path}: cannot build its {model_class.__name__} model ({type(err).__name__}: {err})"
                ) from err
        trained_on = model._trained_on
        if trained_on is None:
            raise DataError(
                f"{path} holds no data module's encoding and scaling (trained without AnomalyDataModule?): score "
                f"scaled rows with {model_class.__name__}.load_from_checkpoint(path).eval().score(x)"
            )
        names = {DAGMMVAE: "vae", DAGMMVQVAE: "vqvae", DAGMMPU: "pu", DAGMM: "dagmm"}
        contamination = checkpoint.get(CONTAMINATION_KEY, hparams.get("contamination"))
        if not (model_class.threshold_from_contamination and isinstance(contamination, float)):
            contamination = DEFAULT_CONTAMINATION  # (PU: c / 2; a checkpoint saved before the share was recorded)
        settings = checkpoint.get("datamodule_hyper_parameters") or {}
        name = names.get(model_class, model_class)
        if model_class is DAGMM and settings.get("split") == "mixed":  # trained with labelled anomalies
            name = "mixed_loss"
        detector = cls(variant=name, contamination=contamination)
        detector.model_, detector.checkpoint_path_ = model, str(path)
        detector.preprocessor_ = prep = TablePreprocessor()
        prep.load_state_dict(trained_on["preprocessor"])
        detector.threshold_ = float(model.model.calibration.threshold)
        if not np.isfinite(detector.threshold_):
            raise DataError(f"{path} holds no threshold (its fit did not finish?)")
        detector.n_features_in_ = len(prep.numeric) + len(prep.categories)
        source = str(trained_on.get("found_at", {}).get("path", ""))
        from_a_file = trained_on.get("dataset") == TABLE and source and not source.lower().endswith(".npz")
        if from_a_file or prep.categories or prep.numeric != [f"x{i}" for i in range(len(prep.numeric))]:
            detector.feature_names_in_ = np.asarray([*prep.numeric, *prep.categories], dtype=object)  # by name
        left_out = [settings.get("label_column"), *(settings.get("ignore_columns") or [])]
        detector._columns_left_out = [c for c in left_out if c is not None]
        return detector


def _class_at(path: str) -> type:
    """The class a variant's dotted path (``my_variants.Wider``) names, imported; refused where the path does
    not import or names no class."""
    failure = import_failure(path)
    if failure is not None:
        raise ConfigurationError(
            f"variant {path!r} does not import ({failure}): a dotted path names a DAGMM subclass in a module on "
            "the import path (the dagmm command adds the current folder)"
        )
    module, _, name = path.rpartition(".")
    found = getattr(importlib.import_module(module), name)  # (imported just now: no second run of it)
    if not isinstance(found, type):
        raise ConfigurationError(f"variant {path!r} names a {type(found).__name__}, not a DAGMM subclass")
    return found


def _feature_names(X) -> np.ndarray | None:
    """X's feature names as scikit-learn reads them: a DataFrame's column names when all are text; None for
    an array or for names none of which is text (0, 1, ...: columns go by position); a mix is refused."""
    if not isinstance(X, pd.DataFrame) or X.shape[1] == 0:
        return None
    text = [isinstance(c, str) for c in X.columns]
    if all(text):
        return np.asarray(X.columns, dtype=object)
    if any(text):
        kinds = sorted({type(c).__name__ for c in X.columns})
        raise DataTypeError(
            f"X's column names mix text and other types ({kinds}): name them all with text "
            "(X.columns = X.columns.astype(str)) or none (columns are then taken by position)"
        )
    return None


# at a word's start: 'abnormal' and 'unclean' name anomalies
NORMAL_CLASS_NAME = re.compile(r"(?<![a-z])(?:norm|inlier|benign|legit|genuine|clean|regular|good)", re.I)


def _warn_if_scorers_read_y_reversed(y, kind: str) -> None:
    """A ``y`` given to a label-free variant trains nothing, but a scorer reads it beside ``decision_function``
    (higher = more anomalous) with its larger label as the anomaly class: say so where that class is likely
    the normal one (scikit-learn's outlier coding -1 / 1; text labels whose last in sorted order is named like
    a normal class: 'normal', 'inlier', 'benign', ...). Anything else passes."""
    try:
        values = pd.unique(pd.Series(np.asarray(y).ravel()).dropna())
    except (TypeError, ValueError):
        return
    if len(values) != 2:
        return
    lead = f"y trains nothing in variant {kind!r}, but a scorer (roc_auc, average_precision) reads it"
    if all(_is_number(v) for v in values) and set(map(float, values)) == {-1.0, 1.0}:
        warn(
            f"{lead} with 1 as the anomaly class, and y holds -1 and 1, scikit-learn's outlier coding (-1 the "
            "outlier): such scores come out reversed; pass (y == -1).astype(int)"
        )
    elif (
        all(isinstance(v, str) for v in values)
        and NORMAL_CLASS_NAME.search(max(values))
        and not NORMAL_CLASS_NAME.search(min(values))
    ):
        warn(
            f"{lead} with {max(values)!r}, the last of y's labels {sorted(values)} in sorted order, as the anomaly "
            "class: such scores come out reversed; pass y as 1 for an anomaly, 0 for a normal row"
        )


def _refuse_series(X) -> None:
    if isinstance(X, pd.Series):  # one row or one column: which, only the caller knows
        raise DataError(
            "X is a pandas Series; pass a DataFrame: one row as frame.iloc[[i]] (or series.to_frame().T), one "
            "feature as series.to_frame()"
        )


def _name_index_label(err: BaseException, X) -> None:
    """Adds to a ``DataError`` that names a row of X by position (its ``row``) that row's index label, where
    X is a DataFrame whose index is not 0, 1, ... (after a train_test_split, ``X.loc[3]`` is another row)."""
    row = getattr(err, "row", None)
    if not isinstance(err, DataError) or row is None or not isinstance(X, pd.DataFrame) or not 0 <= row < len(X):
        return
    if not X.index.equals(pd.RangeIndex(len(X))) and len(err.args) == 1:
        label = X.index[row]  # 241, not np.int64(241); a MultiIndex's tuple of them alike
        label = tuple(map(_plain, label)) if isinstance(label, tuple) else _plain(label)
        err.args = (f"{err.args[0]}; X.index[{row}] is {label!r}",)


def _plain(value):
    """A numpy scalar as the Python one it holds (what a user types), other values as they are."""
    return value.item() if isinstance(value, np.generic) else value


def _neither_text_nor_number(value) -> bool:
    """Whether ``value`` is no string, no number and not missing (None, NaN, pd.NA): a dict, a list, ..."""
    if isinstance(value, (str, bytes)) or value is None or value is pd.NA:
        return False
    return not _is_number(value)


def _is_number(value) -> bool:
    """Whether numpy's float conversion takes ``value``."""
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


# Training seeds the process's global generators (the model reseeds at each epoch) and sets Lightning's log
# levels: fits in several threads of one process (joblib's threading backend) take turns
_PROCESS_STATE = threading.RLock()


_THREAD_COUNT = threading.RLock()  # held by a thread that set torch's thread count, until it is restored


def _written_by_save(path: Path) -> bool:
    """Whether ``path`` is a file of ``DAGMMDetector.save`` (its pickle's keys read as bytes, nothing
    unpickled)."""
    try:
        with zipfile.ZipFile(path) as archive:
            name = next(n for n in archive.namelist() if n.endswith("/data.pkl"))
            pickled = archive.read(name)
    except (OSError, zipfile.BadZipFile, StopIteration):
        return False
    return b"variant_class" in pickled and b"n_features_in" in pickled


@contextmanager
def _torch_threads(count: int):
    """torch's intra-op thread count set to ``count`` while active, then as it was. A thread that finds it
    at ``count`` goes on at once; one that must change it waits for another's change to end (two changes
    at once could leave the process at the wrong count)."""
    if torch.get_num_threads() == count:
        yield
        return
    with _THREAD_COUNT:
        before = torch.get_num_threads()
        torch.set_num_threads(count)
        try:
            yield
        finally:
            torch.set_num_threads(before)


@contextmanager
def _callers_random_state():
    """The global generators the detector's training seeds (Python's, numpy's, torch's CPU one: the model
    also reseeds at each epoch) and Lightning's ``PL_GLOBAL_SEED`` as they were: a caller's draws after
    ``fit`` must not depend on its training (with ``random_state`` None, numpy's has moved on by the one
    draw of the seed, as in scikit-learn)."""
    seed = os.environ.get("PL_GLOBAL_SEED")
    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])
        if seed is None:
            os.environ.pop("PL_GLOBAL_SEED", None)
        else:
            os.environ["PL_GLOBAL_SEED"] = seed


@contextmanager
def _quiet(active: bool):
    """Silence Lightning's info messages (GPU available, seed set, ...) and tips while active."""
    loggers = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric", "lightning")]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*treespec.*")  # Lightning-internal: nothing a user can do
        if active:
            warnings.simplefilter("ignore", PossibleUserWarning)
            for lg in loggers:
                lg.setLevel(logging.WARNING)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels, strict=True):
                lg.setLevel(level)


def _is_integer(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)
