"""File > Export report: the dialog (file, anonymize, physician, comment, paper, DICOM copy).
:mod:`.report_controller` opens it and writes the report in a worker."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
)


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
        self.anonymize = QCheckBox("Anonymize (DICOM PS3.15 basic profile: no names, IDs, "
                                   "dates, age or sex; new UIDs)")
        self.anonymize.setChecked(True)
        form.addRow(self.anonymize)
        self.physician = QLineEdit()
        form.addRow("Physician", self.physician)
        self.comment = QPlainTextEdit()
        self.comment.setPlaceholderText("Your comment (printed on the report)")
        self.comment.setFixedHeight(90)
        form.addRow("Comment", self.comment)
        self.impression = QPlainTextEdit()
        self.impression.setObjectName("impression")
        self.impression.setPlaceholderText("Impression and plan (printed on the report)")
        self.impression.setFixedHeight(70)
        form.addRow("Impression / plan", self.impression)
        # what anonymization does to the free text, shown while it is ticked
        self.comment_note = QLabel("Anonymized: the patient's name, ID and dates are replaced "
                                   "by [removed] in the comment; write nothing else that "
                                   "identifies the patient.")
        self.comment_note.setWordWrap(True)
        self.comment_note.setStyleSheet("color: #b36b00;")
        self.anonymize.toggled.connect(self.comment_note.setVisible)
        form.addRow("", self.comment_note)
        self.paper = QComboBox()
        self.paper.addItems(["A4", "Letter"])
        form.addRow("Paper", self.paper)
        self.dicom = QCheckBox("Also save as DICOM Encapsulated PDF (for the PACS)")
        form.addRow(self.dicom)
        self.send = QCheckBox("Send to PACS: the PDF, a structured report (SR) and the heat map "
                              "as a secondary capture")
        self.node = QLineEdit()
        self.node.setPlaceholderText("AET@HOST:PORT, or a node saved with tfesi pacs nodes add")
        self.node.setEnabled(False)
        self.send.toggled.connect(self.node.setEnabled)
        form.addRow(self.send)
        form.addRow("PACS", self.node)
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
