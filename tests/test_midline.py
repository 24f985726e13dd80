"""The side from anatomy: the spinal canal is found on patients lying 30 mm off-centre and
turned 10 degrees, in every storage orientation, and the safety gates follow it."""

import numpy as np
import pytest

from tests.offcentre import narrowest_slice, offcentre_patient, stored_roi, true_canal_mm
from tfesi_desktop.core.commands import GateError, check_selection, predict_selection
from tfesi_desktop.core.geometry import Dihedral, SliceGeometry
from tfesi_desktop.core.midline import find_canal, roi_position
from tfesi_desktop.core.session import Selection

POSES = [((30.0, 0.0), 10.0), ((-30.0, 0.0), -10.0), ((0.0, 25.0), 10.0)]


@pytest.mark.parametrize("dihedral", Dihedral.all(), ids=lambda d: str(d))
def test_canal_found_and_side_right_in_every_orientation_off_centre(dihedral):
    errors = []
    for centre, rotation in POSES:
        p = offcentre_patient(centre=centre, rotation_deg=rotation, dihedral=dihedral)
        values, g = narrowest_slice(p)
        canal = find_canal(values, g)
        assert canal is not None, (centre, rotation)
        errors.append(float(np.linalg.norm(np.array(canal.centre_mm) - true_canal_mm(p))))
        assert abs(abs(canal.angle_deg) - 10) <= 6 or centre == (0.0, 25.0)
        for side in ("left", "right"):
            roi = stored_roi(p, side)
            pos = roi_position(g, roi, canal)
            assert pos.side == side and not pos.crosses, (centre, rotation, side, pos)
            sel = Selection("s", "x", "y", roi, side)
            assert check_selection(sel, g, canal) == []
    assert max(errors) < 1.5, errors  # mm


def test_the_image_centre_would_have_been_wrong():
    """The case of the issue: 30 mm off-centre, a right-side ROI lies left of the image
    centre; the anatomy says right, and the gate follows the anatomy."""
    p = offcentre_patient(centre=(30.0, 0.0), rotation_deg=10.0, side="right")
    values, g = narrowest_slice(p)
    roi = stored_roi(p, "right")
    x, y, w, h = roi
    centre = g.pixel_to_patient((g.shape[0] - 1) / 2, (g.shape[1] - 1) / 2)
    roi_mm = g.pixel_to_patient(y + (h - 1) / 2, x + (w - 1) / 2)
    assert roi_mm[0] > centre[0]  # left of the image centre (LPS: +x is the patient's left)
    canal = find_canal(values, g)
    assert roi_position(g, roi, canal).side == "right"
    gates = check_selection(Selection("s", "x", "y", roi, "left"), g, canal)
    assert [x.kind for x in gates] == ["side"] and "right side" in gates[0].message
    assert check_selection(Selection("s", "x", "y", roi, "right"), g, canal) == []


def test_roi_across_the_midline_is_refused_and_too_small_is_not_enlarged():
    p = offcentre_patient(centre=(-20.0, 5.0), rotation_deg=-10.0)
    values, g = narrowest_slice(p)
    canal = find_canal(values, g)
    r, c = canal.row, canal.col
    wide = (int(c) - 40, int(r) - 20, 80, 40)  # canal and both foramina
    assert roi_position(g, wide, canal).crosses
    gates = check_selection(Selection("s", "x", "y", wide, "right"), g, canal)
    assert [x.kind for x in gates] == ["midline"]
    gates = check_selection(Selection("s", "x", "y", (10, 10, 3, 3), "right"), g, canal)
    assert [x.kind for x in gates] == ["size"] and not gates[0].overridable


def test_no_canal_says_so():
    rng = np.random.default_rng(0)
    noise = rng.normal(100, 10, (256, 256)).astype(np.float32)
    g = SliceGeometry((0, 0, 0), (1, 0, 0), (0, 1, 0), (0.7, 0.7), (256, 256))
    assert find_canal(noise, g) is None
    assert find_canal(np.zeros((256, 256), np.float32), g) is None
    gates = check_selection(Selection("s", "x", "y", (10, 10, 40, 40), "right"), g, None)
    assert [x.kind for x in gates] == ["canal"] and "not found" in gates[0].message


def test_gates_block_the_prediction_until_overridden():
    """predict_selection refuses before touching the model; an override lets it through."""
    p = offcentre_patient(centre=(30.0, 0.0), rotation_deg=10.0, side="right")
    values, g = narrowest_slice(p)

    class Stack:  # just what predict_selection reads before the gates
        study_uid, series_uid = "1.2", "1.2.3"

        class _Ref:
            key = sop_instance_uid = "1.2.3.4"
            frame = None
            geometry = g

            def require_geometry(self):
                return g

        slices = [_Ref()]

        def find_slice(self, key):
            return 0

    sel = Selection("1.2", "1.2.3", "1.2.3.4", stored_roi(p, "right"), "left")
    with pytest.raises(GateError) as e:
        predict_selection(None, Stack(), sel, values=values)
    assert [x.kind for x in e.value.gates] == ["side"]
    assert "patient's right side" in str(e.value)


def test_cli_takes_the_side_from_the_anatomy_of_an_off_centre_study(tmp_path, capsys):
    """`tfesi predict` on a mirrored study of a patient 30 mm off-centre: the right side is
    accepted, the wrong one refused, and an override is recorded."""
    import json

    from tfesi_desktop.cli import main
    from tfesi_desktop.core.synth.cohort import write_study

    p = offcentre_patient(centre=(30.0, 0.0), rotation_deg=10.0,
                          dihedral=Dihedral(flip_cols=True), side="right")
    row = write_study(p, tmp_path / "study")
    roi = ",".join(str(v) for v in (row["roi_x"], row["roi_y"], row["roi_w"], row["roi_h"]))
    base = ["predict", str(tmp_path / "study"), "--slice", row["sop_instance_uid"], "--roi", roi,
            "--json"]
    assert main([*base, "--side", "right"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["roi_side"] == "right" and out["override"] is None
    assert main([*base, "--side", "left"]) == 2
    err = capsys.readouterr().err
    assert "patient's right side" in err and "injection side is left" in err
    assert main([*base, "--side", "left", "--override"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert out["override"].startswith("OVERRIDE") and "warning" in captured.err
