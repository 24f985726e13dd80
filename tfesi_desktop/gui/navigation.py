"""Moving through the study: slices (keys, wheel, slider, cine), series and the ROI's slice.
Each move is a session edit (not undoable: docs/architecture.md, "Session model"); the state
file is written 0.5 s after scrolling stops. Refusals say why (``notify``)."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer, Slot

from .context import AppContext


class Navigator(QObject):
    def __init__(self, ctx: AppContext, series_keys: Callable[[], list[str]]):
        """``series_keys()``: the series in the browser's order."""
        super().__init__(ctx.parent)
        self.ctx = ctx
        self._series_keys = series_keys
        ctx.session.defer_scroll_saves = True  # written 0.5 s after scrolling stops
        self._flush = QTimer(self, singleShot=True, interval=500)
        self._flush.timeout.connect(ctx.session.flush)
        self.cine = QTimer(self, interval=125)  # 8 slices a second
        self.cine.timeout.connect(lambda: self.step_slice(1, wrap=True))

    def index(self) -> int:
        """The stack index of the slice on the screen (-1: none)."""
        s = self.ctx.session
        sel, stack = s.selection, s.stack()
        return -1 if sel is None or stack is None else stack.find_slice(sel.view_key)

    @Slot(int)
    def set_slice(self, index: int):
        stack = self.ctx.session.stack()
        if stack is None:
            return
        index = max(0, min(len(stack.slices) - 1, int(index)))
        self.ctx.session.set_slice(stack.slices[index].key)
        self._flush.start()

    @Slot(int)
    def step_slice(self, d: int, *, wrap: bool = False):
        stack = self.ctx.session.stack()
        if self.ctx.session.selection is not None and stack is not None:
            i = self.index() + d
            self.set_slice(i % len(stack.slices) if wrap else i)

    def step_series(self, d: int):
        s = self.ctx.session
        keys = self._series_keys()
        if keys and s.series_key in keys:
            s.show_series(keys[(keys.index(s.series_key) + d) % len(keys)])

    def go_to_roi(self):
        if not self.ctx.session.go_to_roi():
            self.ctx.notify("The ROI is on the slice shown (or there is none).", "info")

    def toggle_cine(self):
        """C: play through the slices (and stop)."""
        if self.cine.isActive():
            self.cine.stop()
            self.ctx.status("Cine stopped.", 2000)
        elif self.ctx.session.selection is not None:
            self.cine.start()
            self.ctx.status("Cine: C stops.", 3000)
        else:
            self.ctx.notify("Open a study first: cine plays through its slices.", "info")
