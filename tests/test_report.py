"""The PDF report, read back (pdftotext, pdfinfo, pdffonts) and rendered (pdftoppm)."""

import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tfesi_desktop.core.errors import TfesiError
from tfesi_desktop.core.manifest import read_manifest
from tfesi_desktop.core.paths import demo_manifest, demo_study
from tfesi_desktop.core.render import display_name

needs_poppler = pytest.mark.skipif(shutil.which("pdftotext") is None,
                                   reason="poppler-utils is not installed")


@pytest.fixture(scope="module")
def case():
    (c,) = read_manifest(demo_manifest())
    return c


def _report(case, out, *extra):
    r = subprocess.run([sys.executable, "-m", "tfesi_desktop.cli", "report", str(demo_study()),
                        "--slice", case.slice_key, "--roi", ",".join(map(str, case.roi)),
                        "--side", case.side, "--level", "C6", "--out", str(out), *extra],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r


def _iso(d: str) -> str:
    return f"{d[:4]}-{d[4:6]}-{d[6:8]}"


def _text(pdf):
    return subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True,
                          text=True, check=True).stdout


def _info(pdf):
    return subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True,
                          check=True).stdout


@needs_poppler
def test_report_holds_every_item(case, tmp_path):
    from tfesi_desktop.core.bundle import default_bundle_path, load_bundle
    from tfesi_desktop.core.dicom import scan

    pdf = tmp_path / "r.pdf"
    _report(case, pdf, "--comment", "Narrow left C6 foramen, injection planned",
            "--physician", "Dr. Ada Example", "--dicom")
    text = _text(pdf)
    study = scan(demo_study()).studies[0]
    bundle = load_bundle(default_bundle_path())
    stack = scan(demo_study()).find_stack(case.series_uid)
    index = stack.find_slice(case.slice_key)
    born, seen = _iso(study.birth_date), _iso(study.study_date)
    for item in ("TFESI Desktop 0.1.0", "supports and does not replace clinical judgement",
                 "DEMONSTRATION MODEL", "NOT FOR CLINICAL USE", display_name(study.patient_name),
                 study.patient_id, born, seen, "MRI CERVICAL SPINE",
                 "T2 TSE AX C-SPINE", f"{index + 1} of {len(stack.slices)}", "position",
                 "probability of a favourable outcome", "FAVOURABLE", "threshold 0.50",
                 bundle.validated_performance().split(" (95")[0],
                 bundle.name, bundle.sha256, "version 2, 13 ROIs",
                 study.study_uid, case.series_uid, case.slice_key,
                 "x {}, y {}, width {}, height {}".format(*case.roi), "level C6",
                 "patient left side", "Dr. Ada Example", "Narrow left C6 foramen", "Signature",
                 "Grad-CAM: relative attention"):
        assert item in text, item
    info = _info(pdf)
    assert "A4" in info or "595.276 x 841.89" in info
    fonts = subprocess.run(["pdffonts", str(pdf)], capture_output=True, text=True).stdout
    rows = fonts.strip().splitlines()[2:]
    assert rows and all(" yes " in r for r in rows), fonts  # every font embedded
    # the DICOM Encapsulated PDF carries the same file
    import pydicom

    ds = pydicom.dcmread(tmp_path / "r.dcm")
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.104.1"
    assert ds.StudyInstanceUID == study.study_uid
    assert ds.EncapsulatedDocument[:ds.EncapsulatedDocumentLength] == pdf.read_bytes()


