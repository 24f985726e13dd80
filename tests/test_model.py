"""The network, its LiteRT export and NumPy Grad-CAM against TensorFlow's GradientTape."""

import json
import shutil

import numpy as np
import pytest

from tfesi_desktop.core.bundle import load_bundle
from tfesi_desktop.core.dicom.pixels import modality_values
from tfesi_desktop.core.errors import ModelError
from tfesi_desktop.core.gradcam import Head, gradcam, upsample
from tfesi_desktop.core.preprocess import PREPROCESSING_VERSION, model_input
from tfesi_desktop.core.runtime import Predictor, predict

pytest.importorskip("tensorflow")


def test_architecture_has_the_papers_parameter_counts():
    from tfesi_desktop.core.training.network import build_model

    _, info = build_model("original", init="random")
    assert info["parameters"] == 7_236_177
    assert info["trainable_parameters"] == 7_173_521
    assert info["non_trainable_parameters"] == 62_656
    _, info = build_model("from-scratch")
    assert not info["regularized"] and not info["imagenet_initialization"]


def _inputs():
    from tfesi_desktop.core.bench import demo_prediction_inputs

    ref, roi, side = demo_prediction_inputs()
    base = model_input(modality_values(ref), ref.require_geometry(), roi, side).image
    rng = np.random.default_rng(0)
    noisy = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.float32)
    return [base, noisy, base[::-1].copy()]


@pytest.mark.parametrize("variant", ["original", "no-regularization", "compact"])
def test_litert_and_numpy_gradcam_match_gradienttape(variant_bundles, variant):
    from tfesi_desktop.core.training.reference import gradcam_reference

    model, path = variant_bundles[variant]
    predictor = Predictor(path)
    for x in _inputs():
        for target in ("favourable", "poor"):
            features, logit = predictor.infer(x)
            cam = gradcam(features, predictor.head, target=target)
            p_ref, cam_ref = gradcam_reference(model, x, target=target)
            assert 1 / (1 + np.exp(-logit)) == pytest.approx(p_ref, abs=1e-4)
            np.testing.assert_allclose(cam, cam_ref, atol=1e-4)
            # the head in NumPy reproduces the runtime's logit from the pooled features
            assert predictor.head.logit(features.mean(axis=(0, 1))) == pytest.approx(logit,
                                                                                      abs=1e-4)


def test_bundle_card_and_export_check(variant_bundles):
    _, path = variant_bundles["original"]
    b = load_bundle(path)
    card = b.card
    assert card["preprocessing_version"] == PREPROCESSING_VERSION
    assert card["runtime"]["engine"].startswith("LiteRT")
    assert set(card["files"]) == {"model.tflite", "head.npz", "model.keras"}
    assert len(b.sha256) == 64


def test_tampered_or_mismatched_bundles_are_refused(variant_bundles, tmp_path):
    _, path = variant_bundles["original"]
    bad = tmp_path / "bad"
    shutil.copytree(path, bad)
    with open(bad / "head.npz", "r+b") as f:
        f.seek(200)
        f.write(b"\x01\x02\x03")
    with pytest.raises(ModelError, match="does not match the SHA-256"):
        load_bundle(bad)
    shutil.copy(path / "head.npz", bad / "head.npz")
    card = json.loads((bad / "card.json").read_text())
    card["preprocessing_version"] = 99
    (bad / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="preprocessing version 99"):
        load_bundle(bad)
    (bad / "card.json").unlink()
    with pytest.raises(ModelError, match="no card.json"):
        load_bundle(bad)


def test_keras_file_loads_in_safe_mode(variant_bundles):
    import keras

    _, path = variant_bundles["no-regularization"]
    m = keras.saving.load_model(path / "model.keras", safe_mode=True)
    assert m.count_params() == 7_232_081


def test_prediction_carries_provenance_and_maps_back_to_the_roi(variant_bundles):
    from tfesi_desktop.core.bench import demo_prediction_inputs

    _, path = variant_bundles["original"]
    ref, roi, side = demo_prediction_inputs()
    predictor = Predictor(path)
    pred = predict(predictor, modality_values(ref), ref.require_geometry(), roi, side,
                   sop_instance_uid=ref.sop_instance_uid)
    assert 0 < pred.probability < 1 and pred.label in ("favourable", "poor")
    assert pred.interval[0] <= pred.probability <= pred.interval[1]
    assert len(pred.crop_probabilities) == len(predictor.crops) == 13
    assert pred.cam_roi.shape == (roi[3], roi[2])
    assert pred.cam_input.shape == (100, 100)
    d = pred.as_dict()
    for k in ("model_name", "model_version", "model_sha256", "preprocessing_version", "roi",
              "interval", "in_distribution", "gradcam_class"):
        assert k in d
    assert d["sop_instance_uid"] == ref.sop_instance_uid and d["roi"] == list(roi)


def test_gradcam_without_positive_evidence_is_zero_not_nan():
    rng = np.random.default_rng(0)
    head = Head(rng.normal(size=(8, 6)), np.zeros(6), None, None, -np.abs(rng.normal(size=6)),
                0.0)
    feats = np.abs(rng.normal(size=(4, 4, 8)))
    # with ReLU units active and all output weights negative, the favourable map is empty
    head = Head(np.abs(head.w1), head.b1, None, None, head.w2, 0.0)
    cam = gradcam(feats, head, target="favourable")
    assert np.all(cam == 0) and not np.isnan(cam).any()
    poor = gradcam(feats, head, target="poor")
    assert poor.max() == pytest.approx(1.0)


def test_upsampling_follows_the_pixel_centre_convention():
    cam = np.zeros((4, 4))
    cam[0, 0] = 1.0
    up = upsample(cam, 100)
    # cell 0's centre is at input pixel 12 (= 0.5 * 25 - 0.5), cell 1's at 37
    assert up[12, 12] == pytest.approx(1.0)
    assert np.all(up[:13, :13] == pytest.approx(1.0))  # constant up to the first centre
    assert up[37, 12] == pytest.approx(0.0, abs=1e-12) and up[12, 37] == pytest.approx(0.0,
                                                                                      abs=1e-12)
    assert up[24, 12] == pytest.approx(0.5, abs=0.03)  # halfway between centres
    # a uniform map stays uniform
    assert np.allclose(upsample(np.full((4, 4), 0.3), 100), 0.3)
    # the same convention as scikit-image's resize (which the ROI mapping uses)
    from skimage.transform import resize

    rnd = np.random.default_rng(0).uniform(size=(4, 4))
    np.testing.assert_allclose(upsample(rnd, 100), resize(rnd, (100, 100), order=1,
                                                          mode="edge", anti_aliasing=False),
                               atol=1e-12)


def test_a_runtime_copy_without_the_keras_file_loads_but_other_files_are_required(
        variant_bundles, tmp_path):
    _, path = variant_bundles["original"]
    copy = tmp_path / "runtime"
    shutil.copytree(path, copy)
    (copy / "model.keras").unlink()
    Predictor(copy)  # the packaged application ships no Keras file
    (copy / "head.npz").unlink()
    with pytest.raises(ModelError, match="head.npz is missing"):
        load_bundle(copy)
