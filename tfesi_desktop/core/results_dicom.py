"""The prediction as DICOM objects a PACS and other viewers understand (IHE AI Results):

- a Comprehensive 3D SR following TID 1500 ("Imaging Measurement Report", 126000 DCM): the
  probability of a favourable outcome and the label at the model's threshold, the ROI as a
  spatial coordinate region on the source image, the side and level, the model's name, version
  and SHA-256 (algorithm identification and Contributing Equipment), VerificationFlag UNVERIFIED;
- the heat map as a Secondary Capture: the slice with the overlay and a caption burned in.

Each is a new series in the source study; a demonstration model says "not for clinical use" in
the series description. Made with highdicom; files are written atomically. Concepts DICOM has
no code for use the local coding scheme ``99TFESI`` (PS3.16 allows "99"-prefixed local schemes).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from .errors import TfesiError
from .fileio import write_atomically
from .report import mark_deidentified
from .runtime import format_probability

SCHEME = "99TFESI"
SR_SERIES_NUMBER = 9902
SC_SERIES_NUMBER = 9903
MANUFACTURER = "TFESI Desktop"
NOT_CLINICAL = "NOT FOR CLINICAL USE"


def _code(value: str, meaning: str):
    from highdicom.sr import CodedConcept

    assert len(meaning) <= 64, meaning
    return CodedConcept(value=value, scheme_designator=SCHEME, meaning=meaning)


def _source_dataset(stack, index: int) -> Dataset:
    ref = stack.slices[index]
    try:
        return dcmread(ref.path, stop_before_pixels=True)
    except Exception as e:  # noqa: BLE001 - any read failure is the same message to the user
        raise TfesiError(f"The source image cannot be read again ({e}).", ref.path) from e


def deidentified(ds: Dataset) -> Dataset:
    """The source image's attributes de-identified by the same rules as the anonymized report
    and its DICOM copy (:func:`.report.deidentify_dataset`, PS3.15 Annex E Basic Profile)."""
    from .report import deidentify_dataset

    return deidentify_dataset(ds)


def _description(kind: str, synthetic: bool) -> str:
    d = f"TFESI prediction {kind}"
    return (f"{d} - {NOT_CLINICAL} (demo model)" if synthetic else d)[:64]


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


def structured_report(prediction, stack, index: int, *, anonymize: bool = False) -> Dataset:
    """The TID 1500 Comprehensive 3D SR of ``prediction`` made on ``stack.slices[index]``."""
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

    prov = prediction.provenance
    if prov is None:
        raise TfesiError("This prediction carries no provenance; it cannot be reported.")
    src = _source_dataset(stack, index)
    if anonymize:
        src = deidentified(src)
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
    if prov.level:
        evaluations.append(QualitativeEvaluation(
            _code("TFESI-LEVEL", "Injected cervical level"),
            _code(f"TFESI-{prov.level}", f"Cervical level {prov.level}")))
    if prediction.in_distribution is not None:
        evaluations.append(QualitativeEvaluation(
            _code("TFESI-INDIST", "Image within the model's training distribution"),
            codes.SCT.Yes if prediction.in_distribution else codes.SCT.No))
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
    sr = Comprehensive3DSR(
        evidence=[src], content=report[0], series_instance_uid=generate_uid(),
        series_number=SR_SERIES_NUMBER, sop_instance_uid=generate_uid(), instance_number=1,
        manufacturer=MANUFACTURER, is_complete=True, is_final=False, is_verified=False,
        series_description=_description("SR", prov.synthetic_model),
        contributing_equipment=[_equipment(prov)])
    assert sr.VerificationFlag == "UNVERIFIED"
    if anonymize:
        mark_deidentified(sr)
    return sr


def heatmap_picture(prediction, stack, index: int, *, window=None) -> np.ndarray:
    """The slice in radiological orientation (invariant 1), windowed, with the Grad-CAM map
    blended in the ROI, the ROI outlined, orientation letters and a caption burned in: RGB
    uint8 (rows, columns, 3)."""
    from PIL import Image, ImageDraw

    from . import render
    from .dicom import default_window, modality_values

    ref = stack.slices[index]
    prov = prediction.provenance
    grey = render.windowed(modality_values(ref), *(window or default_window(stack)))
    rgb, letters = render.radiological_overlay(grey, prediction.cam_roi, prov.roi,
                                               ref.require_geometry())
    scale = 2 if rgb.shape[0] <= 256 else 1
    img = Image.fromarray(rgb)
    if scale != 1:
        img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    lines = [f"Grad-CAM (relative attention, {prediction.cam_target} class); "
             f"P(favourable) = {format_probability(prediction.probability)}, "
             f"{prediction.label} at threshold {prediction.threshold:.2f}",
             f"{prov.model_name} {prov.model_version}; {prov.side} side"
             + (f", level {prov.level}" if prov.level else "")]
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
    image's right and bottom edges (the caption band below does not change them)."""
    if ref.geometry is None:
        raise TfesiError("The source image has no orientation; no heat map picture is made.",
                         ref.path)
    from . import render

    letters = render.radiological_letters(ref.geometry)  # as heatmap_picture shows it
    return letters["right"][:1], letters["bottom"][:1]


def secondary_capture(prediction, stack, index: int, *, anonymize: bool = False,
                      window=None) -> Dataset:
    """The heat map picture (:func:`heatmap_picture`) as a Secondary Capture Image in the
    source study, a new series, labelled, with BurnedInAnnotation YES."""
    from highdicom.sc import SCImage

    prov = prediction.provenance
    src = _source_dataset(stack, index)
    if anonymize:
        src = deidentified(src)
    pixels = heatmap_picture(prediction, stack, index, window=window)
    sc = SCImage.from_ref_dataset(
        ref_dataset=src, pixel_array=pixels, photometric_interpretation="RGB",
        bits_allocated=8, coordinate_system="PATIENT",
        series_instance_uid=generate_uid(), series_number=SC_SERIES_NUMBER,
        sop_instance_uid=generate_uid(), instance_number=1, manufacturer=MANUFACTURER,
        patient_orientation=_orientation(stack.slices[index]), series_description=_description(
            "heat map", prov.synthetic_model),
        contributing_equipment=[_equipment(prov)])
    sc.BurnedInAnnotation = "YES"
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
    if anonymize:
        mark_deidentified(sc)
    return sc


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


def write_sr(prediction, stack, index: int, out: str | Path, *, anonymize: bool = False
             ) -> Path:
    return save_dataset(structured_report(prediction, stack, index, anonymize=anonymize), out)


def write_secondary_capture(prediction, stack, index: int, out: str | Path, *,
                            anonymize: bool = False, window=None) -> Path:
    return save_dataset(secondary_capture(prediction, stack, index, anonymize=anonymize,
                                          window=window), out)
