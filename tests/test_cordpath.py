"""The cord's course on the sagittal tells where the canal is on each axial slice of the same
Frame of Reference (docs/architecture.md, "Side from anatomy")."""

import dataclasses

import numpy as np
import pytest

from tfesi_desktop.core.commands import find_anatomy, open_study, sagittal_guide
from tfesi_desktop.core.dicom.pixels import modality_values
from tfesi_desktop.core.synth.cohort import Storage, draw_patient, sagittal_centre, write_study


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    p = draw_patient(6, 3, storage=Storage(), matrix=256)
    folder = tmp_path_factory.mktemp("sag")
    row = write_study(p, folder)
    scan = open_study([folder]).scan
    return p, row, scan, scan.find_stack(row["series_uid"])


def test_the_sagittal_cord_course_finds_the_canal_on_the_axial(study):
    p, row, scan, stack = study
    guide = sagittal_guide(scan, stack)
    assert guide is not None
    ref = stack.slices[stack.find_slice(row["sop_instance_uid"])]
    g = ref.require_geometry()
    expected = np.array(guide.at(g))
    truth = np.array(sagittal_centre(p))  # the canal's centre on the narrowest slice
    assert np.linalg.norm(expected - truth) < 4.0, (expected, truth)
    canal = find_anatomy(modality_values(ref), g, guide=guide)
    assert np.linalg.norm(np.array(canal.centre_mm) - truth) < 1.5


def test_a_canal_far_from_the_cord_course_is_not_believed(study):
    p, row, scan, stack = study
    guide = sagittal_guide(scan, stack)
    ref = stack.slices[stack.find_slice(row["sop_instance_uid"])]
    moved = dataclasses.replace(guide, points=guide.points + np.array([0.0, -30.0, 0.0]))
    assert find_anatomy(modality_values(ref), ref.require_geometry(), guide=moved) is None


@pytest.mark.parametrize("seed,index", [(4, 2), (0, 1), (2, 5), (3, 7)])
def test_the_course_follows_the_cord_not_the_fat_under_the_skin(seed, index, tmp_path):
    """These phantoms' course followed the front of the neck, 50-63 mm from the cord, before
    core/cordpath.py kept the path 20 mm inside the skin; the cord must be within 5 mm on
    every axial slice."""
    p = draw_patient(seed, index, matrix=256)
    row = write_study(p, tmp_path)
    scan = open_study([tmp_path]).scan
    stack = scan.find_stack(row["series_uid"])
    guide = sagittal_guide(scan, stack)
    assert guide is not None
    truth = np.array(sagittal_centre(p))
    for ref in stack.slices:
        g = ref.require_geometry()
        n = np.asarray(g.normal, float)
        n /= np.linalg.norm(n)
        on_slice = truth + np.dot(np.asarray(g.position, float) - truth, n) * n
        at = guide.at(g)
        assert at is not None
        assert np.linalg.norm(np.array(at) - on_slice) < 5.0, (ref, at, on_slice)


def _sagittal_slab(p, offsets, drift=lambda z: 0.0, step=2.0):
    """A sagittal series of phantom ``p`` at patient x = canal + ``offsets`` (mm), its canal
    moved left-right by ``drift(z)`` mm at height z (rendered on a denser set of slices and
    interpolated across): [(values, SliceGeometry)] as core/cordpath.py takes them."""
    from tfesi_desktop.core.geometry import SliceGeometry
    from tfesi_desktop.core.synth.cohort import SAG_CENTRE_Z, SAG_MATRIX, SAG_PIXEL, render_sagittal

    cx, cy, _ = sagittal_centre(p)
    n, px = SAG_MATRIX, SAG_PIXEL
    top_z = SAG_CENTRE_Z + (n - 1) / 2 * px
    z = top_z - np.arange(n) * px
    shift = np.array([drift(v) for v in z])
    lo = min(offsets) - shift.max() - step
    hi = max(offsets) - shift.min() + step
    dense_x = np.arange(lo, hi + step, step)
    dense = render_sagittal(p, [cx + o for o in dense_x], centre_yz=(cy - 10.0, SAG_CENTRE_Z))
    out = []
    for o in offsets:
        img = np.empty((n, n), np.float32)
        for r in range(n):  # the anatomy at x - shift(z) shown at x: the canal moved by shift
            f = (o - shift[r] - dense_x[0]) / step
            k = int(np.floor(f))
            img[r] = (1 - (f - k)) * dense[k, r] + (f - k) * dense[k + 1, r]
        top = (cx + o, cy - 10.0 - (n - 1) / 2 * px, top_z)
        out.append((img, SliceGeometry(top, (0.0, 1.0, 0.0), (0.0, 0.0, -1.0), (px, px),
                                       (n, n))))
    return out, sagittal_centre(p)


def test_the_course_follows_the_canal_left_and_right():
    """A canal that moves 6 mm left-right over the neck's height, seen by a slab off its centre:
    the course's left-right position is measured at each height (core/cordpath.py took the
    middle of the slices that respond, the same at every height: 6 mm off at the ends)."""
    from tfesi_desktop.core.cordpath import cord_course

    p = draw_patient(6, 3, storage=Storage(), matrix=256)

    def drift(z):
        return float(np.clip((z - (-53.5)) * 0.1, -6.0, 6.0))

    slices, truth = _sagittal_slab(p, np.arange(-12.0, 17.0, 2.0), drift)
    course = cord_course(slices)
    assert course is not None
    along = (course.points[:, 2] > -100) & (course.points[:, 2] < -10)  # the neck's middle
    err = course.points[along, 0] - np.array([truth[0] + drift(z)
                                              for z in course.points[along, 2]])
    assert np.abs(err).max() < 1.5, err


def test_the_course_is_continued_a_little_beyond_its_ends(study):
    p, row, scan, stack = study
    guide = sagittal_guide(scan, stack)
    g = stack.slices[0].require_geometry()
    top = guide.points[0]
    n = np.asarray(g.normal, float) / np.linalg.norm(g.normal)

    def plane_at(z):
        return dataclasses.replace(g, position=tuple(np.asarray(g.position, float)
                                                    + (z - float(g.position[2])) * n))

    near = guide.at(plane_at(float(top[2]) + 6.0))
    assert near is not None and np.linalg.norm(np.subtract(near[:2], top[:2])) < 2.0
    assert guide.at(plane_at(float(top[2]) + 20.0)) is None


def _canal(centre, score):
    from tfesi_desktop.core.midline import Canal

    return Canal(0.0, 0.0, centre, (1.0, 0.0, 0.0), 0.0, score)


@pytest.mark.parametrize("guided,free,taken", [
    (0.60, 0.62, "guided"),  # alike: the course's
    (0.50, 0.70, "free"),  # a weaker match near the course does not beat the free search's
    (None, 0.70, "free"),
    (0.55, None, "guided"),
])
def test_the_guided_search_does_no_worse_than_the_free_one(monkeypatch, guided, free, taken):
    from tfesi_desktop.core import commands
    from tfesi_desktop.core.geometry import SliceGeometry

    g = SliceGeometry((0.0, 0.0, 0.0), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (1.0, 1.0), (64, 64))
    canals = {"guided": guided and _canal((1.0, 2.0, 0.0), guided),
              "free": free and _canal((9.0, 2.0, 0.0), free)}
    monkeypatch.setattr(commands, "find_canal", lambda values, geometry, expected_mm=None:
                        canals["guided" if expected_mm is not None else "free"])

    class Course:
        def at(self, geometry):
            return (0.0, 0.0, 0.0)

    assert commands.find_anatomy(np.zeros((64, 64)), g, guide=Course()) is canals[taken]
