"""The commands the window, the command line and the self-test share: open a study, check a
selection against the safety gates, predict it, write its report. One prediction builds its
model inputs once; the report reuses the input of the ROI as drawn (docs/architecture.md).

The safety gates (docs/architecture.md, invariant 1): no result for an ROI under the minimum size
(refused,
never enlarged), on the other side of the anatomical midline than the injection side, across the
midline, or on a slice where the spinal canal was not found, unless the user confirmed an override
(recorded in the provenance and printed on the report). The size gate cannot be overridden.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .errors import RoiError, TfesiError
from .midline import Canal, canal_candidates, find_canal, roi_position
from .preprocess import MIN_ROI_PIXELS, ModelInput, check_roi, model_inputs
from .selection import Result, Selection
from .site_note import with_site_note
from .source import source_note

_SEARCH = object()  # "find the canal" (as opposed to None: searched, not found)


class GateError(RoiError):
    """A selection stopped by safety gates; ``gates`` lists them."""

    def __init__(self, gates: list[Gate]):
        self.gates = gates
        text = " ".join(g.message for g in gates)
        if all(g.overridable for g in gates):
            text += " Correct it, or confirm an override (--override on the command line)."
        super().__init__(text)


@dataclass(frozen=True)
class Gate:
    kind: str  # "size", "side", "midline" (across it), "canal" (not found)
    message: str
    overridable: bool = True


@dataclass(frozen=True)
class Opened:
    scan: object  # dicom.ScanResult, duplicates dropped
    notes: tuple[str, ...]


# a prediction and what it was made from: the one result type (core/selection.py)
Outcome = Result


# --- opening ---------------------------------------------------------------------------------

def drop_duplicates(scan) -> list[str]:
    """Remove repeated instances from every stack in place (the same SOP Instance UID twice, or
    two images at the same position, as when a folder holds a study and its DICOMDIR copy);
    one note per stack that lost any."""
    notes = []
    for stack in scan.stacks:
        seen_uid, seen_pos, keep, dropped = set(), set(), [], 0
        for ref in stack.slices:
            pos = None
            if ref.geometry is not None:
                pos = tuple(np.round(np.asarray(ref.geometry.position, float), 2))
            if ref.key in seen_uid or (pos is not None and pos in seen_pos):
                dropped += 1
                continue
            seen_uid.add(ref.key)
            if pos is not None:
                seen_pos.add(pos)
            keep.append(ref)
        if dropped:
            stack.slices[:] = keep
            notes.append(f"Series '{stack.description or stack.series_uid}': {dropped} "
                         f"duplicate image{'s' if dropped != 1 else ''} (same instance or same "
                         "position twice) ignored.")
    return notes


def open_study(paths, *, progress=None, cancel=None) -> Opened:
    """Scan headers (skipping and listing unreadable files) and drop duplicate instances."""
    from .dicom import scan

    result = scan(paths, progress=progress, cancel=cancel)
    return Opened(result, tuple(drop_duplicates(result)))


def locate(scan, selection: Selection):
    """(stack, slice index, slice ref) of a selection in a scan; TfesiError if absent."""
    stack = scan.find_stack(selection.series_key)
    if selection.slice_key is None:
        raise TfesiError("No slice is selected.")
    index = stack.find_slice(selection.slice_key)
    return stack, index, stack.slices[index]


# --- the gates -------------------------------------------------------------------------------

GUIDE_AGREEMENT_MM = 15.0  # a canal found this far from the sagittal's cord is not believed
GUIDE_SCORE_MARGIN = 0.05  # the guided canal is kept unless the free search's scores this much more


def find_anatomy(values: np.ndarray, geometry, *, guide=None) -> Canal | None:
    """The spinal canal on a slice, or None (not found, or not an axial slice).

    ``guide``: the cord's course from a sagittal of the same Frame of Reference
    (:func:`sagittal_guide`): the canal is looked for where it crosses this slice and
    anywhere. The guided canal is taken unless the free search's canal scores
    :data:`GUIDE_SCORE_MARGIN` more (a weaker canal-like match near a misplaced course must not
    beat the canal the free search finds); either way a canal farther than
    :data:`GUIDE_AGREEMENT_MM` from the course is not the canal (docs/architecture.md, "Side
    from anatomy")."""
    if geometry is None or not geometry.is_axial():
        return None
    expected = guide.at(geometry) if guide is not None else None
    free = find_canal(values, geometry)
    if expected is None:
        return free
    guided = find_canal(values, geometry, expected_mm=expected)
    canal = guided
    if free is not None and (guided is None or free.score > guided.score + GUIDE_SCORE_MARGIN):
        canal = free
    if canal is not None and np.linalg.norm(np.subtract(canal.centre_mm, expected)) > \
            GUIDE_AGREEMENT_MM:
        return None
    return canal


STACK_REACH = 3  # a slice's canal is checked against this many slices each side of it


def anatomy_candidates(values: np.ndarray, geometry, *, guide=None) -> list[Canal]:
    """The places on a slice that may be its canal, best first (:func:`.midline.
    canal_candidates`); with the sagittal's course on this slice, :func:`find_anatomy`'s
    canal alone (the course already chose)."""
    if geometry is None or not geometry.is_axial():
        return []
    if guide is not None and guide.at(geometry) is not None:
        canal = find_anatomy(values, geometry, guide=guide)
        return [] if canal is None else [canal]
    return canal_candidates(values, geometry)


def find_anatomy_in_stack(stack, index: int, *, values=None, guide=None,
                          candidates_of=None) -> Canal | None:
    """The canal on slice ``index`` of ``stack`` as it fits the canals of the
    :data:`STACK_REACH` slices each side (:func:`.stackcanal.consistent_canals`): the slice's
    best match unless a look-alike far from its neighbours' canal; a slice refused alone is
    searched again near their course. ``values``: slice ``index``'s, if decoded;
    ``candidates_of(i)``: slice i's :func:`anatomy_candidates` (a caller's cache), else they
    are decoded and searched here. A lone slice: :func:`find_anatomy`'s canal."""
    from .dicom.pixels import modality_values
    from .stackcanal import consistent_canals

    ref = stack.slices[index]
    if ref.geometry is None or not ref.geometry.is_axial():
        return None
    if values is None:
        values = modality_values(ref)
    near = [i for i in range(max(0, index - STACK_REACH),
                             min(len(stack.slices), index + STACK_REACH + 1))
            if stack.slices[i].geometry is not None]

    def candidates(i):
        if candidates_of is not None:
            return candidates_of(i)
        if i == index:
            return anatomy_candidates(values, ref.geometry, guide=guide)
        return anatomy_candidates(modality_values(stack.slices[i]), stack.slices[i].geometry,
                                  guide=guide)

    def refind(k, expected_mm):
        if near[k] != index:  # only this slice's answer is wanted
            return None
        found = canal_candidates(values, ref.geometry, expected_mm=expected_mm, n=1, weak=True)
        return found[0] if found else None

    canals = consistent_canals([candidates(i) for i in near],
                               [stack.slices[i].geometry for i in near], refind)
    return canals[near.index(index)]


def sagittal_guide(scan, stack):
    """The cord's course (:class:`.cordpath.CordCourse`) from the study's sagittal series that
    shares ``stack``'s Frame of Reference, or None. Reads headers and decodes the sagittal:
    run it in a worker."""
    from .cordpath import cord_course
    from .crossref import read_frames_of_reference, same_frame
    from .dicom.pixels import modality_values

    study = [s for s in scan.stacks if s.study_uid == stack.study_uid]
    sags = [s for s in study if s.geometry is not None
            and int(np.argmax(np.abs(s.geometry.normal))) == 0]
    if not sags:
        return None
    frames = read_frames_of_reference([stack, *sags])
    for sag in sorted(sags, key=lambda s: -len(s.slices)):
        if same_frame(frames[stack.key], frames[sag.key]):
            try:
                return cord_course([(modality_values(r), r.geometry) for r in sag.slices])
            except TfesiError:
                return None
    return None


def check_selection(selection: Selection, geometry, canal: Canal | None) -> list[Gate]:
    """The safety gates this selection meets (empty: it may be predicted)."""
    roi, side = selection.roi, selection.side
    if roi is None or side is None:
        raise TfesiError("Draw the ROI and choose the injection side first.")
    gates = []
    if roi[2] < MIN_ROI_PIXELS or roi[3] < MIN_ROI_PIXELS:
        gates.append(Gate("size", f"The ROI is {roi[2]}x{roi[3]} pixels; it must be at least "
                                  f"{MIN_ROI_PIXELS} on each side. Draw a larger one.", False))
        return gates
    if canal is None:
        gates.append(Gate("canal", "The spinal canal was not found on this slice, so the side "
                                   "of the ROI cannot be checked. Confirm the injection side."))
        return gates
    pos = roi_position(geometry, roi, canal)
    if pos.crosses:
        gates.append(Gate("midline", "The ROI reaches across the midline (the spinal canal): "
                                     "draw it around one foramen only."))
    elif pos.side != side:
        gates.append(Gate("side", f"The ROI lies on the patient's {pos.side} side, but the "
                                  f"injection side is {side}."))
    return gates


def blocking(gates: list[Gate], selection: Selection) -> list[Gate]:
    """The gates not overridden by the selection's confirmed overrides."""
    return [g for g in gates if not (g.overridable and g.kind in selection.overrides)]


def override_text(gates: list[Gate], selection: Selection) -> str | None:
    done = [g for g in gates if g.overridable and g.kind in selection.overrides]
    if not done:
        return None
    return "OVERRIDE confirmed by the user: " + " ".join(g.message for g in done)


# --- predicting ------------------------------------------------------------------------------

def predict_selection(predictor, stack, selection: Selection, *, values=None,
                      canal=_SEARCH, guide=None) -> Outcome:
    """Check the gates and make the stable prediction for a selection on a scanned stack,
    over the chosen slice and its neighbours (``predictor.slice_offsets``, the ROI carried
    there by geometry; :func:`.runtime.predict_slices`).

    ``values``: the slice's modality values if already decoded; ``canal``: the canal if already
    found (None: searched and not found); ``guide``: the sagittal's cord course for that search
    (:func:`sagittal_guide`). Raises :class:`GateError` when a gate blocks."""
    from .dicom.pixels import modality_values
    from .runtime import predict_slices

    index = stack.find_slice(selection.slice_key)
    ref = stack.slices[index]
    geometry = ref.require_geometry()
    if values is None:
        values = modality_values(ref)
    if selection.roi is None or selection.side is None:
        raise TfesiError("Draw the ROI and choose the injection side first.")
    check_roi(selection.roi, values.shape)
    if canal is _SEARCH:
        canal = find_anatomy_in_stack(stack, index, values=values, guide=guide)
    gates = check_selection(selection, geometry, canal)
    block = blocking(gates, selection)
    if block:
        raise GateError(block)
    found = roi_position(geometry, selection.roi, canal).side if canal is not None else None
    indices, inputs = neighbourhood_inputs(predictor, stack, index, values, selection.roi,
                                           selection.side)
    pred = predict_slices(
        predictor, inputs, indices, index, side=selection.side, study_uid=stack.study_uid,
        series_uid=stack.series_uid, sop_instance_uid=ref.sop_instance_uid, frame=ref.frame,
        slice_index=index, roi_side=found,
        override=override_text(gates, selection))
    note = source_note(predictor.bundle.synthetic, stack.manufacturer)
    note = with_site_note(note, predictor.bundle)  # a site-check found the site differs
    if note:  # a synthetic-only model on an image its generator did not make, or that site
        pred = replace(pred, source_note=note)
    return Result(selection, pred, inputs[indices.index(index)][0], canal, found)


def neighbourhood_inputs(predictor, stack, index: int, values, roi, side: str
                         ) -> tuple[list[int], list[list[ModelInput]]]:
    """(stack indices, model inputs per slice) of the chosen slice (the full ROI set) and its
    neighbours (``predictor.neighbour_crops``), the ROI carried to each by geometry. A
    neighbour that is missing, not parallel in the same orientation, or too small for the
    carried ROI is left out: the prediction then rests on fewer slices."""
    from .dicom.pixels import modality_values
    from .neighbourhood import carry_roi, neighbour_indices

    geometry = stack.slices[index].require_geometry()
    d = geometry.canonical_transform()
    indices, inputs = [], []
    for j in neighbour_indices(len(stack.slices), index, predictor.slice_offsets):
        if j == index:
            indices.append(j)
            inputs.append(model_inputs(values, d, roi, side, crops=predictor.crops))
            continue
        g = stack.slices[j].geometry
        if g is None or not g.is_axial() or g.canonical_transform() != d or abs(
                abs(float(np.dot(g.normal, geometry.normal))) - 1) > 1e-3:
            continue
        try:
            v = modality_values(stack.slices[j])
            r = check_roi(carry_roi(roi, geometry, g), v.shape)
            inputs.append(model_inputs(v, d, r, side, crops=predictor.neighbour_crops))
        except TfesiError:
            continue  # an unreadable or blank neighbour: not part of the neighbourhood
        indices.append(j)
    return indices, inputs


# --- the report ------------------------------------------------------------------------------

def write_report(outcome: Outcome, bundle, scan, path, *, comment: str = "",
                 physician: str = "", anonymize: bool = True, paper: str = "a4",
                 dicom: bool = False, comparison: str | None = None, kim=_SEARCH,
                 impression: str | None = None, clinical=None,
                 clinical_note: str | None = None) -> tuple[Path, Path | None, float]:
    """Write the PDF (atomically) for a prediction, from the model input it was made from;
    (pdf, DICOM copy or None, seconds). The level is the selection's (one place); ``kim``: the
    Kim grade line exactly as the window shows it (None: none), else computed from the tags;
    ``clinical``: the result combined with the clinical data (core/clinical.py
    ``CombinedPrediction``), or ``clinical_note``: why there is none."""
    from .measure import kim_from, kim_text, measurement_lines
    from .report import encapsulate_pdf, report_inputs
    from .report import write_report as _write

    t0 = time.perf_counter()
    stack = scan.find_stack(outcome.selection.series_key)
    study = scan.study_of(stack)
    index = stack.find_slice(outcome.selection.slice_key)
    sel = outcome.selection
    spacing = stack.slices[index].geometry.spacing if stack.slices[index].geometry else (1, 1)
    if kim is _SEARCH:
        grade = kim_from(sel.measurements, spacing)
        kim = kim_text(grade) if grade else None
    inp = report_inputs(outcome.prediction, bundle, study, stack, index, outcome.model_input,
                        level=sel.level, comment=comment,
                        physician=physician, anonymize=anonymize, paper=paper,
                        level_source=sel.level_source,
                        measurements=measurement_lines(sel.measurements, spacing),
                        drawn=[(str(i + 1), m.points) for i, m in enumerate(sel.measurements)
                               if m.slice_key == sel.slice_key],  # numbered as listed
                        kim=kim, comparison=comparison, impression=impression,
                        clinical=clinical, clinical_note=clinical_note)
    out = _write(inp, path)
    dcm = (encapsulate_pdf(out, study, stack, anonymize=anonymize, index=index,
                           provenance=outcome.prediction.provenance) if dicom else None)
    return out, dcm, time.perf_counter() - t0