@needs_poppler
def test_anonymized_report_holds_no_identifier(case, tmp_path):
    from tfesi_desktop.core.dicom import scan

    study = scan(demo_study()).studies[0]
    pdf = tmp_path / "anon.pdf"
    family, given = study.patient_name.split("^")
    b = study.birth_date
    dotted = f"{b[6:8]}.{b[4:6]}.{b[:4]}"
    # the physician's comment names the patient, the ID and the birth date: they are removed
    comment = (f"{given} {family.title()} (ID {study.patient_id}), born {dotted}: pain on the "
               "left since 2019, NRS 7.")
    _report(case, pdf, "--anonymize", "--paper", "letter", "--dicom", "--physician",
            "Dr. Ada Example", "--comment", comment)
    text, info = _text(pdf), _info(pdf)
    flat = " ".join(text.split())
    assert "pain on the left since 2019, NRS 7." in flat
    assert "[removed] [removed] (ID [removed]), born [removed]" in flat
    assert "4 identifying words removed for anonymization" in flat
    stack = scan(demo_study()).find_stack(case.series_uid)
    import datetime
    import os
    import stat

    import pydicom

    today = datetime.date.today()
    sop = stack.slices[stack.find_slice(case.slice_key)].sop_instance_uid
    ds = pydicom.dcmread(tmp_path / "anon.dcm")
    dcm_bytes = (tmp_path / "anon.dcm").read_bytes()
    # PS3.15 Annex E basic profile: no names, IDs, dates, age, sex, descriptions, original UIDs
    for ident in (family, family.title(), given, study.patient_id, dotted,
                  _iso(study.birth_date), study.birth_date,
                  _iso(study.study_date), study.study_date, study.description,
                  stack.description, study.study_uid,
                  case.series_uid, sop, today.isoformat(), today.strftime("%Y%m%d"),
                  today.strftime("D:%Y%m%d"), "Dr. Ada Example", f"Sex {study.sex}"):
        assert ident not in text and ident not in info, ident
        assert ident.encode() not in pdf.read_bytes(), ident
        assert ident.encode() not in dcm_bytes.replace(pdf.read_bytes(), b""), ident
    assert "(anonymized)" in text and "letter" in info
    # a pseudonym a PACS keeps apart from other patients, the same for every object
    from tfesi_desktop.core.deid import pseudonym

    assert (ds.PatientID, str(ds.PatientName)) == pseudonym(study.patient_id)
    assert ds.PatientID.startswith("ANON-") and study.patient_id not in ds.PatientID
    assert not ds.PatientBirthDate
    assert not ds.PatientSex and not ds.StudyDate and ds.ContentDate == "19000101"
    assert "PatientAge" not in ds and ds.AcquisitionDateTime.startswith("1900")
    assert ds.PatientIdentityRemoved == "YES" and "PS3.15" in ds.DeidentificationMethod[0]
    assert ds.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
    # new UIDs, the same in the PDF and its copy, mapped back only in the private folder
    from tfesi_desktop.core.deid import anonymized_uid, uid_map_path

    assert ds.StudyInstanceUID != study.study_uid and ds.StudyInstanceUID in text
    assert anonymized_uid(study.study_uid) == ds.StudyInstanceUID
    assert anonymized_uid(sop) in text
    assert stat.S_IMODE(os.stat(uid_map_path()).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(uid_map_path().parent).st_mode) == 0o700
    for f in (pdf, tmp_path / "anon.dcm"):
        assert stat.S_IMODE(os.stat(f).st_mode) == 0o600


