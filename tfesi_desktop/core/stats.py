"""Discrimination statistics: AUC with the DeLong variance and 95 % CI, and the paired DeLong test.

The fast algorithm of Sun & Xu (2014, IEEE Signal Processing Letters 21:1389): midranks give the
structural components in O(n log n), exact with tied scores (ties count one half). Conventions as
R's pROC: the positive class is ``labels == 1`` and higher scores mean more likely positive; the CI
is ``AUC +- z * sqrt(var)`` clipped to [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm, rankdata

from .errors import TfesiError

Z95 = float(norm.ppf(0.975))


def _check(labels, *score_sets) -> tuple[np.ndarray, list[np.ndarray]]:
    y = np.asarray(labels)
    if y.ndim != 1 or len(y) == 0:
        raise TfesiError("The labels must be a non-empty list of 0 and 1.")
    if not np.isin(y, (0, 1)).all():
        raise TfesiError("The labels must be 0 or 1 (binary); other values were found.")
    if y.min() == y.max():
        raise TfesiError("Both classes are needed for an AUC, but only one occurs in the labels.")
    out = []
    for s in score_sets:
        s = np.asarray(s, dtype=float)
        if s.shape != y.shape:
            raise TfesiError(f"There are {len(s)} scores for {len(y)} labels.")
        if not np.isfinite(s).all():
            raise TfesiError("Some scores are missing or not finite (NaN or infinite).")
        out.append(s)
    return y.astype(bool), out


def _structural_components(y: np.ndarray, scores: list[np.ndarray]):
    """AUCs and the DeLong structural components V10 (positives) and V01 (negatives)."""
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    m, n = len(pos), len(neg)
    aucs, v10s, v01s = [], [], []
    for s in scores:
        x, z = s[pos], s[neg]
        tx, ty, tz = rankdata(x), rankdata(z), rankdata(np.concatenate([x, z]))
        aucs.append((tz[:m].sum() - m * (m + 1) / 2) / (m * n))
        v10s.append((tz[:m] - tx) / n)
        v01s.append(1.0 - (tz[m:] - ty) / m)
    return np.array(aucs), np.array(v10s), np.array(v01s), m, n


def delong_covariance(labels, *scores) -> tuple[np.ndarray, np.ndarray]:
    """(AUCs, covariance matrix of the AUCs) of several scores on the same cases."""
    y, s = _check(labels, *scores)
    aucs, v10, v01, m, n = _structural_components(y, s)
    s10 = np.atleast_2d(np.cov(v10)) if m > 1 else np.zeros((len(s), len(s)))
    s01 = np.atleast_2d(np.cov(v01)) if n > 1 else np.zeros((len(s), len(s)))
    return aucs, s10 / m + s01 / n


@dataclass(frozen=True)
class AucResult:
    auc: float
    variance: float
    ci95: tuple[float, float]
    n_positive: int
    n_negative: int

    def as_dict(self) -> dict:
        return {"auc": self.auc, "variance": self.variance, "ci95": list(self.ci95),
                "n_positive": self.n_positive, "n_negative": self.n_negative}


def auc_delong(labels, scores, *, z: float = Z95) -> AucResult:
    """AUC with its DeLong variance and CI (``z = 1.96`` for 95 %)."""
    aucs, cov = delong_covariance(labels, scores)
    a, v = float(aucs[0]), float(cov[0, 0])
    half = z * np.sqrt(max(v, 0.0))
    y = np.asarray(labels).astype(bool)
    return AucResult(a, v, (max(0.0, a - half), min(1.0, a + half)), int(y.sum()),
                     int((~y).sum()))


@dataclass(frozen=True)
class PairedResult:
    auc1: float
    auc2: float
    difference: float
    z: float
    p: float  # two-sided
    ci95: tuple[float, float]  # of the difference

    def as_dict(self) -> dict:
        return {"auc1": self.auc1, "auc2": self.auc2, "difference": self.difference,
                "z": self.z, "p": self.p, "ci95": list(self.ci95)}


def delong_paired(labels, scores1, scores2, *, z: float = Z95) -> PairedResult:
    """The paired DeLong test of two scores on the same cases. Identical scores (zero variance
    of the difference) give difference 0, z 0 and p 1, not a division by zero."""
    aucs, cov = delong_covariance(labels, scores1, scores2)
    diff = float(aucs[0] - aucs[1])
    var = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    if var <= 1e-15:
        zval, p = 0.0, 1.0
        if abs(diff) > 1e-12:  # different AUCs with no variance: cannot happen with real data
            zval, p = float(np.sign(diff) * np.inf), 0.0
    else:
        zval = diff / np.sqrt(var)
        p = float(2 * norm.sf(abs(zval)))
    half = z * np.sqrt(max(var, 0.0))
    return PairedResult(float(aucs[0]), float(aucs[1]), diff, float(zval), p,
                        (diff - half, diff + half))


# --- classification metrics and calibration ----------------------------------------------------

def youden_threshold(labels, scores) -> float:
    """The threshold maximising sensitivity + specificity - 1 (Youden's J)."""
    from sklearn.metrics import roc_curve

    y, (s,) = _check(labels, scores)
    fpr, tpr, thr = roc_curve(y, s)
    t = thr[int(np.argmax(tpr - fpr))]
    return float(t) if np.isfinite(t) else float(np.max(s)) + 1e-9


def classification_table(labels, scores, threshold: float = 0.5, *,
                         names: tuple[str, str] = ("favourable", "poor")) -> dict:
    """The paper's Table 2 layout: per class (``names``: label 1, label 0) precision, recall,
    F1 and support, their macro average, accuracy, sensitivity, specificity, confusion."""
    y, (s,) = _check(labels, scores)
    pred = s >= threshold
    tp, fn = int(np.sum(pred & y)), int(np.sum(~pred & y))
    fp, tn = int(np.sum(pred & ~y)), int(np.sum(~pred & ~y))

    def ratio(a, b):
        return float(a / b) if b else 0.0

    classes = {}
    for name, t_pos, f_pos, f_neg in ((names[0], tp, fp, fn), (names[1], tn, fn, fp)):
        p, r = ratio(t_pos, t_pos + f_pos), ratio(t_pos, t_pos + f_neg)
        classes[name] = {"precision": p, "recall": r, "f1": ratio(2 * p * r, p + r),
                         "support": t_pos + f_neg}
    macro = {k: float(np.mean([classes[c][k] for c in classes]))
             for k in ("precision", "recall", "f1")}
    return {"threshold": float(threshold), "accuracy": ratio(tp + tn, len(y)),
            "sensitivity": ratio(tp, tp + fn), "specificity": ratio(tn, tn + fp),
            "confusion": {"tp": tp, "fn": fn, "fp": fp, "tn": tn}, "classes": classes,
            "macro_avg": macro}


def brier_score(labels, probs) -> float:
    y, (p,) = _check(labels, probs)
    if p.min() < 0 or p.max() > 1:
        raise TfesiError("A Brier score needs probabilities between 0 and 1.")
    return float(np.mean((p - y) ** 2))


def reliability_curve(labels, probs, bins: int = 10) -> list[dict]:
    """Observed frequency against mean predicted probability in equal-width bins (empty bins
    left out)."""
    y, (p,) = _check(labels, probs)
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    out = []
    for b in range(bins):
        m = idx == b
        if m.any():
            out.append({"bin": [float(edges[b]), float(edges[b + 1])], "n": int(m.sum()),
                        "mean_predicted": float(p[m].mean()), "observed": float(y[m].mean())})
    return out


def fit_temperature(labels, logits) -> float:
    """Temperature T > 0 minimising the log loss of sigmoid(logit / T) (Guo et al. 2017).
    Dividing by a positive T keeps the order of the scores, so the AUC does not change."""
    from scipy.optimize import minimize_scalar

    y, (z,) = _check(labels, logits)

    def nll(log_t):
        q = z / np.exp(log_t)
        return float(np.mean(np.logaddexp(0, q) - y * q))

    r = minimize_scalar(nll, bounds=(-5, 5), method="bounded")
    return float(np.exp(r.x))


def logit(p) -> np.ndarray:
    p = np.clip(np.asarray(p, float), 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


def fit_platt(labels, logits) -> tuple[float, float]:
    """Platt scaling ``P = sigmoid(logit / T + b)``: (T > 0, b) minimising the log loss. A score
    that ranks the classes the wrong way gets a very large T (a nearly constant probability)
    rather than a negative one, so the calibrated score never reverses the model's order."""
    from scipy.optimize import minimize

    y, (z,) = _check(labels, logits)

    def nll(params):
        a, b = params
        q = np.exp(a) * z + b
        return float(np.mean(np.logaddexp(0, q) - y * q))

    base = float(np.log(max(y.mean(), 1e-3) / max(1 - y.mean(), 1e-3)))
    r = minimize(nll, x0=[0.0, base], method="L-BFGS-B", bounds=[(-12, 5), (-20, 20)])
    return float(np.exp(-r.x[0])), float(r.x[1])


def calibration_slope_intercept(labels, probs) -> tuple[float, float]:
    """Cox's calibration slope and intercept: logistic regression of the outcome on the logit
    of the predicted probability (slope 1, intercept 0 when calibrated)."""
    from scipy.optimize import minimize

    y, (p,) = _check(labels, probs)
    z = logit(p)

    def nll(params):
        q = params[0] * z + params[1]
        return float(np.mean(np.logaddexp(0, q) - y * q))

    r = minimize(nll, x0=[1.0, 0.0], method="L-BFGS-B")
    return float(r.x[0]), float(r.x[1])


def expected_calibration_error(labels, probs, bins: int = 10) -> float:
    """ECE: the mean absolute gap between predicted and observed frequency over equal-width
    bins, weighted by the bins' sizes."""
    y, (p,) = _check(labels, probs)
    return float(sum(b["n"] * abs(b["mean_predicted"] - b["observed"])
                     for b in reliability_curve(y, p, bins)) / len(y))


def ece_sampling_floor(probs, *, bins: int = 10, draws: int = 1000, seed: int = 0
                       ) -> tuple[float, float]:
    """(median, 95th percentile) of the ECE that a perfectly calibrated score gets on as many
    patients as ``probs`` from sampling alone: outcomes drawn as Bernoulli(p) for these very
    probabilities, ``draws`` times with a fixed seed. An ECE near this floor is as good as the
    number of patients can show."""
    p = np.clip(np.asarray(probs, float), 0.0, 1.0)
    if p.ndim != 1 or len(p) == 0:
        raise TfesiError("The sampling floor of the ECE needs a non-empty list of probabilities.")
    rng = np.random.default_rng(seed)
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    sums = np.bincount(idx, weights=p, minlength=bins)
    y = rng.random((draws, len(p))) < p
    observed = np.stack([np.bincount(idx, weights=row, minlength=bins) for row in y])
    ece = np.abs(sums - observed).sum(axis=1) / len(p)  # sum over bins of n_b |mean_p - obs|
    return float(np.median(ece)), float(np.percentile(ece, 95))


def calibration_summary(labels, probs, *, bins: int = 10, bootstrap: int = 1000,
                        seed: int = 0) -> dict:
    """Slope, intercept, ECE and Brier score with percentile-bootstrap 95 % CIs, and the ECE's
    sampling floor on this many patients (:func:`ece_sampling_floor`)."""
    y, (p,) = _check(labels, probs)
    rng = np.random.default_rng(seed)

    def stats(yy, pp):
        s, i = calibration_slope_intercept(yy, pp)
        return s, i, expected_calibration_error(yy, pp, bins), float(np.mean((pp - yy) ** 2))

    point = stats(y, p)
    draws = []
    for _ in range(bootstrap):
        k = rng.integers(0, len(y), len(y))
        if 0 < y[k].sum() < len(k):
            draws.append(stats(y[k], p[k]))
    d = np.array(draws)
    out = {}
    for j, name in enumerate(("slope", "intercept", "ece", "brier")):
        out[name] = round(point[j], 4)
        out[f"{name}_ci95"] = [round(float(v), 4) for v in np.percentile(d[:, j], [2.5, 97.5])]
    out["share_below_0.1_or_above_0.9"] = round(float(np.mean((p < 0.1) | (p > 0.9))), 4)
    floor = ece_sampling_floor(p, bins=bins, seed=seed)
    out["ece_floor_median"], out["ece_floor_p95"] = (round(v, 4) for v in floor)
    return out
