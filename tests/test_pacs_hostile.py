"""A hostile hospital network (issue 21, items 1, 2 and 4): DIMSE peers on loopback that stall,
drip bytes, announce a 4 GB message, refuse the association, push a third party's images during
a C-MOVE, announce more than they send, send UIDs that are not UIDs, or values with control
characters; TLS with a certificate authority made here. Timeouts are shortened (1-2 s) so that
each case is over in a few seconds; the waits themselves are the program's."""

from __future__ import annotations

import datetime as dt
import errno
import socket
import ssl
import struct
import threading
import time
from pathlib import Path

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE, evt
from pynetdicom.sop_class import (
    MRImageStorage,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from tfesi_desktop.cli import main
from tfesi_desktop.core import pacs
from tfesi_desktop.core.pacs import cache, dimse, link
from tfesi_desktop.core.pacs.nodes import PacsError, PacsNode

FAST = {"CONNECT_TIMEOUT": 1.0, "ACSE_TIMEOUT": 1.0, "DIMSE_TIMEOUT": 1.5,
        "NETWORK_TIMEOUT": 1.5}


@pytest.fixture(autouse=True)
def fast(monkeypatch):
    for mod in (link, dimse):
        for k, v in FAST.items():
            if hasattr(mod, k):
                monkeypatch.setattr(mod, k, v)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- raw TCP peers ------------------------------------------------------------------------------

class RawPeer:
    """A TCP server on loopback that treats each connection with ``behave(conn)``."""

    def __init__(self, behave):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.behave, self.stop = behave, threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        self.sock.settimeout(0.1)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn):
        try:
            self.behave(conn, self.stop)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self):
        self.stop.set()
        self.thread.join(2)
        self.sock.close()


def _silent(conn, stop):
    stop.wait(30)


def _drip(conn, stop):
    """An A-ASSOCIATE-AC header announcing 1 KiB, then one byte every 0.4 s, for ever."""
    conn.recv(65536)
    conn.sendall(struct.pack(">BBL", 0x02, 0, 1024))
    while not stop.wait(0.4):
        conn.sendall(b"\0")


def _huge(conn, stop):
    """A PDU header announcing 4 GB, then silence."""
    conn.recv(65536)
    conn.sendall(struct.pack(">BBL", 0x02, 0, 0xFFFFFFF0))
    stop.wait(30)


@pytest.mark.parametrize("behave, words", [
    (_silent, "did not answer the association request"),
    (_drip, "too slowly"),
    (_huge, "4,294,967,280 bytes"),
])
def test_a_peer_that_stalls_drips_or_boasts_is_given_up_in_time(behave, words, capsys):
    peer = RawPeer(behave)
    try:
        t0 = time.monotonic()
        assert main(["pacs", "echo", "--pacs", f"PACS@127.0.0.1:{peer.port}"]) == 2
        took = time.monotonic() - t0
        err = capsys.readouterr().err
        assert words in err and err.count("\n") == 1, err
        assert "AE title" not in err  # not blamed on the set-up
        assert took < 7, took  # connect 1 + association 1 + one read 1.5 (+ the watchdog)
    finally:
        peer.close()


def test_nothing_listening_is_said_so_at_once(capsys):
    t0 = time.monotonic()
    assert main(["pacs", "echo", "--pacs", f"PACS@127.0.0.1:{_free_port()}"]) == 2
    assert "nothing is listening" in capsys.readouterr().err
    assert time.monotonic() - t0 < 2


# --- pynetdicom peers ---------------------------------------------------------------------------

def _image(study: str, series: str, sop: str | None = None, name: str = "TEST^PATIENT"):
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = sop or generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.PatientName, ds.PatientID, ds.Modality = name, "ID1", "MR"
    return ds


