"""Give the bundled demo study (resources/demo/P00000) the sagittal T2 the generator now writes,
without touching its axial series or its manifest row.

The demo was made by generator version 1, whose patient draws differ from today's, so
``tfesi synth`` cannot remake it with the same ROI. This script keeps every axial file and
replaces only the sagittal series (the old 3-slice localizer, IM0013-IM0015) with
:func:`tfesi_desktop.core.synth.cohort._sagittal_localizer` for an anatomy fitted to the demo's
axial images: the spinal canal found on the manifest's slice (``core.midline.find_canal``), the
injected level and the narrowest slice's height from the manifest and the headers, the patient's
names and the study's UIDs and Frame of Reference from the files.

    python scripts/demo_sagittal.py [resources/demo]
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pydicom

from tfesi_desktop.core.dicom import modality_values, scan
from tfesi_desktop.core.manifest import read_manifest
from tfesi_desktop.core.midline import find_canal
from tfesi_desktop.core.synth import cohort
from tfesi_desktop.core.synth.phantom import CANAL_Y


def main(root: Path) -> None:
    (case,) = read_manifest(root / "manifest.csv")
    folder = case.study_path
    found = scan(folder)
    axial = found.find_stack(case.series_uid)
    ref = axial.slices[axial.find_slice(case.slice_key)]
    g = ref.require_geometry()
    canal = find_canal(modality_values(ref), g)
    if canal is None:
        raise SystemExit("the canal was not found on the demo's slice")
    head = pydicom.dcmread(ref.path, stop_before_pixels=True)
    seed, index = (int(x) for x in case.patient_id.split("-")[1:])
    p = cohort.draw_patient(seed, index)
    # the anatomy frame placed so that its canal centre is the canal found, turned as found
    centre0 = np.asarray(g.pixel_to_patient((g.shape[0] - 1) / 2, (g.shape[1] - 1) / 2))
    rel = np.asarray(canal.centre_mm) - centre0
    u, v = float(rel[0]), float(np.hypot(rel[1], rel[2]) * np.sign(rel[1]))
    rot = float(np.deg2rad(canal.angle_deg))
    c, s = np.cos(rot), np.sin(rot)
    anatomy = dataclasses.replace(p.anatomy, rotation=rot,
                                  centre=(u + s * CANAL_Y, v - c * CANAL_Y))
    tilt = float(np.degrees(np.arctan2(g.col_cos[2], g.col_cos[1])))
    p = dataclasses.replace(
        p, anatomy=anatomy, level=case.level, name=str(head.PatientName),
        patient_id=str(head.PatientID), birth_date=str(head.PatientBirthDate),
        sex=str(head.PatientSex), study_date=str(head.StudyDate),
        storage=cohort.Storage(tilt_deg=tilt))
    if abs(centre0[2] - cohort.LEVEL_Z[case.level]) > 1e-3:
        raise SystemExit("the manifest's slice is not at the level's height")
    for old in sorted(folder.glob("*.dcm")):
        ds = pydicom.dcmread(old, stop_before_pixels=True)
        if ds.SeriesInstanceUID != axial.series_uid:
            old.unlink()
    names = [f"IM{len(axial.slices) + k + 1:04d}.dcm" for k in range(cohort.SAG_SLICES)]
    for ds, name in cohort._sagittal_localizer(p, axial.study_uid, names):
        if ds.FrameOfReferenceUID != head.FrameOfReferenceUID:
            raise SystemExit("the Frame of Reference differs from the axial series'")
        ds.save_as(folder / name, enforce_file_format=True)
    print(f"wrote {len(names)} sagittal slices into {folder}; canal at "
          f"{np.round(canal.centre_mm, 1).tolist()} mm, turned {canal.angle_deg:+.0f} deg")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "resources/demo"))
