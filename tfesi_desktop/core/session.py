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
import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .errors import TfesiError
from .fileio import private_dir, write_atomically
from .levels import DISCS, LevelMark, propose_level, with_mark
from .measure import TAGS
from .paths import data_dir

Rect = tuple[int, int, int, int]
SIDES = ("right", "left")
LEVELS = ("C5", "C6", "C7", "C8")
STATE_SCHEMA = "tfesi-study-state"
STATE_VERSION = 2
# the fields of a selection that the model's input depends on: a change makes a result stale
# and withdraws any override the user had confirmed
MODEL_FIELDS = ("study_uid", "series_key", "slice_key", "roi", "side")


@dataclass(frozen=True)
class Measurement:
    """A measurement drawn on one slice, in stored pixel coordinates (x = column, y = row,
    continuous: pixel (r, c) covers [c, c+1) x [r, r+1)): a ``length`` between two points or an
    ``angle`` at the middle of three (:mod:`.measure`). A length may be tagged ``foramen``
    (foraminal width) or ``root`` (nerve root width): the two give the Kim grade."""

    slice_key: str
    points: tuple[tuple[float, float], ...]
    kind: str = "length"
    tag: str | None = None

    def length_mm(self, spacing: tuple[float, float]) -> float:
        (x0, y0), (x1, y1) = self.points[:2]
        return math.hypot((x1 - x0) * spacing[1], (y1 - y0) * spacing[0])


@dataclass(frozen=True)
class Selection:
    """What the user chose on one study: the one way a selection is spelled.

    ``roi`` is (x, y, w, h) in *stored* pixels of the slice ``slice_key`` (SOP Instance UID, or
    ``uid:frame``); ``side`` the patient's injection side; ``overrides`` the safety gates the user
    has confirmed overriding for exactly this ROI, slice and side (cleared by any change)."""

    study_uid: str
    series_key: str | None = None
    slice_key: str | None = None
    roi: Rect | None = None
    side: str | None = None
    level: str | None = None
    measurements: tuple[Measurement, ...] = ()
    overrides: tuple[str, ...] = ()
    # "hand" when the user chose the level, "proposed" when it follows the disc marks
    level_source: str | None = None

    def model_key(self) -> tuple:
        """What a prediction depends on (plus the overrides that let it through)."""
        return tuple(getattr(self, f) for f in MODEL_FIELDS) + (self.overrides,)

    def complete(self) -> bool:
        return None not in (self.series_key, self.slice_key, self.roi, self.side)

    def measurements_on(self, slice_key: str | None) -> tuple[Measurement, ...]:
        return tuple(m for m in self.measurements if m.slice_key == slice_key)


@dataclass(frozen=True)
class Result:
    """A prediction kept together with the selection it was made for."""

    selection: Selection
    prediction: object  # runtime.Prediction
    model_input: object = None  # preprocess.ModelInput of the ROI as drawn (for the report)

    def stale_for(self, selection: Selection | None) -> bool:
        return selection is None or selection.model_key() != self.selection.model_key()


@dataclass(frozen=True)
class Edit:
    """One undo step: the fields of one series' selection it changed, old and new values
    (``series_key`` None: fields of the study's work itself, e.g. the disc-level marks)."""

    text: str
    study_uid: str
    series_key: str | None
    changes: tuple[tuple[str, object, object], ...]  # (field, old, new)


@dataclass
class StudyWork:
    """Everything the user did on one study."""

    study_uid: str
    current_series: str | None = None
    selections: dict[str, Selection] = field(default_factory=dict)  # by series key
    undo: list[Edit] = field(default_factory=list)
    redo: list[Edit] = field(default_factory=list)
    result: Result | None = None
    marks: tuple[LevelMark, ...] = ()  # disc levels marked on the sagittal (patient mm)
    # the other side's prediction, for comparison only: (model key of the selection it was
    # mirrored from, Result)
    comparison: tuple | None = None


