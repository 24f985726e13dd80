"""Evaluating scores like a study: discrimination with uncertainty, the paper's Table 2,
calibration, paired comparisons, and the validation report folder (JSON, text, figures)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np

from .errors import TfesiError
from .manifest import read_csv_rows
from .stats import (
    auc_delong,
    brier_score,
    classification_table,
    delong_paired,
    reliability_curve,
    youden_threshold,
)


def read_scores(path: str | Path, label_column: str, score_columns: list[str]
                ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Labels and named score columns from a CSV; clear errors for missing or bad values."""
    path = Path(path)
    rows = read_csv_rows(path, "predictions file", [label_column, *score_columns], TfesiError)

    def column(name):
        try:
            return np.array([float(r[name]) if r[name].strip() != "" else np.nan
                             for r in rows])
        except ValueError as e:
            raise TfesiError(f"Column {name} holds a value that is not a number ({e}).",
                             path) from e

    labels = column(label_column)
    if np.isnan(labels).any() or not np.isin(labels, (0, 1)).all():
        raise TfesiError(f"The label column {label_column} must hold only 0 and 1.", path)
    scores = {c: column(c) for c in score_columns}
    for c, s in scores.items():
        if np.isnan(s).any():
            raise TfesiError(f"Column {c} has missing or NaN scores "
                             f"({int(np.isnan(s).sum())} rows).", path)
    return labels.astype(int), scores


def evaluate_scores(labels, scores: dict[str, np.ndarray], *, threshold="0.5",
                    names: tuple[str, str] = ("favourable", "poor")) -> dict:
    """Per score: AUC with DeLong CI, Table-2 metrics at the threshold (a number, or 'youden'
    chosen on these same data, which flatters), Brier score and reliability for probabilities;
    for two or more scores, the paired DeLong test of each pair."""
    y = np.asarray(labels)
    out = {"n": int(len(y)), "favourable": int(y.sum()), "poor": int(len(y) - y.sum()),
           "class_names": list(names), "scores": {}, "paired_tests": []}
    for name, s in scores.items():
        auc = auc_delong(y, s)
        thr = youden_threshold(y, s) if threshold == "youden" else float(threshold)
        entry = {"auc": auc.as_dict(), "table": classification_table(y, s, thr, names=names),
                 "threshold_rule": "youden (chosen on these data)" if threshold == "youden"
                 else "fixed"}
        if s.min() >= 0 and s.max() <= 1:
            entry["brier"] = brier_score(y, s)
            entry["reliability"] = reliability_curve(y, s)
        out["scores"][name] = entry
    for a, b in itertools.combinations(scores, 2):
        r = delong_paired(y, scores[a], scores[b])
        out["paired_tests"].append({"a": a, "b": b, **r.as_dict()})
    return out


def table2_text(result: dict, title: str = "") -> str:
    """The evaluation as plain text in the layout of the paper's Table 2."""
    lines = [title] if title else []
    pos, neg = result.get("class_names", ("favourable", "poor"))
    lines.append(f"{result['n']} cases: {result['favourable']} {pos}, {result['poor']} {neg}")
    for name, e in result["scores"].items():
        a, t = e["auc"], e["table"]
        lines += ["", f"== {name} ==",
                  f"AUC {a['auc']:.3f} (95 % CI {a['ci95'][0]:.3f}-{a['ci95'][1]:.3f}, DeLong)",
                  f"threshold {t['threshold']:.3f} ({e['threshold_rule']}): accuracy "
                  f"{100 * t['accuracy']:.1f} %, sensitivity {100 * t['sensitivity']:.1f} %, "
                  f"specificity {100 * t['specificity']:.1f} %",
                  f"{'':12s}{'precision':>10s}{'recall':>10s}{'F1':>10s}{'support':>10s}"]
        for cls, m in t["classes"].items():
            lines.append(f"{cls:12s}{m['precision']:10.3f}{m['recall']:10.3f}{m['f1']:10.3f}"
                         f"{m['support']:10d}")
        mac = t["macro_avg"]
        lines.append(f"{'macro avg':12s}{mac['precision']:10.3f}{mac['recall']:10.3f}"
                     f"{mac['f1']:10.3f}{result['n']:10d}")
        c = t["confusion"]
        lines.append(f"confusion: TP {c['tp']}  FN {c['fn']}  FP {c['fp']}  TN {c['tn']}")
        if "brier" in e:
            lines.append(f"Brier score {e['brier']:.4f}")
    if result.get("best_achievable_auc") is not None:
        lines.append(f"best achievable AUC on these patients (the generator's own probability): "
                     f"{result['best_achievable_auc']:.3f}")
    for p in result["paired_tests"]:
        lines.append(f"paired DeLong {p['a']} vs {p['b']}: difference {p['difference']:+.3f} "
                     f"(95 % CI {p['ci95'][0]:+.3f} to {p['ci95'][1]:+.3f}), z {p['z']:.2f}, "
                     f"p {p['p']:.4f}")
    gap = result.get("best_auc_gap")
    if gap:
        lines.append(f"gap to the best achievable AUC: {gap['gap']:+.3f} (95 % CI "
                     f"{gap['gap_ci95'][0]:+.3f} to {gap['gap_ci95'][1]:+.3f}), paired DeLong "
                     f"z {gap['z']:.2f}, p {gap['p']:.3g}")
    lines += _prediction_quality_lines(result)
    return "\n".join(lines) + "\n"


