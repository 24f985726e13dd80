"""The main window: the layout and the wiring of a view of a :class:`~..core.session.Session`
(docs/architecture.md, "Session model").

User input becomes session edits (one per finished drag, click or key); session events redraw
the widgets. The rules live elsewhere: the assessment of a selection (gates, side from the
anatomy) in :mod:`..core.assessment`, when to predict in :mod:`..core.predict_policy` (run by
:mod:`.prediction`), the start-up sequence in :mod:`.startup`, the edits in :mod:`.edits`,
moving through the study in :mod:`.navigation`, the viewports' layout in :mod:`.viewports`, the
report in :mod:`.report_controller`; the controllers and the menu actions (:mod:`.actions`) get
an :class:`~.context.AppContext`, never the window. Everything slow runs in workers
(:mod:`.workers`).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from PySide6.QtCore import Qt, QThreadPool, QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from ..core.dicom import cached_values
from ..core.errors import TfesiError
from ..core.measure import measurement_lines
from ..core.render import heat_colours
from ..core.session import Session, StateStore
from ..core.writes import OrderedWrites
from .actions import Targets, build_menus
from .anatomy import CanalSearch
from .axial import AxialViewport
from .clinical_form import ClinicalController, ClinicalForm
from .comparison import SideComparison
from .context import AppContext
from .edits import Edits
from .localizer import Localizer
from .navigation import Navigator
from .opening import StudyOpener
from .prediction import PredictController
from .report_controller import ReportController
from .result_view import crop_view
from .settings import fit_to_screen, recent, remember, settings, with_recent
from .side_panel import MessageArea, RightColumn, SidePanel
from .startup import Startup
from .viewer import SliceView
from .viewports import Viewports
from .workers import LaterLane, Worker

log = logging.getLogger(__name__)
APP_TITLE = "TFESI Desktop"
__all__ = ["APP_TITLE", "MainWindow", "settings"]


def _remember_quietly(paths):
    """File > Open recent on disk; a list that cannot be written is not worth a message."""
    try:
        remember(paths)
    except (OSError, TfesiError) as e:
        log.warning("the recent folders could not be written: %s", e)


class MainWindow(QMainWindow):
    _write_failed = Signal(object)  # from the writes' thread (core/writes.py)

    def __init__(self, *, model_path: str | Path | None = None, load_model: bool = True,
                 store: StateStore | None = None):
        super().__init__()
        self.pool = QThreadPool.globalInstance()
        self._workers: dict[object, Worker] = {}
        self.later = LaterLane(self.pool.start, self)
        self.session = Session(store)
        # the study's work and the recent folders are written in a thread of their own: an
        # fsync here stalled the window 15-60 ms per edit on a busy disk
        self.writes = self.session.writes = OrderedWrites(self._write_failed.emit)
        self._write_failed.connect(self._on_write_failed)
        self.session.subscribe(self._session_changed)
        self.last_error: str | None = None
        self.setAcceptDrops(True)
        self.setWindowTitle(APP_TITLE)
        self.ctx = AppContext(self.session, lambda: self.startup.predictor, self.run_worker,
                              self.show_message, self.statusBar().showMessage, settings, self)
        self.startup = Startup(self.ctx, loaded=self._model_loaded, failed=self._model_failed)
        warm = lambda: self.startup.warm  # noqa: E731
        self.nav = Navigator(self.ctx, lambda: [
            i.data(0, Qt.ItemDataRole.UserRole) for i in self.browser.series_items()])
        self._build()
        self.axial = AxialViewport(self.ctx, self.view, self._refresh,
                                   first_shown=lambda: self.later.release_after_paint(
                                       self.view.graphics.viewport()))
        self.canals = CanalSearch(self.ctx, self.values_of, warm)
        self.predictions = PredictController(self.ctx, self.panel, self.values_of,
                                             lambda: self.startup.loading or not warm())
        self.comparison = SideComparison(self.ctx, self.view, self.panel, self.values_of)
        self.clinical_form = ClinicalForm()  # issue 25: clinical data beside the image
        self.panel.add_clinical_form(self.clinical_form)
        self.clinical = ClinicalController(self.ctx, self.clinical_form,
                                           self.panel.clinical_label)
        self.report = ReportController(self.ctx, self.comparison.text, self.clinical.combined)
        self.edits = Edits(self.ctx, delete_measurement=self.axial.delete_measurement,
                           selected_measurement=lambda: self.axial.selected_measure,
                           predict=self.predictions.predict)
        self.viewports = Viewports(self.ctx, self.view, self.localizer.widget,
                                   lambda: self.localizer.stack is not None, {})
        self._wire_panel()
        self.actions_by_name = build_menus(self, Targets(
            self.ctx, self.opener, self.edits, self.nav, self.viewports, self.predictions,
            self.comparison, self.report, self.axial, self.localizer, self.view, self.panel,
            self.current_values, warm, self.viewports.actions))
        # held back until the model is loaded (gui/startup.py); the browser's thumbnails also
        # wait while a canal search runs (the side proposal the physician waits for goes
        # first; the later lane alone would let thumbnails asked for earlier run before it),
        # see _session_changed
        self.startup.when_warm(self.canals.find)
        self.startup.when_warm(self.localizer.request_frames)
        self.startup.when_warm(self._thumbnails_when_free)
        self._refresh_recent()
        self._restore_geometry()
        self._update_actions()
        if load_model:
            self.load_model(model_path)

    # --- construction ------------------------------------------------------------------------

    def _build(self):
        self.view = SliceView()
        self.view.slice_step.connect(self.nav.step_slice)
        self.view.roi_changed.connect(lambda: self._update_crop(self.view.roi_rect()))
        self.view.double_clicked.connect(lambda: self.viewports.maximise(self.view))

        p = self.panel = SidePanel()  # its controls: the panel's own attributes (w.panel.slider)
        self.browser = p.browser

        self.localizer = Localizer(self.ctx, self.view, axial_geometry=self.geometry_of_slice,
                                   axial_shown=lambda: self.axial.shown is not None,
                                   warm=lambda: self.startup.warm, go_to=self.nav.set_slice)
        self.sag_view = self.localizer.view
        self.sag_view.double_clicked.connect(
            lambda: self.viewports.maximise(self.localizer.widget))
        self.view.show_histogram(False)  # View > Histogram (H): the image keeps the width
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
                                  restored=lambda: self.predictions.when_ready(),
                                  hold_back=lambda: self.startup.loading or bool(
                                      self.canals.searching),
                                  browser=self.browser)
        self.cancel_button.clicked.connect(self.opener.cancel)
        p.skipped_button.clicked.connect(self.opener.show_skipped)

    def _wire_panel(self):
        """The panel's controls -> the controllers and the session."""

        p = self.panel
        p.browser.series_chosen.connect(self._series_chosen)
        p.slider.valueChanged.connect(self.nav.set_slice)
        p.side_chosen.connect(self.edits.set_side)
        p.level_chosen.connect(self.edits.set_level)
        p.override_confirmed.connect(self.edits.confirm_override)
        p.predict_button.clicked.connect(self.predictions.predict)
        p.slice_strip.go_to_slice.connect(self.nav.set_slice)  # the proposed (narrowest) slice
        p.overlay_check.toggled.connect(self._show_overlay)
        p.opacity.valueChanged.connect(self._show_overlay)
        p.measurement_selected.connect(self._measurement_selected)
        p.measurement_deleted.connect(lambda i: self.axial.delete_measurement(i))
        p.measurement_tagged.connect(lambda i, tag: self.axial.tag_measurement(i, tag))
        p.window_typed.connect(lambda c, w: self.view.set_levels(c, w))
        self.view.levels_changed.connect(p.show_window)

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

    # --- settings ----------------------------------------------------------------------------

    def _restore_geometry(self):
        g = settings().value("geometry")
        if g is not None:
            self.restoreGeometry(g)
        self.fit_to_screen(force=g is None)
        self.viewports.apply_theme(settings().value("theme", "dark") == "light")

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

    def closeEvent(self, ev):
        """Quit at once: save, cancel what runs, and leave the workers (daemon threads of the
        pool, whose results nobody waits for) a short moment only."""
        self.nav.cine.stop()
        self.session.close()
        s = settings()
        s.setValue("geometry", self.saveGeometry())
        s.sync()
        self.opener.cancel()
        self.later.clear()
        self.pool.clear()  # workers not started yet never start
        self.pool.waitForDone(200)
        super().closeEvent(ev)

    def remember(self, paths):
        paths = [str(p) for p in paths]
        self.writes.submit(object(), lambda: _remember_quietly(paths))  # each one, in order
        self._refresh_recent(with_recent(recent(), paths))

    def _refresh_recent(self, items=None):
        items = recent() if items is None else items
        self.recent_menu.clear()
        for i, r in enumerate(items):
            a = self.recent_menu.addAction(f"&{i + 1} {r}")
            a.triggered.connect(lambda _=False, r=r: self.open_paths(r.split(" | ")))
        self.recent_menu.setEnabled(bool(items))

    @Slot(object)
    def _on_write_failed(self, error):
        self.session.save_failed(error)

    # --- workers and messages ----------------------------------------------------------------

    def run_worker(self, worker: Worker, on_result, on_error=None, *, later: bool = False,
                   first: bool = False, pause_later: bool = False) -> Worker:
        """Start ``worker``; ``later``: in the later lane (gui/workers.py LaterLane: one at a
        time, after a series' first slice has been painted), ``first`` of those queued;
        ``pause_later``: none of those starts while it runs."""
        self._workers[worker.signals] = worker
        worker.signals.result.connect(on_result)
        worker.signals.error.connect(on_error or self._worker_error)
        worker.signals.finished.connect(self._worker_done)
        if pause_later:
            self.later.pause_for(worker)
        if later:
            self.later.add(worker, first)
        else:
            self.pool.start(worker)
        return worker

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

    # --- the model (loaded by gui/startup.py) ------------------------------------------------

    @property
    def predictor(self):
        """The loaded model (runtime.Predictor), or None."""
        return self.startup.predictor

    def load_model(self, path=None):
        """Load the model bundle (the installed or demo one by default): before the window
        shows at once, later in a worker (gui/startup.py)."""
        self.model_status.setText("Model: loading...")
        self.startup.load(path)

    def _model_loaded(self, predictor):
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

    def _model_failed(self, message: str):
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
            if what == "anatomy":
                self._thumbnails_when_free()
                if s.propose_side():
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

    def _thumbnails_when_free(self):
        if self.opener.thumbs_wanted:
            self.opener.request_thumbnails()  # held back again while a canal search runs

    def _fill_browser(self):
        scan = self.session.scan
        n = len(scan.skipped)
        self.panel.skipped_button.setText(f"{n} file{'s' if n != 1 else ''} skipped - show"
                                    if n else "No files skipped")
        self.panel.skipped_button.setEnabled(bool(n))
        self.browser.fill(self.session.patients(), self.actions_by_name["mask"].isChecked())

    def _show_series(self):
        stack = self.session.stack()
        self.later.hold()  # until its first slice is on the screen
        self.browser.show_current(stack.key)
        self.axial.series_changed()
        self.panel.slider.blockSignals(True)
        self.panel.slider.setRange(0, len(stack.slices) - 1)
        self.panel.slider.blockSignals(False)
        self.localizer.study_changed()
        self.viewports.layout()
        self._set_title()
        self._refresh()

    def _refresh(self):
        """Everything that follows the selection: slice, ROI, measurements, side and level, the
        assessment, the model input, the result, the actions."""
        s = self.session
        sel, stack = s.selection, s.stack()
        if sel is None or stack is None:
            return
        index = self.nav.index()
        self.panel.slider.blockSignals(True)
        self.panel.slider.setValue(index)
        self.panel.slider.blockSignals(False)
        pos = stack.slice_positions()
        self.panel.slice_label.setText(f"slice {index + 1} / {len(stack.slices)}"
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
        assessment = s.assessment()
        self.panel.show_assessment(assessment, sel)
        self._update_crop()
        self._show_result(assessment)
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

    # --- the panel -> the session ------------------------------------------------------------

    @Slot(int)
    def _measurement_selected(self, i):
        self.axial.select_measurement(i)
        self._refresh()

    @Slot(str)
    def _series_chosen(self, key):
        if key != self.session.series_key:
            self.session.show_series(key)

    def _update_actions(self):
        """Undo/redo name what they undo; every other action stays enabled and says why when
        it cannot act (a disabled shortcut does nothing and says nothing)."""
        a = self.actions_by_name
        s = self.session
        a["undo"].setText(f"&Undo {s.undo_text()}" if s.can_undo() else "&Undo")
        a["redo"].setText(f"&Redo {s.redo_text()}" if s.can_redo() else "&Redo")
        self.panel.predict_button.setEnabled(True)

    # --- the model input and the result ------------------------------------------------------

    def _update_crop(self, roi=None):
        sel = self.session.selection
        if not self.startup.warm:
            self.panel.show_crop(None, "Starting up...")
            return
        if sel is not None and roi is not None:
            sel = dataclasses.replace(sel, roi=roi)
        key = sel.slice_key if sel else None
        self.panel.show_crop(*crop_view(sel, self.values_of(key), self.session.geometry_of(key)))

    def _show_result(self, assessment=None):
        s = self.session
        if assessment is None and s.selection is not None:
            assessment = s.assessment()
        self.panel.show_result(s.result, stale=s.is_stale(),
                               blocking=assessment.blocking if assessment else ())
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
