"""The image and the patient together (issue 25): late fusion of the image network's logit with
clinical variables.

A *clinical model* is a logistic regression on ``[image logit, clinical variables]``, fitted by
maximum likelihood on patients the image network was not trained on (so it is calibrated on
them), and stored in a bundle as the data file :data:`CLINICAL_FILE` (JSON; listed with its
SHA-256 under the card's ``files``, so the bundle's usual verification covers it, and summarised
in the card's ``clinical`` section). A bundle without that file works as before.

The combined logit is written around the training means, so that each input has its own
contribution (docs/architecture.md, "Clinical data"):

    logit = base + b_image * (image_logit - mean_image) + sum_j b_j * (x_j - mean_j)

``base`` is the logit of a patient at every training mean; ``b_j * (x_j - mean_j)`` is
variable j's contribution on the logit scale (positive: towards a favourable outcome). Each
variable carries its unit, its valid range and its missing-value policy: ``impute`` (the training
mean, so its contribution is 0, and the result lists it as imputed) or ``refuse`` (no combined
result without it). A missing value never becomes 0.

Entry points: :func:`combine` (a :class:`..runtime.Prediction` + a dict of values ->
:class:`CombinedPrediction`), :func:`load_clinical_model`, :func:`fit_clinical_model`,
:func:`fuse_bundle` (``tfesi fuse``), :func:`clinical_study` / :func:`run_clinical_study`
(``tfesi clinical-study``). No Qt, no TensorFlow.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .errors import ModelError, TfesiError

CLINICAL_FILE = "clinical.json"
CLINICAL_FORMAT = "tfesi-clinical/1"
IMAGE = "image_logit"  # the image network's (calibrated) logit, the first input


class ClinicalError(TfesiError):
    """A clinical value is missing, malformed, in the wrong unit or outside its valid range."""


@dataclass(frozen=True)
class Variable:
    """One clinical input: how it is entered and checked. ``kind``: "number", "count" (whole
    numbers) or "binary" (``codes`` maps the accepted words to 1 and 0)."""

    name: str
    label: str
    unit: str
    kind: str
    low: float
    high: float
    missing: str  # "impute" (training mean) or "refuse"
    codes: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"name": self.name, "label": self.label, "unit": self.unit, "kind": self.kind,
                "valid_range": [self.low, self.high], "missing": self.missing,
                **({"codes": dict(self.codes)} if self.codes else {})}

    @classmethod
    def from_dict(cls, d: dict) -> Variable:
        lo, hi = d["valid_range"]
        v = cls(str(d["name"]), str(d["label"]), str(d["unit"]), str(d["kind"]), float(lo),
                float(hi), str(d["missing"]), {str(k): int(c) for k, c in
                                                (d.get("codes") or {}).items()})
        if v.kind not in ("number", "count", "binary") or v.missing not in ("impute", "refuse") \
                or not (math.isfinite(v.low) and math.isfinite(v.high) and v.low < v.high) \
                or (v.kind == "binary") != bool(v.codes):
            raise ValueError(f"variable {v.name!r} is not well defined")
        return v

    def describe_range(self) -> str:
        if self.kind == "binary":
            return " or ".join(self.codes)
        return f"{self.low:g}-{self.high:g} {self.unit}".rstrip()

    def parse(self, raw) -> float | None:
        """The value as a number (binary: its code), None when missing; :class:`ClinicalError`
        with a sentence when it is malformed or outside the valid range."""
        if raw is None or (isinstance(raw, str) and raw.strip() == ""):
            return None
        if self.kind == "binary":
            key = str(raw).strip()
            for word, code in self.codes.items():
                if key.lower() in (word.lower(), _LONG_CODES.get(word, word).lower()):
                    return float(code)
            raise ClinicalError(f"{self.label} must be {self.describe_range()} (got {raw!r}).")
        if isinstance(raw, bool):
            raise ClinicalError(f"{self.label} must be a number (got {raw!r}).")
        try:
            value = float(str(raw).strip()) if isinstance(raw, str) else float(raw)
        except (TypeError, ValueError):
            raise ClinicalError(f"{self.label} must be a number"
                                + (f" of {self.unit}, without the unit" if self.unit else "")
                                + f" (got {raw!r}).") from None
        if not math.isfinite(value):
            raise ClinicalError(f"{self.label} must be a finite number (got {raw!r}).")
        if self.kind == "count" and value != round(value):
            raise ClinicalError(f"{self.label} must be a whole number (got {raw!r}).")
        if not self.low <= value <= self.high:
            raise ClinicalError(f"{self.label} {value:g} is outside the valid range "
                                f"{self.describe_range()}; check the value and its unit.")
        return value


_LONG_CODES = {"F": "female", "M": "male"}

# the variables the program knows (units, valid ranges, missing-value policy); a clinical model
# file carries its own copy of those it uses, which is what prediction checks against
VARIABLES = {v.name: v for v in (
    Variable("age", "Age", "years", "number", 18, 100, "impute"),
    Variable("sex", "Sex", "F or M", "binary", 0, 1, "impute", {"F": 1, "M": 0}),
    Variable("duration_months", "Symptom duration", "months", "number", 0, 240, "impute"),
    # the outcome is a 50 % reduction of this score: no combined result without it
    Variable("nrs_before", "Baseline pain (NRS)", "points", "count", 0, 10, "refuse"),
    Variable("previous_injections", "Previous injections at this level", "", "count",
             0, 20, "impute"),
    Variable("grade", "Kim foraminal grade (measured)", "", "count", 0, 3, "impute"),
)}
ALIASES = {"nrs": "nrs_before", "baseline_nrs": "nrs_before", "duration": "duration_months",
           "symptom_duration": "duration_months", "previous": "previous_injections",
           "injections": "previous_injections", "kim_grade": "grade"}
DEFAULT_VARIABLES = tuple(VARIABLES)
RIDGE = 1e-3  # L2 penalty on the standardised coefficients (numerical stability only)


def canonical_name(name: str) -> str:
    key = name.strip().lower().replace("-", "_")
    return ALIASES.get(key, key)


def parse_clinical_arg(text: str) -> dict[str, str]:
    """``age=62,sex=F,nrs=7`` as {variable: text}; aliases (``nrs``, ``duration``, ``previous``,
    ``kim_grade``) resolved; an empty value (``age=``) means missing."""
    out: dict[str, str] = {}
    for part in (p for p in text.split(",") if p.strip()):
        name, eq, value = part.partition("=")
        if not eq or not name.strip():
            raise ClinicalError(f"--clinical takes NAME=VALUE pairs separated by commas, such "
                                f"as age=62,sex=F,nrs=7 (got {part.strip()!r}).")
        key = canonical_name(name)
        if key in out:
            raise ClinicalError(f"--clinical gives {name.strip()} twice.")
        out[key] = value.strip()
    return out


# --- the model ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ClinicalModel:
    """A fitted late-fusion model (module docstring); per-unit coefficients around the means."""

    variables: tuple[Variable, ...]
    base_logit: float  # logit at every training mean
    image_coefficient: float
    image_mean: float
    image_sd: float
    coefficients: dict  # name -> per unit of the variable (logit scale)
    means: dict  # name -> training mean (the imputed value)
    sds: dict  # name -> training SD
    minima: dict = field(default_factory=dict)  # name -> smallest training value
    maxima: dict = field(default_factory=dict)
    fitted_on: dict = field(default_factory=dict)  # data, n, favourable, ...
    uses_image: bool = True

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.variables)

    def variable(self, name: str) -> Variable:
        for v in self.variables:
            if v.name == name:
                return v
        raise KeyError(name)

    def logit(self, image_logit, table: Mapping[str, np.ndarray]) -> np.ndarray:
        """Combined logits for arrays of image logits and complete clinical columns."""
        z = self.base_logit + (self.image_coefficient * (np.asarray(image_logit, float)
                                                         - self.image_mean)
                               if self.uses_image else 0.0)
        for name in self.names:
            z = z + self.coefficients[name] * (np.asarray(table[name], float) - self.means[name])
        return np.asarray(z, float)

    def as_json(self) -> dict:
        return {
            "format": CLINICAL_FORMAT,
            "model": "logistic regression (late fusion): logit = base_logit + image_coefficient"
                     " * (image_logit - image_mean) + sum of coefficient * (value - mean)",
            "image_input": "the image network's calibrated mean logit over the ROI set"
                           if self.uses_image else None,
            "base_logit": self.base_logit, "image_coefficient": self.image_coefficient,
            "image_mean": self.image_mean, "image_sd": self.image_sd,
            "variables": [{**v.as_dict(), "coefficient_per_unit": self.coefficients[v.name],
                           "training_mean": self.means[v.name],
                           "training_sd": self.sds[v.name],
                           "training_range": [self.minima.get(v.name), self.maxima.get(v.name)]}
                          for v in self.variables],
            "missing_values": "per variable: 'impute' uses the training mean (contribution 0, "
                              "listed as imputed in the result); 'refuse' gives no combined "
                              "result without the value. Never 0.",
            "contribution": "coefficient_per_unit * (value - training_mean), logit scale",
            "fitted_on": self.fitted_on,
        }

    @classmethod
    def from_json(cls, d: dict, where=None) -> ClinicalModel:
        try:
            if d.get("format") != CLINICAL_FORMAT:
                raise ValueError(f"unknown format (expected {CLINICAL_FORMAT})")
            vs = [(Variable.from_dict(v), v) for v in d["variables"]]
            nums = [float(d[k]) for k in ("base_logit", "image_coefficient", "image_mean",
                                          "image_sd")]
            per = {k: {v.name: float(raw[key]) for v, raw in vs}
                   for k, key in (("coef", "coefficient_per_unit"), ("mean", "training_mean"),
                                  ("sd", "training_sd"))}
            if not all(math.isfinite(x) for x in nums + [x for m in per.values()
                                                          for x in m.values()]):
                raise ValueError("a coefficient or mean is not a finite number")
            if len({v.name for v, _ in vs}) != len(vs):
                raise ValueError("a variable is listed twice")
            ranges = {v.name: raw.get("training_range") or [None, None] for v, raw in vs}
            return cls(tuple(v for v, _ in vs), *nums, per["coef"], per["mean"], per["sd"],
                       {k: r[0] for k, r in ranges.items()}, {k: r[1] for k, r in ranges.items()},
                       dict(d.get("fitted_on") or {}), d.get("image_input") is not None)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ModelError(f"The clinical model file is invalid ({e}).", where) from e


def _fit_logistic(x: np.ndarray, y: np.ndarray, ridge: float = RIDGE) -> np.ndarray:
    """Maximum-likelihood logistic regression by Newton's method; ``x`` (n, k) standardised,
    returns (k + 1,) coefficients, intercept first. A tiny L2 penalty (not on the intercept)
    keeps a separable sample finite."""
    n, k = x.shape
    a = np.column_stack([np.ones(n), x])
    beta = np.zeros(k + 1)
    pen = np.full(k + 1, ridge * n)
    pen[0] = 0.0
    for _ in range(100):
        p = 0.5 * (1 + np.tanh(0.5 * (a @ beta)))
        grad = a.T @ (y - p) - pen * beta
        hess = (a * (p * (1 - p))[:, None]).T @ a + np.diag(pen)
        step = np.linalg.solve(hess, grad)
        beta = beta + step
        if np.max(np.abs(step)) < 1e-10:
            break
    return beta


def fit_clinical_model(image_logits, table: Mapping[str, np.ndarray], labels, *,
                       variables=DEFAULT_VARIABLES, use_image: bool = True,
                       fitted_on: dict | None = None) -> ClinicalModel:
    """Fit the late-fusion model on held-out patients: ``image_logits`` (n,) the image network's
    calibrated logits, ``table`` {variable: (n,) numbers, binary as codes}, ``labels`` (n,) 0/1.
    Every value must be present (a fit never imputes)."""
    y = np.asarray(labels, float)
    if y.ndim != 1 or len(y) < 10 or not np.isin(y, (0, 1)).all() or y.min() == y.max():
        raise ClinicalError("Fitting the clinical model needs at least 10 patients with both "
                            "outcomes (labels 0 and 1).")
    cols, names = [], []
    if use_image:
        cols.append(np.asarray(image_logits, float))
        names.append(IMAGE)
    specs = []
    for name in variables:
        if name not in VARIABLES:
            raise ClinicalError(f"Unknown clinical variable {name!r}; known: "
                                f"{', '.join(VARIABLES)}.")
        specs.append(VARIABLES[name])
        cols.append(np.asarray(table[name], float))
        names.append(name)
    if not cols:
        raise ClinicalError("The clinical model needs the image logit or at least one variable.")
    x = np.column_stack(cols)
    if x.shape[0] != len(y):
        raise ClinicalError(f"There are {x.shape[0]} rows of inputs for {len(y)} labels.")
    bad = [names[j] for j in range(x.shape[1]) if not np.isfinite(x[:, j]).all()]
    if bad:
        raise ClinicalError(f"Missing or invalid values in {', '.join(bad)}: the clinical model "
                            "is fitted on complete rows only.")
    mean, sd = x.mean(axis=0), x.std(axis=0)
    flat = [names[j] for j in range(x.shape[1]) if sd[j] == 0]
    if flat:
        raise ClinicalError(f"{', '.join(flat)} does not vary in these patients; it cannot be "
                            "fitted (leave it out).")
    beta = _fit_logistic((x - mean) / sd, y)
    per_unit = beta[1:] / sd
    # the intercept of the standardised fit is the logit at every mean
    off = 1 if use_image else 0
    return ClinicalModel(
        tuple(specs), float(beta[0]),
        float(per_unit[0]) if use_image else 0.0,
        float(mean[0]) if use_image else 0.0, float(sd[0]) if use_image else 0.0,
        {n: float(per_unit[j + off]) for j, n in enumerate(variables)},
        {n: float(mean[j + off]) for j, n in enumerate(variables)},
        {n: float(sd[j + off]) for j, n in enumerate(variables)},
        {n: float(x[:, j + off].min()) for j, n in enumerate(variables)},
        {n: float(x[:, j + off].max()) for j, n in enumerate(variables)},
        dict(fitted_on or {}), use_image)


# --- prediction with clinical inputs -----------------------------------------------------------

@dataclass(frozen=True)
class Contribution:
    """One input's share of the combined logit (positive: towards a favourable outcome)."""

    name: str
    label: str
    unit: str
    value: float  # the value used (binary: its code; imputed: the training mean)
    shown: str  # the value as entered, or "imputed (training mean ...)"
    imputed: bool
    coefficient: float  # per unit, logit scale
    mean: float  # training mean
    contribution: float  # coefficient * (value - mean), logit scale
    outside_training: bool = False  # inside the valid range, outside what the fit saw

    def as_dict(self) -> dict:
        return {"name": self.name, "label": self.label, "unit": self.unit,
                "value": round(self.value, 6), "shown": self.shown, "imputed": self.imputed,
                "coefficient_per_unit": round(self.coefficient, 6),
                "training_mean": round(self.mean, 6),
                "contribution_logit": round(self.contribution, 6),
                "outside_training_range": self.outside_training}


