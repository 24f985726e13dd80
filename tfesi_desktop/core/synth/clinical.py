"""Clinical variables of a synthetic patient, and an outcome drawn from image and clinic together
(``tfesi synth --clinical``; issue 25).

Without ``--clinical`` nothing here runs and a cohort is the same as before, byte for byte. With
it, each patient also gets the clinical facts a physician records before a TFESI, drawn
independently of the image findings from the distributions below, and the outcome is drawn from

    logit P(favourable) = logit(p_favourable) + sum_j EFFECTS[j] * (x_j - CENTRES[j])

where ``p_favourable`` is the image model of :mod:`.cohort` (unchanged) and ``x_j`` the clinical
values. The effects are *stated for the phantom*, not measured in any study: they have the
directions the pain literature reports (a longer history and earlier injections at the level go
with poorer outcomes; a higher baseline NRS leaves more room for a 50 % reduction), with sizes
chosen so that the clinical data add a visible but smaller part than the image. The Kim grade
(manifest ``grade``, measured on the image) has no effect of its own: its information is already
in ``p_favourable``.

Per patient the manifest then carries two best scores: ``p_combined`` (the generating
probability: the best any model of image + clinical data can do) and ``p_image`` (the probability
given the image alone, ``E[p_combined | image]`` averaged over the clinical distribution: the best
an image-only model can do; it ranks patients exactly as ``p_favourable`` does, because the
clinical values are drawn independently of the image).

Age and sex are the patient's own (``Patient.sex``, age from the birth and study dates, so they
match the DICOM header); the baseline NRS is the manifest's ``nrs_before`` (drawn by
:func:`.cohort.draw_patient`, whole numbers 4-9, the study's NRS >= 4); the symptom duration and
previous injections are drawn here from their own random stream, as is the new outcome (label and
``nrs_after``). The images are not touched: the same seed gives the same studies with or
without ``--clinical``.
"""

from __future__ import annotations

import functools
from datetime import date

import numpy as np

CLINICAL_VERSION = 1
STREAM = 25  # the patient's random stream for these draws: [seed, index, STREAM]

# the stated linear effects on the logit of a favourable outcome, per unit of each variable,
# and the centre each is measured from (the variable's mean under the generator)
# sex enters as 1 = female, 0 = male (the paper's cohort: 166 male of 288)
FEMALE_SHARE = 122 / 288
EFFECTS = {"age": -0.04, "sex": 0.30, "duration_months": -0.15, "nrs_before": 0.45,
           "previous_injections": -0.80, "grade": 0.0}
CENTRES = {"age": 53.5, "sex": FEMALE_SHARE, "duration_months": 8.0, "nrs_before": 6.5,
           "previous_injections": 0.72, "grade": 1.45}
PREVIOUS_P = (0.55, 0.25, 0.13, 0.07)  # 0, 1, 2, 3 earlier injections at the level
DURATION_SHAPE, DURATION_SCALE, DURATION_RANGE = 2.0, 4.0, (1.0, 48.0)  # months, gamma
AGE_MEAN, AGE_SD, AGE_RANGE = 53.7, 11.2, (20, 79)  # as cohort.draw_patient draws it
NRS_RANGE = (4, 9)  # as cohort.draw_patient draws it

CLINICAL_COLUMNS = ("age", "sex", "duration_months", "previous_injections", "p_image", "p_combined")
DISTRIBUTIONS = {
    "age": "years, from the birth and study dates (about N(53.7, 11.2) clipped to 20-79, the "
           "paper's cohort)",
    "sex": "F or M, 122:166 (the paper's cohort); enters the outcome as 1 = F",
    "duration_months": "symptom duration, months: gamma(shape 2, scale 4) rounded to 0.5, "
                       "clipped to 1-48 (mean about 8)",
    "nrs_before": "the manifest's nrs_before: baseline NRS 0-10, whole numbers 4-9 uniform",
    "previous_injections": "earlier TFESIs at this level: 0/1/2/3 with 55/25/13/7 %",
    "grade": "the manifest's grade (Kim grade measured on the image): no effect of its own",
}


def clinical_logit(values: dict) -> float | np.ndarray:
    """The clinical part of the outcome's logit: sum of EFFECTS[j] * (x_j - centre_j), with
    ``values`` mapping each variable to a number (sex: 1 = F, 0 = M) or an array."""
    return sum(EFFECTS[k] * (np.asarray(values[k], float) - CENTRES[k]) for k in EFFECTS)


def _logit(p):
    p = np.clip(np.asarray(p, float), 1e-12, 1 - 1e-12)
    return np.log(p / (1 - p))


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, float)))


def draw_clinical(rng: np.random.Generator, n: int | None = None) -> dict:
    """Duration (months) and previous injections (count) from their distributions."""
    size = n or 1
    duration = np.clip(np.round(rng.gamma(DURATION_SHAPE, DURATION_SCALE, size) * 2) / 2,
                       *DURATION_RANGE)
    previous = rng.choice(len(PREVIOUS_P), size=size, p=PREVIOUS_P)
    if n is None:
        return {"duration_months": float(duration[0]), "previous_injections": int(previous[0])}
    return {"duration_months": duration, "previous_injections": previous}


def _population(n: int, seed: int) -> dict:
    """``n`` draws of all clinical variables but the grade (for averaging and for the expected
    AUCs): the same distributions as the cohort's patients."""
    rng = np.random.default_rng([seed, STREAM])
    pop = draw_clinical(rng, n)
    pop["age"] = np.clip(rng.normal(AGE_MEAN, AGE_SD, n), *AGE_RANGE).astype(int).astype(float)
    pop["sex"] = (rng.random(n) < FEMALE_SHARE).astype(float)
    pop["nrs_before"] = rng.integers(NRS_RANGE[0], NRS_RANGE[1] + 1, n).astype(float)
    return pop


