"""The bundled demonstration model: honest card, and Grad-CAM sanity checks (Adebayo et al. 2018:
the map must depend on the weights; pointing game: its peak falls on the foramen more often than
chance on synthetic patients whose outcome depends on the foramen)."""

import numpy as np
import pytest
from scipy.stats import binomtest

from tfesi_desktop.core.bundle import default_bundle_path, load_bundle
from tfesi_desktop.core.evaluation import peak_hit
from tfesi_desktop.core.geometry import Dihedral, SliceGeometry
from tfesi_desktop.core.gradcam import Head, gradcam
from tfesi_desktop.core.manifest import Region
from tfesi_desktop.core.preprocess import jitter_roi, model_input
from tfesi_desktop.core.runtime import Predictor, predict
from tfesi_desktop.core.synth.cohort import draw_patient, render_axial

# the target (issue 10); the shipped model reached 91 % as placed and 81 % shifted on 400
# fresh patients (`tfesi evaluate`, README), and 40 patients here must still reach the target
POINTING_TARGET = 0.6


@pytest.fixture(scope="module")
def demo():
    return Predictor(default_bundle_path())


def test_demo_card_is_honest():
    b = load_bundle(default_bundle_path())
    assert b.synthetic and "not for clinical use" in b.disclaimer().lower()
    assert "NOT FOR CLINICAL USE" in b.card["intended_use"]
    v = b.card["metrics"]["validation"]
    assert 0.5 < v["auc"] < 1 and v["auc_ci95"][0] < v["auc"] < v["auc_ci95"][1]
    assert v["n"] >= 300 and 0.5 < v["best_achievable_auc"] <= 1
    # what the window shows: the evaluation on fresh patients, not the split it was calibrated on
    assert "synthetic patients used neither in training nor in calibration" in \
        b.validated_performance()
    assert b.card["architecture"]["parameters"] == 312_113
    assert b.card["architecture"]["base"] == "compact CNN"
    # the card says what it is: not the paper's network, trained against the generator's
    # probability, on generator version 2
    assert any("not the paper's EfficientNetV2B0" in x for x in b.card["limitations"])
    assert "generator version 2" in b.card["training"]["data"]
    assert b.card["architecture"]["imagenet_initialization"] is False
    # calibrated, with its ROI set and the distribution of its training features on the card
    assert b.card["calibration"]["method"] == "Platt scaling"
    assert len(b.card["tta"]["crops"]) == 13 and b.card["ood"]["threshold"] > 0
    assert {"slope", "ece"} <= set(v["calibration"])


def _held_out_inputs(n, seed=99):
    """Synthetic patients the demo model never saw (another seed) of the phantom it was trained
    on (generator version 2), their narrowest slice in canonical orientation."""
    for i in range(n):
        p = draw_patient(seed, i)
        img = render_axial(p, only=p.narrowest_index)[p.narrowest_index]
        yield p, img, SliceGeometry((0, 0, 0), (1, 0, 0), (0, 1, 0), (p.pixel_mm,) * 2,
                                    img.shape)


