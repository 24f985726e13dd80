"""The edits the menus and keys make to the selection (docs/architecture.md, "Session
model"): each one session edit, undoable where it changes the work; a refusal says why."""

from __future__ import annotations

from collections.abc import Callable

from .context import AppContext


class Edits:
    def __init__(self, ctx: AppContext, *, delete_measurement: Callable[[int | None], bool],
                 selected_measurement: Callable[[], int | None], predict: Callable[[], None]):
        self.ctx = ctx
        self._delete_measurement = delete_measurement  # shown-list index -> done?
        self._selected = selected_measurement
        self._predict = predict

    def undo(self):
        s = self.ctx.session
        if not s.undo() and not s.read_only():
            self.ctx.notify("Nothing to undo.", "info")

    def redo(self):
        s = self.ctx.session
        if not s.redo() and not s.read_only():
            self.ctx.notify("Nothing to redo.", "info")

    def set_side(self, side: str):
        self.ctx.session.set_side(side)

    def set_level(self, level: str | None):
        self.ctx.session.set_level(level)

    def delete_roi(self):
        sel = self.ctx.session.selection
        if sel is None or sel.roi is None:
            self.ctx.notify("There is no ROI to delete.", "info")
            return
        self.ctx.session.set_roi(None)

    def delete_selected_measurement(self):
        if not self._delete_measurement(self._selected()):
            self.ctx.notify("Select a measurement in the list first.", "info")

    def clear_measurements(self):
        self.ctx.session.clear_measurements()

    def clear_marks(self):
        self.ctx.session.clear_marks()

    def confirm_override(self):
        """The physician confirms overriding the gates that block (those that may be), and the
        selection is predicted."""
        s = self.ctx.session
        a = s.assessment()
        if a.overridable:
            s.confirm_override([g.kind for g in a.blocking])
            self._predict()
