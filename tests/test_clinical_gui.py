"""Clinical data in the window (issue 25): the form of a fused bundle's clinical model, typed
values saved with the study and undoable, a wrong value's sentence, the panel's combined result
and contributions, and the report (pytest-qt on the real widgets; the PDF read back)."""


import numpy as np
import pytest

pytest.importorskip("PySide6")

from PySide6.QtCore import Qt  # noqa: E402

import tfesi_desktop.core.synth.cohort  # noqa: E402,F401  (pydicom before the window's worker)
from tests.test_gui import export_pdf_text  # noqa: E402
from tfesi_desktop.core import clinical as cl  # noqa: E402
from tfesi_desktop.core.bundle import DEMO_BUNDLE  # noqa: E402
from tfesi_desktop.core.manifest import read_manifest  # noqa: E402
from tfesi_desktop.core.paths import demo_manifest, demo_study, resource_path  # noqa: E402
from tfesi_desktop.core.runtime import format_probability, sigmoid  # noqa: E402
from tfesi_desktop.core.session import Session, StateStore  # noqa: E402
from tfesi_desktop.gui.clinical_form import IMAGE_ONLY  # noqa: E402
from tfesi_desktop.gui.mainwindow import MainWindow  # noqa: E402


@pytest.fixture(scope="module")
def fused(tmp_path_factory):
    """The demo bundle with a clinical model fitted on simulated patients (fast: no images)."""
    rng = np.random.default_rng(3)
    n = 600
    z = rng.normal(0, 1.5, n)
    table = {"age": rng.integers(25, 80, n) * 1.0, "sex": (rng.random(n) < 0.4) * 1.0,
             "duration_months": rng.gamma(2, 4, n) + 1, "nrs_before": rng.integers(4, 11, n) * 1.0,
             "previous_injections": rng.choice(4, n) * 1.0, "grade": rng.integers(0, 4, n) * 1.0}
    eta = 1.1 * z + 0.45 * (table["nrs_before"] - 7) - 0.7 * (table["previous_injections"] - 1.5)
    y = (rng.random(n) < sigmoid(eta)).astype(int)
    model = cl.fit_clinical_model(z, table, y, fitted_on={"data": "simulated patients", "n": n})
    return cl.attach_clinical_model(resource_path(*DEMO_BUNDLE),
                                    tmp_path_factory.mktemp("clin") / "fused", model)


@pytest.fixture
def case():
    (c,) = read_manifest(demo_manifest())
    return c


def _window(qtbot, model_path=None):
    w = MainWindow(model_path=model_path)
    qtbot.addWidget(w)
    w.resize(1300, 900)
    w.show()
    return w


def _predicted(qtbot, w, case):
    w.open_paths([str(demo_study())])
    qtbot.waitUntil(lambda: w.session.stack() is not None and w.current_values() is not None
                    and w.predictor is not None, timeout=30000)
    w.panel.slider.setValue(w.session.stack().find_slice(case.slice_key))
    qtbot.waitUntil(lambda: w.current_values() is not None and w.canal_of_slice()[0])
    w.session.set_roi(tuple(case.roi))  # what a finished drag does (gui/axial.py)
    w.session.propose_side()
    qtbot.waitUntil(lambda: w.session.current_result() is not None, timeout=15000)


def _type(qtbot, w, name, text):
    """Type into a field as a user does: select all, type, Enter."""
    edit = w.clinical_form.fields[name]
    edit.setFocus()
    edit.selectAll()
    qtbot.keyClick(edit, Qt.Key.Key_Backspace)
    if text:
        qtbot.keyClicks(edit, text)
    qtbot.keyClick(edit, Qt.Key.Key_Return)
    edit.clearFocus()


