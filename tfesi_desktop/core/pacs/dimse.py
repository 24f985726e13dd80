"""DICOM networking with pynetdicom: C-ECHO, C-FIND, C-GET, C-MOVE and C-STORE.

Every wait is bounded (:mod:`.link`: connect, association, each answer, each read; a PDU over
1 MiB is refused unread), there are no retries, and each failure says what happened: nothing
listening, no answer, the association refused and why (the called or calling AE title), the
PACS's status, a full disk here. Retrievals stage into a private folder and land in the target
only when complete (:class:`~.cache.Staging`) and checked against what the PACS announced; only
instances of the requested study (and series), from the PACS asked, are stored (docs/
architecture.md, Hospital integration). ``cancel`` (a callable) aborts the association.
"""

from __future__ import annotations

import errno
import logging
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.uid import (
    JPEG2000,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)
from pynetdicom import AE, build_role, evt
from pynetdicom.presentation import StoragePresentationContexts, build_context
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from ..errors import Cancelled, TfesiError
from ..safe_text import one_value, printable
from .cache import Refused, Staging, is_uid
from .link import (
    ACSE_TIMEOUT,
    CONNECT_TIMEOUT,
    DIMSE_TIMEOUT,
    MAX_PDU,
    NETWORK_TIMEOUT,
    Guard,
    addresses_of,
    local_address_towards,
    tls_context,
)
from .nodes import DEFAULT_AET, PacsError, PacsNode, check_aet

log = logging.getLogger(__name__)

TRANSFER_SYNTAXES = [
    ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless, JPEGLosslessSV1, JPEGLossless,
    JPEG2000Lossless, JPEGLSLossless, JPEGBaseline8Bit, JPEGExtended12Bit, JPEG2000,
    JPEGLSNearLossless, DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian,
]
# The storage SOP classes a retrieval accepts (C-GET can negotiate at most 127 besides the query
# model): images a cervical MRI study holds, and the objects this program sends back.
RETRIEVE_SOP_CLASSES = [
    "1.2.840.10008.5.1.4.1.1.4",  # MR Image
    "1.2.840.10008.5.1.4.1.1.4.1",  # Enhanced MR Image
    "1.2.840.10008.5.1.4.1.1.4.3",  # Enhanced MR Color Image
    "1.2.840.10008.5.1.4.1.1.2",  # CT Image
    "1.2.840.10008.5.1.4.1.1.2.1",  # Enhanced CT Image
    "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture Image
    "1.2.840.10008.5.1.4.1.1.7.2",  # Multi-frame Grayscale Byte SC
    "1.2.840.10008.5.1.4.1.1.7.3",  # Multi-frame Grayscale Word SC
    "1.2.840.10008.5.1.4.1.1.7.4",  # Multi-frame True Color SC
    "1.2.840.10008.5.1.4.1.1.88.11",  # Basic Text SR
    "1.2.840.10008.5.1.4.1.1.88.22",  # Enhanced SR
    "1.2.840.10008.5.1.4.1.1.88.33",  # Comprehensive SR
    "1.2.840.10008.5.1.4.1.1.88.34",  # Comprehensive 3D SR
    "1.2.840.10008.5.1.4.1.1.88.59",  # Key Object Selection
    "1.2.840.10008.5.1.4.1.1.104.1",  # Encapsulated PDF
    "1.2.840.10008.5.1.4.1.1.11.1",  # Grayscale Softcopy Presentation State
    "1.2.840.10008.5.1.4.1.1.66.4",  # Segmentation
    "1.2.840.10008.5.1.4.1.1.30",  # Parametric Map
]
_STATUS = {
    0xA700: "the PACS is out of resources", 0xA701: "the PACS could not count the matches",
    0xA702: "the PACS could not send the images", 0xA801: "the PACS does not know the "
    "destination AE title (add this program to the PACS's list of DICOM nodes)",
    0xA900: "the request did not match the SOP class", 0xC000: "the PACS cannot process the "
    "request", 0x0122: "the PACS does not support this kind of request",
    0x0124: "the PACS does not allow this request", 0x0211: "unknown SOP class",
}