class Pacs:
    """A pynetdicom Q/R SCP on loopback (AE title PACS) whose answers the test writes."""

    def __init__(self, *, rows=(), move=None, get=None, ssl_context=None, require_calling=None,
                 called="PACS"):
        self.ae = AE(ae_title=called)
        self.ae.network_timeout = 5
        for cx in (Verification, StudyRootQueryRetrieveInformationModelFind,
                   StudyRootQueryRetrieveInformationModelMove,
                   StudyRootQueryRetrieveInformationModelGet):
            self.ae.add_supported_context(cx)
        self.ae.add_supported_context(MRImageStorage, scu_role=False, scp_role=True)
        self.ae.add_requested_context(MRImageStorage)
        if require_calling:
            self.ae.require_calling_aet = require_calling
        self.ae.require_called_aet = True
        self.rows, self.move, self.get = list(rows), move, get
        self.port = _free_port()
        self.server = self.ae.start_server(
            ("127.0.0.1", self.port), block=False, ssl_context=ssl_context,
            evt_handlers=[(evt.EVT_C_FIND, self._find), (evt.EVT_C_MOVE, self._move),
                          (evt.EVT_C_GET, self._get), (evt.EVT_C_ECHO, lambda e: 0)])

    @property
    def node(self) -> PacsNode:
        return PacsNode(aet="PACS", host="127.0.0.1", port=self.port)

    def _find(self, event):
        for r in self.rows:
            yield 0xFF00, r

    def _move(self, event):
        yield from self.move(event, self)

    def _get(self, event):
        yield from self.get(event)

    def close(self):
        self.server.shutdown()
        self.ae.shutdown()


def _row(study, n, **extra):
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.StudyInstanceUID = study
    ds.NumberOfStudyRelatedInstances = n
    for k, v in extra.items():
        setattr(ds, k, v)
    return ds


@pytest.fixture
def study():
    return generate_uid(), generate_uid()


def test_the_association_refusal_says_which_ae_title(capsys):
    server = Pacs(require_calling=["SOMEONE"])
    try:
        assert main(["pacs", "echo", "--pacs", f"PACS@127.0.0.1:{server.port}"]) == 2
        assert "does not know this program's (calling) AE title 'TFESI'" in \
            capsys.readouterr().err
        assert main(["pacs", "echo", "--pacs", f"WRONG@127.0.0.1:{server.port}"]) == 2
        assert "its own (called) AE title is not 'WRONG'" in capsys.readouterr().err
    finally:
        server.close()


@pytest.mark.filterwarnings("ignore:Found unknown escape sequence")
def test_control_characters_and_multiple_values_in_a_listing(study, capsys):
    rows = [_row(study[0], 3, PatientName="EVIL\x1b[2J\x07^NAME", PatientID="ID\r1",
                 StudyDate=["20240101", "20240202"], ModalitiesInStudy=["MR", "CT"],
                 StudyDescription="desc\x1b]0;title\x07"),
            _row(generate_uid(), 1, StudyDate="20230101")]
    rows[1].NumberOfStudyRelatedInstances = None
    server = Pacs(rows=rows)
    try:
        assert main(["pacs", "find", "--pacs", f"PACS@127.0.0.1:{server.port}"]) == 0
        out = capsys.readouterr().out
        assert "\x1b" not in out and "\x07" not in out and "\r" not in out
        assert "EVIL\\x1b[2J\\x07^NAME" in out and "ID\\r1" in out and "MR/CT" in out
        assert "20240101\\20240202" in out
        assert main(["pacs", "find", "--pacs", f"PACS@127.0.0.1:{server.port}", "--json"]) == 0
        assert "\x1b" not in capsys.readouterr().out
    finally:
        server.close()


def _move_from(images, *, announce=None, third_party=None, probe=None):
    def handler(event, server):
        dest = ("127.0.0.1", server.move_port)
        if probe:
            probe(dest)
        if third_party:
            third_party(dest)
        yield dest
        yield announce if announce is not None else len(images)
        for ds in images:
            yield 0xFF00, ds
    return handler


def _retrieve_move(server, study_uid, out, **kw):
    server.move_port = port = _free_port()
    return pacs.retrieve(server.node, study_uid, out, method="move", move_port=port, **kw)


