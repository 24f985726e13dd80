"""The user's work, without Qt: what is open (patients, studies, series), what is selected in
each study (one :class:`Selection`: series, slice, ROI, side, level, measurements), the result
kept with the selection it was made for, undo/redo, and saving per study.

The window is a view of a :class:`Session` (docs/architecture.md, "Session model"): widgets call
its methods to edit, and redraw when it tells its listeners something changed. The command line
and the self-test build :class:`Selection` objects too, so a selection is spelled one way
everywhere (state files, CLI arguments, provenance).

Rules (docs/architecture.md, invariant 9):

- every edit of the selection goes through :meth:`Session.edit`, which records one undo step
  (a drag is committed once, when it ends) and saves the study's state;
- each study keeps one selection per series, so looking at another series or patient never
  clears a selection;
- state is saved per StudyInstanceUID, atomically, into that study's file only; files that do not
  have the expected shape are ignored with a note and never stop a study from opening.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from .errors import TfesiError
from .levels import LevelMark, propose_level, with_mark
from .measure import TAGS, Measurement
from .selection import (
    LEVELS,
    MODEL_FIELDS,
    SIDES,
    Comparison,
    Rect,
    Result,
    Selection,
)
from .state_store import (
    STATE_SCHEMA,
    STATE_VERSION,
    StateStore,
    StudyWork,
    marks_from_json,
    selection_from_json,
    selection_to_json,
)
from .writes import OrderedWrites

__all__ = ["LEVELS", "MODEL_FIELDS", "SIDES", "STATE_SCHEMA", "STATE_VERSION", "Comparison",
           "Edit", "Measurement", "PatientEntry", "Rect", "Result", "Selection", "Session",
           "StateStore", "StudyWork", "group_patients", "marks_from_json",
           "selection_from_json", "selection_to_json"]

READ_ONLY = ("This study is open in another TFESI window or program, so it is read-only here "
             "(you may look and scroll; nothing is changed or saved). Close it there to edit it "
             "here.")


@dataclass(frozen=True)
class Edit:
    """One undo step: the fields of one series' selection it changed, old and new values
    (``series_key`` None: fields of the study's work itself, e.g. the disc-level marks)."""

    text: str
    study_uid: str
    series_key: str | None
    changes: tuple[tuple[str, object, object], ...]  # (field, old, new)


# --- the session ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class PatientEntry:
    """One patient of what is open, with their studies (newest first)."""

    patient_id: str
    name: str
    birth_date: str
    studies: tuple  # dicom.Study


def group_patients(scan) -> list[PatientEntry]:
    """Studies grouped by patient (ID and name), in the order they were found."""
    groups: dict[tuple[str, str], list] = {}
    for st in scan.studies:
        groups.setdefault((st.patient_id, st.patient_name), []).append(st)
    return [PatientEntry(pid, name, studies[0].birth_date,
                         tuple(sorted(studies, key=lambda s: s.study_date, reverse=True)))
            for (pid, name), studies in groups.items()]


Listener = Callable[[str], None]


class Session:
    """What is open and what the user did with it. Listeners get one word for what changed:
    ``opened``, ``series`` (another series or study is shown), ``selection``, ``result``,
    ``notes``, ``save_failed`` (the study's work could not be written: :attr:`save_errors`),
    ``refused`` (an edit was refused: :attr:`refusal` says why)."""

    def __init__(self, store: StateStore | None = None):
        self.store = store or StateStore()
        self.scan = None  # dicom.ScanResult
        self.works: dict[str, StudyWork] = {}
        self.study_uid: str | None = None
        self.notes: list[str] = []
        self.save_errors: list[str] = []
        self.refusal: str | None = None
        # the spinal canal found on each slice (slice key -> Canal, or None: not found), filled
        # by whoever searches (the window's workers); slow to find, so kept
        self.canals: dict[str, object] = {}
        self._listeners: list[Listener] = []
        # scrolling is saved, but a window may ask to write it later (flush()), so that a
        # wheel turn does not fsync a file per slice; every other edit is written at once
        self.defer_scroll_saves = False
        self._pending: set[str] = set()
        # where the writes go: None, written here and now; a window gives its own thread
        # (core/writes.py: an fsync in the GUI thread stalled it) and reports what failed
        # there through :meth:`save_failed`
        self.writes: OrderedWrites | None = None

    # --- observers -------------------------------------------------------------------------

    def subscribe(self, fn: Listener) -> None:
        self._listeners.append(fn)

    def _emit(self, what: str) -> None:
        for fn in list(self._listeners):
            fn(what)

    def note(self, text: str) -> None:
        self.notes.append(text)
        self._emit("notes")

    # --- what is open ----------------------------------------------------------------------

    def open(self, scan, notes=()) -> None:
        """Show a scanned folder; keeps the work of studies already open (by UID), restores
        saved work of the others, and shows the proposed series of the first study (or the
        series the user was last on)."""
        from .dicom.model import propose_stack

        self.scan = scan
        self.notes = list(notes)
        for st in scan.studies:
            if st.study_uid not in self.works:
                locked = self.store.lock(st.study_uid)
                work, n = self.store.load(st.study_uid)
                work.read_only = not locked
                self.works[st.study_uid] = work
                self.notes.extend(n)
                if not locked:
                    self.notes.append(READ_ONLY)
        self._emit("opened")
        first = propose_stack(scan.stacks)
        if first is not None:
            self.show_study(first.study_uid)
        if self.notes:
            self._emit("notes")

    def patients(self) -> list[PatientEntry]:
        return group_patients(self.scan) if self.scan else []

    def stack(self, key: str | None = None):
        """The stack with this key (default: the current one), or None."""
        key = key or self.series_key
        if self.scan is None or key is None:
            return None
        return next((s for s in self.scan.stacks if s.key == key), None)

    def study(self, uid: str | None = None):
        uid = uid or self.study_uid
        if self.scan is None or uid is None:
            return None
        return next((s for s in self.scan.studies if s.study_uid == uid), None)

    @property
    def work(self) -> StudyWork | None:
        return self.works.get(self.study_uid) if self.study_uid else None

    @property
    def series_key(self) -> str | None:
        w = self.work
        return w.current_series if w else None

    @property
    def selection(self) -> Selection | None:
        w = self.work
        if w is None or w.current_series is None:
            return None
        return w.selections.get(w.current_series)

    def show_study(self, study_uid: str) -> None:
        """Switch to a study: its last series, else its proposed one."""
        from .dicom.model import propose_stack

        study = self.study(study_uid)
        work = self.works[study_uid]
        keys = [s.key for s in study.stacks]
        key = work.current_series if work.current_series in keys else None
        if key is None:
            axial_with_roi = [k for k, s in work.selections.items() if k in keys and s.roi]
            key = axial_with_roi[0] if axial_with_roi else propose_stack(study.stacks).key
        self.show_series(key)

    def show_series(self, key: str) -> None:
        """Show another series (of any open study). The selection of every other series stays
        as it was; this series' selection is restored, or starts on its middle slice."""
        stack = self.stack(key)
        if stack is None:
            raise KeyError(key)
        self.study_uid = stack.study_uid
        work = self.works[stack.study_uid]
        work.current_series = key
        sel = work.selections.get(key)
        keys = [s.key for s in stack.slices]
        if sel is None or sel.slice_key not in keys:
            mid = stack.slices[len(stack.slices) // 2].key
            sel = dataclasses.replace(sel, slice_key=mid, roi=None, viewed_slice=None,
                                      overrides=()) if sel else Selection(
                stack.study_uid, key, mid)
            work.selections[key] = sel
        elif sel.viewed_slice is not None and sel.viewed_slice not in keys:
            work.selections[key] = dataclasses.replace(sel, viewed_slice=None)
        self._follow_level(work, key)
        self._save(work)
        self._emit("series")

    # --- editing ---------------------------------------------------------------------------

    def writable(self, work: StudyWork | None = None) -> bool:
        """Whether this study may be edited here; a read-only study (open elsewhere) becomes
        writable once the other window or program has closed it: then what it saved is loaded
        (the edit that found this out is refused, so the user sees that state first)."""
        work = work or self.work
        if work is None or not work.read_only:
            return True
        if not self.store.lock(work.study_uid):
            self._refuse(READ_ONLY)
            return False
        fresh, notes = self.store.load(work.study_uid)
        work.selections, work.marks = fresh.selections, fresh.marks
        work.undo.clear()
        work.redo.clear()
        work.read_only = False
        if work.current_series is not None and self.study_uid == work.study_uid:
            self.show_series(work.current_series)
        self._refuse("The other window has closed this study: its saved work is loaded, and "
                     "you can edit it here now." + (" " + " ".join(notes) if notes else ""))
        return False

    def _refuse(self, why: str) -> None:
        self.refusal = why
        self._emit("refused")

    def read_only(self) -> bool:
        w = self.work
        return bool(w and w.read_only)

    def edit(self, text: str, *, undoable: bool = True, **changes) -> bool:
        """Change fields of the current selection as one undo step; False if nothing changed
        (or the study is read-only here: ``refused``). Changing what the model sees withdraws
        confirmed overrides."""
        sel, work = self.selection, self.work
        if sel is None:
            return False
        view_only = set(changes) <= {"viewed_slice"}
        if not view_only and not self.writable(work):
            return False
        if "roi" in changes and changes["roi"] is not None:
            changes["roi"] = tuple(int(v) for v in changes["roi"])
        if any(k in MODEL_FIELDS for k in changes) and "overrides" not in changes:
            changes["overrides"] = ()
        diff = tuple((k, getattr(sel, k), v) for k, v in changes.items()
                     if getattr(sel, k) != v)
        if not diff:
            return False
        self._apply(work, sel.series_key, {k: new for k, _, new in diff})
        if undoable and any(k != "overrides" for k, _, _ in diff):
            work.undo.append(Edit(text, work.study_uid, sel.series_key, diff))
            work.redo.clear()
        return True

    def _apply(self, work: StudyWork, series_key: str | None, values: dict) -> None:
        if series_key is None:  # the study's own fields (the disc-level marks)
            for k, v in values.items():
                setattr(work, k, v)
            for key in list(work.selections):
                self._follow_level(work, key)
            self._save(work)
            self._emit("selection")
            return
        sel = work.selections[series_key]
        work.selections[series_key] = dataclasses.replace(sel, **values)
        self._follow_level(work, series_key)
        if set(values) - {"viewed_slice"}:
            self._save(work)  # looking at another slice changes nothing saved
        self._emit("selection")

    def _follow_level(self, work: StudyWork, series_key: str) -> Selection:
        """Unless the user set the level by hand, the level follows the disc marks: the one
        proposed for the selection's slice (not an undo step: it is derived)."""
        sel = work.selections[series_key]
        if sel.level_source == "hand":
            return sel
        level = self.proposed_level(sel) if work.marks else None
        source = "proposed" if level else None
        if (level, source) != (sel.level, sel.level_source) and (level or sel.level_source):
            sel = dataclasses.replace(sel, level=level, level_source=source)
            work.selections[series_key] = sel
        return sel

    def proposed_level(self, sel: Selection | None = None) -> str | None:
        """The level proposed for a selection's slice from its study's disc marks."""
        sel = sel or self.selection
        work = self.works.get(sel.study_uid) if sel else None
        stack = self.stack(sel.series_key) if sel and sel.series_key else None
        if work is None or stack is None or not work.marks or sel.slice_key is None:
            return None
        try:
            g = stack.slices[stack.find_slice(sel.slice_key)].geometry
        except TfesiError:
            return None
        return propose_level(work.marks, g)

    def set_slice(self, slice_key: str) -> bool:
        """Look at another slice. An ROI stays on the slice it was drawn on (as in Horos and
        OsiriX): with an ROI, scrolling changes only the slice looked at, and the ROI and its
        result stay with their slice. Without one, the selection's slice follows (saved, at
        the next :meth:`flush` when ``defer_scroll_saves`` is set). Never an undo step."""
        sel = self.selection
        if sel is None:
            return False
        if sel.roi is not None or self.read_only():  # read-only: looking is allowed
            return self.edit("Change slice", undoable=False, viewed_slice=None
                             if slice_key == sel.slice_key else slice_key)
        self._scrolling = self.defer_scroll_saves
        try:
            return self.edit("Change slice", undoable=False, slice_key=slice_key,
                             viewed_slice=None)
        finally:
            self._scrolling = False

    def go_to_roi(self) -> bool:
        """Back to the slice the ROI was drawn on."""
        sel = self.selection
        return sel is not None and sel.viewed_slice is not None and self.edit(
            "Go to the ROI", undoable=False, viewed_slice=None)

    def flush(self) -> None:
        """Write the studies whose scrolling was not written yet."""
        for uid in list(self._pending):
            self._pending.discard(uid)
            if uid in self.works:
                self._save(self.works[uid], now=True)

    def set_roi(self, roi: Rect | None, text: str = "Draw ROI", **more) -> bool:
        """Draw, move or delete the ROI. Drawn while looking at another slice than the ROI's,
        it is a new ROI on that slice: one undo step (undo brings the old one back)."""
        sel = self.selection
        if sel is None:
            return False
        if roi is None:
            return self.edit("Delete ROI", roi=None, **more)
        if sel.viewed_slice is not None:
            return self.edit("Draw ROI on another slice", roi=roi, slice_key=sel.viewed_slice,
                             viewed_slice=None, **more)
        if sel.roi is not None and text == "Draw ROI":
            text = "Move ROI"
        return self.edit(text, roi=roi, **more)

    def set_side(self, side: str | None) -> bool:
        if side not in (None, *SIDES):
            raise ValueError(side)
        return self.edit(f"Side {side or 'none'}", side=side)

    def set_level(self, level: str | None) -> bool:
        """The level chosen by hand; None goes back to the level proposed from the marks."""
        if level not in (None, *LEVELS):
            raise ValueError(level)
        return self.edit(f"Level {level or 'none'}", level=level,
                         level_source="hand" if level else None)

    @property
    def marks(self) -> tuple[LevelMark, ...]:
        w = self.work
        return w.marks if w else ()

    def _edit_work(self, text: str, **values) -> bool:
        work = self.work
        if work is None or not self.writable(work):
            return False
        diff = tuple((k, getattr(work, k), v) for k, v in values.items()
                     if getattr(work, k) != v)
        if not diff:
            return False
        self._apply(work, None, {k: new for k, _, new in diff})
        work.undo.append(Edit(text, work.study_uid, None, diff))
        work.redo.clear()
        return True

    def add_mark(self, mark: LevelMark) -> bool:
        """Mark a disc on the sagittal (replaces that disc's earlier mark); one undo step."""
        return self._edit_work(f"Mark {mark.disc}", marks=with_mark(self.marks, mark))

    def remove_mark(self, disc: str) -> bool:
        return self._edit_work(f"Remove mark {disc}",
                               marks=tuple(m for m in self.marks if m.disc != disc))

    def clear_marks(self) -> bool:
        return self._edit_work("Clear disc marks", marks=())

    # --- the clinical values (issue 25; docs/architecture.md, "Clinical data") ---------------

    @property
    def clinical_values(self) -> dict[str, str]:
        """The clinical values typed for the current study ({variable: text}; absent =
        missing). They belong to the study (patient), not to one series."""
        w = self.work
        return dict(w.clinical) if w else {}

    def set_clinical(self, name: str, text: str, label: str | None = None) -> bool:
        """Type one clinical value (empty: missing) as one undo step, saved with this study
        only (invariant 9). Stored as typed, so that a wrong value comes back with its sentence
        rather than vanishing."""
        from .state_store import CLINICAL_TEXT_MAX

        text = (text or "").strip()[:CLINICAL_TEXT_MAX]
        values = self.clinical_values
        if values.get(name, "") == text:
            return False
        if text:
            values[name] = text
        else:
            values.pop(name, None)
        return self._edit_work(f"{label or name} {text or 'cleared'}",
                               clinical=tuple(sorted(values.items())))

    def combined(self, model):
        """(the current result combined with the study's clinical values by ``model``, or
        None; the sentence why there is none, or None). No result, no combined result."""
        from .clinical import ClinicalError, canonical_name, combine

        r = self.current_result()
        if model is None or r is None:
            return None, None
        # values of variables this model does not use (typed for another model) are kept in
        # the study, not used
        values = {k: v for k, v in self.clinical_values.items()
                  if canonical_name(k) in model.names}
        try:
            return combine(r.prediction, values, model), None
        except ClinicalError as e:
            return None, e.message

    def add_measurement(self, m: Measurement) -> bool:
        sel = self.selection
        return sel is not None and self.edit("Add measurement",
                                             measurements=sel.measurements + (m,))

    def replace_measurement(self, old: Measurement, new: Measurement) -> bool:
        sel = self.selection
        if sel is None or old not in sel.measurements:
            return False
        ms = tuple(new if m == old else m for m in sel.measurements)
        return self.edit("Move measurement", measurements=ms)

    def delete_measurement(self, m: Measurement) -> bool:
        sel = self.selection
        if sel is None or m not in sel.measurements:
            return False
        return self.edit("Delete measurement",
                         measurements=tuple(x for x in sel.measurements if x != m))

    def tag_measurement(self, m: Measurement, tag: str | None) -> bool:
        """Tag a length as the foraminal width or the nerve root width (one of each: the tag
        moves from any other measurement); None removes its tag."""
        sel = self.selection
        if sel is None or m not in sel.measurements or tag not in (None, *TAGS):
            return False
        if tag is not None and m.kind != "length":
            return False
        ms = tuple(dataclasses.replace(x, tag=tag) if x == m else
                   dataclasses.replace(x, tag=None) if tag is not None and x.tag == tag else x
                   for x in sel.measurements)
        return self.edit(f"Tag {tag or 'none'}", measurements=ms)

    def clear_measurements(self) -> bool:
        sel = self.selection
        if sel is None:
            return False
        keep = tuple(m for m in sel.measurements if m.slice_key != sel.slice_key)
        return self.edit("Clear measurements", measurements=keep)

    def confirm_override(self, kinds) -> bool:
        """The user confirmed going on despite these safety gates, for this selection only.
        Not an undo step; any change of ROI, slice or side withdraws it."""
        return self.edit("Override", undoable=False, overrides=tuple(sorted(set(kinds))))

    # --- undo ------------------------------------------------------------------------------

    def can_undo(self) -> bool:
        return bool(self.work and self.work.undo)

    def can_redo(self) -> bool:
        return bool(self.work and self.work.redo)

    def undo_text(self) -> str | None:
        return self.work.undo[-1].text if self.can_undo() else None

    def redo_text(self) -> str | None:
        return self.work.redo[-1].text if self.can_redo() else None

    def undo(self) -> bool:
        return self._step(back=True)

    def redo(self) -> bool:
        return self._step(back=False)

    def _step(self, *, back: bool) -> bool:
        work = self.work
        if work is None or not self.writable(work):
            return False
        src, dst = (work.undo, work.redo) if back else (work.redo, work.undo)
        if not src:
            return False
        e = src.pop()
        dst.append(e)
        values = {k: (old if back else new) for k, old, new in e.changes}
        if any(k in MODEL_FIELDS for k in values):
            values["overrides"] = ()
        if e.series_key is not None and work.current_series != e.series_key:
            self.show_series(e.series_key)  # show what is undone
        self._apply(work, e.series_key, values)
        return True

    # --- results ---------------------------------------------------------------------------

    def keep(self, result: Result) -> None:
        """Keep a result with the selection it was made for (dropped if that study is no longer
        open)."""
        work = self.works.get(result.selection.study_uid)
        if work is None:
            return
        work.result = result
        work.results.pop(result.selection.model_key(), None)
        work.results[result.selection.model_key()] = result
        while len(work.results) > 8:
            work.results.pop(next(iter(work.results)))
        self._emit("result")

    def set_result(self, selection: Selection, prediction, model_input=None) -> None:
        self.keep(Result(selection, prediction, model_input))

    def set_comparison(self, source: Selection, result: Result) -> None:
        """Keep the other side's prediction made for the selection ``source`` (for comparison
        only; never saved, never the injection side)."""
        work = self.works.get(source.study_uid)
        if work is not None:
            work.comparison = Comparison(source.model_key(), result)
            self._emit("result")

    def comparison(self) -> Result | None:
        """The other side's prediction if it was made for the current selection."""
        w, sel = self.work, self.selection
        if w is None or sel is None or w.comparison is None:
            return None
        c = w.comparison
        return c.result if c.source_key == sel.model_key() else None

    @property
    def result(self) -> Result | None:
        """The kept result of the current series (current or stale), with the selection as it
        is now when it is current (its level, measurements: one place)."""
        w, sel = self.work, self.selection
        if w is None or w.result is None:
            return None
        kept = w.results.get(sel.model_key()) if sel is not None else None
        if kept is not None:
            return kept.for_selection(sel)
        r = w.result
        if r.selection.series_key != w.current_series:
            return None
        return r if r.stale_for(sel) else r.for_selection(sel)

    def current_result(self) -> Result | None:
        """The kept result if it matches the current selection, else None."""
        r = self.result
        return r if r is not None and not r.stale_for(self.selection) else None

    def is_stale(self) -> bool:
        r = self.result
        return r is not None and r.stale_for(self.selection)

    # --- the anatomy --------------------------------------------------------------------

    def canal(self, slice_key: str | None) -> tuple[bool, object]:
        """(known, canal) of a slice: known False until it was searched."""
        if slice_key in self.canals:
            return True, self.canals[slice_key]
        return False, None

    def set_canal(self, slice_key: str, canal) -> None:
        self.canals[slice_key] = canal
        self._emit("anatomy")

    def geometry_of(self, slice_key: str | None):
        """The geometry of a slice of the current series (None if unknown)."""
        stack = self.stack()
        if stack is None or slice_key is None:
            return None
        try:
            return stack.slices[stack.find_slice(slice_key)].geometry
        except TfesiError:
            return None

    def assessment(self):
        """The current selection on its ROI's slice: position, gates, hint, proposed side
        (:mod:`.assessment`)."""
        from .assessment import assess

        sel = self.selection
        key = sel.slice_key if sel else None
        known, canal = self.canal(key)
        return assess(sel, self.geometry_of(key), canal, known=known)

    def side_of_measurement(self, m: Measurement) -> str | None:
        """The patient side of a measurement's midpoint from the canal of its slice."""
        from .assessment import point_side

        known, canal = self.canal(m.slice_key)
        if not known or canal is None:
            return None
        xs, ys = zip(*m.points[:2], strict=True)
        return point_side(self.geometry_of(m.slice_key), canal, sum(xs) / 2, sum(ys) / 2)

    def propose_side(self) -> bool:
        """With an ROI and no injection side yet, take the side the anatomy puts the ROI on
        (one undo step, "Side from the anatomy")."""
        sel = self.selection
        if sel is None or sel.roi is None or sel.side is not None or self.read_only():
            return False
        side = self.assessment().proposed_side
        return side is not None and self.edit("Side from the anatomy", side=side)

    def kim(self):
        """((grade, foramen, root) or None, text): the Kim grade from the tagged widths on the
        injection side only (:func:`.measure.kim_for_side`)."""
        from .measure import kim_for_side

        sel = self.selection
        if sel is None:
            return None, ""
        g = self.geometry_of(sel.slice_key)
        spacing = g.spacing if g is not None else (1.0, 1.0)
        return kim_for_side(sel.measurements, spacing, sel.side, self.side_of_measurement)

    # --- saving ----------------------------------------------------------------------------

    def _save(self, work: StudyWork, *, now: bool = False) -> None:
        if getattr(self, "_scrolling", False) and not now:
            self._pending.add(work.study_uid)
            return
        self._pending.discard(work.study_uid)
        if work.read_only:
            return  # edits are refused; scrolling is not saved (another window writes it)
        if self.writes is not None:  # the state of now, written in the writes' thread
            uid, document = work.study_uid, self.store.document(work)
            self.writes.submit(("state", uid), lambda: self.store.write(uid, document))
            return
        try:
            self.store.save(work)
        except (OSError, TfesiError) as e:
            self.save_failed(e)

    def save_failed(self, error: Exception) -> None:
        """A write of the study's work failed: say so (``save_failed``, :attr:`save_errors`)."""
        if isinstance(error, TfesiError):
            reason = error.message
        else:
            reason = getattr(error, "strerror", None) or str(error)
        msg = f"The work on this study could not be saved ({reason})."
        self.save_errors.append(msg)
        self.notes.append(msg)
        self._emit("save_failed")

    def close(self) -> None:
        """Write what is pending and release the studies' locks (the window closes)."""
        self.flush()
        if self.writes is not None:
            self.writes.close(10.0)
        self.store.unlock_all()