Progress = Callable[[int, int], None] | None
Cancel = Callable[[], bool] | None


@dataclass
class Retrieved:
    """What a retrieval brought: the study folder, how many instances, how long it took, and
    notes (instances refused: another study, another sender, a duplicate)."""

    path: Path
    instances: int
    seconds: float
    study_uid: str
    notes: list[str] = field(default_factory=list)


def _ae(calling_aet: str) -> AE:
    ae = AE(ae_title=check_aet(calling_aet, "calling AE title"))
    ae.connection_timeout = CONNECT_TIMEOUT
    ae.acse_timeout = ACSE_TIMEOUT
    ae.dimse_timeout = DIMSE_TIMEOUT
    ae.network_timeout = NETWORK_TIMEOUT
    ae.maximum_pdu_size = MAX_PDU
    return ae


# A-ASSOCIATE-RJ (PS3.8 9.3.4): (source, diagnostic) -> what it means
_REJECTED = {
    (1, 3): "it does not know this program's (calling) AE title {calling!r}: add it to the "
            "PACS's list of DICOM nodes",
    (1, 7): "its own (called) AE title is not {called!r}: check the AE title of the node",
    (1, 2): "it does not support the DICOM application context",
    (1, 1): "it gave no reason: check the called AE title {called!r} and the calling AE title "
            "{calling!r} in the PACS's configuration",
    (2, 2): "it does not support the DICOM protocol version",
    (3, 1): "it is busy (temporary congestion): try again later",
    (3, 2): "it has too many associations open (local limit exceeded): try again later",
}


def _why_unreachable(node: PacsNode) -> str | None:
    """Why no association came up: nothing listening, or no answer; None when the port
    does answer (the peer then ended the association itself)."""
    try:
        with socket.create_connection((node.host, node.port), timeout=CONNECT_TIMEOUT):
            pass
    except socket.gaierror:
        return f"the host name {node.host!r} is unknown"
    except ConnectionRefusedError:
        return ("nothing is listening there (connection refused): the PACS is not running, "
                "or the port is wrong")
    except TimeoutError:
        return (f"no answer within {CONNECT_TIMEOUT:.0f} s: the PACS is down, "
                "unreachable from this computer, or blocked by a firewall")
    except OSError as e:
        return f"the network says: {e.strerror or e}"
    return None


def _rejection(assoc, node: PacsNode, calling: str) -> str:
    prim = getattr(assoc.acceptor, "primitive", None)
    source, diag = getattr(prim, "result_source", None), getattr(prim, "diagnostic", None)
    text = _REJECTED.get((source, diag)) or ("it gave the reason code {code}: check the called "
                                             "AE title {called!r} and the calling AE title "
                                             "{calling!r} in the PACS's configuration")
    return text.format(called=node.aet, calling=calling, code=f"{source}/{diag}")


