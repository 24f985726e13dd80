"""DICOMweb as a careful client: QIDO-RS (search), WADO-RS (retrieve), STOW-RS (store), with
``requests`` directly (dicomweb-client's own 20 s timeout and five retries overrode ours, and it
follows redirects and unpacks any answer whole). Same results and errors as :mod:`.dimse`.

Every request (docs/architecture.md, Hospital integration):

- is sent once (no retries), with :data:`~.link.CONNECT_TIMEOUT` to connect, each read bounded
  by :data:`~.link.NETWORK_TIMEOUT`, and a whole answer given up when it arrives slower than
  :data:`MIN_RATE` bytes per second over any :data:`~.link.NETWORK_TIMEOUT` (a server that
  drips a byte at a time);
- never follows a redirect to another origin (scheme, host, port): the query, which may hold a
  patient's name and ID, stays with the server it was meant for;
- reads at most :data:`MAX_JSON_BYTES` of a search answer and :data:`MAX_RETRIEVE_BYTES` of a
  retrieval, counted after decompression, which is done here, bounded (a gzip bomb stops at the
  limit);
- turns every malformed answer (not JSON, a scalar, bad tags or VR, a part that is not DICOM, an
  HTTP error) into one :class:`PacsError` sentence;
- and a retrieval saves only instances of the requested study (and series).
"""

from __future__ import annotations

import json
import threading
import time
import zlib
from collections.abc import Sequence
from io import BytesIO
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.valuerep import VR

from ..errors import Cancelled
from ..safe_text import printable
from .cache import Refused, Staging
from .dimse import (
    SERIES_KEYS,
    STUDY_KEYS,
    Cancel,
    Progress,
    Retrieved,
    _as_dict,
    check_uids,
    parse_date_range,
)
from .link import CONNECT_TIMEOUT, NETWORK_TIMEOUT, Guard
from .nodes import PacsError, PacsNode

MAX_JSON_BYTES = 32 << 20  # a search answer
MAX_RETRIEVE_BYTES = 4 << 30  # one series (WADO-RS), unpacked
MAX_REDIRECTS = 3  # within the same origin
MIN_RATE = 1024  # bytes per second, over any NETWORK_TIMEOUT
_HTTP_HINTS = {401: "it wants credentials", 403: "it does not allow this",
               404: "nothing of that name is there", 413: "the request is too large for it",
               429: "it is asking us to slow down", 500: "a failure on its side",
               502: "a gateway in front of it failed", 503: "it is unavailable or overloaded",
               504: "a gateway in front of it timed out"}


_local = threading.local()  # the Guard of the request this thread is sending


def _attach(conn) -> None:
    guard = getattr(_local, "guard", None)
    if guard is not None and getattr(conn, "sock", None) is not None:
        guard.attach(conn.sock)
        # connected: from now on the status line and headers have NETWORK_TIMEOUT, however
        # slowly their bytes come
        guard.expect(NETWORK_TIMEOUT, f"no complete answer within {NETWORK_TIMEOUT:.0f} s")


class _HTTPConnection(urllib3.connection.HTTPConnection):
    def connect(self):
        super().connect()
        _attach(self)


class _HTTPSConnection(urllib3.connection.HTTPSConnection):
    def connect(self):
        super().connect()
        _attach(self)


class _HTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class _Adapter(requests.adapters.HTTPAdapter):
    """requests' adapter whose connections a :class:`~.link.Guard` can cut (a server that
    drips its headers a byte at a time is given up at the deadline, not never)."""

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}


def _origin(url: str) -> tuple[str, str, int | None]:
    u = urlsplit(url)
    port = u.port or {"http": 80, "https": 443}.get(u.scheme)
    return u.scheme.lower(), (u.hostname or "").lower(), port


def _root(node: PacsNode) -> str:
    if not node.url:
        raise PacsError(f"The PACS {node} has no DICOMweb URL.")
    return node.url.rstrip("/")


class _Answer:
    """One HTTP answer read within the limits (module docstring)."""

    def __init__(self, status: int, headers, body: bytes):
        self.status, self.headers, self.body = status, headers, body

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "")


