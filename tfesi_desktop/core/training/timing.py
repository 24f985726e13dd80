"""The TensorFlow side of ``tfesi bench``: Keras's ``model.predict`` and training throughput."""

from __future__ import annotations

import time
from pathlib import Path

import keras
import numpy as np

from .network import build_model


def keras_predict_seconds(keras_file: Path, image: np.ndarray, n: int) -> list[float]:
    """Times of ``model.predict`` on one (100, 100, 3) input, after three warm-up calls."""
    model = keras.saving.load_model(keras_file, safe_mode=True)
    x = np.asarray(image, np.float32)[None]
    for _ in range(3):
        model.predict(x, verbose=0)
    times = []
    for _ in range(n):
        t = time.perf_counter()
        model.predict(x, verbose=0)
        times.append(time.perf_counter() - t)
    return times


def training_images_per_second(batch: int = 8, steps: int = 5) -> float:
    """Images per second for full fine-tuning of the original network at the paper's batch."""
    model, _ = build_model("original", init="random", seed=0)
    model.compile(optimizer=keras.optimizers.RMSprop(1e-5), loss="binary_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (batch, 100, 100, 3)).astype(np.float32)
    y = rng.integers(0, 2, (batch, 1)).astype(np.float32)
    for _ in range(2):
        model.train_on_batch(x, y)
    t = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return round(batch * steps / (time.perf_counter() - t), 1)
