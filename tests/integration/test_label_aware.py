"""The study's label-aware methods: mixed-label split + modified loss, modified inference, PU."""

import warnings

import lightning as L
import numpy as np
import pytest
import torch

from dagmm_lightning.data import AnomalyDataModule, make_splits
from dagmm_lightning.data.splits import positive_unlabeled, with_labelled_anomalies
from dagmm_lightning.errors import DataError
from dagmm_lightning.labels import KNOWN_NORMAL, LABELLED_ANOMALY, UNLABELLED
from dagmm_lightning.losses import anomaly_energy_loss
from dagmm_lightning.models import DAGMM, DAGMMPU, TrainingRows
from dagmm_lightning.scoring import ScoreCalibration


def labels(n_normal=1000, n_anomalous=250):
    return np.r_[np.zeros(n_normal, bool), np.ones(n_anomalous, bool)]


def assert_disjoint(s, n):
    rows = np.concatenate([s.train, s.val, s.test])
    assert len(np.unique(rows)) == len(rows) <= n


@pytest.mark.parametrize("protocol", ["paper", "reimplementation"])
def test_mixed_split_composition_and_no_leakage(protocol):
    y = labels()
    base = make_splits(y, protocol, seed=0)
    mixed = with_labelled_anomalies(base, y, share=0.5, seed=0)
    assert_disjoint(mixed, len(y))
    np.testing.assert_array_equal(mixed.test, base.test)  # evaluation rows as in the normal-only split
    moved = mixed.train[mixed.train_labels == LABELLED_ANOMALY]
    assert y[moved].all() and len(moved) == round(0.5 * (y[base.val].sum() + len(base.spare)))
    assert not y[mixed.train[mixed.train_labels == KNOWN_NORMAL]].any()
    before = np.r_[base.train, base.val, base.spare]
    assert np.array_equal(np.sort(np.r_[mixed.train, mixed.val, mixed.spare]), np.sort(before))


def test_a_mixed_split_without_anomalies_outside_the_test_rows_says_so():
    y = np.zeros(200, dtype=bool)
    base = make_splits(y, "paper", seed=0)
    with pytest.raises(DataError, match="the data has no anomalies: without anomalies to label, train the plain"):
        with_labelled_anomalies(base, y, share=0.5, seed=0)  # had advised raising labelled_anomalies
    y[base.test[0]] = True
    with pytest.raises(DataError, match="the data has 1 anomaly, all test rows"):
        with_labelled_anomalies(make_splits(y, "paper", seed=0), y, share=0.5, seed=0)


def test_positive_unlabeled_split_composition():
    y = labels()
    s = positive_unlabeled(y, labelled_fraction=0.4, seed=3, val_fraction=0.1)
    assert_disjoint(s, len(y))
    train_side = np.r_[s.train, s.val]
    assert len(train_side) == len(y) // 2 and len(s.test) == len(y) - len(y) // 2
    labelled = np.r_[s.train[s.train_labels == KNOWN_NORMAL], s.val]
    assert not y[labelled].any()  # labelled rows are normal
    assert len(labelled) == round(0.4 * (~y[train_side]).sum())
    assert len(s.val) == round(0.1 * len(labelled))
    unlabelled = s.train[s.train_labels == UNLABELLED]
    assert y[unlabelled].sum() == y[train_side].sum()  # all training-half anomalies are unlabelled
    assert (~y[unlabelled]).sum() > 0


def test_positive_unlabeled_split_refusals_name_their_cause():
    y = labels()
    for bad in (-0.5, 1.0, 1.5):  # had: -0.5 held out one row, 1.0 and more blamed labelled_fraction
        with pytest.raises(ValueError, match=rf"val_fraction must be in \[0, 1\), got {bad}"):
            positive_unlabeled(y, labelled_fraction=0.4, val_fraction=bad)
    with pytest.raises(DataError, match="no normal rows to label: the table has 0 normal rows of 1250"):
        positive_unlabeled(np.ones(1250, dtype=bool), labelled_fraction=0.99)  # had: "raise labelled_fraction"
    with pytest.raises(DataError, match=r"too few .* \(1 of the training half's \d+ normal rows .*labelled_fraction$"):
        positive_unlabeled(y, labelled_fraction=0.002)


