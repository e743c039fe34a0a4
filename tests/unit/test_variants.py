import math

import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from scipy.stats import laplace

from dagmm_lightning.losses import gaussian_kl
from dagmm_lightning.mixture import LaplaceMixtureEnergy
from dagmm_lightning.models import DAGMM, DAGMMPU, DAGMMVAE, DAGMMVQVAE
from dagmm_lightning.networks import Autoencoder, Compressed, DAGMMModel, VectorQuantizer, code_usage

# --- VAE --------------------------------------------------------------------------------------------


def test_kl_term_equals_closed_form_against_numerical_integration():
    mean, log_var = np.array([[0.3, -1.2]]), np.array([[-0.5, 0.7]])
    ours = gaussian_kl(torch.tensor(mean), torch.tensor(log_var)).item()
    grid = np.linspace(-15, 15, 200_001)
    total = 0.0
    for m, lv in zip(mean[0], log_var[0], strict=True):
        s = np.exp(0.5 * lv)
        q = np.exp(-0.5 * ((grid - m) / s) ** 2) / (s * np.sqrt(2 * np.pi))
        p = np.exp(-0.5 * grid**2) / np.sqrt(2 * np.pi)
        total += np.trapezoid(q * (np.log(q) - np.log(p)), grid)
    assert ours == pytest.approx(total, rel=1e-6)


def test_vae_samples_in_training_and_uses_the_mean_in_eval():
    torch.manual_seed(0)
    model = DAGMMVAE(input_dim=6, hidden_dims=(5,), latent_dim=2, n_components=2, beta=0.5, dropout=0.0)
    x = torch.rand(10, 6)
    compression = model.model.compression
    model.train()
    a, b = compression(x), compression(x)
    assert not torch.equal(a.z, b.z)
    mean, log_var = compression.encoder(x).split(2, dim=1)
    assert a.losses["kl"].item() == pytest.approx(0.5 * gaussian_kl(mean, log_var).mean().item(), rel=1e-6)
    model.eval()
    c, d = compression(x), compression(x)
    assert torch.equal(c.z, d.z) and torch.equal(c.z, mean) and c.losses == {}


def test_calibrated_vae_weighs_its_kl_by_twice_the_normal_rows_mean_squared_error():
    model = DAGMMVAE(input_dim=6, hidden_dims=(5,), latent_dim=2, n_components=2, beta=0.5, calibrated_decoder=True)
    x = torch.rand(10, 6, dtype=torch.float64)
    x[:3] += 5.0  # far rows, labelled as anomalies below
    labelled = torch.arange(10) < 3
    network = model.model.double().train()
    for anomalies in (None, labelled):
        torch.manual_seed(1)
        out = network(x)
        terms = model.training_terms(out, torch.zeros(10), anomalies)
        mean, log_var = (part.detach().numpy() for part in network.compression.encoder(x).split(2, dim=1))
        torch.manual_seed(1)  # the same sample: the reconstruction out.x_hat came from
        noise = torch.randn(10, 2, dtype=torch.float64).numpy()
        x_hat = network.compression.decoder(torch.from_numpy(mean + noise * np.exp(0.5 * log_var))).detach().numpy()
        assert np.allclose(x_hat, out.x_hat.detach().numpy())
        normal = slice(None) if anomalies is None else ~labelled.numpy()
        variance = np.mean((x.numpy()[normal] - x_hat[normal]) ** 2)  # sigma^2 at its maximum likelihood
        kl = 0.5 * np.sum(mean**2 + np.exp(log_var) - 1.0 - log_var, axis=1).mean()
        assert terms["kl"].item() == pytest.approx(0.5 * 2 * variance * kl, rel=1e-9)
    network.zero_grad()
    terms["kl"].backward()  # sigma^2 is a weight, no path of its own to the decoder
    assert all(p.grad is None or not p.grad.any() for p in network.compression.decoder.parameters())


