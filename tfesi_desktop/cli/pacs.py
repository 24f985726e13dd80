"""``tfesi pacs``: echo, find, get, store and the saved nodes, and ``tfesi cache``: the studies
retrieved; the same core functions (``core/pacs``) as the window's PACS dialog."""

from __future__ import annotations

import json
import sys
import time

from .common import Parser as _Parser
from .common import progress_printer as _progress

# --- tfesi cache ------------------------------------------------------------------------------

def _mb(n: int) -> str:
    return f"{n / 1024**2:,.1f} MB"


def cmd_cache(args) -> int:
    from ..core.pacs import cache_root
    from ..core.pacs.eviction import cached_studies, clear, limit_bytes

    root = cache_root()
    if args.cache_command == "clear":
        n, size = clear(root, older_than_days=args.older_than_days)
        result = {"removed_studies": n, "removed_bytes": size, "folder": str(root)}
        text = f"removed {n} retrieved studies ({_mb(size)}) from {root}"
    else:
        studies = cached_studies(root)
        used = sum(s.bytes for s in studies)
        result = {"folder": str(root), "studies": len(studies), "bytes": used,
                  "limit_bytes": limit_bytes()}
        text = (f"{len(studies)} retrieved studies, {_mb(used)} of {_mb(limit_bytes())} "
                f"(TFESI_CACHE_LIMIT_GB) in {root}")
    print(json.dumps(result, indent=1) if args.json else text)
    return 0


# --- tfesi pacs --------------------------------------------------------------------------------

def _node(args):
    """The node of ``--pacs``, with ``--tls``/``--ca-file`` when given."""
    from dataclasses import replace

    from ..core import pacs

    node = pacs.resolve(args.pacs)
    if getattr(args, "tls", False) or getattr(args, "ca_file", None):
        node = replace(node, tls=True, ca_file=args.ca_file or node.ca_file)
    return node


def cmd_pacs_echo(args) -> int:
    from ..core import pacs
    from ..core.pacs.dimse import echo

    node = _node(args)
    if node.dimse:
        ms = 1000 * echo(node, calling_aet=args.aet)
        text = f"C-ECHO to {node}: OK in {ms:.0f} ms"
    else:
        t0 = time.perf_counter()
        pacs.find_studies(node, study_uid="0")
        ms = 1000 * (time.perf_counter() - t0)
        text = f"DICOMweb service {node.url}: OK"
    print(json.dumps({"node": str(node), "ok": True, "milliseconds": round(ms, 1)}, indent=1)
          if args.json else text)
    return 0


def cmd_pacs_find(args) -> int:
    from ..core import pacs

    node = _node(args)
    if args.study:
        rows = pacs.find_series(node, args.study, calling_aet=args.aet)
    else:
        rows = pacs.find_studies(node, patient_id=args.patient_id,
                                 patient_name=args.patient_name, study_date=args.study_date,
                                 modality=args.modality, accession=args.accession,
                                 calling_aet=args.aet)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    for r in rows:
        if args.study:
            print(f"series {r['series_number'] or '?':>4}  {r['modality'] or '-':3} "
                  f"{r['instances'] or '?':>4} images  {r['description'] or ''}  "
                  f"{r['series_uid']}")
        else:
            mods = "/".join(r["modalities"] or []) or "-"
            print(f"{r['patient_name'] or '(no name)'}  ID {r['patient_id'] or '-'}  "
                  f"{r['study_date'] or '-'}  {mods}  {r['description'] or ''}  "
                  f"({r['instances'] or '?'} images)  {r['study_uid']}")
    print(f"{len(rows)} {'series' if args.study else 'studies'} found", file=sys.stderr)
    return 0


def cmd_pacs_get(args) -> int:
    from ..core import pacs

    node = _node(args)
    got = pacs.retrieve(node, args.study_uid, args.out, series_uid=args.series,
                        method="move" if args.move else "get", move_port=args.move_port,
                        move_host=args.move_host, calling_aet=args.aet,
                        progress=_progress("retrieving"))
    for note in got.notes:
        print(f"note: {note}", file=sys.stderr)
    if args.json:
        print(json.dumps({"instances": got.instances, "path": str(got.path),
                          "seconds": round(got.seconds, 3), "notes": list(got.notes)}, indent=1))
    else:
        print(f"{got.instances} instances retrieved into {got.path} in {got.seconds:.2f} s")
    return 0


def cmd_pacs_store(args) -> int:
    from ..core import pacs

    node = _node(args)
    n = pacs.send_to_pacs(args.files, node, calling_aet=args.aet, progress=_progress("sending"))
    print(json.dumps({"stored": n, "node": str(node)}, indent=1) if args.json
          else f"{n} files stored on {node}")
    return 0


def cmd_pacs_nodes(args) -> int:
    from dataclasses import asdict

    from ..core import pacs

    if args.nodes_command == "add":
        node = pacs.add_node(args.name, args.address, url=args.url, replace=args.replace,
                             tls=args.tls or bool(args.ca_file), ca_file=args.ca_file or "",
                             cert_file=args.cert_file or "", key_file=args.key_file or "")
        print(f"added {node}")
    elif args.nodes_command == "remove":
        pacs.remove_node(args.name)
        print(f"removed {args.name}")
    else:
        nodes = pacs.load_nodes()
        if args.json:
            print(json.dumps([asdict(n) for n in nodes.values()], indent=1))
        else:
            for n in nodes.values():
                print(n)
            if not nodes:
                print("no PACS node configured (tfesi pacs nodes add NAME AET@HOST:PORT)")
    return 0


