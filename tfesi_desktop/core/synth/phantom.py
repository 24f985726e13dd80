"""An axial phantom of the cervical spine at one level (C5-C7), drawn in patient millimetres.

Coordinates are those of the canonical (radiological) image: ``u`` towards the patient's left
(image right), ``v`` posterior (image down), both in mm from the image centre. The anatomy has its
own frame (``x`` to the patient's left, ``y`` posterior, the midline at ``x = 0``, the spinal
canal's centre at ``(0, CANAL_Y)``), shifted by :attr:`Anatomy.centre` and rotated by
:attr:`Anatomy.rotation` in the image: patients lie off-centre and turned. Intensities are in 0..1
(T2-like by default: CSF and fat bright, cord and disc intermediate, muscle darker, cortical bone,
ligamentum flavum and flow voids dark; ``contrast="T1"`` turns CSF dark and fat bright) and are
scaled to MR stored values by the cohort writer. Muscle, fat and marrow carry a smooth random
texture anchored to the anatomy.

The foramina: each side has a channel from the lateral recess of the canal running
anterolaterally, its anterior wall formed by the uncovertebral joint and its posterior wall by the
superior articular process; the walls are marrow lined by a cortical line. Stenosis comes from an
uncovertebral osteophyte on the anterior wall and facet hypertrophy on the posterior wall: the
wall itself bulges into the channel (cortex and marrow as the wall, so the narrowing shows by its
shape, not by a darker material), over a length along the channel (:attr:`ForamenSpec.length`),
largest on the narrowest slice (``dz = 0``) and fading over a few millimetres cranio-caudally. The
narrowest width of a foramen is therefore ``NORMAL_WIDTH - osteophyte - facet`` at ``dz = 0``;
Kim grades compare it with the nerve root's width (:data:`ROOT_WIDTH`). The nerve root runs in
what is left of the channel, flattened by :attr:`ForamenSpec.compression` near the narrowing and
displaced towards one wall. The channel runs obliquely through the slices (it moves along and
across its axis from slice to slice), so a 3-mm slice, rendered as the mean of thin sub-slices,
shows it with grey, partial-volume walls. Beside it: the vertebral artery (flow void) in the
transverse foramen, the facet joint line in the articular pillar, the ligamentum flavum behind the
canal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NORMAL_WIDTH = 6.5  # mm, an unnarrowed foramen at its waist
ROOT_WIDTH = 4.0  # mm, the extraforaminal nerve root (Kim grading reference)
ROOT_THICKNESS = 3.0  # mm, the root's thickness across the channel where it has room
FORAMEN_ANGLE = np.deg2rad(40.0)  # channel axis, anterolateral, from the coronal plane
FORAMEN_LENGTH = 17.0  # mm
WAIST_T = 0.45 * FORAMEN_LENGTH  # mm along the channel from its medial end: the narrowest point
CANAL_Y = 9.0  # mm, the canal's centre behind the anatomy frame's origin
SLICE_THICKNESS = 3.0  # mm
SUB_SLICES = 4  # thin sub-slices averaged into one slice (partial volume)
CORTEX = 0.7  # mm, the cortical line lining a foramen
CONTRASTS = ("T2", "T1", "T2*")
# the part of the anatomy frame that changes from slice to slice (body/disc, canal, foramina,
# transverse foramina); everything outside it is drawn once per series
_BOX = (-42.0, 42.0, -24.0, 28.0)  # x0, x1, y0, y1 (mm)


def kim_grade(width_mm: float) -> int:
    """Kim et al. 2015: 0 no stenosis, 1 width 51-100 % of the root, 2 width <= 50 %."""
    if width_mm > ROOT_WIDTH:
        return 0
    return 1 if width_mm > 0.5 * ROOT_WIDTH else 2


@dataclass(frozen=True)
class ForamenSpec:
    osteophyte: float  # mm the uncovertebral osteophyte intrudes at the narrowest slice
    facet: float  # mm the hypertrophic facet intrudes at the narrowest slice
    length: float = 4.5  # mm, the narrowing's half-length along the channel
    compression: float = 0.0  # 0..1: how much the root is flattened at the narrowing
    displacement: float = 0.0  # -1..1: where the root lies in what is left (towards a wall)

    @property
    def narrowest_width(self) -> float:
        return NORMAL_WIDTH - self.osteophyte - self.facet


@dataclass(frozen=True)
class Anatomy:
    """One patient's anatomy at the injected level (all lengths in mm)."""

    centre: tuple[float, float] = (0.0, 0.0)  # (u, v) of the anatomy frame's origin on the image
    rotation: float = 0.0  # in-plane rotation of the anatomy, radians
    neck: tuple[float, float] = (58.0, 50.0)  # semi-axes (u, v)
    body: tuple[float, float] = (9.5, 7.5)  # vertebral body semi-axes
    canal: tuple[float, float] = (12.0, 6.5)
    cord: tuple[float, float] = (6.5, 4.0)
    right: ForamenSpec = ForamenSpec(0.5, 0.5)
    left: ForamenSpec = ForamenSpec(0.5, 0.5)
    fat: float = 0.75
    muscle: float = 0.27
    csf: float = 0.95
    foramen_fat: float = 0.78  # the channel's fat and venous plexus (independent of outcome)
    marrow: float = 0.5
    disc_height: float = 5.0
    spread: float = 4.0  # mm: how fast osteophyte/facet intrusion fades away from dz = 0
    obliquity: float = 0.6  # mm the channel moves along its axis per mm between slices
    drift: float = 0.2  # mm the channel moves across its axis per mm between slices
    facet_tilt: float = 0.3  # radians, the facet joint line from the coronal plane
    facet_gap: float = 0.8  # mm, joint space (fluid) of the facet joints
    texture_seed: int = 0
    texture: float = 1.0  # texture strength
    contrast: str = "T2"
    # the cord's grey matter against its white matter (cord) in 0..1 intensity: None is the
    # contrast's own (T2 TSE: 0.07 darker; T2* gradient echo: 0.15 brighter). Real cords show
    # both, so the canal tests render both (the canal finder must not rely on either)
    grey_matter: float | None = None


