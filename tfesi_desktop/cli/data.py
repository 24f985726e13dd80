"""``tfesi info`` and ``tfesi synth``: the studies found in a path, and synthetic cohorts."""

from __future__ import annotations

import json
from pathlib import Path

from ..core.errors import TfesiError
from .common import finite as _finite
from .common import progress_printer as _progress

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


def cmd_info(args) -> int:
    from ..core.dicom import propose_stack, scan

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

    from ..core.synth.cohort import Storage, make_cohort

    if args.patients < 1:
        raise TfesiError("--patients must be at least 1.")
    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.force:
        raise TfesiError("This folder is not empty; choose another or add --force.", out)
    storage = None if args.storage == "random" else Storage(
        transfer_syntax=RLELossless if args.storage == "rle" else ExplicitVRLittleEndian)
    site = None
    if args.site:  # issue 24: a hospital's scanner (core/synth/sites.py)
        from ..core.synth.sites import get_site

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


def register(sub) -> None:
    """``info`` and ``synth``."""
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