def _pointing_game(demo, shifted: bool):
    """(hit rate, chance rate, binomial p): the averaged Grad-CAM's peak within 6 mm of the
    injected foramen's waist, with the ROI as placed or shifted by a quarter of its size."""
    hits, chance = [], []
    for i, (p, img, g) in enumerate(_held_out_inputs(40)):
        region = Region(img, Dihedral(), p.roi_canonical, p.side, (0, 0), (p.pixel_mm,) * 2)
        roi = p.roi_canonical
        if shifted:
            sx, sy = (1 if i % 2 else -1), (1 if (i // 2) % 2 else -1)
            roi = jitter_roi(roi, (sx / 4, sy / 4, 1.0), img.shape)
        hit, base = peak_hit(predict(demo, img, g, roi, p.side).cam_roi, roi, region,
                             p.waist_canonical)
        hits.append(hit)
        chance.append(base)
    rate, base = float(np.mean(hits)), float(np.mean(chance))
    p = binomtest(int(sum(hits)), len(hits), base, alternative="greater").pvalue
    print(f"pointing game ({'shifted' if shifted else 'placed'}): {rate:.2f} hits, "
          f"chance {base:.2f}, p {p:.2g}")
    return rate, base, p


@pytest.mark.parametrize("shifted", [False, True], ids=["as-placed", "shifted-a-quarter"])
def test_heat_map_points_at_the_lesion(demo, shifted):
    """The map follows the foramen, not the ROI: with the ROI shifted by a quarter of its size
    the peak still falls within 6 mm of the waist."""
    rate, _, p = _pointing_game(demo, shifted=shifted)
    assert rate >= POINTING_TARGET and p < 1e-6


def test_fresh_patients_are_ranked_by_their_findings(demo):
    """On patients it never saw, the shown probability follows the generator's own probability
    (which depends only on the foramen's width, root compression and narrowing length), and
    moving the ROI by 3 px changes it little (issue 10: SD <= 0.05)."""
    shown, truth, moved = [], [], []
    for p, img, g in _held_out_inputs(40, seed=96):
        r = predict(demo, img, g, p.roi_canonical, p.side)
        assert r.in_distribution is not False
        shown.append(r.probability)
        truth.append(p.p_favourable)
        x, y, w, h = p.roi_canonical
        moved.append(predict(demo, img, g, (x + 3, y - 3, w, h), p.side).probability)
    assert np.corrcoef(shown, truth)[0, 1] >= 0.7
    assert np.median(np.abs(np.subtract(moved, shown))) <= 0.05


def test_map_changes_when_weights_are_randomised(demo, variant_bundles):
    rng = np.random.default_rng(0)
    h = demo.head
    random_head = Head(rng.permutation(h.w1.ravel()).reshape(h.w1.shape), h.b1, h.bn_scale,
                       h.bn_shift, rng.permutation(h.w2), h.b2)
    random_net = Predictor(variant_bundles["compact"][1])  # untrained, same architecture
    same, head_corr, net_corr = [], [], []
    for p, img, g in _held_out_inputs(8):
        mi = model_input(img, g, p.roi_canonical, p.side)
        feats, _ = demo.infer(mi.image)
        cam = gradcam(feats, h)
        same.append(np.corrcoef(cam.ravel(), gradcam(feats, h).ravel())[0, 1])
        other = gradcam(feats, random_head)
        head_corr.append(np.corrcoef(cam.ravel(), other.ravel())[0, 1] if other.any() else 0)
        f2, _ = random_net.infer(mi.image)
        o2 = gradcam(f2, random_net.head)
        net_corr.append(np.corrcoef(cam.ravel(), o2.ravel())[0, 1] if o2.any() else 0)
    assert np.mean(same) == pytest.approx(1.0)
    assert np.nanmean(head_corr) < 0.5 and np.nanmean(net_corr) < 0.5


def test_inputs_unlike_the_training_images_are_flagged(demo):
    """Invariant 8: a non-spine MR image, noise, and a synthetic patient rendered with another
    contrast are flagged (no false confidence); a uniform region is refused; fresh synthetic
    patients of the training distribution are rarely flagged."""
    import pydicom
    from pydicom.data import get_testdata_file

    from tfesi_desktop.core.errors import RoiError

    assert demo.ood is not None
    mr = pydicom.dcmread(get_testdata_file("MR_small.dcm")).pixel_array.astype(np.float32)
    g64 = SliceGeometry((0, 0, 0), (1, 0, 0), (0, 1, 0), (1, 1), mr.shape)
    for roi in ((8, 8, 32, 32), (16, 16, 32, 32), (20, 16, 40, 40)):  # corner and anatomy
        assert predict(demo, mr, g64, roi, "right").in_distribution is False
    noise = np.random.default_rng(0).uniform(0, 1000, (256, 256)).astype(np.float32)
    g = SliceGeometry((0, 0, 0), (1, 0, 0), (0, 1, 0), (0.6, 0.6), noise.shape)
    assert predict(demo, noise, g, (100, 100, 50, 50), "left").in_distribution is False
    with pytest.raises(RoiError, match="no contrast"):
        predict(demo, np.full((256, 256), 500, np.float32), g, (100, 100, 50, 50), "left")
    t1 = []  # another contrast
    for i in range(10):
        p = draw_patient(98, i, matrix=256, contrast="T1")
        img = render_axial(p, only=p.narrowest_index)[p.narrowest_index]
        gp = SliceGeometry((0, 0, 0), (1, 0, 0), (0, 1, 0), (p.pixel_mm,) * 2, img.shape)
        t1.append(predict(demo, img, gp, p.roi_canonical, p.side).in_distribution)
    assert sum(v is False for v in t1) >= 9, t1
    fresh = [predict(demo, img, g, p.roi_canonical, p.side).in_distribution
             for p, img, g in _held_out_inputs(40)]
    assert sum(v is False for v in fresh) <= 2, fresh  # at most 5 %


def test_a_slice_one_off_the_narrowest_gets_the_narrowest_slices_answer(demo):
    """Issue 22: from the chosen slice alone, a neighbour of the narrowest slice looks wider and
    more favourable; with the card's slice rule the prediction from a neighbour rests on the
    narrowest slice, so its answer barely moves. Fresh patients (another seed), the neighbours
    rendered by the phantom and carried as a stack would be (same pixels)."""
    from tfesi_desktop.core.runtime import predict_region

    assert demo.slice_rule == "narrowest" and demo.slice_offsets == (-1, 0, 1)
    moved_alone, moved_rule, rests = [], [], 0
    for i in range(6):
        p = draw_patient(95, i, matrix=256)
        n = p.narrowest_index
        imgs = {o: render_axial(p, only=n + o)[n + o] for o in (-2, -1, 0, 1, 2)}
        region = Region(imgs[0], Dihedral(), p.roi_canonical, p.side, (0, 0), (p.pixel_mm,) * 2,
                        tuple((o, imgs[o], p.roi_canonical) for o in (-2, -1, 1, 2)))
        exact = predict_region(demo, region)
        for o in (-1, 1):
            off = predict_region(demo, region, at=o)
            rests += off.neighbourhood.based_on == 0
            moved_rule.append(off.probability - exact.probability)
            alone = predict(demo, imgs[o], Dihedral(), p.roi_canonical, p.side)
            moved_alone.append(alone.probability - exact.probability)
    assert np.median(moved_alone) > 0.1  # the problem: a neighbour alone looks favourable
    # the rule: mostly the narrowest slice's answer (the exact slice itself may rest on a
    # neighbour the model scores lower; 300 patients: 3.7 % flips, README)
    assert np.median(np.abs(moved_rule)) < min(0.05, np.median(np.abs(moved_alone)) / 3)
    assert rests >= 6


def test_the_card_records_the_stability_across_the_slice_choice():
    """The shipped card's evaluation on fresh patients meets the issue's targets: one slice off,
    <= 5 % of labels flip and the AUC stays within 0.02 of the exact slice's."""
    ev = load_bundle(default_bundle_path()).card["metrics"]["evaluations"][-1]
    sl = ev["stable_prediction"]["slice_choice"]
    assert ev["independent"] and ev["n"] >= 300
    assert sl["neighbourhood"]["label_flips"] <= 0.05
    assert sl["neighbourhood"]["auc_exact"] - sl["neighbourhood"]["auc_one_off_pooled"] <= 0.02
    assert sl["single_slice"]["label_flips"] > 0.2  # what the rule fixed, measured beside it
    assert ev["calibration"]["ece_floor_median"] > 0
    assert ev["best_auc_gap"]["test"] == "paired DeLong"
    assert "centre_map_rate" in ev["pointing_game"]["as_placed"]
