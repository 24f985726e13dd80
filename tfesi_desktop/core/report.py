"""The PDF prediction report: what leaves the program. Clear, honest about the model, traceable,
and safe with patient data.

``anonymize=True`` follows the DICOM PS3.15 Annex E Basic Application Level Confidentiality
Profile in the PDF (text and metadata) and in its DICOM copy alike: no names (the patient's or a
physician's), IDs, dates or times, age, sex or free-text descriptions; the Study, Series and SOP
Instance UIDs are replaced by new ones, the same each time for the same original, and the
mapping is kept only in the user's private data folder (:func:`anonymized_uid`), so the clinic
can match a report to its study and nobody else can. The DICOM copy says PatientIdentityRemoved
YES and names the de-identification method. Both files are written 0600.

Made with ReportLab: vector text in embedded fonts that cover Latin, Greek, Cyrillic (DejaVu Sans)
and CJK (Droid Sans Fallback) names, A4 or Letter, images as embedded PNGs, long text wrapped and
flowing onto further pages, never cut; PDF/A-2b (XMP metadata, sRGB output intent, pikepdf);
written atomically (temporary file, then rename), so an earlier report is never left half-written
and an unwritable target loses nothing. De-identification is :mod:`.deid`'s.
"""

from __future__ import annotations

import datetime as _dt
import io
import re
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
    # the measurements on the key image's slice: (the number they have in that list, points in
    # stored pixels), drawn on the key image
    drawn: tuple = ()
    kim: str | None = None  # the Kim grade line, from the tagged widths
    comparison: str | None = None  # the other side's prediction, for comparison only
    comment: str = ""
    physician: str = ""
    impression: str | None = None  # the physician's impression / plan (None: not asked)
    # with the clinical data (issue 25): clinical.CombinedPrediction, or why there is none
    clinical: object = None
    clinical_note: str | None = None
    anonymize: bool = True
    paper: str = "a4"
    when: _dt.datetime = field(default_factory=lambda: _dt.datetime.now().astimezone())


# Fonts (embedded, subset): DejaVu Sans for Latin, Greek and Cyrillic, Droid Sans Fallback for
# CJK (Debian fonts-dejavu-core and fonts-droid-fallback, scripts/system-deps.sh); without them
# ReportLab's own Bitstream Vera (Latin only).
_FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/truetype/droid",
              "/usr/share/fonts/truetype/ttf-dejavu", "/usr/local/share/fonts",
              str(Path.home() / ".local/share/fonts"))
_FACES = {"Sans": ("DejaVuSans.ttf", "Vera.ttf"),
          "Sans-Bold": ("DejaVuSans-Bold.ttf", "VeraBd.ttf"),
          "Sans-Italic": ("DejaVuSans-Oblique.ttf", "VeraIt.ttf")}
CJK_FONT = "DroidSansFallbackFull.ttf"
_fallback: dict[str, object] = {}


def _find_font(name: str) -> Path | None:
    import reportlab

    for d in (*_FONT_DIRS, str(Path(reportlab.__file__).parent / "fonts")):
        if (Path(d) / name).is_file():
            return Path(d) / name
    return None


