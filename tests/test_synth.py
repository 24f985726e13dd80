import csv

import numpy as np
import pytest
from pydicom.uid import ImplicitVRLittleEndian, JPEG2000Lossless, RLELossless

from tfesi_desktop.core.dicom import canonical_values, scan
from tfesi_desktop.core.geometry import Dihedral
from tfesi_desktop.core.preprocess import roi_side
from tfesi_desktop.core.synth.cohort import (
    MANIFEST_COLUMNS,
    Storage,
    draw_patient,
    favourable_probability,
    write_study,
)
from tfesi_desktop.core.synth.phantom import (
    FORAMEN_LENGTH,
    foramen_axis,
    kim_grade,
    render,
)

VARIANTS = {
    "plain": Storage(),
    "mirrored": Storage(dihedral=Dihedral(flip_cols=True)),
    "upside down": Storage(dihedral=Dihedral(flip_rows=True)),
    "transposed": Storage(dihedral=Dihedral(transpose=True, flip_cols=True)),
    "tilted": Storage(tilt_deg=7.0),
    "monochrome1": Storage(monochrome1=True),
    "rescale": Storage(rescale=(0.5, -100.0)),
    "rle": Storage(transfer_syntax=RLELossless),
    "jpeg2000": Storage(transfer_syntax=JPEG2000Lossless),
    "implicit VR": Storage(transfer_syntax=ImplicitVRLittleEndian),
    "shuffled": Storage(shuffled_names=True, reverse_instance_numbers=True),
    "multi-frame": Storage(multiframe=True, reverse_instance_numbers=True, rescale=(0.25, 0.0)),
    "everything": Storage(dihedral=Dihedral(True, True, False), monochrome1=True,
                          rescale=(0.5, -100.0), transfer_syntax=RLELossless, multiframe=True,
                          shuffled_names=True),
}


def _narrowest_canonical(tmp_path, storage, name):
    p = draw_patient(5, 3, storage=storage, matrix=256)
    row = write_study(p, tmp_path / name)
    stack = scan(tmp_path / name).find_stack(row["series_uid"])
    key = row["sop_instance_uid"] + (f":{row['frame']}" if row["frame"] != "" else "")
    i = stack.find_slice(key)
    assert i == p.narrowest_index
    return canonical_values(stack.slices[i]), [canonical_values(s) for s in stack.slices], row


def test_storage_never_changes_the_canonical_modality_values(tmp_path):
    ref, ref_stack, _ = _narrowest_canonical(tmp_path, VARIANTS["plain"], "plain")
    assert ref.std() > 0
    for name, storage in VARIANTS.items():
        got, stack, row = _narrowest_canonical(tmp_path, storage, name.replace(" ", "_"))
        np.testing.assert_array_equal(got, ref, err_msg=name)
        assert len(stack) == len(ref_stack)
        for a, b in zip(stack, ref_stack, strict=True):
            np.testing.assert_array_equal(a, b, err_msg=f"{name}: slice order")


def test_roi_in_stored_pixels_is_on_the_injected_side_for_every_orientation(tmp_path):
    for d in Dihedral.all():
        p = draw_patient(5, 4, storage=Storage(dihedral=d), matrix=256)
        row = write_study(p, tmp_path / str(hash(d)))
        stack = scan(tmp_path / str(hash(d))).find_stack(row["series_uid"])
        g = stack.slices[p.narrowest_index].geometry
        roi = (row["roi_x"], row["roi_y"], row["roi_w"], row["roi_h"])
        assert roi_side(g, roi) == p.side


def test_cohort_manifest_and_summary(cohort):
    out, summary = cohort
    with open(out / "manifest.csv") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == MANIFEST_COLUMNS
    assert len(rows) == summary["patients"] == 6
    assert 0.75 < summary["best_achievable_auc_expected"] < 0.99
    for r in rows:
        before, after, label = int(r["nrs_before"]), int(r["nrs_after"]), int(r["label"])
        assert label == int((before - after) / before >= 0.5)
        assert r["side"] in ("left", "right") and r["level"] in ("C5", "C6", "C7", "C8")
        assert int(r["grade"]) == kim_grade(float(r["width_mm"])) in (1, 2)
        assert (out / r["study_path"]).is_dir()
        assert "SYN" in r["patient_id"]


def test_cohort_is_reproducible_from_its_seed():
    a, b = draw_patient(3, 7), draw_patient(3, 7)
    assert a == b
    assert draw_patient(3, 8) != a


def test_paper_frequencies_and_outcome_model():
    pats = [draw_patient(1, i) for i in range(400)]
    right = np.mean([p.side == "right" for p in pats])
    assert 0.48 < right < 0.63  # paper: 159/288 = 0.55
    levels = [p.level for p in pats]
    assert levels.count("C6") + levels.count("C7") > 0.85 * len(pats)
    w = np.array([p.width_mm for p in pats])
    y = np.array([p.label for p in pats])
    # wider foramen, more often favourable: the model the generator states
    assert y[w > 3].mean() > y[w < 1.5].mean() + 0.4
    assert favourable_probability(10.0) > 0.99 and favourable_probability(0.0) < 0.01


@pytest.mark.parametrize("index", range(3))
def test_the_recorded_narrowest_slice_is_the_narrowest(index):
    """Measure the injected foramen's width on every slice of the phantom, across the channel
    at its waist: the recorded slice has the smallest, and it matches the recorded width."""
    p = draw_patient(2, index, matrix=256)
    start, d = foramen_axis(p.anatomy, p.side)
    n = np.array([-d[1], d[0]])
    waist = start + 0.45 * FORAMEN_LENGTH * d
    q = np.linspace(-6, 6, 1201)  # 0.01 mm steps across the channel
    pts = waist[None, :] + q[:, None] * n[None, :]
    # into image coordinates (the phantom rotates and shifts the anatomy)
    c, s = np.cos(p.anatomy.rotation), np.sin(p.anatomy.rotation)
    u = c * pts[:, 0] - s * pts[:, 1] + p.anatomy.centre[0]
    v = s * pts[:, 0] + c * pts[:, 1] + p.anatomy.centre[1]
    widths = []
    for k in range(p.n_slices):
        profile = render(p.anatomy, (k - p.narrowest_index) * p.slice_gap_mm, u, v, edge=0.01)
        widths.append(0.01 * np.sum(profile > 0.6))  # channel (0.82) and root (0.4 -> excluded)
    assert int(np.argmin(widths)) == p.narrowest_index
