"""``tfesi site-check``: does a new site's batch of images resemble the model's training images,
and, when outcomes are given, how well does the model do there? (issue 24, item 2)

One patient at a time, the distribution check (:mod:`.ood`) misses most of a shifted site: at
sites whose scanner differs only 30-43 % of the patients are flagged although the calibration is
far off. A batch says more than one image: when far more of a site's patients are flagged than
of the training site's held-out patients (the card's ``ood.flagged_validation``, at least 1 %,
since the threshold is a 99th percentile), the site differs, by a one-sided binomial test at
p < 0.01 or a flagged share above :data:`FLAGGED_SHARE`.

Also checked, from the headers of each case's slice: pixel size, slice thickness, field strength
and fat suppression (ScanOptions) against the training range on the card
(``training.acquisition``), else against a training manifest's headers, else reported as
unknown. With outcomes (a manifest with 0/1 labels): the local AUC with its DeLong CI
(:mod:`.stats`) and the local calibration (slope, intercept, ECE, mean predicted vs observed).

Uses the program's own scoring (:func:`.evaluation.score_cases`, the stable prediction the window
shows), Qt- and TensorFlow-free.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import ManifestError, TfesiError

FLAGGED_SHARE = 0.10
OUTSIDE_SHARE = 0.10  # of a site's patients outside the training acquisition range
P_DIFFERS = 0.01
FAT_SAT_WORDS = ("FS", "FAT", "SPIR", "SPAIR", "STIR", "CHESS")
ACQUISITION = ("pixel_mm", "slice_thickness_mm", "field_strength_t", "fat_suppressed")


def read_site_cases(path: str | Path):
    """(cases, outcomes given?) of a manifest, or of ``manifest.csv`` in a folder. Rows without
    a 0/1 label are accepted (label -1): a site may check its images before it has outcomes."""
    from .manifest import REQUIRED, Case, read_csv_rows, read_manifest

    path = Path(path)
    if path.is_dir():
        path = path / "manifest.csv"
        if not path.is_file():
            raise ManifestError("This folder has no manifest.csv: the check needs each "
                                "patient's slice and ROI (the manifest format of tfesi synth, "
                                "README), with or without outcomes.", path.parent)
    rows = read_csv_rows(path, "manifest", [c for c in REQUIRED if c != "label"])
    if all(r.get("label") in ("0", "1") for r in rows):
        return read_manifest(path), True
    if any(r.get("label") in ("0", "1") for r in rows):
        raise ManifestError("Some rows have an outcome (label 0/1) and some do not: give all "
                            "or none.", path)
    import csv
    import tempfile

    with tempfile.TemporaryDirectory(prefix="tfesi-site-") as tmp:  # the rows, labels blank
        copy = Path(tmp) / "manifest.csv"
        with open(copy, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(dict.fromkeys([*rows[0], "label"])))
            w.writeheader()
            w.writerows({**r, "label": "0"} for r in rows)
        cases = read_manifest(copy)
    return [Case(c.patient_id, path.parent / c.row["study_path"], c.series_uid, c.slice_key,
                 c.roi, c.side, c.level, -1, c.row) for c in cases], False


def acquisition(case) -> dict:
    """Pixel size (mm), slice thickness (mm), field strength (T) and fat suppression (True,
    False, or None when not recorded) of a case's slice, from its headers."""
    import pydicom

    from .dicom import scan

    stack = scan(case.study_path).find_stack(case.series_uid)
    ref = stack.slices[stack.find_slice(case.slice_key)]
    ds = pydicom.dcmread(ref.path, stop_before_pixels=True)

    def number(keyword):
        for d in _levels(ds):
            v = d.get(keyword)
            if v not in (None, ""):
                try:
                    return float(v[0] if isinstance(v, pydicom.multival.MultiValue) else v)
                except (TypeError, ValueError):
                    return None
        return None

    options = " ".join(str(v) for d in _levels(ds) for v in _as_list(d.get("ScanOptions")))
    fat = (any(w in options.upper().replace("\\", " ").split() for w in FAT_SAT_WORDS)
           if options.strip() else None)
    g = ref.require_geometry()
    return {"pixel_mm": round(float(np.mean(g.spacing)), 4),
            "slice_thickness_mm": number("SliceThickness"),
            "field_strength_t": number("MagneticFieldStrength"), "fat_suppressed": fat}