@needs_poppler
def test_rendered_page_shows_the_pictures(case, tmp_path):
    pdf = tmp_path / "r.pdf"
    _report(case, pdf)
    subprocess.run(["pdftoppm", "-png", "-r", "60", str(pdf), str(tmp_path / "page")],
                   check=True)
    png = sorted(tmp_path.glob("page*.png"))[0]  # page 1: the pictures; the provenance after
    img = np.asarray(Image.open(png).convert("RGB")).astype(int)
    h, w, _ = img.shape
    assert abs(h / w - 297 / 210) < 0.02  # A4
    colour = np.abs(img[..., 0] - img[..., 2]) + np.abs(img[..., 1] - img[..., 2])
    assert (colour > 100).sum() > 1500  # the heat map and colour bar
    dark = img.sum(axis=2) < 100
    assert dark[: h // 2].mean() > 0.05  # the slice picture (mostly black background)


def test_failed_write_leaves_the_earlier_file_intact(case, tmp_path, monkeypatch):
    import os

    pdf = tmp_path / "r.pdf"
    _report(case, pdf)
    before = pdf.read_bytes()
    from tfesi_desktop.cli import main

    def disk_full(fd):  # the disk fills up while the file is flushed
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    rc = main(["report", str(demo_study()), "--slice", case.slice_key, "--roi",
               ",".join(map(str, case.roi)), "--side", case.side, "--out", str(pdf)])
    assert rc == 2
    assert pdf.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["r.pdf"]  # no partial file left
    with pytest.raises(TfesiError, match="does not exist"):
        from tfesi_desktop.core.report import write_report

        write_report(None, tmp_path / "no" / "such" / "folder" / "x.pdf")


def test_scrubbing_removes_whole_identifying_words_only():
    from types import SimpleNamespace

    from tfesi_desktop.core.deid import scrub_identifiers

    st = SimpleNamespace(patient_name="Li^Ann=", patient_id="A12", birth_date="19640103",
                         study_date="20240512")
    text, n = scrub_identifiers("ANN li, likely A123 or A12; born 3.1.1964, seen 12/05/2024 "
                                "and 2024-05-12. Annals. DOB 3 January 1964 (Jan 3, 1964); "
                                "seen again May 12 2024.", st)
    assert text == ("[removed] [removed], likely A123 or [removed]; born [removed], seen "
                    "[removed] and [removed]. Annals. DOB [removed] ([removed]); seen again "
                    "[removed].")
    assert n == 9
    assert scrub_identifiers("nothing here", st) == ("nothing here", 0)


def _named_study(tmp_path, name, charset):
    from tests.dicom_sources import copy_study

    def rename(ds, _):
        ds.SpecificCharacterSet = charset
        ds.PatientName = name
        ds.ReferringPhysicianName = "Wéber^Anaïs"
    return copy_study(demo_study(), tmp_path / "named", rename)


@needs_poppler
@pytest.mark.parametrize("name, charset", [
    ("Müller^Jörg", "ISO_IR 100"), ("Παπαδόπουλος-Петров^山田太郎", "ISO_IR 192")],
    ids=["latin1", "greek-cyrillic-cjk"])
def test_names_in_any_script_print_and_are_encoded(case, tmp_path, name, charset):
    import pydicom

    from tfesi_desktop.core.report import CJK_FONT, _find_font

    if charset == "ISO_IR 192" and not (_find_font(CJK_FONT) and _find_font("DejaVuSans.ttf")):
        pytest.skip("fonts-dejavu-core and fonts-droid-fallback are not installed "
                    "(scripts/system-deps.sh)")
    src = _named_study(tmp_path, name, charset)
    pdf = tmp_path / "r.pdf"
    r = subprocess.run([sys.executable, "-m", "tfesi_desktop.cli", "report", str(src),
                        "--slice", case.slice_key, "--roi", ",".join(map(str, case.roi)),
                        "--side", case.side, "--out", str(pdf), "--dicom",
                        "--sr", str(tmp_path / "sr.dcm"), "--sc", str(tmp_path / "sc.dcm")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    text = _text(pdf)
    for part in re.split(r"[\^-]", name):
        assert part.upper() in text.upper(), (part, text[:400])  # in the text layer
    assert "Wéber" in text or "WÉBER" in text.upper()  # referring physician, from the header
    for f in ("r.dcm", "sr.dcm", "sc.dcm"):
        ds = pydicom.dcmread(tmp_path / f)
        assert ds.SpecificCharacterSet == "ISO_IR 192"
        assert str(ds.PatientName) == name
        assert name.split("^")[0].encode("utf-8") in (tmp_path / f).read_bytes()


@needs_poppler
def test_long_text_flows_onto_more_pages_never_cut(case, tmp_path):
    comment = " ".join(f"word{i:04d}" for i in range(1500)) + " THE-END"
    pdf = tmp_path / "r.pdf"
    _report(case, pdf, "--comment", comment, "--physician", "Dr. " + "Verylongname" * 300)
    text = _text(pdf)
    body = [ln for ln in text.splitlines()  # without the page furniture between the pages
            if "Generated by TFESI" not in ln and "(continued)" not in ln]
    flat = "".join("".join(body).split())
    assert "".join(comment.split()) in flat  # every word, in order, none cut
    assert "Verylongname" * 300 in flat
    pages = int(re.search(r"Pages:\s+(\d+)", _info(pdf)).group(1))
    assert pages >= 3
    # the provenance (model SHA-256) is off page 1
    first = subprocess.run(["pdftotext", "-f", "1", "-l", "1", str(pdf), "-"],
                           capture_output=True, text=True).stdout
    assert "SHA-256" not in first and "SHA-256" in text


def test_pdf_is_pdf_a_2b_with_its_metadata(case, tmp_path):
    import pikepdf

    pdf = tmp_path / "r.pdf"
    _report(case, pdf, "--anonymize")
    with pikepdf.open(pdf) as doc:
        meta = doc.open_metadata()
        assert meta["pdfaid:part"] == "2" and meta["pdfaid:conformance"] == "B"
        assert meta["dc:title"] == "TFESI outcome prediction report"
        (intent,) = doc.Root.OutputIntents
        assert intent.S == "/GTS_PDFA1" and "sRGB" in str(intent.OutputConditionIdentifier)
        icc = intent.DestOutputProfile.read_bytes()
        assert icc[36:40] == b"acsp" and int(intent.DestOutputProfile.N) == 3
        xmp = bytes(doc.Root.Metadata.read_bytes()).decode()
        import datetime

        assert datetime.date.today().isoformat() not in xmp  # anonymized: no date
        for font in doc.pages[0].Resources.Font.values():
            assert "/FontFile2" in font.FontDescriptor  # embedded
