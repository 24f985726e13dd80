"""Synthetic patients lying off-centre and rotated (for the side-from-anatomy tests): the
anatomy moved and turned, the ROI a clinician would draw recomputed around the injected
foramen's waist, and the slice/geometry of any storage orientation, in memory or on disk."""

from __future__ import annotations

import dataclasses

import numpy as np

from tfesi_desktop.core.geometry import Dihedral, SliceGeometry
from tfesi_desktop.core.synth.cohort import (
    Storage,
    _canonical_directions,
    draw_patient,
    render_axial,
    stored_geometry,
)
from tfesi_desktop.core.synth.phantom import foramen_waist


def offcentre_patient(seed=3, index=1, *, centre=(30.0, 0.0), rotation_deg=10.0,
                      dihedral=None, side=None, matrix=256):
    storage = Storage(dihedral=dihedral or Dihedral())
    p = draw_patient(seed, index, storage=storage, matrix=matrix)
    a = dataclasses.replace(p.anatomy, centre=tuple(centre),
                            rotation=float(np.deg2rad(rotation_deg)))
    side = side or p.side
    p = dataclasses.replace(p, anatomy=a, side=side)
    return dataclasses.replace(p, roi_canonical=canonical_roi(p, side))


def canonical_roi(p, side, size_mm=30.0):
    """A 30 mm square ROI centred on the foramen's waist on ``side``, canonical pixels."""
    u, v = foramen_waist(p.anatomy, side)
    half = (p.matrix - 1) / 2
    w = int(round(size_mm / p.pixel_mm))
    return (int(round(u / p.pixel_mm + half - w / 2)), int(round(v / p.pixel_mm + half - w / 2)),
            w, w)


def stored_roi(p, side=None):
    roi = canonical_roi(p, side) if side else p.roi_canonical
    return p.storage.dihedral.rect_from_canonical(roi, (p.matrix, p.matrix))


def canonical_origin(p):
    r_c, c_c = _canonical_directions(p.storage.tilt_deg)
    return np.array([0.0, 0.0, 0.0]) - (p.matrix - 1) / 2 * p.pixel_mm * (r_c + c_c)


def narrowest_slice(p):
    """(stored values, SliceGeometry) of the narrowest slice, in memory."""
    k = p.narrowest_index
    canon = render_axial(p, only=k)[k]
    stored = np.ascontiguousarray(p.storage.dihedral.invert(canon))
    origin, row_dir, col_dir = stored_geometry(p.storage, canonical_origin(p), p.pixel_mm,
                                               (p.matrix, p.matrix))
    g = SliceGeometry(tuple(origin), tuple(row_dir), tuple(col_dir),
                      (p.pixel_mm, p.pixel_mm), stored.shape)
    return stored, g


def true_canal_mm(p):
    """The canal's centre in patient coordinates (mm): the anatomy's (0, 9) in its frame."""
    a = p.anatomy
    c, s = np.cos(a.rotation), np.sin(a.rotation)
    u, v = -s * 9.0 + a.centre[0], c * 9.0 + a.centre[1]
    r_c, c_c = _canonical_directions(p.storage.tilt_deg)
    half = (p.matrix - 1) / 2
    col, row = u / p.pixel_mm + half, v / p.pixel_mm + half
    return canonical_origin(p) + col * p.pixel_mm * r_c + row * p.pixel_mm * c_c
