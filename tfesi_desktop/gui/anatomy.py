"""The spinal canal of the ROI's slice and of the slice shown, found in workers and kept by the
session (its canal cache), which then assesses the selection (:mod:`..core.assessment`). Not
before the model worker has imported scikit-image and scipy: the GUI thread would wait for its
import lock (docs/architecture.md, invariant 3)."""

from __future__ import annotations

from PySide6.QtCore import QObject, Slot

from . import jobs
from .context import AppContext
from .workers import Worker


class CanalSearch(QObject):
    def __init__(self, ctx: AppContext, values_of, warm):
        super().__init__(ctx.parent)
        self.ctx = ctx
        self._values_of = values_of  # slice key -> decoded values or None
        self._warm = warm  # () -> bool
        self.searching: set[str] = set()

    def find(self):
        """Look for the canal on the selection's slices not searched yet."""
        s = self.ctx.session
        sel = s.selection
        if sel is None or not self._warm():
            return
        for key in dict.fromkeys((sel.slice_key, sel.view_key)):
            if key in self.searching or s.canal(key)[0]:
                continue
            values = self._values_of(key)
            if values is None:
                continue
            self.searching.add(key)  # in the later lane, first: not beside the slice's paint
            self.ctx.run_worker(Worker(jobs.find_canal, key, values, s.geometry_of(key),
                                       s.scan, s.stack()),
                                self._found, self._failed, later=True, first=True)

    @Slot(object)
    def _found(self, payload):
        key, canal = payload
        self.searching.discard(key)
        self.ctx.session.set_canal(key, canal)

    @Slot(str)
    def _failed(self, message):
        for key in list(self.searching):
            self.searching.discard(key)
            self.ctx.session.set_canal(key, None)