@contextmanager
def associate(node: PacsNode, contexts: Sequence, *, calling_aet: str = DEFAULT_AET,
              roles=None, handlers=None, what: str = "talk to"):
    """An established association with ``node`` (TLS when the node asks for it), guarded by
    :class:`.link.Guard`; :class:`PacsError` with the reason if none. Yields the association;
    its guard is ``assoc.tfesi_guard``."""
    if not node.dimse:
        raise PacsError(f"The PACS {node} has no DIMSE address (AET@HOST:PORT).")
    where = f"{node.aet}@{node.host}:{node.port}"
    # look first: a dead PACS is told at once (and pynetdicom 3.0.4 leaks the socket of a
    # refused connection)
    why = _why_unreachable(node)
    if why is not None:
        raise PacsError(f"Cannot reach the PACS {where}: {why}.")
    ctx = tls_context(node)
    ae = _ae(calling_aet)
    for cx in contexts:
        if isinstance(cx, str):
            ae.add_requested_context(cx, TRANSFER_SYNTAXES)
        else:
            ae.add_requested_context(cx.abstract_syntax, cx.transfer_syntax)
    guard = Guard(f"the PACS {where}")
    guard.expect(CONNECT_TIMEOUT + ACSE_TIMEOUT + 1.0,
                 f"the PACS {where} did not answer the association request within "
                 f"{CONNECT_TIMEOUT + ACSE_TIMEOUT:.0f} s")
    try:
        assoc = ae.associate(node.host, node.port, ae_title=node.aet, ext_neg=roles,
                             evt_handlers=[*guard.handlers(), *(handlers or [])],
                             tls_args=(ctx, node.host) if ctx else None)
    except (OSError, ValueError, RuntimeError) as e:
        guard.cut()
        guard.close()
        ae.shutdown()
        raise PacsError(f"Cannot {what} the PACS {where}: {e}.") from e
    guard.expect(None)
    if not assoc.is_established:
        guard.cut()
        guard.close()
        ae.shutdown()
        if assoc.is_rejected:
            raise PacsError(f"The PACS {where} refused the association: "
                            f"{_rejection(assoc, node, calling_aet)}.")
        if guard.reason:
            raise PacsError(f"{guard.reason[0].upper()}{guard.reason[1:]}.")
        if ctx is not None:
            raise PacsError(f"No TLS connection with the PACS {where}: its certificate is not "
                            "signed by the authority set for this node (or names another "
                            "host), or it does not speak TLS on this port.")
        why = _why_unreachable(node)
        if why is None:
            raise PacsError(f"The PACS {where} accepted the connection but did not answer the "
                            f"association request within {ACSE_TIMEOUT:.0f} s, or ended it "
                            "without a reason: it may not be a DICOM port, or it may need "
                            "TLS.")
        raise PacsError(f"Cannot reach the PACS {where}: {why}.")
    assoc.tfesi_guard = guard
    try:
        yield assoc
    finally:
        try:
            if assoc.is_established:
                guard.expect(ACSE_TIMEOUT + 1.0, "no answer to the release")
                assoc.release()
        finally:
            guard.cut()
            guard.close()
            ae.shutdown()


def _status_code(status: Dataset | None) -> int | None:
    return None if status is None or "Status" not in status else int(status.Status)


def _failure(code: int | None, node: PacsNode, what: str, assoc=None,
             status_comment: str | None = None) -> PacsError:
    guard = getattr(assoc, "tfesi_guard", None)
    if code is None and guard is not None and guard.reason:
        return PacsError(f"The connection was given up when we {what}: {guard.reason}.")
    if code is None and assoc is not None and assoc.is_aborted and (
            guard is None or guard.peer_aborted):
        return PacsError(f"The PACS {node.aet}@{node.host}:{node.port} broke off the "
                         f"association when we {what}: it may not allow this request from AE "
                         f"title {assoc.ae.ae_title!r} (check the PACS's list of DICOM nodes).")
    if code is None:
        return PacsError(f"The PACS {node.aet}@{node.host}:{node.port} stopped answering while "
                         f"we {what}: no reply within {DIMSE_TIMEOUT:.0f} s, or it closed the "
                         "connection.")
    meaning = _STATUS.get(code) or _STATUS.get(code & 0xFF00) or "failure"
    comment = printable(str(status_comment or "").strip())[:200]
    if comment:
        meaning += f": {comment}"
    return PacsError(f"The PACS {node.aet}@{node.host}:{node.port} answered 0x{code:04X} "
                     f"({meaning}) when we {what}.")


# --- C-ECHO ------------------------------------------------------------------------------------

def echo(node: PacsNode, *, calling_aet: str = DEFAULT_AET) -> float:
    """C-ECHO; the round trip in seconds (association included)."""
    t0 = time.perf_counter()
    with associate(node, [Verification], calling_aet=calling_aet, what="verify") as assoc:
        status = assoc.send_c_echo()
        code = _status_code(status)
        if code != 0x0000:
            raise _failure(code, node, "sent a C-ECHO", assoc)
    return time.perf_counter() - t0