def _request(node: PacsNode, method: str, path: str, what: str, *, params=None, headers=None,
             data: bytes | None = None, limit: int | None = None) -> _Answer:
    """Send one request to the node (no retries) and read its answer within ``limit`` bytes
    (default :data:`MAX_JSON_BYTES`)."""
    limit = MAX_JSON_BYTES if limit is None else limit
    url = f"{_root(node)}/{path.lstrip('/')}" if path else _root(node)
    origin = _origin(_root(node))
    headers = {"Accept-Encoding": "gzip, deflate", **(headers or {})}
    guard = Guard(f"the DICOMweb service {node.url}")
    _local.guard = guard
    with requests.Session() as session:
        session.trust_env = False  # no proxy or .netrc from the environment carries the query
        session.mount("http://", _Adapter(max_retries=0))
        session.mount("https://", _Adapter(max_retries=0))
        for _ in range(MAX_REDIRECTS + 1):
            guard.expect(CONNECT_TIMEOUT + NETWORK_TIMEOUT,
                         f"no answer within {NETWORK_TIMEOUT:.0f} s")
            try:
                resp = session.request(method, url, params=params, headers=headers, data=data,
                                       timeout=(CONNECT_TIMEOUT, NETWORK_TIMEOUT),
                                       allow_redirects=False, stream=True)
            except requests.exceptions.RequestException as e:
                guard.close()
                if guard.reason:
                    raise PacsError(f"The DICOMweb service {node.url} was given up when we "
                                    f"{what}: {guard.reason}.") from e
                _raise_for(e, node, what)
            try:
                return _answer(resp, url, origin, node, what, limit, guard)
            except _Redirect as r:
                url, params = r.target, None  # the Location carries its own query
            finally:
                resp.close()
        guard.close()
    raise PacsError(f"The DICOMweb service {node.url} redirected us more than {MAX_REDIRECTS} "
                    f"times when we {what}.")


class _Redirect(Exception):  # noqa: N818 - control flow inside _request
    def __init__(self, target: str):
        self.target = target


def _answer(resp, url, origin, node, what, limit, guard) -> _Answer:
    if resp.is_redirect or 300 <= resp.status_code < 400:
        location = resp.headers.get("Location", "")
        target = urljoin(url, location)
        if not location or _origin(target) != origin:
            guard.close()
            raise PacsError(
                f"The DICOMweb service {node.url} redirected us to another server "
                f"({printable(_origin(target)[1] or '?')}) when we {what}; the redirect was not "
                "followed, so that the request (which may name a patient) stays with the server "
                "it was meant for.")
        raise _Redirect(target)
    try:
        body = _read(resp, node, what, limit, guard)
    finally:
        guard.close()
    return _Answer(resp.status_code, resp.headers, body)


def _raise_for(e: Exception, node: PacsNode, what: str):
    """One sentence for a request that got no answer."""
    if isinstance(e, requests.exceptions.ConnectTimeout):
        raise PacsError(f"No answer from the DICOMweb service {node.url} within "
                        f"{CONNECT_TIMEOUT:.0f} s when we {what}.") from e
    if isinstance(e, requests.exceptions.SSLError):
        raise PacsError(f"No secure connection with the DICOMweb service {node.url} when we "
                        f"{what}: its certificate is not trusted here.") from e
    if isinstance(e, requests.exceptions.Timeout) or "timed out" in str(e).lower():
        raise PacsError(f"The DICOMweb service {node.url} did not answer within "
                        f"{NETWORK_TIMEOUT:.0f} s when we {what}.") from e
    if isinstance(e, requests.exceptions.ConnectionError):
        raise PacsError(f"Cannot reach the DICOMweb service {node.url} when we {what}: nothing "
                        "answers there, or it closed the connection (is the PACS running, and "
                        "is the URL right?).") from e
    raise PacsError(f"The request to the DICOMweb service {node.url} failed when we {what} "
                    f"({printable(e)[:160]}).") from e


def _read(resp, node: PacsNode, what: str, limit: int, guard: Guard) -> bytes:
    """The body, unpacked here within ``limit`` bytes, at :data:`MIN_RATE` or faster."""
    encoding = resp.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity", "gzip", "deflate", "x-gzip"):
        raise PacsError(f"The DICOMweb service {node.url} answered in an encoding this program "
                        f"does not read ({printable(encoding)[:40]}) when we {what}.")
    inflate = (zlib.decompressobj(wbits=47) if encoding not in ("", "identity") else None)
    out = bytearray()
    window_start, window_bytes = time.monotonic(), 0

    def too_big():
        return PacsError(f"The answer of the DICOMweb service {node.url} is larger than "
                         f"{limit >> 20} MiB" + (" once unpacked" if inflate else "")
                         + f" when we {what}; it was not read further.")

    try:
        while True:
            guard.expect(NETWORK_TIMEOUT, f"no data for {NETWORK_TIMEOUT:.0f} s")
            chunk = resp.raw.read1(65536, decode_content=False)
            if not chunk:
                if guard.reason:
                    raise OSError(guard.reason)
                break
            window_bytes += len(chunk)
            now = time.monotonic()
            if now - window_start > NETWORK_TIMEOUT:
                if window_bytes / (now - window_start) < MIN_RATE:
                    raise PacsError(f"The DICOMweb service {node.url} sent its answer too slowly "
                                    f"(under {MIN_RATE} bytes/s) when we {what}; given up.")
                window_start, window_bytes = now, 0
            data = chunk
            while data:
                if inflate is None:
                    out += data
                    data = b""
                else:
                    out += inflate.decompress(data, limit + 1 - len(out))
                    data = inflate.unconsumed_tail
                if len(out) > limit:
                    raise too_big()
    except zlib.error as e:
        raise PacsError(f"The answer of the DICOMweb service {node.url} is damaged (it does "
                        f"not unpack) when we {what}.") from e
    except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError,
            ValueError) as e:
        why = guard.reason or f"no data for {NETWORK_TIMEOUT:.0f} s, or the connection broke"
        raise PacsError(f"The DICOMweb service {node.url} stopped sending its answer when we "
                        f"{what} ({why}).") from e
    return bytes(out)