def _fonts():
    """Register the report's faces once: Sans, Sans-Bold, Sans-Italic and CJK (if found)."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    if "Sans" in pdfmetrics.getRegisteredFontNames():
        return
    for face, files in _FACES.items():
        path = next(p for p in map(_find_font, files) if p)
        pdfmetrics.registerFont(TTFont(face, str(path)))
    cjk = _find_font(CJK_FONT)
    if cjk:
        pdfmetrics.registerFont(TTFont("CJK", str(cjk)))


def _covers(font: str, ch: str) -> bool:
    from reportlab.pdfbase import pdfmetrics

    face = _fallback.get(font)
    if face is None:
        face = _fallback[font] = pdfmetrics.getFont(font).face.charToGlyph
    return ord(ch) in face


def _runs(s: str, font: str) -> list[tuple[str, str]]:
    """``s`` cut into (text, font) runs: characters the face lacks (CJK) in the CJK face."""
    from reportlab.pdfbase import pdfmetrics

    cjk = "CJK" in pdfmetrics.getRegisteredFontNames()
    out: list[tuple[str, str]] = []
    for ch in s:
        f = font if (not cjk or ch.isspace() or _covers(font, ch) or not _covers("CJK", ch)) \
            else "CJK"
        if out and out[-1][1] == f:
            out[-1] = (out[-1][0] + ch, f)
        else:
            out.append((ch, f))
    return out


def _width(s: str, font: str, size: float) -> float:
    from reportlab.pdfbase.pdfmetrics import stringWidth

    return sum(stringWidth(t, f, size) for t, f in _runs(s, font))


def _wrap(s: str, font: str, size: float, width: float) -> list[str]:
    """``s`` in lines no wider than ``width``: broken at spaces, a word longer than a line (a
    10,000-character name, CJK without spaces) broken between characters; nothing dropped."""
    lines: list[str] = []
    for para in (s or "").split("\n"):
        line = ""
        for token in re.findall(r"\s+|[^\s]+", para):
            if _width(line + token, font, size) <= width:
                line += token
                continue
            if line.strip():
                lines.append(line.rstrip())
            line = "" if token.isspace() else token
            while _width(line, font, size) > width:  # break inside the word
                lo, hi = 1, len(line)  # the longest head that fits (at least a character)
                while lo < hi:
                    mid = (lo + hi + 1) // 2
                    lo, hi = (mid, hi) if _width(line[:mid], font, size) <= width else (lo, mid - 1)
                lines.append(line[:lo])
                line = line[lo:]
        lines.append(line.rstrip())
    return lines


def _png(rgb: np.ndarray):
    from PIL import Image
    from reportlab.lib.utils import ImageReader

    buf = io.BytesIO()
    Image.fromarray(np.asarray(rgb, np.uint8)).save(buf, format="PNG")
    buf.seek(0)
    return ImageReader(buf)


def _slice_picture(inp: ReportInputs) -> np.ndarray:
    """The key image: the slice in radiological orientation with the ROI outlined, the
    Grad-CAM map blended inside it and the measurements of that slice drawn, numbered as listed
    (:func:`.render.radiological_overlay`), at 512 pixels or more across."""
    from .render import radiological_overlay

    scale = max(1, 512 // max(np.shape(inp.slice_values)))
    rgb, roi, _ = radiological_overlay(inp.slice_values, inp.stack.slices[inp.index].geometry,
                                       inp.window, inp.prediction.provenance.roi,
                                       getattr(inp.prediction, "cam_roi", None), opacity=0.35,
                                       measurements=inp.drawn, scale=scale)
    return _outline(rgb, roi)


def _slice_letters(inp: ReportInputs) -> dict[str, str]:
    from .render import radiological_letters

    return radiological_letters(inp.stack.slices[inp.index].geometry)


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


class _Pages:
    """A cursor over the pages of the report: text in mixed faces (:func:`_runs`), paragraphs
    wrapped (:func:`_wrap`), and a new page whenever the next item does not fit, so that
    nothing typed is cut."""

    def __init__(self, c, size, margin, footer):
        self.c, (self.W, self.H), self.M, self.footer = c, size, margin, footer
        self.y, self.page = self.H - margin, 1

    def need(self, h: float) -> None:
        if self.y - h < self.M + 10:
            self.new_page()

    def new_page(self) -> None:
        self.footer(self.page)
        self.c.showPage()
        self.page += 1
        self.y = self.H - self.M
        self.text(self.M, self.y - 8, "TFESI outcome prediction (continued)", 8, "Sans-Italic")
        self.y -= 24

    def text(self, x, y, s, size=9, font="Sans", colour=None):
        from reportlab.lib import colors

        self.c.setFillColor(colour or colors.black)
        for t, f in _runs(str(s), font):
            self.c.setFont(f, size)
            self.c.drawString(x, y, t)
            x += _width(t, f, size)

    def para(self, s, *, x=None, width=None, size=9, font="Sans", colour=None, lead=1.25):
        x = self.M if x is None else x
        for ln in _wrap(s, font, size, width or (self.W - self.M - x)):
            self.need(size * lead)
            self.text(x, self.y, ln, size, font, colour)
            self.y -= size * lead

    def heading(self, s):
        self.need(40)
        self.text(self.M, self.y, s, 11, "Sans-Bold")
        self.y -= 14

    def row(self, key, value, *, size=9, key_width=80, font="Sans", colour=None):
        lines = _wrap(str(value), font, size, self.W - 2 * self.M - key_width)
        self.need(12 if len(lines) < 4 else 36)
        self.text(self.M, self.y, key, size, "Sans-Bold")
        for ln in lines:
            self.need(size * 1.33)
            self.text(self.M + key_width, self.y, ln, size, font, colour)
            self.y -= size * 1.33

    def box(self, s, *, fill, colour, size=9):
        lines = _wrap(s, "Sans-Bold", size, self.W - 2 * self.M - 12)
        lead = size * 1.28
        for i in range(0, len(lines), 40):  # a box taller than a page goes on over pages
            part = lines[i:i + 40]
            bh = 8 + lead * len(part)
            self.need(bh + 4)
            self.c.setFillColor(fill)
            self.c.rect(self.M, self.y - bh, self.W - 2 * self.M, bh, fill=1, stroke=1)
            yy = self.y - size - 4
            for ln in part:
                self.text(self.M + 6, yy, ln, size, "Sans-Bold", colour)
                yy -= lead
            self.y -= bh + 12


def _header_values(inp: ReportInputs) -> dict[str, str]:
    """Accession number, institution and referring physician of the source slice, where the
    study has them (a real scanner may leave them out), and the issuer of the patient ID (the
    pseudonym's key, as in :func:`.deid.pseudonym`)."""
    from pydicom import dcmread

    try:
        ds = dcmread(inp.stack.slices[inp.index].path, stop_before_pixels=True,
                     specific_tags=["SpecificCharacterSet", "AccessionNumber", "InstitutionName",
                                    "ReferringPhysicianName", "IssuerOfPatientID"])
    except Exception:  # noqa: BLE001 - the report goes on without them
        return {}
    referring = str(ds.get("ReferringPhysicianName", "") or "").strip("^= ")
    out = {"Accession": str(ds.get("AccessionNumber", "") or ""),
           "Institution": str(ds.get("InstitutionName", "") or ""),
           "Referring": render.display_name(referring) if referring else "",
           "Issuer": str(ds.get("IssuerOfPatientID", "") or "")}  # for the pseudonym only
    return {k: v for k, v in out.items() if v.strip()}


def _pdfa(data: bytes, *, anonymize: bool) -> bytes:
    """The PDF as PDF/A-2b: XMP metadata mirroring the document information (with the PDF/A
    identification) and an sRGB output intent (pikepdf; the ICC profile from Pillow)."""
    import pikepdf
    from PIL import ImageCms

    with pikepdf.open(io.BytesIO(data)) as pdf:
        if "/Trapped" in pdf.docinfo:  # no XMP equivalent in PDF/A-2
            del pdf.docinfo["/Trapped"]
        with pdf.open_metadata(set_pikepdf_as_editor=False) as meta:
            meta.load_from_docinfo(pdf.docinfo)
            meta["pdfaid:part"] = "2"
            meta["pdfaid:conformance"] = "B"
        icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
        profile = pdf.make_stream(icc)
        profile.N = 3
        intent = pikepdf.Dictionary(Type=pikepdf.Name.OutputIntent, S=pikepdf.Name.GTS_PDFA1,
                                    OutputConditionIdentifier="sRGB IEC61966-2.1",
                                    Info="sRGB IEC61966-2.1", DestOutputProfile=profile)
        pdf.Root.OutputIntents = pdf.make_indirect(pikepdf.Array([intent]))
        out = io.BytesIO()
        # anonymized: a document ID from the content, not from the time (no date leaks)
        pdf.save(out, deterministic_id=anonymize, min_version="1.7")
        return out.getvalue()


def write_report(inp: ReportInputs, out: str | Path) -> Path:
    """Write the PDF (PDF/A-2b) atomically; :class:`TfesiError` if the target cannot be
    written. Page 1: the patient, the pictures, the prediction, the physician's impression and
    comment; everything that does not fit flows onto further pages, nothing is cut; the
    provenance (model SHA-256, calibration, UIDs) on the last page."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, LETTER
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
    red = colors.HexColor("#b00020")

    # drawn in memory, then written atomically and private (0600): it holds patient data
    with io.BytesIO() as buf:
        # anonymized: invariant (no creation date or time in the file's metadata)
        c = canvas.Canvas(buf, pagesize=page, invariant=inp.anonymize, pageCompression=1,
                          initialFontName="Sans", initialFontSize=9)
        c.setTitle("TFESI outcome prediction report" +
                   ("" if inp.anonymize else f" - {render.display_name(st.patient_name)}"))
        c.setAuthor("TFESI Desktop" if inp.anonymize else (inp.physician or "TFESI Desktop"))
        c.setSubject("Predicted outcome of a cervical transforaminal epidural steroid injection")
        c.setCreator(f"TFESI Desktop {__version__}")
        c.setKeywords("TFESI; prediction; Grad-CAM" + ("; anonymized" if inp.anonymize else ""))

        def footer(n):
            doc.text(M, M - 20, "Generated by TFESI Desktop (research software implementing "
                                "Wang, Kim & Chang, J Pain Res 2023;16:2587-2594). "
                                f"Page {n}.", 6.5, colour=colors.grey)

        doc = _Pages(c, page, M, footer)
        y = doc.y
        # header
        doc.text(M, y - 14, "TFESI outcome prediction", 16, "Sans-Bold")
        doc.text(W - M - 190, y - 6, f"TFESI Desktop {__version__}", 8)
        doc.text(W - M - 190, y - 17, "anonymized (DICOM PS3.15 basic profile)" if inp.anonymize
                 else inp.when.strftime("%Y-%m-%d %H:%M %Z (UTC%z)"), 8)
        doc.y -= 28
        c.setStrokeColor(colors.black)
        banner = SUPPORT
        if b.synthetic:
            banner = ("DEMONSTRATION MODEL - trained on synthetic images only; NOT FOR CLINICAL "
                      "USE. ") + banner
        doc.box(banner, fill=colors.HexColor("#fff3cd"),
                colour=colors.HexColor("#8b0000") if b.synthetic else colors.black)
        if prov.override:  # a safety gate the user overrode: impossible to miss
            doc.box(prov.override, fill=red, colour=colors.white, size=10)

        # patient and study
        doc.heading("Patient and study")
        pos = stack.slice_positions()
        hidden = "(anonymized)"
        header = _header_values(inp)
        code = pseudonym(st.patient_id, st.patient_name, st.birth_date, st.study_uid,
                         header.get("Issuer", ""))[0] if inp.anonymize else ""
        pid = f"{code} (pseudonym)" if inp.anonymize else (st.patient_id or "-")
        rows = [("Name", hidden if inp.anonymize else render.display_name(st.patient_name)),
                ("Patient ID", pid),
                ("Birth date", hidden if inp.anonymize else _date(st.birth_date)),
                ("Sex", hidden if inp.anonymize else (st.sex or "-")),
                ("Study", hidden if inp.anonymize else f"{_date(st.study_date)}  "
                                                       f"{st.description or ''}")]
        if not inp.anonymize:
            rows += [({"Referring": "Referred by"}.get(k, k), v) for k, v in header.items()
                     if k != "Issuer"]
        rows += [("Series", f"{stack.series_number if stack.series_number is not None else '?'}"
                            f"  {'' if inp.anonymize else (stack.description or '')} "
                            f"({stack.orientation_name()})"),
                 ("Slice", f"{inp.index + 1} of {len(stack.slices)}"
                           + (f", position {pos[inp.index]:.1f} mm" if pos else ""))]
        for k, v in rows:
            doc.row(k, v)
        if inp.level:
            doc.row("Injection", f"patient {prov.side} side, level {inp.level}"
                    + {"hand": " (set by hand)",
                       "proposed": " (proposed from the disc levels marked on the sagittal)"}
                    .get(inp.level_source or "", ""))
        else:
            doc.row("Injection", f"patient {prov.side} side, level NOT GIVEN (no level was "
                                 "recorded)", font="Sans-Bold", colour=red)
        doc.y -= 6

        # pictures
        size = 200
        sl = _slice_picture(inp)
        h_img = size * sl.shape[0] / sl.shape[1]
        doc.need(max(h_img + 40, 154))
        img_top = doc.y
        c.drawImage(_png(sl), M, img_top - h_img, size, h_img)
        letters = _slice_letters(inp)
        doc.text(M + size / 2 - 3, img_top + 3, letters["top"], 9, "Sans-Bold")
        doc.text(M + size / 2 - 3, img_top - h_img - 10, letters["bottom"], 9, "Sans-Bold")
        doc.text(M - 11, img_top - h_img / 2, letters["left"], 9, "Sans-Bold")
        doc.text(M + size + 3, img_top - h_img / 2, letters["right"], 9, "Sans-Bold")
        doc.text(M, img_top - h_img - 20, "Slice with the ROI (yellow) and the heat map in it"
                 + (", measurements (cyan) numbered as listed" if inp.drawn else "")
                 + "; radiological view, letters: patient directions", 7)
        x2 = M + size + 30
        crop = np.clip(inp.crop, 0, 255).astype(np.uint8)
        c.drawImage(_png(np.repeat(crop[..., None], 3, 2)), x2, img_top - 120, 120, 120)
        doc.text(x2, img_top - 132, "Model input (100x100,", 7)
        doc.text(x2, img_top - 141, "radiological" + (", mirrored)" if prov.side == "left"
                                                       else ")"), 7)
        x3 = x2 + 140
        c.drawImage(_png(_crop_overlay(inp)), x3, img_top - 120, 120, 120)
        c.drawImage(_png(render.colour_bar(120, 10)), x3 + 124, img_top - 120, 8, 120)
        doc.text(x3 + 135, img_top - 6, "high", 7)
        doc.text(x3 + 135, img_top - 120, "low", 7)
        doc.text(x3, img_top - 132, "Grad-CAM: relative attention", 7)
        doc.text(x3, img_top - 141, f"({pred.cam_target} class), on the input", 7)
        doc.y = min(img_top - h_img - 40, img_top - 154)

        # prediction
        doc.heading("Prediction")
        doc.need(40)
        doc.y -= 4
        doc.text(M, doc.y, format_probability(pred.probability), 20, "Sans-Bold")
        doc.text(M + 70, doc.y + 6, "probability of a favourable outcome", 9)
        doc.text(M + 70, doc.y - 5, f"label at the model's threshold {pred.threshold:.2f}: "
                                    f"{pred.label.upper()}", 9, "Sans-Bold")
        doc.y -= 20
        lo, hi = pred.interval
        doc.para(f"Range over {len(pred.crop_probabilities)} ROIs around the one drawn: "
                 f"{format_probability(lo)} to {format_probability(hi)}."
                 + (" BORDERLINE: the label depends on where the ROI is drawn."
                    if pred.borderline else ""), size=8)
        if not pred.reliable:
            doc.para(f"NOT RELIABLE: {pred.unreliable_text()}",
                     colour=colors.HexColor("#8d1c1c"))
        if inp.comparison:
            doc.para(inp.comparison, size=8)
        if inp.clinical is not None or inp.clinical_note:
            _clinical_section(doc, inp, colors)
        if inp.kim or inp.measurements:
            doc.y -= 2
            doc.para("Measurements (on the slices of this series)", font="Sans-Bold")
            if inp.kim:
                doc.para(inp.kim, font="Sans-Bold")
            for line in inp.measurements:  # all of them: none is cut
                doc.para(line, x=M + 8, size=8, lead=1.2)
            doc.y -= 2
        doc.para(f"Definition - {OUTCOME}.", size=8)
        doc.para(f"Model performance: {b.validated_performance()}", size=8)
        doc.y -= 6

        # physician: impression / plan, comment, signature
        doc.heading("Physician")
        doc.para(f"Name: {hidden if inp.anonymize and inp.physician else inp.physician}")
        impression = inp.impression or ""
        comment = inp.comment or ""
        removed = 0
        if inp.anonymize:
            impression, n1 = scrub_identifiers(impression, st)
            comment, n2 = scrub_identifiers(comment, st)
            removed = n1 + n2
        if impression or inp.impression is not None:
            doc.para(f"Impression / plan: {impression}")
        if removed:
            comment += (f" ({removed} identifying word{'s' if removed > 1 else ''} removed for "
                        "anonymization)")
        doc.para(f"Comment: {comment}")
        doc.need(36)
        doc.y -= 22
        c.setStrokeColor(colors.black)
        c.line(M + 55, doc.y, M + 260, doc.y)
        c.line(M + 320, doc.y, W - M, doc.y)
        doc.text(M, doc.y + 2, "Signature", 9)
        doc.text(M + 290, doc.y + 2, "Date", 9)

        # provenance: the last page (invariant 4)
        doc.new_page()
        doc.heading("Provenance")
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
                     ("Predicted at", hidden if inp.anonymize else prov.time),
                     ("Report written", hidden if inp.anonymize
                      else inp.when.strftime("%Y-%m-%d %H:%M:%S %Z (UTC%z)"))):
            doc.row(k, v, size=7.5, key_width=90)
        footer(doc.page)
        c.showPage()
        c.save()
        return write_atomically(out, _pdfa(buf.getvalue(), anonymize=inp.anonymize),
                                private=True)


def _clinical_section(doc, inp: ReportInputs, colors) -> None:
    """The result with the clinical data: the combined probability beside the image-only
    one, each input's contribution (the panel's table), what was used and imputed, and the
    validated performance. The values are kept in an anonymized report (not identifiers; no
    dates among them)."""
    from .clinical import contribution_rows, validated_text

    c = inp.clinical
    doc.y -= 2
    doc.para("With the clinical data", font="Sans-Bold")
    if c is None:
        doc.para(f"No combined result: {inp.clinical_note} The image-only result above stands.",
                 size=8, colour=colors.HexColor("#8d1c1c"))
        return
    lo, hi = c.interval
    doc.para(f"Probability of a favourable outcome with the clinical data: "
             f"{format_probability(c.probability)}, {c.label.upper()} (image alone "
             f"{format_probability(c.image_probability)}; range over the ROIs "
             f"{format_probability(lo)} to {format_probability(hi)})."
             + (" BORDERLINE." if c.borderline else ""), font="Sans-Bold")
    doc.para(f"Contribution of each input to the logit (+ towards favourable), from a patient "
             f"at the training means ({c.base_logit:+.2f}):", size=8)
    doc.need(11)
    for x, head in ((8, "Input"), (190, "Value used"), (372, "Contribution")):
        doc.text(doc.M + x, doc.y, head, 8, "Sans-Bold")
    doc.y -= 10.5
    for name, shown, value, outside in contribution_rows(c):
        doc.need(11)
        doc.text(doc.M + 8, doc.y, name, 8)
        doc.text(doc.M + 190, doc.y, shown, 8)
        doc.text(doc.M + 380, doc.y, f"{value:+.2f}", 8, "Sans-Bold",
                 colour=colors.HexColor("#1b5e20" if value >= 0 else "#8d1c1c"))
        if outside:
            doc.text(doc.M + 415, doc.y, "outside the training range", 7)
        doc.y -= 10.5
    doc.para(f"Used: {', '.join(c.used) or 'none'}; imputed (training mean, contribution 0): "
             f"{', '.join(c.imputed) or 'none'}.", size=8)
    doc.para(validated_text(c.fitted_on), size=8)
    if not c.reliable:
        doc.para("NOT RELIABLE: the image is unlike the training images; the clinical data do "
                 "not make it reliable.", colour=colors.HexColor("#8d1c1c"))


def report_inputs(prediction, bundle, study, stack, index, model_input, *, level=None,
                  comment="", physician="", anonymize=True, paper="a4", level_source=None,
                  measurements=(), drawn=(), kim=None, comparison=None, impression=None,
                  clinical=None, clinical_note=None) -> ReportInputs:
    from .dicom import default_window, modality_values

    ref = stack.slices[index]
    return ReportInputs(prediction, bundle, study, stack, index, modality_values(ref),
                        default_window(stack), model_input.image[..., 0], level=level,
                        level_source=level_source, measurements=tuple(measurements),
                        drawn=tuple(drawn), kim=kim,
                        comparison=comparison, comment=comment, physician=physician,
                        anonymize=anonymize, paper=paper, impression=impression,
                        clinical=clinical, clinical_note=clinical_note)


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
