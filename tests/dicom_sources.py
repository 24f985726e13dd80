"""Source studies for the DICOM conformance tests, made from the demo study: one stripped of every
Type 2 (and optional) attribute a real scanner may leave out, one carrying every attribute of DICOM
PS3.15 Table E.1-1 with a marker value (tests/test_deid.py, tests/test_dicom_conformance.py)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from pydicom import dcmread
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset

# Type 2 attributes of the Patient, General Study, General Series, General Equipment, General
# Image and MR Image modules, and the optional ones our phantom always writes
STRIPPED = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate",
            "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber",
            "SeriesNumber", "Laterality", "Manufacturer", "InstanceNumber",
            "PatientOrientation", "ContentDate", "ContentTime", "EchoTime", "EchoTrainLength",
            "RepetitionTime", "ScanOptions", "SequenceVariant", "MRAcquisitionType",
            "InversionTime", "BodyPartExamined", "SeriesDescription", "StudyDescription",
            "InstitutionName", "SeriesDate", "SeriesTime", "AcquisitionDate", "AcquisitionTime",
            "InstanceCreationDate", "InstanceCreationTime", "ManufacturerModelName",
            "SoftwareVersions", "StationName", "ProtocolName", "PatientAge", "PatientWeight",
            "PatientSize", "SpecificCharacterSet", "ImageType", "SliceThickness",
            "SpacingBetweenSlices", "AcquisitionNumber", "MagneticFieldStrength",
            "ImagedNucleus", "ImagingFrequency", "NumberOfAverages", "EchoNumbers")


def copy_study(src: Path, out: Path, change) -> Path:
    """Each DICOM file of ``src`` passed through ``change(ds, index)`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(sorted(Path(src).rglob("*.dcm"))):
        ds = dcmread(f)
        change(ds, i)
        ds.save_as(out / f.name, enforce_file_format=False)
    return out


def stripped_study(src: Path, out: Path) -> Path:
    def strip(ds, _):
        for kw in STRIPPED:
            if kw in ds:
                delattr(ds, kw)
    return copy_study(src, out, strip)


def marker_value(vr: str, n: int):
    """A value of this VR that can be found again: MRK<n> in text, 1951-dates, 11:51 times."""
    if vr in ("DA",):
        return f"1951{n % 12 + 1:02d}{n % 28 + 1:02d}"
    if vr == "TM":
        return f"1151{n % 60:02d}.{n:06d}"[:16]
    if vr == "DT":
        return f"1951{n % 12 + 1:02d}{n % 28 + 1:02d}1151{n % 60:02d}"
    if vr == "AS":
        return "051Y"
    if vr == "UI":
        return f"1.2.826.0.1.3680043.10.1951.{n}"
    if vr in ("US", "SS", "UL", "SL", "UV", "SV", "FL", "FD", "IS", "DS", "AT", "OB", "OW",
              "OF", "OD", "OL", "OV", "UN"):
        return None  # numbers and bytes: not findable as text; counted apart
    if vr == "PN":
        return f"MRK{n:04d}^Marker"
    return f"MRK{n:04d}"


MARKER = re.compile(r"MRK\d{4}|1951\d{4}|1\.2\.826\.0\.1\.3680043\.10\.1951\.")


def e11_tags():
    from tfesi_desktop.core.deid_table import TABLE

    return [(tag, mask) for tag, mask, _action, _name in TABLE]


def rich_study(src: Path, out: Path) -> tuple[Path, int]:
    """The demo study with every Table E.1-1 attribute that has a findable value set to a
    marker (a sequence: an item holding a marker code); (folder, number of marked attributes)."""
    keep = {0x0020000D, 0x0020000E, 0x00080018, 0x00200052}  # identity: original UIDs are markers
    marked = set()

    def enrich(ds, _):
        for n, (tag, mask) in enumerate(e11_tags()):
            if tag in keep or mask != 0xFFFFFFFF or tag >> 16 in (0x0000, 0x0002):
                continue
            try:
                vr = dictionary_VR(tag)
            except KeyError:
                continue
            vr = vr.split(" or ")[0]
            if vr == "SQ":
                item = Dataset()
                item.CodeValue, item.CodingSchemeDesignator = f"MRK{n:04d}", "99MRK"
                item.CodeMeaning = f"MRK{n:04d}"
                ds.add_new(tag, "SQ", [item])
            else:
                value = marker_value(vr, n)
                if value is None:
                    continue
                ds.add_new(tag, vr, value)
            marked.add(tag)
        ds.PatientName = "Markerson^MRK9999"
        ds.PatientSex = "O"  # an enumerated value (not counted as a marker)
        marked.discard(0x00100040)
    copy_study(src, out, enrich)
    return out, len(marked)


def dciodvfy(path: Path) -> tuple[list[str], list[str]]:
    """(errors, warnings) of dicom3tools' validator on one file."""
    r = subprocess.run(["dciodvfy", "-new", str(path)], capture_output=True, text=True)
    lines = (r.stdout + r.stderr).splitlines()
    return ([ln for ln in lines if ln.startswith("Error")],
            [ln for ln in lines if ln.startswith("Warning")])


have_dciodvfy = shutil.which("dciodvfy") is not None


def markers_in(path: Path, originals=()) -> list[str]:
    """Marker values (and original UIDs) found anywhere in a DICOM file: every element's value,
    in sequences too, and the raw bytes outside the encapsulated document."""
    ds = dcmread(path)
    found = []
    doc = ds.get("EncapsulatedDocument")
    raw = Path(path).read_bytes()
    if doc:
        raw = raw.replace(bytes(doc), b"")
    text = raw.decode("latin-1")
    found += MARKER.findall(text)
    found += [u for u in originals if u in text]
    for elem in ds.iterall():
        if elem.VR in ("OB", "OW", "OF", "OD", "OL", "OV", "UN") or elem.tag == 0x7FE00010:
            continue
        s = str(elem.value)
        found += [f"{elem.keyword}: {m}" for m in MARKER.findall(s)]
        found += [f"{elem.keyword}: {u}" for u in originals if u in s]
    return found
