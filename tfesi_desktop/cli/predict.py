"""``tfesi predict`` and ``tfesi report``: one slice's prediction, and its PDF and DICOM results,
through the commands the window uses (``core/commands.py``)."""

from __future__ import annotations

import json
import sys
import time

from ..core.errors import TfesiError
from .common import load_predictor

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


def run_prediction(args):
    """Open, select, check the safety gates and predict through the commands the window uses:
    shared by predict and report. Returns (scan, stack, index, predictor, outcome)."""
    from ..core.commands import open_study, predict_selection, sagittal_guide
    from ..core.session import Selection

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
    predictor = load_predictor(args.model)
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
    from ..core.runtime import format_probability

    _, stack, index, predictor, outcome = run_prediction(args)
    pred = outcome.prediction
    out = prediction_json(predictor, outcome)
    if args.heatmap:
        from ..core.dicom import default_window, modality_values
        from ..core.render import radiological_overlay, save_png

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
    if args.clinical is not None:  # issue 25: image + clinical data (cli/clinical.py)
        from .clinical import predict_clinical

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
        from ..core.clinical import combined_lines

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
    from ..core.commands import write_report
    from ..core.runtime import format_probability

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
        from ..core import results_dicom
        from ..core.dicom import default_window

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


def register(sub) -> None:
    """``predict`` and ``report``."""
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
