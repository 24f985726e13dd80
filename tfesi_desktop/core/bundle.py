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
from .fileio import write_atomically
from .paths import data_dir, resource_path
from .preprocess import PREPROCESSING_VERSION

BUNDLE_FORMAT = "tfesi-bundle/1"
CARD = "card.json"
LITERT_FILE = "model.tflite"
HEAD_FILE = "head.npz"
KERAS_FILE = "model.keras"
REQUIRED = (LITERT_FILE, HEAD_FILE)
# the Keras file serves training and the TensorFlow reference, never the runtime: a copy of a
# bundle without it (the packaged application's) still loads; when present it is verified
OPTIONAL = (KERAS_FILE,)
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
        if Path(name).name != name:
            raise ModelError(f"The model card names a file outside the bundle: {name}.", path)
        if not f.is_file():
            if name in OPTIONAL:
                continue
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


def _write_card(bundle_path: Path, card: dict) -> None:
    write_atomically(bundle_path / CARD, json.dumps(card, indent=1).encode(), private=False)


def record_evaluation(bundle: Bundle, result: dict, *, manifest: str | Path,
                      temperature: float | None = None) -> dict:
    """Add an evaluation (``tfesi evaluate`` result) to the bundle's card, and optionally the
    temperature fitted on it. The card is rewritten atomically; file hashes are unchanged."""
    import datetime as _dt

    card = json.loads((bundle.path / CARD).read_text())
    (name, entry), = result["scores"].items()
    record = {"date": _dt.date.today().isoformat(), "data": Path(manifest).name,
              "n": result["n"], "favourable": result["favourable"],
              "auc": round(entry["auc"]["auc"], 4),
              "auc_ci95": [round(v, 4) for v in entry["auc"]["ci95"]],
              "accuracy": round(entry["table"]["accuracy"], 4),
              "brier": round(entry["brier"], 4) if "brier" in entry else None}
    card.setdefault("metrics", {}).setdefault("evaluations", []).append(record)
    if temperature is not None:
        card["calibration"] = {"temperature": float(temperature), "fitted_on": record["data"],
                               "n": record["n"], "method": "temperature scaling"}
    card.setdefault("changelog", []).append(
        f"{record['date']}: evaluated on {record['data']} (AUC {record['auc']:.3f})"
        + (f"; temperature {temperature:.3f}" if temperature is not None else ""))
    _write_card(bundle.path, card)
    return record


def install_bundle(path: str | Path, *, make_default: bool = True) -> Path:
    """Copy a verified bundle into the user's model folder and (by default) make it the
    default of the desktop program and the command line."""
    import shutil

    b = load_bundle(path)
    if "validation" not in b.card.get("metrics", {}):
        raise ModelError("This bundle carries no validated performance; evaluate it first "
                         "(tfesi evaluate --update-card).", b.path)
    dest_root = installed_models_dir()
    dest_root.mkdir(parents=True, exist_ok=True)
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in b.name)
    dest = dest_root / f"{safe}-{b.version}"
    tmp = dest_root / f".{dest.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(b.path, tmp)
    load_bundle(tmp)  # verify the copy
    if dest.exists():
        shutil.rmtree(dest)
    tmp.rename(dest)
    if make_default:
        write_atomically(dest_root / "DEFAULT", (dest.name + "\n").encode(), private=False)
    return dest


def installed_bundles() -> list[dict]:
    """The installed models (verified), with which one is the default."""
    root = installed_models_dir()
    default = default_bundle_path()
    out = []
    for p in sorted(root.iterdir()) if root.is_dir() else []:
        if not p.is_dir() or p.name.startswith("."):
            continue
        try:
            b = load_bundle(p)
        except ModelError as e:
            out.append({"name": p.name, "version": "?", "path": str(p), "default": False,
                        "performance": f"REFUSED: {e.message}"})
            continue
        out.append({"name": b.name, "version": b.version, "path": str(p),
                    "default": p == default, "performance": b.validated_performance()})
    return out
