import numpy as np
import pytest

from tfesi_desktop.core.errors import GeometryError
from tfesi_desktop.core.geometry import Dihedral, SliceGeometry, direction_letters


def test_direction_letters_follow_lps():
    assert direction_letters((1, 0, 0)) == "L"
    assert direction_letters((-1, 0, 0)) == "R"
    assert direction_letters((0, 1, 0)) == "P"
    assert direction_letters((0, -1, 0)) == "A"
    assert direction_letters((0, 0, 1)) == "H"
    assert direction_letters((0, 0, -1)) == "F"
    assert direction_letters((0.8, -0.55, 0.1)) == "LA"


def test_edge_letters_of_a_standard_axial_image():
    g = SliceGeometry((0, 0, 0), (1, 0, 0), (0, 1, 0), (0.5, 0.5), (10, 10))
    assert g.edge_letters() == {"left": "R", "right": "L", "top": "A", "bottom": "P"}


def test_edge_letters_of_a_sagittal_image():
    g = SliceGeometry((0, 0, 0), (0, 1, 0), (0, 0, -1), (1, 1), (10, 10))
    assert g.edge_letters() == {"left": "A", "right": "P", "top": "H", "bottom": "F"}


@pytest.mark.parametrize("d", Dihedral.all())
def test_dihedral_inverse_and_rect_mapping(d):
    a = np.arange(6 * 9).reshape(6, 9)
    t = d.apply(a)
    assert np.array_equal(d.invert(t), a)
    rect = (2, 1, 4, 3)  # x, y, w, h
    cx, cy, cw, ch = d.rect_to_canonical(rect, a.shape)
    # the same pixels, whichever way round
    inside = a[1:4, 2:6]
    assert np.array_equal(np.sort(t[cy:cy + ch, cx:cx + cw].ravel()), np.sort(inside.ravel()))
    assert d.rect_from_canonical((cx, cy, cw, ch), t.shape) == rect


@pytest.mark.parametrize("d", Dihedral.all())
def test_canonical_transform_undoes_any_stored_orientation(d):
    # canonical directions are (+x, +y); find the stored directions that d maps onto them
    r, c = np.array([1.0, 0, 0]), np.array([0, 1.0, 0])
    # directions of the stored array: those whose transform gives the canonical ones
    for rs in (r, -r, c, -c):
        for cs in (r, -r, c, -c):
            if abs(rs @ cs) < 0.5:
                rr, cc = d.directions(rs, cs)
                if np.allclose(rr, r) and np.allclose(cc, c):
                    stored = SliceGeometry((0, 0, 0), tuple(rs), tuple(cs), (1, 1), (8, 8))
                    assert stored.canonical_transform() == d
                    return
    pytest.fail("no stored orientation found")


def test_patient_side_comes_from_geometry_not_display():
    normal = SliceGeometry((-50, -50, 0), (1, 0, 0), (0, 1, 0), (1, 1), (101, 101))
    mirrored = SliceGeometry((50, -50, 0), (-1, 0, 0), (0, 1, 0), (1, 1), (101, 101))
    # column 90 is on the image's right: patient left when rows run to +x, right when mirrored
    assert normal.patient_side(50, 90) == "left"
    assert mirrored.patient_side(50, 90) == "right"
    assert normal.patient_side(50, 10) == "right"


def test_sagittal_image_has_no_canonical_axial_transform():
    g = SliceGeometry((0, 0, 0), (0, 1, 0), (0, 0, -1), (1, 1), (10, 10))
    with pytest.raises(GeometryError, match="not an axial"):
        g.canonical_transform()
