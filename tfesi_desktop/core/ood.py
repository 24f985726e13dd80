"""Is this input like the images the model was trained on? A distance in feature space.

The bundle carries the distribution of the network's pooled features (the 1280 global-average-
pooled ``top_activation`` channels) over its training images, as a probabilistic PCA: the mean,
the ``k`` leading principal directions with their variances, and one variance for everything
else. The distance of a new input is the Mahalanobis distance under that model, divided by the
square root of the dimension so that a typical training image is near 1. The threshold is the
99th percentile of the distances of the training and held-out images (the larger of the two).
An input beyond it is flagged everywhere: the prediction is "not reliable" there (DESIGN.md,
invariant 8).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ModelError

OOD_FILE = "ood.npz"
COMPONENTS = 32
PERCENTILE = 99.0


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

    def save(self, path: str | Path) -> None:
        with open(path, "wb") as f:
            np.savez(f, mean=self.mean.astype(np.float32),
                     components=self.components.astype(np.float32),
                     variances=self.variances.astype(np.float64),
                     residual_variance=np.float64(self.residual_variance),
                     threshold=np.float64(self.threshold))

    @classmethod
    def load(cls, path: str | Path) -> FeatureDistribution:
        try:
            with np.load(path, allow_pickle=False) as z:
                d = cls(z["mean"].astype(np.float64), z["components"].astype(np.float64),
                        z["variances"].astype(np.float64), float(z["residual_variance"]),
                        float(z["threshold"]))
        except (OSError, KeyError, ValueError) as e:
            raise ModelError(f"The feature distribution cannot be read ({e}).", path) from e
        k, dim = d.components.shape
        if (d.mean.shape != (dim,) or d.variances.shape != (k,) or not np.all(d.variances > 0)
                or not d.residual_variance > 0 or not d.threshold > 0):
            raise ModelError("The feature distribution is malformed.", path)
        return d


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
