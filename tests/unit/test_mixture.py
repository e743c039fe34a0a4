import itertools
import math

import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from dagmm_lightning.errors import NotFittedError
from dagmm_lightning.mixture import (
    GaussianMixtureEnergy,
    LaplaceMixtureEnergy,
    MixedFamilyEnergy,
    build_mixture,
    cholesky_with_jitter,
    padded_memberships,
)


def random_params(rng, k, d):
    weights = rng.dirichlet(np.ones(k))
    means = rng.normal(size=(k, d))
    a = rng.normal(size=(k, d, d))
    covs = a @ a.transpose(0, 2, 1) + 0.1 * np.eye(d)
    return weights, means, covs


def scipy_energy(z, weights, means, covs):
    log_p = np.stack([multivariate_normal(means[k], covs[k]).logpdf(z) for k in range(len(weights))], axis=1)
    return -logsumexp(log_p + np.log(weights), axis=1)


def as_params(mixture, weights, means, covs):
    cov = torch.tensor(covs)
    return {
        "weights": torch.tensor(weights),
        "means": torch.tensor(means),
        "covariances": cov,
        "scale_tril": torch.linalg.cholesky(cov),
    }


def test_energy_matches_scipy():
    rng = np.random.default_rng(0)
    weights, means, covs = random_params(rng, 3, 4)
    z = rng.normal(size=(50, 4)) * 2
    mixture = GaussianMixtureEnergy(3, 4, jitter=1e-12)
    ours = mixture.energy(torch.tensor(z), as_params(mixture, weights, means, covs)).numpy()
    np.testing.assert_allclose(ours, scipy_energy(z, weights, means, covs), rtol=1e-10, atol=1e-10)


def test_energy_near_singular_covariance_matches_scipy_and_is_finite():
    # One direction with variance 1e-9: a collapsed latent axis. Scipy gets the same matrix.
    rng = np.random.default_rng(1)
    d = 3
    basis, _ = np.linalg.qr(rng.normal(size=(d, d)))
    covs = np.stack([basis @ np.diag([1.0, 0.5, 1e-9]) @ basis.T, np.eye(d)])
    weights, means = np.array([0.7, 0.3]), rng.normal(size=(2, d))
    z = means[0] + rng.normal(size=(20, d)) @ np.diag([1.0, 0.5, 0.0]) @ basis.T
    mixture = GaussianMixtureEnergy(2, d, jitter=1e-12)
    ours = mixture.energy(torch.tensor(z), as_params(mixture, weights, means, covs)).numpy()
    assert np.isfinite(ours).all()
    np.testing.assert_allclose(ours, scipy_energy(z, weights, means, covs), rtol=1e-6)


def test_float32_energy_keeps_its_digits_far_from_the_origin():
    # rows and means near 1000 with standard deviations ~1e-3: L^-1 z - L^-1 mu cancels ~6 of float32's 7
    # digits (energy errors ~0.3); the differences z - mu first are exact for rows this close to a mean
    rng = np.random.default_rng(3)
    d, k = 3, 2
    means = torch.tensor(1000.0 + rng.normal(size=(k, d)), dtype=torch.float32)
    scale_tril = torch.linalg.cholesky(torch.tensor(np.stack([np.diag(rng.uniform(0.5, 2.0, d)) * 1e-6] * k))).float()
    weights = torch.tensor([0.6, 0.4], dtype=torch.float32)
    z = means[0] + torch.tensor(rng.normal(size=(200, d)) * 1e-3, dtype=torch.float32)
    params = {"weights": weights, "means": means, "scale_tril": scale_tril}
    ours = GaussianMixtureEnergy(k, d, jitter=1e-12, dtype="float32").energy(z, params).double().numpy()
    tril = scale_tril.double().numpy()  # scipy on exactly the float32 values, in float64
    covs = tril @ tril.transpose(0, 2, 1)
    exact = scipy_energy(z.double().numpy(), weights.double().numpy(), means.double().numpy(), covs)
    np.testing.assert_allclose(ours, exact, atol=1e-3)


def test_batch_parameters_match_hand_computation():
    rng = np.random.default_rng(2)
    z = rng.normal(size=(40, 3))
    gamma = rng.dirichlet(np.ones(2), size=40)
    mixture = GaussianMixtureEnergy(2, 3, jitter=1e-6)
    params = mixture.batch_parameters(torch.tensor(z), torch.tensor(gamma))
    for k in range(2):
        g = gamma[:, k]
        mu = (g[:, None] * z).sum(0) / g.sum()
        cov = ((z - mu).T * g) @ (z - mu) / g.sum() + 1e-6 * np.eye(3)
        np.testing.assert_allclose(params["weights"][k].item(), g.mean())
        np.testing.assert_allclose(params["means"][k].numpy(), mu, rtol=1e-12)
        np.testing.assert_allclose(params["covariances"][k].numpy(), cov, rtol=1e-10, atol=1e-14)
    expected_penalty = sum((1 / np.diag(params["covariances"][k].numpy())).sum() for k in range(2))
    np.testing.assert_allclose(mixture.penalty(params).item(), expected_penalty)


