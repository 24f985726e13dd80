"""The spinal cord's course from a sagittal series, to tell where the canal is on each axial
slice of the same Frame of Reference (no Qt; docs/architecture.md, "Side from anatomy").

On a sagittal T2 the canal is a bright band (CSF, the cord inside it) 10-17 mm wide from front
to back, continuous from the head to the feet, between the vertebral bodies in front and the
laminae behind. Each sagittal slice is brought upright (:func:`upright_transform`: rows towards
the feet, columns towards the back) on a 1 mm grid; each row's profile is matched with a bright
band between darker flanks (widths :data:`BAND_MM`); a dynamic programme finds the smoothest
path through the best responses (at most 1 mm forward or back per mm down) on the slice in the
middle of those that see the band (the canal spans 20-27 mm from side to side; its edges, CSF
only, respond most). The path's left-right position is then measured at each height across the
slices (:func:`_left_right`). :meth:`CordCourse.at` then gives the path's crossing of an
axial plane: where :func:`.midline.find_canal` should look.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .geometry import Dihedral, SliceGeometry
from .resample import resample

GRID_MM = 1.0
BAND_MM = (10, 13, 16)  # bright band widths tried (front to back), mm
FLANK_MM = 4  # darker tissue on each side of the band, mm
STEP_MM = 1  # the path moves at most this far front/back per mm down
CORD_WEIGHT = 2.0  # how much a core darker than the band's edges (the cord in its CSF) counts
MIN_RESPONSE = 0.12  # mean band-minus-flanks contrast (0..1) below which there is no cord
SKIN_MM = 20.0  # the canal's centre lies at least this deep in the neck (phantom and real: 35-60)
TISSUE = 0.1  # normalised intensity (smoothed) above which a pixel is tissue, not air
LR_HALF_MM = 12.0  # the left-right profile compared with its mirror this far each side, mm
LR_LEAST_MM = 6.0  # ... or, near the slab's edge, at least this far (the cord's half-width)
EXTEND_MM = 10.0  # the course is continued this far beyond its ends, mm
LR_SMOOTH_MM = 4.0  # the left-right position is smoothed along the course over this, mm


def upright_transform(geometry: SliceGeometry) -> Dihedral:
    """The flip/transpose that shows a sagittal or coronal slice with the head up and, across,
    anterior on the left (sagittal) or the patient's right on the left (coronal), whatever the
    storage: screen down towards the feet (-z), screen right towards posterior (+y, sagittal)
    or the patient's left (+x, coronal)."""
    n = np.abs(geometry.normal)
    across = np.array([0.0, 1.0, 0.0]) if n[0] >= n[1] else np.array([1.0, 0.0, 0.0])

    def upright(d):
        r, c = d.directions(geometry.row_cos, geometry.col_cos)
        return -float(c[2]) + float(np.dot(r, across)), not d.transpose

    return max(Dihedral.all(), key=upright)


@dataclass(frozen=True)
class CordCourse:
    """The cord's course: points (patient LPS mm) from the head down, and how clearly it was
    seen (mean band contrast on the path, 0..1)."""

    points: np.ndarray  # (n, 3)
    response: float

    def at(self, geometry: SliceGeometry) -> tuple[float, float, float] | None:
        """Where the course crosses the plane of ``geometry`` (mm); a plane up to
        :data:`EXTEND_MM` beyond an end (the sagittal's field of view stops short of the
        axial's top or bottom slice) gets the course continued straight from its last
        :data:`EXTEND_MM`; None beyond that."""
        n = geometry.normal / np.linalg.norm(geometry.normal)
        off = (self.points - np.asarray(geometry.position, float)) @ n
        for i in range(len(off) - 1):
            a, b = off[i], off[i + 1]
            if a == 0 or a * b < 0 or b == 0:
                t = a / (a - b) if a != b else 0.0
                p = self.points[i] + t * (self.points[i + 1] - self.points[i])
                return tuple(float(v) for v in p)
        k = max(2, int(round(EXTEND_MM / GRID_MM)))
        for end, inner in ((self.points[0], self.points[min(k, len(self.points) - 1)]),
                           (self.points[-1], self.points[max(0, len(self.points) - 1 - k)])):
            step = end - inner  # outwards
            a, b = float(np.dot(end - np.asarray(geometry.position, float), n)), \
                float(np.dot(step, n))
            if abs(b) < 1e-6 or a * b > 0:
                continue  # parallel, or the plane lies on the other side of this end
            t = -a / b  # end + t * step lies on the plane, t > 0 outwards
            if t * np.linalg.norm(step) <= EXTEND_MM:
                return tuple(float(v) for v in end + t * step)
        return None


