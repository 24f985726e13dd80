"""Model bundles: a folder with the network (LiteRT and Keras), the head's weights and a card.

Bundles are data, not code, and cannot be changed quietly:

- ``card.json`` is read strictly (no NaN, at most 1 MiB) and its values are checked (types,
  threshold strictly between 0 and 1, temperature > 0, file names inside the bundle, the optional
  calibration, tta and ood sections); symbolic links anywhere in the bundle are refused;
- the SHA-256 of every file the card lists is verified before anything else reads them;
- the bundle's own SHA-256 (:func:`bundle_digest`: the card's bytes and the files it lists)
  identifies the model everywhere (``Bundle.sha256``, provenance, reports), so a changed card
  (threshold, temperature, disclaimer) shows as another model;
- ``tfesi model install`` records that digest and loading an installed bundle verifies it; the
  program pins the digest of the demonstration bundle it ships (:data:`DEMO_BUNDLE_SHA256`);
- optional Ed25519 signatures (``signature.json``, over the bundle digest) by keys in the user's
  trusted-keys folder: a signature that no longer matches refuses the bundle, and **once trusted
  keys exist, every load** (the default model, ``--model``, the window, ``tfesi model install``,
  the shipped demonstration model too) **requires a valid signature by one of them**: checked on
  the bundle itself at each load, so that neither the install record nor a deleted
  ``signature.json`` can switch it off;
- the arrays are checked before use: ``head.npz`` (shapes, finite float values) and ``ood.npz``
  (core/ood.py), read without pickles; the card's ROI set is at most :data:`MAX_TTA_CROPS`
  small shifts and scales.

A mismatch refuses the bundle with a clear :class:`ModelError`.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelError
from .fileio import write_atomically
from .paths import config_dir, data_dir, resource_path
from .preprocess import PREPROCESSING_VERSION

BUNDLE_FORMAT = "tfesi-bundle/1"
CARD = "card.json"
LITERT_FILE = "model.tflite"
HEAD_FILE = "head.npz"
KERAS_FILE = "model.keras"
SIGNATURE_FILE = "signature.json"
REQUIRED = (LITERT_FILE, HEAD_FILE)
# the Keras file serves training and the TensorFlow reference, never the runtime: a copy of a
# bundle without it (the packaged application's) still loads; when present it is verified
OPTIONAL = (KERAS_FILE,)
DEMO_BUNDLE = ("models", "demo-synthetic")
# The SHA-256 (bundle_digest) of the demonstration bundle shipped in resources/models/
# demo-synthetic. Retraining or re-exporting the demo model changes it: update this one value
# (tests/test_bundle.py prints the new one).
DEMO_BUNDLE_SHA256 = "ae6d93a6cc1cfccc6e07c99f69f38d50c00fc8e7e43a937048a1edce488fb71d"
INSTALLED_RECORD = "installed.json"
MAX_CARD_BYTES = 1 << 20
MAX_TTA_CROPS = 64  # the card's ROI set (tta.crops): each costs one network run per prediction
MAX_HEAD_UNITS = 1 << 14
_HEX = set("0123456789abcdef")


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with _open_plain(Path(path)) as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _open_plain(path: Path):
    """Open a regular file that is not a symbolic link, for binary reading."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(
        os, "O_BINARY", 0)
    fd = os.open(path, flags)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path} is not a regular file")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def bundle_digest(card_bytes: bytes, files: dict[str, str]) -> str:
    """The SHA-256 of a whole bundle: of its card's bytes and of the files the card lists (by
    their verified SHA-256, so that a runtime copy without the optional Keras file keeps the
    digest). Files the card does not list are never read by the program, and not covered."""
    h = hashlib.sha256(b"tfesi-bundle-digest/1\n")
    h.update(f"{CARD} {hashlib.sha256(card_bytes).hexdigest()}\n".encode())
    for name in sorted(files):
        h.update(f"{name} {files[name]}\n".encode())
    return h.hexdigest()


