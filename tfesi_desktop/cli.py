"""The ``tfesi`` command line. It calls the same core functions as the desktop program.

Every expected failure prints ``error: <sentence>`` on stderr and exits with status 2; nothing
prints a traceback unless ``TFESI_DEBUG=1`` is set.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from . import __version__, cli_common
from .app_options import add_logging_options, configure_logging, missing_extra, require_extra
from .cli_common import Parser, one_line, progress_printer, safe_terminal, say
from .core.errors import TfesiError

# network.ARCHITECTURES, spelled out so that building the parser does not import Keras
TRAIN_VARIANTS = ("original", "no-regularization", "from-scratch", "compact")


_Parser, _progress, _one_line, _say = Parser, progress_printer, one_line, say


# --- tfesi info --------------------------------------------------------------------------------

def _stack_summary(stack, proposed) -> dict:
    g = stack.geometry
    return {
        "key": stack.key, "series_uid": stack.series_uid, "series_number": stack.series_number,
        "description": stack.description, "modality": stack.modality,
        "orientation": stack.orientation_name(), "slices": len(stack.slices),
        "matrix": list(g.shape) if g else None,
        "pixel_spacing_mm": [round(v, 4) for v in g.spacing] if g else None,
        "slice_spacing_mm": (round(s, 3) if (s := stack.spacing_between_slices()) else None),
        "edge_letters": g.edge_letters() if g else None,
        "t2": stack.is_t2(), "proposed": id(stack) in proposed, "warnings": stack.warnings,
    }


def _finite(obj):
    """``obj`` with every NaN or infinity replaced by None, so that the JSON is strict."""
    if isinstance(obj, float):
        return obj if obj == obj and abs(obj) != float("inf") else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def cmd_info(args) -> int:
    from .core.dicom import propose_stack, scan

    result = scan(args.paths, progress=None if args.json else _progress("reading headers"))
    proposed = {id(propose_stack(st.stacks)) for st in result.studies}
    out = {
        "files_seen": result.files_seen,
        "studies": [{
            "study_uid": st.study_uid, "patient_name": st.patient_name,
            "patient_id": st.patient_id, "birth_date": st.birth_date, "sex": st.sex,
            "study_date": st.study_date, "description": st.description,
            "series": [_stack_summary(s, proposed) for s in st.stacks]} for st in result.studies],
        "skipped": [{"path": str(p), "reason": r} for p, r in result.skipped],
        "non_image_files": result.non_images,
    }
    if args.json:
        print(json.dumps(_finite(out), indent=1, allow_nan=False))
        return 0
    for st in out["studies"]:
        print(f"Study {st['study_uid']}")
        print(f"  patient {st['patient_name'] or '(no name)'}, ID {st['patient_id'] or '-'}, "
              f"born {st['birth_date'] or '-'}, sex {st['sex'] or '-'}")
        print(f"  {st['study_date'] or 'no date'}  {st['description'] or ''}")
        for s in st["series"]:
            mark = "*" if s["proposed"] else " "
            sp = s["pixel_spacing_mm"]
            number = "?" if s["series_number"] is None else s["series_number"]
            print(f"  {mark} series {number:>3}"
                  f"  {s['description'] or '(no description)'}: {s['orientation']}, "
                  f"{s['slices']} slices"
                  + (f", {s['matrix'][1]}x{s['matrix'][0]}" if s["matrix"] else "")
                  + (f", {sp[1]:.3g}x{sp[0]:.3g} mm" if sp else "")
                  + (f", {s['slice_spacing_mm']:.3g} mm apart" if s["slice_spacing_mm"] else ""))
            print(f"      {s['key']}")
            for w in s["warnings"]:
                print(f"      warning: {w}")
    print("* = proposed axial T2 series of each study")
    if result.skipped:
        print(f"{len(result.skipped)} files could not be read and were skipped:")
        for p, r in result.skipped:
            print(f"  {p}: {r}")
    if result.non_images:
        print(f"{result.non_images} DICOM files hold no image (reports, etc.) and were ignored.")
    return 0


# --- tfesi synth -------------------------------------------------------------------------------

def cmd_synth(args) -> int:
    from pydicom.uid import ExplicitVRLittleEndian, RLELossless

    from .core.synth.cohort import Storage, make_cohort

    if args.patients < 1:
        raise TfesiError("--patients must be at least 1.")
    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.force:
        raise TfesiError("This folder is not empty; choose another or add --force.", out)
    storage = None if args.storage == "random" else Storage(
        transfer_syntax=RLELossless if args.storage == "rle" else ExplicitVRLittleEndian)
    site = None
    if args.site:  # issue 24: a hospital's scanner (core/synth/sites.py)
        from .core.synth.sites import get_site

        site = get_site(args.site)
    summary = make_cohort(out, patients=args.patients, seed=args.seed, jobs=args.jobs,
                          matrix=args.matrix, storage=storage, clinical=args.clinical,
                          site=site,
                          progress=_progress("writing patients"))
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        print(f"{args.patients} synthetic patients written to {out}; manifest: "
              f"{out / 'manifest.csv'}")
        for k, v in summary.items():
            print(f"  {k}: {v}")
    return 0


# --- tfesi predict -----------------------------------------------------------------------------

def _roi_arg(text: str) -> tuple[int, int, int, int]:
    try:
        parts = [int(v) for v in text.split(",")]
    except ValueError:
        parts = []
    if len(parts) != 4:
        raise TfesiError(f"--roi must be four integers X,Y,W,H (got {text!r}).")
    return tuple(parts)


def _slice_index(stack, text: str) -> int:
    """``--slice``: a slice number counted from 1, as the window and the report count them, or
    a SOP Instance UID (``uid:frame`` for a frame of a multi-frame file)."""
    t = str(text).strip()
    if t.lstrip("+-").isdigit():
        n, count = int(t), len(stack.slices)
        if not 1 <= n <= count:
            raise TfesiError(f"Slice {n} does not exist: this series has {count} slices, "
                             f"numbered 1 to {count} (as in the window and the report).")
        return n - 1
    return stack.find_slice(t)


def _load_predictor(model: str | None):
    from .core.bundle import default_bundle_path
    from .core.runtime import Predictor

    return Predictor(Path(model) if model else default_bundle_path(), quiet=True)


def run_prediction(args):
    """Open, select, check the safety gates and predict through the commands the window uses:
    shared by predict and report. Returns (scan, stack, index, predictor, outcome)."""
    from .core.commands import open_study, predict_selection, sagittal_guide
    from .core.session import Selection

    opened = open_study(args.path)
    for note in opened.notes:
        print(f"note: {note}", file=sys.stderr)
    result = opened.scan
    stack = result.find_stack(args.series)
    index = _slice_index(stack, args.slice)
    selection = Selection(stack.study_uid, stack.key, stack.slices[index].key,
                          _roi_arg(args.roi), args.side, args.level,
                          overrides=("canal", "midline", "side") if args.allow_side_mismatch
                          else ())
    predictor = _load_predictor(args.model)
    # the study's sagittal, where it shares the frame of reference, tells where the canal is
    outcome = predict_selection(predictor, stack, selection, guide=sagittal_guide(result, stack))
    if outcome.prediction.provenance.override:
        print(f"warning: {outcome.prediction.provenance.override}", file=sys.stderr)
    return result, stack, index, predictor, outcome


def prediction_json(predictor, outcome) -> dict:
    """The result as JSON: the prediction, its provenance and the selection's level."""
    b = predictor.bundle
    return {
        **outcome.as_dict(),
        "outcome_definition": ">= 50 % NRS pain reduction at 2 months after TFESI",
        "validated_performance": b.validated_performance(), "disclaimer": b.disclaimer(),
    }


