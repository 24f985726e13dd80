"""The selection and its result, as plain values (no Qt, no I/O): the one way a selection is
spelled (state files, CLI arguments, provenance) and the one result type that goes from the
prediction to the panel, the report and the DICOM results (docs/architecture.md, "Session
model"). A leaf module: it imports nothing of the program but :mod:`.measure`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .measure import Measurement

Rect = tuple[int, int, int, int]
SIDES = ("right", "left")
LEVELS = ("C5", "C6", "C7", "C8")
# the fields of a selection that the model's input depends on: a change makes a result stale
# and withdraws any override the user had confirmed
MODEL_FIELDS = ("study_uid", "series_key", "slice_key", "roi", "side")
# the safety gates a user may override (the size gate cannot be: core/commands.py)
OVERRIDABLE = ("side", "midline", "canal")


@dataclass(frozen=True)
class Selection:
    """What the user chose on one study.

    ``slice_key`` is the slice the ROI belongs to (SOP Instance UID, or ``uid:frame``): the ROI
    stays on the slice it was drawn on. ``viewed_slice`` is the slice looked at when it is
    another one (scrolling away from the ROI's slice changes only the view: the ROI and its
    result stay with their slice). ``roi`` is (x, y, w, h) in *stored* pixels of ``slice_key``;
    ``side`` the patient's injection side; ``overrides`` the safety gates the user has confirmed
    overriding for exactly this ROI, slice and side (cleared by any change of them)."""

    study_uid: str
    series_key: str | None = None
    slice_key: str | None = None
    roi: Rect | None = None
    side: str | None = None
    level: str | None = None
    measurements: tuple[Measurement, ...] = ()
    overrides: tuple[str, ...] = ()
    # "hand" when the user chose the level, "proposed" when it follows the disc marks
    level_source: str | None = None
    viewed_slice: str | None = None

    @property
    def view_key(self) -> str | None:
        """The slice on the screen."""
        return self.viewed_slice or self.slice_key

    def roi_elsewhere(self) -> bool:
        """True when the ROI is on another slice than the one looked at."""
        return self.roi is not None and self.view_key != self.slice_key

    def model_key(self) -> tuple:
        """What a prediction depends on (plus the overrides that let it through)."""
        return tuple(getattr(self, f) for f in MODEL_FIELDS) + (self.overrides,)

    def complete(self) -> bool:
        return None not in (self.series_key, self.slice_key, self.roi, self.side)

    def measurements_on(self, slice_key: str | None) -> tuple[Measurement, ...]:
        return tuple(m for m in self.measurements if m.slice_key == slice_key)


@dataclass(frozen=True)
class Result:
    """A prediction and what it was made from: the one result type from
    :func:`.commands.predict_selection` to the panel, the report and the DICOM results.

    The level is the selection's and only there (one place): the prediction's provenance
    records the model and the image, and whatever writes a result out (the PDF, the SR, the
    secondary capture, the CLI's JSON) reads the level from here.
    """

    selection: Selection
    prediction: object  # runtime.Prediction
    model_input: object = None  # preprocess.ModelInput of the ROI as drawn (for the report)
    canal: object = None  # midline.Canal found on the slice (None: not found / not searched)
    roi_side: str | None = None  # the patient side the anatomy puts the ROI on

    @property
    def level(self) -> str | None:
        return self.selection.level

    def stale_for(self, selection: Selection | None) -> bool:
        return selection is None or selection.model_key() != self.selection.model_key()

    def for_selection(self, selection: Selection) -> Result:
        """This result with the selection as it is now (same model inputs: its level,
        measurements and level source as the panel shows them)."""
        return dataclasses.replace(self, selection=selection)

    def as_dict(self) -> dict:
        """The prediction for JSON output (CLI) with the selection's level."""
        return {**self.prediction.as_dict(), "level": self.level}


@dataclass(frozen=True)
class Comparison:
    """The other side's prediction, for comparison only, kept with the model key of the
    selection it was mirrored from (shown only while that selection is current)."""

    source_key: tuple
    result: Result
