from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from sklearn.metrics import roc_auc_score
from torch import nn

from dagmm_lightning.data import InMemoryBatches
from dagmm_lightning.errors import ConfigurationError, DataError, NonFiniteError
from dagmm_lightning.mixture import GaussianMixtureEnergy
from dagmm_lightning.models import DAGMM, DAGMMPU
from dagmm_lightning.networks import Compressed, reconstruction_features
from dagmm_lightning.networks.dagmm import SampledRows, fit_positions, row_counts
from dagmm_lightning.networks.estimation import EstimationNetwork
from dagmm_lightning.networks.layers import FUSED_LINEAR, mlp


def test_reconstruction_features_match_numpy_and_guard_zero_rows():
    rng = np.random.default_rng(0)
    x, x_hat = rng.normal(size=(5, 4)), rng.normal(size=(5, 4))
    x[2] = 0.0
    feats, error = (t.numpy() for t in reconstruction_features(torch.tensor(x), torch.tensor(x_hat)))
    assert np.isfinite(feats).all()
    np.testing.assert_allclose(error, ((x - x_hat) ** 2).sum(1))
    ok = [0, 1, 3, 4]
    np.testing.assert_allclose(feats[ok, 0], np.linalg.norm(x - x_hat, axis=1)[ok] / np.linalg.norm(x, axis=1)[ok])
    with np.errstate(invalid="ignore"):  # the zero row's 0/0, checked separately
        cos = (x * x_hat).sum(1) / np.linalg.norm(x, axis=1) / np.linalg.norm(x_hat, axis=1)
    np.testing.assert_allclose(feats[ok, 1], cos[ok])
    assert feats[2, 1] == 0.0


def test_reconstruction_features_in_float32_stay_within_rounding_of_float64():
    """Near-perfect, ordinary and orthogonal reconstructions, and rows far shorter than their reconstruction
    (a row near every feature's training minimum): float32 within rounding of the float64 formulas."""
    rng = np.random.default_rng(1)
    x = rng.random((400, 118))
    x[300:] *= 1e-6
    orthogonal = rng.normal(size=(100, 118))
    orthogonal -= (orthogonal * x[200:300]).sum(1, keepdims=True) / (x[200:300] ** 2).sum(1, keepdims=True) * x[200:300]
    x_hat = np.concatenate(
        [x[:100] + 1e-4 * rng.normal(size=(100, 118)), rng.random((100, 118)), orthogonal, rng.random((100, 118))]
    )
    x, x_hat = x.astype(np.float32), x_hat.astype(np.float32)  # the reference sees the same rounded inputs
    feats, error = reconstruction_features(torch.from_numpy(x), torch.from_numpy(x_hat))
    x, x_hat = x.astype(np.float64), x_hat.astype(np.float64)
    cos = (x * x_hat).sum(1) / np.maximum(np.linalg.norm(x, axis=1), 1e-3) / np.linalg.norm(x_hat, axis=1)
    np.testing.assert_allclose(feats[:, 1].numpy(), cos, atol=2e-6)  # (||x|| below the floor: floored here too)
    relative = np.linalg.norm(x - x_hat, axis=1) / np.linalg.norm(x, axis=1)
    np.testing.assert_allclose(feats[:300, 0].numpy(), relative[:300], rtol=1e-5)
    floored = np.linalg.norm(x - x_hat, axis=1) / 1e-3  # ||x|| below the floor
    np.testing.assert_allclose(feats[300:, 0].numpy(), floored[300:], rtol=1e-5)
    np.testing.assert_allclose(error.numpy(), ((x - x_hat) ** 2).sum(1), rtol=1e-5)


def tiny_model(**kwargs):
    torch.manual_seed(0)
    defaults = dict(input_dim=6, hidden_dims=(5,), latent_dim=1, n_components=2, dropout=0.0)
    return DAGMM(**{**defaults, **kwargs})


def test_training_loss_equals_independent_reference():
    model = tiny_model(lambda_energy=0.1, lambda_cov=0.005)
    x = torch.rand(32, 6)
    loss = model.training_step((x, torch.zeros(32), torch.arange(32)), 0)
    with torch.no_grad():
        compression = model.model.compression
        z_c = compression.encoder(x)
        x_hat = compression.decoder(z_c)
        z = torch.cat([z_c, reconstruction_features(x, x_hat)[0]], 1).double().numpy()
        gamma = model.model.estimation(torch.from_numpy(z).float()).double().numpy()
    recon = ((x - x_hat) ** 2).sum(1).mean().item()
    log_p, penalty = [], 0.0
    for k in range(2):
        g = gamma[:, k]
        mu = (g[:, None] * z).sum(0) / g.sum()
        cov = ((z - mu).T * g) @ (z - mu) / g.sum() + 1e-6 * np.eye(3)
        log_p.append(multivariate_normal(mu, cov).logpdf(z) + np.log(g.mean()))
        penalty += (1 / np.diag(cov)).sum()
    energy = -logsumexp(np.stack(log_p, 1), axis=1).mean()
    assert loss.item() == pytest.approx(recon + 0.1 * energy + 0.005 * penalty, rel=1e-5)