# --- C-FIND ------------------------------------------------------------------------------------

STUDY_KEYS = {
    "PatientName": "patient_name", "PatientID": "patient_id", "PatientBirthDate": "birth_date",
    "PatientSex": "sex", "StudyInstanceUID": "study_uid", "StudyDate": "study_date",
    "StudyTime": "study_time", "StudyDescription": "description",
    "AccessionNumber": "accession", "ModalitiesInStudy": "modalities",
    "NumberOfStudyRelatedSeries": "series", "NumberOfStudyRelatedInstances": "instances",
}
SERIES_KEYS = {
    "StudyInstanceUID": "study_uid", "SeriesInstanceUID": "series_uid", "Modality": "modality",
    "SeriesNumber": "series_number", "SeriesDescription": "description",
    "NumberOfSeriesRelatedInstances": "instances",
}
PATIENT_KEYS = {
    "PatientName": "patient_name", "PatientID": "patient_id", "PatientBirthDate": "birth_date",
    "PatientSex": "sex", "NumberOfPatientRelatedStudies": "studies",
}


_COUNTS = ("series", "instances", "studies", "series_number")


def _as_dict(ds: Dataset, keys: dict[str, str]) -> dict:
    """An answer as plain values: texts with control characters escaped (they come from the
    network: :func:`~..safe_text.printable`), several values of a single-valued attribute
    joined by backslashes, counts as whole numbers (None when unusable), ModalitiesInStudy as a
    list."""
    out = {}
    for kw, name in keys.items():
        try:
            raw = ds.get(kw)
        except Exception:  # noqa: BLE001 - a value pydicom cannot decode counts as absent
            raw = None
        if name == "modalities":
            vals = raw if isinstance(raw, MultiValue | list | tuple) else [raw]
            v = [printable(x) for x in vals if x not in (None, "")] or None
        elif name in _COUNTS:
            first = raw[0] if isinstance(raw, MultiValue | list | tuple) and raw else raw
            try:
                v = int(str(first).strip()) if first not in (None, "") else None
            except (TypeError, ValueError):
                v = None
            if v is not None and not 0 <= v < 10**9:
                v = None
        else:
            text = one_value(raw)
            v = None if text is None else printable(text)
        out[name] = v
    return out


def find(node: PacsNode, level: str, query: dict, *, calling_aet: str = DEFAULT_AET,
         cancel: Cancel = None) -> list[dict]:
    """C-FIND at ``level`` (PATIENT, STUDY or SERIES) with ``query`` (keyword: value; the
    returned keys are added empty). A list of plain dicts (see ``*_KEYS``)."""
    level = level.upper()
    keys = {"PATIENT": PATIENT_KEYS, "STUDY": STUDY_KEYS, "SERIES": SERIES_KEYS}[level]
    model = (PatientRootQueryRetrieveInformationModelFind if level == "PATIENT"
             else StudyRootQueryRetrieveInformationModelFind)
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for kw in keys:
        setattr(ds, kw, "")
    for kw, v in query.items():
        if v not in (None, ""):
            setattr(ds, kw, v)
    rows = []
    with associate(node, [model], calling_aet=calling_aet, what="query") as assoc:
        for status, identifier in assoc.send_c_find(ds, model):
            code = _status_code(status)
            if code in (0xFF00, 0xFF01):
                if identifier is not None:
                    rows.append(_as_dict(identifier, keys))
                if cancel and cancel():
                    assoc.abort()
                    raise Cancelled()
            elif code == 0x0000:
                break
            else:
                raise _failure(code, node, "searched", assoc)
    return rows


