"""Our results stored into a real Orthanc (tests/test_pacs.py starts it): they sit in the source
study with descriptions and dates, a re-export adds versions to the same series instead of new
series, and anonymized results of two patients stay two patients."""

from __future__ import annotations

import json
import urllib.request

import pytest

from tests.dicom_sources import copy_study
from tests.test_dicom_conformance import KINDS, _write_all
from tests.test_pacs import ORTHANC, STORESCU, start_orthanc, storescu
from tfesi_desktop.core.pacs import send_to_pacs
from tfesi_desktop.core.paths import demo_study

pytestmark = pytest.mark.skipif(not (ORTHANC and STORESCU), reason="needs Orthanc and dcmtk "
                                "(Debian packages orthanc, dcmtk: scripts/system-deps.sh)")


def _other(uid: str) -> str:
    """A second patient's UIDs: the demo's with another last digit."""
    return uid[:-1] + str((int(uid[-1]) + 1) % 10)


def _get(server, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{server.http_port}{path}", timeout=10) as r:
        return json.loads(r.read())


def test_results_in_the_pacs(tmp_path, monkeypatch):
    from pydicom import dcmread

    monkeypatch.setenv("TFESI_HOME", str(tmp_path / "home"))
    server = start_orthanc(tmp_path / "orthanc")
    try:
        demo = sorted(demo_study().glob("*.dcm"))
        storescu(server, demo)

        def second(ds, _):
            for kw in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
                setattr(ds, kw, _other(str(ds[kw].value)))
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.PatientID, ds.PatientName = "SYN-OTHER-1", "Other^Patient"
        other = copy_study(demo_study(), tmp_path / "other", second)

        normal = _write_all(demo_study(), tmp_path / "n1", anonymize=False)
        files = [normal[k] for k in KINDS]
        assert send_to_pacs(files, server.address) == len(files)
        study_uid = str(dcmread(demo[0], stop_before_pixels=True).StudyInstanceUID)
        (study,) = _get(server, "/studies")  # in the source study, not a new one
        series = [_get(server, f"/series/{s}") for s in _get(server, f"/studies/{study}")
                  ["Series"]]
        results = [s["MainDicomTags"] for s in series
                   if "TFESI" in s["MainDicomTags"].get("SeriesDescription", "")]
        assert len(results) == len(KINDS)
        assert {"DOC", "SR", "OT"} <= {r["Modality"] for r in results}
        assert all(r.get("SeriesDate") and "NOT FOR CLINICAL USE" in r["SeriesDescription"]
                   for r in results)
        assert _get(server, f"/studies/{study}")["MainDicomTags"]["StudyInstanceUID"] == \
            study_uid
        # a second export: new versions in the same series
        again = _write_all(demo_study(), tmp_path / "n2", anonymize=False)
        send_to_pacs([again[k] for k in KINDS], server.address)
        after = _get(server, f"/studies/{study}")["Series"]
        assert len(after) == len(series)
        for s in after:
            tags = _get(server, f"/series/{s}")
            if "TFESI" in tags["MainDicomTags"].get("SeriesDescription", ""):
                assert len(tags["Instances"]) == 2

        # anonymized results of two patients: two pseudonymous patients, not one
        anon = [_write_all(demo_study(), tmp_path / "a1", anonymize=True),
                _write_all(other, tmp_path / "a2", anonymize=True, uid=_other)]
        for a in anon:
            send_to_pacs([a[k] for k in KINDS], server.address)
        patients = [_get(server, f"/patients/{p}")["MainDicomTags"]
                    for p in _get(server, "/patients")]
        pseudonyms = {p["PatientID"] for p in patients if p["PatientID"].startswith("ANON-")}
        assert len(pseudonyms) == 2
        assert len(_get(server, "/studies")) == 3  # the source study and two anonymized ones
    finally:
        server.stop()
