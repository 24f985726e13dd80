"""``tfesi train``: the paper's protocol on a manifest, ending in a verified model bundle.

Defaults are the paper's (Table 2): ImageNet initialisation, stratified 80/20 split with a seed,
RMSprop, learning rate 1e-5, batch 8, 26 epochs, binary cross-entropy. Beyond the paper, because
a hand-drawn ROI varies by millimetres (docs/architecture.md, invariant 8): every epoch jitters
each ROI and
its intensities (:mod:`.augment`, on by default, seeded), and after export the bundle gets

- the run-time ROI set (``tta``), scored on the held-out split with the LiteRT model itself;
- Platt scaling fitted on those held-out ensemble logits (``calibration``), so the card's metrics
  describe the probabilities the program shows;
- the distribution of the pooled features of the training images (``ood.npz``), with a threshold
  that flags inputs unlike them.

:func:`fit_and_evaluate` needs only Keras (TensorFlow or JAX backend, e.g. on a GPU machine).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..bundle import CARD, load_bundle, sha256_file
from ..fileio import write_atomically
from ..manifest import load_regions
from ..neighbourhood import DEFAULT_OFFSETS
from ..ood import OOD_FILE, fit_training_distribution, intensity_histogram
from ..preprocess import TTA_CROPS
from ..runtime import NEIGHBOUR_CROPS
from ..stats import auc_delong, calibration_summary, fit_platt
from .augment import Augmentation, make_sequence

log = logging.getLogger(__name__)


# How each network is trained unless told otherwise: the paper's settings (Table 2) for its network
# and the ablation variants; for the compact network the CPU recipe the demonstration model was
# trained with (README; docs/architecture.md, measured facts).
PAPER_RECIPE = {"epochs": 26, "batch_size": 8, "learning_rate": 1e-5, "optimizer": "rmsprop"}
RECIPES = {"compact": {"epochs": 30, "batch_size": 32, "learning_rate": 1e-3,
                       "optimizer": "adam"}}


def recipe(variant: str) -> dict:
    """The default training settings of a variant (see :data:`RECIPES`)."""
    return dict(RECIPES.get(variant, PAPER_RECIPE))


@dataclass
class TrainConfig:
    variant: str = "original"  # or another of network.ARCHITECTURES
    epochs: int = PAPER_RECIPE["epochs"]
    batch_size: int = PAPER_RECIPE["batch_size"]
    learning_rate: float = PAPER_RECIPE["learning_rate"]
    # "rmsprop": the paper's, at a constant rate; "adam": Adam with the rate decayed to 0 over
    # the run along a cosine (what the compact network is trained with)
    optimizer: str = PAPER_RECIPE["optimizer"]
    validation_fraction: float = 0.2
    seed: int = 0
    init: str = "imagenet"  # or "random"; the from-scratch variant is always random
    imagenet_weights: str | None = None  # a local file; default: Keras's cache (or download)
    dropout: float = 0.5
    augment: bool = True
    # synthetic cohorts only: train against this manifest column's probability (e.g. the
    # generator's p_favourable) instead of the 0/1 outcome; metrics still use the outcome
    soft_labels: str | None = None
    init_from: str | None = None  # a .keras model of the same architecture to fine-tune
    devices: list[str] = field(default_factory=list)  # MirroredStrategy over these, if several

    def augmentation(self) -> Augmentation | None:
        return Augmentation() if self.augment else None

    def describe_optimizer(self) -> str:
        return ("RMSprop" if self.optimizer == "rmsprop" else
                "Adam with cosine decay to 0")

    def make_optimizer(self, steps_per_epoch: int):
        import keras

        if self.optimizer == "rmsprop":
            return keras.optimizers.RMSprop(self.learning_rate)
        if self.optimizer == "adam":
            return keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(
                self.learning_rate, decay_steps=max(1, steps_per_epoch * self.epochs)))
        raise ValueError("optimizer must be 'rmsprop' or 'adam'")


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


def fit_and_evaluate(regions, y: np.ndarray, config: TrainConfig, *, progress=None,
                     train_idx=None, val_idx=None, targets: np.ndarray | None = None):
    """Train and return (model, record). Keras only (any backend). ``regions``: one
    :class:`..manifest.Region` per patient; training inputs are jittered every epoch unless
    ``config.augment`` is off; validation inputs are the ROIs as drawn. The split is the seeded
    stratified one unless ``train_idx``/``val_idx`` are given (cross-validation folds).
    ``targets``: training targets in 0..1 instead of ``y`` (``config.soft_labels``)."""
    import keras

    from .network import build_model

    if train_idx is None:
        tr, va = split(y, config.validation_fraction, config.seed)
    else:
        tr, va = np.asarray(train_idx), np.asarray(val_idx)
    backend = keras.backend.backend()
    strategy = _strategy(config.devices) if backend == "tensorflow" else None

    train_seq = make_sequence(regions, y if targets is None else targets, tr,
                              batch_size=config.batch_size,
                              aug=config.augmentation(), seed=config.seed)

    def make():
        model, info = build_model(config.variant, init=config.init,
                                  imagenet_weights=config.imagenet_weights,
                                  init_from=config.init_from,
                                  dropout=config.dropout, seed=config.seed)
        model.compile(optimizer=config.make_optimizer(len(train_seq)),
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

    x_va = np.stack([regions[i].input().image for i in va])
    t0 = time.monotonic()
    history = model.fit(train_seq, validation_data=(x_va, y[va].astype(np.float32)),
                        epochs=config.epochs, verbose=0, callbacks=[Report()])
    seconds = time.monotonic() - t0
    x_tr = np.stack([regions[i].input().image for i in tr])
    p_tr, p_va = _predict(model, x_tr), _predict(model, x_va)
    aug = config.augmentation()
    record = {
        "config": asdict(config), "architecture": info, "backend": backend,
        "device": _device_name(backend),
        "augmentation": aug.describe() | {"seed": config.seed} if aug else None,
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
            "optimizer": TrainConfig(**cfg).describe_optimizer(),
            "learning_rate": cfg["learning_rate"],
            "batch_size": cfg["batch_size"], "epochs": cfg["epochs"],
            "loss": "binary cross-entropy", "backend": record["backend"],
            "device": record["device"], "seconds": record["seconds"],
            "images_per_second": record["images_per_second"],
            "initialization": (
                f"fine-tuned from {record['architecture']['initialized_from']}"
                if record["architecture"].get("initialized_from") else
                "ImageNet" if record["architecture"]["imagenet_initialization"] else "random"),
            "augmentation": record.get("augmentation") or "off",
            "targets": (f"the manifest's {cfg['soft_labels']} (soft labels: the generator's "
                        "probability, which a clinic does not have); metrics use the 0/1 "
                        "outcome" if cfg.get("soft_labels") else "the 0/1 outcome"),
        },
        "changelog": [f"{version}: trained with tfesi train"],
    }


def ensemble_scores(predictor, regions, *, progress=None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(raw mean logits (n,), pooled features (n, channels), intensity histograms (n, 16)) of each
    region's ROI set on the slice its neighbourhood rule rests on, as the program computes them
    (LiteRT, one batch per patient over the region's slice and its neighbours)."""
    from ..runtime import region_inputs, run_slices

    logits, pooled, hists = np.empty(len(regions)), [], []
    for i, r in enumerate(regions):
        offsets, inputs = region_inputs(predictor, r)
        run = run_slices(predictor, inputs, offsets, 0)
        part = run.part(run.based_on)
        logits[i] = run.raw[part].mean()
        pooled.append(run.features[part].mean(axis=(0, 1, 2)))
        hists.append(intensity_histogram(run.images[part]))
        if progress and (i + 1) % 100 == 0:
            progress(f"scoring the ROI sets {i + 1}/{len(regions)}")
    return logits, np.array(pooled), np.array(hists)


