"""The paper's network (Table 1) and its ablation variants (Table 3), in Keras 3.

``EfficientNetV2B0(include_top=False)`` on 100x100x3 (its own rescaling/normalisation layers, so
inputs are 0..255 floats) -> GlobalAveragePooling2D -> Dense(1024, relu) -> Dropout ->
BatchNormalization -> Dense(1) logit -> sigmoid. 7,236,177 parameters.

The logit is a layer of its own (``logit``) so that Grad-CAM can use it; ``top_activation`` (the
base's last convolutional activation, 4x4x1280) is the Grad-CAM target. Only Keras is imported
here, so the same code trains on the TensorFlow or the JAX backend.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import keras

log = logging.getLogger(__name__)

VARIANTS = {
    # name: (ImageNet initialisation wanted, Dropout + BatchNormalization)
    "original": (True, True),
    "no-regularization": (True, False),
    "from-scratch": (False, False),
}
DROPOUT = 0.5
INPUT_SHAPE = (100, 100, 3)
FEATURE_LAYER = "top_activation"


def build_model(variant: str = "original", *, imagenet_weights: str | Path | None = None,
                dropout: float = DROPOUT, seed: int | None = None) -> tuple[keras.Model, dict]:
    """The network and a description for the model card.

    ``imagenet_weights``: a local ``efficientnetv2-b0_notop.h5`` (nothing is downloaded). Without
    it, or for the ``from-scratch`` variant, the base starts from random weights (a notice is
    logged and recorded).
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; one of {', '.join(VARIANTS)}")
    wants_imagenet, regularized = VARIANTS[variant]
    if seed is not None:
        keras.utils.set_random_seed(seed)
    weights = None
    if wants_imagenet and imagenet_weights:
        if not Path(imagenet_weights).is_file():
            raise FileNotFoundError(f"ImageNet weights file not found: {imagenet_weights}")
        weights = str(imagenet_weights)
    elif wants_imagenet:
        log.warning("No ImageNet weights file given: the base network starts from random "
                    "weights (the paper used ImageNet initialisation).")
    inp = keras.Input(INPUT_SHAPE, name="roi")
    base = keras.applications.EfficientNetV2B0(
        include_top=False, weights=weights, input_tensor=inp, include_preprocessing=True)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(base.output)
    x = keras.layers.Dense(1024, activation="relu", name="dense")(x)
    if regularized:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
        x = keras.layers.BatchNormalization(name="batchnorm")(x)
    logit = keras.layers.Dense(1, name="logit")(x)
    prob = keras.layers.Activation("sigmoid", name="probability")(logit)
    model = keras.Model(inp, prob, name=f"tfesi_efficientnetv2b0_{variant.replace('-', '_')}")
    info = {
        "base": "EfficientNetV2B0", "variant": variant, "regularized": regularized,
        "dropout": dropout if regularized else None,
        "imagenet_initialization": weights is not None,
        "parameters": int(model.count_params()),
        "trainable_parameters": int(sum(math.prod(w.shape) for w in model.trainable_weights)),
    }
    info["non_trainable_parameters"] = info["parameters"] - info["trainable_parameters"]
    return model, info


def feature_and_logit_model(model: keras.Model) -> keras.Model:
    """A model with two outputs: the ``top_activation`` feature map and the logit."""
    return keras.Model(model.input, {"features": model.get_layer(FEATURE_LAYER).output,
                                     "logit": model.get_layer("logit").output})


def save_weights_only_model(model: keras.Model, path: str | Path) -> None:
    """Save the network as a ``.keras`` file without the optimizer's state (which would double
    the file): an uncompiled copy with the same architecture and weights."""
    copy = keras.Model.from_config(model.get_config())
    copy.set_weights(model.get_weights())
    copy.save(path)
