"""Safe file writes: one helper for every file the program writes.

:func:`write_atomically` writes a file so that readers see either the old content or the whole
new content, never a part: the data goes to an exclusive temporary file with a random name in the
target's folder (created with ``O_CREAT | O_EXCL | O_NOFOLLOW``, so a planted file or symlink is
never written through), is flushed to disk, and is renamed over the target; the folder is then
flushed so that the rename survives a power cut. On any failure the temporary file is removed
and the target is left as it was.

``private=True`` is for files that hold patient data (DICOM copies, state, settings, UID maps):
the file is readable by its owner only (0600), and a folder the call creates is 0700.
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

__all__ = ["write_atomically", "private_dir", "remove_stale_temporaries", "TEMP_MARK"]

TEMP_MARK = ".tfesi-tmp-"  # temporary files are named ".<target name>.tfesi-tmp-<random>"
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
    for _ in range(16):
        tmp = folder / f".{target.name[:80]}{TEMP_MARK}{secrets.token_hex(8)}"
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
    regular files named with :data:`TEMP_MARK`, last modified over ``older_than_s`` ago (a write
    under way in another process is younger). Never follows links; returns how many went."""
    cutoff, removed = time.time() - older_than_s, 0
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
                      and e.stat(follow_symlinks=False).st_mtime < cutoff):
                    os.unlink(e.path)
                    removed += 1
            except OSError:
                continue
    return removed