def test_move_takes_only_the_study_asked_from_the_pacs_asked(study, tmp_path):
    s, se = study
    mine = [_image(s, se) for _ in range(3)]
    seen = {}

    def forge(dest):  # a third party pushes an image into our receiver during the move
        for aet, bind in (("EVIL", "127.0.0.1"), ("PACS", "127.0.0.2")):
            ae = AE(ae_title=aet)
            ae.add_requested_context(MRImageStorage)
            a = ae.associate(*dest, ae_title="TFESI", bind_address=(bind, 0))
            if a.is_established:
                seen[(aet, bind)] = a.send_c_store(_image(s, se, name="FORGED^IMAGE")).Status
                a.release()
            else:
                seen[(aet, bind)] = "rejected"
            ae.shutdown()

    def probe(dest):  # the receiver listens on the loopback address only
        with socket.socket() as c:
            c.settimeout(1)
            seen["other address"] = c.connect_ex(("127.0.0.2", dest[1]))

    other = _image(generate_uid(), generate_uid())  # another study, sent by the PACS itself
    server = Pacs(rows=[_row(s, 3)], move=_move_from([*mine, other], probe=probe,
                                                     third_party=forge))
    try:
        got = _retrieve_move(server, s, tmp_path / "out")
    finally:
        server.close()
    assert got.instances == 3
    assert seen[("EVIL", "127.0.0.1")] == "rejected"  # wrong AE title: no association
    assert seen[("PACS", "127.0.0.2")] == dimse.STORE_REFUSED  # right title, wrong address
    assert seen["other address"] != 0  # connection refused there
    files = sorted((tmp_path / "out").rglob("*.dcm"))
    assert sorted(f.stem for f in files) == sorted(str(d.SOPInstanceUID) for d in mine)
    assert any("another study" in n for n in got.notes)
    assert any("not by the PACS asked" in n for n in got.notes)


def test_a_sender_that_drips_into_the_receiver_cannot_hold_the_retrieval(study, tmp_path):
    s, se = study
    held = []

    def drip(dest):  # a third party connects to the receiver and announces a 4 GB PDU
        c = socket.create_connection(dest)
        c.sendall(struct.pack(">BBL", 0x01, 0, 0xFFFFFFF0) + b"\0" * 10)
        held.append(c)
    server = Pacs(rows=[_row(s, 1)], move=_move_from([_image(s, se)], third_party=drip))
    try:
        t0 = time.monotonic()
        got = _retrieve_move(server, s, tmp_path / "out")
        assert time.monotonic() - t0 < 5
    finally:
        for c in held:
            c.close()
        server.close()
    assert got.instances == 1


def test_announced_ten_sent_three_success_is_incomplete(study, tmp_path, capsys):
    s, se = study
    server = Pacs(rows=[_row(s, 10)], move=_move_from([_image(s, se) for _ in range(3)]))
    try:
        with pytest.raises(PacsError, match="announced 10 instances, 3 arrived.*success"):
            _retrieve_move(server, s, tmp_path / "out")
    finally:
        server.close()
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".incoming")]


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")
def test_uids_that_are_not_uids_and_duplicates_are_refused(study, tmp_path):
    s, se = study
    good = _image(s, se)
    bad = [_image(s, se, sop="1.2_3"), _image(s, se, sop="1.2 3"), _image(s, "../../etc")]
    twin = _image(s, se, sop=str(good.SOPInstanceUID))
    twin.PatientName = "DIFFERENT^CONTENT"
    server = Pacs(rows=[_row(s, 1)], move=_move_from([good, *bad, twin], announce=5))
    try:
        got = _retrieve_move(server, s, tmp_path / "out")
    finally:
        server.close()
    assert got.instances == 1
    assert [f.name for f in (tmp_path / "out").rglob("*") if f.is_file()] == \
        [f"{good.SOPInstanceUID}.dcm"]
    text = " ".join(got.notes)
    assert "not a valid DICOM UID" in text and "received already" in text


@pytest.mark.parametrize("method", ["get", "move"])
def test_a_symlink_planted_in_the_target_is_not_followed(study, tmp_path, method):
    s, se = study
    images = [_image(s, se) for _ in range(2)]
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / se).symlink_to(elsewhere)

    def get(event):
        yield len(images)
        for ds in images:
            yield 0xFF00, ds
    server = Pacs(rows=[_row(s, 2)], move=_move_from(images), get=get)
    try:
        with pytest.raises(cache.TfesiError, match="link"):
            if method == "move":
                _retrieve_move(server, s, out)
            else:
                pacs.retrieve(server.node, s, out)
    finally:
        server.close()
    assert list(elsewhere.iterdir()) == []