@dataclass(frozen=True)
class Bundle:
    path: Path
    card: dict
    digest: str = ""  # bundle_digest of the verified bundle
    signer: str | None = None  # the trusted key that signed it (file name), if any

    @property
    def name(self) -> str:
        return str(self.card["name"])

    @property
    def version(self) -> str:
        return str(self.card["version"])

    @property
    def sha256(self) -> str:
        """The model's identity: the SHA-256 of the whole bundle, its card included."""
        return self.digest or str(self.card["files"][LITERT_FILE])

    @property
    def litert_sha256(self) -> str:
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
        """One line for clinicians: the most independent AUC the card records, with its CI,
        accuracy and data. That is the latest evaluation on patients used neither in training
        nor in calibration (``tfesi evaluate --update-card``) when there is one; otherwise the
        held-out split, which the calibration was fitted on (and says so)."""
        m = self.card.get("metrics", {})
        who = f"{'synthetic ' if self.synthetic else ''}patients"
        independent = [e for e in m.get("evaluations", []) if e.get("independent", True)]
        if independent:
            v = independent[-1]
            which = f"{who} used neither in training nor in calibration ({v['data']})"
        elif m.get("validation"):
            v = m["validation"]
            which = f"held-out {who} (its calibration was fitted on them too)"
        else:
            return "No validated performance recorded for this model."
        lo, hi = v["auc_ci95"]
        text = (f"Validated AUC {v['auc']:.3f} (95 % CI {lo:.3f}-{hi:.3f}), accuracy "
                f"{100 * v['accuracy']:.1f} %, on {v['n']} {which}")
        if v.get("best_achievable_auc"):
            text += f"; best achievable AUC on these data {v['best_achievable_auc']:.3f}"
        return text + "."

    def disclaimer(self) -> str:
        if self.synthetic:
            return ("DEMONSTRATION MODEL - trained on synthetic images only; not for clinical use."
                    " The prediction supports and does not replace clinical judgement.")
        return "The prediction supports and does not replace clinical judgement."


# --- the card ---------------------------------------------------------------------------------

def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _plain_name(name) -> bool:
    return (isinstance(name, str) and 0 < len(name) <= 255 and Path(name).name == name
            and name not in (".", "..") and not name.startswith(".") and "/" not in name
            and "\\" not in name and "\0" not in name and ":" not in name)


