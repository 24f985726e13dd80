"""The main window: the layout and the wiring of a view of a :class:`~..core.session.Session`
(docs/architecture.md, "Session model").

User input becomes session edits (one per finished drag, click or key); session events redraw
the widgets. The rules live elsewhere: the assessment of a selection (gates, side from the
anatomy) in :mod:`..core.assessment`, when to predict in :mod:`..core.predict_policy` (run by
:mod:`.prediction`), the report in :mod:`.report_controller`; the controllers get an
:class:`~.context.AppContext`, never the window. The window keeps only caches of what is slow to
compute (window levels) and what the screen shows. Everything slow runs in workers
(:mod:`.workers`).
"""

from __future__ import annotations

import dataclasses
import gc
import logging
from pathlib import Path

from PySide6.QtCore import Qt, QThreadPool, QTimer, Slot
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from ..core.bundle import default_bundle_path
from ..core.dicom import cached_values
from ..core.measure import measurement_lines
from ..core.render import heat_colours
from ..core.runtime import Predictor
from ..core.session import Session, StateStore
from . import jobs
from .actions import build_menus
from .anatomy import CanalSearch
from .axial import AxialViewport
from .clinical_form import ClinicalController, ClinicalForm
from .comparison import SideComparison
from .context import AppContext
from .localizer import Localizer
from .opening import StudyOpener
from .prediction import PredictController
from .report_controller import ReportController
from .result_view import crop_view, model_card_html
from .settings import fit_to_screen, recent, remember, settings
from .side_panel import MessageArea, RightColumn, SidePanel
from .viewer import SliceView
from .workers import Worker