def find_studies(node: PacsNode, *, patient_id=None, patient_name=None, study_date=None,
                 modality=None, accession=None, study_uid=None,
                 calling_aet: str = DEFAULT_AET, cancel: Cancel = None) -> list[dict]:
    """Studies matching all the given filters, newest first. ``study_date``: ``YYYYMMDD``,
    a range ``FROM-TO`` (either end may be empty), dashes inside dates allowed."""
    rows = find(node, "STUDY", {
        "PatientID": patient_id, "PatientName": patient_name,
        "StudyDate": parse_date_range(study_date) if study_date else None,
        "ModalitiesInStudy": modality, "AccessionNumber": accession,
        "StudyInstanceUID": study_uid}, calling_aet=calling_aet, cancel=cancel)
    rows.sort(key=lambda r: (r["study_date"] or "", r["study_time"] or ""), reverse=True)
    return rows


def find_series(node: PacsNode, study_uid: str, *, modality=None, series_uid=None,
                calling_aet: str = DEFAULT_AET) -> list[dict]:
    rows = find(node, "SERIES", {"StudyInstanceUID": study_uid, "Modality": modality,
                                 "SeriesInstanceUID": series_uid}, calling_aet=calling_aet)
    return sorted(rows, key=lambda r: (r["series_number"] is None, r["series_number"] or 0))


def find_patients(node: PacsNode, *, patient_id=None, patient_name=None,
                  calling_aet: str = DEFAULT_AET) -> list[dict]:
    return find(node, "PATIENT", {"PatientID": patient_id, "PatientName": patient_name},
                calling_aet=calling_aet)


def parse_date_range(text: str) -> str:
    """``2020-01-01``, ``20200101``, ``20200101-20201231``, ``2020-01-01-2020-12-31``,
    ``20200101-`` or ``-20201231`` to a DICOM date or date range (PacsError otherwise)."""
    import re

    d = r"(\d{4}-?\d{2}-?\d{2})"
    t = text.strip()
    m = re.fullmatch(rf"{d}?(?:\s*(?:-|\.\.|/)\s*{d}?)?", t)
    if not t or not m or (m.group(1) is None and m.group(2) is None):
        raise PacsError(f"{text!r} is not a date or date range: write YYYYMMDD, or FROM-TO "
                        "(for example 20240101-20241231; either end may be left out).")
    a, b = (g.replace("-", "") if g else "" for g in m.groups())
    if re.fullmatch(rf"{d}", t):
        return a
    return f"{a}-{b}"


# --- C-GET and C-MOVE ---------------------------------------------------------------------------

def _expected(node, study_uid, series_uid, calling_aet) -> int:
    """How many instances the retrieval should bring (0 if the PACS does not say); PacsError
    when the study or series is not on the PACS. Answers about other studies do not count."""
    if series_uid:
        rows = [r for r in find_series(node, study_uid, series_uid=series_uid,
                                       calling_aet=calling_aet)
                if r.get("series_uid") == series_uid and r.get("study_uid") in (study_uid, None)]
        if not rows:
            raise PacsError(f"The series {series_uid} of study {study_uid} is not on the PACS "
                            f"{node.aet}@{node.host}:{node.port}.")
    else:
        rows = [r for r in find_studies(node, study_uid=study_uid, calling_aet=calling_aet)
                if r.get("study_uid") == study_uid]
        if not rows:
            raise PacsError(f"The study {study_uid} is not on the PACS "
                            f"{node.aet}@{node.host}:{node.port}.")
    return max(r.get("instances") or 0 for r in rows)


def check_uids(study_uid: str, series_uid: str | None) -> None:
    """PacsError unless the UIDs asked for are valid UIDs."""
    for what, uid in (("Study", study_uid), ("Series", series_uid)):
        if uid is not None and not is_uid(uid):
            raise PacsError(f"{uid!r} is not a valid {what} Instance UID.")


def _identifier(study_uid: str, series_uid: str | None) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "SERIES" if series_uid else "STUDY"
    ds.StudyInstanceUID = study_uid
    if series_uid:
        ds.SeriesInstanceUID = series_uid
    return ds


STORE_REFUSED = 0xC000  # C-STORE "cannot understand": not an instance we asked for
STORE_OUT_OF_RESOURCES = 0xA700


