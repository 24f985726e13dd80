"""The paper's network (Table 1), its ablation variants (Table 3), and a compact network for
machines without a GPU, in Keras 3.

Paper: ``EfficientNetV2B0(include_top=False)`` on 100x100x3 (its own rescaling/normalisation
layers, so inputs are 0..255 floats) -> GlobalAveragePooling2D -> Dense(1024, relu) -> Dropout ->
BatchNormalization -> Dense(1) logit -> sigmoid. 7,236,177 parameters.

``compact``: eight 3x3 convolutions with batch normalisation (16-32-64-128 channels, max pooling
between pairs) -> the same head with Dense(128); 312,113 parameters, random initialisation. From
random weights the EfficientNet did not learn the version-2 phantom on a CPU budget (five runs
stayed at chance, docs/architecture.md "Measured facts"); this one does in minutes, with Adam at
1e-3. Its feature map is 12x12x128, so its Grad-CAM is three times finer than the paper's 4x4.

Every network has the same named layers for the program: ``top_activation`` (the last
convolutional activation, the Grad-CAM target and the source of the pooled features), ``pool``,
``dense``, optionally ``dropout`` and ``batchnorm``, and ``logit`` (the raw score, a layer of its
own so that Grad-CAM can use it). Only Keras is imported here, so the same code trains on the
TensorFlow or the JAX backend.
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
COMPACT = "compact"
ARCHITECTURES = (*VARIANTS, COMPACT)  # what --variant accepts
COMPACT_WIDTH = 16  # channels of the first pair; doubled after each pooling
DROPOUT = 0.5
INPUT_SHAPE = (100, 100, 3)
FEATURE_LAYER = "top_activation"


def build_model(variant: str = "original", *, init: str = "imagenet",
                imagenet_weights: str | Path | None = None, dropout: float = DROPOUT,
                seed: int | None = None, init_from: str | Path | None = None
                ) -> tuple[keras.Model, dict]:
    """The network and a description for the model card.

    ``init``: "imagenet" (the paper's; see :func:`imagenet_weights_file`, ``imagenet_weights``
    a local file) or "random". The ``from-scratch`` and ``compact`` variants always start from
    random weights.
    ``init_from``: a ``.keras`` file of the same architecture (loaded with ``safe_mode``) whose
    weights start the training instead (fine-tuning an earlier model; recorded on the card).
    """
    if variant not in ARCHITECTURES:
        raise ValueError(f"unknown variant {variant!r}; one of {', '.join(ARCHITECTURES)}")
    if init not in ("imagenet", "random"):
        raise ValueError("init must be 'imagenet' or 'random'")
    if seed is not None:
        keras.utils.set_random_seed(seed)
    inp = keras.Input(INPUT_SHAPE, name="roi")
    weights = None
    if variant == COMPACT:  # no ImageNet weights exist for it: always random, like from-scratch
        base_name, regularized, width = "compact CNN", True, 128
        features = _compact_base(inp)
    else:
        wants_imagenet, regularized = VARIANTS[variant]
        if wants_imagenet and init == "imagenet":
            weights = str(imagenet_weights_file(imagenet_weights))
        base_name, width = "EfficientNetV2B0", 1024
        features = keras.applications.EfficientNetV2B0(
            include_top=False, weights=weights, input_tensor=inp,
            include_preprocessing=True).output
    x = keras.layers.GlobalAveragePooling2D(name="pool")(features)
    x = keras.layers.Dense(width, activation="relu", name="dense")(x)
    if regularized:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
        x = keras.layers.BatchNormalization(name="batchnorm")(x)
    logit = keras.layers.Dense(1, name="logit")(x)
    prob = keras.layers.Activation("sigmoid", name="probability")(logit)
    tag = "compact" if variant == COMPACT else "efficientnetv2b0_" + variant.replace("-", "_")
    model = keras.Model(inp, prob, name=f"tfesi_{tag}")
    info = {
        "base": base_name, "variant": variant, "regularized": regularized,
        "dropout": dropout if regularized else None,
        "imagenet_initialization": weights is not None,
        "feature_map": [int(d) for d in model.get_layer(FEATURE_LAYER).output.shape[1:]],
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


def _compact_base(inp):
    """Four pairs of 3x3 convolution + batch normalisation + ReLU, max pooling between pairs:
    100 -> 50 -> 25 -> 12 pixels; the last activation is ``top_activation`` (12x12x128)."""
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="rescale")(inp)
    for stage in range(4):
        if stage:
            x = keras.layers.MaxPooling2D(name=f"pool{stage}")(x)
        for k in range(2):
            name = f"conv{stage + 1}_{k + 1}"
            x = keras.layers.Conv2D(COMPACT_WIDTH * 2 ** stage, 3, padding="same",
                                    use_bias=False, name=name)(x)
            x = keras.layers.BatchNormalization(name=name + "_bn")(x)
            last = stage == 3 and k == 1
            x = keras.layers.Activation("relu", name=FEATURE_LAYER if last else name + "_relu")(x)
    return x


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
