"""DICOMweb as a careful client (issue 21, item 3), against a tiny http.server on loopback that
stalls, drips, redirects to another origin, sends a gzip bomb, a scalar JSON body, bad tags or
VRs, a part that is not DICOM, HTTP 503, or an instance of another study. Timeouts shortened to
1-1.5 s; each case is over in a few seconds."""

from __future__ import annotations

import gzip
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BytesIO

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from tfesi_desktop.cli import main
from tfesi_desktop.core import pacs
from tfesi_desktop.core.pacs import link, web
from tfesi_desktop.core.pacs.nodes import PacsError, PacsNode


@pytest.fixture(autouse=True)
def fast(monkeypatch):
    for mod in (link, web):
        monkeypatch.setattr(mod, "CONNECT_TIMEOUT", 1.0)
        monkeypatch.setattr(mod, "NETWORK_TIMEOUT", 1.5)


class Server:
    """``routes(handler) -> None`` answers each GET/POST; ``seen`` records the paths asked."""

    def __init__(self, route):
        server = self
        self.seen: list[str] = []

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):  # noqa: N802 - http.server's name
                server.seen.append(self.path)
                try:
                    route(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_POST = do_GET  # noqa: N815

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/dicom-web"

    @property
    def node(self) -> PacsNode:
        return PacsNode(url=self.url)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve():
    made = []

    def make(route):
        s = Server(route)
        made.append(s)
        return s
    yield make
    for s in made:
        s.close()


def _send(h, body: bytes, ctype="application/dicom+json", code=200, extra=()):
    h.send_response(code)
    h.send_header("Content-Type", ctype)
    h.send_header("Content-Length", str(len(body)))
    for k, v in extra:
        h.send_header(k, v)
    h.end_headers()
    h.wfile.write(body)


def _image(study, series, name="TEST^PATIENT") -> bytes:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
    ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.PatientName = study, series, name
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _multipart(parts: list[tuple[str, bytes]]) -> tuple[bytes, str]:
    b = "BOUNDARYxyz"
    body = b"".join(f"--{b}\r\nContent-Type: {t}\r\n\r\n".encode() + p + b"\r\n"
                    for t, p in parts) + f"--{b}--\r\n".encode()
    return body, f'multipart/related; type="application/dicom"; boundary={b}'


def _series_json(study, series, n):
    return json.dumps([{"0020000D": {"vr": "UI", "Value": [study]},
                        "0020000E": {"vr": "UI", "Value": [series]},
                        "00201209": {"vr": "IS", "Value": [n]}}]).encode()


def _find_error(node, capsys) -> tuple[str, float]:
    t0 = time.monotonic()
    assert main(["pacs", "find", "--pacs", node.url, "--patient-id", "ID1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "internal" not in err, err
    return err, time.monotonic() - t0


def test_a_silent_server_is_given_up_in_time(serve, capsys):
    s = serve(lambda h: time.sleep(4))
    err, took = _find_error(s.node, capsys)
    assert "did not answer within 2 s" in err or "no complete answer within 2 s" in err, err
    assert took < 6, took  # one wait of 1.5 s (five retries would take 9 s)
    assert len(s.seen) == 1


def _drip_headers(h):
    h.wfile.write(b"HTTP/1.1 200 OK\r\n")


def _drip_body(h):
    h.send_response(200)
    h.send_header("Content-Type", "application/dicom+json")
    h.send_header("Content-Length", "100000")
    h.end_headers()


@pytest.mark.parametrize("start, byte, words", [
    (_drip_headers, b"X", "no complete answer"), (_drip_body, b" ", "too slowly")])
def test_a_server_that_drips_is_given_up(serve, capsys, start, byte, words):
    def drip(h):
        start(h)
        for _ in range(40):
            h.wfile.write(byte)
            h.wfile.flush()
            time.sleep(0.25)
    s = serve(drip)
    err, took = _find_error(s.node, capsys)
    assert words in err, err
    assert took < 5, took


def test_no_redirect_to_another_origin_with_the_patient_query(serve, capsys):
    other = serve(lambda h: _send(h, b"[]"))

    def redirect(h):
        h.send_response(302)
        h.send_header("Location", other.url + h.path.split("/dicom-web", 1)[1])
        h.send_header("Content-Length", "0")
        h.end_headers()
    s = serve(redirect)
    err, _ = _find_error(s.node, capsys)
    assert "redirected us to another server" in err
    assert other.seen == []  # the PatientID never left for the other origin
    # a redirect within the same origin is followed
    same = []

    def same_origin(h):
        if h.path.startswith("/dicom-web/moved"):
            _send(h, b"[]")
        else:
            same.append(h.path)
            h.send_response(301)
            h.send_header("Location", "/dicom-web/moved/studies")
            h.send_header("Content-Length", "0")
            h.end_headers()
    s2 = serve(same_origin)
    assert pacs.find_studies(s2.node, patient_id="ID1") == [] and same


def test_a_gzip_bomb_stops_at_the_limit(serve, monkeypatch, capsys):
    monkeypatch.setattr(web, "MAX_JSON_BYTES", 4 << 20)
    bomb = gzip.compress(b"[" + b" " * (64 << 20) + b"]", compresslevel=9)  # 64 MB in ~64 KB
    s = serve(lambda h: _send(h, bomb, extra=[("Content-Encoding", "gzip")]))
    import tracemalloc

    tracemalloc.start()
    err, _ = _find_error(s.node, capsys)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert "larger than 4 MiB once unpacked" in err
    assert peak < 32 << 20, peak


@pytest.mark.parametrize("body, ctype, code, words", [
    (b"42", "application/dicom+json", 200, "not a list of DICOM objects"),
    (b'"text"', "application/dicom+json", 200, "not a list of DICOM objects"),
    (b"{not json", "application/dicom+json", 200, "not JSON"),
    (b'[{"zzzz": {"vr": "PN"}}]', "application/dicom+json", 200, "malformed DICOM JSON"),
    (b'[{"00100010": {"vr": "QQ", "Value": [1]}}]', "application/dicom+json", 200,
     "malformed DICOM JSON"),
    (b'[{"00201208": {"vr": "IS", "Value": [{"a": 1}]}}]', "application/dicom+json", 200,
     "malformed DICOM JSON"),
    (b"busy", "text/plain", 503, "HTTP 503 when we searched (it is unavailable"),
])
def test_malformed_search_answers_are_one_error_line(serve, capsys, body, ctype, code, words):
    s = serve(lambda h: _send(h, body, ctype, code))
    err, _ = _find_error(s.node, capsys)
    assert words in err, err
    assert len(s.seen) == 1  # sent once: no retries on 503


def _wado(study, series, parts, count=None):
    def route(h):
        if h.path.split("?")[0].endswith("/series"):
            _send(h, _series_json(study, series, count if count is not None else len(parts)))
        else:
            body, ctype = _multipart(parts)
            _send(h, body, ctype)
    return route


def test_only_instances_of_the_requested_study_are_saved(serve, tmp_path):
    study, series = generate_uid(), generate_uid()
    parts = [("application/dicom", _image(study, series)),
             ("application/dicom", _image(generate_uid(), series, "FORGED^IMAGE")),
             ("application/dicom", _image(study, series))]
    s = serve(_wado(study, series, parts, count=2))
    got = pacs.retrieve(s.node, study, tmp_path / "out")
    assert got.instances == 2 and "another study" in got.notes[0]
    assert len(list((tmp_path / "out").rglob("*.dcm"))) == 2


def test_a_part_that_is_not_dicom_and_a_short_answer(serve, tmp_path):
    study, series = generate_uid(), generate_uid()
    s = serve(_wado(study, series, [("application/dicom", _image(study, series)),
                                    ("text/html", b"<html>")]))
    with pytest.raises(PacsError, match="part that is not DICOM"):
        pacs.retrieve(s.node, study, tmp_path / "a")
    s = serve(_wado(study, series, [("application/dicom", b"garbage" * 30)]))
    with pytest.raises(PacsError, match="not readable DICOM"):
        pacs.retrieve(s.node, study, tmp_path / "b")
    s = serve(_wado(study, series, [("application/dicom", _image(study, series))], count=10))
    with pytest.raises(PacsError, match="announced 10 instances.*1 arrived"):
        pacs.retrieve(s.node, study, tmp_path / "c")
    s = serve(lambda h: _send(h, b"[]") if "series" in h.path else _send(h, b"x", "text/html"))
    with pytest.raises(PacsError, match="is not on the DICOMweb service"):
        pacs.retrieve(s.node, study, tmp_path / "d")
    assert not [p for p in tmp_path.iterdir() if p.name != "tfesi-home"]
