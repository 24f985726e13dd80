"""The slices around the one chosen: the physician picks "the narrowest" slice by eye, and one
slice up or down (3-3.5 mm) is an easy mistake that changed the demonstration model's label in
37 % of predictions (issue 22; docs/architecture.md, invariant 8). A prediction therefore also
looks at the neighbouring slices, with the ROI carried across by geometry (:func:`carry_roi`),
and the result either rests on the slice the model scores as the narrowest (the lowest
probability: on the phantom, where the foramen is narrowest) or, for a model whose card does
not ask for that rule, stays on the chosen slice and says when the neighbours disagree.

Qt-free and TensorFlow-free; :func:`..runtime.predict_slices` runs the network.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .geometry import SliceGeometry

Rect = tuple[int, int, int, int]

# the neighbourhood a prediction looks at: the chosen slice and one on each side
DEFAULT_OFFSETS: tuple[int, ...] = (-1, 0, 1)
RULES = ("narrowest", "chosen")


def patient_to_pixel(g: SliceGeometry, point) -> tuple[float, float]:
    """(row, column) of the point's projection onto the plane of ``g`` (fractional)."""
    d = np.asarray(point, float) - np.asarray(g.position, float)
    return (float(d @ np.asarray(g.col_cos, float)) / g.spacing[0],
            float(d @ np.asarray(g.row_cos, float)) / g.spacing[1])


def carry_roi(roi: Rect, source: SliceGeometry, target: SliceGeometry) -> Rect:
    """The ROI (stored pixels of ``source``) on the ``target`` slice: its corners through
    patient coordinates, projected along the target's normal onto its plane, in the target's
    stored pixels, then moved (not cut) inside the target image. In a stack of parallel,
    equally sampled slices it is the same rectangle."""
    x, y, w, h = roi
    corners = [source.pixel_to_patient(r, c) for r in (y, y + h - 1) for c in (x, x + w - 1)]
    rc = np.array([patient_to_pixel(target, p) for p in corners])
    r0, c0 = rc.min(axis=0)
    r1, c1 = rc.max(axis=0)
    nw = int(min(max(round(c1 - c0) + 1, 2), target.shape[1]))
    nh = int(min(max(round(r1 - r0) + 1, 2), target.shape[0]))
    nx = int(min(max(round((c0 + c1) / 2 - (nw - 1) / 2), 0), target.shape[1] - nw))
    ny = int(min(max(round((r0 + r1) / 2 - (nh - 1) / 2), 0), target.shape[0] - nh))
    return nx, ny, nw, nh


def neighbour_indices(n_slices: int, index: int, offsets=DEFAULT_OFFSETS) -> list[int]:
    """The stack indices ``index + offset`` that exist, in offset order (the chosen included)."""
    return [index + o for o in offsets if 0 <= index + o < n_slices]


def based_on(chosen: int, indices, logits, rule: str) -> int:
    """The stack index the result rests on: the chosen slice (rule "chosen"), or the one the
    model scores lowest, the narrowest-looking (rule "narrowest"; ties go to the chosen)."""
    if rule not in RULES:
        raise ValueError(f"unknown slice rule {rule!r}; expected one of {RULES}")
    if rule == "chosen":
        return chosen
    z = np.asarray(logits, float)
    lowest = float(z.min())
    if z[list(indices).index(chosen)] <= lowest:
        return chosen
    return int(list(indices)[int(np.argmin(z))])


@dataclass(frozen=True)
class Neighbourhood:
    """The stable probability on each slice of the neighbourhood (the strip the window shows)
    and which slice the result rests on. Indices are 0-based positions in the sorted stack."""

    slice_indices: tuple[int, ...]
    probabilities: tuple[float, ...]  # calibrated, per slice, each over the ROI set
    chosen: int
    based_on: int
    rule: str  # "narrowest" or "chosen"
    threshold: float

    @property
    def narrowest(self) -> int:
        """The slice the model scores lowest: where the foramen looks narrowest."""
        return int(self.slice_indices[int(np.argmin(self.probabilities))])

    @property
    def disagree(self) -> bool:
        """The neighbouring slices fall on different sides of the threshold."""
        labels = {p >= self.threshold for p in self.probabilities}
        return len(labels) > 1

    @property
    def proposed(self) -> int | None:
        """The slice to propose instead of the chosen one (the narrowest), or None."""
        return None if self.narrowest == self.chosen else self.narrowest

    def message(self) -> str | None:
        """One plain sentence for the physician, or None when nothing needs saying."""
        if self.proposed is None and not self.disagree:
            return None
        n = self.proposed
        if self.rule == "narrowest" and n is not None:
            return (f"The foramen looks narrowest on slice {n + 1}, next to the chosen slice "
                    f"{self.chosen + 1}: the result rests on slice {n + 1}. Go to it and "
                    "confirm.")
        if self.disagree:
            return ("The neighbouring slices disagree about the label: check that the chosen "
                    "slice is where the foramen is narrowest"
                    + (f" (the model scores slice {n + 1} lowest)." if n is not None else "."))
        return (f"The model scores slice {n + 1} lower than the chosen slice "
                f"{self.chosen + 1}: check which is the narrowest.")

    def as_dict(self) -> dict:
        return {"slices": [i + 1 for i in self.slice_indices],  # 1-based, as the CLI counts
                "probabilities": [round(p, 6) for p in self.probabilities],
                "chosen_slice": self.chosen + 1, "based_on_slice": self.based_on + 1,
                "narrowest_slice": self.narrowest + 1,
                "proposed_slice": None if self.proposed is None else self.proposed + 1,
                "rule": self.rule, "neighbours_disagree": self.disagree,
                "message": self.message()}