def test_refit_is_batch_size_independent_in_eval_mode_and_sets_threshold():
    model = tiny_model(dropout=0.5, contamination=0.1).double()
    x = torch.rand(200, 6, dtype=torch.float64)
    model.train()
    model.model.fit([x])
    assert model.training and model.model.training  # restored
    full = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("model.mixture.")}
    model.model.fit(
        [x[i : i + 7] for i in range(0, 200, 7)]
    )  # dropout would make two refits differ; eval mode does not
    for name, value in full.items():
        torch.testing.assert_close(model.state_dict()[name], value, rtol=1e-10, atol=1e-12)
    model.eval()
    with torch.no_grad():
        scores = model.score(x).numpy()
    threshold = float(model.model.calibration.threshold)
    assert threshold == pytest.approx(np.quantile(scores, 0.9))
    assert (scores > threshold).mean() == pytest.approx(0.1, abs=0.01)


def test_em_steps_refine_the_training_set_fit_with_the_rows_kept_or_computed_again(monkeypatch):
    import dagmm_lightning.networks.dagmm as networks

    x = torch.rand(300, 6, dtype=torch.float64)
    fits = []
    for steps, limit in ((0, None), (3, None), (3, 0)):  # limit 0: every pass runs the networks again
        torch.manual_seed(0)
        model = tiny_model(em_steps=steps).double()
        if limit is not None:
            monkeypatch.setattr(networks, "ROWS_KEPT_BYTES", limit)
        model.model.fit([x[i : i + 64] for i in range(0, 300, 64)])
        model.eval()
        with torch.no_grad():
            energy = model.model(x).energy
        fits.append((energy, model.model.mixture.means.clone()))
    (plain, plain_means), (kept, kept_means), (again, again_means) = fits
    torch.testing.assert_close(kept, again, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(kept_means, again_means, rtol=1e-10, atol=1e-10)
    assert kept.mean() < plain.mean()  # EM raised the training rows' likelihood
    assert not torch.allclose(kept_means, plain_means)


def test_em_reseed_moves_the_components_the_network_left_empty_before_em():
    x = torch.rand(300, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    fits = {}
    for reseed in (0.0, 0.1):
        model = tiny_model(n_components=3, em_steps=2, em_reseed=reseed).double()
        with torch.no_grad():
            model.model.estimation.net[-1].bias.copy_(torch.tensor([50.0, 0.0, 0.0]))  # every row in component 0
        model.model.fit([x[i : i + 64] for i in range(0, 300, 64)])
        fits[reseed] = (model.model.components_reseeded, model.model.mixture.weights.clone())
    assert fits[0.0][0] == 0 and float(fits[0.0][1][1:].max()) < 1e-10  # EM alone: still empty
    assert fits[0.1][0] == 2 and float(fits[0.1][1][1:].min()) > 0.01  # re-seeded: rows of their own


def test_fit_components_beyond_the_network_train_as_its_k_and_score_with_the_reseeded_fit():
    """Two network components, a fit of four: the training loss is the two-component model's (same seed),
    the training-set fit has four components, the two extra re-seeded onto rows of their own."""
    x = torch.rand(300, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    small, wide = (tiny_model(fit_components=k, em_reseed=0.1, em_steps=2).double() for k in (None, 4))
    y = torch.zeros(64)
    torch.testing.assert_close(wide._loss(x[:64], y, None)[0], small._loss(x[:64], y, None)[0])
    wide.model.fit([x[i : i + 64] for i in range(0, 300, 64)])
    assert wide.model.estimation.net[-1].out_features == 2 and wide.model.mixture.means.shape == (4, 3)
    assert wide.model.components_reseeded == 2 and float(wide.model.mixture.weights[2:].min()) > 0.01
    wide.eval()
    assert torch.isfinite(wide.score(x)).all()


def test_sampled_rows_are_those_at_the_positions_counted_across_batches_and_ranks():
    x = torch.arange(300.0).unsqueeze(1)
    batches = [x[:64], x[64:65], x[65:65], x[65:200], x[200:]]
    positions = fit_positions(1000, 120)  # of 1,000 rows in all, this rank's 300 from position 500
    assert len(positions) == 120 == len(positions.unique()) and bool((positions.diff() > 0).all())
    torch.testing.assert_close(positions, fit_positions(1000, 120))  # the same subset at every fit
    expected = np.sort(np.random.default_rng(0).choice(1000, 120, replace=False))  # numpy, seed 0
    np.testing.assert_array_equal(positions.numpy(), expected)
    rows = SampledRows(batches, positions, first=500)
    mine = expected[(expected >= 500) & (expected < 800)] - 500
    np.testing.assert_array_equal(torch.cat(list(rows)).squeeze(1).numpy(), mine)
    np.testing.assert_array_equal(torch.cat(list(rows)).squeeze(1).numpy(), mine)  # re-iterable
    # in batches as long as the first (64 rows), the last shorter: few shapes for shape-keyed kernel caches
    assert [len(batch) for batch in rows] == [64] * (len(mine) // 64) + [len(mine) % 64] * bool(len(mine) % 64)
    # a first batch shorter than the others, or empty (labelled anomalies left out of it): the longest so far
    # (had: every batch as long as the first, 1-row batches; an empty first one raised in torch.cat)
    for first_batch in (x[:0], x[:2]):
        later = [first_batch, *x[len(first_batch) :].split(64)]
        rows = SampledRows(later, torch.arange(0, 300, 2), first=0)
        assert [len(batch) for batch in rows] == [64, 64, 22]
        np.testing.assert_array_equal(torch.cat(list(rows)).squeeze(1).numpy(), np.arange(0, 300, 2))
    assert row_counts(batches, torch.device("cpu")) == (0, 300)  # one process: from 0, its own rows


def test_fit_rows_fits_the_mixture_and_the_calibration_on_a_fixed_subset_of_rows():
    """fit_rows 100 of 300 rows: the mixture (M-step, re-seeding, EM) and the score's calibration are the
    fit of those 100 rows alone (``fit_positions``); the scores returned are theirs."""
    x = torch.rand(300, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    batches = [x[i : i + 64] for i in range(0, 300, 64)]
    options = dict(fit_components=4, em_reseed=0.1, em_steps=3, contamination=0.1)
    sampled, subset, whole = (tiny_model(**options, fit_rows=rows).double() for rows in (100, None, 300))
    scores = sampled.model.fit(batches)
    chosen = x[fit_positions(300, 100)]
    subset_scores = subset.model.fit([chosen])
    whole_scores = whole.model.fit(batches)
    assert sampled.model.rows_fitted == (100, 300) and whole.model.rows_fitted == (300, 300)
    assert sampled.model.sampled_fit and not whole.model.sampled_fit
    for name in ("weights", "means", "covariances"):
        torch.testing.assert_close(getattr(sampled.model.mixture, name), getattr(subset.model.mixture, name))
    for name in ("normalisation", "threshold"):
        torch.testing.assert_close(getattr(sampled.model.calibration, name), getattr(subset.model.calibration, name))
    assert not torch.allclose(sampled.model.mixture.means, whole.model.mixture.means)  # the other rows count there
    torch.testing.assert_close(scores, subset_scores)
    sampled.eval()
    torch.testing.assert_close(scores, sampled.score(chosen).double())
    assert int((scores > float(sampled.model.calibration.threshold)).sum()) == 10  # the top 10 % of the 100
    reference = tiny_model(**options).double()  # fit_rows at least the rows: every row, as without it
    torch.testing.assert_close(reference.model.fit(batches), whole_scores, rtol=0, atol=0)
    torch.testing.assert_close(reference.model.mixture.means, whole.model.mixture.means, rtol=0, atol=0)


def test_em_tolerance_stops_the_refinement_when_the_mean_energy_settles():
    x = torch.rand(300, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    runs = {}
    for tolerance in (0.0, 1e-5, float("inf")):
        torch.manual_seed(0)
        model = tiny_model(em_steps=200, em_tolerance=tolerance).double()
        model.model.fit([x[i : i + 64] for i in range(0, 300, 64)])
        runs[tolerance] = model.model.em_steps_run
    assert runs[0.0] == 200
    assert runs[float("inf")] == 2  # the first step has no earlier mean energy to compare with
    assert 2 < runs[1e-5] < 200


def batches(x, batch_size):
    return InMemoryBatches(x, torch.zeros(len(x), dtype=torch.long), torch.arange(len(x)), batch_size, shuffle=False)


def test_refit_within_an_epoch_leaves_a_users_training_loader_where_it_was():
    """No data module to give the refit its rows: it takes a pass of its own over the training loader's
    rows (each once, in order), not the loader itself, whose place a checkpoint written after it keeps."""
    x = torch.rand(100, 6)
    train = InMemoryBatches(x, torch.zeros(100, dtype=torch.long), torch.arange(100), 10, shuffle=True)
    places = []

    class Place(L.Callback):
        def on_validation_end(self, trainer, pl_module):
            places.append((train.state_dict()["batches"], len(pl_module.training_scores())))

    trainer = L.Trainer(
        max_epochs=1,
        val_check_interval=4,
        callbacks=[Place()],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(tiny_model(), train_dataloaders=train, val_dataloaders=batches(x[:20], 20))
    assert places == [(4, 100), (8, 100)]


@pytest.mark.filterwarnings("ignore:You defined a `validation_step` but have no `val_dataloader`")
def test_non_finite_loss_stops_with_epoch_step_and_term():
    model = tiny_model()
    x = torch.rand(16, 6)
    x[3, 2] = float("nan")
    trainer = L.Trainer(
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    # NaN in the input: named as such (had: 'covariance is not positive definite ... try a larger jitter')
    with pytest.raises(DataError, match=r"at epoch 0, step 0: 1 training row\(s\) hold NaN or inf \(row ids \[3\]\)"):
        trainer.fit(model, train_dataloaders=batches(x, 16))
    failing = tiny_model()
    message = "covariance is not positive definite even after adding jitter"

    def fails(*args, **kwargs):
        raise NonFiniteError(message)

    failing.model.mixture.batch_parameters = fails  # finite rows, a mixture that fails: said where
    with pytest.raises(NonFiniteError, match=rf"at epoch 0, step 0: {message}"):
        trainer.fit(failing, train_dataloaders=batches(torch.rand(16, 6), 16))


def test_non_finite_loss_term_is_named():
    model = tiny_model()
    terms = {"reconstruction": torch.tensor(float("inf")), "energy": torch.tensor(1.0)}
    with pytest.raises(FloatingPointError, match=r"at epoch 0, step 0: non-finite term\(s\) \['reconstruction'\]"):
        model._check_finite(torch.tensor(float("inf")), terms)
    model._check_finite(torch.tensor(3.0), {"energy": torch.tensor(3.0)})  # finite: no error
    inf, one = torch.tensor(float("inf")), torch.tensor(1.0)
    with pytest.raises(NonFiniteError) as caught:  # the package's own parts: nothing more to say
        model._check_finite(inf, {"reconstruction": one, "energy": inf, "penalty": inf})
    assert "non-finite term(s) ['energy', 'penalty']; check the input" in str(caught.value)


class OwnFamily(GaussianMixtureEnergy):
    """A mixture family of one's own (this module's, not the package's)."""


class OwnParts(DAGMM):
    def build_mixture_energy(self, n_components, dim):
        return OwnFamily(n_components, dim)

    def training_terms(self, out, y, labelled):
        return {**super().training_terms(out, y, labelled), "spread": out.energy.std()}


def test_a_non_finite_term_of_ones_own_part_names_that_part():
    # the extension trial: a NaN loss said 'energy' with no word of the user's own family computing it
    model = OwnParts(input_dim=6, hidden_dims=(5,), latent_dim=1, n_components=2)
    inf, one = torch.tensor(float("inf")), torch.tensor(1.0)
    with pytest.raises(NonFiniteError) as caught:
        model._check_finite(inf, {"reconstruction": one, "energy": inf, "penalty": inf, "spread": inf})
    named = (
        "(energy and penalty: OwnFamily, a mixture family of your own; spread: OwnParts.training_terms, of your own)"
    )
    assert f"non-finite term(s) ['energy', 'penalty', 'spread'] {named}; check the input" in str(caught.value)
    with pytest.raises(NonFiniteError, match=r"\['reconstruction'\]; check"):  # (the compression is ours)
        model._check_finite(inf, {"reconstruction": inf, "energy": one})
    # a subclass of a package variant that computes the term itself: not the user's to look into
    plain_pu = type("MyPU", (DAGMMPU,), {})(input_dim=6, hidden_dims=(5,), latent_dim=1, n_components=2)
    with pytest.raises(NonFiniteError, match=r"\['classifier'\]; check"):
        plain_pu._check_finite(inf, {"reconstruction": one, "classifier": inf})
    own_net = OwnCompression(input_dim=6, hidden_dims=(5,), latent_dim=1, n_components=2)
    with pytest.raises(NonFiniteError) as caught:
        own_net._check_finite(inf, {"reconstruction": inf, "sparsity": inf})
    named = "(reconstruction: Tied, a compression of your own; sparsity: Tied's losses, of your own)"
    assert f"['reconstruction', 'sparsity'] {named}; check" in str(caught.value)


class Tied(nn.Module):
    """A compression of one's own (its decoder the encoder's transpose)."""

    def __init__(self, features, latent):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(latent, features) * 0.1)

    def forward(self, x):
        z = x @ self.weight.T
        return Compressed(z, z @ self.weight, {"sparsity": z.abs().mean()})


class OwnCompression(DAGMM):
    ensembles = False

    def build_compression(self):
        return Tied(self.hparams.input_dim, self.hparams.latent_dim)


def test_plain_model_scores_like_the_lightning_module_without_lightning():
    model = tiny_model()
    x = torch.rand(50, 6)
    model.model.fit([x])
    model.eval()
    out = model.model(x)
    assert out.rows.shape == (50, 3) and out.gamma.shape == (50, 2) and out.energy.shape == (50,)
    torch.testing.assert_close(model.model.score(out), model.score(x))
    torch.testing.assert_close(out.error, ((x - out.x_hat) ** 2).sum(1))
    for dtype in (torch.float16, torch.bfloat16, torch.float64):  # had: float16 failed in the clip to 1e6
        rows = x.to(dtype)  # (any float dtype: scored as the model's, float32)
        torch.testing.assert_close(model.score(rows), model.score(rows.float()))


def test_error_feature_adds_the_log_squared_error_as_the_last_mixture_column():
    plain, with_error = tiny_model(), tiny_model(error_feature=True)
    assert with_error.model.estimation.net[0].in_features == 4 and with_error.model.mixture.dim == 4
    x = torch.rand(50, 6, dtype=torch.float64)
    with_error.double()
    out = with_error.model.represent(x)
    x_hat = out.x_hat.detach().numpy()
    expected = np.log(((x.numpy() - x_hat) ** 2).sum(1) + 1e-6)
    np.testing.assert_allclose(out.rows[:, 3].detach().numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(out.rows[:, :3].detach().numpy(), plain.double().model.represent(x).rows.detach())
    with_error.model.fit([x])  # the training-set mixture over 4-wide rows, then finite energies
    with_error.eval()
    assert torch.isfinite(with_error.model(x).energy).all()


def test_bad_hyperparameters_are_named():
    with pytest.raises(ValueError, match="contamination"):
        tiny_model(contamination=0.0)
    with pytest.raises(ValueError, match="activation"):
        tiny_model(activation="swish2")
    with pytest.raises(ValueError, match="input_dim"):
        tiny_model(input_dim=0)
    with pytest.raises(ValueError, match="em_steps"):
        tiny_model(em_steps=-1)
    with pytest.raises(ValueError, match=r"lambda_cov must be in \[0, inf\), got -1"):
        tiny_model(lambda_cov=-1.0)
    with pytest.raises(ValueError, match="lambda_energy must be in"):
        tiny_model(lambda_energy=-0.1)
    with pytest.raises(ValueError, match="latent_dim must be >= 1"):
        tiny_model(latent_dim=0)
    with pytest.raises(ValueError, match="em_tolerance"):
        tiny_model(em_steps=3, em_tolerance=float("nan"))
    with pytest.raises(ValueError, match="em_reseed"):
        tiny_model(em_steps=3, em_reseed=1.5)
    with pytest.raises(ValueError, match="n_components null"):
        tiny_model(n_components=None)
    with pytest.raises(ValueError, match="needs latent_dim and hidden_dims null"):
        tiny_model(fit_components="auto", em_reseed=0.05)
    with pytest.raises(ValueError, match="set em_reseed > 0"):
        tiny_model(fit_components=4)
    assert tiny_model(fit_components=2).model.mixture.n_components == 2  # no extra: no re-seeding needed
    with pytest.raises(ValueError, match="fit_components must be"):
        tiny_model(fit_components=True, em_reseed=0.05)
    with pytest.raises(ValueError, match=r"at least n_components \(2\)"):
        tiny_model(fit_components=1, em_reseed=0.05)
    with pytest.raises(ValueError, match="fit_components must be"):
        tiny_model(fit_components="many", em_reseed=0.05)
    for rows in (0, 2.5, True, "all"):
        with pytest.raises(ValueError, match="fit_rows must be an integer >= 1 or null"):
            tiny_model(fit_rows=rows)


def test_energy_trains_only_the_estimation_network_when_asked():
    x, y = torch.rand(40, 6), torch.zeros(40)
    end_to_end, detached = tiny_model(), tiny_model(energy_trains_compression=False)
    detached.load_state_dict(end_to_end.state_dict())

    def gradients(model):
        terms = model.training_terms(model.model(x), y, None)
        params = list(model.model.compression.parameters()) + list(model.model.estimation.parameters())
        n = len(list(model.model.compression.parameters()))
        full = torch.autograd.grad(sum(terms.values()), params, retain_graph=True)
        reconstruction = torch.autograd.grad(terms["reconstruction"], params[:n])
        return full[:n], full[n:], reconstruction

    compression, estimation, reconstruction = gradients(detached)
    for got, want in zip(compression, reconstruction, strict=True):
        torch.testing.assert_close(got, want)  # the energy and penalty reach no compression weight
    e2e_compression, e2e_estimation, _ = gradients(end_to_end)
    for got, want in zip(estimation, e2e_estimation, strict=True):
        torch.testing.assert_close(got, want)  # the estimation network learns as before
    assert any(not torch.allclose(g, r) for g, r in zip(e2e_compression, reconstruction, strict=True))


@pytest.mark.filterwarnings("ignore:You defined a `validation_step`")
def test_data_sized_model_needs_both_sizes_open_and_a_data_module():
    with pytest.raises(ValueError, match="set both or none"):
        tiny_model(latent_dim=None)
    model = tiny_model(latent_dim=None, hidden_dims=None)
    assert model.model is None
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    loader = InMemoryBatches(torch.rand(64, 6), torch.zeros(64, dtype=torch.long), torch.arange(64), 32, False)
    with pytest.raises(ValueError, match="needs the AnomalyDataModule"):
        trainer.fit(model, loader)


@pytest.mark.filterwarnings("ignore:You defined a `validation_step`")
def test_cosine_schedule_decays_the_rate_over_the_run():
    model = tiny_model(lr=0.01, lr_schedule="cosine")
    loader = InMemoryBatches(torch.rand(64, 6), torch.zeros(64, dtype=torch.long), torch.arange(64), 32, False)
    rates = []

    class Record(L.Callback):
        def on_train_batch_start(self, trainer, *args):
            rates.append(trainer.optimizers[0].param_groups[0]["lr"])

    trainer = L.Trainer(max_steps=8, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.callbacks.append(Record())
    trainer.fit(model, loader)
    np.testing.assert_allclose(rates, 0.005 * (1 + np.cos(np.pi * np.arange(8) / 8)))
    with pytest.raises(ValueError, match="needs a known run length"):
        L.Trainer(max_epochs=-1, logger=False, enable_progress_bar=False).fit(tiny_model(lr_schedule="cosine"), loader)


def test_score_calibration_against_numpy_and_on_a_single_training_row():
    from dagmm_lightning.scoring import ScoreCalibration

    rng = np.random.default_rng(0)
    energy, error = rng.normal(3, 2, 50), rng.gamma(2, 1, 50)
    calibration = ScoreCalibration("energy+reconstruction", reconstruction_weight=2.0, contamination=0.1)
    scores = calibration.fit(torch.from_numpy(energy), torch.from_numpy(error)).numpy()
    z = lambda v: (v - v.mean()) / v.std(ddof=1)  # noqa: E731
    np.testing.assert_allclose(scores, z(energy) + 2.0 * z(error), rtol=1e-12)
    assert float(calibration.threshold) == pytest.approx(np.quantile(scores, 0.9))
    one = ScoreCalibration("energy+reconstruction", contamination=0.1)
    score = one.fit(torch.tensor([4.0], dtype=torch.float64), torch.tensor([0.5], dtype=torch.float64))
    assert torch.isfinite(score).all() and torch.isfinite(one.threshold)  # one row: no spread, no NaN


def test_an_ensemble_member_whose_training_rows_score_alike_adds_no_amplified_noise():
    # identical training rows: a member's energies differ by float noise only (1e-11 here); scored again
    # in other batches they move by ~1e-7, which a 1e-12 floor on the spread made z-scores of 1e5
    from dagmm_lightning.scoring import SPREAD_FLOOR, ScoreCalibration

    rng = np.random.default_rng(0)
    energy = np.stack([-14.0 + 1e-11 * rng.normal(size=200), rng.normal(3, 2, 200)])
    error = rng.gamma(2, 1, (2, 200))
    calibration = ScoreCalibration("energy", contamination=0.1, members=2)
    calibration.fit(torch.from_numpy(energy), torch.from_numpy(error))
    floor = SPREAD_FLOOR * 14.0  # of the values' mean magnitude
    np.testing.assert_allclose(calibration.member_normalisation[0].numpy(), [-14.0, floor], rtol=1e-9)
    small = np.random.default_rng(1).normal(2e-5, 4e-6, 200)  # spread 0.2 of the mean: no floor in the way
    np.testing.assert_allclose(ScoreCalibration().fit(torch.from_numpy(small), torch.from_numpy(small)).numpy(), small)
    reconstruction = ScoreCalibration("energy+reconstruction")
    reconstruction.fit(torch.from_numpy(energy[1]), torch.from_numpy(small))
    np.testing.assert_allclose(reconstruction.normalisation[3], small.std(ddof=1), rtol=1e-12)
    np.testing.assert_allclose(calibration.member_normalisation[1, 1], energy[1].std(ddof=1), rtol=1e-12)
    moved = calibration(torch.from_numpy(energy + [[1e-7], [0.0]]), torch.from_numpy(error)).numpy()
    member_two = (energy[1] - energy[1].mean()) / energy[1].std(ddof=1)
    np.testing.assert_allclose(moved, (1e-7 / floor + member_two) / 2, atol=1e-6)


@pytest.mark.filterwarnings("ignore:The '.*_dataloader' does not have many workers")
def test_plain_dataloaders_train_and_validate_with_the_sanity_check():
    # the sanity check validates before Lightning loads the training rows that the mixture is fitted on
    from torch.utils.data import DataLoader, TensorDataset

    generator = torch.Generator().manual_seed(0)
    x, x_val = torch.rand(200, 6, generator=generator), torch.rand(50, 6, generator=generator)
    train = DataLoader(TensorDataset(x, torch.zeros(200, dtype=torch.long), torch.arange(200)), batch_size=32)
    val = DataLoader(TensorDataset(x_val, (torch.arange(50) % 5 == 0).long(), torch.arange(50)), batch_size=32)
    model = tiny_model()
    trainer = L.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.fit(model, train, val)
    assert bool(model.model.mixture.is_fitted) and int(model.fitted_at_step) == trainer.global_step == 14


def test_fit_rows_with_a_shuffled_loader_of_the_users_fits_every_row_and_says_so_once():
    """A loader whose passes reorder the rows cannot give a fixed subset by position: every row is read."""
    from torch.utils.data import DataLoader, TensorDataset

    from dagmm_lightning import DAGMMWarning

    x = torch.rand(200, 6, generator=torch.Generator().manual_seed(0))
    train = DataLoader(
        TensorDataset(x, torch.zeros(200, dtype=torch.long), torch.arange(200)), batch_size=32, shuffle=True
    )
    model = tiny_model(fit_rows=50)
    trainer = L.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    with pytest.warns(DAGMMWarning, match="fit_rows 50: the training loader gives its rows in no fixed order") as said:
        trainer.fit(model, train)
    assert len([w for w in said if "fit_rows 50" in str(w.message)]) == 1
    assert bool(model.model.mixture.is_fitted) and model.model.rows_fitted == (0, 0) and not model.model.sampled_fit


@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid", "elu"])
def test_inference_of_a_dense_stack_equals_its_eager_layers(activation):
    """Without autograd in eval mode a stack runs as fused oneDNN layers (tanh folded into a sigmoid); the
    eager layers, run one by one, are the reference."""
    torch.manual_seed(0)
    net = mlp([118, 60, 30, 10, 1], activation, dropout=0.5).eval()
    x = torch.rand(3000, 118)
    reference = x
    for layer in net:
        reference = layer(reference)
    with torch.no_grad():
        fused = net(x)
    torch.testing.assert_close(fused, reference.detach(), rtol=0, atol=1e-6)
    assert (getattr(net, "_plans", None) is not None) == (activation != "elu" and FUSED_LINEAR is not None)


@pytest.mark.parametrize("members", [1, 3])
def test_rows_of_the_wrong_width_are_named_in_inference_and_in_training(members):
    net = mlp([7, 20, 2], "tanh", members=members).eval()
    for x in (torch.randn(3, 8), torch.randn(7)):  # had, fused: oneDNN's 'could not create a primitive descriptor'
        shape = r"\(N, 7\)" + (r" or \(members, N, 7\)" if members > 1 else "")
        with pytest.raises(ValueError, match=rf"the network takes rows of 7 features, {shape}; got x of shape"):
            with torch.no_grad():
                net(x)
        with pytest.raises(ValueError, match="takes rows of 7 features"):
            net.train()(x)
        net.eval()


def test_fused_inference_follows_every_change_of_the_weights():
    torch.manual_seed(0)
    net = mlp([6, 5, 3], "tanh")
    x = torch.rand(40, 6)
    optimizer = torch.optim.Adam(net.parameters(), lr=0.1)
    for _ in range(2):  # an optimiser step, then a loaded state: both reach the fused layers
        net.train()
        optimizer.zero_grad()
        net(x).square().sum().backward()
        optimizer.step()
        net.eval()
        with torch.inference_mode():
            torch.testing.assert_close(net(x), nn.Sequential.forward(net, x), rtol=0, atol=1e-6)
    net.load_state_dict({k: v + 1 for k, v in net.state_dict().items()})
    with torch.no_grad():
        torch.testing.assert_close(net(x), nn.Sequential.forward(net, x), rtol=0, atol=1e-6)


def test_fused_inference_of_an_ensemble_equals_its_eager_members():
    torch.manual_seed(0)
    net = mlp([20, 8, 3], "tanh", dropout=0.5, members=3).eval()
    for x in (torch.rand(50, 20), torch.rand(3, 50, 20)):  # one input for every member, or one each
        with torch.inference_mode():
            fused = net(x)
        torch.testing.assert_close(fused, nn.Sequential.forward(net, x).detach(), rtol=0, atol=1e-6)
    assert fused.shape == (3, 50, 3) and (net._plans is not None) == (FUSED_LINEAR is not None)


def test_fused_inference_steps_aside_for_a_training_dropout_and_for_autocast():
    torch.manual_seed(0)
    net = mlp([6, 5, 3], "tanh", dropout=0.5).eval()
    x = torch.rand(40, 6)
    net[2].train()  # Monte Carlo dropout: the stack's dropout layer stays on
    with torch.no_grad():
        torch.manual_seed(1)
        sampled = net(x)
        torch.manual_seed(1)
        assert torch.equal(sampled, nn.Sequential.forward(net, x))
    net[2].eval()
    with torch.no_grad():
        assert not torch.allclose(sampled, net(x))
        with torch.autocast("cpu", dtype=torch.bfloat16):  # the eager layers compute in bfloat16
            assert net(x).dtype == torch.bfloat16


def test_the_sanity_fits_first_batches_count_the_rows_a_mixture_is_fitted_on():
    from dagmm_lightning.labels import KNOWN_NORMAL, LABELLED_ANOMALY
    from dagmm_lightning.models.dagmm import FirstBatches

    labels = [LABELLED_ANOMALY] * 16 + [KNOWN_NORMAL] * 16 + [KNOWN_NORMAL] * 16  # anomalies first, as a file may
    batches = [(torch.zeros(8, 2), torch.tensor(labels[i : i + 8]), torch.arange(i, i + 8)) for i in range(0, 48, 8)]
    first = FirstBatches(batches, 10)
    assert [int(b[2][0]) for b in first] == [0, 8, 16, 24] and first.cut  # 16 fitted rows: 8 would be too few
    whole = FirstBatches(batches, 100)
    assert len(list(whole)) == 6 and not whole.cut


def test_package_terms_are_the_terms_the_packages_own_variants_compute():
    # a term outside PACKAGE_TERMS is named as a variant's own in a non-finite loss's message
    from dagmm_lightning.models import DAGMMVAE, DAGMMVQVAE
    from dagmm_lightning.models.dagmm import PACKAGE_TERMS

    x, computed = torch.rand(32, 6), set()
    labels = {  # training labels: 1 labelled anomaly (mixed_loss's anomaly term); PU's 0 labelled normal, -1 not
        DAGMM: torch.cat([torch.ones(4), torch.zeros(28)]),
        DAGMMVAE: torch.zeros(32),
        DAGMMVQVAE: torch.zeros(32),
        DAGMMPU: torch.cat([torch.zeros(16), -torch.ones(16)]),
    }
    for cls, y in labels.items():
        model = cls(input_dim=6, hidden_dims=(5,), latent_dim=1, n_components=2)
        model.model.fit([x])  # (PU's classifier reads the fitted mixture's energy)
        model.train()
        model._check_finite = lambda loss, terms: computed.update(terms)
        model.training_step((x, y, torch.arange(32)), 0)
    assert computed == PACKAGE_TERMS


def test_with_the_error_feature_one_sided_labelled_anomalies_train_and_rows_score_on_the_one_sided_energy():
    torch.manual_seed(0)
    model = DAGMM(input_dim=5, hidden_dims=(8,), latent_dim=2, error_feature=True, n_components=2)
    x, fit = torch.randn(40, 5), torch.arange(40) < 30  # the last 10 rows labelled as anomalies
    out = model.model.train()(x, fit_mask=fit)
    two_sided = model.model.mixture.energy(out.rows, out.params)
    one_sided = model.model.mixture.energy(out.rows, out.params, one_sided_last=True)
    assert (one_sided[~fit] < two_sided[~fit]).any()  # (some of them raised, so the check below can fail)
    np.testing.assert_array_equal(out.energy[fit].detach(), two_sided[fit].detach())  # the density term: as it is
    np.testing.assert_allclose(out.energy[~fit].detach(), one_sided[~fit].detach(), rtol=1e-12)  # as scored
    model.model.fit([x[:30]])
    with torch.no_grad():
        rows = model.model.eval()(x).rows
        np.testing.assert_array_equal(model.model(x).energy, model.model.mixture.energy(rows, one_sided_last=True))
        model.model.one_sided_error = False  # the option off: the energy as it is
        np.testing.assert_array_equal(model.model(x).energy, model.model.mixture.energy(rows))


def test_the_plain_model_fits_a_tensor_or_tensordataset_loader_and_refuses_what_it_would_misread():
    model = tiny_model(dropout=0.2).model
    x = torch.randn(300, 6)
    reference = model.fit([x])
    for given in (x, torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x), batch_size=100)):
        torch.testing.assert_close(model.fit(given), reference)  # had: row by row ('x of shape (6,)'), or 'list'.to
    labelled = torch.utils.data.TensorDataset(x, torch.zeros(300), torch.arange(300))
    with pytest.raises(DataError, match=r"a batch was a list of 3 .*TrainingRows\(loader\)"):
        model.fit(torch.utils.data.DataLoader(labelled, batch_size=100))  # its labelled anomalies would be fitted
    assert model.training  # fit keeps the mode it found: in training mode the forward pass fits the batch
    with pytest.raises(ConfigurationError, match=r"score takes the output of a model in eval mode"):
        model.score(model(x))  # had: scored under the batch's own fit, with dropout
    model.eval()
    with torch.no_grad():
        scores = model.score(model(x))
        torch.testing.assert_close(scores, reference)  # the training rows' scores, as fitted
        torch.testing.assert_close(model.score(model(x.double())), scores)  # float64 rows: as float32


def test_the_readmes_loop_of_ones_own_trains_the_plain_model_to_flag_rows_off_the_data():
    """README, 'A loop of your own (no Lightning)': its code block, run as written there."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme[readme.index("### A loop of your own (no Lightning)") :]
    code = section[
        section.index("```python\n") + len("```python\n") : section.index("\n```", section.index("```python"))
    ]
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 (the project's own README)
    model, x, new_rows, flagged = (scope[name] for name in ("model", "x", "new_rows", "flagged"))
    with torch.no_grad():
        scores, training_scores = model.score(model(new_rows)), model.score(model(x))
    threshold = float(model.calibration.threshold)
    assert threshold == pytest.approx(np.quantile(training_scores.numpy(), 0.9), rel=1e-6)
    assert flagged[95:].all() and torch.equal(flagged, scores > threshold)  # the rows off the data's line
    assert roc_auc_score([0] * 95 + [1] * 5, scores.numpy()) > 0.95


def test_an_estimation_network_of_another_width_than_the_mixture_rows_is_named():
    module = tiny_model(error_feature=True)  # rows: latent 1 + 2 + the error: 4 columns
    model = module.model
    model.estimation = EstimationNetwork(3, [4], 2)  # built for latent + 2 by hand
    with pytest.raises(
        ConfigurationError, match=r"the estimation network takes mixture rows of 3 columns .*input_dim 4"
    ):
        model(torch.rand(8, 6))  # had: 'the network takes rows of 3 features', read as the data's 6


def test_the_plain_models_fit_reads_a_shuffled_loaders_rows_as_unordered():
    from dagmm_lightning.networks.dagmm import XBatches

    x = torch.randn(300, 6)
    shuffled = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x), batch_size=50, shuffle=True)
    assert not XBatches(shuffled).ordered and XBatches(x).ordered  # (review: a subset by position would be
    model = tiny_model(fit_rows=100).model  # another subset at each pass)
    model.fit(shuffled)
    assert model.rows_fitted == (0, 0) and not model.sampled_fit  # every row, one pass each
