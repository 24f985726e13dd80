"""The slice viewer: a pyqtgraph image in row-major order with window/level, the ROI rectangle,
the Grad-CAM overlay inside the ROI, length measurements in mm, orientation letters on the four
edges and a corner text overlay that one key masks.

An axial slice is *displayed* in radiological orientation (patient's right on the screen's left,
anterior up) with the same flip/transpose as the model input
(``SliceGeometry.canonical_transform()``); other planes as stored. The public methods take and
return *stored* pixels (x = column, y = row): ROIs, overlays and measurement points are converted
at this boundary, so the session never sees display coordinates (docs/architecture.md).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from pyqtgraph.widgets import ColorMapMenu
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QHBoxLayout, QLabel, QWidget

from ..core.cordpath import upright_transform
from ..core.geometry import Dihedral, SliceGeometry

# The histogram's gradient menu (pyqtgraph) lists matplotlib's colour maps whenever matplotlib
# is installed (it is, with the 'train' extra), importing matplotlib.pyplot to find the ones it
# has no submenu for: 0.3-0.9 s before the window shows, for a menu entry ("Others") nobody
# uses. Without the lookup the menu still offers matplotlib's maps by category.
ColorMapMenu.find_mpl_leftovers = lambda: []

pg.setConfigOptions(imageAxisOrder="row-major", antialias=True)

MIN_DRAG = 2  # pixels: a shorter drag is a click, not an ROI (nothing is enlarged)


def point_to_display(d: Dihedral, stored_shape, x: float, y: float) -> tuple[float, float]:
    """A point in continuous stored-pixel coordinates (x = column, y = row, pixel (r, c)
    covering [c, c+1) x [r, r+1)) as displayed after ``d``."""
    rows, cols = stored_shape
    if d.transpose:
        x, y, rows, cols = y, x, cols, rows
    if d.flip_rows:
        y = rows - y
    if d.flip_cols:
        x = cols - x
    return x, y


def point_to_stored(d: Dihedral, stored_shape, x: float, y: float) -> tuple[float, float]:
    """Inverse of :func:`point_to_display`."""
    rows, cols = stored_shape
    if d.transpose:
        rows, cols = cols, rows
    if d.flip_cols:
        x = cols - x
    if d.flip_rows:
        y = rows - y
    if d.transpose:
        x, y = y, x
    return x, y


def display_transform(geometry: SliceGeometry | None) -> Dihedral:
    """Radiological orientation for an axial slice; for a sagittal or coronal one the head up
    and, across, anterior on the left (sagittal) or the patient's right on the left (coronal),
    whatever the storage (docs/architecture.md, invariant 1)."""
    if geometry is None:
        return Dihedral()
    if geometry.is_axial():
        return geometry.canonical_transform()
    return upright_transform(geometry)


def display_letters(geometry: SliceGeometry | None, d: Dihedral) -> dict[str, str] | None:
    if geometry is None:
        return None
    r, c = d.directions(geometry.row_cos, geometry.col_cos)
    return SliceGeometry(geometry.position, tuple(r), tuple(c), geometry.spacing,
                         geometry.shape).edge_letters()


def _stored_centre_to_display(view, row: float, col: float) -> tuple[float, float]:
    """A stored pixel-centre position (row, col; centres at integers) in display coordinates."""
    return point_to_display(view._d, view._stored_shape, col + 0.5, row + 0.5)


def _mouse_only_when_enabled(item) -> None:
    """pyqtgraph hands a drag to the item that accepted it while the mouse *hovered* (before
    any button), even a disabled one: a length started inside the ROI then moved the ROI.
    A disabled ROI (or handle) now accepts no hover, hence no drag."""
    hover = item.hoverEvent

    def guarded(ev):
        if item.isEnabled():
            hover(ev)
        elif hasattr(item, "setMouseHover"):
            item.setMouseHover(False)

    item.hoverEvent = guarded


class SliceViewBox(pg.ViewBox):
    """Mouse handling as in Weasis and OHIF: the left button does the active tool (pan, draw
    the ROI, a length, an angle, or scroll through the slices), the right button changes the
    window (horizontal) and level (vertical), the middle button pans; the wheel scrolls slices
    (Ctrl+wheel zooms); Shift+left drag draws the ROI whatever the tool; a double click
    maximises the viewport."""

    wheel_slices = Signal(int)
    double_clicked = Signal()
    window_drag = Signal(float, float)  # dx, dy in screen pixels
    window_drag_started = Signal()
    rect_drawn = Signal(float, float, float, float)  # x0, y0, x1, y1 in image coordinates
    line_drawn = Signal(float, float, float, float)
    clicked = Signal(float, float)  # x, y in image coordinates (left button, no drag)

    def __init__(self):
        super().__init__(invertY=True, enableMenu=False)
        self.tool = "pan"  # pan | roi | length | angle | scroll
        self._rubber = None
        self._scrolled = 0  # slices stepped by the drag under way (scroll tool)

    def wheelEvent(self, ev, axis=None):
        if ev.modifiers() & Qt.KeyboardModifier.ControlModifier:
            super().wheelEvent(ev, axis)
            return
        delta = ev.delta() if hasattr(ev, "delta") else ev.angleDelta().y()
        self.wheel_slices.emit(-1 if delta > 0 else 1)
        ev.accept()

    def mouseClickEvent(self, ev):
        if ev.button() == Qt.MouseButton.LeftButton and ev.double():
            ev.accept()
            self.double_clicked.emit()
            return
        if ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            p = self.mapSceneToView(ev.scenePos())
            self.clicked.emit(p.x(), p.y())
            return
        super().mouseClickEvent(ev)

    def mouseDragEvent(self, ev, axis=None):
        if ev.button() == Qt.MouseButton.RightButton:
            ev.accept()
            if ev.isStart():
                self.window_drag_started.emit()
            d = ev.screenPos() - ev.buttonDownScreenPos()
            self.window_drag.emit(d.x(), d.y())
            return
        if ev.button() == Qt.MouseButton.MiddleButton:
            super().mouseDragEvent(ev, axis)  # pan
            return
        if ev.button() == Qt.MouseButton.LeftButton and self.tool == "scroll" and not (
                ev.modifiers() & Qt.KeyboardModifier.ShiftModifier):
            ev.accept()  # drag to scroll: one slice per 8 screen pixels
            if ev.isStart():
                self._scrolled = 0
            n = int((ev.screenPos() - ev.buttonDownScreenPos()).y() // 8)
            if n != self._scrolled:
                self.wheel_slices.emit(n - self._scrolled)
                self._scrolled = n
            return
        drawing = ev.button() == Qt.MouseButton.LeftButton and (
            self.tool in ("roi", "length") or ev.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        if not drawing:
            super().mouseDragEvent(ev, axis)
            return
        ev.accept()
        p0 = self.mapSceneToView(ev.buttonDownScenePos())
        p1 = self.mapSceneToView(ev.scenePos())
        kind = "length" if self.tool == "length" else "roi"
        if self._rubber is None:
            pen = pg.mkPen((255, 220, 0), width=1, style=Qt.PenStyle.DashLine)
            self._rubber = (pg.PlotCurveItem(pen=pen) if kind == "length"
                            else pg.QtWidgets.QGraphicsRectItem())
            if kind == "roi":
                self._rubber.setPen(pen)
            self.addItem(self._rubber, ignoreBounds=True)
        if kind == "length":
            self._rubber.setData([p0.x(), p1.x()], [p0.y(), p1.y()])
        else:
            self._rubber.setRect(QRectF(p0, p1).normalized())
        if ev.isFinish():
            self.removeItem(self._rubber)
            self._rubber = None
            signal = self.line_drawn if kind == "length" else self.rect_drawn
            signal.emit(p0.x(), p0.y(), p1.x(), p1.y())


class SliceView(QWidget):
    """The image with its overlays, and a histogram/levels control beside it."""

    slice_step = Signal(int)
    roi_changed = Signal()  # while moving
    roi_change_finished = Signal()  # a drag (draw, move, resize) ended: one edit
    roi_refused = Signal(str)  # a drag too short to be an ROI
    measurement_drawn = Signal(object)  # ((x0, y0), (x1, y1)) stored pixel coordinates
    measurement_moved = Signal(int, object)  # index in the shown list, new points
    levels_changed = Signal(float, float)  # centre, width
    point_clicked = Signal(float, float)  # (row, col) stored pixel centres (integers)

    def __init__(self, parent=None, *, histogram: bool = True):
        super().__init__(parent)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.graphics = pg.GraphicsLayoutWidget()
        self.double_clicked = None  # the viewbox's signal, set below
        self.graphics.setBackground("k")
        self.vb = SliceViewBox()
        self.graphics.addItem(self.vb)
        self.image = pg.ImageItem()
        self.vb.addItem(self.image)
        self.overlay = pg.ImageItem()
        self.overlay.setZValue(10)
        self.vb.addItem(self.overlay)
        self.overlay2 = pg.ImageItem()  # the other side's heat map, for comparison
        self.overlay2.setZValue(10)
        self.vb.addItem(self.overlay2)
        self.histogram = pg.HistogramLUTWidget(image=self.image)
        self.histogram.setMinimumWidth(110)
        self.histogram.item.sigLevelsChanged.connect(self._on_levels)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.graphics, 1)
        lay.addWidget(self.histogram)
        self._histogram_live = True
        self.show_histogram(histogram)
        # the cross-reference line (another plane cutting this one) and level marks
        self.ref_line = pg.PlotCurveItem(pen=pg.mkPen((0, 230, 120), width=2))
        self.ref_line.setZValue(12)
        self.vb.addItem(self.ref_line, ignoreBounds=True)
        self.marks = pg.ScatterPlotItem(size=9, pen=pg.mkPen((255, 140, 0), width=2),
                                        brush=pg.mkBrush(255, 140, 0, 90))
        self.marks.setZValue(13)
        self.vb.addItem(self.marks, ignoreBounds=True)
        self._mark_labels: list[pg.TextItem] = []
        self._marks_shown = None  # what set_marks drew: (marks, transform, stored shape)
        self.extra_rects: list = []  # other ROIs shown for comparison (not editable)
        self._angle_pts: list[tuple[float, float]] = []
        self._angle_rubber = pg.PlotCurveItem(pen=pg.mkPen((255, 220, 0), width=1,
                                                           style=Qt.PenStyle.DashLine))
        self.vb.addItem(self._angle_rubber, ignoreBounds=True)
        self.selected_measurement: int | None = None

        self.roi: pg.RectROI | None = None
        self.lengths: list[tuple[pg.LineSegmentROI, pg.TextItem]] = []
        self._shape = (1, 1)  # displayed (rows, columns)
        self._stored_shape = (1, 1)
        self._d = Dihedral()
        self._spacing = (1.0, 1.0)  # displayed (between rows, between columns)
        self._drag_levels = (0.0, 1.0)
        self.letters = {k: self._make_label(k) for k in ("top", "bottom", "left", "right")}
        self.corner_left = self._make_label("corner_left", small=True)
        self.corner_right = self._make_label("corner_right", small=True)
        self.level_text = self._make_label("level", small=False)
        self.level_text.setStyleSheet("color: #ffaa3c;")
        self.wl_text = self._make_label("wl", small=True)
        self.banner = self._make_label("banner", small=True)
        self.banner.setStyleSheet("color: #ffb000; background: rgba(0,0,0,140); "
                                  "padding: 2px; font-weight: bold;")
        self.banner.setWordWrap(True)
        self.banner.setAlignment(Qt.AlignmentFlag.AlignCenter)
        # where the ROI is when another slice is shown (the ROI stays on its slice)
        self.roi_note = self._make_label("roi_note", small=True)
        self.roi_note.setStyleSheet("color: #ffdc00; background: rgba(0,0,0,150); "
                                    "padding: 2px;")
        self.mask_patient = False
        self._patient_text = ""
        self._series_text = ""

        self.vb.wheel_slices.connect(self.slice_step)
        self.vb.window_drag_started.connect(self._start_window_drag)
        self.vb.window_drag.connect(self._window_drag)
        self.vb.rect_drawn.connect(self._rect_drawn)
        self.vb.line_drawn.connect(self._line_drawn)
        self.vb.clicked.connect(self._clicked)
        self.double_clicked = self.vb.double_clicked

    # --- overlays on the widget (letters and text) -------------------------------------------

    def _make_label(self, name, small=False):
        lab = QLabel(self.graphics)
        lab.setObjectName(f"label_{name}")
        lab.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        f = QFont()
        f.setPointSize(9 if small else 14)
        f.setBold(not small)
        lab.setFont(f)
        lab.setStyleSheet("color: #ffe14d;" if not small else "color: #e6e6e6;")
        return lab

    def resizeEvent(self, ev):
        super().resizeEvent(ev)
        self._place_labels()

    def _place_labels(self):
        w, h = self.graphics.width(), self.graphics.height()
        for key, lab in self.letters.items():
            lab.adjustSize()
            lw, lh = lab.width(), lab.height()
            x = {"left": 6, "right": w - lw - 6}.get(key, (w - lw) // 2)
            y = {"top": 4, "bottom": h - lh - 4}.get(key, (h - lh) // 2)
            lab.move(x, y)
        self.corner_left.adjustSize()
        self.corner_left.move(8, 30)
        self.level_text.adjustSize()
        self.level_text.move(w - self.level_text.width() - 8, 30)
        self.wl_text.adjustSize()
        self.wl_text.move(w - self.wl_text.width() - 8, h - self.wl_text.height() - 8)
        self.corner_right.adjustSize()
        self.corner_right.move(8, h - self.corner_right.height() - 60)
        self.roi_note.setMaximumWidth(max(100, w - 40))
        self.roi_note.setWordWrap(True)
        self.roi_note.adjustSize()
        self.roi_note.move((w - self.roi_note.width()) // 2,
                           self.corner_left.y() + self.corner_left.height() + 8)
        self.banner.setMaximumWidth(max(100, w - 40))
        self.banner.adjustSize()
        self.banner.move((w - self.banner.width()) // 2, h - self.banner.height() - 28)

    def set_letters(self, letters: dict[str, str] | None):
        for k, lab in self.letters.items():
            lab.setText((letters or {}).get(k, ""))
        self._place_labels()

    def set_corner_text(self, patient: str, series: str):
        self._patient_text, self._series_text = patient, series
        self._refresh_corner()

    def set_mask_patient(self, masked: bool):
        self.mask_patient = masked
        self._refresh_corner()

    def _refresh_corner(self):
        self.corner_left.setText("[patient details hidden]" if self.mask_patient
                                 else self._patient_text)
        self.corner_right.setText(self._series_text)
        self._place_labels()

    def set_level_text(self, text: str):
        self.level_text.setText(text)
        self._place_labels()

    def _show_wl(self):
        c, w = self.levels()
        self.wl_text.setText(f"W {w:.0f}  L {c:.0f}")
        self._place_labels()

    def set_roi_note(self, text: str):
        self.roi_note.setText(text)
        self.roi_note.setVisible(bool(text))
        self._place_labels()

    def set_banner(self, text: str):
        self.banner.setText(text)
        self.banner.setVisible(bool(text))
        self._place_labels()

    # --- image and levels --------------------------------------------------------------------

    def show_histogram(self, visible: bool):
        """Show or hide the histogram/levels control. Hidden, it computes no histogram: every
        new slice would otherwise cost the GUI thread a sort of its pixels (10-20 ms for a
        512 x 512 slice; docs/architecture.md, invariant 3); shown again, it catches up."""
        self.histogram.setVisible(visible)
        if visible == self._histogram_live:
            return
        self._histogram_live = visible
        item = self.histogram.item
        if visible:
            self.image.sigImageChanged.connect(item.imageChanged)
            item.imageChanged()
        else:
            self.image.sigImageChanged.disconnect(item.imageChanged)

    def set_image(self, values: np.ndarray, spacing: tuple[float, float], *,
                  levels: tuple[float, float] | None = None, reset_view: bool = False,
                  transform: Dihedral | None = None):
        """Show (rows, cols) modality values as stored, displayed through ``transform`` (the
        radiological flip/transpose); levels as (low, high) stay fixed while scrolling."""
        d = transform or Dihedral()
        shown = np.ascontiguousarray(d.apply(values))
        new_shape = shown.shape != self._shape or d != self._d
        self._d, self._stored_shape = d, values.shape
        self._shape = shown.shape
        self._spacing = (spacing[1], spacing[0]) if d.transpose else tuple(spacing)
        if levels is None and self.image.image is not None:
            levels = tuple(float(v) for v in self.image.getLevels())  # fixed while scrolling
        if levels is None:
            levels = (float(values.min()), float(values.max()))
        self.image.setImage(shown, autoLevels=False, levels=levels)
        if not self._histogram_live:  # its region still holds the levels (no histogram made)
            self.histogram.item.setLevels(*levels)
        self.vb.setAspectLocked(True, ratio=self._spacing[1] / self._spacing[0])
        if self.roi is not None:
            self.roi.maxBounds = QRectF(0, 0, shown.shape[1], shown.shape[0])
        if new_shape or reset_view:
            self.vb.autoRange(padding=0.02)

    def to_display(self, rect):
        return self._d.rect_to_canonical(rect, self._stored_shape)

    def to_stored(self, rect):
        return self._d.rect_from_canonical(rect, self._shape)

    def set_levels(self, centre: float, width: float):
        self.image.setLevels((centre - width / 2, centre + width / 2))
        self.histogram.item.setLevels(centre - width / 2, centre + width / 2)
        self._show_wl()
        self.levels_changed.emit(centre, width)

    def levels(self) -> tuple[float, float]:
        lo, hi = self.image.getLevels()
        return (lo + hi) / 2, hi - lo

    def _on_levels(self, *_):
        self._show_wl()
        c, w = self.levels()
        self.levels_changed.emit(c, w)

    def _start_window_drag(self):
        self._drag_levels = self.levels()

    def _window_drag(self, dx, dy):
        c, w = self._drag_levels
        scale = max(w, 1.0) / 300.0
        self.set_levels(c - dy * scale, max(1e-3, w + dx * scale))

    # --- ROI ---------------------------------------------------------------------------------

    def set_tool(self, tool: str):
        """pan | roi | length. While drawing, the ROI ignores the mouse, so a drag that starts
        inside it draws instead of moving it."""
        self.vb.tool = tool
        self._angle_pts = []
        self._angle_rubber.setData([], [])
        cursor = {"pan": Qt.CursorShape.ArrowCursor, "scroll": Qt.CursorShape.SizeVerCursor
                  }.get(tool, Qt.CursorShape.CrossCursor)
        self.graphics.setCursor(cursor)
        self._roi_accepts_mouse(tool == "pan")
        # forget what the ROI accepted while hovered with the earlier tool
        # (_mouse_only_when_enabled); the next hover asks again
        scene = self.graphics.scene()
        if scene is not None:
            scene.lastHoverEvent = None

    def _roi_accepts_mouse(self, on: bool):
        # pyqtgraph's scene skips disabled items when it hands out drags (handles are children)
        items = ([self.roi] if self.roi is not None else []) + [
            ln for ln, _ in self.lengths if isinstance(ln, pg.LineSegmentROI)]
        for it in items:
            it.setEnabled(on)

    def _rect_drawn(self, x0, y0, x1, y1):
        rows, cols = self._shape
        xa, xb = sorted((max(0, min(cols, x0)), max(0, min(cols, x1))))
        ya, yb = sorted((max(0, min(rows, y0)), max(0, min(rows, y1))))
        w, h = round(xb - xa), round(yb - ya)
        self.set_tool("pan")
        if w < MIN_DRAG or h < MIN_DRAG:
            self.roi_refused.emit("That drag was too short to draw an ROI; drag a rectangle "
                                  "around the foramen.")
            return
        # as drawn: a small ROI is kept (and refused for prediction), never enlarged
        self.set_roi(self.to_stored((int(round(xa)), int(round(ya)), w, h)))
        self.roi_change_finished.emit()

    def set_roi(self, rect):
        """Place (or move) the ROI: (x, y, w, h) in stored pixels; None removes it."""
        if rect is None:
            self.clear_roi()
            return
        x, y, w, h = self.to_display(tuple(rect))
        if self.roi is None:
            rows, cols = self._shape
            self.roi = pg.RectROI([x, y], [w, h], pen=pg.mkPen((255, 220, 0), width=2),
                                  hoverPen=pg.mkPen((255, 255, 120), width=2),
                                  maxBounds=QRectF(0, 0, cols, rows), snapSize=1,
                                  translateSnap=True, scaleSnap=True, removable=False)
            for corner, anchor in (([0, 0], [1, 1]), ([1, 0], [0, 1]), ([0, 1], [1, 0])):
                self.roi.addScaleHandle(corner, anchor)
            self.roi.setZValue(15)
            for item in (self.roi, *self.roi.getHandles()):
                _mouse_only_when_enabled(item)
            self.vb.addItem(self.roi)
            self.roi.sigRegionChanged.connect(self.roi_changed)
            self.roi.sigRegionChangeFinished.connect(self.roi_change_finished)
            self._roi_accepts_mouse(self.vb.tool == "pan")
        else:
            self.roi.setPos([x, y], update=False, finish=False)
            self.roi.setSize([w, h], update=True, finish=False)

    def roi_rect(self) -> tuple[int, int, int, int] | None:
        """The ROI in stored pixels (x, y, w, h), or None."""
        if self.roi is None:
            return None
        p, s = self.roi.pos(), self.roi.size()
        shown = (int(round(p.x())), int(round(p.y())), int(round(s.x())), int(round(s.y())))
        return tuple(int(v) for v in self.to_stored(shown))

    def clear_roi(self):
        if self.roi is not None:
            self.vb.removeItem(self.roi)
            self.roi = None
        self.clear_overlay()

    # --- Grad-CAM overlay --------------------------------------------------------------------

    def set_overlay(self, rgb: np.ndarray, rect, opacity: float, which: int = 1):
        """A (h, w, 3) picture over the ROI ``rect``, both in stored pixels (``which`` 2: the
        other side's, for comparison)."""
        item = self.overlay if which == 1 else self.overlay2
        x, y, w, h = self.to_display(rect)
        rgb = np.ascontiguousarray(self._d.apply(rgb))
        rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
        item.setImage(rgba, autoLevels=False, levels=(0, 255))
        item.setRect(QRectF(x, y, w, h))
        item.setOpacity(opacity)

    def clear_overlay(self, which: int = 1):
        (self.overlay if which == 1 else self.overlay2).clear()

    # --- cross-reference line, level marks, comparison ROIs ----------------------------------

    def set_reference_line(self, ends):
        """Draw the cross-reference line between two (row, col) stored pixel-centre positions;
        None hides it."""
        if ends is None:
            self.ref_line.setData([], [])
            return
        (xa, ya), (xb, yb) = (_stored_centre_to_display(self, r, c) for r, c in ends)
        self.ref_line.setData([xa, xb], [ya, yb])

    def reference_line(self):
        """The line's display end points ((x0, y0), (x1, y1)), or None."""
        x, y = self.ref_line.getData()
        if x is None or len(x) < 2:
            return None
        return (float(x[0]), float(y[0])), (float(x[1]), float(y[1]))

    def set_marks(self, marks):
        """Level marks: [(label, (row, col) stored pixel centre)], drawn as dots with labels.
        Called on every scroll: the marks already drawn are not drawn again (a new text item per
        label costs milliseconds of the GUI thread)."""
        key = (tuple(marks), self._d, self._stored_shape)
        if key == self._marks_shown:
            return
        self._marks_shown = key
        for t in self._mark_labels:
            self.vb.removeItem(t)
        self._mark_labels = []
        pts = [_stored_centre_to_display(self, r, c) for _, (r, c) in marks]
        self.marks.setData([p[0] for p in pts], [p[1] for p in pts])
        for (label, _), (x, y) in zip(marks, pts, strict=True):
            t = pg.TextItem(label, color=(255, 170, 60), anchor=(1.1, 0.5))
            t.setZValue(20)
            t.setPos(x, y)
            self.vb.addItem(t, ignoreBounds=True)
            self._mark_labels.append(t)

    def set_extra_rects(self, rects):
        """Other ROIs (x, y, w, h stored pixels) drawn dashed, for comparison only."""
        for r in self.extra_rects:
            self.vb.removeItem(r)
        self.extra_rects = []
        for rect in rects:
            x, y, w, h = self.to_display(tuple(rect))
            item = pg.QtWidgets.QGraphicsRectItem(x, y, w, h)
            item.setPen(pg.mkPen((120, 200, 255), width=2, style=Qt.PenStyle.DashLine))
            item.setZValue(14)
            self.vb.addItem(item, ignoreBounds=True)
            self.extra_rects.append(item)

    def _clicked(self, x, y):
        rows, cols = self._shape
        if self.vb.tool == "angle":  # three clicks: one arm's end, the vertex, the other's
            self._angle_pts.append((x, y))
            xs, ys = zip(*self._angle_pts, strict=True)
            self._angle_rubber.setData(list(xs), list(ys))
            if len(self._angle_pts) == 3:
                pts = tuple(point_to_stored(self._d, self._stored_shape, *p)
                            for p in self._angle_pts)
                self.set_tool("pan")
                self.measurement_drawn.emit(pts)
            return
        if 0 <= x < cols and 0 <= y < rows and self.vb.tool == "pan":
            sx, sy = point_to_stored(self._d, self._stored_shape, x, y)
            self.point_clicked.emit(sy - 0.5, sx - 0.5)

    # --- length measurements -----------------------------------------------------------------

    def _line_drawn(self, x0, y0, x1, y1):
        self.set_tool("pan")
        a = point_to_stored(self._d, self._stored_shape, x0, y0)
        b = point_to_stored(self._d, self._stored_shape, x1, y1)
        self.measurement_drawn.emit((a, b))

    def set_measurements(self, lines, selected: int | None = None):
        """Show these measurements: lengths ((x0, y0), (x1, y1)) (movable) and angles (three
        points, the vertex in the middle), in stored pixel coordinates; ``selected`` drawn
        thicker."""
        from ..core.measure import angle_deg

        self.clear_length()
        self.selected_measurement = selected
        for i, pts in enumerate(lines):
            shown = [point_to_display(self._d, self._stored_shape, *p) for p in pts]
            width = 4 if i == selected else 2
            if len(pts) == 3:
                curve = pg.PlotCurveItem([p[0] for p in shown], [p[1] for p in shown],
                                         pen=pg.mkPen((255, 140, 220), width=width))
                curve.setZValue(16)
                label = pg.TextItem(f"{angle_deg(shown, self._spacing):.1f}\u00b0",
                                    color=(255, 220, 0), anchor=(0, 1))
                label.setZValue(20)
                label.setPos(QPointF(*shown[1]))
                self.vb.addItem(curve, ignoreBounds=True)
                self.vb.addItem(label, ignoreBounds=True)
                self.lengths.append((curve, label))
                continue
            ln = pg.LineSegmentROI([list(p) for p in shown], pen=pg.mkPen((80, 220, 255),
                                                                           width=width))
            ln.setZValue(16)
            for item in (ln, *ln.getHandles()):
                _mouse_only_when_enabled(item)
            label = pg.TextItem(color=(255, 220, 0), anchor=(0, 1))
            label.setZValue(20)
            self.vb.addItem(ln)
            self.vb.addItem(label, ignoreBounds=True)
            self.lengths.append((ln, label))
            ln.sigRegionChanged.connect(lambda _=None, k=i: self._update_length(k))
            ln.sigRegionChangeFinished.connect(lambda _=None, k=i: self._length_moved(k))
            self._update_length(i)
        self._roi_accepts_mouse(self.vb.tool == "pan")

    def _ends(self, i):
        ln = self.lengths[i][0]
        return [ln.mapToParent(h.pos()) for h in ln.getHandles()]

    def length_mm(self, i: int = -1) -> float | None:
        if not self.lengths:
            return None
        a, b = self._ends(i)
        dy, dx = (b.y() - a.y()) * self._spacing[0], (b.x() - a.x()) * self._spacing[1]
        return float(np.hypot(dx, dy))

    def _update_length(self, i):
        if i >= len(self.lengths) or not isinstance(self.lengths[i][0], pg.LineSegmentROI):
            return
        b = self._ends(i)[1]
        label = self.lengths[i][1]
        label.setText(f"{self.length_mm(i):.1f} mm")
        label.setPos(QPointF(b.x(), b.y()))

    def _length_moved(self, i):
        if i < len(self.lengths) and isinstance(self.lengths[i][0], pg.LineSegmentROI):
            pts = tuple(point_to_stored(self._d, self._stored_shape, p.x(), p.y())
                        for p in self._ends(i))
            self.measurement_moved.emit(i, pts)

    def clear_length(self):
        for ln, label in self.lengths:
            self.vb.removeItem(ln)
            self.vb.removeItem(label)
        self.lengths = []


def colour_bar_pixmap(height: int = 120, width: int = 14):
    from PySide6.QtGui import QImage, QPixmap

    from ..core.render import colour_bar

    bar = np.ascontiguousarray(colour_bar(height, width))
    img = QImage(bar.data, width, height, 3 * width, QImage.Format.Format_RGB888)
    return QPixmap.fromImage(img.copy())


def grey_pixmap(image: np.ndarray, size: int | None = None):
    """A QPixmap from a (rows, cols) uint8 or 0..255 float image."""
    from PySide6.QtGui import QImage, QPixmap

    a = np.ascontiguousarray(np.clip(image, 0, 255).astype(np.uint8))
    img = QImage(a.data, a.shape[1], a.shape[0], a.shape[1], QImage.Format.Format_Grayscale8)
    pm = QPixmap.fromImage(img.copy())
    if size:
        pm = pm.scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio,
                       Qt.TransformationMode.SmoothTransformation)
    return pm

