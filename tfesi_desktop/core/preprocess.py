"""The model input: one function for training, the command line and the desktop program.

From a slice's modality values, an ROI in stored pixels and the injection side:

1. crop the ROI (stored pixels, x = column, y = row of the top-left corner);
2. reorient to radiological orientation (anterior up, patient's right on the image's left) from
   ImageOrientationPatient (:meth:`SliceGeometry.canonical_transform`);
3. mirror a left-side crop left-right, so that every input looks like a right foramen (paper,
   Figure 1);
4. resample to 100x100 (:func:`resample_matrix`: pixel-centre convention, output pixel ``i``
   samples input coordinate ``(i + 0.5) * in / out - 0.5``; bilinear when enlarging, a triangle
   filter as wide as the scale factor when shrinking, so shrinking does not alias);
5. normalise intensities from modality values: percentiles 1 and 99 *inside the ROI* map to 0
   and 255 (clipped), so neither the viewer's window/level nor the storage (rescale, MONOCHROME1,
   compression) changes the input;
6. three identical channels, float32, shape (100, 100, 3), values 0..255.

A hand-drawn ROI varies by millimetres, so a prediction is made on a fixed set of ROIs around
the one drawn (:data:`TTA_CROPS`, test-time augmentation, see docs/architecture.md) and training
jitters the ROI over a wider range (:func:`jitter_roi`): both go through :func:`model_input`.

:meth:`RoiTransform.to_stored` is the inverse for maps: a map on the canonical crop back onto the
ROI in stored pixels. Any change to these steps must bump :data:`PREPROCESSING_VERSION`; model
bundles record it and a bundle made with another version is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import RoiError
from .geometry import Dihedral, SliceGeometry
from .resample import resample, resample_matrix  # noqa: F401 - part of this module's API

# 2: own anti-aliased resampling (matrices), test-time augmentation over TTA_CROPS
PREPROCESSING_VERSION = 2
INPUT_SIZE = 100
MIN_ROI_PIXELS = 16
PERCENTILES = (1.0, 99.0)

Rect = tuple[int, int, int, int]
Crop = tuple[float, float, float]  # (dx, dy, scale): shift in ROI widths/heights, size factor

# The fixed set of ROIs a prediction averages over: the ROI as drawn, the eight shifted by 10 %
# of its size (a 3x3 grid), and four rescaled by 0.88-1.12 about its centre. Order matters only
# for reproducibility; the first is the ROI as drawn.
TTA_CROPS: tuple[Crop, ...] = (
    (0.0, 0.0, 1.0),
    (-0.1, -0.1, 1.0), (0.0, -0.1, 1.0), (0.1, -0.1, 1.0),
    (-0.1, 0.0, 1.0), (0.1, 0.0, 1.0),
    (-0.1, 0.1, 1.0), (0.0, 0.1, 1.0), (0.1, 0.1, 1.0),
    (0.0, 0.0, 0.88), (0.0, 0.0, 0.94), (0.0, 0.0, 1.06), (0.0, 0.0, 1.12),
)


def check_roi(roi: Rect, shape: tuple[int, int]) -> Rect:
    """The ROI as ints if it lies inside an image of ``shape`` (rows, columns) and is at least
    16 pixels on each side; :class:`RoiError` otherwise."""
    try:
        x, y, w, h = (int(round(float(v))) for v in roi)
    except (TypeError, ValueError, OverflowError) as e:
        raise RoiError("The region must be four numbers: x, y, width, height.") from e
    rows, cols = shape
    if w < MIN_ROI_PIXELS or h < MIN_ROI_PIXELS:
        raise RoiError(f"The region is {w}x{h} pixels; it must be at least {MIN_ROI_PIXELS} "
                       "pixels wide and high.")
    if x < 0 or y < 0 or x + w > cols or y + h > rows:
        raise RoiError(f"The region ({x},{y}) {w}x{h} reaches outside the image, which is "
                       f"{cols} pixels wide and {rows} high.")
    return x, y, w, h


def jitter_roi(roi: Rect, crop: Crop, shape: tuple[int, int]) -> Rect:
    """The ROI shifted by ``dx`` widths and ``dy`` heights and scaled by ``scale`` about its
    centre, in stored pixels, moved (not cut) to lie inside an image of ``shape``."""
    x, y, w, h = roi
    dx, dy, s = crop
    rows, cols = shape
    nw = int(min(max(round(w * s), 2), cols))
    nh = int(min(max(round(h * s), 2), rows))
    cx, cy = x + w / 2 + dx * w, y + h / 2 + dy * h
    nx = int(min(max(round(cx - nw / 2), 0), cols - nw))
    ny = int(min(max(round(cy - nh / 2), 0), rows - nh))
    return nx, ny, nw, nh


@dataclass(frozen=True)
class RoiTransform:
    """How the model input was made from the slice, and how to map a map back."""

    roi: Rect  # stored pixels
    dihedral: Dihedral  # stored -> radiological
    mirrored: bool  # left side: mirrored to look like a right foramen
    canonical_shape: tuple[int, int]  # crop shape after reorientation (rows, columns)

    def to_stored(self, m: np.ndarray) -> np.ndarray:
        """A map on the model input (any square size, pixel-centre convention) as a (h, w) map
        on this ROI in stored pixels, float64."""
        out = resample(m, self.canonical_shape).astype(np.float64)
        if self.mirrored:
            out = out[:, ::-1]
        return np.ascontiguousarray(self.dihedral.invert(out))

    def to_canonical(self, stored: np.ndarray) -> np.ndarray:
        """A (h, w) map on the ROI in stored pixels as seen on the 100x100 model input."""
        c = self.dihedral.apply(np.asarray(stored, np.float64))
        if self.mirrored:
            c = c[:, ::-1]
        return resample(c, (INPUT_SIZE, INPUT_SIZE)).astype(np.float64)


@dataclass(frozen=True)
class ModelInput:
    image: np.ndarray  # (100, 100, 3) float32, 0..255
    transform: RoiTransform
    intensity_range: tuple[float, float]  # modality values mapped to 0 and 255


def _side(side: str) -> str:
    if side not in ("left", "right"):
        raise RoiError(f"The injection side must be 'left' or 'right', not {side!r}.")
    return side


def _crop_input(values: np.ndarray, d: Dihedral, roi: Rect, side: str) -> ModelInput:
    x, y, w, h = roi
    crop = d.apply(np.asarray(values[y:y + h, x:x + w], np.float32))
    canonical_shape = crop.shape
    if side == "left":
        crop = crop[:, ::-1]
    if not np.isfinite(crop).all():
        raise RoiError("The region holds pixels that are not numbers (damaged image).")
    lo, hi = np.percentile(crop, PERCENTILES)
    if hi - lo <= 1e-6 * max(1.0, abs(float(hi))):
        raise RoiError("The region holds no contrast (all its pixels have the same value).")
    small = resample(crop, (INPUT_SIZE, INPUT_SIZE))
    img = np.clip((small - lo) * np.float32(255.0 / (hi - lo)), 0.0, 255.0)
    return ModelInput(np.repeat(img[:, :, None], 3, axis=2).astype(np.float32),
                      RoiTransform(roi, d, side == "left", canonical_shape),
                      (float(lo), float(hi)))


def _orientation(geometry: SliceGeometry | Dihedral) -> Dihedral:
    return geometry if isinstance(geometry, Dihedral) else geometry.canonical_transform()


def model_input(values: np.ndarray, geometry: SliceGeometry | Dihedral, roi: Rect, side: str, *,
                crop: Crop | None = None) -> ModelInput:
    """The canonical 100x100x3 input for the ROI on this slice (see the module docstring).

    ``values``: (rows, columns) modality values of the slice as stored (or a stored part of it);
    ``geometry``: the slice's geometry, or just its stored-to-radiological :class:`Dihedral`;
    ``roi`` in stored pixels (checked: inside the image, at least 16 pixels). ``crop``: the ROI
    jittered by :func:`jitter_roi` first (test-time augmentation and training).
    """
    roi = check_roi(roi, values.shape)
    d = _orientation(geometry)
    if crop is not None:
        roi = jitter_roi(roi, crop, values.shape)
    return _crop_input(values, d, roi, _side(side))


def model_inputs(values: np.ndarray, geometry: SliceGeometry | Dihedral, roi: Rect, side: str,
                 *, crops=TTA_CROPS) -> list[ModelInput]:
    """:func:`model_input` for each of ``crops`` around the ROI (the first is normally the ROI
    as drawn), the inputs of one stable prediction."""
    roi = check_roi(roi, values.shape)
    d = _orientation(geometry)
    side = _side(side)
    return [_crop_input(values, d, jitter_roi(roi, c, values.shape), side) for c in crops]
