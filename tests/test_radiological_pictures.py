"""Every picture of an axial slice is radiological whatever the storage (docs/architecture.md,
invariant 1): the CLI's heat-map PNG and the secondary capture's picture of a study stored
mirrored and upside down equal those of the same patient stored radiologically."""

import numpy as np
import pytest
from PIL import Image

from tfesi_desktop.cli import main
from tfesi_desktop.core.geometry import Dihedral, SliceGeometry
from tfesi_desktop.core.render import radiological_letters
from tfesi_desktop.core.synth.cohort import Storage, draw_patient, write_study

FLIPPED = Dihedral(False, True, True)  # mirrored left-right and upside down


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    out = {}
    for name, d in (("plain", Dihedral()), ("flipped", FLIPPED)):
        p = draw_patient(4, 2, storage=Storage(dihedral=d), matrix=256)
        folder = tmp_path_factory.mktemp(name)
        out[name] = (folder, write_study(p, folder))
    return out


def _predict_png(folder, row, png, capsys):
    roi = f"{row['roi_x']},{row['roi_y']},{row['roi_w']},{row['roi_h']}"
    assert main(["predict", str(folder), "--slice", row["sop_instance_uid"], "--roi", roi,
                 "--side", row["side"], "--heatmap", str(png), "--json"]) == 0
    capsys.readouterr()
    return np.asarray(Image.open(png).convert("RGB")).astype(int)


def test_cli_heatmap_png_is_radiological_for_a_mirrored_upside_down_study(studies, tmp_path,
                                                                         capsys):
    plain = _predict_png(*studies["plain"], tmp_path / "plain.png", capsys)
    flipped = _predict_png(*studies["flipped"], tmp_path / "flipped.png", capsys)
    assert plain.shape == flipped.shape
    # the same picture (the slice, the heat map in the ROI, the letters), not its mirror
    assert np.abs(plain - flipped).mean() < 1.0
    as_stored = flipped[:, ::-1][::-1]  # what the old PNG showed, more or less
    assert np.abs(plain - as_stored).mean() > 10.0


def test_secondary_capture_picture_is_radiological(studies):
    from tfesi_desktop.core.bundle import default_bundle_path
    from tfesi_desktop.core.commands import open_study, predict_selection
    from tfesi_desktop.core.results_dicom import _orientation, heatmap_picture
    from tfesi_desktop.core.runtime import Predictor
    from tfesi_desktop.core.session import Selection

    predictor = Predictor(default_bundle_path(), quiet=True)
    pictures = []
    for name in ("plain", "flipped"):
        folder, row = studies[name]
        scan = open_study([folder]).scan
        stack = scan.find_stack(row["series_uid"])
        index = stack.find_slice(row["sop_instance_uid"])
        sel = Selection(stack.study_uid, stack.key, stack.slices[index].key,
                        (row["roi_x"], row["roi_y"], row["roi_w"], row["roi_h"]), row["side"])
        result = predict_selection(predictor, stack, sel)
        pictures.append(heatmap_picture(result, stack, index).astype(int))
        assert _orientation(stack.slices[index]) == ("L", "P")  # image right, image bottom
    assert np.abs(pictures[0] - pictures[1]).mean() < 1.0


@pytest.mark.parametrize("d", Dihedral.all(), ids=str)
def test_letters_of_the_radiological_picture_for_every_storage(d):
    r, c = d.directions((1, 0, 0), (0, 1, 0))  # a radiological slice stored as ``d`` would
    g = SliceGeometry((0, 0, 0), tuple(r), tuple(c), (1, 1), (8, 8))
    letters = radiological_letters(g)
    assert (letters["top"], letters["bottom"], letters["left"], letters["right"]) == (
        "A", "P", "R", "L")


@pytest.mark.parametrize("d", Dihedral.all(), ids=str)
def test_the_sagittal_is_shown_head_up_and_anterior_left_for_every_storage(d):
    """The real sagittal of scripts/real_mri.py is stored with rows running to the head: it was
    shown upside down (labelled correctly, F at the top)."""
    from tfesi_desktop.gui.viewer import display_letters, display_transform

    # a sagittal shown upright: columns to posterior (+y), rows to the feet (-z); stored as d
    r, c = np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, -1.0])
    r, c = _stored_as(d, r, c)
    g = SliceGeometry((0, 0, 0), tuple(r), tuple(c), (1, 1), (8, 8))
    letters = display_letters(g, display_transform(g))
    assert (letters["top"], letters["left"]) == ("H", "A"), letters


def _stored_as(d, r, c):
    """Direction cosines of an image that ``d`` turns into one with rows ``r``, columns ``c``:
    the inverse of Dihedral.directions."""
    for rr in (r, -r, c, -c):
        for cc in (r, -r, c, -c):
            dr, dc = d.directions(rr, cc)
            if np.allclose(dr, r) and np.allclose(dc, c):
                return rr, cc
    raise AssertionError(d)


def test_key_image_measurements_are_drawn_in_radiological_orientation():
    """The report's key image draws the measurements of its slice where they are on the
    radiological picture, whatever the storage (core/render.py radiological_overlay)."""
    from tfesi_desktop.core.render import MEASURE_COLOUR, radiological_overlay

    rows = cols = 64
    values = np.random.default_rng(0).uniform(0, 100, (rows, cols))
    plain = SliceGeometry((0, 0, 0), (1, 0, 0), (0, 1, 0), (1, 1), (rows, cols))
    stored = SliceGeometry((0, 0, 0), (-1, 0, 0), (0, -1, 0), (1, 1), (rows, cols))
    line = ((10.0, 20.0), (40.0, 20.0))  # x = column, y = row, on the plain storage
    pics = []
    for g, v, pts in ((plain, values, line),
                      (stored, FLIPPED.apply(values),
                       tuple((cols - x, rows - y) for x, y in line))):
        rgb, _, letters = radiological_overlay(v, g, (50, 100), (30, 30, 10, 10), None,
                                               measurements=[("1", pts)], scale=4)
        assert letters["left"].startswith("R") and letters["top"].startswith("A")
        pics.append(np.all(rgb == MEASURE_COLOUR, axis=-1))
    assert np.array_equal(pics[0], pics[1])  # the same place, not its mirror
    drawn = pics[0]
    ys, xs = np.nonzero(drawn[:, :45 * 4])  # the line (the label lies right of its end)
    assert abs(np.median(ys) - 20 * 4) <= 2 and xs.min() <= 10 * 4 and xs.max() >= 40 * 4 - 2
    assert not drawn[:, :30].any()  # nothing left of the line's start