def cmd_predict(args) -> int:
    from .core.runtime import format_probability

    _, stack, index, predictor, outcome = run_prediction(args)
    pred = outcome.prediction
    out = prediction_json(predictor, outcome)
    if args.heatmap:
        from .core.dicom import default_window, modality_values
        from .core.render import radiological_overlay, save_png

        ref = stack.slices[index]
        demo = ("; SYNTHETIC DEMO MODEL, NOT FOR CLINICAL USE" if predictor.bundle.synthetic
                else "")
        # radiological whatever the storage, as the window and the report (invariant 1)
        rgb, _, letters = radiological_overlay(modality_values(ref), ref.require_geometry(),
                                               default_window(stack), pred.provenance.roi,
                                               pred.cam_roi)
        save_png(rgb, args.heatmap, labels=letters, scale=2 if rgb.shape[0] <= 256 else 1,
                 caption=f"Grad-CAM, relative attention; P(favourable) = "
                         f"{pred.probability:.2f}{demo}")
        out["heatmap"] = str(args.heatmap)
    combined = None
    if args.clinical is not None:  # issue 25: image + clinical data (cli_clinical.py)
        from .cli_clinical import predict_clinical

        combined = predict_clinical(predictor, pred, args.clinical)
        out["clinical"] = combined.as_dict()
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    print(f"Probability of a favourable outcome (>= 50 % pain reduction at 2 months): "
          f"{format_probability(pred.probability)}  ->  {pred.label} "
          f"(threshold {pred.threshold:.2f})")
    lo, hi = pred.interval
    print(f"range over {len(pred.crop_probabilities)} ROIs around the one given: "
          f"{format_probability(lo)} to {format_probability(hi)}"
          + ("  BORDERLINE: the label depends on where the ROI is drawn" if pred.borderline
             else ""))
    nb = pred.neighbourhood
    if nb is not None and len(nb.slice_indices) > 1:
        print("neighbouring slices: " + ", ".join(
            f"{i + 1}{'*' if i == nb.chosen else ''} {format_probability(q)}"
            for i, q in zip(nb.slice_indices, nb.probabilities, strict=True))
            + f" (* chosen; the result rests on slice {nb.based_on + 1})")
        if nb.message():
            print(f"SLICE: {nb.message()}")
    if not pred.reliable:
        print(f"NOT RELIABLE: {pred.unreliable_text()}")
    if combined is not None:
        from .core.clinical import combined_lines

        print("\n".join(combined_lines(combined)))
    print(predictor.bundle.validated_performance())
    print(predictor.bundle.disclaimer())
    print(f"model {out['model_name']} {out['model_version']} sha256 {out['model_sha256']}")
    print(f"preprocessing v{out['preprocessing_version']}; study {out['study_uid']}; series "
          f"{out['series_uid']}; SOP instance {out['sop_instance_uid']}"
          + (f" frame {out['frame']}" if out["frame"] is not None else ""))
    print(f"slice {index + 1} of {len(stack.slices)}, ROI {out['roi']}, side {out['side']}, "
          f"level {out['level'] or '-'}, {out['time']}")
    return 0


