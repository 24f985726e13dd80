"""Linear resampling of 2-D arrays under the pixel-centre convention (no dependencies inside the
package: the model input, :mod:`.preprocess`, and the canal search, :mod:`.midline`, both use it).

Output pixel ``i`` samples input coordinate ``(i + 0.5) * in / out - 0.5``; bilinear when
enlarging, a triangle filter as wide as the scale factor when shrinking, so shrinking does not
alias.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=512)
def resample_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) linear resampling under the pixel-centre convention (module docstring).

    Enlarging: bilinear between input centres, constant beyond the outermost ones. Shrinking by
    a factor ``f``: a triangle filter ``f`` input pixels wide (half-width), rows normalised, so
    detail finer than an output pixel is averaged rather than aliased. Read-only, float32."""
    f = n_in / n_out
    pos = (np.arange(n_out) + 0.5) * f - 0.5
    support = max(f, 1.0)
    src = np.arange(n_in)
    wgt = np.maximum(0.0, 1.0 - np.abs(pos[:, None] - src[None, :]) / support)
    if f <= 1.0:  # enlarging: clamp at the outermost centres, as mode='edge'
        p = np.clip(pos, 0, n_in - 1)
        wgt = np.maximum(0.0, 1.0 - np.abs(p[:, None] - src[None, :]))
    wgt /= wgt.sum(axis=1, keepdims=True)
    m = wgt.astype(np.float32)
    m.setflags(write=False)
    return m


def resample(a: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``a`` (rows, columns) resampled to ``shape`` with :func:`resample_matrix`, float32."""
    a = np.asarray(a, np.float32)
    return resample_matrix(a.shape[0], shape[0]) @ a @ resample_matrix(a.shape[1], shape[1]).T
