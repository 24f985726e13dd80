"""The report from the window: only for a current result (not stale, gates passed or
overridden), written by the shared command (:func:`..core.commands.write_report`) from the model
input the prediction was made from, in a worker, so the window stays usable."""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QObject, Slot

from ..core.commands import Outcome, write_report
from .report_dialog import ReportDialog
from .workers import Worker


class ReportController(QObject):
    def __init__(self, win):
        super().__init__(win)
        self.win = win
        self.dialog: ReportDialog | None = None
        self.last_report: Path | None = None
        self._outcome: Outcome | None = None

    def export(self) -> ReportDialog | None:
        """Open the dialog (non-modal) for the current result."""
        win = self.win
        r = win.session.current_result()
        if r is None or win.predictor is None:
            win.show_message("Predict first: the report shows the current result, and there is "
                             "none for this ROI, slice and side.")
            return None
        self._outcome = Outcome(r.selection, r.prediction, r.model_input, None,
                                r.prediction.provenance.roi_side)
        default = Path.home() / f"tfesi-report-{time.strftime('%Y%m%d-%H%M%S')}.pdf"
        dlg = ReportDialog(win, default)
        dlg.accepted.connect(self._accepted)
        self.dialog = dlg
        dlg.open()
        return dlg

    @Slot()
    def _accepted(self):
        d, win = self.dialog, self.win
        win.statusBar().showMessage("Writing the report...")
        win.run_worker(Worker(write_report, self._outcome, win.predictor.bundle,
                              win.session.scan, d.path.text(),
                              comment=d.comment.toPlainText(), physician=d.physician.text(),
                              anonymize=d.anonymize.isChecked(),
                              paper=d.paper.currentText().lower(), dicom=d.dicom.isChecked()),
                       self._written, self._failed)

    @Slot(object)
    def _written(self, payload):
        out, dcm, seconds = payload
        self.last_report = out
        self.win.statusBar().showMessage(f"Report written to {out} ({seconds:.2f} s)"
                                         + (f"; DICOM copy {dcm}" if dcm else ""), 15000)

    @Slot(str)
    def _failed(self, message):
        self.win.show_message(f"The report could not be written: {message}")