def _upright_grid(values: np.ndarray, geometry: SliceGeometry):
    d = upright_transform(geometry)
    img = np.asarray(d.apply(np.asarray(values, np.float32)), np.float32)
    sr, sc = geometry.spacing
    if d.transpose:
        sr, sc = sc, sr
    shape = (max(8, int(round(img.shape[0] * sr / GRID_MM))),
             max(8, int(round(img.shape[1] * sc / GRID_MM))))
    return resample(img, shape), d, img.shape, (sr, sc)


def _band_response(img: np.ndarray) -> np.ndarray:
    """(rows, cols): at each pixel the best, over the band widths, of the canal's profile from
    front to back: a band brighter than the darker flanks around it (bone, ligaments), with
    its edges (CSF) brighter than its core (the cord) - which a band of fat is not."""
    rows, cols = img.shape
    cs = np.concatenate([np.zeros((rows, 1)), np.cumsum(img, axis=1)], axis=1)
    centre = np.arange(cols)

    def mean(a, b):  # mean of columns [a, b) around each centre; ok where inside the image
        ok = (a >= 0) & (b <= cols)
        a, b = np.clip(a, 0, cols), np.clip(b, 0, cols)
        return (cs[:, b] - cs[:, a]) / np.maximum(b - a, 1), ok

    best = np.full((rows, cols), -1.0)
    for w in BAND_MM:
        half, core = w // 2, max(1, int(round(0.2 * w)))
        band, ok1 = mean(centre - half, centre + half)
        front, ok2 = mean(centre - half - FLANK_MM, centre - half)
        back, ok3 = mean(centre + half, centre + half + FLANK_MM)
        inner, _ = mean(centre - core, centre + core)
        edges = (band * 2 * half - inner * 2 * core) / (2 * half - 2 * core)
        r = band - 0.5 * (front + back) + CORD_WEIGHT * np.clip(edges - inner, 0.0, None)
        best = np.maximum(best, np.where((ok1 & ok2 & ok3)[None, :], r, -1.0))
    return best


def _inside_neck(img: np.ndarray) -> np.ndarray:
    """(rows, cols) bool: where the canal's centre may lie, at least :data:`SKIN_MM` inside
    the neck from the air in front of and behind it on that row. The fat under the skin is a
    bright band between air and muscle that the band profile also matches (on the phantom's
    sagittal it outscored the canal in 6 of 20 patients); rows with no air at an end of the
    image are not limited at that end."""
    from scipy.ndimage import gaussian_filter, label

    tissue = gaussian_filter(img, 2.0 / GRID_MM) > TISSUE
    lab, n = label(tissue)
    if n == 0:
        return np.zeros(img.shape, bool)
    body = lab == 1 + int(np.argmax(np.bincount(lab.ravel())[1:]))
    rows, cols = img.shape
    any_ = body.any(axis=1)
    first = np.where(any_, np.argmax(body, axis=1), cols)
    last = np.where(any_, cols - 1 - np.argmax(body[:, ::-1], axis=1), -1)
    margin = int(round(SKIN_MM / GRID_MM))
    lo = np.where(first > 0, first + margin, 0)
    hi = np.where(last < cols - 1, last - margin, cols - 1)
    c = np.arange(cols)[None, :]
    return (c >= lo[:, None]) & (c <= hi[:, None]) & any_[:, None]


def _path(resp: np.ndarray) -> tuple[np.ndarray, float]:
    """The column per row maximising the summed response, moving at most STEP_MM per row."""
    rows, cols = resp.shape
    score = resp[0].copy()
    back = np.zeros((rows, cols), int)
    for i in range(1, rows):
        shifted = np.stack([np.roll(score, s) if s else score for s in
                            range(-STEP_MM, STEP_MM + 1)])
        for k, s in enumerate(range(-STEP_MM, STEP_MM + 1)):  # no wrap-around
            if s > 0:
                shifted[k, :s] = -np.inf
            elif s < 0:
                shifted[k, s:] = -np.inf
        k = np.argmax(shifted, axis=0)
        back[i] = np.arange(cols) - (k - STEP_MM)
        score = shifted[k, np.arange(cols)] + resp[i]
    col = np.empty(rows, int)
    col[-1] = int(np.argmax(score))
    for i in range(rows - 1, 0, -1):
        col[i - 1] = back[i, col[i]]
    return col, float(score.max() / rows)


