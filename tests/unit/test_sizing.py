import numpy as np
import pytest
from sklearn.decomposition import PCA

from dagmm_lightning.sizing import latent_size, network_sizes


@pytest.mark.parametrize("explained", [0.5, 0.9, 0.99])
def test_latent_size_is_the_principal_components_explaining_that_share(explained):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 12)) @ rng.normal(size=(12, 12)) * np.linspace(0.1, 3, 12)
    expected = int(np.argmax(np.cumsum(PCA().fit(x).explained_variance_ratio_) >= explained)) + 1
    assert latent_size(x, explained) == expected


def test_sizes_of_degenerate_rows_and_widths_never_narrower_than_the_latent():
    assert latent_size(np.ones((10, 3))) == 1
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 100))  # isotropic: the latent keeps nearly every dimension
    (wide, narrow), latent = network_sizes(x)
    assert latent == latent_size(x) > 64 and wide == 2 * latent and narrow == latent
    (wide, narrow), latent = network_sizes(rng.normal(size=(300, 1)) @ np.ones((1, 8)))  # rank 1 in 8-D
    assert (wide, narrow, latent) == (8, 4, 1)
