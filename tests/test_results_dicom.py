"""The prediction as DICOM: a TID 1500 SR and a secondary capture of the heat map, in the source
study, honest about a demonstration model, traceable, de-identified on request."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from pydicom import dcmread

from tfesi_desktop.core import results_dicom
from tfesi_desktop.core.bundle import default_bundle_path
from tfesi_desktop.core.commands import predict_selection
from tfesi_desktop.core.deid import anonymized_uid, pseudonym
from tfesi_desktop.core.dicom import scan
from tfesi_desktop.core.manifest import read_manifest
from tfesi_desktop.core.paths import demo_manifest, demo_study
from tfesi_desktop.core.runtime import Predictor
from tfesi_desktop.core.session import Selection


@pytest.fixture(scope="module")
def predicted():
    (case,) = read_manifest(demo_manifest())
    stack = scan(demo_study()).find_stack(case.series_uid)
    index = stack.find_slice(case.slice_key)
    selection = Selection(stack.study_uid, stack.key, case.slice_key, case.roi, case.side,
                          case.level)
    result = predict_selection(Predictor(default_bundle_path()), stack, selection)
    return result, stack, index


def _walk(items):
    for it in items:
        yield it
        yield from _walk(it.get("ContentSequence", []))


def test_sr_follows_tid_1500_and_is_traceable(predicted, tmp_path):
    result, stack, index = predicted
    pred = result.prediction
    prov = pred.provenance
    assert not hasattr(prov, "level")  # the level lives in the selection only
    out = results_dicom.write_sr(result, stack, index, tmp_path / "sr.dcm")
    ds = dcmread(out)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
    assert ds.StudyInstanceUID == prov.study_uid and ds.SeriesInstanceUID != prov.series_uid
    assert ds.VerificationFlag == "UNVERIFIED"
    assert "NOT FOR CLINICAL USE" in ds.SeriesDescription  # the demo model
    root = ds.ConceptNameCodeSequence[0]
    assert (root.CodeValue, root.CodingSchemeDesignator) == ("126000", "DCM")
    assert ds.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    items = list(_walk(ds.ContentSequence))
    nums = {i.ConceptNameCodeSequence[0].CodeMeaning: float(i.MeasuredValueSequence[0]
                                                            .NumericValue)
            for i in items if i.ValueType == "NUM"}
    assert nums["Probability of favourable outcome after TFESI"] == pytest.approx(
        pred.probability, abs=1e-6)
    assert nums["Decision threshold of the model"] == pred.threshold
    codes = {i.ConceptNameCodeSequence[0].CodeMeaning: i.ConceptCodeSequence[0].CodeMeaning
             for i in items if i.ValueType == "CODE"}
    assert codes["Predicted outcome at the model's threshold"].lower().startswith(pred.label)
    assert codes["Laterality"].lower() == prov.side
    assert result.level and codes["Injected cervical level"] == f"Cervical level {result.level}"
    texts = " ".join(str(i.TextValue) for i in items if i.ValueType == "TEXT")
    assert prov.model_name in texts and prov.model_version in texts
    assert prov.model_sha256 in texts
    (scoord,) = [i for i in items if i.ValueType == "SCOORD"]
    x, y, w, h = prov.roi
    pts = np.array(scoord.GraphicData, float).reshape(-1, 2)
    assert pts.min(0).tolist() == [x, y] and pts.max(0).tolist() == [x + w, y + h]
    src = scoord.ContentSequence[0].ReferencedSOPSequence[0]
    assert src.ReferencedSOPInstanceUID == prov.sop_instance_uid
    eq = ds.ContributingEquipmentSequence
    assert any(prov.model_sha256 in list(e.get("SoftwareVersions", [])) for e in eq)
    assert not ds.get("PreliminaryFlag") or ds.PreliminaryFlag == "PRELIMINARY"


@pytest.mark.skipif(not shutil.which("dsrdump"), reason="dcmtk's dsrdump is not installed")
def test_dcmtk_reads_the_sr(predicted, tmp_path):
    out = results_dicom.write_sr(*predicted, tmp_path / "sr.dcm")
    r = subprocess.run(["dsrdump", "-Ee", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "Imaging Measurement Report" in r.stdout and "UNVERIFIED" in r.stdout
    assert "Probability of favourable outcome after TFESI" in r.stdout
    assert "SCOORD" in r.stdout


def test_secondary_capture_is_labelled_and_in_the_study(predicted, tmp_path):
    result, stack, index = predicted
    pred = result.prediction
    out = results_dicom.write_secondary_capture(result, stack, index, tmp_path / "sc.dcm")
    ds = dcmread(out)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"
    assert ds.StudyInstanceUID == pred.provenance.study_uid
    # the caption names the model, never the patient
    assert ds.BurnedInAnnotation == "NO" and "NOT FOR CLINICAL USE" in ds.SeriesDescription
    assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID == \
        pred.provenance.sop_instance_uid
    img = ds.pixel_array
    rows, cols = stack.slices[index].geometry.shape
    assert img.ndim == 3 and img.shape[1] == 2 * cols and img.shape[0] > 2 * rows  # caption
    x, y, w, h = pred.provenance.roi
    inside = img[2 * y + 4:2 * (y + h) - 4, 2 * x + 4:2 * (x + w) - 4].astype(int)
    assert np.abs(inside[..., 0] - inside[..., 2]).mean() > 10  # the heat map is in colour
    assert sorted(ds.PatientOrientation) and all(len(v) == 1 for v in ds.PatientOrientation)


def test_anonymize_removes_the_patient(predicted, tmp_path):
    pred, stack, index = predicted  # the Result
    original = dcmread(stack.slices[index].path, stop_before_pixels=True)
    assert str(original.PatientName)
    for f in (results_dicom.write_sr(pred, stack, index, tmp_path / "sr.dcm", anonymize=True),
              results_dicom.write_secondary_capture(pred, stack, index, tmp_path / "sc.dcm",
                                                    anonymize=True)):
        ds = dcmread(f)
        assert (ds.PatientID, str(ds.PatientName)) == pseudonym(original.PatientID)
        assert ds.get("PatientBirthDate", "") == ""
        raw = f.read_bytes()
        assert str(original.PatientName).encode() not in raw
        assert original.PatientID.encode() not in raw
        # PS3.15: new UIDs, the same for every object of this study (mapping kept privately)
        assert ds.StudyInstanceUID == anonymized_uid(original.StudyInstanceUID)
        assert ds.StudyInstanceUID != original.StudyInstanceUID
        assert ds.PatientIdentityRemoved == "YES"
        assert original.StudyInstanceUID.encode() not in raw


def test_unwritable_target_is_a_clear_error(predicted, tmp_path):
    from tfesi_desktop.core.errors import TfesiError

    with pytest.raises(TfesiError, match="does not exist"):
        results_dicom.write_sr(*predicted, tmp_path / "missing" / "sr.dcm")


def test_secondary_capture_is_radiological_whatever_the_storage(tmp_path, monkeypatch):
    """A study stored mirrored and upside down gives the same picture as one stored plainly:
    the patient's right on the left, anterior up (docs/architecture.md, invariant 1)."""
    from tfesi_desktop.core.geometry import Dihedral
    from tfesi_desktop.core.synth.cohort import Storage, make_cohort

    pictures = {}
    for name, d in (("plain", Dihedral()), ("flipped", Dihedral(flip_rows=True,
                                                                flip_cols=True))):
        make_cohort(tmp_path / name, patients=1, seed=4, jobs=1, matrix=256,
                    storage=Storage(dihedral=d))
        (case,) = read_manifest(tmp_path / name / "manifest.csv")
        stack = scan(tmp_path / name).find_stack(case.series_uid)
        index = stack.find_slice(case.slice_key)
        sel = Selection(stack.study_uid, stack.key, case.slice_key, case.roi, case.side,
                        case.level)
        result = predict_selection(Predictor(default_bundle_path()), stack, sel)
        ds = dcmread(results_dicom.write_secondary_capture(result, stack, index,
                                                           tmp_path / f"{name}.dcm"))
        assert list(ds.PatientOrientation) == ["L", "P"]
        rows = stack.slices[index].geometry.shape[0] * 2
        pictures[name] = ds.pixel_array[:rows].astype(int)
    diff = np.abs(pictures["plain"] - pictures["flipped"])
    assert diff.mean() < 3, diff.mean()  # the same picture (the letters and map may differ a bit)
