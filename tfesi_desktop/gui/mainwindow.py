"""The main window: a view of a :class:`~..core.session.Session` (docs/architecture.md).

User input becomes session edits (one per finished drag, click or key); session events redraw
the widgets. The window keeps no copy of the selection, only caches of what is slow to compute
(decoded slices, the canal found on a slice, window levels). Everything slow runs in workers
(:mod:`.workers`) whose results come back to slots of this window.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSettings, Qt, QThreadPool, QTimer, Slot
from PySide6.QtWidgets import (
    QApplication,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from ..core.bundle import default_bundle_path
from ..core.commands import blocking, check_selection
from ..core.commands import predict_selection as _predict_selection
from ..core.dicom import cached_values
from ..core.errors import TfesiError
from ..core.fileio import private_dir
from ..core.measure import kim_from, kim_text, measurement_lines
from ..core.midline import roi_position
from ..core.paths import data_dir
from ..core.preprocess import MIN_ROI_PIXELS, model_input
from ..core.render import display_name, heat_colours
from ..core.runtime import Predictor
from ..core.session import Measurement, Session, StateStore
from . import jobs
from .actions import build_menus
from .comparison import SideComparison
from .localizer import Localizer
from .opening import StudyOpener
from .report_controller import ReportController
from .result_view import gates_html, provenance_html, result_html
from .side_panel import MessageArea, SidePanel
from .viewer import SliceView, display_letters, display_transform, grey_pixmap
from .workers import Worker

log = logging.getLogger(__name__)
APP_TITLE = "TFESI Desktop"
_PENDING = object()  # canal search under way


def settings() -> QSettings:
    """The window's settings (geometry, recent folders: paths can name patients), in the user's
    private data folder (0700), the file readable by its owner only."""
    import os

    path = data_dir() / "settings.ini"
    private_dir(path.parent)
    s = QSettings(str(path), QSettings.Format.IniFormat)
    if path.exists():
        os.chmod(path, 0o600)
    else:
        path.touch(mode=0o600)
    return s


class MainWindow(QMainWindow):
    def __init__(self, *, model_path: str | Path | None = None, load_model: bool = True,
                 store: StateStore | None = None):
        super().__init__()
        self.pool = QThreadPool.globalInstance()
        self._workers: dict[object, Worker] = {}
        self.session = Session(store)
        self.session.defer_scroll_saves = True  # written 0.5 s after scrolling stops
        self.session.subscribe(self._session_changed)
        self._flush_timer = QTimer(self, singleShot=True, interval=500)
        self._flush_timer.timeout.connect(self.session.flush)
        self.predictor: Predictor | None = None
        self.levels_by_stack: dict[str, tuple[float, float]] = {}
        self.canals: dict[str, object] = {}  # slice key -> Canal | None | _PENDING
        self.gates: list | None = []  # the current selection's gates (None: not known yet)
        self.model_input = None
        self.last_error: str | None = None
        self._shown: str | None = None  # slice key whose values are on the screen
        self._shown_measurements = None
        self._first_image = True
        self._predicting = None  # model key of the prediction under way
        self._predict_pending = False  # predict as soon as model, slice and canal are ready
        # True once the model worker has imported scikit-image and pydicom: until then the GUI
        # thread must not import them (it would wait for the worker's import lock: a stall)
        self._warm = False
        self.loading_model = False
        self.opener = StudyOpener(self)
        self.comparison = SideComparison(self)
        self.setAcceptDrops(True)
        self.setWindowTitle(APP_TITLE)
        self._build()
        self.actions_by_name = build_menus(self)
        self.report = ReportController(self)
        self._refresh_recent()
        self._restore_geometry()
        self._auto_timer = QTimer(self, singleShot=True, interval=350)
        self._auto_timer.timeout.connect(self._auto_predict)
        self._update_actions()
        gc.freeze()  # see _started
        if load_model:
            self.load_model(model_path)

    # --- construction ------------------------------------------------------------------------

    def _build(self):
        self.view = SliceView()
        self.view.slice_step.connect(self.step_slice)
        self.view.roi_changed.connect(self._roi_moving)
        self.view.roi_change_finished.connect(self._roi_finished)
        self.view.roi_refused.connect(self._roi_refused)
        self.view.measurement_drawn.connect(self._measurement_drawn)
        self.view.measurement_moved.connect(self._measurement_moved)

        p = self.panel = SidePanel()
        p.browser.series_chosen.connect(self._series_chosen)
        p.skipped_button.clicked.connect(self.opener.show_skipped)
        p.slider.valueChanged.connect(self.set_slice)
        p.side_chosen.connect(self.set_side)
        p.level_chosen.connect(self.set_level)
        p.override_confirmed.connect(self.confirm_override)
        p.predict_button.clicked.connect(self.predict)
        p.slice_strip.go_to_slice.connect(self.set_slice)  # the proposed (narrowest) slice
        p.overlay_check.toggled.connect(self._show_overlay)
        p.opacity.valueChanged.connect(self._show_overlay)
        p.measurement_selected.connect(self._measurement_selected)
        p.measurement_deleted.connect(self._measurement_deleted)
        p.measurement_tagged.connect(self._measurement_tagged)
        p.window_typed.connect(lambda c, w: self.view.set_levels(c, w))
        self.view.levels_changed.connect(p.show_window)
        self._selected_measure: int | None = None
        # the widgets tests and scripts reach for, by their old names
        for name in ("slider", "slice_label", "side_buttons", "level_combo", "side_hint",
                     "side_warning", "predict_button", "auto_check", "result_label",
                     "stale_label", "performance_label", "disclaimer_label", "overlay_check",
                     "opacity", "provenance_label", "crop_preview", "crop_caption",
                     "skipped_button", "override_button"):
            setattr(self, name, getattr(p, name))
        self.browser = p.browser

        self.localizer = Localizer(self)
        self.sag_view = self.localizer.view
        scroll = QScrollArea()
        scroll.setWidget(p)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setFixedWidth(410)
        # the result stays visible; the rest of the panel scrolls below it
        right = QWidget()
        right.setFixedWidth(410)
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.setSpacing(2)
        rl.addWidget(p.result_group)
        rl.addWidget(scroll, 1)
        self.right_column = right
        split = self.splitter = QSplitter()
        split.addWidget(self.view)
        split.addWidget(self.localizer.widget)
        split.addWidget(right)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        split.setStretchFactor(2, 0)
        central = QWidget()
        lay = QVBoxLayout(central)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        self.messages = MessageArea()
        lay.addWidget(self.messages)
        lay.addWidget(split, 1)
        self.setCentralWidget(central)

        sb = self.statusBar()
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(200)
        self.progress.hide()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.hide()
        self.cancel_button.clicked.connect(self.opener.cancel)
        self.model_status = QLabel("Model: not loaded")
        sb.addPermanentWidget(self.progress)
        sb.addPermanentWidget(self.cancel_button)
        sb.addPermanentWidget(self.model_status)

    # --- settings ----------------------------------------------------------------------------

    def _restore_geometry(self):
        g = settings().value("geometry")
        if g is not None:
            self.restoreGeometry(g)
        self.fit_to_screen(force=g is None)
        self.apply_theme(settings().value("theme", "dark") == "light")

    def fit_to_screen(self, *, force: bool = False):
        """Size the window to the screen's available geometry (what the task bar leaves, in
        device-independent pixels, so 100-200 % scaling alike): at most all of it, at most
        1600 x 1000 on a large screen; placed inside it."""
        screen = self.screen() or QApplication.primaryScreen()
        if screen is None:
            return
        avail = screen.availableGeometry()
        frame_w = max(self.frameGeometry().width() - self.geometry().width(), 0)
        frame_h = max(self.frameGeometry().height() - self.geometry().height(), 0)
        max_w, max_h = avail.width() - frame_w, avail.height() - frame_h
        w = min(self.width() if not force else 1600, max_w)
        h = min(self.height() if not force else 1000, max_h)
        if force or self.width() > max_w or self.height() > max_h:
            self.resize(max(w, 640), max(h, 480))
        self._auto_size = self.size()  # a size set by the caller afterwards is kept
        x = min(max(self.x(), avail.x()), avail.right() - self.frameGeometry().width() + 1)
        y = min(max(self.y(), avail.y()), avail.bottom() - self.frameGeometry().height() + 1)
        self.move(max(x, avail.x()), max(y, avail.y()))

    def showEvent(self, ev):
        super().showEvent(ev)
        if not getattr(self, "_fitted", False) and self.size() == getattr(
                self, "_auto_size", None):  # the frame is known once shown
            self._fitted = True
            QTimer.singleShot(0, self.fit_to_screen)

    def apply_theme(self, light: bool):
        """Dark (default, as radiology viewers) or light."""
        from .theme import apply

        apply(light)
        a = self.actions_by_name.get("light_theme")
        if a is not None:
            a.setChecked(light)

    def toggle_theme(self):
        light = self.actions_by_name["light_theme"].isChecked()
        self.apply_theme(light)
        s = settings()
        s.setValue("theme", "light" if light else "dark")
        s.sync()

    def show_help(self):
        """F1: every shortcut of the window, from the action table."""
        from .actions import shortcut_sheet

        box = QMessageBox(QMessageBox.Icon.NoIcon, "Keyboard shortcuts", shortcut_sheet(self),
                          parent=self)
        box.setTextFormat(Qt.TextFormat.RichText)
        box.setModal(False)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.show()
        self.help_box = box

    def closeEvent(self, ev):
        self.session.flush()
        s = settings()
        s.setValue("geometry", self.saveGeometry())
        s.sync()
        self.opener.cancel()
        self.pool.waitForDone(3000)
        super().closeEvent(ev)

    def recent(self) -> list[str]:
        v = settings().value("recent", [])
        return [v] if isinstance(v, str) else list(v or [])

    def remember(self, paths):
        """Put ``paths`` first in File > Open recent."""
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

    # --- workers and messages ----------------------------------------------------------------

    def run_worker(self, worker: Worker, on_result, on_error=None) -> Worker:
        self._workers[worker.signals] = worker
        worker.signals.result.connect(on_result)
        worker.signals.error.connect(on_error or self._worker_error)
        worker.signals.finished.connect(self._worker_done)
        self.pool.start(worker)
        return worker

    _run = run_worker

    @Slot()
    def _worker_done(self):
        self._workers.pop(self.sender(), None)

    @Slot(str)
    def _worker_error(self, message: str):
        self.show_message(message)

    def show_message(self, text: str, kind: str = "error"):
        """Say it in the one message area (replacing what was there) and the status bar."""
        if kind == "error":
            self.last_error = text
        self.messages.show_message(text, kind)
        self.statusBar().showMessage(text, 15000)

    def show_error(self, title: str, message: str):
        self.show_message(message)

    def busy(self) -> bool:
        return bool(self._workers)

    # --- model -------------------------------------------------------------------------------

    def _started(self):
        """The model worker is done (loaded or not): what is alive now (modules, widgets, the
        model; hardly any cycles) leaves the garbage collector's scans for good. A full
        collection of that heap holds the GIL for 40-70 ms in whichever thread starts it (the
        first canal search imports scipy and starts one): the window would stall that long
        (docs/architecture.md, invariant 3). Then the thumbnails held back meanwhile."""
        if not self._warm:
            gc.freeze()
        self.loading_model = False
        if self.opener.thumbs_wanted:
            self.opener.request_thumbnails()

    def load_model(self, path=None):
        path = Path(path) if path else default_bundle_path()
        self.model_status.setText("Model: loading...")
        self.loading_model = True
        self.run_worker(Worker(jobs.load_model, path), self._model_loaded, self._model_failed)

    @Slot(object)
    def _model_loaded(self, predictor: Predictor):
        self._started()
        self._warm = True
        self.predictor = predictor
        b = predictor.bundle
        demo = " - DEMONSTRATION MODEL (synthetic training data, not for clinical use)" \
            if b.synthetic else ""
        self.setWindowTitle(f"{APP_TITLE}{demo}")
        self.model_status.setText(f"Model: {b.name} {b.version}" +
                                  (" (synthetic demo)" if b.synthetic else ""))
        self.panel.performance_label.setText(b.validated_performance())
        self.panel.disclaimer_label.setText(b.disclaimer())
        self.view.set_banner("DEMONSTRATION MODEL - synthetic training data - not for "
                             "clinical use" if b.synthetic else "")
        if self.messages.kind == "info" and "still loading" in self.messages.text():
            self.messages.clear()
        if self._shown is not None and self._shown not in self.canals:
            self._find_canal(self._shown)
        self.localizer.request_frames()
        self._refresh()
        self._try_pending()

    @Slot(str)
    def _model_failed(self, message: str):
        self._started()
        self._warm = True
        self.model_status.setText("Model: not available")
        self.show_message(f"The model could not be loaded: {message}")
        if self._shown is not None and self._shown not in self.canals:
            self._find_canal(self._shown)
        self.localizer.request_frames()
        self._refresh()

    def about_model(self):
        if self.predictor is None:
            self.show_message("The model is still loading." if not self._warm
                              else "No model is loaded.", "info")
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

    # --- opening studies (gui/opening.py) ----------------------------------------------------

    def open_paths(self, paths):
        self.opener.open(paths)

    def dragEnterEvent(self, ev):
        if ev.mimeData().hasUrls():
            ev.acceptProposedAction()

    def dropEvent(self, ev):
        paths = [u.toLocalFile() for u in ev.mimeData().urls() if u.isLocalFile()]
        if paths:
            self.open_paths(paths)

    # --- the session -> the widgets ----------------------------------------------------------

    def _session_changed(self, what: str):
        if what == "opened":
            self._fill_browser()
        elif what == "series":
            self._show_series()
        elif what == "selection":
            self._refresh()
        elif what == "result":
            self._show_result()
        elif what == "notes":
            notes = self.session.notes
            if notes:
                self.show_message(" ".join(notes[-3:]), "note")

    def _fill_browser(self):
        scan = self.session.scan
        n = len(scan.skipped)
        self.skipped_button.setText(f"{n} file{'s' if n != 1 else ''} skipped - show"
                                    if n else "No files skipped")
        self.skipped_button.setEnabled(bool(n))
        self.browser.fill(self.session.patients(), self.actions_by_name["mask"].isChecked())

    def _show_series(self):
        stack, study = self.session.stack(), self.session.study()
        self.browser.show_current(stack.key)
        self.view.set_corner_text(
            f"{display_name(study.patient_name)}\nID {study.patient_id or '-'}   born "
            f"{study.birth_date or '-'}   {study.sex or ''}\n{study.study_date}  "
            f"{study.description}",
            f"{stack.description}\n{stack.modality}  series "
            f"{stack.series_number if stack.series_number is not None else '?'}")
        g = stack.geometry
        self.view.set_letters(display_letters(g, display_transform(g)))
        self.view.clear_roi()  # placed again once this series' image is shown
        self.view.clear_length()
        self.slider.blockSignals(True)
        self.slider.setRange(0, len(stack.slices) - 1)
        self.slider.blockSignals(False)
        if stack.key not in self.levels_by_stack:
            self.run_worker(Worker(jobs.window_of, stack), self._window_ready)
        self._first_image = True
        self._shown = None
        self._shown_measurements = None
        self.localizer.study_changed()
        self._refresh()

    def _refresh(self):
        """Everything that follows the selection: slice, ROI, measurements, side and level, the
        anatomical checks, the model input, the result, the actions."""
        sel, stack = self.session.selection, self.session.stack()
        if sel is None or stack is None:
            return
        index = self.index
        self.slider.blockSignals(True)
        self.slider.setValue(index)
        self.slider.blockSignals(False)
        pos = stack.slice_positions()
        self.slice_label.setText(f"slice {index + 1} / {len(stack.slices)}"
                                 + (f"   position {pos[index]:.1f} mm" if pos else ""))
        if self._shown != sel.slice_key:
            ref = stack.slices[index]
            values = cached_values(ref)
            if values is not None:
                self._show_values(stack.key, sel.slice_key, values)
            else:
                self.run_worker(Worker(jobs.decode, stack.key, sel.slice_key, ref), self._decoded)
            self._prefetch(index)
        if self._shown is not None and self.view.roi_rect() != sel.roi:
            self.view.set_roi(sel.roi)  # the view converts to its display orientation
        shown = sel.measurements_on(sel.slice_key)
        if self._selected_measure is not None and self._selected_measure >= len(shown):
            self._selected_measure = None
        ms = (tuple(m.points for m in shown), self._selected_measure)
        if ms != self._shown_measurements and self._shown == sel.slice_key:
            self._shown_measurements = ms
            self.view.set_measurements(ms[0], self._selected_measure)
        spacing = self._spacing()
        self.panel.show_measurements(measurement_lines(shown, spacing), self._selected_measure)
        kim = kim_from(sel.measurements, spacing)
        self.panel.kim_label.setText(kim_text(kim) if kim else
                                     "Kim grade: tag a foraminal width and a nerve root width "
                                     "(Measurements).")
        self.panel.show_side_level(sel.side, sel.level)
        self.panel.level_source.setText(self._level_text(sel))
        self.view.set_level_text(f"{sel.level}" + (" (proposed)" if sel.level_source ==
                                                   "proposed" else "") if sel.level else "")
        for name in ("right", "left"):
            self.actions_by_name[f"side_{name}"].setChecked(sel.side == name)
        self.localizer.update()
        self._update_checks()
        self._update_crop()
        self._show_result()
        self._update_actions()
        self._schedule_auto()

    def _spacing(self):
        g = self.geometry_of_slice()
        return g.spacing if g is not None else (1.0, 1.0)

    def _level_text(self, sel) -> str:
        if sel.level and sel.level_source == "proposed":
            return "Proposed from the disc levels marked on the sagittal."
        if sel.level and sel.level_source == "hand":
            proposed = self.session.proposed_level(sel)
            return "Set by hand" + (f" (the marks propose {proposed})." if proposed and
                                    proposed != sel.level else ".")
        if self.session.marks:
            return "No level proposed for this slice: it is not at a marked disc."
        return "Mark the discs on the sagittal (K) to have the level proposed."

    def _prefetch(self, index):
        stack = self.session.stack()
        for j in (index + 1, index - 1):
            if 0 <= j < len(stack.slices) and cached_values(stack.slices[j]) is None:
                self.run_worker(Worker(jobs.decode, stack.key, stack.slices[j].key,
                                       stack.slices[j]), self._decoded)

    @Slot(object)
    def _decoded(self, payload):
        stack_key, slice_key, values = payload
        sel = self.session.selection
        if sel is not None and stack_key == sel.series_key and slice_key == sel.slice_key \
                and self._shown != slice_key:
            self._show_values(stack_key, slice_key, values)
            self._refresh()

    def _show_values(self, stack_key, slice_key, values):
        stack = self.session.stack(stack_key)
        ref = stack.slices[stack.find_slice(slice_key)]
        g = ref.geometry
        spacing = g.spacing if g else (1.0, 1.0)
        levels = None
        if self._first_image:
            c, w = self.levels_by_stack.get(stack_key) or _quick_window(values)
            levels = (c - w / 2, c + w / 2)
        self.view.set_image(values, spacing, levels=levels, reset_view=self._first_image,
                            transform=display_transform(g))
        self._first_image = False
        self._shown = slice_key
        self._shown_measurements = None
        if slice_key not in self.canals:
            self._find_canal(slice_key)

    def current_values(self):
        sel, stack = self.session.selection, self.session.stack()
        if sel is None or stack is None:
            return None
        return cached_values(stack.slices[self.index])

    # --- the anatomy -------------------------------------------------------------------------

    def _find_canal(self, slice_key):
        if not self._warm:
            return  # after the model worker has imported scikit-image (see __init__)
        stack = self.session.stack()
        ref = stack.slices[stack.find_slice(slice_key)]
        values = cached_values(ref)
        if values is None:
            return
        self.canals[slice_key] = _PENDING
        self.run_worker(Worker(jobs.find_canal, slice_key, values, ref.geometry), self._canal_found,
                        self._canal_failed)

    @Slot(object)
    def _canal_found(self, payload):
        key, canal = payload
        self.canals[key] = canal
        sel = self.session.selection
        if sel is None or sel.slice_key != key:
            return
        if sel.roi is not None and sel.side is None and canal is not None:
            g = self.geometry_of_slice()
            self.session.edit("Side from the anatomy",
                              side=roi_position(g, sel.roi, canal).side)
        else:
            self._refresh()
        self._try_pending()

    @Slot(str)
    def _canal_failed(self, message):
        for k, v in list(self.canals.items()):
            if v is _PENDING:
                self.canals[k] = None
        self._refresh()

    def canal_of_slice(self):
        """(known, canal) for the current slice."""
        sel = self.session.selection
        c = self.canals.get(sel.slice_key, _PENDING) if sel else _PENDING
        return c is not _PENDING, (None if c is _PENDING else c)

    def geometry_of_slice(self):
        """The current slice's geometry (None without a series)."""
        stack = self.session.stack()
        return stack.slices[self.index].geometry if stack else None

    def _update_checks(self):
        sel, g = self.session.selection, self.geometry_of_slice()
        p = self.panel
        self.gates = []
        p.override_button.hide()
        p.side_warning.hide()
        if sel is None or sel.roi is None or g is None:
            p.side_hint.setText("")
            return
        known, canal = self.canal_of_slice()
        if not known:
            p.side_hint.setText("Looking for the spinal canal...")
            self.gates = None
            return
        if canal is None:
            p.side_hint.setText("The spinal canal was not found on this slice: choose the "
                                "injection side yourself.")
        else:
            pos = roi_position(g, sel.roi, canal)
            p.side_hint.setText(
                f"The ROI lies on the patient's {pos.side} side of the spinal canal "
                f"({abs(pos.centre_mm):.0f} mm from its centre).")
        if sel.side is None:
            return
        self.gates = check_selection(sel, g, canal)
        block = blocking(self.gates, sel)
        if block:
            p.side_warning.setText(gates_html(block, colour="white"))
            p.side_warning.show()
            p.override_button.setVisible(all(x.overridable for x in block))
        elif self.gates:
            p.side_warning.setText("<b>Override confirmed:</b> " + " ".join(
                x.message for x in self.gates))
            p.side_warning.show()

    def blocking_gates(self):
        sel = self.session.selection
        return blocking(self.gates or [], sel) if sel else []

    # --- the view -> the session -------------------------------------------------------------

    @Slot()
    def _roi_moving(self):
        self._update_crop(self.view.roi_rect())

    @Slot()
    def _roi_finished(self):
        roi, sel = self.view.roi_rect(), self.session.selection
        if sel is None or roi is None or roi == sel.roi:
            return
        known, canal = self.canal_of_slice()
        text = "Move ROI" if sel.roi is not None else "Draw ROI"
        if sel.side is None and known and canal is not None:
            self.session.edit(text, roi=roi, side=roi_position(self.geometry_of_slice(), roi,
                                                               canal).side)
        else:
            self.session.edit(text, roi=roi)

    @Slot(str)
    def _roi_refused(self, message):
        self.show_message(message, "note")

    @Slot(object)
    def _measurement_drawn(self, points):
        sel = self.session.selection
        if sel is not None:
            kind = "angle" if len(points) == 3 else "length"
            self._selected_measure = len(self._shown_list())
            self.session.add_measurement(Measurement(sel.slice_key, tuple(points), kind))

    def _shown_list(self):
        sel = self.session.selection
        return sel.measurements_on(sel.slice_key) if sel else ()

    @Slot(int)
    def _measurement_selected(self, i):
        self._selected_measure = i if i >= 0 else None
        self._refresh()

    @Slot(int)
    def _measurement_deleted(self, i):
        shown = self._shown_list()
        if 0 <= i < len(shown):
            self._selected_measure = None
            self.session.delete_measurement(shown[i])

    @Slot(int, object)
    def _measurement_tagged(self, i, tag):
        shown = self._shown_list()
        if 0 <= i < len(shown):
            if not self.session.tag_measurement(shown[i], tag) and tag is not None:
                self.show_message("Only a length can be tagged as a width.", "info")

    def delete_selected_measurement(self):
        if self._selected_measure is not None:
            self._measurement_deleted(self._selected_measure)

    @Slot(int, object)
    def _measurement_moved(self, i, points):
        sel = self.session.selection
        shown = sel.measurements_on(sel.slice_key) if sel else ()
        if i < len(shown):
            new = dataclasses.replace(shown[i], points=tuple(points))
            if new.points != shown[i].points:
                self._shown_measurements = (tuple(
                    new.points if k == i else m.points for k, m in enumerate(shown)),
                    self._selected_measure)
                self.session.replace_measurement(shown[i], new)

    @Slot(str)
    def _series_chosen(self, key):
        if key != self.session.series_key:
            self.session.show_series(key)

    def step_series(self, d: int):
        keys = [i.data(0, Qt.ItemDataRole.UserRole) for i in self.browser.series_items()]
        if keys and self.session.series_key in keys:
            k = keys[(keys.index(self.session.series_key) + d) % len(keys)]
            self.session.show_series(k)

    _step_series = step_series

    def step_slice(self, d: int):
        if self.session.selection is not None:
            self.set_slice(self.index + d)

    @Slot(int)
    def set_slice(self, index: int):
        stack = self.session.stack()
        if stack is None:
            return
        index = max(0, min(len(stack.slices) - 1, int(index)))
        self.session.set_slice(stack.slices[index].key)
        self._flush_timer.start()

    def set_side(self, side: str):
        self.session.set_side(side)

    def set_level(self, level: str | None):
        self.session.set_level(level)

    def delete_roi(self):
        if self.session.selection is not None and self.session.selection.roi is not None:
            self.session.set_roi(None)

    def clear_measurements(self):
        self.session.clear_measurements()

    def mark_levels(self):
        self.localizer.start_marking()

    def clear_marks(self):
        self.session.clear_marks()

    def pan_tool(self):
        self.view.set_tool("pan")
        if self.localizer.marking:
            self.localizer.stop_marking()

    def undo(self):
        if not self.session.undo():
            self.statusBar().showMessage("Nothing to undo.", 3000)

    def redo(self):
        if not self.session.redo():
            self.statusBar().showMessage("Nothing to redo.", 3000)

    def confirm_override(self):
        block = self.blocking_gates()
        if block and all(g.overridable for g in block):
            self.session.confirm_override([g.kind for g in block])
            self.predict()

    def _update_actions(self):
        a = self.actions_by_name
        s = self.session
        a["undo"].setEnabled(s.can_undo())
        a["undo"].setText(f"&Undo {s.undo_text()}" if s.can_undo() else "&Undo")
        a["redo"].setEnabled(s.can_redo())
        a["redo"].setText(f"&Redo {s.redo_text()}" if s.can_redo() else "&Redo")
        sel = s.selection
        a["delete_roi"].setEnabled(sel is not None and sel.roi is not None)
        ok = sel is not None and sel.complete()
        self.predict_button.setEnabled(ok)
        a["predict"].setEnabled(ok)
        a["export"].setEnabled(s.current_result() is not None)

    # --- compatibility views of the session --------------------------------------------------

    @property
    def stack(self):
        return self.session.stack()

    @property
    def study(self):
        return self.session.study()

    @property
    def index(self) -> int:
        sel, stack = self.session.selection, self.session.stack()
        if sel is None or stack is None:
            return -1
        return stack.find_slice(sel.slice_key)

    @property
    def side(self):
        sel = self.session.selection
        return sel.side if sel else None

    @property
    def level(self):
        sel = self.session.selection
        return sel.level if sel else None

    @property
    def prediction(self):
        r = self.session.result
        return r.prediction if r else None

    def _stale(self) -> bool:
        return self.session.is_stale()

    # --- window / level ----------------------------------------------------------------------

    @Slot(object)
    def _window_ready(self, payload):
        key, (c, w) = payload
        self.levels_by_stack[key] = (c, w)
        if key == self.session.series_key:
            self.view.set_levels(c, w)

    def reset_levels(self):
        self.preset_levels(1.0)

    def preset_levels(self, factor: float):
        key = self.session.series_key
        if key is None:
            return
        v = self.current_values()
        c, w = self.levels_by_stack.get(key) or _quick_window(
            v if v is not None else np.zeros((2, 2)))
        self.view.set_levels(c, w * factor)

    # --- the model input ---------------------------------------------------------------------

    def _update_crop(self, roi=None):
        sel = self.session.selection
        p = self.panel
        roi = roi or (sel.roi if sel else None)
        g, values = self.geometry_of_slice(), self.current_values()
        self.model_input = None
        if not self._warm:
            p.crop_caption.setText("Starting up...")
            return
        if roi is None or g is None or values is None or sel.side is None:
            p.crop_preview.clear()
            p.crop_caption.setText("Draw a rectangle around the foramen (D, or Shift+drag),"
                                   " and choose the side." if roi is None else
                                   "Choose the injection side.")
            return
        if roi[2] < MIN_ROI_PIXELS or roi[3] < MIN_ROI_PIXELS:
            p.crop_preview.clear()
            p.crop_caption.setText(f"The ROI is {roi[2]}x{roi[3]} pixels: too small (at least "
                                   f"{MIN_ROI_PIXELS} on each side). Draw a larger one.")
            return
        try:
            self.model_input = model_input(values, g, roi, sel.side)
        except TfesiError as e:
            p.crop_preview.clear()
            p.crop_caption.setText(e.message)
            return
        p.crop_preview.setPixmap(grey_pixmap(self.model_input.image[..., 0], 150))
        mirrored = ", mirrored (left side)" if sel.side == "left" else ""
        p.crop_caption.setText(f"100x100, radiological orientation{mirrored}.\n"
                               f"ROI {roi[2]}x{roi[3]} px at ({roi[0]}, {roi[1]}) stored.")

    # --- prediction --------------------------------------------------------------------------

    def predict_when_ready(self):
        """Predict the current selection as soon as the model, the slice and its canal are
        ready (a selection restored from an earlier session)."""
        self._predict_pending = True

    def _schedule_auto(self):
        if self.auto_check.isChecked() or self._predict_pending:
            self._auto_timer.start()

    def _try_pending(self):
        if self._predict_pending:
            self._auto_timer.start()

    @Slot()
    def _auto_predict(self):
        sel = self.session.selection
        if not (self.auto_check.isChecked() or self._predict_pending):
            return
        if (self.predictor is None or sel is None or not sel.complete()
                or self.session.current_result() is not None
                or self._predicting == sel.model_key()):
            return
        known, _ = self.canal_of_slice()
        if not known or self.current_values() is None:
            return  # comes back when the canal or the slice is ready
        if self.blocking_gates():
            self._predict_pending = False
            return  # no result, not even automatically: the panel says why
        self.predict()

    def predict(self):
        sel = self.session.selection
        if self.predictor is None:
            self._predict_pending = True
            self.show_message("The model is still loading; the prediction follows as soon as "
                              "it is ready." if not self._warm else
                              "No model is loaded, so nothing can be predicted.", "info")
            return
        if sel is None or not sel.complete():
            self.show_message("Draw the ROI and choose the injection side first.", "info")
            return
        known, canal = self.canal_of_slice()
        values = self.current_values()
        if not known or values is None:
            self._predict_pending = True  # follows when the slice and its canal are ready
            return
        self._predict_pending = False
        block = self.blocking_gates()
        if block:
            self.show_message("No result: " + " ".join(g.message for g in block))
            self._show_result()
            return
        self._predicting = sel.model_key()
        self.result_label.setText("<i>Predicting...</i>")
        self.run_worker(Worker(_predict_selection, self.predictor, self.session.stack(), sel,
                               values=values, canal=canal), self._predicted,
                        self._predict_failed)

    @Slot(object)
    def _predicted(self, outcome):
        self._predicting = None
        self.session.set_result(outcome.selection, outcome.prediction, outcome.model_input)

    @Slot(str)
    def _predict_failed(self, message):
        self._predicting = None
        self.result_label.setText("No prediction.")
        self.show_message(f"The prediction failed: {message}")

    def _show_result(self):
        p, s = self.panel, self.session
        r, stale = s.result, s.is_stale()
        block = self.blocking_gates()
        html = gates_html(block) if block else ""
        if r is None:
            p.result_label.setText(html or "No prediction yet.")
            p.provenance_label.setText("")
        else:
            p.result_label.setText((html + "<br>" if html else "")
                                   + result_html(r.prediction, stale=stale,
                                                 blocked=bool(block)))
            p.provenance_label.setText(provenance_html(r.prediction))
            p.cam_caption.setText(f"Relative attention\n(Grad-CAM of the "
                                  f"{r.prediction.cam_target}\nclass, inside the ROI)")
        # the result itself is greyed and struck through; the banner says what to do
        p.stale_label.setText("The result no longer matches the ROI, slice or side: "
                              + ("correct the ROI or the side." if block else "predict again."))
        p.stale_label.setVisible(stale)
        p.slice_strip.show_neighbourhood(None if r is None or stale else r.prediction.neighbourhood)
        self._show_overlay()
        self.comparison.show()
        self._update_actions()

    def _show_overlay(self, *_):
        r = self.session.current_result()
        if r is None or not self.panel.overlay_check.isChecked():
            self.view.clear_overlay()
            return
        self.view.set_overlay(heat_colours(r.prediction.cam_roi), r.prediction.provenance.roi,
                              self.panel.opacity.value() / 100)

    def toggle_overlay(self):
        self.overlay_check.setChecked(not self.overlay_check.isChecked())

    def toggle_mask(self):
        masked = self.actions_by_name["mask"].isChecked()
        self.view.set_mask_patient(masked)
        if self.session.scan is not None:
            self.browser.fill(self.session.patients(), masked)
            self.browser.show_current(self.session.series_key)
            self.opener.request_thumbnails()

    # --- both foramina (gui/comparison.py) and the report (gui/report_controller.py) ---------

    def compare_sides(self):
        self.comparison.compare()

    def comparison_text(self) -> str | None:
        return self.comparison.text()

    def export_report(self):
        return self.report.export()

    @property
    def report_dialog(self):
        return self.report.dialog

    @property
    def last_report(self):
        return self.report.last_report


def _quick_window(values):
    lo, hi = np.percentile(values, [1, 99.5])
    return float((lo + hi) / 2), float(max(hi - lo, 1e-6))
