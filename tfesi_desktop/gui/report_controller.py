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
        # the current selection (same model inputs as the result's): its measurements, level
        # and level source as they are now
        self._outcome = Outcome(win.session.selection, r.prediction, r.model_input, None,
                                r.prediction.provenance.roi_side)
        self._comparison = win.comparison_text()
        from .mainwindow import settings

        st = settings()
        folder = Path(str(st.value("report_folder", "") or Path.home()))
        if not folder.is_dir():
            folder = Path.home()
        default = folder / f"tfesi-report-{time.strftime('%Y%m%d-%H%M%S')}.pdf"
        dlg = ReportDialog(win, default)
        dlg.physician.setText(str(st.value("physician", "") or ""))
        from .pacs_dialog import study_node  # the node the study came from (issue 26, item 5)
        dlg.node.setText(study_node(r.prediction.provenance.study_uid))
        dlg.accepted.connect(self._accepted)
        self.dialog = dlg
        dlg.open()
        return dlg

    @Slot()
    def _accepted(self):
        from .mainwindow import settings

        d, win = self.dialog, self.win
        st = settings()  # remembered for the next report (private settings file, 0600)
        st.setValue("physician", d.physician.text())
        st.setValue("report_folder", str(Path(d.path.text()).parent))
        st.sync()
        win.statusBar().showMessage("Writing the report...")
        win.run_worker(Worker(write_report, self._outcome, win.predictor.bundle,
                              win.session.scan, d.path.text(),
                              comment=d.comment.toPlainText(), physician=d.physician.text(),
                              anonymize=d.anonymize.isChecked(),
                              paper=d.paper.currentText().lower(), dicom=d.dicom.isChecked(),
                              comparison=self._comparison),
                       self._written, self._failed)

    @Slot(object)
    def _written(self, payload):
        out, dcm, seconds = payload
        self.last_report = out
        self.win.statusBar().showMessage(f"Report written to {out} ({seconds:.2f} s)"
                                         + (f"; DICOM copy {dcm}" if dcm else ""), 15000)
        d = self.dialog
        if d is not None and d.send.isChecked() and d.node.text().strip():
            self.win.run_worker(Worker(_dicom_results, self._outcome, self.win.session.scan,
                                       out, d.node.text().strip(),
                                       anonymize=d.anonymize.isChecked()),
                                self._sent, self._failed_send)

    @Slot(object)
    def _sent(self, count):
        self.win.statusBar().showMessage(f"Sent {count} DICOM objects (PDF, SR, heat map "
                                         "picture and data) to the PACS.", 15000)

    @Slot(str)
    def _failed_send(self, message):
        self.win.show_message(f"The results were not sent to the PACS: {message}")

    @Slot(str)
    def _failed(self, message):
        self.win.show_message(f"The report could not be written: {message}")


def _dicom_results(outcome: Outcome, scan, pdf: Path, node: str, *, anonymize: bool) -> int:
    """In a worker: the encapsulated PDF, the TID 1500 SR and the heat map's secondary capture
    beside the PDF, then C-STORE (or STOW-RS) to ``node``; the number of objects stored."""
    from ..core import results_dicom
    from ..core.dicom import default_window
    from ..core.pacs import send_to_pacs
    from ..core.report import encapsulate_pdf

    stack = scan.find_stack(outcome.selection.series_key)
    index = stack.find_slice(outcome.selection.slice_key)
    pdf = Path(pdf)
    files = [encapsulate_pdf(pdf, scan.study_of(stack), stack, anonymize=anonymize, index=index,
                             provenance=outcome.prediction.provenance),
             results_dicom.write_sr(outcome.prediction, stack, index,
                                    pdf.with_suffix(".sr.dcm"), anonymize=anonymize),
             results_dicom.write_secondary_capture(outcome.prediction, stack, index,
                                                   pdf.with_suffix(".sc.dcm"),
                                                   anonymize=anonymize,
                                                   window=default_window(stack))]
    files.append(results_dicom.write_parametric_map(  # the heat map as data
        outcome.prediction, stack, index, pdf.with_suffix(".pm.dcm"), anonymize=anonymize))
    send_to_pacs(files, node)
    return len(files)
