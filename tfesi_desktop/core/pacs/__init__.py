"""Hospital integration: query and retrieve studies from a PACS, and send results back.

One set of functions whatever the protocol: a node with a DIMSE address (``AET@HOST:PORT``) is
reached with pynetdicom (:mod:`.dimse`, guarded by :mod:`.link`), one with only a DICOMweb URL
with ``requests`` (:mod:`.web`). Retrieved studies go into the program's private study cache
(:func:`.cache.study_cache_dir`) or a folder the user chose, all or nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..errors import TfesiError
from .cache import cache_root, study_cache_dir
from .dimse import Retrieved, echo, find_patients, parse_date_range
from .nodes import (
    DEFAULT_AET,
    PacsError,
    PacsNode,
    add_node,
    last_used,
    load_nodes,
    make_node,
    origin_of,
    parse_address,
    remember_last,
    remember_origin,
    remove_node,
    resolve,
    spec_of,
)

__all__ = [
    "DEFAULT_AET", "PacsError", "PacsNode", "Retrieved", "add_node", "cache_root", "echo",
    "find_patients", "find_series", "find_studies", "last_used", "load_nodes", "make_node",
    "origin_of", "parse_address", "parse_date_range", "remember_last", "remember_origin",
    "remove_node", "resolve", "retrieve", "send_to_pacs", "spec_of", "study_cache_dir",
]


def _backend(node: PacsNode):
    from . import dimse, web

    return dimse if node.dimse else web


def find_studies(node: PacsNode | str, **filters) -> list[dict]:
    """Studies matching the filters (patient_id, patient_name, study_date, modality,
    accession, study_uid), newest first; each a dict with study_uid, patient_name, ..."""
    node = resolve(node)
    return _backend(node).find_studies(node, **filters)


def find_series(node: PacsNode | str, study_uid: str, **kwargs) -> list[dict]:
    node = resolve(node)
    return _backend(node).find_series(node, study_uid, **kwargs)


def retrieve(node: PacsNode | str, study_uid: str, dest: str | Path | None = None, **kwargs
             ) -> Retrieved:
    """Retrieve a study (``series_uid=`` one series) into ``dest``, by default the study cache.
    Other keywords: method ('get' or 'move'), move_port, calling_aet, progress, cancel."""
    node = resolve(node)
    into_cache = dest is None
    dest = Path(dest) if dest is not None else study_cache_dir(study_uid)
    got = _backend(node).retrieve(node, study_uid, dest, **kwargs)
    try:
        remember_origin(study_uid, spec_of(node))  # results go back there (the report dialog)
    except TfesiError:
        pass  # a convenience: never fails a retrieval
    if into_cache:  # the cache has a size limit: the oldest retrievals go first
        from .eviction import evict

        evict(cache_root(), keep=dest)
    return got


def send_to_pacs(files: Sequence[str | Path], node: PacsNode | str, *,
                 calling_aet: str = DEFAULT_AET, progress=None, cancel=None) -> int:
    """Store DICOM files (the SR, the encapsulated PDF, the secondary capture) on a PACS, by
    C-STORE or, for a DICOMweb-only node, STOW-RS. The number of files stored."""
    node = resolve(node)
    backend = _backend(node)
    return backend.store([Path(f) for f in files], node, calling_aet=calling_aet,
                         progress=progress, cancel=cancel)