def _check_status(ans: _Answer, node: PacsNode, what: str, ok=(200,)) -> None:
    if ans.status in ok:
        return
    hint = _HTTP_HINTS.get(ans.status, "")
    raise PacsError(f"The DICOMweb service {node.url} answered HTTP {ans.status} when we {what}"
                    + (f" ({hint})" if hint else "") + ".")


def _json_items(node: PacsNode, what: str, path: str, params: dict) -> list[Dataset]:
    """A QIDO-RS search: the list of DICOM JSON objects as datasets."""
    ans = _request(node, "GET", path, what, params=params,
                   headers={"Accept": "application/dicom+json"})
    if ans.status == 204:
        return []
    _check_status(ans, node, what)
    if not ans.body.strip():
        return []
    try:
        items = json.loads(ans.body.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise PacsError(f"The DICOMweb service {node.url} answered something that is not JSON "
                        f"when we {what}.") from e
    if not isinstance(items, list) or not all(isinstance(x, dict) for x in items):
        raise PacsError(f"The DICOMweb service {node.url} answered JSON that is not a list of "
                        f"DICOM objects when we {what}.")
    out = []
    for x in items:
        try:
            ds = Dataset.from_json(x)
            for elem in ds:  # decode now: a bad value fails here, not in a listing
                if elem.VR not in _VRS:
                    raise ValueError(f"unknown VR {printable(elem.VR)[:8]!r}")
                _ = elem.value
        except Exception as e:  # noqa: BLE001 - pydicom raises many kinds on bad JSON
            raise PacsError(f"The DICOMweb service {node.url} answered a malformed DICOM JSON "
                            f"object when we {what} ({printable(e)[:160]}).") from e
        out.append(ds)
    return out


_VRS = {str(v) for v in VR}


def _no_constant(name):
    raise ValueError(f"{name} is not valid JSON")


def find_studies(node: PacsNode, *, patient_id=None, patient_name=None, study_date=None,
                 modality=None, accession=None, study_uid=None, **_ignored) -> list[dict]:
    filters = {k: v for k, v in {
        "PatientID": patient_id, "PatientName": patient_name,
        "StudyDate": parse_date_range(study_date) if study_date else None,
        "ModalitiesInStudy": modality, "AccessionNumber": accession,
        "StudyInstanceUID": study_uid}.items() if v}
    params = {**filters, "includefield": [k for k in STUDY_KEYS if k not in filters]}
    found = _json_items(node, "searched", "studies", params)
    rows = [_as_dict(x, STUDY_KEYS) for x in found]
    rows.sort(key=lambda r: (r["study_date"] or "", r["study_time"] or ""), reverse=True)
    return rows


def find_series(node: PacsNode, study_uid: str, **_ignored) -> list[dict]:
    check_uids(study_uid, None)
    found = _json_items(node, "searched", f"studies/{study_uid}/series",
                        {"includefield": list(SERIES_KEYS)})
    rows = [_as_dict(x, SERIES_KEYS) for x in found]
    for r in rows:
        r["study_uid"] = r["study_uid"] or study_uid
    return sorted(rows, key=lambda r: (r["series_number"] is None, r["series_number"] or 0))


def _boundary(content_type: str) -> bytes | None:
    parts = [p.strip() for p in content_type.split(";")]
    if parts[0].lower() != "multipart/related":
        return None
    for p in parts[1:]:
        k, _, v = p.partition("=")
        if k.strip().lower() == "boundary" and v.strip().strip('"'):
            return v.strip().strip('"').encode("latin-1", "replace")
    return None


def _parts(ans: _Answer, node: PacsNode, what: str) -> list[bytes]:
    """The bodies of a multipart/related answer (PacsError when it is not one, or a part is not
    ``application/dicom``)."""
    b = _boundary(ans.content_type)
    if b is None:
        raise PacsError(f"The DICOMweb service {node.url} did not answer with DICOM parts "
                        f"(multipart/related) when we {what}, but "
                        f"{printable(ans.content_type or 'no content type')[:60]}.")
    out = []
    for chunk in ans.body.split(b"--" + b)[1:]:
        if chunk.startswith(b"--"):
            break  # the closing delimiter
        head, sep, body = chunk.partition(b"\r\n\r\n")
        if not sep:
            raise PacsError(f"The DICOMweb service {node.url} sent a damaged multipart answer "
                            f"when we {what}.")
        ctype = ""
        for line in head.decode("latin-1").split("\r\n"):
            k, _, v = line.partition(":")
            if k.strip().lower() == "content-type":
                ctype = v.strip().lower()
        if ctype and not ctype.startswith("application/dicom"):
            raise PacsError(f"The DICOMweb service {node.url} sent a part that is not DICOM "
                            f"({printable(ctype)[:60]}) when we {what}.")
        out.append(body[:-2] if body.endswith(b"\r\n") else body)
    return out


def retrieve(node: PacsNode, study_uid: str, dest: str | Path, *, series_uid: str | None = None,
             progress: Progress = None, cancel: Cancel = None, **_ignored) -> Retrieved:
    """WADO-RS of a study or series into ``dest``, series by series, all or nothing (as
    :func:`.dimse.retrieve`), checked against the counts the search announced."""
    check_uids(study_uid, series_uid)
    t0 = time.perf_counter()
    series = [r for r in find_series(node, study_uid) if r["series_uid"]
              and (series_uid is None or r["series_uid"] == series_uid)]
    if not series:
        raise PacsError(f"The {'series' if series_uid else 'study'} "
                        f"{series_uid or study_uid} is not on the DICOMweb service {node.url}.")
    total = sum(r["instances"] or 0 for r in series)
    refused: dict[str, int] = {}
    with Staging(dest) as staging:
        for row in series:
            if cancel and cancel():
                raise Cancelled("Retrieval cancelled; nothing was imported.")
            what = f"retrieved series {row['series_uid']}"
            ans = _request(node, "GET", f"studies/{study_uid}/series/{row['series_uid']}", what,
                           headers={"Accept": 'multipart/related; type="application/dicom"; '
                                              "transfer-syntax=*"},
                           limit=MAX_RETRIEVE_BYTES)
            _check_status(ans, node, what)
            before = staging.count
            for body in _parts(ans, node, what):
                try:
                    ds = dcmread(BytesIO(body), stop_before_pixels=True)
                    study, ser = str(ds.get("StudyInstanceUID", "")), ds.get("SeriesInstanceUID")
                    sop = ds.get("SOPInstanceUID")
                except (InvalidDicomError, ValueError, EOFError, OSError, KeyError,
                        TypeError) as e:
                    raise PacsError(f"The DICOMweb service {node.url} sent a part that is not "
                                    f"readable DICOM when we {what}.") from e
                why = ("it belongs to another study, not the one asked for" if study != study_uid
                       else "it belongs to another series, not the one asked for"
                       if str(ser) != row["series_uid"] else None)
                if why is None:
                    try:
                        staging.write(ser, sop, body)
                    except Refused as e:
                        why = str(e)
                if why:
                    refused[why] = refused.get(why, 0) + 1
                elif progress:
                    progress(staging.count, max(total, staging.count))
            expected = row["instances"] or 0
            if staging.count - before < expected:
                raise PacsError(f"The retrieval from the DICOMweb service {node.url} was "
                                f"incomplete: the search announced {expected} instances of "
                                f"series {row['series_uid']}, {staging.count - before} arrived; "
                                "nothing was imported.")
        if staging.count == 0:
            raise PacsError(f"The DICOMweb service {node.url} sent no images of study "
                            f"{study_uid}; nothing was imported.")
        staging.commit()
    notes = [f"{n} instance{'s' if n > 1 else ''} refused: {why}."
             for why, n in sorted(refused.items())]
    return Retrieved(Path(dest), staging.count, time.perf_counter() - t0, study_uid, notes)


def store(files: Sequence[str | Path], node: PacsNode, *, progress: Progress = None,
          cancel: Cancel = None, **_ignored) -> int:
    """STOW-RS of the files, in one request (sent once)."""
    from .dimse import _read_for_sending

    _read_for_sending(files)  # each is readable DICOM with its UIDs
    boundary = "tfesi-stow-boundary-7d1f"
    body = bytearray()
    for f in files:
        body += (f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n").encode()
        body += Path(f).read_bytes() + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    if cancel and cancel():
        raise Cancelled()
    ans = _request(node, "POST", "studies", "sent files", data=bytes(body), headers={
        "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
        "Accept": "application/dicom+json"})
    _check_status(ans, node, "sent files", ok=(200, 202))
    if progress:
        progress(len(files), len(files))
    return len(files)
