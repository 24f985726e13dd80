"""The program's local study cache, and atomic imports into it (or into a folder the user
chose).

Retrieved instances are written into a private staging folder beside the target
(``.incoming-<pid>-*``, 0700) and moved into place only when the retrieval has succeeded: a
cancelled or failed retrieval removes the staging folder and leaves the target as it was, and the
staging folder of a killed run is removed by the next one (:func:`~..fileio.sweep_stale`).
Layout of a study folder: ``<SeriesInstanceUID>/<SOPInstanceUID>.dcm``, names made only from
values that are valid UIDs (:func:`is_uid`), one file per SOP Instance UID; the commit never
follows a link planted in the target (it opens each folder with ``O_NOFOLLOW``).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
from pathlib import Path

from ..errors import TfesiError
from ..paths import cache_dir

_UID = re.compile(r"[0-9]+(\.[0-9]+)*")
STAGING_PREFIX = ".incoming-"
_O_DIR = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)


class Refused(Exception):  # noqa: N818 - not an error: one instance is turned away
    """One instance is not stored; ``str()`` says why."""


def is_uid(text) -> bool:
    """A DICOM UID (PS3.5 9.1): digits in dot-separated components, at most 64 characters."""
    return isinstance(text, str) and len(text) <= 64 and _UID.fullmatch(text) is not None


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
    if not is_uid(str(study_uid).strip()):
        raise TfesiError(f"{study_uid!r} is not a valid Study Instance UID.")
    return cache_root() / str(study_uid).strip()


class Staging:
    """A private folder for one import into ``target``. Use as a context manager:
    :meth:`commit` moves everything into ``target``; leaving the block without committing (an
    error, a cancel) removes the staging folder and everything in it."""

    def __init__(self, target: str | Path):
        from ..fileio import remember_folder, sweep_stale

        self.target = Path(target)
        parent = self.target.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            sweep_stale(parent)  # what a killed retrieval left here
            remember_folder(parent)  # and the next start cleans up after this one
            self.path = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-",
                                              dir=parent))
        except OSError as e:
            raise TfesiError(f"Cannot write retrieved images here ({e.strerror}).",
                             parent) from e
        self.count = 0
        self.committed = False
        self._staged: dict[str, tuple[str, Path]] = {}  # SOP Instance UID -> (series, file)
        self._lock = threading.Lock()

    def write(self, series_uid, sop_uid, data: bytes) -> Path | None:
        """Write one instance (a whole DICOM file as bytes) into the staging folder; None when
        the very same instance was sent before. :class:`Refused` when a UID is not a valid UID
        or another instance has this SOP Instance UID; OSError from the disk."""
        series_uid, sop_uid = str(series_uid or "").strip(), str(sop_uid or "").strip()
        for what, uid in (("Series", series_uid), ("SOP", sop_uid)):
            if not is_uid(uid):
                raise Refused(f"its {what} Instance UID {uid[:70]!r} is not a valid DICOM UID")
        with self._lock:
            if sop_uid in self._staged:
                series0, p0 = self._staged[sop_uid]
                if series0 == series_uid and p0.read_bytes() == data:
                    return None
                raise Refused(f"another instance with the SOP Instance UID {sop_uid} was "
                              "received already")
            p = self.path / series_uid / f"{sop_uid}.dcm"
            p.parent.mkdir(exist_ok=True)
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0),
                         0o600)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
            except BaseException:
                p.unlink(missing_ok=True)
                raise
            self._staged[sop_uid] = (series_uid, p)
            self.count += 1
        return p

    def commit(self) -> Path:
        """Move the staged files into the target: a rename of the whole folder when the target
        does not exist yet, else one rename per file (each file is either absent or whole)
        into series folders opened without following links; TfesiError before anything moves
        when a link (or a file) is where a series folder must be."""
        if not self.target.exists() and not self.target.is_symlink():
            os.replace(self.path, self.target)
            self.committed = True
            return self.target
        root = os.open(self.target, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        fds: dict[str, int] = {}
        try:
            for series in sorted({s for s, _ in self._staged.values()}):
                try:
                    os.mkdir(series, 0o700, dir_fd=root)
                except FileExistsError:
                    pass
                try:
                    fds[series] = os.open(series, _O_DIR, dir_fd=root)
                except OSError as e:
                    raise TfesiError(f"The target folder holds a link or a file named {series} "
                                     "where that series' folder goes; nothing was imported "
                                     "(links are not followed).", self.target) from e
            for sop, (series, f) in sorted(self._staged.items()):
                os.replace(f, f"{sop}.dcm", dst_dir_fd=fds[series])
        finally:
            for fd in fds.values():
                os.close(fd)
            os.close(root)
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
