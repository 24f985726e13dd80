"""The report from the window: only for a current result (not stale, gates passed or
overridden), written by the shared command (:func:`..core.commands.write_report`) from the model
input the prediction was made from, in a worker, so the window stays usable. It prints what the
panel shows: the session's current result, with the selection as it is now (one level, one Kim
line), and says why when there is nothing to export."""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QObject, Slot

from ..core.commands import write_report
from ..core.selection import Result
from .context import AppContext
from .report_dialog import ReportDialog
from .workers import Worker


class ReportController(QObject):
    def __init__(self, ctx: AppContext, comparison_text, clinical=lambda: (None, None)):
        super().__init__(ctx.parent)
        self.ctx = ctx
        self._comparison_text = comparison_text  # () -> str | None
        # () -> (CombinedPrediction or None, why none): the clinical data as the panel shows
        self._clinical_of = clinical
        self.dialog: ReportDialog | None = None
        self.last_report: Path | None = None
        self._result: Result | None = None

    def refusal(self) -> str | None:
        """Why there is nothing to export now (None: there is)."""
        s = self.ctx.session
        if s.selection is None:
            return "Open a study, draw the ROI and predict first: the report shows a result."
        if self.ctx.model() is None:
            return "No model is loaded, so there is no result to report."
        block = s.assessment().blocking
        if block:
            return ("No report: the selection does not pass the safety checks. "
                    + " ".join(g.message for g in block))
        if s.is_stale():
            return ("No report: the result no longer matches the ROI, slice or side. Predict "
                    "again (Ctrl+P), then export.")
        if s.current_result() is None:
            return ("Predict first: the report shows the current result, and there is none "
                    "for this ROI, slice and side.")
        return None

    def export(self) -> ReportDialog | None:
        """Open the dialog (non-modal) for the current result, or say why not."""
        why = self.refusal()
        if why is not None:
            self.ctx.notify(why, "error")
            return None
        self._result = self.ctx.session.current_result()
        self._kim = self.ctx.session.kim()[1] if self.ctx.session.kim()[0] else None
        self._comparison = self._comparison_text()
        self._clinical = self._clinical_of()
        st = self.ctx.settings()
        folder = Path(str(st.value("report_folder", "") or Path.home()))
        if not folder.is_dir():
            folder = Path.home()
        default = folder / f"tfesi-report-{time.strftime('%Y%m%d-%H%M%S')}.pdf"
        dlg = ReportDialog(self.ctx.parent, default)
        dlg.physician.setText(str(st.value("physician", "") or ""))
        from .pacs_dialog import study_node  # the node the study came from (issue 26, item 5)
        dlg.node.setText(study_node(self._result.prediction.provenance.study_uid))
        dlg.accepted.connect(self._accepted)
        self.dialog = dlg
        dlg.open()
        return dlg

    @Slot()
    def _accepted(self):
        d, ctx = self.dialog, self.ctx
        st = ctx.settings()  # remembered for the next report (private settings file, 0600)
        st.setValue("physician", d.physician.text())
        st.setValue("report_folder", str(Path(d.path.text()).parent))
        st.sync()
        ctx.status("Writing the report...", 0)
        ctx.run_worker(Worker(write_report, self._result, ctx.model().bundle,
                              ctx.session.scan, d.path.text(),
                              comment=d.comment.toPlainText(), physician=d.physician.text(),
                              anonymize=d.anonymize.isChecked(),
                              paper=d.paper.currentText().lower(), dicom=d.dicom.isChecked(),
                              comparison=self._comparison, kim=self._kim,
                              impression=d.impression.toPlainText().strip() or None,
                              clinical=self._clinical[0], clinical_note=self._clinical[1]),
                       self._written, self._failed)

    @Slot(object)
    def _written(self, payload):
        out, dcm, seconds = payload
        self.last_report = out
        self.ctx.notify(f"Report written to {out} ({seconds:.2f} s)"
                        + (f"; DICOM copy {dcm}" if dcm else "") + ".", "info")
        d = self.dialog
        if d is not None and d.send.isChecked() and d.node.text().strip():
            self.ctx.run_worker(Worker(_dicom_results, self._result, self.ctx.session.scan,
                                       out, d.node.text().strip(),
                                       anonymize=d.anonymize.isChecked()),
                                self._sent, self._failed_send)

    @Slot(object)
    def _sent(self, count):
        self.ctx.notify(f"Sent {count} DICOM objects (PDF, SR, heat map picture and data) to "
                        "the PACS.", "info")

    @Slot(str)
    def _failed_send(self, message):
        self.ctx.notify(f"The results were not sent to the PACS: {message}", "error")

    @Slot(str)
    def _failed(self, message):
        self.ctx.notify(f"The report could not be written: {message}", "error")


def _dicom_results(result: Result, scan, pdf: Path, node: str, *, anonymize: bool) -> int:
    """In a worker: the encapsulated PDF, the TID 1500 SR and the heat map's secondary capture
    beside the PDF, then C-STORE (or STOW-RS) to ``node``; the number of objects stored."""
    from ..core import results_dicom
    from ..core.dicom import default_window
    from ..core.pacs import send_to_pacs
    from ..core.report import encapsulate_pdf

    stack = scan.find_stack(result.selection.series_key)
    index = stack.find_slice(result.selection.slice_key)
    pdf = Path(pdf)
    # the result itself: its level is the selection's, as the panel and the PDF show it
    files = [encapsulate_pdf(pdf, scan.study_of(stack), stack, anonymize=anonymize, index=index,
                             provenance=result.prediction.provenance),
             results_dicom.write_sr(result, stack, index, pdf.with_suffix(".sr.dcm"),
                                    anonymize=anonymize),
             results_dicom.write_secondary_capture(result, stack, index,
                                                   pdf.with_suffix(".sc.dcm"),
                                                   anonymize=anonymize,
                                                   window=default_window(stack))]
    files.append(results_dicom.write_parametric_map(  # the heat map as data
        result, stack, index, pdf.with_suffix(".pm.dcm"), anonymize=anonymize))
    send_to_pacs(files, node)
    return len(files)