# --- saving --------------------------------------------------------------------------------------

def _roi(v) -> Rect:
    if (not isinstance(v, list | tuple) or len(v) != 4
            or not all(isinstance(x, int | float) and not isinstance(x, bool) for x in v)
            or not all(math.isfinite(x) and float(x).is_integer() for x in v)):
        raise ValueError(f"the ROI {v!r} is not four whole numbers")
    x, y, w, h = (int(a) for a in v)
    if x < 0 or y < 0 or w <= 0 or h <= 0:
        raise ValueError(f"the ROI {v!r} has a negative position or no size")
    return x, y, w, h


def _opt_str(d, key, allowed=None):
    v = d.get(key)
    if v is None:
        return None
    if not isinstance(v, str) or (allowed is not None and v not in allowed):
        raise ValueError(f"{key} {v!r} is not valid")
    return v


def _measurement(d) -> Measurement:
    pts = d.get("points")
    kind = d.get("kind", "length")
    if (kind not in ("length", "angle") or not isinstance(d.get("slice_key"), str)
            or not isinstance(pts, list) or len(pts) != (2 if kind == "length" else 3)
            or d.get("tag") not in (None, *TAGS)):
        raise ValueError("a measurement has not the expected shape")
    out = []
    for p in pts:
        if (not isinstance(p, list) or len(p) != 2
                or not all(isinstance(x, int | float) and math.isfinite(x) for x in p)):
            raise ValueError("a measurement point is not two finite numbers")
        out.append((float(p[0]), float(p[1])))
    return Measurement(d["slice_key"], tuple(out), kind, d.get("tag"))


def selection_from_json(study_uid: str, d: dict, notes: list[str]) -> Selection:
    """A selection from its saved form; fields of the wrong shape are dropped with a note."""
    if not isinstance(d, dict) or not isinstance(d.get("series_key"), str):
        raise ValueError("a saved selection has no series")
    kw: dict = {"series_key": d["series_key"]}
    for key, allowed in (("slice_key", None), ("side", SIDES), ("level", LEVELS),
                         ("level_source", ("hand", "proposed"))):
        try:
            kw[key] = _opt_str(d, key, allowed)
        except ValueError as e:
            notes.append(f"Saved {key} ignored: {e}.")
    if d.get("roi") is not None:
        try:
            kw["roi"] = _roi(d["roi"])
        except ValueError as e:
            notes.append(f"Saved ROI ignored: {e}.")
    ms = []
    for m in d.get("measurements") or []:
        try:
            ms.append(_measurement(m))
        except (ValueError, AttributeError) as e:
            notes.append(f"Saved measurement ignored: {e}.")
    return Selection(study_uid, measurements=tuple(ms), **kw)


def selection_to_json(s: Selection) -> dict:
    return {"series_key": s.series_key, "slice_key": s.slice_key,
            "roi": list(s.roi) if s.roi else None, "side": s.side, "level": s.level,
            "level_source": s.level_source,
            "measurements": [{"kind": m.kind, "slice_key": m.slice_key, "tag": m.tag,
                              "points": [list(p) for p in m.points]} for m in s.measurements]}


def marks_from_json(v, notes: list[str]) -> tuple[LevelMark, ...]:
    marks: tuple[LevelMark, ...] = ()
    for d in v if isinstance(v, list) else []:
        p = d.get("point") if isinstance(d, dict) else None
        if (not isinstance(d, dict) or d.get("disc") not in DISCS or not isinstance(p, list)
                or len(p) != 3 or not all(isinstance(x, int | float) and not isinstance(x, bool)
                                          and math.isfinite(x) for x in p)):
            notes.append("A saved disc-level mark was ignored: it has not the expected shape.")
            continue
        marks = with_mark(marks, LevelMark(d["disc"], tuple(float(x) for x in p)))
    return marks