def test_the_uncalibrated_vaes_latent_collapses_on_scaled_rows_and_the_calibrated_ones_does_not():
    g = np.random.default_rng(0)
    t = g.normal(size=(256, 1))  # three features along one direction, min-max scaled
    x = np.hstack([t, 0.5 * t + 0.1 * g.normal(size=(256, 1)), -t + 0.1 * g.normal(size=(256, 1))])
    x = torch.tensor((x - x.min(0)) / np.ptp(x, axis=0), dtype=torch.float32)
    for seed in (0, 1):
        spread, error = {}, {}
        for calibrated in (False, True):
            torch.manual_seed(seed)
            model = DAGMMVAE(
                input_dim=3, hidden_dims=(8,), latent_dim=2, n_components=1, lambda_energy=0.0, lambda_cov=0.0,
                dropout=0.0, calibrated_decoder=calibrated,
            )  # fmt: skip
            optimiser = torch.optim.Adam(model.parameters(), lr=0.01)
            for _ in range(800):  # DAGMM's reconstruction term and the VAE's KL
                terms = model.training_terms(model.model(x), torch.zeros(256), None)
                optimiser.zero_grad()
                (terms["reconstruction"] + terms["kl"]).backward()
                optimiser.step()
            with torch.no_grad():
                out = model.model.eval().represent(x, memberships=False)  # (no mixture fitted: no energy)
            spread[calibrated] = float(out.z.std(0).max())
            error[calibrated] = float(out.error.mean())
        total_variance = float(x.var(0, unbiased=False).sum())  # the error of reconstructing every row as the mean
        assert spread[False] < 0.01 and error[False] > 0.95 * total_variance  # posterior collapse
        assert spread[True] > 0.5 and error[True] < 0.05 * total_variance


# --- VQ-VAE -----------------------------------------------------------------------------------------


def test_vq_terms_equal_hand_computation_and_straight_through_reaches_encoder():
    quantizer = VectorQuantizer(codebook_size=2, code_dim=1, beta=0.25, restart_dead_codes=False)
    with torch.no_grad():
        quantizer.codebook.copy_(torch.tensor([[0.0], [1.0]]))
    quantizer.eval()
    z_e = torch.tensor([[0.2], [0.9], [0.6]], requires_grad=True)
    z_q, codes, losses = quantizer(z_e)
    assert codes.tolist() == [0, 1, 1]
    assert z_q.detach().flatten().tolist() == [0.0, 1.0, 1.0]
    # codes e = 0, 1, 1: squared distances 0.04, 0.01, 0.16, mean 0.07
    assert losses["codebook"].item() == pytest.approx(0.07)
    assert losses["commitment"].item() == pytest.approx(0.25 * 0.07)
    (z_q.sum() * 2.0).backward()  # straight-through: d z_q / d z_e = identity
    assert torch.equal(z_e.grad, torch.full_like(z_e, 2.0))


def test_vq_encoder_gets_gradients_through_the_dagmm_objective():
    torch.manual_seed(0)
    model = DAGMMVQVAE(input_dim=6, hidden_dims=(5,), latent_dim=1, n_components=2, codebook_size=4, dropout=0.0)
    loss = model.training_step((torch.rand(32, 6), torch.zeros(32), torch.arange(32)), 0)
    loss.backward()
    first = model.model.compression.autoencoder.encoder[0].weight.grad
    assert first is not None and first.abs().sum() > 0
    assert model.model.compression.quantizer.codebook.grad.abs().sum() > 0


def test_a_continuous_latent_gives_the_mixture_the_encoders_output_and_the_decoder_the_code():
    torch.manual_seed(0)
    x = torch.rand(16, 6)
    for continuous in (False, True):
        model = DAGMMVQVAE(
            input_dim=6, hidden_dims=(5,), latent_dim=2, n_components=2, codebook_size=4, continuous_latent=continuous
        )
        network = model.model.eval()
        compression = network.compression
        z_e = compression.autoencoder.encoder(x)
        codebook = compression.quantizer.codebook.detach()
        nearest = torch.cdist(z_e, codebook).argmin(1)  # the code of each row, computed here
        out = network.represent(x, memberships=False)
        assert torch.equal(out.codes, nearest)
        assert torch.allclose(out.z, z_e if continuous else codebook[nearest])
        assert torch.allclose(out.x_hat, compression.autoencoder.decoder(codebook[nearest]))  # the code, either way
        assert network.penalty_dims == (None if continuous else slice(2, None))  # no discrete dimension to skip


