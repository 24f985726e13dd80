"""What the window runs in workers (:mod:`.workers`): plain functions that touch no Qt object.
Their results come back to slots of the window or its controllers in the GUI thread
(docs/architecture.md, measured facts)."""

from __future__ import annotations

import threading

import numpy as np

from ..core.commands import (
    anatomy_candidates,
    find_anatomy,
    find_anatomy_in_stack,
    predict_selection,
    sagittal_guide,
)
from ..core.dicom import default_window, modality_values
from ..core.errors import TfesiError
from ..core.resample import resample
from ..core.runtime import Predictor
from .viewer import display_transform

# what the first study, ROI and prediction import: the DICOM reader, pydicom and its pixel
# decoders, the SciPy parts of the canal search (core/midline.py) and LiteRT
FIRST_NEEDS = ("ai_edge_litert.interpreter", "pydicom", "pydicom.pixels", "scipy.fft",
               "scipy.ndimage", "tfesi_desktop.core.dicom.reader")


def import_first_needs():
    """Import :data:`FIRST_NEEDS` (a no-op once done)."""
    import importlib

    for name in FIRST_NEEDS:
        importlib.import_module(name)


def load_model(path):
    """:func:`import_first_needs` (a no-op once done), load the bundle, and run a whole
    prediction once at the batch size of a neighbourhood (the chosen slice's ROI set and its
    neighbours'): LiteRT holds the GIL while it allocates its tensors for a new batch size
    (25-45 ms), so the first prediction must not be the one to do it, and the first call of
    each step (preprocessing, Grad-CAM) is paid here too."""
    import_first_needs()
    predictor = Predictor(path)

    from ..core.geometry import SliceGeometry
    from ..core.preprocess import model_inputs
    from ..core.runtime import predict_slices

    zeros = np.zeros((64, 64), np.float32)
    zeros[::2] = 1.0
    g = SliceGeometry((0, 0, 0), (1, 0, 0), (0, 1, 0), (1, 1), zeros.shape)
    offsets = list(predictor.slice_offsets) or [0]
    inputs = [model_inputs(zeros, g, (8, 8, 32, 32), "right", crops=predictor.crops if o == 0
                           else predictor.neighbour_crops) for o in offsets]
    predict_slices(predictor, inputs, offsets, 0, side="right")
    return predictor


def predict_other_side(predictor, stack, source, other, values, canal):
    """(the selection compared from, the other side's outcome)."""
    return source, predict_selection(predictor, stack, other, values=values, canal=canal)


_GUIDES: dict[str, object] = {}  # stack key -> its sagittal's cord course (or None), once
_GUIDES_LOCK = threading.Lock()


def _guide(scan, stack):
    """The cord's course on the study's sagittal for ``stack``, decoded once per stack: the
    canal searches of several slices start together, and the others wait for the first one's
    course rather than each decoding the sagittal again."""
    with _GUIDES_LOCK:
        if stack.key not in _GUIDES:
            try:
                _GUIDES[stack.key] = sagittal_guide(scan, stack)
            except TfesiError:
                _GUIDES[stack.key] = None
        return _GUIDES[stack.key]


_CANDIDATES: dict[tuple[str, str], list] = {}  # (stack key, slice key) -> canal candidates


def find_canal(key, values, geometry, scan=None, stack=None):
    """(slice key, the anatomy found on it, or None); with the scan and the stack, guided by the
    study's sagittal where it shares the frame of reference and checked against the canals of
    the neighbouring slices (core/commands.py ``find_anatomy_in_stack``), whose candidates are
    searched once per slice and kept."""
    try:
        if scan is None or stack is None:
            return key, find_anatomy(values, geometry)
        guide = _guide(scan, stack)
        index = next((i for i, r in enumerate(stack.slices) if r.key == key), None)
        if index is None:  # not a slice of this stack: searched alone
            return key, find_anatomy(values, geometry, guide=guide)

        def candidates_of(i):
            ref = stack.slices[i]
            if (stack.key, ref.key) not in _CANDIDATES:
                v = values if i == index else modality_values(ref)
                _CANDIDATES[(stack.key, ref.key)] = anatomy_candidates(v, ref.geometry,
                                                                       guide=guide)
            return _CANDIDATES[(stack.key, ref.key)]

        return key, find_anatomy_in_stack(stack, index, values=values, guide=guide,
                                          candidates_of=candidates_of)
    except TfesiError:
        return key, None


def decode(stack_key, slice_key, ref):
    return stack_key, slice_key, modality_values(ref)


def window_of(stack):
    return stack.key, default_window(stack)


def thumbnails(stacks):
    """(stack key, 64x64 grey picture of its middle slice, radiological) for each stack.
    Resampled with numpy alone: importing scikit-image here could race the canal worker's
    import of scipy (two threads importing one package break it)."""
    out = []
    for st in stacks:
        try:
            ref = st.slices[len(st.slices) // 2]
            v = display_transform(ref.geometry).apply(modality_values(ref))
            lo, hi = np.percentile(v, [1, 99.5])
            small = resample(v, (64, 64))
            out.append((st.key, np.clip((small - lo) / max(hi - lo, 1e-6) * 255, 0, 255)))
        except TfesiError:
            out.append((st.key, None))
    return out