# --- tfesi report ------------------------------------------------------------------------------

def cmd_report(args) -> int:
    from .core.commands import write_report
    from .core.runtime import format_probability

    t0 = time.perf_counter()
    result, stack, index, predictor, outcome = run_prediction(args)
    out, dcm, _ = write_report(outcome, predictor.bundle, result, args.out,
                               comment=args.comment or "", physician=args.physician or "",
                               anonymize=args.anonymize, paper=args.paper, dicom=args.dicom,
                               impression=args.impression)
    written = {"report": str(out)}
    say = [f"report written to {out} in {time.perf_counter() - t0:.2f} s "
           f"(probability of a favourable outcome "
           f"{format_probability(outcome.prediction.probability)})"]
    if dcm:
        written["encapsulated_pdf"] = str(dcm)
        say.append(f"DICOM Encapsulated PDF written to {dcm}")
    if args.sr or args.sc or args.pm:
        from .core import results_dicom
        from .core.dicom import default_window

        if args.sr:  # the result: its level is the selection's
            sr = results_dicom.write_sr(outcome, stack, index, args.sr, anonymize=args.anonymize)
            written["structured_report"] = str(sr)
            say.append(f"DICOM structured report (TID 1500) written to {sr}")
        if args.sc:
            sc = results_dicom.write_secondary_capture(outcome, stack, index, args.sc,
                                                       anonymize=args.anonymize,
                                                       window=default_window(stack))
            written["secondary_capture"] = str(sc)
            say.append(f"DICOM secondary capture of the heat map written to {sc}")
        if args.pm:
            pm = results_dicom.write_parametric_map(outcome, stack, index, args.pm,
                                                    anonymize=args.anonymize)
            written["parametric_map"] = str(pm)
            say.append(f"DICOM parametric map of the heat map written to {pm}")
    if args.json:
        print(json.dumps({"written": written, "probability": outcome.prediction.probability,
                          "anonymized": bool(args.anonymize)}, indent=1))
    else:
        print("\n".join(say))
    return 0


# --- tfesi train -------------------------------------------------------------------------------

def cmd_train(args) -> int:
    require_extra("train")
    from .core.training.train import TrainConfig, bundle_from_directory, recipe, train

    out = Path(args.out)
    if out.exists() and not args.force:
        raise TfesiError("This bundle folder exists; choose another or add --force.", out)
    if args.imagenet_weights and not Path(args.imagenet_weights).is_file():
        raise TfesiError("The ImageNet weights file does not exist.", args.imagenet_weights)
    if args.imagenet_weights and args.init == "random":
        raise TfesiError("--imagenet-weights and --init random contradict each other.")
    name = args.name or out.name
    if args.from_trained:
        card = bundle_from_directory(args.from_trained, args.manifest, out, name=name,
                                     version=args.version, precision=args.precision,
                                     overwrite=args.force)
    else:
        settings = recipe(args.variant)  # what is not given: the variant's recipe
        settings.update({k: v for k in settings if (v := getattr(args, k)) is not None})
        cfg = TrainConfig(variant=args.variant, **settings,
                          validation_fraction=args.validation_fraction, seed=args.seed,
                          init=args.init, imagenet_weights=args.imagenet_weights,
                          augment=not args.no_augment, soft_labels=args.soft_labels,
                          init_from=args.init_from,
                          devices=args.devices or [])
        if (cfg.variant not in ("from-scratch", "compact") and cfg.init == "imagenet"
                and not cfg.init_from):
            from .core.training.network import imagenet_weights_file

            imagenet_weights_file(cfg.imagenet_weights)  # fails early, before reading studies
        card = train(args.manifest, out, cfg, name=name, version=args.version,
                     precision=args.precision, overwrite=args.force,
                     progress=_say)
    v = card["metrics"]["validation"]
    if args.json:
        print(json.dumps({"bundle": str(out), "validation": v}, indent=1))
    else:
        print(f"bundle written to {out}")
        for k, val in v.items():
            print(f"  validation {k}: {val}")
    return 0


