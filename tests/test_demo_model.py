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
from tfesi_desktop.core.synth.v1.cohort import draw_patient as draw_patient_v1
from tfesi_desktop.core.synth.v1.cohort import render_axial as render_axial_v1
from tfesi_desktop.core.synth.v1.phantom import foramen_waist as foramen_waist_v1

# measured on the shipped demo model (closing note of issue 10); a drop below means the heat map
# stopped pointing at the lesion
POINTING_FLOOR = 0.3  # measured 0.38 (chance 0.12); the target is 0.6


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
    assert "synthetic" in b.validated_performance()
    assert b.card["architecture"]["parameters"] == 7_236_177
    assert b.card["architecture"]["imagenet_initialization"] is False
    # calibrated, with its ROI set and the distribution of its training features on the card
    assert b.card["calibration"]["method"] == "Platt scaling"
    assert len(b.card["tta"]["crops"]) == 13 and b.card["ood"]["threshold"] > 0
    assert {"slope", "ece"} <= set(v["calibration"])


def _held_out_inputs(n):
    """Synthetic patients the demo model never saw (another seed) of the phantom it was trained
    on (generator version 1, README), in canonical orientation."""
    for i in range(n):
        p = draw_patient_v1(99, i, matrix=256)
        img = render_axial_v1(p, only=p.narrowest_index)[p.narrowest_index]
        yield p, img, SliceGeometry((0, 0, 0), (1, 0, 0), (0, 1, 0), (p.pixel_mm,) * 2,
                                    img.shape)


def _waist_pixel(p):
    u, v = foramen_waist_v1(p.anatomy, p.side)
    half = (p.matrix - 1) / 2
    return u / p.pixel_mm + half, v / p.pixel_mm + half


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
                             _waist_pixel(p))
        hits.append(hit)
        chance.append(base)
    rate, base = float(np.mean(hits)), float(np.mean(chance))
    p = binomtest(int(sum(hits)), len(hits), base, alternative="greater").pvalue
    print(f"pointing game ({'shifted' if shifted else 'placed'}): {rate:.2f} hits, "
          f"chance {base:.2f}, p {p:.2g}")
    return rate, base, p


def test_pointing_game_with_the_roi_as_placed_beats_chance(demo):
    rate, _, p = _pointing_game(demo, shifted=False)
    assert rate >= POINTING_FLOOR and p < 0.01


@pytest.mark.xfail(strict=True, reason="the shipped network learned the version-1 phantom's "
                   "shortcut (dark at the ROI's centre): its map follows the ROI, not the lesion "
                   "(issue 10: retrain the demo model for the version-2 phantom on a GPU)")
def test_pointing_game_with_the_roi_shifted_by_a_quarter_reaches_the_target(demo):
    rate, _, p = _pointing_game(demo, shifted=True)
    assert rate >= 0.6 and p < 0.01


def test_map_changes_when_weights_are_randomised(demo, test_bundle):
    rng = np.random.default_rng(0)
    h = demo.head
    random_head = Head(rng.permutation(h.w1.ravel()).reshape(h.w1.shape), h.b1, h.bn_scale,
                       h.bn_shift, rng.permutation(h.w2), h.b2)
    random_net = Predictor(test_bundle)  # an untrained network of the same architecture
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
    t1 = []  # another contrast (of the newer phantom)
    for i in range(10):
        p = draw_patient(98, i, matrix=256, contrast="T1")
        img = render_axial(p, only=p.narrowest_index)[p.narrowest_index]
        gp = SliceGeometry((0, 0, 0), (1, 0, 0), (0, 1, 0), (p.pixel_mm,) * 2, img.shape)
        t1.append(predict(demo, img, gp, p.roi_canonical, p.side).in_distribution)
    assert sum(v is False for v in t1) >= 9, t1
    fresh = [predict(demo, img, g, p.roi_canonical, p.side).in_distribution
             for p, img, g in _held_out_inputs(40)]
    assert sum(v is False for v in fresh) <= 2, fresh  # at most 5 %
    other = []  # the newer phantom (generator version 2) in its usual T2 contrast
    for i in range(10):
        p = draw_patient(97, i, matrix=256)
        img = render_axial(p, only=p.narrowest_index)[p.narrowest_index]
        gp = SliceGeometry((0, 0, 0), (1, 0, 0), (0, 1, 0), (p.pixel_mm,) * 2, img.shape)
        other.append(predict(demo, img, gp, p.roi_canonical, p.side).in_distribution)
    assert sum(v is False for v in other) >= 9, other  # not the phantom it was trained on
