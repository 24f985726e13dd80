"""Opening studies from the window. The file dialogs, drag and drop, the recent list and the
PACS dialog all end in :meth:`StudyOpener.open`: the headers are read in a worker with progress
and Cancel, the scan goes to the session, and then the browser's thumbnails are made (held back
while the model loads, so the first slices paint without waiting: docs/architecture.md,
invariant 3). The files that could not be read are listed on request."""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer, Slot
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
from .context import AppContext
from .viewer import grey_pixmap
from .workers import Worker


class StudyOpener(QObject):
    def __init__(self, ctx: AppContext, *, busy, clear_messages, remember, restored,
                 hold_back, browser):
        """``busy(state)``: show the progress (``(done, total)``, total 0: not known yet) or hide
        it (None); ``remember(paths)``: File > Open recent; ``restored()``: a selection restored
        with the study is to be predicted; ``hold_back()``: whether the thumbnails must wait
        (the model loads, or a canal search runs); ``browser``: the series
        tree."""
        super().__init__(ctx.parent)
        self.ctx = ctx
        self._busy, self._clear, self._remember = busy, clear_messages, remember
        self._restored, self._hold_back, self.browser = restored, hold_back, browser
        self.worker: Worker | None = None  # the scan under way
        self.paths: list[str] = []
        self.thumbs_wanted = False  # asked for while they were held back
        self.skipped_dialog: QDialog | None = None

    def folder_dialog(self):
        d = QFileDialog.getExistingDirectory(self.ctx.parent, "Open a study folder")
        if d:
            self.open([d])

    def files_dialog(self):
        files, _ = QFileDialog.getOpenFileNames(
            self.ctx.parent, "Open DICOMDIR, ZIP or DICOM files", "",
            "DICOM (DICOMDIR *.dcm *.zip *);;All files (*)")
        if files:
            self.open(files)

    def from_pacs(self):
        """Search the PACS and retrieve a study in a worker; it opens when it is complete."""
        from .pacs_dialog import open_pacs_dialog

        return open_pacs_dialog(self.ctx.parent, lambda folder: self.open([folder]))

    def open(self, paths):
        """Read the headers of ``paths`` (folders, DICOMDIR, ZIP or files) in a worker; a scan
        under way is cancelled."""
        paths = [str(p) for p in paths]
        self.cancel()
        self.ctx.status("Reading headers...", 0)
        self._busy((0, 0))
        w = Worker(open_study, paths, pass_control=True)
        w.signals.progress.connect(self._progress)
        w.signals.cancelled.connect(self._cancelled)
        self.paths = paths
        self.worker = self.ctx.run_worker(w, self._done, self._failed)

    def cancel(self):
        if self.worker is not None:
            self.worker.cancel()

    @Slot(int, int)
    def _progress(self, done, total):
        self._busy((done, total))

    def _finished(self):
        self.worker = None
        self._busy(None)

    @Slot()
    def _cancelled(self):
        self._finished()
        self.ctx.status("Opening cancelled.", 5000)

    @Slot(str)
    def _failed(self, message):
        self._finished()
        self.ctx.notify(f"The study could not be opened: {message}", "error")

    @Slot(object)
    def _done(self, opened):
        self._finished()
        # File > Open recent writes the settings file: after the study is on the screen (the
        # next turn of the event loop), not in the slot that shows it (docs/architecture.md,
        # invariant 3)
        QTimer.singleShot(0, lambda paths=list(self.paths): self._remember(paths))
        self._clear()
        result = opened.scan
        n = len(result.skipped)
        self.ctx.status(f"{len(result.stacks)} series in {len(result.studies)} "
                        f"stud{'ies' if len(result.studies) != 1 else 'y'}"
                        + (f"; {n} files could not be read" if n else ""), 10000)
        s = self.ctx.session
        s.open(result, notes=opened.notes)
        if s.selection is not None and s.selection.complete():
            self._restored()  # predicted as soon as it can be
        self.request_thumbnails()

    def refill(self, masked: bool):
        """The browser again, the patients' names masked or not (M)."""
        s = self.ctx.session
        if s.scan is not None:
            self.browser.fill(s.patients(), masked)
            self.browser.show_current(s.series_key)
            self.request_thumbnails()

    def request_thumbnails(self):
        """The browser's pictures, in a worker once the model worker is done: beside it they
        would slow the first paint of the slices."""
        scan = self.ctx.session.scan
        self.thumbs_wanted = scan is not None
        if self.thumbs_wanted and not self._hold_back():
            self.thumbs_wanted = False
            self.ctx.run_worker(Worker(jobs.thumbnails, scan.stacks), self._thumbnails_done,
                                later=True)

    @Slot(object)
    def _thumbnails_done(self, thumbs):
        for key, t in thumbs:
            item = self.browser.item_of(key)
            if item is not None and t is not None:
                item.setIcon(0, QIcon(grey_pixmap(t)))

    def show_skipped(self):
        scan = self.ctx.session.scan
        if not scan or not scan.skipped:
            return
        dlg = QDialog(self.ctx.parent)
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
