"""The PDF prediction report: what leaves the program. Clear, honest about the model, traceable,
and safe with patient data.

``anonymize=True`` follows the DICOM PS3.15 Annex E Basic Application Level Confidentiality
Profile in the PDF (text and metadata) and in its DICOM copy alike: no names (the patient's or a
physician's), IDs, dates or times, age, sex or free-text descriptions; the Study, Series and SOP
Instance UIDs are replaced by new ones, the same each time for the same original, and the
mapping is kept only in the user's private data folder (:func:`anonymized_uid`), so the clinic
can match a report to its study and nobody else can. The DICOM copy says PatientIdentityRemoved
YES and names the de-identification method. Both files are written 0600.

Made with ReportLab: vector text in the embedded Bitstream Vera fonts that ReportLab ships, A4 or
Letter, images as embedded PNGs; written atomically (temporary file, then rename), so an earlier
report is never left half-written and an unwritable target loses nothing.
"""

from __future__ import annotations

import datetime as _dt
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import render
from .deid import (  # noqa: F401 - the names callers of earlier versions import from here
    DEID_CODE,
    DEID_METHOD,
    REMOVED,
    anonymized_uid,
    deidentify_dataset,
    mark_deidentified,
    pseudonym,
    scrub_identifiers,
    uid_map_path,
)
from .errors import TfesiError
from .fileio import write_atomically
from .runtime import format_probability

OUTCOME = "favourable outcome: >= 50 % reduction of the NRS pain score 2 months after TFESI"
SUPPORT = ("This result supports and does not replace clinical judgement. It is a probability "
           "from a statistical model, not a diagnosis.")


@dataclass
class ReportInputs:
    """Everything the report shows; built by :func:`report_inputs` from a prediction."""

    prediction: object  # runtime.Prediction
    bundle: object  # bundle.Bundle
    study: object  # dicom.Study
    stack: object  # dicom.Stack
    index: int
    slice_values: np.ndarray  # modality values of the slice (stored orientation)
    window: tuple[float, float]
    crop: np.ndarray  # (100, 100) model input, 0..255
    level: str | None = None
    level_source: str | None = None  # "hand" or "proposed" (from the disc marks)
    measurements: tuple[str, ...] = ()  # one line each (measure.measurement_lines)
    kim: str | None = None  # the Kim grade line, from the tagged widths
    comparison: str | None = None  # the other side's prediction, for comparison only
    comment: str = ""
    physician: str = ""
    anonymize: bool = True
    paper: str = "a4"
    when: _dt.datetime = field(default_factory=lambda: _dt.datetime.now().astimezone())


def _fonts():
    import reportlab
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    base = Path(reportlab.__file__).parent / "fonts"
    for name, file in (("Vera", "Vera.ttf"), ("Vera-Bold", "VeraBd.ttf"),
                       ("Vera-Italic", "VeraIt.ttf")):
        if name not in pdfmetrics.getRegisteredFontNames():
            pdfmetrics.registerFont(TTFont(name, str(base / file)))


def _png(rgb: np.ndarray):
    from PIL import Image
    from reportlab.lib.utils import ImageReader

    buf = io.BytesIO()
    Image.fromarray(np.asarray(rgb, np.uint8)).save(buf, format="PNG")
    buf.seek(0)
    return ImageReader(buf)


def _radiological(inp: ReportInputs):
    """(dihedral, geometry) bringing the slice to radiological orientation, as the viewer and
    the model input do (identity for a slice that is not axial)."""
    from .geometry import Dihedral

    g = inp.stack.slices[inp.index].geometry
    try:
        return g.canonical_transform(), g
    except TfesiError:
        return Dihedral(), g


def _slice_picture(inp: ReportInputs) -> np.ndarray:
    """The slice in radiological orientation with the ROI outlined (the ROI is kept in stored
    pixels and mapped with the same transform)."""
    d, _ = _radiological(inp)
    grey = np.ascontiguousarray(d.apply(render.windowed(inp.slice_values, *inp.window)))
    roi = d.rect_to_canonical(inp.prediction.provenance.roi, inp.slice_values.shape)
    return _outline(render.overlay(grey, None, roi, outline=(255, 220, 0)), roi)


def _slice_letters(inp: ReportInputs) -> dict[str, str]:
    from .geometry import SliceGeometry

    d, g = _radiological(inp)
    r, c = d.directions(g.row_cos, g.col_cos)
    return SliceGeometry(g.position, tuple(r), tuple(c), g.spacing, g.shape).edge_letters()