class _Receiver:
    """The C-STORE handler of a retrieval: stores each instance of the requested study (and
    series) sent by the PACS asked (``senders``: its AE title and addresses; None for C-GET,
    whose instances come on our own association), refuses the rest with a status and a note."""

    def __init__(self, staging: Staging, study_uid: str, series_uid: str | None, total: int,
                 progress: Progress, cancel: Cancel, senders: tuple[str, set[str]] | None = None):
        self.staging, self.study_uid, self.series_uid = staging, study_uid, series_uid
        self.total, self.progress, self.cancel = total, progress, cancel
        self.senders = senders
        self.error: str | None = None
        self.refused: dict[str, int] = {}  # why -> how many
        self.duplicates = 0

    def _refuse(self, why: str) -> int:
        self.refused[why] = self.refused.get(why, 0) + 1
        log.warning("a retrieved instance was refused: %s", why)
        return STORE_REFUSED

    def notes(self) -> list[str]:
        out = [f"{n} instance{'s' if n > 1 else ''} refused: {why}."
               for why, n in sorted(self.refused.items())]
        if self.duplicates:
            out.append(f"{self.duplicates} instances were sent twice and stored once.")
        return out

    def __call__(self, event) -> int:
        if self.cancel and self.cancel():
            return STORE_OUT_OF_RESOURCES  # refuse the rest; the requesting side aborts
        if self.senders is not None:
            aet, addresses = self.senders
            req = event.assoc.requestor
            if str(req.ae_title).strip() != aet or req.address not in addresses:
                return self._refuse(f"sent by {printable(str(req.ae_title).strip())!s} from "
                                    f"{req.address}, not by the PACS asked ({aet})")
        try:
            ds = event.dataset
            study = str(ds.get("StudyInstanceUID", "") or "")
            series = str(ds.get("SeriesInstanceUID", "") or "")
            sop = ds.get("SOPInstanceUID", "")
        except Exception:  # noqa: BLE001 - an undecodable dataset is refused, not fatal
            return self._refuse("its header cannot be read")
        if study != self.study_uid:
            return self._refuse("it belongs to another study, not the one asked for")
        if self.series_uid and series != self.series_uid:
            return self._refuse("it belongs to another series, not the one asked for")
        try:
            written = self.staging.write(series, sop, event.encoded_dataset(include_meta=True))
        except Refused as e:
            return self._refuse(str(e))
        except OSError as e:
            if e.errno == errno.ENOSPC:
                self.error = ("the disk of this computer is full (no space left where the "
                              f"images are staged, {self.staging.path.parent})")
            else:
                self.error = f"an instance could not be written here ({e.strerror or e})"
            return STORE_OUT_OF_RESOURCES
        if written is None:
            self.duplicates += 1
        elif self.progress:
            done = self.staging.count
            self.progress(done, max(self.total, done))
        return 0x0000


def _drain(responses: Iterable, assoc, node: PacsNode, cancel: Cancel, what: str) -> Dataset:
    """Consume C-GET/C-MOVE responses until the final one; abort on cancel."""
    for status, _ in responses:
        if cancel and cancel():
            assoc.abort()
            raise Cancelled("Retrieval cancelled; nothing was imported.")
        code = _status_code(status)
        if code in (0xFF00, 0xFF01):
            continue
        if code in (0x0000, 0xB000):
            return status
        raise _failure(code, node, what, assoc, status.get("ErrorComment"))
    raise _failure(None, node, what, assoc)


def _count(status: Dataset, keyword: str) -> int:
    try:
        return max(int(status.get(keyword, 0) or 0), 0)
    except (TypeError, ValueError):
        return 0


