"""The window's start-up sequence, in one place (docs/architecture.md, invariant 3).

1. Before the window shows, the GUI thread imports what the first study, ROI and prediction
   need (:data:`.jobs.FIRST_NEEDS`: pydicom, SciPy, LiteRT), loads the model and runs one
   prediction at the batch size of a whole neighbourhood (:func:`.jobs.load_model`). Done in
   a worker after the window showed, as before, these held the GIL in C code (a module's
   initialisation, LiteRT allocating its tensors: 20-45 ms each) while the window opened its
   first study: stalls of 50-80 ms. It costs the start about what pyqtgraph no longer spends
   importing matplotlib (gui/viewer.py). A model asked for later (the window shown) loads in
   a worker.
2. Until the model is loaded the window is not *warm*: whatever needs those packages (the
   canal search, the sagittal's frames, the browser's thumbnails) is held back and asked for
   again here (:meth:`Startup.when_warm`).
3. From the program's start (gui/app.py) until the model is loaded, the garbage collector is
   off: the imports make many objects and hardly any garbage; its 170 collections took
   0.2-0.35 s of the start, and a full collection of that heap held the GIL for 20-30 ms (70 ms
   once scipy is in). Once done (loaded or not), what is alive (modules, widgets, the model)
   leaves the collector's scans for good (``gc.freeze``) and the collector is on again.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Slot

from ..core.bundle import default_bundle_path
from . import jobs
from .context import AppContext
from .workers import Worker, error_sentence


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
        if self.ctx.parent.isVisible():  # another model, asked for later: in a worker
            self.ctx.run_worker(Worker(jobs.load_model, path), self._loaded, self._failed)
            return
        try:  # before the window shows: here and now (point 1 above)
            predictor = jobs.load_model(path)
        except Exception as e:  # noqa: BLE001 - said in the window, as a worker's would be
            self._failed(error_sentence(e))
        else:
            self._loaded(predictor)

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