def _prediction_quality_lines(result: dict) -> list[str]:
    """Calibration, stability under the ROI and the pointing game, when scored from a model."""
    lines = []
    cal = result.get("calibration")
    if cal:
        def ci(k):
            return f"{cal[k]:.3f} (95 % CI {cal[k + '_ci95'][0]:.3f}-{cal[k + '_ci95'][1]:.3f})"
        lines += ["", f"calibration: slope {ci('slope')}, intercept {ci('intercept')}, "
                      f"ECE {ci('ece')} (a perfectly calibrated score on as many patients: "
                      f"{cal['ece_floor_median']:.3f}, 95th percentile "
                      f"{cal['ece_floor_p95']:.3f}), Brier {ci('brier')}; "
                      f"{100 * cal['share_below_0.1_or_above_0.9']:.0f} % of probabilities "
                      "below 0.1 or above 0.9"]
    st = result.get("stable_prediction")
    if st:
        lines.append(f"ROI moved 3 px or scaled 0.9/1.1: labels flip in "
                     f"{100 * st['label_flips']:.1f} % of predictions "
                     f"({st['patients_with_a_flip']} of {st['patients']} patients); per-patient "
                     f"SD median {st['sd_median']:.3f}, 90th percentile {st['sd_p90']:.3f}; "
                     f"borderline {100 * st['borderline']:.1f} %; flagged as unlike the "
                     f"training images {100 * st['flagged_out_of_distribution']:.1f} %")
    sl = (st or {}).get("slice_choice")
    if sl:
        for name, words in (("neighbourhood", "as the program predicts (with the neighbours)"),
                            ("single_slice", "from the chosen slice alone")):
            e = sl[name]
            lines.append(f"slice chosen one off the narrowest, {words}: labels flip in "
                         f"{100 * e['label_flips']:.1f} % of predictions (median change "
                         f"{e['median_change']:+.3f}); AUC {e['auc_exact']:.3f} on the exact "
                         f"slice, {e['auc_one_off_pooled']:.3f} one off"
                         + (f", {e['auc_physician_pick']:.3f} on the physician's picks"
                            if "auc_physician_pick" in e else ""))
    game = result.get("pointing_game")
    if game:
        for key in ("as_placed", "shifted_quarter"):
            g = game[key]
            lines.append(f"pointing game ({key.replace('_', ' ')}): {g['hits']}/{g['n']} "
                         f"= {100 * g['rate']:.0f} % within {game['radius_mm']:.0f} mm of the "
                         f"waist, chance {100 * g['chance']:.0f} %, binomial p {g['p']:.2g}"
                         + (f"; a map peaking at the ROI's centre "
                            f"{100 * g['centre_map_rate']:.0f} %, model vs it p "
                            f"{g['p_vs_centre_map']:.2g} (McNemar)"
                            if "centre_map_rate" in g else ""))
    return lines