def bundle_from_trained(model, record: dict, regions, y: np.ndarray, manifest: Path,
                        out: Path, *, name: str, version: str, precision: str,
                        synthetic: bool | None = None, overwrite: bool = False,
                        progress=None) -> dict:
    """Write the bundle, then, with the exported LiteRT model and the run-time ROI set: fit
    Platt scaling on the held-out split, the training features' distribution (OOD), and put the
    held-out metrics of the calibrated probabilities into the card."""
    from ..runtime import Predictor, sigmoid
    from .export import write_bundle

    say = progress or (lambda m: None)
    cohort = _cohort_info(manifest)
    if synthetic is None:
        synthetic = cohort is not None
    va, tr = np.array(record["validation_indices"]), np.array(record["train_indices"])
    card = card_fields(manifest, record, name=name, version=version, synthetic=synthetic)
    card["tta"] = {"crops": [list(c) for c in TTA_CROPS],
                   "description": "the ROI as drawn, shifted by 10 % of its size (3x3 grid) and "
                                  "scaled 0.88-1.12; mean logit, range as the interval",
                   "slices": {"offsets": list(DEFAULT_OFFSETS), "rule": "narrowest",
                              "crops": [list(c) for c in NEIGHBOUR_CROPS],
                              "description": "the chosen slice and one on each side, the ROI "
                                             "carried by geometry (the neighbours with these "
                                             "ROIs); the result rests on the slice scored "
                                             "lowest, where the foramen looks narrowest"}}
    write_bundle(model, out, card=card, precision=precision,
                 check_inputs=np.stack([regions[i].input().image for i in va[:8]]),
                 overwrite=overwrite)
    pred = Predictor(out)
    say("scoring the held-out ROI sets with the exported model ...")
    z_va, f_va, h_va = ensemble_scores(pred, [regions[i] for i in va], progress=say)
    _, f_tr, h_tr = ensemble_scores(pred, [regions[i] for i in tr], progress=say)
    temperature, intercept = fit_platt(y[va], z_va)
    probs = sigmoid(z_va / temperature + intercept)
    dist = fit_training_distribution(f_tr, h_tr, f_va, h_va)
    dist.save(out / OOD_FILE)
    val = binary_metrics(y[va], probs)
    val["calibration"] = calibration_summary(y[va], probs)
    val["runtime"] = (f"LiteRT export in this bundle, {len(TTA_CROPS)} ROIs on the narrowest "
                      "slice and its neighbours (the slice rule 'narrowest'), Platt scaling "
                      "fitted on these patients")
    if cohort:
        val["best_achievable_auc"] = _best_auc_on(cohort, manifest, va)
    full = json.loads((out / CARD).read_text())
    full["calibration"] = {"method": "Platt scaling", "temperature": round(temperature, 6),
                           "intercept": round(intercept, 6),
                           "fitted_on": f"{len(va)} held-out patients (validation split)"}
    flagged = [dist.distance(f, h) > dist.threshold for f, h in zip(f_va, h_va, strict=True)]
    full["ood"] = {"file": OOD_FILE, "threshold": dist.threshold, "percentile": 99,
                   "feature_threshold": round(dist.features.threshold, 6),
                   "intensity_threshold": round(dist.intensities.threshold, 6),
                   "fitted_on": f"pooled features and input intensity histograms of {len(tr)} "
                                "patients' ROI sets; thresholds: 99th percentile of their and "
                                "the held-out patients' distances; distance = the larger of "
                                "the two distances over their thresholds",
                   "flagged_validation": round(float(np.mean(flagged)), 4)}
    full["files"][OOD_FILE] = sha256_file(out / OOD_FILE)
    full["metrics"] = {"validation": val, "training": record["metrics"]["training"]}
    write_atomically(out / CARD, json.dumps(full, indent=1).encode(), private=False)
    load_bundle(out)  # verify what was written
    return full