@dataclass(frozen=True)
class CombinedPrediction:
    """The image prediction combined with clinical values by a bundle's clinical model."""

    probability: float  # calibrated on the fusion's patients, of a favourable outcome
    logit: float
    interval: tuple[float, float]  # over the image's ROI set, clinical values fixed
    threshold: float
    image_probability: float
    image_logit: float
    base_logit: float  # a patient at every training mean
    image_contribution: float  # b_image * (image_logit - training mean)
    contributions: tuple[Contribution, ...]
    reliable: bool  # the image was like the training images (see Prediction.reliable)
    fitted_on: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        return "favourable" if self.probability >= self.threshold else "poor"

    @property
    def used(self) -> tuple[str, ...]:
        """The variables entered (not imputed)."""
        return tuple(c.name for c in self.contributions if not c.imputed)

    @property
    def imputed(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.contributions if c.imputed)

    @property
    def borderline(self) -> bool:
        lo, hi = self.interval
        return lo < self.threshold <= hi

    def as_dict(self) -> dict:
        from .runtime import format_probability

        return {
            "probability_favourable": round(self.probability, 6),
            "probability_text": format_probability(self.probability),
            "label": self.label, "threshold": self.threshold,
            "interval": [round(v, 6) for v in self.interval], "borderline": self.borderline,
            "logit": round(self.logit, 6), "base_logit": round(self.base_logit, 6),
            "image_probability": round(self.image_probability, 6),
            "image_logit": round(self.image_logit, 6),
            "image_contribution_logit": round(self.image_contribution, 6),
            "contributions": [c.as_dict() for c in self.contributions],
            "used": list(self.used), "imputed": list(self.imputed),
            "reliable_image": self.reliable, "fitted_on": self.fitted_on,
        }