# --- tfesi model -------------------------------------------------------------------------------

def cmd_model_info(args) -> int:
    from .core.bundle import default_bundle_path, load_bundle

    b = load_bundle(args.bundle or default_bundle_path())
    if args.json:
        print(json.dumps(b.card, indent=1))
        return 0
    c = b.card
    print(f"{b.name} {b.version}  ({b.path})")
    print(f"  {b.disclaimer()}")
    print(f"  intended use: {c.get('intended_use', '-')}")
    print(f"  {b.validated_performance()}")
    arch = c.get("architecture", {})
    variant = arch.get("variant")
    named = f" ({variant} variant)" if variant and variant not in (arch.get("base"), "compact") \
        else ""
    print(f"  network: {arch.get('base')}{named}, {arch.get('parameters', 0):,} parameters, "
          + ("from ImageNet weights" if arch.get("imagenet_initialization")
             else "from random weights (no ImageNet)"))
    t = c.get("training", {})
    if t:
        print(f"  training: {t.get('data')}; {t.get('train')} train / {t.get('validation')} "
              f"validation; {t.get('optimizer')} (learning rate {t.get('learning_rate')}), "
              f"batch {t.get('batch_size')}, {t.get('epochs')} epochs")
    print(f"  preprocessing version {c['preprocessing_version']}, threshold {b.threshold}")
    print(f"  model SHA-256 {b.sha256}")
    for lim in c.get("limitations", []):
        print(f"  limitation: {lim}")
    return 0


def cmd_model_install(args) -> int:
    from .core.model_gate import install_checked  # the install floor (issue 24)

    dest, gate = install_checked(args.bundle, make_default=not args.no_default,
                                 min_auc_lower=args.min_auc_lower, force=args.force)
    if not gate.passed:
        print(f"warning: installed with --force although {gate.sentence()}; its card says so",
              file=sys.stderr)
    print(f"installed {dest}" + ("" if args.no_default else " (now the default model)"))
    return 0


def cmd_model_list(args) -> int:
    from .core.bundle import installed_bundles

    rows = installed_bundles()
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    for r in rows:
        mark = "*" if r["default"] else " "
        print(f"{mark} {r['name']} {r['version']}  {r['performance']}  ({r['path']})")
    if not rows:
        print("no model installed")
    print("* = default model")
    return 0


def cmd_model_sign(args) -> int:
    from .core.bundle import sign_bundle, trusted_keys_dir

    sig = sign_bundle(args.bundle, args.key, new_key=args.new_key)
    print(f"signed {args.bundle} (bundle SHA-256 {sig['bundle_sha256']}) with key "
          f"{sig['key_id']}")
    if args.new_key:
        print(f"new key pair: {args.key} (private, keep it safe) and its public key beside it; "
              f"copy the public key into {trusted_keys_dir()} on each computer that should "
              "trust this signer")
    return 0


def cmd_model_verify(args) -> int:
    from .core.bundle import verify_signature

    b = verify_signature(args.bundle or _default_bundle(), args.key)
    print(f"verified: {b.name} {b.version}, bundle SHA-256 {b.sha256}, signed by {b.signer}")
    return 0


def _default_bundle():
    from .core.bundle import default_bundle_path

    return default_bundle_path()


# --- tfesi evaluate and study -------------------------------------------------------------------

def cmd_evaluate(args) -> int:
    from .core.evaluation import evaluate_scores, read_scores, table2_text, write_report

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
        from .core.evaluation import pointing_game, stability
        from .core.manifest import generator_probabilities
        from .core.stats import auc_delong, calibration_summary

        (probs,) = scores.values()
        result["calibration"] = calibration_summary(labels, probs)
        result["stable_prediction"] = stability(rows, predictor.bundle.threshold)
        game = pointing_game(rows)
        if game:
            result["pointing_game"] = game
        gen = generator_probabilities(cases)
        if gen is not None:  # a synthetic cohort: the best any model can reach on it
            from .core.evaluation import best_auc_comparison

            result["best_achievable_auc"] = round(auc_delong(labels, gen).auc, 4)
            result["best_auc_gap"] = best_auc_comparison(labels, probs, gen)
    if args.out:
        write_report(args.out, result, labels, scores, title=source)
        if not args.predictions:
            from .core.evaluation import write_predictions

            write_predictions(Path(args.out) / "predictions.csv", rows)
    if args.update_card:
        if args.predictions:
            raise TfesiError("--update-card needs --model and --manifest.")
        from .core.bundle import record_evaluation
        from .core.stats import fit_platt

        platt = fit_platt(labels, raw_logits) if args.calibrate_temperature else None
        record_evaluation(predictor.bundle, result, manifest=args.manifest, platt=platt)
    print(json.dumps(result, indent=1) if args.json else table2_text(result, source), end="")
    return 0


