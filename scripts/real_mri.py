"""Run the whole path on real cervical MRI (development script, docs/architecture.md, invariant 10).

Converts NIfTI volumes (public research data, never committed: kept under /work/data or any
folder outside the repository) into DICOM MR series with the geometry of the NIfTI affine, opens
the study as the program does, and prints one line per axial slice:

- the canal: found or not, its distance from the reference centre where one is known (from the
  cord segmentation shipped with the data), the score;
- the side the anatomical rule gives to an ROI put on each foramen (a 24 mm square centred
  18 mm left/right of the reference canal centre and 4 mm anterior of it);
- the demo model's out-of-distribution distance over its threshold (right foramen);

and saves the window's screenshot with the ROI and its prediction.

    python scripts/real_mri.py OUT_DIR NAME=AXIAL.nii.gz[,SAGITTAL.nii.gz][,SEG.nii.gz] ...

Geometry: NIfTI's affine maps voxel (i, j, k) to RAS+ millimetres, DICOM's patient coordinates
are LPS+, so x and y change sign. Slice k is stored with columns along i and rows along j:
ImageOrientationPatient = (LPS(a_i), LPS(a_j)) normalised, ImagePositionPatient = LPS(affine @
(0, 0, k, 1)), PixelSpacing = (|a_j|, |a_i|) (row spacing first). The series of one subject share
one StudyInstanceUID and FrameOfReferenceUID (the data's volumes are registered in scanner
space, as a scanner's series of one session are).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np

LPS = np.array([-1.0, -1.0, 1.0])


def _uid(*parts) -> str:
    h = int(hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[:30], 16)
    return f"2.25.{h}"


def _lps(v):
    return np.asarray(v, float)[:3] * LPS


def slice_geometry(affine: np.ndarray, k: int):
    """(ImageOrientationPatient, ImagePositionPatient, PixelSpacing, thickness) of slice k."""
    a = np.asarray(affine, float)
    ai, aj, ak = a[:3, 0], a[:3, 1], a[:3, 2]
    rows_dir, cols_dir = _lps(ai) / np.linalg.norm(ai), _lps(aj) / np.linalg.norm(aj)
    pos = _lps(a @ np.array([0.0, 0.0, float(k), 1.0]))
    return (list(rows_dir) + list(cols_dir), list(pos),
            [float(np.linalg.norm(aj)), float(np.linalg.norm(ai))], float(np.linalg.norm(ak)))


def write_series(nifti: Path, out: Path, *, subject: str, series_number: int,
                 description: str) -> list[Path]:
    """One DICOM MR file per slice of the NIfTI volume's third axis."""
    import nibabel as nib
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage

    img = nib.load(str(nifti))
    data = np.asarray(img.dataobj, dtype=np.float64)
    while data.ndim > 3:
        data = data[..., 0]
    lo, hi = float(data.min()), float(data.max())
    scale = 4095.0 / (hi - lo) if hi > lo else 1.0
    study, frame = _uid(subject, "study"), _uid(subject, "frame")
    series = _uid(subject, "series", series_number)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(data.shape[2]):
        iop, ipp, spacing, thick = slice_geometry(img.affine, k)
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = _uid(subject, series_number, k)
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.PatientName, ds.PatientID = "MR", f"Volunteer^{subject}", subject
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.SeriesNumber, ds.InstanceNumber = series_number, k + 1
        ds.SeriesDescription, ds.StudyDescription = description, "public research data"
        ds.StudyDate = ds.SeriesDate = "20200101"
        ds.ImageOrientationPatient = [round(v, 6) for v in iop]
        ds.ImagePositionPatient = [round(v, 4) for v in ipp]
        ds.PixelSpacing = [round(v, 6) for v in spacing]
        ds.SliceThickness = round(thick, 4)
        pix = np.round((data[:, :, k].T - lo) * scale).astype(np.uint16)  # rows along j
        ds.Rows, ds.Columns = pix.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.PixelData = pix.tobytes()
        p = out / f"{series_number:02d}_{k:03d}.dcm"
        ds.save_as(p, enforce_file_format=True)
        paths.append(p)
    return paths


