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

from . import __version__
from .core.errors import TfesiError

# network.ARCHITECTURES, spelled out so that building the parser does not import Keras
TRAIN_VARIANTS = ("original", "no-regularization", "from-scratch", "compact")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own errors: same form as ours, exit 2
        self.print_usage(sys.stderr)
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2)


def _progress(label: str):
    """A progress printer for stderr (a single updating line on a terminal)."""
    tty = sys.stderr.isatty()
    last = [0.0]

    def report(done: int, total: int):
        now = time.monotonic()
        if done < total and now - last[0] < 0.5:
            return
        last[0] = now
        end = "\r" if tty and done < total else "\n"
        if tty or done == total:
            print(f"{label}: {done}/{total}", end=end, file=sys.stderr, flush=True)

    return report


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
    summary = make_cohort(out, patients=args.patients, seed=args.seed, jobs=args.jobs,
                          matrix=args.matrix, storage=storage,
                          progress=_progress("writing patients"))
    print(json.dumps(summary, indent=1))
    print(f"manifest: {out / 'manifest.csv'}", file=sys.stderr)
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
    from .core.commands import open_study, predict_selection
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
    outcome = predict_selection(predictor, stack, selection)
    if outcome.prediction.provenance.override:
        print(f"warning: {outcome.prediction.provenance.override}", file=sys.stderr)
    return result, stack, index, predictor, outcome


def prediction_json(predictor, pred) -> dict:
    b = predictor.bundle
    return {
        **pred.as_dict(),
        "outcome_definition": ">= 50 % NRS pain reduction at 2 months after TFESI",
        "validated_performance": b.validated_performance(), "disclaimer": b.disclaimer(),
    }


def cmd_predict(args) -> int:
    from .core.runtime import format_probability

    _, stack, index, predictor, outcome = run_prediction(args)
    pred = outcome.prediction
    out = prediction_json(predictor, pred)
    if args.heatmap:
        from .core.dicom import default_window, modality_values
        from .core.render import overlay, save_png, windowed

        ref = stack.slices[index]
        grey = windowed(modality_values(ref), *default_window(stack))
        demo = ("; SYNTHETIC DEMO MODEL, NOT FOR CLINICAL USE" if predictor.bundle.synthetic
                else "")
        save_png(overlay(grey, pred.cam_roi, pred.provenance.roi), args.heatmap,
                 labels=ref.geometry.edge_letters(), scale=2 if grey.shape[0] <= 256 else 1,
                 caption=f"Grad-CAM, relative attention; P(favourable) = "
                         f"{pred.probability:.2f}{demo}")
        out["heatmap"] = str(args.heatmap)
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
        print("NOT RELIABLE: this image is unlike the images this model was trained on "
              f"(feature distance {pred.ood_distance:.2f}, limit {pred.ood_threshold:.2f}).")
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
                               anonymize=args.anonymize, paper=args.paper, dicom=args.dicom)
    print(f"report written to {out} in {time.perf_counter() - t0:.2f} s "
          f"(probability of a favourable outcome "
          f"{format_probability(outcome.prediction.probability)})")
    if dcm:
        print(f"DICOM Encapsulated PDF written to {dcm}")
    if args.sr or args.sc:
        from .core import results_dicom
        from .core.dicom import default_window

        pred = outcome.prediction
        if args.sr:
            sr = results_dicom.write_sr(pred, stack, index, args.sr, anonymize=args.anonymize)
            print(f"DICOM structured report (TID 1500) written to {sr}")
        if args.sc:
            sc = results_dicom.write_secondary_capture(pred, stack, index, args.sc,
                                                       anonymize=args.anonymize,
                                                       window=default_window(stack))
            print(f"DICOM secondary capture of the heat map written to {sc}")
    return 0


# --- tfesi train -------------------------------------------------------------------------------

def cmd_train(args) -> int:
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
                     progress=lambda m: print(m, file=sys.stderr, flush=True))
    v = card["metrics"]["validation"]
    print(json.dumps({"bundle": str(out), "validation": v}, indent=1))
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
    from .core.bundle import install_bundle

    dest = install_bundle(args.bundle, make_default=not args.no_default)
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


