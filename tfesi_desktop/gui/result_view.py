"""The result as the side panel shows it, and why there is none (HTML for a QLabel).

A current result: the calibrated probability (never 0 or 100 %), its interval over the ROI set,
the label, and the warnings that qualify it. A stale result (made for another ROI, slice or side)
is greyed and struck through, never green. Gates that stop a prediction are said in red."""

from __future__ import annotations

from html import escape

from ..core.runtime import format_probability

GREEN, RED, GREY = "#1b5e20", "#8d1c1c", "#777777"


def result_html(pred, *, stale: bool = False, blocked: bool = False) -> str:
    """The result as HTML: greyed and struck through when ``stale``; ``blocked``: a safety gate
    stops a new prediction, so the advice is to correct the ROI or side, not to predict."""
    if stale:  # compact: what it was, struck through, and what to do
        advice = ("Correct the ROI or the side first (see Injection)." if blocked
                  else "Predict again.")
        return (f"<span style='font-size:14pt; color:{GREY}'><s>"
                f"{format_probability(pred.probability)} {pred.label}</s></span> "
                f"<b style='color:#a05a00'>Out of date: made for another ROI, slice or side. "
                f"{advice}</b>")
    lo, hi = pred.interval
    colour = GREEN if pred.label == "favourable" else RED
    if stale or not pred.reliable or pred.borderline:
        colour = GREY
    s, e = "", ""
    html = (f"<span style='font-size:20pt; font-weight:bold; color:{colour}'>{s}"
            f"{format_probability(pred.probability)}{e}</span> "
            f"<span style='color:{GREY if stale else '#444'}'>{s}(range "
            f"{format_probability(lo)} - {format_probability(hi)} over "
            f"{len(pred.crop_probabilities)} ROIs around yours){e}</span><br>"
            f"<span style='color:{GREY if stale else '#000'}'>{s}probability of a favourable "
            f"outcome (&ge; 50 % pain reduction at 2 months)<br><b>{pred.label}</b> at the "
            f"model's threshold {pred.threshold:.2f}{e}</span>")
    if pred.borderline:
        html += ("<br><b style='color:#a05a00'>Borderline: it depends on where the ROI is "
                 "drawn.</b>")
    if not pred.reliable:
        html += f"<br><b style='color:#8d1c1c'>{escape(pred.unreliable_text(), quote=False)}</b>"
    prov = pred.provenance
    if prov is not None and prov.override:
        html += f"<br><b style='color:#b00020'>{escape(prov.override, quote=False)}</b>"
    return html + (f"<br><small>Heat map: evidence for the <b>{pred.cam_target}</b> class."
                   "</small>")


NO_RESULT = ("<b style='color:#b00020'>No result: the selection does not pass the safety "
             "checks (see Injection above).</b>")


def provenance_html(result) -> str:
    """The provenance of a result (core/selection.py ``Result``); the level is the
    selection's, as the report prints it."""
    p = result.prediction.provenance
    return (f"Model {escape(p.model_name)} {escape(p.model_version)}<br>SHA-256 "
            f"{p.model_sha256}<br>preprocessing v{p.preprocessing_version}, {p.tta_crops} ROIs, "
            f"{escape(p.calibration)}<br>study {p.study_uid}<br>series {p.series_uid}<br>SOP "
            f"instance {p.sop_instance_uid}<br>slice {(p.slice_index or 0) + 1}, ROI "
            f"{list(p.roi)} (stored px), side {p.side} (ROI on the {p.roi_side or '?'} side of "
            f"the canal), level {result.level or 'NOT GIVEN'}<br>{p.time}")


def crop_view(selection, values, geometry) -> tuple[object, str]:
    """(the 100x100 model input image of the ROI as drawn or None, the caption saying what it
    is or what is missing) for the panel's preview."""
    from ..core.errors import TfesiError
    from ..core.preprocess import MIN_ROI_PIXELS, model_input

    roi = selection.roi if selection else None
    if roi is None or geometry is None or values is None or selection.side is None:
        return None, ("Draw a rectangle around the foramen (D, or Shift+drag), and choose the "
                      "side." if roi is None else "Choose the injection side." if
                      selection.side is None else "Reading the ROI's slice...")
    if roi[2] < MIN_ROI_PIXELS or roi[3] < MIN_ROI_PIXELS:
        return None, (f"The ROI is {roi[2]}x{roi[3]} pixels: too small (at least "
                      f"{MIN_ROI_PIXELS} on each side). Draw a larger one.")
    try:
        mi = model_input(values, geometry, roi, selection.side)
    except TfesiError as e:
        return None, e.message
    mirrored = ", mirrored (left side)" if selection.side == "left" else ""
    return mi.image[..., 0], (f"100x100, radiological orientation{mirrored}.\n"
                              f"ROI {roi[2]}x{roi[3]} px at ({roi[0]}, {roi[1]}) stored.")


def model_card_html(bundle) -> str:
    """Model > Model card: what the model is, how well it did, its limits."""
    b, c = bundle, bundle.card
    t = c.get("training", {})
    arch = c.get("architecture", {})
    return (f"<b>{b.name} {b.version}</b><br>{b.disclaimer()}<br><br>"
            f"<b>Intended use:</b> {c.get('intended_use', '-')}<br>"
            f"<b>Performance:</b> {b.validated_performance()}<br>"
            f"<b>Training data:</b> {t.get('data', '-')}<br>"
            f"<b>Network:</b> {arch.get('base')} ({arch.get('variant')}), ImageNet "
            f"initialisation: {arch.get('imagenet_initialization')}<br>"
            f"<b>Preprocessing version:</b> {c['preprocessing_version']}; threshold "
            f"{b.threshold}<br><b>SHA-256:</b> {b.sha256}<br><b>Limitations:</b><ul>"
            + "".join(f"<li>{x}</li>" for x in c.get("limitations", [])) + "</ul>")