def test_dead_codes_are_restarted_and_usage_is_measured():
    quantizer = VectorQuantizer(codebook_size=4, code_dim=1, restart_dead_codes=True)
    with torch.no_grad():
        quantizer.codebook.copy_(torch.tensor([[0.0], [100.0], [200.0], [300.0]]))
    z_e = torch.rand(64, 1)
    _, codes, _ = quantizer(z_e)  # training mode: every row picks code 0, codes 1-3 are dead
    perplexity, dead = code_usage(codes, 4)
    assert perplexity.item() == pytest.approx(1.0) and dead.item() == 3
    assert (quantizer.codebook[1:] <= 1.0).all()  # moved onto encoder outputs


def test_ema_codebook_follows_assigned_outputs():
    quantizer = VectorQuantizer(codebook_size=2, code_dim=1, ema_decay=0.5, restart_dead_codes=False)
    with torch.no_grad():
        quantizer.codebook.copy_(torch.tensor([[0.0], [1.0]]))
        quantizer.ema_sum.copy_(quantizer.codebook)
    _, _, losses = quantizer(torch.tensor([[0.2], [0.2], [0.8]]))
    assert "codebook" not in losses
    # code 0: count 0.5 + 0.5 * 2 = 1.5, sum 0.5 * 0 + 0.5 * 0.4 = 0.2 -> 0.2 / 1.5
    assert quantizer.codebook[0].item() == pytest.approx(0.2 / 1.5)


# --- Laplace mixture --------------------------------------------------------------------------------


def test_laplace_energy_equals_scipy_reference():
    rng = np.random.default_rng(0)
    weights = np.array([0.6, 0.4])
    means, scales = rng.normal(size=(2, 3)), rng.uniform(0.2, 2.0, size=(2, 3))
    z = rng.normal(size=(40, 3)) * 2
    mixture = LaplaceMixtureEnergy(2, 3, jitter=1e-12)
    params = {"weights": torch.tensor(weights), "means": torch.tensor(means), "scales": torch.tensor(scales)}
    ours = mixture.energy(torch.tensor(z), params).numpy()
    log_p = np.stack([laplace(means[k], scales[k]).logpdf(z).sum(1) + np.log(weights[k]) for k in range(2)], 1)
    np.testing.assert_allclose(ours, -logsumexp(log_p, axis=1), rtol=1e-12)


def test_laplace_batch_parameters_follow_the_seed():
    rng = np.random.default_rng(1)
    z, gamma = rng.normal(size=(30, 2)), rng.dirichlet(np.ones(2), size=30)
    params = LaplaceMixtureEnergy(2, 2, jitter=1e-12).batch_parameters(torch.tensor(z), torch.tensor(gamma))
    for k in range(2):
        g = gamma[:, k]
        mu = (g[:, None] * z).sum(0) / g.sum()
        np.testing.assert_allclose(params["means"][k], mu)
        np.testing.assert_allclose(params["scales"][k], (g[:, None] * np.abs(z - mu)).sum(0) / g.sum())
        assert params["weights"][k].item() == pytest.approx(g.mean())


@pytest.mark.parametrize("batch_size", [1, 13, 300])
def test_laplace_training_set_fit_is_independent_of_batch_size(batch_size):
    rng = np.random.default_rng(2)
    z = torch.tensor(rng.normal(size=(300, 3)))
    gamma = torch.tensor(rng.dirichlet(np.ones(3), size=300))
    reference = LaplaceMixtureEnergy(3, 3).batch_parameters(z, gamma)
    mixture = LaplaceMixtureEnergy(3, 3)
    mixture.fit([(z[s : s + batch_size], gamma[s : s + batch_size]) for s in range(0, 300, batch_size)])
    assert bool(mixture.is_fitted)
    for name in mixture.parameter_names:
        torch.testing.assert_close(getattr(mixture, name), reference[name], rtol=1e-10, atol=1e-12)


