"""Disc-level marks on the sagittal and the level proposed for an axial slice: in the session
(undo, saving with the study, proposed vs set by hand), on the synthetic study whose discs are
known."""

import json

import pytest

from tfesi_desktop.core.commands import open_study
from tfesi_desktop.core.geometry import SliceGeometry
from tfesi_desktop.core.levels import DISCS, LevelMark, disc_at, next_disc, propose_level
from tfesi_desktop.core.session import Session, StateStore


def axial(z):
    return SliceGeometry((-50.0, -50.0, z), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.5, 0.5),
                         (200, 200))


MARKS = tuple(LevelMark(d, (0.0, 0.0, -11.0 - 17.0 * i)) for i, d in enumerate(DISCS))


def test_the_nearest_marked_disc_within_half_a_level_gives_the_level():
    assert propose_level(MARKS, axial(-62.0)) == "C6"  # C5-6 at -62
    assert propose_level(MARKS, axial(-62.0 + 8.0)) == "C6"
    assert propose_level(MARKS, axial(-62.0 - 9.0)) == "C7"  # nearer C6-7 (-79)
    assert propose_level(MARKS, axial(-96.0)) == "C8"  # C7-T1
    assert propose_level(MARKS, axial(-140.0)) is None  # far below the last mark
    assert disc_at(MARKS[3:4], axial(-62.0 - 9.0))[0] == "C5-6"  # one mark: 10 mm reach
    assert disc_at(MARKS[3:4], axial(-62.0 - 11.0)) is None
    assert next_disc(MARKS[:2]) == "C4-5" and next_disc(MARKS) is None


def test_the_upper_discs_propose_no_level_the_session_would_refuse():
    """A real sagittal's marks reach C2-3: a slice there was proposed "C3", which the session
    refused when the study's state was read back ("Saved level ignored")."""
    from tfesi_desktop.core.levels import INJECTION_LEVELS
    from tfesi_desktop.core.session import LEVELS

    assert INJECTION_LEVELS == LEVELS
    assert disc_at(MARKS, axial(-11.0))[0] == "C2-3"
    assert propose_level(MARKS, axial(-11.0)) is None
    assert propose_level(MARKS, axial(-28.0)) is None  # C3-4
    assert propose_level(MARKS, axial(-45.0)) == "C5"  # C4-5


def _demo_session(tmp_path):
    from tfesi_desktop.core.paths import demo_study

    s = Session(StateStore(tmp_path / "state"))
    s.open(open_study(demo_study()).scan)
    return s


def test_marks_propose_the_level_undo_and_are_saved_with_the_study(tmp_path):
    s = _demo_session(tmp_path)
    stack = s.stack()
    # the demo's slice 6 (index 5) lies at z = -62: the C5-6 disc
    k = min(range(len(stack.slices)), key=lambda i: abs(stack.slices[i].geometry.position[2]
                                                         + 62.0))
    s.set_slice(stack.slices[k].key)
    assert s.selection.level is None
    assert s.add_mark(LevelMark("C5-6", (0.9, 3.0, -62.0)))
    assert s.selection.level == "C6" and s.selection.level_source == "proposed"
    assert s.add_mark(LevelMark("C6-7", (0.9, 3.0, -79.0)))
    s.set_slice(stack.slices[0].key)  # z = -79.5: C6-7
    assert s.selection.level == "C7" and s.selection.level_source == "proposed"
    s.set_slice(stack.slices[k].key)
    assert s.selection.level == "C6"
    # set by hand: it stays whatever the slice
    assert s.set_level("C5") and s.selection.level_source == "hand"
    s.set_slice(stack.slices[0].key)
    assert s.selection.level == "C5"
    assert s.undo() and s.selection.level == "C7" and s.selection.level_source == "proposed"
    assert s.undo() and [m.disc for m in s.marks] == ["C5-6"]  # the second mark undone
    assert s.selection.level is None  # slice 0 is 17 mm from the one mark left
    assert s.redo() and len(s.marks) == 2
    # saved with the study, restored after a restart
    d = json.loads(s.store.file(s.study_uid).read_text())
    assert [m["disc"] for m in d["marks"]] == ["C5-6", "C6-7"]
    s2 = _demo_session(tmp_path)
    assert s2.marks == s.marks and s2.selection.level == "C7"


def test_bad_saved_marks_are_dropped_with_a_note(tmp_path):
    s = _demo_session(tmp_path)
    s.add_mark(LevelMark("C5-6", (0.0, 0.0, -62.0)))
    f = s.store.file(s.study_uid)
    d = json.loads(f.read_text())
    d["marks"].append({"disc": "C9-10", "point": [0, 0, 0]})
    d["marks"].append({"disc": "C4-5", "point": [0, "x", 0]})
    f.write_text(json.dumps(d))
    work, notes = StateStore(tmp_path / "state").load(s.study_uid)
    assert [m.disc for m in work.marks] == ["C5-6"] and len(notes) == 2


@pytest.mark.parametrize("tilt", [0.0, 10.0])
def test_synthetic_discs_give_the_generated_level(tmp_path, tilt):
    from tfesi_desktop.core.dicom import scan
    from tfesi_desktop.core.synth.cohort import Storage, disc_points, draw_patient, write_study

    p = draw_patient(5, 2, storage=Storage(tilt_deg=tilt))
    row = write_study(p, tmp_path / "s")
    ax = scan(tmp_path / "s").find_stack(row["series_uid"])
    marks = tuple(LevelMark(d, pt) for d, pt in disc_points(p).items())
    g = ax.slices[ax.find_slice(row["sop_instance_uid"])].geometry
    assert propose_level(marks, g) == p.level
