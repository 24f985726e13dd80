"""Writing a model bundle from a trained Keras model: the Keras file, a LiteRT export with two
outputs (feature map and logit), the head's weights for NumPy Grad-CAM, and the card with the
SHA-256 of every file.

The LiteRT export goes through a SavedModel (``model.export``) and
``TFLiteConverter.from_saved_model`` with builtin ops only (``from_concrete_functions`` once gave a
file without weights that outputs NaN). Before the card is written the export is checked against
Keras on sample inputs and the largest logit difference is recorded.
"""

from __future__ import annotations

import datetime as _dt
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..bundle import BUNDLE_FORMAT, CARD, HEAD_FILE, KERAS_FILE, LITERT_FILE, sha256_file
from ..gradcam import Head
from ..preprocess import INPUT_SIZE, PREPROCESSING_VERSION
from .network import FEATURE_LAYER, feature_and_logit_model, save_weights_only_model


def head_of(model) -> Head:
    dense, logit = model.get_layer("dense"), model.get_layer("logit")
    w1, b1 = (np.asarray(v) for v in dense.get_weights())
    w2, b2 = (np.asarray(v) for v in logit.get_weights())
    scale = shift = None
    try:
        bn = model.get_layer("batchnorm")
    except ValueError:
        bn = None
    if bn is not None:
        gamma, beta, mean, var = (np.asarray(v, np.float64) for v in bn.get_weights())
        scale = gamma / np.sqrt(var + bn.epsilon)
        shift = beta - mean * scale
    return Head(w1.astype(np.float64), b1.astype(np.float64), scale, shift,
                w2.reshape(-1).astype(np.float64), float(b2.reshape(-1)[0]))


def export_litert(model, out_file: Path, *, precision: str = "float32") -> None:
    import tensorflow as tf

    two = feature_and_logit_model(model)
    with tempfile.TemporaryDirectory(prefix="tfesi-savedmodel-") as tmp:
        two.export(tmp, format="tf_saved_model", verbose=False)
        conv = tf.lite.TFLiteConverter.from_saved_model(tmp)
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if precision == "float16":
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            conv.target_spec.supported_types = [tf.float16]
        elif precision != "float32":
            raise ValueError("precision must be float32 or float16")
        out_file.write_bytes(conv.convert())


def write_bundle(model, out: str | Path, *, card: dict, precision: str = "float32",
                 check_inputs: np.ndarray | None = None, overwrite: bool = False) -> Path:
    """Write the bundle folder ``out`` (atomically: built beside it, then renamed).

    ``card`` holds the descriptive fields (name, version, intended use, training, metrics...);
    this adds format, preprocessing version, input spec, files and their SHA-256, and the export
    check. ``check_inputs``: (n, 100, 100, 3) inputs to compare LiteRT with Keras on.
    """
    from ..runtime import Predictor

    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists")
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_weights_only_model(model, tmp / KERAS_FILE)
    export_litert(model, tmp / LITERT_FILE, precision=precision)
    head_of(model).save(tmp / HEAD_FILE)
    fmap = [int(d) for d in model.get_layer(FEATURE_LAYER).output.shape[1:]]
    full = {
        "format": BUNDLE_FORMAT,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "preprocessing_version": PREPROCESSING_VERSION,
        "input": {"shape": [INPUT_SIZE, INPUT_SIZE, 3], "dtype": "float32", "range": [0, 255],
                  "description": "canonical ROI: radiological orientation, left side mirrored, "
                                 "percentile-normalised modality values (see preprocess.py)"},
        "threshold": 0.5,
        **card,
        "runtime": {"engine": "LiteRT (ai-edge-litert)", "file": LITERT_FILE,
                    "precision": precision,
                    "outputs": [f"{FEATURE_LAYER} ({'x'.join(map(str, fmap))})", "logit"]},
        "files": {n: sha256_file(tmp / n) for n in (LITERT_FILE, HEAD_FILE, KERAS_FILE)},
    }
    (tmp / CARD).write_text(json.dumps(full, indent=1))
    if check_inputs is not None and len(check_inputs):
        pred = Predictor(tmp)
        two = feature_and_logit_model(model)
        ref = np.asarray(two.predict(np.asarray(check_inputs, np.float32), verbose=0)["logit"])
        got = np.array([pred.infer(x)[1] for x in check_inputs])
        full["runtime"]["max_abs_logit_difference_vs_keras"] = float(
            np.max(np.abs(got - ref.reshape(-1))))
        full["runtime"]["checked_on_inputs"] = int(len(check_inputs))
        (tmp / CARD).write_text(json.dumps(full, indent=1))
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out
