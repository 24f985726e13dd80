"""The size limit of the PACS study cache (``cache.cache_root()``), and clearing it.

The cache holds studies retrieved from a PACS: they can be fetched again, so they live in the
per-user cache folder (``core/paths.py``) and the oldest retrievals go first when the cache
grows past its limit (``TFESI_CACHE_LIMIT_GB``, default 10). Saved work (ROIs, levels) is in the
data folder and is never touched here. Staging folders of retrievals in progress
(``.incoming-*``) are skipped.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..errors import TfesiError

log = logging.getLogger(__name__)
DEFAULT_LIMIT_GB = 10.0


@dataclass(frozen=True)
class CachedStudy:
    path: Path
    bytes: int
    retrieved: float  # the folder's modification time (s since the epoch)


def limit_bytes() -> int:
    """The cache's limit: ``$TFESI_CACHE_LIMIT_GB`` gigabytes, default 10."""
    raw = os.environ.get("TFESI_CACHE_LIMIT_GB", "").strip()
    try:
        gb = float(raw) if raw else DEFAULT_LIMIT_GB
    except ValueError:
        raise TfesiError(f"TFESI_CACHE_LIMIT_GB={raw!r} is not a number of gigabytes.") from None
    if gb < 0:
        raise TfesiError("TFESI_CACHE_LIMIT_GB cannot be negative.")
    return int(gb * 1024**3)


def _size(folder: Path) -> int:
    total = 0
    for root, _dirs, names in os.walk(folder):  # os.walk does not follow links
        for n in names:
            try:
                total += os.lstat(os.path.join(root, n)).st_size
            except OSError:
                pass
    return total


def cached_studies(root: Path) -> list[CachedStudy]:
    """The studies in the cache, oldest retrieval first."""
    if not root.is_dir():
        return []
    out = []
    for p in root.iterdir():
        if p.is_dir() and not p.is_symlink() and not p.name.startswith("."):
            out.append(CachedStudy(p, _size(p), p.stat().st_mtime))
    return sorted(out, key=lambda s: s.retrieved)


def evict(root: Path, *, limit: int | None = None, keep: Path | None = None) -> list[Path]:
    """Remove the oldest studies until the cache is within ``limit`` bytes (default
    :func:`limit_bytes`); ``keep`` (the study just retrieved) is never removed. Returns what was
    removed."""
    limit = limit_bytes() if limit is None else limit
    studies = cached_studies(root)
    total = sum(s.bytes for s in studies)
    removed = []
    for s in studies:
        if total <= limit:
            break
        if keep is not None and s.path.resolve() == Path(keep).resolve():
            continue
        shutil.rmtree(s.path, ignore_errors=True)
        total -= s.bytes
        removed.append(s.path)
        log.info("cache over its limit: removed the oldest retrieved study (%d bytes)", s.bytes)
    return removed


def clear(root: Path, *, older_than_days: float | None = None) -> tuple[int, int]:
    """Remove every cached study (or those retrieved more than ``older_than_days`` ago).
    Returns (studies, bytes) removed."""
    import time

    cutoff = None if older_than_days is None else time.time() - older_than_days * 86400
    n = size = 0
    for s in cached_studies(root):
        if cutoff is None or s.retrieved < cutoff:
            shutil.rmtree(s.path, ignore_errors=True)
            n, size = n + 1, size + s.bytes
    return n, size
