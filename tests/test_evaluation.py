"""Validation tools: Table-2 metrics, calibration, `tfesi evaluate`, `tfesi study`,
model install/list."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from tfesi_desktop.cli import main
from tfesi_desktop.core.stats import (
    auc_delong,
    brier_score,
    classification_table,
    fit_temperature,
    reliability_curve,
    youden_threshold,
)

from .conftest import SHARED


def test_classification_table_by_hand():
    y = [1, 1, 1, 0, 0]
    p = [0.9, 0.6, 0.4, 0.7, 0.1]
    t = classification_table(y, p, 0.5)
    assert t["confusion"] == {"tp": 2, "fn": 1, "fp": 1, "tn": 1}
    assert t["accuracy"] == pytest.approx(3 / 5)
    assert t["sensitivity"] == pytest.approx(2 / 3) and t["specificity"] == pytest.approx(1 / 2)
    fav, poor = t["classes"]["favourable"], t["classes"]["poor"]
    assert fav["precision"] == pytest.approx(2 / 3) and poor["precision"] == pytest.approx(1 / 2)
    assert fav["f1"] == pytest.approx(2 / 3) and poor["support"] == 2
    assert t["macro_avg"]["recall"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert brier_score(y, p) == pytest.approx(np.mean((np.array(p) - np.array(y)) ** 2))


def test_reliability_and_temperature_scaling_keep_the_auc():
    rng = np.random.default_rng(0)
    z = rng.normal(size=500) * 3
    y = (rng.random(500) < 1 / (1 + np.exp(-z / 3))).astype(int)  # true temperature 3
    t = fit_temperature(y, z)
    assert 2.0 < t < 4.5
    over = 1 / (1 + np.exp(-z))
    cal = 1 / (1 + np.exp(-z / t))
    assert auc_delong(y, cal).auc == pytest.approx(auc_delong(y, over).auc, abs=1e-12)
    assert brier_score(y, cal) < brier_score(y, over)
    bins = reliability_curve(y, cal)
    assert sum(b["n"] for b in bins) == 500
    assert all(abs(b["observed"] - b["mean_predicted"]) < 0.2 for b in bins if b["n"] > 30)
    assert 0 < youden_threshold(y, cal) < 1


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "tfesi_desktop.cli", *map(str, args)],
                          capture_output=True, text=True)


def test_evaluate_reproduces_proc_on_asah(tmp_path):
    ref_csv = SHARED / "reference" / "aSAH.csv"
    if not ref_csv.exists():
        pytest.skip("../shared/reference is not beside this checkout")
    ref = json.loads((SHARED / "reference" / "aSAH_pROC_values.json").read_text())
    r = _cli("evaluate", "--predictions", ref_csv, "--label-column", "poor", "--score-columns",
             "wfns,s100b,ndka", "--json", "--out", tmp_path / "rep")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    for k in ("wfns", "s100b", "ndka"):
        assert out["scores"][k]["auc"]["auc"] == pytest.approx(ref["auc"][k], abs=1e-4)
        assert out["scores"][k]["auc"]["ci95"] == pytest.approx(ref["delong_ci95"][k], abs=1e-4)
    tests = {(t["a"], t["b"]): t for t in out["paired_tests"]}
    want = ref["paired_delong_test"]["wfns_vs_s100b"]
    assert tests[("wfns", "s100b")]["z"] == pytest.approx(want["Z"], abs=1e-4)
    assert tests[("wfns", "s100b")]["p"] == pytest.approx(want["p"], abs=1e-4)
    assert (tmp_path / "rep" / "table2.txt").read_text().count("AUC") == 3
    assert (tmp_path / "rep" / "roc.png").stat().st_size > 10_000


def test_evaluate_bad_input_is_error_and_exit_2(tmp_path):
    f = tmp_path / "p.csv"
    cases = {
        "Missing columns: b": "label,a\n1,0.2\n0,0.1\n",
        "Both classes": "label,a,b\n1,0.2,0.1\n1,0.1,0.3\n",
        "NaN": "label,a,b\n1,0.2,nan\n0,0.1,0.3\n",
        "only 0 and 1": "label,a,b\n2,0.2,0.1\n0,0.1,0.3\n",
    }
    for expect, text in cases.items():
        f.write_text(text)
        r = _cli("evaluate", "--predictions", f, "--score-columns", "a,b")
        assert r.returncode == 2, expect
        assert r.stderr.startswith("error:") and expect in r.stderr, (expect, r.stderr)


def test_evaluate_a_bundle_on_a_manifest_updates_its_card(cohort, test_bundle, tmp_path,
                                                          capsys):
    import shutil

    from tfesi_desktop.core.bundle import load_bundle
    from tfesi_desktop.core.runtime import Predictor

    bundle = tmp_path / "b"
    shutil.copytree(test_bundle, bundle)
    manifest = cohort[0] / "manifest.csv"
    report = tmp_path / "report"
    assert main(["evaluate", "--model", str(bundle), "--manifest", str(manifest), "--json",
                 "--update-card", "--calibrate-temperature", "--out", str(report)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n"] == 6
    assert {"slope", "intercept", "ece", "ece_ci95"} <= set(out["calibration"])
    assert out["stable_prediction"]["patients"] == 6
    assert 0 <= out["stable_prediction"]["label_flips"] <= 1
    # predictions.csv: exactly what the window would show, one row per patient
    import csv

    from tfesi_desktop.core.manifest import case_region, read_manifest
    from tfesi_desktop.core.runtime import predict

    with open(report / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[:6] == ["patient_id", "label", "probability", "interval_low",
                                 "interval_high", "in_distribution"]
    cases = read_manifest(manifest)
    assert [r["patient_id"] for r in rows] == [c.patient_id for c in cases]
    before = Predictor(test_bundle)  # the copy's calibration changed after scoring
    r0 = case_region(cases[0])
    p0 = predict(before, r0.values, r0.dihedral, r0.roi, cases[0].side)
    assert float(rows[0]["probability"]) == pytest.approx(p0.probability, abs=1e-6)
    assert float(rows[0]["interval_low"]) <= float(rows[0]["probability"]) <= float(
        rows[0]["interval_high"])
    card = load_bundle(bundle).card  # still verifies: the card is not among the hashed files
    (ev,) = card["metrics"]["evaluations"]
    assert ev["n"] == 6 and ev["auc"] == pytest.approx(
        out["scores"]["test-original"]["auc"]["auc"], abs=1e-4)
    assert card["calibration"]["temperature"] > 0
    assert Predictor(bundle).temperature == card["calibration"]["temperature"]


def test_evaluate_prints_calibration_stability_and_pointing_game(cohort, test_bundle, capsys):
    manifest = cohort[0] / "manifest.csv"
    assert main(["evaluate", "--model", str(test_bundle), "--manifest", str(manifest)]) == 0
    text = capsys.readouterr().out
    for words in ("AUC", "calibration: slope", "intercept", "ECE", "95 % CI",
                  "labels flip in", "per-patient SD median", "pointing game (as placed)",
                  "pointing game (shifted quarter)", "chance"):
        assert words in text, words


def test_model_install_makes_the_default_and_list_shows_it(test_bundle, capsys):
    from tfesi_desktop.core.bundle import default_bundle_path

    demo = default_bundle_path()
    # the untrained test bundle's AUC (0.4-0.6) is below the install floor (issue 24)
    assert main(["model", "install", str(test_bundle), "--min-auc-lower", "0.3"]) == 0
    assert default_bundle_path() != demo and default_bundle_path().name == "test-original-0.0.1"
    capsys.readouterr()
    assert main(["model", "list"]) == 0
    assert "* test-original 0.0.1" in capsys.readouterr().out


def test_study_runs_every_protocol_and_writes_the_report(cohort, tmp_path, capsys,
                                                        monkeypatch):
    """The study's orchestration: every arm on the same split, the baseline, k-fold CV, the
    report. Training the real network five times takes over three minutes here, so the network
    is replaced by a small logistic model on the same inputs (the real training path, with
    explicit indices, runs in tests/test_training.py)."""
    from sklearn.linear_model import LogisticRegression

    from tfesi_desktop.core.training import study

    calls = []

    def quick_fit(regions, y, config, *, progress=None, train_idx=None, val_idx=None):
        calls.append((config.variant, tuple(train_idx), tuple(val_idx), config.augment))
        x = np.stack([r.input().image for r in regions])
        assert set(train_idx).isdisjoint(val_idx) and len(set(y[val_idx])) == 2
        feats = x[:, ::10, ::10, 0].reshape(len(x), -1)
        clf = LogisticRegression(max_iter=2000).fit(feats[train_idx], y[train_idx])
        p = clf.predict_proba(feats[val_idx])[:, 1]
        return None, {"validation_probabilities": p.tolist()}

    monkeypatch.setattr(study, "fit_and_evaluate", quick_fit)
    out = tmp_path / "study"
    rc = main(["study", str(cohort[0] / "manifest.csv"), "--out", str(out), "--epochs", "1",
               "--batch-size", "2", "--folds", "2", "--seed", "1"])
    assert rc == 0
    # four arms on one split (the last: the original network without augmentation), then
    # the original network on each fold
    assert [c[0] for c in calls] == ["original", "no-regularization", "from-scratch",
                                     "original", "original", "original"]
    assert [c[3] for c in calls] == [True, True, True, False, True, True]
    assert calls[0][1:3] == calls[1][1:3] == calls[2][1:3] == calls[3][1:3]  # the same split
    folds = [set(c[2]) for c in calls[4:]]
    assert folds[0].isdisjoint(folds[1]) and folds[0] | folds[1] == set(range(6))
    text = capsys.readouterr().out
    for arm in ("original", "no-regularization", "from-scratch", "handcrafted+logistic",
                "generator (best achievable)"):
        assert arm in text
    s = json.loads((out / "summary.json").read_text())
    assert len(s["arms"]["original"]["cv_fold_auc"]) == 2
    assert {"split_auc", "cv_pooled_auc"} <= set(s["arms"]["handcrafted+logistic"])
    assert len(s["split"]["paired_tests"]) == 15  # 6 scores, every pair
    assert "augmentation-off" in s["arms"]
    for part in ("split", "cv"):
        assert (out / part / "table2.txt").exists() and (out / part / "roc.png").exists()
    with open(out / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6 and all(r["cv_original"] != "" for r in rows)
    # the predictions can be evaluated again by anyone
    capsys.readouterr()
    assert main(["evaluate", "--predictions", str(out / "predictions.csv"),
                 "--score-columns", "cv_original,cv_handcrafted+logistic", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["scores"]["cv_original"]["auc"]["auc"] == pytest.approx(
        s["arms"]["original"]["cv_pooled_auc"]["auc"], abs=1e-4)


def test_learning_curve_on_nested_subsets(cohort, tmp_path, capsys, monkeypatch):
    """`tfesi study --learning-curve`: nested, class-balanced subsets, cross-validated AUCs of
    the CNN, the baseline and the generator per size, a table and a PNG. The network is again
    replaced by a small logistic model (the real training runs in tests/test_training.py)."""
    from sklearn.linear_model import LogisticRegression

    from tfesi_desktop.core.training import study

    seen, configs = [], []

    def quick_fit(regions, y, config, *, progress=None, train_idx=None, val_idx=None):
        seen.append(len(regions))
        configs.append(config)
        x = np.stack([r.input().image for r in regions])[:, ::10, ::10, 0].reshape(len(y), -1)
        clf = LogisticRegression(max_iter=2000).fit(x[train_idx], y[train_idx])
        return None, {"validation_probabilities": clf.predict_proba(x[val_idx])[:, 1].tolist()}

    monkeypatch.setattr(study, "fit_and_evaluate", quick_fit)
    y = np.array([0, 1] * 50)
    a, b = study.nested_subsets(y, [10, 40], seed=3)
    assert set(a) <= set(b) and y[a].sum() == 5 and y[b].sum() == 20
    out = tmp_path / "lc"
    assert main(["study", str(cohort[0] / "manifest.csv"), "--out", str(out), "--init",
                 "random", "--learning-curve", "4,6", "--folds", "2"]) == 0
    text = capsys.readouterr().out
    assert seen == [4, 4, 6, 6]  # two folds at each size
    assert "handcrafted+logistic" in text and "generator (best achievable)" in text
    assert "exceeds the handcrafted baseline" in text or "does not exceed" in text
    data = json.loads((out / "learning_curve.json").read_text())
    assert [r["patients"] for r in data["rows"]] == [4, 6]
    assert (out / "learning_curve.csv").exists()
    from PIL import Image

    img = np.asarray(Image.open(out / "learning_curve.png").convert("L"))
    assert img.shape[0] > 300 and img.std() > 10  # a drawn figure, not a blank page
    assert main(["study", str(cohort[0] / "manifest.csv"), "--out", str(tmp_path / "x"),
                 "--learning-curve", "1000"]) == 2
    # the compact network is trained with its own recipe, the paper's network with the study's
    configs.clear()
    assert main(["study", str(cohort[0] / "manifest.csv"), "--out", str(tmp_path / "lc2"),
                 "--init", "random", "--learning-curve", "4", "--folds", "2", "--arms",
                 "compact,original", "--epochs", "3"]) == 0
    compact = [c for c in configs if c.variant == "compact"]
    paper = [c for c in configs if c.variant == "original"]
    assert len(compact) == len(paper) == 2
    assert {(c.optimizer, c.learning_rate, c.batch_size, c.epochs) for c in compact} == {
        ("adam", 1e-3, 32, 30)}
    assert {(c.optimizer, c.learning_rate, c.epochs) for c in paper} == {("rmsprop", 1e-5, 3)}
    assert main(["study", str(cohort[0] / "manifest.csv"), "--out", str(tmp_path / "lc3"),
                 "--learning-curve", "4", "--folds", "2", "--arms", "resnet"]) == 2


def test_slice_stability_counts_flips_and_auc_one_slice_off():
    from tfesi_desktop.core.evaluation import slice_stability

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    y[:2] = (0, 1)
    exact = np.clip(0.5 + 0.35 * (2 * y - 1) + rng.normal(0, 0.2, 200), 0.01, 0.99)
    rows = []
    for i in range(200):
        off = exact[i] + 0.25  # as the single slice did: one off looks wider, more optimistic
        rows.append({"label": int(y[i]), "probability": exact[i], "p_slice-1": exact[i],
                     "p_slice+1": exact[i] if i % 10 else 1 - exact[i], "p_single": exact[i],
                     "p_single-1": min(off, 0.99), "p_single+1": min(off, 0.99),
                     "p_pick": exact[i], "p_single_pick": exact[i], "pick_offset": i % 3 - 1,
                     "based_on_offset": 0, "slices_disagree": False})
    s = slice_stability(rows, 0.5)
    nb, single = s["neighbourhood"], s["single_slice"]
    flipped = np.mean([(1 - e >= 0.5) != (e >= 0.5) for e in exact[::10]])
    assert nb["label_flips"] == pytest.approx(flipped * 20 / 400, abs=1e-4)
    assert single["flips_to_favourable"] == single["label_flips"] > nb["label_flips"]
    assert single["median_change"] == pytest.approx(0.25, abs=0.02)
    assert nb["auc_exact"] == single["auc_exact"] == pytest.approx(auc_delong(y, exact).auc,
                                                                  abs=1e-4)
    assert single["auc_one_off_pooled"] < single["auc_exact"]
    assert nb["auc_one_off"][0] == nb["auc_exact"]
    assert {"offset", "difference", "p"} <= set(nb["paired_delong_exact_vs_one_off"][0])
    assert s["physician_picked_a_neighbour"] == pytest.approx(2 / 3, abs=0.01)
    assert slice_stability([{k: v for k, v in r.items() if k != "p_slice+1"} for r in rows],
                           0.5) == {}


def test_gap_to_the_best_auc_comes_with_a_paired_test():
    from tfesi_desktop.core.evaluation import best_auc_comparison
    from tfesi_desktop.core.stats import delong_paired

    rng = np.random.default_rng(2)
    best = rng.uniform(0, 1, 300)
    y = (rng.random(300) < best).astype(int)
    model = np.clip(best + rng.normal(0, 0.3, 300), 0, 1)
    g = best_auc_comparison(y, model, best)
    ref = delong_paired(y, best, model)
    assert g["gap"] == pytest.approx(ref.difference, abs=1e-4) and g["gap"] > 0
    assert g["p"] == ref.p and g["gap_ci95"][0] < g["gap"] < g["gap_ci95"][1]


def test_pointing_game_chance_includes_a_map_peaking_at_the_roi_centre():
    from tfesi_desktop.core.evaluation import pointing_game

    rows = [{"hit": i < 18, "chance": 0.1, "centre_hit": i < 15, "hit_shifted": i < 5,
             "chance_shifted": 0.1, "centre_hit_shifted": i < 2} for i in range(20)]
    g = pointing_game(rows)
    assert g["as_placed"]["centre_map_rate"] == 0.75
    assert g["as_placed"]["rate"] == 0.9
    # 3 patients where only the model hits, none where only the centre map does: p = 1/8
    assert g["as_placed"]["p_vs_centre_map"] == pytest.approx(0.125)
    assert g["shifted_quarter"]["centre_map_rate"] == 0.1


def test_site_curve_compares_the_routes_a_new_site_can_take(cohort, tmp_path, capsys,
                                                            monkeypatch):
    """`tfesi study --learning-curve N --site-test CSV`: the shipped model as is and
    recalibrated, fine-tuned from its network (init_from its model.keras, the compact recipe),
    from scratch, and the baseline, each measured on the separate test manifest. The training is
    replaced by a small logistic model (the real one runs in tests/test_training.py)."""
    from sklearn.linear_model import LogisticRegression

    from tfesi_desktop.core.paths import resource_path
    from tfesi_desktop.core.training import study

    configs = []

    class Fake:
        def __init__(self, clf):
            self.clf = clf

        def predict(self, x, batch_size=None, verbose=0):
            return self.clf.predict_proba(x[:, ::10, ::10, 0].reshape(len(x), -1))[:, 1]

    def quick_fit(regions, y, config, *, progress=None, train_idx=None, val_idx=None):
        configs.append((config, len(train_idx), len(val_idx)))
        x = np.stack([r.input().image for r in regions])[:, ::10, ::10, 0].reshape(len(y), -1)
        clf = LogisticRegression(max_iter=2000).fit(x[train_idx], y[train_idx])
        return Fake(clf), {"validation_probabilities":
                           clf.predict_proba(x[val_idx])[:, 1].tolist()}

    monkeypatch.setattr(study, "fit_and_evaluate", quick_fit)
    manifest = str(cohort[0] / "manifest.csv")
    out = tmp_path / "sc"
    bundle = resource_path("models", "demo-synthetic")
    assert main(["study", manifest, "--out", str(out), "--learning-curve", "6",
                 "--site-test", manifest, "--init-from", str(bundle)]) == 0
    text = capsys.readouterr().out
    for route in study.SITE_ROUTES:
        assert route in text
    assert "best achievable AUC" in text
    fine, scratch = configs[0][0], configs[1][0]
    assert fine.init_from == str(bundle / "model.keras") and scratch.init_from is None
    assert fine.variant == scratch.variant == "compact" and fine.learning_rate == 1e-3
    assert configs[0][1:] == (4, 2)  # fitted on 4, recalibrated on the other 2
    data = json.loads((out / "site_curve.json").read_text())
    row = data["rows"][0]
    assert row["patients"] == 6 and data["test_patients"] == 6
    for route in study.SITE_ROUTES:
        assert {"auc", "ci95", "slope", "intercept", "ece"} <= set(row[route])
    # the program's own score, as the window shows it, for the shipped model unchanged
    assert row[study.SHIPPED] == data["shipped"]
    assert main(["study", manifest, "--out", str(tmp_path / "x"), "--learning-curve", "4",
                 "--site-test", manifest]) == 2


def test_a_degenerate_recalibration_is_said_in_the_site_curve(cohort, tmp_path, monkeypatch):
    """A Platt fit that collapses (here forced: temperature 50,000, nearly the same probability
    for every patient, as "shipped + recalibration" once did at 100 patients, slope 66) is
    marked in the printed table and said in words there and in site_curve.json, by the install
    floor's own criteria (core/model_gate.degenerate_calibration)."""
    from tfesi_desktop.core import stats
    from tfesi_desktop.core.paths import resource_path
    from tfesi_desktop.core.training import study

    monkeypatch.setattr(stats, "fit_platt", lambda y, z: (5e4, 0.0))
    manifest = str(cohort[0] / "manifest.csv")
    out = tmp_path / "sc"
    result = study.run_site_curve(manifest, manifest, out, [6],
                                  bundle=resource_path("models", "demo-synthetic"),
                                  routes=(study.SHIPPED, study.SHIPPED_RECAL))
    recal = result["rows"][0][study.SHIPPED_RECAL]
    assert recal["temperature"] == 5e4
    assert any("Platt temperature 5e+04" in r for r in recal["degenerate"])
    assert any("within" in r and "percentage points" in r for r in recal["degenerate"])
    text = study.site_curve_text(result)
    line = next(x for x in text.splitlines() if x.strip().startswith("6 "))
    assert line.count("(!)") == 1 + bool(result["rows"][0][study.SHIPPED].get("degenerate"))
    assert "(!) 6 patients, shipped + recalibration: degenerate calibration" in text
    data = json.loads((out / "site_curve.json").read_text())
    assert any(w.startswith("6 patients, shipped + recalibration") for w in data["warnings"])
    assert data["rows"][0][study.SHIPPED_RECAL]["degenerate"] == recal["degenerate"]


def test_a_sound_calibration_is_not_called_degenerate():
    from tfesi_desktop.core.training.study import _test_metrics

    rng = np.random.default_rng(3)
    z = rng.normal(0, 1.5, 400)
    y = (rng.random(400) < 1 / (1 + np.exp(-z))).astype(int)
    sound = _test_metrics(y, 1 / (1 + np.exp(-z)), temperature=1.0)
    assert "degenerate" not in sound and 0.7 < sound["slope"] < 1.4
    flat = _test_metrics(y, 1 / (1 + np.exp(-z / 60)), temperature=60.0)
    assert flat["slope"] > 5 and any(r.startswith("calibration slope") and "test patients" in r
                                     for r in flat["degenerate"])
