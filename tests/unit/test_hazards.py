"""Numerical hazards found in review; each test failed before its fix."""

import numpy as np
import pytest
import torch

from dagmm_lightning.errors import ConfigurationError
from dagmm_lightning.labels import LABELLED_ANOMALY
from dagmm_lightning.mixture import GaussianMixtureEnergy
from dagmm_lightning.models import DAGMM, DAGMMPU
from dagmm_lightning.networks import DAGMMOutput, reconstruction_features
from dagmm_lightning.scoring import upper_quantile


def test_a_batch_of_labelled_anomalies_only_gives_a_finite_loss_and_gradients():
    torch.manual_seed(0)
    model = DAGMM(input_dim=6, hidden_dims=(5,), latent_dim=1, n_components=2, dropout=0.0)
    y = torch.full((16,), LABELLED_ANOMALY)
    loss = model.training_step((torch.rand(16, 6), y, torch.arange(16)), 0)
    loss.backward()
    assert torch.isfinite(loss) and loss.item() == 0.0  # no mixture to fit: no energy, no penalty
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_the_relative_distance_of_a_zero_row_is_bounded():
    x = torch.zeros(1, 4)
    x_hat = torch.full((1, 4), 0.1)
    relative = reconstruction_features(x, x_hat)[0][0, 0].item()
    assert relative == pytest.approx(0.2 / 1e-3)  # ||x'|| / 1e-3, not ||x'|| / 1e-8 = 2e7
    rows = torch.rand(5, 4) + 0.5  # ordinary rows keep the exact ratio
    ratio = (rows - 0.3 * rows).norm(dim=1) / rows.norm(dim=1)
    torch.testing.assert_close(reconstruction_features(rows, 0.3 * rows)[0][:, 0], ratio)


def test_the_cosine_of_a_row_near_zero_is_near_the_zero_rows():
    # A row at every feature's training minimum scales to 0 exactly in training (float64) and to ~1e-8 when
    # scored in float32: its cosine had been 0 in the one and anything in [-1, 1] in the other, so that the
    # mixture, fitted on thousands of such rows (23_mammography: 30 % of them), scored them as the most
    # anomalous rows of all (energy 395 vs at most 144 for any other training row)
    x_hat = torch.tensor([[0.3, -0.2, 0.1, 0.4]], dtype=torch.float64)
    for near in (torch.zeros(1, 4, dtype=torch.float64), -1e-8 * x_hat, 1e-8 * torch.tensor([[1.0, 0, 0, 0]])):
        cosine = reconstruction_features(near.double(), x_hat)[0][0, 1].item()
        assert abs(cosine) < 1e-5  # at most ||x|| / 1e-3 (had: -1 and 0.55 for the two rows 1e-8 from zero)
    rows = torch.rand(5, 4, dtype=torch.float64) + 0.5  # rows past the floor keep the exact cosine
    x_hat = torch.rand(5, 4, dtype=torch.float64)
    exact = (rows * x_hat).sum(1) / rows.norm(dim=1) / x_hat.norm(dim=1)
    torch.testing.assert_close(reconstruction_features(rows, x_hat)[0][:, 1], exact)


def test_jitter_must_be_positive_and_finite_and_the_rows_have_a_dimension():
    for jitter in (0.0, float("inf"), float("nan")):  # inf had trained until a misleading 'try a larger jitter'
        with pytest.raises(ConfigurationError, match="jitter must be a finite number > 0"):
            GaussianMixtureEnergy(2, 3, jitter=jitter)
    with pytest.raises(ConfigurationError, match="dim must be >= 1, got 0"):
        GaussianMixtureEnergy(2, 0)


def test_the_threshold_quantile_takes_any_number_of_rows():
    scores = torch.arange(2**24 + 1, dtype=torch.float64)  # torch.quantile's limit is 2^24 elements
    assert upper_quantile(scores, 0.25) == pytest.approx(np.quantile(scores.numpy(), 0.75))


def test_positive_unlabeled_scores_rank_by_the_logit_beyond_float32_saturation():
    model = DAGMMPU(input_dim=6, hidden_dims=(5,), latent_dim=1, n_components=2).model
    logits = torch.tensor([20.0, 30.0, 40.0])  # float32, as the classifier gives them
    model.labelled_logit = lambda output: logits
    scores = model.score(DAGMMOutput(None, None, torch.zeros(3, 3), None, None))
    assert (scores > 0).all() and scores[0] > scores[1] > scores[2]  # 1 - sigmoid in float32: all 0.0
    torch.testing.assert_close(scores, torch.exp(-logits.double()), rtol=1e-6, atol=0)


@pytest.mark.filterwarnings("ignore:You defined a `validation_step` but have no `val_dataloader`")
def test_half_precision_that_would_cast_the_mixture_is_refused():
    import lightning as L

    model = DAGMM(input_dim=6, hidden_dims=(5,), latent_dim=1, n_components=2)
    trainer = L.Trainer(
        precision="bf16-true",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        max_epochs=1,
    )
    batches = [(torch.rand(16, 6), torch.zeros(16, dtype=torch.long), torch.arange(16))]
    with pytest.raises(ConfigurationError, match="use '16-mixed' or 'bf16-mixed'"):
        trainer.fit(model, train_dataloaders=batches)


def test_a_spawned_workers_own_error_is_made_again_from_its_traceback_text():
    """torch's ProcessRaisedException carries a ddp_spawn worker's traceback as text only: the package's
    error it ends on is found in it (had: that 60-line traceback and exit code 1; one process: one line, 2)."""
    from dagmm_lightning.errors import DataError, NonFiniteError, own_error, worker_error

    class ProcessRaisedException(Exception):  # (torch.multiprocessing.spawn's, by name)
        pass

    text = (
        '\n\n-- Process 1 terminated with the following error:\nTraceback (most recent call last):\n  File "x.py", '
        "line 1, in f\n    raise DataError(m)\ndagmm_lightning.errors.DataError: rows.csv: In CSV column 'b': not a "
        "number: 'oops' (line 82: row 80)\n"
    )
    found = own_error(ProcessRaisedException(text))
    assert (
        type(found) is DataError and str(found) == "rows.csv: In CSV column 'b': not a number: 'oops' (line 82: row 80)"
    )
    two_lines = worker_error("Traceback ...\ndagmm_lightning.errors.NonFiniteError: NaN in\nthe energy")
    assert type(two_lines) is NonFiniteError and str(two_lines) == "NaN in\nthe energy"
    assert worker_error("Traceback ...\nValueError: not ours") is None
    chained = "dagmm_lightning.errors.DataError: first\n\nDuring handling of the above exception, another exception "
    chained += "occurred:\n\nTraceback ...\ndagmm_lightning.errors.NonFiniteError: raised last\n"
    last = worker_error(chained)  # (had: the first error's class, its message running on to the end)
    assert type(last) is NonFiniteError and str(last) == "raised last"
    assert own_error(ProcessRaisedException("Traceback ...\nRuntimeError: gloo")) is None