def write_figures(labels, scores: dict[str, np.ndarray], out_dir: Path, *,
                  title: str = "", seed: int = 0, positive: str = "favourable outcome"
                  ) -> list[str]:
    """roc.png (each curve with its DeLong AUC CI in the legend and a bootstrap 95 % band) and
    reliability.png for the scores that are probabilities. Needs matplotlib (the ``train``
    extra); returns the files written."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    from sklearn.metrics import roc_curve

    y = np.asarray(labels)
    rng = np.random.default_rng(seed)
    grid = np.linspace(0, 1, 101)
    fig, ax = plt.subplots(figsize=(6, 6), dpi=110)
    for name, s in scores.items():
        fpr, tpr, _ = roc_curve(y, s)
        a = auc_delong(y, s)
        line, = ax.plot(fpr, tpr, lw=2, label=f"{name}: AUC {a.auc:.3f} "
                                               f"({a.ci95[0]:.3f}-{a.ci95[1]:.3f})")
        boots = []
        for _ in range(200):
            i = rng.integers(0, len(y), len(y))
            if y[i].min() == y[i].max():
                continue
            f, t, _ = roc_curve(y[i], s[i])
            boots.append(np.interp(grid, f, t))
        if boots:
            lo, hi = np.percentile(boots, [2.5, 97.5], axis=0)
            ax.fill_between(grid, lo, hi, color=line.get_color(), alpha=0.15)
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.set(xlabel="1 - specificity", ylabel=f"sensitivity ({positive})",
           title=title or "ROC curves (band: bootstrap 95 %)", xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    files = [str(out_dir / "roc.png")]
    fig.savefig(files[0])
    plt.close(fig)

    probs = {k: s for k, s in scores.items() if s.min() >= 0 and s.max() <= 1}
    if probs:
        fig, ax = plt.subplots(figsize=(6, 6), dpi=110)
        for name, s in probs.items():
            pts = reliability_curve(y, s)
            ax.plot([p["mean_predicted"] for p in pts], [p["observed"] for p in pts], "o-",
                    label=f"{name} (Brier {brier_score(y, s):.3f})")
        ax.plot([0, 1], [0, 1], "k:", lw=1, label="perfect calibration")
        ax.set(xlabel=f"predicted probability ({positive})",
               ylabel="observed frequency", title="Reliability diagram (10 bins)",
               xlim=(0, 1), ylim=(0, 1))
        ax.legend(loc="upper left", fontsize=8)
        fig.tight_layout()
        files.append(str(out_dir / "reliability.png"))
        fig.savefig(files[-1])
        plt.close(fig)
    return files


def write_report(out_dir: str | Path, result: dict, labels, scores: dict[str, np.ndarray], *,
                 title: str = "", extra: dict | None = None) -> Path:
    """A validation report folder: metrics.json, table2.txt, roc.png, reliability.png."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = {**result, **(extra or {})}
    pos = result.get("class_names", ["favourable"])[0]
    data["figures"] = write_figures(labels, scores, out_dir, title=title,
                                    positive="favourable outcome" if pos == "favourable" else pos)
    (out_dir / "metrics.json").write_text(json.dumps(data, indent=1))
    (out_dir / "table2.txt").write_text(table2_text(result, title))
    return out_dir


# --- scoring a manifest as the program predicts (tfesi evaluate --manifest) -------------------

# How a hand-drawn ROI varies (issue 10's check): moved 3 pixels each way, scaled by 0.9 / 1.1.
PERTURBATIONS = (("x-3", -3, 0, 1.0), ("x+3", 3, 0, 1.0), ("y-3", 0, -3, 1.0),
                 ("y+3", 0, 3, 1.0), ("x0.9", 0, 0, 0.9), ("x1.1", 0, 0, 1.1))
POINTING_RADIUS_MM = 6.0


def _moved(roi, dx, dy, s, shape):
    x, y, w, h = roi
    nw, nh = max(int(round(w * s)), 1), max(int(round(h * s)), 1)
    nx = int(round(x + dx + (w - nw) / 2))
    ny = int(round(y + dy + (h - nh) / 2))
    nx, ny = min(max(nx, 0), shape[1] - nw), min(max(ny, 0), shape[0] - nh)
    return nx, ny, nw, nh


