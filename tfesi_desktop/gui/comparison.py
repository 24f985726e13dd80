"""Both foramina (B): the ROI mirrored across the anatomical midline onto the other foramen and
predicted in a worker, for comparison only; the injection side stays the physician's. The
session keeps the other side's result with the selection it was compared from, so it is shown
only while that selection is current."""

from __future__ import annotations

from PySide6.QtCore import QObject, Slot

from ..core.render import heat_colours
from ..core.runtime import format_probability
from . import jobs
from .context import AppContext
from .workers import Worker


class SideComparison(QObject):
    def __init__(self, ctx: AppContext, view, panel, values_of):
        super().__init__(ctx.parent)
        self.ctx, self.view, self.panel = ctx, view, panel
        self._values_of = values_of  # slice key -> decoded modality values or None

    def compare(self):
        from ..core.mirror import mirrored_selection

        s = self.ctx.session
        sel, model = s.selection, self.ctx.model()
        if model is None or sel is None or not sel.complete():
            self.ctx.notify("Draw the ROI and choose the injection side first, then B "
                            "compares with the other foramen.", "info")
            return
        known, canal = s.canal(sel.slice_key)
        if not known or canal is None:
            self.ctx.notify("The spinal canal was not found on this slice, so the ROI cannot "
                            "be mirrored across the midline.", "info")
            return
        other = mirrored_selection(sel, s.geometry_of(sel.slice_key), canal)
        self.panel.comparison_label.setText("<i>Predicting the other side...</i>")
        self.panel.comparison_label.show()
        self.ctx.run_worker(Worker(jobs.predict_other_side, model, s.stack(), sel, other,
                                   self._values_of(sel.slice_key), canal), self._compared,
                            self._failed)

    @Slot(object)
    def _compared(self, payload):
        source, result = payload
        self.ctx.session.set_comparison(source, result)

    @Slot(str)
    def _failed(self, message):
        self.panel.comparison_label.setText(f"No prediction for the other side: {message}")

    def show(self):
        """Both results side by side in the panel, the other ROI and its heat map in the view
        (the heat map only while the overlays are on: O); nothing when there is no comparison
        for the current result, or the ROI's slice is not the one shown."""
        s = self.ctx.session
        p, r, main = self.panel, s.comparison(), s.current_result()
        if r is None or main is None:
            p.comparison_label.hide()
            self.view.set_extra_rects([])
            self.view.clear_overlay(2)
            return
        a, b = main.prediction, r.prediction
        cells = []
        for pred, title in ((a, f"Injection side ({a.provenance.side})"),
                            (b, f"Other side ({b.provenance.side}) - for comparison only")):
            cells.append(f"<td style='padding:2px 8px'><b>{title}</b><br><span "
                         f"style='font-size:14pt'>{format_probability(pred.probability)}"
                         f"</span> {pred.label}</td>")
        p.comparison_label.setText(f"<table><tr>{''.join(cells)}</tr></table>")
        p.comparison_label.show()
        here = s.selection.view_key == s.selection.slice_key
        self.view.set_extra_rects([r.selection.roi] if here else [])
        if p.overlay_check.isChecked() and here:
            self.view.set_overlay(heat_colours(b.cam_roi), b.provenance.roi,
                                  p.opacity.value() / 100, which=2)
        else:
            self.view.clear_overlay(2)

    def text(self) -> str | None:
        """The other side's result as the report prints it."""
        r = self.ctx.session.comparison()
        if r is None:
            return None
        b = r.prediction
        return (f"For comparison only - the other foramen (patient {b.provenance.side} side, "
                f"ROI mirrored across the spinal canal's midline, x {b.provenance.roi[0]}, "
                f"y {b.provenance.roi[1]}): {format_probability(b.probability)} ({b.label}). "
                "The injection side above is the physician's choice.")
