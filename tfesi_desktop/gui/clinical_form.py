"""Clinical data beside the image (issue 25; docs/architecture.md, "Clinical data beside the
image"): the short form for the values a bundle's clinical model uses, and the combined result
with each input's contribution.

The form shows one field per variable of the loaded bundle's clinical model (its unit and valid
range), or one line saying the model uses the image only. What is typed is the study's, through
:meth:`..core.session.Session.set_clinical` (one undo step, saved with that study only). A
wrong value gets the core's sentence beside its field and no combined result; a missing one is
shown as the model's policy says (imputed: the training mean, contribution 0; or needed)."""

from __future__ import annotations

from html import escape

from PySide6.QtCore import QObject, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPalette, QPen
from PySide6.QtWidgets import QFormLayout, QGroupBox, QLabel, QLineEdit, QVBoxLayout, QWidget

from ..core.clinical import (
    ClinicalError,
    contribution_rows,
    load_clinical_model,
    validated_text,
)
from ..core.errors import TfesiError
from ..core.runtime import format_probability
from .context import AppContext

IMAGE_ONLY = "This model uses the image only: it takes no clinical data."
FAVOURABLE, POOR = "#2e7d32", "#c62828"  # readable on the light and the dark theme


def _label(text: str = "", style: str = "") -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.RichText)
    if style:
        label.setStyleSheet(style)
    return label


class ContributionBars(QWidget):
    """Each input's contribution to the combined logit as a bar around 0 (+ to the right:
    towards a favourable outcome), with its value and number. ``rows``: what is drawn."""

    ROW = 17

    def __init__(self):
        super().__init__()
        self.rows: list[tuple[str, str, float, bool]] = []
        self.setMinimumHeight(0)

    def set_rows(self, rows) -> None:
        self.rows = list(rows)
        self.setFixedHeight(self.ROW * (len(self.rows) + 1) + 4 if self.rows else 0)
        self.update()

    def text(self) -> str:
        return "\n".join(f"{a} = {b}: {c:+.2f}" + (" (outside the training range)" if d else "")
                         for a, b, c, d in self.rows)

    def sizeHint(self):  # noqa: N802 - Qt's name
        return QSize(300, self.height())

    def paintEvent(self, _ev):  # noqa: N802 - Qt's name
        if not self.rows:
            return
        p = QPainter(self)
        f = p.font()
        f.setPointSizeF(7.5)
        p.setFont(f)
        fm = p.fontMetrics()
        ink = self.palette().color(QPalette.ColorRole.WindowText)  # light or dark theme
        w = self.width()
        text_w, num_w = int(w * 0.56), 36
        bar_x0, bar_x1 = text_w + 4, w - num_w - 2
        mid = (bar_x0 + bar_x1) / 2
        half = (bar_x1 - bar_x0) / 2
        scale = max(0.5, max(abs(r[2]) for r in self.rows))
        left, right = Qt.AlignmentFlag.AlignLeft, Qt.AlignmentFlag.AlignRight
        middle = Qt.AlignmentFlag.AlignVCenter
        p.setPen(QColor(POOR))
        p.drawText(QRectF(bar_x0, 0, w - bar_x0, self.ROW), left | middle, "\u2212 poor")
        p.setPen(QColor(FAVOURABLE))
        p.drawText(QRectF(bar_x0, 0, w - bar_x0, self.ROW), right | middle, "favourable +")
        p.setPen(ink)
        p.drawText(QRectF(0, 0, text_w, self.ROW), left | middle, "logit contributions")
        for i, (name, shown, c, outside) in enumerate(self.rows):
            y = self.ROW * (i + 1)
            value = ("imputed" if shown.startswith("imputed") else shown) + (" *" if outside
                                                                             else "")
            tail = f": {value}"
            p.setPen(ink)
            p.drawText(QRectF(0, y, text_w, self.ROW), left | middle,
                       fm.elidedText(name, Qt.TextElideMode.ElideRight,
                                     max(20, text_w - fm.horizontalAdvance(tail))) + tail)
            length = half * abs(c) / scale
            colour = QColor(FAVOURABLE if c >= 0 else POOR)
            p.fillRect(QRectF(mid if c >= 0 else mid - length, y + 4, length, self.ROW - 8),
                       colour)
            p.setPen(ink)
            p.drawText(QRectF(bar_x1 + 2, y, num_w - 2, self.ROW), right | middle, f"{c:+.2f}")
        p.setPen(QPen(ink, 1))
        p.drawLine(int(mid), self.ROW, int(mid), self.height() - 2)
        p.end()