def reference_centres(seg: Path, axial: Path) -> dict[int, np.ndarray]:
    """Slice index -> the cord segmentation's centroid (LPS mm) on the axial volume's slices
    (the segmentation may be cropped: mapped through both affines)."""
    import nibabel as nib

    s, a = nib.load(str(seg)), nib.load(str(axial))
    m = np.asarray(s.dataobj) > 0.5
    ijk = np.argwhere(m)
    if not len(ijk):
        return {}
    ras = (s.affine @ np.c_[ijk, np.ones(len(ijk))].T).T[:, :3]
    k_ax = (np.linalg.inv(a.affine) @ np.c_[ras, np.ones(len(ras))].T).T[:, 2]
    out = {}
    for k in range(a.shape[2]):
        sel = np.abs(k_ax - k) < 0.5
        if sel.sum() >= 10:
            out[k] = _lps(ras[sel].mean(0))
    return out


def _patient_to_pixel(geometry, p) -> tuple[float, float]:
    o = np.asarray(geometry.position, float)
    r, c = np.asarray(geometry.row_cos, float), np.asarray(geometry.col_cos, float)
    sr, sc = geometry.spacing
    d = np.asarray(p, float) - o
    return float(np.dot(d, c) / sr), float(np.dot(d, r) / sc)  # (row, col)


def foramen_roi(geometry, centre_mm, side: str, *, lateral_mm=18.0, size_mm=24.0):
    """A square ROI (x, y, w, h stored pixels) on the foramen on ``side``."""
    offset = np.array([lateral_mm if side == "left" else -lateral_mm, -4.0, 0.0])  # LPS
    row, col = _patient_to_pixel(geometry, np.asarray(centre_mm, float) + offset)
    sr, sc = geometry.spacing
    h, w = int(round(size_mm / sr)), int(round(size_mm / sc))
    return int(round(col - w / 2)), int(round(row - h / 2)), w, h


def run_table(study: Path, refs: dict[int, np.ndarray], predictor, *, out=sys.stdout,
              use_sagittal=True):
    """Print the per-slice table for the axial series of ``study``; summary counts."""
    from tfesi_desktop.core.commands import check_selection, open_study, predict_selection
    from tfesi_desktop.core.dicom.pixels import modality_values
    from tfesi_desktop.core.session import Selection

    scan = open_study([study]).scan
    axial = [s for s in scan.stacks if s.slices[0].geometry.is_axial()]
    stack = axial[0]
    from tfesi_desktop.core import commands

    guide = commands.sagittal_guide(scan, stack) if use_sagittal else None
    finder = _finder(guide, stack)
    totals = {"slices": 0, "found": 0, "near": 0, "rois": 0, "side_ok": 0, "ood": [],
              "unreliable": 0}
    print("| slice | z mm | canal | off ref mm | score | ROI right | ROI left | OOD/thr (R / L) |",
          file=out)
    print("|---|---|---|---|---|---|---|---|", file=out)
    for i, ref in enumerate(stack.slices):
        g = ref.require_geometry()
        values = modality_values(ref)
        canal = finder(i, values, g)
        k = int(round(ref.instance_number - 1)) if ref.instance_number else i
        ref_c = refs.get(k)
        totals["slices"] += 1
        off = "-"
        if canal is not None:
            totals["found"] += 1
            if ref_c is not None:
                dist = float(np.linalg.norm(np.asarray(canal.centre_mm) - ref_c))
                off = f"{dist:.1f}"
                totals["near"] += dist <= 5.0
        centre = ref_c if ref_c is not None else (canal.centre_mm if canal else None)
        sides, ood = [], []
        for side in ("right", "left"):
            if centre is None:
                sides.append("-")
                continue
            roi = foramen_roi(g, centre, side)
            sel = Selection(study_uid=stack.study_uid, series_key=stack.key,
                            slice_key=ref.key, roi=roi, side=side)
            gates = check_selection(sel, g, canal)
            totals["rois"] += 1
            if not gates:
                totals["side_ok"] += 1
                sides.append(side)
                if predictor is not None:
                    o = predict_selection(predictor, stack, sel, values=values, canal=canal)
                    p = o.prediction
                    ood.append(f"{p.ood_distance / p.ood_threshold:.2f}")
                    totals["ood"].append(p.ood_distance / p.ood_threshold)
                    totals["unreliable"] += not p.reliable  # by distance or source
            else:
                sides.append(gates[0].kind)
        z = float(g.position[2])
        dist = " / ".join(ood) or "-"
        print(f"| {i + 1} | {z:.1f} | {'found' if canal else 'NOT FOUND'} | {off} | "
              f"{canal.score if canal else 0:.2f} | {sides[0]} | {sides[1]} | {dist} |", file=out)
        if guide is not None and ref_c is not None:
            at = guide.at(g)
            totals.setdefault("course", []).append(
                "-" if at is None else f"{np.linalg.norm(np.subtract(at, ref_c)):.1f} "
                f"(LR {at[0] - ref_c[0]:+.1f})")
    if totals.get("course"):
        print("\nthe sagittal's cord course, off ref mm per slice: "
              + ", ".join(totals["course"]), file=out)
    return scan, stack, totals


