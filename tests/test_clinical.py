"""The image and the patient together (issue 25): the phantom's clinical variables, the late-
fusion model, prediction with clinical inputs, the bundle file, and the study."""

import json

import numpy as np
import pytest

from tfesi_desktop.core import clinical as cl
from tfesi_desktop.core.errors import ModelError
from tfesi_desktop.core.runtime import Prediction, sigmoid
from tfesi_desktop.core.synth import clinical as sc

TRUE = {"age": -0.04, "sex": 0.3, "duration_months": -0.15, "nrs_before": 0.45,
        "previous_injections": -0.8, "grade": 0.0}


def _population(n, seed=0):
    rng = np.random.default_rng(seed)
    return {"age": rng.integers(25, 80, n).astype(float), "sex": (rng.random(n) < 0.4) * 1.0,
            "duration_months": np.round(rng.gamma(2, 4, n) * 2) / 2 + 1,
            "nrs_before": rng.integers(4, 10, n).astype(float),
            "previous_injections": rng.choice(4, n, p=[0.55, 0.25, 0.13, 0.07]) * 1.0,
            "grade": rng.integers(1, 3, n).astype(float)}


def _simulate(n, seed=0, image_coef=1.2):
    rng = np.random.default_rng(seed + 100)
    z = rng.normal(0, 1.6, n)
    table = _population(n, seed)
    means = {k: v.mean() for k, v in table.items()}
    eta = 0.2 + image_coef * z + sum(TRUE[k] * (table[k] - means[k]) for k in TRUE)
    y = (rng.random(n) < sigmoid(eta)).astype(int)
    return z, table, y


@pytest.fixture(scope="module")
def model():
    z, table, y = _simulate(4000, seed=1)
    return cl.fit_clinical_model(z, table, y, fitted_on={"data": "simulated", "n": 4000})


def _prediction(logit=0.4, crops=(-0.2, 0.4, 1.0)):
    cam = np.zeros((4, 4))
    return Prediction(sigmoid(logit), (sigmoid(min(crops)), sigmoid(max(crops))), logit, 0.5,
                      tuple(sigmoid(c) for c in crops), True, 1.0, 2.0, cam, cam)


FULL = {"age": "62", "sex": "F", "nrs": "7", "duration": "6", "previous": "1", "grade": "2"}


def test_fit_recovers_known_coefficients():
    z, table, y = _simulate(40000, seed=2)
    m = cl.fit_clinical_model(z, table, y)
    assert m.image_coefficient == pytest.approx(1.2, abs=0.05)
    for k, b in TRUE.items():
        # the standard error of a logistic coefficient, at most 1 / (sqrt(n p (1 - p)) SD)
        se = 1 / (np.sqrt(len(y) * 0.15) * table[k].std())
        assert m.coefficients[k] == pytest.approx(b, abs=3 * se), k
    # the logit at the means, and calibration in the large (maximum likelihood)
    assert m.base_logit == pytest.approx(0.2, abs=0.06)
    p = sigmoid(m.logit(z, table))
    assert p.mean() == pytest.approx(y.mean(), abs=1e-3)


def test_contributions_add_up_and_follow_the_stated_direction(model):
    c = cl.combine(_prediction(), FULL, model)
    parts = c.base_logit + c.image_contribution + sum(k.contribution for k in c.contributions)
    assert c.logit == pytest.approx(parts)
    assert c.probability == pytest.approx(sigmoid(c.logit))
    by = {k.name: k for k in c.contributions}
    assert by["age"].contribution == pytest.approx(
        model.coefficients["age"] * (62 - model.means["age"]))
    assert c.used == tuple(model.names) and c.imputed == ()
    # each variable moves the probability in the direction of its effect
    for name, key, lo, hi in (("duration_months", "duration", "2", "30"),
                              ("nrs_before", "nrs", "4", "9"),
                              ("previous_injections", "previous", "0", "3"),
                              ("age", "age", "30", "75"), ("sex", "sex", "M", "F")):
        p_lo = cl.combine(_prediction(), {**FULL, key: lo}, model).probability
        p_hi = cl.combine(_prediction(), {**FULL, key: hi}, model).probability
        assert (p_hi - p_lo) * TRUE[name] > 0, name
    # and the image's logit in its own
    assert cl.combine(_prediction(1.5), FULL, model).probability > c.probability
    # the interval follows the ROI set's range
    assert c.interval[0] < c.probability < c.interval[1]


