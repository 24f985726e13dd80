"""Measurements on a slice (no Qt): lengths and angles in patient millimetres and degrees, and
the Kim grade of foraminal stenosis from two tagged lengths.

Points are stored pixels, continuous (x = column, y = row; pixel (r, c) covers
[c, c+1) x [r, r+1)); ``spacing`` is (between rows, between columns) in mm, as PixelSpacing.
Kim et al. (2015), as used by the study: grade 0 when the foramen's narrowest width is larger
than the nerve root's, 1 when it is 51-100 % of it, 2 when it is 50 % or less."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

TAGS = ("foramen", "root")
TAG_NAMES = {"foramen": "foraminal width", "root": "nerve root width"}


@dataclass(frozen=True)
class Measurement:
    """A measurement drawn on one slice, in stored pixel coordinates (x = column, y = row,
    continuous: pixel (r, c) covers [c, c+1) x [r, r+1)): a ``length`` between two points or an
    ``angle`` at the middle of three. A length may be tagged ``foramen`` (foraminal width) or
    ``root`` (nerve root width): the two give the Kim grade."""

    slice_key: str
    points: tuple[tuple[float, float], ...]
    kind: str = "length"
    tag: str | None = None

    def length_mm(self, spacing: tuple[float, float]) -> float:
        return length_mm(self.points, spacing)


def length_mm(points, spacing) -> float:
    (x0, y0), (x1, y1) = points[:2]
    return math.hypot((x1 - x0) * spacing[1], (y1 - y0) * spacing[0])


def angle_deg(points, spacing) -> float:
    """The angle at the middle point of three, in degrees (0..180), in patient mm."""
    (xa, ya), (xv, yv), (xb, yb) = points[:3]
    ax, ay = (xa - xv) * spacing[1], (ya - yv) * spacing[0]
    bx, by = (xb - xv) * spacing[1], (yb - yv) * spacing[0]
    na, nb = math.hypot(ax, ay), math.hypot(bx, by)
    if na == 0 or nb == 0:
        return 0.0
    c = max(-1.0, min(1.0, (ax * bx + ay * by) / (na * nb)))
    return math.degrees(math.acos(c))


def value_text(m, spacing) -> str:
    """'12.3 mm' or '45.0 deg' for a measurement (``kind`` 'length' or 'angle')."""
    if m.kind == "angle":
        return f"{angle_deg(m.points, spacing):.1f} deg"
    return f"{length_mm(m.points, spacing):.1f} mm"


def kim_grade(foramen_mm: float, root_mm: float) -> int:
    """0: foramen wider than the root; 1: 51-100 % of it; 2: 50 % or less."""
    if root_mm <= 0:
        raise ValueError("the nerve root width must be positive")
    ratio = foramen_mm / root_mm
    if ratio > 1.0:
        return 0
    return 1 if ratio > 0.5 else 2


def kim_from(measurements, spacing) -> tuple[int, float, float] | None:
    """(grade, foramen mm, root mm) from the lengths tagged 'foramen' and 'root', or None."""
    tagged = {m.tag: m for m in measurements if m.kind == "length" and m.tag in TAGS}
    if set(tagged) != set(TAGS):
        return None
    f, r = (length_mm(tagged[t].points, spacing) for t in TAGS)
    if r <= 0:
        return None
    return kim_grade(f, r), f, r


def kim_for_side(measurements, spacing, side: str | None,
                 side_of: Callable[[Measurement], str | None]) -> tuple[tuple | None, str]:
    """The Kim grade from the tagged widths *on the injection side* only, and the sentence the
    panel and the report show: ((grade, foramen mm, root mm) or None, text). ``side_of`` gives a
    measurement's patient side from the anatomy (None: not known). Widths measured on the other
    foramen, or whose side cannot be checked, give no grade and say so."""
    tagged = {m.tag: m for m in measurements if m.kind == "length" and m.tag in TAGS}
    if set(tagged) != set(TAGS):
        return None, "Kim grade: tag a foramen width and a root width (below)."
    if side is None:
        return None, "Kim grade: choose the injection side first."
    for t in TAGS:
        found = side_of(tagged[t])
        if found is None:
            return None, (f"Kim grade: the side of the {TAG_NAMES[t]} cannot be checked (the "
                          "spinal canal was not found on its slice), so no grade is given.")
        if found != side:
            return None, (f"Kim grade not given: the {TAG_NAMES[t]} was measured on the "
                          f"patient's {found} side, but the injection side is {side}. "
                          "Measure the injected foramen.")
    kim = kim_from(tuple(tagged.values()), spacing)
    if kim is None:
        return None, "Kim grade: the nerve root width is zero."
    return kim, kim_text(kim)


def kim_text(kim) -> str:
    grade, f, r = kim
    return (f"Kim grade {grade} (foraminal width {f:.1f} mm / nerve root {r:.1f} mm = "
            f"{100 * f / r:.0f} %)")


def measurement_lines(measurements, spacing) -> list[str]:
    """One line per measurement, as listed in the window and printed in the report."""
    out = []
    for i, m in enumerate(measurements):
        tag = f" - {TAG_NAMES[m.tag]}" if m.tag in TAGS else ""
        out.append(f"{i + 1}. {m.kind} {value_text(m, spacing)}{tag}")
    return out
