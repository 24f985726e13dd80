"""De-identification (invariant 11): DICOM PS3.15 Annex E, the Basic Application Level
Confidentiality Profile, applied from its Table E.1-1 (:mod:`.deid_table`, every attribute with
its action D, Z, X, U or a combined one; sequences item by item; private attributes removed),
with the program's own identity map on top; and the scrubber of identifying words in free text.

Options claimed: none beyond the Basic Profile (code 113100). In particular Retain Longitudinal
Temporal Information is NOT claimed: every date and time of the profile is removed, emptied or
replaced by a dummy, in the source's attributes and in those of the objects the program writes
(instance creation, content, secondary capture, contribution dates), and
LongitudinalTemporalInformationModified says REMOVED.

Identity map (:mod:`.ledger`, the user's private folder): each original UID gets a new one
(2.25 prefix, random), each patient a pseudonymous PatientID and PatientName (random, never
empty), the same every time and in every process, so that a PACS keeps two anonymized patients
apart and the clinic, and nobody else, can link a result back to its patient.
"""

from __future__ import annotations

import copy
import re
import secrets
import unicodedata
from pathlib import Path

from .deid_table import EDITION, TABLE
from .ledger import ledger_path, lookup_or_insert

# (LO: up to 64 characters a value, several values)
DEID_METHOD = [f"DICOM PS3.15 Annex E Basic Profile, Table E.1-1 ({EDITION})",
               "No option: dates and times removed or dummy values",
               "UIDs, PatientID and PatientName replaced; map kept privately"]
DEID_CODE = ("113100", "DCM", "Basic Application Confidentiality Profile")
DUMMY = {"DA": "19000101", "TM": "000000", "DT": "19000101000000", "PN": "ANONYMIZED^",
         "AS": "000Y", "IS": "0", "DS": "0", "CS": "ANONYMIZED", "UR": ""}
_EXACT = {tag: action for tag, mask, action, _ in TABLE if mask == 0xFFFFFFFF}
_GROUPS = [(tag, mask, action) for tag, mask, action, _ in TABLE if mask != 0xFFFFFFFF]
# UIDs outside the table that name kinds of things, not patients or instances: kept
_CLASS_UIDS = {"SOPClassUID", "ReferencedSOPClassUID", "MediaStorageSOPClassUID",
               "TransferSyntaxUID", "ImplementationClassUID", "CodingSchemeUID",
               "ContextGroupExtensionCreatorUID", "MappingResourceUID",
               "TemplateExtensionCreatorUID", "SOPClassesInStudy", "AffectedSOPClassUID",
               "ReferencedSOPClassUIDInFile", "RelatedGeneralSOPClassUID",
               "OriginalSpecializedSOPClassUID", "PrivateInformationCreatorUID"}


def uid_map_path() -> Path:
    """Where the original-to-anonymized UIDs (and the pseudonyms) are kept: the private
    ledger, 0600 in a 0700 folder. It links results back to patients: never share it."""
    return ledger_path()


def anonymized_uid(uid: str) -> str:
    """The replacement for an original UID in anonymized output: new (2.25 prefix, random),
    the same every time, in every process, for the same original."""
    from pydicom.uid import generate_uid

    return lookup_or_insert("uids", str(uid), lambda: generate_uid(prefix=None))


def pseudonym(patient_id: str = "", patient_name: str = "", birth_date: str = "",
              study_uid: str = "", issuer: str = "") -> tuple[str, str]:
    """(PatientID, PatientName) of the patient in anonymized output: random, never empty, the
    same for the same patient (their ID and its issuer; without an ID their name and birth
    date; without either, their study)."""
    if patient_id:
        key = f"id\x1f{issuer}\x1f{patient_id}"
    elif patient_name or birth_date:
        key = f"name\x1f{patient_name}\x1f{birth_date}"
    else:
        key = f"study\x1f{study_uid}"
    code = lookup_or_insert("patients", key, lambda: f"ANON-{secrets.token_hex(5).upper()}")
    return code, f"ANONYMIZED^{code}"


def action(tag: int) -> str | None:
    """The Table E.1-1 action for a tag (None: not in the table)."""
    a = _EXACT.get(int(tag))
    if a is None:
        for entry, mask, act in _GROUPS:
            if int(tag) & mask == entry:
                return act
    return a


def _dummy(elem):
    vr = elem.VR
    if vr in DUMMY:
        return DUMMY[vr]
    if vr in ("US", "SS", "UL", "SL", "UV", "SV", "FL", "FD"):
        return 0
    if vr in ("OB", "OW", "OF", "OD", "OL", "OV", "UN"):
        return b""
    return "ANONYMIZED"