def test_missing_values_are_imputed_with_the_mean_never_zero(model):
    given = dict(FULL)
    del given["age"]
    given["duration"] = ""  # empty is missing too
    c = cl.combine(_prediction(), given, model)
    assert set(c.imputed) == {"age", "duration_months"}
    by = {k.name: k for k in c.contributions}
    assert by["age"].contribution == 0.0 and by["age"].value == model.means["age"]
    assert "imputed" in by["age"].shown
    at_mean = cl.combine(_prediction(), {**given, "age": model.means["age"],
                                         "duration": model.means["duration_months"]}, model)
    assert c.logit == pytest.approx(at_mean.logit)
    # a zero in place of the missing duration would give another result
    zero = cl.combine(_prediction(), {**given, "duration": 0}, model)
    assert abs(zero.logit - c.logit) > 0.5
    out = c.as_dict()
    assert out["imputed"] == ["age", "duration_months"] and "age" not in out["used"]


def test_refused_values(model):
    given = dict(FULL)
    del given["nrs"]
    with pytest.raises(cl.ClinicalError, match="Baseline pain .* is needed"):
        cl.combine(_prediction(), given, model)
    for key, value, words in (("age", "150", "outside the valid range 18-100 years"),
                              ("age", "62 years", "without the unit"),
                              ("nrs", "7.5", "whole number"), ("nrs", "11", "0-10"),
                              ("sex", "X", "F or M"), ("previous", "-1", "outside"),
                              ("duration", "nan", "finite")):
        with pytest.raises(cl.ClinicalError, match=words):
            cl.combine(_prediction(), {**FULL, key: value}, model)
    with pytest.raises(cl.ClinicalError, match="does not use weight"):
        cl.combine(_prediction(), {**FULL, "weight": "80"}, model)
    assert cl.parse_clinical_arg("age=62, sex=female,nrs=7") == {
        "age": "62", "sex": "female", "nrs_before": "7"}
    for bad in ("age62", "age=1,age=2", "=3"):
        with pytest.raises(cl.ClinicalError):
            cl.parse_clinical_arg(bad)


def test_the_model_file_round_trips_and_is_refused_when_damaged(model):
    back = cl.ClinicalModel.from_json(json.loads(json.dumps(model.as_json())))
    assert back == model
    d = model.as_json()
    d["variables"][0]["valid_range"] = [50, 10]
    with pytest.raises(ModelError, match="clinical model file is invalid"):
        cl.ClinicalModel.from_json(d)
    d = model.as_json()
    d["base_logit"] = "x"
    with pytest.raises(ModelError):
        cl.ClinicalModel.from_json(d)


def test_a_bundle_with_a_clinical_model(model, tmp_path):
    from tfesi_desktop.core.bundle import DEMO_BUNDLE, load_bundle
    from tfesi_desktop.core.paths import resource_path

    demo = resource_path(*DEMO_BUNDLE)
    assert cl.load_clinical_model(load_bundle(demo)) is None  # the image alone, as before
    out = cl.attach_clinical_model(demo, tmp_path / "fused", model)
    b = load_bundle(out)
    assert cl.CLINICAL_FILE in b.card["files"] and b.name.endswith("+clinical")
    assert [v["name"] for v in b.card["clinical"]["variables"]] == list(model.names)
    assert not any("clinical factors are not used" in s for s in b.card["limitations"])
    assert cl.load_clinical_model(b) == model
    with pytest.raises(Exception, match="already"):
        cl.attach_clinical_model(out, tmp_path / "again", model)
    # a changed coefficient refuses the bundle
    f = out / cl.CLINICAL_FILE
    f.write_text(f.read_text().replace('"base_logit": ', '"base_logit": 1', 1))
    with pytest.raises(ModelError, match="does not match"):
        load_bundle(out)


def test_study_finds_the_clinical_gain_and_the_useless_variable():
    z, table, y = _simulate(1200, seed=3)
    r = cl.clinical_study(z, sigmoid(z), table, y, seed=0)
    s = r["scores"]
    assert r["n_fit"] + r["n_evaluation"] == 1200
    assert s["image + clinical"]["auc"] > s["image only"]["auc"] + 0.02
    assert r["paired_delong"]["p"] < 0.01
    assert s["clinical only"]["auc"] < s["image + clinical"]["auc"]
    ab = {a["without"]: a for a in r["ablation"]}
    assert set(ab) == set(cl.DEFAULT_VARIABLES)
    # leaving out the strongest variable costs AUC; the grade (no effect) costs nothing
    assert ab["previous_injections"]["difference_vs_full"] < -0.01
    assert abs(ab["grade"]["difference_vs_full"]) < 0.005
    assert "ablation" in cl.clinical_study_text(r)


