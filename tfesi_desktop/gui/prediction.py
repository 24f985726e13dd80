"""When and how the window predicts: it asks :func:`..core.predict_policy.next_action` after
every change and does what it says: predict in a worker, wait (the prediction follows by
itself), or say why not (docs/architecture.md, invariant 3: the GUI thread never waits)."""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer, Slot

from ..core.commands import predict_selection
from ..core.predict_policy import Blocked, Predict, Wait, next_action
from .context import AppContext
from .workers import Worker


class PredictController(QObject):
    def __init__(self, ctx: AppContext, panel, values_of, model_loading):
        super().__init__(ctx.parent)
        self.ctx, self.panel = ctx, panel
        self._values_of = values_of  # slice key -> decoded values or None
        self._model_loading = model_loading  # () -> bool
        self.predicting = None  # model key of the prediction under way
        self.pending = False  # predict as soon as model, slice and canal are ready
        self.timer = QTimer(self, singleShot=True, interval=350)
        self.timer.timeout.connect(self._auto)

    def action(self):
        s = self.ctx.session
        sel = s.selection
        return next_action(
            selection=sel, assessment=s.assessment() if sel else None,
            model_ready=self.ctx.model() is not None, model_loading=self._model_loading(),
            slice_ready=sel is not None and self._values_of(sel.slice_key) is not None,
            up_to_date=s.current_result() is not None,
            predicting=sel is not None and self.predicting == sel.model_key())

    def when_ready(self):
        """Predict the current selection as soon as it can be (a restored selection)."""
        self.pending = True
        self.changed()

    def changed(self):
        """Something changed: predict automatically (after a short pause) if asked to."""
        if self.panel.auto_check.isChecked() or self.pending:
            self.timer.start()

    @Slot()
    def _auto(self):
        if not (self.panel.auto_check.isChecked() or self.pending):
            return
        a = self.action()
        if isinstance(a, Predict):
            self._start()
        elif isinstance(a, Blocked):
            self.pending = False  # no result, not even automatically: the panel says why

    def predict(self):
        """Predict now (Ctrl+P), or say why not."""
        a = self.action()
        if isinstance(a, Predict):
            self._start()
            return
        if isinstance(a, Wait):
            self.pending = self.pending or a.pending
            self.ctx.notify(a.reason, "info")
        else:
            self.pending = False
            self.ctx.notify(a.reason, "error")

    def _start(self):
        s = self.ctx.session
        sel = s.selection
        self.pending = False
        self.predicting = sel.model_key()
        self.panel.result_label.setText("<i>Predicting...</i>")
        _, canal = s.canal(sel.slice_key)
        self.ctx.run_worker(Worker(predict_selection, self.ctx.model(), s.stack(), sel,
                                   values=self._values_of(sel.slice_key), canal=canal),
                            self._predicted, self._failed, pause_later=True)

    @Slot(object)
    def _predicted(self, result):
        self.predicting = None
        self.ctx.session.keep(result)

    @Slot(str)
    def _failed(self, message):
        self.predicting = None
        self.panel.result_label.setText("No prediction.")
        self.ctx.notify(f"The prediction failed: {message}", "error")