def _score_manifest(args):
    """Score every patient of a manifest with the stable prediction, exactly as the window
    shows it; returns (labels, {model: probabilities}, predictor, raw mean logits, rows,
    cases)."""
    import numpy as np

    from .core.evaluation import score_cases
    from .core.manifest import read_manifest

    predictor = _load_predictor(args.model)
    cases = read_manifest(args.manifest)
    rows = score_cases(predictor, cases, progress=_progress("scoring patients"))
    labels = np.array([c.label for c in cases])
    probs = np.array([r["probability"] for r in rows])
    raw = np.array([r["raw_logit"] for r in rows])
    return labels, {predictor.bundle.name: probs}, predictor, raw, rows, cases


def _evaluate_sites(args) -> int:
    from .core.evaluation import forest_plot, site_table, site_table_text

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
    predictor = _load_predictor(args.model)
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
    from .core.training.study import run_study, summary_text

    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.force:
        raise TfesiError("This folder is not empty; choose another or add --force.", out)
    if args.learning_curve:
        from .core.training.network import ARCHITECTURES
        from .core.training.study import (
            AUGMENTATION_OFF_OF,
            learning_curve_text,
            run_learning_curve,
        )

        try:
            sizes = [int(v) for v in args.learning_curve.split(",") if v.strip()]
        except ValueError:
            raise TfesiError("--learning-curve takes sizes such as 100,200,300.") from None
        if args.site_test:  # issue 24: the routes a new site can take, on its own test set
            from .core.bundle import default_bundle_path
            from .core.training.study import run_site_curve, site_curve_text

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


# --- tfesi bench -------------------------------------------------------------------------------

def cmd_bench(args) -> int:
    from .core.bench import run_bench

    figures = run_bench(model=args.model, repeat=args.repeat, quick=args.quick,
                        progress=None if args.json else
                        _say)
    if args.json:
        print(json.dumps(figures, indent=1))
    else:
        for k, v in figures.items():
            print(f"{k:45s} {v}")
    return 0


# --- tfesi cache ------------------------------------------------------------------------------

def _mb(n: int) -> str:
    return f"{n / 1024**2:,.1f} MB"


def cmd_cache(args) -> int:
    from .core.pacs import cache_root
    from .core.pacs.eviction import cached_studies, clear, limit_bytes

    root = cache_root()
    if args.cache_command == "clear":
        n, size = clear(root, older_than_days=args.older_than_days)
        result = {"removed_studies": n, "removed_bytes": size, "folder": str(root)}
        text = f"removed {n} retrieved studies ({_mb(size)}) from {root}"
    else:
        studies = cached_studies(root)
        used = sum(s.bytes for s in studies)
        result = {"folder": str(root), "studies": len(studies), "bytes": used,
                  "limit_bytes": limit_bytes()}
        text = (f"{len(studies)} retrieved studies, {_mb(used)} of {_mb(limit_bytes())} "
                f"(TFESI_CACHE_LIMIT_GB) in {root}")
    print(json.dumps(result, indent=1) if args.json else text)
    return 0


# --- tfesi federate and site-check (issue 24) ---------------------------------------------------

def cmd_federate(args) -> int:
    from .core.training import federated as fed

    def say(message):
        print(message, file=sys.stderr, flush=True)

    if args.mode == "client":
        if not args.manifest or len(args.manifest) != 1:
            raise TfesiError("A client reads one manifest: its own site's (--manifest).")
        site = fed.Site.load((args.site_name or ["site"])[0], args.manifest[0], seed=args.seed)
        say(f"site {site.name}: {len(site.train_idx)} training and {len(site.val_idx)} "
            f"held-out patients; connecting to {args.address}")
        fed.run_client(site, args.address)
        return 0
    cfg = fed.FederatedConfig(sites=args.sites or len(args.manifest or []), rounds=args.rounds,
                              local_epochs=args.local_epochs, batch_size=args.batch_size,
                              learning_rate=args.learning_rate, seed=args.seed,
                              init_from=args.init_from)
    if not args.out:
        raise TfesiError("--out (the bundle folder to write) is needed.")
    name = args.name or Path(args.out).name
    if args.mode == "coordinator":
        if not args.sites:
            raise TfesiError("--sites (how many sites to wait for) is needed.")
        result = fed.run_coordinator(cfg, args.out, address=args.address, name=name,
                                     log_file=args.log, overwrite=args.force, progress=say)
        log = result["log"]
    else:
        if not args.manifest or len(args.manifest) < 2:
            raise TfesiError("A local trial needs two or more --manifest (one per site).")
        log = fed.run_local(args.manifest, args.out, cfg, name=name, site_names=args.site_name,
                            timeout_s=args.timeout, overwrite=args.force, progress=say)
    print(json.dumps({"bundle": str(args.out), "sites": log["sites"],
                      "validation": log["validation"]}, indent=1))
    return 0


