"""The sagittal viewport beside the axial one: the study's sagittal series with the current
axial slice drawn on it as a cross-reference line (and the sagittal slice drawn on the axial),
computed in patient coordinates from both planes' geometry (:mod:`..core.crossref`). A click on
the sagittal goes to the nearest axial slice; scrolling either view moves the other's line.
Series that do not share a Frame of Reference get no line, and the viewport says so.

The sagittal slice shown is a view setting (like window/level), not part of the selection; the
disc-level marks placed on it belong to the study and live in the session."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from ..core.crossref import cross_reference, nearest_slice, read_frames_of_reference, same_frame
from ..core.dicom import cached_values, modality_values
from ..core.levels import LevelMark, next_disc
from .context import AppContext
from .viewer import SliceView, display_letters, display_transform, point_to_display
from .workers import Worker

WIDE = 1.2  # a sagittal this much wider than tall is first framed on the spinal canal


def spine_range(shape, spacing, centre_x):
    """The view's first range for a sagittal much wider than tall (a research field of view
    reaching from the face to behind the neck: fitted to the viewport's width, its spine is a
    sliver): ((x0, x1), (y0, y1)) in display pixels, the image's whole height and across a
    square (in mm) around the canal's display column ``centre_x``, kept inside the image; None
    when the image is not :data:`WIDE` times wider than tall. ``shape``: displayed (rows,
    columns); ``spacing``: displayed (between rows, between columns), mm."""
    rows, cols = shape
    height_mm, width_mm = rows * spacing[0], cols * spacing[1]
    if width_mm <= WIDE * height_mm:
        return None
    width = height_mm / spacing[1]  # display columns
    x0 = min(max(float(centre_x) - width / 2, 0.0), cols - width)
    return (x0, x0 + width), (0.0, float(rows))


def sagittal_stack(study):
    """The study's sagittal series to show: T2 first, then the one with most slices."""
    sags = [s for s in study.stacks if s.geometry is not None
            and int(np.argmax(np.abs(s.geometry.normal))) == 0]
    return max(sags, key=lambda s: (s.is_t2(), len(s.slices)), default=None)


