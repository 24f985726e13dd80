"""``tfesi fuse`` and ``tfesi clinical-study``, and ``tfesi predict --clinical``: the image and
the patient together (issue 25; the core is :mod:`.core.clinical`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..core.errors import TfesiError
from .common import progress_printer as _progress


def _variables(text: str | None):
    from ..core.clinical import DEFAULT_VARIABLES, canonical_name

    if not text:
        return DEFAULT_VARIABLES
    return tuple(canonical_name(v) for v in text.split(",") if v.strip())


def cmd_fuse(args) -> int:
    from ..core.bundle import default_bundle_path
    from ..core.clinical import fuse_bundle

    out, model = fuse_bundle(Path(args.model) if args.model else default_bundle_path(),
                             args.manifest, args.out, variables=_variables(args.variables),
                             scores_file=args.image_scores,
                             progress=_progress("scoring patients"))
    print(json.dumps(model.as_json(), indent=1))
    print(f"bundle with the clinical model: {out}", file=sys.stderr)
    return 0


def cmd_clinical_study(args) -> int:
    from ..core.bundle import default_bundle_path
    from ..core.clinical import clinical_study_text, run_clinical_study

    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.force:
        raise TfesiError("This folder is not empty; choose another or add --force.", out)
    if args.bundle and args.image_scores and not args.model:
        raise TfesiError("--bundle with --image-scores needs --model, the bundle that made "
                         "the scores.")
    if not 0 <= args.repeats <= 1000:
        raise TfesiError("--repeats must lie between 0 and 1000.")
    if not 0.1 <= args.fit_fraction <= 0.9:
        raise TfesiError("--fit-fraction must lie between 0.1 and 0.9.")
    result = run_clinical_study(
        args.manifest, out, model=Path(args.model) if args.model else
        (None if args.image_scores else default_bundle_path()),
        scores_file=args.image_scores, variables=_variables(args.variables),
        fraction=args.fit_fraction, seed=args.seed, bundle_out=args.bundle,
        repeats=args.repeats,
        progress=_progress("scoring patients"))
    print(json.dumps(result, indent=1) if args.json
          else clinical_study_text(result, result["source"]), end="")
    print(f"report: {out}", file=sys.stderr)
    return 0


def predict_clinical(predictor, prediction, text: str):
    """``tfesi predict --clinical ...``: the :class:`..core.clinical.CombinedPrediction`."""
    from ..core.clinical import combine, load_clinical_model, parse_clinical_arg

    model = load_clinical_model(predictor.bundle)
    if model is None:
        raise TfesiError("This model has no clinical part (it predicts from the image alone); "
                         "leave out --clinical, or use a bundle made with `tfesi fuse`.")
    return combine(prediction, parse_clinical_arg(text), model)


def register(sub) -> None:
    """``fuse`` and ``clinical-study``."""
    s = sub.add_parser("fuse", help="add a clinical model (image logit + clinical variables) "
                       "to a bundle, fitted on held-out patients of a manifest")
    s.add_argument("--model", help="image bundle (default: the model in use)")
    s.add_argument("--manifest", required=True,
                   help="manifest with the clinical columns, patients the network was not "
                        "trained on")
    s.add_argument("--out", required=True, help="new bundle folder")
    s.add_argument("--variables", metavar="A,B,...", help="default: age, sex, duration_months,"
                   " nrs_before, previous_injections, grade")
    s.add_argument("--image-scores", metavar="CSV",
                   help="image_scores.csv of a clinical study of the same model, instead of "
                        "running the network again")
    s.set_defaults(func=cmd_fuse)

    s = sub.add_parser("clinical-study", help="image only vs image + clinical: paired DeLong "
                       "test on fresh patients and an ablation per variable")
    s.add_argument("manifest")
    s.add_argument("--out", required=True, help="report folder")
    s.add_argument("--model", help="image bundle (default: the model in use)")
    s.add_argument("--image-scores", metavar="CSV", help="reuse a study's image_scores.csv")
    s.add_argument("--variables", metavar="A,B,...")
    s.add_argument("--fit-fraction", type=float, default=0.5,
                   help="share of the patients the fusion is fitted on (default 0.5)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--repeats", type=int, default=20,
                   help="other random splits to repeat the comparison on (default 20; 0: none)")
    s.add_argument("--bundle", metavar="NEW_BUNDLE",
                   help="also write --model with the fusion fitted on the fit part and its "
                        "validation on the rest")
    s.add_argument("--json", action="store_true")
    s.add_argument("--force", action="store_true")
    s.set_defaults(func=cmd_clinical_study)
