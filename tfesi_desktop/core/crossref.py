"""Cross-reference lines between image planes, in patient coordinates (no Qt).

The current axial slice drawn on the sagittal is the line where the two planes meet, computed
from both planes' ImagePositionPatient/ImageOrientationPatient (``SliceGeometry``), so a tilted
axial series gives a tilted line. It only means something when both series share a Frame of
Reference (same FrameOfReferenceUID): otherwise :func:`cross_reference` is not called and the
window says why.

Pixel convention (as :meth:`SliceGeometry.pixel_to_patient`): (row, col) is the centre of a
pixel at integers; an image of shape (rows, cols) covers [-0.5, cols - 0.5] x [-0.5, rows - 0.5].
"""

from __future__ import annotations

import numpy as np

from .geometry import SliceGeometry

Point = tuple[float, float]  # (row, col), continuous pixel-centre coordinates


def plane_offset(geometry: SliceGeometry, point) -> float:
    """Signed distance (mm) of a patient point from the image's plane, along its normal."""
    return float(np.dot(np.asarray(point, float) - np.asarray(geometry.position, float),
                        geometry.normal))


def cross_reference(plane: SliceGeometry, target: SliceGeometry) -> tuple[Point, Point] | None:
    """The line where ``plane`` cuts the image ``target``, clipped to ``target``'s extent:
    two (row, col) end points in ``target``'s stored pixels, or None when the planes are
    parallel (within 0.01 rad) or the line misses the image.

    Every target pixel (row, col) lies at ``O + col * sc * r + row * sr * c``; it is on the
    plane when ``a * col + b * row + d = 0`` with ``a = sc n.r``, ``b = sr n.c`` and
    ``d = n.(O - P)``."""
    n = plane.normal / np.linalg.norm(plane.normal)
    r, c = np.asarray(target.row_cos, float), np.asarray(target.col_cos, float)
    sr, sc = target.spacing
    a, b = sc * float(np.dot(n, r)), sr * float(np.dot(n, c))
    d = float(np.dot(n, np.asarray(target.position, float) - np.asarray(plane.position, float)))
    if np.hypot(a / max(sc, 1e-9), b / max(sr, 1e-9)) < 0.01:
        return None  # parallel planes
    rows, cols = target.shape
    c0, c1, r0, r1 = -0.5, cols - 0.5, -0.5, rows - 0.5
    pts: list[Point] = []
    if abs(b) > 1e-12:  # crossings of the left and right edges
        for col in (c0, c1):
            row = -(a * col + d) / b
            if r0 - 1e-9 <= row <= r1 + 1e-9:
                pts.append((row, col))
    if abs(a) > 1e-12:  # ... of the top and bottom edges
        for row in (r0, r1):
            col = -(b * row + d) / a
            if c0 - 1e-9 <= col <= c1 + 1e-9:
                pts.append((row, col))
    unique: list[Point] = []
    for p in pts:
        if all(np.hypot(p[0] - q[0], p[1] - q[1]) > 1e-6 for q in unique):
            unique.append(p)
    if len(unique) < 2:
        return None
    # the two points furthest apart (a corner can appear twice)
    best = max(((p, q) for i, p in enumerate(unique) for q in unique[i + 1:]),
               key=lambda pq: np.hypot(pq[0][0] - pq[1][0], pq[0][1] - pq[1][1]))
    (ra, ca), (rb, cb) = sorted(best, key=lambda p: (p[1], p[0]))
    return (float(ra), float(ca)), (float(rb), float(cb))


def nearest_slice(geometries, point) -> int:
    """Index of the slice whose plane lies nearest to a patient point (mm)."""
    dist = [abs(plane_offset(g, point)) for g in geometries]
    return int(np.argmin(dist))


def same_frame(uid_a: str | None, uid_b: str | None) -> bool:
    """Whether two series share a Frame of Reference (both UIDs known and equal)."""
    return bool(uid_a) and uid_a == uid_b


def read_frames_of_reference(stacks) -> dict[str, str | None]:
    """FrameOfReferenceUID of each stack (by key), read from its first file's header (None when
    absent or unreadable). Reads headers: run it in a worker."""
    import pydicom

    out: dict[str, str | None] = {}
    for st in stacks:
        uid = None
        if st.slices:
            try:
                ds = pydicom.dcmread(st.slices[0].path, stop_before_pixels=True,
                                     specific_tags=["FrameOfReferenceUID"])
                uid = str(ds.get("FrameOfReferenceUID", "") or "") or None
            except Exception:  # noqa: BLE001 - any unreadable header: no shared frame known
                uid = None
        out[st.key] = uid
    return out