def tissue_values(a: Anatomy) -> dict[str, float]:
    """Intensity (0..1) of each tissue for this anatomy's contrast."""
    if a.contrast == "T2":
        return _grey(dict(fat=a.fat, muscle=a.muscle, paraspinal=a.muscle - 0.04,
                    fat_plane=0.73 * a.fat, air=0.02, oesophagus=0.35, flow_void=0.04,
                    thyroid=0.42, prevertebral_fat=0.8 * a.fat, cortex=0.08, marrow=a.marrow,
                    annulus=0.42, nucleus=0.68, csf=a.csf, cord=0.45, grey_matter=0.38,
                    foramen_fat=a.foramen_fat, root=0.42, ligamentum_flavum=0.13,
                    facet_fluid=0.72, venous_plexus=0.55), a)
    if a.contrast == "T1":
        return _grey(dict(fat=0.9 + 0.4 * (a.fat - 0.75), muscle=a.muscle + 0.1,
                    paraspinal=a.muscle + 0.07, fat_plane=0.8, air=0.02, oesophagus=0.3,
                    flow_void=0.04, thyroid=0.5, prevertebral_fat=0.82, cortex=0.06,
                    marrow=min(a.marrow + 0.3, 0.9), annulus=0.3, nucleus=0.33,
                    csf=0.12 + 0.1 * (a.csf - 0.94), cord=0.44, grey_matter=0.4,
                    foramen_fat=a.foramen_fat + 0.08, root=0.38, ligamentum_flavum=0.34,
                    facet_fluid=0.14, venous_plexus=0.3), a)
    if a.contrast == "T2*":  # gradient echo: the cord and its grey matter near CSF, fat grey
        t = dict(fat=0.45, muscle=a.muscle + 0.05, paraspinal=a.muscle + 0.01, fat_plane=0.35,
                 air=0.02, oesophagus=0.3, flow_void=0.9, thyroid=0.45, prevertebral_fat=0.4,
                 cortex=0.05, marrow=0.22, annulus=0.35, nucleus=0.5, csf=a.csf, cord=0.62,
                 grey_matter=0.77, foramen_fat=0.45, root=0.5, ligamentum_flavum=0.12,
                 facet_fluid=0.7, venous_plexus=0.7)
        return _grey(t, a)
    raise ValueError(f"unknown contrast {a.contrast!r}; expected one of {CONTRASTS}")


