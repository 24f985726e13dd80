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
from functools import lru_cache

import numpy as np

from .errors import RoiError
from .geometry import SliceGeometry
from .resample import resample

GRID_MM = 1.0  # the search runs on 1 mm pixels
SEARCH_LR_MM = 45.0  # the canal is looked for this far left and right of the image centre
SEARCH_AP_MM = (-40.0, 50.0)  # ... and this far anterior (-) / posterior (+)
GUIDE_MM = 12.0  # ... or this far from where the sagittal's cord says it is
ANGLES_DEG = (-15.0, -7.5, 0.0, 7.5, 15.0)
MIN_SCORE = 0.45  # normalised cross-correlation below which the canal counts as not found
ROOM_MM = 25.0  # a canal must lie this far inside the image: the foramina lie beside it
RING_CONTRAST = 0.15  # the canal's lead over the rim around it (0..1 intensities)
WEAK_RING_CONTRAST = 0.10  # ... and WEAK_CORE of the rim for the core: canal_candidates(weak)
WEAK_CORE = 0.7
MIN_SECTORS = 6  # of 8 around the canal, where it is brighter than its rim
AIR = 0.1  # 0..1 intensity (percentiles 1-99 of the slice) below which a ray is air
MIN_SYMMETRY = 0.3  # left-right symmetry of the neighbourhood about the canal (correlation)
CLOSE_MIN_SYMMETRY = 0.45  # ... for a match of the close templates, which see less around it:
# real canals found by them 0.53-0.92, a vein 35 mm beside the canal (real GRE) 0.38
MIN_SPREAD = 0.08  # 10-90 percentile range inside the canal: a real one is not flat
CT_AIR = -500.0  # values below this are CT numbers (air -1000 HU; MR magnitudes are >= 0): on
# CT the canal's CSF is darker than the bone around it, the templates' bright canal is bone there
# (pydicom's thoracic CT: the lamina, 0.57), so a CT slice is not searched
MAX_WIDTH_MM = 260.0  # the body across the canal, left to right: a neck is narrower (real
# cervical axials 150-214 mm, phantoms under 195), an abdomen (pydicom's MR: 297 mm) is not
CROSS_MARGIN_MM = 6.0  # an ROI reaching this far past the canal's centre crosses the midline
# The canal shapes searched (semi-axes, mm, left-right x anterior-posterior): adult cervical
# canals are 20-27 mm wide and 11-17 mm deep; each with a thick and a thin CSF ring (the cord's
# semi-axes as a fraction of the canal's). docs/architecture.md ("Side from anatomy").
CANAL_SHAPES = ((10.0, 5.5), (11.75, 7.0), (13.5, 8.5))
CORD_FRACTIONS = (0.55, 0.8)
_MARGIN = (8.0, 6.5)  # template half-size beyond the canal (mm): the bone and ligaments around
CLOSE_RIM_MM = 2.5  # the close templates see the canal and this much around it
CANDIDATES_APART_MM = 8.0  # canal_candidates' places lie this far apart at least, and score
CANDIDATES_MARGIN = 0.2  # ... at most this much below the best one
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


def _template(canal: tuple[float, float], cord_fraction: float, angle_deg: float) -> np.ndarray:
    """A canal of semi-axes ``canal`` (mm) filled with CSF (1.0) around a cord (0.45) whose
    semi-axes are ``cord_fraction`` of the canal's, in darker surroundings (0.25), turned by
    ``angle_deg``; 1 mm pixels. The cord is uniform: its grey matter may be brighter or darker
    than its white matter, so the template says nothing about it."""
    x, y = _frame(canal, angle_deg)

    def inside(ax, ay):  # soft ellipse membership, about 1 mm edge
        r = np.sqrt((x / ax) ** 2 + (y / ay) ** 2)
        return 1.0 / (1.0 + np.exp(np.clip((r - 1.0) * min(ax, ay) / 0.5, -30, 30)))

    t = 0.25 + 0.75 * inside(*canal)
    return (t - 0.55 * inside(canal[0] * cord_fraction, canal[1] * cord_fraction)
            ).astype(np.float32)