def _finder(guide, stack):
    """The canal search as the program runs it (with the sagittal's cord course, if any, and
    checked against the neighbouring slices' canals, core/stackcanal.py)."""
    from tfesi_desktop.core import commands
    from tfesi_desktop.core.dicom.pixels import modality_values

    cache = {}

    def candidates_of(i):
        if i not in cache:
            ref = stack.slices[i]
            cache[i] = commands.anatomy_candidates(modality_values(ref), ref.geometry,
                                                   guide=guide)
        return cache[i]

    return lambda i, values, g: commands.find_anatomy_in_stack(
        stack, i, values=values, guide=guide, candidates_of=candidates_of)


def screenshot(study: Path, stack, slice_index: int, roi, out_png: Path, *,
               discs: dict[str, tuple[float, float, float]] | None = None) -> str | None:
    """The window with the study, ``roi`` on the slice and its prediction (Xvfb/offscreen),
    and the disc marks ``discs`` (name -> LPS mm) placed on the sagittal; the level the window
    proposes for the slice."""
    import os

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    # a fresh data folder: no state saved by an earlier run of this script, none left behind
    os.environ["TFESI_HOME"] = str(out_png.parent / "tfesi-home")
    import shutil

    shutil.rmtree(out_png.parent / "tfesi-home", ignore_errors=True)
    from PySide6.QtWidgets import QApplication

    from tfesi_desktop.gui.mainwindow import MainWindow
    from tfesi_desktop.gui.timing import process_until

    app = QApplication.instance() or QApplication(sys.argv[:1])
    win = MainWindow()
    win.resize(1500, 950)
    win.show()
    win.open_paths([str(study)])
    process_until(lambda: win.session.stack() is not None and win.current_values() is not None
                  and win.predictor is not None and not win.busy(), 90.0, 0.01)
    win.panel.auto_check.setChecked(False)
    if discs:
        from tfesi_desktop.core.levels import LevelMark

        for disc, point in discs.items():
            win.session.add_mark(LevelMark(disc, tuple(float(v) for v in point)))
    win.panel.slider.setValue(slice_index)
    process_until(lambda: win.current_values() is not None and win.canal_of_slice()[0]
                  and not win.busy(), 60.0, 0.01)
    win.session.set_roi(tuple(roi))  # what a finished drag does (gui/axial.py)
    win.session.propose_side()
    try:
        win.panel.predict_button.click()
        process_until(lambda: win.session.result is not None and not win.busy(), 60.0, 0.01)
    except Exception as e:  # noqa: BLE001 - a development script: say what happened
        print(f"(prediction in the window: {e})")
    for _ in range(40):
        app.processEvents()
    win.grab().save(str(out_png))
    sel = win.session.selection
    level = sel.level if sel is not None else None
    win.close()
    return level


