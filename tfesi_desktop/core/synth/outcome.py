"""The synthetic cohorts' outcome model (a leaf: ``cohort.py`` and ``clinical.py`` both use it).

The outcome (favourable = NRS reduction >= 50 % at 2 months) is drawn from
:func:`favourable_probability` of findings visible on the narrowest slice of the injected
foramen, so the best AUC any model can reach is known (:func:`best_achievable_auc`).
"""

from __future__ import annotations

import functools

import numpy as np

# the outcome model: P(favourable) = sigmoid(B_WIDTH * (w - W_CENTRE) - B_COMPRESSION * (c - C_MEAN)
# - B_LENGTH * (L - L_MEAN)) of findings all visible on the narrowest slice of the injected
# foramen: w its narrowest width (mm), c how much the nerve root is flattened there (0..1), L the
# half-length of the narrowing along the channel (mm). Nothing else, visible or hidden, enters it.
B_WIDTH, W_CENTRE = 1.45, 2.15
B_COMPRESSION, C_MEAN = 4.6, 0.45
B_LENGTH, L_MEAN = 0.72, 5.0
LENGTH_RANGE = (2.5, 7.5)
# the patient mix: the share of injected foramina at Kim grade 2 (0.8-2.0 mm, severe) among the
# included grade 1-2 patients. A site that sees more severe stenosis (a tertiary referral centre)
# draws more of them (``Site.severe_share``, core/synth/sites.py); the outcome then follows from
# the anatomy through :func:`favourable_probability`. At this default the draws are the ones the
# generator has always made (``1 - 0.45 == 0.55`` exactly in binary floating point).
SEVERE_SHARE = 0.45


def favourable_probability(width_mm, compression=C_MEAN, length_mm=L_MEAN):
    """The generator's outcome model (also the best possible score for a patient): the
    probability of a favourable outcome from the injected foramen's narrowest width (mm), the
    root's compression (0..1) and the narrowing's half-length along the channel (mm)."""
    logit = (B_WIDTH * (np.asarray(width_mm, float) - W_CENTRE)
             - B_COMPRESSION * (np.asarray(compression, float) - C_MEAN)
             - B_LENGTH * (np.asarray(length_mm, float) - L_MEAN))
    return 1.0 / (1.0 + np.exp(-logit))


def _draw_injected_width(rng: np.random.Generator, severe_share: float = SEVERE_SHARE) -> float:
    # inclusion criteria of the paper: grade 1 or 2 on the injected side
    if rng.random() < 1 - severe_share:
        return float(rng.uniform(2.05, 4.0))  # grade 1
    return float(rng.uniform(0.8, 2.0))  # grade 2


def _draw_findings(rng: np.random.Generator, severe_share: float = SEVERE_SHARE
                   ) -> tuple[float, float, float]:
    """(width mm, compression 0..1, half-length mm) of the injected foramen's stenosis: a
    narrower foramen tends to flatten the root more, but not always. ``severe_share``: the
    patient mix (:data:`SEVERE_SHARE`)."""
    width = _draw_injected_width(rng, severe_share)
    compression = float(np.clip(0.45 + 0.15 * (2.4 - width) + rng.normal(0, 0.25), 0, 1))
    length = float(rng.uniform(*LENGTH_RANGE))
    return width, compression, length


def best_achievable_auc(n: int = 200_000, seed: int = 0,
                        severe_share: float = SEVERE_SHARE) -> float:
    """Expected AUC of the Bayes-optimal score (the true probability) under the generator."""
    return expected_mix(n, seed, severe_share)["best_achievable_auc"]


@functools.lru_cache(maxsize=8)
def expected_mix(n: int = 200_000, seed: int = 0, severe_share: float = SEVERE_SHARE) -> dict:
    """What the generator expects of a patient mix: mean narrowest width (mm), favourable rate
    and the best achievable AUC (Monte Carlo over ``n`` patients)."""
    rng = np.random.default_rng(seed)
    w, c, length = np.array([_draw_findings(rng, severe_share) for _ in range(n)]).T
    p = favourable_probability(w, c, length)
    y = rng.random(n) < p
    return {"mean_width_mm": float(w.mean()), "favourable_rate": float(p.mean()),
            "best_achievable_auc": auc(p, y)}


def auc(scores, labels) -> float:
    """Mann-Whitney AUC with ties counted half (no scikit-learn needed here)."""
    from scipy.stats import rankdata

    scores, labels = np.asarray(scores, float), np.asarray(labels, bool)
    ranks = rankdata(scores)
    n1, n0 = labels.sum(), (~labels).sum()
    return float((ranks[labels].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))
