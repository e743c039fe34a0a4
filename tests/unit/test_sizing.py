import numpy as np
import pytest
from sklearn.decomposition import PCA

from dagmm_lightning.sizing import latent_cap, latent_size, mixture_components, network_sizes


@pytest.mark.parametrize("explained", [0.5, 0.9, 0.99])
def test_latent_size_is_the_principal_components_explaining_that_share(explained):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 12)) @ rng.normal(size=(12, 12)) * np.linspace(0.1, 3, 12)
    expected = int(np.argmax(np.cumsum(PCA().fit(x).explained_variance_ratio_) >= explained)) + 1
    assert latent_size(x, explained) == expected


def test_sizes_of_degenerate_rows_and_widths_never_narrower_than_the_latent():
    assert latent_size(np.ones((10, 3))) == 1
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30_000, 100))  # isotropic: the latent keeps nearly every dimension
    (wide, narrow), latent, k, explained = network_sizes(x)
    assert k == 4 and latent == explained == latent_size(x) > 64 and wide == 2 * latent and narrow == latent
    (wide, narrow), latent, _, _ = network_sizes(rng.normal(size=(300, 1)) @ np.ones((1, 8)))  # rank 1 in 8-D
    assert (wide, narrow, latent) == (8, 4, 1)


@pytest.mark.parametrize("n_rows", [1, 10, 102, 174, 750, 2533, 100_000])
@pytest.mark.parametrize("k", [1, 4, 8])
@pytest.mark.parametrize("extra", [2, 3])
def test_latent_cap_leaves_each_component_as_many_rows_as_parameters(n_rows, k, extra):
    latent = latent_cap(n_rows, k, extra)
    parameters = [d + d * (d + 1) // 2 for d in range(1, 1000)]  # mean and covariance of D-wide rows
    widest = max([d for d, p in enumerate(parameters, start=1) if p <= n_rows / k], default=1)
    assert latent == max(1, widest - extra)


def test_few_rows_cap_the_latent():
    x = np.random.default_rng(2).normal(size=(174, 274))  # Arrhythmia's training shape
    assert network_sizes(x).explained_latent == latent_size(x) > 100
    assert network_sizes(x)[1] == latent_cap(174, 4) == 5  # 7-wide rows: 35 parameters per 43.5 rows
    assert network_sizes(x, 4, extra_columns=3)[1] == 4  # the log error takes one of the 7 columns


def test_sizes_of_kept_rows_equal_the_sizes_of_those_rows_read_block_by_block(monkeypatch):
    import dagmm_lightning.sizing as sizing

    monkeypatch.setattr(sizing, "BLOCK_ROWS", 64)  # several blocks, the last one short
    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 10)) * np.linspace(0.1, 2, 10)
    keep = rng.random(300) < 0.7
    x[~keep] *= 50.0  # the left-out rows would widen the latent
    for explained in (0.5, 0.9, 0.99):
        assert latent_size(x, explained, keep) == latent_size(x[keep], explained)
    assert network_sizes(x, 4, 2, keep) == network_sizes(x[keep], 4, 2)


@pytest.mark.parametrize(
    "n_rows, latent, extra, expected",
    [
        (178_470, 10, 3, 32),  # KDDCUP99: 13-wide rows, 104 parameters; 32 components get 5,577 rows each
        (1_000, 5, 3, 16),  # 8-wide rows, 44 parameters: 16 components get 62.5 rows each, 32 get 31.25
        (700, 5, 3, 8),  # 43.75 rows each for 16: one short
        (174, 5, 2, 4),  # none fits a latent of 5 (Arrhythmia): the fewest, and the cap cuts the latent
        (60, 1, 2, 4),  # 3-wide rows, 9 parameters: 8 components would get 7.5 rows each
    ],
)
def test_components_are_as_many_as_the_rows_fit_at_the_latent(n_rows, latent, extra, expected):
    assert mixture_components(n_rows, latent, extra) == expected


def test_sizes_with_components_from_the_rows():
    x = np.random.default_rng(4).normal(size=(1_000, 3)) * np.array([1.0, 0.5, 1e-3])  # latent 2 at 99 %
    assert latent_size(x) == 2
    assert network_sizes(x, None, extra_columns=3)[:3] == ((4, 2), 2, 32)  # 5-wide rows: 20 parameters per 31 rows
    assert network_sizes(x[:300], None, extra_columns=3)[1:3] == (2, 8)  # 37.5 rows each for 8, 18.75 for 16
    assert network_sizes(x, None, extra_columns=3, fit_rows=300)[1:3] == (2, 8)  # a mixture fit of 300 of them