def _best_auc_on(cohort: dict, manifest: Path, idx: np.ndarray) -> float | None:
    """The generator's own probability scored on the same held-out patients."""
    from ..manifest import generator_probabilities, read_manifest

    every = read_manifest(manifest)
    cases = [every[i] for i in idx]
    p = generator_probabilities(cases)
    return None if p is None else round(auc_delong([c.label for c in cases], p).auc, 4)


def train(manifest: str | Path, out: str | Path, config: TrainConfig, *, name: str,
          version: str = "1.0.0", precision: str = "float32", progress=None,
          overwrite: bool = False) -> dict:
    manifest, out = Path(manifest), Path(out)
    # with one slice on each side: augmentation (the neighbouring slice) and the card's
    # calibration under the slice rule
    regions, y, cases = load_regions(manifest, around=1, progress=(
        lambda d, t: progress(f"reading studies {d}/{t}") if progress and (d % 50 == 0 or d == t)
        else None))
    targets = None
    if config.soft_labels:
        from ..errors import ManifestError

        try:
            targets = np.array([float(c.row[config.soft_labels]) for c in cases])
        except (KeyError, TypeError, ValueError):
            raise ManifestError(f"The manifest has no numeric column {config.soft_labels!r} "
                                "for --soft-labels.", manifest) from None
        if not np.all((targets >= 0) & (targets <= 1)):
            raise ManifestError(f"--soft-labels {config.soft_labels}: values must be 0..1.",
                                manifest)
    model, record = fit_and_evaluate(regions, y, config, progress=progress, targets=targets)
    return bundle_from_trained(model, record, regions, y, manifest, out, name=name,
                               version=version, precision=precision, overwrite=overwrite,
                               progress=progress)


def bundle_from_directory(trained: str | Path, manifest: str | Path, out: str | Path, *,
                          name: str, version: str, precision: str, overwrite: bool = False,
                          progress=None) -> dict:
    """Bundle a model trained elsewhere (``model.keras`` + ``record.json`` written by
    :func:`save_trained`, e.g. on a GPU machine) with the same manifest."""
    import keras

    trained, manifest = Path(trained), Path(manifest)
    record = json.loads((trained / "record.json").read_text())
    model = keras.saving.load_model(trained / "model.keras", safe_mode=True)
    regions, y, _ = load_regions(manifest, around=1)
    return bundle_from_trained(model, record, regions, y, manifest, Path(out), name=name,
                               version=version, precision=precision, overwrite=overwrite,
                               progress=progress)


def save_trained(model, record: dict, folder: str | Path) -> None:
    from .network import save_weights_only_model

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_weights_only_model(model, folder / "model.keras")
    (folder / "record.json").write_text(json.dumps(record))