def _grey(t: dict[str, float], a: Anatomy) -> dict[str, float]:
    if a.grey_matter is not None:
        t["grey_matter"] = float(np.clip(t["cord"] + a.grey_matter, 0.0, 1.0))
    return t


def _smooth(d: np.ndarray, edge: float) -> np.ndarray:
    """0..1 membership from a signed distance (negative inside), with a soft edge (partial
    volume) about ``edge`` mm wide."""
    return 1.0 / (1.0 + np.exp(np.clip(d / edge, -30, 30)))


def _ellipse_distance(x, y, au, av):
    """Approximate signed distance (mm) to an axis-aligned ellipse centred at the origin:
    the implicit function divided by its gradient's length (exact on the boundary)."""
    r = np.sqrt((x / au) ** 2 + (y / av) ** 2)
    g = np.sqrt((x / au ** 2) ** 2 + (y / av ** 2) ** 2) / np.maximum(r, 1e-6)
    return (r - 1.0) / np.maximum(g, 1e-6)


def _ellipse(u, v, cu, cv, au, av, edge, angle=0.0):
    x, y = u - cu, v - cv
    if angle:
        c, s = np.cos(angle), np.sin(angle)
        x, y = c * x + s * y, -s * x + c * y
    return _smooth(_ellipse_distance(x, y, au, av), edge)


def to_image(anatomy: Anatomy, point) -> tuple[float, float]:
    """A point of the anatomy's frame (mm) as canonical image coordinates (u, v) in mm."""
    c, s = np.cos(anatomy.rotation), np.sin(anatomy.rotation)
    px, py = float(point[0]), float(point[1])
    return (float(c * px - s * py + anatomy.centre[0]),
            float(s * px + c * py + anatomy.centre[1]))


def _to_frame(anatomy: Anatomy, u, v):
    x, y = u - anatomy.centre[0], v - anatomy.centre[1]
    c, s = np.cos(anatomy.rotation), np.sin(anatomy.rotation)
    return (c * x + s * y).astype(np.float32), (-s * x + c * y).astype(np.float32)


def canal_centre(anatomy: Anatomy) -> tuple[float, float]:
    """Canonical image coordinates (u, v) in mm of the spinal canal's centre (the anatomical
    midline)."""
    return to_image(anatomy, (0.0, CANAL_Y))


def foramen_axis(anatomy: Anatomy, side: str) -> tuple[np.ndarray, np.ndarray]:
    """(start, direction) of a foramen's channel axis in the anatomy's frame (mm)."""
    sgn = 1 if side == "left" else -1
    start = np.array([sgn * (anatomy.canal[0] - 1.5), 7.5])
    direction = np.array([sgn * np.cos(FORAMEN_ANGLE), -np.sin(FORAMEN_ANGLE)])
    return start, direction


def foramen_normal(anatomy: Anatomy, side: str) -> np.ndarray:
    """Unit vector across a foramen's channel, towards its anterior (uncovertebral) wall."""
    _, d = foramen_axis(anatomy, side)
    n = np.array([-d[1], d[0]])
    return -n if n[1] > 0 else n


def foramen_waist(anatomy: Anatomy, side: str) -> tuple[float, float]:
    """Canonical image coordinates (u, v) in mm of the narrowest point of a foramen on its
    narrowest slice: the middle of what the osteophyte and the facet leave of the channel."""
    start, d = foramen_axis(anatomy, side)
    spec = anatomy.left if side == "left" else anatomy.right
    p = start + WAIST_T * d + 0.5 * (spec.facet - spec.osteophyte) * foramen_normal(anatomy,
                                                                                    side)
    return to_image(anatomy, p)


