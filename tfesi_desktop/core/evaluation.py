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
    for p in result["paired_tests"]:
        lines.append(f"paired DeLong {p['a']} vs {p['b']}: difference {p['difference']:+.3f} "
                     f"(95 % CI {p['ci95'][0]:+.3f} to {p['ci95'][1]:+.3f}), z {p['z']:.2f}, "
                     f"p {p['p']:.4f}")
    return "\n".join(lines) + "\n"


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
