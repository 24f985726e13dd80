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
               "--variant", "no-regularization", "--name", "tiny"])
    assert rc == 0
    printed = json.loads(capsys.readouterr().out)
    b = load_bundle(bundle)
    v = b.card["metrics"]["validation"]
    assert v == printed["validation"] and v["n"] >= 2
    assert b.card["training"]["epochs"] == 1 and b.card["training"]["batch_size"] == 2
    assert b.card["synthetic_training_data"] is True  # cohort.json lies beside the manifest
    assert b.card["architecture"]["variant"] == "no-regularization"
    assert "best_achievable_auc" in v
    Predictor(bundle)  # loads on the runtime
    # refuses to overwrite without --force, and a missing manifest is a clear error
    assert main(["train", str(out_dir / "manifest.csv"), "--out", str(bundle)]) == 2
    assert main(["train", str(tmp_path / "none.csv"), "--out", str(tmp_path / "b2")]) == 2


MIRRORED = """
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import numpy as np
from tfesi_desktop.core.training.train import TrainConfig, fit_and_evaluate, _strategy
devices = [d.name for d in tf.config.list_logical_devices("CPU")]
assert len(devices) == 2, devices
s = _strategy(devices)
assert isinstance(s, tf.distribute.MirroredStrategy) and s.num_replicas_in_sync == 2
rng = np.random.default_rng(0)
x = rng.uniform(0, 255, (12, 100, 100, 3)).astype("float32")
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