def cord_course(slices) -> CordCourse | None:
    """The cord's course from a sagittal series: ``slices`` is [(values (rows, cols) modality
    values as stored, SliceGeometry)]; None when no slice shows a continuous bright canal."""
    found = []
    for values, g in slices:
        if g is None or int(np.argmax(np.abs(g.normal))) != 0:
            continue
        img, d, cshape, (sr, sc) = _upright_grid(values, g)
        lo, hi = np.percentile(img, [1, 99])
        if hi - lo <= 1e-6 * max(1.0, abs(float(hi))):
            continue
        img = np.clip((img - lo) / (hi - lo), 0, 1)
        resp = np.where(_inside_neck(img), _band_response(img), -1.0)
        found.append(_Slice(float(np.mean(resp.max(axis=1))), resp, img, d, cshape, (sr, sc), g))
    if not found:
        return None
    found.sort(key=lambda f: float(f.geometry.position[0]))
    # the canal spans the slices that see the band well; the midline is their middle (the most
    # responsive slice is often a lateral one: CSF only, no cord inside)
    top = max(f.quick for f in found)
    seen = [f for f in found if f.quick >= 0.7 * top]
    xs = np.array([float(f.geometry.position[0]) for f in seen])
    mid = 0.5 * (xs.min() + xs.max())
    ref = min(seen, key=lambda f: abs(f.geometry.position[0] - mid))
    col, response = _path(ref.resp)
    if response < MIN_RESPONSE:
        return None
    from scipy.ndimage import median_filter

    col = median_filter(col.astype(float), size=9, mode="nearest")
    lr = _left_right(found, seen, col, ref)
    points = []
    for r, c in zip(np.arange(len(col), dtype=float), col, strict=True):
        rr = (r + 0.5) * GRID_MM / ref.spacing[0] - 0.5
        cc = (c + 0.5) * GRID_MM / ref.spacing[1] - 0.5
        p = ref.geometry.pixel_to_patient(*ref.d.point_from_canonical(rr, cc, ref.cshape))
        p[0] = lr[int(r)] if len(seen) > 1 else p[0]
        points.append(p)
    return CordCourse(np.asarray(points, float), response)


@dataclass(frozen=True)
class _Slice:
    quick: float  # mean over rows of the best band response: how well it sees the canal
    resp: np.ndarray  # (rows, cols) band response, upright 1 mm grid
    img: np.ndarray  # (rows, cols) 0..1 intensities, same grid
    d: Dihedral
    cshape: tuple[int, int]
    spacing: tuple[float, float]
    geometry: SliceGeometry


def _left_right(found, seen, col, ref) -> np.ndarray:
    """The canal's left-right position (patient x, mm) at each row of the path: the centre of
    symmetry of the left-right intensity profile across the sagittal slices at the path's
    depth (bright CSF on both sides of the cord, darker bone and ligament beyond), followed
    head to foot by the same dynamic programme, kept within the slices that see the canal.
    Where the slices span too little for a profile (under twice :data:`LR_HALF_MM`), the
    response-weighted middle of the slices that see it, the same at every height."""
    xs_seen = np.array([float(f.geometry.position[0]) for f in seen])
    w = np.array([f.quick for f in seen]) - 0.7 * max(f.quick for f in seen) + 1e-3
    fallback = float(np.sum(w * xs_seen) / np.sum(w))
    rows = len(col)
    xs = np.array([float(f.geometry.position[0]) for f in found])
    same_grid = all(f.img.shape == ref.img.shape and np.allclose(
        f.geometry.position[1:], ref.geometry.position[1:], atol=GRID_MM) for f in found)
    if xs.max() - xs.min() < 2 * LR_HALF_MM + 4 * GRID_MM or not same_grid:
        return np.full(rows, fallback)
    r = np.arange(rows)
    c = np.clip(col.astype(int)[:, None] + np.arange(-2, 3)[None, :], 0, ref.img.shape[1] - 1)
    prof = np.stack([f.img[r[:, None], c].mean(axis=1) for f in found], axis=1)  # (rows, sl)
    grid = np.arange(xs.min(), xs.max() + 1e-6, GRID_MM)
    prof = np.stack([np.interp(grid, xs, p) for p in prof])  # (rows, 1 mm across)
    full, least = int(round(LR_HALF_MM / GRID_MM)), int(round(LR_LEAST_MM / GRID_MM))
    n = len(grid)
    score = np.full((rows, n), -1.0)
    for k in range(least, n - least):
        t = min(full, k, n - 1 - k)  # near the slab's edge, the part of the mirror inside it
        a, b = prof[:, k + 1:k + t + 1], prof[:, k - t:k][:, ::-1]  # after k, mirrored before
        # brighter around than at the centre (CSF beside the cord), and alike on both sides
        score[:, k] = 0.5 * (a + b).mean(axis=1) - prof[:, k] - np.abs(a - b).mean(axis=1)
    inside = (grid >= xs_seen.min() - 1e-6) & (grid <= xs_seen.max() + 1e-6)
    score[:, ~inside] = -1.0
    k, _ = _path(score)
    from scipy.ndimage import gaussian_filter1d, median_filter

    x = median_filter(grid[k], size=9, mode="nearest")
    return gaussian_filter1d(x, LR_SMOOTH_MM / GRID_MM, mode="nearest")
