"""The anatomical midline of an axial slice: the centre of the spinal canal.

Patients lie off-centre and rotated, so the image centre says nothing about which side of the
patient an ROI is on (docs/architecture.md, invariant 1). On an axial T2 slice of the cervical
spine the
canal is a bright ellipse of CSF (about 24 x 13 mm) around the intermediate-signal cord, near the
middle of the image's anterior-posterior extent. :func:`find_canal` looks for it by normalised
cross-correlation with such a template, on the slice brought to radiological orientation and
resampled to 1 mm pixels, over a few in-plane rotations; it says so (returns ``None``) when
nothing looks enough like a canal.

:func:`roi_position` then tells, in patient coordinates, on which side of the canal's centre the
ROI's centre lies (along the anatomy's own left-right axis) and whether the ROI reaches across
it. See docs/architecture.md ("Side from anatomy").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import RoiError
from .geometry import SliceGeometry

GRID_MM = 1.0  # the search runs on 1 mm pixels
SEARCH_LR_MM = 45.0  # the canal is looked for this far left and right of the image centre
SEARCH_AP_MM = (-40.0, 50.0)  # ... and this far anterior (-) / posterior (+)
ANGLES_DEG = (-12.0, -6.0, 0.0, 6.0, 12.0)
MIN_SCORE = 0.45  # normalised cross-correlation below which the canal counts as not found
CROSS_MARGIN_MM = 6.0  # an ROI reaching this far past the canal's centre crosses the midline
_CANAL = (12.0, 6.5)  # template semi-axes (mm): CSF-filled canal
_CORD = (6.5, 4.0)  # ... and the cord inside it
_HALF = (20.0, 13.0)  # template half-size (mm)

Rect = tuple[int, int, int, int]


@dataclass(frozen=True)
class Canal:
    """Where the spinal canal is on one slice."""

    row: float  # centre, stored pixel coordinates (fractional)
    col: float
    centre_mm: tuple[float, float, float]  # centre in patient coordinates (LPS, mm)
    lateral: tuple[float, float, float]  # unit vector towards the patient's left, in the
    # slice plane, turned with the anatomy (patient coordinates)
    angle_deg: float  # in-plane rotation of the anatomy found (radiological view)
    score: float  # normalised cross-correlation at the match (0..1)


@dataclass(frozen=True)
class RoiPosition:
    """An ROI relative to the canal: the side of its centre, and how far it reaches."""

    side: str  # 'left' or 'right' (the patient's) of the ROI's centre
    centre_mm: float  # signed distance of the ROI's centre from the midline (+ = left)
    reach_mm: tuple[float, float]  # (most rightward, most leftward) signed distance of its
    # corners from the midline

    @property
    def crosses(self) -> bool:
        lo, hi = self.reach_mm
        return lo < -CROSS_MARGIN_MM and hi > CROSS_MARGIN_MM


def _template(angle_deg: float) -> np.ndarray:
    hu, hv = _HALF
    u = np.arange(-hu, hu + GRID_MM / 2, GRID_MM)
    v = np.arange(-hv, hv + GRID_MM / 2, GRID_MM)
    vv, uu = np.meshgrid(v, u, indexing="ij")
    a = np.deg2rad(angle_deg)
    c, s = np.cos(a), np.sin(a)
    x, y = c * uu + s * vv, -s * uu + c * vv

    def inside(ax, ay):  # soft ellipse membership, about 1 mm edge
        r = np.sqrt((x / ax) ** 2 + (y / ay) ** 2)
        return 1.0 / (1.0 + np.exp(np.clip((r - 1.0) * min(ax, ay) / 0.5, -30, 30)))

    t = 0.25 + 0.75 * inside(*_CANAL)
    return (t - 0.55 * inside(*_CORD)).astype(np.float32)


_TEMPLATES = {a: _template(a) for a in ANGLES_DEG}


def _canonical_grid(values: np.ndarray, geometry: SliceGeometry):
    """The slice in radiological orientation on a 1 mm grid, and how to map its pixels back:
    (image, dihedral, canonical shape, canonical spacing)."""
    from .preprocess import resample

    d = geometry.canonical_transform()
    canon = np.asarray(d.apply(np.asarray(values, np.float32)), np.float32)
    sr, sc = geometry.spacing
    if d.transpose:
        sr, sc = sc, sr
    rows, cols = canon.shape
    out = (max(8, int(round(rows * sr / GRID_MM))), max(8, int(round(cols * sc / GRID_MM))))
    return resample(canon, out), d, canon.shape, (sr, sc)


def find_canal(values: np.ndarray, geometry: SliceGeometry) -> Canal | None:
    """The spinal canal on an axial slice, or ``None`` where nothing looks enough like it.

    ``values``: (rows, columns) modality values as stored. Raises
    :class:`~.errors.GeometryError` for a slice that is not axial."""
    from skimage.feature import match_template

    img, d, cshape, (sr, sc) = _canonical_grid(values, geometry)
    if not np.isfinite(img).all():
        img = np.nan_to_num(img)
    lo, hi = np.percentile(img, [1, 99])
    if hi - lo <= 1e-6 * max(1.0, abs(float(hi))):
        return None
    img = np.clip((img - lo) / (hi - lo), 0, 1).astype(np.float32)
    gr, gc = img.shape
    # the search window around the image centre, in 1 mm grid pixels
    r0 = max(0, int((gr - 1) / 2 + SEARCH_AP_MM[0] / GRID_MM))
    r1 = min(gr, int((gr - 1) / 2 + SEARCH_AP_MM[1] / GRID_MM) + 1)
    c0 = max(0, int((gc - 1) / 2 - SEARCH_LR_MM / GRID_MM))
    c1 = min(gc, int((gc - 1) / 2 + SEARCH_LR_MM / GRID_MM) + 1)
    best = (-2.0, 0.0, 0, 0)
    for angle, t in _TEMPLATES.items():
        if t.shape[0] >= gr or t.shape[1] >= gc:
            return None
        score = match_template(img, t, pad_input=True, mode="edge")
        window = score[r0:r1, c0:c1]
        i = int(np.argmax(window))
        r, c = divmod(i, window.shape[1])
        if window[r, c] > best[0]:
            best = (float(window[r, c]), angle, r + r0, c + c0)
    score, angle, r, c = best
    if score < MIN_SCORE:
        return None
    # sub-pixel refinement: parabola through the neighbours of the peak (best angle)
    s = match_template(img, _TEMPLATES[angle], pad_input=True, mode="edge")
    dr = dc = 0.0
    if 0 < r < gr - 1:
        a, b, e = s[r - 1, c], s[r, c], s[r + 1, c]
        den = a - 2 * b + e
        dr = 0.5 * (a - e) / den if den < 0 else 0.0
    if 0 < c < gc - 1:
        a, b, e = s[r, c - 1], s[r, c], s[r, c + 1]
        den = a - 2 * b + e
        dc = 0.5 * (a - e) / den if den < 0 else 0.0
    # 1 mm grid -> canonical pixels (pixel-centre convention) -> stored pixels
    rr = ((r + dr + 0.5) * GRID_MM / sr) - 0.5
    cc = ((c + dc + 0.5) * GRID_MM / sc) - 0.5
    row, col = d.point_from_canonical(rr, cc, cshape)
    centre = geometry.pixel_to_patient(row, col)
    r_dir, c_dir = d.directions(geometry.row_cos, geometry.col_cos)  # canonical: +u left, +v P
    a = np.deg2rad(angle)
    lateral = np.cos(a) * np.asarray(r_dir, float) + np.sin(a) * np.asarray(c_dir, float)
    lateral /= np.linalg.norm(lateral)
    return Canal(float(row), float(col), tuple(float(v) for v in centre),
                 tuple(float(v) for v in lateral), float(angle), score)


def roi_position(geometry: SliceGeometry, roi: Rect, canal: Canal) -> RoiPosition:
    """Where the ROI (x, y, w, h in stored pixels) lies relative to the canal's centre, along
    the anatomy's left-right axis, in mm."""
    x, y, w, h = roi
    centre = np.asarray(canal.centre_mm, float)
    axis = np.asarray(canal.lateral, float)

    def lateral(row, col):
        return float(np.dot(geometry.pixel_to_patient(row, col) - centre, axis))

    mid = lateral(y + (h - 1) / 2, x + (w - 1) / 2)
    # the rectangle's outer edges (half a pixel beyond the outer pixel centres)
    corners = [lateral(r, c) for r in (y - 0.5, y + h - 0.5) for c in (x - 0.5, x + w - 0.5)]
    return RoiPosition("left" if mid > 0 else "right", mid, (min(corners), max(corners)))


class MidlineNotFoundError(RoiError):
    """The spinal canal was not found on the slice: the side cannot be checked."""

    def __init__(self, message: str = "The spinal canal was not found on this slice, so the "
                 "side of the ROI cannot be checked. Confirm the injection side.", path=None):
        super().__init__(message, path)