@lru_cache(maxsize=64)
def _templates(angle_deg: float) -> tuple[tuple[tuple[float, float], float, np.ndarray,
                                              np.ndarray | None], ...]:
    """(canal, cord fraction, template, mask): each shape whole (mask None: the bone and
    ligaments around the canal darker than it) and close (the mask keeps the canal and a
    :data:`CLOSE_RIM_MM` rim only: a small canal with a thin CSF ring, amid the bright fat and
    bone of the foramina, matches its whole template at 0.35 at best, and its close one at
    0.58)."""
    out = []
    for c in CANAL_SHAPES:
        for f in CORD_FRACTIONS:
            t = _template(c, f, angle_deg)
            out.append((c, f, t, None))
            out.append((c, f, t, _close_mask(c, angle_deg)))
    return tuple(out)


def _frame(canal: tuple[float, float], angle_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """The template grid's coordinates (mm) along the canal's own axes, turned by ``angle_deg``
    (1 mm pixels, the canal's semi-axes plus :data:`_MARGIN` each side)."""
    hu, hv = canal[0] + _MARGIN[0], canal[1] + _MARGIN[1]
    u = np.arange(-hu, hu + GRID_MM / 2, GRID_MM)
    v = np.arange(-hv, hv + GRID_MM / 2, GRID_MM)
    vv, uu = np.meshgrid(v, u, indexing="ij")
    a = np.deg2rad(angle_deg)
    return np.cos(a) * uu + np.sin(a) * vv, -np.sin(a) * uu + np.cos(a) * vv


def _close_mask(canal: tuple[float, float], angle_deg: float) -> np.ndarray:
    """1 inside the canal grown by :data:`CLOSE_RIM_MM`, 0 elsewhere (the template's grid)."""
    x, y = _frame(canal, angle_deg)
    return (((x / (canal[0] + CLOSE_RIM_MM)) ** 2 + (y / (canal[1] + CLOSE_RIM_MM)) ** 2)
            < 1.0).astype(np.float64)


def _canonical_grid(values: np.ndarray, geometry: SliceGeometry):
    """The slice in radiological orientation on a 1 mm grid, and how to map its pixels back:
    (image, dihedral, canonical shape, canonical spacing)."""
    d = geometry.canonical_transform()
    canon = np.asarray(d.apply(np.asarray(values, np.float32)), np.float32)
    sr, sc = geometry.spacing
    if d.transpose:
        sr, sc = sc, sr
    rows, cols = canon.shape
    out = (max(8, int(round(rows * sr / GRID_MM))), max(8, int(round(cols * sc / GRID_MM))))
    return resample(canon, out), d, canon.shape, (sr, sc)



class _Correlator:
    """Normalised cross-correlation of one image with many templates, by FFT (SciPy), only
    where it is needed: over ``window`` and one pixel around it (for the sub-pixel peak), the
    image continued by its edge values beyond its border. The map it returns has the image's
    shape (zero outside that region); its value at (r, c) compares the template centred there,
    as ``skimage.feature.match_template(img, t, pad_input=True, mode="edge")`` does."""

    def __init__(self, img: np.ndarray, window: tuple[int, int, int, int]):
        gr, gc = img.shape
        r0, r1, c0, c1 = window
        self.shape = img.shape
        self.out = (max(0, r0 - 1), min(gr, r1 + 1), max(0, c0 - 1), min(gc, c1 + 1))
        self.pad = max(x[2].shape[0] for x in _templates(0.0)), \
            max(x[2].shape[1] for x in _templates(0.0))
        self.img = np.pad(img.astype(np.float64), ((self.pad[0],) * 2, (self.pad[1],) * 2),
                          mode="edge")
        self._blocks: dict = {}

    def _block(self, th: int, tw: int):
        """The padded image's part under the templates of this shape: its FFT, the FFT's size
        and the root of its window sums of squares about the window means."""
        import scipy.fft as sfft

        key = (th, tw)
        if key not in self._blocks:
            o0, o1, p0, p1 = self.out
            a = o0 - th // 2 + self.pad[0]
            b = p0 - tw // 2 + self.pad[1]
            blk = self.img[a:a + (o1 - o0) + th - 1, b:b + (p1 - p0) + tw - 1]
            s1, s2 = _box_sum(blk, th, tw), _box_sum(blk * blk, th, tw)
            var = s2 - s1 * s1 / (th * tw)
            size = tuple(sfft.next_fast_len(n, real=True) for n in blk.shape)
            self._blocks[key] = (sfft.rfft2(blk, size), size, np.sqrt(np.maximum(var, 0.0)),
                                 blk)
        return self._blocks[key]

    def _squares(self, th: int, tw: int):
        """The FFT of the block's squares (for the masked templates' window variances)."""
        import scipy.fft as sfft

        key = ("sq", th, tw)
        if key not in self._blocks:
            _, size, _, blk = self._block(th, tw)
            self._blocks[key] = sfft.rfft2(blk * blk, size)
        return self._blocks[key]

    def __call__(self, t: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """The map for template ``t``; with ``mask`` (0/1, t's shape), over the mask's pixels
        only: the image's mean and variance are then taken under the mask at each position."""
        import scipy.fft as sfft

        th, tw = t.shape
        fblk, size, den_img, _ = self._block(th, tw)
        h, w = den_img.shape

        def corr(f_img, k):  # circular correlation: index >= template size - 1 is the linear one
            full = sfft.irfft2(f_img * sfft.rfft2(k[::-1, ::-1], size), size)
            return full[th - 1:th - 1 + h, tw - 1:tw - 1 + w]

        if mask is None:
            tz = t.astype(np.float64) - float(t.mean())
        else:
            n = float(mask.sum())
            tz = (t.astype(np.float64) - float((t * mask).sum()) / n) * mask
            s1 = corr(fblk, mask)
            den_img = np.sqrt(np.maximum(corr(self._squares(th, tw), mask) - s1 * s1 / n, 0.0))
        num = corr(fblk, tz)
        den = den_img * np.sqrt((tz * tz).sum())
        res = np.zeros(self.shape, np.float64)
        o0, o1, p0, p1 = self.out
        ok = den_img > 1e-3  # a flat window (std under about 1e-4) matches nothing
        res[o0:o1, p0:p1] = np.where(ok, num / np.where(ok, den, 1.0), 0.0)
        return res


def _box_sum(a: np.ndarray, h: int, w: int) -> np.ndarray:
    """Sums of ``a`` over every h x w window (valid positions), by cumulative sums."""
    c = np.zeros((a.shape[0] + 1, a.shape[1] + 1))
    c[1:, 1:] = a.cumsum(0).cumsum(1)
    return c[h:, w:] - c[:-h, w:] - c[h:, :-w] + c[:-h, :-w]


def _peak(score: np.ndarray, window: tuple[int, int, int, int]) -> tuple[float, int, int]:
    r0, r1, c0, c1 = window
    w = score[r0:r1, c0:c1]
    i = int(np.argmax(w))
    r, c = divmod(i, w.shape[1])
    return float(w[r, c]), r + r0, c + c0


def _peaks(score: np.ndarray, window: tuple[int, int, int, int], n: int = 4,
           apart: int = 8) -> list[tuple[float, int, int]]:
    """The ``n`` best local maxima of ``score`` inside ``window``, at least ``apart`` grid
    pixels from each other, best first."""
    from scipy.ndimage import maximum_filter

    r0, r1, c0, c1 = window
    w = score[r0:r1, c0:c1]
    is_max = (w == maximum_filter(w, size=2 * apart + 1, mode="nearest")) & (w >= MIN_SCORE)
    rr, cc = np.nonzero(is_max)
    order = np.argsort(-w[rr, cc])[:n]
    return [(float(w[rr[i], cc[i]]), int(rr[i]) + r0, int(cc[i]) + c0) for i in order]


def _symmetry(img: np.ndarray, r: int, c: int, angle_deg: float) -> float:
    """Correlation of the 70 x 60 mm neighbourhood of (r, c) with its mirror image about the
    anatomy's midline through (r, c): the neck is near-symmetric about its spinal canal
    (vertebra, foramina, muscles), a vessel or a bone elsewhere is not."""
    from scipy.ndimage import map_coordinates

    x = np.arange(-35.0, 35.5, GRID_MM)
    y = np.arange(-30.0, 30.5, GRID_MM)
    yy, xx = np.meshgrid(y, x, indexing="ij")
    a = np.deg2rad(angle_deg)
    u, v = np.cos(a) * xx - np.sin(a) * yy, np.sin(a) * xx + np.cos(a) * yy
    p = map_coordinates(img, [r + v / GRID_MM, c + u / GRID_MM], order=1, mode="constant")
    p = p - p.mean()
    m = p[:, ::-1]
    den = np.sqrt((p * p).sum() * (m * m).sum())
    return float((p * m).sum() / den) if den > 0 else 0.0


def _subpixel(s: np.ndarray, r: int, c: int) -> tuple[float, float]:
    """Parabola through the neighbours of the peak, along rows and columns."""
    out = []
    for a, b, e, ok in ((s[r - 1, c] if r > 0 else 0, s[r, c], s[r + 1, c] if r < s.shape[0] - 1
                         else 0, 0 < r < s.shape[0] - 1),
                        (s[r, c - 1] if c > 0 else 0, s[r, c], s[r, c + 1] if c < s.shape[1] - 1
                         else 0, 0 < c < s.shape[1] - 1)):
        den = a - 2 * b + e
        out.append(0.5 * (a - e) / den if ok and den < 0 else 0.0)
    return out[0], out[1]


def find_canal(values: np.ndarray, geometry: SliceGeometry, *,
               expected_mm: tuple[float, float, float] | None = None) -> Canal | None:
    """The spinal canal on an axial slice, or ``None`` where nothing looks enough like it.

    ``values``: (rows, columns) modality values as stored. ``expected_mm``: where another
    series of the same frame of reference (the sagittal's cord) puts the canal on this slice,
    patient coordinates; the search then stays within :data:`GUIDE_MM` of it. Raises
    :class:`~.errors.GeometryError` for a slice that is not axial."""
    found = canal_candidates(values, geometry, expected_mm=expected_mm, n=1)
    return found[0] if found else None


def canal_candidates(values: np.ndarray, geometry: SliceGeometry, *,
                     expected_mm: tuple[float, float, float] | None = None, n: int = 4,
                     weak: bool = False) -> list[Canal]:
    """Up to ``n`` places on the slice that pass every check of a canal, at least
    :data:`CANDIDATES_APART_MM` apart and within :data:`CANDIDATES_MARGIN` of the best score,
    best score first: the first is :func:`find_canal`'s.
    ``weak``: where none passes, matches that pass weaker checks (symmetry above
    :data:`MIN_SYMMETRY` for the close templates too, a lead over the rim of
    :data:`WEAK_RING_CONTRAST`, a cord's core not darker than :data:`WEAK_CORE` of the rim:
    the MS patient's T2, a dark cord amid bright CSF and fat), for a search that the
    neighbouring slices' canals confirm (core/stackcanal.py)."""
    img, d, cshape, (sr, sc) = _canonical_grid(values, geometry)
    if not np.isfinite(img).all():
        img = np.nan_to_num(img)
    if float(img.min()) < CT_AIR:
        return []
    lo, hi = np.percentile(img, [1, 99])
    if hi - lo <= 1e-6 * max(1.0, abs(float(hi))):
        return []
    img = np.clip((img - lo) / (hi - lo), 0, 1).astype(np.float32)
    gr, gc = img.shape
    window = _window(img.shape, geometry, d, cshape, (sr, sc), expected_mm)
    if window is None:
        return []
    # every shape upright, then the best verified shape turned (the canal's outline is
    # near-symmetric, so the shape and the rotation can be found one after the other)
    if max(x[2].shape[0] for x in _templates(0.0)) >= gr or \
            max(x[2].shape[1] for x in _templates(0.0)) >= gc:
        return []
    ncc = _Correlator(img, window)
    body: dict = {}
    passes = [(False, MIN_SYMMETRY, False), (True, CLOSE_MIN_SYMMETRY, False)]
    if weak:
        passes += [(False, MIN_SYMMETRY, True), (True, MIN_SYMMETRY, True)]
    chosen: list = []
    matches: dict[bool, list] = {}
    for close, min_sym, relaxed in passes:  # the whole templates first, the close ones next
        if close not in matches:
            matches[close] = [
                (v, (canal, fraction), angle, r, c, smap)
                for angle in ANGLES_DEG for canal, fraction, t, mask in _templates(angle)
                if (mask is not None) == close
                for smap in (ncc(t, mask),)
                for v, r, c in _peaks(smap, window) if v <= 1.0 + 1e-6]
        cands = matches[close]
        apart, refused = (CANDIDATES_APART_MM / GRID_MM) ** 2, []
        for x in sorted(cands, key=lambda x: -x[0]):
            if len(chosen) >= n or (chosen and x[0] < chosen[0][0] - CANDIDATES_MARGIN):
                break
            if any((x[3] - y[3]) ** 2 + (x[4] - y[4]) ** 2 < apart for y in chosen):
                continue
            if chosen and any(abs(x[3] - y[0]) + abs(x[4] - y[1]) <= 2 for y in refused):
                continue  # the first is the best that passes; the others need not be exact
            if _looks_like_canal(img, x[3], x[4], *x[1], x[2], body, min_sym, relaxed):
                chosen.append(x)
            else:
                refused.append((x[3], x[4]))
        if chosen:
            break
    return [_to_canal(x, geometry, d, cshape, (sr, sc)) for x in chosen]


def _to_canal(match, geometry: SliceGeometry, d, cshape, spacing) -> Canal:
    """A match (score, shape, angle, grid row, grid column, score map) as a :class:`Canal`."""
    score, shape, angle, r, c, smap = match
    sr, sc = spacing
    dr, dc = _subpixel(smap, r, c)
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


def _looks_like_canal(img: np.ndarray, r: int, c: int, canal: tuple[float, float],
                      fraction: float, angle_deg: float, body: dict | None = None,
                      min_symmetry: float = MIN_SYMMETRY, weak: bool = False) -> bool:
    """Is the match at grid pixel (r, c) a canal: room around it for the foramina, and the
    canal (CSF and cord: on T2* the cord is as bright as the CSF) brighter than the rim of bone
    and ligament around it, all round (in at least 6 of 8 sectors), tissue all round, a
    left-right symmetric neighbourhood (``min_symmetry``), in a body as narrow as a neck? Noise,
    test patterns and other anatomy that correlate with the template (the aorta of an abdomen,
    a vein of the neck) fail this. docs/architecture.md ("Side from anatomy")."""
    stats = _ring_stats(img, r, c, canal, angle_deg, fraction)
    if stats is None:
        return False
    inside, rim, bright, spread, core = stats
    lead, core_min = (WEAK_RING_CONTRAST, WEAK_CORE * rim) if weak else (RING_CONTRAST, rim)
    return (inside > rim + lead and core > core_min and bright >= MIN_SECTORS
            and spread > MIN_SPREAD and _inside_neck(img, r, c)
            and _symmetry(img, r, c, angle_deg) > min_symmetry
            and _body_width(img, r, c, angle_deg, {} if body is None else body) < MAX_WIDTH_MM)


def _body_width(img: np.ndarray, r: int, c: int, angle_deg: float, body: dict) -> float:
    """The body's extent (mm) along the anatomy's left-right line through (r, c): the run of
    the body's outline (the slice above 0.05 after a 1.5 mm blur, closed, its holes filled)
    that holds (r, c). ``body`` keeps the outline for the next candidate of the slice. An
    abdomen's vessels and bowel can look like a canal (pydicom's abdominal MR: the aorta, 0.74)
    but lie in a body far wider than a neck."""
    from scipy import ndimage as ndi

    if "mask" not in body:
        m = ndi.binary_closing(ndi.gaussian_filter(img, 1.5 / GRID_MM) > 0.05, iterations=3)
        body["mask"] = ndi.binary_fill_holes(m)
    mask = body["mask"]
    a = np.deg2rad(angle_deg)
    t = np.arange(-400.0, 400.5, GRID_MM)
    rr = np.round(r + np.sin(a) * t / GRID_MM).astype(int)
    cc = np.round(c + np.cos(a) * t / GRID_MM).astype(int)
    inside = (rr >= 0) & (rr < mask.shape[0]) & (cc >= 0) & (cc < mask.shape[1])
    on = np.zeros(len(t), bool)
    on[inside] = mask[rr[inside], cc[inside]]
    mid = len(t) // 2
    if not on[mid]:
        return 0.0
    off = np.nonzero(~on)[0]
    left, right = off[off < mid], off[off > mid]
    lo = left.max() + 1 if len(left) else 0
    hi = right.min() - 1 if len(right) else len(t) - 1
    return float(hi - lo) * GRID_MM


def _inside_neck(img: np.ndarray, r: int, c: int) -> bool:
    """Tissue all round: along each of 16 directions, 10-20 mm from (r, c), and 10-35 mm to the
    sides and behind, the image is not air (vertebra, pedicles, pillars, laminae and the
    paraspinal muscles surround the canal; the airway can lie 20 mm in front of it; the bright
    fat at the neck's edge has air on one side)."""
    from scipy.ndimage import map_coordinates

    a = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    for t, keep in ((np.arange(10.0, 20.5, GRID_MM), np.ones(len(a), bool)),
                    (np.arange(20.0, 35.5, GRID_MM), np.sin(a) > -0.4)):  # +row: posterior
        rr = r + np.outer(np.sin(a[keep]), t) / GRID_MM
        cc = c + np.outer(np.cos(a[keep]), t) / GRID_MM
        ray = map_coordinates(img, [rr.ravel(), cc.ravel()], order=1, mode="constant")
        if ray.reshape(int(keep.sum()), -1).mean(axis=1).min() <= AIR:
            return False
    return True


def _ring_stats(img: np.ndarray, r: int, c: int, canal: tuple[float, float], angle_deg: float,
                fraction: float):
    """(mean inside the canal, mean of the 1.5-5 mm rim outside it, sectors of 8 where the
    canal is brighter than its rim, 10-90 percentile range inside, mean of the cord's core), or
    None where the canal lies too near the image's edge. The cord is tissue: its core is not
    darker than the bone and ligament around the canal, as the air of the airway is."""
    gr, gc = img.shape
    if min(r, c, gr - 1 - r, gc - 1 - c) < ROOM_MM / GRID_MM:
        return None
    hu, hv = canal[0] + 5.0, canal[1] + 5.0
    rows = np.arange(int(r - hu - 1), int(r + hu + 2))
    cols = np.arange(int(c - hu - 1), int(c + hu + 2))
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    a = np.deg2rad(angle_deg)
    du, dv = (cc - c) * GRID_MM, (rr - r) * GRID_MM
    x, y = np.cos(a) * du + np.sin(a) * dv, -np.sin(a) * du + np.cos(a) * dv
    rad = np.sqrt((x / canal[0]) ** 2 + (y / canal[1]) ** 2)
    inside = rad < 0.9
    rim = (np.sqrt((x / (canal[0] + 1.5)) ** 2 + (y / (canal[1] + 1.5)) ** 2) > 1.0) & (
        np.sqrt((x / hu) ** 2 + (y / hv) ** 2) < 1.0)
    vals = img[rr, cc]
    sector = ((np.arctan2(y, x) + np.pi) / (2 * np.pi) * 8).astype(int) % 8
    bright = 0
    for k in range(8):
        in_k, rim_k = vals[inside & (sector == k)], vals[rim & (sector == k)]
        bright += bool(len(in_k) and len(rim_k) and in_k.mean() > rim_k.mean() + 0.05)
    # a real canal is not flat: CSF, cord and grey matter, partial volume, noise
    spread = float(np.percentile(vals[inside], 90) - np.percentile(vals[inside], 10))
    core = vals[rad < 0.7 * fraction]
    return (float(vals[inside].mean()), float(vals[rim].mean()), bright, spread,
            float(core.mean()) if len(core) else 0.0)


def _to_canonical(d, row: float, col: float, canonical_shape) -> tuple[float, float]:
    """Inverse of :meth:`Dihedral.point_from_canonical`: a stored pixel-centre position in the
    transformed array (of shape ``canonical_shape``)."""
    if d.transpose:
        row, col = col, row
    rows, cols = canonical_shape
    if d.flip_rows:
        row = rows - 1 - row
    if d.flip_cols:
        col = cols - 1 - col
    return row, col


def _window(grid_shape, geometry: SliceGeometry, d, cshape, spacing, expected_mm):
    """(r0, r1, c0, c1) of the 1 mm grid where the canal's centre is looked for."""
    gr, gc = grid_shape
    sr, sc = spacing
    if expected_mm is None:
        cr, cc = (gr - 1) / 2, (gc - 1) / 2
        ap, lr = SEARCH_AP_MM, (-SEARCH_LR_MM, SEARCH_LR_MM)
    else:
        o = np.asarray(geometry.position, float)
        rows_dir, cols_dir = np.asarray(geometry.row_cos, float), np.asarray(geometry.col_cos,
                                                                               float)
        p = np.asarray(expected_mm, float) - o
        row, col = np.dot(p, cols_dir) / geometry.spacing[0], np.dot(p, rows_dir) / \
            geometry.spacing[1]
        crow, ccol = _to_canonical(d, row, col, cshape)
        cr, cc = (crow + 0.5) * sr / GRID_MM - 0.5, (ccol + 0.5) * sc / GRID_MM - 0.5
        ap, lr = (-GUIDE_MM, GUIDE_MM), (-GUIDE_MM, GUIDE_MM)
    r0, r1 = max(0, int(cr + ap[0] / GRID_MM)), min(gr, int(cr + ap[1] / GRID_MM) + 1)
    c0, c1 = max(0, int(cc + lr[0] / GRID_MM)), min(gc, int(cc + lr[1] / GRID_MM) + 1)
    return (r0, r1, c0, c1) if r1 > r0 and c1 > c0 else None


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
