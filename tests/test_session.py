"""The session model without Qt: one selection per series of each study, undo/redo, results
kept with their selection, state saved per study (and only into that study's file), and state
files of the wrong shape ignored with a note."""

import dataclasses
import json
import os
import shutil
import stat

import pytest

from tfesi_desktop.core.commands import drop_duplicates, open_study
from tfesi_desktop.core.paths import demo_study
from tfesi_desktop.core.runtime import Provenance
from tfesi_desktop.core.session import Measurement, Selection, Session, StateStore


@pytest.fixture(scope="module")
def three_patients(tmp_path_factory):
    """A folder of three synthetic patients (each with an axial and a sagittal series)."""
    from tfesi_desktop.core.synth.cohort import make_cohort

    out = tmp_path_factory.mktemp("three")
    make_cohort(out, patients=3, seed=21, jobs=1)
    return out


def _axial(scan, study):
    return next(s for s in study.stacks if s.orientation_name().startswith("axial"))


def _sagittal(study):
    return next(s for s in study.stacks if s.orientation_name().startswith("sagittal"))


@dataclasses.dataclass(frozen=True)
class FakePrediction:
    provenance: Provenance = Provenance("m", "1", "0" * 64, True, 3, "none", 13, (1, 2, 30, 30),
                                        "right", "now", "favourable")


def test_edits_are_undoable_one_step_each_and_saved(tmp_path):
    s = Session(StateStore(tmp_path / "state"))
    s.open(open_study(demo_study()).scan)
    sel = s.selection
    assert sel is not None and sel.roi is None and sel.slice_key is not None
    assert s.set_roi((100, 90, 40, 40))  # one drag = one call = one step
    assert s.set_roi((103, 90, 40, 40))
    assert s.set_side("right") and s.set_level("C6")
    m = Measurement(sel.slice_key, ((1.0, 2.0), (11.0, 2.0)))
    assert s.add_measurement(m)
    assert [e.text for e in s.work.undo] == ["Draw ROI", "Move ROI", "Side right", "Level C6",
                                            "Add measurement"]
    assert s.undo() and s.selection.measurements == ()
    assert s.undo() and s.selection.level is None
    assert s.undo() and s.selection.side is None
    assert s.undo() and s.selection.roi == (100, 90, 40, 40)
    assert s.redo() and s.selection.roi == (103, 90, 40, 40)
    assert s.set_roi(None) and s.selection.roi is None  # delete
    assert s.undo_text() == "Delete ROI" and s.undo() and s.selection.roi == (103, 90, 40, 40)
    assert not s.can_redo() or s.redo_text() == "Delete ROI"
    # scrolling is not an undo step; the ROI stays on its slice (only the view moves)
    n = len(s.work.undo)
    roi_slice, other = s.selection.slice_key, s.stack().slices[0].key
    s.set_slice(other)
    assert len(s.work.undo) == n and s.selection.slice_key == roi_slice
    assert s.selection.view_key == other and s.selection.roi_elsewhere()
    # what was saved comes back in a new session (another process would find it locked)
    s.close()
    s2 = Session(StateStore(tmp_path / "state"))
    s2.open(open_study(demo_study()).scan)
    assert s2.selection == dataclasses.replace(s.selection, viewed_slice=None)
    assert not s2.read_only()
    f = s.store.file(s.study_uid)
    assert stat.S_IMODE(os.stat(f).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(f.parent).st_mode) == 0o700


def test_results_go_stale_level_follows_and_overrides_lapse(tmp_path):
    s = Session(StateStore(tmp_path))
    s.open(open_study(demo_study()).scan)
    s.set_roi((100, 90, 40, 40))
    s.set_side("right")
    s.confirm_override(["side"])
    assert s.selection.overrides == ("side",)
    s.set_result(s.selection, FakePrediction())
    assert s.current_result() is not None and not s.is_stale()
    s.set_level("C7")  # not a model input: the result follows, panel and report agree
    assert not s.is_stale() and s.result.level == "C7"
    # what is written out reads the level from the result's selection (its only place)
    assert s.current_result().level == "C7" and not hasattr(s.result.prediction.provenance,
                                                            "level")
    s.set_roi((101, 90, 40, 40))
    assert s.is_stale() and s.current_result() is None
    assert s.selection.overrides == ()  # a moved ROI needs a new confirmation
    s.undo()
    assert s.selection.roi == (100, 90, 40, 40) and s.selection.overrides == ()
    assert s.is_stale()  # the result was made with the override: it does not come back