def test_pu_classifier_sees_in_training_what_it_is_scored_on():
    torch.manual_seed(0)
    model = DAGMMPU(input_dim=6, hidden_dims=(5,), latent_dim=1, n_components=2, dropout=0.0).model
    x = torch.rand(64, 6)
    model.fit([x])  # the training set's mixture, as scoring uses it
    batch = x[:16]
    model.train()
    trained_on = model.labelled_logit(model(batch))  # a batch's own mixture fit
    model.eval()
    scored_on = model.labelled_logit(model(batch))
    torch.testing.assert_close(trained_on, scored_on)


def test_pu_c_is_the_mean_h_of_the_labelled_rows_and_none_of_them_is_an_error():
    torch.manual_seed(0)
    model = DAGMMPU(input_dim=6, hidden_dims=(5,), latent_dim=1, n_components=2, dropout=0.0).model
    x, labelled = torch.rand(64, 6), torch.rand(20, 6)
    model.fit([x], [labelled[:7], labelled[7:]])
    model.eval()
    with torch.no_grad():
        h = 1 - model.score(model(labelled))  # what the threshold 1 - c / 2 is compared with: the scores' own h
    assert float(model.c) == pytest.approx(float(h.mean()), rel=1e-13)  # had: a float32 h, 1e-10 off
    assert float(model.calibration.threshold) == pytest.approx(1 - float(model.c) / 2)
    with pytest.raises(ValueError, match="labelled_batches held no row"):  # had: c NaN, no row ever flagged
        model.fit([x], [])


class OwnCompression(DAGMM):
    def build_compression(self):
        hp = self.hparams
        return Autoencoder(hp.input_dim, hp.hidden_dims, hp.latent_dim)  # no members axis


class OwnEnsembleCompression(OwnCompression):
    ensembles = True

    def build_compression(self):
        hp = self.hparams
        return Autoencoder(hp.input_dim, hp.hidden_dims, hp.latent_dim, members=hp.members)


def test_a_subclass_with_its_own_compression_says_whether_it_ensembles():
    sizes = dict(input_dim=6, hidden_dims=(4,), latent_dim=1, n_components=2)
    with pytest.raises(ValueError, match="members 2: OwnCompression builds its own compression network"):
        OwnCompression(**sizes, members=2)  # had: a shape error in the first training step
    assert OwnCompression(**sizes).hparams.members == 1
    model = OwnEnsembleCompression(**sizes, members=2)  # says so: built
    out = model.model(torch.rand(5, 6))
    assert out.energy.shape == (2, 5)


class ErrorScoredNetwork(DAGMMModel):
    def score(self, out):  # the reconstruction error alone
        return out.error.double()


class ErrorScored(DAGMM):
    model_class = ErrorScoredNetwork


def test_a_variant_scores_through_its_networks_score_threshold_included():
    torch.manual_seed(0)
    model = ErrorScored(input_dim=6, hidden_dims=(5,), latent_dim=1, n_components=2, contamination=0.1)
    x = torch.rand(64, 6)
    model.model.fit([x[:32], x[32:]])
    model.eval()
    with torch.no_grad():
        error = ((x - model.model.compression(x).x_hat) ** 2).sum(1).double()
        torch.testing.assert_close(model.score(x), error, rtol=1e-5, atol=0)  # (float32 sums)
        step = model.validation_step((x, torch.zeros(64), torch.arange(64)), 0)["score"]  # as validate and test
        torch.testing.assert_close(step, error, rtol=1e-5, atol=0)
    # had: the quantile of the calibration's (energy) scores, beside error scores
    assert not model.score_is_energy and DAGMM(input_dim=6).score_is_energy  # its energy's ROC AUC logged beside
    assert float(model.model.calibration.threshold) == pytest.approx(float(np.quantile(error.numpy(), 0.9)), rel=1e-5)
    with pytest.raises(TypeError, match=r"Flipped overrides DAGMM.score, which the steps and the threshold do not all"):

        class Flipped(DAGMM):  # had: the detector's scores flipped, the CLI's not
            def score(self, x):
                return -super().score(x)


