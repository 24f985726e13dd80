"""Both foramina (B): the ROI mirrored across the anatomical midline onto the other foramen and
predicted in a worker, for comparison only; the injection side stays the physician's. The
session keeps the other side's result with the selection it was compared from, so it is shown
only while that selection is current."""

from __future__ import annotations

from PySide6.QtCore import QObject, Slot

from ..core.render import heat_colours
from ..core.runtime import format_probability
from ..core.session import Result
from . import jobs
from .workers import Worker


class SideComparison(QObject):
    def __init__(self, win):
        super().__init__(win)
        self.win = win

    def compare(self):
        from ..core.mirror import mirrored_selection

        win = self.win
        sel = win.session.selection
        known, canal = win.canal_of_slice()
        if win.predictor is None or sel is None or not sel.complete():
            win.show_message("Draw the ROI and choose the injection side first, then B "
                             "compares with the other foramen.", "info")
            return
        if not known or canal is None:
            win.show_message("The spinal canal was not found on this slice, so the ROI cannot "
                             "be mirrored across the midline.", "info")
            return
        other = mirrored_selection(sel, win.geometry_of_slice(), canal)
        win.panel.comparison_label.setText("<i>Predicting the other side...</i>")
        win.panel.comparison_label.show()
        win.run_worker(Worker(jobs.predict_other_side, win.predictor, win.session.stack(), sel,
                              other, win.current_values(), canal), self._compared,
                       self._failed)

    @Slot(object)
    def _compared(self, payload):
        source, outcome = payload
        self.win.session.set_comparison(source, Result(outcome.selection, outcome.prediction,
                                                       outcome.model_input))

    @Slot(str)
    def _failed(self, message):
        self.win.panel.comparison_label.setText(f"No prediction for the other side: {message}")

    def show(self):
        """Both results side by side in the panel, the other ROI and its heat map in the view;
        nothing when there is no comparison for the current result."""
        win = self.win
        p, r, main = win.panel, win.session.comparison(), win.session.current_result()
        if r is None or main is None:
            p.comparison_label.hide()
            win.view.set_extra_rects([])
            win.view.clear_overlay(2)
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
        win.view.set_extra_rects([r.selection.roi])
        if p.overlay_check.isChecked():
            win.view.set_overlay(heat_colours(b.cam_roi), b.provenance.roi,
                                 p.opacity.value() / 100, which=2)

    def text(self) -> str | None:
        """The other side's result as the report prints it."""
        r = self.win.session.comparison()
        if r is None:
            return None
        b = r.prediction
        return (f"For comparison only - the other foramen (patient {b.provenance.side} side, "
                f"ROI mirrored across the spinal canal's midline, x {b.provenance.roi[0]}, "
                f"y {b.provenance.roi[1]}): {format_probability(b.probability)} ({b.label}). "
                "The injection side above is the physician's choice.")
