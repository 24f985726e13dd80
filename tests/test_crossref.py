"""The cross-reference line of an axial slice on a sagittal image, against geometry worked out
by hand, and the synthetic sagittal T2 in the axial series' Frame of Reference."""

import math

import numpy as np
import pytest

from tfesi_desktop.core.crossref import cross_reference, nearest_slice, same_frame
from tfesi_desktop.core.geometry import SliceGeometry

# a sagittal image: columns run anterior -> posterior (+y), rows head -> foot (-z), 1 mm pixels,
# 200 x 200, its top-left pixel centre at (0, -100, 100)
SAG = SliceGeometry((0.0, -100.0, 100.0), (0.0, 1.0, 0.0), (0.0, 0.0, -1.0), (1.0, 1.0),
                    (200, 200))


def axial(z, tilt_deg=0.0):
    t = math.radians(tilt_deg)
    return SliceGeometry((-50.0, -50.0, z), (1.0, 0.0, 0.0), (0.0, math.cos(t), math.sin(t)),
                         (0.5, 0.5), (200, 200))


def test_a_straight_axial_is_a_horizontal_line_at_its_height():
    # z = -20 is 120 mm below the top row's centre (z = 100): row 120, across the whole image
    (ra, ca), (rb, cb) = cross_reference(axial(-20.0), SAG)
    assert (ra, ca) == pytest.approx((120.0, -0.5))
    assert (rb, cb) == pytest.approx((120.0, 199.5))


def test_a_10_degree_tilted_axial_is_a_line_tilted_10_degrees():
    # the plane through (-50, -50, -20) with column direction (0, cos t, sin t): a point at
    # patient y lies at z = -20 + (y + 50) tan t; on the sagittal y = -100 + col, z = 100 - row
    t = math.radians(10.0)
    (ra, ca), (rb, cb) = cross_reference(axial(-20.0, 10.0), SAG)

    def row_at(col):
        y = -100.0 + col
        return 100.0 - (-20.0 + (y + 50.0) * math.tan(t))

    assert ca == pytest.approx(-0.5) and cb == pytest.approx(199.5)
    assert ra == pytest.approx(row_at(-0.5)) and rb == pytest.approx(row_at(199.5))
    assert math.degrees(math.atan2(ra - rb, cb - ca)) == pytest.approx(10.0)


def test_parallel_or_missing_planes_give_no_line():
    assert cross_reference(SAG, SAG) is None
    assert cross_reference(axial(500.0), SAG) is None  # far above the image


def test_nearest_slice_and_frame_of_reference():
    stack = [axial(z) for z in (-30.0, -27.0, -24.0, -21.0)]
    assert nearest_slice(stack, (0.0, 10.0, -25.2)) == 2
    assert same_frame("1.2.3", "1.2.3") and not same_frame("1.2.3", "1.2.4")
    assert not same_frame(None, None)


def test_synthetic_sagittal_shares_the_frame_and_its_discs_match_the_axial_level(tmp_path):
    from tfesi_desktop.core.dicom import modality_values, scan
    from tfesi_desktop.core.synth.cohort import Storage, disc_points, draw_patient, write_study

    p = draw_patient(3, 1, storage=Storage(tilt_deg=8.0))
    row = write_study(p, tmp_path / "s")
    found = scan(tmp_path / "s")
    ax = found.find_stack(row["series_uid"])
    sag = next(s for s in found.stacks if s.orientation_name() == "sagittal")
    assert len(sag.slices) == 7
    import pydicom
    fors = {pydicom.dcmread(s.path, stop_before_pixels=True).FrameOfReferenceUID
            for s in (ax.slices[0], sag.slices[0])}
    assert len(fors) == 1
    # the narrowest axial slice's line passes through the injected disc on the middle sagittal
    mid = sag.slices[len(sag.slices) // 2]
    g = mid.geometry
    narrow = ax.slices[ax.find_slice(row["sop_instance_uid"])].geometry
    (ra, ca), (rb, cb) = cross_reference(narrow, g)
    disc = {"C5": "C4-5", "C6": "C5-6", "C7": "C6-7", "C8": "C7-T1"}[p.level]
    x, y, z = disc_points(p)[disc]
    col = (y - g.position[1]) / g.spacing[1]
    row_disc = (g.position[2] - z) / g.spacing[0]
    row_line = ra + (rb - ra) * (col - ca) / (cb - ca)
    assert abs(row_line - row_disc) < 0.6  # pixels
    # and the disc is brighter than the vertebral body 8.5 mm (half a level) above it
    v = modality_values(mid)
    r, c = int(round(row_disc)), int(round(col))
    above = int(round(row_disc - 8.5 / g.spacing[0]))
    assert v[r - 1:r + 2, c - 2:c + 3].mean() != pytest.approx(v[above - 1:above + 2,
                                                               c - 2:c + 3].mean(), rel=0.05)
    assert np.isfinite(v).all()