@pytest.mark.parametrize("batch_size", [1, 7, 64, 1000])
def test_training_set_fit_is_independent_of_batch_size(batch_size):
    rng = np.random.default_rng(3)
    z = torch.tensor(rng.normal(size=(300, 3)) + 5.0)
    gamma = torch.tensor(rng.dirichlet(np.ones(4), size=300))
    full = GaussianMixtureEnergy(4, 3, jitter=1e-6).batch_parameters(z, gamma)  # all rows as one batch
    batched = GaussianMixtureEnergy(4, 3, jitter=1e-6)
    batched.fit([(z[s : s + batch_size], gamma[s : s + batch_size]) for s in range(0, 300, batch_size)])
    assert bool(batched.is_fitted)
    for name in ("weights", "means", "covariances", "scale_tril"):
        torch.testing.assert_close(getattr(batched, name), full[name], rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(batched.energy(z), batched.energy(z, full))


@pytest.mark.parametrize("family", ["gaussian", "laplace", "gaussian+laplace"])
def test_sliced_parameters_and_energies_equal_one_batch_of_every_row(family):
    # re-seeding's M-step on its candidate rows: summed over 1,024-row slices (its memory had grown with
    # the table: N x K x D float64 deviations at once, 0.8 GB on 360,000 training rows)
    rng = np.random.default_rng(4)
    z = torch.tensor(rng.normal(size=(2, 2500, 3)) * [1.0, 2.0, 0.5] + 3.0)
    gamma = torch.tensor(rng.dirichlet(np.ones(4), size=(2, 2500)))
    mixture = build_mixture(family, 4, 3, 1e-4, "float64", members=2)
    whole, sliced = mixture.batch_parameters(z, gamma), mixture.sliced_parameters(z, gamma)
    assert sorted(sliced) == sorted(whole)
    for name, value in whole.items():
        torch.testing.assert_close(sliced[name], value, rtol=1e-10, atol=1e-12, msg=name)
    # scoring's energies with the training-set fit: PASS_ROWS-row slices, as every row at once
    mixture.fit([(z, gamma)])
    at_once = mixture.energy(z, mixture.fitted_parameters())  # parameters given: not sliced
    assert torch.equal(mixture.energy(z), at_once) and at_once.shape == (2, 2500)


def test_per_batch_covariance_average_would_be_wrong():
    # Two batches with different means: averaging per-batch-centred covariances drops the spread of
    # batch means, the trap DESIGN.md names; the accumulated statistics do not.
    z = torch.tensor([[0.0], [0.2], [10.0], [10.2]], dtype=torch.float64)
    gamma = torch.ones(4, 1, dtype=torch.float64)
    mixture = GaussianMixtureEnergy(1, 1, jitter=1e-12)
    mixture.fit([(z[:2], gamma[:2]), (z[2:], gamma[2:])])
    assert mixture.covariances.item() == pytest.approx(np.var([0.0, 0.2, 10.0, 10.2]))


def test_unfitted_mixture_raises_clear_error():
    with pytest.raises(NotFittedError, match="not been fitted"):
        GaussianMixtureEnergy(2, 3).energy(torch.zeros(4, 3))


def test_cholesky_jitter_rescues_singular_matrix():
    singular = torch.tensor([[[1.0, 1.0], [1.0, 1.0]]], dtype=torch.float64)
    factor = cholesky_with_jitter(singular, jitter=1e-8)
    assert torch.isfinite(factor).all()
    torch.testing.assert_close(factor @ factor.mT, singular, atol=1e-5, rtol=0)
    with pytest.raises(FloatingPointError, match="not positive definite"):
        cholesky_with_jitter(torch.full((1, 2, 2), float("nan"), dtype=torch.float64), jitter=1e-8)


@pytest.mark.parametrize("scale, dtype", [(1e7, "float64"), (1e12, "float64"), (1e6, "float32")])
def test_collinear_dimensions_of_a_large_scale_leave_a_small_one_its_own_variance(scale, dtype):
    # two columns collinear at a large scale need the Cholesky retry; the unit-variance column beside them
    # must keep its scale: an 8-sigma value there scores as such, not like a typical row (had: 0.000 apart)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=1000), rng.normal(size=1000)
    z = np.c_[x * scale, 1.1 * x * scale, y]
    mixture = build_mixture("gaussian", 1, 3, 1e-6, dtype)
    mixture.fit([(torch.tensor(z), torch.ones(1000, 1, dtype=torch.float64))])
    energy = mixture.energy(torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 8.0]], dtype=torch.float64))
    # the same rows under the covariance of (x, y): the second collinear column adds nothing
    reference = 0.5 * 64 * np.linalg.inv(np.cov(np.c_[x * scale, y].T, bias=True))[1, 1]
    assert float(energy[1] - energy[0]) == pytest.approx(reference, rel=0.03)
    factor, covariance = mixture.scale_tril[0].double(), mixture.covariances[0].double()
    # the covariances (the penalty's variances) are the matrix factored, raised where the retry raised it
    np.testing.assert_allclose(factor @ factor.T, covariance, rtol=1e-6 if dtype == "float32" else 1e-12)  # had: 1e-6


