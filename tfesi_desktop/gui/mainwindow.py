"""The main window: open a study, pick the series and slice, draw the ROI, choose side and
level, see the canonical crop, predict, and see the result with its Grad-CAM overlay.

Everything slow runs in workers (:mod:`.workers`); results come back to slots of this window.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSettings, Qt, QThreadPool, QTimer, Slot
from PySide6.QtGui import QAction, QActionGroup, QIcon, QKeySequence
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QScrollArea,
    QSlider,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..core.bundle import default_bundle_path
from ..core.dicom import cached_values, default_window, modality_values, propose_stack
from ..core.errors import TfesiError
from ..core.paths import data_dir
from ..core.preprocess import MIN_ROI_PIXELS, model_input, roi_side
from ..core.render import heat_colours
from ..core.runtime import Predictor, predict_slice
from ..core.study_state import StudyState, load_state, save_state
from .report_dialog import ReportMixin
from .viewer import SliceView, colour_bar_pixmap, grey_pixmap
from .workers import Worker

log = logging.getLogger(__name__)
APP_TITLE = "TFESI Desktop"
LEVELS = ("C5", "C6", "C7", "C8")


def settings() -> QSettings:
    path = data_dir() / "settings.ini"
    path.parent.mkdir(parents=True, exist_ok=True)
    return QSettings(str(path), QSettings.Format.IniFormat)


class MainWindow(ReportMixin, QMainWindow):
    def __init__(self, *, model_path: str | Path | None = None, load_model: bool = True):
        super().__init__()
        self.pool = QThreadPool.globalInstance()
        self._workers: dict[object, Worker] = {}
        self.result = None
        self.stack = None
        self.study = None
        self.index = 0
        self.predictor: Predictor | None = None
        self.prediction = None
        self.prediction_key = None
        self.model_input = None
        self.side: str | None = None
        self.level: str | None = None
        self.state: StudyState | None = None
        self.levels_by_stack: dict[str, tuple[float, float]] = {}
        self.last_error: str | None = None
        self.last_report = None
        self.report_dialog = None
        self._restoring = False
        self._scan_worker: Worker | None = None
        # True once the model worker has imported scikit-image and pydicom: until then the GUI
        # thread must not import them (it would wait for the worker's import lock: a stall)
        self._warm = False
        self.setAcceptDrops(True)
        self.setWindowTitle(APP_TITLE)
        self._build()
        self._build_menus()
        self._restore_geometry()
        self._auto_timer = QTimer(self, singleShot=True, interval=350)
        self._auto_timer.timeout.connect(self._auto_predict)
        self._update_enabled()
        if load_model:
            self.load_model(model_path)

    # --- construction ------------------------------------------------------------------------

    def _build(self):
        self.view = SliceView()
        self.view.slice_step.connect(self.step_slice)
        self.view.roi_changed.connect(self._roi_moving)
        self.view.roi_change_finished.connect(self._roi_finished)

        side = QWidget()
        side.setFixedWidth(390)  # labels wrap inside it; the scroll area never cuts them off
        col = QVBoxLayout(side)
        col.setContentsMargins(6, 6, 6, 6)

        g = QGroupBox("Series")
        lay = QVBoxLayout(g)
        self.series_list = QListWidget()
        self.series_list.setIconSize(self.series_list.iconSize() * 3)
        self.series_list.setMinimumHeight(90)
        self.series_list.setMaximumHeight(120)
        self.series_list.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.series_list.currentRowChanged.connect(self._series_chosen)
        lay.addWidget(self.series_list)
        self.skipped_button = QPushButton("No files skipped")
        self.skipped_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.skipped_button.clicked.connect(self.show_skipped)
        lay.addWidget(self.skipped_button)
        col.addWidget(g)

        g = QGroupBox("Slice")
        lay = QVBoxLayout(g)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.slider.valueChanged.connect(self.set_slice)
        self.slice_label = QLabel("no study open")
        lay.addWidget(self.slider)
        lay.addWidget(self.slice_label)
        col.addWidget(g)

        g = QGroupBox("Injection")
        form = QFormLayout(g)
        sides = QHBoxLayout()
        self.side_group = QButtonGroup(self)
        self.side_buttons = {}
        for name in ("right", "left"):
            b = QRadioButton(f"patient {name}")
            b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            self.side_group.addButton(b)
            self.side_buttons[name] = b
            sides.addWidget(b)
            b.toggled.connect(self._side_toggled)
        form.addRow("Side", sides)
        self.level_combo = QComboBox()
        self.level_combo.addItems(["-", *LEVELS])
        self.level_combo.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.level_combo.currentTextChanged.connect(self._level_chosen)
        form.addRow("Level", self.level_combo)
        self.side_hint = QLabel("")
        self.side_hint.setWordWrap(True)
        form.addRow(self.side_hint)
        self.side_warning = QLabel("")
        self.side_warning.setWordWrap(True)
        self.side_warning.setStyleSheet("color: white; background: #b00020; padding: 4px;")
        self.side_warning.hide()
        form.addRow(self.side_warning)
        col.addWidget(g)

        g = QGroupBox("Prediction")
        lay = QVBoxLayout(g)
        row = QHBoxLayout()
        self.predict_button = QPushButton("Predict  (Ctrl+P)")
        self.predict_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.predict_button.clicked.connect(self.predict)
        self.auto_check = QCheckBox("automatically")
        self.auto_check.setChecked(True)
        self.auto_check.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        row.addWidget(self.predict_button)
        row.addWidget(self.auto_check)
        lay.addLayout(row)
        self.result_label = QLabel("No prediction yet.")
        self.result_label.setWordWrap(True)
        self.result_label.setTextFormat(Qt.TextFormat.RichText)
        lay.addWidget(self.result_label)
        self.stale_label = QLabel("The result no longer matches the ROI, slice or side: "
                                  "predict again.")
        self.stale_label.setWordWrap(True)
        self.stale_label.setStyleSheet("color: black; background: #ffd54f; padding: 4px;")
        self.stale_label.hide()
        lay.addWidget(self.stale_label)
        self.performance_label = QLabel("")
        self.performance_label.setWordWrap(True)
        lay.addWidget(self.performance_label)
        self.disclaimer_label = QLabel("")
        self.disclaimer_label.setWordWrap(True)
        self.disclaimer_label.setStyleSheet("color: #b00020; font-weight: bold;")
        lay.addWidget(self.disclaimer_label)
        over = QHBoxLayout()
        self.overlay_check = QCheckBox("Grad-CAM overlay (O)")
        self.overlay_check.setChecked(True)
        self.overlay_check.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.overlay_check.toggled.connect(self._refresh_overlay)
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(40)
        self.opacity.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.opacity.valueChanged.connect(self._refresh_overlay)
        over.addWidget(self.overlay_check)
        over.addWidget(QLabel("opacity"))
        over.addWidget(self.opacity, 1)
        lay.addLayout(over)
        bar = QHBoxLayout()
        self.colour_bar = QLabel()
        self.colour_bar.setPixmap(colour_bar_pixmap(90, 14))
        bar.addWidget(self.colour_bar)
        ends = QVBoxLayout()
        ends.addWidget(QLabel("high"))
        ends.addStretch(1)
        ends.addWidget(QLabel("low"))
        bar.addLayout(ends)
        bar.addWidget(QLabel("Relative attention\n(Grad-CAM of the favourable\nclass, inside "
                             "the ROI)"), 1)
        lay.addLayout(bar)
        self.provenance_label = QLabel("")
        self.provenance_label.setWordWrap(True)
        self.provenance_label.setTextFormat(Qt.TextFormat.RichText)
        self.provenance_label.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse)
        self.provenance_label.setStyleSheet("color: #555; font-size: 8pt;")
        lay.addWidget(self.provenance_label)
        col.addWidget(g)
        g = QGroupBox("Model input (as the network sees it)")
        lay = QHBoxLayout(g)
        self.crop_preview = QLabel()
        self.crop_preview.setFixedSize(150, 150)
        self.crop_preview.setStyleSheet("background: black;")
        self.crop_caption = QLabel("Draw a rectangle around the foramen\n(D, or Shift+drag).")
        self.crop_caption.setWordWrap(True)
        lay.addWidget(self.crop_preview)
        lay.addWidget(self.crop_caption, 1)
        col.addWidget(g)

        col.addStretch(1)

        scroll = QScrollArea()
        scroll.setWidget(side)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setFixedWidth(410)
        split = QSplitter()
        split.addWidget(self.view)
        split.addWidget(scroll)
        split.setStretchFactor(0, 1)
        self.setCentralWidget(split)

        sb = self.statusBar()
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(200)
        self.progress.hide()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.hide()
        self.cancel_button.clicked.connect(self.cancel_scan)
        self.model_status = QLabel("Model: not loaded")
        sb.addPermanentWidget(self.progress)
        sb.addPermanentWidget(self.cancel_button)
        sb.addPermanentWidget(self.model_status)

    def _action(self, menu, text, slot, shortcut=None, checkable=False):
        a = QAction(text, self)
        if shortcut:
            a.setShortcut(QKeySequence(shortcut))
            a.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        a.setCheckable(checkable)
        a.triggered.connect(slot)
        menu.addAction(a)
        self.addAction(a)  # shortcuts work wherever the focus is in the window
        return a

    def _build_menus(self):
        m = self.menuBar().addMenu("&File")
        self._action(m, "Open &folder...", self.open_folder_dialog, "Ctrl+O")
        self._action(m, "Open &DICOMDIR, ZIP or files...", self.open_files_dialog,
                     "Ctrl+Shift+O")
        self.recent_menu = m.addMenu("Open &recent")
        self.export_action = self._action(m, "&Export report...", self.export_report, "Ctrl+E")
        m.addSeparator()
        self._action(m, "&Quit", self.close, "Ctrl+Q")

        m = self.menuBar().addMenu("&Image")
        self._action(m, "Next slice", lambda: self.step_slice(1), "Down")
        self._action(m, "Previous slice", lambda: self.step_slice(-1), "Up")
        self._action(m, "5 slices on", lambda: self.step_slice(5), "PgDown")
        self._action(m, "5 slices back", lambda: self.step_slice(-5), "PgUp")
        self._action(m, "First slice", lambda: self.set_slice(0), "Home")
        self._action(m, "Last slice", lambda: self.set_slice(10 ** 6), "End")
        m.addSeparator()
        self._action(m, "Next series", lambda: self._step_series(1), "Ctrl+]")
        self._action(m, "Previous series", lambda: self._step_series(-1), "Ctrl+[")
        m.addSeparator()
        self._action(m, "&Reset window/level", self.reset_levels, "R")
        self._action(m, "Window: narrow (soft tissue)", lambda: self.preset_levels(0.5), "1")
        self._action(m, "Window: series default", lambda: self.preset_levels(1.0), "2")
        self._action(m, "Window: wide", lambda: self.preset_levels(2.0), "3")
        m.addSeparator()
        self.mask_action = self._action(m, "&Mask patient details", self._toggle_mask, "M",
                                        checkable=True)
        self.overlay_action = self._action(m, "Grad-CAM &overlay", self._toggle_overlay, "O")
        self._action(m, "Zoom to fit", lambda: self.view.vb.autoRange(padding=0.02), "F")

        m = self.menuBar().addMenu("&Tools")
        self._action(m, "&Draw ROI rectangle", lambda: self.view.set_tool("roi"), "D")
        self._action(m, "&Length (mm)", lambda: self.view.set_tool("length"), "L")
        self._action(m, "Clear length", self.view.clear_length, "Shift+L")
        self._action(m, "Pan (Esc)", lambda: self.view.set_tool("pan"), "Esc")

        m = self.menuBar().addMenu("&Injection")
        group = QActionGroup(self)
        self.side_actions = {}
        for name, key in (("right", "Ctrl+Shift+R"), ("left", "Ctrl+Shift+L")):
            a = self._action(m, f"Patient {name} side", lambda _=False, n=name: self.set_side(n),
                             key, checkable=True)
            group.addAction(a)
            self.side_actions[name] = a
        m.addSeparator()
        for i, lev in enumerate(LEVELS):
            self._action(m, f"Level {lev}", lambda _=False, v=lev: self.set_level(v),
                         f"Ctrl+{5 + i}")

        m = self.menuBar().addMenu("&Model")
        self.predict_action = self._action(m, "&Predict", self.predict, "Ctrl+P")
        self._action(m, "&About model...", self.about_model, "F1")

        self._refresh_recent()

    # --- settings ----------------------------------------------------------------------------

    def _restore_geometry(self):
        g = settings().value("geometry")
        if g is not None:
            self.restoreGeometry(g)
        else:
            self.resize(1280, 860)

    def closeEvent(self, ev):
        s = settings()
        s.setValue("geometry", self.saveGeometry())
        s.sync()
        if self._scan_worker is not None:
            self._scan_worker.cancel()
        self.pool.waitForDone(3000)
        super().closeEvent(ev)

    def recent(self) -> list[str]:
        v = settings().value("recent", [])
        return [v] if isinstance(v, str) else list(v or [])

    def _remember(self, paths):
        key = " | ".join(str(p) for p in paths)
        items = [key] + [r for r in self.recent() if r != key]
        s = settings()
        s.setValue("recent", items[:10])
        s.sync()
        self._refresh_recent()

    def _refresh_recent(self):
        self.recent_menu.clear()
        for i, r in enumerate(self.recent()):
            a = self.recent_menu.addAction(f"&{i + 1} {r}")
            a.triggered.connect(lambda _=False, r=r: self.open_paths(r.split(" | ")))
        self.recent_menu.setEnabled(bool(self.recent()))

    # --- workers -----------------------------------------------------------------------------

    def _run(self, worker: Worker, on_result, on_error=None) -> Worker:
        self._workers[worker.signals] = worker
        worker.signals.result.connect(on_result)
        worker.signals.error.connect(on_error or self._worker_error)
        worker.signals.finished.connect(self._worker_done)
        self.pool.start(worker)
        return worker

    @Slot()
    def _worker_done(self):
        self._workers.pop(self.sender(), None)

    @Slot(str)
    def _worker_error(self, message: str):
        self.show_error("Something went wrong", message)

    def show_error(self, title: str, message: str):
        """A plain-language message that does not block the window."""
        self.last_error = message
        self.statusBar().showMessage(message, 15000)
        box = QMessageBox(QMessageBox.Icon.Warning, title, message, parent=self)
        box.setModal(False)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.show()

    def busy(self) -> bool:
        return bool(self._workers)

    # --- model -------------------------------------------------------------------------------

    def load_model(self, path=None):
        path = Path(path) if path else default_bundle_path()
        self.model_status.setText("Model: loading...")
        self._run(Worker(_load_model, path), self._model_loaded, self._model_failed)

    @Slot(object)
    def _model_loaded(self, predictor: Predictor):
        self._warm = True
        self.predictor = predictor
        b = predictor.bundle
        demo = " - DEMONSTRATION MODEL (synthetic training data, not for clinical use)" \
            if b.synthetic else ""
        self.setWindowTitle(f"{APP_TITLE}{demo}")
        self.model_status.setText(f"Model: {b.name} {b.version}" +
                                  (" (synthetic demo)" if b.synthetic else ""))
        self.performance_label.setText(b.validated_performance())
        self.disclaimer_label.setText(b.disclaimer())
        self._update_crop()
        self.view.set_banner("DEMONSTRATION MODEL - synthetic training data - not for "
                             "clinical use" if b.synthetic else "")
        self._update_enabled()
        self._schedule_auto()

    @Slot(str)
    def _model_failed(self, message: str):
        self._warm = True
        self._update_crop()
        self.model_status.setText("Model: not available")
        self.show_error("The model could not be loaded", message)

    def about_model(self):
        if self.predictor is None:
            self.show_error("No model", "No model is loaded.")
            return
        b = self.predictor.bundle
        c = b.card
        t = c.get("training", {})
        text = (f"<b>{b.name} {b.version}</b><br>{b.disclaimer()}<br><br>"
                f"<b>Intended use:</b> {c.get('intended_use', '-')}<br>"
                f"<b>Performance:</b> {b.validated_performance()}<br>"
                f"<b>Training data:</b> {t.get('data', '-')}<br>"
                f"<b>Network:</b> {c.get('architecture', {}).get('base')} "
                f"({c.get('architecture', {}).get('variant')}), ImageNet initialisation: "
                f"{c.get('architecture', {}).get('imagenet_initialization')}<br>"
                f"<b>Preprocessing version:</b> {c['preprocessing_version']}; threshold "
                f"{b.threshold}<br><b>SHA-256:</b> {b.sha256}<br><b>Limitations:</b><ul>"
                + "".join(f"<li>{x}</li>" for x in c.get("limitations", [])) + "</ul>")
        box = QMessageBox(QMessageBox.Icon.Information, "About the model", text, parent=self)
        box.setTextFormat(Qt.TextFormat.RichText)
        box.setModal(False)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.show()
        self.about_box = box

    # --- opening studies ---------------------------------------------------------------------

    def open_folder_dialog(self):
        d = QFileDialog.getExistingDirectory(self, "Open a study folder")
        if d:
            self.open_paths([d])

    def open_files_dialog(self):
        files, _ = QFileDialog.getOpenFileNames(
            self, "Open DICOMDIR, ZIP or DICOM files", "",
            "DICOM (DICOMDIR *.dcm *.zip *);;All files (*)")
        if files:
            self.open_paths(files)

    def dragEnterEvent(self, ev):
        if ev.mimeData().hasUrls():
            ev.acceptProposedAction()

    def dropEvent(self, ev):
        paths = [u.toLocalFile() for u in ev.mimeData().urls() if u.isLocalFile()]
        if paths:
            self.open_paths(paths)

    def open_paths(self, paths):
        paths = [str(p) for p in paths]
        if self._scan_worker is not None:
            self._scan_worker.cancel()
        self.statusBar().showMessage("Reading headers...")
        self.progress.setRange(0, 0)
        self.progress.show()
        self.cancel_button.show()
        w = Worker(_scan, paths, pass_control=True)
        w.signals.progress.connect(self._scan_progress)
        w.signals.cancelled.connect(self._scan_cancelled)
        self._scan_paths = paths
        self._scan_worker = self._run(w, self._scan_done, self._scan_failed)

    def cancel_scan(self):
        if self._scan_worker is not None:
            self._scan_worker.cancel()

    @Slot(int, int)
    def _scan_progress(self, done, total):
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)

    def _scan_finished_ui(self):
        self._scan_worker = None
        self.progress.hide()
        self.cancel_button.hide()

    @Slot()
    def _scan_cancelled(self):
        self._scan_finished_ui()
        self.statusBar().showMessage("Opening cancelled.", 5000)

    @Slot(str)
    def _scan_failed(self, message):
        self._scan_finished_ui()
        self.show_error("The study could not be opened", message)

    @Slot(object)
    def _scan_done(self, result):
        self._scan_finished_ui()
        self._remember(self._scan_paths)
        self.result = result
        n = len(result.skipped)
        self.skipped_button.setText(f"{n} file{'s' if n != 1 else ''} skipped - show"
                                    if n else "No files skipped")
        self.skipped_button.setEnabled(bool(n))
        self.statusBar().showMessage(
            f"{len(result.stacks)} series in {len(result.studies)} "
            f"stud{'ies' if len(result.studies) != 1 else 'y'}"
            + (f"; {n} files could not be read" if n else ""), 10000)
        self.series_list.blockSignals(True)
        self.series_list.clear()
        for st in result.stacks:
            g = st.geometry
            text = (f"{st.description or '(no description)'}\n{st.orientation_name()}, "
                    f"{len(st.slices)} slices" + (f", {g.shape[1]}x{g.shape[0]}" if g else ""))
            item = QListWidgetItem(text)
            item.setData(Qt.ItemDataRole.UserRole, st.key)
            self.series_list.addItem(item)
        self.series_list.blockSignals(False)
        first = propose_stack(result.stacks)
        study = result.study_of(first)
        self.state = load_state(study.study_uid) or StudyState(study.study_uid)
        target = next((s for s in result.stacks if s.key == self.state.series_key), first)
        self._restoring = True
        self.series_list.setCurrentRow(result.stacks.index(target))
        self._restoring = False
        self._run(Worker(_thumbnails, result.stacks), self._thumbnails_done)

    @Slot(object)
    def _thumbnails_done(self, thumbs):
        for i, t in enumerate(thumbs):
            item = self.series_list.item(i)
            if item is not None and t is not None:
                item.setIcon(QIcon(grey_pixmap(t)))

    def show_skipped(self):
        if not self.result or not self.result.skipped:
            return
        dlg = QDialog(self)
        dlg.setWindowTitle("Files that could not be read")
        lay = QVBoxLayout(dlg)
        lay.addWidget(QLabel(f"{len(self.result.skipped)} files were skipped; the rest of the "
                             "study was read."))
        table = QTableWidget(len(self.result.skipped), 2)
        table.setHorizontalHeaderLabels(["File", "Reason"])
        for i, (p, reason) in enumerate(self.result.skipped):
            table.setItem(i, 0, QTableWidgetItem(str(p)))
            table.setItem(i, 1, QTableWidgetItem(reason))
        table.resizeColumnsToContents()
        lay.addWidget(table)
        dlg.resize(800, 300)
        dlg.setModal(False)
        dlg.show()
        self.skipped_dialog = dlg

    # --- series and slices -------------------------------------------------------------------

    def _step_series(self, d):
        n = self.series_list.count()
        if n:
            self.series_list.setCurrentRow((self.series_list.currentRow() + d) % n)

    @Slot(int)
    def _series_chosen(self, row):
        if self.result is None or row < 0:
            return
        self.stack = self.result.stacks[row]
        self.study = self.result.study_of(self.stack)
        st = self.study
        self.view.set_corner_text(
            f"{st.patient_name or '(no name)'}\nID {st.patient_id or '-'}   born "
            f"{st.birth_date or '-'}   {st.sex or ''}\n{st.study_date}  {st.description}",
            f"{self.stack.description}\n{self.stack.modality}  series "
            f"{self.stack.series_number if self.stack.series_number is not None else '?'}")
        self.view.set_letters(self.stack.geometry.edge_letters() if self.stack.geometry
                              else None)
        self.view.clear_roi()
        self.view.clear_length()
        self._clear_prediction()
        n = len(self.stack.slices)
        self.slider.blockSignals(True)
        self.slider.setRange(0, n - 1)
        self.slider.blockSignals(False)
        index = n // 2
        restore = self.state if (self.state and self.state.series_key == self.stack.key) else None
        if restore and restore.slice_key:
            try:
                index = self.stack.find_slice(restore.slice_key)
            except TfesiError:
                pass
        self._pending_roi = restore.roi if restore else None
        self.side = restore.side if restore else None
        self.level = restore.level if restore else None
        self._show_side_level()
        if self.stack.key not in self.levels_by_stack:
            self._run(Worker(_window_of, self.stack), self._window_ready)
        self._first_image = True
        self.index = -1
        self.set_slice(index)

    @Slot(object)
    def _window_ready(self, payload):
        key, (c, w) = payload
        self.levels_by_stack[key] = (c, w)
        if self.stack is not None and key == self.stack.key:
            self.view.set_levels(c, w)

    def step_slice(self, d: int):
        if self.stack is not None:
            self.set_slice(self.index + d)

    @Slot(int)
    def set_slice(self, index: int):
        if self.stack is None:
            return
        index = max(0, min(len(self.stack.slices) - 1, int(index)))
        if index == self.index:
            return
        self.index = index
        self.slider.blockSignals(True)
        self.slider.setValue(index)
        self.slider.blockSignals(False)
        pos = self.stack.slice_positions()
        self.slice_label.setText(f"slice {index + 1} / {len(self.stack.slices)}"
                                 + (f"   position {pos[index]:.1f} mm" if pos else ""))
        ref = self.stack.slices[index]
        values = cached_values(ref)
        if values is not None:
            self._show_values(self.stack.key, index, values)
        else:
            self._run(Worker(_decode, self.stack.key, index, ref), self._decoded)
        self._prefetch(index)
        self._state_changed()

    def _prefetch(self, index):
        for j in (index + 1, index - 1):
            if 0 <= j < len(self.stack.slices) and cached_values(self.stack.slices[j]) is None:
                self._run(Worker(_decode, self.stack.key, j, self.stack.slices[j]),
                          self._decoded)

    @Slot(object)
    def _decoded(self, payload):
        key, index, values = payload
        if self.stack is not None and key == self.stack.key and index == self.index:
            self._show_values(key, index, values)

    def _show_values(self, key, index, values):
        ref = self.stack.slices[index]
        spacing = ref.geometry.spacing if ref.geometry else (1.0, 1.0)
        levels = None
        if self._first_image:
            c, w = self.levels_by_stack.get(key) or _quick_window(values)
            levels = (c - w / 2, c + w / 2)
        self.view.set_image(values, spacing, levels=levels, reset_view=self._first_image)
        self._first_image = False
        if self._pending_roi is not None:
            self._restoring = True
            self.view.set_roi(self._pending_roi)
            self._pending_roi = None
            self._restoring = False
        self._refresh()

    def current_values(self):
        if self.stack is None or self.index < 0:
            return None
        return cached_values(self.stack.slices[self.index])

    # --- window / level ----------------------------------------------------------------------

    def reset_levels(self):
        self.preset_levels(1.0)

    def preset_levels(self, factor: float):
        if self.stack is None:
            return
        c, w = self.levels_by_stack.get(self.stack.key) or _quick_window(
            self.current_values() if self.current_values() is not None else np.zeros((2, 2)))
        self.view.set_levels(c, w * factor)

    # --- ROI, side, level --------------------------------------------------------------------

    def _refresh(self):
        """Everything that follows the ROI, slice and side: the crop preview, the side check,
        whether the result is stale, which actions are enabled."""
        self._update_crop()
        self._update_side_check()
        self._mark_stale()

    @Slot()
    def _roi_moving(self):
        self._refresh()

    @Slot()
    def _roi_finished(self):
        if self._restoring:
            return
        roi = self.view.roi_rect()
        g = self._geometry()
        if roi is not None and g is not None and self.side is None:
            self.set_side(roi_side(g, roi))
        self._refresh()
        self._state_changed()
        self._schedule_auto()

    def _geometry(self):
        if self.stack is None or self.index < 0:
            return None
        return self.stack.slices[self.index].geometry

    def set_side(self, side: str):
        self.side = side
        self._show_side_level()
        self._refresh()
        self._state_changed()
        self._schedule_auto()

    def set_level(self, level: str):
        self.level = level
        self._show_side_level()
        self._state_changed()

    def _show_side_level(self):
        for name, b in self.side_buttons.items():
            b.blockSignals(True)
            b.setChecked(self.side == name)
            b.blockSignals(False)
            self.side_actions[name].setChecked(self.side == name)
        if self.side is None:
            self.side_group.setExclusive(False)
            for b in self.side_buttons.values():
                b.setChecked(False)
            self.side_group.setExclusive(True)
        self.level_combo.blockSignals(True)
        self.level_combo.setCurrentText(self.level or "-")
        self.level_combo.blockSignals(False)

    @Slot(bool)
    def _side_toggled(self, checked):
        if checked:
            for name, b in self.side_buttons.items():
                if b.isChecked() and name != self.side:
                    self.set_side(name)

    @Slot(str)
    def _level_chosen(self, text):
        self.set_level(None if text == "-" else text)

    def _update_side_check(self):
        roi, g = self.view.roi_rect(), self._geometry()
        if roi is None or g is None:
            self.side_hint.setText("")
            self.side_warning.hide()
            return
        found = roi_side(g, roi)
        self.side_hint.setText(f"The ROI lies on the patient's {found} side.")
        if self.side is not None and found != self.side:
            self.side_warning.setText(
                f"Warning: the ROI is on the patient's {found} side, but the injection side "
                f"is {self.side}. Check the side before predicting.")
            self.side_warning.show()
        else:
            self.side_warning.hide()

    def _update_crop(self):
        roi, g, values = self.view.roi_rect(), self._geometry(), self.current_values()
        self.model_input = None
        if not self._warm:
            self.crop_caption.setText("Starting up...")
            return
        if roi is None or g is None or values is None or self.side is None:
            self.crop_preview.clear()
            self.crop_caption.setText("Draw a rectangle around the foramen (D, or Shift+drag),"
                                      " and choose the side." if roi is None else
                                      "Choose the injection side.")
            return
        try:
            self.model_input = model_input(values, g, roi, self.side)
        except TfesiError as e:
            self.crop_preview.clear()
            self.crop_caption.setText(e.message)
            return
        self.crop_preview.setPixmap(grey_pixmap(self.model_input.image[..., 0], 150))
        mirrored = ", mirrored (left side)" if self.side == "left" else ""
        self.crop_caption.setText(f"100x100, radiological orientation{mirrored}.\n"
                                  f"ROI {roi[2]}x{roi[3]} px at ({roi[0]}, {roi[1]}).")

    def _state_changed(self):
        if self.state is None or self.stack is None or self._restoring:
            return
        ref = self.stack.slices[self.index] if self.index >= 0 else None
        self.state.series_key = self.stack.key
        self.state.slice_key = ref.key if ref else None
        self.state.roi = self.view.roi_rect()
        self.state.side, self.state.level = self.side, self.level
        try:
            save_state(self.state)
        except OSError as e:
            self.statusBar().showMessage(f"Could not save the ROI for this study ({e}).", 8000)

    # --- prediction --------------------------------------------------------------------------

    def current_key(self):
        if self.stack is None:
            return None
        return (self.stack.key, self.index, self.view.roi_rect(), self.side)

    def _update_enabled(self):
        ok = (self.predictor is not None and self.view.roi_rect() is not None
              and self.side is not None and self.current_values() is not None)
        self.predict_button.setEnabled(ok)
        self.predict_action.setEnabled(ok)
        self.export_action.setEnabled(self.prediction is not None and not self._stale())

    def _schedule_auto(self):
        if self.auto_check.isChecked():
            self._auto_timer.start()

    @Slot()
    def _auto_predict(self):
        if (self.auto_check.isChecked() and self.predict_button.isEnabled()
                and self.prediction_key != self.current_key()):
            self.predict()

    def predict(self):
        if self.predictor is None:
            self.show_error("No model", "The model is not loaded yet.")
            return
        roi = self.view.roi_rect()
        if roi is None or self.side is None:
            self.show_error("Nothing to predict", "Draw the ROI and choose the injection side "
                            "first.")
            return
        if roi[2] < MIN_ROI_PIXELS or roi[3] < MIN_ROI_PIXELS:
            self.show_error("ROI too small", "The ROI must be at least 16 pixels on each side.")
            return
        key = self.current_key()
        self.result_label.setText("<i>Predicting...</i>")
        self._run(Worker(_predict, self.predictor, self.stack, self.index, roi, self.side,
                         self.level, self.study.study_uid, key), self._predicted,
                  self._predict_failed)

    @Slot(object)
    def _predicted(self, payload):
        key, pred = payload
        self.prediction, self.prediction_key = pred, key
        b = self.predictor.bundle
        self.result_label.setText(result_html(pred))
        p = pred.provenance
        self.provenance_label.setText(
            f"Model {p.model_name} {p.model_version}<br>SHA-256 {p.model_sha256}<br>"
            f"preprocessing v{p.preprocessing_version}, {p.tta_crops} ROIs, "
            f"{p.calibration}<br>study {p.study_uid}<br>series "
            f"{p.series_uid}<br>SOP instance {p.sop_instance_uid}<br>slice "
            f"{p.slice_index + 1}, ROI {list(p.roi)}, side {p.side}, level "
            f"{p.level or '-'}<br>{p.time}")
        self.performance_label.setText(b.validated_performance())
        self._mark_stale()
        self._refresh_overlay()
        self._update_enabled()

    @Slot(str)
    def _predict_failed(self, message):
        self.result_label.setText("No prediction.")
        self.show_error("The prediction failed", message)

    def _stale(self) -> bool:
        return self.prediction is not None and self.prediction_key != self.current_key()

    def _mark_stale(self):
        stale = self._stale()
        self.stale_label.setVisible(stale)
        self.result_label.setEnabled(not stale)
        self._refresh_overlay()
        self._update_enabled()

    def _clear_prediction(self):
        self.prediction = self.prediction_key = None
        self.result_label.setText("No prediction yet.")
        self.provenance_label.setText("")
        self.stale_label.hide()
        self.view.clear_overlay()

    def _toggle_overlay(self):
        self.overlay_check.setChecked(not self.overlay_check.isChecked())

    def _toggle_mask(self):
        self.view.set_mask_patient(self.mask_action.isChecked())

    def _refresh_overlay(self, *_):
        if (self.prediction is None or self._stale() or not self.overlay_check.isChecked()):
            self.view.clear_overlay()
            return
        self.view.set_overlay(heat_colours(self.prediction.cam_roi),
                              self.prediction.provenance.roi, self.opacity.value() / 100)

    # --- report ------------------------------------------------------------------------------

    def export_report(self):
        from .report_dialog import export_report

        return export_report(self)


# --- functions run in workers (no Qt objects touched) -------------------------------------------

def _scan(paths, progress, cancel):
    from ..core.dicom import scan

    return scan(paths, progress=progress, cancel=cancel)


def _load_model(path):
    """Import what the first ROI and prediction need (pydicom, scikit-image: 0.6 s together)
    here rather than in the GUI thread, load the bundle, and run the network once."""
    import pydicom  # noqa: F401
    import skimage.transform  # noqa: F401

    predictor = Predictor(path)

    from ..core.geometry import SliceGeometry
    from ..core.runtime import predict as run_predict

    zeros = np.zeros((64, 64), np.float32)
    zeros[::2] = 1.0
    g = SliceGeometry((0, 0, 0), (1, 0, 0), (0, 1, 0), (1, 1), zeros.shape)
    run_predict(predictor, zeros, g, (8, 8, 32, 32), "right")  # allocates the batch
    return predictor


def result_html(pred) -> str:
    """The result as the side panel shows it: calibrated probability (never 0 or 100 %), its
    interval over the ROI set, the label, and the warnings that qualify it."""
    from ..core.runtime import format_probability

    lo, hi = pred.interval
    colour = "#1b5e20" if pred.label == "favourable" else "#8d1c1c"
    if not pred.reliable or pred.borderline:
        colour = "#666666"
    html = (f"<span style='font-size:20pt; font-weight:bold; color:{colour}'>"
            f"{format_probability(pred.probability)}</span> "
            f"<span style='color:#444'>(range {format_probability(lo)} - "
            f"{format_probability(hi)} over {len(pred.crop_probabilities)} ROIs around "
            f"yours)</span><br>probability of a favourable outcome (&ge; 50 % pain reduction "
            f"at 2 months)<br><b>{pred.label}</b> at the model's threshold {pred.threshold:.2f}")
    if pred.borderline:
        html += ("<br><b style='color:#a05a00'>Borderline: the label depends on where the ROI "
                 "is drawn.</b>")
    if not pred.reliable:
        html += ("<br><b style='color:#8d1c1c'>This image is unlike the images this model was "
                 "trained on; the prediction is not reliable.</b>")
    return html + f"<br><small>Heat map: evidence for the {pred.cam_target} class.</small>"


def _decode(key, index, ref):
    return key, index, modality_values(ref)


def _window_of(stack):
    return stack.key, default_window(stack)


def _quick_window(values):
    lo, hi = np.percentile(values, [1, 99.5])
    return float((lo + hi) / 2), float(max(hi - lo, 1e-6))


def _thumbnails(stacks):
    from skimage.transform import resize

    out = []
    for st in stacks:
        try:
            v = modality_values(st.slices[len(st.slices) // 2])
            lo, hi = np.percentile(v, [1, 99.5])
            small = resize(v, (64, 64), anti_aliasing=True)
            out.append(np.clip((small - lo) / max(hi - lo, 1e-6) * 255, 0, 255))
        except TfesiError:
            out.append(None)
    return out


def _predict(predictor, stack, index, roi, side, level, study_uid, key):
    pred, _ = predict_slice(predictor, stack, index, roi, side, level=level,
                            allow_side_mismatch=True, study_uid=study_uid)
    return key, pred
