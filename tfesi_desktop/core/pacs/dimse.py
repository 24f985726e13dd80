"""DICOM networking with pynetdicom: C-ECHO, C-FIND, C-GET, C-MOVE and C-STORE.

Every call is bounded in time (:data:`CONNECT_TIMEOUT` to connect and to negotiate; a PACS that
stops answering is given up after :data:`DIMSE_TIMEOUT`), so a dead PACS answers within 10 s with
one sentence, never a hang. Retrievals stage into a private folder and land in the target only
when complete (:class:`~.cache.Staging`); ``cancel`` (a callable) aborts the association.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
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
from .cache import Staging
from .nodes import DEFAULT_AET, PacsError, PacsNode, check_aet

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0  # TCP connect, then association negotiation (each)
DIMSE_TIMEOUT = 10.0  # longest wait for one answer of an established association

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
    """What a retrieval brought: the study folder, how many instances, how long it took."""

    path: Path
    instances: int
    seconds: float
    study_uid: str


def _ae(calling_aet: str) -> AE:
    ae = AE(ae_title=check_aet(calling_aet, "calling AE title"))
    ae.connection_timeout = CONNECT_TIMEOUT
    ae.acse_timeout = CONNECT_TIMEOUT
    ae.dimse_timeout = DIMSE_TIMEOUT
    ae.network_timeout = DIMSE_TIMEOUT
    return ae


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


@contextmanager
def associate(node: PacsNode, contexts: Sequence, *, calling_aet: str = DEFAULT_AET,
              roles=None, handlers=None, what: str = "talk to"):
    """An established association with ``node``; :class:`PacsError` with the reason if none."""
    if not node.dimse:
        raise PacsError(f"The PACS {node} has no DIMSE address (AET@HOST:PORT).")
    where = f"{node.aet}@{node.host}:{node.port}"
    # look first: a dead PACS is told at once (and pynetdicom 3.0.4 leaks the socket of a
    # refused connection)
    why = _why_unreachable(node)
    if why is not None:
        raise PacsError(f"Cannot reach the PACS {where}: {why}.")
    ae = _ae(calling_aet)
    for cx in contexts:
        if isinstance(cx, str):
            ae.add_requested_context(cx, TRANSFER_SYNTAXES)
        else:
            ae.add_requested_context(cx.abstract_syntax, cx.transfer_syntax)
    try:
        assoc = ae.associate(node.host, node.port, ae_title=node.aet, ext_neg=roles,
                             evt_handlers=handlers)
    except (OSError, ValueError, RuntimeError) as e:
        raise PacsError(f"Cannot {what} the PACS {node.aet}@{node.host}:{node.port}: {e}.") from e
    if not assoc.is_established:
        if assoc.is_rejected:
            raise PacsError(f"The PACS {where} refused the association: it does not accept the "
                            f"called AE title {node.aet!r} or the calling AE title "
                            f"{calling_aet!r} (check both in the PACS's configuration).")
        why = _why_unreachable(node)
        if why is None:
            raise PacsError(f"The PACS {where} accepted the connection but ended the DICOM "
                            f"association: it may not accept requests from AE title "
                            f"{calling_aet!r}, or it is not a DICOM port.")
        raise PacsError(f"Cannot reach the PACS {where}: {why}.")
    try:
        yield assoc
    finally:
        if assoc.is_established:
            assoc.release()
        ae.shutdown()


def _status_code(status: Dataset | None) -> int | None:
    return None if status is None or "Status" not in status else int(status.Status)


def _failure(code: int | None, node: PacsNode, what: str, assoc=None,
             status_comment: str | None = None) -> PacsError:
    if code is None and assoc is not None and assoc.is_aborted:
        return PacsError(f"The PACS {node.aet}@{node.host}:{node.port} broke off the "
                         f"association when we {what}: it may not allow this request from AE "
                         f"title {assoc.ae.ae_title!r} (check the PACS's list of DICOM nodes).")
    if code is None:
        return PacsError(f"The PACS {node.aet}@{node.host}:{node.port} stopped answering while "
                         f"we {what} (no reply within {DIMSE_TIMEOUT:.0f} s, or the association "
                         "was aborted).")
    meaning = _STATUS.get(code) or _STATUS.get(code & 0xFF00) or "failure"
    comment = str(status_comment or "").strip()
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


def _plain(v):
    if v is None or v == "":
        return None
    if isinstance(v, MultiValue | list | tuple):
        return [str(x) for x in v]
    if isinstance(v, int | float | str):
        return v
    return str(v)


def _as_dict(ds: Dataset, keys: dict[str, str]) -> dict:
    out = {}
    for kw, name in keys.items():
        v = _plain(ds.get(kw))
        if name == "modalities" and isinstance(v, str):
            v = [v]
        if name in ("series", "instances", "studies", "series_number") and v is not None:
            try:
                v = int(v)
            except (TypeError, ValueError):
                v = None
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
    when the study or series is not on the PACS."""
    if series_uid:
        rows = find_series(node, study_uid, series_uid=series_uid, calling_aet=calling_aet)
        if not rows:
            raise PacsError(f"The series {series_uid} of study {study_uid} is not on the PACS "
                            f"{node.aet}@{node.host}:{node.port}.")
    else:
        rows = find_studies(node, study_uid=study_uid, calling_aet=calling_aet)
        if not rows:
            raise PacsError(f"The study {study_uid} is not on the PACS "
                            f"{node.aet}@{node.host}:{node.port}.")
    return sum(r.get("instances") or 0 for r in rows)