class ColumnScoredNetwork(DAGMMModel):
    def score(self, out):  # one column, not one number per row
        return out.error.double()[:, None]


class ColumnScored(DAGMM):
    model_class = ColumnScoredNetwork


class StaticScoredNetwork(DAGMMModel):
    score = staticmethod(lambda out: out.error.double())  # not wrapped: still a static method


def test_a_networks_own_score_must_give_one_number_per_row():
    model = ColumnScored(input_dim=6, hidden_dims=(5,), latent_dim=1, n_components=2, contamination=0.1)
    x = torch.rand(64, 6)
    message = r"ColumnScoredNetwork.score must give one score per row, a tensor \(32,\); it gave shape \(32, 1\)"
    with pytest.raises(ValueError, match=message):  # had: trained and validated, then predict's table broke
        model.model.fit([x[:32], x[32:]])
    model.model.eval()
    out = model.model(x)
    assert ErrorScoredNetwork.score(model.model, out).shape == (64,)  # one per row: as before
    assert StaticScoredNetwork.score(out).shape == (64,)  # (had: the wrapper passed it self too)


class PartlyNaNScoredNetwork(DAGMMModel):
    def score(self, out):  # every 7th row NaN: a slip in a score of one's own
        scores = out.error.double().clone()
        scores[::7] = math.nan
        return scores


class PartlyNaNScored(DAGMM):
    model_class = PartlyNaNScoredNetwork


def test_a_networks_own_score_must_be_finite():
    model = PartlyNaNScored(input_dim=6, hidden_dims=(5,), latent_dim=1, n_components=2, contamination=0.1)
    message = r"PartlyNaNScoredNetwork.score gave NaN for 10 of the 64 rows scored for the threshold: scores must be"
    with pytest.raises(FloatingPointError, match=message):  # had: a NaN threshold, no row flagged, silently
        model.model.fit([torch.rand(64, 6)])


def test_a_variants_training_terms_of_another_signature_is_refused_as_its_class_is_made():
    with pytest.raises(
        TypeError, match=r"TwoArgs.training_terms\(self, out, y\) does not take \(self, out, y, labelled\)"
    ):

        class TwoArgs(DAGMM):  # had: a traceback from the first training step
            def training_terms(self, out, y):
                return {}

    class Keywords(DAGMM):  # a looser signature is fine
        def training_terms(self, out, *args, **kwargs):
            return super().training_terms(out, *args, **kwargs)

    assert Keywords(input_dim=4).hparams.input_dim == 4

    class Static(DAGMM):  # not a plain function: left to its first call (had: refused, though it works)
        training_terms = staticmethod(lambda out, y, labelled: {})

    assert Static(input_dim=4).training_terms(None, None, None) == {}


class TupleCompression(torch.nn.Module):
    def __init__(self, features, latent, width=None):
        super().__init__()
        self.encode, self.decode = torch.nn.Linear(features, latent), torch.nn.Linear(latent, width or features)

    def forward(self, x):
        z = self.encode(x)
        return z, self.decode(z)


class AsCompressed(TupleCompression):
    def forward(self, x):
        return Compressed(*super().forward(x))


class NoisyInTraining(AsCompressed):
    def forward(self, x):  # a slip in the training path only: z gains the noise as a column
        out = super().forward(x)
        if self.training:
            return Compressed(torch.cat([out.z, torch.randn(len(x), 1)], -1), out.x_hat)
        return out


