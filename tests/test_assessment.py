"""The assessment of a selection and the prediction policy, without Qt (core/assessment.py,
core/predict_policy.py): the side from the anatomy, the gates and what blocks, the hint; and
predict / wait (why) / blocked (why) for every state the window can be in."""

from tests.offcentre import narrowest_slice, offcentre_patient, stored_roi
from tfesi_desktop.core.assessment import assess, point_side
from tfesi_desktop.core.midline import find_canal
from tfesi_desktop.core.predict_policy import Blocked, Predict, Wait, next_action
from tfesi_desktop.core.selection import Selection


def _scene():
    p = offcentre_patient(centre=(30.0, 0.0), rotation_deg=10.0, side="right")
    values, g = narrowest_slice(p)
    return p, g, find_canal(values, g)


def test_assessment_from_the_anatomy():
    p, g, canal = _scene()
    roi = stored_roi(p, "right")
    a = assess(Selection("s", "k", "i", roi), g, canal)
    assert a.known and a.proposed_side == "right" and a.gates == () and "right side" in a.hint
    a = assess(Selection("s", "k", "i", roi, "left"), g, canal)
    assert [x.kind for x in a.blocking] == ["side"] and a.overridable
    a = assess(Selection("s", "k", "i", roi, "left", overrides=("side",)), g, canal)
    assert a.blocking == () and a.override_note().startswith("Override confirmed")
    a = assess(Selection("s", "k", "i", (roi[0], roi[1], 10, 10), "right"), g, canal)
    assert [x.kind for x in a.blocking] == ["size"] and not a.overridable
    a = assess(Selection("s", "k", "i", roi, "right"), g, None)
    assert [x.kind for x in a.blocking] == ["canal"] and "not found" in a.hint
    assert not assess(Selection("s", "k", "i", roi, "right"), g, canal, known=False).known
    x, y, w, h = roi
    assert point_side(g, canal, x + w / 2, y + h / 2) == "right"


def test_the_prediction_policy():
    p, g, canal = _scene()
    sel = Selection("s", "k", "i", stored_roi(p, "right"), "right")
    ok = assess(sel, g, canal)
    base = dict(selection=sel, assessment=ok, model_ready=True, model_loading=False,
                slice_ready=True, up_to_date=False, predicting=False)
    assert next_action(**base) == Predict()
    assert isinstance(next_action(**{**base, "selection": Selection("s", "k", "i")}), Wait)
    assert next_action(**{**base, "up_to_date": True}).reason.startswith("The result shown")
    assert next_action(**{**base, "predicting": True}) == Wait("Predicting...")
    loading = next_action(**{**base, "model_ready": False, "model_loading": True})
    assert isinstance(loading, Wait) and loading.pending and "loading" in loading.reason
    assert isinstance(next_action(**{**base, "model_ready": False}), Blocked)
    waiting = next_action(**{**base, "slice_ready": False})
    assert isinstance(waiting, Wait) and waiting.pending
    wrong = Selection("s", "k", "i", sel.roi, "left")
    b = next_action(**{**base, "selection": wrong, "assessment": assess(wrong, g, canal)})
    assert isinstance(b, Blocked) and [x.kind for x in b.gates] == ["side"]
    assert "injection side is left" in b.reason
