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
    lo, hi = pred.interval
    colour = GREEN if pred.label == "favourable" else RED
    if stale or not pred.reliable or pred.borderline:
        colour = GREY
    s, e = ("<s>", "</s>") if stale else ("", "")
    html = (f"<span style='font-size:20pt; font-weight:bold; color:{colour}'>{s}"
            f"{format_probability(pred.probability)}{e}</span> "
            f"<span style='color:{GREY if stale else '#444'}'>{s}(range "
            f"{format_probability(lo)} - {format_probability(hi)} over "
            f"{len(pred.crop_probabilities)} ROIs around yours){e}</span><br>"
            f"<span style='color:{GREY if stale else '#000'}'>{s}probability of a favourable "
            f"outcome (&ge; 50 % pain reduction at 2 months)<br><b>{pred.label}</b> at the "
            f"model's threshold {pred.threshold:.2f}{e}</span>")
    if stale:
        advice = ("Correct the ROI or the side first (see above)." if blocked
                  else "Predict again.")
        return html + ("<br><b style='color:#a05a00'>Out of date: made for another ROI, slice "
                       f"or side. {advice}</b>")
    if pred.borderline:
        html += ("<br><b style='color:#a05a00'>Borderline: it depends on where the ROI is "
                 "drawn.</b>")
    if not pred.reliable:
        html += ("<br><b style='color:#8d1c1c'>This image is unlike the images this model was "
                 "trained on; the prediction is not reliable.</b>")
    prov = pred.provenance
    if prov is not None and prov.override:
        html += f"<br><b style='color:#b00020'>{escape(prov.override, quote=False)}</b>"
    return html + (f"<br><small>Heat map: evidence for the <b>{pred.cam_target}</b> class."
                   "</small>")


def gates_html(gates, *, colour: str = "#b00020") -> str:
    lines = "".join(f"<li>{escape(g.message, quote=False)}</li>" for g in gates)
    return (f"<b style='color:{colour}'>No result: the selection does not pass the safety "
            f"checks.</b><ul style='margin:0; color:{colour}'>{lines}</ul>")


def provenance_html(pred) -> str:
    p = pred.provenance
    return (f"Model {escape(p.model_name)} {escape(p.model_version)}<br>SHA-256 "
            f"{p.model_sha256}<br>preprocessing v{p.preprocessing_version}, {p.tta_crops} ROIs, "
            f"{escape(p.calibration)}<br>study {p.study_uid}<br>series {p.series_uid}<br>SOP "
            f"instance {p.sop_instance_uid}<br>slice {(p.slice_index or 0) + 1}, ROI "
            f"{list(p.roi)} (stored px), side {p.side} (ROI on the {p.roi_side or '?'} side of "
            f"the canal), level {p.level or 'NOT GIVEN'}<br>{p.time}")