def _texture(a: Anatomy, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Smooth random texture with unit standard deviation, anchored to the anatomy: a sum of
    plane waves of 2.5-12 mm wavelength."""
    rng = np.random.default_rng([a.texture_seed, 7])
    k = 10
    f = 2 * np.pi / rng.uniform(2.5, 12.0, k)
    ang, ph = rng.uniform(0, np.pi, k), rng.uniform(0, 2 * np.pi, k)
    tex = np.zeros_like(x)
    for fi, ai, pi in zip(f, ang, ph, strict=True):
        tex += np.cos(np.float32(fi * np.cos(ai)) * x + np.float32(fi * np.sin(ai)) * y
                      + np.float32(pi))
    return tex * np.float32(a.texture / np.sqrt(k / 2))


class _Painter:
    """Painter's algorithm on one array: ``paint`` lays a tissue over what is there."""

    def __init__(self, img):
        self.img = img

    def paint(self, mask, value):
        self.img = self.img * (1 - mask) + value * mask


class _Overlay:
    """Layers painted over an image that is not known yet: ``over(img)`` gives what painting
    them in order over ``img`` would give (transmission and premultiplied colour)."""

    def __init__(self, shape):
        self.t = np.ones(shape, np.float32)
        self.s = np.zeros(shape, np.float32)

    def paint(self, mask, value):
        self.t = self.t * (1 - mask)
        self.s = self.s * (1 - mask) + value * mask

    def over(self, img):
        return img * self.t + self.s


def _background(a: Anatomy, x, y, tis, tex, edge):
    """Everything that does not change between slices and lies under the rest."""
    p = _Painter(np.zeros_like(x))
    # neck: subcutaneous fat ring around muscle
    p.paint(_ellipse(x, y, 0, 3, a.neck[0], a.neck[1], edge * 2), tis["fat"] * (1 + 0.06 * tex))
    p.paint(_ellipse(x, y, 0, 3, a.neck[0] - 5, a.neck[1] - 5, edge * 2),
            tis["muscle"] * (1 + 0.12 * tex))
    # paraspinal muscles with fat planes
    for sgn in (-1, 1):
        p.paint(_ellipse(x, y, sgn * 13, 33, 11, 10, edge), tis["paraspinal"] * (1 + 0.12 * tex))
        p.paint(_ellipse(x, y, sgn * 28, 28, 3, 12, edge, 0.3 * sgn),
                tis["fat_plane"] * (1 + 0.06 * tex))
    # airway and oesophagus, carotid and jugular flow voids, thyroid
    p.paint(_ellipse(x, y, 0, -33, 9, 7, edge), tis["air"])
    p.paint(_ellipse(x, y, 0, -22, 6, 3.5, edge), tis["oesophagus"])
    for sgn in (-1, 1):
        p.paint(_ellipse(x, y, sgn * 24, -19, 3.5, 3.5, edge), tis["flow_void"])
        p.paint(_ellipse(x, y, sgn * 29, -14, 5, 4, edge), tis["flow_void"] + 0.02)
        p.paint(_ellipse(x, y, sgn * 13, -30, 6, 8, edge), tis["thyroid"] * (1 + 0.05 * tex))
    # prevertebral fat stripe
    p.paint(_ellipse(x, y, 0, -16.5, 12, 2.5, edge), tis["prevertebral_fat"] * (1 + 0.06 * tex))
    marrow = tis["marrow"] * (1 + 0.08 * tex)
    # articular pillars (lateral masses), cortex and marrow, each with its facet joint: a thin
    # fluid line between the superior (anterior) and inferior articular processes, lined by cortex
    for sgn in (-1, 1):
        p.paint(_ellipse(x, y, sgn * 20, 14, 7.5, 8.5, edge, -0.4 * sgn), tis["cortex"])
        p.paint(_ellipse(x, y, sgn * 20, 14, 6.0, 7.0, edge, -0.4 * sgn), marrow)
        c, s = np.cos(sgn * a.facet_tilt), np.sin(sgn * a.facet_tilt)
        along = c * (x - sgn * 20) + s * (y - 13.5)
        across = -s * (x - sgn * 20) + c * (y - 13.5)
        for extra, value in ((0.7, tis["cortex"]), (0.0, tis["facet_fluid"])):
            d = np.maximum(np.abs(across) - a.facet_gap / 2 - extra, np.abs(along) - 6.8)
            p.paint(_smooth(d, edge), value)
    # laminae and spinous process
    for sgn in (-1, 1):
        p.paint(_ellipse(x, y, sgn * 8, 22, 9, 2.6, edge, 0.7 * sgn), tis["cortex"])
    p.paint(_ellipse(x, y, 0, 30, 2.6, 8, edge), tis["cortex"])
    p.paint(_ellipse(x, y, 0, 30, 1.5, 6.5, edge), marrow)
    # ligamentum flavum: a dark band behind the canal (the canal is painted over its inner part)
    lf = _ellipse(x, y, 0, CANAL_Y + 0.9, a.canal[0] + 0.6, a.canal[1] + 2.3, edge)
    p.paint(lf * _smooth(CANAL_Y + 1.5 - y, 0.6), tis["ligamentum_flavum"])
    return p.img


def _canal(a: Anatomy, x, y, tis, edge) -> _Overlay:
    o = _Overlay(x.shape)
    o.paint(_ellipse(x, y, 0, CANAL_Y, a.canal[0], a.canal[1], edge), tis["csf"])
    o.paint(_ellipse(x, y, 0, CANAL_Y, a.cord[0], a.cord[1], edge), tis["cord"])
    o.paint(_ellipse(x, y, 0, CANAL_Y, a.cord[0] * 0.35, a.cord[1] * 0.55, edge),
            tis["grey_matter"])
    return o


def _transverse_foramina(a: Anatomy, x, y, tis, edge) -> _Overlay:
    """The vertebral artery (flow void) with its venous plexus in the transverse foramen, in
    front of the root where it leaves the foramen."""
    o = _Overlay(x.shape)
    for side in ("right", "left"):
        start, d = foramen_axis(a, side)
        c = start + (FORAMEN_LENGTH - 2.0) * d + 8.2 * foramen_normal(a, side)
        o.paint(_ellipse(x, y, c[0], c[1], 3.4, 3.0, edge), tis["cortex"])
        o.paint(_ellipse(x, y, c[0], c[1], 2.6, 2.2, edge), tis["venous_plexus"])
        o.paint(_ellipse(x, y, c[0] + 0.2, c[1], 1.9, 1.8, edge), tis["flow_void"])
    return o


def _body(img, a: Anatomy, x, y, dz, tis, tex, edge):
    """Vertebral body or disc, with uncovertebral processes at the posterolateral corners."""
    p = _Painter(img)
    ab, vb = a.body, -4.0
    if abs(dz) < a.disc_height / 2:
        p.paint(_ellipse(x, y, 0, vb, ab[0], ab[1], edge), tis["annulus"])
        p.paint(_ellipse(x, y, 0, vb - 0.5, ab[0] * 0.55, ab[1] * 0.5, edge * 2), tis["nucleus"])
    else:
        p.paint(_ellipse(x, y, 0, vb, ab[0], ab[1], edge), tis["cortex"])
        p.paint(_ellipse(x, y, 0, vb, ab[0] - 1.2, ab[1] - 1.2, edge),
                tis["marrow"] * (1 + 0.08 * tex))
    for sgn in (-1, 1):
        p.paint(_ellipse(x, y, sgn * (ab[0] + 0.5), vb + 4, 3.0, 3.5, edge), tis["cortex"])
    return p.img


def _bump(s, length, depth):
    """A smooth intrusion ``depth * (1 - (s/length)^2)^2`` (zero beyond ``length``) and its
    slope."""
    r = np.clip(s / length, -1.0, 1.0)
    k = 1.0 - r * r
    return depth * k * k, -4.0 * depth * r * k / length


def _foramen(img, a: Anatomy, x, y, side: str, dz: float, tis, tex, edge):
    spec = a.left if side == "left" else a.right
    start, d = foramen_axis(a, side)
    n = foramen_normal(a, side)
    dzc = float(np.clip(dz, -8.0, 8.0))
    # along (t, 0 at the canal) and across (q, > 0 towards the anterior wall) the channel, which
    # runs obliquely through the slices
    t = (x - start[0]) * d[0] + (y - start[1]) * d[1] - a.obliquity * dzc
    q = (x - start[0]) * n[0] + (y - start[1]) * n[1] - a.drift * dzc
    s = t - WAIST_T
    base = NORMAL_WIDTH / 2 + 0.03 * dzc ** 2  # half-width of the unnarrowed waist on this slice
    half, dhalf = base + 0.02 * s ** 2, 0.04 * s
    fade = float(np.exp(-0.5 * (dz / a.spread) ** 2))
    io, dio = _bump(s, spec.length, spec.osteophyte * fade)
    if_, dif = _bump(s, spec.length * 1.15, spec.facet * fade)
    q_hi, q_lo = half - io, -half + if_  # what the walls leave of the channel
    d_hi = (q - q_hi) / np.sqrt(1 + (dhalf - dio) ** 2)  # > 0 beyond the anterior wall
    d_lo = (q_lo - q) / np.sqrt(1 + (dif - dhalf) ** 2)  # > 0 beyond the posterior wall
    inside = np.maximum(d_hi, d_lo)
    p = _Painter(img)
    # bony walls: marrow out to where the unnarrowed walls end, lined by a cortical line that
    # follows the osteophyte and the facet into the channel
    p.paint(_smooth(np.maximum(np.abs(q) - half - 3.2,
                               np.maximum(1.5 - t, t - FORAMEN_LENGTH + 3)), edge),
            tis["marrow"] * (1 + 0.08 * tex))
    p.paint(_smooth(np.maximum(inside - CORTEX, np.maximum(0.5 - t, t - FORAMEN_LENGTH + 2)), edge),
            tis["cortex"])
    # the channel: fat and veins around the root
    p.paint(_smooth(np.maximum(inside, np.maximum(-t, t - FORAMEN_LENGTH)), edge),
            tis["foramen_fat"] * (1 + 0.08 * tex))
    # the nerve root: in what is left of the channel, flattened near the narrowing by its
    # compression, towards one wall by its displacement
    width = np.maximum(q_hi - q_lo, 0.05)
    g = np.exp(-0.5 * (s / spec.length) ** 2) * fade
    th = 0.85 * np.minimum(ROOT_THICKNESS, width) * (1 - 0.6 * spec.compression * g)
    qc = 0.5 * (q_hi + q_lo) + 0.5 * spec.displacement * (width - th)
    p.paint(_smooth(np.maximum(np.abs(q - qc) - th / 2,
                               np.maximum(-t - 3, t - FORAMEN_LENGTH - 5)), edge), tis["root"])
    return p.img


def render_slices(anatomy: Anatomy, dzs, u: np.ndarray, v: np.ndarray, *, edge: float = 0.35,
                  thickness: float = 0.0, sub_slices: int = 1,
                  texture: bool = True) -> np.ndarray:
    """Intensities (0..1, float32) of the slices ``dzs`` mm from the narrowest one, sampled at
    canonical coordinates ``u``, ``v`` (arrays of one shape); shape ``(len(dzs), *u.shape)``.

    A slice ``thickness`` mm thick is the mean of ``sub_slices`` thin slices spread evenly across
    it (partial volume). The parts that do not change from slice to slice are drawn once."""
    a = anatomy
    tis = tissue_values(a)
    u, v = np.asarray(u, np.float64), np.asarray(v, np.float64)
    shape = u.shape
    x, y = _to_frame(a, u.ravel(), v.ravel())
    tex = _texture(a, x, y) if texture else np.zeros_like(x)
    back = _background(a, x, y, tis, tex, edge)
    x0, x1, y0, y1 = _BOX
    sel = np.flatnonzero((x > x0) & (x < x1) & (y > y0) & (y < y1))
    xb, yb, tb = x[sel], y[sel], tex[sel]
    canal, arteries = _canal(a, xb, yb, tis, edge), _transverse_foramina(a, xb, yb, tis, edge)
    n_sub = max(1, int(sub_slices))
    offsets = ((np.arange(n_sub) + 0.5) / n_sub - 0.5) * thickness
    dzs = [float(z) for z in np.atleast_1d(dzs)]
    out = np.empty((len(dzs), x.size), np.float32)
    for i, dz in enumerate(dzs):
        acc = np.zeros(sel.size, np.float32)
        for o in offsets:
            img = _body(back[sel], a, xb, yb, dz + o, tis, tb, edge)
            img = canal.over(img)
            for side in ("right", "left"):
                img = _foramen(img, a, xb, yb, side, dz + o, tis, tb, edge)
            acc += arteries.over(img)
        out[i] = back
        out[i, sel] = acc / n_sub
    return np.clip(out, 0, 1).reshape(len(dzs), *shape)


def render(anatomy: Anatomy, dz: float, u: np.ndarray, v: np.ndarray, *,
           edge: float = 0.35, thickness: float = 0.0, sub_slices: int = 1,
           texture: bool = True) -> np.ndarray:
    """Intensity (0..1, float32) of the slice ``dz`` mm from the narrowest one, sampled at
    canonical coordinates ``u``, ``v`` (arrays of one shape): an infinitely thin slice unless
    ``thickness`` and ``sub_slices`` say otherwise (see :func:`render_slices`)."""
    return render_slices(anatomy, [dz], u, v, edge=edge, thickness=thickness,
                         sub_slices=sub_slices, texture=texture)[0]