def _clean(d, *, result: bool) -> None:
    """Apply the table to the dataset ``d`` in place, recursing into sequences. ``result``:
    the object is one the program made; only its dates, times and person names are of the
    source's time or people, and a combined action takes its dummy where it has one, so that
    a Type 1 date stays present."""
    from pydicom.dataset import Dataset

    for elem in list(d):
        kw, vr, act = elem.keyword, elem.VR, action(elem.tag)
        if result and vr not in ("DA", "DT", "TM", "PN", "SQ"):
            continue
        if act is None:
            if vr == "SQ":
                for item in elem.value:
                    _clean(item, result=result)
            elif vr in ("DA", "DT", "TM"):
                elem.value = DUMMY[vr] if result else ""
            elif vr == "PN":
                elem.value = ""
            elif vr == "UI" and kw not in _CLASS_UIDS and elem.value and not result:
                elem.value = _uids(elem.value)
            continue
        if result and vr == "SQ" and act != "X":
            for item in elem.value:
                _clean(item, result=result)
            continue
        if act == "U" or (vr == "UI" and "D" in act):  # a dummy UID: a replacement
            elem.value = _uids(elem.value) if elem.value else elem.value
        elif act == "X" or (act == "X/D" and not result):
            del d[elem.tag]
        elif act == "X/Z" and vr == "SQ":  # Type 3 where it occurs in our objects: removed
            del d[elem.tag]
        elif act in ("Z", "X/Z") or (act in ("Z/D", "X/Z/D") and not result):
            elem.value = [] if vr == "SQ" else ("" if vr not in ("OB", "OW", "UN") else b"")
        elif act == "X/Z/U*":  # a reference: its UIDs replaced, all else by the table
            for item in elem.value:
                _clean_reference(item)
        elif vr == "SQ":  # D on a sequence: a dummy of the same structure
            for item in elem.value:
                _dummy_item(item)
            if not elem.value:
                elem.value = [Dataset()]
        else:  # D, or a combined action resolved to its dummy
            elem.value = _dummy(elem)


# dummies of attributes whose condition (PS3.3) depends on an attribute the table removes
_ORPHANS = {"ClinicalTrialProtocolEthicsCommitteeName":
            ("ClinicalTrialProtocolEthicsCommitteeApprovalNumber",),
            "ContainerIdentifier": ("SpecimenDescriptionSequence",),
            "IssuerOfTheContainerIdentifierSequence": ("SpecimenDescriptionSequence",)}


def _drop_orphans(ds) -> None:
    for kw, needs in _ORPHANS.items():
        if kw in ds and not any(n in ds for n in needs):
            delattr(ds, kw)


def _dummy_item(item) -> None:
    """Every value of a sequence item replaced by a dummy of its VR (UIDs by replacements):
    what a code or a name in it said is gone, the item's structure stays."""
    for elem in list(item):
        if elem.VR == "SQ":
            for sub in elem.value:
                _dummy_item(sub)
        elif elem.VR == "UI":
            if elem.value and elem.keyword not in _CLASS_UIDS:
                elem.value = _uids(elem.value)
        elif elem.value not in (None, "", b""):
            elem.value = _dummy(elem)


def _clean_reference(item) -> None:
    for elem in list(item):
        if elem.VR == "UI" and elem.keyword not in _CLASS_UIDS and elem.value:
            elem.value = _uids(elem.value)
        elif elem.VR == "SQ":
            for sub in elem.value:
                _clean_reference(sub)
        elif elem.VR != "UI":
            del item[elem.tag]


def _uids(value):
    if isinstance(value, str):
        return anonymized_uid(value)
    return [anonymized_uid(v) for v in value]


def _original_identity(ds) -> tuple[str, str]:
    return pseudonym(str(ds.get("PatientID", "") or ""), str(ds.get("PatientName", "") or ""),
                     str(ds.get("PatientBirthDate", "") or ""),
                     str(ds.get("StudyInstanceUID", "") or ""),
                     str(ds.get("IssuerOfPatientID", "") or ""))


def deidentify_dataset(ds):
    """A de-identified copy of a pydicom dataset (a source image's attributes): Table E.1-1
    applied in full, private attributes removed, UIDs replaced through :func:`anonymized_uid`
    (so the SR, the secondary capture and the PDF of one study share their new Study Instance
    UID), the pseudonymous PatientID and PatientName set, and the de-identification
    recorded."""
    pid, name = _original_identity(ds)
    out = copy.deepcopy(ds)
    out.remove_private_tags()
    _clean(out, result=False)
    _drop_orphans(out)
    if getattr(out, "file_meta", None) is not None:
        for kw in ("MediaStorageSOPInstanceUID",):
            if kw in out.file_meta and "SOPInstanceUID" in out:
                out.file_meta.MediaStorageSOPInstanceUID = out.SOPInstanceUID
    out.PatientID, out.PatientName = pid, name
    return mark_deidentified(out)