class ClinicalForm(QGroupBox):
    """The form and the combined result (widgets only; :class:`ClinicalController` fills
    them). ``value_edited(name, text)``: a field was changed and left (Enter or focus out)."""

    value_edited = Signal(str, str)

    def __init__(self, parent=None):
        super().__init__("Clinical data", parent)
        self.setObjectName("clinical_form")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 4, 6, 4)
        lay.setSpacing(3)
        self.note = _label("Loading the model...", "font-size: 8pt;")
        lay.addWidget(self.note)
        self.fields_box = QWidget()
        self.form = QFormLayout(self.fields_box)
        self.form.setContentsMargins(0, 0, 0, 0)
        self.form.setVerticalSpacing(2)
        lay.addWidget(self.fields_box)
        self.result = _label(style="background: #fafafa; color: black; padding: 4px;")
        lay.addWidget(self.result)
        self.bars = ContributionBars()
        lay.addWidget(self.bars)
        self.used = _label(style="font-size: 8pt;")
        lay.addWidget(self.used)
        self.validated = _label(style="font-size: 8pt;")
        lay.addWidget(self.validated)
        self.fields: dict[str, QLineEdit] = {}
        self.messages: dict[str, QLabel] = {}
        self.model = None
        self.set_model(None, loading=True)

    def set_model(self, model, *, loading: bool = False) -> None:
        """One field per variable of ``model`` (a ClinicalModel), or the image-only note."""
        while self.form.rowCount():
            self.form.removeRow(0)
        self.fields, self.messages, self.model = {}, {}, model
        self.note.setText("Loading the model..." if loading else IMAGE_ONLY if model is None
                          else "Used with the image by this model's clinical part; leave a "
                               "field empty if unknown.")
        self.fields_box.setVisible(model is not None)
        for v in model.variables if model is not None else ():
            edit = QLineEdit()
            edit.setObjectName(f"clinical_{v.name}")
            edit.setPlaceholderText(v.describe_range())
            edit.setMaxLength(40)
            edit.editingFinished.connect(lambda n=v.name: self._finished(n))
            message = _label(style="font-size: 8pt;")
            message.setObjectName(f"clinical_{v.name}_message")
            unit = f" ({v.unit})" if v.unit and v.kind != "binary" else ""
            self.form.addRow(f"{v.label}{unit}", edit)
            self.form.addRow(message)
            self.fields[v.name], self.messages[v.name] = edit, message
        self.show_combined(None, None, has_result=False)

    def _finished(self, name: str) -> None:
        self.value_edited.emit(name, self.fields[name].text())

    def show_values(self, values: dict, *, editable: bool) -> None:
        """The study's values in the fields (a field being typed in is left alone), each with
        what it means: the core's sentence when it is wrong, the missing-value policy when it
        is empty."""
        m = self.model
        if m is None:
            return
        for v in m.variables:
            edit = self.fields[v.name]
            text = values.get(v.name, "")
            if not edit.hasFocus() and edit.text() != text:
                edit.setText(text)
            edit.setReadOnly(not editable)
            self._say(v.name, "")
            try:
                value = v.parse(text)
            except ClinicalError as e:
                self._say(v.name, f"<b style='color:#b00020'>{escape(e.message, quote=False)}"
                                  "</b>")
                continue
            if value is None:
                self._say(v.name,
                    f"<span style='color:#a05a00'>missing: imputed as the training mean "
                    f"({escape(_mean(m, v))}), contribution 0</span>" if v.missing == "impute"
                    else "<span style='color:#a05a00'>missing: needed for the combined "
                         "result (this model does not impute it)</span>")
            else:
                lo, hi = m.minima.get(v.name), m.maxima.get(v.name)
                outside = lo is not None and hi is not None and not lo <= value <= hi
                self._say(v.name, f"<span style='color:#a05a00'>outside the training range "
                                  f"({lo:g}-{hi:g}): its contribution is extrapolated</span>"
                                  if outside else "")

    def _say(self, name: str, html: str) -> None:
        """What a field's value means, under it (hidden when there is nothing to say)."""
        self.messages[name].setText(html)
        self.messages[name].setVisible(bool(html))

    def show_combined(self, combined, why: str | None, *, has_result: bool) -> None:
        """The combined probability beside the image-only one, the inputs used and imputed,
        the contributions and the validated performance; or why there is none."""
        m = self.model
        self.result.setVisible(m is not None)
        self.used.setVisible(combined is not None)
        self.validated.setVisible(m is not None)
        if m is None:
            self.bars.set_rows([])
            return
        self.validated.setText(escape(validated_text(m.fitted_on), quote=False))
        if combined is None:
            self.bars.set_rows([])
            self.result.setText(
                f"<b style='color:#b00020'>No combined result: "
                f"{escape(why, quote=False)}</b> The image-only result stands." if why else
                "<i>The combined result follows the prediction.</i>" if not has_result else "")
            self.result.setVisible(bool(why) or not has_result)
            return
        self.result.hide()  # the probability itself: the Prediction group (always in view)
        self.bars.set_rows(contribution_rows(combined))
        self.used.setText(
            f"Contributions on the logit scale from a patient at the training means "
            f"({combined.base_logit:+.2f}); + towards favourable. Used: "
            f"{escape(', '.join(combined.used) or 'none')}; imputed: "
            f"{escape(', '.join(combined.imputed) or 'none')}"
            + (". * outside the training range." if any(r[3] for r in self.bars.rows)
               else "."))

    def text(self) -> str:
        """What the form shows, as plain text (tests, screen readers)."""
        return "\n".join([self.note.text(), self.result.text(), self.bars.text(),
                          self.used.text(), self.validated.text()]
                         + [m.text() for m in self.messages.values()])


