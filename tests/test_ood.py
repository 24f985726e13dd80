"""The training-image distribution (core/ood.py): a probabilistic-PCA distance that is near 1
for the training data, thresholds at their 99th percentile, two distributions combined."""

import numpy as np
import pytest

from tfesi_desktop.core.errors import ModelError
from tfesi_desktop.core.ood import (
    TrainingDistribution,
    fit,
    fit_training_distribution,
    intensity_histogram,
)


def test_distance_is_near_one_inside_and_large_outside():
    rng = np.random.default_rng(0)
    basis = rng.normal(size=(5, 40))
    train = rng.normal(size=(400, 5)) @ basis + 0.1 * rng.normal(size=(400, 40))
    d = fit(train, k=5)
    inside = rng.normal(size=(200, 5)) @ basis + 0.1 * rng.normal(size=(200, 40))
    assert 0.7 < np.median(d.distance(inside)) < 1.3
    assert np.mean(d.distance(inside) > d.threshold) < 0.05
    off_plane = inside + rng.normal(size=inside.shape)  # the same scale, other directions
    assert np.all(d.distance(off_plane) > d.threshold)
    far = inside + 20 * basis[0]
    assert np.all(d.distance(far) > d.threshold)
    assert isinstance(d.distance(inside[0]), float)


def test_histogram_and_combined_verdict_survive_saving(tmp_path):
    rng = np.random.default_rng(1)
    imgs = rng.uniform(0, 255, (13, 100, 100, 3)).astype(np.float32)
    h = intensity_histogram(imgs)
    assert h.shape == (16,) and (h ** 2).sum() == pytest.approx(1.0, abs=0.01)
    pooled = rng.normal(size=(300, 30))
    hists = np.abs(rng.normal(0.25, 0.02, size=(300, 16)))
    dist = fit_training_distribution(pooled[:200], hists[:200], pooled[200:], hists[200:])
    dist.save(tmp_path / "ood.npz")
    back = TrainingDistribution.load(tmp_path / "ood.npz")
    assert back.distance(pooled[250], hists[250]) == pytest.approx(
        dist.distance(pooled[250], hists[250]))
    assert back.distance(pooled[250], hists[250]) < 1.5
    dark = hists[250].copy()
    dark[0] += 0.5  # an input whose intensities look unlike the training inputs
    assert back.distance(pooled[250], dark) > back.threshold
    np.savez(tmp_path / "bad.npz", features_mean=np.zeros(3))
    with pytest.raises(ModelError, match="cannot be read"):
        TrainingDistribution.load(tmp_path / "bad.npz")
