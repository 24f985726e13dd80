"""Model bundles: a folder with the network (LiteRT and Keras), the head's weights and a card.

Bundles are data, not code. Loading reads ``card.json``, checks its format and preprocessing
version, and verifies the SHA-256 of every file it lists before anything else reads them; a
mismatch refuses the bundle with a clear error. The model's identity is the SHA-256 of the LiteRT
file that produces the predictions.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelError
from .paths import data_dir, resource_path
from .preprocess import PREPROCESSING_VERSION

BUNDLE_FORMAT = "tfesi-bundle/1"
CARD = "card.json"
LITERT_FILE = "model.tflite"
HEAD_FILE = "head.npz"
KERAS_FILE = "model.keras"
REQUIRED = (LITERT_FILE, HEAD_FILE)
DEMO_BUNDLE = ("models", "demo-synthetic")


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class Bundle:
    path: Path
    card: dict

    @property
    def name(self) -> str:
        return str(self.card["name"])

    @property
    def version(self) -> str:
        return str(self.card["version"])

    @property
    def sha256(self) -> str:
        return str(self.card["files"][LITERT_FILE])

    @property
    def threshold(self) -> float:
        return float(self.card.get("threshold", 0.5))

    @property
    def synthetic(self) -> bool:
        return bool(self.card.get("synthetic_training_data", False))

    def file(self, name: str) -> Path:
        return self.path / name

    def validated_performance(self) -> str:
        """One line for clinicians: the held-out AUC with its CI, accuracy and data."""
        v = self.card.get("metrics", {}).get("validation")
        if not v:
            return "No validated performance recorded for this model."
        lo, hi = v["auc_ci95"]
        text = (f"Validated AUC {v['auc']:.3f} (95 % CI {lo:.3f}-{hi:.3f}), accuracy "
                f"{100 * v['accuracy']:.1f} %, on {v['n']} held-out "
                f"{'synthetic ' if self.synthetic else ''}patients")
        if v.get("best_achievable_auc"):
            text += f" (best achievable AUC on these data {v['best_achievable_auc']:.3f})"
        return text + "."

    def disclaimer(self) -> str:
        if self.synthetic:
            return ("DEMONSTRATION MODEL - trained on synthetic images only; not for clinical use."
                    " The prediction supports and does not replace clinical judgement.")
        return "The prediction supports and does not replace clinical judgement."


def load_bundle(path: str | Path) -> Bundle:
    """Read and verify a bundle folder (see the module docstring)."""
    path = Path(path)
    card_path = path / CARD
    if not card_path.is_file():
        raise ModelError("This is not a model bundle: it has no card.json.", path)
    try:
        card = json.loads(card_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(f"The model card cannot be read ({e}).", card_path) from e
    if not isinstance(card, dict) or card.get("format") != BUNDLE_FORMAT:
        raise ModelError(f"Unknown bundle format (expected {BUNDLE_FORMAT}).", card_path)
    for key in ("name", "version", "files", "preprocessing_version"):
        if key not in card:
            raise ModelError(f"The model card lacks '{key}'.", card_path)
    if card["preprocessing_version"] != PREPROCESSING_VERSION:
        raise ModelError(
            f"This model was made for preprocessing version {card['preprocessing_version']}, "
            f"but this program uses version {PREPROCESSING_VERSION}; its predictions would be "
            "wrong. Retrain or export the model with this version.", path)
    files = card["files"]
    for name in REQUIRED:
        if name not in files:
            raise ModelError(f"The model card lists no {name}.", card_path)
    for name, digest in files.items():
        f = path / name
        if Path(name).name != name or not f.is_file():
            raise ModelError(f"The bundle's file {name} is missing.", path)
        if sha256_file(f) != digest:
            raise ModelError(f"The file {name} does not match the SHA-256 in the model card: "
                             "the bundle was changed or damaged, and is refused.", f)
    return Bundle(path, card)


def installed_models_dir() -> Path:
    return data_dir() / "models"


def default_bundle_path() -> Path:
    """The installed default model (``tfesi model install``), else the bundled demo model."""
    default = installed_models_dir() / "DEFAULT"
    if default.is_file():
        p = installed_models_dir() / default.read_text().strip()
        if p.is_dir():
            return p
    return resource_path(*DEMO_BUNDLE)
