"""The prediction as DICOM objects a PACS and other viewers understand (IHE AI Results):

- a Comprehensive 3D SR following TID 1500 ("Imaging Measurement Report", 126000 DCM): the
  probability of a favourable outcome and the label at the model's threshold, the ROI as a
  spatial coordinate region on the source image, the side and level, the model's name, version
  and SHA-256 (algorithm identification and Contributing Equipment), VerificationFlag UNVERIFIED;
- the heat map as a Secondary Capture: the slice in radiological orientation with the overlay
  and a caption burned in;
- the heat map as data, a Parametric Map on the source slice (float relative attention 0..1),
  which viewers can overlay and window;
- the PDF report as an Encapsulated PDF (:func:`encapsulated_pdf`).

Each sits in the source study, in one series per kind and source series whose UID is derived
from theirs (or from their anonymized replacements): exporting again adds a new version with the
next instance number to the same series (counted in the private ledger, :mod:`.ledger`), instead
of piling up series with the same number. A demonstration model says "not for clinical use" in
the series description. Every object copies the patient and study modules from the source (empty
where the source lacks a Type 2 attribute), is written in UTF-8 (ISO_IR 192) and passes dicom3tools'
``dciodvfy`` with no error, normal and anonymized (tests/test_dicom_conformance.py). Anonymized
objects are made from the source de-identified by :mod:`.deid` and then have their own dates
de-identified too. Made with highdicom; files are written atomically. Concepts DICOM has no code
for use the local coding scheme ``99TFESI`` (PS3.16 allows "99"-prefixed local schemes),
declared in each SR's Coding Scheme Identification Sequence.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from . import deid, render
from .errors import TfesiError
from .fileio import write_atomically
from .ledger import next_count
from .runtime import format_probability

SCHEME = "99TFESI"
PDF_SERIES_NUMBER = 9901
SR_SERIES_NUMBER = 9902
SC_SERIES_NUMBER = 9903
PM_SERIES_NUMBER = 9904
MANUFACTURER = "TFESI Desktop"
NOT_CLINICAL = "NOT FOR CLINICAL USE"


def _code(value: str, meaning: str):
    from highdicom.sr import CodedConcept

    assert len(meaning) <= 64, meaning
    return CodedConcept(value=value, scheme_designator=SCHEME, meaning=meaning)


# Type 2 attributes of the patient and study modules: present (empty if the source lacks them)
_TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate",
          "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber")


def _source_dataset(stack, index: int, *, anonymize: bool = False,
                    pixels: bool = False) -> Dataset:
    """The source image's attributes (de-identified on request), with every Type 2 attribute
    of the patient and study modules present, empty where the source lacks it (a real scanner
    may leave out AccessionNumber, StudyID, StudyTime, ReferringPhysicianName ...)."""
    ref = stack.slices[index]
    try:
        ds = dcmread(ref.path, stop_before_pixels=not pixels)
    except Exception as e:  # noqa: BLE001 - any read failure is the same message to the user
        raise TfesiError(f"The source image cannot be read again ({e}).", ref.path) from e
    for elem in ds.iterall():  # decode every value now, in the source's character set
        _ = elem.value
    for kw in _TYPE2:
        if kw not in ds:
            setattr(ds, kw, "")
    return deidentified(ds) if anonymize else ds


def deidentified(ds: Dataset) -> Dataset:
    """The source image's attributes de-identified by the same rules as the anonymized report
    and its DICOM copy (:func:`.deid.deidentify_dataset`, PS3.15 Table E.1-1)."""
    return deid.deidentify_dataset(ds)


def _series(kind: str, src: Dataset) -> tuple[str, int]:
    """(Series Instance UID, instance number) of a result of this kind on this source series:
    the same series each time (its UID derived from the source's study and series UIDs, which
    are the anonymized ones for an anonymized export), the next version number in it."""
    import uuid

    name = "\x1f".join(("tfesi-desktop result series", kind, str(src.StudyInstanceUID),
                        str(src.get("SeriesInstanceUID", ""))))
    uid = f"2.25.{uuid.uuid5(uuid.NAMESPACE_OID, name).int}"  # PS3.5 B.2: a UUID's integer
    return uid, next_count(uid)


def _body_part(ds: Dataset, src: Dataset) -> None:
    """The source's body part and laterality. Laterality is Type 2C (PS3.3 C.7.3.1): present,
    maybe empty, unless the body part examined is known and not a paired structure."""
    ds.pop("Laterality", None)
    if src.get("BodyPartExamined"):
        ds.BodyPartExamined = src.BodyPartExamined
    if src.get("Laterality"):
        ds.Laterality = src.Laterality
    elif not src.get("BodyPartExamined"):
        ds.Laterality = ""


def _finish(ds: Dataset, *, anonymize: bool) -> Dataset:
    """UTF-8 throughout (ISO_IR 192: names in any script), the local time zone, and for an
    anonymized object its own dates de-identified too (:func:`.deid.deidentify_result`)."""
    import datetime as dt

    from pydicom.valuerep import format_number_as_ds

    for elem in ds.iterall():  # values are decoded, so they are written in the new set
        if elem.VR == "DS" and elem.value is not None:  # a DS holds 16 characters
            values = elem.value if elem.VM > 1 else [elem.value]
            if any(len(str(v)) > 16 for v in values):
                fixed = [format_number_as_ds(float(v)) for v in values]
                elem.value = fixed if elem.VM > 1 else fixed[0]
    ds.SpecificCharacterSet = "ISO_IR 192"
    now = dt.datetime.now()
    if not ds.get("SeriesDate"):  # a PACS lists the series with its date
        ds.SeriesDate = ds.get("ContentDate") or now.strftime("%Y%m%d")
        ds.SeriesTime = ds.get("ContentTime") or now.strftime("%H%M%S")
    if anonymize:
        ds.pop("TimezoneOffsetFromUTC", None)
        deid.deidentify_result(ds)
    else:
        ds.TimezoneOffsetFromUTC = dt.datetime.now().astimezone().strftime("%z")
    return ds


def _description(kind: str, synthetic: bool) -> str:
    d = f"TFESI prediction {kind}"
    if synthetic:  # LO: 64 characters; the warning never cut
        d = next(t for t in (f"{d} - {NOT_CLINICAL} (demo model)", f"{d} - {NOT_CLINICAL}",
                             f"TFESI {kind} - {NOT_CLINICAL}") if len(t) <= 64)
    return d[:64]


def _equipment(prov):
    from highdicom import ContributingEquipment

    from .. import __version__

    return ContributingEquipment(
        manufacturer=MANUFACTURER, purpose_of_reference=codes.DCM.ProcessingEquipment,
        manufacturer_model_name=prov.model_name[:64],
        software_versions=[f"tfesi-desktop {__version__}"[:64], prov.model_version[:64],
                           prov.model_sha256[:64]],
        contribution_description=(
            f"Outcome prediction by the model {prov.model_name} {prov.model_version}, SHA-256 "
            f"{prov.model_sha256}, preprocessing version {prov.preprocessing_version}"
            + ("; demonstration model trained on synthetic images, not for clinical use"
               if prov.synthetic_model else ""))[:1024])


def _algorithm(prov):
    from highdicom.sr import AlgorithmIdentification

    return AlgorithmIdentification(
        name=prov.model_name, version=prov.model_version,
        parameters=[f"SHA-256 {prov.model_sha256}",
                    f"preprocessing version {prov.preprocessing_version}",
                    f"{prov.tta_crops} ROIs, {prov.calibration}"],
        manufacturer=MANUFACTURER)


def structured_report(result, stack, index: int, *, anonymize: bool = False) -> Dataset:
    """The TID 1500 Comprehensive 3D SR of ``result`` (a :class:`.selection.Result`: the
    prediction, and the level from its selection) made on ``stack.slices[index]``."""
    from highdicom.sr import (
        Comprehensive3DSR,
        DeviceObserverIdentifyingAttributes,
        GraphicTypeValues,
        ImageRegion,
        Measurement,
        MeasurementReport,
        ObservationContext,
        ObserverContext,
        PlanarROIMeasurementsAndQualitativeEvaluations,
        QualitativeEvaluation,
        SourceImageForRegion,
        TrackingIdentifier,
    )

    prediction, level = result.prediction, result.level  # the level: the selection's
    prov = prediction.provenance
    if prov is None:
        raise TfesiError("This prediction carries no provenance; it cannot be reported.")
    src = _source_dataset(stack, index, anonymize=anonymize)
    ref = stack.slices[index]
    frames = [ref.frame + 1] if ref.frame is not None else None
    x, y, w, h = prov.roi
    # SCOORD pixel coordinates: (column, row), (0, 0) is the top-left corner of the image
    corners = np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h], [x, y]], float)
    region = ImageRegion(
        graphic_type=GraphicTypeValues.POLYLINE, graphic_data=corners,
        source_image=SourceImageForRegion(src.SOPClassUID, src.SOPInstanceUID,
                                          referenced_frame_numbers=frames))
    algorithm = _algorithm(prov)
    unit = codes.UCUM.NoUnits
    lo, hi = prediction.interval
    measurements = [
        Measurement(name=_code("TFESI-P", "Probability of favourable outcome after TFESI"),
                    value=round(float(prediction.probability), 6), unit=unit,
                    algorithm_id=algorithm),
        Measurement(name=_code("TFESI-PLO", "Lowest probability over the ROI set"),
                    value=round(float(lo), 6), unit=unit),
        Measurement(name=_code("TFESI-PHI", "Highest probability over the ROI set"),
                    value=round(float(hi), 6), unit=unit),
        Measurement(name=_code("TFESI-THR", "Decision threshold of the model"),
                    value=float(prediction.threshold), unit=unit),
    ]
    favourable = prediction.label == "favourable"
    evaluations = [
        QualitativeEvaluation(
            _code("TFESI-LABEL", "Predicted outcome at the model's threshold"),
            _code("TFESI-FAV", "Favourable outcome") if favourable
            else _code("TFESI-POOR", "Poor outcome")),
        QualitativeEvaluation(codes.SCT.Laterality,
                              codes.SCT.Left if prov.side == "left" else codes.SCT.Right),
    ]
    if level:
        evaluations.append(QualitativeEvaluation(
            _code("TFESI-LEVEL", "Injected cervical level"),
            _code(f"TFESI-{level}", f"Cervical level {level}")))
    if prediction.in_distribution is not None or prediction.source_note:
        evaluations.append(QualitativeEvaluation(  # its features and its source (core/source.py)
            _code("TFESI-INDIST", "Image within the model's training distribution"),
            codes.SCT.Yes if prediction.reliable else codes.SCT.No))
    if prov.synthetic_model:
        evaluations.append(QualitativeEvaluation(
            _code("TFESI-DEMO", "Demo model (synthetic images), not for clinical use"),
            codes.SCT.Yes))
    if prov.override:
        evaluations.append(QualitativeEvaluation(
            _code("TFESI-OVERRIDE", "A safety check was overridden by the user"),
            codes.SCT.Yes))
    group = PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=TrackingIdentifier(uid=generate_uid(),
                                               identifier="TFESI foramen ROI"),
        referenced_region=region,
        finding_type=_code("TFESI-FORAMEN", "Cervical neural foramen at the injected level"),
        algorithm_id=algorithm, measurements=measurements,
        qualitative_evaluations=evaluations)
    observer = ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=DeviceObserverIdentifyingAttributes(
            uid=generate_uid(), name=MANUFACTURER, manufacturer_name=MANUFACTURER,
            model_name=f"{prov.model_name} {prov.model_version}"[:64]))
    report = MeasurementReport(
        observation_context=ObservationContext(observer_device_context=observer),
        procedure_reported=codes.cid100.MRIUnspecifiedBodyRegion,
        imaging_measurements=[group])
    series, number = _series("SR", src)
    sr = Comprehensive3DSR(
        evidence=[src], content=report[0], series_instance_uid=series,
        series_number=SR_SERIES_NUMBER, sop_instance_uid=generate_uid(), instance_number=number,
        manufacturer=MANUFACTURER, is_complete=True, is_final=False, is_verified=False,
        series_description=_description("SR", prov.synthetic_model),
        contributing_equipment=[_equipment(prov)])
    assert sr.VerificationFlag == "UNVERIFIED"
    scheme = Dataset()
    scheme.CodingSchemeDesignator = SCHEME
    scheme.CodingSchemeName = "TFESI Desktop local codes"
    scheme.CodingSchemeResponsibleOrganization = MANUFACTURER
    sr.CodingSchemeIdentificationSequence = [scheme]
    return _finish(sr, anonymize=anonymize)


def heatmap_picture(result, stack, index: int, *, window=None) -> np.ndarray:
    """The slice in radiological orientation (invariant 1), windowed, with the Grad-CAM map
    blended in the ROI, the ROI outlined, orientation letters and a caption burned in: RGB
    uint8 (rows, columns, 3)."""
    from PIL import Image, ImageDraw

    from .dicom import default_window, modality_values

    ref = stack.slices[index]
    prediction = result.prediction
    prov = prediction.provenance
    rgb, _, letters = render.radiological_overlay(modality_values(ref), ref.geometry,
                                                  window or default_window(stack), prov.roi,
                                                  prediction.cam_roi)
    scale = 2 if rgb.shape[0] <= 256 else 1
    img = Image.fromarray(rgb)
    if scale != 1:
        img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    lines = [f"Grad-CAM (relative attention, {prediction.cam_target} class); "
             f"P(favourable) = {format_probability(prediction.probability)}, "
             f"{prediction.label} at threshold {prediction.threshold:.2f}",
             f"{prov.model_name} {prov.model_version}; {prov.side} side"
             + (f", level {result.level}" if result.level else "")]
    if prov.synthetic_model:
        lines.append("DEMONSTRATION MODEL (synthetic images) - NOT FOR CLINICAL USE")
    lines.append("Supports, does not replace, clinical judgement. UNVERIFIED.")
    band = 4 + 12 * len(lines)
    canvas = Image.new("RGB", (img.width, img.height + band), (0, 0, 0))
    canvas.paste(img, (0, 0))
    d = ImageDraw.Draw(canvas)
    for i, line in enumerate(lines):
        d.text((4, img.height + 2 + 12 * i), line,
               fill=(255, 120, 120) if "NOT FOR CLINICAL" in line else (255, 255, 255))
    pos = {"top": (img.width // 2 - 3, 3), "bottom": (img.width // 2 - 3, img.height - 14),
           "left": (4, img.height // 2 - 6), "right": (img.width - 14, img.height // 2 - 6)}
    for k, t in letters.items():
        d.text(pos[k], t, fill=(255, 255, 0))
    return np.asarray(canvas, np.uint8)


def _orientation(ref) -> tuple[str, str]:
    """PatientOrientation of the picture (row, column directions): the main letter of the
    radiological picture's right and bottom edges (the caption band below does not change
    them)."""
    if ref.geometry is None:
        raise TfesiError("The source image has no orientation; no heat map picture is made.",
                         ref.path)
    letters = render.radiological_letters(ref.geometry)  # as heatmap_picture shows it
    return letters["right"][:1], letters["bottom"][:1]


def secondary_capture(result, stack, index: int, *, anonymize: bool = False,
                      window=None) -> Dataset:
    """The heat map picture (:func:`heatmap_picture`) as a Secondary Capture Image in the
    source study, its own series, labelled; BurnedInAnnotation NO (the caption does not
    identify the patient)."""
    from highdicom.sc import SCImage

    prov = result.prediction.provenance
    src = _source_dataset(stack, index, anonymize=anonymize)
    pixels = heatmap_picture(result, stack, index, window=window)
    series, number = _series("SC", src)
    sc = SCImage.from_ref_dataset(
        ref_dataset=src, pixel_array=pixels, photometric_interpretation="RGB",
        bits_allocated=8, coordinate_system="PATIENT",
        series_instance_uid=series, series_number=SC_SERIES_NUMBER,
        sop_instance_uid=generate_uid(), instance_number=number, manufacturer=MANUFACTURER,
        patient_orientation=_orientation(stack.slices[index]), series_description=_description(
            "heat map", prov.synthetic_model),
        contributing_equipment=[_equipment(prov)])
    # the caption names the model and the result, never the patient (PS3.3 C.7.6.1.1.1)
    sc.BurnedInAnnotation = "NO"
    sc.ImageType = ["DERIVED", "SECONDARY"]
    sc.DerivationDescription = (f"Grad-CAM heat map of {prov.model_name} {prov.model_version} "
                                f"(SHA-256 {prov.model_sha256}) over the ROI "
                                "x {}, y {}, w {}, h {} (stored pixels)".format(*prov.roi))[:1024]
    ref = Dataset()
    ref.ReferencedSOPClassUID = src.SOPClassUID
    ref.ReferencedSOPInstanceUID = src.SOPInstanceUID
    if stack.slices[index].frame is not None:
        ref.ReferencedFrameNumber = stack.slices[index].frame + 1
    sc.SourceImageSequence = [ref]
    _body_part(sc, src)
    return _finish(sc, anonymize=anonymize)


def parametric_map(result, stack, index: int, *, anonymize: bool = False) -> Dataset:
    """The Grad-CAM map as a Parametric Map on the source slice (same frame of reference,
    geometry and size; float32 relative attention 0..1 inside the ROI, 0 outside), so that a
    viewer can overlay and window it."""
    from highdicom import ContentQualificationValues, VOILUTTransformation
    from highdicom.pm import ParametricMap, RealWorldValueMapping

    from .. import __version__

    prediction = result.prediction
    prov = prediction.provenance
    ref = stack.slices[index]
    src = _source_dataset(stack, index, anonymize=anonymize, pixels=True)
    rows, cols = int(src.Rows), int(src.Columns)
    geometry = {}
    if ref.frame is not None:  # one frame of a multi-frame image: its plane, given explicitly
        from highdicom import (
            PixelMeasuresSequence,
            PlaneOrientationSequence,
            PlanePositionSequence,
        )

        g = ref.geometry
        if g is None:
            raise TfesiError("This frame has no geometry; no parametric map is made.", ref.path)
        pos = stack.slice_positions()
        gap = float(np.median(np.abs(np.diff(pos)))) if pos and len(pos) > 1 else 1.0
        geometry = dict(
            pixel_measures=PixelMeasuresSequence(pixel_spacing=[float(v) for v in g.spacing],
                                                 slice_thickness=gap or 1.0),
            plane_orientation=PlaneOrientationSequence(
                "PATIENT", [float(v) for v in (*g.row_cos, *g.col_cos)]),
            plane_positions=[PlanePositionSequence("PATIENT", [float(v) for v in g.position])])
    data = np.zeros((rows, cols), np.float32)
    x, y, w, h = prov.roi
    data[y:y + h, x:x + w] = np.clip(np.asarray(prediction.cam_roi, np.float32), 0, 1)
    mapping = RealWorldValueMapping(
        lut_label="GRADCAM", lut_explanation=f"Grad-CAM relative attention, {prediction.cam_target}"
                                             " class (0 none, 1 most)",
        unit=codes.UCUM.NoUnits, value_range=(0.0, 1.0), slope=1.0, intercept=0.0)
    series, number = _series("PM", src)
    if not src.get("SliceThickness"):  # Type 2, may be absent: the map's own is Type 1
        pos = stack.slice_positions()
        gap = float(np.median(np.abs(np.diff(pos)))) if pos and len(pos) > 1 else 1.0
        src.SliceThickness = f"{gap or 1.0:.6g}"
    pm = ParametricMap(
        source_images=[src], pixel_array=data, series_instance_uid=series,
        series_number=PM_SERIES_NUMBER, sop_instance_uid=generate_uid(), instance_number=number,
        manufacturer=MANUFACTURER, manufacturer_model_name=f"{prov.model_name}"[:64],
        software_versions=f"tfesi-desktop {__version__}"[:64],
        device_serial_number=prov.model_sha256[:16],
        contains_recognizable_visual_features=False, real_world_value_mappings=[mapping],
        voi_lut_transformations=[VOILUTTransformation(window_center=0.5, window_width=1.0)],
        content_label="GRADCAM",
        content_description=f"Grad-CAM of {prov.model_name} {prov.model_version}"[:64],
        content_qualification=ContentQualificationValues.RESEARCH,
        series_description=_description("heat map data", prov.synthetic_model),
        contributing_equipment=[_equipment(prov)], **geometry)
    _body_part(pm, src)
    return _finish(pm, anonymize=anonymize)


def encapsulated_pdf(pdf_bytes: bytes, stack, index: int, *, anonymize: bool = False,
                     synthetic: bool = True, title: str = "TFESI outcome prediction report"
                     ) -> Dataset:
    """The PDF report as an Encapsulated PDF (SOP Class 1.2.840.10008.5.1.4.1.1.104.1) in the
    source study: patient and study modules copied from the source slice (de-identified on
    request), its own series, SC Equipment (ConversionType WSD, a workstation), the source
    slice referenced (Source Instance Sequence)."""
    import datetime as dt

    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    src = _source_dataset(stack, index, anonymize=anonymize)
    ds = Dataset()
    for kw in (*_TYPE2, "IssuerOfPatientID", "StudyInstanceUID", "StudyDescription",
               "PatientIdentityRemoved", "DeidentificationMethod",
               "DeidentificationMethodCodeSequence", "LongitudinalTemporalInformationModified"):
        if kw in src:
            setattr(ds, kw, src[kw].value)
    series, number = _series("PDF", src)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.104.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    now = dt.datetime.now()
    date, time = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    ds.InstanceCreationDate, ds.InstanceCreationTime = date, time
    ds.Modality = "DOC"
    ds.SeriesInstanceUID, ds.SeriesNumber, ds.InstanceNumber = series, PDF_SERIES_NUMBER, number
    ds.SeriesDate, ds.SeriesTime = date, time
    ds.SeriesDescription = _description("report", synthetic)
    ds.Manufacturer = MANUFACTURER
    ds.ConversionType = "WSD"
    ds.ContentDate, ds.ContentTime = date, time
    ds.AcquisitionDateTime = date + time
    ds.DocumentTitle = title
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.BurnedInAnnotation = "NO" if anonymize else "YES"  # does the PDF identify the patient?
    ds.RecognizableVisualFeatures = "NO"
    ref = Dataset()
    ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = src.SOPClassUID, src.SOPInstanceUID
    ds.SourceInstanceSequence = [ref]
    ds.ConceptNameCodeSequence = []
    ds.EncapsulatedDocument = pdf_bytes + (b"\0" if len(pdf_bytes) % 2 else b"")
    ds.EncapsulatedDocumentLength = len(pdf_bytes)
    return _finish(ds, anonymize=anonymize)


def save_dataset(ds: Dataset, out: str | Path) -> Path:
    """Write a DICOM file atomically, readable by its owner only (it may identify the patient):
    :func:`.fileio.write_atomically`."""
    import io

    out = Path(out)
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise TfesiError("The folder for the DICOM file does not exist.", folder)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return write_atomically(out, buf.getvalue(), private=True)


def write_sr(result, stack, index: int, out: str | Path, *, anonymize: bool = False
             ) -> Path:
    return save_dataset(structured_report(result, stack, index, anonymize=anonymize), out)


def write_secondary_capture(result, stack, index: int, out: str | Path, *,
                            anonymize: bool = False, window=None) -> Path:
    return save_dataset(secondary_capture(result, stack, index, anonymize=anonymize,
                                          window=window), out)


def write_parametric_map(result, stack, index: int, out: str | Path, *,
                         anonymize: bool = False) -> Path:
    return save_dataset(parametric_map(result, stack, index, anonymize=anonymize), out)
