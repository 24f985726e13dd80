"""The install floor: no useless model becomes the program's model quietly (issue 24, item 3).

``tfesi model install`` refuses a bundle

- whose validated AUC's lower 95 % bound is not above a floor (:data:`MIN_AUC_LOWER`, 0.6 by
  default): the AUC the card shows clinicians (``Bundle.validated_performance``: the latest
  evaluation on independent patients, else the held-out split);
- or whose calibration is degenerate: a Platt temperature beyond :data:`TEMPERATURE_RANGE`
  (slope 1/T below 0.01 or above 100: every patient gets about the same probability, or a
  saturated one; a 300-patient soft-label bundle once had T = 59,663 and answered "45 %" for
  everyone), or a measured calibration slope beyond :data:`SLOPE_RANGE` on the same patients as
  that AUC, or held-out probabilities that all lie in a band narrower than :data:`MIN_SPREAD`
  where the card records their spread (the calibration criteria are
  :func:`degenerate_calibration`, the one definition, also used where a study recalibrates a
  model: ``training/study.run_site_curve``);

unless forced (``--force``), and then the installed copy's card says so: an ``install_gate``
record, a limitation line (printed by ``tfesi model info`` and wherever the card's limitations
are shown) and a changelog entry. The bundle folder given is not changed: the note is written
into a copy that is installed in its place (docs/architecture.md, invariant 6: the installed
bundle's SHA-256 is that of the card with the note).
"""

from __future__ import annotations

import datetime as _dt
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .bundle import CARD, SIGNATURE_FILE, Bundle, install_bundle, load_bundle, trusted_keys
from .errors import ModelError
from .fileio import write_atomically

MIN_AUC_LOWER = 0.6
TEMPERATURE_RANGE = (0.01, 100.0)
SLOPE_RANGE = (0.2, 5.0)
MIN_SPREAD = 0.05  # probabilities (5th to 95th percentile) narrower than 5 points: no ranking


@dataclass(frozen=True)
class GateResult:
    passed: bool
    reasons: tuple[str, ...]
    auc_lower: float | None

    def sentence(self) -> str:
        return "; ".join(self.reasons)


def _validated(card: dict) -> dict | None:
    """The record behind the AUC the program shows (as ``Bundle.validated_performance``)."""
    m = card.get("metrics", {})
    independent = [e for e in m.get("evaluations", []) if e.get("independent", True)]
    return independent[-1] if independent else m.get("validation")


def check(card: dict, *, min_auc_lower: float = MIN_AUC_LOWER) -> GateResult:
    """Does this card pass the install floor? Reasons in plain words when it does not."""
    reasons = []
    v = _validated(card)
    lower = None
    if not v or "auc_ci95" not in v:
        reasons.append("it carries no validated AUC with a confidence interval")
    else:
        lower = float(v["auc_ci95"][0])
        if not lower > min_auc_lower:
            reasons.append(f"its validated AUC {float(v['auc']):.3f} has a lower 95 % bound of "
                           f"{lower:.3f}, not above the floor {min_auc_lower:.2f}")
    measured = (v or {}).get("calibration") or {}
    reasons += [f"its calibration is degenerate: {r}" for r in degenerate_calibration(
        temperature=(card.get("calibration") or {}).get("temperature"),
        slope=measured.get("slope"), spread=measured.get("probability_spread"),
        where=" on the validation patients")]
    return GateResult(not reasons, tuple(reasons), lower)


def probability_spread(p) -> float:
    """How far apart the probabilities lie: the 5th to the 95th percentile."""
    import numpy as np

    lo, hi = np.percentile(np.asarray(p, float), [5, 95])
    return float(hi - lo)


def degenerate_calibration(*, temperature=None, slope=None, spread=None, where: str = ""
                           ) -> list[str]:
    """Why a calibration is degenerate, in words (empty when it is not; ``None`` is not
    checked): a Platt temperature beyond :data:`TEMPERATURE_RANGE`, a measured calibration slope
    beyond :data:`SLOPE_RANGE`, or probabilities spread (:func:`probability_spread`) over less
    than :data:`MIN_SPREAD`. ``where``: the patients the slope and spread were measured on."""
    out = []
    if temperature is not None and not (
            TEMPERATURE_RANGE[0] <= float(temperature) <= TEMPERATURE_RANGE[1]):
        out.append(f"Platt temperature {float(temperature):.4g} ("
                   + ("nearly the same probability for every patient)"
                      if float(temperature) > 1 else "probabilities saturated near 0 or 1)"))
    if slope is not None and not SLOPE_RANGE[0] <= float(slope) <= SLOPE_RANGE[1]:
        out.append(f"calibration slope {float(slope):.3g}{where}"
                   f" (outside {SLOPE_RANGE[0]}-{SLOPE_RANGE[1]})")
    if spread is not None and float(spread) < MIN_SPREAD:
        out.append(f"probabilities{where} all within "
                   f"{100 * float(spread):.1f} percentage points")
    return out


def forced_card(card: dict, result: GateResult) -> dict:
    """The card with the record that it was installed past the floor."""
    out = json.loads(json.dumps(card))
    today = _dt.date.today().isoformat()
    out["install_gate"] = {"forced": True, "date": today, "reasons": list(result.reasons)}
    note = ("Installed with --force although it does not pass the install floor: "
            f"{result.sentence()}. Validate it on local patients before relying on it.")
    out["limitations"] = [*out.get("limitations", []), note]
    out["changelog"] = [*out.get("changelog", []),
                        f"{today}: installed with --force past the install floor"]
    return out


def install_checked(path: str | Path, *, make_default: bool = True,
                    min_auc_lower: float = MIN_AUC_LOWER, force: bool = False
                    ) -> tuple[Path, GateResult]:
    """Install a bundle if it passes :func:`check`; with ``force``, install one that does not
    from a copy whose card records it (module docstring). :class:`ModelError` otherwise."""
    b: Bundle = load_bundle(path)
    result = check(b.card, min_auc_lower=min_auc_lower)
    if result.passed:
        return install_bundle(b.path, make_default=make_default), result
    if not force:
        raise ModelError(f"This model is not installed: {result.sentence()}. Validate or "
                         "retrain it (tfesi evaluate --update-card), or add --force to install "
                         "it anyway (its card will then say so).", b.path)
    if trusted_keys():
        raise ModelError("Trusted keys are set up, and a model forced past the install floor "
                         "carries a changed card, so its signature would no longer hold: sign "
                         "the bundle again after installing it elsewhere, or remove the "
                         "trusted keys.", b.path)
    with tempfile.TemporaryDirectory(prefix="tfesi-forced-") as tmp:
        copy = Path(tmp) / b.path.name
        copy.mkdir()
        for name in b.card["files"]:
            if (b.path / name).is_file():
                shutil.copyfile(b.path / name, copy / name, follow_symlinks=False)
        write_atomically(copy / CARD, json.dumps(forced_card(b.card, result), indent=1).encode(),
                         private=False)
        assert not (copy / SIGNATURE_FILE).exists()  # a signature would cover the old card
        return install_bundle(copy, make_default=make_default), result
