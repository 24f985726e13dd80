"""The window's start-up sequence, in one place (docs/architecture.md, invariant 3).

1. The model loads in a worker (:func:`.jobs.load_model`), which imports pydicom and
   scikit-image (scipy with them) there, runs the network once, and then once more at the size
   of a whole neighbourhood batch (the chosen slice's ROI set and its neighbours'): LiteRT holds
   the GIL while it re-allocates its tensors for a new batch size (about 25 ms), so the first
   prediction must not be the one to do it.
2. Until the worker is done the window is not *warm*: the GUI thread must not import those
   packages itself (it would wait for the worker's import lock: a stall), so whatever needs them
   (the canal search, the sagittal's frames, the browser's thumbnails) is held back and asked
   for again here (:meth:`Startup.when_warm`).
3. While the worker loads, the garbage collector is off: the imports make many objects and
   hardly any garbage, and a full collection of that heap held the GIL for 20-30 ms (70 ms once
   scipy is in) in whichever thread started it, the worker's included. Once done (loaded or
   not), what is alive (modules, widgets, the model) leaves the collector's scans for good
   (``gc.freeze``) and the collector is on again.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Slot

from ..core.bundle import default_bundle_path
from . import jobs
from .context import AppContext
from .workers import Worker


def load_and_warm(path):
    """In the worker: :func:`.jobs.load_model`, then one batch of the neighbourhood's size."""
    predictor = jobs.load_model(path)
    others = sum(1 for o in predictor.slice_offsets if o != 0)
    n = len(predictor.crops) + others * len(predictor.neighbour_crops)
    if n != len(predictor.crops):
        predictor.infer_batch(np.zeros((n, 100, 100, 3), np.float32))
    return predictor


class Startup(QObject):
    def __init__(self, ctx: AppContext, *, loaded: Callable, failed: Callable):
        """``loaded(predictor)`` and ``failed(message)``: what the window shows once done."""
        super().__init__(ctx.parent)
        self.ctx = ctx
        self._loaded_cb, self._failed_cb = loaded, failed
        self.predictor = None  # runtime.Predictor once loaded
        self.warm = False  # the model worker is done: the GUI thread may import anything
        self.loading = False
        self._held_back: list[Callable[[], None]] = []
        gc.freeze()  # the window's own objects, at once (the rest once warm)

    def when_warm(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` every time the window becomes warm (what was held back until then)."""
        self._held_back.append(fn)

    def load(self, path=None):
        path = Path(path) if path else default_bundle_path()
        self.loading = True
        gc.disable()  # until _started
        import os
        mode = os.environ.get("TFESI_EXP", "")
        if "nofsync" in mode:
            os.fsync = lambda fd: None
            from PySide6.QtCore import QSettings
            QSettings.sync = lambda self: None
        if "lt1" in mode:
            from ..core import runtime
            jobs.Predictor = lambda p: runtime.Predictor(p, num_threads=1)
        if "imports" in mode or "sync" in mode:
            jobs.import_first_needs()
        if "sync" in mode:
            try:
                p = load_and_warm(path)
            except Exception as e:  # noqa: BLE001
                self._failed(str(e))
            else:
                self._loaded(p)
            return
        self.ctx.run_worker(Worker(load_and_warm, path), self._loaded, self._failed)

    @Slot(object)
    def _loaded(self, predictor):
        self.predictor = predictor
        self._started()
        self._loaded_cb(predictor)

    @Slot(str)
    def _failed(self, message: str):
        self._started()
        self._failed_cb(message)

    def _started(self):
        if not self.warm:
            gc.freeze()
        gc.enable()
        self.loading = False
        self.warm = True
        for fn in self._held_back:
            fn()
