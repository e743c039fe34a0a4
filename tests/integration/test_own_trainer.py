"""A Lightning user's own Trainer and loaders: the batch format, row ids, training labels, checkpoint
overrides and Trainer options that bypass the package's data module."""

import warnings

import lightning as L
import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from torch.utils.data import DataLoader, TensorDataset

from dagmm_lightning.callbacks import AnomalyMetrics, PredictionCSVWriter
from dagmm_lightning.data import AnomalyDataModule
from dagmm_lightning.errors import DAGMMWarning, DataError
from dagmm_lightning.models import DAGMM

QUIET = dict(logger=False, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")


def rows(n=256, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    y = np.zeros(n, dtype=np.int64)
    y[: n // 10] = 1
    x[y == 1] += 4.0  # the anomalies lie far out
    return torch.from_numpy(x), torch.from_numpy(y)


def small_model(**kwargs):
    return DAGMM(4, hidden_dims=[8], latent_dim=1, estimation_hidden=[4], n_components=2, **kwargs)


def loader(*tensors, batch_size=64):
    return DataLoader(TensorDataset(*tensors), batch_size=batch_size)


def test_a_loader_of_another_batch_shape_is_refused_with_the_format(tmp_path):
    x, y = rows()
    for tensors in [(x,), (x, y)]:  # had: "not enough values to unpack" from inside the step
        with pytest.raises(DataError, match=r"a batch is \(x, labels, row ids\).*gave a list of " + str(len(tensors))):
            L.Trainer(**QUIET, max_epochs=1, default_root_dir=tmp_path).fit(small_model(), loader(*tensors))


def test_training_labels_other_than_the_codes_are_refused_with_the_format(tmp_path):
    x, y = rows()
    ids = torch.arange(len(x))
    normal = torch.zeros_like(y)
    coded = normal.clone()
    coded[7] = 2  # had: trained as if normal (and (N, 1) labels: IndexError deep in the model)
    for labels, match in [
        (coded, "a training batch holds the label 2"),
        (normal[:, None], r"labels of shape \(64, 1\)"),
    ]:
        with pytest.raises(DataError, match=match + r".*a batch is \(x, labels, row ids\)"):
            L.Trainer(**QUIET, max_epochs=1, default_root_dir=tmp_path).fit(small_model(), loader(x, labels, ids))


def test_float64_rows_of_ones_own_train_and_score_as_float32(tmp_path):
    x, y = rows()
    ids = torch.arange(len(x))
    scores = []
    for rows_given in (x, x.double()):  # had: 'mat1 and mat2 must have the same dtype' from inside torch
        torch.manual_seed(0)
        model = small_model()
        L.Trainer(**QUIET, max_epochs=2, default_root_dir=tmp_path).fit(
            model, loader(rows_given, torch.zeros_like(y), ids)
        )
        with torch.no_grad():
            scores.append(model.eval().model.score(model.model(rows_given)))
    assert torch.equal(scores[0], scores[1])
    integers = torch.randint(0, 5, x.shape)  # counts: trained as floats (had, at first: an int64 loss, no grad)
    L.Trainer(**QUIET, max_steps=3, default_root_dir=tmp_path).fit(
        small_model(), loader(integers, torch.zeros_like(y), ids)
    )


def test_nan_in_rows_of_ones_own_is_named_by_row_id(tmp_path):
    x, y = rows()
    ids = torch.arange(len(x)) + 1000
    broken = x.clone()
    broken[13, 2] = float("nan")
    # training: had 'covariance is not positive definite ... (try a larger jitter)'
    with pytest.raises(DataError, match=r"1 training row\(s\) hold NaN or inf \(row ids \[1013\]\)"):
        L.Trainer(**QUIET, max_epochs=1, default_root_dir=tmp_path).fit(
            small_model(), loader(broken, torch.zeros_like(y), ids)
        )
    # validation (its sanity check: 2 batches): had scikit-learn's 'Input contains NaN.' from the metrics
    trainer = L.Trainer(**QUIET, max_epochs=1, default_root_dir=tmp_path, callbacks=[AnomalyMetrics()])
    with pytest.raises(DataError, match=r"val: 1 of 128 rows scored NaN \(row ids \[1013\]\)"):
        trainer.fit(small_model(), loader(x, torch.zeros_like(y), ids), loader(broken, y, ids))


def test_row_ids_shared_by_rows_are_refused_not_counted_once(tmp_path):
    x, y = rows()
    ids = torch.arange(len(x))
    trainer = L.Trainer(**QUIET, max_epochs=1, default_root_dir=tmp_path, callbacks=[AnomalyMetrics()])
    model = small_model()
    trainer.fit(model, loader(x, torch.zeros_like(y), ids))
    scored = trainer.test(model, loader(x, y, ids))[0]
    with torch.no_grad():
        reference = roc_auc_score(y.numpy(), model.eval().score(x).numpy())
    assert scored["test/roc_auc"] == pytest.approx(reference, abs=1e-6)  # every row, once (logged as float32)
    with pytest.raises(DataError, match="224 evaluated rows have a row id that another row of the same process has"):
        trainer.test(model, loader(x, y, ids % 32))  # had: the ROC AUC of 32 rows, silently


def test_labelled_anomalies_in_a_loader_of_ones_own_are_said_once(tmp_path):
    x, y = rows()
    ids = torch.arange(len(x))
    model = small_model()
    for _ in range(2):  # once a fit, not at every step
        with pytest.warns(DAGMMWarning, match="training batches hold rows labelled 1: labelled anomalies") as caught:
            L.Trainer(**QUIET, max_epochs=2, default_root_dir=tmp_path).fit(model, loader(x, y, ids))
        assert len([w for w in caught if "labelled 1" in str(w.message)]) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error", DAGMMWarning)
        unknown = torch.full_like(y, -1)
        L.Trainer(**QUIET, max_epochs=1, default_root_dir=tmp_path).fit(small_model(), loader(x, unknown, ids))
        mixed = AnomalyDataModule.from_arrays(x.numpy(), y.numpy(), split="mixed", labelled_anomalies=0.5)
        trainer = L.Trainer(**QUIET, max_epochs=1, limit_val_batches=0, default_root_dir=tmp_path)
        trainer.fit(small_model(), datamodule=mixed)  # labelled as asked for


def test_fit_settings_given_at_load_are_warned_of_and_the_threshold_stays(tmp_path):
    data = AnomalyDataModule.from_arrays(*(t.numpy() for t in rows()))
    trainer = L.Trainer(**QUIET, max_epochs=1, default_root_dir=tmp_path)
    trainer.fit(small_model(), datamodule=data)
    trainer.save_checkpoint(tmp_path / "m.ckpt")
    saved = DAGMM.load_from_checkpoint(tmp_path / "m.ckpt")
    with pytest.warns(DAGMMWarning, match=r"contamination 0.02 \(the checkpoint's 0.1\): the threshold, mixture"):
        loaded = DAGMM.load_from_checkpoint(tmp_path / "m.ckpt", contamination=0.02, lr=1e-4)
    assert float(loaded.model.calibration.threshold) == float(saved.model.calibration.threshold)
    assert loaded.threshold_share == pytest.approx(0.1)  # the threshold's, not the setting given
    scorer = L.Trainer(**QUIET, default_root_dir=tmp_path)
    scorer.predict(loaded, datamodule=data)  # (no refit)
    scorer.save_checkpoint(tmp_path / "again.ckpt")  # the fitted state's record, kept
    again = torch.load(tmp_path / "again.ckpt", weights_only=False)
    assert again["dagmm_fitted_under"]["contamination"] == 0.1 and again["dagmm_contamination"] == pytest.approx(0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DAGMMWarning)
        DAGMM.load_from_checkpoint(tmp_path / "m.ckpt", lr=1e-4)  # a training setting: for a fit that follows


def test_overfit_batches_trains_on_the_same_batches_each_epoch(tmp_path):
    seen = []

    class Ids(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            seen.append((trainer.current_epoch, batch[2].tolist()))

    data = AnomalyDataModule.from_arrays(*(t.numpy() for t in rows()), batch_size=32)
    trainer = L.Trainer(**QUIET, max_epochs=2, overfit_batches=2, callbacks=[Ids()], default_root_dir=tmp_path)
    trainer.fit(small_model(), datamodule=data)
    first, second = ([ids for epoch, ids in seen if epoch == e] for e in (0, 1))
    assert len(first) == 2 and first == second  # had: reshuffled, other rows every epoch


def test_a_data_module_of_arrays_predicts_without_lightnings_batch_index_warning(tmp_path):
    data = AnomalyDataModule.from_arrays(*(t.numpy() for t in rows()))
    trainer = L.Trainer(**QUIET, max_epochs=1, default_root_dir=tmp_path)
    model = small_model()
    trainer.fit(model, datamodule=data)
    trainer = L.Trainer(**QUIET, callbacks=[PredictionCSVWriter(str(tmp_path / "scores.csv"))])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        AnomalyMetrics().setup(trainer, model, "validate")  # (the sync_dist advice for its metrics: all ranks' rows)
        warnings.warn("It is recommended to use `self.log('val/roc_auc', ..., sync_dist=True)` when ...", stacklevel=1)
        warnings.warn("It is recommended to use `self.log('val/my_loss', ..., sync_dist=True)` when ...", stacklevel=1)
        trainer.predict(model, datamodule=data)
    shown = [str(w.message) for w in caught]
    assert not [m for m in shown if "Couldn't infer the batch indices" in m]
    assert [m for m in shown if "sync_dist" in m] == [shown[0]] and "val/my_loss" in shown[0]  # a user's own key stays


def test_validation_labels_in_scikit_learns_outlier_coding_are_named_as_such(tmp_path):
    x, y = rows()
    ids = torch.arange(len(x))
    coded = 1 - 2 * y  # -1 an outlier, 1 an inlier (had: said only 'rows without labels')
    trainer = L.Trainer(**QUIET, max_epochs=1, default_root_dir=tmp_path, callbacks=[AnomalyMetrics()])
    with pytest.warns(DAGMMWarning, match=r"rows without labels \(labels -1 and 1 only: scikit-learn's outlier coding"):
        trainer.fit(small_model(), loader(x, torch.zeros_like(y), ids), loader(x, coded, ids))
    assert "val/roc_auc" not in trainer.logged_metrics


@pytest.mark.parametrize("members", [1, 2])
def test_rows_without_labels_log_their_reconstruction_error_and_flagged_share(tmp_path, members):
    x, _ = rows()
    unknown, ids = torch.full((len(x),), -1), torch.arange(len(x))
    model = small_model(members=members, contamination=0.1)
    trainer = L.Trainer(**QUIET, max_epochs=2, default_root_dir=tmp_path, callbacks=[AnomalyMetrics()])
    with pytest.warns(
        DAGMMWarning, match=r"rows without labels; .* \(logged: val/reconstruction, val/flagged_share, val/threshold\)"
    ):
        trainer.fit(model, loader(x[:192], unknown[:192], ids[:192]), loader(x[192:], unknown[192:], ids[192:]))
        logged = trainer.validate(model, loader(x[192:], unknown[192:], ids[192:]))[0]  # had: nothing logged
    held_out = x[192:].double()
    with torch.no_grad():
        model.eval()
        x_hat = model.model.compression(held_out.to(torch.float32)).x_hat.double()  # (members, N, F) or (N, F)
        scores = model.score(held_out).numpy()
    errors = ((held_out - x_hat) ** 2).sum(-1).reshape(-1, len(held_out)).mean(0)  # each row's, members' mean
    assert logged["val/reconstruction"] == pytest.approx(float(errors.mean()), rel=1e-5)
    threshold = float(model.model.calibration.threshold)
    assert logged["val/flagged_share"] == pytest.approx(np.mean(scores > threshold), abs=1e-6)
    assert "val/roc_auc" not in logged and logged["val/threshold"] == pytest.approx(threshold)  # (had: not logged)
    assert trainer.callbacks[0].last_metrics["val"].keys() == {"reconstruction", "flagged_share", "threshold"}
