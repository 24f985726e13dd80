"""Opening studies from the window. The file dialogs, drag and drop, the recent list and the
PACS dialog all end in :meth:`StudyOpener.open`: the headers are read in a worker with progress
and Cancel, the scan goes to the session, and then the browser's thumbnails are made (held back
while the model loads, so the first slices paint without waiting: docs/architecture.md,
invariant 3). The files that could not be read are listed on request."""

from __future__ import annotations

from PySide6.QtCore import QObject, Slot
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from ..core.commands import open_study
from . import jobs
from .viewer import grey_pixmap
from .workers import Worker


class StudyOpener(QObject):
    def __init__(self, win):
        super().__init__(win)
        self.win = win
        self.worker: Worker | None = None  # the scan under way
        self.paths: list[str] = []
        self.thumbs_wanted = False  # asked for while the model was loading
        self.skipped_dialog: QDialog | None = None

    def folder_dialog(self):
        d = QFileDialog.getExistingDirectory(self.win, "Open a study folder")
        if d:
            self.open([d])

    def files_dialog(self):
        files, _ = QFileDialog.getOpenFileNames(
            self.win, "Open DICOMDIR, ZIP or DICOM files", "",
            "DICOM (DICOMDIR *.dcm *.zip *);;All files (*)")
        if files:
            self.open(files)

    def from_pacs(self):
        """Search the PACS and retrieve a study in a worker; it opens when it is complete."""
        from .pacs_dialog import open_pacs_dialog

        return open_pacs_dialog(self.win, lambda folder: self.open([folder]))

    def open(self, paths):
        """Read the headers of ``paths`` (folders, DICOMDIR, ZIP or files) in a worker; a scan
        under way is cancelled."""
        win = self.win
        paths = [str(p) for p in paths]
        self.cancel()
        win.statusBar().showMessage("Reading headers...")
        win.progress.setRange(0, 0)
        win.progress.show()
        win.cancel_button.show()
        w = Worker(open_study, paths, pass_control=True)
        w.signals.progress.connect(self._progress)
        w.signals.cancelled.connect(self._cancelled)
        self.paths = paths
        self.worker = win.run_worker(w, self._done, self._failed)

    def cancel(self):
        if self.worker is not None:
            self.worker.cancel()

    @Slot(int, int)
    def _progress(self, done, total):
        self.win.progress.setRange(0, max(total, 1))
        self.win.progress.setValue(done)

    def _finished(self):
        self.worker = None
        self.win.progress.hide()
        self.win.cancel_button.hide()

    @Slot()
    def _cancelled(self):
        self._finished()
        self.win.statusBar().showMessage("Opening cancelled.", 5000)

    @Slot(str)
    def _failed(self, message):
        self._finished()
        self.win.show_message(f"The study could not be opened: {message}")

    @Slot(object)
    def _done(self, opened):
        win = self.win
        self._finished()
        win.remember(self.paths)
        win.messages.clear()
        result = opened.scan
        n = len(result.skipped)
        win.statusBar().showMessage(
            f"{len(result.stacks)} series in {len(result.studies)} "
            f"stud{'ies' if len(result.studies) != 1 else 'y'}"
            + (f"; {n} files could not be read" if n else ""), 10000)
        win.session.open(result, notes=opened.notes)
        sel = win.session.selection
        if sel is not None and sel.complete():
            win.predict_when_ready()  # a restored selection
        self.request_thumbnails()

    def request_thumbnails(self):
        """The browser's pictures, in a worker once the model worker is done: beside it they
        would slow the first paint of the slices."""
        win = self.win
        self.thumbs_wanted = win.session.scan is not None
        if self.thumbs_wanted and not win.loading_model:
            self.thumbs_wanted = False
            win.run_worker(Worker(jobs.thumbnails, win.session.scan.stacks),
                           self._thumbnails_done)

    @Slot(object)
    def _thumbnails_done(self, thumbs):
        for key, t in thumbs:
            item = self.win.browser.item_of(key)
            if item is not None and t is not None:
                item.setIcon(0, QIcon(grey_pixmap(t)))

    def show_skipped(self):
        scan = self.win.session.scan
        if not scan or not scan.skipped:
            return
        dlg = QDialog(self.win)
        dlg.setWindowTitle("Files that could not be read")
        lay = QVBoxLayout(dlg)
        lay.addWidget(QLabel(f"{len(scan.skipped)} files were skipped; the rest of the "
                             "study was read."))
        table = QTableWidget(len(scan.skipped), 2)
        table.setHorizontalHeaderLabels(["File", "Reason"])
        for i, (p, reason) in enumerate(scan.skipped):
            table.setItem(i, 0, QTableWidgetItem(str(p)))
            table.setItem(i, 1, QTableWidgetItem(reason))
        table.resizeColumnsToContents()
        lay.addWidget(table)
        dlg.resize(800, 300)
        dlg.setModal(False)
        dlg.show()
        self.skipped_dialog = dlg
