"""Find DICOM images in folders, DICOMDIRs, ZIP files or file lists, reading headers only.

Built to survive any one file (issue 12). Non-DICOM files are skipped silently; everything else
that cannot be used (unreadable files and folders, special files, DICOM files whose header or
pixel data make no sense, DICOMDIR references leading out of their folder, unsafe ZIP entries)
is skipped and listed with the reason, and the rest of the input is still read:

- only regular files are opened (a FIFO or a device never blocks the scan);
- folders are walked iteratively, each real folder once; a folder link is followed only when it
  stays inside the folder given and does not lead to a folder that holds it (a link to `/` or to
  an ancestor is listed as skipped, with the reason);
- every per-file step (reading the header, converting its values, geometry, the pixel data size
  check) runs inside the per-file error handling;
- the declared image size (frames x rows x columns x samples x bits) must match the length of the
  pixel data before anything is decoded;
- a deflated dataset (Deflated Explicit VR Little Endian, which pydicom inflates whole in
  memory) is inflated once in bounded chunks first, and refused beyond the ZIP limits' ratio;
- ZIP files are unpacked with limits on entries, total size and compression ratio, refusing
  entries that would land outside the private (0700) temporary folder, which is removed on error,
  on cancel and when nothing was found, else when the scan result is released.

Slices are grouped into studies and series, series are split into stacks where orientation or
matrix size change, and each stack is sorted along its slice normal.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import stat
import struct
import tempfile
import weakref
import zipfile
import zlib
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import UID

from ..errors import (
    Cancelled,
    DicomReadError,
    InputNotFoundError,
    NoImagesError,
    TfesiError,
)
from ..geometry import SliceGeometry
from .model import ScanResult, SliceRef, Stack, Study

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
CancelCheck = Callable[[], bool]
Skipped = list[tuple[Path, str]]

_MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
_DICOM_SUFFIXES = {".dcm", ".dicom", ".ima"}

# limits
MAX_DEPTH = 64  # folder levels below an input folder
ZIP_MAX_ENTRIES = 50_000
ZIP_MAX_TOTAL = 8 << 30  # bytes unpacked from one ZIP file
ZIP_MAX_RATIO = 200  # uncompressed / compressed size, for entries over ZIP_RATIO_FROM bytes
ZIP_RATIO_FROM = 1 << 20
MAX_FRAME_BYTES = 1 << 28  # 256 MiB decoded: a compressed frame may not claim more
MAX_INFLATED_BYTES = 1 << 30  # a deflated dataset inflates to at most 1 GiB (and the ZIP ratio)
_DEFLATED = b"1.2.840.10008.1.2.1.99"
ORTHONORMAL_TOLERANCE = 0.01  # |1 - norm| and |row . column| of ImageOrientationPatient

_PIXEL_TAGS = {(0x7FE0, 0x0010), (0x7FE0, 0x0008), (0x7FE0, 0x0009)}
_LONG_VRS = {b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"SQ", b"UN", b"UC", b"UR", b"UT", b"SV",
             b"UV"}
_UNDEFINED = 0xFFFFFFFF


# --- opening files ----------------------------------------------------------------------------

@contextmanager
def open_regular(path: Path):
    """Open ``path`` for binary reading if, and only if, it is a regular file.

    The file is opened without blocking and checked on the open descriptor, so that a FIFO, a
    device or a file swapped for one after a check is never read. Raises
    :class:`DicomReadError` otherwise.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0) | getattr(
        os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        raise DicomReadError(f"This file cannot be opened ({e.strerror}).", path) from e
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise DicomReadError("This is not a regular file (a device, pipe or socket), so it "
                                 "was not read.", path)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        f = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with f:
        yield f


@contextmanager
def open_dicom(path: Path):
    """:func:`open_regular`, and a deflated dataset's inflated size bounded (see
    :func:`check_inflated_size`) before pydicom, which inflates it whole, reads it."""
    with open_regular(path) as f:
        try:
            check_inflated_size(f)
        except DicomReadError as e:
            raise DicomReadError(e.message, path) from e
        yield f


def _file_meta_end(f) -> int | None:
    """Offset of the first byte after a Part-10 file's meta group (explicit VR little endian,
    group 0002), or None when the file has no ``DICM`` preamble."""
    f.seek(128)
    if f.read(4) != b"DICM":
        return None
    while True:
        pos = f.tell()
        head = f.read(8)
        if len(head) < 8 or struct.unpack("<H", head[:2])[0] != 0x0002:
            return pos
        if head[4:6] in _LONG_VRS:
            extra = f.read(4)
            if len(extra) < 4:
                return pos
            (length,) = struct.unpack("<L", extra)
        else:
            (length,) = struct.unpack("<H", head[6:8])
        f.seek(length, os.SEEK_CUR)


def check_inflated_size(f, chunk: int = 1 << 20) -> None:
    """Raise :class:`DicomReadError` when ``f`` is a deflated Part-10 file whose dataset
    inflates to more than ``ZIP_MAX_RATIO`` times its compressed size (above ``ZIP_RATIO_FROM``)
    or more than ``MAX_INFLATED_BYTES``: a few kilobytes can claim gigabytes (a "deflate bomb").
    Inflates in chunks, so memory stays bounded; other files cost one short read. Leaves ``f``
    at its start."""
    try:
        head = f.read(4096)
        if head[128:132] != b"DICM" or _DEFLATED not in head:
            return
        start = _file_meta_end(f)
        if start is None:
            return
        compressed = f.seek(0, os.SEEK_END) - start
        limit = min(MAX_INFLATED_BYTES, max(ZIP_RATIO_FROM, ZIP_MAX_RATIO * compressed))
        f.seek(start)
        inflate, total = zlib.decompressobj(-zlib.MAX_WBITS), 0
        while data := f.read(chunk):
            while data:
                total += len(inflate.decompress(data, chunk))
                if total > limit:
                    raise DicomReadError(
                        f"This deflate-compressed file would inflate to more than "
                        f"{limit / 2**20:.0f} MiB from {compressed / 2**10:.0f} KiB "
                        f"(over {ZIP_MAX_RATIO}:1), so it was not read.")
                data = inflate.unconsumed_tail
            if inflate.eof:
                break
    except zlib.error:
        pass  # not our concern here: pydicom reports the damage
    finally:
        f.seek(0)


def _file_kind(path: Path) -> str:
    """'dir', 'file', 'missing' or 'special' (following symlinks), without opening anything."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "missing"
    except OSError:
        return "unreadable"
    if stat.S_ISDIR(st.st_mode):
        return "dir"
    return "file" if stat.S_ISREG(st.st_mode) else "special"


def looks_like_dicom(path: Path) -> bool:
    """True for a regular Part-10 file (``DICM`` at byte 128) or a regular file named like
    DICOM. Never blocks: special files are not DICOM."""
    try:
        with open_regular(path) as f:
            head = f.read(132)
    except TfesiError:
        return False
    return head[128:132] == b"DICM" or path.suffix.lower() in _DICOM_SUFFIXES


# --- finding files ----------------------------------------------------------------------------

def _link_leaves(link: Path, root_real: str) -> str | None:
    """Why the folder link ``link`` is not followed (None when it stays inside the folder the
    scan was given and does not lead back to a folder containing it)."""
    try:
        target = os.path.realpath(link)
        here = os.path.realpath(link.parent)
    except (OSError, ValueError):
        return "This link cannot be resolved; not followed."
    if os.path.commonpath([target, root_real]) != root_real:
        return (f"This link leads outside the folder given (to {target}); links out of it are "
                "not followed.")
    if os.path.commonpath([target, here]) == target:
        return ("This link leads back to a folder that contains it (a loop); not followed.")
    return None


def _walk(root: Path, skipped: Skipped, cancel: CancelCheck | None) -> list[Path]:
    """Regular files under ``root``, iteratively; each real folder is read once. Folder links
    are followed only when they stay inside ``root`` and do not lead to a folder that holds
    them (:func:`_link_leaves`): a link to ``/`` or to an ancestor is listed, not walked."""
    files: list[Path] = []
    try:
        root_real = os.path.realpath(root)
    except (OSError, ValueError):
        root_real = str(root)
    seen: set[tuple[int, int]] = set()
    todo = [(root, 0)]
    while todo:
        if cancel is not None and cancel():
            raise Cancelled()
        folder, depth = todo.pop()
        try:
            st = os.stat(folder)
        except OSError as e:
            skipped.append((folder, f"This folder cannot be opened ({e.strerror})."))
            continue
        if (st.st_dev, st.st_ino) in seen:
            if folder.is_symlink():
                skipped.append((folder, "This link leads to a folder that was already read "
                                        "(a loop of symbolic links); not read again."))
            continue
        seen.add((st.st_dev, st.st_ino))
        if depth > MAX_DEPTH:
            skipped.append((folder, f"Folders nested more than {MAX_DEPTH} levels deep are not "
                                    "read."))
            continue
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError as e:
            skipped.append((folder, f"This folder cannot be read ({e.strerror})."))
            continue
        for e in entries:
            p = Path(e.path)
            try:
                if e.is_dir():  # follows symlinks
                    why = _link_leaves(p, root_real) if e.is_symlink() else None
                    if why:
                        skipped.append((p, why))
                        continue
                    todo.append((p, depth + 1))
                elif e.is_file():
                    files.append(p)
                elif e.is_symlink():
                    skipped.append((p, "This link leads nowhere (its target is missing)."))
                else:
                    skipped.append((p, "This is not a regular file (a device, pipe or socket), "
                                       "so it was not read."))
            except OSError as err:
                skipped.append((p, f"This entry cannot be read ({err.strerror})."))
    files.sort()
    return files


def _safe_member(name: str) -> PurePosixPath | None:
    """The relative path of a ZIP member, or None if it would leave the folder it unpacks to."""
    text = name.replace("\\", "/")
    if not text or text.startswith("/") or "\0" in text or (len(text) > 1 and text[1] == ":"):
        return None
    parts = [q for q in PurePosixPath(text).parts if q not in ("", ".")]
    if not parts or any(q == ".." for q in parts):
        return None
    return PurePosixPath(*parts)


def _stale_zip_folders() -> None:
    """Remove unpacked-ZIP folders of this program's processes that no longer run (kill -9)."""
    base = Path(tempfile.gettempdir())
    try:
        candidates = list(base.glob("tfesi-zip-*-*"))
    except OSError:
        return
    for d in candidates:
        try:
            pid = int(d.name.split("-")[2])
            if pid == os.getpid() or d.is_symlink() or not d.is_dir():
                continue
            if hasattr(os, "getuid") and d.stat().st_uid != os.getuid():
                continue
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(d, ignore_errors=True)
        except (ValueError, IndexError, OSError):
            continue


def _unzip(p: Path, tmp_holder: list[str], skipped: Skipped,
           cancel: CancelCheck | None) -> list[Path]:
    """Unpack a ZIP file into a private temporary folder, within the limits above."""
    try:
        z = zipfile.ZipFile(p)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        skipped.append((p, f"This ZIP file cannot be opened ({e})."))
        return []
    with z:
        infos = [i for i in z.infolist() if not i.is_dir()]
        if len(infos) > ZIP_MAX_ENTRIES:
            skipped.append((p, f"This ZIP file holds {len(infos)} files, more than the "
                               f"{ZIP_MAX_ENTRIES} this program unpacks; it was not read."))
            return []
        declared = sum(i.file_size for i in infos)
        if declared > ZIP_MAX_TOTAL:
            skipped.append((p, f"This ZIP file would unpack to {declared / 2**30:.1f} GiB, more "
                               f"than the {ZIP_MAX_TOTAL / 2**30:.0f} GiB this program unpacks; "
                               "it was not read."))
            return []
        _stale_zip_folders()
        tmp = Path(tempfile.mkdtemp(prefix=f"tfesi-zip-{os.getpid()}-"))  # 0700
        tmp_holder.append(str(tmp))
        files: list[Path] = []
        total = 0
        for i in infos:
            if cancel is not None and cancel():
                raise Cancelled()
            where = p / i.filename
            rel = _safe_member(i.filename)
            if rel is None:
                skipped.append((where, "This ZIP entry would be unpacked outside its folder; "
                                       "it was not read."))
                continue
            if i.file_size > ZIP_RATIO_FROM and i.file_size > ZIP_MAX_RATIO * max(
                    i.compress_size, 1):
                skipped.append((p, f"This ZIP file is compressed more than {ZIP_MAX_RATIO}:1 "
                                   f"({i.filename}), as a 'ZIP bomb' is; it was not read."))
                return []
            dest = tmp.joinpath(*rel.parts)
            try:
                dest.parent.mkdir(parents=True, exist_ok=True)
                with z.open(i) as src, open(dest, "xb") as out:
                    n = 0
                    while block := src.read(1 << 20):
                        n += len(block)
                        total += len(block)
                        if n > max(i.file_size, 0) or total > ZIP_MAX_TOTAL:
                            raise _ZipLimit()
                        out.write(block)
            except _ZipLimit:
                skipped.append((p, "This ZIP file unpacks to more than it declares or than this "
                                   "program unpacks; it was not read."))
                return []
            except Exception as e:  # noqa: BLE001 - damaged, encrypted, unsupported, name clash;
                # zlib, lzma and bz2 raise their own kinds
                if dest.is_file() and not dest.is_symlink():
                    dest.unlink()
                skipped.append((where, f"This ZIP entry cannot be unpacked ({type(e).__name__}: "
                                       f"{str(e)[:200]})."))
                continue
            files.append(dest)
    return sorted(files)


class _ZipLimit(Exception):
    pass


def _files_of(inputs: Sequence[Path], tmp_holder: list, skipped: Skipped,
              cancel: CancelCheck | None = None) -> list[Path]:
    files: list[Path] = []
    for p in inputs:
        kind = _file_kind(p)
        if kind == "missing":
            raise InputNotFoundError("This file or folder does not exist.", p)
        if kind == "dir":
            files.extend(_walk(p, skipped, cancel))
        elif kind in ("special", "unreadable"):
            skipped.append((p, "This is not a regular file (a device, pipe or socket), so it "
                               "was not read." if kind == "special" else
                               "This file cannot be opened."))
        elif _is_zip(p):
            files.extend(_unzip(p, tmp_holder, skipped, cancel))
        elif p.name.upper() == "DICOMDIR" or _is_dicomdir(p):
            files.extend(_dicomdir_files(p, skipped))
        else:
            files.append(p)
    # the same file reached twice (a folder and a file in it) counts once
    seen: set = set()
    unique = []
    for f in files:
        try:
            st = os.stat(f)
            key = (st.st_dev, st.st_ino)
        except OSError:
            key = str(f)
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique


def _is_zip(p: Path) -> bool:
    try:
        with open_regular(p) as f:
            return zipfile.is_zipfile(f)
    except (TfesiError, OSError):
        return False


def _is_dicomdir(p: Path) -> bool:
    if not looks_like_dicom(p):
        return False
    try:
        with open_dicom(p) as f:
            ds = pydicom.dcmread(f, stop_before_pixels=True, specific_tags=["SOPClassUID"])
        return str(ds.file_meta.get("MediaStorageSOPClassUID", "")) == _MEDIA_STORAGE_DIRECTORY
    except Exception:  # noqa: BLE001 - anything unreadable is simply not a DICOMDIR
        return False


def _dicomdir_files(p: Path, skipped: Skipped) -> list[Path]:
    """Files a DICOMDIR references; references that lead out of its folder are listed."""
    try:
        with open_dicom(p) as f:
            ds = pydicom.dcmread(f)
        records = list(ds.get("DirectoryRecordSequence", []))
    except TfesiError:
        raise
    except Exception as e:  # noqa: BLE001
        raise DicomReadError(f"This DICOMDIR cannot be read ({type(e).__name__}: {e}).",
                             p) from e
    try:
        root = p.parent.resolve()
    except (OSError, RuntimeError) as e:
        raise DicomReadError(f"The DICOMDIR's folder cannot be resolved ({e}).", p) from e
    out = []
    for rec in records:
        try:
            ref = rec.get("ReferencedFileID")
            if not ref:
                continue
            parts = [str(ref)] if isinstance(ref, str) else [str(x) for x in ref]
        except Exception as e:  # noqa: BLE001 - a damaged record
            skipped.append((p, f"A DICOMDIR record cannot be read ({type(e).__name__})."))
            continue
        shown = "\\".join(parts)
        if any(not q or q in (".", "..") or "/" in q or "\\" in q or "\0" in q or ":" in q
               for q in parts):
            skipped.append((p / shown, "The DICOMDIR refers to a file outside its folder; it "
                                       "was not read."))
            continue
        target = p.parent.joinpath(*parts)
        try:
            inside = target.resolve().is_relative_to(root)
        except (OSError, RuntimeError):  # a symlink loop
            inside = False
        if not inside:
            skipped.append((target, "The DICOMDIR refers to a file outside its folder (through "
                                    "a link); it was not read."))
            continue
        kind = _file_kind(target)
        if kind != "file":
            skipped.append((target, "The DICOMDIR refers to this file, but it "
                           + {"missing": "does not exist.", "dir": "is a folder.",
                              "unreadable": "cannot be opened."}.get(
                               kind, "is not a regular file (a device, pipe or socket).")))
            continue
        out.append(target)
    if not out and not skipped:
        raise NoImagesError("This DICOMDIR lists no files.", p)
    return out


# --- reading one file -------------------------------------------------------------------------

def _text(ds: Dataset, keyword: str, default: str = "") -> str:
    v = ds.get(keyword)
    return default if v is None or v == "" else str(v)


def _floats(v) -> tuple[float, ...] | None:
    if v is None:
        return None
    try:
        items = v if hasattr(v, "__iter__") and not isinstance(v, (str, bytes)) else [v]
        return tuple(float(x) for x in items)
    except (TypeError, ValueError, OverflowError):
        return None


def _first(v) -> float | None:
    f = _floats(v)
    return f[0] if f else None


def _finite_first(ds: Dataset | None, keyword: str) -> float | None:
    """A number tag's first value; :class:`DicomReadError` if present but not finite."""
    if ds is None:
        return None
    v = _first(ds.get(keyword))
    if v is not None and not math.isfinite(v):
        raise DicomReadError(f"{keyword} is not a finite number ({v}).")
    return v


def _int(ds: Dataset, keyword: str, default: int | None = None) -> int | None:
    v = ds.get(keyword)
    if v is None or v == "":
        return default
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise DicomReadError(f"{keyword} is not a number ({str(v)[:40]!r}).") from None
    if not math.isfinite(f) or f != int(f):
        raise DicomReadError(f"{keyword} is not a whole number ({str(v)[:40]!r}).")
    return int(f)


def _geometry(ipp, iop, spacing, rows: int,
              cols: int) -> tuple[SliceGeometry | None, str | None]:
    """(geometry, problem). Geometry is None without usable position and orientation; the
    problem, if any, is a sentence saying why the geometry must not be used for a prediction
    (non-finite, degenerate or non-orthonormal orientation, invalid pixel spacing)."""
    if ipp is None or iop is None:
        return None, None  # simply absent: SliceRef.require_geometry says so
    ipp, iop = _floats(ipp), _floats(iop)
    if not ipp or len(ipp) != 3 or not iop or len(iop) != 6:
        return None, ("ImagePositionPatient or ImageOrientationPatient does not hold 3 and 6 "
                      "numbers.")
    if not all(math.isfinite(v) for v in (*ipp, *iop)):
        return None, ("ImagePositionPatient or ImageOrientationPatient holds a value that is not "
                      "a finite number (NaN or infinity).")
    r, c = np.array(iop[:3]), np.array(iop[3:])
    nr, nc = float(np.linalg.norm(r)), float(np.linalg.norm(c))
    if nr < 1e-6 or nc < 1e-6:
        return None, "ImageOrientationPatient holds a zero direction."
    r, c = r / nr, c / nc
    if np.linalg.norm(np.cross(r, c)) < 1e-3:
        return None, "ImageOrientationPatient gives the rows and columns the same direction."
    problems = []
    tol = ORTHONORMAL_TOLERANCE
    cos = float(np.dot(r, c))
    if abs(nr - 1) > tol or abs(nc - 1) > tol or abs(cos) > tol:
        angle = math.degrees(math.acos(max(-1.0, min(1.0, cos))))
        problems.append(f"ImageOrientationPatient is not orthonormal (lengths {nr:.3f} and "
                        f"{nc:.3f}, angle {angle:.1f} degrees), so the image's directions in the "
                        "patient are uncertain.")
    sp = _floats(spacing)
    try:
        absent = spacing is None or len(spacing) == 0
    except TypeError:
        absent = False
    if absent:
        sp = (1.0, 1.0)  # not recorded: 1 mm (as before); sizes in mm are then nominal
    elif not sp or len(sp) != 2 or not all(math.isfinite(v) for v in sp) or min(sp) <= 0:
        problems.append(f"PixelSpacing is not two positive numbers ({spacing}).")
        sp = (1.0, 1.0)
    geom = SliceGeometry(tuple(ipp), tuple(float(v) for v in r), tuple(float(v) for v in c),
                         (sp[0], sp[1]), (rows, cols))
    return geom, (" ".join(problems) or None)


def _item(seq_owner: Dataset | None, keyword: str) -> Dataset | None:
    if seq_owner is None:
        return None
    seq = seq_owner.get(keyword)
    return seq[0] if seq else None


def _window(ds: Dataset) -> tuple[float, float] | None:
    c, w = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
    if c is None or w is None or not (math.isfinite(c) and math.isfinite(w)) or w <= 0:
        return None
    return c, w


def _rescale(owner: Dataset | None) -> tuple[float, float]:
    slope = _finite_first(owner, "RescaleSlope")
    icpt = _finite_first(owner, "RescaleIntercept")
    return (slope if slope else 1.0, icpt or 0.0)


def check_pixel_data(f: BinaryIO, ds: Dataset) -> tuple[int, str | None]:
    """Check the declared image size against the pixel data before anything is decoded.

    ``f`` is the open file that ``ds`` was read from with ``stop_before_pixels=True`` and has
    not been moved since. Returns the number of frames, and a sentence when the pixel data are
    longer than declared (the image can be shown, as pydicom drops the excess, but a damaged
    Rows, Columns or BitsAllocated would shift it: no prediction is made from it).

    Raises :class:`DicomReadError` when the pixel data are missing, cut short, or shorter than
    frames x rows x columns x samples x bits allocated (uncompressed), or too short to hold one
    fragment per frame (compressed): a huge NumberOfFrames would otherwise exhaust memory.
    """
    rows, cols = _int(ds, "Rows"), _int(ds, "Columns")
    if not rows or not cols or rows < 0 or cols < 0:
        raise DicomReadError(f"The image has no pixels (Rows {rows}, Columns {cols}).")
    frames = _int(ds, "NumberOfFrames", 1) or 1
    if frames < 1:
        raise DicomReadError(f"NumberOfFrames is {frames}.")
    samples = _int(ds, "SamplesPerPixel", 1) or 1
    bits = _int(ds, "BitsAllocated", None)
    if samples not in (1, 3, 4):
        raise DicomReadError(f"SamplesPerPixel is {samples}; images have 1 or 3.")
    if bits not in (1, 8, 16, 32, 64):
        raise DicomReadError(f"BitsAllocated is {bits}; images have 1, 8, 16, 32 or 64.")
    frame_bytes = (rows * cols * samples * bits + 7) // 8
    if frame_bytes > MAX_FRAME_BYTES:  # compressed data would otherwise decode into it
        raise DicomReadError(f"The image is declared as {rows} x {cols} pixels x {samples} "
                             f"sample(s) x {bits} bits, larger than this program reads.")
    ts = UID(str(ds.file_meta.get("TransferSyntaxUID", "1.2.840.10008.1.2")))
    known = ts.is_transfer_syntax
    if known and ts.is_deflated:  # the header was inflated in memory: the value is there
        f.seek(0)
        full = pydicom.dcmread(f)
        el = next((full[t] for t in ((0x7FE0, 0x0010), (0x7FE0, 0x0008), (0x7FE0, 0x0009))
                   if t in full), None)
        if el is None:
            raise DicomReadError("The file holds no pixel data.")
        length, left = len(el.value or b""), len(el.value or b"")
    else:
        start = f.tell()
        head = f.read(12)
        end = f.seek(0, os.SEEK_END)
        implicit, little = ds.original_encoding
        if implicit is None:
            implicit, little = (ts.is_implicit_VR, ts.is_little_endian) if known else (False,
                                                                                       True)
        e = "<" if little else ">"
        if len(head) < 8:
            raise DicomReadError("The file holds no pixel data.")
        group, elem = struct.unpack(e + "HH", head[:4])
        if (group, elem) not in _PIXEL_TAGS:
            raise DicomReadError("The file holds no pixel data.")
        if implicit or not (head[4:6].isalpha() and head[4:6].isupper()):
            # (an implicit-VR pixel data element in an explicit-VR file: pydicom copes too)
            (length,), size = struct.unpack(e + "L", head[4:8]), 8
        elif head[4:6] in _LONG_VRS:
            if len(head) < 12:
                raise DicomReadError("The file is cut short inside its pixel data.")
            (length,), size = struct.unpack(e + "L", head[8:12]), 12
        else:
            (length,), size = struct.unpack(e + "H", head[6:8]), 8
        left = end - start - size
    if length == _UNDEFINED:  # encapsulated (compressed): at least one item header per frame
        if known and not ts.is_encapsulated:
            raise DicomReadError("The pixel data are stored compressed, but the transfer syntax "
                                 f"{ts} says uncompressed.")
        if 8 * (frames + 1) > left:
            raise DicomReadError(f"The header declares {frames} frames, more than the "
                                 f"{left} bytes of compressed pixel data can hold.")
        return frames, None
    if length > left:
        raise DicomReadError(f"The file is cut short: its pixel data should hold {length} "
                             f"bytes, but only {left} follow.")
    if known and ts.is_encapsulated:
        return frames, None  # a single-fragment oddity: the decoder will tell
    pixels = rows * cols * samples * frames
    photometric = _text(ds, "PhotometricInterpretation").upper()
    if photometric == "YBR_FULL_422" and samples == 3:
        pixels = pixels * 2 // 3
    expected = (pixels * bits + 7) // 8
    declared = (f"{frames} frame(s) of {rows} x {cols} pixels x {samples} sample(s) x {bits} "
                f"bits ({expected} bytes)")
    if length < expected:
        raise DicomReadError(f"The header declares {declared}, but the pixel data hold only "
                             f"{length} bytes: the header or the image is damaged.")
    if length > expected + 1:  # (one padding byte makes an odd length even)
        return frames, (f"The header declares {declared}, but the pixel data hold {length} "
                        "bytes: padding, or a damaged header that would shift the image.")
    return frames, None


def _slices_of(path: Path, ds: Dataset, frames: int,
               pixel_problem: str | None = None) -> tuple[list[SliceRef], list[str]]:
    """Slice references of one image file (one per frame for multi-frame files), and notes
    about problems that forbid a prediction from them (geometry, pixel data length)."""
    rows, cols = _int(ds, "Rows"), _int(ds, "Columns")
    sop = _text(ds, "SOPInstanceUID", str(path))
    mono1 = _text(ds, "PhotometricInterpretation").upper() == "MONOCHROME1"
    bits = _int(ds, "BitsStored", None) or _int(ds, "BitsAllocated", 16) or 16
    if not 1 <= bits <= 64:
        raise DicomReadError(f"BitsStored is {bits}.")
    signed = (_int(ds, "PixelRepresentation", 0) or 0) == 1
    inst = _int(ds, "InstanceNumber", None)
    common = dict(monochrome1=mono1, bits_stored=bits, signed=signed,
                  modality_lut_sequence="ModalityLUTSequence" in ds)
    shared = _item(ds, "SharedFunctionalGroupsSequence")
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    notes: list[str] = []

    if pixel_problem:
        notes.append(pixel_problem)

    def ref(frame, geom_problem, rescale, window):
        geom, problem = geom_problem
        if problem and problem not in notes:
            notes.append(problem)
        return SliceRef(path, frame, sop, inst, geom, rescale, window,
                        geometry_problem=problem, pixel_problem=pixel_problem, **common)

    if per_frame is not None:  # enhanced multi-frame (MR, CT, ...)
        out = []
        for k in range(frames):
            pf = per_frame[k] if k < len(per_frame) else None

            def group(name, pf=pf):
                return _item(pf, name) or _item(shared, name)

            pos, ori, meas = (group("PlanePositionSequence"), group("PlaneOrientationSequence"),
                              group("PixelMeasuresSequence"))
            geom = _geometry(pos.get("ImagePositionPatient") if pos else None,
                             ori.get("ImageOrientationPatient") if ori else None,
                             meas.get("PixelSpacing") if meas else None, rows, cols)
            voi = group("FrameVOILUTSequence")
            out.append(ref(k, geom, _rescale(group("PixelValueTransformationSequence")),
                           _window(voi) if voi else None))
        return out, notes

    geom = _geometry(ds.get("ImagePositionPatient"), ds.get("ImageOrientationPatient"),
                     ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing"), rows, cols)
    rescale, window = _rescale(ds), _window(ds)
    # a classic multi-frame file (ultrasound cine, NM, ...): frames share one plane
    frames_ = [None] if frames == 1 else range(frames)
    return [ref(k, geom, rescale, window) for k in frames_], notes


def _echo_time(ds: Dataset) -> float | None:
    echo = _first(ds.get("EchoTime"))
    if echo is None:
        mr_echo = _item(_item(ds, "SharedFunctionalGroupsSequence"), "MREchoSequence")
        echo = _first(mr_echo.get("EffectiveEchoTime")) if mr_echo else None
    return echo if echo is not None and math.isfinite(echo) else None


def _header_info(ds: Dataset) -> dict:
    """Every study- and series-level value the grouping needs, as plain Python values (pydicom
    converts values on first use, which can fail: this runs inside the per-file handling)."""
    return dict(
        study_uid=_text(ds, "StudyInstanceUID", "unknown study"),
        patient_name=_text(ds, "PatientName"), patient_id=_text(ds, "PatientID"),
        birth_date=_text(ds, "PatientBirthDate"), sex=_text(ds, "PatientSex"),
        study_date=_text(ds, "StudyDate"), study_description=_text(ds, "StudyDescription"),
        series_uid=_text(ds, "SeriesInstanceUID", "unknown series"),
        description=_text(ds, "SeriesDescription") or _text(ds, "ProtocolName"),
        modality=_text(ds, "Modality", "?"), echo=_echo_time(ds),
        number=_int(ds, "SeriesNumber", None), manufacturer=_text(ds, "Manufacturer"))


def read_header(path: Path) -> Dataset:
    """The header of one DICOM file (no pixel data), or :class:`DicomReadError`."""
    try:
        with open_dicom(path) as f:
            return pydicom.dcmread(f, stop_before_pixels=True)
    except TfesiError:
        raise
    except Exception as e:  # noqa: BLE001 - pydicom raises many kinds; all mean "unreadable"
        raise DicomReadError(unreadable(e), path) from e


def unreadable(e: Exception) -> str:
    """Why pydicom could not read a file, in words a user can act on (never the library's own
    advice, such as "Use force=True")."""
    from pydicom.errors import InvalidDicomError

    if isinstance(e, InvalidDicomError):
        return ("This file is not a DICOM file (it has no DICOM header): it may be another "
                "kind of file, or damaged.")
    if isinstance(e, EOFError | ValueError | KeyError | IndexError | TypeError):
        return "This DICOM file is damaged or cut short, so its header cannot be read."
    return f"This file is not a readable DICOM file ({str(e)[:200]})."


def _read_one(f: Path) -> tuple[str, object]:
    """One file: ('images', (info, refs, notes)), ('non-image', None), ('not-dicom', None) or
    ('skipped', reason). Nothing escapes but KeyboardInterrupt-like exceptions."""
    try:
        with open_dicom(f) as fh:
            head = fh.read(132)
            if head[128:132] != b"DICM" and f.suffix.lower() not in _DICOM_SUFFIXES:
                return "not-dicom", None
            if f.name.upper() == "DICOMDIR":
                return "not-dicom", None
            fh.seek(0)
            try:
                ds = pydicom.dcmread(fh, stop_before_pixels=True)
            except Exception as e:  # noqa: BLE001 - pydicom raises many kinds
                return "skipped", unreadable(e)
            if "Rows" not in ds or "Columns" not in ds:
                sop_class = ds.get("SOPClassUID")
                if sop_class is not None and "Image Storage" in UID(str(sop_class)).name:
                    return "skipped", ("The file is incomplete: it should hold an image, but "
                                       "its image description is missing.")
                return "non-image", None
            frames, excess = check_pixel_data(fh, ds)
        info = _header_info(ds)
        refs, notes = _slices_of(f, ds, frames, excess)
        return "images", (info, refs, notes)
    except TfesiError as e:
        return "skipped", e.message
    except (MemoryError, RecursionError) as e:
        return "skipped", f"Its header is too large or too deeply nested ({type(e).__name__})."
    except Exception as e:  # noqa: BLE001 - a header we cannot make sense of
        return "skipped", (f"Its header cannot be interpreted ({type(e).__name__}: "
                           f"{str(e)[:200]}).")


def scan(inputs: str | os.PathLike | Iterable[str | os.PathLike], *,
         progress: Progress | None = None, cancel: CancelCheck | None = None) -> ScanResult:
    """Scan folders (recursively), DICOMDIRs, ZIP files or single files, headers only.

    ``progress(done, total)`` is called as files are read; ``cancel()`` returning True stops the
    scan with :class:`Cancelled`. Raises :class:`NoImagesError` when no image was found at all,
    :class:`InputNotFoundError` when an input does not exist. Files that cannot be used are
    listed in ``ScanResult.skipped`` with the reason.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    paths = [Path(p) for p in inputs]
    tmp: list[str] = []
    try:
        result = _scan(paths, tmp, progress, cancel)
    except BaseException:
        for t in tmp:
            shutil.rmtree(t, ignore_errors=True)
        raise
    # unpacked ZIP folders live as long as the result: pixels are decoded from them later
    for t in tmp:
        weakref.finalize(result, shutil.rmtree, t, True)
    return result


def _scan(paths: list[Path], tmp: list[str], progress: Progress | None,
          cancel: CancelCheck | None) -> ScanResult:
    skipped: Skipped = []
    files = _files_of(paths, tmp, skipped, cancel)
    non_images = 0
    found: list[tuple[dict, SliceRef, list[str]]] = []
    total = len(files)
    for i, f in enumerate(files):
        if cancel is not None and cancel():
            raise Cancelled()
        if progress is not None and (i % 8 == 0 or i == total - 1):
            progress(i + 1, total)
        kind, what = _read_one(f)
        if kind == "skipped":
            skipped.append((f, what))
        elif kind == "non-image":
            non_images += 1
        elif kind == "images":
            info, refs, notes = what
            found.extend((info, r, notes) for r in refs)
    if progress is not None:
        progress(total, total)
    if not found:
        where = ", ".join(str(p) for p in paths)
        if len(skipped) == 1:
            detail = f" ({skipped[0][0].name}: {skipped[0][1]})"
        elif skipped:
            detail = (f" ({len(skipped)} files could not be read; the first: "
                      f"{skipped[0][0].name}: {skipped[0][1]})")
        else:
            detail = ""
        raise NoImagesError(f"No DICOM images were found in {where}{detail}")
    return ScanResult(_group(found), skipped, non_images, total)


def _orientation_key(ref: SliceRef):
    g = ref.geometry
    if g is None:
        return None
    return tuple(round(v, 3) for v in (*g.row_cos, *g.col_cos))


def _group(found: list[tuple[dict, SliceRef, list[str]]]) -> list[Study]:
    """Studies of stacks from per-file values (plain Python values, see :func:`_header_info`)."""
    studies: dict[str, Study] = {}
    series: dict[tuple[str, str], dict] = {}
    for info, ref, notes in found:
        study_uid = info["study_uid"]
        if study_uid not in studies:
            studies[study_uid] = Study(
                study_uid, info["patient_name"], info["patient_id"], info["birth_date"],
                info["sex"], info["study_date"], info["study_description"])
        key = (study_uid, info["series_uid"])
        if key not in series:
            series[key] = dict(description=info["description"], modality=info["modality"],
                               modalities=set(), echo=info["echo"], number=info["number"],
                               manufacturer=info["manufacturer"],
                               stacks={})
        series[key]["modalities"].add(info["modality"])
        geom = ref.geometry
        stack_key = (_orientation_key(ref), (geom.shape if geom else None))
        entry = series[key]["stacks"].setdefault(stack_key, ([], []))
        entry[0].append(ref)
        entry[1].extend(n for n in notes if n not in entry[1])

    for (study_uid, series_uid), info in series.items():
        parts = list(info["stacks"].values())
        for n, (refs, notes) in enumerate(parts, start=1):
            stack = Stack(study_uid, series_uid, n, info["number"], info["description"],
                          info["modality"], info["echo"], [], split=len(parts) > 1,
                          manufacturer=info["manufacturer"])
            stack.slices, stack.warnings = _sort_slices(refs)
            if stack.split:
                stack.warnings.insert(0, f"Series split into {len(parts)} stacks because its "
                                         "slices differ in orientation or matrix size.")
            if len(info["modalities"]) > 1:
                stack.warnings.insert(0, "This series mixes modalities ("
                                      + ", ".join(sorted(info["modalities"]))
                                      + "): check that its images belong together.")
            bad = sum(1 for r in refs if r.geometry_problem or r.pixel_problem)
            for note in notes:
                stack.warnings.append(f"{note} Prediction is refused on the {bad} slice(s) "
                                      "concerned." if bad else note)
            studies[study_uid].stacks.append(stack)
    for st in studies.values():
        st.stacks.sort(key=lambda s: (s.series_number if s.series_number is not None else 1 << 30,
                                      s.series_uid, s.stack_number))
    return list(studies.values())


def _sort_slices(refs: list[SliceRef]) -> tuple[list[SliceRef], list[str]]:
    """Sort along the slice normal (projection of ImagePositionPatient); InstanceNumber only
    when geometry is missing. Returns the slices and warnings about their spacing."""
    warnings: list[str] = []
    if all(r.geometry is not None for r in refs) and len(refs) > 1:
        n = refs[0].geometry.stack_direction
        pos = {id(r): float(np.dot(r.geometry.position, n)) for r in refs}
        refs = sorted(refs, key=lambda r: (pos[id(r)], r.instance_number or 0, r.frame or 0))
        d = np.diff([pos[id(r)] for r in refs])
        dup = int(np.sum(np.abs(d) < 0.01))
        if dup:
            warnings.append(f"{dup} slices share the position of another slice (duplicates).")
        steps = d[np.abs(d) >= 0.01]
        if len(steps) >= 2:
            med = float(np.median(steps))
            if np.any(steps > 1.5 * med):
                warnings.append(f"Gap in the series: slices are {med:.2f} mm apart but up to "
                                f"{float(steps.max()):.2f} mm in places.")
            elif np.max(np.abs(steps - med)) > 0.1 * med:
                warnings.append(f"Uneven slice spacing: from {float(steps.min()):.2f} to "
                                f"{float(steps.max()):.2f} mm.")
    else:
        refs = sorted(refs, key=lambda r: (r.instance_number if r.instance_number is not None
                                           else 1 << 30, r.frame or 0, str(r.path)))
        if len(refs) > 1:
            warnings.append("Slices have no position information; ordered by instance number.")
    return refs, warnings
