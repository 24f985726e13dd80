"""TensorFlow's GradientTape Grad-CAM: the reference the NumPy/LiteRT path is tested against."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from .network import FEATURE_LAYER


def _head(model, feats):
    """The layers after ``top_activation``, at inference (dropout off, batch norm frozen)."""
    x = model.get_layer("pool")(feats)
    x = model.get_layer("dense")(x)
    for name in ("dropout", "batchnorm"):
        try:
            x = model.get_layer(name)(x, training=False)
        except ValueError:  # variant without regularisation
            continue
    return model.get_layer("logit")(x)[:, 0]


def gradcam_reference(model, image: np.ndarray, *, target: str = "favourable"):
    """(probability, Grad-CAM on the feature map's grid, in 0..1) by automatic differentiation
    of the logit (its negative for the poor class) with respect to the ``top_activation`` map."""
    import keras

    base = keras.Model(model.input, model.get_layer(FEATURE_LAYER).output)
    feats = base(tf.convert_to_tensor(np.asarray(image, np.float32)[None]), training=False)
    with tf.GradientTape() as tape:
        tape.watch(feats)
        logit = _head(model, feats)
        score = logit if target == "favourable" else -logit
    alpha = tape.gradient(score, feats)[0].numpy().mean(axis=(0, 1))
    cam = np.maximum(feats[0].numpy() @ alpha, 0)
    cam = cam / cam.max() if cam.max() > 0 else np.zeros_like(cam)
    return float(tf.sigmoid(logit)[0]), cam