class StateStore:
    """One JSON file per study in ``folder`` (default ``<data dir>/studies``, mode 0700), named
    by a hash of the StudyInstanceUID (no patient data in names), mode 0600. Overrides are not
    saved: after a restart the user confirms them again."""

    def __init__(self, folder: str | Path | None = None):
        self.folder = Path(folder) if folder else data_dir() / "studies"

    def file(self, study_uid: str) -> Path:
        return self.folder / f"{hashlib.sha256(study_uid.encode()).hexdigest()[:32]}.json"

    def load(self, study_uid: str) -> tuple[StudyWork, list[str]]:
        """The saved work of a study (empty if none) and notes on what was ignored."""
        work, notes = StudyWork(study_uid), []
        f = self.file(study_uid)
        try:
            text = f.read_text(encoding="utf-8")
        except FileNotFoundError:
            return work, notes
        except OSError as e:
            return work, [f"The saved work of this study could not be read ({e.strerror})."]
        try:
            d = json.loads(text)  # Infinity/NaN parse; the field checks refuse them
            if not isinstance(d, dict):
                raise ValueError("not a JSON object")
            if d.get("study_uid") != study_uid:
                raise ValueError("it belongs to another study")
            if d.get("schema") == STATE_SCHEMA and d.get("version") == STATE_VERSION:
                entries = d.get("selections")
                if not isinstance(entries, list):
                    raise ValueError("no list of selections")
                current = d.get("current_series")
                if current is not None and not isinstance(current, str):
                    raise ValueError("the current series is not a name")
            elif "schema" not in d and "series_key" in d:  # version 1: one selection
                entries, current = [d], d.get("series_key")
            else:
                raise ValueError(f"unknown format {d.get('schema')!r} {d.get('version')!r}")
            for e in entries:
                try:
                    s = selection_from_json(study_uid, e, notes)
                except ValueError as err:
                    notes.append(f"A saved selection was ignored: {err}.")
                    continue
                work.selections[s.series_key] = s
            work.current_series = current if current in work.selections else None
            work.marks = marks_from_json(d.get("marks"), notes)
        except (ValueError, TypeError, AttributeError) as e:
            notes.append(f"The saved work of this study was ignored: {e}.")
            return StudyWork(study_uid), notes
        return work, notes

    def save(self, work: StudyWork) -> None:
        """Write this study's file (and only it), atomically, 0600 in a 0700 folder;
        TfesiError on failure."""
        private_dir(self.folder)
        d = {"schema": STATE_SCHEMA, "version": STATE_VERSION, "study_uid": work.study_uid,
             "current_series": work.current_series,
             "selections": [selection_to_json(s) for s in work.selections.values()],
             "marks": [{"disc": m.disc, "point": list(m.point)} for m in work.marks]}
        write_atomically(self.file(work.study_uid), json.dumps(d, indent=1).encode(),
                         private=True)


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
    ``notes``."""

    def __init__(self, store: StateStore | None = None):
        self.store = store or StateStore()
        self.scan = None  # dicom.ScanResult
        self.works: dict[str, StudyWork] = {}
        self.study_uid: str | None = None
        self.notes: list[str] = []
        self.save_errors: list[str] = []
        self._listeners: list[Listener] = []
        # scrolling is saved, but a window may ask to write it later (flush()), so that a
        # wheel turn does not fsync a file per slice; every other edit is written at once
        self.defer_scroll_saves = False
        self._pending: set[str] = set()

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
                work, n = self.store.load(st.study_uid)
                self.works[st.study_uid] = work
                self.notes.extend(n)
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
            sel = dataclasses.replace(sel, slice_key=mid, roi=None) if sel else Selection(
                stack.study_uid, key, mid)
            work.selections[key] = sel
        self._follow_level(work, key)
        self._save(work)
        self._emit("series")

    # --- editing ---------------------------------------------------------------------------

    def edit(self, text: str, *, undoable: bool = True, **changes) -> bool:
        """Change fields of the current selection as one undo step; False if nothing changed.
        Changing what the model sees withdraws confirmed overrides."""
        sel, work = self.selection, self.work
        if sel is None:
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
        new = dataclasses.replace(sel, **values)
        work.selections[series_key] = new
        new = self._follow_level(work, series_key)
        if new.level != sel.level:
            values = {**values, "level": new.level}
        if work.result is not None and work.result.selection.series_key == series_key \
                and "level" in values and not work.result.stale_for(new):
            # the level is not a model input: the kept result follows it (one truth)
            work.result = _restamp(work.result, new)
        self._save(work)
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
        """Scrolling is not an undo step (it would bury the edits), but it is saved (at the
        next :meth:`flush` when ``defer_scroll_saves`` is set)."""
        self._scrolling = self.defer_scroll_saves
        try:
            return self.edit("Change slice", undoable=False, slice_key=slice_key)
        finally:
            self._scrolling = False

    def flush(self) -> None:
        """Write the studies whose scrolling was not written yet."""
        for uid in list(self._pending):
            self._pending.discard(uid)
            if uid in self.works:
                self._save(self.works[uid], now=True)

    def set_roi(self, roi: Rect | None, text: str = "Draw ROI") -> bool:
        if self.selection is not None and self.selection.roi is not None and roi is not None:
            text = "Move ROI" if text == "Draw ROI" else text
        return self.edit(text if roi is not None else "Delete ROI", roi=roi)

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
        if work is None:
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
        if work is None:
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

    def set_result(self, selection: Selection, prediction, model_input=None) -> None:
        """Keep a prediction with the selection it was made for (dropped if that study is no
        longer open)."""
        work = self.works.get(selection.study_uid)
        if work is None:
            return
        r = Result(selection, prediction, model_input)
        current = work.selections.get(selection.series_key)
        if current is not None and not r.stale_for(current) and current.level != \
                selection.level:
            r = _restamp(r, current)
        work.result = r
        self._emit("result")

    def set_comparison(self, source: Selection, result: Result) -> None:
        """Keep the other side's prediction made for the selection ``source`` (for comparison
        only; never saved, never the injection side)."""
        work = self.works.get(source.study_uid)
        if work is not None:
            work.comparison = (source.model_key(), result)
            self._emit("result")

    def comparison(self) -> Result | None:
        """The other side's prediction if it was made for the current selection."""
        w, sel = self.work, self.selection
        if w is None or sel is None or w.comparison is None:
            return None
        key, r = w.comparison
        return r if key == sel.model_key() else None

    @property
    def result(self) -> Result | None:
        w = self.work
        if w is None or w.result is None:
            return None
        return w.result if w.result.selection.series_key == w.current_series else None

    def current_result(self) -> Result | None:
        """The kept result if it matches the current selection, else None."""
        r = self.result
        return r if r is not None and not r.stale_for(self.selection) else None

    def is_stale(self) -> bool:
        r = self.result
        return r is not None and r.stale_for(self.selection)

    # --- saving ----------------------------------------------------------------------------

    def _save(self, work: StudyWork, *, now: bool = False) -> None:
        if getattr(self, "_scrolling", False) and not now:
            self._pending.add(work.study_uid)
            return
        self._pending.discard(work.study_uid)
        try:
            self.store.save(work)
        except (OSError, TfesiError) as e:
            reason = e.message if isinstance(e, TfesiError) else (e.strerror or str(e))
            msg = f"The work on this study could not be saved ({reason})."
            self.save_errors.append(msg)
            self.notes.append(msg)


def _restamp(result: Result, selection: Selection) -> Result:
    """The result with the selection's level written into it and its provenance."""
    pred = result.prediction
    prov = getattr(pred, "provenance", None)
    if prov is not None:
        pred = dataclasses.replace(pred, provenance=dataclasses.replace(prov,
                                                                        level=selection.level))
    return Result(dataclasses.replace(result.selection, level=selection.level,
                                      level_source=selection.level_source), pred,
                  result.model_input)
