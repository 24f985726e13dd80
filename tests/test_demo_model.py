"""The bundled demonstration model: honest card, and Grad-CAM sanity checks (Adebayo et al. 2018:
the map must depend on the weights; pointing game: its peak falls on the foramen more often than
chance on synthetic patients whose outcome depends on the foramen)."""

import numpy as np
import pytest
from scipy.stats import binomtest

from tfesi_desktop.core.bundle import default_bundle_path, load_bundle
from tfesi_desktop.core.geometry import SliceGeometry
from tfesi_desktop.core.gradcam import Head, gradcam
from tfesi_desktop.core.preprocess import model_input
from tfesi_desktop.core.runtime import Predictor, predict
from tfesi_desktop.core.synth.cohort import draw_patient, render_axial
from tfesi_desktop.core.synth.phantom import foramen_waist


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


def _held_out_inputs(n):
    """Synthetic patients the demo model never saw (another seed), in canonical orientation."""
    g = SliceGeometry((0, 0, 0), (1, 0, 0), (0, 1, 0), (1, 1), (256, 256))
    for i in range(n):
        p = draw_patient(99, i, matrix=256)
        img = render_axial(p, only=p.narrowest_index)[p.narrowest_index]
        yield p, img, g


def test_pointing_game_beats_chance(demo):
    hits, chance = [], []
    yy, xx = np.mgrid[:100, :100]
    for p, img, g in _held_out_inputs(40):
        cam = predict(demo, img, g, p.roi_canonical, p.side).cam_input
        u, v = foramen_waist(p.anatomy, p.side)
        half = (p.matrix - 1) / 2
        x0, y0, w, h = p.roi_canonical
        c, r = u / p.pixel_mm + half - x0, v / p.pixel_mm + half - y0
        if p.side == "left":
            c = w - 1 - c  # the input of a left foramen is mirrored
        c100, r100 = (c + 0.5) * 100 / w - 0.5, (r + 0.5) * 100 / h - 0.5
        rc, rr = 6 / p.pixel_mm * 100 / w, 6 / p.pixel_mm * 100 / h  # 6 mm around the waist
        inside = ((yy - r100) / rr) ** 2 + ((xx - c100) / rc) ** 2 <= 1
        peak = np.unravel_index(np.argmax(cam), cam.shape)
        hits.append(bool(inside[peak]))
        chance.append(inside.mean())
    rate, base = np.mean(hits), np.mean(chance)
    print(f"pointing game: {rate:.2f} hits, chance {base:.2f}")
    assert binomtest(int(sum(hits)), len(hits), base, alternative="greater").pvalue < 0.01


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