def variant(build):
    return type("Mine", (DAGMM,), {"ensembles": False, "build_compression": build})


def test_a_variants_compression_mistakes_are_named_when_the_model_is_built():
    sizes = dict(input_dim=6, hidden_dims=(4,), latent_dim=2, n_components=2)
    mistakes = [
        (lambda self, features, latent: None, r"Mine.build_compression failed: TypeError: .*missing 2 required"),
        (lambda self: "net", r"Mine.build_compression must return an nn.Module, got <class 'str'>"),
        (
            lambda self: TupleCompression(6, 2),
            r"Mine's compression network must return Compressed\(z, x_hat\) .* tuple",
        ),
        (
            lambda self: AsCompressed(6, 2, width=5),
            r"gives x_hat of shape \(2, 5\) in eval mode for rows of shape \(2, 6\); expected \(2, 6\)",
        ),
        (lambda self: AsCompressed(5, 2), r"Mine's compression network fails in eval mode on rows of shape \(2, 6\)"),
        (
            lambda self: NoisyInTraining(6, 2),
            r"gives z of shape \(2, 3\) in training mode for rows .* expected \(2, 2\)",
        ),
    ]
    for build, message in mistakes:  # had: errors from inside torch in the first training step
        with pytest.raises(ValueError, match=message):
            variant(build)(**sizes)
    model = variant(lambda self: AsCompressed(6, 2))(**sizes)
    assert model.model.compression.training  # the check ran it in eval mode and left it as it was


def test_a_training_term_that_is_not_one_number_is_named():
    class Rowwise(DAGMM):
        def training_terms(self, out, y, labelled):
            return {**super().training_terms(out, y, labelled), "spread": out.z.square()}  # (N, 1), not summed

    model = Rowwise(input_dim=6, hidden_dims=(4,), latent_dim=1, n_components=2)
    x = torch.rand(8, 6)
    with pytest.raises(
        ValueError, match=r"training_terms must give each term as one number .*'spread': shape \(8, 1\)"
    ):
        model._loss(x, torch.zeros(8), None)  # had: 'stack expects each tensor to be equal size'

    class Listed(DAGMM):
        def training_terms(self, out, y, labelled):
            return list(super().training_terms(out, y, labelled).values())

    model = Listed(input_dim=6, hidden_dims=(4,), latent_dim=1, n_components=2)
    with pytest.raises(ValueError, match=r"training_terms must give a dict of the batch's weighted terms .* got list"):
        model._loss(x, torch.zeros(8), None)  # had: AttributeError: 'list' object has no attribute 'items'


def test_a_model_class_that_is_not_a_network_is_refused_as_its_variant_is_made():
    with pytest.raises(
        TypeError, match=r"NotANetwork.model_class must be a subclass of DAGMMModel .* got <class 'str'>"
    ):

        class NotANetwork(DAGMM):  # had: AttributeError ... 'mask_inputs' from the first setup
            model_class = str


@pytest.mark.parametrize(
    "model_class, flag",
    [
        (DAGMM, "error_feature"),
        (DAGMM, "energy_trains_compression"),
        (DAGMM, "one_sided_error"),
        (DAGMM, "compile"),
        (DAGMMVAE, "calibrated_decoder"),
        (DAGMMVQVAE, "continuous_latent"),
        (DAGMMVQVAE, "restart_dead_codes"),
    ],
)
def test_a_switch_given_as_text_or_a_number_is_refused_not_read_as_true(model_class, flag):
    # ("false" is truthy: it had switched the option on)
    for value in ("false", 0, None):
        with pytest.raises(ValueError, match=rf"{flag} must be True or False, got {value!r}"):
            model_class(4, hidden_dims=(4,), latent_dim=2, **{flag: value})
    model = model_class(4, hidden_dims=(4,), latent_dim=2, **{flag: np.bool_(False)})
    assert type(model.hparams[flag]) is bool and model.hparams[flag] is False  # (numpy's: an unsafe checkpoint)
    assert type(model.hparams_initial[flag]) is bool