@functools.lru_cache(maxsize=1)
def _population_shift() -> np.ndarray:
    """The clinical logit of 4,096 fixed draws (grade excluded: it has no effect)."""
    pop = _population(4096, 0)
    pop["grade"] = np.full(4096, CENTRES["grade"])
    return np.asarray(clinical_logit(pop))


def image_only_probability(p_favourable) -> float | np.ndarray:
    """P(favourable | image) = E over the clinical distribution of the combined probability:
    the best-calibrated image-only score (4,096 fixed draws)."""
    z = _logit(p_favourable)
    out = _sigmoid(np.asarray(z, float)[..., None] + _population_shift()).mean(axis=-1)
    return float(out) if out.ndim == 0 else out


def age_years(birth_date: str, study_date: str) -> int:
    """Whole years between two DICOM dates (YYYYMMDD), as PatientAge counts them."""
    b, s = (date(int(d[:4]), int(d[4:6]), int(d[6:8])) for d in (birth_date, study_date))
    return s.year - b.year - ((s.month, s.day) < (b.month, b.day))


def add_clinical(row: dict, patient) -> dict:
    """Add the clinical columns to a manifest ``row`` of ``patient`` (a :class:`.cohort.
    Patient`) and redraw its outcome (``label``, ``nrs_after``) from the combined probability.
    Changes and returns ``row``."""
    rng = np.random.default_rng([patient.seed, patient.index, STREAM])
    drawn = draw_clinical(rng)
    values = {"age": age_years(patient.birth_date, patient.study_date),
              "sex": 1.0 if patient.sex == "F" else 0.0,
              "nrs_before": patient.nrs_before, "grade": int(row["grade"]), **drawn}
    p = float(_sigmoid(_logit(patient.p_favourable) + clinical_logit(values)))
    label = int(rng.random() < p)
    before = patient.nrs_before
    after = int(rng.integers(0, before // 2 + 1)) if label else int(
        rng.integers(before // 2 + 1, before + 1))
    row.update(age=values["age"], sex=patient.sex, duration_months=drawn["duration_months"],
               previous_injections=drawn["previous_injections"], label=label, nrs_after=after,
               p_image=round(image_only_probability(patient.p_favourable), 4),
               p_combined=round(p, 4))
    return row


@functools.lru_cache(maxsize=4)
def expected_aucs(n: int = 100_000, seed: int = 0, severe_share: float | None = None
                  ) -> tuple[float, float]:
    """(best image-only AUC, best image + clinical AUC) expected under the generator, with a
    site's patient mix (``severe_share``, core/synth/sites.py; None: the generator's)."""
    from .outcome import SEVERE_SHARE, _draw_findings, auc, favourable_probability

    share = SEVERE_SHARE if severe_share is None else severe_share
    rng = np.random.default_rng([seed, STREAM, 1])
    w, c, length = np.array([_draw_findings(rng, share) for _ in range(n)]).T
    p_img = favourable_probability(w, c, length)
    pop = _population(n, seed + 1)
    pop["grade"] = np.full(n, CENTRES["grade"])
    p = _sigmoid(_logit(p_img) + clinical_logit(pop))
    y = rng.random(n) < p
    return auc(p_img, y), auc(p, y)


def cohort_summary(rows: list[dict], summary: dict) -> dict:
    """What ``--clinical`` changes in ``cohort.json``'s ``summary``: the outcome model, the
    expected best image-only AUC (under the combined outcome), and a ``clinical`` section with
    the stated model and the best AUCs of image only and image + clinical."""

    y = np.array([int(r["label"]) for r in rows])
    both = 0 < y.sum() < len(y)
    mix = summary.get("patient_mix")  # a site's patient mix (core/synth/cohort.make_cohort)
    image, combined = (expected_aucs(severe_share=mix["severe_share"]) if mix
                       else expected_aucs())
    return {"outcome_model": summary["outcome_model"].replace(
                "nothing else enters it", "with the clinical variables of 'clinical' (tfesi "
                "synth --clinical): p_favourable is the image's part") ,
            "best_achievable_auc_expected": round(image, 4),
            "clinical": _clinical_section(rows, y, both, image, combined)}


def _clinical_section(rows, y, both, image, combined) -> dict:
    from .outcome import auc

    return {
        "version": CLINICAL_VERSION,
        "outcome_model": "logit P(favourable) = logit(p_favourable) + "
                         + " ".join(f"{'-' if EFFECTS[k] < 0 else '+'} {abs(EFFECTS[k]):g} * "
                                    f"({k} - {CENTRES[k]:.4g})" for k in EFFECTS if EFFECTS[k])
                         + "; sex = 1 for F, 0 for M; grade has no effect of its own",
        "effects_per_unit": dict(EFFECTS),
        "centres": {k: round(CENTRES[k], 4) for k in EFFECTS},
        "distributions": dict(DISTRIBUTIONS),
        "best_achievable_auc_image_expected": round(image, 4),
        "best_achievable_auc_combined_expected": round(combined, 4),
        "best_achievable_auc_image_this_cohort": round(auc(
            [float(r["p_image"]) for r in rows], y), 4) if both else None,
        "best_achievable_auc_combined_this_cohort": round(auc(
            [float(r["p_combined"]) for r in rows], y), 4) if both else None,
        "note": "stated effects of the phantom, not measured in any study",
    }
