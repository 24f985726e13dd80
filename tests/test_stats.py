import csv
import itertools
import json

import numpy as np
import pytest

from tfesi_desktop.core.errors import TfesiError
from tfesi_desktop.core.stats import auc_delong, delong_covariance, delong_paired

from .conftest import SHARED

REFERENCE = SHARED / "reference"


def _brute_auc(y, s):
    pos, neg = s[y == 1], s[y == 0]
    return np.mean([(p > n) + 0.5 * (p == n) for p, n in itertools.product(pos, neg)])


def test_auc_equals_brute_force_mann_whitney_with_ties():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 60)
    s = np.round(rng.normal(size=60) + y, 1)  # rounded: many ties
    assert auc_delong(y, s).auc == pytest.approx(_brute_auc(y, s), abs=1e-12)


def test_delong_variance_worked_by_hand():
    # positives 0.9, 0.6; negatives 0.7, 0.2, 0.1
    # V10 (per positive: share of negatives below it): 0.9 -> 1, 0.6 -> 2/3
    # V01 (per negative: share of positives above it): 0.7 -> 1/2, 0.2 -> 1, 0.1 -> 1
    # AUC = 5/6; var = var(V10)/2 + var(V01)/3 = (1/18)/2 + (1/12)/3 = 1/36 + 1/36 = 1/18
    y = [1, 1, 0, 0, 0]
    s = [0.9, 0.6, 0.7, 0.2, 0.1]
    r = auc_delong(y, s)
    assert r.auc == pytest.approx(5 / 6)
    assert r.variance == pytest.approx(1 / 18)


def test_paired_test_of_a_model_against_itself():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 40)
    s = rng.normal(size=40) + y
    r = delong_paired(y, s, s)
    assert r.difference == 0 and r.z == 0 and r.p == 1


def test_bad_input_gives_clear_errors():
    with pytest.raises(TfesiError, match="only one"):
        auc_delong([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(TfesiError, match="binary"):
        auc_delong([0, 1, 2], [0.1, 0.2, 0.3])
    with pytest.raises(TfesiError, match="NaN"):
        auc_delong([0, 1, 1], [0.1, np.nan, 0.3])


@pytest.fixture
def asah():
    if not (REFERENCE / "aSAH.csv").exists():
        pytest.skip("../shared/reference is not beside this checkout")
    with open(REFERENCE / "aSAH.csv") as f:
        rows = list(csv.DictReader(f))
    ref = json.loads((REFERENCE / "aSAH_pROC_values.json").read_text())
    y = np.array([int(r["poor"]) for r in rows])
    cols = {k: np.array([float(r[k]) for r in rows]) for k in ("wfns", "s100b", "ndka")}
    return y, cols, ref


def test_reproduces_proc_on_asah(asah):
    y, cols, ref = asah
    for k, s in cols.items():
        r = auc_delong(y, s)
        assert r.auc == pytest.approx(ref["auc"][k], abs=1e-4)
        assert r.variance == pytest.approx(ref["delong_var"][k], abs=1e-6)
        assert r.ci95 == pytest.approx(tuple(ref["delong_ci95"][k]), abs=1e-4)
    _, cov = delong_covariance(y, cols["wfns"], cols["ndka"], cols["s100b"])
    assert cov[0, 1] == pytest.approx(ref["delong_cov"]["wfns,ndka"], abs=1e-6)
    assert cov[1, 2] == pytest.approx(ref["delong_cov"]["ndka,s100b"], abs=1e-6)
    assert cov[2, 0] == pytest.approx(ref["delong_cov"]["s100b,wfns"], abs=1e-6)
    for name, (a, b) in {"wfns_vs_s100b": ("wfns", "s100b"), "wfns_vs_ndka": ("wfns", "ndka"),
                         "ndka_vs_s100b": ("ndka", "s100b")}.items():
        r = delong_paired(y, cols[a], cols[b])
        want = ref["paired_delong_test"][name]
        assert r.z == pytest.approx(want["Z"], abs=1e-4)
        assert r.p == pytest.approx(want["p"], abs=1e-4)
        assert r.ci95 == pytest.approx(tuple(want["diff_ci95"]), abs=1e-4)


def test_ece_sampling_floor_is_what_a_calibrated_score_gets_from_sampling_alone():
    """The floor: outcomes drawn from the very probabilities (a perfectly calibrated score)
    still give an ECE of several points on 120 patients, less on 1,200, none in the limit;
    repeatable from the seed."""
    from tfesi_desktop.core.stats import (
        calibration_summary,
        ece_sampling_floor,
        expected_calibration_error,
    )

    rng = np.random.default_rng(1)
    p = rng.uniform(0.05, 0.95, 120)
    med, p95 = ece_sampling_floor(p, draws=400, seed=3)
    assert 0.04 < med < 0.15 and med < p95
    assert ece_sampling_floor(p, draws=400, seed=3) == (med, p95)
    big = ece_sampling_floor(np.tile(p, 10), draws=200, seed=3)[0]
    assert big < med / 2
    # by hand: the floor is the median ECE of outcomes drawn from p itself
    draws = np.random.default_rng(3).random((400, len(p))) < p
    by_hand = np.median([expected_calibration_error(d.astype(int), p) for d in draws])
    assert med == pytest.approx(by_hand, abs=1e-12)
    s = calibration_summary((rng.random(120) < p).astype(int), p, bootstrap=50)
    assert s["ece_floor_median"] == pytest.approx(med, abs=0.03)
    with pytest.raises(TfesiError):
        ece_sampling_floor([])
