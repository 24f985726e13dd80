"""Grad-CAM for the networks' head, in NumPy, from the head's weights (no autodiff needed).

The network ends in global average pooling over the ``top_activation`` feature map A (R x C x K:
4x4x1280 for the paper's network, 12x12x128 for the compact one), then Dense -> ReLU ->
[BatchNormalization, at inference an affine map] -> Dense(1) = logit. So the gradient of the
logit with respect to A[i, j, k] is the same at every position, ``d logit / d pooled[k] / (R C)``,
and Grad-CAM's channel weights are that gradient, ``W1 @ (relu'(z) * bn_scale * w2) / (R C)``.
The map is ``ReLU(sum_k alpha_k A[:, :, k])`` for the favourable class (the logit) and with
``-alpha`` for the poor class, normalised to 0..1 (all zero, not NaN, when nothing is positive).
TensorFlow's GradientTape on the Keras model is the reference (tests/test_model.py).

Upsampling to the 100x100 input follows the pixel-centre convention: feature cell ``i`` has its
centre at input coordinate ``(i + 0.5) * 100 / R - 0.5``; values between centres are bilinear,
beyond the outermost centres constant. (The compact network's 12 cells cover the input's first
96 pixels, 8 each, so its true centres lie up to 4 px before these: under 2 mm in a 40-mm ROI.)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from threadpoolctl import ThreadpoolController


@cache
def _blas() -> ThreadpoolController:
    return ThreadpoolController()


def _one_blas_thread():
    """One BLAS thread for the head's small products: BLAS threads spinning beside LiteRT's
    doubled the latency (docs/architecture.md, measured facts). The controller is made once;
    entering it is cheap."""
    return _blas().limit(limits=1, user_api="blas")


@dataclass(frozen=True)
class Head:
    """The head's weights: dense (W1, b1), optional batch norm (scale, shift at inference),
    logit (w2, b2)."""

    w1: np.ndarray  # (channels, units): (1280, 1024) for the paper's network
    b1: np.ndarray  # (units,)
    bn_scale: np.ndarray | None  # gamma / sqrt(var + eps), (units,)
    bn_shift: np.ndarray | None  # beta - mean * scale
    w2: np.ndarray  # (units,)
    b2: float

    @classmethod
    def load(cls, path: str | Path) -> Head:
        """Read head.npz (float32, as stored: float32 products are twice as fast)."""
        with np.load(path) as z:
            bn = "bn_scale" in z.files
            return cls(z["w1"], z["b1"], z["bn_scale"] if bn else None,
                       z["bn_shift"] if bn else None, z["w2"].reshape(-1),
                       float(z["b2"].reshape(-1)[0]))

    def save(self, path: str | Path) -> None:
        arrays = dict(w1=self.w1.astype(np.float32), b1=self.b1.astype(np.float32),
                      w2=self.w2.astype(np.float32), b2=np.float32(self.b2))
        if self.bn_scale is not None:
            arrays.update(bn_scale=self.bn_scale.astype(np.float32),
                          bn_shift=self.bn_shift.astype(np.float32))
        with open(path, "wb") as f:
            np.savez(f, **arrays)

    def logit(self, pooled: np.ndarray) -> float:
        """The logit from the pooled feature vector (channels,) (a check on the runtime's)."""
        with _one_blas_thread():
            a = np.maximum(pooled @ self.w1 + self.b1, 0.0)
            if self.bn_scale is not None:
                a = a * self.bn_scale + self.bn_shift
            return float(a @ self.w2 + self.b2)

    def logit_gradient(self, pooled: np.ndarray) -> np.ndarray:
        """d logit / d pooled: (channels,) for one pooled vector, (n, channels) for n."""
        with _one_blas_thread():
            z = pooled @ self.w1 + self.b1
            back = (z > 0) * self.w2
            if self.bn_scale is not None:
                back = back * self.bn_scale
            return back @ self.w1.T


def gradcam(features: np.ndarray, head: Head, *, target: str = "favourable") -> np.ndarray:
    """Grad-CAM (rows, cols) in 0..1 from a (rows, cols, channels) feature map."""
    return gradcam_batch(np.asarray(features)[None], head, target=target)[0]


def gradcam_batch(features: np.ndarray, head: Head, *, target: str = "favourable") -> np.ndarray:
    """Grad-CAM (n, rows, cols), each map in 0..1, from (n, rows, cols, channels) feature maps
    (one pair of matrix products for the whole batch)."""
    if target not in ("favourable", "poor"):
        raise ValueError("target must be 'favourable' or 'poor'")
    f = np.asarray(features, head.w1.dtype)
    n, rows, cols, _ = f.shape
    alpha = head.logit_gradient(f.mean(axis=(1, 2))) / (rows * cols)  # (n, channels)
    if target == "poor":
        alpha = -alpha
    cam = np.maximum(np.einsum("nijc,nc->nij", f.astype(np.float64),
                               alpha.astype(np.float64)), 0.0)
    top = cam.max(axis=(1, 2), keepdims=True)
    return np.divide(cam, top, out=np.zeros_like(cam), where=top > 0)


@cache
def interpolation_matrix(n_out: int, n_in: int) -> np.ndarray:
    """(n_out, n_in) linear interpolation under the pixel-centre convention: output pixel ``i``
    samples input coordinate ``(i + 0.5) * n_in / n_out - 0.5``, clamped at the outermost
    centres (the same as ``skimage.transform.resize(order=1, mode='edge')``)."""
    pos = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = pos - lo
    m = np.zeros((n_out, n_in))
    m[np.arange(n_out), lo] += 1 - frac
    m[np.arange(n_out), hi] += frac
    m.setflags(write=False)
    return m


def upsample(cam: np.ndarray, size: int = 100) -> np.ndarray:
    """The map on the model input (size x size), pixel-centre convention (module docstring);
    separable bilinear interpolation as two small matrix products."""
    cam = np.asarray(cam, np.float64)
    return (interpolation_matrix(size, cam.shape[0]) @ cam
            @ interpolation_matrix(size, cam.shape[1]).T)
