"""A site's patient mix (core/synth/sites.py ``Site.severe_share``, drawn in
``cohort.draw_patient``): more severe stenosis, and the outcome rate the outcome model predicts
for it; the default mix draws exactly the patients the generator always drew."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json

import numpy as np

from tfesi_desktop.core.synth import cohort
from tfesi_desktop.core.synth.cohort import Storage, draw_patient, make_cohort
from tfesi_desktop.core.synth.outcome import SEVERE_SHARE, expected_mix, favourable_probability
from tfesi_desktop.core.synth.sites import SITES

# sha256 of 120 patients (seeds 0, 2036 = the demo study's, 2430; indices 0-39) drawn by the
# generator before the patient mix existed (commit e5f9735), every float rounded to 8 decimals
DEFAULT_DIGEST = "8ba48bc762d97e9618c77da75edcd899aa5aab71d7cad5706cb7e105e5b39276"


def _rounded(x):
    if isinstance(x, float):
        return round(x, 8)
    if isinstance(x, list | tuple):
        return [_rounded(v) for v in x]
    return x


def _digest(patients) -> str:
    rows = [_rounded(dataclasses.astuple(p)) for p in patients]
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()


def test_the_default_mix_draws_exactly_the_patients_drawn_before_it_existed():
    keys = [(s, i) for s in (0, 2036, 2430) for i in range(40)]
    assert _digest([draw_patient(s, i) for s, i in keys]) == DEFAULT_DIGEST
    assert _digest([draw_patient(s, i, severe_share=SITES["reference"].severe_share)
                    for s, i in keys]) == DEFAULT_DIGEST
    # every scanner site keeps the generator's mix; only the referral site changes it
    assert {n for n, s in SITES.items() if s.severe_share != SEVERE_SHARE} == {
        "tertiary-referral"}
    # the demo study (resources/demo, seed 2036) is the same patient
    with open(cohort.Path(__file__).parents[1] / "resources" / "demo" / "manifest.csv") as f:
        row = next(csv.DictReader(f))
    p = draw_patient(2036, 0)
    assert (row["patient_id"], int(row["label"])) == (p.patient_id, p.label)
    assert float(row["width_mm"]) == round(p.width_mm, 3)
    assert float(row["p_favourable"]) == round(p.p_favourable, 4)


def test_a_referral_site_sees_more_severe_stenosis_and_the_outcome_rate_it_predicts():
    site = SITES["tertiary-referral"]
    n = 600
    ref = [draw_patient(11, i) for i in range(n)]
    mix = [draw_patient(11, i, severe_share=site.severe_share) for i in range(n)]
    w_ref = np.array([p.width_mm for p in ref])
    w = np.array([p.width_mm for p in mix])
    y_ref = np.array([p.label for p in ref])
    y = np.array([p.label for p in mix])
    # the study's inclusion criteria (Kim grade 1-2) hold at the site too
    assert w.min() >= 0.8 and w.max() <= 4.0
    severe = np.mean(w <= 2.0)
    assert abs(severe - site.severe_share) < 3 * np.sqrt(0.8 * 0.2 / n)
    assert abs(np.mean(w_ref <= 2.0) - SEVERE_SHARE) < 3 * np.sqrt(0.45 * 0.55 / n)
    assert w.mean() < w_ref.mean() - 0.4
    # the outcome follows from the anatomy through the unchanged outcome model: no label shift
    c = np.array([p.compression for p in mix])
    length = np.array([p.narrowing_mm for p in mix])
    assert np.allclose([p.p_favourable for p in mix], favourable_probability(w, c, length))
    expected = expected_mix(10_000, 1, site.severe_share)
    expected_ref = expected_mix(10_000, 1, SEVERE_SHARE)
    assert abs(w.mean() - expected["mean_width_mm"]) < 0.08
    assert expected["favourable_rate"] < expected_ref["favourable_rate"] - 0.1
    se = np.sqrt(0.25 / n)
    assert abs(y.mean() - expected["favourable_rate"]) < 3 * se
    assert abs(y_ref.mean() - expected_ref["favourable_rate"]) < 3 * se
    assert y.mean() < y_ref.mean() - 0.1
    # the patients differ only in the injected foramen: the rest is drawn from the same numbers
    assert all(a.level == b.level and a.side == b.side and a.matrix == b.matrix
               and a.nrs_before == b.nrs_before for a, b in zip(ref, mix, strict=True))


def test_synth_with_the_referral_site_writes_its_mix(tmp_path, monkeypatch):
    monkeypatch.setattr(cohort, "expected_mix",
                        lambda severe_share: expected_mix(5_000, 0, severe_share))
    site = SITES["tertiary-referral"]
    summary = make_cohort(tmp_path, patients=1, seed=5, jobs=1, matrix=256, storage=Storage(),
                          site=site)
    with open(tmp_path / "manifest.csv") as f:
        row = next(csv.DictReader(f))
    drawn, default = draw_patient(5, 0, severe_share=site.severe_share), draw_patient(5, 0)
    assert drawn.width_mm < 2.0 < default.width_mm  # seed 5, patient 0: severe at this site
    assert float(row["width_mm"]) == round(drawn.width_mm, 3)
    assert summary["site"]["severe_share"] == site.severe_share
    mix = summary["patient_mix"]
    assert mix["severe_share"] == 0.8 and mix["mean_width_mm_this_cohort"] == float(
        row["width_mm"])
    assert mix["favourable_rate_expected"] < 0.4


def test_clinical_expected_aucs_follow_the_site_mix(monkeypatch):
    from tfesi_desktop.core.synth import clinical

    calls = []
    monkeypatch.setattr(clinical, "expected_aucs",
                        lambda **kw: calls.append(kw) or (0.88, 0.9))
    monkeypatch.setattr(clinical, "_clinical_section", lambda *a: {})
    rows = [{"label": 1}, {"label": 0}]
    clinical.cohort_summary(rows, {"outcome_model": "nothing else enters it",
                                   "patient_mix": {"severe_share": 0.8}})
    clinical.cohort_summary(rows, {"outcome_model": "nothing else enters it"})
    assert calls == [{"severe_share": 0.8}, {}]
