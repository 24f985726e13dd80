"""The program's local study cache, and atomic imports into it (or into a folder the user
chose).

Retrieved instances are written into a private staging folder beside the target
(``.incoming-*``, 0700) and moved into place only when the retrieval has succeeded: a cancelled or
failed retrieval removes the staging folder and leaves the target as it was. Layout of a study
folder: ``<SeriesInstanceUID>/<SOPInstanceUID>.dcm``.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from ..errors import TfesiError
from ..paths import cache_dir

_SAFE = re.compile(r"[^0-9A-Za-z.]")


def _private_dir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    os.chmod(p, 0o700)
    return p


def cache_root() -> Path:
    """``cache_dir()/studies``, readable by the user only (it holds patient data); its size
    limit is kept by ``eviction.py``."""
    _private_dir(cache_dir())
    return _private_dir(cache_dir() / "studies")


def study_cache_dir(study_uid: str) -> Path:
    """Where a retrieved study lives in the cache (it may not exist yet)."""
    return cache_root() / safe_name(study_uid)


def safe_name(uid: str) -> str:
    """A UID as a file name (UIDs are digits and dots; anything else is replaced)."""
    name = _SAFE.sub("_", str(uid).strip())
    if not name or name in (".", ".."):
        raise TfesiError(f"{uid!r} is not a usable DICOM UID.")
    return name


def instance_path(folder: Path, series_uid: str, sop_uid: str) -> Path:
    return folder / safe_name(series_uid) / f"{safe_name(sop_uid)}.dcm"


class Staging:
    """A private folder for one import into ``target``. Use as a context manager:
    :meth:`commit` moves everything into ``target``; leaving the block without committing (an
    error, a cancel) removes the staging folder and everything in it."""

    def __init__(self, target: str | Path):
        self.target = Path(target)
        parent = self.target.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            self.path = Path(tempfile.mkdtemp(prefix=".incoming-", dir=parent))
        except OSError as e:
            raise TfesiError(f"Cannot write retrieved images here ({e.strerror}).",
                             parent) from e
        self.count = 0
        self.committed = False

    def write(self, series_uid: str, sop_uid: str, data: bytes) -> Path:
        """Write one instance (a whole DICOM file as bytes) into the staging folder."""
        p = instance_path(self.path, series_uid, sop_uid)
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(data)
        self.count += 1
        return p

    def commit(self) -> Path:
        """Move the staged files into the target: a rename of the whole folder when the target
        does not exist yet, else one rename per file (each file is either absent or whole)."""
        if not self.target.exists():
            os.replace(self.path, self.target)
        else:
            for f in sorted(self.path.rglob("*.dcm")):
                dest = self.target / f.relative_to(self.path)
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(f, dest)
            shutil.rmtree(self.path, ignore_errors=True)
        self.committed = True
        return self.target

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc) -> None:
        if not self.committed:
            self.discard()
