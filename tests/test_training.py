"""`tfesi train` end to end on a tiny cohort (a few steps of the real network), and the
MirroredStrategy path on two logical CPU devices."""

import json
import subprocess
import sys

import pytest

from tfesi_desktop.cli import main
from tfesi_desktop.core.bundle import load_bundle
from tfesi_desktop.core.runtime import Predictor

pytest.importorskip("tensorflow")


def test_train_writes_a_verified_bundle_with_held_out_metrics(cohort, tmp_path, capsys):
    out_dir, _ = cohort
    bundle = tmp_path / "bundle"
    rc = main(["train", str(out_dir / "manifest.csv"), "--out", str(bundle), "--epochs", "1",
               "--batch-size", "2", "--validation-fraction", "0.34", "--seed", "3",
               "--variant", "no-regularization", "--name", "tiny", "--init", "random",
               "--json"])
    assert rc == 0
    printed = json.loads(capsys.readouterr().out)
    b = load_bundle(bundle)
    v = b.card["metrics"]["validation"]
    assert v == printed["validation"] and v["n"] >= 2
    assert b.card["training"]["epochs"] == 1 and b.card["training"]["batch_size"] == 2
    assert b.card["synthetic_training_data"] is True  # cohort.json lies beside the manifest
    assert b.card["architecture"]["variant"] == "no-regularization"
    assert "best_achievable_auc" in v
    # trained for hand-drawn ROIs, calibrated, with the ROI set and the feature distribution
    t = b.card["training"]
    assert t["initialization"] == "random" and t["augmentation"]["shift"] == 0.15
    assert b.card["calibration"]["method"] == "Platt scaling"
    assert b.card["calibration"]["temperature"] > 0
    assert len(b.card["tta"]["crops"]) == 13 and "ood.npz" in b.card["files"]
    assert {"slope", "ece", "brier"} <= set(v["calibration"])
    p = Predictor(bundle)  # loads on the runtime
    assert p.ood is not None and p.ood.threshold == pytest.approx(b.card["ood"]["threshold"])
    assert p.calibration.temperature == b.card["calibration"]["temperature"]
    # the compact network: its own recipe (Adam at 1e-3, batch 32) for what is not given
    compact = tmp_path / "compact"
    assert main(["train", str(out_dir / "manifest.csv"), "--out", str(compact), "--epochs", "1",
                 "--validation-fraction", "0.34", "--seed", "3", "--variant", "compact"]) == 0
    t = load_bundle(compact).card["training"]
    assert t["optimizer"] == "Adam with cosine decay to 0" and t["learning_rate"] == 1e-3
    assert t["batch_size"] == 32 and t["epochs"] == 1 and t["initialization"] == "random"
    # refuses to overwrite without --force, and a missing manifest is a clear error
    assert main(["train", str(out_dir / "manifest.csv"), "--out", str(bundle)]) == 2
    assert main(["train", str(tmp_path / "none.csv"), "--out", str(tmp_path / "b2")]) == 2


MIRRORED = """
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import numpy as np
from tfesi_desktop.core.geometry import Dihedral
from tfesi_desktop.core.manifest import Region
from tfesi_desktop.core.training.train import TrainConfig, fit_and_evaluate, _strategy
devices = [d.name for d in tf.config.list_logical_devices("CPU")]
assert len(devices) == 2, devices
s = _strategy(devices)
assert isinstance(s, tf.distribute.MirroredStrategy) and s.num_replicas_in_sync == 2
rng = np.random.default_rng(0)
x = [Region(rng.uniform(0, 255, (60, 60)).astype("float32"), Dihedral(), (10, 10, 40, 40),
            "right") for _ in range(12)]
y = np.array([0, 1] * 6)
# explicit indices, as cross-validation folds pass them
tr, va = np.array([0, 1, 2, 3, 4, 5, 6, 7]), np.array([8, 9, 10, 11])
model, record = fit_and_evaluate(x, y, TrainConfig(variant="from-scratch", epochs=1,
                                 batch_size=4, devices=devices), train_idx=tr, val_idx=va)
assert record["validation_indices"] == [8, 9, 10, 11]
assert len(record["validation_probabilities"]) == 4
print("replicas", s.num_replicas_in_sync, "ok", record["metrics"]["validation_keras"]["n"])
"""


