"""The defects a day of real use found in the window (issue: "The window a physician works
in"), each driven as a user meets it, through the window's public surface and the session
(pytest-qt, offscreen). Each test fails on the code before its fix."""


import pytest

pytest.importorskip("PySide6")

from PySide6.QtCore import QEvent, QObject, QPoint, QPointF, Qt  # noqa: E402
from PySide6.QtGui import QWheelEvent  # noqa: E402
from PySide6.QtWidgets import QApplication, QMessageBox  # noqa: E402

from tests import test_gui as _gui  # noqa: E402
from tests.test_gui import (  # noqa: E402
    _click,
    _drag,
    _open_demo,
    _place_roi,
    _roi_on_demo,
    on_screen,
)
from tfesi_desktop.gui.mainwindow import MainWindow  # noqa: E402

case, window = _gui.case, _gui.window  # the same fixtures: the demo case, a shown window


def _wheel(widget, steps: int = -3):
    """Turn the wheel over ``widget`` (negative: towards the user), as a mouse would."""
    for _ in range(abs(steps)):
        ev = QWheelEvent(QPointF(5, 5), QPointF(widget.mapToGlobal(QPoint(5, 5))), QPoint(0, 0),
                         QPoint(0, 120 if steps > 0 else -120), Qt.MouseButton.NoButton,
                         Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
        QApplication.sendEvent(widget, ev)
        QApplication.processEvents()


def _predicted(qtbot, w, case):
    _roi_on_demo(qtbot, w, case)
    qtbot.waitUntil(lambda: w.session.current_result() is not None, timeout=10000)
    return w.session.current_result()


def test_the_wheel_over_the_panel_never_changes_a_value(qtbot, window, case):
    w = window
    _roi_on_demo(qtbot, w, case)
    sel = w.session.selection
    for widget in (w.panel.level_combo, w.panel.slider, w.panel.opacity):
        _wheel(widget, -3)
        _wheel(widget, 3)
    assert w.session.selection == sel  # level "-" stays, the slice stays, the ROI stays
    assert w.panel.level_combo.currentText() == "-" and w.panel.opacity.value() == 40


def test_a_length_after_hovering_the_roi_never_moves_it(qtbot, window, case):
    """The pointer rests on the ROI (pan tool), then L, then a drag from the same spot."""
    w = window
    r = _predicted(qtbot, w, case)
    x, y, wd, ht = r.selection.roi
    _drag(w, x + wd / 2, y + ht / 2, x + wd / 2, y + ht / 2 + 0.01,
          modifiers=Qt.KeyboardModifier.NoModifier)  # hovered and clicked in pan mode
    qtbot.keyClick(w, Qt.Key.Key_L)
    _drag(w, x + wd / 2, y + ht / 2, x + wd / 2 + 10, y + ht / 2,
          modifiers=Qt.KeyboardModifier.NoModifier)
    assert w.session.selection.roi == r.selection.roi == w.view.roi_rect()
    assert len(w.session.selection.measurements) == 1
    assert w.session.current_result() is not None  # not re-predicted, not stale


def _mark_discs(qtbot, w):
    loc = w.localizer
    qtbot.waitUntil(lambda: loc.shared_frame() is True and loc._shown is not None)
    gs = loc.sagittal_geometry()
    qtbot.keyClick(w, Qt.Key.Key_K)
    for i in range(6):  # the demo's discs, 17 mm apart (tests/test_gui.py)
        row = (gs.position[2] - (-11.0 - 17.0 * i)) / gs.spacing[0]
        _click(w.sag_view, 120.5, row + 0.5)


def test_the_report_says_the_level_the_panel_shows(qtbot, window, case, tmp_path):
    """Level proposed from the disc marks *after* predicting: the report printed NOT GIVEN."""
    w = window
    _predicted(qtbot, w, case)
    _mark_discs(qtbot, w)
    assert w.session.selection.level == "C6" and w.session.current_result() is not None
    assert "level C6" in w.panel.provenance_label.text()
    text = _gui.export_pdf_text(qtbot, w, tmp_path / "r.pdf")
    if text is not None:
        assert "NOT GIVEN" not in text and "C6" in text


def test_an_roi_stays_on_the_slice_it_was_drawn_on(qtbot, window, case):
    w = window
    r = _predicted(qtbot, w, case)
    home = w.panel.slider.value()
    undo_steps = len(w.session.work.undo)
    for key in (Qt.Key.Key_Down, Qt.Key.Key_End, Qt.Key.Key_Home):
        qtbot.keyClick(w, key)
        assert w.panel.slider.value() != home
        # the ROI and its result stay with their slice; the view says where it is
        assert w.session.selection.slice_key == case.slice_key
        assert w.session.current_result() is not None and not w.panel.stale_label.isVisible()
        assert w.view.roi_rect() is None and f"slice {home + 1}" in w.view.roi_note.text()
    assert len(w.session.work.undo) == undo_steps  # scrolling is no step
    qtbot.keyClick(w, Qt.Key.Key_G)  # back to the ROI
    assert w.panel.slider.value() == home and w.view.roi_rect() == r.selection.roi
    assert not w.view.roi_note.isVisible()
    # an ROI drawn on another slice is a new ROI there: one undoable step
    w.panel.slider.setValue(home + 2)
    qtbot.waitUntil(lambda: w.current_values() is not None)
    _place_roi(qtbot, w, r.selection.roi)
    assert w.session.selection.slice_key == w.session.stack().slices[home + 2].key
    assert w.session.undo_text() == "Draw ROI on another slice"
    qtbot.keyClick(w, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert w.session.selection.slice_key == case.slice_key
    assert w.session.selection.roi == r.selection.roi
    assert w.session.current_result() is not None  # its result came back with it


def test_the_kim_grade_only_from_the_injection_side(qtbot, window, case):
    from tfesi_desktop.core.measure import Measurement

    w = window
    _predicted(qtbot, w, case)
    s = w.session
    _, canal = s.canal(case.slice_key)
    x, y, wd, ht = case.roi
    # the same two widths, on the ROI's foramen and mirrored to the other one
    here = [((x + 5.0, y + 10.0), (x + 9.0, y + 10.0)), ((x + 5.0, y + 20.0), (x + 12.0, y + 20.0))]
    there = [tuple((2 * canal.col + 1 - px, py) for px, py in pts) for pts in here]
    for pts, tag in zip(there, ("foramen", "root"), strict=True):
        m = Measurement(case.slice_key, pts)
        assert s.side_of_measurement(m) not in (None, case.side)
        s.add_measurement(m)
        s.tag_measurement(m, tag)
    assert "Kim grade not given" in w.panel.kim_label.text()
    assert "injection side" in w.panel.kim_label.text()
    s.clear_measurements()
    for pts, tag in zip(here, ("foramen", "root"), strict=True):
        m = Measurement(case.slice_key, pts)
        assert s.side_of_measurement(m) == case.side
        s.add_measurement(m)
        s.tag_measurement(m, tag)
    assert w.panel.kim_label.text().startswith("Kim grade 1")


@pytest.mark.parametrize("scale", [1.0, 1.5])
def test_a_saved_geometry_is_fitted_to_the_screen_at_any_scaling(qtbot, scale, monkeypatch):
    """Saved on a large screen at 100 %, reopened at 1920x1080 and 150 % (1280x693 logical):
    inside the screen, and the image still gets most of the window."""
    from PySide6.QtCore import QRect

    from tfesi_desktop.gui.settings import settings

    w = MainWindow(load_model=False)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    w.resize(1900, 1040)
    s = settings()
    s.setValue("geometry", w.saveGeometry())
    s.sync()
    w.close()
    w = on_screen(qtbot, monkeypatch, QRect(0, 0, int(1920 / scale), int((1080 - 40) / scale)),
                  load_model=False)
    # the image gets all but the panel's column (no empty sagittal pane, no histogram), and
    # its corner text fits inside it
    assert w.view.width() >= w.width() - w.right_column.width() - 20, (w.view.width(), w.width())
    w.view.set_corner_text("SYNTH^PATIENT\nID 1   born 19640301   F\n20260101  Cervical", "")
    corner = w.view.corner_left
    assert corner.x() + corner.width() <= w.view.graphics.width()


def test_every_refused_action_says_why_and_errors_go_after_success(qtbot, window, case):
    w = window
    _open_demo(qtbot, w)
    for key, mod, words in ((Qt.Key.Key_E, Qt.KeyboardModifier.ControlModifier, "Predict first"),
                            (Qt.Key.Key_P, Qt.KeyboardModifier.ControlModifier, "ROI"),
                            (Qt.Key.Key_Delete, Qt.KeyboardModifier.NoModifier, "no ROI"),
                            (Qt.Key.Key_G, Qt.KeyboardModifier.NoModifier, "ROI")):
        w.messages.clear()
        qtbot.keyClick(w, key, mod)
        assert words in w.messages.text(), (key, w.messages.text())
    qtbot.keyClick(w, Qt.Key.Key_E, Qt.KeyboardModifier.ControlModifier)
    assert w.messages.kind == "error"
    _predicted(qtbot, w, case)
    assert w.messages.kind != "error"  # the old error bar is gone after the success


def test_a_library_message_never_reaches_the_user(qtbot, window, tmp_path):
    w = window
    (tmp_path / "x.dcm").write_text("not an image")
    w.open_paths([str(tmp_path)])
    qtbot.waitUntil(lambda: w.last_error is not None, timeout=10000)
    assert "force=True" not in w.last_error and "InvalidDicomError" not in w.last_error
    assert "not a DICOM file" in w.last_error


def test_an_override_is_saved_with_the_study(qtbot, case):
    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    _predicted(qtbot, w, case)
    other = "right" if case.side == "left" else "left"
    w.session.set_side(other)
    assert w.panel.override_button.isVisible()
    w.panel.override_button.click()
    qtbot.waitUntil(lambda: w.session.current_result() is not None, timeout=10000)
    w.close()
    w2 = MainWindow()
    qtbot.addWidget(w2)
    w2.show()
    w2.open_paths([str(__import__("tfesi_desktop.core.paths").core.paths.demo_study())])
    qtbot.waitUntil(lambda: w2.session.current_result() is not None, timeout=30000)
    assert w2.session.selection.overrides == ("side",) and w2.session.selection.side == other
    assert "OVERRIDE" in w2.panel.result_label.text()
    w2.close()


def test_o_toggles_every_overlay_with_the_comparison(qtbot, window, case):
    w = window
    _predicted(qtbot, w, case)
    qtbot.keyClick(w, Qt.Key.Key_B)
    qtbot.waitUntil(lambda: w.session.comparison() is not None, timeout=10000)
    assert w.view.overlay.image is not None and w.view.overlay2.image is not None
    qtbot.keyClick(w, Qt.Key.Key_O)
    assert w.view.overlay.image is None and w.view.overlay2.image is None
    qtbot.keyClick(w, Qt.Key.Key_O)
    assert w.view.overlay.image is not None and w.view.overlay2.image is not None


def test_a_failed_save_is_shown(qtbot, window, case, monkeypatch):
    from tfesi_desktop.core.errors import TfesiError

    w = window
    _roi_on_demo(qtbot, w, case)

    def fail(study_uid, document):
        raise TfesiError("the disk is full")

    monkeypatch.setattr(w.session.store, "write", fail)
    w.session.set_level("C7")  # written in the window's writes thread (core/writes.py)
    qtbot.waitUntil(lambda: w.messages.kind == "error", timeout=5000)
    assert "could not be saved" in w.messages.text()
    assert "disk is full" in w.messages.text()


# --- the layout a radiology user recognises ---------------------------------------------------

def _in_view(w, widget) -> bool:
    """Shown, not scrolled away or cut off: all of it inside the window."""
    if not widget.isVisible() or widget.visibleRegion().isEmpty():
        return False
    r = widget.visibleRegion().boundingRect()
    top = widget.mapTo(w, r.topLeft())
    return (r.size() == widget.size() and top.y() >= 0 and top.x() >= 0
            and top.y() + r.height() <= w.height() and top.x() + r.width() <= w.width())


@pytest.mark.parametrize("size", [(1280, 800), (1920, 1080)])
def test_result_override_and_measurements_in_view_without_scrolling(qtbot, case, size,
                                                                     monkeypatch):
    from PySide6.QtCore import QRect

    w = on_screen(qtbot, monkeypatch, QRect(0, 0, size[0], size[1] - 40))  # minus a task bar
    _predicted(qtbot, w, case)
    x, y = case.roi[:2]
    for i in range(3):
        qtbot.keyClick(w, Qt.Key.Key_L)
        _drag(w, x + 3, y + 5 + 6 * i, x + 15, y + 5 + 6 * i,
              modifiers=Qt.KeyboardModifier.NoModifier)
    w.session.set_side("right" if case.side == "left" else "left")  # a gate: the override button
    p = w.panel
    wanted = (p.override_button, p.side_warning, p.result_label, p.measure_list,
              p.measure_buttons["foramen"], p.kim_label)
    # the column lays itself out again after the gate appears: on a loaded machine that takes
    # more than one event loop turn, so wait for it (bounded), then say which one is cut off
    try:
        qtbot.waitUntil(lambda: all(_in_view(w, x) for x in wanted), timeout=3000)
    except AssertionError:
        pass
    for widget in wanted:
        assert _in_view(w, widget), widget.objectName() or widget
    # the image gets most of the window, beside the sagittal of the demo study
    assert w.localizer.widget.isVisible()
    assert w.view.width() > w.localizer.widget.width()
    assert w.view.width() + w.localizer.widget.width() >= w.width() - w.right_column.width() - 20
    w.close()


def test_double_click_maximises_a_viewport_and_no_empty_sagittal_pane(qtbot, window, tmp_path):
    from PySide6.QtCore import QEvent
    from PySide6.QtGui import QMouseEvent

    from tests.offcentre import offcentre_patient
    from tfesi_desktop.core.synth.cohort import write_study

    w = window
    _open_demo(qtbot, w)
    assert w.localizer.widget.isVisible()
    gv = w.view.graphics
    vp = gv.viewport()
    p = QPointF(vp.width() / 2, vp.height() / 2)
    for kind in (QEvent.Type.MouseButtonPress, QEvent.Type.MouseButtonRelease,
                 QEvent.Type.MouseButtonDblClick, QEvent.Type.MouseButtonRelease):
        buttons = Qt.MouseButton.NoButton if kind == QEvent.Type.MouseButtonRelease else \
            Qt.MouseButton.LeftButton
        QApplication.sendEvent(vp, QMouseEvent(kind, p, vp.mapToGlobal(p),
                                               Qt.MouseButton.LeftButton, buttons,
                                               Qt.KeyboardModifier.NoModifier))
        QApplication.processEvents()
    assert not w.localizer.widget.isVisible() and w.view.isVisible()
    w.viewports.maximise(w.view)  # again: back to the layout
    assert w.localizer.widget.isVisible()
    w.actions_by_name["layout_axial"].trigger()
    assert not w.localizer.widget.isVisible()
    w.actions_by_name["layout_both"].trigger()
    # a study without a sagittal: no empty pane
    from pydicom import dcmread

    write_study(offcentre_patient(centre=(0.0, 0.0), rotation_deg=0.0), tmp_path / "ax")
    for f in (tmp_path / "ax").rglob("*"):
        if f.is_file() and "SAG" in str(dcmread(f, stop_before_pixels=True).get(
                "SeriesDescription", "")):
            f.unlink()
    w.open_paths([str(tmp_path / "ax")])
    qtbot.waitUntil(lambda: w.session.stack() is not None and w.localizer.stack is None,
                    timeout=30000)
    assert not w.localizer.widget.isVisible()


def test_cine_and_drag_to_scroll(qtbot, window):
    w = window
    _open_demo(qtbot, w)
    start = w.panel.slider.value()
    qtbot.keyClick(w, Qt.Key.Key_S)  # the left button scrolls through the slices
    _drag(w, 60, 60, 60, 90, modifiers=Qt.KeyboardModifier.NoModifier)
    assert w.panel.slider.value() > start
    qtbot.keyClick(w, Qt.Key.Key_Escape)
    here = w.panel.slider.value()
    qtbot.keyClick(w, Qt.Key.Key_C)
    qtbot.waitUntil(lambda: w.panel.slider.value() != here, timeout=3000)
    qtbot.keyClick(w, Qt.Key.Key_C)
    stopped = w.panel.slider.value()
    qtbot.wait(300)
    assert w.panel.slider.value() == stopped


def test_f1_shows_the_mouse_bindings(qtbot, window):
    w = window
    qtbot.keyClick(w, Qt.Key.Key_F1)
    (box,) = [b for b in w.findChildren(QMessageBox) if b.isVisible()]
    assert box.windowTitle() == "Keyboard shortcuts and mouse"
    text = box.text()
    for words in ("Right drag", "window (horizontal) and level", "Middle drag", "pan",
                  "Left drag", "the active tool", "Double click"):
        assert words in text


def test_a_second_window_on_the_study_is_read_only_and_says_so(qtbot, case):
    from tfesi_desktop.core.paths import demo_study

    w1 = MainWindow(load_model=False)
    qtbot.addWidget(w1)
    w1.show()
    w1.open_paths([str(demo_study())])
    qtbot.waitUntil(lambda: w1.session.stack() is not None)
    w2 = MainWindow(load_model=False)
    qtbot.addWidget(w2)
    w2.show()
    w2.open_paths([str(demo_study())])
    qtbot.waitUntil(lambda: w2.session.stack() is not None)
    assert not w1.session.read_only() and w2.session.read_only()
    assert "READ-ONLY" in w2.windowTitle() and "read-only" in w2.messages.text()
    w2.session.set_level("C7")
    assert w2.session.selection.level is None and "read-only here" in w2.messages.text()
    w1.session.set_level("C6")
    w1.close()
    w2.session.set_level("C7")  # the first is gone: its work is loaded first
    assert "has closed" in w2.messages.text() and w2.session.selection.level == "C6"
    assert "READ-ONLY" not in w2.windowTitle()
    w2.session.set_level("C7")
    assert w2.session.selection.level == "C7"
    w2.close()


def test_menu_actions_act_on_the_targets_never_on_the_window():
    """Every action of the table runs against a stand-in that has only the fields of
    actions.Targets: one that reached for the window (or anything else) would fail here."""
    from unittest.mock import MagicMock

    from tfesi_desktop.gui.actions import ACTIONS, SEP, Targets

    ran = 0
    for rows in ACTIONS.values():
        for row in rows:
            if row is SEP or len(row) < 3:
                continue
            t = MagicMock(spec=Targets)
            for name in Targets.__dataclass_fields__:
                setattr(t, name, MagicMock())
            row[1](t)  # AttributeError if it used something Targets does not have
            assert t.mock_calls or any(getattr(t, n).mock_calls
                                       for n in Targets.__dataclass_fields__), row[0]
            ran += 1
    assert ran >= 40


def test_a_hidden_histogram_computes_nothing_and_catches_up_when_shown(qtbot):
    """Hidden (the default), the axial's histogram sorts no pixels of a new slice (a GUI-thread
    cost on every slice shown); shown again, it shows the slice on the screen."""
    import numpy as np

    from tfesi_desktop.gui.viewer import SliceView

    v = SliceView(histogram=False)
    qtbot.addWidget(v)
    calls = []
    v.image.getHistogram = lambda *a, _f=v.image.getHistogram, **k: calls.append(1) or _f(*a, **k)
    v.set_image(np.full((64, 64), 10.0), (1.0, 1.0))
    v.set_image(np.arange(64 * 64, dtype=float).reshape(64, 64), (1.0, 1.0), levels=(10, 20))
    assert calls == []
    # its region still holds the levels (else it resets them to 0..1: a white sagittal)
    assert tuple(v.histogram.item.getLevels()) == (10, 20) and v.levels() == (15, 10)
    v.show_histogram(True)
    assert calls and v.histogram.isVisibleTo(v)
    x, _ = v.histogram.item.plot.getData()
    assert x.max() > 4000  # the slice shown, not the first one


def test_the_workers_that_can_wait_start_one_at_a_time_after_the_first_slice_is_painted(
        qtbot, window):
    """Opening a study, the window levels, the sagittal, the prefetched neighbours, the
    thumbnails and the canal searches wait until the first slice has been painted, then run
    one at a time (beside the opening they stalled the window over 50 ms): issue 26."""
    w = window
    started, painted, done = [], [], set()
    lane = w.later
    start = lane._start

    def record(worker):
        # (name, after the first slice's paint, every earlier one had finished)
        started.append((worker.fn.__name__, bool(painted), len(done) == len(started)))
        k = len(started)
        worker.signals.finished.connect(lambda: done.add(k),
                                        Qt.ConnectionType.DirectConnection)  # in its thread
        start(worker)

    class Paints(QObject):
        def eventFilter(self, obj, ev):
            if ev.type() == QEvent.Type.Paint and w.axial.shown is not None:
                painted.append(1)
            return False

    spy = Paints()
    w.view.graphics.viewport().installEventFilter(spy)
    lane._start = record
    _open_demo(qtbot, w)
    qtbot.waitUntil(lambda: w.localizer._shown is not None and not w.busy(), timeout=30000)
    names = [s[0] for s in started]
    # (the slices' decodes are cached across windows: an earlier test may have decoded them)
    assert {"window_of", "thumbnails", "find_canal"} <= set(names), names
    assert all(after_paint and alone for _, after_paint, alone in started), started
    assert names.index("find_canal") < names.index("thumbnails")  # what the physician needs


def test_the_later_lane_holds_then_runs_one_at_a_time_first_ones_first(qtbot):
    """The lane of gui/workers.py: held until released (or for HOLD_MS at most), one at a
    time, ``first`` before those queued, none while a prediction runs."""
    from tfesi_desktop.gui.workers import LaterLane, Worker

    ran, running = [], []
    lane = LaterLane(lambda wk: (running.append(wk), ran.append(wk.fn.__name__)))
    lane.hold()

    def a():
        pass

    def b():
        pass

    def c():
        pass

    for f, first in ((a, False), (b, False), (c, True)):
        lane.add(Worker(f), first)
    assert ran == []  # held
    lane.release()
    assert ran == ["c"]  # one at a time, the one asked first of all first
    running[-1].run()  # it finishes: the next one starts
    qtbot.waitUntil(lambda: ran == ["c", "a"])
    running[-1].run()
    qtbot.waitUntil(lambda: ran == ["c", "a", "b"])
    lane.hold()
    lane.add(Worker(a))
    running[-1].run()
    qtbot.wait(50)
    assert ran == ["c", "a", "b"]
    qtbot.waitUntil(lambda: ran[-1] == "a", timeout=LaterLane.HOLD_MS + 2000)  # held no longer
    prediction = Worker(c)
    lane.pause_for(prediction)  # none starts while a prediction runs
    lane.add(Worker(b))
    running[-1].run()
    qtbot.wait(50)
    assert ran[-1] == "a"
    prediction.run()
    qtbot.waitUntil(lambda: ran[-1] == "b")