def test_collapsed_batch_gives_finite_energy_penalty_and_gradients():
    # All rows identical: zero covariance, the jitter keeps everything finite.
    z = torch.ones(16, 3, dtype=torch.float32, requires_grad=True)
    logits = torch.zeros(16, 2, requires_grad=True)
    mixture = GaussianMixtureEnergy(2, 3, jitter=1e-6, dtype="float64")
    params = mixture.batch_parameters(z, torch.softmax(logits, 1))
    loss = mixture.energy(z, params).mean() + 0.005 * mixture.penalty(params)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(z.grad).all() and torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("family", [GaussianMixtureEnergy, LaplaceMixtureEnergy])
@pytest.mark.parametrize("gap", [90.0, 100.0, 120.0])
def test_a_component_the_softmax_leaves_empty_keeps_every_gradient_finite(family, gap):
    # float32 memberships of a component whose logit trails by `gap`: about 1e-39 (a subnormal), 4e-44, and
    # exactly 0; had: a finite loss with NaN gradients (1 / mass times the penalty's 1 / jitter^2 overflowed)
    torch.manual_seed(0)
    z = torch.randn(64, 3, requires_grad=True)
    logits = torch.randn(64, 3).mul(0.1).sub(torch.tensor([0.0, 0.0, gap])).requires_grad_()
    mixture = family(3, 3, jitter=1e-6, dtype="float64")
    params = mixture.batch_parameters(z, torch.softmax(logits, 1))
    loss = 0.1 * mixture.energy(z, params).mean() + 0.005 * mixture.penalty(params)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(z.grad).all() and torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("family", [GaussianMixtureEnergy, LaplaceMixtureEnergy])
def test_a_component_below_the_empty_mass_is_empty_in_every_fit(family):
    """Mass sum_i gamma_ik under 1e-20: mean 0 and the jitter's spread, as a component of mass 0, in a batch's
    fit, the training-set fit and an EM step (had: its mean first / 1e-20, a fraction of the rows' mean,
    and in EM a recentred spread that was neither the rows' nor the jitter's)."""
    torch.manual_seed(0)
    z = torch.randn(2000, 2, dtype=torch.float64) * 0.3 + torch.tensor([0.0, 20.0], dtype=torch.float64)
    gamma = torch.stack([torch.ones(2000), torch.full((2000,), 2e-24)], 1).double()  # mass 4e-21
    jitter = 1e-6
    spread = "covariances" if family is GaussianMixtureEnergy else "scales"
    empty_spread = (
        jitter * torch.eye(2, dtype=torch.float64)
        if spread == "covariances"
        else torch.full((2,), jitter, dtype=torch.float64)
    )
    mixture = family(2, 2, jitter=jitter, dtype="float64")
    for params in (mixture.batch_parameters(z, gamma), None):
        if params is None:
            mixture.fit([(z, gamma)])
            params = mixture.fitted_parameters()
        assert params["means"][1].tolist() == [0.0, 0.0]
        torch.testing.assert_close(params[spread][1], empty_spread.double(), rtol=1e-12, atol=0)
    # an EM step whose memberships leave component 2 a mass of about 1e-21: empty after it
    weight = math.exp(-34 if spread == "covariances" else -50)  # (the Laplacian's tails reach further)
    mixture.weights.copy_(torch.tensor([1 - weight, weight], dtype=torch.float64))
    mixture.means.copy_(torch.tensor([[0.0, 20.0], [-5.0, 15.0]], dtype=torch.float64))
    if spread == "covariances":
        cov = torch.stack([0.09 * torch.eye(2), torch.eye(2)]).double()
        mixture.covariances.copy_(cov)
        mixture.scale_tril.copy_(torch.linalg.cholesky(cov))
    else:
        mixture.scales.copy_(torch.tensor([[0.3, 0.3], [1.0, 1.0]], dtype=torch.float64))
    mixture.em_step([z])
    assert 0 < float(mixture.weights[1]) * 2000 < 1e-20 and mixture.means[1].tolist() == [0.0, 0.0]
    torch.testing.assert_close(getattr(mixture, spread)[1], empty_spread.double(), rtol=1e-12, atol=0)