def test_phantom_clinical_variables(monkeypatch):
    from tfesi_desktop.core.synth.cohort import draw_patient

    rows = []
    for i in range(60):
        p = draw_patient(7, i)
        before = (p.label, p.nrs_after)
        row = sc.add_clinical({"grade": 1, "label": p.label, "nrs_after": p.nrs_after}, p)
        assert (p.label, p.nrs_after) == before  # the patient (and its images) unchanged
        # the outcome's NRS agrees with the new label
        assert row["label"] == int(row["nrs_after"] <= p.nrs_before / 2)
        assert 20 <= row["age"] <= 80 and row["sex"] == p.sex
        assert 1 <= row["duration_months"] <= 48 and row["previous_injections"] in (0, 1, 2, 3)
        values = {"age": row["age"], "sex": row["sex"] == "F", "nrs_before": p.nrs_before,
                  "duration_months": row["duration_months"], "grade": 1,
                  "previous_injections": row["previous_injections"]}
        expect = sigmoid(np.log(p.p_favourable / (1 - p.p_favourable))
                         + sc.clinical_logit(values))
        assert row["p_combined"] == pytest.approx(expect, abs=1e-4)
        rows.append((p.p_favourable, row["p_image"]))
    # p_image ranks patients as the image's probability does
    a = np.array(rows)
    order = np.argsort(a[:, 0])
    assert np.all(np.diff(a[order, 1]) >= 0)
    assert sc.age_years("19700615", "20240614") == 53
    assert sc.age_years("19700615", "20240615") == 54


def test_clinical_cohort_keeps_the_images(tmp_path, monkeypatch):
    """The shipped demonstration study, made again with --clinical: the same files."""
    from pydicom.uid import RLELossless

    from tfesi_desktop.core.paths import demo_manifest, demo_study
    from tfesi_desktop.core.synth.cohort import MANIFEST_COLUMNS, Storage, make_cohort

    monkeypatch.setattr(sc, "expected_aucs", lambda: (0.86, 0.92))
    clin = make_cohort(tmp_path, patients=1, seed=2036, jobs=1, matrix=256,
                       storage=Storage(transfer_syntax=RLELossless), clinical=True)
    assert clin["clinical"]["effects_per_unit"] == sc.EFFECTS
    a = sorted(demo_study().iterdir())
    b = sorted((tmp_path / "P00000").iterdir())
    assert [f.name for f in a] == [f.name for f in b]
    assert [f.read_bytes() for f in a] == [f.read_bytes() for f in b]
    header = demo_manifest().read_text().splitlines()[0]
    assert header == ",".join(MANIFEST_COLUMNS)
    header = (tmp_path / "manifest.csv").read_text().splitlines()[0]
    assert header == ",".join(MANIFEST_COLUMNS + sc.CLINICAL_COLUMNS)


def _run(capsys, *args):
    """The command line in this process (as `tfesi ...`): (exit status, stdout, stderr)."""
    from tfesi_desktop.cli import main

    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_predict_with_clinical_inputs(model, tmp_path, capsys):
    from tfesi_desktop.core.bundle import DEMO_BUNDLE
    from tfesi_desktop.core.manifest import read_manifest
    from tfesi_desktop.core.paths import demo_manifest, demo_study, resource_path

    (case,) = read_manifest(demo_manifest())
    fused = cl.attach_clinical_model(resource_path(*DEMO_BUNDLE), tmp_path / "fused", model)
    base = ["predict", demo_study(), "--slice", case.slice_key, "--roi",
            ",".join(map(str, case.roi)), "--side", case.side, "--model", fused]
    code, out, err = _run(capsys, *base, "--json", "--clinical",
                          "age=62,sex=F,nrs=7,duration=6,previous=1")
    assert code == 0, err
    out = json.loads(out)
    c = out["clinical"]
    assert c["image_logit"] == pytest.approx(out["logit"], abs=1e-5)
    assert c["imputed"] == ["grade"] and "nrs_before" in c["used"]
    total = c["base_logit"] + c["image_contribution_logit"] + sum(
        k["contribution_logit"] for k in c["contributions"])
    assert c["logit"] == pytest.approx(total, abs=1e-4)
    code, out, err = _run(capsys, *base, "--clinical", "age=62,sex=F,nrs=7")
    assert code == 0, err
    assert "With the clinical data" in out and "imputed (training mean" in out
    assert "not yet validated" in out
    code, out, err = _run(capsys, *base, "--clinical", "age=62,sex=F")
    assert code == 2 and "Baseline pain (NRS) is needed" in err
    assert "Traceback" not in err
    # the demonstration model (the default): no clinical part
    code, out, err = _run(capsys, *base[:-2], "--clinical", "age=62,nrs=7")
    assert code == 2 and "no clinical part" in err


