"""The user's work on a study, saved (no Qt): one JSON file per StudyInstanceUID, written
atomically into that study's file only, and one writer per study (docs/architecture.md,
invariant 9).

One writer: a program that opens a study takes an exclusive lock on the study's lock file
(``flock``; released when the program closes the study or ends, even by kill -9). A second
window or program that opens the same study gets no lock and shows the study **read-only**:
it may look and scroll, but edits are refused with a sentence saying why, so that neither
loses the other's edits. When the first closes, the second takes the lock at its next edit and
loads what the first saved."""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from .errors import TfesiError
from .fileio import private_dir, write_atomically
from .levels import DISCS, LevelMark, with_mark
from .measure import TAGS, Measurement
from .paths import data_dir
from .selection import LEVELS, OVERRIDABLE, SIDES, Comparison, Rect, Result, Selection

STATE_SCHEMA = "tfesi-study-state"
STATE_VERSION = 2


@dataclass
class StudyWork:
    """Everything the user did on one study."""

    study_uid: str
    current_series: str | None = None
    selections: dict[str, Selection] = field(default_factory=dict)  # by series key
    undo: list = field(default_factory=list)  # session.Edit
    redo: list = field(default_factory=list)
    result: Result | None = None  # the latest
    # recent results by the model key they were made for: an ROI undone back to an earlier
    # slice finds its result again (the result stays with its slice)
    results: dict = field(default_factory=dict)
    marks: tuple[LevelMark, ...] = ()  # disc levels marked on the sagittal (patient mm)
    # the clinical values typed for this study (issue 25), as typed: ((variable, text), ...),
    # sorted, no empty texts (empty = missing); checked against a model only when combined
    clinical: tuple[tuple[str, str], ...] = ()
    comparison: Comparison | None = None  # the other side's prediction (never saved)
    read_only: bool = False  # open in another window or program (module docstring)


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
    ov = d.get("overrides") or []
    if isinstance(ov, list) and all(k in OVERRIDABLE for k in ov):
        # confirmed for exactly this ROI, slice and side, which are restored with them
        kw["overrides"] = tuple(sorted(set(ov))) if kw.get("roi") and kw.get("side") else ()
    else:
        notes.append("Saved overrides ignored: they have not the expected shape.")
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
            "level_source": s.level_source, "overrides": list(s.overrides),
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


CLINICAL_TEXT_MAX = 40  # characters of one typed clinical value


def clinical_from_json(v, notes: list[str]) -> tuple[tuple[str, str], ...]:
    """The saved clinical values ({variable: text}); entries of the wrong shape are dropped
    with a note (their checks against a model's ranges come later, with the model)."""
    if v is None:
        return ()
    if not isinstance(v, dict):
        notes.append("The saved clinical values were ignored: they have not the expected "
                     "shape.")
        return ()
    out = {}
    for k, t in v.items():
        if (not isinstance(k, str) or not k.isidentifier() or len(k) > 40
                or not isinstance(t, str) or len(t) > CLINICAL_TEXT_MAX):
            notes.append("A saved clinical value was ignored: it has not the expected shape.")
            continue
        if t.strip():
            out[k] = t.strip()
    return tuple(sorted(out.items()))


def _try_lock(fd: int) -> bool:
    """An exclusive, non-blocking lock on an open file (False: another holds it)."""
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


class StateStore:
    """One JSON file per study in ``folder`` (default ``<data dir>/studies``, mode 0700), named
    by a hash of the StudyInstanceUID (no patient data in names), mode 0600, and its lock file
    (see the module docstring)."""

    def __init__(self, folder: str | Path | None = None):
        self.folder = Path(folder) if folder else data_dir() / "studies"
        self._locks: dict[str, int] = {}  # study UID -> open lock file descriptor

    def file(self, study_uid: str) -> Path:
        return self.folder / f"{hashlib.sha256(study_uid.encode()).hexdigest()[:32]}.json"

    # --- one writer per study --------------------------------------------------------------

    def lock(self, study_uid: str) -> bool:
        """Take this study's lock (True), or find it held by another window or program
        (False). Taking it again is a no-op. A folder that cannot hold a lock file (read-only
        disk) gives True: nothing can be saved there anyway, and the save says so."""
        if study_uid in self._locks:
            return True
        try:
            private_dir(self.folder)
            fd = os.open(self.file(study_uid).with_suffix(".lock"),
                         os.O_RDWR | os.O_CREAT, 0o600)
        except (OSError, TfesiError):
            return True
        if not _try_lock(fd):
            os.close(fd)
            return False
        self._locks[study_uid] = fd
        return True

    def unlock(self, study_uid: str) -> None:
        fd = self._locks.pop(study_uid, None)
        if fd is not None:
            os.close(fd)  # closing the descriptor releases the lock

    def unlock_all(self) -> None:
        for uid in list(self._locks):
            self.unlock(uid)

    # --- reading and writing ---------------------------------------------------------------

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
            work.clinical = clinical_from_json(d.get("clinical"), notes)
        except (ValueError, TypeError, AttributeError) as e:
            notes.append(f"The saved work of this study was ignored: {e}.")
            return StudyWork(study_uid), notes
        return work, notes

    def save(self, work: StudyWork) -> None:
        """Write this study's file (and only it), atomically, 0600 in a 0700 folder;
        TfesiError on failure."""
        self.write(work.study_uid, self.document(work))

    @staticmethod
    def document(work: StudyWork) -> bytes:
        """What :meth:`save` writes for ``work`` as it is now."""
        d = {"schema": STATE_SCHEMA, "version": STATE_VERSION, "study_uid": work.study_uid,
             "current_series": work.current_series,
             "selections": [selection_to_json(s) for s in work.selections.values()],
             "marks": [{"disc": m.disc, "point": list(m.point)} for m in work.marks],
             "clinical": dict(work.clinical)}
        return json.dumps(d, indent=1).encode()

    def write(self, study_uid: str, document: bytes) -> None:
        """Write a :meth:`document` as this study's file (see :meth:`save`)."""
        private_dir(self.folder)
        write_atomically(self.file(study_uid), document, private=True)