def _values_for(model: ClinicalModel, values: Mapping[str, object]) -> dict:
    """{name: (number | None)} for the model's variables; unknown names refused."""
    given = {canonical_name(k): v for k, v in values.items()}
    unknown = [k for k in given if k not in model.names]
    if unknown:
        raise ClinicalError(f"This model does not use {', '.join(unknown)}; it uses "
                            f"{', '.join(model.names)}.")
    return {v.name: v.parse(given.get(v.name)) for v in model.variables}


def combine(prediction, values: Mapping[str, object], model: ClinicalModel
            ) -> CombinedPrediction:
    """The combined probability for an image :class:`..runtime.Prediction` and clinical
    ``values`` ({name: text or number}; "" or None or absent = missing), with each input's
    contribution and which were entered or imputed. :class:`ClinicalError` (a sentence) for an
    unknown name, a malformed or out-of-range value, or a missing value the model refuses to
    impute."""
    parsed = _values_for(model, values)
    refused = [model.variable(n).label for n, v in parsed.items()
               if v is None and model.variable(n).missing == "refuse"]
    if refused:
        raise ClinicalError(f"{', '.join(refused)} is needed for the combined prediction (this "
                            "model does not impute it); enter it, or use the image-only "
                            "result.")
    contributions = []
    for var in model.variables:
        value, mean = parsed[var.name], model.means[var.name]
        imputed = value is None
        used = mean if imputed else value
        if imputed:
            shown = f"imputed (training mean {_format(var, mean)})"
        else:
            shown = _format(var, value)
        lo, hi = model.minima.get(var.name), model.maxima.get(var.name)
        outside = (not imputed and lo is not None and hi is not None
                   and not lo <= value <= hi)
        contributions.append(Contribution(
            var.name, var.label, var.unit, float(used), shown, imputed,
            model.coefficients[var.name], mean,
            0.0 if imputed else model.coefficients[var.name] * (value - mean), outside))
    clinical = sum(c.contribution for c in contributions)
    image_logit = float(prediction.logit)
    image_term = (model.image_coefficient * (image_logit - model.image_mean)
                  if model.uses_image else 0.0)
    logit = model.base_logit + image_term + clinical
    crops = np.clip(np.asarray(prediction.crop_probabilities, float), 1e-12, 1 - 1e-12)
    crop_logits = model.base_logit + clinical + (
        model.image_coefficient * (np.log(crops / (1 - crops)) - model.image_mean)
        if model.uses_image else 0.0)
    per_crop = 1 / (1 + np.exp(-np.atleast_1d(crop_logits)))
    return CombinedPrediction(
        float(1 / (1 + np.exp(-logit))), float(logit),
        (float(per_crop.min()), float(per_crop.max())), float(prediction.threshold),
        float(prediction.probability), image_logit, model.base_logit, float(image_term),
        tuple(contributions), bool(prediction.reliable), dict(model.fitted_on))