def _check_final(status: Dataset, rec: _Receiver, node: PacsNode, cancel: Cancel) -> None:
    """Complete means: no failure here, every instance the PACS announced (its C-FIND count and
    its final count of completed sub-operations) arrived, and no failure there beyond the
    instances this program refused."""
    if cancel and cancel():
        raise Cancelled("Retrieval cancelled; nothing was imported.")
    where = f"{node.aet}@{node.host}:{node.port}"
    got = rec.staging.count
    if rec.error:
        raise PacsError(f"The retrieval from {where} failed: {rec.error}; {got} instances had "
                        "arrived, nothing was imported.")
    refused = sum(rec.refused.values())
    failed = max(_count(status, "NumberOfFailedSuboperations") - refused, 0)
    completed = _count(status, "NumberOfCompletedSuboperations")
    announced = max(rec.total, completed - rec.duplicates)
    if got == 0 and refused:
        raise PacsError(f"The PACS {where} sent no images of this study ("
                        + "; ".join(rec.notes()) + "); nothing was imported.")
    if failed or got < announced:
        code = _status_code(status)
        said = "success" if code == 0 else f"0x{code:04X}" if code is not None else "failure"
        raise PacsError(f"The retrieval from {where} was incomplete: the PACS announced "
                        f"{announced} instances, {got} arrived"
                        + (f", {failed} failed on its side" if failed else "")
                        + f" (it reported {said}); nothing was imported.")
    if got == 0:
        raise PacsError(f"The PACS {where} sent no images of this study; nothing was "
                        "imported.")


def retrieve(node: PacsNode, study_uid: str, dest: str | Path, *, series_uid: str | None = None,
             method: str = "get", move_port: int = 11113, move_host: str | None = None,
             calling_aet: str = DEFAULT_AET, progress: Progress = None,
             cancel: Cancel = None) -> Retrieved:
    """Retrieve a study (or one series) into the folder ``dest`` (created, or added to), by
    C-GET, or by C-MOVE to a storage SCP this call runs on ``move_host:move_port`` (default: the
    address of the interface that reaches the PACS) under ``calling_aet`` (the PACS must know
    that AE title with this address and port). All or nothing: :class:`Cancelled` or
    :class:`PacsError` leaves ``dest`` as it was."""
    if method not in ("get", "move"):
        raise TfesiError(f"Unknown retrieval method {method!r} (get or move).")
    check_uids(study_uid, series_uid)
    t0 = time.perf_counter()
    total = _expected(node, study_uid, series_uid, calling_aet)
    if progress:
        progress(0, total)
    with Staging(dest) as staging:
        ident = _identifier(study_uid, series_uid)
        rec = _Receiver(staging, study_uid, series_uid, total, progress, cancel,
                        senders=(node.aet, addresses_of(node.host)) if method == "move" else None)
        try:
            if method == "get":
                final = _get(node, ident, rec, calling_aet, cancel)
            else:
                final = _move(node, ident, rec, move_host or local_address_towards(
                    node.host, node.port), move_port, calling_aet, cancel)
        except PacsError:
            # the PACS's failure may follow from what happened here (a full disk, every
            # instance refused): say that first
            if rec.error or (rec.refused and staging.count == 0):
                _check_final(Dataset(), rec, node, cancel)
            raise
        _check_final(final, rec, node, cancel)
        staging.commit()
        n = staging.count
    return Retrieved(Path(dest), n, time.perf_counter() - t0, study_uid, rec.notes())


def _get(node, ident, rec, calling_aet, cancel) -> Dataset:
    contexts = [build_context(StudyRootQueryRetrieveInformationModelGet)] + [
        build_context(uid, TRANSFER_SYNTAXES) for uid in RETRIEVE_SOP_CLASSES]
    roles = [build_role(uid, scp_role=True) for uid in RETRIEVE_SOP_CLASSES]
    with associate(node, contexts, calling_aet=calling_aet, roles=roles,
                   handlers=[(evt.EVT_C_STORE, rec)], what="retrieve from") as assoc:
        return _drain(assoc.send_c_get(ident, StudyRootQueryRetrieveInformationModelGet),
                      assoc, node, cancel, "retrieved (C-GET)")


def _guard_incoming(event) -> None:
    Guard(f"the sender at {event.address[0]}").on_open(event)


