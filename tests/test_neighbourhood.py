"""The prediction over the slices around the chosen one (issue 22): the ROI carried by geometry,
the rule that rests the result on the narrowest-looking slice, what the strip and the CLI say."""

import json
import shutil

import numpy as np
import pytest

from tfesi_desktop.core.geometry import SliceGeometry
from tfesi_desktop.core.neighbourhood import (
    Neighbourhood,
    based_on,
    carry_roi,
    neighbour_indices,
)


def _geometry(z=0.0, *, x0=0.0, spacing=(0.5, 0.5), row=(1, 0, 0), col=(0, 1, 0)):
    return SliceGeometry((x0, 0.0, z), row, col, spacing, (200, 200))


def test_carried_roi_is_the_same_rectangle_on_a_parallel_slice():
    assert carry_roi((40, 50, 30, 20), _geometry(0), _geometry(3.3)) == (40, 50, 30, 20)


def test_carried_roi_follows_the_patient_not_the_pixels():
    # the neighbour's grid starts 5 mm further right (patient x): 10 pixels at 0.5 mm
    assert carry_roi((40, 50, 30, 20), _geometry(0), _geometry(3, x0=5.0)) == (30, 50, 30, 20)
    # finer pixels: the same millimetres are twice as many pixels, centred on the same point
    x, y, w, h = carry_roi((40, 50, 30, 20), _geometry(0), _geometry(3, spacing=(0.25, 0.25)))
    assert (w, h) == (59, 39) and abs((x + (w - 1) / 2) - 2 * (40 + 14.5)) <= 1
    # stored transposed: rows and columns swap
    assert carry_roi((40, 50, 30, 20), _geometry(0),
                     _geometry(3, row=(0, 1, 0), col=(1, 0, 0))) == (50, 40, 20, 30)
    # never outside the image
    x, y, w, h = carry_roi((180, 50, 30, 20), _geometry(0), _geometry(3, x0=-10.0))
    assert x + w <= 200


def test_neighbours_at_the_ends_of_the_stack():
    assert neighbour_indices(10, 5) == [4, 5, 6]
    assert neighbour_indices(10, 0) == [0, 1] and neighbour_indices(10, 9) == [8, 9]


def test_the_rule_rests_on_the_lowest_score_or_stays_on_the_chosen_slice():
    assert based_on(5, [4, 5, 6], [0.3, 1.0, -0.2], "narrowest") == 6
    assert based_on(5, [4, 5, 6], [0.3, -0.2, -0.2], "narrowest") == 5  # a tie: the chosen
    assert based_on(5, [4, 5, 6], [0.3, 1.0, -0.2], "chosen") == 5
    with pytest.raises(ValueError):
        based_on(5, [4, 5, 6], [0, 0, 0], "mean")


def test_what_the_strip_says():
    calm = Neighbourhood((4, 5, 6), (0.8, 0.3, 0.7), 5, 5, "narrowest", 0.5)
    assert calm.narrowest == 5 and calm.proposed is None
    assert calm.disagree and "disagree" in calm.message()  # 0.8 and 0.3: both labels
    moved = Neighbourhood((4, 5, 6), (0.8, 0.6, 0.3), 5, 6, "narrowest", 0.5)
    assert moved.proposed == 6
    assert "rests on slice 7" in moved.message() and "confirm" in moved.message()
    d = moved.as_dict()
    assert d["slices"] == [5, 6, 7] and d["based_on_slice"] == 7 and d["proposed_slice"] == 7
    quiet = Neighbourhood((4, 5, 6), (0.8, 0.7, 0.9), 5, 5, "chosen", 0.5)
    assert quiet.message() is None and not quiet.disagree


def _demo_copy(tmp_path_factory, slices):
    """The demo bundle with this slice neighbourhood on its card (None: none, as cards made
    before issue 22); a copy, not the shipped bundle, whose digest is pinned."""
    from tfesi_desktop.core.bundle import default_bundle_path

    out = tmp_path_factory.mktemp("nb") / "demo"
    shutil.copytree(default_bundle_path(), out)
    card = json.loads((out / "card.json").read_text())
    card["tta"].pop("slices", None)
    if slices is not None:
        card["tta"]["slices"] = slices
    (out / "card.json").write_text(json.dumps(card))
    return out


@pytest.fixture(scope="module")
def narrowest_bundle(tmp_path_factory):
    return _demo_copy(tmp_path_factory, {"offsets": [-1, 0, 1], "rule": "narrowest"})


def _demo_selection():
    from tfesi_desktop.core.commands import open_study
    from tfesi_desktop.core.manifest import read_manifest
    from tfesi_desktop.core.paths import demo_manifest
    from tfesi_desktop.core.session import Selection

    (case,) = read_manifest(demo_manifest())
    scan = open_study(case.study_path).scan
    stack = scan.find_stack(case.series_uid)
    index = stack.find_slice(case.slice_key)
    return stack, index, case, lambda i: Selection(
        stack.study_uid, stack.key, stack.slices[i].key, case.roi, case.side, case.level)