def _format(var: Variable, value: float) -> str:
    if var.kind == "binary":
        words = {c: w for w, c in var.codes.items()}
        if value in words:
            return words[value]
        return f"{100 * value:.0f} % {words.get(1, 'coded 1')}"  # a mean: the share coded 1
    return f"{value:.3g} {var.unit}".rstrip()


def combined_lines(c: CombinedPrediction) -> list[str]:
    """The combined result in words (CLI; the window and the report may use the same)."""
    from .runtime import format_probability

    lo, hi = c.interval
    lines = [f"With the clinical data: probability of a favourable outcome "
             f"{format_probability(c.probability)}  ->  {c.label} (image alone "
             f"{format_probability(c.image_probability)}; range over the ROIs "
             f"{format_probability(lo)} to {format_probability(hi)})"
             + ("  BORDERLINE" if c.borderline else ""),
             "contributions to the logit (+ towards favourable), from a patient at the "
             f"training means ({c.base_logit:+.2f}):",
             f"  {'image (network logit)':50s} {c.image_contribution:+.2f}"]
    for k in c.contributions:
        note = "  (outside the training range)" if k.outside_training else ""
        lines.append(f"  {k.label + ' = ' + k.shown:50s} {k.contribution:+.2f}{note}")
    lines.append(f"used: {', '.join(c.used) or 'none'}; imputed: {', '.join(c.imputed) or 'none'}")
    lines.append(validated_text(c.fitted_on))
    if not c.reliable:
        lines.append("NOT RELIABLE: the image is unlike the training images; the clinical data "
                     "do not make it reliable.")
    return lines


