"""De-identification by PS3.15 Table E.1-1 (core/deid.py), the private ledger shared by
processes (core/ledger.py), and the comment scrubber."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from types import SimpleNamespace

import pytest
from pydicom.dataset import Dataset

from tfesi_desktop.core import deid
from tfesi_desktop.core.deid_table import TABLE

_WORKER = """
import json, sys
from tfesi_desktop.core.deid import anonymized_uid, pseudonym
me = int(sys.argv[1])
uids = [f"1.2.3.{i}" for i in range(150)] + [f"1.2.4.{me}.{i}" for i in range(50)]
out = {u: anonymized_uid(u) for u in (uids if me % 2 else uids[::-1])}
out["patient"] = pseudonym(f"P{me % 3}")[0]
print(json.dumps(out))
"""


def test_concurrent_processes_lose_no_mapping(tmp_path):
    env = {**os.environ, "TFESI_HOME": str(tmp_path / "home")}
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, str(i)], env=env,
                              stdout=subprocess.PIPE, text=True) for i in range(4)]
    results = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    seen: dict[str, set[str]] = {}
    for r in results:
        for k, v in r.items():
            if k != "patient":
                seen.setdefault(k, set()).add(v)
    assert len(seen) == 150 + 4 * 50  # 350 distinct originals
    assert all(len(v) == 1 for v in seen.values())  # every process got the same replacement
    replacements = [next(iter(v)) for v in seen.values()]
    assert len(set(replacements)) == len(replacements)
    # and all of them are kept: asked again (another process), each gives the same answer
    import sqlite3

    con = sqlite3.connect(tmp_path / "home" / "anonymization" / "ledger.sqlite")
    kept = dict(con.execute("SELECT original, replacement FROM uids"))
    assert {k: next(iter(v)) for k, v in seen.items()} == kept
    assert results[0]["patient"] == results[3]["patient"] != results[1]["patient"]
    path = tmp_path / "home" / "anonymization" / "ledger.sqlite"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700


def test_pseudonyms_are_consistent_never_empty_and_distinct():
    a = deid.pseudonym("ID-1", "Doe^Jane", "19700101")
    assert a == deid.pseudonym("ID-1", "Other^Name")  # the ID decides
    b = deid.pseudonym("ID-2")
    assert a != b and all(a) and all(b)
    nobody = deid.pseudonym(study_uid="1.2.3")
    assert nobody[0] and nobody == deid.pseudonym(study_uid="1.2.3")
    assert nobody != deid.pseudonym(study_uid="1.2.4")


def test_earlier_json_map_is_imported(tmp_path, monkeypatch):
    home = tmp_path / "old"
    (home / "anonymization").mkdir(parents=True)
    (home / "anonymization" / "uid-map.json").write_text(json.dumps(
        {"format": "tfesi-uid-map/1", "uids": {"1.2.3.4": "2.25.99"}}))
    monkeypatch.setenv("TFESI_HOME", str(home))
    assert deid.anonymized_uid("1.2.3.4") == "2.25.99"  # the clinic's link survives


def test_table_actions_each_applied():
    assert len(TABLE) > 600
    ds = Dataset()
    ds.PatientName, ds.PatientID = "Doe^Jane", "ID-7"
    ds.PatientBirthDate = "19640103"  # Z
    ds.StudyDate, ds.StudyTime = "20240512", "101010"  # Z
    ds.ContentDate = "20240512"  # Z/D
    ds.InstitutionName = "General Hospital"  # X/Z/D
    ds.MedicalAlerts = "penicillin"  # X
    ds.AccessionNumber = "A1"  # Z
    ds.StudyInstanceUID = "1.2.3.4.5"  # U
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4"  # not in the table: kept
    ds.BodyPartExamined = "CSPINE"  # not in the table: kept
    ds.ContainerIdentifier = "C1"  # D, but its module is absent: removed with it
    person = Dataset()
    person.CodeValue, person.CodingSchemeDesignator, person.CodeMeaning = "1", "L", "Dr Who"
    ds.PersonIdentificationCodeSequence = [person]  # D on a sequence: items de-identified
    ref = Dataset()
    ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = "1.2.840.10008.5.1.4.1.1.4", "1.9"
    ds.SourceImageSequence = [ref]  # X/Z/U*
    ds.add_new(0x00091010, "LO", "private")
    out = deid.deidentify_dataset(ds)
    assert (out.PatientID, str(out.PatientName)) == deid.pseudonym("ID-7")
    assert out.PatientBirthDate == "" and out.StudyDate == "" and out.AccessionNumber == ""
    assert "MedicalAlerts" not in out and "InstitutionName" in out and not out.InstitutionName
    assert out.StudyInstanceUID == deid.anonymized_uid("1.2.3.4.5") != ds.StudyInstanceUID
    assert out.SOPClassUID == ds.SOPClassUID and out.BodyPartExamined == "CSPINE"
    assert "ContainerIdentifier" not in out and 0x00091010 not in out
    assert out.SourceImageSequence[0].ReferencedSOPInstanceUID == deid.anonymized_uid("1.9")
    assert out.SourceImageSequence[0].ReferencedSOPClassUID == ref.ReferencedSOPClassUID
    assert "Dr Who" not in str(out.PersonIdentificationCodeSequence[0].CodeMeaning)
    assert out.PatientIdentityRemoved == "YES"
    assert out.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
    assert out.LongitudinalTemporalInformationModified == "REMOVED"
    assert str(ds.PatientName) == "Doe^Jane"  # a copy: the original is untouched
    # an object the program made: its own dates get the table's action, a dummy if required
    made = Dataset()
    made.PatientID, made.PatientName = out.PatientID, out.PatientName
    made.ContentDate, made.InstanceCreationDate = "20261202", "20261202"
    made.add_new(0x00181012, "DA", "20261202")  # Date of Secondary Capture: X
    eq = Dataset()
    eq.ContributionDateTime = "20261202101010"
    made.ContributingEquipmentSequence = [eq]
    made.SeriesDescription = "TFESI prediction SR"
    deid.deidentify_result(made)
    assert made.ContentDate == "19000101" and made.InstanceCreationDate == "19000101"
    assert 0x00181012 not in made and "ContributionDateTime" not in made[
        "ContributingEquipmentSequence"][0]
    assert made.SeriesDescription == "TFESI prediction SR" and made.PatientID == out.PatientID


# 31 spellings of the patient's name, ID and dates a physician may type (issue: reports keep
# what was typed, the scrubber catches them)
SPELLINGS = [
    "Synthberg-Farid", "SYNTHBERG-FARID", "synthberg-farid", "Synthberg Farid", "Synthberg",
    "Farid", "Ann", "Farid, Ann", "SYN-2036-00000",
    "19640103", "1964-01-03", "03.01.1964", "3.1.1964", "03/01/1964", "3/1/1964",
    "01/03/1964", "1/3/1964", "03-01-1964", "3-1-1964", "1964/01/03", "1964.01.03",
    "03.01.64", "3 January 1964", "3rd January 1964", "January 3, 1964", "January 3rd, 1964",
    "Jan 3, 1964", "3 Jan 1964", "03-JAN-1964", "Jan. 3, 1964", "12/05/2024",
]
STUDY = SimpleNamespace(patient_name="Synthberg-Farid^Ann", patient_id="SYN-2036-00000",
                        birth_date="19640103", study_date="20240512")


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_scrubber_catches_each_spelling(spelling):
    assert len(SPELLINGS) == 31
    import re

    text, n = deid.scrub_identifiers(f"Seen: {spelling}. Pain since 2019, NRS 7.", STUDY)
    text = re.sub(r"\[removed\](?:,? \[removed\])+", "[removed]", text)  # "Farid, Ann"
    assert text == "Seen: [removed]. Pain since 2019, NRS 7.", text
    assert n >= 1


def test_scrubber_leaves_other_words_and_numbers():
    keep = ("Annals of pain; dose 3/1 mg; C6-C7; 1964 patients; 2019-2024; 03.01; A123; "
            "Faridabad")
    assert deid.scrub_identifiers(keep, STUDY) == (keep, 0)
    assert deid.scrub_identifiers("Müller und Mueller", SimpleNamespace(
        patient_name="Müller^Jörg", patient_id="", birth_date="", study_date="")) == (
        "[removed] und [removed]", 2)


def test_damaged_ledger_is_a_clear_error_and_makes_no_identity():
    from tfesi_desktop.core.errors import TfesiError
    from tfesi_desktop.core.ledger import ledger_path

    deid.anonymized_uid("1.2.3")  # the ledger exists
    ledger_path().write_bytes(b"this is not a database" * 100)
    with pytest.raises(TfesiError, match="ledger cannot be"):
        deid.anonymized_uid("1.2.3")
    assert ledger_path().read_bytes().startswith(b"this is not")  # left for repair, not replaced