def phantom_distances(predictor, n: int, seed: int, folder: Path) -> list[float]:
    """The OOD distance over its threshold of ``n`` fresh phantoms (``tfesi synth`` patients of
    a seed the demo model never saw), each at its manifest ROI, as the program predicts them."""
    from tfesi_desktop.core.commands import open_study, predict_selection
    from tfesi_desktop.core.session import Selection
    from tfesi_desktop.core.synth.cohort import draw_patient, write_study

    out, gated = [], []
    for i in range(n):
        row = write_study(draw_patient(seed, i), folder / f"p{i}")
        stack = open_study([folder / f"p{i}"]).scan.find_stack(row["series_uid"])
        key = row["sop_instance_uid"] + (f":{row['frame']}" if row["frame"] != "" else "")
        sel = Selection(stack.study_uid, stack.key, key,
                        (row["roi_x"], row["roi_y"], row["roi_w"], row["roi_h"]), row["side"],
                        overrides=("canal", "midline", "side"))
        o = predict_selection(predictor, stack, sel)
        if o.prediction.provenance.override:
            gated.append((i, o.prediction.provenance.override))
        out.append(o.prediction.ood_distance / o.prediction.ood_threshold)
        if o.prediction.source_note:  # the generator's own images: never flagged for it
            gated.append((i, o.prediction.source_note))
    for i, why in gated:
        print(f"phantom {i}: {why}")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("subjects", nargs="*", help="NAME=AXIAL[,sag=SAGITTAL][,seg=SEG]")
    ap.add_argument("--no-sagittal", action="store_true", help="axial search only")
    ap.add_argument("--no-screenshot", action="store_true")
    ap.add_argument("--phantoms", type=int, default=0,
                    help="also the OOD distance of this many fresh phantoms (seed --seed)")
    ap.add_argument("--seed", type=int, default=2027)
    ap.add_argument("--shot-slice", type=int, default=None,
                    help="the axial slice (1-based) of the screenshot (default: the middle)")
    ap.add_argument("--discs", default="", help="disc marks for the screenshot: "
                    "'C2-3=x,y,z;C3-4=x,y,z' in LPS mm (from the data's vertebral labels)")
    args = ap.parse_args(argv)
    from tfesi_desktop.core.bundle import default_bundle_path
    from tfesi_desktop.core.runtime import Predictor

    predictor = Predictor(default_bundle_path(), quiet=True)
    for spec in args.subjects:
        name, _, rest = spec.partition("=")
        parts = rest.split(",")
        axial, extra = Path(parts[0]), dict(p.split("=", 1) for p in parts[1:])
        study = args.out / name / "dicom"
        write_series(axial, study, subject=name, series_number=1, description=axial.name)
        if "sag" in extra:
            write_series(Path(extra["sag"]), study, subject=name, series_number=2,
                         description=Path(extra["sag"]).name)
        refs = reference_centres(Path(extra["seg"]), axial) if "seg" in extra else {}
        print(f"\n### {name}: {axial.name}" + (" + sagittal" if "sag" in extra else ""))
        scan, stack, t = run_table(study, refs, predictor, use_sagittal=not args.no_sagittal)
        ood = t["ood"]
        print(f"\ncanal found {t['found']}/{t['slices']}"
              + (f" (within 5 mm of the reference {t['near']}/{len(refs)})" if refs else "")
              + f"; ROIs with the right side and no gate {t['side_ok']}/{t['rois']}"
              + (f"; OOD/threshold {min(ood):.2f}-{max(ood):.2f} (median "
                 f"{float(np.median(ood)):.2f}), flagged {sum(v > 1 for v in ood)}/{len(ood)}"
                 f" by distance, {t['unreliable']}/{len(ood)} not reliable (distance or source,"
                 " core/source.py)" if ood else ""))
        if not args.no_screenshot:
            mid = len(stack.slices) // 2 if args.shot_slice is None else args.shot_slice - 1
            ref = stack.slices[mid]
            g = ref.require_geometry()
            k = int(round(ref.instance_number - 1)) if ref.instance_number else mid
            centre = refs.get(k)
            if centre is None:
                from tfesi_desktop.core.dicom.pixels import modality_values
                from tfesi_desktop.core.midline import find_canal
                c = find_canal(modality_values(ref), g)
                centre = c.centre_mm if c else g.pixel_to_patient(*(np.array(g.shape) / 2))
            png = args.out / f"{name}-window.png"
            discs = {d: tuple(float(v) for v in xyz.split(",")) for d, _, xyz in
                     (item.partition("=") for item in args.discs.split(";") if item)}
            level = screenshot(study, stack, mid, foramen_roi(g, centre, "right"), png,
                               discs=discs)
            print(f"screenshot: {png}" + (f" (level proposed: {level})" if discs else ""))
    if args.phantoms:
        d = phantom_distances(predictor, args.phantoms, args.seed, args.out / "phantoms")
        print(f"\n### {args.phantoms} fresh phantoms (tfesi synth seed {args.seed})\n"
              f"OOD/threshold {min(d):.2f}-{max(d):.2f} (median {float(np.median(d)):.2f}); "
              f"flagged {sum(v > 1 for v in d)}/{len(d)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
