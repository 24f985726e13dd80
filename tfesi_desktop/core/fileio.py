"""Safe file writes: one helper for every file the program writes.

:func:`write_atomically` writes a file so that readers see either the old content or the whole
new content, never a part: the data goes to an exclusive temporary file with a random name in the
target's folder (created with ``O_CREAT | O_EXCL | O_NOFOLLOW``, so a planted file or symlink is
never written through), is flushed to disk, and is renamed over the target; the folder is then
flushed so that the rename survives a power cut. On any failure the temporary file is removed
and the target is left as it was.

``private=True`` is for files that hold patient data (DICOM copies, state, settings, UID maps):
the file is readable by its owner only (0600), and a folder the call creates is 0700.

Nothing is left behind by a killed run (kill -9, a power cut): temporary files carry the writing
process's id (``.<name>.tfesi-tmp-<pid>-<random>``), retrieval staging folders too
(``.incoming-<pid>-*``, core/pacs/cache.py); every folder the program writes into outside its
data folder is remembered (:func:`remember_folder`, ``data_dir()/written-folders.txt``), and
:func:`clean_after_killed_runs`, called at every start of the window and of the command line,
removes there what a process that no longer runs left (:func:`sweep_stale`).
"""

from __future__ import annotations

import os
import secrets
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from .errors import TfesiError

__all__ = ["write_atomically", "private_dir", "remove_stale_temporaries", "TEMP_MARK",
           "sweep_stale", "remember_folder", "clean_after_killed_runs"]

TEMP_MARK = ".tfesi-tmp-"  # temporary files: ".<target name>.tfesi-tmp-<pid>-<random>"
STAGING_MARK = ".incoming-"  # retrieval staging folders: ".incoming-<pid>-<random>"
WRITTEN_FOLDERS = "written-folders.txt"
MAX_REMEMBERED = 200
_remembered: set[str] = set()
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_BINARY = getattr(os, "O_BINARY", 0)  # Windows
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _make_dirs(p: Path) -> None:
    """Create ``p`` and its missing parents as 0700 folders; existing ones are left alone."""
    if p.is_symlink():
        raise TfesiError("This folder is a symbolic link; the program keeps private data only "
                         "in a real folder.", p)
    if p.exists() and not p.is_dir():
        raise TfesiError("A file is in the way of a folder the program needs.", p)
    missing = []
    q = p
    while not q.exists() and q != q.parent:
        missing.append(q)
        q = q.parent
    try:
        for d in reversed(missing):
            try:
                os.mkdir(d, 0o700)
                os.chmod(d, 0o700)  # whatever the umask
            except FileExistsError:
                pass
    except OSError as e:
        raise TfesiError(f"The folder cannot be created ({e.strerror}).", p) from e
    if not p.is_dir():
        raise TfesiError("The folder cannot be created.", p)


def private_dir(path: str | os.PathLike) -> Path:
    """Make ``path`` (and missing parents) a folder readable by its owner only, and return it.

    Folders this call creates are 0700, and ``path`` itself is set to 0700 if it already existed
    (use it for the program's own data folders, not for a folder the user chose). Raises
    :class:`TfesiError` if the path is a symlink or a file, or cannot be created.
    """
    p = Path(path)
    _make_dirs(p)
    try:
        st = os.stat(p, follow_symlinks=False)
        owner = not hasattr(os, "getuid") or st.st_uid == os.getuid()
        if owner and stat.S_IMODE(st.st_mode) != 0o700:
            os.chmod(p, 0o700)
    except OSError as e:
        raise TfesiError(f"The folder cannot be protected ({e.strerror}).", p) from e
    return p


def _fsync_dir(folder: Path) -> None:
    if os.name == "nt":  # folders cannot be opened for fsync on Windows
        return
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems (and network shares) do not support it
    finally:
        os.close(fd)


def write_atomically(path: str | os.PathLike, data: bytes | Callable[[BinaryIO], object], *,
                     private: bool) -> Path:
    """Write ``data`` to ``path`` atomically (see the module docstring) and return the path.

    ``data`` is the bytes to write, or a callable that writes to the binary file object it is
    given (``lambda f: image.save(f, format="PNG")``). With ``private=True`` the file is 0600 and
    missing folders are created 0700 (an existing folder keeps its mode: see
    :func:`private_dir`); otherwise the file gets the usual umask-based mode and the
    folder must exist. Raises :class:`TfesiError` (with the target path) when the file cannot be
    written; an exception raised by the callable is passed on unchanged. Either way no temporary
    file is left and an existing target is unchanged.
    """
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if private:
        _make_dirs(folder)
    elif not folder.is_dir():
        raise TfesiError("The folder to write into does not exist.", folder)
    if target.is_dir():
        raise TfesiError("This is a folder; a file name is needed.", target)
    mode = 0o600 if private else 0o666
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_BINARY | _O_CLOEXEC
    if not private:
        remember_folder(folder)
    for _ in range(16):
        tmp = folder / f".{target.name[:80]}{TEMP_MARK}{os.getpid()}-{secrets.token_hex(8)}"
        try:
            fd = os.open(tmp, flags, mode)
            break
        except FileExistsError:
            continue
        except OSError as e:
            raise TfesiError(f"The file cannot be written here ({e.strerror}); nothing was "
                             "changed.", target) from e
    else:  # pragma: no cover - 16 collisions of 64 random bits
        raise TfesiError("No temporary file could be created; nothing was changed.", target)
    try:
        if private and hasattr(os, "fchmod"):
            os.fchmod(fd, 0o600)  # 0600 whatever the umask
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except OSError as e:
        _remove(tmp)
        raise TfesiError(f"The file could not be written ({e.strerror}); an earlier file of "
                         "that name was left as it was.", target) from e
    except BaseException:
        _remove(tmp)
        raise
    _fsync_dir(folder)
    return target