def peak_hit(cam_roi, roi, region, waist) -> tuple[bool, float]:
    """(is the map's peak within 6 mm of the waist, share of the ROI within 6 mm)."""
    x, y, w, h = roi
    rows, cols = np.mgrid[:h, :w]
    wx, wy = waist[0] - region.origin[0] - x, waist[1] - region.origin[1] - y
    dist = np.hypot((rows - wy) * region.spacing[0], (cols - wx) * region.spacing[1])
    near = dist <= POINTING_RADIUS_MM
    peak = np.unravel_index(int(np.argmax(cam_roi)), cam_roi.shape)
    return bool(near[peak]), float(near.mean())


SLICE_CHOICES = (-1, 1)  # a physician one slice off the narrowest, up or down


def _centre_hit(roi, region, waist) -> bool:
    """Is the ROI's centre within 6 mm of the waist: what a map that always peaks at the ROI's
    centre scores (the foramen lies near the ROI's centre by construction)."""
    x, y, w, h = roi
    wx, wy = waist[0] - region.origin[0] - x, waist[1] - region.origin[1] - y
    return bool(np.hypot(((h - 1) / 2 - wy) * region.spacing[0],
                         ((w - 1) / 2 - wx) * region.spacing[1]) <= POINTING_RADIUS_MM)


