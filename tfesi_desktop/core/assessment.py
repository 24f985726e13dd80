"""What the window shows about a selection before any prediction (no Qt): where the ROI lies
relative to the spinal canal, the safety gates it meets, which of them block, the side the
anatomy proposes and the sentence the panel shows (docs/architecture.md, invariant 1: the
midline is anatomical, the canal's centre, never the image centre)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .commands import Gate, blocking, check_selection
from .midline import Canal, RoiPosition, roi_position
from .selection import Selection


@dataclass(frozen=True)
class Assessment:
    """``known`` False: the canal search of the ROI's slice is still under way (gates not
    known yet). ``gates``: every gate met; ``blocking``: those not overridden."""

    known: bool
    position: RoiPosition | None = None
    gates: tuple[Gate, ...] = ()
    blocking: tuple[Gate, ...] = ()
    hint: str = ""
    proposed_side: str | None = None

    @property
    def overridable(self) -> bool:
        return bool(self.blocking) and all(g.overridable for g in self.blocking)

    def override_note(self) -> str | None:
        """What the panel says when gates were met and all overridden."""
        if self.gates and not self.blocking:
            return "Override confirmed: " + " ".join(g.message for g in self.gates)
        return None


def assess(selection: Selection | None, geometry, canal: Canal | None, *,
           known: bool = True) -> Assessment:
    """The assessment of a selection on its ROI's slice (``geometry``, ``canal`` of that
    slice; ``known`` False while the canal is being looked for)."""
    if selection is None or selection.roi is None or geometry is None:
        return Assessment(known=True)
    if not known:
        return Assessment(known=False, hint="Looking for the spinal canal...")
    pos, proposed = None, None
    if canal is None:
        hint = ("The spinal canal was not found on this slice: choose the injection side "
                "yourself.")
    else:
        pos = roi_position(geometry, selection.roi, canal)
        proposed = pos.side
        hint = (f"The ROI lies on the patient's {pos.side} side of the spinal canal "
                f"({abs(pos.centre_mm):.0f} mm).")
    if selection.side is None:
        return Assessment(True, pos, hint=hint, proposed_side=proposed)
    gates = tuple(check_selection(selection, geometry, canal))
    return Assessment(True, pos, gates, tuple(blocking(list(gates), selection)), hint, proposed)


def point_side(geometry, canal: Canal | None, x: float, y: float) -> str | None:
    """The patient side of a point (continuous stored pixels, x = column, y = row) relative
    to the canal's midline; None without a canal."""
    if canal is None or geometry is None:
        return None
    p = geometry.pixel_to_patient(y - 0.5, x - 0.5)  # pixel centres at integers there
    d = float(np.dot(p - np.asarray(canal.centre_mm, float), np.asarray(canal.lateral, float)))
    return "left" if d > 0 else "right"