def test_three_patients_state_never_crosses_and_sagittal_round_trip_loses_nothing(
        three_patients, tmp_path):
    store = StateStore(tmp_path / "state")
    s = Session(store)
    opened = open_study(three_patients)
    s.open(opened.scan)
    patients = s.patients()
    assert len(patients) == 3 and all(len(p.studies) == 1 for p in patients)
    studies = [p.studies[0] for p in patients]
    rois = {}
    for i, st in enumerate(studies):
        s.show_series(_axial(s.scan, st).key)
        rois[st.study_uid] = (80 + i, 90, 40, 40)
        s.set_roi(rois[st.study_uid])
        s.set_side("left" if i % 2 else "right")
        s.set_level("C6")
        s.add_measurement(Measurement(s.selection.slice_key, ((0.0, 0.0), (10.0, 0.0))))
    # moving between patients changed nothing of the others
    for st in studies:
        s.show_study(st.study_uid)
        assert s.selection.roi == rois[st.study_uid] and s.selection.level == "C6"
    # a glance at the sagittal localizer and back loses nothing
    st0 = studies[0]
    s.show_study(st0.study_uid)
    before = s.selection
    s.show_series(_sagittal(st0).key)
    assert s.selection.series_key != before.series_key and s.selection.roi is None
    s.show_series(before.series_key)
    assert s.selection == before
    # every state file holds its own study only
    for st in studies:
        d = json.loads(store.file(st.study_uid).read_text())
        assert d["study_uid"] == st.study_uid
        own = {x.key for x in st.stacks}
        assert {x["series_key"] for x in d["selections"]} <= own
        assert any(tuple(x["roi"] or ()) == rois[st.study_uid] for x in d["selections"])
    # reopening patient 0 alone (a fresh session) restores its work
    s2 = Session(store)
    s2.open(open_study(three_patients / "P00000").scan)
    assert s2.selection == before


def test_bad_state_files_are_ignored_with_a_note(tmp_path):
    store = StateStore(tmp_path)
    scan = open_study(demo_study()).scan
    uid = scan.studies[0].study_uid
    stack = _axial(scan, scan.studies[0])
    tmp_path.mkdir(exist_ok=True)

    def load(content):
        store.file(uid).write_text(content)
        s = Session(store)
        s.open(scan)  # never raises
        return s

    good = {"schema": "tfesi-study-state", "version": 2, "study_uid": uid,
            "current_series": stack.key,
            "selections": [{"series_key": stack.key, "slice_key": stack.slices[3].key,
                            "roi": [100, 90, 40, 40], "side": "left", "level": "C6"}]}
    s = load(json.dumps(good))
    assert s.selection.roi == (100, 90, 40, 40) and not s.notes
    for bad_roi in ("[100, 90, Infinity, 40]", "[100, 90, 40]", '"x"', "[1.5, 2, 3, 4]"):
        text = json.dumps(good).replace("[100, 90, 40, 40]", bad_roi)
        s = load(text)
        assert s.selection.roi is None and s.selection.side == "left", bad_roi
        assert any("ROI ignored" in n for n in s.notes), bad_roi
    for broken in ("{", "[]", '{"schema": "other"}', json.dumps({**good, "study_uid": "1.2"}),
                   json.dumps({**good, "selections": {"a": 1}}), "\x00\x01"):
        s = load(broken)
        assert s.selection is not None and s.selection.roi is None, broken
        assert any("ignored" in n for n in s.notes), broken
    # the old one-selection format still loads
    old = {"study_uid": uid, "series_key": stack.key, "slice_key": stack.slices[2].key,
           "roi": [10, 20, 30, 30], "side": "right", "level": None}
    s = load(json.dumps(old))
    assert s.selection.roi == (10, 20, 30, 30) and s.selection.side == "right"


def test_duplicate_instances_are_dropped_with_a_note(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(demo_study(), a)
    shutil.copytree(demo_study(), b)  # the same study twice (as a DICOMDIR copy would be)
    opened = open_study(tmp_path)
    single = open_study(demo_study()).scan
    assert [len(x.slices) for x in opened.scan.stacks] == [len(x.slices) for x in single.stacks]
    assert opened.notes and "duplicate" in opened.notes[0]
    assert drop_duplicates(single) == []


def test_a_selection_is_plain_data():
    s = Selection("1", "2", "3", (1, 2, 3, 4), "left", "C5")
    assert s.complete() and s.model_key() == ("1", "2", "3", (1, 2, 3, 4), "left", ())
