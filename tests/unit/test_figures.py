import numpy as np

from dagmm_lightning.callbacks.figures import draw


def latent_view(components: int):
    rng = np.random.default_rng(0)
    n = 300
    data = dict(score=rng.normal(size=n), label=np.arange(n) % 10 == 0, row0=rng.normal(size=n))
    data.update(row1=rng.normal(size=n), component=np.arange(n) % components)
    data["label"] = data["label"].astype(np.int64)
    return draw(data, 0.5, max_points=1000)["latent_view"], data


def test_the_latent_view_keys_labels_and_few_components_by_colour():
    fig, data = latent_view(3)
    by_label, by_component = fig.axes  # had: each with a continuous colour bar (two more axes)
    for ax, values in ((by_label, data["label"]), (by_component, data["component"])):
        legend = ax.get_legend()
        assert [t.get_text() for t in legend.get_texts()] == [str(v) for v in np.unique(values)]
        points = ax.collections[0]
        colours = points.to_rgba(points.get_array())  # each point's colour, as drawn
        for value, handle in zip(np.unique(values), legend.legend_handles, strict=True):
            np.testing.assert_allclose(handle.get_color(), colours[np.flatnonzero(values == value)[0]])
    many, _ = latent_view(12)
    assert len(many.axes) == 3 and many.axes[1].get_legend() is None  # 12 components: a colour bar