def test_mixture_runs_in_its_own_dtype_under_half_precision_inputs():
    rng = np.random.default_rng(4)
    z = torch.tensor(rng.normal(size=(64, 3)), dtype=torch.bfloat16)
    gamma = torch.softmax(torch.tensor(rng.normal(size=(64, 2)), dtype=torch.bfloat16), 1)
    for dtype, expected in (("float32", torch.float32), ("float64", torch.float64)):
        mixture = build_mixture("gaussian", 2, 3, 1e-6, dtype)
        energy = mixture.energy(z, mixture.batch_parameters(z, gamma))
        assert energy.dtype == expected and torch.isfinite(energy).all()


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="mixture must be one of"):
        build_mixture("cauchy", 2, 3, 1e-6, "float64")
    with pytest.raises(ValueError, match="dtype"):
        build_mixture("gaussian", 2, 3, 1e-6, "float16")
    with pytest.raises(ValueError, match="gamma"):
        GaussianMixtureEnergy(2, 3).batch_parameters(torch.zeros(4, 3), torch.zeros(4, 3))


@pytest.mark.parametrize("family", ["gaussian", "laplace"])
def test_rows_of_another_width_another_type_or_none_are_named(family):
    mixture = build_mixture(family, 2, 3, 1e-6, "float64")
    z, gamma = torch.rand(10, 3), torch.full((10, 2), 0.5)
    mixture.fit([(z, gamma)])
    with pytest.raises(ValueError, match=r"expected z \(..., N, 3\), got \(10, 2\)"):  # had: torch's size mismatch
        mixture.energy(z[:, :2])
    with pytest.raises(TypeError, match="the mixture takes z as a torch.Tensor .* got ndarray"):  # had: AttributeError
        mixture.energy(z.numpy())
    with pytest.raises(ValueError, match=r"expected z \(..., N, 3\), got \(10, 4\)"):
        mixture.batch_parameters(torch.rand(10, 4), gamma)
    with pytest.raises(ValueError, match="cannot fit the mixture on a batch of zero rows"):  # had: weights 0
        mixture.batch_parameters(z[:0], gamma[:0])
    assert torch.isfinite(mixture.energy(z)).all()