def _identifier(study_uid: str, series_uid: str | None) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "SERIES" if series_uid else "STUDY"
    ds.StudyInstanceUID = study_uid
    if series_uid:
        ds.SeriesInstanceUID = series_uid
    return ds


class _Receiver:
    """The C-STORE handler of a retrieval: writes each instance into the staging folder."""

    def __init__(self, staging: Staging, study_uid: str, total: int, progress: Progress,
                 cancel: Cancel):
        self.staging, self.study_uid, self.total = staging, study_uid, total
        self.progress, self.cancel = progress, cancel
        self.lock = threading.Lock()
        self.error: str | None = None

    def __call__(self, event) -> int:
        if self.cancel and self.cancel():
            return 0xA700  # refuse the rest; the requesting side aborts
        try:
            ds = event.dataset
            if str(ds.get("StudyInstanceUID", "")) != self.study_uid:
                return 0xA900  # not what we asked for
            with self.lock:
                self.staging.write(ds.SeriesInstanceUID, ds.SOPInstanceUID,
                                   event.encoded_dataset(include_meta=True))
                done = self.staging.count
            if self.progress:
                self.progress(done, max(self.total, done))
            return 0x0000
        except Exception as e:  # noqa: BLE001 - reported after the retrieval, not lost
            self.error = f"{type(e).__name__}: {e}"
            log.warning("could not store a retrieved instance: %s", self.error)
            return 0xA700


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


def _check_final(status: Dataset, rec: _Receiver, node: PacsNode, cancel: Cancel) -> None:
    if cancel and cancel():
        raise Cancelled("Retrieval cancelled; nothing was imported.")
    failed = int(status.get("NumberOfFailedSuboperations", 0) or 0)
    if rec.error or failed or int(status.Status) == 0xB000:
        raise PacsError(f"The retrieval from {node.aet}@{node.host}:{node.port} was incomplete "
                        f"({failed} instances failed"
                        + (f"; {rec.error}" if rec.error else "") + "); nothing was imported.")
    if rec.staging.count == 0:
        raise PacsError(f"The PACS {node.aet}@{node.host}:{node.port} sent no images for this "
                        "study; nothing was imported.")


def retrieve(node: PacsNode, study_uid: str, dest: str | Path, *, series_uid: str | None = None,
             method: str = "get", move_port: int = 11113, calling_aet: str = DEFAULT_AET,
             progress: Progress = None, cancel: Cancel = None) -> Retrieved:
    """Retrieve a study (or one series) into the folder ``dest`` (created, or added to), by
    C-GET, or by C-MOVE to a storage SCP this call runs on ``move_port`` under ``calling_aet``
    (the PACS must know that AE title with this computer's address and that port).
    All or nothing: :class:`Cancelled` or :class:`PacsError` leaves ``dest`` as it was."""
    if method not in ("get", "move"):
        raise TfesiError(f"Unknown retrieval method {method!r} (get or move).")
    t0 = time.perf_counter()
    total = _expected(node, study_uid, series_uid, calling_aet)
    if progress:
        progress(0, total)
    with Staging(dest) as staging:
        rec = _Receiver(staging, study_uid, total, progress, cancel)
        ident = _identifier(study_uid, series_uid)
        if method == "get":
            contexts = [build_context(StudyRootQueryRetrieveInformationModelGet)] + [
                build_context(uid, TRANSFER_SYNTAXES) for uid in RETRIEVE_SOP_CLASSES]
            roles = [build_role(uid, scp_role=True) for uid in RETRIEVE_SOP_CLASSES]
            with associate(node, contexts, calling_aet=calling_aet, roles=roles,
                           handlers=[(evt.EVT_C_STORE, rec)], what="retrieve from") as assoc:
                final = _drain(assoc.send_c_get(ident, StudyRootQueryRetrieveInformationModelGet),
                               assoc, node, cancel, "retrieved (C-GET)")
        else:
            final = _move(node, ident, rec, move_port, calling_aet, cancel)
        _check_final(final, rec, node, cancel)
        staging.commit()
        n = staging.count
    return Retrieved(Path(dest), n, time.perf_counter() - t0, study_uid)


def _move(node, ident, rec, port, calling_aet, cancel) -> Dataset:
    scp = _ae(calling_aet)
    scp.supported_contexts = [build_context(cx.abstract_syntax, TRANSFER_SYNTAXES)
                              for cx in StoragePresentationContexts]
    try:
        server = scp.start_server(("", port), block=False,
                                  evt_handlers=[(evt.EVT_C_STORE, rec)])
    except OSError as e:
        raise PacsError(f"Cannot receive images on port {port} ({e.strerror}): another program "
                        "uses it; choose another port (--move-port).") from e
    try:
        with associate(node, [StudyRootQueryRetrieveInformationModelMove],
                       calling_aet=calling_aet, what="retrieve from") as assoc:
            try:
                return _drain(assoc.send_c_move(ident, calling_aet,
                                                StudyRootQueryRetrieveInformationModelMove),
                              assoc, node, cancel, f"asked it to send the study to "
                              f"{calling_aet} on port {port} (C-MOVE)")
            except PacsError as e:
                raise PacsError(f"{e.message} Does the PACS know the move destination "
                                f"{calling_aet!r} with this computer's address and port "
                                f"{port}? Or use C-GET.") from e
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