def _remove(p: Path) -> None:
    try:
        os.unlink(p)
    except OSError:
        pass


def remove_stale_temporaries(folder: str | os.PathLike, *, older_than_s: float = 3600,
                             max_depth: int = 4) -> int:
    """Delete the temporary files :func:`write_atomically` left in ``folder`` (and its
    subfolders, ``max_depth`` levels) when its process was killed before it could remove them:
    regular files named with :data:`TEMP_MARK` whose process no longer runs, or (without a process
    id) last modified over ``older_than_s`` ago. Never follows links; returns how many went."""
    removed = 0
    stack = [(Path(folder), 0)]
    while stack:
        d, depth = stack.pop()
        try:
            entries = list(os.scandir(d))
        except OSError:
            continue
        for e in entries:
            try:
                if e.is_dir(follow_symlinks=False):
                    if depth < max_depth:
                        stack.append((Path(e.path), depth + 1))
                elif (TEMP_MARK in e.name and e.is_file(follow_symlinks=False)
                      and _gone(_pid_of(e.name, TEMP_MARK), e.stat(follow_symlinks=False).st_mtime,
                                older_than_s)):
                    os.unlink(e.path)
                    removed += 1
            except OSError:
                continue
    return removed


# --- what killed runs left ---------------------------------------------------------------------

def _pid_of(name: str, mark: str) -> int | None:
    """The process id written into a temporary's or staging folder's name, None if none."""
    rest = name.split(mark, 1)[1] if mark in name else ""
    head = rest.split("-", 1)[0]
    return int(head) if head.isdigit() and "-" in rest else None


def _gone(pid: int | None, mtime: float, older_than_s: float) -> bool:
    """Left by a dead process: its process no longer runs (or the entry has no process id and
    is older than ``older_than_s``; a process id reused by another program counts after a
    day)."""
    age = time.time() - mtime
    if pid is None:
        return age > older_than_s
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        pass  # it exists (another user's): judge by age
    return age > 86400


def sweep_stale(folder: str | os.PathLike, *, older_than_s: float = 3600) -> int:
    """Remove, in ``folder`` itself (not below), the temporary files and retrieval staging
    folders of processes that no longer run. Links are never followed; only the user's own
    entries are touched. The number removed."""
    import shutil

    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    uid = os.getuid() if hasattr(os, "getuid") else None
    for e in entries:
        try:
            st = e.stat(follow_symlinks=False)
            if uid is not None and st.st_uid != uid:
                continue
            if TEMP_MARK in e.name and stat.S_ISREG(st.st_mode):
                if _gone(_pid_of(e.name, TEMP_MARK), st.st_mtime, older_than_s):
                    os.unlink(e.path)
                    removed += 1
            elif e.name.startswith(STAGING_MARK) and stat.S_ISDIR(st.st_mode):
                if _gone(_pid_of(e.name, STAGING_MARK), st.st_mtime, older_than_s):
                    shutil.rmtree(e.path, ignore_errors=True)
                    removed += 1
        except OSError:
            continue
    return removed


def _record() -> Path:
    from .paths import data_dir

    return data_dir() / WRITTEN_FOLDERS


def remember_folder(folder: str | os.PathLike) -> None:
    """Note a folder the program writes into (a report's, a retrieval's), so that the next
    start cleans what a killed run leaves there. Once per folder and process; never fatal."""
    try:
        path = os.path.abspath(folder)
        if path in _remembered or "\n" in path:
            return
        _remembered.add(path)
        from .paths import data_dir

        root = data_dir()
        if os.path.commonpath([path, os.path.abspath(root)]) == os.path.abspath(root):
            return  # the data folder is cleaned whole at start
        _make_dirs(root)
        fd = os.open(_record(), os.O_WRONLY | os.O_CREAT | os.O_APPEND | _O_NOFOLLOW
                     | _O_CLOEXEC, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8", errors="surrogateescape") as f:
            f.write(path + "\n")
    except (OSError, ValueError, TfesiError):
        pass


def clean_after_killed_runs() -> int:
    """At start: remove what killed runs left in the data folder (and its subfolders) and in
    every folder remembered by :func:`remember_folder`; the record is pruned to the
    :data:`MAX_REMEMBERED` most recent folders that still exist. The number removed; never
    fails (a clean-up must not stop the program)."""
    try:
        return _clean_after_killed_runs()
    except (OSError, ValueError, TfesiError):
        return 0


def _clean_after_killed_runs() -> int:
    from .paths import cache_dir, data_dir

    root = data_dir()
    removed = remove_stale_temporaries(root) + sweep_stale(root)
    subfolders = []
    for top in (root, cache_dir()):  # the study cache holds its retrievals' staging folders
        try:
            subfolders += [e.path for e in os.scandir(top) if e.is_dir(follow_symlinks=False)]
        except OSError:
            pass
    for sub in subfolders:
        removed += sweep_stale(sub)
    rec = _record()
    try:
        with open(rec, encoding="utf-8", errors="surrogateescape") as f:
            lines = f.read(1 << 20).splitlines()
    except OSError:
        return removed
    folders = list(dict.fromkeys(reversed([ln for ln in lines if os.path.isabs(ln)])))
    kept = []
    for d in folders[:MAX_REMEMBERED]:
        if os.path.isdir(d) and not os.path.islink(d):
            removed += sweep_stale(d)
            kept.append(d)
    pruned = "".join(d + "\n" for d in reversed(kept))
    if pruned != "".join(ln + "\n" for ln in lines):  # rewritten only when it changes
        try:
            write_atomically(rec, pruned.encode("utf-8", "surrogateescape"), private=True)
        except TfesiError:
            pass
    return removed
