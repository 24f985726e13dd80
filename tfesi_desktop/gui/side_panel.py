"""The panel beside the image: the patient > study > series browser, the slice slider, the
injection side and level with the anatomical side check and the safety gates, the result, and
the model input. Widgets only; :class:`~.mainwindow.MainWindow` fills them from the session and
connects their signals to session edits (docs/architecture.md)."""

from __future__ import annotations

from html import escape

from PySide6.QtCore import QEvent, QObject, QSize, Qt, Signal
from PySide6.QtGui import QDoubleValidator, QTextOption
from PySide6.QtWidgets import (
    QAbstractItemView,
    QAbstractScrollArea,
    QAbstractSlider,
    QAbstractSpinBox,
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QRadioButton,
    QScrollArea,
    QSlider,
    QTextBrowser,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..core.render import display_name
from ..core.selection import LEVELS
from .result_view import NO_RESULT, provenance_html, result_html
from .slice_strip import SliceStrip
from .viewer import colour_bar_pixmap, grey_pixmap

KEY = Qt.ItemDataRole.UserRole


RESULT_STYLE = "background: #fafafa; color: black; padding: 4px;"


def _wrapped(text: str = "", *, rich: bool = False, style: str | None = None,
             hidden: bool = False) -> QLabel:
    """A word-wrapped label, optionally rich text, styled, or hidden until there is something
    to say."""
    label = QLabel(text)
    label.setWordWrap(True)
    if rich:
        label.setTextFormat(Qt.TextFormat.RichText)
    if style:
        label.setStyleSheet(style)
    if hidden:
        label.hide()
    return label


class WheelGuard(QObject):
    """The mouse wheel over a slider, a list box or a spin box of the panel never changes its
    value unless the user has focused that control explicitly (with the keyboard: the panel's
    controls take no focus from a click); the wheel scrolls the panel instead."""

    def eventFilter(self, obj, ev):  # noqa: N802 - Qt's name
        if ev.type() == QEvent.Type.Wheel and not obj.hasFocus():
            area = obj.parentWidget()
            while area is not None and not isinstance(area, QAbstractScrollArea):
                area = area.parentWidget()
            if area is not None:
                bar = area.verticalScrollBar()
                bar.setValue(bar.value() - ev.angleDelta().y() // 120 * 3 * bar.singleStep())
            return True
        return False


def guard_wheel(widget: QWidget) -> WheelGuard:
    """Install a :class:`WheelGuard` on every value control inside ``widget``."""
    guard = WheelGuard(widget)
    for w in widget.findChildren(QWidget):
        if isinstance(w, QAbstractSlider | QComboBox | QAbstractSpinBox):
            w.installEventFilter(guard)
    return guard


class _HintedScroll(QScrollArea):
    """A scroll area whose preferred height is its maximum height (the top groups: as tall as
    they need) or its minimum (the rest: what the top leaves)."""

    def sizeHint(self):  # noqa: N802 - Qt's name
        h = self.maximumHeight() if self.maximumHeight() < 10 ** 6 else self.minimumHeight()
        return QSize(super().sizeHint().width(), h)


class RightColumn(QWidget):
    """The panel's column: the groups that must stay in view (the injection with its gates and
    override, the result, the measurements) on top, as tall as they need; the rest of the panel
    scrolls below them. On a screen too small even for the top groups, they scroll too (never
    squashed into slivers)."""

    def __init__(self, panel: SidePanel):
        super().__init__()
        self.setFixedWidth(SidePanel.WIDTH + 16)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        self.top = QWidget()
        top = QVBoxLayout(self.top)
        top.setContentsMargins(0, 0, 0, 0)
        top.setSpacing(2)
        for box in panel.fixed_groups:
            top.addWidget(box)
        self.top_scroll = self._scroll(self.top)
        self.rest = self._scroll(panel)
        lay.addWidget(self.top_scroll, 1)
        lay.addWidget(self.rest, 0)
        self.rest.setMinimumHeight(60)
        self.top.installEventFilter(self)

    @staticmethod
    def _scroll(widget):
        area = _HintedScroll()
        area.setWidget(widget)
        area.setWidgetResizable(True)
        area.setFrameShape(QFrame.Shape.NoFrame)
        area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        return area

    def eventFilter(self, obj, ev):  # noqa: N802 - Qt's name
        if ev.type() == QEvent.Type.LayoutRequest:
            self.fit()
        return False

    def resizeEvent(self, ev):  # noqa: N802
        super().resizeEvent(ev)
        self.fit()

    def fit(self):
        need = self.top.layout().totalHeightForWidth(SidePanel.WIDTH) if \
            self.top.layout().hasHeightForWidth() else self.top.sizeHint().height()
        # as tall as its groups need, never taller; shorter (scrolling) only on a small screen,
        # where the rest keeps a few lines
        top = min(need + 2, max(120, self.height() - 60))
        if (top, min(top, 120)) != (self.top_scroll.maximumHeight(),
                                    self.top_scroll.minimumHeight()):
            self.top_scroll.setMaximumHeight(top)
            self.top_scroll.setMinimumHeight(min(top, 120))
            self.top_scroll.updateGeometry()


class WrappingText(QTextBrowser):
    """Small read-only rich text that breaks long UIDs and digests anywhere (a QLabel breaks only
    at spaces, so they were cut off at the panel's edge), selectable and copyable as they are,
    as tall as its text. ``setText``/``text`` as on a QLabel (``text`` is the plain text)."""

    def __init__(self):
        super().__init__()
        self.setWordWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setOpenLinks(False)
        self.setStyleSheet("font-size: 8pt; background: transparent;")
        self.document().setDocumentMargin(0)
        self.document().documentLayout().documentSizeChanged.connect(
            lambda size: self.setFixedHeight(int(size.height()) + 2))
        self.setFixedHeight(2)

    def setText(self, html: str) -> None:  # noqa: N802 - QLabel's name
        self.setHtml(html)

    def text(self) -> str:
        return self.toPlainText()


def _date(d: str) -> str:
    return f"{d[:4]}-{d[4:6]}-{d[6:8]}" if d and len(d) == 8 and d.isdigit() else (d or "-")


class MessageArea(QWidget):
    """One line for what the user should know or do, replacing the previous message (no
    piles of dialogs). Errors in red, notes in amber; a button closes it."""

    def __init__(self, parent=None):
        super().__init__(parent)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(6, 2, 6, 2)
        self.label = QLabel("")
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QPushButton("\u00d7")
        close.setFixedWidth(28)
        close.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        close.clicked.connect(self.clear)
        lay.addWidget(self.label, 1)
        lay.addWidget(close)
        self.kind = None
        self.hide()

    def show_message(self, text: str, kind: str = "error"):
        self.kind = kind
        colours = {"error": "color: white; background: #b00020;",
                   "note": "color: black; background: #ffd54f;",
                   "info": "color: black; background: #cfe8ff;"}
        self.setStyleSheet(f"QLabel {{ {colours.get(kind, colours['note'])} padding: 4px; }}")
        self.label.setText(text)
        self.show()

    def text(self) -> str:
        return self.label.text() if self.isVisible() else ""

    def clear(self):
        self.kind = None
        self.label.setText("")
        self.hide()


class Browser(QTreeWidget):
    """Patients > studies > series. Series items carry their stack key."""

    series_chosen = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setHeaderHidden(True)
        self.setIconSize(self.iconSize() * 3)
        self.setMinimumHeight(150)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.itemClicked.connect(self._clicked)
        self.masked = False
        self._patients = []

    def fill(self, patients, masked: bool):
        self.masked = masked
        self._patients = patients
        self.blockSignals(True)
        self.clear()
        for i, p in enumerate(patients):
            if masked:
                text = f"Patient {i + 1}  [details hidden]"
            else:
                text = (f"{display_name(p.name)}\nID {p.patient_id or '-'}, born "
                        f"{_date(p.birth_date)}")
            pi = QTreeWidgetItem(self, [text])
            for j, st in enumerate(p.studies):
                stext = (f"Study {j + 1}" if masked else
                         f"{_date(st.study_date)}  {st.description or '(no description)'}")
                si = QTreeWidgetItem(pi, [stext])
                for stack in st.stacks:
                    g = stack.geometry
                    t = (f"{stack.description or '(no description)'}\n"
                         f"{stack.orientation_name()}, {len(stack.slices)} slices"
                         + (f", {g.shape[1]}x{g.shape[0]}" if g else ""))
                    item = QTreeWidgetItem(si, [t])
                    item.setData(0, KEY, stack.key)
            pi.setExpanded(True)
            for k in range(pi.childCount()):
                pi.child(k).setExpanded(True)
        self.blockSignals(False)

    def series_items(self) -> list[QTreeWidgetItem]:
        out = []

        def walk(item):
            for k in range(item.childCount()):
                c = item.child(k)
                if c.data(0, KEY):
                    out.append(c)
                walk(c)

        walk(self.invisibleRootItem())
        return out

    def item_of(self, key: str):
        return next((i for i in self.series_items() if i.data(0, KEY) == key), None)

    def show_current(self, key: str | None):
        item = self.item_of(key) if key else None
        self.blockSignals(True)
        if item is not None:
            self.setCurrentItem(item)
        self.blockSignals(False)

    def _clicked(self, item, _col=0):
        key = item.data(0, KEY)
        if key:
            self.series_chosen.emit(key)


class SidePanel(QWidget):
    side_chosen = Signal(str)
    level_chosen = Signal(object)  # str or None
    override_confirmed = Signal()
    measurement_selected = Signal(int)  # row in the list (-1: none)
    measurement_deleted = Signal(int)
    measurement_tagged = Signal(int, object)  # row, tag or None
    window_typed = Signal(float, float)  # centre, width

    WIDTH = 340

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setFixedWidth(self.WIDTH)  # labels wrap inside it; never cut off
        col = QVBoxLayout(self)
        col.setContentsMargins(6, 6, 6, 6)
        # the groups always in view (above the part that scrolls): the injection with the
        # gates and the override, the result, the measurements (mainwindow lays them out)
        self.fixed_groups: list[QGroupBox] = []

        g = QGroupBox("Patients, studies and series")
        lay = QVBoxLayout(g)
        self.browser = Browser()
        lay.addWidget(self.browser)
        self.skipped_button = QPushButton("No files skipped")
        self.skipped_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        lay.addWidget(self.skipped_button)
        col.addWidget(g)

        g = QGroupBox("Slice")
        lay = QVBoxLayout(g)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.slice_label = QLabel("no study open")
        lay.addWidget(self.slider)
        lay.addWidget(self.slice_label)
        wl = QHBoxLayout()
        self.window_centre = QLineEdit()
        self.window_width = QLineEdit()
        for label, edit in (("Level (centre)", self.window_centre), ("Window", self.window_width)):
            edit.setValidator(QDoubleValidator(-1e6, 1e6, 1))
            edit.setMaximumWidth(80)
            edit.returnPressed.connect(self._typed_window)
            wl.addWidget(QLabel(label))
            wl.addWidget(edit)
        lay.addLayout(wl)
        col.addWidget(g)

        g = self.injection_group = QGroupBox("Injection")
        self.fixed_groups.append(g)
        form = QFormLayout(g)
        form.setContentsMargins(6, 4, 6, 4)
        form.setVerticalSpacing(3)
        sides = QHBoxLayout()
        self.side_group = QButtonGroup(self)
        self.side_buttons = {}
        for name in ("right", "left"):
            b = QRadioButton(f"patient {name}")
            b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            self.side_group.addButton(b)
            self.side_buttons[name] = b
            sides.addWidget(b)
            b.clicked.connect(lambda _=False, n=name: self.side_chosen.emit(n))
        form.addRow("Side", sides)
        self.level_combo = QComboBox()
        self.level_combo.addItems(["-", *LEVELS])
        self.level_combo.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.level_combo.currentTextChanged.connect(
            lambda t: self.level_chosen.emit(None if t == "-" else t))
        form.addRow("Level", self.level_combo)
        self.level_source = _wrapped()
        form.addRow(self.level_source)
        self.side_hint = _wrapped()
        form.addRow(self.side_hint)
        self.side_warning = _wrapped(rich=True, hidden=True,
                                     style="color: white; background: #b00020; padding: 4px;")
        form.addRow(self.side_warning)
        self.override_button = QPushButton("I have checked: confirm override and predict")
        self.override_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.override_button.clicked.connect(self.override_confirmed)
        self.override_button.hide()
        form.addRow(self.override_button)

        g = self.result_group = QGroupBox("Prediction")
        self.fixed_groups.append(g)
        g.setObjectName("result_group")
        lay = QVBoxLayout(g)
        lay.setContentsMargins(6, 4, 6, 4)
        lay.setSpacing(3)
        row = QHBoxLayout()
        self.predict_button = QPushButton("Predict  (Ctrl+P)")
        self.predict_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.auto_check = QCheckBox("automatically")
        self.auto_check.setChecked(True)
        self.auto_check.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        row.addWidget(self.predict_button)
        row.addWidget(self.auto_check)
        lay.addLayout(row)
        self.result_label = _wrapped("No prediction yet.", rich=True, style=RESULT_STYLE)
        lay.addWidget(self.result_label)
        self.slice_strip = SliceStrip()  # the neighbouring slices (gui/slice_strip.py)
        lay.addWidget(self.slice_strip)
        # the result with the clinical data (gui/clinical_form.py), when the model has them
        self.clinical_label = _wrapped(rich=True, style=RESULT_STYLE, hidden=True)
        self.clinical_label.setObjectName("clinical_label")
        lay.addWidget(self.clinical_label)
        self.kim_label = _wrapped()
        self.kim_label.setObjectName("kim_label")
        lay.addWidget(self.kim_label)
        self.comparison_label = _wrapped(rich=True, style=RESULT_STYLE, hidden=True)
        lay.addWidget(self.comparison_label)
        self.stale_label = _wrapped("The result no longer matches the ROI, slice or side: "
                                    "predict again.", hidden=True,
                                    style="color: black; background: #ffd54f; padding: 4px;")
        lay.addWidget(self.stale_label)
        self.performance_label = _wrapped(style="font-size: 8pt;")
        lay.addWidget(self.performance_label)
        self.disclaimer_label = _wrapped(style="color: #b00020; font-weight: bold; "
                                         "font-size: 8pt;")
        lay.addWidget(self.disclaimer_label)
        # below: details that scroll with the panel; the clinical form goes here
        # (add_clinical_form), just above the heat map
        self._clinical_at = col.count()
        g = QGroupBox("Heat map and provenance")
        lay = QVBoxLayout(g)
        over = QHBoxLayout()
        self.overlay_check = QCheckBox("Grad-CAM overlay (O)")
        self.overlay_check.setChecked(True)
        self.overlay_check.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(40)
        self.opacity.setFocusPolicy(Qt.FocusPolicy.NoFocus)
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
        self.cam_caption = QLabel("Relative attention\n(Grad-CAM of the predicted\nclass, inside "
                                  "the ROI)")
        bar.addWidget(self.cam_caption, 1)
        lay.addLayout(bar)
        self.provenance_label = WrappingText()
        lay.addWidget(self.provenance_label)
        col.addWidget(g)

        g = self.measure_group = QGroupBox("Measurements (L length, A angle)")
        self.fixed_groups.append(g)
        lay = QVBoxLayout(g)
        lay.setContentsMargins(6, 4, 6, 4)
        lay.setSpacing(3)
        self.measure_list = QListWidget()
        self.measure_list.setObjectName("measure_list")
        self.measure_list.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.measure_list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.measure_list.setMaximumHeight(72)
        self.measure_list.currentRowChanged.connect(self.measurement_selected)
        lay.addWidget(self.measure_list)
        row = QHBoxLayout()
        self.measure_buttons = {}
        for key, text in (("foramen", "Foramen"), ("root", "Root"),
                          ("untag", "Untag"), ("delete", "Delete")):
            b = QPushButton(text)
            b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            b.clicked.connect(lambda _=False, k=key: self._measure_button(k))
            self.measure_buttons[key] = b
            row.addWidget(b)
        lay.addLayout(row)

        g = QGroupBox("Model input (as the network sees it)")
        lay = QHBoxLayout(g)
        self.crop_preview = QLabel()
        self.crop_preview.setFixedSize(150, 150)
        self.crop_preview.setStyleSheet("background: black;")
        self.crop_caption = _wrapped("Draw a rectangle around the foramen\n(D, or Shift+drag).")
        lay.addWidget(self.crop_preview)
        lay.addWidget(self.crop_caption, 1)
        col.addWidget(g)
        col.addStretch(1)
        self._wheel_guard = guard_wheel(self)
        for box in self.fixed_groups:
            box.setFixedWidth(self.WIDTH)
            guard_wheel(box)

    def add_clinical_form(self, form: QWidget) -> None:
        """The clinical data form (gui/clinical_form.py), above the heat map."""
        form.setFixedWidth(self.WIDTH - 12)
        self.layout().insertWidget(self._clinical_at, form)

    def _measure_button(self, key):
        i = self.measure_list.currentRow()
        if i < 0:
            return
        if key == "delete":
            self.measurement_deleted.emit(i)
        else:
            self.measurement_tagged.emit(i, None if key == "untag" else key)

    def _typed_window(self):
        try:
            c, w = float(self.window_centre.text()), float(self.window_width.text())
        except ValueError:
            return
        if w > 0:
            self.window_typed.emit(c, w)

    def show_window(self, centre: float, width: float):
        for edit, v in ((self.window_centre, centre), (self.window_width, width)):
            if not edit.hasFocus():
                edit.setText(f"{v:.0f}")

    def show_measurements(self, lines: list[str], selected: int | None):
        self.measure_list.blockSignals(True)
        self.measure_list.clear()
        self.measure_list.addItems(lines)
        if selected is not None and 0 <= selected < len(lines):
            self.measure_list.setCurrentRow(selected)
        self.measure_list.blockSignals(False)

    def show_side_level(self, side: str | None, level: str | None):
        self.side_group.setExclusive(False)
        for name, b in self.side_buttons.items():
            b.setChecked(side == name)
        self.side_group.setExclusive(True)
        self.level_combo.blockSignals(True)
        self.level_combo.setCurrentText(level or "-")
        self.level_combo.blockSignals(False)

    # --- what the session says, shown ------------------------------------------------------

    def show_assessment(self, a, selection) -> None:
        """The side hint, the gates that block (red) or were overridden, the override button
        (only when every blocking gate may be overridden)."""
        self.side_hint.setText(a.hint)
        self.override_button.setVisible(a.overridable)
        note = a.override_note()
        if a.blocking:
            self.side_warning.setText("<br>".join(
                f"<b>{escape(g.message, quote=False)}</b>" for g in a.blocking))
        elif note:
            self.side_warning.setText(f"<b>{escape(note, quote=False)}</b>")
        self.side_warning.setVisible(bool(a.blocking) or bool(note))

    def show_result(self, result, *, stale: bool, blocking) -> None:
        """The result (greyed and struck through when stale), or why there is none."""
        html = NO_RESULT if blocking else ""  # the gates themselves: show_assessment
        if result is None:
            self.result_label.setText(html or "No prediction yet.")
            self.provenance_label.setText("")
        else:
            pred = result.prediction
            self.result_label.setText((html + "<br>" if html else "")
                                      + result_html(pred, stale=stale, blocked=bool(blocking)))
            self.provenance_label.setText(provenance_html(result))
            self.cam_caption.setText(f"Relative attention\n(Grad-CAM of the "
                                     f"{pred.cam_target}\nclass, inside the ROI)")
        self.stale_label.setText("The result no longer matches the ROI, slice or side: "
                                 + ("correct the ROI or the side." if blocking else
                                    "predict again."))
        self.stale_label.setVisible(stale)

    def show_crop(self, image, caption: str) -> None:
        """The model input (100x100, 0..255) or nothing, with what it is."""
        if image is None:
            self.crop_preview.clear()
        else:
            self.crop_preview.setPixmap(grey_pixmap(image, 150))
        self.crop_caption.setText(caption)
