"""Decode one slice to modality values, lazily and with a small cache.

Modality values: stored values through the modality LUT (RescaleSlope/Intercept, or a
ModalityLUTSequence), with MONOCHROME1 turned around so that bright means bright. Compressed
transfer syntaxes (JPEG baseline/lossless, JPEG-LS, JPEG 2000, RLE) decode through the pylibjpeg
plugins that pydicom finds by itself.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

from ..errors import DicomReadError
from .model import SliceRef, Stack

CACHE_SLICES = 48
_cache: OrderedDict[tuple, np.ndarray] = OrderedDict()
_lock = threading.Lock()


def _decode(ref: SliceRef) -> np.ndarray:
    import pydicom  # here, not at the top: importing it costs 0.2 s at start-up
    from pydicom.pixels import apply_modality_lut, pixel_array
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    from .reader import check_pixel_data, open_dicom

    with open_dicom(ref.path) as f:  # never a FIFO or a device; a deflate bomb is refused
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=True)
        except Exception as e:  # noqa: BLE001 - the file changed since the scan
            raise DicomReadError(f"This file is no longer a readable DICOM file "
                                 f"({type(e).__name__}).", ref.path) from e
        # the file may have changed since the scan: the sizes are checked again before decoding
        try:
            frames, _ = check_pixel_data(f, ds)
        except DicomReadError as e:
            raise DicomReadError(e.message, ref.path) from e
        if ref.frame is not None and not 0 <= ref.frame < frames:
            raise DicomReadError(f"Frame {ref.frame} does not exist in this file any more.",
                                 ref.path)
        f.seek(0)
        try:
            if ds.file_meta.get("TransferSyntaxUID") == DeflatedExplicitVRLittleEndian:
                # pixel_array cannot read a deflated file's stream: read the dataset (its
                # inflated size was bounded by open_dicom)
                arr = pixel_array(pydicom.dcmread(f), index=ref.frame)
            else:
                arr = pixel_array(f, index=ref.frame)
        except (KeyboardInterrupt, SystemExit, GeneratorExit):
            raise
        except BaseException as e:  # noqa: BLE001 - decoders raise many kinds, all meaning
            # "cannot decode"; the Rust RLE decoder panics with a BaseException (pyo3)
            reason = str(e).split("\n")[0][:300]
            raise DicomReadError(f"The image in this file cannot be decoded "
                                 f"({type(e).__name__}: {reason}).", ref.path) from e
    if arr.ndim == 3:  # colour (RGB after pydicom's YBR conversion): luminance-like mean
        arr = arr.mean(axis=-1)
    if arr.ndim != 2:
        raise DicomReadError(f"Unexpected image shape {arr.shape}.", ref.path)
    if ref.modality_lut_sequence:  # rare in MR: a lookup table instead of slope/intercept
        try:
            values = np.asarray(apply_modality_lut(arr, ds), dtype=np.float32)
        except Exception as e:  # noqa: BLE001 - a damaged lookup table
            raise DicomReadError(f"The image's modality lookup table cannot be applied "
                                 f"({type(e).__name__}).", ref.path) from e
        values = -values if ref.monochrome1 else values
    else:
        stored = arr.astype(np.float64)
        if ref.monochrome1:
            # turn stored values around within their own range, before the modality LUT
            stored = (-1.0 - stored) if ref.signed else (float(2 ** ref.bits_stored - 1) - stored)
        slope, intercept = ref.rescale
        with np.errstate(over="ignore", invalid="ignore"):
            values = (stored * slope + intercept).astype(np.float32)
    if not np.all(np.isfinite(values)):
        raise DicomReadError("The image holds values that are not finite numbers (NaN or "
                             "infinity), so it cannot be shown or used.", ref.path)
    return values


def cached_values(ref: SliceRef) -> np.ndarray | None:
    """The slice's modality values if already decoded, else None (never decodes)."""
    try:
        key = (str(ref.path), ref.frame, ref.path.stat().st_mtime_ns)
    except OSError:
        return None
    with _lock:
        return _cache.get(key)


def modality_values(ref: SliceRef) -> np.ndarray:
    """The slice as float32 modality values, shape (rows, columns), read-only.

    Decoded on first use and kept in a small least-recently-used cache (thread-safe).
    """
    try:
        mtime = ref.path.stat().st_mtime_ns
    except OSError as e:
        raise DicomReadError("This file can no longer be read (was it moved or deleted?).",
                             ref.path) from e
    key = (str(ref.path), ref.frame, mtime)
    with _lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
    values = _decode(ref)
    values.flags.writeable = False
    with _lock:
        _cache[key] = values
        while len(_cache) > CACHE_SLICES:
            _cache.popitem(last=False)
    return values


def default_window(stack: Stack, *, sample: int = 8) -> tuple[float, float]:
    """(centre, width) to show a stack first: the first window in the tags (turned around for
    MONOCHROME1), else percentiles 1 and 99.5 of up to ``sample`` slices of the series."""
    ref = stack.slices[len(stack.slices) // 2]
    if ref.window is not None:
        c, w = ref.window
        if ref.monochrome1 and not ref.modality_lut_sequence:
            slope, b = ref.rescale
            top = -1.0 if ref.signed else float(2 ** ref.bits_stored - 1)
            c = slope * top + 2 * b - c
        return c, w
    n = len(stack.slices)
    idx = np.unique(np.linspace(0, n - 1, min(sample, n)).astype(int))
    vals = np.concatenate([modality_values(stack.slices[i]).ravel()[::4] for i in idx])
    lo, hi = np.percentile(vals, [1.0, 99.5])
    return float((lo + hi) / 2), float(max(hi - lo, 1e-6))


def canonical_values(ref: SliceRef) -> np.ndarray:
    """Modality values of an axial slice in radiological orientation (anterior up, patient's right
    on the image's left), whatever the stored orientation. Raises GeometryError without geometry."""
    return ref.require_geometry().canonical_transform().apply(modality_values(ref))