class Localizer(QObject):
    line_changed = Signal()

    def __init__(self, ctx: AppContext, axial: SliceView, *, axial_geometry, axial_shown,
                 warm, go_to):
        """``axial``: the axial view (its cross-reference line); ``axial_geometry()``: the
        geometry of the axial slice shown; ``axial_shown()``: whether one is shown; ``warm()``:
        whether the model worker's imports are done; ``go_to(index)``: show that axial slice."""
        super().__init__(ctx.parent)
        self.ctx, self.axial = ctx, axial
        self._axial_geometry, self._axial_shown = axial_geometry, axial_shown
        self._warm, self._go_to = warm, go_to
        self.view = SliceView(histogram=False)
        self.view.setObjectName("sagittal_view")
        self.view.slice_step.connect(self.step)
        self.view.point_clicked.connect(self._clicked)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setObjectName("localizer_status")
        self.widget = QWidget()
        lay = QVBoxLayout(self.widget)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        lay.addWidget(self.view, 1)
        lay.addWidget(self.status)
        self.stack = None
        self.index = 0
        self.frames: dict[str, str | None] = {}
        self._frames_asked: set[str] = set()
        self._shown: str | None = None
        self._first = True
        self._frame = None  # (stack key, slice ref, values): the canal to find, to frame it
        self.marking = False  # clicks place the next disc mark

    # --- disc-level marks --------------------------------------------------------------------

    def start_marking(self):
        """Guided marking: each click on the sagittal marks the next disc, C2-3 to C7-T1."""
        if self.stack is None:
            self.ctx.notify("No sagittal series in this study to mark the levels on.", "info")
            return
        self.marking = True
        self.view.graphics.setCursor(Qt.CursorShape.CrossCursor)
        self._say_next()

    def stop_marking(self):
        self.marking = False
        self.view.graphics.setCursor(Qt.CursorShape.ArrowCursor)
        self.update()

    def _say_next(self):
        d = next_disc(self.ctx.session.marks)
        if d is None:
            self.status.setText("All discs marked (click one again to move its mark; Esc "
                                "ends).")
        else:
            self.status.setText(f"Click the centre of the {d} disc on the sagittal (Esc "
                                "ends).")

    def marks_on_view(self):
        """The study's marks projected onto the sagittal slice shown: [(disc, (row, col))]."""
        g = self.sagittal_geometry()
        if g is None:
            return []
        o, r, c = (np.asarray(v, float) for v in (g.position, g.row_cos, g.col_cos))
        out = []
        for m in self.ctx.session.marks:
            rel = np.asarray(m.point, float) - o
            out.append((m.disc, (float(rel @ c / g.spacing[0]), float(rel @ r / g.spacing[1]))))
        return out

    # --- which sagittal ----------------------------------------------------------------------

    def study_changed(self):
        """Called when the window shows another series: pick the study's sagittal."""
        study = self.ctx.session.study()
        stack = sagittal_stack(study) if study is not None else None
        if stack is not None and stack is self.stack:
            self.update()
            return
        self.stack, self._shown, self._first, self._frame = stack, None, True, None
        self.view.set_reference_line(None)
        if stack is None:
            self.view.image.clear()
            self.view.set_letters(None)
            self.status.setText("No sagittal series in this study: no localizer.")
            self.update()
            return
        self.index = len(stack.slices) // 2
        self.view.set_letters(display_letters(stack.geometry, display_transform(stack.geometry)))
        self.request_frames()
        self._show()

    def request_frames(self):
        """Read the Frames of Reference of the study's series in a worker (once the model
        worker has imported pydicom: two threads importing it at once break it)."""
        study = self.ctx.session.study()
        if study is None or not self._warm():
            return
        missing = [s for s in study.stacks if s.key not in self._frames_asked]
        if missing:
            self._frames_asked.update(s.key for s in missing)
            self.ctx.run_worker(Worker(read_frames_of_reference, missing), self._frames_read,
                                later=True)
        self._find_spine()

    @Slot(object)
    def _frames_read(self, frames):
        self.frames.update(frames)
        self.update()

    # --- showing -----------------------------------------------------------------------------

    def step(self, d: int):
        if self.stack is not None:
            self.set_index(self.index + d)

    def set_index(self, i: int):
        if self.stack is None:
            return
        self.index = max(0, min(len(self.stack.slices) - 1, int(i)))
        self._show()

    def _show(self):
        ref = self.stack.slices[self.index]
        values = cached_values(ref)
        if values is None:
            self.ctx.run_worker(Worker(_decode, self.stack.key, ref), self._decoded, later=True)
            return
        self._put(ref, values)

    @Slot(object)
    def _decoded(self, payload):
        key, ref, values = payload
        if self.stack is not None and key == self.stack.key \
                and ref is self.stack.slices[self.index]:
            self._put(ref, values)

    def _put(self, ref, values):
        levels = None
        if self._first:
            lo, hi = np.percentile(values, [1, 99.5])
            levels = (float(lo), float(hi))
        g = ref.geometry
        self.view.set_image(values, g.spacing if g else (1.0, 1.0), levels=levels,
                            reset_view=self._first, transform=display_transform(g))
        if self._first and g is not None and spine_range(
                self.view._shape, self.view._spacing, 0.0) is not None:
            self._frame = (self.stack.key, ref, values)
            self._find_spine()
        self.view._show_wl()
        self._first = False
        self._shown = ref.key
        self.view.set_corner_text("", f"{self.stack.description}\nslice {self.index + 1} / "
                                      f"{len(self.stack.slices)}")
        self.update()

    def _find_spine(self):
        """Find the canal on the sagittal shown first, in a worker (once the model worker's
        imports are done), to frame a wide sagittal on it (:func:`spine_range`)."""
        if self._frame is None or not self._warm():
            return
        key, ref, values = self._frame
        self._frame = None
        self.ctx.run_worker(Worker(_canal_course, key, ref, values), self._spine_found,
                            later=True)

    @Slot(object)
    def _spine_found(self, payload):
        key, ref, points = payload
        if self.stack is None or key != self.stack.key or points is None or \
                ref.key != self._shown:
            return
        g = ref.geometry
        o, r, c = (np.asarray(v, float) for v in (g.position, g.row_cos, g.col_cos))
        rel = np.asarray(points, float) - o
        xs = [point_to_display(self.view._d, self.view._stored_shape, col + 0.5, row + 0.5)[0]
              for row, col in zip(rel @ c / g.spacing[0], rel @ r / g.spacing[1], strict=True)]
        frame = spine_range(self.view._shape, self.view._spacing, float(np.median(xs)))
        if frame is not None:
            self.view.vb.setRange(xRange=frame[0], yRange=frame[1], padding=0.02)

    def shared_frame(self) -> bool | None:
        """Whether the axial and the sagittal share a Frame of Reference (None: not known)."""
        axial = self.ctx.session.stack()
        if self.stack is None or axial is None:
            return None
        if axial.key not in self.frames or self.stack.key not in self.frames:
            return None
        return same_frame(self.frames[axial.key], self.frames[self.stack.key])

    def axial_geometry(self):
        return self._axial_geometry()

    def sagittal_geometry(self):
        return self.stack.slices[self.index].geometry if self.stack is not None else None

    def update(self):
        """Redraw both lines for the current axial and sagittal slices (cheap: a few dot
        products; called on every scroll)."""
        ga, gs = self.axial_geometry(), self.sagittal_geometry()
        shared = self.shared_frame()
        line = back = None
        if self.stack is None:
            pass
        elif shared is False:
            self.status.setText("The sagittal and the axial series do not share a Frame of "
                                "Reference: no cross-reference line.")
        elif shared and ga is not None and gs is not None and self._shown is not None:
            line = cross_reference(ga, gs)
            back = cross_reference(gs, ga) if self._axial_shown() else None
            self.status.setText("" if line is not None else
                                "The axial slice does not cross this sagittal image.")
        else:
            self.status.setText("")
        if self.marking:
            self._say_next()
        self.view.set_marks(self.marks_on_view() if self._shown is not None else [])
        self.view.set_reference_line(line)
        self.axial.set_reference_line(back)
        self.line_changed.emit()

    # --- a click goes to the nearest axial slice ---------------------------------------------

    @Slot(float, float)
    def _clicked(self, row, col):
        gs, axial = self.sagittal_geometry(), self.ctx.session.stack()
        if gs is not None and self.marking:
            # the mark of the next disc; a click near a marked disc moves that one
            point = tuple(float(v) for v in gs.pixel_to_patient(row, col))
            near = [(abs(r - row) * gs.spacing[0], d) for d, (r, _c) in self.marks_on_view()]
            close = min(near, default=(99.0, None))
            disc = close[1] if close[0] < 4.0 else next_disc(self.ctx.session.marks)
            if disc is not None:
                self.ctx.session.add_mark(LevelMark(disc, point))
            if next_disc(self.ctx.session.marks) is None and close[0] >= 4.0:
                self.stop_marking()
            return
        if gs is None or axial is None or not self.shared_frame():
            return
        if any(s.geometry is None for s in axial.slices) or not axial.geometry.is_axial():
            return
        point = gs.pixel_to_patient(row, col)
        self._go_to(nearest_slice([s.geometry for s in axial.slices], point))


def _decode(key, ref):
    return key, ref, modality_values(ref)


def _canal_course(key, ref, values):
    """(key, ref, the cord's course on this one sagittal slice (points, mm) or None)."""
    from ..core.cordpath import cord_course

    course = cord_course([(values, ref.geometry)])
    return key, ref, None if course is None else course.points