def test_the_val_rows_threshold_warns_where_val_lost_its_anomalies():
    x, y = synthetic(3, n=600, share=0.1)
    quiet = dict(logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    said = {}
    for share in (1.0, 0.3):  # all labelled: val keeps none of its anomalies; 0.3: the spare ones suffice
        dm = AnomalyDataModule.from_arrays(x, y, split="mixed", labelled_anomalies=share, seed=0, batch_size=128)
        # (contamination 0.3: above twice val's share, as its split gives it: had been blamed on the option)
        model = DAGMM(input_dim=8, hidden_dims=(6,), latent_dim=1, n_components=2, contamination=0.3)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            L.Trainer(max_epochs=1, accelerator="cpu", devices=1, **quiet).fit(model, dm)
        said[share] = [str(w.message) for w in caught if "val rows' scores, but val holds" in str(w.message)]
        assert (y[dm.splits.val].sum() == 0) == (share == 1.0)
    (warning,) = said[1.0]  # had: none, and the threshold flagged 10 % of the normal rows
    moved = int(y[make_splits(y.astype(bool), "paper", 0, 0.1).val].sum())
    assert warning.startswith("the threshold is the top 30 % of the val rows' scores, but val holds 0 anomalies")
    assert f"labelled_anomalies or train_contamination moved {moved} of its anomalies into training" in warning
    assert moved > 0 and said[0.3] == []
    # a contamination above val's share that no option caused (val as split): the user's choice, not warned
    model = DAGMM(input_dim=8, hidden_dims=(6,), latent_dim=1, n_components=2, contamination=0.3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        L.Trainer(max_epochs=1, accelerator="cpu", devices=1, **quiet).fit(model, AnomalyDataModule.from_arrays(x, y))
    assert not [w for w in caught if "but val holds" in str(w.message)]


def test_positive_unlabeled_needs_the_paper_protocol():
    with pytest.raises(ValueError, match="paper protocol only, not 'reimplementation': leave out --data.protocol"):
        AnomalyDataModule(split="positive_unlabeled", protocol="reimplementation")


def test_a_split_setting_of_another_split_is_warned_or_refused():
    # had: ignored without a word (labelled_anomalies 0.8 on a normal_only run trained on normal rows only)
    for split, setting, its_split in [
        ("normal_only", {"labelled_anomalies": 0.8}, "mixed"),
        ("positive_unlabeled", {"labelled_anomalies": 0.8}, "mixed"),
        ("mixed", {"labelled_fraction": 0.3}, "positive_unlabeled"),
        ("normal_only", {"labelled_fraction": 0.3}, "positive_unlabeled"),
    ]:
        name, value = next(iter(setting.items()))
        with pytest.warns(UserWarning, match=rf"^{name} {value} is for split '{its_split}'; with split '{split}' it"):
            AnomalyDataModule(split=split, **setting)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mixed = AnomalyDataModule(split="mixed", labelled_anomalies=0.8)
        pu = AnomalyDataModule(split="positive_unlabeled", labelled_fraction=0.3)
        default = AnomalyDataModule(split="mixed")
        AnomalyDataModule(labelled_anomalies=0.5, labelled_fraction=0.5)  # the defaults (older config.yaml files)
    assert (mixed.labelled_anomalies, pu.labelled_fraction) == (0.8, 0.3)
    assert (default.labelled_anomalies, default.labelled_fraction) == (0.5, 0.5)  # the splits' defaults
    assert default.hparams.labelled_anomalies is None  # recorded as given
    # had: the positive-unlabeled split ignored it
    with pytest.raises(ValueError, match=r"^train_contamination 0.1 is for the normal_only and mixed splits: .* 0$"):
        AnomalyDataModule(split="positive_unlabeled", train_contamination=0.1)


def synthetic(seed=0, n=1200, share=0.15):
    """Normal rows on a 2-D curve embedded in 8-D; anomalies scattered off it."""
    rng = np.random.default_rng(seed)
    n_anomalous = int(share * n)
    t = rng.uniform(-1, 1, size=n - n_anomalous)
    basis = rng.normal(size=(2, 8))
    normal = np.c_[t, t**2] @ basis + 0.02 * rng.normal(size=(len(t), 8))
    anomalous = rng.uniform(-2, 2, size=(n_anomalous, 2)) @ basis + rng.normal(size=(n_anomalous, 8))
    return np.r_[normal, anomalous], np.r_[np.zeros(len(t)), np.ones(n_anomalous)]


def quiet_trainer(epochs):
    return L.Trainer(
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        accelerator="cpu",
        devices=1,
    )


def energy_gap(with_anomaly_term: bool, monkeypatch, seed=0):
    """Mean training energy of the labelled anomalies minus that of the normal training rows."""
    L.seed_everything(seed)
    x, y = synthetic(seed)
    dm = AnomalyDataModule.from_arrays(x, y, split="mixed", labelled_anomalies=1.0, seed=seed, batch_size=128)
    model = DAGMM(input_dim=8, hidden_dims=(6,), latent_dim=1, n_components=2, lr=3e-3, dropout=0.0)
    if not with_anomaly_term:
        monkeypatch.setattr(
            "dagmm_lightning.losses.anomaly_energy_loss", lambda anomalous, *args: torch.zeros_like(anomalous)
        )
    quiet_trainer(15).fit(model, datamodule=dm)
    x_train, train_labels = dm.arrays("train")
    model.eval()
    with torch.no_grad():
        energy = model.model(torch.from_numpy(x_train)).energy.numpy()
    return energy[train_labels == LABELLED_ANOMALY].mean() - energy[train_labels == KNOWN_NORMAL].mean()


@pytest.mark.slow
def test_modified_loss_raises_the_energy_of_labelled_anomalies(monkeypatch):
    # Same data, seed and schedule; only the hinge term on labelled anomalies differs.
    assert energy_gap(True, monkeypatch) > energy_gap(False, monkeypatch) + 1.0


def test_anomaly_terms_on_hand_made_energies():
    normal = torch.tensor([1.0, 3.0])  # mean 2
    anomalous = torch.tensor([0.0, -0.5, 4.0, 10.0])
    hinge = anomaly_energy_loss(anomalous, normal, "hinge", 5.0)
    assert hinge.tolist() == pytest.approx([7.0, 7.5, 3.0, 0.0])
    soft = anomaly_energy_loss(anomalous, normal, "softplus", 5.0)
    assert soft.tolist() == pytest.approx(np.log1p(np.exp([7.0, 7.5, 3.0, -3.0])).tolist())
    # the study's 1/E: faithful away from 0, floored at |E| = 1e-3 (sign kept) so it never gives inf/NaN
    inverse = anomaly_energy_loss(anomalous, normal, "inverse", 5.0)
    assert inverse.tolist() == pytest.approx([1000.0, -2.0, 0.25, 0.1])
    assert torch.isfinite(inverse).all()


def test_seed_inverse_form_trains_without_nan():
    L.seed_everything(0)
    x, y = synthetic(1)
    dm = AnomalyDataModule.from_arrays(x, y, split="mixed", labelled_anomalies=1.0, seed=0, batch_size=128)
    model = DAGMM(input_dim=8, hidden_dims=(6,), latent_dim=1, n_components=2, lr=3e-3, anomaly_loss="inverse")
    trainer = quiet_trainer(3)
    trainer.fit(model, datamodule=dm)
    assert np.isfinite(float(trainer.callback_metrics["train/loss"]))


def test_combined_score_equals_its_definition():
    calibration = ScoreCalibration(inference="energy+reconstruction", reconstruction_weight=2.0)
    energy, error = (
        torch.tensor([1.0, 4.0, -2.0], dtype=torch.float64),
        torch.tensor([0.5, 0.1, 0.3], dtype=torch.float64),
    )
    calibration.normalisation.copy_(torch.tensor([1.0, 2.0, 0.3, 0.1], dtype=torch.float64))
    expected = [(1 - 1) / 2 + 2 * (0.5 - 0.3) / 0.1, (4 - 1) / 2 + 2 * (0.1 - 0.3) / 0.1, (-2 - 1) / 2 + 0.0]
    assert calibration(energy, error).tolist() == pytest.approx(expected)


def test_refit_stores_training_mean_and_std_of_energy_and_error():
    x, y = synthetic(2)
    dm = AnomalyDataModule.from_arrays(x, y, seed=0, batch_size=128, eval_batch_size=100)
    dm.setup("fit")
    model = DAGMM(input_dim=8, hidden_dims=(6,), latent_dim=1, n_components=2, inference="energy+reconstruction")
    model.model.fit(TrainingRows(dm.refit_dataloader()))
    x_train, _ = dm.arrays("train")
    model.eval()
    with torch.no_grad():
        out = model.model(torch.from_numpy(x_train))
        energy, error = out.energy.numpy(), out.error.double().numpy()
        scores = model.score(torch.from_numpy(x_train)).numpy()
    expected = [energy.mean(), energy.std(ddof=1), error.mean(), error.std(ddof=1)]
    np.testing.assert_allclose(model.model.calibration.normalisation.numpy(), expected, rtol=1e-9)
    assert scores.mean() == pytest.approx(0.0, abs=1e-9)  # both z-scores centre on the training rows
    assert float(model.model.calibration.threshold) == pytest.approx(np.quantile(scores, 0.9))


def test_pu_estimate_of_c_recovers_the_labelling_frequency():
    # Normal rows are labelled completely at random. With h trained, mean h over held-out labelled rows
    # estimates c = p(labelled | normal) among the training rows.
    L.seed_everything(0)
    x, y = synthetic(3, n=3000, share=0.1)
    dm = AnomalyDataModule.from_arrays(
        x, y, split="positive_unlabeled", labelled_fraction=0.3, val_fraction=0.2, seed=0, batch_size=128
    )
    model = DAGMMPU(
        input_dim=8, hidden_dims=(6,), latent_dim=1, n_components=2, lr=3e-3, dropout=0.0, classifier_hidden=(16,)
    )
    quiet_trainer(20).fit(model, datamodule=dm)
    train_rows, train_labels = dm.splits.train, dm.splits.train_labels
    normal = y[train_rows] == 0
    true_c = (train_labels[normal] == KNOWN_NORMAL).mean()  # 0.3 * 0.8 / (1 - 0.3 * 0.2) = 0.255
    assert true_c == pytest.approx(0.255, abs=0.005)
    assert float(model.model.c) == pytest.approx(true_c, abs=0.03)
    # threshold is 1 - c/2 on the score 1 - h: anomaly iff h < c / 2
    assert float(model.model.calibration.threshold) == pytest.approx(1 - float(model.model.c) / 2)
    x_test, y_test = dm.arrays("test")
    model.eval()
    with torch.no_grad():
        h = model.model.labelled_probability(model.model(torch.from_numpy(x_test))).numpy()
    assert h[y_test == 1].mean() < h[y_test == 0].mean() - 0.02  # h ranks anomalies lower


def test_pu_validation_on_labelled_normal_rows_skips_label_metrics_with_a_message():
    # The PU split validates c on labelled normal rows only: ROC AUC and F1 are undefined there and must
    # be neither logged (NaN, or an F1 of 0 that a checkpoint would monitor) nor printed as numbers.
    from dagmm_lightning.callbacks import AnomalyMetrics

    L.seed_everything(0)
    x, y = synthetic(3, n=600, share=0.1)
    dm = AnomalyDataModule.from_arrays(x, y, split="positive_unlabeled", labelled_fraction=0.3, seed=0, batch_size=128)
    model = DAGMMPU(input_dim=8, hidden_dims=(6,), latent_dim=1, n_components=2)
    metrics = AnomalyMetrics()
    trainer = L.Trainer(
        max_epochs=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        devices=1,
        callbacks=[metrics],
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(model, datamodule=dm)
    assert not [w for w in caught if "every evaluated row" in str(w.message)]  # by design there (README)
    assert metrics.last_metrics["val"].keys() == {
        "reconstruction",
        "flagged_share",
        "threshold",
    }  # no label metric (the hparams
    # view gets the run, with its c)
    label_free = {"val/c", "val/reconstruction", "val/flagged_share", "val/threshold"}
    assert not any(k.startswith("val/") and k not in label_free for k in trainer.callback_metrics), (
        trainer.callback_metrics
    )
    assert "val/c" in trainer.callback_metrics
    trainer.test(model, datamodule=dm, verbose=False)  # the test half holds both classes
    assert 0.0 <= metrics.last_metrics["test"]["roc_auc"] <= 1.0
    # another split whose val rows hold one class: the message says why it may be so (had: blamed the PU split)
    tiny = AnomalyDataModule.from_arrays(x[:40], np.r_[np.zeros(39), 1.0], seed=0, batch_size=128)  # val: normal only
    quiet = dict(logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    plain = L.Trainer(max_epochs=1, callbacks=[AnomalyMetrics()], **quiet)
    with pytest.warns(
        UserWarning,
        match=r"every evaluated row is normal \(the split put \d row\(s\) there, none an anomaly: few rows, or",
    ):
        plain.fit(DAGMM(input_dim=8, hidden_dims=(6,), latent_dim=1, n_components=2), datamodule=tiny)


def test_pu_rejects_an_inference_it_would_ignore_and_data_without_its_split():
    assert DAGMM(input_dim=8).score_is_energy and not DAGMMPU(input_dim=8).score_is_energy
    with pytest.raises(ValueError, match="scores with its classifier"):
        DAGMMPU(input_dim=8, inference="energy+reconstruction")
    with pytest.raises(ValueError, match=r"lambda_pu must be in \(0, inf\), got 0"):
        DAGMMPU(input_dim=8, lambda_pu=0)  # h would never train
    rows = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.rand(64, 8), torch.zeros(64)), batch_size=32
    )
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    with pytest.raises(ValueError, match="DAGMMPU needs the data module's split: positive_unlabeled"):
        trainer.fit(DAGMMPU(input_dim=8, hidden_dims=(6,), latent_dim=1, n_components=2), train_dataloaders=rows)
    x, y = synthetic(0, n=200)
    normal_only = AnomalyDataModule.from_arrays(x, y, seed=0)
    with pytest.raises(
        ValueError, match=r"for c\); from the command line --data.split positive_unlabeled \(as configs/pu"
    ):
        trainer.fit(DAGMMPU(input_dim=8, hidden_dims=(6,), latent_dim=1, n_components=2), datamodule=normal_only)
    assert trainer.global_step == 0  # refused before training (had: after the model summary, at the first refit)


def test_options_a_fit_does_not_use_are_said_to_play_no_part():
    x, y = synthetic(0, n=300)
    small = dict(input_dim=8, hidden_dims=(6,), latent_dim=1, n_components=2)

    def warnings_of_fit(model, **data):
        trainer = L.Trainer(max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            trainer.fit(model, datamodule=AnomalyDataModule.from_arrays(x, y, seed=0, **data))
        return " ".join(str(w.message) for w in caught if "no part" in str(w.message))

    said = warnings_of_fit(DAGMM(**small, anomaly_loss="inverse", anomaly_margin=2.0))  # had: trained silently
    assert "anomaly_loss 'inverse' and anomaly_margin 2.0: for training rows labelled as anomalies" in said
    assert "DAGMMDetector(variant='mixed_loss') with y" in said  # (the detector's own way to label rows)
    assert warnings_of_fit(DAGMM(**small, anomaly_loss="inverse"), split="mixed") == ""  # they train there
    said = warnings_of_fit(DAGMM(**small, reconstruction_weight=3.0))
    assert "reconstruction_weight 3 weighs the reconstruction error in inference 'energy+reconstruction'" in said
    assert warnings_of_fit(DAGMM(**small, reconstruction_weight=3.0, inference="energy+reconstruction")) == ""
    pu = DAGMMPU(**small)  # contamination None: no quantile of it to take, the threshold is c / 2
    assert warnings_of_fit(pu, split="positive_unlabeled") == ""
    assert float(pu.model.calibration.threshold) == 1 - float(pu.model.c) / 2


def test_pu_refits_once_per_set_of_weights():
    # h needs the training-set mixture at every epoch's start; after a validation (same weights) that
    # fit is already there: sanity check, then one refit per epoch (validated every epoch), no more
    x, y = synthetic(4, n=600, share=0.1)
    dm = AnomalyDataModule.from_arrays(x, y, split="positive_unlabeled", labelled_fraction=0.3, seed=0, batch_size=128)
    model = DAGMMPU(input_dim=8, hidden_dims=(6,), latent_dim=1, n_components=2, dropout=0.0)
    steps = []
    refit = model.refit
    model.refit = lambda: (steps.append(model.global_step), refit())[1]
    L.Trainer(max_epochs=3, logger=False, enable_checkpointing=False, enable_progress_bar=False).fit(model, dm)
    per_epoch = len(dm.splits.train) // 128 + (len(dm.splits.train) % 128 >= 32)
    assert steps == [0, per_epoch, 2 * per_epoch, 3 * per_epoch]


def test_the_positive_unlabeled_split_warns_a_model_that_ignores_its_labels():
    x, y = synthetic(4, n=300, share=0.1)
    dm = AnomalyDataModule.from_arrays(x, y, split="positive_unlabeled", labelled_fraction=0.3, seed=0, batch_size=128)
    quiet = dict(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    with pytest.warns(UserWarning, match="split 'positive_unlabeled' is DAGMMPU's .* DAGMM trains on every"):
        L.Trainer(**quiet).fit(DAGMM(input_dim=8, hidden_dims=(6,), latent_dim=1, n_components=2), dm)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="split 'positive_unlabeled'")
        L.Trainer(**quiet).fit(DAGMMPU(input_dim=8, hidden_dims=(6,), latent_dim=1, n_components=2), dm)
