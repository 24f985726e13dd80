"""When the window predicts (no Qt): now, wait (and why), or blocked (and why). The window
asks after every change of the selection, the model, the slice or the canal, and does what it
is told; the command line and the self-test predict explicitly (docs/architecture.md,
"Session model")."""

from __future__ import annotations

from dataclasses import dataclass

from .assessment import Assessment


@dataclass(frozen=True)
class Predict:
    pass


@dataclass(frozen=True)
class Wait:
    """Not now; ``pending``: the prediction follows by itself once ready."""

    reason: str
    pending: bool = False


@dataclass(frozen=True)
class Blocked:
    """No prediction until the user acts: the gates that block (or no model at all)."""

    reason: str
    gates: tuple = ()


Action = Predict | Wait | Blocked


def next_action(*, selection, assessment: Assessment | None, model_ready: bool,
                model_loading: bool, slice_ready: bool, up_to_date: bool,
                predicting: bool) -> Action:
    """What to do about the current selection: ``up_to_date`` when a current result exists,
    ``predicting`` when one is under way for this selection, ``slice_ready`` when the ROI's
    slice is decoded."""
    if selection is None or not selection.complete():
        return Wait("Draw the ROI and choose the injection side first.")
    if up_to_date:
        return Wait("The result shown is up to date.")
    if predicting:
        return Wait("Predicting...")
    if not model_ready:
        if model_loading:
            return Wait("The model is still loading; the prediction follows as soon as it is "
                        "ready.", pending=True)
        return Blocked("No model is loaded, so nothing can be predicted.")
    if not slice_ready or assessment is None or not assessment.known:
        return Wait("Reading the slice and looking for the spinal canal; the prediction "
                    "follows.", pending=True)
    if assessment.blocking:
        return Blocked("No result: " + " ".join(g.message for g in assessment.blocking),
                       assessment.blocking)
    return Predict()