def contribution_rows(c: CombinedPrediction) -> list[tuple[str, str, float, bool]]:
    """(input, value as shown, contribution on the logit scale, outside the training range)
    for the image and each variable: the table of the window's panel and of the report."""
    return [("Image (network logit)", f"{c.image_logit:+.2f}", c.image_contribution, False)] + [
        (k.label, k.shown, k.contribution, k.outside_training) for k in c.contributions]


def validated_text(fitted_on: dict) -> str:
    """One line on how far the combined probability was validated (from the model file)."""
    v = fitted_on.get("validation")
    if v:
        lo, hi = v["auc_ci95"]
        return (f"Image + clinical: validated AUC {v['auc']:.3f} (95 % CI {lo:.3f}-{hi:.3f}) on "
                f"{v['n']} patients not used in the fit ({v.get('data', '')}; image alone "
                f"{v['image_only_auc']:.3f} on the same patients, paired DeLong p "
                f"{v['paired_p']:.2g}).")
    return (f"Image + clinical: fitted on {fitted_on.get('n', '?')} patients "
            f"({fitted_on.get('data', 'unknown data')}); not yet validated on other patients "
            "(tfesi clinical-study).")


# --- in a bundle ---------------------------------------------------------------------------------

def load_clinical_model(bundle) -> ClinicalModel | None:
    """The clinical model of a verified :class:`..bundle.Bundle`, or None when it has none. The
    file is checked against the card's SHA-256 again as it is read."""
    from .bundle import sha256_file

    digest = bundle.card.get("files", {}).get(CLINICAL_FILE)
    if digest is None:
        return None
    path = bundle.file(CLINICAL_FILE)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ModelError(f"The clinical model cannot be read ({e.strerror or e}).", path) from e
    if sha256_file(path) != digest or len(data) > 1 << 20:
        raise ModelError("The clinical model does not match the SHA-256 in the model card: the "
                         "bundle was changed, and is refused.", path)
    try:
        d = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ModelError(f"The clinical model file cannot be read ({e}).", path) from e
    return ClinicalModel.from_json(d, path)


def attach_clinical_model(bundle_path, out, model: ClinicalModel, *, note: str = "") -> Path:
    """Copy the bundle at ``bundle_path`` to the new folder ``out`` and add ``model`` as
    :data:`CLINICAL_FILE`: listed under the card's ``files`` (its SHA-256), summarised in a
    ``clinical`` section, the limitation about clinical factors restated, a changelog line.
    The image network and its files are unchanged; a signature is not copied (sign again)."""
    import datetime as _dt
    import shutil

    from .bundle import CARD, SIGNATURE_FILE, load_bundle, sha256_file, validate_card
    from .fileio import write_atomically

    src = load_bundle(bundle_path)
    out = Path(out)
    if out.exists():
        raise TfesiError("The output bundle folder exists already; choose another.", out)
    if CLINICAL_FILE in src.card["files"]:
        raise TfesiError("This bundle has a clinical model already; fuse the image-only "
                         "bundle it came from.", src.path)
    shutil.copytree(src.path, out, ignore=shutil.ignore_patterns(SIGNATURE_FILE, ".*"))
    write_atomically(out / CLINICAL_FILE, json.dumps(model.as_json(), indent=1).encode(),
                     private=False)
    card = json.loads((out / CARD).read_text())
    card["files"][CLINICAL_FILE] = sha256_file(out / CLINICAL_FILE)
    card["name"] = f"{card['name']}+clinical"
    card["clinical"] = {
        "file": CLINICAL_FILE, "model": "late fusion: logistic regression on the image "
        "network's logit and the clinical variables",
        "variables": [{**v.as_dict(), "training_mean": round(model.means[v.name], 4)}
                      for v in model.variables],
        "fitted_on": model.fitted_on}
    card["limitations"] = [
        line for line in card.get("limitations", []) if "clinical factors" not in line] + [
        "With clinical data: a logistic model on the image network's logit and "
        f"{', '.join(model.names)}, fitted on {model.fitted_on.get('n', '?')} patients "
        f"({model.fitted_on.get('data', 'unknown data')}); without them the image alone "
        "predicts, as before. Each variable's effect is linear; a value outside the training "
        "range is flagged, and its contribution extrapolated."]
    card.setdefault("changelog", []).append(
        f"{_dt.date.today().isoformat()}: clinical model added ({', '.join(model.names)})"
        + (f"; {note}" if note else ""))
    validate_card(card, out / CARD)
    write_atomically(out / CARD, json.dumps(card, indent=1).encode(), private=False)
    load_bundle(out)  # it verifies
    return out


# --- clinical values of a manifest ---------------------------------------------------------------