def _as_list(v):
    if v is None:
        return []
    return list(v) if isinstance(v, (list, tuple)) or hasattr(v, "__iter__") and not isinstance(
        v, str) else [v]


def _levels(ds):
    """The dataset, then its shared functional groups' pixel-measure and MR sequences (where
    enhanced MR keeps thickness and options)."""
    yield ds
    for seq in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        for group in list(ds.get(seq) or [])[:1]:
            for inner in ("PixelMeasuresSequence", "MRImagingModifierSequence",
                          "MRTimingAndRelatedParametersSequence"):
                yield from list(group.get(inner) or [])[:1]


def acquisition_range(rows: list[dict]) -> dict:
    """The training range: min and max of each numeric parameter, the fat-suppression values
    seen."""
    out = {}
    for k in ACQUISITION:
        vals = [r[k] for r in rows if r.get(k) is not None]
        if k == "fat_suppressed":
            out[k] = sorted({bool(v) for v in vals})
        elif vals:
            out[k] = [min(vals), max(vals)]
    return out


def compare_acquisition(site: list[dict], training: dict | None) -> list[dict]:
    """Per parameter: the site's range, the training range (numbers widened by 5 %), how many of
    the site's patients lie outside it, and whether more than :data:`OUTSIDE_SHARE` do (None
    when either side is unknown)."""
    here = acquisition_range(site)
    out = []
    for k in ACQUISITION:
        s, t = here.get(k), (training or {}).get(k)
        vals = [r[k] for r in site if r.get(k) is not None]
        if not s or not t:
            n_out, outside = None, None
        else:
            n_out = sum((bool(v) not in t) if k == "fat_suppressed" else
                        not t[0] * 0.95 <= v <= t[1] * 1.05 for v in vals)
            outside = n_out > OUTSIDE_SHARE * len(vals)
        out.append({"parameter": k, "site": s, "training": t, "patients_outside": n_out,
                    "outside": outside, "patients_unrecorded": len(site) - len(vals)})
    return out


def binomial_sf(k: int, n: int, p: float) -> float:
    """P(K >= k) for K ~ Binomial(n, p)."""
    from scipy.stats import binom

    return float(binom.sf(k - 1, n, p))


def site_check(path: str | Path, predictor, *, training_manifest: str | Path | None = None,
               progress=None) -> dict:
    """The whole check (module docstring) as one dictionary; :func:`site_check_text` words
    it."""
    from .evaluation import score_cases
    from .manifest import generator_probabilities, read_manifest
    from .stats import auc_delong, calibration_summary

    cases, labelled = read_site_cases(path)
    if predictor.ood is None:
        raise TfesiError("This model carries no training-image distribution, so a site cannot "
                         "be compared with its training images.", predictor.bundle.path)
    rows = score_cases(predictor, cases, perturb=False, progress=progress)
    dist = np.array([r["ood_distance"] for r in rows])
    flagged = int(np.sum(dist > predictor.ood.threshold))
    n = len(rows)
    card = predictor.bundle.card
    expected = max(float((card.get("ood") or {}).get("flagged_validation", 0.01)), 0.01)
    p = binomial_sf(flagged, n, expected)
    differs = bool(p < P_DIFFERS or flagged / n > FLAGGED_SHARE)
    result = {"patients": n, "model": f"{predictor.bundle.name} {predictor.bundle.version}",
              "distribution": {
                  "flagged": flagged, "flagged_share": round(flagged / n, 4),
                  "expected_share_at_training_site": round(expected, 4),
                  "p_value": p, "median_distance": round(float(np.median(dist)), 4),
                  "threshold": predictor.ood.threshold, "differs": differs}}
    site_acq = [acquisition(c) for c in cases]
    training = (card.get("training") or {}).get("acquisition")
    source = "the model card"
    if not training and training_manifest:
        training = acquisition_range([acquisition(c) for c in read_manifest(training_manifest)])
        source = f"the training manifest {Path(training_manifest).name}"
    elif not training:
        source = None
    acq = compare_acquisition(site_acq, training)
    result["acquisition"] = {"training_range_from": source, "parameters": acq,
                             "outside": [a["parameter"] for a in acq if a["outside"]]}
    if labelled:
        y = np.array([c.label for c in cases])
        probs = np.array([r["probability"] for r in rows])
        if 0 < y.sum() < len(y):
            a = auc_delong(y, probs)
            result["outcomes"] = {
                "favourable": int(y.sum()), "poor": int(len(y) - y.sum()),
                "auc": round(a.auc, 4), "auc_ci95": [round(v, 4) for v in a.ci95],
                "mean_predicted": round(float(probs.mean()), 4),
                "observed": round(float(y.mean()), 4),
                "calibration": calibration_summary(y, probs, bootstrap=200),
                "accuracy_unflagged": (round(float(np.mean(
                    (probs[dist <= predictor.ood.threshold] >= 0.5)
                    == y[dist <= predictor.ood.threshold])), 4)
                    if np.any(dist <= predictor.ood.threshold) else None)}
            gen = generator_probabilities(cases)
            if gen is not None:
                result["outcomes"]["best_achievable_auc"] = round(auc_delong(y, gen).auc, 4)
        else:
            result["outcomes"] = {"note": "only one outcome class: no AUC"}
    result["verdict"] = verdict(result)
    return result