def cmd_study(args) -> int:
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
            progress=lambda m: print(m, file=sys.stderr, flush=True))
        print(learning_curve_text(result), end="")
        print(f"table and figure: {out}", file=sys.stderr)
        return 0
    summary = run_study(args.manifest, out, folds=args.folds, ablation=not args.no_ablation,
                        baseline=not args.no_baseline, cv=args.folds > 1, epochs=args.epochs,
                        batch_size=args.batch_size, learning_rate=args.learning_rate,
                        seed=args.seed, imagenet_weights=args.imagenet_weights, init=args.init,
                        progress=lambda m: print(m, file=sys.stderr, flush=True))
    print(summary_text(summary), end="")
    print(f"report: {out}", file=sys.stderr)
    return 0


# --- tfesi bench -------------------------------------------------------------------------------

def cmd_bench(args) -> int:
    from .core.bench import run_bench

    figures = run_bench(model=args.model, repeat=args.repeat, quick=args.quick,
                        progress=None if args.json else
                        (lambda m: print(m, file=sys.stderr, flush=True)))
    if args.json:
        print(json.dumps(figures, indent=1))
    else:
        for k, v in figures.items():
            print(f"{k:45s} {v}")
    return 0


# --- entry point -------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="tfesi", description="TFESI Desktop command line: read cervical MRI "
                "studies, predict TFESI outcome, train and validate models. Research software, "
                "not for clinical decisions on its own.")
    p.add_argument("--version", action="version", version=f"tfesi {__version__}")
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
    s.add_argument("--storage", choices=("random", "plain", "rle"), default="random",
                   help="random: vary orientation, MONOCHROME1, rescale, compression, multi-frame"
                   " and file names as scanners do (default); plain or rle: standard axial "
                   "storage, uncompressed or RLE-compressed")
    s.add_argument("--force", action="store_true", help="write into a non-empty folder")
    s.set_defaults(func=cmd_synth)

    s = sub.add_parser("predict", help="predict the outcome for an ROI on one slice")
    _prediction_args(s)
    s.add_argument("--heatmap", metavar="OUT.png", help="write the slice with the Grad-CAM map")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=cmd_predict)

    s = sub.add_parser("report", help="predict and write the PDF report")
    _prediction_args(s)
    s.add_argument("--out", required=True, metavar="FILE.pdf")
    s.add_argument("--anonymize", action="store_true",
                   help="DICOM PS3.15 basic profile: no names, IDs, dates, age or sex; new UIDs")
    s.add_argument("--comment", help="the physician's comment")
    s.add_argument("--physician", help="the physician's name")
    s.add_argument("--paper", choices=("a4", "letter"), default="a4")
    s.add_argument("--dicom", action="store_true",
                   help="also write the PDF as a DICOM Encapsulated PDF (FILE.dcm) for a PACS")
    s.add_argument("--sr", metavar="OUT.dcm",
                   help="also write the result as a DICOM structured report (TID 1500)")
    s.add_argument("--sc", metavar="OUT.dcm",
                   help="also write the heat map as a DICOM secondary capture")
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
    s.set_defaults(func=cmd_train)

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
    s.add_argument("--force", action="store_true")
    s.set_defaults(func=cmd_study)

    s = sub.add_parser("bench", help="measure prediction speed, start-up and training")
    s.add_argument("--model", help="bundle (default: the model in use)")
    s.add_argument("--repeat", type=int, default=200, help="timed predictions")
    s.add_argument("--quick", action="store_true", help="fewer repeats, no training figure")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=cmd_bench)
    from .cli_pacs import add_pacs_commands  # it uses this module's helpers

    add_pacs_commands(sub)
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


def _one_line(text: str) -> str:
    """``text`` on one line: control characters (from hostile file names or values) escaped."""
    return "".join(ch if ch.isprintable() or ch == " " else ascii(ch)[1:-1] for ch in text)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
        print(f"error: internal error ({type(e).__name__}: {e}). Run again with TFESI_DEBUG=1 "
              "for details, and please report it.", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
