"""``tfesi evaluate`` and ``tfesi study``: validation of a model (AUC, Table 2, calibration,
sites) and the studies that compare training choices."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..app_options import require_extra
from ..core.errors import TfesiError
from .common import load_predictor
from .common import progress_printer as _progress
from .common import say as _say

# --- tfesi evaluate and study -------------------------------------------------------------------

def cmd_evaluate(args) -> int:
    from ..core.evaluation import evaluate_scores, read_scores, table2_text, write_report

    if args.site:  # issue 24: external validation over several sites
        return _evaluate_sites(args)
    if args.predictions:
        if args.model or args.manifest:
            raise TfesiError("Give either --predictions, or --model with --manifest.")
        if not args.score_columns:
            raise TfesiError("--score-columns is needed with --predictions.")
        cols = [c.strip() for c in args.score_columns.split(",") if c.strip()]
        labels, scores = read_scores(args.predictions, args.label_column, cols)
        source = str(args.predictions)
        names = (f"{args.label_column}=1", f"{args.label_column}=0")
    else:
        if not args.manifest:
            raise TfesiError("Give --predictions CSV, or --manifest (with --model, or the "
                             "model in use).")
        labels, scores, predictor, raw_logits, rows, cases = _score_manifest(args)
        source = f"{predictor.bundle.name} {predictor.bundle.version} on {args.manifest}"
        names = ("favourable", "poor")
    try:
        threshold = args.threshold if args.threshold == "youden" else float(args.threshold)
    except ValueError:
        raise TfesiError("--threshold must be a number or 'youden'.") from None
    result = evaluate_scores(labels, scores, threshold=threshold, names=names)
    result["source"] = source
    if not args.predictions:
        from ..core.evaluation import pointing_game, stability
        from ..core.manifest import generator_probabilities
        from ..core.stats import auc_delong, calibration_summary

        (probs,) = scores.values()
        result["calibration"] = calibration_summary(labels, probs)
        result["stable_prediction"] = stability(rows, predictor.bundle.threshold)
        game = pointing_game(rows)
        if game:
            result["pointing_game"] = game
        gen = generator_probabilities(cases)
        if gen is not None:  # a synthetic cohort: the best any model can reach on it
            from ..core.evaluation import best_auc_comparison

            result["best_achievable_auc"] = round(auc_delong(labels, gen).auc, 4)
            result["best_auc_gap"] = best_auc_comparison(labels, probs, gen)
    if args.out:
        write_report(args.out, result, labels, scores, title=source)
        if not args.predictions:
            from ..core.evaluation import write_predictions

            write_predictions(Path(args.out) / "predictions.csv", rows)
    if args.update_card:
        if args.predictions:
            raise TfesiError("--update-card needs --model and --manifest.")
        from ..core.bundle import record_evaluation
        from ..core.stats import fit_platt

        platt = fit_platt(labels, raw_logits) if args.calibrate_temperature else None
        record_evaluation(predictor.bundle, result, manifest=args.manifest, platt=platt)
    print(json.dumps(result, indent=1) if args.json else table2_text(result, source), end="")
    return 0


def _score_manifest(args):
    """Score every patient of a manifest with the stable prediction, exactly as the window
    shows it; returns (labels, {model: probabilities}, predictor, raw mean logits, rows,
    cases)."""
    import numpy as np

    from ..core.evaluation import score_cases
    from ..core.manifest import read_manifest

    predictor = load_predictor(args.model)
    cases = read_manifest(args.manifest)
    rows = score_cases(predictor, cases, progress=_progress("scoring patients"))
    labels = np.array([c.label for c in cases])
    probs = np.array([r["probability"] for r in rows])
    raw = np.array([r["raw_logit"] for r in rows])
    return labels, {predictor.bundle.name: probs}, predictor, raw, rows, cases


def _evaluate_sites(args) -> int:
    from ..core.evaluation import forest_plot, site_table, site_table_text

    if args.predictions or args.manifest or args.update_card:
        raise TfesiError("--site takes the place of --manifest and --predictions.")
    sites = {}
    for i, item in enumerate(args.site, start=1):
        name, sep, manifest = item.partition("=")
        if not sep:
            name, manifest = f"site{i}", item
        if not Path(manifest).is_file():
            raise TfesiError("This site's manifest does not exist.", manifest)
        sites[name.strip() or f"site{i}"] = manifest
    predictor = load_predictor(args.model)
    rows = site_table(predictor, sites, progress=_progress("scoring patients"))
    model = f"{predictor.bundle.name} {predictor.bundle.version}"
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "sites.json").write_text(json.dumps({"model": model, "sites": rows}, indent=1))
        (out / "sites.txt").write_text(site_table_text(rows))
        forest_plot(rows, out / "forest.png", title=f"{model}: external validation per site")
    if args.json:
        print(json.dumps({"model": model, "sites": rows}, indent=1))
    else:
        print(f"model {model}")
        print(site_table_text(rows), end="")
        if args.out:
            print(f"table and forest plot: {args.out}", file=sys.stderr)
    return 0


def cmd_study(args) -> int:
    require_extra("train")
    from ..core.training.study import run_study, summary_text

    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.force:
        raise TfesiError("This folder is not empty; choose another or add --force.", out)
    if args.learning_curve:
        from ..core.training.network import ARCHITECTURES
        from ..core.training.study import (
            AUGMENTATION_OFF_OF,
            learning_curve_text,
            run_learning_curve,
        )

        try:
            sizes = [int(v) for v in args.learning_curve.split(",") if v.strip()]
        except ValueError:
            raise TfesiError("--learning-curve takes sizes such as 100,200,300.") from None
        if args.site_test:  # issue 24: the routes a new site can take, on its own test set
            from ..core.bundle import default_bundle_path
            from ..core.training.study import run_site_curve, site_curve_text

            if not sizes or min(sizes) < 6:
                raise TfesiError("--learning-curve needs sizes of at least 6 patients.")
            result = run_site_curve(args.manifest, args.site_test, out, sizes,
                                    bundle=args.init_from or default_bundle_path(),
                                    seed=args.seed, progress=_say)
            print(site_curve_text(result), end="")
            print(f"table: {out / 'site_curve.json'}", file=sys.stderr)
            return 0
        if not sizes or min(sizes) < 2 * max(args.folds, 2):
            raise TfesiError("--learning-curve needs sizes of at least twice the folds.")
        arms = tuple(a.strip() for a in args.arms.split(",") if a.strip())
        known = (*ARCHITECTURES, *AUGMENTATION_OFF_OF)
        if not arms or any(a not in known for a in arms):
            raise TfesiError(f"--arms takes some of {', '.join(known)}.")
        result = run_learning_curve(
            args.manifest, out, sizes, folds=max(args.folds, 2), arms=arms,
            epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
            seed=args.seed, init=args.init, imagenet_weights=args.imagenet_weights,
            progress=_say)
        print(learning_curve_text(result), end="")
        print(f"table and figure: {out}", file=sys.stderr)
        return 0
    summary = run_study(args.manifest, out, folds=args.folds, ablation=not args.no_ablation,
                        baseline=not args.no_baseline, cv=args.folds > 1, epochs=args.epochs,
                        batch_size=args.batch_size, learning_rate=args.learning_rate,
                        seed=args.seed, imagenet_weights=args.imagenet_weights, init=args.init,
                        progress=_say)
    print(summary_text(summary), end="")
    print(f"report: {out}", file=sys.stderr)
    return 0


def register(sub) -> None:
    """``evaluate`` and ``study``."""
    s = sub.add_parser("evaluate", help="AUC with DeLong CI, Table 2, calibration, paired tests")
    s.add_argument("--predictions", metavar="CSV", help="scores from this or another program")
    s.add_argument("--label-column", default="label", help="1 favourable, 0 poor")
    s.add_argument("--score-columns", metavar="A[,B...]", help="score columns to evaluate")
    s.add_argument("--model", help="bundle to score --manifest with (default: the model in use)")
    s.add_argument("--manifest", help="manifest CSV to score with the model")
    s.add_argument("--site", action="append", metavar="NAME=CSV", help="a site's manifest "
                   "(repeat per site): a per-site table and, with --out, a forest plot")
    s.add_argument("--threshold", default="0.5", help="a number, or 'youden'")
    s.add_argument("--out", metavar="DIR", help="write a validation report folder")
    s.add_argument("--update-card", action="store_true",
                   help="record this evaluation in the model's card")
    s.add_argument("--calibrate-temperature", action="store_true",
                   help="with --update-card: fit Platt scaling (temperature and intercept) on "
                        "these patients' ROI-set logits and store it in the card (the program "
                        "then applies it)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("study", help="ablation, handcrafted baseline and cross-validation")
    s.add_argument("manifest")
    s.add_argument("--out", required=True, help="report folder")
    s.add_argument("--folds", type=int, default=5, help="cross-validation folds (1: none)")
    s.add_argument("--no-ablation", action="store_true", help="only the original network")
    s.add_argument("--no-baseline", action="store_true")
    s.add_argument("--epochs", type=int, default=26)
    s.add_argument("--batch-size", type=int, default=8)
    s.add_argument("--learning-rate", type=float, default=1e-5)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--imagenet-weights", metavar="PATH")
    s.add_argument("--init", choices=("imagenet", "random"), default="imagenet")
    s.add_argument("--learning-curve", metavar="N1,N2,...",
                   help="cross-validate on nested subsets of these sizes instead")
    s.add_argument("--arms", default="original",
                   help="with --learning-curve: CNN arms, e.g. original,augmentation-off or "
                        "compact (trained with its own recipe, not --epochs etc.)")
    s.add_argument("--site-test", metavar="CSV", help="with --learning-curve: a new site's "
                   "separate test manifest; compares the shipped model as is and recalibrated, "
                   "fine-tuned from it, from scratch and the handcrafted baseline, trained on "
                   "the first N patients of MANIFEST (the same site's)")
    s.add_argument("--init-from", metavar="BUNDLE", help="with --site-test: the model a site "
                   "starts from (default: the model in use)")
    s.add_argument("--force", action="store_true")
    s.set_defaults(func=cmd_study)
