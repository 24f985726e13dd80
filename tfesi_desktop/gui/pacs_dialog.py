"""Open from PACS: search a PACS (C-FIND or QIDO-RS), see the results grouped by patient and
study, retrieve one study into the program's study cache (C-GET or WADO-RS) in a worker with
progress and Cancel; the study opens when the retrieval is complete.

The window never waits on the network: every call runs in a :class:`~.workers.Worker` whose
signals are connected to slots of this dialog (a QObject in the GUI thread). A dead PACS answers
within 10 s (``core.pacs.dimse``: 5 s to connect, one sentence).

The PACS nodes are managed here too (Nodes…: add, edit, test with C-ECHO, remove; saved in
``core/pacs/nodes.py``'s settings file), the node last used is selected when the dialog opens,
and "Today" / "Last 7 days" fill the study dates. Each retrieval records the node the study came
from, which :func:`study_node` offers when the report dialog sends results back.

For the main window: ``open_pacs_dialog(parent, on_study_ready)``; for the report dialog's
"Send to PACS": :func:`study_node` and :func:`send_to_pacs_worker`.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Sequence
from pathlib import Path

from PySide6.QtCore import Qt, QThreadPool, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..core import pacs
from ..core.errors import TfesiError
from ..core.render import display_name
from .workers import Worker

UID_ROLE = Qt.ItemDataRole.UserRole


def _search(spec: str, aet: str, filters: dict, *, progress, cancel) -> list[dict]:
    node = pacs.resolve(spec)
    if node.dimse:
        from ..core.pacs import dimse

        return dimse.find_studies(node, calling_aet=aet, cancel=cancel, **filters)
    return pacs.find_studies(node, **filters)


def _retrieve(spec: str, aet: str, study_uid: str, *, progress, cancel) -> Path:
    got = pacs.retrieve(spec, study_uid, calling_aet=aet, progress=progress, cancel=cancel)
    return got.path


def study_node(study_uid: str | None) -> str:
    """The node to offer when sending a study's results: the one it was retrieved from, else
    the node last used, else nothing."""
    try:
        return pacs.origin_of(study_uid) or pacs.last_used() or ""
    except TfesiError:
        return ""


def _date_text(d: str | None) -> str:
    return f"{d[:4]}-{d[4:6]}-{d[6:8]}" if d and len(d) == 8 and d.isdigit() else (d or "")


class PacsDialog(QDialog):
    """Search fields, results by patient and study, retrieval with progress and Cancel."""

    def __init__(self, parent: QWidget | None, on_study_ready: Callable[[Path], None]):
        super().__init__(parent)
        self.setWindowTitle("Open from PACS")
        self.resize(820, 560)
        self.on_study_ready = on_study_ready
        self.pool = QThreadPool.globalInstance()
        self.worker: Worker | None = None
        self.retrieved: Path | None = None

        self.pacs_box = QComboBox(editable=True)
        self.pacs_box.lineEdit().setPlaceholderText("node name, AET@HOST:PORT or DICOMweb URL")
        self._later_error = self.load_nodes(pacs.last_used())
        self.aet_edit = QLineEdit(pacs.DEFAULT_AET)
        self.aet_edit.setMaxLength(16)
        self.echo_button = QPushButton("Test connection")
        self.nodes_button = QPushButton("Nodes…")
        self.nodes_button.setToolTip("Add, edit, test and remove the PACS nodes you use")
        self.today_button = QPushButton("Today")
        self.week_button = QPushButton("Last 7 days")
        self.patient_id = QLineEdit()
        self.patient_name = QLineEdit()
        self.patient_name.setPlaceholderText("DOE^J*")
        self.date_from = QLineEdit()
        self.date_from.setPlaceholderText("YYYYMMDD")
        self.date_to = QLineEdit()
        self.date_to.setPlaceholderText("YYYYMMDD")
        self.modality = QLineEdit("MR")
        self.accession = QLineEdit()
        self.search_button = QPushButton("Search")
        self.search_button.setDefault(True)

        top = QHBoxLayout()
        top.addWidget(QLabel("PACS"))
        top.addWidget(self.pacs_box, 1)
        top.addWidget(QLabel("Calling AE"))
        top.addWidget(self.aet_edit)
        top.addWidget(self.echo_button)
        top.addWidget(self.nodes_button)
        grid = QGridLayout()
        fields = QFormLayout()
        fields.addRow("Patient ID", self.patient_id)
        fields.addRow("Patient name", self.patient_name)
        fields.addRow("Accession", self.accession)
        more = QFormLayout()
        dates = QHBoxLayout()
        dates.addWidget(self.date_from)
        dates.addWidget(QLabel("to"))
        dates.addWidget(self.date_to)
        more.addRow("Study date", dates)
        quick = QHBoxLayout()
        quick.addWidget(self.today_button)
        quick.addWidget(self.week_button)
        quick.addStretch(1)
        more.addRow("", quick)
        more.addRow("Modality", self.modality)
        more.addRow("", self.search_button)
        grid.addLayout(fields, 0, 0)
        grid.addLayout(more, 0, 1)

        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Patient / study", "Date", "Modalities", "Images",
                                   "Accession", "Study UID"])
        self.tree.setColumnWidth(0, 280)
        self.tree.setAlternatingRowColors(True)

        self.status = QLabel("Search the PACS for a study, then open it.")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.open_button = QPushButton("Open study")
        self.open_button.setEnabled(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.close_button = QPushButton("Close")
        bottom = QHBoxLayout()
        bottom.addWidget(self.progress, 1)
        bottom.addWidget(self.open_button)
        bottom.addWidget(self.cancel_button)
        bottom.addWidget(self.close_button)

        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addLayout(grid)
        lay.addWidget(self.tree, 1)
        lay.addWidget(self.status)
        lay.addLayout(bottom)

        self.search_button.clicked.connect(self.search)
        self.echo_button.clicked.connect(self.echo)
        self.nodes_button.clicked.connect(self.manage_nodes)
        self.today_button.clicked.connect(lambda: self.set_days(1))
        self.week_button.clicked.connect(lambda: self.set_days(7))
        self.open_button.clicked.connect(self.retrieve_selected)
        self.cancel_button.clicked.connect(self.cancel)
        self.close_button.clicked.connect(self.reject)
        self.tree.itemSelectionChanged.connect(self._selection_changed)
        self.tree.itemDoubleClicked.connect(self._double_clicked)
        if self._later_error:
            self._error(self._later_error)

    # --- nodes -------------------------------------------------------------------------------

    def load_nodes(self, select: str | None = None) -> str | None:
        """Fill the PACS box from the saved nodes and select ``select`` (a node's name, or an
        address typed earlier); the error sentence when the settings cannot be read."""
        self.pacs_box.clear()
        error = None
        try:
            for name, node in pacs.load_nodes().items():
                self.pacs_box.addItem(str(node), name)
        except TfesiError as e:  # unreadable settings: say so, the user can still type
            error = str(e)
        if select:
            i = self.pacs_box.findData(select)
            if i >= 0:
                self.pacs_box.setCurrentIndex(i)
            else:
                self.pacs_box.setEditText(select)
        return error

    @Slot()
    def manage_nodes(self) -> None:
        dlg = NodesDialog(self)
        dlg.finished.connect(lambda _r: self.load_nodes(dlg.chosen or self.pacs_spec()))
        dlg.open()
        self.nodes_dialog = dlg

    def set_days(self, days: int) -> None:
        """Study dates from ``days - 1`` days ago to today (1: today only)."""
        today = _dt.date.today()
        self.date_from.setText((today - _dt.timedelta(days=days - 1)).strftime("%Y%m%d"))
        self.date_to.setText(today.strftime("%Y%m%d"))

    # --- state -------------------------------------------------------------------------------

    def pacs_spec(self) -> str:
        i = self.pacs_box.currentIndex()
        text = self.pacs_box.currentText().strip()
        if i >= 0 and text == self.pacs_box.itemText(i) and self.pacs_box.itemData(i):
            return self.pacs_box.itemData(i)
        return text

    def busy(self) -> bool:
        return self.worker is not None

    def _set_busy(self, busy: bool, what: str = "") -> None:
        for w in (self.search_button, self.echo_button, self.pacs_box, self.aet_edit):
            w.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)
        self.open_button.setEnabled(not busy and self.selected_study() is not None)
        if busy:
            self.status.setStyleSheet("")
            self.status.setText(what)

    def _start(self, fn, *args, on_result, what: str) -> None:
        if self.busy():
            return
        spec = self.pacs_spec()
        if not spec:
            self._error("Choose a PACS: a configured node, AET@HOST:PORT or a DICOMweb URL.")
            return
        w = Worker(fn, spec, self.aet_edit.text().strip() or pacs.DEFAULT_AET, *args,
                   pass_control=True)
        w.signals.result.connect(on_result)
        w.signals.error.connect(self._error)
        w.signals.cancelled.connect(self._cancelled)
        w.signals.progress.connect(self._progress)
        w.signals.finished.connect(self._finished)
        self.worker = w
        self._set_busy(True, what)
        self.pool.start(w)

    # --- actions -----------------------------------------------------------------------------

    def filters(self) -> dict:
        a, b = self.date_from.text().strip(), self.date_to.text().strip()
        return {"patient_id": self.patient_id.text().strip() or None,
                "patient_name": self.patient_name.text().strip() or None,
                "study_date": (f"{a}-{b}" if (a and b and a != b) or (a and not b)
                               or (b and not a) else (a or None)),
                "modality": self.modality.text().strip() or None,
                "accession": self.accession.text().strip() or None}

    @Slot()
    def search(self) -> None:
        self._start(_search, self.filters(), on_result=self._found,
                    what="Searching the PACS…")

    @Slot()
    def echo(self) -> None:
        self._start(_echo, on_result=self._echoed, what="Testing the connection…")

    @Slot()
    def retrieve_selected(self) -> None:
        uid = self.selected_study()
        if uid is None:
            return
        self.progress.setRange(0, 0)
        self.progress.setVisible(True)
        self._start(_retrieve, uid, on_result=self._retrieved,
                    what="Retrieving the study… (Cancel stops it; nothing half-imported "
                         "is kept)")

    @Slot()
    def cancel(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
            self.status.setText("Cancelling…")

    def reject(self) -> None:
        self.cancel()
        super().reject()

    # --- results (slots: they run in the GUI thread) ----------------------------------------

    def _remember(self) -> None:
        try:
            pacs.remember_last(self.pacs_spec())
        except TfesiError:
            pass  # a convenience only

    @Slot(object)
    def _found(self, rows: list[dict]) -> None:
        self._remember()
        self.tree.clear()
        patients: dict[tuple, QTreeWidgetItem] = {}
        for r in rows:
            key = (r.get("patient_id") or "", r.get("patient_name") or "")
            item = patients.get(key)
            if item is None:
                born = _date_text(r.get("birth_date"))
                item = QTreeWidgetItem([
                    f"{display_name(r.get('patient_name'))}  —  ID {r.get('patient_id') or '-'}"
                    + (f", born {born}" if born else "")
                    + (f", {r['sex']}" if r.get("sex") else "")])
                item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsSelectable)
                self.tree.addTopLevelItem(item)
                item.setFirstColumnSpanned(True)
                patients[key] = item
            study = QTreeWidgetItem([
                r.get("description") or "(no description)", _date_text(r.get("study_date")),
                "/".join(r.get("modalities") or []), str(r.get("instances") or ""),
                r.get("accession") or "", r["study_uid"]])
            study.setData(0, UID_ROLE, r["study_uid"])
            item.addChild(study)
        self.tree.expandAll()
        n = len(rows)
        self.status.setStyleSheet("")
        self.status.setText(f"{n} {'study' if n == 1 else 'studies'} of {len(patients)} "
                            f"{'patient' if len(patients) == 1 else 'patients'} found."
                            + (" Select one and open it." if n else ""))
        if n == 1:
            self.tree.setCurrentItem(next(iter(patients.values())).child(0))

    @Slot(object)
    def _echoed(self, seconds: float) -> None:
        self.status.setStyleSheet("color: #1b5e20;")
        self.status.setText(f"The PACS answers ({1000 * seconds:.0f} ms).")

    @Slot(object)
    def _retrieved(self, path: Path) -> None:
        self.retrieved = Path(path)
        self._remember()
        self.status.setStyleSheet("color: #1b5e20;")
        self.status.setText(f"Retrieved into {path}; opening…")
        self.on_study_ready(Path(path))
        self.accept()

    @Slot(str)
    def _error(self, message: str) -> None:
        self.status.setStyleSheet("color: #8d1c1c; font-weight: bold;")
        self.status.setText(message)

    @Slot()
    def _cancelled(self) -> None:
        self.status.setStyleSheet("")
        self.status.setText("Cancelled; nothing was imported.")

    @Slot(int, int)
    def _progress(self, done: int, total: int) -> None:
        if total > 0:
            self.progress.setRange(0, total)
            self.progress.setValue(done)
            self.progress.setFormat("%v of %m images")

    @Slot()
    def _finished(self) -> None:
        self.worker = None
        self.progress.setVisible(False)
        self._set_busy(False)

    # --- selection ---------------------------------------------------------------------------

    def selected_study(self) -> str | None:
        item = self.tree.currentItem()
        return None if item is None else item.data(0, UID_ROLE)

    @Slot()
    def _selection_changed(self) -> None:
        self.open_button.setEnabled(not self.busy() and self.selected_study() is not None)

    @Slot(QTreeWidgetItem, int)
    def _double_clicked(self, item, _column) -> None:
        if item.data(0, UID_ROLE) and not self.busy():
            self.retrieve_selected()


def _echo(spec, aet: str, *, progress, cancel) -> float:
    node = pacs.resolve(spec)
    if node.dimse:
        return pacs.echo(node, calling_aet=aet)
    import time

    t0 = time.perf_counter()
    pacs.find_studies(node, study_uid="0")
    return time.perf_counter() - t0


class NodesDialog(QDialog):
    """The saved PACS nodes: add, edit (select, change, Save), test (C-ECHO or a QIDO-RS
    search, in a worker), remove. ``chosen``: the node last saved or selected."""

    def __init__(self, parent: QWidget | None):
        super().__init__(parent)
        self.setWindowTitle("PACS nodes")
        self.resize(640, 420)
        self.pool = QThreadPool.globalInstance()
        self.worker: Worker | None = None
        self.chosen: str | None = None
        self.list = QListWidget()
        self.name = QLineEdit()
        self.name.setPlaceholderText("hospital")
        self.address = QLineEdit()
        self.address.setPlaceholderText("AET@HOST:PORT (DIMSE)")
        self.url = QLineEdit()
        self.url.setPlaceholderText("https://pacs.example.org/dicom-web (DICOMweb)")
        self.tls = QCheckBox("TLS (the PACS's certificate is checked)")
        self.ca_file = QLineEdit()
        self.ca_file.setPlaceholderText("authority's certificate (PEM); empty: the system's")
        self.aet = QLineEdit(pacs.DEFAULT_AET)
        self.aet.setMaxLength(16)
        self.new_button = QPushButton("New")
        self.save_button = QPushButton("Save")
        self.test_button = QPushButton("Test")
        self.remove_button = QPushButton("Remove")
        self.close_button = QPushButton("Close")
        self.status = QLabel("Select a node to edit it, or fill in a new one and Save.")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form = QFormLayout()
        form.addRow("Name", self.name)
        form.addRow("DIMSE address", self.address)
        form.addRow("DICOMweb URL", self.url)
        form.addRow("", self.tls)
        form.addRow("TLS authority", self.ca_file)
        form.addRow("Calling AE (test)", self.aet)
        buttons = QHBoxLayout()
        for b in (self.new_button, self.save_button, self.test_button, self.remove_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        buttons.addWidget(self.close_button)
        side = QVBoxLayout()
        side.addLayout(form)
        side.addStretch(1)
        body = QHBoxLayout()
        body.addWidget(self.list, 1)
        body.addLayout(side, 2)
        lay = QVBoxLayout(self)
        lay.addLayout(body, 1)
        lay.addWidget(self.status)
        lay.addLayout(buttons)
        self.list.currentItemChanged.connect(self._selected)
        self.new_button.clicked.connect(self.new)
        self.save_button.clicked.connect(self.save)
        self.test_button.clicked.connect(self.test)
        self.remove_button.clicked.connect(self.remove)
        self.close_button.clicked.connect(self.accept)
        self.refresh()

    def refresh(self, select: str | None = None) -> None:
        self.list.clear()
        try:
            nodes = pacs.load_nodes()
        except TfesiError as e:
            self._say(str(e), error=True)
            nodes = {}
        for name, node in nodes.items():
            item = QListWidgetItem(str(node))
            item.setData(UID_ROLE, name)
            self.list.addItem(item)
            if name == select:
                self.list.setCurrentItem(item)
        self.remove_button.setEnabled(self.list.currentItem() is not None)

    def _say(self, text: str, *, error: bool = False, ok: bool = False) -> None:
        self.status.setStyleSheet("color: #8d1c1c; font-weight: bold;" if error
                                  else "color: #1b5e20;" if ok else "")
        self.status.setText(text)

    @Slot()
    def _selected(self, *_args) -> None:
        item = self.list.currentItem()
        self.remove_button.setEnabled(item is not None)
        if item is None:
            return
        try:
            node = pacs.load_nodes()[item.data(UID_ROLE)]
        except (TfesiError, KeyError):
            return
        self.chosen = node.name
        self.name.setText(node.name)
        self.address.setText(f"{node.aet}@{node.host}:{node.port}" if node.dimse else "")
        self.url.setText(node.url)
        self.tls.setChecked(node.tls)
        self.ca_file.setText(node.ca_file)

    @Slot()
    def new(self) -> None:
        self.list.setCurrentRow(-1)
        for w in (self.name, self.address, self.url, self.ca_file):
            w.clear()
        self.tls.setChecked(False)
        self.name.setFocus()

    def node(self):
        """The node the fields describe (PacsError saying which field is wrong)."""
        return pacs.make_node(self.address.text().strip() or None,
                              url=self.url.text().strip() or None,
                              tls=self.tls.isChecked() or bool(self.ca_file.text().strip()),
                              ca_file=self.ca_file.text().strip(), name=self.name.text().strip())

    @Slot()
    def save(self) -> None:
        item = self.list.currentItem()
        old = item.data(UID_ROLE) if item is not None else None
        name = self.name.text().strip()
        try:
            node = self.node()
            pacs.add_node(name, node.dimse and f"{node.aet}@{node.host}:{node.port}" or None,
                          url=node.url or None, replace=old == name, tls=node.tls,
                          ca_file=node.ca_file)
            if old and old != name:
                pacs.remove_node(old)  # renamed
        except TfesiError as e:
            self._say(str(e), error=True)
            return
        self.chosen = name
        self.refresh(select=name)
        self._say(f"Saved {name}.", ok=True)

    @Slot()
    def remove(self) -> None:
        item = self.list.currentItem()
        if item is None:
            return
        name = item.data(UID_ROLE)
        try:
            pacs.remove_node(name)
        except TfesiError as e:
            self._say(str(e), error=True)
            return
        self.chosen = None
        self.new()
        self.refresh()
        self._say(f"Removed {name}.")

    @Slot()
    def test(self) -> None:
        if self.worker is not None:
            return
        try:
            node = self.node()
        except TfesiError as e:
            self._say(str(e), error=True)
            return
        w = Worker(_echo, node, self.aet.text().strip() or pacs.DEFAULT_AET, pass_control=True)
        w.signals.result.connect(self._tested)
        w.signals.error.connect(self._test_failed)
        w.signals.finished.connect(self._test_finished)
        self.worker = w
        self.test_button.setEnabled(False)
        self._say(f"Testing {node}…")
        self.pool.start(w)

    @Slot(object)
    def _tested(self, seconds: float) -> None:
        self._say(f"The PACS answers ({1000 * seconds:.0f} ms).", ok=True)

    @Slot(str)
    def _test_failed(self, message: str) -> None:
        self._say(message, error=True)

    @Slot()
    def _test_finished(self) -> None:
        self.worker = None
        self.test_button.setEnabled(True)


def open_pacs_dialog(parent: QWidget | None,
                     on_study_ready: Callable[[Path], None]) -> PacsDialog:
    """Show the "Open from PACS" dialog (window-modal, it does not block). When a study has
    been retrieved into the study cache, ``on_study_ready(folder)`` is called in the GUI
    thread and the dialog closes; give it e.g. the window's bound method that opens a folder."""
    dlg = PacsDialog(parent, on_study_ready)
    dlg.open()
    return dlg


def send_to_pacs_worker(files: Sequence[str | Path], node: str,
                        *, calling_aet: str = pacs.DEFAULT_AET) -> Worker:
    """A worker (not started) that sends ``files`` to ``node`` with
    :func:`core.pacs.send_to_pacs`: connect its signals (result: the number of files stored;
    error: a sentence) to slots of a QObject in the GUI thread, then start it in a pool."""
    def _send(*, progress, cancel):
        return pacs.send_to_pacs(files, node, calling_aet=calling_aet, progress=progress,
                                 cancel=cancel)

    return Worker(_send, pass_control=True)