def test_a_full_disk_is_said_so(study, tmp_path, monkeypatch):
    s, se = study

    def full(self, *a):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(cache.Staging, "write", full)

    def get(event):
        yield 2
        for _ in range(2):
            yield 0xFF00, _image(s, se)
    server = Pacs(rows=[_row(s, 2)], get=get)
    try:
        with pytest.raises(PacsError, match="disk of this computer is full"):
            pacs.retrieve(server.node, s, tmp_path / "out")
    finally:
        server.close()


def test_get_refuses_another_study_and_checks_the_count(study, tmp_path):
    s, se = study

    def get(event):
        yield 3
        yield 0xFF00, _image(s, se)
        yield 0xFF00, _image(generate_uid(), se, name="FORGED^IMAGE")
        yield 0xFF00, _image(s, se)
    server = Pacs(rows=[_row(s, 3)], get=get)
    try:
        with pytest.raises(PacsError, match="announced 3 instances, 2 arrived"):
            pacs.retrieve(server.node, s, tmp_path / "a")
        server.rows = [_row(s, 2)]
        got = pacs.retrieve(server.node, s, tmp_path / "b")
    finally:
        server.close()
    assert got.instances == 2 and "another study" in got.notes[0]
    assert pacs.origin_of(s) == f"PACS@127.0.0.1:{server.port}"  # offered when sending back


def test_invalid_uids_asked_for_are_refused_before_any_network(tmp_path):
    with pytest.raises(PacsError, match="not a valid Study Instance UID"):
        pacs.retrieve(PacsNode(aet="X", host="127.0.0.1", port=1), "1.2.3/../..",
                      tmp_path / "x")


# --- TLS ------------------------------------------------------------------------------------------

def _ca_and_server_cert(folder: Path, host: str = "127.0.0.1"):
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def pem(obj, name):
        p = folder / name
        if hasattr(obj, "public_bytes"):
            p.write_bytes(obj.public_bytes(serialization.Encoding.PEM))
        else:
            p.write_bytes(obj.private_bytes(serialization.Encoding.PEM,
                                            serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()))
        return p

    now = dt.datetime.now(dt.UTC)
    out = {}
    for tag in ("ca", "other-ca"):
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"test {tag}")])
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(hours=1))
                .not_valid_after(now + dt.timedelta(days=1))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                             crl_sign=True, content_commitment=False,
                                             key_encipherment=False, data_encipherment=False,
                                             key_agreement=False, encipher_only=False,
                                             decipher_only=False), critical=True)
                .sign(key, hashes.SHA256()))
        out[tag] = (key, cert, pem(cert, f"{tag}.pem"))
    ca_key, ca_cert, _ = out["ca"]
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pacs")]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(
                ipaddress.ip_address(host))]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return out["ca"][2], out["other-ca"][2], pem(cert, "server.pem"), pem(key, "server.key")


def test_tls_with_the_certificate_checked(tmp_path, capsys):
    ca, other_ca, cert, key = _ca_and_server_cert(tmp_path)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    server = Pacs(ssl_context=ctx)
    addr = f"PACS@127.0.0.1:{server.port}"
    try:
        assert main(["pacs", "echo", "--pacs", addr, "--ca-file", str(ca)]) == 0
        assert "OK" in capsys.readouterr().out
        t0 = time.monotonic()
        assert main(["pacs", "echo", "--pacs", addr, "--ca-file", str(other_ca)]) == 2
        assert "certificate is not signed by the authority" in capsys.readouterr().err
        assert main(["pacs", "echo", "--pacs", addr]) == 2  # plain DICOM to a TLS port
        assert "error:" in capsys.readouterr().err
        assert time.monotonic() - t0 < 8
        # a saved node remembers TLS and its authority
        assert main(["pacs", "nodes", "add", "secure", addr, "--tls", "--ca-file",
                     str(ca)]) == 0
        assert pacs.resolve("secure").tls
        assert main(["pacs", "echo", "--pacs", "secure"]) == 0
    finally:
        server.close()
