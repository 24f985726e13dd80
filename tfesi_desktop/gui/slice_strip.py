"""The strip of the slices around the chosen one: the probability on each (the ROI carried there
by geometry), the chosen slice outlined, the slice the result rests on filled, the threshold
as a line, and the sentence of :meth:`..core.neighbourhood.Neighbourhood.message` with a button
that goes to the slice where the foramen looks narrowest; the physician confirms by predicting
there. A view of the result only: the logic is in ``core/neighbourhood.py``."""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPalette, QPen
from PySide6.QtWidgets import QLabel, QPushButton, QSizePolicy, QVBoxLayout, QWidget

FAVOURABLE, POOR, GRID = QColor("#2e7d32"), QColor("#c62828"), QColor("#9e9e9e")


class _Bars(QWidget):
    """One bar per slice, height = probability (0..1), the threshold dashed."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.neighbourhood = None
        self.setMinimumHeight(84)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def paintEvent(self, _event):  # noqa: N802 - Qt's name
        nb = self.neighbourhood
        if nb is None:
            return
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        ink = self.palette().color(QPalette.ColorRole.WindowText)  # light or dark theme
        w, h = self.width(), self.height()
        label_h, top = self.fontMetrics().height() + 4, 4
        plot_h = h - label_h - top
        n = len(nb.slice_indices)
        slot = w / max(n, 1)
        for k, (index, prob) in enumerate(zip(nb.slice_indices, nb.probabilities,
                                              strict=True)):
            x0 = k * slot + slot * 0.2
            bar = QRectF(x0, top + plot_h * (1 - prob), slot * 0.6, plot_h * prob)
            colour = FAVOURABLE if prob >= nb.threshold else POOR
            if index == nb.based_on:
                p.fillRect(bar, colour)
            else:
                p.fillRect(bar, colour.lighter(170))
            if index == nb.chosen:
                p.setPen(QPen(ink, 2))
                p.drawRect(QRectF(x0 - 2, top, slot * 0.6 + 4, plot_h))
            p.setPen(ink)
            p.drawText(QRectF(k * slot, h - label_h, slot, label_h),
                       Qt.AlignmentFlag.AlignCenter,
                       f"{index + 1}{' *' if index == nb.chosen else ''}  {100 * prob:.0f}%")
        y = top + plot_h * (1 - nb.threshold)
        p.setPen(QPen(GRID, 1, Qt.PenStyle.DashLine))
        p.drawLine(0, int(y), w, int(y))
        p.end()


class SliceStrip(QWidget):
    """Shows a :class:`..core.neighbourhood.Neighbourhood`; ``go_to_slice(index)`` (0-based
    stack index) when the physician asks for the proposed slice."""

    go_to_slice = Signal(int)

    def __init__(self, parent=None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.title = QLabel("P(favourable) on the neighbouring slices (* chosen, filled: the "
                            "result's slice)")
        self.title.setWordWrap(True)
        self.bars = _Bars()
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: black; background: #ffd54f; padding: 4px;")
        self.go_button = QPushButton()
        self.go_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.go_button.clicked.connect(self._go)
        for wdg in (self.title, self.bars, self.message, self.go_button):
            lay.addWidget(wdg)
        self._proposed = None
        self.show_neighbourhood(None)

    def show_neighbourhood(self, nb) -> None:
        """Draw ``nb`` (None, or one slice only: hidden)."""
        self.bars.neighbourhood = nb
        self.setVisible(nb is not None and len(nb.slice_indices) > 1)
        text = nb.message() if nb is not None else None
        self.message.setText(text or "")
        self.message.setVisible(bool(text))
        self._proposed = nb.proposed if nb is not None else None
        self.go_button.setVisible(self._proposed is not None)
        if self._proposed is not None:
            self.go_button.setText(f"Go to slice {self._proposed + 1} (narrowest) and confirm")
        self.bars.update()

    def _go(self):
        if self._proposed is not None:
            self.go_to_slice.emit(self._proposed)