def _move(node, ident, rec, host, port, calling_aet, cancel) -> Dataset:
    scp = _ae(calling_aet)
    scp.supported_contexts = [build_context(cx.abstract_syntax, TRANSFER_SYNTAXES)
                              for cx in StoragePresentationContexts]
    scp.require_calling_aet = [node.aet]  # an association from another AE title is rejected
    try:
        # every association of the receiver is guarded too: a sender that drips or announces
        # a huge PDU cannot hold the retrieval (or its shutdown)
        server = scp.start_server((host, port), block=False,
                                  evt_handlers=[(evt.EVT_C_STORE, rec),
                                                (evt.EVT_CONN_OPEN, _guard_incoming)])
    except OSError as e:
        raise PacsError(f"Cannot receive images on {host} port {port} ({e.strerror}): another "
                        "program uses it, or this computer has no such address; choose another "
                        "port (--move-port) or address (--move-host).") from e
    try:
        with associate(node, [StudyRootQueryRetrieveInformationModelMove],
                       calling_aet=calling_aet, what="retrieve from") as assoc:
            try:
                return _drain(assoc.send_c_move(ident, calling_aet,
                                                StudyRootQueryRetrieveInformationModelMove),
                              assoc, node, cancel, f"asked it to send the study to "
                              f"{calling_aet} at {host} port {port} (C-MOVE)")
            except PacsError as e:
                raise PacsError(f"{e.message} Does the PACS know the move destination "
                                f"{calling_aet!r} with the address {host} and port {port}? Or "
                                "use C-GET.") from e
    finally:
        server.shutdown()
        scp.shutdown()


# --- C-STORE -----------------------------------------------------------------------------------

def _read_for_sending(files: Sequence[str | Path]) -> list[Dataset]:
    out = []
    for f in files:
        try:
            ds = dcmread(f)
        except (OSError, InvalidDicomError) as e:
            raise TfesiError(f"Cannot send this file: it is not readable DICOM ({e}).", f) from e
        if "SOPClassUID" not in ds or "SOPInstanceUID" not in ds:
            raise TfesiError("Cannot send this file: it has no SOP Class/Instance UID.", f)
        out.append(ds)
    return out


def store(files: Sequence[str | Path], node: PacsNode, *, calling_aet: str = DEFAULT_AET,
          progress: Progress = None, cancel: Cancel = None) -> int:
    """C-STORE each file to ``node``; the number stored. PacsError naming the files the PACS
    refused (the others are stored: a PACS keeps whole instances only)."""
    datasets = _read_for_sending(files)
    if not datasets:
        raise TfesiError("No files to send.")
    pairs = {}
    for ds in datasets:
        ts = ds.file_meta.TransferSyntaxUID
        pairs.setdefault(ds.SOPClassUID, [])
        for t in (ts, ExplicitVRLittleEndian, ImplicitVRLittleEndian):
            if t not in pairs[ds.SOPClassUID]:
                pairs[ds.SOPClassUID].append(t)
    if len(pairs) > 127:
        raise TfesiError("Too many kinds of DICOM objects to send at once (more than 127).")
    contexts = [build_context(uid, ts) for uid, ts in pairs.items()]
    refused = []
    with associate(node, contexts, calling_aet=calling_aet, what="send to") as assoc:
        for i, (f, ds) in enumerate(zip(files, datasets, strict=True)):
            if cancel and cancel():
                raise Cancelled(f"Sending cancelled after {i} of {len(files)} files.")
            status = assoc.send_c_store(ds)
            code = _status_code(status)
            if code is None:
                raise _failure(None, node, f"sent {Path(f).name}", assoc)
            if code != 0x0000 and (code & 0xF000) != 0xB000:
                refused.append(f"{Path(f).name} (0x{code:04X})")
            if progress:
                progress(i + 1, len(files))
    if refused:
        raise PacsError(f"The PACS {node.aet}@{node.host}:{node.port} refused "
                        f"{len(refused)} of {len(files)} files: {', '.join(refused)}.")
    return len(files)