@pytest.mark.parametrize(("steps", "tolerance"), [(1, 0.0), (5, 0.0), (200, 1e-4)])
def test_em_refinement_equals_scikit_learns_em_from_the_same_start(steps, tolerance):
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    rng = np.random.default_rng(5)
    centres = np.array([[0.0, 0.0], [4.0, 1.0], [1.0, 5.0]])
    z = np.concatenate([c + rng.normal(size=(200, 2)) * s for c, s in zip(centres, (0.5, 1.0, 0.3), strict=True)])
    mixture = GaussianMixtureEnergy(3, 2, jitter=1e-4)
    mixture.fit([(torch.tensor(z), torch.tensor(rng.dirichlet(np.ones(3), size=len(z))))])  # a poor start
    start = {name: getattr(mixture, name).numpy().copy() for name in ("weights", "means", "covariances")}
    rows = [torch.tensor(z[s : s + 128]) for s in range(0, len(z), 128)]  # re-iterable, in batches
    done = mixture.refine(rows, steps, tolerance)
    reference = GaussianMixture(
        3,
        covariance_type="full",
        reg_covar=1e-4,
        max_iter=steps,
        tol=tolerance,  # scikit-learn's stop: the mean log-likelihood (minus our mean energy) moved < tol
        weights_init=start["weights"],
        means_init=start["means"],
        precisions_init=np.linalg.inv(start["covariances"]),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reference.fit(z)
    assert done == reference.n_iter_
    assert done < steps if tolerance > 0 else done == steps  # the tolerance stopped it before the cap
    np.testing.assert_allclose(mixture.weights.numpy(), reference.weights_, rtol=1e-6)
    np.testing.assert_allclose(mixture.means.numpy(), reference.means_, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(mixture.covariances.numpy(), reference.covariances_, rtol=1e-6, atol=1e-8)
    assert not np.allclose(start["means"], reference.means_, rtol=1e-3)  # EM moved the means: not a no-op


def test_em_refinement_of_both_families_lowers_the_mean_energy_from_a_poor_start():
    rng = np.random.default_rng(6)
    z = torch.tensor(np.concatenate([rng.normal(size=(300, 3)), rng.normal(size=(100, 3)) * 0.2 + 3.0]))
    gamma = torch.tensor(rng.dirichlet(np.ones(4), size=(2, len(z))))
    mixture = build_mixture("gaussian+laplace", 4, 3, 1e-4, "float64", members=2)
    zz = z.expand(2, -1, -1)
    mixture.fit([(zz, gamma)])
    before = mixture.energy(zz).mean(-1)
    mixture.refine([zz], 10)
    after = mixture.energy(zz).mean(-1)
    assert torch.all(after < before - 0.1), (before, after)  # each member's mean energy falls


def test_an_em_step_gives_a_component_that_lost_every_row_the_jitter_covariance():
    mixture = GaussianMixtureEnergy(2, 12, jitter=1e-6)
    z = torch.randn(200, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    mixture.fit([(z, torch.tensor([[0.0, 1.0]]).expand(200, 2))])  # component 0: no rows, weight 0
    mixture.means[0] = 10.0  # far away: its memberships stay exactly 0
    mixture.refine([z], 1)
    torch.testing.assert_close(mixture.covariances[0], 1e-6 * torch.eye(12, dtype=torch.float64))
    torch.testing.assert_close(
        mixture.covariances[1], torch.cov(z.T, correction=0) + 1e-6 * torch.eye(12, dtype=torch.float64)
    )


def test_an_em_step_in_float32_keeps_the_float64_spread():
    # clusters of spread 1e-3 whose means start 0.05 off: the spread around the old means is ~2,500x the
    # one around the new; float32 deviations would leave ~1e-4 of it after recentring
    rng = np.random.default_rng(8)
    z = np.concatenate([rng.normal(size=(300, 3)) * 1e-3 + 0.3, rng.normal(size=(300, 3)) * 1e-3 - 0.3])
    gamma = np.stack([(z[:, 0] > 0), (z[:, 0] <= 0)], 1).astype(float)
    fits = {}
    for dtype in ("float32", "float64"):
        mixture = GaussianMixtureEnergy(2, 3, jitter=1e-10, dtype=dtype)
        mixture.fit([(torch.tensor(z), torch.tensor(gamma))])
        mixture.means += 0.05
        mixture.refine([torch.tensor(z)], 1)
        fits[dtype] = mixture.covariances.double()
    torch.testing.assert_close(fits["float32"], fits["float64"], rtol=1e-5, atol=1e-12)


def test_refine_refuses_a_generator_by_name():
    mixture = GaussianMixtureEnergy(2, 2)
    z = torch.randn(50, 2, dtype=torch.float64)
    mixture.fit([(z, torch.full((50, 2), 0.5, dtype=torch.float64))])
    with pytest.raises(ValueError, match="once per step"):
        mixture.refine((z for _ in range(1)), 3)


def test_a_fit_from_a_one_pass_iterable_is_refused_by_name():
    rng = np.random.default_rng(7)
    z, gamma = torch.tensor(rng.normal(size=(50, 2))), torch.tensor(rng.dirichlet(np.ones(2), size=50))
    with pytest.raises(ValueError, match="once per pass"):
        GaussianMixtureEnergy(2, 2).fit((z, gamma) for _ in range(1))  # a generator: pass 1 would see nothing


def blob_and_tight_cluster(rng):
    """900 rows of a wide 2-d blob and 30 rows of a tight cluster far from it; memberships that put every
    row in component 0 (components 1 and 2 empty, as an estimation network can leave them)."""
    z = np.concatenate([rng.normal(size=(900, 2)), rng.normal(size=(30, 2)) * 0.01 + 8.0])
    gamma = np.zeros((len(z), 3))
    gamma[:, 0] = 1.0
    return torch.tensor(z), torch.tensor(gamma)


def test_reseeding_moves_the_empty_components_to_the_worst_explained_rows_as_kmeans_splits_them():
    from sklearn.cluster import KMeans

    z, gamma = blob_and_tight_cluster(np.random.default_rng(9))
    mixture = GaussianMixtureEnergy(3, 2, jitter=1e-6)
    mixture.fit([(z, gamma)])
    mean0, cov0 = mixture.means[0].clone(), mixture.covariances[0].clone()
    moved = mixture.reseed_empty([z[:400], z[400:]], fraction=0.05)
    # reference: scipy energies under the fit, the 47 highest (ceil(5 % of 930)), k-means in that order
    energy = -multivariate_normal(mean0.numpy(), cov0.numpy()).logpdf(z.numpy())
    top = z.numpy()[np.argsort(-energy, kind="stable")[:47]]
    labels = KMeans(2, n_init=1, random_state=0).fit(top).labels_
    assert int(moved) == 2
    for cluster in range(2):
        rows = top[labels == cluster]
        k = 1 + cluster
        np.testing.assert_allclose(mixture.means[k].numpy(), rows.mean(0), rtol=1e-10)
        np.testing.assert_allclose(
            mixture.covariances[k].numpy(), np.cov(rows.T, bias=True) + 1e-6 * np.eye(2), rtol=1e-8, atol=1e-12
        )
        assert float(mixture.weights[k]) == pytest.approx(len(rows) / 930)
    torch.testing.assert_close(mixture.means[0], mean0)  # the live component keeps its place
    assert float(mixture.weights[0]) == pytest.approx(1 - 47 / 930)
    assert any(np.allclose(m, 8.0, atol=0.01) for m in mixture.means.numpy())  # the tight cluster has one


def test_em_alone_leaves_a_tight_cluster_without_a_component_and_reseeding_gives_it_one():
    z, gamma = blob_and_tight_cluster(np.random.default_rng(10))
    energies = {}
    for reseed in (False, True):
        mixture = GaussianMixtureEnergy(3, 2, jitter=1e-6)
        mixture.fit([(z, gamma)])
        if reseed:
            mixture.reseed_empty([z], fraction=0.05)
        mixture.refine([z], 10)
        energies[reseed] = mixture.energy(z)
    blob_median = float(energies[False][:900].median())
    assert float(energies[False][900:].min()) > blob_median  # EM alone: every cluster row above the blob's median
    assert float(energies[True][900:].max()) < float(energies[True][:900].min())  # now the densest rows of all


def test_reseeding_an_ensemble_of_both_families_equals_each_family_alone():
    rng = np.random.default_rng(11)
    z, gamma = blob_and_tight_cluster(rng)
    other = torch.tensor(rng.permutation(z.numpy()))  # member 1 sees the rows in another order
    zz, gg = torch.stack([z, other]), gamma.expand(2, -1, -1)
    mixed = build_mixture("gaussian+laplace", 3, 2, 1e-4, "float64", members=2)
    mixed.fit([(zz, gg)])
    mixed.reseed_empty([zz[:, :500], zz[:, 500:]], fraction=0.1)
    for member, family, rows in ((0, "gaussian", z), (1, "laplace", other)):
        alone = build_mixture(family, 3, 2, 1e-4, "float64")
        alone.fit([(rows, gamma)])
        alone.reseed_empty([rows], fraction=0.1)
        for name in alone.parameter_names:
            torch.testing.assert_close(getattr(mixed, name)[member], getattr(alone, name), rtol=1e-10, atol=1e-12)


def test_reseeding_leaves_a_fit_without_empty_components_unchanged_and_checks_its_arguments():
    rng = np.random.default_rng(12)
    z = torch.tensor(rng.normal(size=(200, 2)))
    mixture = GaussianMixtureEnergy(2, 2)
    mixture.fit([(z, torch.tensor(rng.dirichlet(np.ones(2), size=200)))])
    before = {name: getattr(mixture, name).clone() for name in mixture.parameter_names}
    assert int(mixture.reseed_empty([z], 0.05)) == 0
    for name, value in before.items():
        torch.testing.assert_close(getattr(mixture, name), value)
    with pytest.raises(ValueError, match="fraction"):
        mixture.reseed_empty([z], 0.0)
    with pytest.raises(ValueError, match="fraction"):
        mixture.reseed_empty([z], 0.9)  # the kept components would lose most of their weight
    with pytest.raises(FloatingPointError, match="NaN"):
        mixture.reseed_empty([torch.cat([z, torch.full((1, 2), float("nan"), dtype=torch.float64)])], 0.05)
    with pytest.raises(ValueError, match="twice"):
        mixture.reseed_empty((z for _ in range(1)), 0.05)


def test_reseeding_a_tiny_table_whose_components_are_all_small_keeps_the_largest_and_stays_finite():
    rng = np.random.default_rng(14)
    z = torch.tensor(rng.normal(size=(20, 4)))
    labels = np.array([0] * 6 + [1] * 4 + [2] * 4 + [3] * 3 + [4] * 3)  # every mass below dim + 1 = 5 but one
    mixture = GaussianMixtureEnergy(5, 4, jitter=1e-4)
    mixture.fit([(z, torch.nn.functional.one_hot(torch.tensor(labels), 5).double())])
    before = mixture.means.clone()
    moved = int(mixture.reseed_empty([z], fraction=0.5))
    # 10 candidate rows: at most 10 // (dim + 1) = 2 clusters, and only those of >= 5 rows take a component
    changed = ~torch.isclose(mixture.means, before).all(-1)
    assert moved == int(changed[1:].sum()) <= 2 and not changed[0] or moved == 0
    assert torch.all(mixture.weights[1:][changed[1:]] * 20 >= 5 - 1e-9)
    assert torch.isfinite(mixture.weights).all() and float(mixture.weights.sum()) == pytest.approx(1.0)
    assert torch.isfinite(mixture.energy(z)).all()


def test_memberships_with_fewer_components_start_the_extra_ones_empty_for_reseeding():
    """An estimation network with one component and a fit with three: the fit is the one-component fit plus
    two empty components (numpy reference), re-seeding then places both; batch parameters keep gamma's K."""
    z, gamma = blob_and_tight_cluster(np.random.default_rng(15))
    mixture = GaussianMixtureEnergy(3, 2, jitter=1e-6)
    with pytest.raises(ValueError, match=r"gamma \('N', 3\)"):  # the fit itself takes all its components
        mixture.fit([(z, gamma[:, :1])])
    mixture.fit([(z[:500], padded_memberships(gamma[:500, :1], 3)), (z[500:], padded_memberships(gamma[500:, :1], 3))])
    np.testing.assert_allclose(mixture.weights.numpy(), [1.0, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(mixture.means[0].numpy(), z.numpy().mean(0), rtol=1e-10)
    np.testing.assert_allclose(mixture.covariances[0].numpy(), np.cov(z.numpy().T, bias=True) + 1e-6 * np.eye(2))
    np.testing.assert_allclose(mixture.covariances[1:].numpy(), np.broadcast_to(1e-6 * np.eye(2), (2, 2, 2)))
    assert int(mixture.reseed_empty([z], fraction=0.05)) == 2 and float(mixture.weights[1:].min()) > 0
    params = mixture.batch_parameters(z, gamma[:, :2])
    assert params["means"].shape == (2, 2) and params["scale_tril"].shape == (2, 2, 2)
    with pytest.raises(ValueError, match="K <= 3"):
        mixture.batch_parameters(z, torch.ones(len(z), 4) / 4)


def test_a_family_of_ones_own_names_its_parameters_by_their_shapes_and_needs_weights_and_means():
    class Spherical(LaplaceMixtureEnergy):  # a family that lists no parameter_names: its shapes' names
        parameter_names = ()

    assert Spherical(3, 2).parameter_names == ("weights", "means", "scales")  # had: () and a KeyError at scoring

    class Meanless(Spherical):
        def parameter_shapes(self):
            return {"weights": (self.n_components,), "scales": (self.n_components, self.dim)}

    with pytest.raises(ValueError, match=r"Meanless.parameter_shapes has no \['means'\]"):
        Meanless(3, 2)


# --- a family of one's own, tried as the model is built ---------------------------------------------
class NotSummedOverDims(GaussianMixtureEnergy):
    def log_prob_of_deviations(self, diff, params):  # (..., K, D, N): the sum over D forgotten
        return -0.5 * diff.square()


class MisnamedSpread(GaussianMixtureEnergy):
    def spread_m_step(self, stats, mass):
        params = super().spread_m_step(stats, mass)
        return {"variances": params.pop("covariances"), **params}


class WithoutRecentredSpread(GaussianMixtureEnergy):
    recentred_spread = None  # (as a family that leaves it out: abstract)


class OwnComponentLogProb(GaussianMixtureEnergy):
    def component_log_prob(self, z, params):  # (as written before one_sided_last)
        return super().component_log_prob(z, params)


def own_family_model(family, input_dim=6, **options):
    from dagmm_lightning.models import DAGMM

    class OwnFamily(DAGMM):
        def build_mixture_energy(self, n_components, dim):
            hp = self.hparams
            return family(n_components, dim, hp.jitter, hp.mixture_dtype, hp.members)

    return OwnFamily(input_dim=input_dim, hidden_dims=(5,), latent_dim=2, n_components=3, **options)


def test_a_family_of_ones_own_is_tried_as_the_model_is_built():
    import lightning as L

    from dagmm_lightning import AnomalyDataModule
    from dagmm_lightning.errors import ConfigurationError

    shape = r"NotSummedOverDims.log_prob_of_deviations .* gives \(3, 4, 8\) for 8 rows of 4 dimensions and 3 "
    with pytest.raises(ConfigurationError, match=shape + r"components; expected \(3, 8\)"):
        own_family_model(NotSummedOverDims)  # had: "size of tensor a (3) must match ..." in the first step
    with pytest.raises(
        ConfigurationError, match=r"MisnamedSpread's M-step \(m_step, spread_m_step\) gives no 'covariances'"
    ):
        own_family_model(MisnamedSpread)  # had: KeyError: 'variances' deep in the scoring fit
    WithoutRecentredSpread.__abstractmethods__ = frozenset({"recentred_spread"})
    with pytest.raises(
        ConfigurationError, match=r"OwnFamily.build_mixture_energy failed: TypeError: Can't instantiate"
    ):
        own_family_model(WithoutRecentredSpread)  # had: jsonargparse's trace of every class it tried
    # families of one's own that are the built-in ones pass it (no false alarm), in either dtype
    families = [
        type(f"Own{family.__name__}", (family,), {}) for family in (GaussianMixtureEnergy, LaplaceMixtureEnergy)
    ]
    mixed = type("OwnMixed", (MixedFamilyEnergy,), {})
    for (k, d, members), dtype in itertools.product([(1, 3, 1), (4, 7, 1), (32, 12, 3)], ("float64", "float32")):
        for family in families:
            family(k, d, dtype=dtype, members=members).try_on_random_rows()
        mixed(k, d, dtype=dtype, members=3).try_on_random_rows()
    own_family_model(families[0])  # (had: float32 rows refused, "expected scalar type Float but found Double")
    # a component_log_prob of one's own without one_sided_last: scores as before without the error feature
    # (had: TypeError in every energy); with it (read one-sided by default) named at the fit's start and where
    # it scores
    own = own_family_model(OwnComponentLogProb).model
    own.fit([torch.randn(50, 6)])
    assert torch.isfinite(own.eval()(torch.randn(5, 6)).energy).all()
    said = r"OwnComponentLogProb.component_log_prob takes no one_sided_last, .* or set one_sided_error false"
    with pytest.raises(ConfigurationError, match=said):  # (the mixture's fit reads it two-sided; the scores not)
        own_family_model(OwnComponentLogProb, error_feature=True).model.fit([torch.randn(50, 6)])
    quiet = dict(logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    reading = own_family_model(OwnComponentLogProb, input_dim=30, error_feature=True)
    with pytest.raises(ConfigurationError, match=said):  # before the first step
        L.Trainer(max_steps=1, **quiet).fit(reading, AnomalyDataModule("breast_cancer"))
    own_family_model(OwnComponentLogProb, error_feature=True, one_sided_error=False).model.fit([torch.randn(50, 6)])
    GaussianMixtureEnergy(3, 5).try_on_random_rows(one_sided_last=True)


def conditional_means_of_last(z, means, covs):
    """E[z_last | z_rest] under each Gaussian component (N, K), from the covariance blocks."""
    rest = np.stack([covs[k][-1, :-1] @ np.linalg.inv(covs[k][:-1, :-1]) for k in range(len(means))])  # (K, D-1)
    return means[:, -1] + np.einsum("kd,nkd->nk", rest, z[:, None, :-1] - means[None, :, :-1])


def test_one_sided_gaussian_energy_is_scipys_at_the_last_coordinate_raised_to_its_conditional_mean():
    rng = np.random.default_rng(3)
    weights, means, covs = random_params(rng, 3, 4)
    z = rng.normal(size=(200, 4)) * 2
    mixture = GaussianMixtureEnergy(3, 4, jitter=1e-12)
    params = as_params(mixture, weights, means, covs)
    ours = mixture.energy(torch.tensor(z), params, one_sided_last=True).numpy()
    expected = conditional_means_of_last(z, means, covs)
    log_p = np.empty((len(z), 3))
    for k in range(3):
        raised = np.c_[z[:, :-1], np.maximum(z[:, -1], expected[:, k])]
        log_p[:, k] = multivariate_normal(means[k], covs[k]).logpdf(raised)
    np.testing.assert_allclose(ours, -logsumexp(log_p + np.log(weights), axis=1), rtol=1e-10, atol=1e-10)
    two_sided = scipy_energy(z, weights, means, covs)
    above = (z[:, -1:] >= expected).all(1)  # rows above every component's expectation: read as they are
    assert 10 < above.sum() < len(z) - 10
    np.testing.assert_allclose(ours[above], two_sided[above], rtol=1e-10)
    assert (ours[~above] < two_sided[~above]).all()


def test_one_sided_laplace_energy_is_scipys_at_the_last_coordinate_raised_to_the_location():
    from scipy.stats import laplace

    rng = np.random.default_rng(4)
    weights, means, scales = rng.dirichlet(np.ones(3)), rng.normal(size=(3, 4)), rng.uniform(0.5, 2, (3, 4))
    z = rng.normal(size=(100, 4)) * 2
    mixture = LaplaceMixtureEnergy(3, 4, jitter=1e-12)
    params = {"weights": torch.tensor(weights), "means": torch.tensor(means), "scales": torch.tensor(scales)}
    ours = mixture.energy(torch.tensor(z), params, one_sided_last=True).numpy()
    log_p = np.empty((len(z), 3))
    for k in range(3):
        raised = np.c_[z[:, :-1], np.maximum(z[:, -1], means[k, -1])]
        log_p[:, k] = laplace(means[k], scales[k]).logpdf(raised).sum(1)
    np.testing.assert_allclose(ours, -logsumexp(log_p + np.log(weights), axis=1), rtol=1e-10, atol=1e-10)


def test_one_sided_energy_of_an_ensemble_of_both_families_is_each_members_own_family():
    rng = np.random.default_rng(5)
    z = torch.tensor(rng.normal(size=(2, 150, 3)))
    gamma = torch.tensor(rng.dirichlet(np.ones(2), size=(2, 150)))
    mixed = build_mixture("gaussian+laplace", 2, 3, 1e-4, "float64", members=2)
    mixed.fit([(z, gamma)])
    ours = mixed.energy(z, one_sided_last=True)
    for member, family in ((0, "gaussian"), (1, "laplace")):
        alone = build_mixture(family, 2, 3, 1e-4, "float64")
        alone.fit([(z[member], gamma[member])])
        np.testing.assert_allclose(ours[member], alone.energy(z[member], one_sided_last=True), rtol=1e-12)
        assert (ours[member] <= mixed.energy(z)[member] + 1e-12).all()
    np.testing.assert_allclose(mixed.log_joint(z), mixed.log_joint(z, one_sided_last=False))  # the default
    raised = mixed.one_sided_deviations(
        z.transpose(-1, -2).unsqueeze(-3) - mixed.means.unsqueeze(-1), mixed.fitted_parameters()
    )
    reference = mixed.component_log_prob(z, mixed.fitted_parameters(), one_sided_last=True)
    np.testing.assert_allclose(mixed.log_prob_of_deviations(raised, mixed.fitted_parameters()), reference, rtol=1e-12)
