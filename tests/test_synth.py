import csv
import dataclasses

import numpy as np
import pytest
from pydicom.uid import ImplicitVRLittleEndian, JPEG2000Lossless, RLELossless

from tfesi_desktop.core.dicom import canonical_values, scan
from tfesi_desktop.core.geometry import Dihedral
from tfesi_desktop.core.synth.cohort import (
    MANIFEST_COLUMNS,
    Storage,
    draw_patient,
    favourable_probability,
    write_study,
)
from tfesi_desktop.core.synth.phantom import (
    CANAL_Y,
    WAIST_T,
    foramen_axis,
    foramen_normal,
    foramen_waist,
    kim_grade,
    render,
    render_slices,
    to_image,
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


def _stored_point_in_patient(g, x, y):
    return g.pixel_to_patient(float(y), float(x))


def test_roi_waist_and_canal_in_stored_pixels_for_every_orientation(tmp_path):
    """For each of the 8 ways to store the image, the manifest's waist and canal (stored pixels)
    are the same points of the patient as in the plain storage, the waist lies inside the ROI,
    and the ROI lies on the injected side of the anatomical midline (the canal's centre; the
    patient lies off-centre, so not necessarily of the image centre)."""
    ref = None
    for d in Dihedral.all():
        p = draw_patient(5, 4, storage=Storage(dihedral=d), matrix=256)
        row = write_study(p, tmp_path / str(hash(d)))
        stack = scan(tmp_path / str(hash(d))).find_stack(row["series_uid"])
        g = stack.slices[p.narrowest_index].geometry
        waist = _stored_point_in_patient(g, row["waist_x"], row["waist_y"])
        canal = _stored_point_in_patient(g, row["canal_x"], row["canal_y"])
        if ref is None:
            assert d == Dihedral()
            ref = waist, canal
            # the canonical pixels of the plain storage are the phantom's millimetres
            u, v = foramen_waist(p.anatomy, p.side)
            half = (p.matrix - 1) / 2
            assert row["waist_x"] == pytest.approx(u / p.pixel_mm + half, abs=1e-3)
            assert row["waist_y"] == pytest.approx(v / p.pixel_mm + half, abs=1e-3)
        np.testing.assert_allclose(waist, ref[0], atol=1e-3, err_msg=str(d))
        np.testing.assert_allclose(canal, ref[1], atol=1e-3, err_msg=str(d))
        x, y, w, h = row["roi_x"], row["roi_y"], row["roi_w"], row["roi_h"]
        assert x <= row["waist_x"] <= x + w - 1 and y <= row["waist_y"] <= y + h - 1
        roi_centre = _stored_point_in_patient(g, x + (w - 1) / 2, y + (h - 1) / 2)
        # patient (LPS) x grows towards the patient's left; the whole ROI stays on one side
        assert (roi_centre[0] - canal[0] > 0) == (p.side == "left")
        for cx in (x, x + w - 1):
            for cy in (y, y + h - 1):
                corner = _stored_point_in_patient(g, cx, cy)
                assert (corner[0] - canal[0] > 0) == (p.side == "left"), str(d)


@pytest.mark.parametrize("index", range(40))
def test_rois_are_placed_as_physicians_place_them(index):
    """Sizes vary, the waist is inside the ROI but not always at its centre, the ROI is inside
    the image and stays on the injected side of the canal's centre."""
    p = draw_patient(8, index)
    x, y, w, h = p.roi_canonical
    assert 0 <= x and 0 <= y and x + w <= p.matrix and y + h <= p.matrix
    assert w >= 16 and h >= 16 and h * p.pixel_mm <= 38.5
    wx, wy = p.waist_canonical
    assert x <= wx <= x + w - 1 and y <= wy <= y + h - 1
    cx = p.canal_canonical[0]
    assert (x > cx) if p.side == "left" else (x + w - 1 < cx)
    assert 256 <= p.matrix <= 512 and 0.4 <= p.pixel_mm <= 0.8
    assert p.offcentre_mm <= 30.0 + 1e-6 and abs(p.rotation_deg) <= 10.0
    # the whole neck inside the field of view: nothing but background on the image's border
    e = (p.matrix - 1) / 2 * p.pixel_mm
    side = np.linspace(-e, e, p.matrix)
    u = np.concatenate([side, side, np.full_like(side, -e), np.full_like(side, e)])
    v = np.concatenate([np.full_like(side, -e), np.full_like(side, e), side, side])
    assert render(p.anatomy, 0.0, u, v, texture=False).max() < 0.01


def test_roi_placement_spreads_like_a_hand():
    pats = [draw_patient(9, i) for i in range(300)]
    off = []
    for p in pats:
        x, y, w, h = p.roi_canonical
        wx, wy = p.waist_canonical
        off.append(((wy - (y + (h - 1) / 2)) / h, (wx - (x + (w - 1) / 2)) / w))
    off = np.array(off)
    sizes = np.array([(p.roi_canonical[2] * p.pixel_mm, p.roi_canonical[3] * p.pixel_mm)
                      for p in pats])
    assert 0.10 < off[:, 0].std() < 0.2  # about 15 % of the ROI's height
    assert np.mean(np.abs(off) > 0.1) > 0.3  # the waist is often well off the centre
    assert sizes[:, 1].min() < 25 and sizes[:, 1].max() > 35  # heights 22-38 mm
    assert np.mean(np.abs(sizes[:, 0] - sizes[:, 1]) > 3) > 0.4  # not square
    assert max(p.offcentre_mm for p in pats) > 25 and max(abs(p.rotation_deg) for p in pats) > 8
    assert {256, 512} <= {p.matrix for p in pats}


def test_cohort_manifest_and_summary(cohort):
    out, summary = cohort
    with open(out / "manifest.csv") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == MANIFEST_COLUMNS
    assert len(rows) == summary["patients"] == 6
    assert 0.88 <= summary["best_achievable_auc_expected"] <= 0.94
    assert "compression" in summary["outcome_model"] and summary["contrast"] == "T2"
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
    assert favourable_probability(10.0, 0.0, 2.5) > 0.99
    assert favourable_probability(0.0, 1.0, 7.5) < 0.01
    # beyond the width: a flattened root and a long narrowing make it worse
    assert favourable_probability(2.5, 0.8) < favourable_probability(2.5, 0.2)
    assert favourable_probability(2.5, 0.45, 7.0) < favourable_probability(2.5, 0.45, 3.0)
    c = np.array([p.compression for p in pats])
    length = np.array([p.narrowing_mm for p in pats])
    assert np.allclose([p.p_favourable for p in pats], favourable_probability(w, c, length))
    mid = (w > 1.5) & (w < 3)  # at the same width, the other findings still separate
    assert y[mid & (c < 0.35)].mean() > y[mid & (c > 0.55)].mean() + 0.3
    assert 0.4 < y.mean() < 0.6


@pytest.mark.parametrize("index", range(3))
def test_the_recorded_narrowest_slice_is_the_narrowest(index):
    """Measure the injected foramen's width on every slice of the phantom (thin slices at the
    slices' centres, no texture), across the channel at every point along it: the recorded slice
    has the smallest, and it matches the recorded width. The walls' marrow is made dark for the
    measurement, so that the channel (fat and root) is what is brighter than 0.3."""
    p = draw_patient(2, index, matrix=256)
    a = dataclasses.replace(p.anatomy, marrow=0.2)
    start, d = foramen_axis(a, p.side)
    n = foramen_normal(a, p.side)
    q = np.linspace(-6, 6, 1201)  # 0.01 mm steps across the channel
    widths = []
    for k in range(p.n_slices):
        dz = (k - p.narrowest_index) * p.slice_gap_mm
        # the channel runs obliquely: follow it from slice to slice, 5 mm either side of its waist
        shift = np.clip(dz, -8, 8)
        t = np.arange(-5, 5.01, 0.25) + WAIST_T + a.obliquity * shift
        pts = (start + t[:, None, None] * d
               + (q[None, :, None] + a.drift * shift) * n)
        c, s = np.cos(a.rotation), np.sin(a.rotation)
        u = c * pts[..., 0] - s * pts[..., 1] + a.centre[0]
        v = s * pts[..., 0] + c * pts[..., 1] + a.centre[1]
        profiles = render_slices(a, [dz], u, v, edge=0.01, texture=False)[0]
        widths.append(0.01 * np.sum(profiles > 0.3, axis=1).min())
    widths = np.array(widths)
    assert int(np.argmin(widths)) == p.narrowest_index
    assert widths[p.narrowest_index] == pytest.approx(p.width_mm, abs=0.03)
    assert np.sort(widths)[1] > widths[p.narrowest_index] + 0.1


def test_another_contrast_changes_the_image_not_the_patient():
    t2 = draw_patient(6, 1, matrix=256)
    t1 = draw_patient(6, 1, matrix=256, contrast="T1")
    assert t1.anatomy == dataclasses.replace(t2.anatomy, contrast="T1")
    assert (t1.label, t1.p_favourable, t1.roi_canonical) == (t2.label, t2.p_favourable,
                                                             t2.roi_canonical)
    a = t2.anatomy
    cord_x = (a.cord[0] + a.canal[0]) / 2  # CSF between the cord and the canal's wall
    # CSF, cord, subcutaneous fat
    pts = [(cord_x, CANAL_Y), (3.0, CANAL_Y), (0.0, 3 + a.neck[1] - 2.5)]
    uv = np.array([to_image(a, pt) for pt in pts])
    val = {}
    for p in (t2, t1):
        val[p.contrast] = render(p.anatomy, 0.0, uv[:, 0], uv[:, 1], texture=False)
    csf, cord, fat = val["T2"]
    assert csf > cord + 0.3 and fat > 0.6  # T2: CSF bright
    csf, cord, fat = val["T1"]
    assert cord > csf + 0.2 and fat > 0.8  # T1: CSF dark, fat bright, cord brighter than CSF
    with pytest.raises(ValueError):
        draw_patient(6, 1, contrast="PD")


def test_new_manifest_columns(cohort):
    out, _ = cohort
    with open(out / "manifest.csv") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        x, y, w, h = (int(r[k]) for k in ("roi_x", "roi_y", "roi_w", "roi_h"))
        wx, wy = float(r["waist_x"]), float(r["waist_y"])
        assert x <= wx <= x + w - 1 and y <= wy <= y + h - 1
        assert 0 <= float(r["offcentre_mm"]) <= 30 and abs(float(r["rotation_deg"])) <= 10
        assert 0 <= float(r["compression"]) <= 1 and 2.5 <= float(r["narrowing_mm"]) <= 7.5
        assert r["contrast"] == "T2"
        assert float(r["canal_x"]) >= 0 and float(r["canal_y"]) >= 0


def test_the_physician_picks_the_narrowest_or_a_neighbour_at_the_documented_rate(cohort):
    from tfesi_desktop.core.synth.cohort import PICK_NEIGHBOUR_RATE, physician_pick

    picks = np.array([physician_pick(77, i) for i in range(4000)])
    assert set(picks) == {-1, 0, 1}
    assert np.mean(picks != 0) == pytest.approx(PICK_NEIGHBOUR_RATE, abs=0.025)
    assert np.mean(picks == 1) == pytest.approx(PICK_NEIGHBOUR_RATE / 2, abs=0.025)
    # the pick does not change the patient: images and outcome come from their own streams
    assert draw_patient(77, 5) == draw_patient(77, 5)
    out, _ = cohort
    with open(out / "manifest.csv") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        stack = scan(out / r["study_path"]).find_stack(r["series_uid"])
        key = r["sop_instance_uid"] + (f":{r['frame']}" if r["frame"] != "" else "")
        pick = r["pick_sop_instance_uid"] + (f":{r['pick_frame']}" if r["pick_frame"] != ""
                                             else "")
        assert stack.find_slice(pick) - stack.find_slice(key) == int(r["pick_offset"])
        assert int(r["pick_offset"]) == physician_pick(13, int(r["study_path"][1:]))
