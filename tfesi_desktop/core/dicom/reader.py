"""Find DICOM images in folders, DICOMDIRs, ZIP files or file lists, reading headers only.

Non-DICOM files are skipped silently; DICOM files that cannot be read are skipped and listed with
the reason. Slices are grouped into studies and series, series are split into stacks where
orientation or matrix size change, and each stack is sorted along its slice normal.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import weakref
import zipfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from ..errors import Cancelled, DicomReadError, InputNotFoundError, NoImagesError
from ..geometry import SliceGeometry
from .model import ScanResult, SliceRef, Stack, Study

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
CancelCheck = Callable[[], bool]

_MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
_DICOM_SUFFIXES = {".dcm", ".dicom", ".ima"}


def looks_like_dicom(path: Path) -> bool:
    """True for a Part-10 file (``DICM`` at byte 128) or a file named like DICOM."""
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return head[128:132] == b"DICM" or path.suffix.lower() in _DICOM_SUFFIXES


def _files_of(inputs: Sequence[Path], tmp_holder: list) -> list[Path]:
    files: list[Path] = []
    for p in inputs:
        if not p.exists():
            raise InputNotFoundError("This file or folder does not exist.", p)
        if p.is_dir():
            files.extend(sorted(q for q in p.rglob("*") if q.is_file()))
        elif zipfile.is_zipfile(p):
            tmp = tempfile.mkdtemp(prefix="tfesi-zip-")
            tmp_holder.append(tmp)
            try:
                with zipfile.ZipFile(p) as z:
                    z.extractall(tmp)  # member names are sanitised by zipfile
            except (zipfile.BadZipFile, OSError, RuntimeError) as e:
                raise InputNotFoundError(f"This ZIP file cannot be unpacked ({e}).", p) from e
            files.extend(sorted(q for q in Path(tmp).rglob("*") if q.is_file()))
        elif p.name.upper() == "DICOMDIR" or _is_dicomdir(p):
            files.extend(_dicomdir_files(p))
        else:
            files.append(p)
    # the same file reached twice (a folder and a file in it) counts once
    seen: set[Path] = set()
    unique = []
    for f in files:
        r = f.resolve()
        if r not in seen:
            seen.add(r)
            unique.append(f)
    return unique


def _is_dicomdir(p: Path) -> bool:
    if not looks_like_dicom(p):
        return False
    try:
        ds = pydicom.dcmread(p, stop_before_pixels=True, specific_tags=["SOPClassUID"])
        return str(ds.file_meta.get("MediaStorageSOPClassUID", "")) == _MEDIA_STORAGE_DIRECTORY
    except Exception:  # noqa: BLE001 - anything unreadable is simply not a DICOMDIR
        return False


def _dicomdir_files(p: Path) -> list[Path]:
    try:
        ds = pydicom.dcmread(p)
    except Exception as e:  # noqa: BLE001
        raise DicomReadError(f"This DICOMDIR cannot be read ({e}).", p) from e
    out = []
    for rec in ds.get("DirectoryRecordSequence", []):
        ref = rec.get("ReferencedFileID")
        if ref:
            parts = [ref] if isinstance(ref, str) else list(ref)
            out.append(p.parent.joinpath(*parts))
    if not out:
        raise NoImagesError("This DICOMDIR lists no files.", p)
    return out


def _text(ds: Dataset, keyword: str, default: str = "") -> str:
    v = ds.get(keyword)
    return default if v is None or v == "" else str(v)


def _floats(v) -> tuple[float, ...] | None:
    if v is None:
        return None
    try:
        items = v if hasattr(v, "__iter__") and not isinstance(v, str) else [v]
        return tuple(float(x) for x in items)
    except (TypeError, ValueError):
        return None


def _first(v) -> float | None:
    f = _floats(v)
    return f[0] if f else None


def _geometry(ipp, iop, spacing, rows: int, cols: int) -> SliceGeometry | None:
    ipp, iop, spacing = _floats(ipp), _floats(iop), _floats(spacing)
    if not ipp or len(ipp) != 3 or not iop or len(iop) != 6:
        return None
    r, c = np.array(iop[:3]), np.array(iop[3:])
    if np.linalg.norm(r) < 1e-6 or np.linalg.norm(c) < 1e-6:
        return None
    r, c = r / np.linalg.norm(r), c / np.linalg.norm(c)
    if not spacing or len(spacing) != 2 or min(spacing) <= 0:
        spacing = (1.0, 1.0)
    return SliceGeometry(tuple(ipp), tuple(r), tuple(c), (spacing[0], spacing[1]), (rows, cols))


def _item(seq_owner: Dataset | None, keyword: str) -> Dataset | None:
    if seq_owner is None:
        return None
    seq = seq_owner.get(keyword)
    return seq[0] if seq else None


def _window(ds: Dataset) -> tuple[float, float] | None:
    c, w = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
    return (c, w) if c is not None and w and w > 0 else None


def _slices_of(path: Path, ds: Dataset) -> list[SliceRef]:
    """Slice references of one image file (one per frame for multi-frame files)."""
    rows, cols = int(ds.Rows), int(ds.Columns)
    sop = _text(ds, "SOPInstanceUID", str(path))
    mono1 = _text(ds, "PhotometricInterpretation").upper() == "MONOCHROME1"
    bits = int(ds.get("BitsStored", ds.get("BitsAllocated", 16)) or 16)
    signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
    inst = ds.get("InstanceNumber")
    inst = int(inst) if inst not in (None, "") else None
    common = dict(monochrome1=mono1, bits_stored=bits, signed=signed,
                  modality_lut_sequence="ModalityLUTSequence" in ds)
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    shared = _item(ds, "SharedFunctionalGroupsSequence")
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")

    if per_frame is not None and n_frames >= 1:  # enhanced multi-frame (MR, CT, ...)
        out = []
        for k in range(n_frames):
            pf = per_frame[k] if k < len(per_frame) else None

            def group(name, pf=pf):
                return _item(pf, name) or _item(shared, name)

            pos, ori, meas = (group("PlanePositionSequence"), group("PlaneOrientationSequence"),
                              group("PixelMeasuresSequence"))
            geom = _geometry(pos.get("ImagePositionPatient") if pos else None,
                             ori.get("ImageOrientationPatient") if ori else None,
                             meas.get("PixelSpacing") if meas else None, rows, cols)
            pvt = group("PixelValueTransformationSequence")
            slope = _first(pvt.get("RescaleSlope")) if pvt else None
            icpt = _first(pvt.get("RescaleIntercept")) if pvt else None
            voi = group("FrameVOILUTSequence")
            out.append(SliceRef(path, k, sop, inst, geom,
                                (slope or 1.0, icpt or 0.0), _window(voi) if voi else None,
                                **common))
        return out

    geom = _geometry(ds.get("ImagePositionPatient"), ds.get("ImageOrientationPatient"),
                     ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing"), rows, cols)
    slope = _first(ds.get("RescaleSlope"))
    icpt = _first(ds.get("RescaleIntercept"))
    rescale = (slope if slope else 1.0, icpt or 0.0)
    if n_frames == 1:
        return [SliceRef(path, None, sop, inst, geom, rescale, _window(ds), **common)]
    # a classic multi-frame file (ultrasound cine, NM, ...): frames share one plane
    return [SliceRef(path, k, sop, inst, geom, rescale, _window(ds), **common)
            for k in range(n_frames)]


def read_header(path: Path) -> Dataset:
    """The header of one DICOM file (no pixel data), or :class:`DicomReadError`."""
    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except Exception as e:  # noqa: BLE001 - pydicom raises many kinds; all mean "unreadable"
        raise DicomReadError(f"This file is not a readable DICOM file ({type(e).__name__}: "
                             f"{e}).", path) from e


def scan(inputs: str | os.PathLike | Iterable[str | os.PathLike], *,
         progress: Progress | None = None, cancel: CancelCheck | None = None) -> ScanResult:
    """Scan folders (recursively), DICOMDIRs, ZIP files or single files, headers only.

    ``progress(done, total)`` is called as files are read; ``cancel()`` returning True stops the
    scan with :class:`Cancelled`. Raises :class:`NoImagesError` when no image was found at all.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    paths = [Path(p) for p in inputs]
    tmp: list[str] = []
    try:
        files = _files_of(paths, tmp)
    except BaseException:
        for t in tmp:
            shutil.rmtree(t, ignore_errors=True)
        raise
    skipped: list[tuple[Path, str]] = []
    non_images = 0
    found: list[tuple[Dataset, SliceRef]] = []
    total = len(files)
    for i, f in enumerate(files):
        if cancel is not None and cancel():
            raise Cancelled()
        if progress is not None and (i % 8 == 0 or i == total - 1):
            progress(i + 1, total)
        if not looks_like_dicom(f):
            continue
        if f.name.upper() == "DICOMDIR":
            continue
        try:
            ds = read_header(f)
            if "Rows" not in ds or "Columns" not in ds:
                sop_class = ds.get("SOPClassUID")
                if sop_class is not None and "Image Storage" in pydicom.uid.UID(sop_class).name:
                    skipped.append((f, "The file is incomplete: it should hold an image, but "
                                       "its image description is missing."))
                else:
                    non_images += 1
                continue
            refs = _slices_of(f, ds)
        except DicomReadError as e:
            skipped.append((f, e.message))
            continue
        except Exception as e:  # noqa: BLE001 - a header we cannot make sense of
            skipped.append((f, f"Its header cannot be interpreted ({type(e).__name__}: {e})."))
            continue
        found.extend((ds, r) for r in refs)
    if progress is not None:
        progress(total, total)
    if not found:
        where = ", ".join(str(p) for p in paths)
        detail = f" ({len(skipped)} DICOM files could not be read)" if skipped else ""
        raise NoImagesError(f"No DICOM images were found in {where}{detail}.")
    result = ScanResult(_group(found), skipped, non_images, total)
    # unpacked ZIP folders live as long as the result: pixels are decoded from them later
    for t in tmp:
        weakref.finalize(result, shutil.rmtree, t, True)
    return result


