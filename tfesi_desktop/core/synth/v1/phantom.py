# Generator version 1, kept unchanged: the shipped demonstration model was trained on its
# phantoms, so testing and re-validating that model needs patients like them (README).
"""An axial T2 phantom of the cervical spine at one level, drawn in patient millimetres.

Coordinates are those of the canonical (radiological) image: ``u`` towards the patient's left
(image right), ``v`` posterior (image down), both in mm from the image centre. Intensities are
T2-like in 0..1 (CSF and fat bright, cord and disc intermediate, muscle darker, cortical bone and
flow voids dark) and are scaled to MR stored values by the cohort writer.

The foramina: each side has a channel from the lateral recess of the canal running
anterolaterally, its anterior wall formed by the uncovertebral joint and its posterior wall by the
superior articular process (facet). Stenosis comes from an osteophyte on the anterior wall and
facet hypertrophy on the posterior wall; both are largest on the narrowest slice (``dz = 0``) and
fade over a few millimetres. The narrowest width of a foramen is therefore
``NORMAL_WIDTH - osteophyte - facet`` at ``dz = 0``; Kim grades compare it with the nerve root's
width (:data:`ROOT_WIDTH`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NORMAL_WIDTH = 6.5  # mm, an unnarrowed foramen at its waist
ROOT_WIDTH = 4.0  # mm, the extraforaminal nerve root (Kim grading reference)
FORAMEN_ANGLE = np.deg2rad(40.0)  # channel axis, anterolateral, from the coronal plane
FORAMEN_LENGTH = 17.0  # mm


def kim_grade(width_mm: float) -> int:
    """Kim et al. 2015: 0 no stenosis, 1 width 51-100 % of the root, 2 width <= 50 %."""
    if width_mm > ROOT_WIDTH:
        return 0
    return 1 if width_mm > 0.5 * ROOT_WIDTH else 2


@dataclass(frozen=True)
class ForamenSpec:
    osteophyte: float  # mm the uncovertebral osteophyte intrudes at the narrowest slice
    facet: float  # mm the hypertrophic facet intrudes at the narrowest slice

    @property
    def narrowest_width(self) -> float:
        return NORMAL_WIDTH - self.osteophyte - self.facet


@dataclass(frozen=True)
class Anatomy:
    """One patient's anatomy at the injected level (all lengths in mm)."""

    centre: tuple[float, float] = (0.0, 0.0)  # (u, v) of the canal's midline on the image
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
    disc_height: float = 5.0
    spread: float = 4.0  # mm: how fast osteophyte/facet intrusion fades away from dz = 0


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


def render(anatomy: Anatomy, dz: float, u: np.ndarray, v: np.ndarray, *,
           edge: float = 0.35) -> np.ndarray:
    """T2-like intensity (0..1, float32) of the slice ``dz`` mm from the narrowest one, sampled
    at canonical coordinates ``u``, ``v`` (arrays of one shape)."""
    a = anatomy
    # into the anatomy's own frame: centred on the canal, rotated
    x, y = u - a.centre[0], v - a.centre[1]
    c, s = np.cos(a.rotation), np.sin(a.rotation)
    x, y = (c * x + s * y).astype(np.float32), (-s * x + c * y).astype(np.float32)
    img = np.zeros_like(x)

    def paint(mask, value):
        nonlocal img
        img = img * (1 - mask) + value * mask

    # neck: subcutaneous fat ring around muscle
    paint(_ellipse(x, y, 0, 3, a.neck[0], a.neck[1], edge * 2), a.fat)
    paint(_ellipse(x, y, 0, 3, a.neck[0] - 5, a.neck[1] - 5, edge * 2), a.muscle)
    # paraspinal muscles with fat planes
    for sgn in (-1, 1):
        paint(_ellipse(x, y, sgn * 13, 33, 11, 10, edge), 0.22)
        paint(_ellipse(x, y, sgn * 28, 28, 3, 12, edge, 0.3 * sgn), 0.55)
    # airway and oesophagus, carotid and jugular flow voids, thyroid
    paint(_ellipse(x, y, 0, -33, 9, 7, edge), 0.02)
    paint(_ellipse(x, y, 0, -22, 6, 3.5, edge), 0.35)
    for sgn in (-1, 1):
        paint(_ellipse(x, y, sgn * 24, -19, 3.5, 3.5, edge), 0.04)
        paint(_ellipse(x, y, sgn * 29, -14, 5, 4, edge), 0.06)
        paint(_ellipse(x, y, sgn * 13, -30, 6, 8, edge), 0.42)
    # prevertebral fat stripe
    paint(_ellipse(x, y, 0, -16.5, 12, 2.5, edge), 0.6)

    # lateral masses (articular pillars), laminae and spinous process: cortex and marrow
    for sgn in (-1, 1):
        paint(_ellipse(x, y, sgn * 20, 14, 7.5, 8.5, edge, -0.4 * sgn), 0.08)
        paint(_ellipse(x, y, sgn * 20, 14, 6.0, 7.0, edge, -0.4 * sgn), 0.3)
        paint(_ellipse(x, y, sgn * 8, 22, 9, 2.6, edge, 0.7 * sgn), 0.08)
    paint(_ellipse(x, y, 0, 30, 2.6, 8, edge), 0.08)
    paint(_ellipse(x, y, 0, 30, 1.5, 6.5, edge), 0.28)

    # vertebral body or disc, with uncovertebral processes at the posterolateral corners
    ab, vb = a.body, -4.0
    if abs(dz) < a.disc_height / 2:
        paint(_ellipse(x, y, 0, vb, ab[0], ab[1], edge), 0.42)  # annulus
        paint(_ellipse(x, y, 0, vb - 0.5, ab[0] * 0.55, ab[1] * 0.5, edge * 2), 0.68)  # nucleus
    else:
        paint(_ellipse(x, y, 0, vb, ab[0], ab[1], edge), 0.08)  # cortex
        paint(_ellipse(x, y, 0, vb, ab[0] - 1.2, ab[1] - 1.2, edge), 0.34)  # marrow
    for sgn in (-1, 1):
        paint(_ellipse(x, y, sgn * (ab[0] + 0.5), vb + 4, 3.0, 3.5, edge), 0.1)

    # canal with CSF, cord with grey matter
    paint(_ellipse(x, y, 0, 9, a.canal[0], a.canal[1], edge), a.csf)
    paint(_ellipse(x, y, 0, 9, a.cord[0], a.cord[1], edge), 0.45)
    paint(_ellipse(x, y, 0, 9, a.cord[0] * 0.35, a.cord[1] * 0.55, edge), 0.38)

    for sgn, spec in ((-1, a.right), (1, a.left)):
        img = _foramen(img, x, y, sgn, spec, a, dz, edge)
    return np.clip(img, 0, 1).astype(np.float32)