def verdict(r: dict) -> str:
    d = r["distribution"]
    parts = []
    if d["differs"] or r["acquisition"]["outside"]:
        parts.append("This site's images differ from the training images: validate locally "
                     "before use")
    else:
        parts.append("This site's images resemble the training images")
    o = r.get("outcomes") or {}
    if "calibration" in o:
        c = o["calibration"]
        # beyond chance on this many patients: the bootstrap CIs exclude a calibrated model
        off = (not c["slope_ci95"][0] <= 1 <= c["slope_ci95"][1]
               or not c["intercept_ci95"][0] <= 0 <= c["intercept_ci95"][1]
               or c["ece_ci95"][0] > 0.1)
        parts.append(
            f"on these {r['patients']} patients the AUC is {o['auc']:.3f} (95 % CI "
            f"{o['auc_ci95'][0]:.3f}-{o['auc_ci95'][1]:.3f})"
            + ("; the probabilities are miscalibrated here: refit the calibration on local "
               "patients (tfesi evaluate --update-card --calibrate-temperature) before use"
               if off else "; the calibration holds"))
    elif not d["differs"]:
        parts.append("validate on local outcomes before relying on it")
    return "; ".join(parts) + "."


def site_check_text(r: dict) -> str:
    d = r["distribution"]
    lines = [f"site check of {r['patients']} patients with {r['model']}",
             f"  distribution check: {d['flagged']} of {r['patients']} flagged "
             f"({100 * d['flagged_share']:.0f} %; about "
             f"{100 * d['expected_share_at_training_site']:.0f} % at the training site, "
             f"p = {d['p_value']:.2g}); median distance "
             f"{d['median_distance']:.2f} (flag above {d['threshold']:.2f})"]
    a = r["acquisition"]
    if a["training_range_from"] is None:
        lines.append("  acquisition: the model card records no training range (give "
                     "--training-manifest to compare against the training images' headers)")
    else:
        lines.append(f"  acquisition (training range from {a['training_range_from']}):")
    for p in a["parameters"]:
        mark = {True: "OUTSIDE", False: "within", None: "unknown"}[p["outside"]]
        lines.append(f"    {p['parameter']}: site {p['site']}, training {p['training']}: "
                     f"{mark}" + (f" ({p['patients_outside']} patients outside)"
                                  if p["patients_outside"] else ""))
    o = r.get("outcomes")
    if o and "auc" in o:
        c = o["calibration"]
        lines.append(f"  outcomes: {o['favourable']} favourable, {o['poor']} poor; AUC "
                     f"{o['auc']:.3f} (95 % CI {o['auc_ci95'][0]:.3f}-{o['auc_ci95'][1]:.3f})"
                     + (f", best achievable {o['best_achievable_auc']:.3f}"
                        if o.get("best_achievable_auc") else ""))
        lines.append(f"  calibration: slope {c['slope']:.2f} (95 % CI {c['slope_ci95'][0]:.2f}-"
                     f"{c['slope_ci95'][1]:.2f}), intercept {c['intercept']:+.2f}, ECE "
                     f"{c['ece']:.3f}; mean predicted {o['mean_predicted']:.2f} vs observed "
                     f"{o['observed']:.2f}")
    elif o:
        lines.append(f"  outcomes: {o['note']}")
    lines.append(f"verdict: {r['verdict']}")
    return "\n".join(lines) + "\n"