def test_form_values_undo_panel_and_report(qtbot, fused, case, tmp_path):
    w = _window(qtbot, fused)
    _predicted(qtbot, w, case)
    form, summary = w.clinical_form, w.panel.clinical_label
    assert set(form.fields) == set(cl.DEFAULT_VARIABLES) and form.fields_box.isVisibleTo(w)
    assert form.fields["age"].placeholderText() == "18-100 years"
    # nothing typed: the baseline NRS is needed (refuse), the others shown as imputed
    assert "needed for the combined result" in form.messages["nrs_before"].text()
    assert "imputed as the training mean" in form.messages["age"].text()
    assert summary.isVisibleTo(w) and "No combined result" in summary.text()
    assert w.clinical.combined()[0] is None

    _type(qtbot, w, "nrs_before", "7")
    _type(qtbot, w, "age", "62")
    _type(qtbot, w, "sex", "F")
    assert w.session.clinical_values == {"nrs_before": "7", "age": "62", "sex": "F"}
    c, why = w.clinical.combined()
    assert why is None and c is not None and set(c.used) == {"nrs_before", "age", "sex"}
    assert "With the clinical data" in summary.text() and "image alone" in summary.text()
    # the contributions beside the heat map: the image and each variable, imputed ones at 0
    rows = form.bars.rows
    assert [r[0] for r in rows][0].startswith("Image") and len(rows) == 1 + len(c.contributions)
    nrs = next(r for r in rows if r[0].startswith("Baseline pain"))
    assert nrs[2] == pytest.approx(c.contributions[3].contribution)
    assert next(r for r in rows if r[0].startswith("Previous"))[2] == 0.0
    assert "imputed: duration_months, previous_injections, grade" in form.used.text()
    assert "not yet validated" in form.validated.text()
    assert "DEMONSTRATION MODEL" in w.panel.disclaimer_label.text()

    # each value an undo step: undo the sex, then redo it
    assert w.session.undo_text().startswith("Sex")
    qtbot.keyClick(w, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert "sex" not in w.session.clinical_values and form.fields["sex"].text() == ""
    qtbot.keyClick(w, Qt.Key.Key_Z,
                   Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert form.fields["sex"].text() == "F"

    # out of range: the core's sentence beside the field, no combined result, no traceback
    _type(qtbot, w, "age", "150")
    assert "outside the valid range 18-100 years" in form.messages["age"].text()
    assert w.clinical.combined()[0] is None and "No combined result" in summary.text()
    assert "Traceback" not in form.text()
    qtbot.keyClick(w, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert form.fields["age"].text() == "62" and w.clinical.combined()[0] is not None

    # the report: the combined probability and the contribution table; anonymized, values kept
    text = export_pdf_text(qtbot, w, tmp_path / "clinical.pdf", layout=True)
    if text is not None:
        c = w.clinical.combined()[0]
        assert (f"Probability of a favourable outcome with the clinical data: "
                f"{format_probability(c.probability)}") in text
        assert "Contribution of each input" in text and "Age 62 years" in text
        assert f"Baseline pain (NRS) 7 points {c.contributions[3].contribution:+.2f}" in text
        assert "imputed (training mean" in text and "not yet validated" in text
    w.close()

    # reopened: the values come back with the study
    w2 = _window(qtbot, fused)
    w2.open_paths([str(demo_study())])
    qtbot.waitUntil(lambda: w2.predictor is not None and w2.session.work is not None
                    and w2.clinical.model is not None, timeout=30000)
    assert w2.session.clinical_values == {"nrs_before": "7", "age": "62", "sex": "F"}
    assert w2.clinical_form.fields["age"].text() == "62"
    assert w2.clinical_form.fields["nrs_before"].text() == "7"
    w2.close()


def test_values_belong_to_one_study(tmp_path):
    """Typed on one study, saved into that study's file only, never another's."""
    store = StateStore(tmp_path / "studies")
    s = Session(store)
    from tfesi_desktop.core.state_store import StudyWork

    for uid in ("1.2.3", "1.2.4"):
        s.works[uid] = StudyWork(uid)
    s.study_uid = "1.2.3"
    assert s.set_clinical("age", " 62 ", "Age") and s.clinical_values == {"age": "62"}
    assert not s.set_clinical("age", "62")  # unchanged: no undo step
    s.study_uid = "1.2.4"
    assert s.clinical_values == {}
    assert store.load("1.2.3")[0].clinical == (("age", "62"),)
    assert not store.file("1.2.4").exists()
    # a saved file of the wrong shape: ignored with a note, the study opens
    store.file("1.2.3").write_text(store.file("1.2.3").read_text().replace(
        '"age": "62"', '"age": 62'))
    work, notes = store.load("1.2.3")
    assert work.clinical == () and any("clinical value was ignored" in n for n in notes)


def test_without_a_clinical_model_the_form_is_one_line(qtbot, case):
    w = _window(qtbot)
    _predicted(qtbot, w, case)
    assert w.clinical.model is None and w.clinical_form.note.text() == IMAGE_ONLY
    assert not w.clinical_form.fields and not w.clinical_form.fields_box.isVisibleTo(w)
    assert not w.panel.clinical_label.isVisibleTo(w) and w.clinical.combined() == (None, None)
    w.close()
