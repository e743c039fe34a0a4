"""Ensembles (``members`` > 1): one vectorised model that trains, fits and scores exactly as its members
would one by one."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dagmm_lightning.data import InMemoryBatches
from dagmm_lightning.errors import ConfigurationError
from dagmm_lightning.labels import LABELLED_ANOMALY
from dagmm_lightning.models import DAGMM, DAGMMPU, DAGMMVAE, DAGMMVQVAE
from dagmm_lightning.networks.layers import MemberLinear

SIZES = dict(input_dim=12, hidden_dims=(10, 6), latent_dim=3, n_components=3, dropout=0.0)


def member_state(ensemble: DAGMM, single: DAGMM, m: int) -> dict[str, torch.Tensor]:
    """Member m's weights and buffers in the layout of a one-model DAGMM."""
    state, stacked = {}, ensemble.state_dict()
    for name, value in single.state_dict().items():
        member = stacked[name]
        if member.shape == value.shape:  # shared (the step counter)
            state[name] = member
        elif name.endswith("weight") and member.ndim == 3:  # (M, in, out) -> nn.Linear's (out, in)
            state[name] = member[m].T
        elif name.endswith("bias") and member.ndim == 3:
            state[name] = member[m, 0]
        else:
            state[name] = member[m]
    return state


def test_member_linear_is_each_members_own_dense_layer():
    torch.manual_seed(0)
    layer, x = MemberLinear(4, 5, 3), torch.randn(4, 7, 5)
    expected = torch.stack([F.linear(x[m], layer.weight[m].T, layer.bias[m, 0]) for m in range(4)])
    torch.testing.assert_close(layer(x), expected)
    assert float(layer.weight.detach().abs().max()) <= 1 / np.sqrt(5)  # nn.Linear's initial range


@pytest.mark.parametrize("mixture", ["gaussian", "laplace", "gaussian+laplace"])
@pytest.mark.parametrize("inference", ["energy", "energy+reconstruction"])
def test_ensemble_trains_fits_and_scores_as_its_members_one_by_one(mixture, inference):
    torch.manual_seed(0)
    members, x = 3, torch.randn(96, 12).double()
    settings = dict(SIZES, inference=inference, contamination=0.1)
    ensemble = DAGMM(**settings, mixture=mixture, members=members).double()
    # gaussian+laplace: members 0 and 2 Gaussian, member 1 Laplacian
    families = [mixture] * members if "+" not in mixture else ["gaussian", "laplace", "gaussian"]
    singles = [DAGMM(**settings, mixture=family).double() for family in families]
    for m, single in enumerate(singles):
        single.load_state_dict(member_state(ensemble, single, m))

    # one training step: the ensemble's objective is the sum of the members', its gradients theirs
    labels = torch.zeros(96, dtype=torch.long)
    labels[:6] = LABELLED_ANOMALY  # the mixed-label loss: left out of the fits, their energy pushed up
    fit = labels != LABELLED_ANOMALY
    terms = ensemble.training_terms(ensemble.model(x, fit_mask=fit), labels, ~fit)
    assert "anomaly_energy" in terms
    loss = sum(terms.values())
    loss.backward()
    single_losses = []
    for single in singles:
        single_loss = sum(single.training_terms(single.model(x, fit_mask=fit), labels, ~fit).values())
        single_loss.backward()
        single_losses.append(float(single_loss.detach()))
    np.testing.assert_allclose(float(loss.detach()), sum(single_losses), rtol=1e-10)
    for m, single in enumerate(singles):
        grads = {n: p.grad for n, p in single.named_parameters()}
        stacked = {n: p.grad for n, p in ensemble.named_parameters()}
        for name, grad in grads.items():
            member = stacked[name][m]
            member = member.T if name.endswith("weight") and member.ndim == 2 else member.reshape(grad.shape)
            torch.testing.assert_close(member, grad, rtol=1e-9, atol=1e-12)

    # the training-set fit: each member's mixture; the score: the mean of the z-scored member scores
    batches = InMemoryBatches(x.float(), torch.zeros(96), torch.arange(96), batch_size=40, shuffle=False)
    rows = [b[0].double() for b in batches]
    scores = ensemble.model.fit(rows).numpy()
    own = np.stack([single.model.fit(rows).numpy() for single in singles])
    for m, single in enumerate(singles):
        for name in single.model.mixture.parameter_names:
            torch.testing.assert_close(getattr(ensemble.model.mixture, name)[m], getattr(single.model.mixture, name))
    combined = ((own - own.mean(1, keepdims=True)) / own.std(1, ddof=1, keepdims=True)).mean(0)
    np.testing.assert_allclose(scores, combined, rtol=1e-9, atol=1e-12)
    assert float(ensemble.model.calibration.threshold) == pytest.approx(np.quantile(combined, 0.9), rel=1e-12)
    ensemble.eval()
    np.testing.assert_allclose(ensemble.score(x).detach().numpy(), combined, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("variant", [DAGMMVAE, DAGMMVQVAE, DAGMMPU])
def test_ensembles_of_other_variants_and_zero_members_are_refused(variant):
    with pytest.raises(ConfigurationError, match="members > 1"):
        variant(**SIZES, members=2)
    with pytest.raises(ConfigurationError, match="members must be >= 1"):
        DAGMM(**SIZES, members=0)
    with pytest.raises(ConfigurationError, match="needs members >= 2, got 1"):
        DAGMM(**SIZES, mixture="gaussian+laplace")
    with pytest.raises(ConfigurationError, match=f"{variant.__name__} trains no ensemble: choose 'gaussian' or"):
        variant(**SIZES, mixture="gaussian+laplace")  # had asked for members >= 2, which it refuses
