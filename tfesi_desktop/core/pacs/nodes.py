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
from ..paths import config_dir

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

    @property
    def dimse(self) -> bool:
        return bool(self.aet and self.host and self.port)

    def __str__(self) -> str:
        parts = []
        if self.dimse:
            parts.append(f"{self.aet}@{self.host}:{self.port}")
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
        return {n: PacsNode(**{**v, "name": n}) for n, v in raw.items()}
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
             replace: bool = False) -> PacsNode:
    """Store a node under ``name``: a DIMSE address, a DICOMweb URL, or both."""
    name = name.strip()
    if not re.match(r"^[A-Za-z0-9_.-]{1,64}$", name):
        raise PacsError(f"The node name {name!r} may only hold letters, digits, '.', '_' and "
                        "'-'.")
    if "@" in name:
        raise PacsError("A node name cannot contain '@'.")
    if not address and not url:
        raise PacsError("Give the node's address AET@HOST:PORT, a DICOMweb --url, or both.")
    node = parse_address(address) if address else PacsNode()
    if url:
        if not url.startswith(("http://", "https://")):
            raise PacsError(f"The DICOMweb URL {url!r} must start with http:// or https://.")
        node = PacsNode(aet=node.aet, host=node.host, port=node.port, url=url.rstrip("/"))
    nodes = load_nodes()
    if name in nodes and not replace:
        raise PacsError(f"A PACS node named {name!r} exists already; remove it first or "
                        "add --replace.")
    node = PacsNode(name=name, aet=node.aet, host=node.host, port=node.port, url=node.url)
    nodes[name] = node
    _save(nodes)
    return node


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
