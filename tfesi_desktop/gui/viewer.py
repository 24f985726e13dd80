"""The slice viewer: a pyqtgraph image in row-major order with window/level, the ROI rectangle,
the Grad-CAM overlay inside the ROI, a length tool in mm, orientation letters on the four edges
and a corner text overlay that one key masks.

Image coordinates are stored pixels: x = column, y = row, row 0 at the top.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QHBoxLayout, QLabel, QWidget

pg.setConfigOptions(imageAxisOrder="row-major", antialias=True)

MIN_ROI = 16


class SliceViewBox(pg.ViewBox):
    """Mouse handling: wheel scrolls slices (Ctrl+wheel zooms), left-drag pans (or draws the
    ROI in draw mode / with Shift), right-drag changes window (horizontal) and level
    (vertical)."""

    wheel_slices = Signal(int)
    window_drag = Signal(float, float)  # dx, dy in screen pixels
    window_drag_started = Signal()
    rect_drawn = Signal(float, float, float, float)  # x0, y0, x1, y1 in image coordinates
    line_drawn = Signal(float, float, float, float)

    def __init__(self):
        super().__init__(invertY=True, enableMenu=False)
        self.tool = "pan"  # pan | roi | length
        self._rubber = None

    def wheelEvent(self, ev, axis=None):
        if ev.modifiers() & Qt.KeyboardModifier.ControlModifier:
            super().wheelEvent(ev, axis)
            return
        delta = ev.delta() if hasattr(ev, "delta") else ev.angleDelta().y()
        self.wheel_slices.emit(-1 if delta > 0 else 1)
        ev.accept()

    def mouseDragEvent(self, ev, axis=None):
        if ev.button() == Qt.MouseButton.RightButton:
            ev.accept()
            if ev.isStart():
                self.window_drag_started.emit()
            d = ev.screenPos() - ev.buttonDownScreenPos()
            self.window_drag.emit(d.x(), d.y())
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
    roi_change_finished = Signal()
    levels_changed = Signal(float, float)  # centre, width

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground("k")
        self.vb = SliceViewBox()
        self.graphics.addItem(self.vb)
        self.image = pg.ImageItem()
        self.vb.addItem(self.image)
        self.overlay = pg.ImageItem()
        self.overlay.setZValue(10)
        self.vb.addItem(self.overlay)
        self.histogram = pg.HistogramLUTWidget(image=self.image)
        self.histogram.setMinimumWidth(110)
        self.histogram.item.sigLevelsChanged.connect(self._on_levels)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.graphics, 1)
        lay.addWidget(self.histogram)

        self.roi: pg.RectROI | None = None
        self.length: pg.LineSegmentROI | None = None
        self.length_label = pg.TextItem(color=(255, 220, 0), anchor=(0, 1))
        self.length_label.setZValue(20)
        self._shape = (1, 1)
        self._spacing = (1.0, 1.0)
        self._drag_levels = (0.0, 1.0)
        self.letters = {k: self._make_label(k) for k in ("top", "bottom", "left", "right")}
        self.corner_left = self._make_label("corner_left", small=True)
        self.corner_right = self._make_label("corner_right", small=True)
        self.banner = self._make_label("banner", small=True)
        self.banner.setStyleSheet("color: #ffb000; background: rgba(0,0,0,140); "
                                  "padding: 2px; font-weight: bold;")
        self.banner.setWordWrap(True)
        self.banner.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.mask_patient = False
        self._patient_text = ""
        self._series_text = ""

        self.vb.wheel_slices.connect(self.slice_step)
        self.vb.window_drag_started.connect(self._start_window_drag)
        self.vb.window_drag.connect(self._window_drag)
        self.vb.rect_drawn.connect(self._rect_drawn)
        self.vb.line_drawn.connect(self._line_drawn)

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
        self.corner_right.adjustSize()
        self.corner_right.move(8, h - self.corner_right.height() - 60)
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

    def set_banner(self, text: str):
        self.banner.setText(text)
        self.banner.setVisible(bool(text))
        self._place_labels()

    # --- image and levels --------------------------------------------------------------------

    def set_image(self, values: np.ndarray, spacing: tuple[float, float], *,
                  levels: tuple[float, float] | None = None, reset_view: bool = False):
        """Show (rows, cols) modality values; levels as (low, high) stay fixed while
        scrolling."""
        new_shape = values.shape != self._shape
        self._shape, self._spacing = values.shape, spacing
        if levels is None and self.image.image is not None:
            levels = tuple(float(v) for v in self.image.getLevels())  # fixed while scrolling
        if levels is None:
            levels = (float(values.min()), float(values.max()))
        self.image.setImage(values, autoLevels=False, levels=levels)
        self.vb.setAspectLocked(True, ratio=spacing[1] / spacing[0])
        if self.roi is not None:
            self.roi.maxBounds = QRectF(0, 0, values.shape[1], values.shape[0])
        if new_shape or reset_view:
            self.vb.autoRange(padding=0.02)

    def set_levels(self, centre: float, width: float):
        self.image.setLevels((centre - width / 2, centre + width / 2))
        self.histogram.item.setLevels(centre - width / 2, centre + width / 2)

    def levels(self) -> tuple[float, float]:
        lo, hi = self.image.getLevels()
        return (lo + hi) / 2, hi - lo

    def _on_levels(self, *_):
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
        self.vb.tool = tool
        cursor = Qt.CursorShape.CrossCursor if tool != "pan" else Qt.CursorShape.ArrowCursor
        self.graphics.setCursor(cursor)

    def _rect_drawn(self, x0, y0, x1, y1):
        rows, cols = self._shape
        xa, xb = sorted((max(0, min(cols, x0)), max(0, min(cols, x1))))
        ya, yb = sorted((max(0, min(rows, y0)), max(0, min(rows, y1))))
        w, h = max(MIN_ROI, round(xb - xa)), max(MIN_ROI, round(yb - ya))
        x, y = min(round(xa), cols - w), min(round(ya), rows - h)
        self.set_roi((max(0, x), max(0, y), w, h))
        self.set_tool("pan")
        self.roi_change_finished.emit()

    def set_roi(self, rect):
        """Place (or move) the ROI: (x, y, w, h) in stored pixels."""
        x, y, w, h = rect
        if self.roi is None:
            rows, cols = self._shape
            self.roi = pg.RectROI([x, y], [w, h], pen=pg.mkPen((255, 220, 0), width=2),
                                  hoverPen=pg.mkPen((255, 255, 120), width=2),
                                  maxBounds=QRectF(0, 0, cols, rows), snapSize=1,
                                  translateSnap=True, scaleSnap=True, removable=False)
            for corner, anchor in (([0, 0], [1, 1]), ([1, 0], [0, 1]), ([0, 1], [1, 0])):
                self.roi.addScaleHandle(corner, anchor)
            self.roi.setZValue(15)
            self.vb.addItem(self.roi)
            self.roi.sigRegionChanged.connect(self.roi_changed)
            self.roi.sigRegionChangeFinished.connect(self.roi_change_finished)
        else:
            self.roi.setPos([x, y], update=False, finish=False)
            self.roi.setSize([w, h], update=True, finish=False)

    def roi_rect(self) -> tuple[int, int, int, int] | None:
        if self.roi is None:
            return None
        p, s = self.roi.pos(), self.roi.size()
        return int(round(p.x())), int(round(p.y())), int(round(s.x())), int(round(s.y()))

    def clear_roi(self):
        if self.roi is not None:
            self.vb.removeItem(self.roi)
            self.roi = None
        self.clear_overlay()

    # --- Grad-CAM overlay --------------------------------------------------------------------

    def set_overlay(self, rgb: np.ndarray, rect, opacity: float):
        x, y, w, h = rect
        rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
        self.overlay.setImage(rgba, autoLevels=False, levels=(0, 255))
        self.overlay.setRect(QRectF(x, y, w, h))
        self.overlay.setOpacity(opacity)

    def clear_overlay(self):
        self.overlay.clear()

    # --- length tool -------------------------------------------------------------------------

    def _line_drawn(self, x0, y0, x1, y1):
        if self.length is not None:
            self.vb.removeItem(self.length)
        self.length = pg.LineSegmentROI([[x0, y0], [x1, y1]],
                                        pen=pg.mkPen((80, 220, 255), width=2))
        self.length.setZValue(16)
        self.vb.addItem(self.length)
        if self.length_label.scene() is None:
            self.vb.addItem(self.length_label, ignoreBounds=True)
        self.length.sigRegionChanged.connect(self._update_length)
        self._update_length()
        self.set_tool("pan")

    def length_mm(self) -> float | None:
        if self.length is None:
            return None
        a, b = (self.length.mapToParent(h.pos()) for h in self.length.getHandles())
        dy, dx = (b.y() - a.y()) * self._spacing[0], (b.x() - a.x()) * self._spacing[1]
        return float(np.hypot(dx, dy))

    def _update_length(self):
        mm = self.length_mm()
        b = self.length.mapToParent(self.length.getHandles()[1].pos())
        self.length_label.setText(f"{mm:.1f} mm")
        self.length_label.setPos(QPointF(b.x(), b.y()))

    def clear_length(self):
        if self.length is not None:
            self.vb.removeItem(self.length)
            self.length = None
            self.length_label.setText("")


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