def validate_card(card, where: Path | None = None) -> dict:
    """Check a card's structure and values; return it, or raise :class:`ModelError` saying
    which value is wrong. Unknown keys are accepted (cards grow); known ones must make sense."""

    def bad(what: str):
        raise ModelError(f"The model card is invalid: {what}", where)

    if not isinstance(card, dict) or card.get("format") != BUNDLE_FORMAT:
        raise ModelError(f"Unknown bundle format (expected {BUNDLE_FORMAT}).", where)
    for key in ("name", "version", "files", "preprocessing_version"):
        if key not in card:
            raise ModelError(f"The model card lacks '{key}'.", where)
    for key in ("name", "version"):
        if not isinstance(card[key], str) or not card[key].strip():
            bad(f"'{key}' must be a non-empty text.")
    if not isinstance(card["preprocessing_version"], int) or isinstance(
            card["preprocessing_version"], bool):
        bad("'preprocessing_version' must be a whole number.")
    files = card["files"]
    if not isinstance(files, dict) or not files:
        bad("'files' must map file names to their SHA-256.")
    for name, digest in files.items():
        if not _plain_name(name) or name in (CARD, SIGNATURE_FILE, INSTALLED_RECORD):
            raise ModelError(f"The model card names a file outside the bundle, or one it may "
                             f"not list: {name!r}.", where)
        if not (isinstance(digest, str) and len(digest) == 64 and set(digest) <= _HEX):
            bad(f"the SHA-256 of {name} must be 64 lower-case hexadecimal digits.")
    for name in REQUIRED:
        if name not in files:
            raise ModelError(f"The model card lists no {name}.", where)
    if "threshold" in card and not (_is_number(card["threshold"])
                                    and 0 < card["threshold"] < 1):
        bad("'threshold' must be a number strictly between 0 and 1.")
    for key in ("synthetic_training_data",):
        if key in card and not isinstance(card[key], bool):
            bad(f"'{key}' must be true or false.")
    for key in ("intended_use", "created"):
        if key in card and not isinstance(card[key], str):
            bad(f"'{key}' must be a text.")
    for key in ("limitations", "changelog"):
        if key in card and not (isinstance(card[key], list)
                                and all(isinstance(v, str) for v in card[key])):
            bad(f"'{key}' must be a list of texts.")
    for key in ("input", "architecture", "training", "runtime", "metrics"):
        if key in card and not isinstance(card[key], dict):
            bad(f"'{key}' must be an object.")
    v = card.get("metrics", {}).get("validation")
    if v is not None:
        if not isinstance(v, dict):
            bad("'metrics.validation' must be an object.")
        for key in ("auc", "accuracy"):
            if not (_is_number(v.get(key)) and 0 <= v[key] <= 1):
                bad(f"'metrics.validation.{key}' must be a number from 0 to 1.")
        ci = v.get("auc_ci95")
        if not (isinstance(ci, list) and len(ci) == 2 and all(_is_number(x) for x in ci)):
            bad("'metrics.validation.auc_ci95' must be two numbers.")
        if not (isinstance(v.get("n"), int) and not isinstance(v["n"], bool) and v["n"] > 0):
            bad("'metrics.validation.n' must be a positive whole number.")
        if "best_achievable_auc" in v and v["best_achievable_auc"] is not None and not (
                _is_number(v["best_achievable_auc"])):
            bad("'metrics.validation.best_achievable_auc' must be a number.")
    arch = card.get("architecture", {})
    if "parameters" in arch and not (isinstance(arch["parameters"], int)
                                     and not isinstance(arch["parameters"], bool)):
        bad("'architecture.parameters' must be a whole number.")
    cal = card.get("calibration")
    if cal is not None:
        if not isinstance(cal, dict):
            bad("'calibration' must be an object.")
        if "method" in cal and not isinstance(cal["method"], str):
            bad("'calibration.method' must be a text.")
        if "temperature" in cal and not (_is_number(cal["temperature"])
                                         and cal["temperature"] > 0):
            bad("'calibration.temperature' must be a number greater than 0.")
        if "intercept" in cal and not _is_number(cal["intercept"]):
            bad("'calibration.intercept' must be a number.")
    tta = card.get("tta")
    if tta is not None:
        if not isinstance(tta, dict):
            bad("'tta' must be an object.")
        crops = tta.get("crops")
        if crops is not None and not (
                isinstance(crops, list) and crops
                and all(isinstance(c, list) and len(c) == 3 and all(_is_number(x) for x in c)
                        and c[2] > 0 for c in crops)):
            bad("'tta.crops' must be a list of [dx, dy, scale] number triples, scale > 0.")
        if crops is not None and len(crops) > MAX_TTA_CROPS:
            bad(f"'tta.crops' holds {len(crops)} ROIs; at most {MAX_TTA_CROPS} are allowed.")
        if crops is not None and not all(abs(c[0]) <= 100 and abs(c[1]) <= 100
                                         and 0.25 <= c[2] <= 4 for c in crops):
            bad("'tta.crops' shifts must be at most 100 pixels and scales from 0.25 to 4.")
    ood = card.get("ood")
    if ood is not None:
        if not isinstance(ood, dict):
            bad("'ood' must be an object.")
        if "file" in ood and not (_plain_name(ood["file"]) and ood["file"] in files):
            bad("'ood.file' must name a file that the card lists under 'files'.")
        if "threshold" in ood and not (_is_number(ood["threshold"]) and ood["threshold"] > 0):
            bad("'ood.threshold' must be a number greater than 0.")
        if "percentile" in ood and not (_is_number(ood["percentile"])
                                        and 0 <= ood["percentile"] <= 100):
            bad("'ood.percentile' must be a number from 0 to 100.")
    return card


def _reject_constant(name):
    raise ValueError(f"{name} is not a number JSON allows")