def test_fuse_and_study_commands_from_saved_image_scores(tmp_path, capsys):
    z, table, y = _simulate(300, seed=5)
    ids = [f"S{i:03d}" for i in range(len(y))]
    man = tmp_path / "manifest.csv"
    cols = ["patient_id", "study_path", "series_uid", "sop_instance_uid", "roi_x", "roi_y",
            "roi_w", "roi_h", "side", "label", *cl.DEFAULT_VARIABLES]
    lines = [",".join(cols)]
    for i in range(len(y)):
        vals = [("F" if table[k][i] else "M") if k == "sex" else f"{table[k][i]:g}"
                for k in cl.DEFAULT_VARIABLES]
        lines.append(",".join([ids[i], "x", "1.2", "1.2.3", "0", "0", "10", "10", "left",
                               str(y[i]), *vals]))
    man.write_text("\n".join(lines) + "\n")
    scores = tmp_path / "scores.csv"
    scores.write_text("patient_id,image_logit,image_probability\n" + "".join(
        f"{i},{zz:.6f},{sigmoid(zz):.6f}\n" for i, zz in zip(ids, z, strict=True)))
    code, out, err = _run(capsys, "clinical-study", man, "--out", tmp_path / "study",
                          "--image-scores", scores, "--repeats", "3")
    assert code == 0, err
    assert "paired DeLong" in out and "without" in out
    m = json.loads((tmp_path / "study" / "metrics.json").read_text())
    assert m["n_evaluation"] == 150 and len(m["ablation"]) == 6
    rep = m["repeated_splits"]
    assert rep["splits"] == 3 and rep["seeds"] == [1, 2, 3] and "over 3 other random splits" in out
    assert rep["difference"]["min"] <= rep["difference"]["mean"] <= rep["difference"]["max"]
    assert (tmp_path / "study" / "image_scores.csv").exists()
    # the fusion fitted on one half, validated on the other, written into a bundle
    from tfesi_desktop.core.bundle import DEMO_BUNDLE, load_bundle
    from tfesi_desktop.core.paths import resource_path

    code, out, err = _run(capsys, "clinical-study", man, "--out", tmp_path / "study2",
                          "--image-scores", scores, "--model", resource_path(*DEMO_BUNDLE),
                          "--bundle", tmp_path / "validated", "--repeats", "0")
    assert code == 0, err
    fused = cl.load_clinical_model(load_bundle(tmp_path / "validated"))
    v = fused.fitted_on["validation"]
    assert v["n"] == 150 and fused.fitted_on["n"] == 150
    assert v["auc"] == m["scores"]["image + clinical"]["auc"]
    assert "validated AUC" in cl.validated_text(fused.fitted_on)
    code, out, err = _run(capsys, "fuse", "--manifest", man, "--out", tmp_path / "fused",
                          "--image-scores", scores, "--variables", "age,nrs,previous")
    assert code == 0, err
    fitted = json.loads(out)
    assert [v["name"] for v in fitted["variables"]] == ["age", "nrs_before",
                                                          "previous_injections"]
    assert (tmp_path / "fused" / cl.CLINICAL_FILE).exists()
    # a manifest without the clinical columns is refused with a sentence
    bare = tmp_path / "bare.csv"
    bare.write_text("\n".join(",".join(line.split(",")[:10]) for line in lines) + "\n")
    code, out, err = _run(capsys, "fuse", "--manifest", bare, "--out", tmp_path / "f2",
                          "--image-scores", scores)
    assert code == 2 and "no column age" in err