def manifest_table(cases, names) -> dict[str, np.ndarray]:
    """{variable: (n,) numbers, NaN where missing} from the manifest's columns of those names;
    a malformed or out-of-range value is refused with its line."""
    table = {}
    for name in names:
        var = VARIABLES[name]
        col = []
        for i, c in enumerate(cases):
            if name not in c.row:
                raise ClinicalError(f"The manifest has no column {name}.")
            try:
                v = var.parse(c.row[name])
            except ClinicalError as e:
                raise ClinicalError(f"Line {i + 2} (patient {c.patient_id}): {e.message}") \
                    from None
            col.append(np.nan if v is None else v)
        table[name] = np.array(col, float)
    return table


def image_scores(predictor, cases, *, progress=None) -> tuple[np.ndarray, np.ndarray]:
    """(calibrated logits, probabilities) of the stable prediction for each case."""
    from .evaluation import score_cases

    rows = score_cases(predictor, cases, progress=progress, perturb=False)
    raw = np.array([r["raw_logit"] for r in rows])
    return np.asarray(predictor.calibration.logit(raw), float), np.array(
        [r["probability"] for r in rows])


def read_image_scores(path, cases) -> tuple[np.ndarray, np.ndarray]:
    """The ``image_scores.csv`` a clinical study wrote (patient_id, image_logit,
    image_probability), in the order of ``cases``."""
    from .manifest import read_csv_rows

    rows = read_csv_rows(Path(path), "image scores file",
                         ("patient_id", "image_logit", "image_probability"), TfesiError)
    by_id = {r["patient_id"]: r for r in rows}
    missing = [c.patient_id for c in cases if c.patient_id not in by_id]
    if missing:
        raise TfesiError(f"The image scores file lacks {len(missing)} of the manifest's "
                         f"patients (first: {missing[0]}).", path)
    try:
        z = np.array([float(by_id[c.patient_id]["image_logit"]) for c in cases])
        p = np.array([float(by_id[c.patient_id]["image_probability"]) for c in cases])
    except ValueError as e:
        raise TfesiError(f"The image scores file holds a value that is not a number ({e}).",
                         path) from e
    return z, p


def fuse_bundle(bundle_path, manifest, out, *, variables=DEFAULT_VARIABLES,
                scores_file=None, progress=None) -> tuple[Path, ClinicalModel]:
    """``tfesi fuse``: score the manifest's patients (held out from the image network's
    training) with the bundle, fit the clinical model on them, and write the new bundle."""
    from .bundle import describe_data
    from .manifest import read_manifest
    from .runtime import Predictor

    cases = read_manifest(manifest)
    table = manifest_table(cases, variables)
    labels = np.array([c.label for c in cases])
    if scores_file:
        z, _ = read_image_scores(scores_file, cases)
    else:
        z, _ = image_scores(Predictor(bundle_path, quiet=True), cases, progress=progress)
    model = fit_clinical_model(z, table, labels, variables=variables, fitted_on={
        "data": describe_data(manifest), "n": int(len(labels)),
        "favourable": int(labels.sum())})
    return attach_clinical_model(bundle_path, out, model), model


# --- evaluated like a study ----------------------------------------------------------------------

