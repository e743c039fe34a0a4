"""Hazards of multi-process evaluation, checkpointing and mixed precision; each test failed before its fix."""

import lightning as L
import numpy as np
import pytest
import torch

from dagmm_lightning.callbacks import AnomalyMetrics
from dagmm_lightning.data import AnomalyDataModule, RawTable, Splits
from dagmm_lightning.models import DAGMM

from .test_ddp import RefitAndRecord, trainer


def small_table(seed=0, n=120):
    import pandas as pd

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5))
    y = np.zeros(n, dtype=bool)
    y[-3:] = True
    x[-3:] += 4.0
    return RawTable(pd.DataFrame(x, columns=[f"x{i}" for i in range(5)]), y, [])


def two_row_val_data():
    rows = np.arange(120)
    # 100 normal training rows; val: one normal row and one anomaly; test: the rest
    splits = Splits(rows[:100], np.array([100, 119]), rows[101:119])
    return AnomalyDataModule.from_table(small_table(), splits, batch_size=32, eval_batch_size=8, seed=0)


@pytest.mark.ddp
@pytest.mark.slow
def test_three_processes_validate_two_rows_as_one_process_does(tmp_path):
    # 2 val rows on 3 ranks: the third rank has no row of its own. Before the fix it skipped the
    # validation loop and with it the refit's collectives, and the others waited for it forever.
    torch.manual_seed(0)
    model = DAGMM(input_dim=5, hidden_dims=(4,), latent_dim=1, n_components=2, dropout=0.0).double()
    results = {}
    for devices in (1, 3):
        out = tmp_path / f"{devices}.pt"
        validate = trainer(devices, precision="64-true", callbacks=[AnomalyMetrics(), RefitAndRecord(out)])
        validate.validate(model, datamodule=two_row_val_data())
        results[devices] = torch.load(out)
    assert results[3]["metrics"] == pytest.approx(results[1]["metrics"], rel=1e-9)
    threshold = "model.calibration.threshold"
    assert float(results[3]["buffers"][threshold]) == pytest.approx(float(results[1]["buffers"][threshold]), rel=1e-9)


def quiet_trainer(**kwargs):
    return trainer(1, enable_checkpointing=False, **kwargs)


def test_a_checkpoint_holds_every_buffer_of_the_refit_it_triggers():
    # A strategy may hand on_save_checkpoint a copy of the state dict (not sharing storage with the
    # module). Every refitted buffer (mixture, normalisation, threshold) must reach the checkpoint.
    L.seed_everything(0)
    model = DAGMM(input_dim=5, hidden_dims=(4,), latent_dim=1, n_components=2, inference="energy+reconstruction")
    fit = quiet_trainer(max_epochs=1, limit_val_batches=0)
    fit.fit(model, datamodule=two_row_val_data())
    with torch.no_grad():
        model.model.compression.encoder[0].weight.mul_(1.5)  # weights moved since the last refit
    model.fitted_at_step.fill_(-1)
    checkpoint = {"state_dict": {k: v.clone() for k, v in model.state_dict().items()}}
    model.on_save_checkpoint(checkpoint)
    for name, value in model.state_dict().items():
        torch.testing.assert_close(checkpoint["state_dict"][name], value, msg=name)


def test_the_refit_runs_in_the_steps_precision():
    # Under bf16-mixed the steps score in bfloat16 autocast; the threshold must come from such scores.
    L.seed_everything(0)
    model = DAGMM(
        input_dim=5, hidden_dims=(4,), latent_dim=1, n_components=2, contamination=0.2, threshold_rows="train"
    )
    data = two_row_val_data()
    bf16 = quiet_trainer(max_epochs=2, limit_val_batches=0, precision="bf16-mixed")
    bf16.fit(model, datamodule=data)
    x_train, _ = data.arrays("train")
    model.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        scores = model.score(torch.from_numpy(x_train)).double().numpy()
    assert float(model.model.calibration.threshold) == pytest.approx(np.quantile(scores, 0.8), rel=1e-12)