def _mean(model, v) -> str:
    from ..core.clinical import _format

    return _format(v, model.means[v.name])


def combined_html(c) -> str:
    """The combined probability beside the image-only one (HTML)."""
    lo, hi = c.interval
    colour = "#777777" if (c.borderline or not c.reliable) else (
        FAVOURABLE if c.label == "favourable" else POOR)
    html = (f"With the clinical data: <span style='font-size:15pt; font-weight:bold; "
            f"color:{colour}'>{format_probability(c.probability)}</span> <b>{c.label}</b><br>"
            f"image alone {format_probability(c.image_probability)}; range over the ROIs "
            f"{format_probability(lo)} - {format_probability(hi)}")
    if c.borderline:
        html += "<br><b style='color:#a05a00'>Borderline: it depends on the ROI.</b>"
    if not c.reliable:
        html += ("<br><b style='color:#8d1c1c'>The image is unlike the training images; the "
                 "clinical data do not make the prediction reliable.</b>")
    return html


class ClinicalController(QObject):
    """Fills the form from the session and the loaded model, and turns typing into session
    edits. ``combined()``: the combined result the panel shows (for the report)."""

    def __init__(self, ctx: AppContext, form: ClinicalForm, summary: QLabel):
        super().__init__(ctx.parent)
        self.ctx, self.form, self.summary = ctx, form, summary
        self.model = None
        form.value_edited.connect(self._edited)
        ctx.session.subscribe(self._changed)

    def model_loaded(self, bundle) -> None:
        try:
            self.model = load_clinical_model(bundle) if bundle is not None else None
        except TfesiError as e:
            self.model = None
            self.ctx.notify(f"The model's clinical part is not used: {e.message}", "error")
        self.form.set_model(self.model)
        self.refresh()

    def _edited(self, name: str, text: str) -> None:
        if self.ctx.session.work is None:
            self.refresh()
            return
        label = self.model.variable(name).label if self.model else name
        if not self.ctx.session.set_clinical(name, text, label):
            self.refresh()  # unchanged or refused: show what the study holds

    def _changed(self, what: str) -> None:
        if what in ("opened", "series", "selection", "result", "refused"):
            self.refresh()

    def combined(self):
        """(CombinedPrediction or None, the sentence why there is none or None)."""
        return self.ctx.session.combined(self.model)

    def refresh(self) -> None:
        s = self.ctx.session
        self.form.show_values(s.clinical_values, editable=s.work is not None
                              and not s.read_only())
        combined, why = self.combined()
        has_result = s.current_result() is not None
        self.form.show_combined(combined, why, has_result=has_result)
        if self.model is None or not has_result:
            self.summary.hide()
            return
        self.summary.setText(
            combined_html(combined) if combined is not None else
            f"<b style='color:#b00020'>No combined result: {escape(why or '', quote=False)}"
            "</b>")
        self.summary.show()


__all__ = ["IMAGE_ONLY", "ClinicalController", "ClinicalForm", "ContributionBars",
           "combined_html"]
