"""``tfesi train``: the paper's protocol on a manifest, ending in a verified model bundle.

Defaults are the paper's (Table 2): stratified 80/20 split with a seed, RMSprop, learning rate
1e-5, batch 8, 26 epochs, binary cross-entropy. Inputs come from the one preprocessing function
(:func:`..manifest.load_inputs`). :func:`fit_and_evaluate` needs only Keras (it runs on the
TensorFlow or JAX backend, e.g. on a GPU machine); :func:`train` adds TensorFlow's ``tf.data``
streaming, an optional ``MirroredStrategy``, and writes the bundle, whose card carries the
held-out metrics computed with the exported LiteRT model itself.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..bundle import CARD, load_bundle
from ..manifest import load_inputs
from ..stats import auc_delong

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    variant: str = "original"
    epochs: int = 26
    batch_size: int = 8
    learning_rate: float = 1e-5
    validation_fraction: float = 0.2
    seed: int = 0
    imagenet_weights: str | None = None
    dropout: float = 0.5
    devices: list[str] = field(default_factory=list)  # MirroredStrategy over these, if several


def split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified train/validation indices, repeatable from the seed."""
    from sklearn.model_selection import train_test_split

    from ..errors import TfesiError

    counts = np.bincount(np.asarray(labels, int), minlength=2)
    n_val = int(np.ceil(fraction * len(labels)))
    if counts.min() < 2 or n_val < 2 or len(labels) - n_val < 2:
        raise TfesiError(
            f"Too few patients for a stratified {1 - fraction:.0%}/{fraction:.0%} split: "
            f"{counts[1]} favourable and {counts[0]} poor; each class needs at least two, and "
            "each part at least two patients.")
    idx = np.arange(len(labels))
    tr, va = train_test_split(idx, test_size=fraction, stratify=labels, random_state=seed)
    return np.sort(tr), np.sort(va)


def binary_metrics(labels, probs, threshold: float = 0.5) -> dict:
    r = auc_delong(labels, probs)
    pred = np.asarray(probs) >= threshold
    y = np.asarray(labels).astype(bool)
    return {"auc": round(r.auc, 4), "auc_ci95": [round(v, 4) for v in r.ci95],
            "accuracy": round(float(np.mean(pred == y)), 4), "n": int(len(y)),
            "favourable": int(y.sum()), "poor": int((~y).sum()), "threshold": threshold}


