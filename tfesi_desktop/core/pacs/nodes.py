"""PACS nodes: where the program queries, retrieves and sends.

A node is written ``AET@HOST:PORT`` (DIMSE: C-ECHO, C-FIND, C-GET, C-MOVE, C-STORE) or as an
``http(s)://`` URL of a DICOMweb service (QIDO-RS, WADO-RS, STOW-RS). Named nodes live in the
user's settings, ``config_dir()/pacs_nodes.json``, readable by the user only (0600), written
atomically.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import TfesiError
from ..paths import config_dir, data_dir

NODES_FILE = "pacs_nodes.json"
DEFAULT_AET = "TFESI"
_AET = re.compile(r"^[\x20-\x7e]{1,16}$")


class PacsError(TfesiError):
    """A PACS could not be reached, refused the request, or answered with a failure."""


@dataclass(frozen=True)
class PacsNode:
    """One PACS: a DIMSE address (``aet``, ``host``, ``port``) and/or a DICOMweb ``url``."""

    name: str = ""
    aet: str = ""
    host: str = ""
    port: int = 0
    url: str = ""  # DICOMweb root, e.g. http://pacs:8042/dicom-web
    tls: bool = False  # DIMSE over TLS, the PACS's certificate checked (core/pacs/link.py)
    ca_file: str = ""  # the authority that signed the PACS's certificate (default: the system's)
    cert_file: str = ""  # this program's certificate, for a PACS that asks for one
    key_file: str = ""

    @property
    def dimse(self) -> bool:
        return bool(self.aet and self.host and self.port)

    def __str__(self) -> str:
        parts = []
        if self.dimse:
            parts.append(f"{self.aet}@{self.host}:{self.port}" + (" TLS" if self.tls else ""))
        if self.url:
            parts.append(self.url)
        label = " ".join(parts) or "(empty)"
        return f"{self.name} ({label})" if self.name else label


def check_aet(aet: str, what: str = "AE title") -> str:
    aet = aet.strip()
    if not _AET.match(aet) or "\\" in aet:
        raise PacsError(f"The {what} {aet!r} is not valid: 1 to 16 plain characters, no "
                        "backslash.")
    return aet


def parse_address(text: str) -> PacsNode:
    """``AET@HOST:PORT`` or a DICOMweb ``http(s)://`` URL (PacsError otherwise)."""
    text = text.strip()
    if text.startswith(("http://", "https://")):
        return PacsNode(url=text.rstrip("/"))
    m = re.match(r"^(?P<aet>[^@]+)@(?P<host>\[[^\]]+\]|[^:@]+):(?P<port>\d+)$", text)
    if not m:
        raise PacsError(f"{text!r} is not a PACS address: write AET@HOST:PORT (for example "
                        "ORTHANC@pacs.example.org:4242) or a DICOMweb URL.")
    port = int(m["port"])
    if not 0 < port < 65536:
        raise PacsError(f"The port {port} is not between 1 and 65535.")
    return PacsNode(aet=check_aet(m["aet"], "called AE title"), host=m["host"].strip("[]"),
                    port=port)


def _file() -> Path:
    return config_dir() / NODES_FILE


def load_nodes() -> dict[str, PacsNode]:
    """The configured nodes by name (empty when none are configured)."""
    f = _file()
    if not f.is_file():
        return {}
    try:
        raw = json.loads(f.read_text())
        known = set(PacsNode.__dataclass_fields__)
        return {n: PacsNode(**{**{k: x for k, x in v.items() if k in known}, "name": n})
                for n, v in raw.items()}
    except (OSError, ValueError, TypeError) as e:
        raise PacsError(f"The PACS settings cannot be read ({e}); fix or remove the file.",
                        f) from e


def _save(nodes: dict[str, PacsNode]) -> None:
    from ..fileio import private_dir, write_atomically

    private_dir(config_dir())  # the PACS settings (and the window's recent paths)
    data = {n: {k: v for k, v in asdict(node).items() if k != "name"}
            for n, node in sorted(nodes.items())}
    write_atomically(_file(), json.dumps(data, indent=1).encode(), private=True)


