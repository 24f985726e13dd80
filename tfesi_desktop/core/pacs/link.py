"""One guarded DICOM connection: every wait bounded, every message bounded in size, TLS checked.

pynetdicom 3.0.4 applies its network timeout to the socket only until the TCP connection is up
(``AssociationSocket.connect`` then sets it to ``None``), reads a PDU of any announced length,
and its ``Association.kill`` waits for a reader thread that may sit in ``recv`` for ever. A PACS
that stalls, answers a byte at a time or announces a 4 GB message then holds the program.
:class:`Guard` closes those holes from outside pynetdicom, through its ``EVT_CONN_OPEN`` event:

- the socket gets :data:`NETWORK_TIMEOUT` for every read and write;
- a PDU longer than :data:`MAX_PDU_LENGTH` is refused before it is read;
- one read (a PDU's header or its body) that has not completed within
  :data:`NETWORK_TIMEOUT` is abandoned, however slowly bytes keep coming;
- :meth:`Guard.cut` shuts the socket down, so that pynetdicom's threads end at once; a watchdog
  thread cuts when the deadline the caller set (:meth:`Guard.expect`) passes.

Each cut records why (:attr:`Guard.reason`), so the caller's message says what happened.
"""

from __future__ import annotations

import select
import socket
import ssl
import threading
import time
from pathlib import Path

from pynetdicom import evt

from .nodes import PacsError, PacsNode

CONNECT_TIMEOUT = 5.0  # TCP connect (and the TLS handshake)
ACSE_TIMEOUT = 5.0  # the answer to an association request
DIMSE_TIMEOUT = 10.0  # the answer to one request of an established association
NETWORK_TIMEOUT = 10.0  # any one read or write on the socket
MAX_PDU = 1 << 20  # the largest P-DATA PDU this program announces it receives (1 MiB)
MAX_PDU_LENGTH = MAX_PDU + (64 << 10)  # any PDU longer than this is refused unread


class Guard:
    """Bounds one association's socket (module docstring). Pass :meth:`handlers` to
    ``AE.associate`` (requestor) or bind :meth:`on_open` on a server."""

    def __init__(self, peer: str = "the PACS"):
        self.peer = peer
        self.reason: str | None = None
        self.peer_aborted = False  # the peer sent an A-ABORT (not our own timeout's abort)
        self._raw: socket.socket | None = None
        self._deadline: float | None = None
        self._why_late = ""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._watchdog: threading.Thread | None = None

    def handlers(self) -> list:
        return [(evt.EVT_CONN_OPEN, self.on_open), (evt.EVT_PDU_RECV, self._on_pdu)]

    def _on_pdu(self, event) -> None:
        if type(event.pdu).__name__ == "A_ABORT_RQ":
            self.peer_aborted = True

    def on_open(self, event) -> None:
        sock = event.assoc.dul.socket  # pynetdicom's AssociationSocket
        raw = sock.socket
        if raw is None:
            return
        raw.settimeout(NETWORK_TIMEOUT)
        with self._lock:
            self._raw = raw
        dul = event.assoc.dul

        def recv(nr_bytes: int) -> bytearray:
            if nr_bytes > MAX_PDU_LENGTH:
                self.cut(f"{self.peer} announced a message of {nr_bytes:,} bytes, more than the "
                         f"{MAX_PDU_LENGTH:,} this program accepts")
                raise OSError("PDU too long")
            out = bytearray()
            t_end = time.monotonic() + NETWORK_TIMEOUT
            while len(out) < nr_bytes:
                if dul._kill_thread or self.reason is not None:
                    raise OSError("connection cut")
                if time.monotonic() > t_end:
                    self.cut(f"{self.peer} sent a message too slowly ({len(out)} of "
                             f"{nr_bytes} bytes in {NETWORK_TIMEOUT:.0f} s)")
                    raise OSError("too slow")
                pending = isinstance(raw, ssl.SSLSocket) and raw.pending()
                if not pending and not select.select([raw], [], [], 0.2)[0]:
                    continue  # look at the deadline and the kill flag again
                try:
                    chunk = raw.recv(min(65536, nr_bytes - len(out)))
                except TimeoutError:
                    continue
                if not chunk:
                    return out
                out.extend(chunk)
            return out

        sock.recv = recv  # an instance attribute: this association only

    def attach(self, raw: socket.socket) -> None:
        """Guard this socket too (a DICOMweb connection: :mod:`.web`)."""
        with self._lock:
            self._raw = raw
        if self.reason is not None:
            self.cut()

    def expect(self, seconds: float | None, why_late: str = "") -> None:
        """Cut the connection unless :meth:`expect` is called again (or with None) within
        ``seconds``; ``why_late`` is the reason recorded then."""
        with self._lock:
            self._deadline = None if seconds is None else time.monotonic() + seconds
            self._why_late = why_late
            if self._watchdog is None and seconds is not None:
                self._watchdog = threading.Thread(target=self._watch, daemon=True,
                                                  name="tfesi-pacs-watchdog")
                self._watchdog.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.1):
            with self._lock:
                late = self._deadline is not None and time.monotonic() > self._deadline
                why = self._why_late
            if late:
                self.cut(why or f"no answer from {self.peer} in time")
                return

    def cut(self, reason: str | None = None) -> None:
        """Shut the connection down now (pynetdicom's reader returns at once)."""
        with self._lock:
            if reason and self.reason is None:
                self.reason = reason
            raw = self._raw
        if raw is not None:
            try:
                raw.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        """End the watchdog and close the socket (pynetdicom leaves a refused or cut one
        open)."""
        self._stop.set()
        with self._lock:
            raw, self._raw = self._raw, None
        if raw is not None:
            try:
                raw.close()
            except OSError:
                pass


def tls_context(node: PacsNode) -> ssl.SSLContext | None:
    """The TLS client context of a node that needs TLS (its certificate checked against
    ``node.ca_file``, or the system's authorities, and its host name), else None."""
    if not node.tls:
        return None
    try:
        ctx = ssl.create_default_context(cafile=node.ca_file or None)
        if node.cert_file:
            ctx.load_cert_chain(node.cert_file, node.key_file or None)
    except (OSError, ssl.SSLError, ValueError) as e:
        where = node.ca_file or node.cert_file
        raise PacsError(f"The TLS certificates for {node} cannot be read ({e}).",
                        Path(where) if where else None) from e
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def local_address_towards(host: str, port: int) -> str:
    """The address of this computer's interface that reaches ``host`` (no packet is sent):
    the C-MOVE receiver listens there only, not on every interface."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.connect((host, port))
            return s.getsockname()[0]
    except OSError:
        return "127.0.0.1"


def addresses_of(host: str) -> set[str]:
    """The IP addresses a host name stands for (itself if it is one)."""
    try:
        return {a[4][0] for a in socket.getaddrinfo(host, None)}
    except OSError:
        return {host}