def cmd_site_check(args) -> int:
    from .core.site_check import site_check, site_check_text
    from .core.site_note import mark_validated, record_check

    predictor = _load_predictor(args.model)
    if args.validated:  # the model was validated on this site's outcomes: clear the note
        if args.path:
            raise TfesiError("--validated takes no manifest: it records that the model in use "
                             "(or --model) was validated here.")
        if mark_validated(predictor.bundle) is None:
            raise TfesiError("No site check of this model was recorded (tfesi site-check "
                             "--record MANIFEST).")
        print(f"recorded: {predictor.bundle.name} {predictor.bundle.version} validated at "
              "this site; its predictions no longer carry the site note")
        return 0
    if not args.path:
        raise TfesiError("Give the site's manifest (or a folder with manifest.csv).")
    result = site_check(args.path, predictor, training_manifest=args.training_manifest,
                        progress=_progress("scoring patients"))
    if args.record:
        entry = record_check(predictor.bundle, result)
        result["recorded"] = entry
    print(json.dumps(_finite(result), indent=1) if args.json else site_check_text(result),
          end="\n" if args.json else "")
    if args.record and not args.json:
        print("recorded: " + ("every prediction of this model now says this site's images "
                              "differ, until tfesi site-check --validated" if entry["differs"]
                              else "the site's images resemble the training images"))
    return 0


def _site_check_parser(sub) -> None:
    s = sub.add_parser("site-check", help="does a site's batch of images resemble the "
                       "training images? With outcomes: local AUC and calibration")
    s.add_argument("path", nargs="?", help="the site's manifest CSV (labels optional), or a "
                   "folder with manifest.csv")
    s.add_argument("--record", action="store_true", help="keep the verdict: where the site "
                   "differs, every prediction of this model says so until --validated")
    s.add_argument("--validated", action="store_true", help="record that the model was "
                   "validated on this site's outcomes (clears the note)")
    s.add_argument("--model", help="bundle (default: the model in use)")
    s.add_argument("--training-manifest", metavar="CSV", help="the training manifest, for the "
                   "acquisition range when the card records none")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_site_check)


def _federate_parser(sub) -> None:
    s = sub.add_parser("federate", help="train one model across sites without sharing images "
                       "(Flower): a coordinator and one client per site, or a local trial")
    s.add_argument("mode", choices=("local", "coordinator", "client"),
                   help="local: start a coordinator and one client per --manifest here")
    s.add_argument("--manifest", action="append", help="a site's manifest (client: its own)")
    s.add_argument("--site-name", action="append",
                   help="the site's name on the card (default site1, site2, ...)")
    s.add_argument("--out", help="bundle folder the coordinator writes")
    s.add_argument("--address", default="127.0.0.1:8080", help="coordinator HOST:PORT")
    s.add_argument("--sites", type=int, help="coordinator: number of sites to wait for")
    s.add_argument("--rounds", type=int, default=5, help="training rounds")
    s.add_argument("--local-epochs", type=int, default=2, help="epochs at each site per round")
    s.add_argument("--batch-size", type=int, default=32)
    s.add_argument("--learning-rate", type=float, default=1e-3)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--init-from", metavar="BUNDLE", help="start from this bundle's network "
                   "(e.g. the shipped model) instead of random weights")
    s.add_argument("--name", help="model name on the card (default: the folder's name)")
    s.add_argument("--log", metavar="JSON", help="run log (default: beside the bundle)")
    s.add_argument("--timeout", type=float, default=1800, help="local: stop after this many s")
    s.add_argument("--force", action="store_true", help="replace an existing bundle folder")
    s.set_defaults(func=cmd_federate)


