"""Lengths, angles and the Kim grade from two tagged lengths; measurements in the session
(listed, tagged, deleted, undone; never moving the ROI)."""

import pytest

from tfesi_desktop.core.measure import (
    angle_deg,
    kim_from,
    kim_grade,
    length_mm,
    measurement_lines,
)
from tfesi_desktop.core.session import Measurement


def test_length_and_angle_in_patient_units():
    assert length_mm(((0, 0), (3, 4)), (1.0, 1.0)) == pytest.approx(5.0)
    assert length_mm(((0, 0), (10, 0)), (2.0, 0.5)) == pytest.approx(5.0)  # columns 0.5 mm
    assert angle_deg(((10, 0), (0, 0), (0, 10)), (1.0, 1.0)) == pytest.approx(90.0)
    # anisotropic pixels: 1 column = 1 mm, 1 row = 2 mm -> atan(2) from the x axis
    assert angle_deg(((10, 0), (0, 0), (1, 1)), (2.0, 1.0)) == pytest.approx(63.434948823)


@pytest.mark.parametrize("foramen,root,grade", [(4.1, 4.0, 0), (4.0, 4.0, 1), (2.1, 4.0, 1),
                                                (2.0, 4.0, 2), (0.8, 4.0, 2)])
def test_kim_grade_from_the_ratio(foramen, root, grade):
    assert kim_grade(foramen, root) == grade


def test_kim_grade_from_two_tagged_lengths():
    ms = (Measurement("s", ((0, 0), (5.2, 0)), tag="foramen"),
          Measurement("s", ((0, 0), (8.0, 0)), tag="root"),
          Measurement("s", ((0, 0), (1, 0), (1, 1)), kind="angle"))
    grade, f, r = kim_from(ms, (0.5, 0.5))
    assert (grade, f, r) == (1, pytest.approx(2.6), pytest.approx(4.0))
    assert kim_from(ms[:1], (0.5, 0.5)) is None
    lines = measurement_lines(ms, (0.5, 0.5))
    assert lines[0] == "1. length 2.6 mm - foraminal width" and lines[2] == "3. angle 90.0 deg"


def test_measurements_in_the_session_tag_delete_undo_and_never_move_the_roi(tmp_path):
    from tfesi_desktop.core.commands import open_study
    from tfesi_desktop.core.paths import demo_study
    from tfesi_desktop.core.session import Session, StateStore

    s = Session(StateStore(tmp_path / "state"))
    s.open(open_study(demo_study()).scan)
    s.set_roi((100, 90, 40, 40))
    k = s.selection.slice_key
    a = Measurement(k, ((10.0, 10.0), (14.0, 10.0)))
    b = Measurement(k, ((10.0, 20.0), (20.0, 20.0)))
    c = Measurement(k, ((0.0, 0.0), (5.0, 0.0), (5.0, 5.0)), kind="angle")
    for m in (a, b, c):
        assert s.add_measurement(m)
    assert s.tag_measurement(a, "foramen") and s.tag_measurement(b, "root")
    assert not s.tag_measurement(c, "root")  # an angle is not a width
    ms = s.selection.measurements
    assert [m.tag for m in ms] == ["foramen", "root", None]
    assert kim_from(ms, (1, 1))[0] == 2  # 4 px of 10: 40 %
    assert s.tag_measurement(ms[1], "foramen")  # the tag moves
    assert [m.tag for m in s.selection.measurements] == [None, "foramen", None]
    assert s.delete_measurement(s.selection.measurements[2])
    assert len(s.selection.measurements) == 2
    assert s.undo() and len(s.selection.measurements) == 3
    assert s.undo() and [m.tag for m in s.selection.measurements] == ["foramen", "root", None]
    assert s.selection.roi == (100, 90, 40, 40)
    # saved with tags and kinds, restored
    s2 = Session(StateStore(tmp_path / "state"))
    s2.open(open_study(demo_study()).scan)
    assert s2.selection.measurements == s.selection.measurements


def test_kim_grade_only_from_widths_on_the_injection_side():
    from tfesi_desktop.core.measure import Measurement, kim_for_side

    f = Measurement("a", ((0.0, 0.0), (3.0, 0.0)), tag="foramen")
    r = Measurement("a", ((0.0, 1.0), (4.0, 1.0)), tag="root")
    both = (f, r)
    assert kim_for_side(both, (1.0, 1.0), "right", lambda m: "right")[0][0] == 1
    none, text = kim_for_side(both, (1.0, 1.0), "right", lambda m: "left")
    assert none is None and "left side" in text and "injection side is right" in text
    none, text = kim_for_side(both, (1.0, 1.0), "right", lambda m: None)
    assert none is None and "cannot be checked" in text
    assert kim_for_side((f,), (1.0, 1.0), "right", lambda m: "right")[0] is None
    assert "choose the injection side" in kim_for_side(both, (1.0, 1.0), None, str)[1]