def foramen_axis(anatomy: Anatomy, side: str) -> tuple[np.ndarray, np.ndarray]:
    """(start, direction) of a foramen's channel axis in the anatomy's frame (mm)."""
    sgn = 1 if side == "left" else -1
    start = np.array([sgn * (anatomy.canal[0] - 1.5), 7.5])
    direction = np.array([sgn * np.cos(FORAMEN_ANGLE), -np.sin(FORAMEN_ANGLE)])
    return start, direction


def foramen_waist(anatomy: Anatomy, side: str) -> tuple[float, float]:
    """Canonical image coordinates (u, v) in mm of the narrowest point of a foramen."""
    start, d = foramen_axis(anatomy, side)
    p = start + 0.45 * FORAMEN_LENGTH * d
    c, s = np.cos(anatomy.rotation), np.sin(anatomy.rotation)
    # back from the anatomy's frame to the image (inverse rotation, then shift)
    u = c * p[0] - s * p[1] + anatomy.centre[0]
    v = s * p[0] + c * p[1] + anatomy.centre[1]
    return float(u), float(v)


def _foramen(img, x, y, sgn, spec: ForamenSpec, a: Anatomy, dz: float, edge: float):
    side = "left" if sgn > 0 else "right"
    start, d = foramen_axis(a, side)
    n = np.array([-d[1], d[0]])  # across the channel, pointing to the anterior wall
    if n[1] > 0:
        n = -n
    t = (x - start[0]) * d[0] + (y - start[1]) * d[1]  # along the channel, 0 at the canal
    q = (x - start[0]) * n[0] + (y - start[1]) * n[1]  # across it, > 0 towards the anterior wall
    t_waist = 0.45 * FORAMEN_LENGTH
    base = NORMAL_WIDTH / 2 + 0.03 * dz ** 2  # half-width of the unnarrowed waist on this slice
    half = base + 0.02 * (t - t_waist) ** 2
    # bony walls: uncovertebral process in front, superior articular process behind (cortex and
    # marrow), through which the channel runs
    for extra, value in ((3.2, 0.09), (2.0, 0.3)):
        wall = np.maximum(np.abs(q) - half - extra, np.maximum(1.5 - t, t - FORAMEN_LENGTH + 3))
        m = _smooth(wall, edge)
        img = img * (1 - m) + value * m
    # the channel: fat and CSF around the root, bounded along its length
    m = _smooth(np.maximum(np.abs(q) - half, np.maximum(-t, t - FORAMEN_LENGTH)), edge)
    img = img * (1 - m) + 0.82 * m
    # anterior-wall osteophyte and posterior-wall facet hypertrophy: half-ellipses from the wall,
    # reaching `depth` mm into the channel at its waist, fading away from the narrowest slice
    fade = float(np.exp(-0.5 * (dz / a.spread) ** 2))
    osteo, facet = spec.osteophyte * fade, spec.facet * fade
    for depth, wall, length in ((osteo, 1.0, 4.0), (facet, -1.0, 5.0)):
        if depth > 0.01:
            m = _smooth(_ellipse_distance(t - t_waist, q - wall * base, length, depth), edge)
            img = img * (1 - m) + 0.1 * m
    # the nerve root: intermediate signal, in the middle of what is left of the channel and
    # flattened where it is narrow
    left_width = max(2 * base - osteo - facet, 0.6)
    root_half = min(0.4 * ROOT_WIDTH, 0.35 * left_width)
    shift = (facet - osteo) / 2 * np.exp(-0.5 * ((t - t_waist) / 5.0) ** 2)
    m = _smooth(np.maximum(np.abs(q - shift) - root_half,
                           np.maximum(-t - 3, t - FORAMEN_LENGTH - 6)), edge)
    return img * (1 - m) + 0.4 * m