def test_mirrored_strategy_on_two_logical_cpus():
    r = subprocess.run([sys.executable, "-c", MIRRORED], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "replicas 2 ok" in r.stdout


def test_a_split_that_cannot_be_stratified_is_a_clear_error():
    import numpy as np

    from tfesi_desktop.core.errors import TfesiError
    from tfesi_desktop.core.training.train import split

    with pytest.raises(TfesiError, match="1 favourable and 5 poor"):
        split(np.array([0, 0, 0, 1, 0, 0]), 0.2, 0)
    tr, va = split(np.array([0, 1] * 10), 0.2, 0)
    assert len(va) == 4 and set(tr).isdisjoint(va)


def _base_weights_file(folder, seed):
    """A weights file in the layout of Keras's ImageNet file (legacy HDF5, layer names of
    EfficientNetV2B0 without its top), made from a freshly built, seeded network."""
    import h5py
    import keras
    from keras.src.legacy.saving.legacy_h5_format import save_weights_to_hdf5_group

    keras.utils.set_random_seed(seed)
    base = keras.applications.EfficientNetV2B0(include_top=False, weights=None,
                                               input_shape=(100, 100, 3))
    folder.mkdir(parents=True, exist_ok=True)
    with h5py.File(folder / "efficientnetv2-b0_notop.h5", "w") as f:
        save_weights_to_hdf5_group(f, base)
    return base


def test_imagenet_initialisation_comes_from_keras_cache(tmp_path, monkeypatch):
    import numpy as np

    from tfesi_desktop.core.training.network import build_model

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    base = _base_weights_file(tmp_path / "keras" / "models", seed=7)
    model, info = build_model("original", seed=1)  # another seed: weights must be the file's
    assert info["imagenet_initialization"] is True
    for name in ("stem_conv", "block1a_project_conv", "top_conv"):
        np.testing.assert_array_equal(model.get_layer(name).get_weights()[0],
                                      base.get_layer(name).get_weights()[0])
    random_model, info = build_model("original", init="random", seed=1)
    assert info["imagenet_initialization"] is False
    assert not np.array_equal(random_model.get_layer("stem_conv").get_weights()[0],
                              base.get_layer("stem_conv").get_weights()[0])


def test_offline_without_cached_weights_is_one_clear_error(cohort, tmp_path, monkeypatch,
                                                           capsys):
    import urllib.error

    import keras

    def offline(*a, **k):
        raise urllib.error.URLError("no network")

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty-keras"))
    monkeypatch.setattr(keras.utils, "get_file", offline)
    out_dir, _ = cohort
    rc = main(["train", str(out_dir / "manifest.csv"), "--out", str(tmp_path / "b")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("error: ")
    for words in ("efficientnetv2-b0_notop.h5", str(tmp_path / "empty-keras" / "models"),
                  "--imagenet-weights", "--init random"):
        assert words in err[0]
    assert not (tmp_path / "b").exists()


def test_compact_network_learns_from_random_weights_with_adam():
    """The CPU recipe (README: compact network, Adam with cosine decay) learns a plain image cue
    in a few epochs from random weights, through the same jittered training sequence, and its
    card names the network and the optimizer. (The paper's network from random weights did not
    learn the version-2 phantom on a CPU budget: docs/architecture.md.)"""
    import numpy as np

    from tfesi_desktop.core.geometry import Dihedral
    from tfesi_desktop.core.manifest import Region
    from tfesi_desktop.core.training.train import TrainConfig, fit_and_evaluate

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:80, :80]
    regions, y = [], np.array([0, 1] * 48)
    for label in y:  # favourable: a bright disc inside the ROI; poor: a dark one
        img = rng.normal(120, 25, (80, 80))
        cx, cy = rng.uniform(30, 50, 2)
        img[(xx - cx) ** 2 + (yy - cy) ** 2 < 36] = 220 if label else 20
        regions.append(Region(img.astype(np.float32), Dihedral(), (15, 15, 50, 50), "right"))
    cfg = TrainConfig(variant="compact", epochs=6, batch_size=16, learning_rate=1e-3,
                      optimizer="adam", init="random", seed=1)
    model, record = fit_and_evaluate(regions, y, cfg)
    assert record["architecture"]["base"] == "compact CNN"
    assert record["architecture"]["feature_map"] == [12, 12, 128]
    assert record["architecture"]["parameters"] == 312_113
    assert record["metrics"]["validation_keras"]["auc"] >= 0.9, record["history"]
    assert cfg.describe_optimizer().startswith("Adam")


def test_the_command_line_offers_every_network():
    """cli/model.py spells the variants out so that building its parser does not import Keras;
    they must stay the ones the network module builds."""
    from tfesi_desktop.cli import TRAIN_VARIANTS
    from tfesi_desktop.core.training.network import ARCHITECTURES

    assert TRAIN_VARIANTS == ARCHITECTURES


def test_training_shows_the_neighbouring_slice_at_the_recorded_rate():
    """Augmentation (issue 22): at ``neighbour_slices`` rate the input is made from the slice
    above or below (the ROI carried there), with the patient's outcome; the rate is on the
    card's augmentation record."""
    import numpy as np

    from tfesi_desktop.core.geometry import Dihedral
    from tfesi_desktop.core.manifest import Region
    from tfesi_desktop.core.training.augment import Augmentation, augmented_input

    rng = np.random.default_rng(0)
    own, up, down = (rng.uniform(0, 255, (70, 70)).astype(np.float32) for _ in range(3))
    region = Region(own, Dihedral(), (10, 10, 40, 40), "right",
                    neighbours=((-1, down, (10, 10, 40, 40)), (1, up, (12, 10, 40, 40))))
    assert region.offsets == (-1, 0, 1) and region.at(1).roi == (12, 10, 40, 40)
    assert Augmentation().neighbour_slices == 0.0  # off by default: it measured worse
    plain = Augmentation(shift=0.0, scale=(1.0, 1.0), rotation_deg=0.0, log_gamma=0.0,
                         bias=0.0, noise=0.0, neighbour_slices=0.3)
    assert plain.describe()["neighbour_slices"] == 0.3
    ref = {o: region.at(o).input().image for o in (-1, 0, 1)}
    seen = []
    for k in range(300):
        img = augmented_input(region, np.random.default_rng([5, k]), plain)
        (o,) = [o for o, r in ref.items() if np.allclose(img, r, atol=1e-3)]
        seen.append(o)
    seen = np.array(seen)
    assert np.mean(seen != 0) == pytest.approx(0.3, abs=0.07)
    assert (seen == 1).sum() > 20 and (seen == -1).sum() > 20
    # a region without neighbours (a clinic's manifest read without them) is unchanged
    alone = Region(own, Dihedral(), (10, 10, 40, 40), "right")
    assert np.allclose(augmented_input(alone, np.random.default_rng(1), plain), ref[0])