def _outline(rgb: np.ndarray, roi) -> np.ndarray:
    """A dark line just outside the yellow ROI outline, for black-and-white printing."""
    x, y, w, h = roi
    rows, cols = rgb.shape[:2]
    x0, y0, x1, y1 = max(x - 1, 0), max(y - 1, 0), min(x + w, cols - 1), min(y + h, rows - 1)
    out = rgb.copy()
    out[y0, x0:x1 + 1] = out[y1, x0:x1 + 1] = 0
    out[y0:y1 + 1, x0] = out[y0:y1 + 1, x1] = 0
    return out


def _crop_overlay(inp: ReportInputs) -> np.ndarray:
    grey = np.clip(inp.crop, 0, 255).astype(np.uint8)
    return render.overlay(grey, inp.prediction.cam_input, (0, 0, 100, 100), opacity=0.45,
                          outline=None)


def _date(d: str) -> str:
    return f"{d[:4]}-{d[4:6]}-{d[6:8]}" if d and len(d) == 8 and d.isdigit() else (d or "-")


def write_report(inp: ReportInputs, out: str | Path) -> Path:
    """Write the PDF atomically; :class:`TfesiError` if the target cannot be written."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, LETTER
    from reportlab.lib.utils import simpleSplit
    from reportlab.pdfgen import canvas

    from .. import __version__

    out = Path(out)
    if out.suffix.lower() != ".pdf":
        raise TfesiError("The report file name must end in .pdf.", out)
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise TfesiError("The folder for the report does not exist.", folder)
    _fonts()
    pred, b, st, stack = inp.prediction, inp.bundle, inp.study, inp.stack
    prov = pred.provenance
    page = A4 if inp.paper.lower() == "a4" else LETTER
    W, H = page
    M = 40  # margin, points

    # drawn in memory, then written atomically and private (0600): it holds patient data
    with io.BytesIO() as buf:
        # anonymized: invariant (no creation date or time in the file's metadata)
        c = canvas.Canvas(buf, pagesize=page, invariant=inp.anonymize, pageCompression=1,
                          initialFontName="Vera", initialFontSize=9)
        c.setTitle("TFESI outcome prediction report" +
                   ("" if inp.anonymize else f" - {st.patient_name}"))
        c.setAuthor("TFESI Desktop" if inp.anonymize else (inp.physician or "TFESI Desktop"))
        c.setSubject("Predicted outcome of a cervical transforaminal epidural steroid injection")
        c.setCreator(f"TFESI Desktop {__version__}")
        c.setKeywords("TFESI; prediction; Grad-CAM" + ("; anonymized" if inp.anonymize else ""))
        y = H - M

        def text(x, yy, s, size=9, font="Vera", colour=colors.black):
            c.setFont(font, size)
            c.setFillColor(colour)
            c.drawString(x, yy, s)

        def para(x, yy, s, width, size=9, font="Vera", colour=colors.black, lead=1.25):
            lines = simpleSplit(s, font, size, width)
            for ln in lines:
                text(x, yy, ln, size, font, colour)
                yy -= size * lead
            return yy

        # header
        text(M, y - 14, "TFESI outcome prediction", 16, "Vera-Bold")
        text(W - M - 190, y - 6, f"TFESI Desktop {__version__}", 8)
        text(W - M - 190, y - 17, "anonymized (DICOM PS3.15 basic profile)" if inp.anonymize
             else f"{inp.when.strftime('%Y-%m-%d %H:%M %Z')}", 8)
        y -= 28
        c.setFillColor(colors.HexColor("#fff3cd"))
        c.setStrokeColor(colors.black)
        banner = SUPPORT
        if b.synthetic:
            banner = ("DEMONSTRATION MODEL - trained on synthetic images only; NOT FOR CLINICAL "
                      "USE. ") + banner
        lines = simpleSplit(banner, "Vera-Bold", 9, W - 2 * M - 12)
        bh = 8 + 11.5 * len(lines)
        c.rect(M, y - bh, W - 2 * M, bh, fill=1, stroke=1)
        yy = y - 13
        for ln in lines:
            text(M + 6, yy, ln, 9, "Vera-Bold",
                 colors.HexColor("#8b0000") if b.synthetic else colors.black)
            yy -= 11.5
        y -= bh + 14
        if prov.override:  # a safety gate the user overrode: impossible to miss
            lines = simpleSplit(prov.override, "Vera-Bold", 10, W - 2 * M - 12)
            bh = 8 + 12.5 * len(lines)
            c.setFillColor(colors.HexColor("#b00020"))
            c.rect(M, y - bh, W - 2 * M, bh, fill=1, stroke=0)
            yy = y - 14
            for ln in lines:
                text(M + 6, yy, ln, 10, "Vera-Bold", colors.white)
                yy -= 12.5
            y -= bh + 12

        # patient and study
        text(M, y, "Patient and study", 11, "Vera-Bold")
        y -= 14
        pos = stack.slice_positions()
        hidden = "(anonymized)"
        rows = [
            ("Name", hidden if inp.anonymize else render.display_name(st.patient_name)),
            ("Patient ID", hidden if inp.anonymize else (st.patient_id or "-")),
            ("Birth date", hidden if inp.anonymize else _date(st.birth_date)),
            ("Sex", hidden if inp.anonymize else (st.sex or "-")),
            ("Study", hidden if inp.anonymize else f"{_date(st.study_date)}  "
                                                   f"{st.description or ''}"),
            ("Series", f"{stack.series_number if stack.series_number is not None else '?'}  "
                       f"{'' if inp.anonymize else (stack.description or '')} "
                       f"({stack.orientation_name()})"),
            ("Slice", f"{inp.index + 1} of {len(stack.slices)}"
                      + (f", position {pos[inp.index]:.1f} mm" if pos else "")),
            ("Injection", f"patient {prov.side} side, level "
                          f"{inp.level or 'NOT GIVEN (no level was recorded)'}"
                          + {"hand": " (set by hand)",
                             "proposed": " (proposed from the disc levels marked on the "
                                         "sagittal)"}.get(inp.level_source or "", "")
                          if inp.level else f"patient {prov.side} side, level NOT GIVEN (no "
                                            "level was recorded)"),
        ]
        for k, v in rows:
            text(M, y, k, 9, "Vera-Bold")
            text(M + 80, y, str(v), 9, "Vera-Bold" if k == "Injection" and not inp.level
                 else "Vera", colors.HexColor("#b00020") if k == "Injection" and not inp.level
                 else colors.black)
            y -= 12
        y -= 6

        # pictures
        img_top = y
        size = 200
        sl = _slice_picture(inp)
        h_img = size * sl.shape[0] / sl.shape[1]
        c.drawImage(_png(sl), M, img_top - h_img, size, h_img)
        letters = _slice_letters(inp)
        c.setFillColor(colors.black)
        text(M + size / 2 - 3, img_top + 3, letters["top"], 9, "Vera-Bold")
        text(M + size / 2 - 3, img_top - h_img - 10, letters["bottom"], 9, "Vera-Bold")
        text(M - 11, img_top - h_img / 2, letters["left"], 9, "Vera-Bold")
        text(M + size + 3, img_top - h_img / 2, letters["right"], 9, "Vera-Bold")
        text(M, img_top - h_img - 20, "Slice with the ROI (yellow), radiological view; "
                                      "letters: patient directions", 7)
        x2 = M + size + 30
        crop = np.clip(inp.crop, 0, 255).astype(np.uint8)
        c.drawImage(_png(np.repeat(crop[..., None], 3, 2)), x2, img_top - 120, 120, 120)
        text(x2, img_top - 132, "Model input (100x100,", 7)
        text(x2, img_top - 141, "radiological" + (", mirrored)" if prov.side == "left"
                                                   else ")"), 7)
        x3 = x2 + 140
        c.drawImage(_png(_crop_overlay(inp)), x3, img_top - 120, 120, 120)
        c.drawImage(_png(render.colour_bar(120, 10)), x3 + 124, img_top - 120, 8, 120)
        text(x3 + 135, img_top - 6, "high", 7)
        text(x3 + 135, img_top - 120, "low", 7)
        text(x3, img_top - 132, "Grad-CAM: relative attention", 7)
        text(x3, img_top - 141, f"({pred.cam_target} class), on the input", 7)
        y = min(img_top - h_img - 40, img_top - 154)

        # prediction
        text(M, y, "Prediction", 11, "Vera-Bold")
        y -= 18
        text(M, y, format_probability(pred.probability), 20, "Vera-Bold")
        text(M + 70, y + 6, "probability of a favourable outcome", 9)
        text(M + 70, y - 5, f"label at the model's threshold {pred.threshold:.2f}: "
                            f"{pred.label.upper()}", 9, "Vera-Bold")
        y -= 20
        lo, hi = pred.interval
        y = para(M, y, f"Range over {len(pred.crop_probabilities)} ROIs around the one drawn: "
                       f"{format_probability(lo)} to {format_probability(hi)}."
                       + (" BORDERLINE: the label depends on where the ROI is drawn."
                          if pred.borderline else ""), W - 2 * M, 8)
        if not pred.reliable:
            c.setFillColor(colors.HexColor("#8d1c1c"))
            y = para(M, y, "NOT RELIABLE: this image is unlike the images this model was "
                           f"trained on (feature distance {pred.ood_distance:.2f}, limit "
                           f"{pred.ood_threshold:.2f}).", W - 2 * M, 9)
            c.setFillColor(colors.black)
        if inp.comparison:
            y = para(M, y, inp.comparison, W - 2 * M, 8)
        if inp.kim or inp.measurements:
            y -= 2
            text(M, y, "Measurements (on the slices of this series)", 9, "Vera-Bold")
            y -= 11
            if inp.kim:
                text(M, y, inp.kim, 9, "Vera-Bold")
                y -= 11
            for line in inp.measurements[:8]:
                text(M + 8, y, line, 8)
                y -= 10
            y -= 2
        y = para(M, y, f"Definition - {OUTCOME}.", W - 2 * M, 8)
        y = para(M, y, f"Model performance: {b.validated_performance()}", W - 2 * M, 8)
        y -= 6

        # provenance
        text(M, y, "Provenance", 11, "Vera-Bold")
        y -= 12
        frame = f"  frame {prov.frame}" if prov.frame is not None else ""
        uid = anonymized_uid if inp.anonymize else str
        for k, v in (("Model", f"{b.name} {b.version}"),
                     ("Model SHA-256", prov.model_sha256),
                     ("Preprocessing", f"version {prov.preprocessing_version}, "
                                       f"{prov.tta_crops} ROIs, {prov.calibration}"),
                     ("Study UID", uid(prov.study_uid)),
                     ("Series UID", uid(prov.series_uid)),
                     ("SOP Instance UID", f"{uid(prov.sop_instance_uid)}{frame}"),
                     ("ROI (stored px)", "x {}, y {}, width {}, height {}".format(*prov.roi)),
                     ("Predicted at", hidden if inp.anonymize else prov.time)):
            text(M, y, k, 7.5, "Vera-Bold")
            text(M + 90, y, str(v), 7.5)
            y -= 10
        y -= 8

        # physician
        text(M, y, "Physician", 11, "Vera-Bold")
        y -= 13
        text(M, y, f"Name: {hidden if inp.anonymize and inp.physician else inp.physician}", 9)
        y -= 13
        comment, removed = (scrub_identifiers(inp.comment or "", st) if inp.anonymize
                            else (inp.comment or "", 0))
        if removed:
            comment += (f" ({removed} identifying word{'s' if removed > 1 else ''} removed for "
                        "anonymization)")
        y = para(M, y, f"Comment: {comment}", W - 2 * M, 9)
        y -= 22
        c.setStrokeColor(colors.black)
        c.line(M + 55, y, M + 260, y)
        c.line(M + 320, y, W - M, y)
        text(M, y + 2, "Signature", 9)
        text(M + 290, y + 2, "Date", 9)
        text(M, M - 20, "Generated by TFESI Desktop (research software implementing Wang, Kim & "
                        "Chang, J Pain Res 2023;16:2587-2594).", 6.5, colour=colors.grey)
        c.showPage()
        c.save()
        return write_atomically(out, buf.getvalue(), private=True)


def report_inputs(prediction, bundle, study, stack, index, model_input, *, level=None,
                  comment="", physician="", anonymize=True, paper="a4", level_source=None,
                  measurements=(), kim=None, comparison=None) -> ReportInputs:
    from .dicom import default_window, modality_values

    ref = stack.slices[index]
    return ReportInputs(prediction, bundle, study, stack, index, modality_values(ref),
                        default_window(stack), model_input.image[..., 0], level=level,
                        level_source=level_source, measurements=tuple(measurements), kim=kim,
                        comparison=comparison, comment=comment, physician=physician,
                        anonymize=anonymize, paper=paper)


def encapsulate_pdf(pdf: str | Path, study, stack, *, anonymize: bool = True,
                    index: int | None = None, provenance=None) -> Path:
    """The report as a DICOM Encapsulated PDF in the study (:func:`.results_dicom.
    encapsulated_pdf`: patient and study modules from the source slice, or their anonymized
    replacements; its own series, a new version each export), written beside the PDF (.dcm),
    atomically, 0600. ``provenance`` (of the prediction) names the source slice and whether the
    model is a demonstration; without it the first slice of ``stack`` is the source and the
    series says "not for clinical use"."""
    from .results_dicom import encapsulated_pdf

    pdf = Path(pdf)
    if index is None:
        sop = getattr(provenance, "sop_instance_uid", None)
        index = next((i for i, s in enumerate(stack.slices) if s.sop_instance_uid == sop), 0)
    synthetic = True if provenance is None else bool(provenance.synthetic_model)
    ds = encapsulated_pdf(pdf.read_bytes(), stack, index, anonymize=anonymize,
                          synthetic=synthetic)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    # patient data: 0600, atomically (an earlier copy stays whole if this fails)
    return write_atomically(pdf.with_suffix(".dcm"), buf.getvalue(), private=True)