def _read_card(path: Path) -> tuple[bytes, dict]:
    card_path = path / CARD
    try:
        with _open_plain(card_path) as f:
            data = f.read(MAX_CARD_BYTES + 1)
    except FileNotFoundError:
        raise ModelError("This is not a model bundle: it has no card.json.", path) from None
    except OSError as e:
        raise ModelError(f"The model card cannot be read ({e.strerror or e}).",
                         card_path) from e
    if len(data) > MAX_CARD_BYTES:
        raise ModelError("The model card is larger than 1 MiB.", card_path)
    try:
        card = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise ModelError(f"The model card cannot be read ({e}).", card_path) from e
    return data, card


def _check_entries(path: Path) -> None:
    """No symbolic links and nothing but plain files in a bundle folder."""
    try:
        entries = list(os.scandir(path))
    except OSError as e:
        raise ModelError(f"The bundle folder cannot be read ({e.strerror}).", path) from e
    for e in entries:
        if e.is_symlink():
            raise ModelError(f"The bundle holds a symbolic link ({e.name}); bundles must hold "
                             "their own files, and this one is refused.", path)


# --- signatures -------------------------------------------------------------------------------

def trusted_keys_dir() -> Path:
    """The folder of trusted Ed25519 public keys (``*.pem`` or ``*.pub`` OpenSSH lines)."""
    return config_dir() / "trusted-keys"


def _crypto():
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError as e:  # pragma: no cover - a dependency, but say so clearly
        raise ModelError("Model signatures need the 'cryptography' package, which is not "
                         "installed.") from e
    return InvalidSignature, serialization, ed25519


def _raw_public(key) -> bytes:
    _, serialization, _ = _crypto()
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def load_public_key(path: Path):
    """An Ed25519 public key from a PEM or OpenSSH file, or :class:`ModelError`."""
    _, serialization, ed25519 = _crypto()
    try:
        data = Path(path).read_bytes()
        key = (serialization.load_ssh_public_key(data) if data.startswith(b"ssh-")
               else serialization.load_pem_public_key(data))
    except (OSError, ValueError, TypeError) as e:
        raise ModelError(f"This is not a readable public key ({e}).", path) from e
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise ModelError("This public key is not an Ed25519 key.", path)
    return key


def trusted_keys() -> dict[str, object]:
    """Trusted public keys by key id (the first 16 hex digits of the SHA-256 of the raw key),
    as (file name, key)."""
    folder = trusted_keys_dir()
    out = {}
    if not folder.is_dir():
        return out
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() in (".pem", ".pub") and p.is_file():
            key = load_public_key(p)
            out[_key_id(_raw_public(key))] = (p.name, key)
    return out


