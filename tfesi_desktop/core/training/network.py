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
import os
from pathlib import Path

import keras

from ..errors import TfesiError

log = logging.getLogger(__name__)

IMAGENET_FILE = "efficientnetv2-b0_notop.h5"
IMAGENET_URL = ("https://storage.googleapis.com/tensorflow/keras-applications/efficientnet_v2/"
                + IMAGENET_FILE)


def keras_cache_dir() -> Path:
    """Keras's cache folder for application weights: ``$KERAS_HOME/models``, else
    ``~/.keras/models`` (read when called, so a test or a user can point it elsewhere)."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "models"


def imagenet_weights_file(local: str | Path | None = None) -> Path:
    """The ImageNet weights of EfficientNetV2B0 without its top: ``local`` if given; else the
    file in Keras's cache folder, downloaded there by Keras (``keras.utils.get_file``, with its
    published hash) when it is missing and the machine is online. :class:`TfesiError` with
    what to do otherwise; there is no silent fallback to random weights."""
    if local:
        p = Path(local)
        if not p.is_file():
            raise TfesiError("The ImageNet weights file does not exist.", p)
        return p
    cached = keras_cache_dir() / IMAGENET_FILE
    if cached.is_file():
        return cached
    try:
        from keras.src.applications.efficientnet_v2 import WEIGHTS_HASHES

        return Path(keras.utils.get_file(IMAGENET_FILE, IMAGENET_URL, cache_subdir="models",
                                         cache_dir=str(keras_cache_dir().parent),
                                         file_hash=WEIGHTS_HASHES["b0"][1]))
    except Exception as e:  # noqa: BLE001 - any download failure gets the same advice
        raise TfesiError(
            f"The ImageNet weights ({IMAGENET_FILE}) are not in Keras's cache folder "
            f"{keras_cache_dir()} and could not be downloaded ({type(e).__name__}). Put the "
            "file there (copy it from a connected machine's ~/.keras/models/), or give it with "
            "--imagenet-weights FILE, or train from random weights with --init random.") from e

VARIANTS = {
    # name: (ImageNet initialisation wanted, Dropout + BatchNormalization)
    "original": (True, True),
    "no-regularization": (True, False),
    "from-scratch": (False, False),
}
DROPOUT = 0.5
INPUT_SHAPE = (100, 100, 3)
FEATURE_LAYER = "top_activation"


def build_model(variant: str = "original", *, init: str = "imagenet",
                imagenet_weights: str | Path | None = None, dropout: float = DROPOUT,
                seed: int | None = None, init_from: str | Path | None = None
                ) -> tuple[keras.Model, dict]:
    """The network and a description for the model card.

    ``init``: "imagenet" (the paper's; see :func:`imagenet_weights_file`, ``imagenet_weights``
    a local file) or "random". The ``from-scratch`` variant always starts from random weights.
    ``init_from``: a ``.keras`` file of the same architecture (loaded with ``safe_mode``) whose
    weights start the training instead (fine-tuning an earlier model; recorded on the card).
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; one of {', '.join(VARIANTS)}")
    if init not in ("imagenet", "random"):
        raise ValueError("init must be 'imagenet' or 'random'")
    wants_imagenet, regularized = VARIANTS[variant]
    if seed is not None:
        keras.utils.set_random_seed(seed)
    weights = None
    if wants_imagenet and init == "imagenet":
        weights = str(imagenet_weights_file(imagenet_weights))
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
    if init_from:
        p = Path(init_from)
        if not p.is_file():
            raise TfesiError("The model to start from does not exist.", p)
        try:
            model.set_weights(keras.saving.load_model(p, safe_mode=True).get_weights())
        except ValueError as e:
            raise TfesiError(f"The model to start from has another architecture ({e}).",
                             p) from e
        info["initialized_from"] = p.name
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