def _orientation_key(ref: SliceRef):
    g = ref.geometry
    if g is None:
        return None
    return tuple(round(v, 3) for v in (*g.row_cos, *g.col_cos))


def _group(found: list[tuple[Dataset, SliceRef]]) -> list[Study]:
    studies: dict[str, Study] = {}
    series: dict[tuple[str, str], dict] = {}
    for ds, ref in found:
        study_uid = _text(ds, "StudyInstanceUID", "unknown study")
        if study_uid not in studies:
            studies[study_uid] = Study(
                study_uid, _text(ds, "PatientName"), _text(ds, "PatientID"),
                _text(ds, "PatientBirthDate"), _text(ds, "PatientSex"), _text(ds, "StudyDate"),
                _text(ds, "StudyDescription"))
        series_uid = _text(ds, "SeriesInstanceUID", "unknown series")
        key = (study_uid, series_uid)
        if key not in series:
            echo = _first(ds.get("EchoTime"))
            if echo is None:
                mr_echo = _item(_item(ds, "SharedFunctionalGroupsSequence"), "MREchoSequence")
                echo = _first(mr_echo.get("EffectiveEchoTime")) if mr_echo else None
            number = ds.get("SeriesNumber")
            series[key] = dict(
                description=_text(ds, "SeriesDescription") or _text(ds, "ProtocolName"),
                modality=_text(ds, "Modality", "?"), echo=echo,
                number=int(number) if number not in (None, "") else None, stacks={})
        geom = ref.geometry
        stack_key = (_orientation_key(ref), (geom.shape if geom else None))
        series[key]["stacks"].setdefault(stack_key, []).append(ref)

    for (study_uid, series_uid), info in series.items():
        parts = list(info["stacks"].values())
        for n, refs in enumerate(parts, start=1):
            stack = Stack(study_uid, series_uid, n, info["number"], info["description"],
                          info["modality"], info["echo"], [], split=len(parts) > 1)
            stack.slices, stack.warnings = _sort_slices(refs)
            if stack.split:
                stack.warnings.insert(0, f"Series split into {len(parts)} stacks because its "
                                         "slices differ in orientation or matrix size.")
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