def _key_id(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()[:16]


def _signed_message(digest: str) -> bytes:
    return b"tfesi-bundle-signature/1\n" + digest.encode()


def sign_bundle(path: str | Path, private_key: str | Path, *, new_key: bool = False) -> dict:
    """Sign a verified bundle with an Ed25519 private key (PEM, unencrypted), writing
    ``signature.json`` into it. With ``new_key`` a key pair is made first: the private key at
    ``private_key`` (0600) and its public key beside it (``.pub.pem``), to be copied into the
    trusted-keys folder of the computers that should accept the bundle."""
    _, serialization, ed25519 = _crypto()
    key_path = Path(private_key)
    if new_key:
        if key_path.exists():
            raise ModelError("This key file exists already; choose another name.", key_path)
        key = ed25519.Ed25519PrivateKey.generate()
        write_atomically(key_path, key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()), private=True)
        write_atomically(key_path.with_name(key_path.stem + ".pub.pem"),
                         key.public_key().public_bytes(
                             serialization.Encoding.PEM,
                             serialization.PublicFormat.SubjectPublicKeyInfo), private=False)
    else:
        try:
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as e:
            raise ModelError(f"This is not a readable unencrypted PEM private key ({e}).",
                             key_path) from e
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise ModelError("This private key is not an Ed25519 key.", key_path)
    b = _load(Path(path), check_signature=False)
    raw = _raw_public(key.public_key())
    sig = {"format": "tfesi-signature/1", "algorithm": "Ed25519", "bundle_sha256": b.digest,
           "key_id": _key_id(raw), "public_key": raw.hex(),
           "signature": key.sign(_signed_message(b.digest)).hex(),
           "signed": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")}
    write_atomically(b.path / SIGNATURE_FILE, json.dumps(sig, indent=1).encode(), private=False)
    return sig


def _read_signature(path: Path) -> dict | None:
    f = path / SIGNATURE_FILE
    if not f.exists() and not f.is_symlink():
        return None
    try:
        with _open_plain(f) as fh:
            sig = json.loads(fh.read(65536).decode("utf-8"), parse_constant=_reject_constant)
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ModelError(f"The bundle's signature cannot be read ({e}).", f) from e
    if not (isinstance(sig, dict) and sig.get("algorithm") == "Ed25519"
            and all(isinstance(sig.get(k), str) for k in
                    ("bundle_sha256", "key_id", "public_key", "signature"))):
        raise ModelError("The bundle's signature file is not a tfesi Ed25519 signature.", f)
    return sig


def _check_signature(path: Path, digest: str, sig: dict) -> str | None:
    """The trusted key file that signed this digest, None when the signer is not trusted;
    :class:`ModelError` when the signature does not match."""
    where = path / SIGNATURE_FILE
    if sig["bundle_sha256"] != digest:
        raise ModelError("The bundle was changed after it was signed (its SHA-256 differs from "
                         "the signed one), and is refused.", where)
    InvalidSignature, _, ed25519 = _crypto()
    try:
        raw = bytes.fromhex(sig["public_key"])
        signature = bytes.fromhex(sig["signature"])
        key = ed25519.Ed25519PublicKey.from_public_bytes(raw)
        key.verify(signature, _signed_message(digest))
    except (ValueError, InvalidSignature) as e:
        raise ModelError("The bundle's signature is not valid; the bundle is refused.",
                         where) from e
    trusted = trusted_keys().get(_key_id(raw))
    return trusted[0] if trusted else None


def verify_signature(path: str | Path, public_key: str | Path | None = None) -> Bundle:
    """Verify a bundle and its signature by a trusted key (or by ``public_key``); return the
    bundle, or raise :class:`ModelError` (unsigned, changed since signed, untrusted signer)."""
    b = _load_checked(Path(path))
    sig = _read_signature(b.path)
    if sig is None:
        raise ModelError("This bundle is not signed.", b.path)
    if public_key is not None:
        raw = _raw_public(load_public_key(Path(public_key)))
        if raw.hex() != sig["public_key"]:
            raise ModelError("This bundle was signed with another key.", b.path)
        return Bundle(b.path, b.card, b.digest, Path(public_key).name)
    if b.signer is None:
        raise ModelError(f"This bundle's signature is valid, but its key ({sig['key_id']}) is "
                         f"not among the trusted keys in {trusted_keys_dir()}.", b.path)
    return b


# --- loading ----------------------------------------------------------------------------------

def _expected_digest(path: Path) -> tuple[str | None, str]:
    """(the digest this bundle must have, where that comes from): the pinned value for the
    shipped demo bundle, the recorded one for an installed bundle, else (None, "")."""
    try:
        real = path.resolve()
        if real == resource_path(*DEMO_BUNDLE).resolve():
            return DEMO_BUNDLE_SHA256, "the demonstration model shipped with this program"
        root = installed_models_dir().resolve()
    except OSError:
        return None, ""
    if real.parent == root:
        entry = _installed_record().get(real.name)
        if not entry:
            raise ModelError("This installed model has no recorded SHA-256 (it was not installed "
                             "with `tfesi model install`, or by an older version); install it "
                             "again.", path)
        return entry.get("sha256"), "the SHA-256 recorded when it was installed"
    return None, ""


def load_bundle(path: str | Path) -> Bundle:
    """Read and verify a bundle folder (see the module docstring); with trusted keys set up,
    only a bundle validly signed by one of them."""
    b = _load_checked(Path(path))
    require_trusted(b)
    return b


def require_trusted(b: Bundle) -> None:
    """:class:`ModelError` when trusted keys are set up and ``b`` is not signed by one."""
    if b.signer is not None:
        return
    keys = trusted_keys()
    if not keys:
        return
    sig = _read_signature(b.path)
    why = ("it is not signed" if sig is None else
           f"its signature's key ({sig['key_id']}) is not among the trusted keys")
    raise ModelError(f"Trusted keys are set up ({trusted_keys_dir()}), so only bundles signed "
                     f"by one of them are used; this one is refused: {why}.", b.path)


def _load_checked(path: Path) -> Bundle:
    expected, source = _expected_digest(path)
    return _load(path, expected=expected, source=source)


def _load(path: Path, *, check_signature: bool = True, expected: str | None = None,
          source: str = "") -> Bundle:
    if not path.is_dir():
        raise ModelError("This model bundle folder does not exist.", path)
    _check_entries(path)
    card_bytes, card = _read_card(path)
    card_path = path / CARD
    validate_card(card, card_path)
    if card["preprocessing_version"] != PREPROCESSING_VERSION:
        raise ModelError(
            f"This model was made for preprocessing version {card['preprocessing_version']}, "
            f"but this program uses version {PREPROCESSING_VERSION}; its predictions would be "
            "wrong. Retrain or export the model with this version.", path)
    for name, digest in card["files"].items():
        f = path / name
        try:
            actual = sha256_file(f)
        except FileNotFoundError:
            if name in OPTIONAL:
                continue
            raise ModelError(f"The bundle's file {name} is missing.", path) from None
        except OSError as e:
            raise ModelError(f"The bundle's file {name} cannot be read ({e.strerror or e}).",
                             f) from e
        if actual != digest:
            raise ModelError(f"The file {name} does not match the SHA-256 in the model card: "
                             "the bundle was changed or damaged, and is refused.", f)
    digest = bundle_digest(card_bytes, card["files"])
    if expected is not None and digest != expected:
        raise ModelError(f"This model bundle differs from {source} (SHA-256 {digest[:16]}... "
                         f"instead of {str(expected)[:16]}...): it was changed, and is refused.",
                         path)
    signer = None
    if check_signature:
        sig = _read_signature(path)
        if sig is not None:
            signer = _check_signature(path, digest, sig)
    channels = _check_head(path / HEAD_FILE)
    if "ood.npz" in card["files"]:  # core/ood.py OOD_FILE, read by the runtime when listed
        _check_ood(path / "ood.npz", channels)
    return Bundle(path, card, digest, signer)


def _arrays(f: Path) -> dict:
    """The arrays of an ``.npz`` file, read without pickles; ModelError when it is not one."""
    import zipfile

    import numpy as np

    try:
        with _open_plain(f) as fh:
            z = np.load(fh, allow_pickle=False)
            if not isinstance(z, np.lib.npyio.NpzFile):
                raise ValueError("not an .npz archive")
            with z:
                return {k: np.asarray(z[k]) for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError, TypeError) as e:
        raise ModelError(f"The bundle's {f.name} is not a readable array file ({e}); the bundle "
                         "is refused.", f) from e


def _check_head(f: Path) -> int:
    """head.npz: w1 (channels, units), b1 (units,), w2 (units elements), b2 (1 element),
    optional bn_scale and bn_shift (units,); finite floats."""
    import numpy as np

    a = _arrays(f)

    def bad(what: str):
        raise ModelError(f"The bundle's {f.name} is malformed: {what}; the bundle is refused.", f)

    for k in ("w1", "b1", "w2", "b2"):
        if k not in a:
            bad(f"it lacks '{k}'")
    for k, v in a.items():
        if v.dtype.kind != "f" or not np.all(np.isfinite(v)):
            bad(f"'{k}' must hold finite floating-point numbers")
    w1 = a["w1"]
    if w1.ndim != 2 or not (0 < w1.shape[1] <= MAX_HEAD_UNITS) or w1.shape[0] == 0:
        bad(f"'w1' has shape {w1.shape}, not (channels, units)")
    units = w1.shape[1]
    if a["b1"].shape != (units,) or a["w2"].size != units or a["b2"].size != 1:
        bad("the shapes of 'b1', 'w2' and 'b2' do not fit 'w1'")
    if ("bn_scale" in a) != ("bn_shift" in a) or any(
            a[k].shape != (units,) for k in ("bn_scale", "bn_shift") if k in a):
        bad("'bn_scale' and 'bn_shift' must both be there, each of the units' size")
    return int(w1.shape[0])


def _check_ood(f: Path, channels: int) -> None:
    import numpy as np

    from .ood import TrainingDistribution

    for k, v in _arrays(f).items():
        if v.dtype.kind != "f" or not np.all(np.isfinite(v)):
            raise ModelError(f"The bundle's {f.name} is malformed: '{k}' must hold finite "
                             "floating-point numbers; the bundle is refused.", f)
    try:
        d = TrainingDistribution.load(f)
    except ModelError:
        raise
    except Exception as e:  # noqa: BLE001 - any damage of this file is a refusal, said so
        raise ModelError(f"The bundle's {f.name} is malformed ({type(e).__name__}); the bundle "
                         "is refused.", f) from e
    if d.features.mean.shape != (channels,) or not np.isfinite(d.features.mean).all():
        raise ModelError(f"The bundle's {f.name} is malformed: its features have "
                         f"{d.features.mean.shape[0]} channels, the head {channels}; the bundle "
                         "is refused.", f)


def installed_models_dir() -> Path:
    return data_dir() / "models"


def _installed_record() -> dict[str, dict]:
    """What ``tfesi model install`` recorded: {folder name: {"sha256": ..., ...}}."""
    f = installed_models_dir() / INSTALLED_RECORD
    try:
        with _open_plain(f) as fh:
            rec = json.loads(fh.read(MAX_CARD_BYTES).decode("utf-8"),
                             parse_constant=_reject_constant)
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ModelError(f"The record of installed models cannot be read ({e}); install the "
                         "models again.", f) from e
    bundles = rec.get("bundles") if isinstance(rec, dict) else None
    if not isinstance(bundles, dict) or not all(isinstance(v, dict) for v in bundles.values()):
        raise ModelError("The record of installed models is damaged; install the models again.",
                         f)
    return bundles


def default_bundle_path() -> Path:
    """The installed default model (``tfesi model install``), else the bundled demo model."""
    default = installed_models_dir() / "DEFAULT"
    if default.is_file():
        try:
            name = default.read_text().strip()
        except (OSError, UnicodeDecodeError):
            name = ""
        p = installed_models_dir() / name
        if _plain_name(name) and p.is_dir():
            return p
    return resource_path(*DEMO_BUNDLE)


def _write_card(bundle_path: Path, card: dict) -> None:
    write_atomically(bundle_path / CARD, json.dumps(card, indent=1).encode(), private=False)


def describe_data(manifest: str | Path) -> str:
    """The cohort a manifest describes, in words for the card: a synthetic cohort by its seed
    and generator version (``cohort.json`` beside it), otherwise its folder and file name."""
    manifest = Path(manifest)
    try:
        c = json.loads((manifest.parent / "cohort.json").read_text())
        return (f"tfesi synth seed {int(c['seed'])}, generator version "
                f"{int(c['generator_version'])}")
    except (OSError, ValueError, KeyError, TypeError):
        return f"{manifest.parent.name}/{manifest.name}"


def record_evaluation(bundle: Bundle, result: dict, *, manifest: str | Path,
                      platt: tuple[float, float] | None = None) -> dict:
    """Add an evaluation (``tfesi evaluate`` result) to the bundle's card, and optionally the
    Platt scaling (temperature, intercept) fitted on it. The card is rewritten atomically; file
    hashes are unchanged, the bundle's own SHA-256 changes (and a signature must be made again).
    The shipped demo bundle and installed bundles are not changed: evaluate the bundle folder,
    then install it again."""
    expected, _ = _expected_digest(bundle.path)
    if expected is not None:
        raise ModelError("This model is installed (or is the shipped demonstration model) and "
                         "is not changed in place: evaluate the bundle folder it came from with "
                         "--model, then install that again.", bundle.path)
    _, card = _read_card(bundle.path)
    (name, entry), = result["scores"].items()
    record = {"date": _dt.date.today().isoformat(), "data": describe_data(manifest),
              "n": result["n"], "favourable": result["favourable"],
              # six places: the card's 0.8955 read 0.895 where the evaluation printed 0.896
              "auc": round(entry["auc"]["auc"], 6),
              "auc_ci95": [round(v, 6) for v in entry["auc"]["ci95"]],
              "accuracy": round(entry["table"]["accuracy"], 4),
              "brier": round(entry["brier"], 4) if "brier" in entry else None}
    for key in ("calibration", "stable_prediction", "pointing_game", "best_achievable_auc",
                "best_auc_gap"):
        if key in result:
            record[key] = result[key]
    # calibrated on these patients: its AUC is no longer an independent check of the program
    record["independent"] = platt is None
    card.setdefault("metrics", {}).setdefault("evaluations", []).append(record)
    if platt is not None:
        card["calibration"] = {"method": "Platt scaling", "temperature": float(platt[0]),
                               "intercept": float(platt[1]), "fitted_on": record["data"],
                               "n": record["n"]}
    card.setdefault("changelog", []).append(
        f"{record['date']}: evaluated on {record['data']} (AUC {record['auc']:.3f})"
        + (f"; Platt scaling T {platt[0]:.3f}, b {platt[1]:+.3f}" if platt else ""))
    validate_card(card, bundle.path / CARD)
    _write_card(bundle.path, card)
    if (bundle.path / SIGNATURE_FILE).exists():
        (bundle.path / SIGNATURE_FILE).unlink()  # no longer true: sign again
    return record


def install_bundle(path: str | Path, *, make_default: bool = True) -> Path:
    """Copy a verified bundle into the user's model folder, record its SHA-256 (verified on
    every load), and (by default) make it the default of the desktop program and the command
    line. Once the trusted-keys folder holds keys, only bundles signed by one are installed."""
    import shutil
    import tempfile

    b = load_bundle(path)
    if "validation" not in b.card.get("metrics", {}):
        raise ModelError("This bundle carries no validated performance; evaluate it first "
                         "(tfesi evaluate --update-card).", b.path)
    dest_root = installed_models_dir()
    try:
        dest_root.mkdir(parents=True, exist_ok=True)
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in b.name)
        dest = dest_root / f"{safe}-{b.version}".lstrip(".")
        tmp = Path(tempfile.mkdtemp(prefix=".install-", dir=dest_root))
    except OSError as e:
        raise ModelError(f"The model folder cannot be written ({e.strerror}).", dest_root) from e
    try:
        names = [CARD, *(n for n in b.card["files"] if (b.path / n).is_file())]
        if (b.path / SIGNATURE_FILE).is_file():
            names.append(SIGNATURE_FILE)
        for n in names:  # only what the card covers: nothing else is carried along
            shutil.copyfile(b.path / n, tmp / n, follow_symlinks=False)
        os.chmod(tmp, 0o755)
        copy = _load(tmp)  # verify the copy
        if copy.digest != b.digest:
            raise ModelError("The bundle changed while it was being installed.", b.path)
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ModelError(f"The model could not be installed ({e.strerror or e}).", dest) from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        record = _installed_record()
    except ModelError:
        record = {}  # a damaged record is replaced; its models must be installed again
    record[dest.name] = {"sha256": b.digest, "name": b.name, "version": b.version,
                         "installed": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                         "signed_by": b.signer}
    write_atomically(dest_root / INSTALLED_RECORD,
                     json.dumps({"format": "tfesi-installed/1", "bundles": record},
                                indent=1).encode(), private=False)
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
                    "default": p == default, "performance": b.validated_performance(),
                    "sha256": b.sha256, "signed_by": b.signer})
    return out