def _split(labels, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified (fit, evaluation) indices: ``fraction`` of each class to the fit."""
    rng = np.random.default_rng(seed)
    fit = []
    for cls in (0, 1):
        idx = np.flatnonzero(np.asarray(labels) == cls)
        rng.shuffle(idx)
        fit.extend(idx[:int(round(fraction * len(idx)))])
    fit = np.sort(np.array(fit, int))
    return fit, np.setdiff1d(np.arange(len(labels)), fit)


def clinical_study(image_logits, image_probs, table: Mapping[str, np.ndarray], labels, *,
                   variables=DEFAULT_VARIABLES, fraction: float = 0.5, seed: int = 0,
                   best: Mapping[str, np.ndarray] | None = None, return_model: bool = False):
    """Image only vs image + clinical on fresh patients: the fusion fitted on a stratified
    ``fraction`` of them, everything scored on the rest. AUCs with DeLong CIs, the paired DeLong
    test (combined vs image only), clinical data alone, an ablation (each variable left out,
    refitted, paired test vs the full model), Brier scores, the fitted per-unit coefficients,
    and ``best`` ({"p_image": ..., "p_combined": ...}, a synthetic cohort's best scores)
    evaluated on the same patients. ``return_model``: (result, the fusion fitted on the fit
    part)."""
    from .stats import auc_delong, brier_score, calibration_slope_intercept, delong_paired

    y = np.asarray(labels, int)
    z = np.asarray(image_logits, float)
    fit, ev = _split(y, fraction, seed)
    if min(y[fit].sum(), (1 - y[fit]).sum(), y[ev].sum(), (1 - y[ev]).sum()) < 3:
        raise ClinicalError("Too few patients of one outcome for a fit and an evaluation half.")
    sub = {k: np.asarray(v, float) for k, v in table.items()}

    def fitted(names, use_image=True):
        return fit_clinical_model(z[fit], {k: sub[k][fit] for k in names}, y[fit],
                                  variables=names, use_image=use_image)

    def probs(model):
        q = model.logit(z[ev], {k: sub[k][ev] for k in model.names})
        return 1 / (1 + np.exp(-q))

    full = fitted(tuple(variables))
    p_full = probs(full)
    p_img = np.asarray(image_probs, float)[ev]
    ye = y[ev]

    def entry(p, reference=None):
        a = auc_delong(ye, p)
        out = {"auc": round(a.auc, 4), "auc_ci95": [round(v, 4) for v in a.ci95]}
        if p.min() >= 0 and p.max() <= 1:
            out["brier"] = round(brier_score(ye, p), 4)
        if reference is not None:
            t = delong_paired(ye, p, reference)
            out["vs"] = {"difference": round(t.difference, 4), "p": float(t.p)}
        return out

    scores = {"image only": entry(p_img), "image + clinical": entry(p_full, p_img),
              "clinical only": entry(probs(fitted(tuple(variables), use_image=False)), p_img)}
    slope, intercept = calibration_slope_intercept(ye, p_full)
    scores["image + clinical"]["calibration_slope"] = round(slope, 3)
    scores["image + clinical"]["calibration_intercept"] = round(intercept, 3)
    paired = delong_paired(ye, p_full, p_img)
    ablation = []
    for name in variables:
        rest = tuple(v for v in variables if v != name)
        p = probs(fitted(rest))
        t = delong_paired(ye, p, p_full)
        ablation.append({"without": name, "auc": round(auc_delong(ye, p).auc, 4),
                         "difference_vs_full": round(t.difference, 4), "p_vs_full": float(t.p)})
    result = {
        "n": int(len(y)), "n_fit": int(len(fit)), "n_evaluation": int(len(ev)),
        "favourable_fit": int(y[fit].sum()), "favourable_evaluation": int(ye.sum()),
        "fraction_fit": fraction, "seed": seed,
        "variables": list(variables), "scores": scores,
        "paired_delong": {"a": "image + clinical", "b": "image only",
                          "difference": round(paired.difference, 4),
                          "ci95": [round(v, 4) for v in paired.ci95],
                          "z": round(paired.z, 3), "p": float(paired.p)},
        "ablation": ablation,
        "fitted": {"base_logit": round(full.base_logit, 4),
                   "image_coefficient": round(full.image_coefficient, 4),
                   "coefficients_per_unit": {k: round(v, 4)
                                             for k, v in full.coefficients.items()}},
    }
    if best:
        result["best_achievable"] = {k: entry(np.asarray(v, float)[ev]) for k, v in best.items()}
    return (result, full) if return_model else result


def repeated_splits(image_logits, image_probs, table, labels, *, variables=DEFAULT_VARIABLES,
                    fraction: float = 0.5, seeds=range(1, 21)) -> dict:
    """The same comparison over other random splits (one split's p-value depends on which
    patients fell where): mean, SD and range of each AUC and of the difference, and how often
    the paired DeLong p was below 0.05."""
    runs = [clinical_study(image_logits, image_probs, table, labels, variables=variables,
                           fraction=fraction, seed=s) for s in seeds]
    img = np.array([r["scores"]["image only"]["auc"] for r in runs])
    comb = np.array([r["scores"]["image + clinical"]["auc"] for r in runs])
    p = np.array([r["paired_delong"]["p"] for r in runs])

    def spread(a):
        return {"mean": round(float(a.mean()), 4), "sd": round(float(a.std(ddof=1)), 4),
                "min": round(float(a.min()), 4), "max": round(float(a.max()), 4)}

    return {"splits": len(runs), "seeds": [int(s) for s in seeds], "image_only": spread(img),
            "image_plus_clinical": spread(comb), "difference": spread(comb - img),
            "share_p_below_0.05": round(float(np.mean(p < 0.05)), 4)}


def clinical_study_text(r: dict, title: str = "") -> str:
    """The study's result as a plain-text table."""
    lines = [title] if title else []
    lines.append(f"{r['n']} patients: the fusion fitted on {r['n_fit']}, evaluated on "
                 f"{r['n_evaluation']} ({r['favourable_evaluation']} favourable); stratified, "
                 f"seed {r['seed']}")
    lines.append(f"{'':22s}{'AUC':>7s}  {'95 % CI':13s}{'Brier':>7s}")

    def row(name, e):
        b = f"{e['brier']:7.3f}" if "brier" in e else f"{'':7s}"
        lo, hi = e["auc_ci95"]
        return f"{name:22s}{e['auc']:7.3f}  {lo:.3f}-{hi:.3f}  {b}"

    for name, e in r["scores"].items():
        lines.append(row(name, e))
    for name, e in r.get("best_achievable", {}).items():
        lines.append(row(f"best: {name}", e))
    p = r["paired_delong"]
    lines.append(f"paired DeLong, image + clinical vs image only: difference "
                 f"{p['difference']:+.3f} (95 % CI {p['ci95'][0]:+.3f} to {p['ci95'][1]:+.3f}),"
                 f" z {p['z']:.2f}, p {p['p']:.4g}")
    c = r["scores"]["image + clinical"]
    lines.append(f"calibration of image + clinical on the evaluation half: slope "
                 f"{c['calibration_slope']:.2f}, intercept {c['calibration_intercept']:+.2f}")
    lines += ["", "ablation (variable left out, refitted):",
              f"{'without':22s}{'AUC':>7s}{'vs full':>9s}{'p':>9s}"]
    for a in r["ablation"]:
        lines.append(f"{a['without']:22s}{a['auc']:7.3f}{a['difference_vs_full']:+9.3f}"
                     f"{a['p_vs_full']:9.3g}")
    f = r["fitted"]
    lines += ["", f"fitted (per unit, logit scale): image logit {f['image_coefficient']:+.3f}; "
              + "; ".join(f"{k} {v:+.3f}" for k, v in f["coefficients_per_unit"].items())]
    rep = r.get("repeated_splits")
    if rep:
        d = rep["difference"]
        lines += ["", f"over {rep['splits']} other random splits: image only "
                      f"{rep['image_only']['mean']:.3f}, image + clinical "
                      f"{rep['image_plus_clinical']['mean']:.3f} (mean AUCs); difference "
                      f"{d['mean']:+.3f} (SD {d['sd']:.3f}, {d['min']:+.3f} to {d['max']:+.3f});"
                      f" paired DeLong p < 0.05 in {100 * rep['share_p_below_0.05']:.0f} %"]
    if "stated_effects" in r:
        lines.append("stated in the generator: "
                     + "; ".join(f"{k} {v:+.3f}" for k, v in r["stated_effects"].items()))
    return "\n".join(lines) + "\n"


def run_clinical_study(manifest, out, *, model=None, scores_file=None,
                       variables=DEFAULT_VARIABLES, fraction: float = 0.5, seed: int = 0,
                       bundle_out=None, repeats: int = 0, progress=None) -> dict:
    """``tfesi clinical-study``: image scores of every patient (from ``model``, or a saved
    ``scores_file``), :func:`clinical_study`, and a report folder: metrics.json, table.txt,
    image_scores.csv (reusable with ``--image-scores``). ``bundle_out``: also write ``model``
    (a bundle folder) with the fusion fitted on the fit part, its validation on the rest
    recorded in the clinical model file. ``repeats``: also :func:`repeated_splits` over that
    many other seeds."""
    from .bundle import describe_data
    from .fileio import write_atomically

    if bundle_out is not None and (model is None or hasattr(model, "bundle")):
        raise TfesiError("Writing a bundle needs the image bundle's folder (--model).")
    from .manifest import read_manifest

    cases = read_manifest(manifest)
    table = manifest_table(cases, variables)
    missing = [k for k, v in table.items() if np.isnan(v).any()]
    if missing:
        raise ClinicalError(f"The manifest has empty values in {', '.join(missing)}; the study "
                            "needs complete rows.")
    labels = np.array([c.label for c in cases])
    if scores_file:
        z, p = read_image_scores(scores_file, cases)
        source = f"image scores from {Path(scores_file).name}"
    else:
        from .runtime import Predictor

        predictor = model if hasattr(model, "bundle") else Predictor(model, quiet=True)
        z, p = image_scores(predictor, cases, progress=progress)
        source = f"{predictor.bundle.name} {predictor.bundle.version}"
    best = {}
    for col in ("p_image", "p_combined"):
        try:
            best[col] = np.array([float(c.row[col]) for c in cases])
        except (KeyError, TypeError, ValueError):
            pass
    result, fused = clinical_study(z, p, table, labels, variables=variables,
                                   fraction=fraction, seed=seed, best=best or None,
                                   return_model=True)
    result["source"] = source
    result["manifest"] = str(manifest)
    if repeats:
        result["repeated_splits"] = repeated_splits(
            z, p, table, labels, variables=variables, fraction=fraction,
            seeds=[seed + 1 + k for k in range(repeats)])
    try:
        c = json.loads((Path(manifest).parent / "cohort.json").read_text())["clinical"]
        result["stated_effects"] = {k: c["effects_per_unit"][k] for k in variables}
    except (OSError, ValueError, KeyError, TypeError):
        pass
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_atomically(out / "metrics.json", json.dumps(result, indent=1).encode(), private=False)
    write_atomically(out / "table.txt", clinical_study_text(result, source).encode(),
                     private=False)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["patient_id", "label", "image_logit", "image_probability"])
    for c, zi, pi in zip(cases, z, p, strict=True):
        w.writerow([c.patient_id, c.label, f"{zi:.6f}", f"{pi:.6f}"])
    write_atomically(out / "image_scores.csv", buf.getvalue().encode(), private=True)
    if bundle_out is not None:
        data = describe_data(manifest)
        c = result["scores"]["image + clinical"]
        fused = replace(fused, fitted_on={
            "data": data, "n": result["n_fit"],
            "favourable": result["favourable_fit"],
            "validation": {"data": data, "n": result["n_evaluation"], "auc": c["auc"],
                           "auc_ci95": c["auc_ci95"],
                           "image_only_auc": result["scores"]["image only"]["auc"],
                           "paired_p": result["paired_delong"]["p"]}})
        attach_clinical_model(model, bundle_out, fused, note=f"validated on "
                              f"{result['n_evaluation']} other patients of {data}")
        result["bundle"] = str(bundle_out)
    return result


__all__ = ["ALIASES", "CLINICAL_FILE", "VARIABLES", "ClinicalError", "ClinicalModel",
           "CombinedPrediction", "Contribution", "Variable", "attach_clinical_model",
           "clinical_study", "combine", "combined_lines", "contribution_rows",
           "fit_clinical_model", "fuse_bundle", "load_clinical_model", "parse_clinical_arg",
           "run_clinical_study"]
