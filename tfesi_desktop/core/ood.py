"""Is this input like the images the model was trained on? Two distances, one verdict.

The bundle carries two distributions over its training images, each as a probabilistic PCA (the
mean, the ``k`` leading principal directions with their variances, and one variance for
everything else):

- **features**: the network's pooled features (its global-average-pooled ``top_activation``
  channels, 1280 for the paper's network and 128 for the compact one, averaged over the ROI
  set);
- **intensities**: the intensity histogram of the model inputs (16 bins over 0..255, square
  roots, averaged over the ROI set). The network's features alone let another MR contrast (T1)
  pass in 4 of 10 synthetic patients; the histogram catches all of them.

A distance is the Mahalanobis distance under one model divided by the square root of its
dimension, so a typical training image is near 1; each threshold is the 99th percentile of the
distances of the training and held-out images (the larger of the two). The verdict's distance is
the larger of the two distances divided by their thresholds: beyond 1 the input is flagged
everywhere, and the prediction is "not reliable" there (docs/architecture.md, invariant 8).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from .errors import ModelError

OOD_FILE = "ood.npz"
COMPONENTS = 32
HISTOGRAM_COMPONENTS = 8
HISTOGRAM_BINS = 16
PERCENTILE = 99.0


def intensity_histogram(images: np.ndarray) -> np.ndarray:
    """The square-rooted 16-bin histogram of (n, 100, 100, 3) model inputs in 0..255, averaged
    over the n inputs: shape (16,)."""
    x = np.asarray(images)[..., 0].reshape(len(images), -1)
    idx = np.clip((x * (HISTOGRAM_BINS / 255.0)).astype(int), 0, HISTOGRAM_BINS - 1)
    counts = np.stack([np.bincount(i, minlength=HISTOGRAM_BINS) for i in idx])
    return np.sqrt(counts / x.shape[1]).mean(axis=0)


@dataclass(frozen=True)
class FeatureDistribution:
    mean: np.ndarray  # (d,)
    components: np.ndarray  # (k, d), orthonormal rows
    variances: np.ndarray  # (k,)
    residual_variance: float
    threshold: float

    def distance(self, pooled: np.ndarray) -> np.ndarray | float:
        """Scaled Mahalanobis distance of pooled feature vectors (..., d)."""
        x = np.asarray(pooled, np.float64) - self.mean
        z = x @ self.components.T
        resid = np.maximum((x * x).sum(-1) - (z * z).sum(-1), 0.0)
        d2 = (z * z / self.variances).sum(-1) + resid / self.residual_variance
        out = np.sqrt(d2 / self.mean.shape[0])
        return float(out) if out.ndim == 0 else out

    def arrays(self, prefix: str) -> dict:
        return {f"{prefix}mean": self.mean.astype(np.float32),
                f"{prefix}components": self.components.astype(np.float32),
                f"{prefix}variances": self.variances.astype(np.float64),
                f"{prefix}residual_variance": np.float64(self.residual_variance),
                f"{prefix}threshold": np.float64(self.threshold)}

    @classmethod
    def from_arrays(cls, z, prefix: str, path) -> FeatureDistribution:
        d = cls(z[f"{prefix}mean"].astype(np.float64),
                z[f"{prefix}components"].astype(np.float64),
                z[f"{prefix}variances"].astype(np.float64),
                float(z[f"{prefix}residual_variance"]), float(z[f"{prefix}threshold"]))
        k, dim = d.components.shape
        if (d.mean.shape != (dim,) or d.variances.shape != (k,) or not np.all(d.variances > 0)
                or not d.residual_variance > 0 or not d.threshold > 0):
            raise ModelError("The training-image distribution is malformed.", path)
        return d


@dataclass(frozen=True)
class TrainingDistribution:
    """Both distributions of a bundle (module docstring)."""

    features: FeatureDistribution
    intensities: FeatureDistribution
    threshold: ClassVar[float] = 1.0  # distances are ratios to each distribution's threshold

    def distance(self, pooled: np.ndarray, histogram: np.ndarray) -> float:
        """The larger of the two distances, each divided by its threshold (flag beyond 1)."""
        return max(self.features.distance(pooled) / self.features.threshold,
                   self.intensities.distance(histogram) / self.intensities.threshold)

    def save(self, path: str | Path) -> None:
        with open(path, "wb") as f:
            np.savez(f, **self.features.arrays("features_"),
                     **self.intensities.arrays("intensities_"))

    @classmethod
    def load(cls, path: str | Path) -> TrainingDistribution:
        try:
            with np.load(path, allow_pickle=False) as z:
                return cls(FeatureDistribution.from_arrays(z, "features_", path),
                           FeatureDistribution.from_arrays(z, "intensities_", path))
        except (OSError, KeyError, ValueError) as e:
            raise ModelError(f"The training-image distribution cannot be read ({e}).",
                             path) from e


def fit(train: np.ndarray, held_out: np.ndarray | None = None, *, k: int = COMPONENTS,
        percentile: float = PERCENTILE) -> FeatureDistribution:
    """Fit on pooled training features (n, d); the threshold is the ``percentile`` of the
    distances of the training and (if given) held-out features, whichever is larger."""
    x = np.asarray(train, np.float64)
    n, dim = x.shape
    mean = x.mean(0)
    xc = x - mean
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    k = int(min(k, len(s) - 1, dim - 1))
    var = s ** 2 / max(n - 1, 1)
    total = float(var.sum())
    floor = 1e-6 * max(total, 1e-12) / dim
    resid = max((total - float(var[:k].sum())) / (dim - k), floor)
    dist = FeatureDistribution(mean, vt[:k], np.maximum(var[:k], floor), resid, 1.0)
    thr = float(np.percentile(dist.distance(x), percentile))
    if held_out is not None and len(held_out):
        thr = max(thr, float(np.percentile(dist.distance(held_out), percentile)))
    return FeatureDistribution(mean, vt[:k], np.maximum(var[:k], floor), resid, thr)


def fit_training_distribution(pooled_train, histograms_train, pooled_held_out=None,
                              histograms_held_out=None) -> TrainingDistribution:
    """Both distributions from the training images (and held-out ones for the thresholds)."""
    return TrainingDistribution(
        fit(pooled_train, pooled_held_out),
        fit(histograms_train, histograms_held_out, k=HISTOGRAM_COMPONENTS))
