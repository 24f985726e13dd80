"""The ROI mirrored across the anatomical midline onto the other foramen (no Qt).

The midline is the plane through the spinal canal's centre whose normal is the anatomy's own
left-right axis (:class:`.midline.Canal`: found on the slice, turned with the patient), never
the image centre: on an off-centre or rotated patient the mirrored ROI lands on the other
foramen, not on the other half of the image."""

from __future__ import annotations

import dataclasses

import numpy as np

from .geometry import SliceGeometry

Rect = tuple[int, int, int, int]


def mirror_point(point, canal) -> np.ndarray:
    """A patient point (mm) reflected across the midline plane of ``canal``."""
    p, c = np.asarray(point, float), np.asarray(canal.centre_mm, float)
    n = np.asarray(canal.lateral, float)
    n = n / np.linalg.norm(n)
    return p - 2.0 * float(np.dot(p - c, n)) * n


def mirror_roi(geometry: SliceGeometry, roi: Rect, canal) -> Rect:
    """``roi`` (x, y, w, h stored pixels) with its centre reflected across the midline, the
    same size, kept inside the image."""
    x, y, w, h = roi
    centre = geometry.pixel_to_patient(y + (h - 1) / 2, x + (w - 1) / 2)
    q = mirror_point(centre, canal) - np.asarray(geometry.position, float)
    col = float(np.dot(q, geometry.row_cos)) / geometry.spacing[1]
    row = float(np.dot(q, geometry.col_cos)) / geometry.spacing[0]
    rows, cols = geometry.shape
    nx = int(round(col - (w - 1) / 2))
    ny = int(round(row - (h - 1) / 2))
    return (min(max(nx, 0), max(cols - w, 0)), min(max(ny, 0), max(rows - h, 0)), w, h)


def other_side(side: str) -> str:
    return "left" if side == "right" else "right"


def mirrored_selection(selection, geometry: SliceGeometry, canal):
    """The selection for the other foramen: ROI mirrored, the other side, no overrides."""
    return dataclasses.replace(selection, roi=mirror_roi(geometry, selection.roi, canal),
                               side=other_side(selection.side), overrides=())