def test_a_neighbour_of_the_narrowest_slice_gets_the_narrowest_slices_answer(narrowest_bundle):
    """The demo patient's narrowest slice gives one answer, its neighbours a more optimistic
    one from that slice alone; with the rule 'narrowest' the prediction from a neighbour rests
    on the narrowest slice, in the same call, and proposes it."""
    from tfesi_desktop.core.commands import predict_selection
    from tfesi_desktop.core.runtime import Predictor

    stack, n, case, sel = _demo_selection()
    chosen_only = Predictor(narrowest_bundle)
    exact = predict_selection(chosen_only, stack, sel(n)).prediction
    assert exact.neighbourhood.based_on == n and exact.neighbourhood.proposed is None
    assert exact.provenance.based_on_slice_index is None
    strip = dict(zip(exact.neighbourhood.slice_indices, exact.neighbourhood.probabilities,
                     strict=True))
    assert strip[n] < strip[n - 1] and strip[n] < strip[n + 1]  # narrowest: the lowest
    above = predict_selection(chosen_only, stack, sel(n + 1)).prediction
    nb = above.neighbourhood
    assert nb.chosen == n + 1 and nb.based_on == n and nb.proposed == n
    assert above.provenance.slice_index == n + 1 and above.provenance.based_on_slice_index == n
    assert above.probability == pytest.approx(nb.probabilities[nb.slice_indices.index(n)])
    # the CLI's JSON carries the strip
    d = above.as_dict()
    assert d["neighbourhood"]["based_on_slice"] == n + 1  # 1-based
    assert d["neighbourhood"]["proposed_slice"] == n + 1
    assert d["based_on_slice_index"] == n


def test_a_card_without_the_rule_stays_on_the_chosen_slice_and_warns(tmp_path_factory):
    from tfesi_desktop.core.commands import predict_selection
    from tfesi_desktop.core.dicom import modality_values
    from tfesi_desktop.core.runtime import Predictor, predict

    stack, n, case, sel = _demo_selection()
    p = Predictor(_demo_copy(tmp_path_factory, None))
    assert p.slice_rule == "chosen"
    out = predict_selection(p, stack, sel(n + 1))
    nb = out.prediction.neighbourhood
    assert nb.based_on == n + 1
    ref = stack.slices[n + 1]
    alone = predict(p, modality_values(ref), ref.require_geometry(), case.roi, case.side)
    assert out.prediction.probability == pytest.approx(alone.probability, abs=1e-9)
    assert nb.proposed == n and nb.message() is not None
    assert len(nb.slice_indices) == 3


def test_a_bad_slice_rule_on_a_card_is_refused(narrowest_bundle, tmp_path):
    from tfesi_desktop.core.errors import ModelError
    from tfesi_desktop.core.runtime import Predictor

    bad = tmp_path / "bad"
    shutil.copytree(narrowest_bundle, bad)
    card = json.loads((bad / "card.json").read_text())
    card["tta"]["slices"] = {"offsets": [-1, 1], "rule": "narrowest"}
    (bad / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="neighbourhood"):
        Predictor(bad)


def test_region_neighbourhood_equals_the_stack_neighbourhood(narrowest_bundle):
    """Evaluation and training (regions) predict as the window does (stacks)."""
    from tfesi_desktop.core.commands import predict_selection
    from tfesi_desktop.core.manifest import case_region
    from tfesi_desktop.core.runtime import Predictor, predict_region

    stack, n, case, sel = _demo_selection()
    p = Predictor(narrowest_bundle)
    region = case_region(case, around=2)
    assert region.offsets == (-2, -1, 0, 1, 2)
    for at in (-1, 0, 1):
        a = predict_region(p, region, at=at)
        b = predict_selection(p, stack, sel(n + at)).prediction
        assert a.probability == pytest.approx(b.probability, abs=1e-6)
        assert a.neighbourhood.based_on + n == b.neighbourhood.based_on
    assert np.allclose(region.at(1).values.shape, region.values.shape)


def test_regions_keep_their_neighbours_through_the_cache(cohort, tmp_path):
    from tfesi_desktop.core.manifest import load_regions

    manifest = tmp_path / "manifest.csv"
    shutil.copy(cohort[0] / "manifest.csv", manifest)
    (tmp_path / "P00000").symlink_to(cohort[0] / "P00000")
    (tmp_path / "P00001").symlink_to(cohort[0] / "P00001")
    manifest.write_text("".join(manifest.read_text().splitlines(True)[:3]))
    fresh, _, _ = load_regions(manifest, around=1)
    cached, _, _ = load_regions(manifest, around=1)
    assert list(tmp_path.glob(".manifest.regions-*around1*.npz"))
    for a, b in zip(fresh, cached, strict=True):
        assert a.offsets == b.offsets == (-1, 0, 1)
        for o in a.offsets:
            assert np.array_equal(a.at(o).values, b.at(o).values) and a.at(o).roi == b.at(o).roi
        assert not np.array_equal(a.at(1).values, a.values)  # another slice, same window
        assert a.at(1).values.shape == a.values.shape
    assert load_regions(manifest)[0][0].offsets == (0,)  # without neighbours: its own cache