def score_cases(predictor, cases, *, progress=None, perturb: bool = True) -> list[dict]:
    """One row per patient with the stable prediction the window would show (probability,
    interval, OOD) on the case's slice with its neighbours (:func:`..runtime.predict_region`),
    the probabilities of the ROI moved/scaled (:data:`PERTURBATIONS`), of the slice chosen one
    off (:data:`SLICE_CHOICES`: ``p_slice-1``, ``p_slice+1``) and of the physician's pick
    (``p_pick``, where the manifest has one), each also from the chosen slice alone
    (``p_single*``, as before issue 22), and, when the manifest gives the foramen's waist
    (``waist_x``, ``waist_y`` in stored pixels), the pointing game with the ROI as placed and
    shifted by a quarter of its size, beside a map that always peaks at the ROI's centre."""
    from .manifest import case_region
    from .runtime import predict, predict_region

    rows = []
    reach = max(abs(o) for o in predictor.slice_offsets) + max(map(abs, SLICE_CHOICES))
    for i, c in enumerate(cases):
        try:
            r = case_region(c, around=reach)
            pred = predict_region(predictor, r)
        except TfesiError as e:
            raise TfesiError(f"Patient {c.patient_id}: {e.message}", c.study_path) from e
        nb = pred.neighbourhood
        row = {"patient_id": c.patient_id, "label": c.label,
               "probability": pred.probability, "interval_low": pred.interval[0],
               "interval_high": pred.interval[1], "in_distribution": pred.in_distribution,
               "ood_distance": pred.ood_distance, "borderline": pred.borderline,
               "raw_logit": pred.raw_logit, "based_on_offset": nb.based_on,
               "slices_disagree": nb.disagree, "pick_offset": c.pick_offset}

        def single(o, r=r):
            q = r.at(o)
            return predict(predictor, q.values, r.dihedral, q.roi, r.side).probability

        if perturb:
            for name, dx, dy, s in PERTURBATIONS:
                roi = _moved(r.roi, dx, dy, s, r.values.shape)
                row[f"p_{name}"] = predict_region(predictor, r, roi=roi).probability
            row["p_single"] = single(0)
            for o in SLICE_CHOICES:
                if o in r.offsets:
                    row[f"p_slice{o:+d}"] = predict_region(predictor, r, at=o).probability
                    row[f"p_single{o:+d}"] = single(o)
            if c.pick_offset in r.offsets:
                row["p_pick"] = (pred.probability if c.pick_offset == 0 else
                                 row.get(f"p_slice{c.pick_offset:+d}"))
                row["p_single_pick"] = (row["p_single"] if c.pick_offset == 0 else
                                        row.get(f"p_single{c.pick_offset:+d}"))
        try:
            waist = (float(c.row["waist_x"]), float(c.row["waist_y"]))
        except (KeyError, TypeError, ValueError):
            waist = None
        if waist is not None:
            row["hit"], row["chance"] = peak_hit(pred.cam_roi, r.roi, r, waist)
            row["centre_hit"] = _centre_hit(r.roi, r, waist)
            x, y, w, h = r.roi
            sx, sy = (1 if i % 2 else -1), (1 if (i // 2) % 2 else -1)
            shifted = _moved(r.roi, sx * w / 4, sy * h / 4, 1.0, r.values.shape)
            sp = predict_region(predictor, r, roi=shifted)
            row["hit_shifted"], row["chance_shifted"] = peak_hit(sp.cam_roi, shifted, r, waist)
            row["centre_hit_shifted"] = _centre_hit(shifted, r, waist)
        rows.append(row)
        if progress:
            progress(i + 1, len(cases))
    return rows


def slice_stability(rows: list[dict], threshold: float) -> dict:
    """How much the shown result moves when the slice is chosen one off the narrowest, beside
    the same from the chosen slice alone (as before issue 22): label flips against the exact
    slice, the median change in probability, the AUC on the exact slice, one off (each way and
    pooled) and on the physician's picks, with the paired DeLong test exact vs one off."""
    keys = [f"p_slice{o:+d}" for o in SLICE_CHOICES]
    if not rows or not all(k in rows[0] for k in keys):
        return {}
    y = np.array([r["label"] for r in rows])
    if y.min() == y.max():
        return {}
    out = {"offsets": list(SLICE_CHOICES), "patients": len(rows)}
    for name, p0key, prefix, pick in (("neighbourhood", "probability", "p_slice", "p_pick"),
                                      ("single_slice", "p_single", "p_single", "p_single_pick")):
        p0 = np.array([r[p0key] for r in rows])
        pp = np.array([[r[f"{prefix}{o:+d}"] for o in SLICE_CHOICES] for r in rows])
        flips = (pp >= threshold) != (p0[:, None] >= threshold)
        exact = auc_delong(y, p0).auc
        one_off = [auc_delong(y, pp[:, j]).auc for j in range(len(SLICE_CHOICES))]
        pooled_y = np.tile(y, len(SLICE_CHOICES))
        pooled = auc_delong(pooled_y, pp.T.reshape(-1)).auc
        tests = [delong_paired(y, p0, pp[:, j]).as_dict() for j in range(len(SLICE_CHOICES))]
        entry = {"label_flips": round(float(flips.mean()), 4),
                 "flips_to_favourable": round(float((flips & (pp >= threshold)).mean()), 4),
                 "median_change": round(float(np.median(pp - p0[:, None])), 4),
                 "auc_exact": round(exact, 4),
                 "auc_one_off": [round(a, 4) for a in one_off],
                 "auc_one_off_pooled": round(pooled, 4),
                 "auc_gap": round(exact - pooled, 4),
                 "paired_delong_exact_vs_one_off": [
                     {"offset": o, "difference": round(t["difference"], 4),
                      "p": round(t["p"], 4)} for o, t in zip(SLICE_CHOICES, tests, strict=True)]}
        if pick in rows[0] and all(r.get(pick) is not None for r in rows):
            entry["auc_physician_pick"] = round(auc_delong(
                y, np.array([r[pick] for r in rows])).auc, 4)
        out[name] = entry
    if "pick_offset" in rows[0]:
        out["physician_picked_a_neighbour"] = round(float(np.mean(
            [r["pick_offset"] != 0 for r in rows])), 4)
    out["rests_on_a_neighbour"] = round(float(np.mean(
        [r.get("based_on_offset", 0) != 0 for r in rows])), 4)
    out["neighbours_disagree"] = round(float(np.mean(
        [bool(r.get("slices_disagree")) for r in rows])), 4)
    return out


def best_auc_comparison(labels, probs, best) -> dict:
    """The gap between a model's AUC and the best achievable one (the generator's own
    probability) on the same patients, with the paired DeLong test."""
    r = delong_paired(labels, best, probs)
    return {"best_achievable_auc": round(r.auc1, 4), "model_auc": round(r.auc2, 4),
            "gap": round(r.difference, 4), "gap_ci95": [round(v, 4) for v in r.ci95],
            "z": round(r.z, 3), "p": float(r.p), "test": "paired DeLong"}


def stability(rows: list[dict], threshold: float) -> dict:
    """How much the shown result moves with the ROI: label flips over all perturbations, and
    the per-patient SD of the probability (as drawn and perturbed); beside it, with the slice
    chosen one off the narrowest (:func:`slice_stability`)."""
    keys = [f"p_{n}" for n, *_ in PERTURBATIONS]
    if not rows or keys[0] not in rows[0]:
        return {}
    p0 = np.array([r["probability"] for r in rows])
    pp = np.array([[r[k] for k in keys] for r in rows])
    flips = (pp >= threshold) != (p0[:, None] >= threshold)
    sd = np.concatenate([p0[:, None], pp], axis=1).std(axis=1)
    return {"perturbations": [n for n, *_ in PERTURBATIONS],
            "label_flips": round(float(flips.mean()), 4),
            "patients_with_a_flip": int(flips.any(axis=1).sum()), "patients": len(rows),
            "sd_median": round(float(np.median(sd)), 4),
            "sd_p90": round(float(np.percentile(sd, 90)), 4),
            "borderline": round(float(np.mean([r["borderline"] for r in rows])), 4),
            "flagged_out_of_distribution": round(float(np.mean(
                [r["in_distribution"] is False for r in rows])), 4),
            **({"slice_choice": sl} if (sl := slice_stability(rows, threshold)) else {})}


def pointing_game(rows: list[dict]) -> dict:
    """Hit rates with the ROI as placed and shifted, with the chance rate (share of the ROI
    within 6 mm of the waist) and the one-sided binomial p."""
    from scipy.stats import binomtest

    if not rows or "hit" not in rows[0]:
        return {}
    out = {"radius_mm": POINTING_RADIUS_MM}
    for key, chance, centre in (("hit", "chance", "centre_hit"),
                                ("hit_shifted", "chance_shifted", "centre_hit_shifted")):
        hits = int(sum(r[key] for r in rows))
        base = float(np.mean([r[chance] for r in rows]))
        g = {"hits": hits, "n": len(rows), "rate": round(hits / len(rows), 4),
             "chance": round(base, 4),
             "p": float(binomtest(hits, len(rows), min(max(base, 1e-9), 1.0),
                                  alternative="greater").pvalue)}
        if centre in rows[0]:
            # a map that always peaks at the ROI's centre, and the exact McNemar test of the
            # model against it on the same patients (the discordant pairs)
            m, c = np.array([r[key] for r in rows], bool), np.array([r[centre] for r in rows],
                                                                     bool)
            better, worse = int(np.sum(m & ~c)), int(np.sum(~m & c))
            g["centre_map_rate"] = round(float(c.mean()), 4)
            g["p_vs_centre_map"] = (float(binomtest(better, better + worse, 0.5,
                                                    alternative="greater").pvalue)
                                    if better + worse else 1.0)
        out["as_placed" if key == "hit" else "shifted_quarter"] = g
    return out


PREDICTION_COLUMNS = ("patient_id", "label", "probability", "interval_low", "interval_high",
                      "in_distribution", "ood_distance", "borderline")


def write_predictions(path: str | Path, rows: list[dict]) -> Path:
    """``predictions.csv``: one row per patient, what the window would show (the first six
    columns are the documented ones; the rest help to audit)."""
    import csv
    import io

    path = Path(path)
    extra = [k for k in rows[0] if k not in PREDICTION_COLUMNS and k != "raw_logit"] if rows else []
    buf = io.StringIO()
    w = csv.DictWriter(buf, [*PREDICTION_COLUMNS, *extra], extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: (round(v, 6) if isinstance(v, float) else v) for k, v in r.items()})
    from .fileio import write_atomically

    return write_atomically(path, buf.getvalue().encode(), private=True)


# --- external validation over several sites: the multi-centre table and forest plot (issue 24,
# item 5) ---

def site_table(predictor, sites: dict[str, str | Path], *, progress=None) -> list[dict]:
    """One row per site: patients, outcome rate, AUC with its DeLong 95 % CI, calibration slope
    and intercept, ECE, the share flagged by the distribution check, and the generator's best
    achievable AUC where the manifest has it; the program's stable prediction
    (:func:`score_cases`)."""
    from .manifest import generator_probabilities, read_manifest
    from .stats import auc_delong, calibration_slope_intercept, expected_calibration_error

    rows = []
    for name, manifest in sites.items():
        cases = read_manifest(manifest)
        scored = score_cases(predictor, cases, perturb=False, progress=progress)
        y = np.array([c.label for c in cases])
        p = np.array([r["probability"] for r in scored])
        row = {"site": name, "manifest": str(manifest), "patients": int(len(y)),
               "outcome_rate": round(float(y.mean()), 4),
               "mean_predicted": round(float(p.mean()), 4),
               "flagged_share": round(float(np.mean([r["in_distribution"] is False
                                                     for r in scored])), 4)}
        if 0 < y.sum() < len(y):
            a = auc_delong(y, p)
            slope, intercept = calibration_slope_intercept(y, np.clip(p, 1e-6, 1 - 1e-6))
            row |= {"auc": round(a.auc, 4), "auc_ci95": [round(v, 4) for v in a.ci95],
                    "slope": round(slope, 3), "intercept": round(intercept, 3),
                    "ece": round(expected_calibration_error(y, p), 4)}
            gen = generator_probabilities(cases)
            if gen is not None:
                row["best_achievable_auc"] = round(auc_delong(y, gen).auc, 4)
        rows.append(row)
    return rows


def site_table_text(rows: list[dict]) -> str:
    lines = [f"{'site':16s} {'n':>5s} {'outcome':>8s} {'AUC (95 % CI)':>22s} {'slope':>6s} "
             f"{'interc.':>7s} {'ECE':>6s} {'flagged':>8s}"]
    for r in rows:
        auc = (f"{r['auc']:.3f} ({r['auc_ci95'][0]:.3f}-{r['auc_ci95'][1]:.3f})"
               if "auc" in r else "one class: none")
        cal = (f"{r['slope']:6.2f} {r['intercept']:7.2f} {r['ece']:6.3f}" if "auc" in r
               else f"{'-':>6s} {'-':>7s} {'-':>6s}")
        lines.append(f"{r['site'][:16]:16s} {r['patients']:5d} {r['outcome_rate']:8.0%} "
                     f"{auc:>22s} {cal} {r['flagged_share']:8.0%}")
    return "\n".join(lines) + "\n"


def forest_plot(rows: list[dict], path: str | Path, *, title: str = "") -> None:
    """AUC with its 95 % CI per site (left) and the calibration slope (right), the figure a
    multi-centre paper prints."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if "auc" in r]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(8, 1.2 + 0.45 * len(rows)), dpi=120,
                                 sharey=True, gridspec_kw={"width_ratios": [2, 1]})
    ys = np.arange(len(rows))[::-1]
    for yv, r in zip(ys, rows, strict=True):
        lo, hi = r["auc_ci95"]
        ax.plot([lo, hi], [yv, yv], color="#333")
        ax.plot(r["auc"], yv, "s", color="#1f4e9c", markersize=4 + r["patients"] ** 0.5 / 3)
        if "best_achievable_auc" in r:
            ax.plot(r["best_achievable_auc"], yv, "|", color="#b00020", markersize=10)
        bx.plot(r["slope"], yv, "o", color="#1f4e9c")
    ax.axvline(0.5, color="#999", ls=":", lw=1)
    bx.axvline(1.0, color="#999", ls=":", lw=1)
    ax.set_yticks(ys, [f"{r['site']} (n={r['patients']})" for r in rows])
    ax.set_xlabel("AUC (DeLong 95 % CI); red bar: best achievable")
    bx.set_xlabel("calibration slope (1: calibrated)")
    ax.set_xlim(0.3, 1.0)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.grid(axis="x", alpha=0.3)
    bx.grid(axis="x", alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
