"""``tfesi study``: validate like a study on one manifest, repeatably from a seed.

- the paper's ablation (Table 3): original, without Dropout/BatchNorm, from scratch, trained on
  the same seeded 80/20 split and compared with paired DeLong tests;
- the handcrafted-feature baseline (:mod:`..baseline`) on the same split and the same folds;
- stratified k-fold cross-validation of the original network and the baseline: per-fold and
  pooled (out-of-fold) metrics;
- temperature scaling of the original network fitted on its validation predictions (the AUC
  does not change; the Brier score may);
- for synthetic cohorts, the generator's own probability on the same patients (the best
  achievable AUC).

Writes a folder: ``summary.json`` and ``summary.txt`` (the headline table), ``split/`` and
``cv/`` validation reports (metrics.json, table2.txt, roc.png, reliability.png), and
``predictions.csv`` (every patient's scores, usable with ``tfesi evaluate --predictions``).
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import numpy as np

from ..baseline import feature_matrix, fit_predict
from ..evaluation import evaluate_scores, write_report
from ..manifest import generator_probabilities, load_regions
from ..stats import auc_delong, brier_score, fit_temperature, logit
from .network import VARIANTS
from .train import RECIPES, TrainConfig, fit_and_evaluate, recipe, split

BASELINE = "handcrafted+logistic"
GENERATOR = "generator (best achievable)"
# arms trained on the ROIs as drawn, without ROI/intensity jitter: {arm: variant}
AUGMENTATION_OFF_OF = {"augmentation-off": "original"}


def arm_config(arm: str, *, epochs: int, batch_size: int, learning_rate: float, seed: int,
               init: str, imagenet_weights: str | None) -> TrainConfig:
    """The training of one arm: the study's settings (the paper's by default) for the paper's
    network and its variants; the compact network's own recipe (:data:`.train.RECIPES`) for
    ``compact``, which does not learn at the paper's learning rate."""
    variant = AUGMENTATION_OFF_OF.get(arm, arm)
    settings = (recipe(variant) if variant in RECIPES else
                {"epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate})
    return TrainConfig(variant=variant, **settings, seed=seed, init=init,
                       imagenet_weights=imagenet_weights,
                       augment=arm not in AUGMENTATION_OFF_OF)


def run_study(manifest: str | Path, out: str | Path, *, folds: int = 5, ablation: bool = True,
              baseline: bool = True, cv: bool = True, epochs: int = 26, batch_size: int = 8,
              learning_rate: float = 1e-5, seed: int = 0, imagenet_weights: str | None = None,
              init: str = "imagenet", progress=None) -> dict:
    from sklearn.model_selection import StratifiedKFold

    say = progress or (lambda m: None)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.monotonic()
    regions, y, cases = load_regions(manifest)
    x = np.stack([r.input().image for r in regions])
    gen = generator_probabilities(cases)
    times: dict[str, float] = {}
    summary: dict = {"manifest": str(manifest), "patients": int(len(y)),
                     "favourable": int(y.sum()), "seed": seed, "epochs": epochs,
                     "batch_size": batch_size, "learning_rate": learning_rate,
                     "init": init, "imagenet_weights": bool(imagenet_weights), "arms": {}}

    def cfg(arm):
        return arm_config(arm, epochs=epochs, batch_size=batch_size,
                          learning_rate=learning_rate, seed=seed, init=init,
                          imagenet_weights=imagenet_weights)

    feats = None
    if baseline:
        t = time.monotonic()
        feats = feature_matrix(x)
        times["baseline_features_s"] = time.monotonic() - t

    tr, va = split(y, 0.2, seed)
    split_scores: dict[str, np.ndarray] = {}
    columns: dict[str, np.ndarray] = {}  # per-patient scores for predictions.csv
    role = np.array(["train"] * len(y), dtype=object)
    role[va] = "validation"
    arms = ([*VARIANTS, *AUGMENTATION_OFF_OF] if ablation
            else (["original"] if cv or not baseline else []))
    for arm in arms:
        t = time.monotonic()
        say(f"split: training {arm} ({len(tr)} train / {len(va)} validation)")
        _, record = fit_and_evaluate(regions, y, cfg(arm), train_idx=tr, val_idx=va,
                                     progress=lambda m, a=arm: say(f"  {a} {m}"))
        p = np.array(record["validation_probabilities"])
        split_scores[arm] = p
        col = np.full(len(y), np.nan)
        col[va] = p
        columns[f"split_{arm}"] = col
        times[f"split_{arm}_s"] = time.monotonic() - t
    if baseline:
        t = time.monotonic()
        split_scores[BASELINE] = fit_predict(feats, y, tr, va, seed)
        col = np.full(len(y), np.nan)
        col[va] = split_scores[BASELINE]
        columns[f"split_{BASELINE}"] = col
        times["split_baseline_s"] = time.monotonic() - t + times.get("baseline_features_s", 0)
    if gen is not None:
        split_scores[GENERATOR] = gen[va]
    if split_scores:
        res = evaluate_scores(y[va], split_scores)
        calibration = None
        if "original" in split_scores:
            z = logit(split_scores["original"])
            temp = fit_temperature(y[va], z)
            cal = 1 / (1 + np.exp(-z / temp))
            calibration = {"temperature": temp,
                           "brier_before": brier_score(y[va], split_scores["original"]),
                           "brier_after": brier_score(y[va], cal),
                           "auc_before": auc_delong(y[va], split_scores["original"]).auc,
                           "auc_after": auc_delong(y[va], cal).auc,
                           "note": "fitted and assessed on the same validation patients"}
        write_report(out / "split", res, y[va], split_scores,
                     title=f"Seeded 80/20 split (seed {seed}): {len(va)} validation patients",
                     extra={"calibration": calibration})
        summary["split"] = {"validation_patients": int(len(va)), "calibration": calibration,
                            "paired_tests": res["paired_tests"]}
        for name, e in res["scores"].items():
            summary["arms"].setdefault(name, {})["split_auc"] = e["auc"]
            summary["arms"][name]["split_accuracy"] = e["table"]["accuracy"]

    if cv:
        skf = StratifiedKFold(folds, shuffle=True, random_state=seed)
        oof = {"original": np.full(len(y), np.nan)}
        if baseline:
            oof[BASELINE] = np.full(len(y), np.nan)
        fold_of = np.zeros(len(y), int)
        per_fold: dict[str, list[float]] = {k: [] for k in oof}
        for k, (ftr, fva) in enumerate(skf.split(np.zeros(len(y)), y), start=1):
            fold_of[fva] = k
            t = time.monotonic()
            say(f"cross-validation fold {k}/{folds}")
            _, record = fit_and_evaluate(regions, y, cfg("original"), train_idx=ftr,
                                         val_idx=fva,
                                         progress=lambda m, k=k: say(f"  fold {k} {m}"))
            oof["original"][fva] = record["validation_probabilities"]
            times[f"cv_fold{k}_s"] = time.monotonic() - t
            if baseline:
                oof[BASELINE][fva] = fit_predict(feats, y, ftr, fva, seed)
            for name in oof:
                per_fold[name].append(auc_delong(y[fva], oof[name][fva]).auc)
        cv_scores = dict(oof)
        if gen is not None:
            cv_scores[GENERATOR] = gen
        res = evaluate_scores(y, cv_scores)
        write_report(out / "cv", res, y, cv_scores,
                     title=f"{folds}-fold cross-validation, pooled out-of-fold predictions",
                     extra={"per_fold_auc": per_fold})
        for name, vals in per_fold.items():
            a = summary["arms"].setdefault(name, {})
            a["cv_pooled_auc"] = res["scores"][name]["auc"]
            a["cv_fold_auc"] = [round(v, 4) for v in vals]
            a["cv_fold_auc_mean_sd"] = [round(float(np.mean(vals)), 4),
                                        round(float(np.std(vals, ddof=1)), 4)]
        if gen is not None:
            summary["arms"][GENERATOR]["cv_pooled_auc"] = res["scores"][GENERATOR]["auc"]
        summary["cv"] = {"folds": folds, "paired_tests": res["paired_tests"]}
        for name, v in oof.items():
            columns[f"cv_{name}"] = v
        columns["cv_fold"] = fold_of

    times["total_s"] = time.monotonic() - t_start
    summary["wall_time_s"] = {k: round(v, 1) for k, v in times.items()}
    _write_predictions(out / "predictions.csv", cases, y, role, gen, columns)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    (out / "summary.txt").write_text(summary_text(summary))
    return summary


def _write_predictions(path, cases, y, role, gen, columns):
    names = ["patient_id", "label", "role"] + (["p_generator"] if gen is not None else []) + \
        list(columns)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(names)
        for i, c in enumerate(cases):
            row = [c.patient_id, int(y[i]), role[i]] + ([gen[i]] if gen is not None else [])
            row += ["" if isinstance(v, float) and np.isnan(v) else
                    (round(float(v), 6) if not isinstance(v, (int, np.integer)) else int(v))
                    for v in (columns[k][i] for k in columns)]
            w.writerow(row)


def summary_text(s: dict) -> str:
    lines = [f"{s['patients']} patients ({s['favourable']} favourable), seed {s['seed']}, "
             f"{s['epochs']} epochs, batch {s['batch_size']}, lr {s['learning_rate']}, "
             f"initialisation: {s.get('init', 'imagenet')}",
             "", f"{'arm':30s} {'80/20 split AUC (95 % CI)':28s} {'CV pooled AUC (95 % CI)':28s}"
                 f" {'CV folds mean (sd)':18s}"]

    def fmt(a):
        return f"{a['auc']:.3f} ({a['ci95'][0]:.3f}-{a['ci95'][1]:.3f})" if a else "-"

    for name, a in s["arms"].items():
        ms = a.get("cv_fold_auc_mean_sd")
        lines.append(f"{name:30s} {fmt(a.get('split_auc')):28s} {fmt(a.get('cv_pooled_auc')):28s}"
                     f" {f'{ms[0]:.3f} ({ms[1]:.3f})' if ms else '-':18s}")
    for part in ("split", "cv"):
        for p in s.get(part, {}).get("paired_tests", []):
            lines.append(f"{part}: {p['a']} vs {p['b']}: {p['difference']:+.3f} "
                         f"(95 % CI {p['ci95'][0]:+.3f} to {p['ci95'][1]:+.3f}), p {p['p']:.4f}")
    cal = s.get("split", {}).get("calibration")
    if cal:
        lines.append(f"temperature scaling (original, split): T = {cal['temperature']:.3f}, "
                     f"Brier {cal['brier_before']:.4f} -> {cal['brier_after']:.4f}, AUC "
                     f"{cal['auc_before']:.4f} -> {cal['auc_after']:.4f}")
    if s.get("init") == "random" and {"no-regularization", "from-scratch"} <= set(s["arms"]):
        lines.append("note: without --imagenet-weights the 'no-regularization' arm starts from "
                     "random weights too, so it is the same network as 'from-scratch' (same "
                     "seed, same result); the ablation needs the ImageNet weights file.")
    lines.append("wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in s["wall_time_s"].items()))
    return "\n".join(lines) + "\n"


def nested_subsets(y: np.ndarray, sizes: list[int], seed: int) -> list[np.ndarray]:
    """Index sets of the given sizes, each holding the smaller ones (one seeded order,
    interleaving the classes so every prefix keeps the cohort's class balance)."""
    rng = np.random.default_rng(seed)
    pos, neg = rng.permutation(np.flatnonzero(y == 1)), rng.permutation(np.flatnonzero(y == 0))
    share = len(pos) / len(y)
    order, i, j = [], 0, 0
    while i < len(pos) or j < len(neg):
        if j >= len(neg) or (i < len(pos) and i <= share * (i + j)):
            order.append(pos[i])
            i += 1
        else:
            order.append(neg[j])
            j += 1
    order = np.array(order)
    return [np.sort(order[:n]) for n in sizes]


def run_learning_curve(manifest: str | Path, out: str | Path, sizes: list[int], *,
                       folds: int = 5, arms: tuple[str, ...] = ("original",), epochs: int = 26,
                       batch_size: int = 8, learning_rate: float = 1e-5, seed: int = 0,
                       init: str = "imagenet", imagenet_weights: str | None = None,
                       progress=None) -> dict:
    """Cross-validated AUC (pooled out-of-fold, DeLong 95 % CI) of the CNN arm(s), the
    handcrafted baseline and the generator's best achievable, on nested subsets of the cohort:
    how many patients a clinic's data needs before the CNN beats the baseline. Writes
    ``learning_curve.json``, ``learning_curve.csv`` and ``learning_curve.png``."""
    from sklearn.model_selection import StratifiedKFold

    from ..errors import TfesiError

    say = progress or (lambda m: None)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    regions, y, cases = load_regions(manifest)
    if max(sizes) > len(y):
        raise TfesiError(f"The learning curve asks for {max(sizes)} patients; the manifest has "
                         f"{len(y)}.", manifest)
    sizes = sorted(set(sizes))
    gen = generator_probabilities(cases)
    feats = feature_matrix(np.stack([r.input().image for r in regions]))
    rows = []
    for n, idx in zip(sizes, nested_subsets(y, sizes, seed), strict=True):
        yy = y[idx]
        skf = StratifiedKFold(folds, shuffle=True, random_state=seed)
        oof = {a: np.full(n, np.nan) for a in (*arms, BASELINE)}
        t = time.monotonic()
        for k, (ftr, fva) in enumerate(skf.split(np.zeros(n), yy), start=1):
            for arm in arms:
                say(f"learning curve: {n} patients, fold {k}/{folds}, {arm}")
                cfg = arm_config(arm, epochs=epochs, batch_size=batch_size,
                                 learning_rate=learning_rate, seed=seed, init=init,
                                 imagenet_weights=imagenet_weights)
                _, record = fit_and_evaluate([regions[i] for i in idx], yy, cfg,
                                             train_idx=ftr, val_idx=fva)
                oof[arm][fva] = record["validation_probabilities"]
            oof[BASELINE][fva] = fit_predict(feats[idx], yy, ftr, fva, seed)
        if gen is not None:
            oof[GENERATOR] = gen[idx]
        row = {"patients": n, "favourable": int(yy.sum()), "seconds": round(
            time.monotonic() - t, 1)}
        for name, p in oof.items():
            r = auc_delong(yy, p)
            row[name] = {"auc": round(r.auc, 4), "ci95": [round(v, 4) for v in r.ci95]}
        rows.append(row)
        (out / "learning_curve.json").write_text(json.dumps(
            {"manifest": str(manifest), "folds": folds, "init": init, "epochs": epochs,
             "rows": rows}, indent=1))
    names = [*arms, BASELINE] + ([GENERATOR] if gen is not None else [])
    with open(out / "learning_curve.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["patients"] + [f"{n} {k}" for n in names for k in ("auc", "ci_low",
                                                                          "ci_high")])
        for r in rows:
            w.writerow([r["patients"]] + [v for n in names
                                          for v in (r[n]["auc"], *r[n]["ci95"])])
    _plot_learning_curve(rows, names, out / "learning_curve.png")
    return {"rows": rows, "names": names}


def learning_curve_text(result: dict) -> str:
    names = result["names"]
    lines = ["patients  " + "  ".join(f"{n:>30s}" for n in names)]
    for r in result["rows"]:
        lines.append(f"{r['patients']:8d}  " + "  ".join(
            f"{r[n]['auc']:.3f} ({r[n]['ci95'][0]:.3f}-{r[n]['ci95'][1]:.3f})".rjust(30)
            for n in names))
    cnn = [n for n in names if n not in (BASELINE, GENERATOR)]
    passed = [r["patients"] for r in result["rows"]
              if any(r[a]["auc"] > r[BASELINE]["auc"] for a in cnn)]
    lines.append(f"the CNN's AUC first exceeds the handcrafted baseline's at {passed[0]} patients"
                 if passed else "the CNN's AUC does not exceed the handcrafted baseline's at "
                                "any size tried")
    return "\n".join(lines) + "\n"


def _plot_learning_curve(rows, names, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    n = [r["patients"] for r in rows]
    for name in names:
        auc = [r[name]["auc"] for r in rows]
        lo = [r[name]["ci95"][0] for r in rows]
        hi = [r[name]["ci95"][1] for r in rows]
        ax.plot(n, auc, marker="o", label=name)
        ax.fill_between(n, lo, hi, alpha=0.15)
    ax.set_xlabel("patients (cross-validated)")
    ax.set_ylabel("AUC (pooled out-of-fold, DeLong 95 % CI)")
    ax.set_ylim(0.4, 1.0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("Learning curve")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# --- how a new site adapts the model: the routes at growing cohort sizes (issue 24, item 3) ---

SHIPPED = "shipped as is"
SHIPPED_RECAL = "shipped + recalibration"
FINE_TUNED = "fine-tuned + recalibration"
SCRATCH = "from scratch + recalibration"
SITE_ROUTES = (SHIPPED, SHIPPED_RECAL, FINE_TUNED, SCRATCH, BASELINE)


def _recalibrated(z_fit, y_fit, z_test) -> tuple[np.ndarray, float]:
    """The test probabilities after Platt scaling fitted on (z_fit, y_fit), and its temperature."""
    from ..runtime import sigmoid
    from ..stats import fit_platt

    temperature, intercept = fit_platt(y_fit, z_fit)
    return sigmoid(np.asarray(z_test) / temperature + intercept), temperature


def _test_metrics(y, p, temperature: float | None = None) -> dict:
    """AUC (DeLong CI), calibration slope, intercept and ECE on the test patients; with
    ``degenerate`` (the reasons, in words) where the calibration fails the install floor's own
    criteria (``model_gate.degenerate_calibration``: one definition), e.g. a Platt fit that
    collapsed to nearly the same probability for everyone."""
    from ..model_gate import degenerate_calibration, probability_spread
    from ..stats import calibration_slope_intercept, expected_calibration_error

    r = auc_delong(y, p)
    slope, intercept = calibration_slope_intercept(y, np.clip(p, 1e-6, 1 - 1e-6))
    out = {"auc": round(r.auc, 4), "ci95": [round(v, 4) for v in r.ci95],
           "slope": round(slope, 3), "intercept": round(intercept, 3),
           "ece": round(expected_calibration_error(y, p), 4)}
    if temperature is not None:
        out["temperature"] = round(float(temperature), 4)
    reasons = degenerate_calibration(temperature=temperature, slope=slope,
                                     spread=probability_spread(p), where=" on the test patients")
    if reasons:
        out["degenerate"] = reasons
    return out


def run_site_curve(pool_manifest: str | Path, test_manifest: str | Path, out: str | Path,
                   sizes: list[int], *, bundle: str | Path, seed: int = 0,
                   calibration_fraction: float = 0.25,
                   routes: tuple[str, ...] = SITE_ROUTES, progress=None) -> dict:
    """What a new site gets from each route (:data:`SITE_ROUTES`) with its first ``n`` patients
    (nested subsets of ``pool_manifest``), measured on a separate set of the same site's
    patients (``test_manifest``): the shipped model (``bundle``) unchanged; its Platt
    calibration refitted on the n patients; fine-tuned from its network (the compact recipe,
    ``tfesi train --init-from``) on ``1 - calibration_fraction`` of them and recalibrated on the
    rest; the same from random weights; the handcrafted baseline on all n. AUC (DeLong 95 % CI),
    calibration slope/intercept and ECE on the test set, and the generator's best achievable.
    Writes ``site_curve.json`` after every size (a long run can be read while it goes)."""
    from ..errors import TfesiError
    from ..evaluation import score_cases
    from ..runtime import Predictor
    from .network import COMPACT
    from .train import _predict

    say = progress or (lambda m: None)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    bundle = Path(bundle)
    keras_file = bundle / "model.keras"
    regions, y, cases = load_regions(pool_manifest)
    t_regions, t_y, t_cases = load_regions(test_manifest)
    if max(sizes) > len(y):
        raise TfesiError(f"The curve asks for {max(sizes)} patients; the pool has {len(y)}.",
                         pool_manifest)
    sizes = sorted(set(sizes))
    gen = generator_probabilities(t_cases)
    result = {"pool": str(pool_manifest), "test": str(test_manifest), "bundle": bundle.name,
              "test_patients": int(len(t_y)), "test_favourable": int(t_y.sum()), "seed": seed,
              "calibration_fraction": calibration_fraction, "routes": list(routes),
              "best_achievable": (_test_metrics(t_y, gen) if gen is not None else None),
              "rows": []}
    need_program = SHIPPED in routes or SHIPPED_RECAL in routes
    if need_program:
        say("scoring the shipped model on the pool and the test set")
        predictor = Predictor(bundle, quiet=True)
        pool_rows = score_cases(predictor, cases, perturb=False)
        test_rows = score_cases(predictor, t_cases, perturb=False)
        z_pool = np.array([r["raw_logit"] for r in pool_rows])
        z_test = np.array([r["raw_logit"] for r in test_rows])
        p_shipped = np.array([r["probability"] for r in test_rows])
        result["shipped"] = _test_metrics(t_y, p_shipped)
    if BASELINE in routes:
        feats = feature_matrix(np.stack([r.input().image for r in regions]))
        t_feats = feature_matrix(np.stack([r.input().image for r in t_regions]))
        both = np.concatenate([feats, t_feats])
    x_test = np.stack([r.input().image for r in t_regions])
    for n, idx in zip(sizes, nested_subsets(y, sizes, seed), strict=True):
        yy = y[idx]
        row: dict = {"patients": n, "favourable": int(yy.sum())}
        t = time.monotonic()
        if SHIPPED in routes:
            row[SHIPPED] = result["shipped"]
        if SHIPPED_RECAL in routes:
            row[SHIPPED_RECAL] = _test_metrics(t_y, *_recalibrated(z_pool[idx], yy, z_test))
        fit, cal = split(yy, calibration_fraction, seed)
        for route, init_from in ((FINE_TUNED, str(keras_file)), (SCRATCH, None)):
            if route not in routes:
                continue
            say(f"site curve: {n} patients, {route}")
            cfg = TrainConfig(variant=COMPACT, **recipe(COMPACT), seed=seed, init="random",
                              init_from=init_from)
            model, record = fit_and_evaluate([regions[i] for i in idx], yy, cfg,
                                             train_idx=fit, val_idx=cal)
            z_cal = logit(np.array(record["validation_probabilities"]))
            z_t = logit(_predict(model, x_test))
            row[route] = _test_metrics(t_y, *_recalibrated(z_cal, yy[cal], z_t))
            row[f"{route} seconds"] = record.get("seconds")
        if BASELINE in routes:
            test_idx = np.arange(len(y), len(y) + len(t_y))
            p = fit_predict(both, np.concatenate([y, t_y]), idx, test_idx, seed)
            row[BASELINE] = _test_metrics(t_y, p)
        row["seconds"] = round(time.monotonic() - t, 1)
        result["rows"].append(row)
        result["warnings"] = site_curve_warnings(result)
        say(_site_curve_line(row, routes))
        (out / "site_curve.json").write_text(json.dumps(result, indent=1))
    return result


def site_curve_warnings(result: dict) -> list[str]:
    """One sentence per route and size whose calibration is degenerate (``_test_metrics``)."""
    return [f"{row['patients']} patients, {r}: degenerate calibration: "
            + "; ".join(row[r]["degenerate"])
            + " (tfesi model install would refuse a model calibrated so)"
            for row in result["rows"] for r in result["routes"]
            if r in row and row[r].get("degenerate")]


def _site_curve_line(row: dict, routes) -> str:
    def cell(r):
        if r not in row:
            return "-"
        m = row[r]
        return (f"AUC {m['auc']:.3f} slope {m['slope']:.2f}"
                + (" (!)" if m.get("degenerate") else ""))

    return f"{row['patients']:8d}  " + "  ".join(cell(r).rjust(32) for r in routes)


def site_curve_text(result: dict) -> str:
    """The table: one line per cohort size, AUC and calibration slope of each route; a route
    whose calibration is degenerate is marked (!) and said in words under the table."""
    routes = result["routes"]
    best = result.get("best_achievable")
    lines = [f"test set: {result['test_patients']} patients of the site"
             + (f"; best achievable AUC {best['auc']:.3f}" if best else ""),
             "patients  " + "  ".join(f"{r:>32s}" for r in routes)]
    lines += [_site_curve_line(row, routes) for row in result["rows"]]
    lines += [f"(!) {w}" for w in site_curve_warnings(result)]
    return "\n".join(lines) + "\n"
