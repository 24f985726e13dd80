"""Disc levels marked on the sagittal, and the level of an axial slice proposed from them.

The physician clicks the disc centres on the sagittal (C2-3 down to C7-T1, in that order, or
any of them); each mark is kept in patient coordinates (LPS, mm) of the study's Frame of
Reference, so it shows on every series of that frame. The injection level is named by the
root that exits at a disc (C4-5 -> C5, ..., C7-T1 -> C8, as in :data:`session.LEVELS`); an axial
slice is proposed the level of the marked disc nearest its plane, if that disc lies within half
the distance to its neighbouring marks (10 mm with a single mark), and if that level is one the
program predicts for (C5-C8: the discs C2-3 and C3-4 can be marked, to help place the others,
but propose nothing)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .geometry import SliceGeometry

DISCS = ("C2-3", "C3-4", "C4-5", "C5-6", "C6-7", "C7-T1")
ROOT_OF_DISC = {"C2-3": "C3", "C3-4": "C4", "C4-5": "C5", "C5-6": "C6", "C6-7": "C7",
                "C7-T1": "C8"}
# the levels the program predicts for (session.LEVELS, which tests/test_levels.py checks is the
# same): a slice at C2-3 or C3-4 is proposed no level, rather than one the session refuses
INJECTION_LEVELS = ("C5", "C6", "C7", "C8")
SINGLE_MARK_REACH_MM = 10.0


@dataclass(frozen=True)
class LevelMark:
    """A disc's centre as marked on the sagittal: patient coordinates (mm)."""

    disc: str
    point: tuple[float, float, float]


def next_disc(marks) -> str | None:
    """The first disc (head to foot) not marked yet, or None when all are."""
    done = {m.disc for m in marks}
    return next((d for d in DISCS if d not in done), None)


def with_mark(marks, mark: LevelMark) -> tuple[LevelMark, ...]:
    """The marks with ``mark`` added (replacing a mark of the same disc), head to foot."""
    out = [m for m in marks if m.disc != mark.disc] + [mark]
    return tuple(sorted(out, key=lambda m: DISCS.index(m.disc)))


def disc_at(marks, geometry: SliceGeometry) -> tuple[str, float] | None:
    """(disc, signed distance in mm from the plane) of the marked disc the plane ``geometry``
    passes through, or None when no mark is near enough (see module docstring)."""
    if not marks:
        return None
    n = geometry.normal / np.linalg.norm(geometry.normal)
    p0 = np.asarray(geometry.position, float)
    dist = [float(np.dot(np.asarray(m.point, float) - p0, n)) for m in marks]
    k = int(np.argmin(np.abs(dist)))
    if len(marks) == 1:
        reach = SINGLE_MARK_REACH_MM
    else:
        gaps = [float(np.linalg.norm(np.subtract(marks[j].point, marks[k].point)))
                for j in (k - 1, k + 1) if 0 <= j < len(marks)]
        reach = min(gaps) / 2
    return (marks[k].disc, dist[k]) if abs(dist[k]) <= reach else None


def propose_level(marks, geometry: SliceGeometry | None) -> str | None:
    """The injection level (root name) proposed for an axial slice, or None."""
    if geometry is None or not geometry.is_axial():
        return None
    found = disc_at(marks, geometry)
    level = ROOT_OF_DISC[found[0]] if found else None
    return level if level in INJECTION_LEVELS else None