def deidentify_result(ds):
    """De-identify, in place, an object the program made from a de-identified source: its own
    dates and times (instance creation, content, series, secondary capture, contribution) get
    the table's action (a dummy where the attribute may be required), names of people are
    emptied; the pseudonym and the de-identification record stay. Returns ``ds``."""
    pid, name = ds.get("PatientID"), ds.get("PatientName")
    _clean(ds, result=True)
    if pid is not None:
        ds.PatientID, ds.PatientName = pid, name
    return mark_deidentified(ds)


def mark_deidentified(ds):
    """Record the de-identification in a dataset (PatientIdentityRemoved, method and code)."""
    from pydicom.dataset import Dataset

    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = DEID_METHOD
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = DEID_CODE
    ds.DeidentificationMethodCodeSequence = [code]
    ds.LongitudinalTemporalInformationModified = "REMOVED"
    return ds


# --- free text ------------------------------------------------------------------------------

REMOVED = "[removed]"
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")


def _date_pattern(d: str) -> str | None:
    """A regular expression for a DICOM date (YYYYMMDD) as people write it: numeric with any
    of - . / or space, padded or not, day-month or month-day order, two- or four-digit year,
    compact (19640103, 03011964), or with the month's name or abbreviation and an ordinal
    (3 January 1964, 3rd Jan. 1964, January 3rd, 1964, 03-JAN-1964, 1964 January 3)."""
    if not (d and len(d) == 8 and d.isdigit()):
        return None
    y, m, dd = d[:4], int(d[4:6]), int(d[6:8])
    if not (1 <= m <= 12 and 1 <= dd <= 31):
        return re.escape(d)
    Y = f"(?:{y}|{y[2:]})"
    M = f"0?{m}"
    D = f"0?{dd}"
    s = r"[-./ ]"
    name = _MONTHS[m - 1]
    mon = f"(?:{name}|{name[:3]}\\.?" + ("|Sept\\.?" if m == 9 else "") + ")"
    day = f"{D}(?:st|nd|rd|th)?"
    sep = r"[-.,/\s]{1,3}"
    forms = [f"{D}(?P<a>{s}){M}(?P=a){Y}", f"{M}(?P<b>{s}){D}(?P=b){Y}",
             f"{y}(?P<c>{s}){M}(?P=c){D}", f"{y}{d[4:6]}{d[6:8]}",
             f"{d[6:8]}{d[4:6]}{y}", f"{d[4:6]}{d[6:8]}{y}",
             f"{day}\\.?(?:{sep}of)?{sep}{mon}{sep}{Y}", f"{mon}{sep}{day}{sep}{Y}",
             f"{y}{sep}{mon}{sep}{day}"]
    return "(?:" + "|".join(f"(?:{f})" for f in forms) + ")"


def _folded(word: str) -> set[str]:
    """A name as typed without its accents too (Müller: Muller, Mueller)."""
    out = {word}
    out.add("".join(ch for ch in unicodedata.normalize("NFKD", word)
                    if not unicodedata.combining(ch)))
    out.add(word.translate(str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss",
                                          "Ä": "Ae", "Ö": "Oe", "Ü": "Ue"})))
    return out


def scrub_identifiers(text: str, study) -> tuple[str, int]:
    """(``text`` with the study's identifying values replaced by "[removed]", how many were
    replaced): the patient's name, whole and each part of two letters or more (hyphenated
    parts too, with and without accents), the patient ID, the birth and study dates in the
    usual spellings (:func:`_date_pattern`). Whole words only, any case. For the physician's
    free-text comment in an anonymized report; other identifying words remain the writer's
    responsibility (the export dialog says so)."""
    name = study.patient_name or ""
    words: set[str] = set()
    for part in re.split(r"[\^=,]+", name):
        part = part.strip()
        if len(part) >= 2:
            words |= _folded(part)
        words |= {w for p in re.split(r"[\s\-]+", part) if len(p) >= 2 for w in _folded(p)}
    patterns = [re.escape(w).replace(r"\-", r"[-\s]?").replace(r"\ ", r"[-\s]+")
                for w in sorted(words, key=len, reverse=True)]
    if study.patient_id:
        patterns.insert(0, re.escape(study.patient_id))
    dates = [p for p in (_date_pattern(d) for d in (study.birth_date, study.study_date)) if p]
    count = 0
    # dates first (their digits), then names and the ID, longest first
    for i, p in enumerate(dates + patterns):
        lead = r"(?<![\d.\-/])" if i < len(dates) else r"(?<![^\W_])"
        tail = r"(?![\d]|[./-]\d)" if i < len(dates) else r"(?![^\W_])"
        pattern = re.compile(f"{lead}{p}{tail}", re.IGNORECASE)
        text, n = pattern.subn(REMOVED, text)
        count += n
    return text, count