def add_node(name: str, address: str | None = None, *, url: str | None = None,
             replace: bool = False, tls: bool = False, ca_file: str = "", cert_file: str = "",
             key_file: str = "") -> PacsNode:
    """Store a node under ``name``: a DIMSE address, a DICOMweb URL, or both; ``tls`` (with
    the authority ``ca_file`` and this program's ``cert_file``/``key_file``) for DIMSE over
    TLS."""
    name = name.strip()
    if not re.match(r"^[A-Za-z0-9_.-]{1,64}$", name):
        raise PacsError(f"The node name {name!r} may only hold letters, digits, '.', '_' and "
                        "'-'.")
    node = make_node(address, url=url, tls=tls, ca_file=ca_file, cert_file=cert_file,
                     key_file=key_file, name=name)
    nodes = load_nodes()
    if name in nodes and not replace:
        raise PacsError(f"A PACS node named {name!r} exists already; remove it first or "
                        "add --replace.")
    nodes[name] = node
    _save(nodes)
    return node


def make_node(address: str | None = None, *, url: str | None = None, tls: bool = False,
              ca_file: str = "", cert_file: str = "", key_file: str = "",
              name: str = "") -> PacsNode:
    """A checked node from its parts (PacsError saying which part is wrong)."""
    if not address and not url:
        raise PacsError("Give the node's address AET@HOST:PORT, a DICOMweb --url, or both.")
    node = parse_address(address) if address else PacsNode()
    if url:
        url = url.strip()
        if not url.startswith(("http://", "https://")):
            raise PacsError(f"The DICOMweb URL {url!r} must start with http:// or https://.")
    for what, f in (("authority", ca_file), ("certificate", cert_file), ("key", key_file)):
        if f and not Path(f).is_file():
            raise PacsError(f"The TLS {what} file {f!r} does not exist.")
    if (ca_file or cert_file or key_file) and not tls:
        raise PacsError("Certificate files are only used with TLS (--tls).")
    return PacsNode(name=name, aet=node.aet, host=node.host, port=node.port,
                    url=(url or node.url).rstrip("/"), tls=bool(tls),
                    ca_file=str(ca_file or ""), cert_file=str(cert_file or ""),
                    key_file=str(key_file or ""))


def remove_node(name: str) -> None:
    nodes = load_nodes()
    if name not in nodes:
        raise PacsError(f"No PACS node is named {name!r} (see `tfesi pacs nodes list`).")
    del nodes[name]
    _save(nodes)


def resolve(spec: str | PacsNode) -> PacsNode:
    """A node from ``--pacs``: a configured node's name, ``AET@HOST:PORT`` or a URL."""
    if isinstance(spec, PacsNode):
        return spec
    spec = spec.strip()
    if "@" in spec or spec.startswith(("http://", "https://")):
        return parse_address(spec)
    nodes = load_nodes()
    if spec in nodes:
        return nodes[spec]
    known = ", ".join(sorted(nodes)) or "none configured"
    raise PacsError(f"No PACS node is named {spec!r} (known: {known}); give AET@HOST:PORT "
                    "or add it with `tfesi pacs nodes add`.")


# --- what the window remembers: the node last used, and where each study came from ----------

PACS_STATE_FILE = "pacs_state.json"
MAX_ORIGINS = 2000


def _state() -> dict:
    f = data_dir() / PACS_STATE_FILE
    try:
        raw = json.loads(f.read_text()) if f.is_file() else {}
    except (OSError, ValueError):
        return {}  # damaged: forgotten, rewritten on the next change
    return raw if isinstance(raw, dict) else {}


def _save_state(state: dict) -> None:
    from ..fileio import private_dir, write_atomically

    private_dir(data_dir())
    write_atomically(data_dir() / PACS_STATE_FILE, json.dumps(state, indent=1).encode(),
                     private=True)


def remember_last(spec: str) -> None:
    """The node (a name, an address or a URL) last searched or retrieved from."""
    state = _state()
    state["last"] = str(spec)
    _save_state(state)


def last_used() -> str | None:
    v = _state().get("last")
    return v if isinstance(v, str) and v else None


def remember_origin(study_uid: str, spec: str) -> None:
    """Note the node a study was retrieved from, so that its results can be sent back there."""
    state = _state()
    origins = state.get("origins") if isinstance(state.get("origins"), dict) else {}
    origins.pop(study_uid, None)
    origins[study_uid] = str(spec)
    state["origins"] = dict(list(origins.items())[-MAX_ORIGINS:])
    _save_state(state)


def origin_of(study_uid: str | None) -> str | None:
    """The node the study was retrieved from (None when unknown)."""
    origins = _state().get("origins")
    v = origins.get(study_uid) if isinstance(origins, dict) and study_uid else None
    return v if isinstance(v, str) and v else None


def spec_of(node: PacsNode) -> str:
    """How to name ``node`` again: its saved name, else its address or URL."""
    if node.name:
        return node.name
    return f"{node.aet}@{node.host}:{node.port}" if node.dimse else node.url