# --- entry point -------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="tfesi", description="TFESI Desktop command line: read cervical MRI "
                "studies, predict TFESI outcome, train and validate models. Research software, "
                "not for clinical decisions on its own.")
    p.add_argument("--version", action="version", version=f"tfesi {__version__}")
    add_logging_options(p)
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    s = sub.add_parser("info", help="list the studies, series and stacks found in a path")
    s.add_argument("paths", nargs="+", help="folder, DICOMDIR, ZIP file or DICOM files")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=cmd_info)

    s = sub.add_parser("synth", help="write a synthetic cohort of cervical MRI studies")
    s.add_argument("out", help="output folder")
    s.add_argument("--patients", type=int, default=10)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--jobs", type=int, default=None, help="worker processes (default: cores)")
    s.add_argument("--matrix", type=int, choices=(256, 512), default=None,
                   help="image matrix for every study (default: mostly 256, some 512)")
    s.add_argument("--site", help="write the images as this site's scanner would, of its "
                   "patients: reference, fatsat, fatsat-half, hospital-b, highfield, "
                   "fatsat-lowrate, tertiary-referral (core/synth/sites.py)")
    s.add_argument("--storage", choices=("random", "plain", "rle"), default="random",
                   help="random: vary orientation, MONOCHROME1, rescale, compression, multi-frame"
                   " and file names as scanners do (default); plain or rle: standard axial "
                   "storage, uncompressed or RLE-compressed")
    s.add_argument("--force", action="store_true", help="write into a non-empty folder")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.add_argument("--clinical", action="store_true",
                   help="add clinical variables (age, sex, symptom duration, previous "
                        "injections) and draw the outcome from image + clinic (README)")
    s.set_defaults(func=cmd_synth)

    s = sub.add_parser("predict", help="predict the outcome for an ROI on one slice")
    _prediction_args(s)
    s.add_argument("--heatmap", metavar="OUT.png", help="write the slice with the Grad-CAM map")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.add_argument("--clinical", metavar="NAME=VALUE,...",
                   help="clinical data for a bundle with a clinical model (tfesi fuse), e.g. "
                        "age=62,sex=F,nrs=7,duration=6,previous=1,grade=2")
    s.set_defaults(func=cmd_predict)

    s = sub.add_parser("report", help="predict and write the PDF report")
    _prediction_args(s)
    s.add_argument("--out", required=True, metavar="FILE.pdf")
    s.add_argument("--anonymize", action="store_true",
                   help="DICOM PS3.15 basic profile: no names, IDs, dates, age or sex; new UIDs")
    s.add_argument("--comment", help="the physician's comment")
    s.add_argument("--impression", help="the physician's impression / plan, printed on the "
                                        "report")
    s.add_argument("--physician", help="the physician's name")
    s.add_argument("--paper", choices=("a4", "letter"), default="a4")
    s.add_argument("--dicom", action="store_true",
                   help="also write the PDF as a DICOM Encapsulated PDF (FILE.dcm) for a PACS")
    s.add_argument("--sr", metavar="OUT.dcm",
                   help="also write the result as a DICOM structured report (TID 1500)")
    s.add_argument("--sc", metavar="OUT.dcm",
                   help="also write the heat map as a DICOM secondary capture")
    s.add_argument("--pm", metavar="OUT.dcm",
                   help="also write the heat map as data, a DICOM parametric map on the slice")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=cmd_report)

    s = sub.add_parser("train", help="train a model bundle on a manifest (paper's protocol)")
    s.add_argument("manifest", help="manifest CSV (format: README)")
    s.add_argument("--out", required=True, help="bundle folder to write")
    s.add_argument("--variant", choices=TRAIN_VARIANTS, default="original",
                   help="the paper's network (original), an ablation variant, or compact: a "
                        "small CNN that learns from random weights on a CPU (README)")
    s.add_argument("--epochs", type=int,
                   help="default: 26 (the paper's); 30 for compact")
    s.add_argument("--batch-size", type=int, help="default: 8; 32 for compact")
    s.add_argument("--learning-rate", type=float, help="default: 1e-5; 1e-3 for compact")
    s.add_argument("--optimizer", choices=("rmsprop", "adam"),
                   help="rmsprop at a constant rate (the paper's; default) or adam with cosine "
                        "decay (default for compact)")
    s.add_argument("--validation-fraction", type=float, default=0.2)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--init", choices=("imagenet", "random"), default="imagenet",
                   help="initialise the base from ImageNet (the paper's; default) or randomly")
    s.add_argument("--no-augment", action="store_true",
                   help="train on the ROIs as drawn (no ROI or intensity jitter)")
    s.add_argument("--init-from", metavar="MODEL.keras",
                   help="start from this model's weights (same architecture) and fine-tune")
    s.add_argument("--soft-labels", metavar="COLUMN",
                   help="synthetic cohorts only: train against this column's probability "
                        "(e.g. p_favourable) instead of the 0/1 label; recorded on the card")
    s.add_argument("--imagenet-weights", metavar="PATH",
                   help="local efficientnetv2-b0_notop.h5 (nothing is downloaded)")
    s.add_argument("--precision", choices=("float32", "float16"), default="float32",
                   help="weights of the LiteRT export (float16 halves the file)")
    s.add_argument("--name", help="model name for the card (default: the folder's name)")
    s.add_argument("--version", default="1.0.0")
    s.add_argument("--devices", nargs="*", metavar="DEV",
                   help="train with tf.distribute.MirroredStrategy over these devices")
    s.add_argument("--from-trained", metavar="DIR",
                   help="bundle a model trained elsewhere (model.keras + record.json)")
    s.add_argument("--force", action="store_true", help="replace an existing bundle folder")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("cache", help="the cache of studies retrieved from a PACS")
    csub = s.add_subparsers(dest="cache_command", required=True, parser_class=_Parser)
    c = csub.add_parser("info", help="the cache's folder, size and limit")
    c.add_argument("--json", action="store_true", help="print one JSON object")
    c.set_defaults(func=cmd_cache)
    c = csub.add_parser("clear", help="remove retrieved studies (saved work is kept)")
    c.add_argument("--older-than-days", type=float, metavar="N",
                   help="only studies retrieved more than N days ago")
    c.add_argument("--json", action="store_true", help="print one JSON object")
    c.set_defaults(func=cmd_cache)

    s = sub.add_parser("model", help="model bundles")
    msub = s.add_subparsers(dest="model_command", required=True, parser_class=_Parser)
    m = msub.add_parser("info", help="print a bundle's card (default: the model in use)")
    m.add_argument("bundle", nargs="?")
    m.add_argument("--json", action="store_true")
    m.set_defaults(func=cmd_model_info)
    m = msub.add_parser("install", help="install a validated bundle and make it the default")
    m.add_argument("bundle")
    m.add_argument("--no-default", action="store_true", help="install without making it "
                   "the default")
    m.add_argument("--min-auc-lower", type=float, default=0.6, metavar="AUC",
                   help="refuse a bundle whose validated AUC's lower 95 %% bound is not above "
                        "this (default 0.6)")
    m.add_argument("--force", action="store_true", help="install a bundle below the floor or "
                   "with degenerate calibration anyway; its card records that it was forced")
    m.set_defaults(func=cmd_model_install)
    m = msub.add_parser("list", help="list installed models")
    m.add_argument("--json", action="store_true")
    m.set_defaults(func=cmd_model_list)
    m = msub.add_parser("sign", help="sign a bundle with an Ed25519 key (signature.json)")
    m.add_argument("bundle")
    m.add_argument("--key", required=True, metavar="KEY.pem", help="unencrypted PEM private key")
    m.add_argument("--new-key", action="store_true",
                   help="make a new key pair at KEY.pem (and KEY.pub.pem) first")
    m.set_defaults(func=cmd_model_sign)
    m = msub.add_parser("verify", help="verify a bundle's files and its signature by a trusted "
                        "key (default: the model in use)")
    m.add_argument("bundle", nargs="?")
    m.add_argument("--key", metavar="PUBLIC.pem", help="check against this public key instead "
                   "of the trusted-keys folder")
    m.set_defaults(func=cmd_model_verify)

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

    s = sub.add_parser("bench", help="measure prediction speed, start-up and training")
    s.add_argument("--model", help="bundle (default: the model in use)")
    s.add_argument("--repeat", type=int, default=200, help="timed predictions")
    s.add_argument("--quick", action="store_true", help="fewer repeats, no training figure")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=cmd_bench)
    _federate_parser(sub)
    _site_check_parser(sub)
    from .cli_pacs import add_pacs_commands

    add_pacs_commands(sub)
    from .cli_clinical import add_clinical_commands

    add_clinical_commands(sub)
    return p


