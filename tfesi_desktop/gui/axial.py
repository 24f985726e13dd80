"""The axial viewport as a view of the session: the slice looked at (decoded in workers, the
neighbours prefetched), the ROI on its own slice only (elsewhere, a note where it is: it stays
on the slice it was drawn on), the measurements of the slice shown, the window levels; and the
mouse's finished drags and drawings as session edits (docs/architecture.md, "Session model").
"""

from __future__ import annotations

import dataclasses

import numpy as np
from PySide6.QtCore import QObject, Slot

from ..core.dicom import cached_values
from ..core.measure import Measurement
from ..core.render import display_name
from . import jobs
from .context import AppContext
from .viewer import SliceView, display_letters, display_transform
from .workers import Worker


class AxialViewport(QObject):
    def __init__(self, ctx: AppContext, view: SliceView, redraw, first_shown=lambda: None):
        super().__init__(ctx.parent)
        self.ctx, self.view = ctx, view
        self._redraw = redraw  # () -> None: the window's refresh after a slice arrives
        self._first_shown = first_shown  # () -> None: a series' first slice is shown
        self.levels_by_stack: dict[str, tuple[float, float]] = {}
        self.shown: str | None = None  # slice key whose values are on the screen
        self._shown_measurements = None
        self._first_image = True
        self.selected_measure: int | None = None
        view.roi_change_finished.connect(self._roi_finished)
        view.roi_refused.connect(lambda m: ctx.notify(m, "note"))
        view.measurement_drawn.connect(self._measurement_drawn)
        view.measurement_moved.connect(self._measurement_moved)

    # --- the session -> the view -------------------------------------------------------------

    def series_changed(self):
        s = self.ctx.session
        stack, study = s.stack(), s.study()
        self.view.set_corner_text(
            f"{display_name(study.patient_name)}\nID {study.patient_id or '-'}   born "
            f"{study.birth_date or '-'}   {study.sex or ''}\n{study.study_date}  "
            f"{study.description}",
            f"{stack.description}\n{stack.modality}  series "
            f"{stack.series_number if stack.series_number is not None else '?'}")
        g = stack.geometry
        self.view.set_letters(display_letters(g, display_transform(g)))
        self.view.clear_roi()  # placed again once this series' image is shown
        self.view.clear_length()
        if stack.key not in self.levels_by_stack:
            self.ctx.run_worker(Worker(jobs.window_of, stack), self._window_ready, later=True)
        self._first_image = True
        self.shown = None
        self._shown_measurements = None

    def show(self, sel, stack, index: int):
        """The slice looked at, the ROI where it belongs, the slice's measurements."""
        if self.shown != sel.view_key:
            ref = stack.slices[index]
            values = cached_values(ref)
            if values is not None:
                self._show_values(stack.key, sel.view_key, values)
            else:
                self.ctx.run_worker(Worker(jobs.decode, stack.key, sel.view_key, ref),
                                    self._decoded)
            self._prefetch(stack, index)
        self._show_roi(sel, stack)
        shown = sel.measurements_on(sel.view_key)
        if self.selected_measure is not None and self.selected_measure >= len(shown):
            self.selected_measure = None
        ms = (tuple(m.points for m in shown), self.selected_measure)
        if ms != self._shown_measurements and self.shown == sel.view_key:
            self._shown_measurements = ms
            self.view.set_measurements(ms[0], self.selected_measure)
        # the level is the ROI's: not written on another slice
        self.view.set_level_text(f"{sel.level}" + (" (proposed)" if sel.level_source ==
                                                   "proposed" else "")
                                 if sel.level and not sel.roi_elsewhere() else "")

    def _show_roi(self, sel, stack):
        if self.shown is None:
            return
        here = sel.roi if not sel.roi_elsewhere() else None
        if self.view.roi_rect() != here:
            self.view.set_roi(here)  # the view converts to its display orientation
        if sel.roi_elsewhere():
            n = stack.find_slice(sel.slice_key) + 1
            self.view.set_roi_note(f"The ROI and its result are on slice {n} (G goes there; "
                                   "drawing here makes a new ROI on this slice).")
        else:
            self.view.set_roi_note("")

    def _prefetch(self, stack, index):
        for j in (index + 1, index - 1):
            if 0 <= j < len(stack.slices) and cached_values(stack.slices[j]) is None:
                self.ctx.run_worker(Worker(jobs.decode, stack.key, stack.slices[j].key,
                                           stack.slices[j]), self._decoded, later=True)

    @Slot(object)
    def _decoded(self, payload):
        stack_key, slice_key, values = payload
        sel = self.ctx.session.selection
        if sel is not None and stack_key == sel.series_key and slice_key == sel.view_key \
                and self.shown != slice_key:
            self._show_values(stack_key, slice_key, values)
            self._redraw()

    def _show_values(self, stack_key, slice_key, values):
        stack = self.ctx.session.stack(stack_key)
        g = stack.slices[stack.find_slice(slice_key)].geometry
        levels = None
        if self._first_image:
            c, w = self.levels_by_stack.get(stack_key) or quick_window(values)
            levels = (c - w / 2, c + w / 2)
        self.view.set_image(values, g.spacing if g else (1.0, 1.0), levels=levels,
                            reset_view=self._first_image, transform=display_transform(g))
        self.shown = slice_key
        self._shown_measurements = None
        if self._first_image:
            self._first_image = False
            self._first_shown()

    # --- window / level ----------------------------------------------------------------------

    @Slot(object)
    def _window_ready(self, payload):
        key, (c, w) = payload
        self.levels_by_stack[key] = (c, w)
        if key == self.ctx.session.series_key:
            self.view.set_levels(c, w)

    def preset_levels(self, factor: float, values):
        key = self.ctx.session.series_key
        if key is None:
            return
        c, w = self.levels_by_stack.get(key) or quick_window(
            values if values is not None else np.zeros((2, 2)))
        self.view.set_levels(c, w * factor)

    # --- the view -> the session -------------------------------------------------------------

    @Slot()
    def _roi_finished(self):
        s = self.ctx.session
        roi, sel = self.view.roi_rect(), s.selection
        if sel is None or roi is None or (roi == sel.roi and not sel.roi_elsewhere()):
            return
        s.set_roi(roi)
        s.propose_side()

    def shown_list(self):
        sel = self.ctx.session.selection
        return sel.measurements_on(sel.view_key) if sel else ()

    @Slot(object)
    def _measurement_drawn(self, points):
        sel = self.ctx.session.selection
        if sel is not None:
            kind = "angle" if len(points) == 3 else "length"
            self.selected_measure = len(self.shown_list())
            self.ctx.session.add_measurement(Measurement(sel.view_key, tuple(points), kind))

    @Slot(int, object)
    def _measurement_moved(self, i, points):
        shown = self.shown_list()
        if i < len(shown):
            new = dataclasses.replace(shown[i], points=tuple(points))
            if new.points != shown[i].points:
                self._shown_measurements = (tuple(
                    new.points if k == i else m.points for k, m in enumerate(shown)),
                    self.selected_measure)
                self.ctx.session.replace_measurement(shown[i], new)

    def select_measurement(self, i):
        self.selected_measure = i if i >= 0 else None

    def delete_measurement(self, i) -> bool:
        shown = self.shown_list()
        if i is None or not 0 <= i < len(shown):
            return False
        self.selected_measure = None
        return self.ctx.session.delete_measurement(shown[i])

    def tag_measurement(self, i, tag):
        shown = self.shown_list()
        if 0 <= i < len(shown):
            if not self.ctx.session.tag_measurement(shown[i], tag) and tag is not None:
                self.ctx.notify("Only a length can be tagged as a width.", "info")


def quick_window(values):
    """(centre, width) from the 1st and 99.5th percentiles: until the series' own is known."""
    lo, hi = np.percentile(values, [1, 99.5])
    return float((lo + hi) / 2), float(max(hi - lo, 1e-6))
