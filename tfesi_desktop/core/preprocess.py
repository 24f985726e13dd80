"""The model input: one function for training, the command line and the desktop program.

From a slice's modality values, an ROI in stored pixels and the injection side:

1. crop the ROI (stored pixels, x = column, y = row of the top-left corner);
2. reorient to radiological orientation (anterior up, patient's right on the image's left) from
   ImageOrientationPatient (:meth:`SliceGeometry.canonical_transform`);
3. mirror a left-side crop left-right, so that every input looks like a right foramen (paper,
   Figure 1);
4. resize to 100x100 with anti-aliasing (bilinear, pixel-centre convention: output pixel ``i``
   samples input coordinate ``(i + 0.5) * in / out - 0.5``, as ``skimage.transform.resize``);
5. normalise intensities from modality values: percentiles 1 and 99 *inside the ROI* map to 0
   and 255 (clipped), so neither the viewer's window/level nor the storage (rescale, MONOCHROME1,
   compression) changes the input;
6. three identical channels, float32, shape (100, 100, 3), values 0..255.

:meth:`RoiTransform.to_stored` is the inverse for maps: a 100x100 map back onto the ROI in stored
pixels. Any change to these steps must bump :data:`PREPROCESSING_VERSION`; model bundles record it
and a bundle made with another version is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import RoiError, SideMismatchError
from .geometry import Dihedral, SliceGeometry

PREPROCESSING_VERSION = 1
INPUT_SIZE = 100
MIN_ROI_PIXELS = 16
PERCENTILES = (1.0, 99.0)

Rect = tuple[int, int, int, int]


def check_roi(roi: Rect, shape: tuple[int, int]) -> Rect:
    """The ROI as ints if it lies inside an image of ``shape`` (rows, columns) and is at least
    16 pixels on each side; :class:`RoiError` otherwise."""
    try:
        x, y, w, h = (int(round(float(v))) for v in roi)
    except (TypeError, ValueError) as e:
        raise RoiError("The region must be four numbers: x, y, width, height.") from e
    rows, cols = shape
    if w < MIN_ROI_PIXELS or h < MIN_ROI_PIXELS:
        raise RoiError(f"The region is {w}x{h} pixels; it must be at least {MIN_ROI_PIXELS} "
                       "pixels wide and high.")
    if x < 0 or y < 0 or x + w > cols or y + h > rows:
        raise RoiError(f"The region ({x},{y}) {w}x{h} reaches outside the image, which is "
                       f"{cols} pixels wide and {rows} high.")
    return x, y, w, h


def roi_side(geometry: SliceGeometry, roi: Rect) -> str:
    """The patient side ('left'/'right') of the ROI's centre, from the geometry."""
    x, y, w, h = roi
    return geometry.patient_side(y + (h - 1) / 2, x + (w - 1) / 2)


def check_side(geometry: SliceGeometry, roi: Rect, side: str, *, allow_mismatch: bool = False):
    """Raise :class:`SideMismatchError` if the ROI is on the other side of the midline."""
    if side not in ("left", "right"):
        raise RoiError(f"The injection side must be 'left' or 'right', not {side!r}.")
    found = roi_side(geometry, roi)
    if found != side and not allow_mismatch:
        raise SideMismatchError(
            f"The region lies on the patient's {found} side, but the injection side is {side}. "
            "Check the side, or confirm that the region is right.")
    return found


@dataclass(frozen=True)
class RoiTransform:
    """How the model input was made from the slice, and how to map a map back."""

    roi: Rect  # stored pixels
    dihedral: Dihedral  # stored -> radiological
    mirrored: bool  # left side: mirrored to look like a right foramen
    canonical_shape: tuple[int, int]  # crop shape after reorientation (rows, columns)

    def to_stored(self, m: np.ndarray) -> np.ndarray:
        """A (100, 100) map on the model input as a (h, w) map on the ROI in stored pixels."""
        from skimage.transform import resize

        out = resize(np.asarray(m, np.float64), self.canonical_shape, order=1, mode="edge",
                     anti_aliasing=False)
        if self.mirrored:
            out = out[:, ::-1]
        return np.ascontiguousarray(self.dihedral.invert(out))


@dataclass(frozen=True)
class ModelInput:
    image: np.ndarray  # (100, 100, 3) float32, 0..255
    transform: RoiTransform
    intensity_range: tuple[float, float]  # modality values mapped to 0 and 255


def model_input(values: np.ndarray, geometry: SliceGeometry, roi: Rect, side: str) -> ModelInput:
    """The canonical 100x100x3 input for the ROI on this slice (see the module docstring).

    ``values``: (rows, columns) modality values of the slice as stored; ``roi`` in stored pixels.
    """
    roi = check_roi(roi, values.shape)
    if side not in ("left", "right"):
        raise RoiError(f"The injection side must be 'left' or 'right', not {side!r}.")
    from skimage.transform import resize  # 0.4 s to import: only when first needed

    x, y, w, h = roi
    d = geometry.canonical_transform()
    crop = d.apply(np.asarray(values, np.float64)[y:y + h, x:x + w])
    canonical_shape = crop.shape
    if side == "left":
        crop = crop[:, ::-1]
    lo, hi = np.percentile(crop, PERCENTILES)
    if not np.isfinite(lo) or not np.isfinite(hi) or hi - lo <= 1e-6 * max(1.0, abs(hi)):
        raise RoiError("The region holds no contrast (all its pixels have the same value).")
    small = resize(crop, (INPUT_SIZE, INPUT_SIZE), order=1, mode="edge", anti_aliasing=True)
    img = np.clip((small - lo) / (hi - lo) * 255.0, 0.0, 255.0).astype(np.float32)
    return ModelInput(np.repeat(img[:, :, None], 3, axis=2),
                      RoiTransform(roi, d, side == "left", canonical_shape),
                      (float(lo), float(hi)))


def slice_input(ref, roi: Rect, side: str) -> ModelInput:
    """:func:`model_input` for a :class:`~tfesi_desktop.core.dicom.SliceRef` (decodes it)."""
    from .dicom.pixels import modality_values

    return model_input(modality_values(ref), ref.require_geometry(), roi, side)
