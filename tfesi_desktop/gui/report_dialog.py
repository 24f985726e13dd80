"""File > Export report: a dialog (file, anonymize, physician, comment, paper, DICOM copy),
then a worker writes the PDF (atomically) while the window stays usable."""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
)

from .workers import Worker


class ReportDialog(QDialog):
    def __init__(self, parent, default_path: Path):
        super().__init__(parent)
        self.setWindowTitle("Export report")
        form = QFormLayout(self)
        row = QHBoxLayout()
        self.path = QLineEdit(str(default_path))
        browse = QPushButton("Browse...")
        browse.clicked.connect(self._browse)
        row.addWidget(self.path, 1)
        row.addWidget(browse)
        form.addRow("PDF file", row)
        self.anonymize = QCheckBox("Anonymize: no name, ID or birth date in the file")
        self.anonymize.setChecked(True)
        form.addRow(self.anonymize)
        self.physician = QLineEdit()
        form.addRow("Physician", self.physician)
        self.comment = QPlainTextEdit()
        self.comment.setPlaceholderText("Your comment (printed on the report)")
        self.comment.setFixedHeight(90)
        form.addRow("Comment", self.comment)
        self.paper = QComboBox()
        self.paper.addItems(["A4", "Letter"])
        form.addRow("Paper", self.paper)
        self.dicom = QCheckBox("Also save as DICOM Encapsulated PDF (for the PACS)")
        form.addRow(self.dicom)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self.buttons = buttons

    def _browse(self):
        f, _ = QFileDialog.getSaveFileName(self, "Save the report", self.path.text(),
                                           "PDF (*.pdf)")
        if f:
            self.path.setText(f if f.lower().endswith(".pdf") else f + ".pdf")


def export_report(win) -> ReportDialog | None:
    """Open the dialog (non-modal); on Save, write the report in a worker."""
    if win.prediction is None or win._stale():
        win.show_error("No current result", "Predict first: the report shows the current "
                       "result, and the last one no longer matches the ROI, slice or side.")
        return None
    default = Path.home() / f"tfesi-report-{time.strftime('%Y%m%d-%H%M%S')}.pdf"
    dlg = ReportDialog(win, default)
    dlg.accepted.connect(win._report_dialog_accepted)
    win.report_dialog = dlg
    dlg.open()
    return dlg


def _write(prediction, bundle, study, stack, index, model_input, level, comment, physician,
           anonymize, paper, path, dicom):
    from ..core.report import encapsulate_pdf, report_inputs, write_report

    t0 = time.perf_counter()
    inp = report_inputs(prediction, bundle, study, stack, index, model_input, level=level,
                        comment=comment, physician=physician, anonymize=anonymize, paper=paper)
    out = write_report(inp, path)
    dcm = encapsulate_pdf(out, study, stack, anonymize=anonymize) if dicom else None
    return out, dcm, time.perf_counter() - t0


class ReportMixin:
    """Slots of the main window for the report (kept here beside the dialog)."""

    @Slot()
    def _report_dialog_accepted(self):
        from ..core.preprocess import slice_input

        d = self.report_dialog
        pred = self.prediction
        p = pred.provenance
        mi = slice_input(self.stack.slices[p.slice_index], tuple(p.roi), p.side)
        self.statusBar().showMessage("Writing the report...")
        self._run(Worker(_write, pred, self.predictor.bundle, self.study, self.stack,
                         p.slice_index, mi, self.level, d.comment.toPlainText(),
                         d.physician.text(), d.anonymize.isChecked(),
                         d.paper.currentText().lower(), d.path.text(), d.dicom.isChecked()),
                  self._report_written, self._report_failed)

    @Slot(object)
    def _report_written(self, payload):
        out, dcm, seconds = payload
        self.last_report = out
        self.statusBar().showMessage(f"Report written to {out} ({seconds:.2f} s)"
                                     + (f"; DICOM copy {dcm}" if dcm else ""), 15000)

    @Slot(str)
    def _report_failed(self, message):
        self.show_error("The report could not be written", message)