def register(sub) -> None:
    """``pacs echo|find|get|store|nodes``."""
    s = sub.add_parser("pacs", help="query, retrieve and send studies: PACS (DIMSE or DICOMweb)")
    psub = s.add_subparsers(dest="pacs_command", required=True, parser_class=_Parser)

    def node_args(q):
        q.add_argument("--pacs", required=True, metavar="AET@HOST:PORT",
                       help="the PACS: AET@HOST:PORT, a DICOMweb URL or a configured node's name")
        q.add_argument("--aet", default="TFESI", help="this program's (calling) AE title")
        tls_args(q)

    def tls_args(q):
        q.add_argument("--tls", action="store_true", help="DIMSE over TLS (the PACS's "
                       "certificate is checked)")
        q.add_argument("--ca-file", metavar="PEM", help="the authority that signed the PACS's "
                       "certificate (default: the system's); implies --tls")

    q = psub.add_parser("echo", help="check that the PACS answers (C-ECHO)")
    node_args(q)
    q.add_argument("--json", action="store_true", help="print one JSON object")
    q.set_defaults(func=cmd_pacs_echo)
    q = psub.add_parser("find", help="search studies (C-FIND or QIDO-RS)")
    node_args(q)
    q.add_argument("--patient-id")
    q.add_argument("--patient-name", help="wildcards * and ? allowed, e.g. 'DOE^J*'")
    q.add_argument("--study-date", metavar="FROM-TO", help="YYYYMMDD or a range FROM-TO")
    q.add_argument("--modality", help="e.g. MR")
    q.add_argument("--accession", help="accession number")
    q.add_argument("--study", metavar="STUDY_UID", help="list this study's series instead")
    q.add_argument("--json", action="store_true", help="print JSON (with StudyInstanceUID)")
    q.set_defaults(func=cmd_pacs_find)
    q = psub.add_parser("get", help="retrieve a study (C-GET, C-MOVE or WADO-RS)")
    q.add_argument("study_uid", metavar="STUDY_UID")
    node_args(q)
    q.add_argument("--out", metavar="DIR", help="folder to retrieve into (default: the "
                   "program's study cache)")
    q.add_argument("--series", metavar="UID", help="only this series")
    q.add_argument("--move", action="store_true", help="C-MOVE to this program instead of "
                   "C-GET (the PACS must know --aet with this computer's address and "
                   "--move-port)")
    q.add_argument("--move-port", type=int, default=11113,
                   help="port on which this program receives the images of a C-MOVE")
    q.add_argument("--move-host", metavar="ADDRESS", help="local address on which it listens "
                   "(default: that of the interface that reaches the PACS; never all)")
    q.add_argument("--json", action="store_true", help="print one JSON object")
    q.set_defaults(func=cmd_pacs_get)
    q = psub.add_parser("store", help="send DICOM files to the PACS (C-STORE or STOW-RS)")
    q.add_argument("files", nargs="+", metavar="FILE")
    node_args(q)
    q.add_argument("--json", action="store_true", help="print one JSON object")
    q.set_defaults(func=cmd_pacs_store)
    q = psub.add_parser("nodes", help="the PACS nodes in your settings")
    nsub = q.add_subparsers(dest="nodes_command", required=True, parser_class=_Parser)
    n = nsub.add_parser("add", help="add a node")
    n.add_argument("name")
    n.add_argument("address", nargs="?", metavar="AET@HOST:PORT")
    n.add_argument("--url", help="the node's DICOMweb root URL")
    n.add_argument("--replace", action="store_true")
    tls_args(n)
    n.add_argument("--cert-file", metavar="PEM", help="this program's TLS certificate")
    n.add_argument("--key-file", metavar="PEM", help="its private key")
    n.set_defaults(func=cmd_pacs_nodes)
    n = nsub.add_parser("list", help="list the nodes")
    n.add_argument("--json", action="store_true")
    n.set_defaults(func=cmd_pacs_nodes)
    n = nsub.add_parser("remove", help="remove a node")
    n.add_argument("name")
    n.set_defaults(func=cmd_pacs_nodes)


def register_cache(sub) -> None:
    """``cache info|clear``."""
    s = sub.add_parser("cache", help="the cache of studies retrieved from a PACS")
    csub = s.add_subparsers(dest="cache_command", required=True, parser_class=_Parser)
    c = csub.add_parser("info", help="the cache's folder, size and limit")
    c.add_argument("--json", action="store_true", help="print one JSON object")
    c.set_defaults(func=cmd_cache)
    c = csub.add_parser("clear", help="remove retrieved studies (saved work is kept)")
    c.add_argument("--older-than-days", type=float, metavar="N",
                   help="only studies retrieved more than N days ago")
    c.add_argument("--json", action="store_true", help="print one JSON object")
    c.set_defaults(func=cmd_cache)