def _strategy(devices: list[str]):
    import tensorflow as tf

    if len(devices) > 1:
        return tf.distribute.MirroredStrategy(devices)
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def fit_and_evaluate(x: np.ndarray, y: np.ndarray, config: TrainConfig, *, progress=None,
                     train_idx=None, val_idx=None):
    """Train and return (model, record). Keras only (any backend). The split is the seeded
    stratified one unless ``train_idx``/``val_idx`` are given (cross-validation folds)."""
    import keras

    from .network import build_model

    if train_idx is None:
        tr, va = split(y, config.validation_fraction, config.seed)
    else:
        tr, va = np.asarray(train_idx), np.asarray(val_idx)
    backend = keras.backend.backend()
    strategy = _strategy(config.devices) if backend == "tensorflow" else None

    def make():
        model, info = build_model(config.variant, imagenet_weights=config.imagenet_weights,
                                  dropout=config.dropout, seed=config.seed)
        model.compile(optimizer=keras.optimizers.RMSprop(config.learning_rate),
                      loss="binary_crossentropy", metrics=[keras.metrics.AUC(name="auc")])
        return model, info

    if strategy is not None:
        with strategy.scope():
            model, info = make()
    else:
        model, info = make()

    class Report(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if progress:
                logs = logs or {}
                progress(f"epoch {epoch + 1}/{config.epochs}: loss {logs.get('loss', 0):.4f}, "
                         f"validation AUC {logs.get('val_auc', float('nan')):.3f}")

    replicas = strategy.num_replicas_in_sync if strategy is not None else 1
    t0 = time.monotonic()
    if backend == "tensorflow":
        import tensorflow as tf

        def dataset(idx, shuffle):
            ds = tf.data.Dataset.from_tensor_slices((x[idx], y[idx].astype(np.float32)))
            if shuffle:
                ds = ds.shuffle(len(idx), seed=config.seed, reshuffle_each_iteration=True)
            # several replicas: no partial batch, which could leave a replica an empty one
            return ds.batch(config.batch_size, drop_remainder=replicas > 1).prefetch(
                tf.data.AUTOTUNE)

        history = model.fit(dataset(tr, True),
                            validation_data=dataset(va, False) if replicas == 1 else None,
                            epochs=config.epochs, verbose=0, callbacks=[Report()],
                            shuffle=False)  # the dataset shuffles itself, seeded
    else:
        history = model.fit(x[tr], y[tr].astype(np.float32), batch_size=config.batch_size,
                            validation_data=(x[va], y[va].astype(np.float32)),
                            epochs=config.epochs, shuffle=True, verbose=0, callbacks=[Report()])
    seconds = time.monotonic() - t0
    p_tr, p_va = _predict(model, x[tr]), _predict(model, x[va])
    record = {
        "config": asdict(config), "architecture": info, "backend": backend,
        "device": _device_name(backend),
        "train_indices": tr.tolist(), "validation_indices": va.tolist(),
        "seconds": round(seconds, 1),
        "images_per_second": round(len(tr) * config.epochs / max(seconds, 1e-9), 1),
        "history": {k: [round(float(v), 5) for v in vals]
                    for k, vals in history.history.items()},
        "metrics": {"training": binary_metrics(y[tr], p_tr),
                    "validation_keras": binary_metrics(y[va], p_va)},
        "validation_probabilities": [round(float(v), 6) for v in p_va],
    }
    return model, record


def _predict(model, x: np.ndarray, batch: int = 64) -> np.ndarray:
    """Probabilities, padding the input to whole batches (a partial batch split over several
    replicas could leave one of them empty)."""
    n = len(x)
    pad = (-n) % batch
    if pad:
        x = np.concatenate([x, np.repeat(x[-1:], pad, axis=0)])
    return model.predict(x, batch_size=batch, verbose=0).reshape(-1)[:n]


def _device_name(backend: str) -> str:
    try:
        if backend == "jax":
            import jax

            return str(jax.devices()[0].device_kind)
        import tensorflow as tf

        gpus = tf.config.list_logical_devices("GPU")
        return f"{len(gpus)} GPU" if gpus else f"CPU ({os.cpu_count()} cores)"
    except Exception:  # noqa: BLE001 - informational only
        return "unknown"


def _cohort_info(manifest: Path) -> dict | None:
    f = manifest.parent / "cohort.json"
    return json.loads(f.read_text()) if f.exists() else None


def card_fields(manifest: Path, record: dict, *, name: str, version: str,
                synthetic: bool) -> dict:
    cohort = _cohort_info(manifest)
    cfg = record["config"]
    data = (f"{len(record['train_indices']) + len(record['validation_indices'])} synthetic "
            f"patients from `tfesi synth` (seed {cohort['seed']}, generator version "
            f"{cohort['generator_version']}): phantom images, no real patient"
            if synthetic and cohort else f"manifest {manifest.name}")
    use = ("Demonstration of the software only. Trained on synthetic phantom images; NOT FOR "
           "CLINICAL USE." if synthetic else
           "Decision support for cervical TFESI in patients like those it was validated on; "
           "supports and does not replace clinical judgement.")
    return {
        "name": name, "version": version, "synthetic_training_data": synthetic,
        "intended_use": use,
        "limitations": [
            "Predicts from one axial T2 slice and one ROI; clinical factors are not used.",
            "Validated only on the data described under training; performance elsewhere is "
            "unknown until validated there.",
            "Grad-CAM shows where the network's evidence lies, not why.",
        ] + (["Synthetic images: the model has never seen a real MRI."] if synthetic else []),
        "architecture": record["architecture"],
        "training": {
            "data": data, "patients": len(record["train_indices"]) + len(
                record["validation_indices"]),
            "train": len(record["train_indices"]),
            "validation": len(record["validation_indices"]),
            "split": f"stratified {1 - cfg['validation_fraction']:.0%}/"
                     f"{cfg['validation_fraction']:.0%}, seed {cfg['seed']}",
            "optimizer": "RMSprop", "learning_rate": cfg["learning_rate"],
            "batch_size": cfg["batch_size"], "epochs": cfg["epochs"],
            "loss": "binary cross-entropy", "backend": record["backend"],
            "device": record["device"], "seconds": record["seconds"],
            "images_per_second": record["images_per_second"],
        },
        "changelog": [f"{version}: trained with tfesi train"],
    }


def bundle_from_trained(model, record: dict, x: np.ndarray, y: np.ndarray, manifest: Path,
                        out: Path, *, name: str, version: str, precision: str,
                        synthetic: bool | None = None, overwrite: bool = False) -> dict:
    """Write the bundle, then score the held-out split with the exported LiteRT model and put
    those metrics (AUC with DeLong CI, accuracy) into the card."""
    from ..runtime import Predictor, sigmoid
    from .export import write_bundle

    cohort = _cohort_info(manifest)
    if synthetic is None:
        synthetic = cohort is not None
    va = np.array(record["validation_indices"])
    card = card_fields(manifest, record, name=name, version=version, synthetic=synthetic)
    write_bundle(model, out, card=card, precision=precision, check_inputs=x[va[:8]],
                 overwrite=overwrite)
    pred = Predictor(out)
    probs = np.array([sigmoid(pred.infer(xi)[1]) for xi in x[va]])
    val = binary_metrics(y[va], probs)
    val["runtime"] = "LiteRT export in this bundle"
    if cohort:
        val["best_achievable_auc"] = _best_auc_on(cohort, manifest, va)
    full = json.loads((out / CARD).read_text())
    full["metrics"] = {"validation": val, "training": record["metrics"]["training"]}
    tmp = out / (CARD + ".partial")
    tmp.write_text(json.dumps(full, indent=1))
    tmp.replace(out / CARD)
    load_bundle(out)  # verify what was written
    return full


def _best_auc_on(cohort: dict, manifest: Path, idx: np.ndarray) -> float | None:
    """The generator's own probability scored on the same held-out patients."""
    from ..manifest import read_manifest

    cases = read_manifest(manifest)
    try:
        p = np.array([float(cases[i].row["p_favourable"]) for i in idx])
    except (KeyError, ValueError):
        return None
    y = np.array([cases[i].label for i in idx])
    return round(auc_delong(y, p).auc, 4)


def train(manifest: str | Path, out: str | Path, config: TrainConfig, *, name: str,
          version: str = "1.0.0", precision: str = "float32", progress=None,
          overwrite: bool = False) -> dict:
    manifest, out = Path(manifest), Path(out)
    x, y, _ = load_inputs(manifest, progress=(lambda d, t: progress(f"inputs {d}/{t}")
                                              if progress and (d % 50 == 0 or d == t) else None))
    model, record = fit_and_evaluate(x, y, config, progress=progress)
    return bundle_from_trained(model, record, x, y, manifest, out, name=name, version=version,
                               precision=precision, overwrite=overwrite)


def bundle_from_directory(trained: str | Path, manifest: str | Path, out: str | Path, *,
                          name: str, version: str, precision: str, overwrite: bool = False,
                          progress=None) -> dict:
    """Bundle a model trained elsewhere (``model.keras`` + ``record.json`` written by
    :func:`save_trained`, e.g. on a GPU machine) with the same manifest."""
    import keras

    trained, manifest = Path(trained), Path(manifest)
    record = json.loads((trained / "record.json").read_text())
    model = keras.saving.load_model(trained / "model.keras", safe_mode=True)
    x, y, _ = load_inputs(manifest, progress=None)
    return bundle_from_trained(model, record, x, y, manifest, Path(out), name=name,
                               version=version, precision=precision, overwrite=overwrite)


def save_trained(model, record: dict, folder: str | Path) -> None:
    from .network import save_weights_only_model

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_weights_only_model(model, folder / "model.keras")
    (folder / "record.json").write_text(json.dumps(record))