def _prediction_args(s) -> None:
    s.add_argument("path", help="study folder, DICOMDIR, ZIP file or DICOM file")
    s.add_argument("--series", help="Series Instance UID (default: the proposed axial T2)")
    s.add_argument("--slice", required=True,
                   help="slice number (1 = the first, as the window and the report count) or "
                        "SOP Instance UID")
    s.add_argument("--roi", required=True, metavar="X,Y,W,H",
                   help="ROI in stored pixels: column and row of the top-left corner, size")
    s.add_argument("--side", required=True, choices=("left", "right"),
                   help="injection side (the patient's)")
    s.add_argument("--level", choices=("C5", "C6", "C7", "C8"))
    s.add_argument("--model", help="model bundle folder (default: installed or demo model)")
    s.add_argument("--allow-side-mismatch", "--override", action="store_true",
                   help="confirm an override of the side safety gates (ROI on the other side "
                        "of the spinal canal, across it, or canal not found): recorded in the "
                        "provenance and printed on the report")


def main(argv: list[str] | None = None) -> int:
    with safe_terminal():
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args, "tfesi")
    cli_common.QUIET = bool(args.quiet)
    from .core.fileio import clean_after_killed_runs
    from .core.paths import migrate_once

    migrate_once()  # settings and the PACS cache of earlier versions to their own folders
    clean_after_killed_runs()  # what a killed earlier run left (core/fileio.py)
    try:
        return int(args.func(args) or 0)
    except TfesiError as e:
        print(f"error: {_one_line(str(e))}", file=sys.stderr)
        return 2
    except OSError as e:  # a file system refusal (permissions, a full disk): expected, exit 2
        if os.environ.get("TFESI_DEBUG"):
            raise
        where = f"{e.filename}: " if e.filename else ""
        print(f"error: {_one_line(f'{where}{e.strerror or e}')}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - the last line of defence: no traceback for users
        if os.environ.get("TFESI_DEBUG"):
            raise
        if isinstance(e, ModuleNotFoundError) and (sentence := missing_extra(e)):
            print(f"error: {sentence}", file=sys.stderr)  # an optional extra is not installed
            return 2
        print(f"error: internal error ({type(e).__name__}: {e}). Run again with TFESI_DEBUG=1 "
              "for details, and please report it.", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