log = logging.getLogger(__name__)
APP_TITLE = "TFESI Desktop"
__all__ = ["APP_TITLE", "MainWindow", "settings"]


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
        self.last_error: str | None = None
        # True once the model worker has imported scikit-image and pydicom: until then the GUI
        # thread must not import them (it would wait for the worker's import lock: a stall)
        self._warm = False
        self.loading_model = False
        self.setAcceptDrops(True)
        self.setWindowTitle(APP_TITLE)
        self.ctx = AppContext(self.session, lambda: self.predictor, self.run_worker,
                              self.show_message, self.statusBar().showMessage, settings, self)
        self._build()
        self.axial = AxialViewport(self.ctx, self.view, self._refresh)
        self.canals = CanalSearch(self.ctx, self.values_of, lambda: self._warm)
        self.predictions = PredictController(self.ctx, self.panel, self.values_of,
                                             lambda: self.loading_model or not self._warm)
        self.comparison = SideComparison(self.ctx, self.view, self.panel, self.values_of)
        self.clinical_form = ClinicalForm()  # issue 25: clinical data beside the image
        self.panel.add_clinical_form(self.clinical_form)
        self.clinical = ClinicalController(self.ctx, self.clinical_form,
                                           self.panel.clinical_label)
        self.report = ReportController(self.ctx, self.comparison.text, self.clinical.combined)
        self.actions_by_name = build_menus(self)
        self._refresh_recent()
        self._restore_geometry()
        self._cine = QTimer(self, interval=125)  # 8 slices a second
        self._cine.timeout.connect(lambda: self.step_slice(1, wrap=True))
        self._update_actions()
        gc.freeze()  # see _started
        if load_model:
            self.load_model(model_path)

    # --- construction ------------------------------------------------------------------------

    def _build(self):
        self.view = SliceView()
        self.view.slice_step.connect(self.step_slice)
        self.view.roi_changed.connect(lambda: self._update_crop(self.view.roi_rect()))
        self.view.double_clicked.connect(lambda: self.maximise(self.view))

        p = self.panel = SidePanel()
        p.browser.series_chosen.connect(self._series_chosen)
        p.slider.valueChanged.connect(self.set_slice)
        p.side_chosen.connect(self.set_side)
        p.level_chosen.connect(self.set_level)
        p.override_confirmed.connect(self.confirm_override)
        p.predict_button.clicked.connect(self.predict)
        p.slice_strip.go_to_slice.connect(self.set_slice)  # the proposed (narrowest) slice
        p.overlay_check.toggled.connect(self._show_overlay)
        p.opacity.valueChanged.connect(self._show_overlay)
        p.measurement_selected.connect(self._measurement_selected)
        p.measurement_deleted.connect(lambda i: self.axial.delete_measurement(i))
        p.measurement_tagged.connect(lambda i, tag: self.axial.tag_measurement(i, tag))
        p.window_typed.connect(lambda c, w: self.view.set_levels(c, w))
        self.view.levels_changed.connect(p.show_window)
        # the widgets tests and scripts reach for, by their old names
        for name in ("slider", "slice_label", "side_buttons", "level_combo", "side_hint",
                     "side_warning", "predict_button", "auto_check", "result_label",
                     "stale_label", "performance_label", "disclaimer_label", "overlay_check",
                     "opacity", "provenance_label", "crop_preview", "crop_caption",
                     "skipped_button", "override_button"):
            setattr(self, name, getattr(p, name))
        self.browser = p.browser

        self.localizer = Localizer(self.ctx, self.view, axial_geometry=self.geometry_of_slice,
                                   axial_shown=lambda: self._shown is not None,
                                   warm=lambda: self._warm, go_to=self.set_slice)
        self.sag_view = self.localizer.view
        self.sag_view.double_clicked.connect(lambda: self.maximise(self.localizer.widget))
        self.view.histogram.hide()  # View > Histogram (H): the image keeps the width
        # the right column: the injection (gates, override), the result and the measurements
        # always in view; the browser, slice, heat map and model input scroll below them
        right = self.right_column = RightColumn(p)
        self.panel_scroll = right.rest
        split = self.splitter = QSplitter()
        split.setChildrenCollapsible(False)
        split.addWidget(self.view)
        split.addWidget(self.localizer.widget)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 1)
        self.localizer.widget.hide()  # shown when the study has a sagittal
        self._maximised: QWidget | None = None
        self.layout_mode = "both"  # axial | both (View menu)
        central = QWidget()
        lay = QVBoxLayout(central)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        self.messages = MessageArea()
        lay.addWidget(self.messages)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(split, 1)  # the viewports get everything the panel's column leaves
        row.addWidget(right)
        lay.addLayout(row, 1)
        self.setCentralWidget(central)

        sb = self.statusBar()
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(200)
        self.progress.hide()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.hide()
        self.model_status = QLabel("Model: not loaded")
        sb.addPermanentWidget(self.progress)
        sb.addPermanentWidget(self.cancel_button)
        sb.addPermanentWidget(self.model_status)
        self.opener = StudyOpener(self.ctx, busy=self._show_busy,
                                  clear_messages=self.messages.clear, remember=self.remember,
                                  restored=self.predict_when_ready,
                                  model_loading=lambda: self.loading_model,
                                  browser=self.browser)
        self.cancel_button.clicked.connect(self.opener.cancel)
        p.skipped_button.clicked.connect(self.opener.show_skipped)

    def _show_busy(self, state):
        """The progress of a scan, with Cancel (None: done)."""
        if state is None:
            self.progress.hide()
            self.cancel_button.hide()
            return
        done, total = state
        self.progress.setRange(0, max(total, 1) if total else 0)
        self.progress.setValue(done)
        self.progress.show()
        self.cancel_button.show()

    # --- the viewports -----------------------------------------------------------------------

    def _layout_viewports(self):
        """The sagittal beside the axial only when the study has one, the layout asks for it
        and no viewport is maximised."""
        sag = self.localizer.stack is not None and self.layout_mode == "both"
        m = self._maximised
        self.view.setVisible(m is None or m is self.view)
        self.localizer.widget.setVisible(sag and (m is None or m is self.localizer.widget))

    def maximise(self, viewport: QWidget | None):
        """Double-click: this viewport alone (again: back to the layout)."""
        self._maximised = None if self._maximised is viewport else viewport
        self._layout_viewports()

    def set_layout(self, mode: str):
        """``axial`` (the axial alone) or ``both`` (axial + sagittal, when there is one)."""
        self.layout_mode, self._maximised = mode, None
        self._layout_viewports()
        for name in ("layout_axial", "layout_both"):
            a = self.actions_by_name.get(name)
            if a is not None:
                a.setChecked(name == f"layout_{mode}")

    def toggle_histogram(self):
        self.view.histogram.setVisible(not self.view.histogram.isVisible())

    def toggle_cine(self):
        """C: play through the slices (and stop)."""
        if self._cine.isActive():
            self._cine.stop()
            self.statusBar().showMessage("Cine stopped.", 2000)
        elif self.session.selection is not None:
            self._cine.start()
            self.statusBar().showMessage("Cine: C stops.", 3000)
        else:
            self.show_message("Open a study first: cine plays through its slices.", "info")

    # --- settings ----------------------------------------------------------------------------

    def _restore_geometry(self):
        g = settings().value("geometry")
        if g is not None:
            self.restoreGeometry(g)
        self.fit_to_screen(force=g is None)
        self.apply_theme(settings().value("theme", "dark") == "light")

    def fit_to_screen(self, *, force: bool = False):
        """Fit the window to its screen (gui/settings.py): a geometry saved at another scaling
        or on another screen too."""
        fit_to_screen(self, force=force)
        self._auto_size = self.size()  # a size set by the caller afterwards is kept

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

    def _info_box(self, title: str, html: str, attr: str):
        box = QMessageBox(QMessageBox.Icon.NoIcon, title, html, parent=self)
        box.setTextFormat(Qt.TextFormat.RichText)
        box.setModal(False)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.show()
        setattr(self, attr, box)

    def show_help(self):
        """F1: every shortcut and mouse binding of the window, from the action table."""
        from .actions import shortcut_sheet

        self._info_box("Keyboard shortcuts and mouse", shortcut_sheet(self), "help_box")

    def about_model(self):
        if self.predictor is None:
            self.show_message("The model is still loading." if not self._warm
                              else "No model is loaded.", "info")
            return
        self._info_box("About the model", model_card_html(self.predictor.bundle), "about_box")

    def closeEvent(self, ev):
        """Quit at once: save, cancel what runs, and leave the workers (daemon threads of the
        pool, whose results nobody waits for) a short moment only."""
        self._cine.stop()
        self.session.close()
        s = settings()
        s.setValue("geometry", self.saveGeometry())
        s.sync()
        self.opener.cancel()
        self.pool.clear()  # workers not started yet never start
        self.pool.waitForDone(200)
        super().closeEvent(ev)

    def recent(self) -> list[str]:
        return recent()

    def remember(self, paths):
        remember(paths)
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
        """Say it in the one message area (replacing what was there: an old error goes once
        something else is said) and the status bar."""
        if kind == "error":
            self.last_error = text
        self.messages.show_message(text, kind)
        self.statusBar().showMessage(text, 15000)

    def _clear_error(self):
        """A success: an error shown earlier no longer applies."""
        if self.messages.kind == "error":
            self.messages.clear()

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
        self._warm = True
        if self.opener.thumbs_wanted:
            self.opener.request_thumbnails()
        self.canals.find()
        self.localizer.request_frames()

    def load_model(self, path=None):
        path = Path(path) if path else default_bundle_path()
        self.model_status.setText("Model: loading...")
        self.loading_model = True
        self.run_worker(Worker(jobs.load_model, path), self._model_loaded, self._model_failed)

    @Slot(object)
    def _model_loaded(self, predictor: Predictor):
        self.predictor = predictor
        self._started()
        b = predictor.bundle
        self._set_title()
        self.model_status.setText(f"Model: {b.name} {b.version}" +
                                  (" (synthetic demo)" if b.synthetic else ""))
        self.panel.performance_label.setText(b.validated_performance())
        self.panel.disclaimer_label.setText(b.disclaimer())
        self.clinical.model_loaded(b)
        self.view.set_banner("DEMONSTRATION MODEL - synthetic training data - not for "
                             "clinical use" if b.synthetic else "")
        if self.messages.kind == "info" and "still loading" in self.messages.text():
            self.messages.clear()
        self._refresh()

    def _set_title(self):
        """The demonstration model and a read-only study say so in the title too."""
        b = self.predictor.bundle if self.predictor else None
        demo = " - DEMONSTRATION MODEL (synthetic training data, not for clinical use)" \
            if b is not None and b.synthetic else ""
        ro = " - READ-ONLY: this study is open in another window" if \
            self.session.read_only() else ""
        self.setWindowTitle(f"{APP_TITLE}{demo}{ro}")

    @Slot(str)
    def _model_failed(self, message: str):
        self._started()
        self.model_status.setText("Model: not available")
        self.clinical.model_loaded(None)
        self.show_message(f"The model could not be loaded: {message}")
        self._refresh()

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
        s = self.session
        if what == "opened":
            self._fill_browser()
        elif what == "series":
            self._show_series()
        elif what in ("selection", "anatomy"):
            if what == "anatomy" and s.propose_side():
                return  # the edit redraws
            self._refresh()
        elif what == "result":
            self._show_result()
            if s.current_result() is not None:
                self._clear_error()
        elif what == "notes":
            if s.notes:
                self.show_message(" ".join(s.notes[-3:]), "note")
        elif what == "save_failed":  # invariant 5: the physician must know
            self.show_message(s.save_errors[-1] + " Your changes stay in this window until "
                              "it closes; check the disk and folder permissions.")
        elif what == "refused":
            self.show_message(s.refusal, "note")
            self._set_title()
            self._refresh()

    def _fill_browser(self):
        scan = self.session.scan
        n = len(scan.skipped)
        self.skipped_button.setText(f"{n} file{'s' if n != 1 else ''} skipped - show"
                                    if n else "No files skipped")
        self.skipped_button.setEnabled(bool(n))
        self.browser.fill(self.session.patients(), self.actions_by_name["mask"].isChecked())

    def _show_series(self):
        stack = self.session.stack()
        self.browser.show_current(stack.key)
        self.axial.series_changed()
        self.slider.blockSignals(True)
        self.slider.setRange(0, len(stack.slices) - 1)
        self.slider.blockSignals(False)
        self.localizer.study_changed()
        self._layout_viewports()
        self._set_title()
        self._refresh()

    def _refresh(self):
        """Everything that follows the selection: slice, ROI, measurements, side and level, the
        assessment, the model input, the result, the actions."""
        s = self.session
        sel, stack = s.selection, s.stack()
        if sel is None or stack is None:
            return
        index = self.index
        self.slider.blockSignals(True)
        self.slider.setValue(index)
        self.slider.blockSignals(False)
        pos = stack.slice_positions()
        self.slice_label.setText(f"slice {index + 1} / {len(stack.slices)}"
                                 + (f"   position {pos[index]:.1f} mm" if pos else ""))
        self.axial.show(sel, stack, index)
        self.panel.show_measurements(measurement_lines(sel.measurements_on(sel.view_key),
                                                       self._spacing()),
                                     self.axial.selected_measure)
        kim, text = s.kim()
        self.panel.kim_label.setText(text)
        self.panel.show_side_level(sel.side, sel.level)
        self.panel.level_source.setText(self._level_text(sel))
        for name in ("right", "left"):
            self.actions_by_name[f"side_{name}"].setChecked(sel.side == name)
        self.localizer.update()
        self.panel.show_assessment(s.assessment(), sel)
        self._update_crop()
        self._show_result()
        self.canals.find()
        self.predictions.changed()

    def _spacing(self):
        g = self.geometry_of_slice()
        return g.spacing if g is not None else (1.0, 1.0)

    def _level_text(self, sel) -> str:
        if sel.level and sel.level_source == "proposed":
            return "Proposed from the discs marked on the sagittal."
        if sel.level and sel.level_source == "hand":
            proposed = self.session.proposed_level(sel)
            return "Set by hand" + (f" (the marks propose {proposed})." if proposed and
                                    proposed != sel.level else ".")
        if self.session.marks:
            return "None proposed: this slice is not at a marked disc."
        return "K: mark the discs on the sagittal to have it proposed."

    def values_of(self, slice_key):
        """The decoded modality values of a slice of the current series, or None."""
        stack = self.session.stack()
        if stack is None or slice_key is None:
            return None
        return cached_values(stack.slices[stack.find_slice(slice_key)])

    def current_values(self):
        """The values of the slice on the screen."""
        sel = self.session.selection
        return self.values_of(sel.view_key) if sel else None

    # --- the anatomy (gui/anatomy.py, core/assessment.py) -------------------------------------

    def canal_of_slice(self):
        """(known, canal) for the slice on the screen."""
        sel = self.session.selection
        return self.session.canal(sel.view_key) if sel else (False, None)

    def geometry_of_slice(self):
        """The geometry of the slice on the screen (None without a series)."""
        sel = self.session.selection
        return self.session.geometry_of(sel.view_key) if sel else None

    def blocking_gates(self):
        return list(self.session.assessment().blocking) if self.session.selection else []

    # --- the panel and the keys -> the session -----------------------------------------------

    @Slot(int)
    def _measurement_selected(self, i):
        self.axial.select_measurement(i)
        self._refresh()

    def delete_selected_measurement(self):
        if not self.axial.delete_measurement(self.axial.selected_measure):
            self.show_message("Select a measurement in the list first.", "info")

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

    def step_slice(self, d: int, *, wrap: bool = False):
        stack = self.session.stack()
        if self.session.selection is not None and stack is not None:
            i = self.index + d
            self.set_slice(i % len(stack.slices) if wrap else i)

    @Slot(int)
    def set_slice(self, index: int):
        stack = self.session.stack()
        if stack is None:
            return
        index = max(0, min(len(stack.slices) - 1, int(index)))
        self.session.set_slice(stack.slices[index].key)
        self._flush_timer.start()

    def go_to_roi(self):
        if not self.session.go_to_roi():
            self.show_message("The ROI is on the slice shown (or there is none).", "info")

    def set_side(self, side: str):
        self.session.set_side(side)

    def set_level(self, level: str | None):
        self.session.set_level(level)

    def delete_roi(self):
        sel = self.session.selection
        if sel is None or sel.roi is None:
            self.show_message("There is no ROI to delete.", "info")
            return
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
        if not self.session.undo() and not self.session.read_only():
            self.show_message("Nothing to undo.", "info")

    def redo(self):
        if not self.session.redo() and not self.session.read_only():
            self.show_message("Nothing to redo.", "info")

    def confirm_override(self):
        a = self.session.assessment()
        if a.overridable:
            self.session.confirm_override([g.kind for g in a.blocking])
            self.predict()

    def _update_actions(self):
        """Undo/redo name what they undo; every other action stays enabled and says why when
        it cannot act (a disabled shortcut does nothing and says nothing)."""
        a = self.actions_by_name
        s = self.session
        a["undo"].setText(f"&Undo {s.undo_text()}" if s.can_undo() else "&Undo")
        a["redo"].setText(f"&Redo {s.redo_text()}" if s.can_redo() else "&Redo")
        self.predict_button.setEnabled(True)

    # --- compatibility views of the session --------------------------------------------------

    @property
    def stack(self):
        return self.session.stack()

    @property
    def study(self):
        return self.session.study()

    @property
    def index(self) -> int:
        """The index of the slice on the screen."""
        sel, stack = self.session.selection, self.session.stack()
        if sel is None or stack is None:
            return -1
        return stack.find_slice(sel.view_key)

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

    # --- window / level ----------------------------------------------------------------------

    @property
    def levels_by_stack(self):
        return self.axial.levels_by_stack

    @property
    def _shown(self):
        return self.axial.shown

    def reset_levels(self):
        self.preset_levels(1.0)

    def preset_levels(self, factor: float):
        self.axial.preset_levels(factor, self.current_values())

    # --- the model input and the result ------------------------------------------------------

    def _update_crop(self, roi=None):
        sel = self.session.selection
        if not self._warm:
            self.panel.show_crop(None, "Starting up...")
            return
        if sel is not None and roi is not None:
            sel = dataclasses.replace(sel, roi=roi)
        key = sel.slice_key if sel else None
        self.panel.show_crop(*crop_view(sel, self.values_of(key), self.session.geometry_of(key)))

    def predict_when_ready(self):
        """Predict the current selection as soon as the model, the slice and its canal are
        ready (a selection restored from an earlier session)."""
        self.predictions.when_ready()

    def predict(self):
        self.predictions.predict()

    def _show_result(self):
        s = self.session
        self.panel.show_result(s.result, stale=s.is_stale(),
                               blocking=s.assessment().blocking if s.selection else ())
        self.panel.slice_strip.show_neighbourhood(  # the neighbouring slices (gui/slice_strip.py)
            None if s.result is None or s.is_stale() else s.result.prediction.neighbourhood)
        self._show_overlay()
        self._update_actions()

    def _show_overlay(self, *_):
        """Every overlay follows O: the heat map and the other side's (comparison)."""
        r, sel = self.session.current_result(), self.session.selection
        if r is None or not self.panel.overlay_check.isChecked() or sel.roi_elsewhere():
            self.view.clear_overlay()
        else:
            self.view.set_overlay(heat_colours(r.prediction.cam_roi), r.prediction.provenance.roi,
                                  self.panel.opacity.value() / 100)
        self.comparison.show()

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
