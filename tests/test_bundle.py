"""Model bundles that cannot be changed quietly (issue 12): card validation, whole-bundle
SHA-256 recorded at install and pinned for the demo, no symlinks, Ed25519 signatures."""

import json
import os
import shutil
import sys

import pytest

from tfesi_desktop.cli import main
from tfesi_desktop.core import bundle as bundle_mod
from tfesi_desktop.core.bundle import (
    CARD,
    DEMO_BUNDLE,
    install_bundle,
    load_bundle,
    sha256_file,
    sign_bundle,
    trusted_keys_dir,
    verify_signature,
)
from tfesi_desktop.core.errors import ModelError
from tfesi_desktop.core.paths import resource_path

DEMO = resource_path(*DEMO_BUNDLE)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A copy of the demo bundle without its Keras file (as the packaged program ships it)."""
    out = tmp_path_factory.mktemp("base") / "demo"
    out.mkdir()
    for f in DEMO.iterdir():
        if f.name != "model.keras":
            shutil.copy(f, out / f.name)
    return out


@pytest.fixture
def bundle(base, tmp_path):
    out = tmp_path / "b"
    shutil.copytree(base, out)
    return out


def _card(b):
    return json.loads((b / CARD).read_text())


def _set_card(b, edit):
    card = _card(b)
    edit(card)
    (b / CARD).write_text(json.dumps(card, indent=1))


def _one_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "internal" not in err[0], err
    return err[0]


def test_the_pinned_demo_digest_matches_the_shipped_demo_bundle():
    actual = bundle_mod._load(DEMO).digest
    assert actual == bundle_mod.DEMO_BUNDLE_SHA256, (
        "The demo bundle in resources/models/demo-synthetic changed (retrained or re-exported). "
        "If that was intended, set DEMO_BUNDLE_SHA256 in tfesi_desktop/core/bundle.py to "
        f'"{actual}".')
    assert load_bundle(DEMO).sha256 == actual


def test_a_changed_demo_bundle_is_refused(monkeypatch):
    monkeypatch.setattr(bundle_mod, "DEMO_BUNDLE_SHA256", "0" * 64)
    with pytest.raises(ModelError, match="differs from the demonstration model shipped"):
        load_bundle(DEMO)


def test_the_runtime_copy_keeps_the_digest(bundle):
    assert load_bundle(bundle).sha256 == bundle_mod._load(DEMO).digest


def test_a_changed_card_changes_the_model_identity(bundle):
    before = load_bundle(bundle).sha256
    _set_card(bundle, lambda c: c.update(synthetic_training_data=False))
    after = load_bundle(bundle)
    assert after.sha256 != before  # printed in every prediction and report


@pytest.mark.parametrize("edit, match", [
    (lambda c: c.update(threshold=0), "threshold"),
    (lambda c: c.update(threshold=1), "threshold"),
    (lambda c: c.update(threshold="abc"), "threshold"),
    (lambda c: c.update(threshold=True), "threshold"),
    (lambda c: c.update(calibration={"temperature": -1.0}), "temperature"),
    (lambda c: c.update(calibration={"temperature": 0}), "temperature"),
    (lambda c: c.update(calibration={"method": 3}), "method"),
    (lambda c: c.update(files=list(c["files"])), "files"),
    (lambda c: c["files"].update({"../secret": "0" * 64}), "outside the bundle"),
    (lambda c: c["files"].update({"/etc/passwd": "0" * 64}), "outside the bundle"),
    (lambda c: c["files"].update({"head.npz": "XYZ"}), "hexadecimal"),
    (lambda c: c.update(synthetic_training_data="no"), "synthetic_training_data"),
    (lambda c: c.update(name=""), "name"),
    (lambda c: c.update(preprocessing_version="1"), "preprocessing_version"),
    (lambda c: c.update(tta={"crops": [[0, 0]]}), "tta.crops"),
    (lambda c: c.update(tta={"crops": [[0, 0, "x"]]}), "tta.crops"),
    (lambda c: c.update(tta={"crops": [[0, 0, 0]]}), "tta.crops"),
    (lambda c: c.update(ood={"file": "other.npz", "threshold": 1.0}), "ood.file"),
    (lambda c: c.update(ood={"threshold": -2}), "ood.threshold"),
    (lambda c: c.update(ood={"percentile": 101}), "ood.percentile"),
    (lambda c: c["metrics"]["validation"].update(auc="high"), "auc"),
    (lambda c: c.update(limitations="none"), "limitations"),
    (lambda c: c.pop("name"), "lacks 'name'"),
    (lambda c: c.update(format="other"), "Unknown bundle format"),
])
def test_card_values_are_checked(bundle, edit, match, capsys):
    _set_card(bundle, edit)
    with pytest.raises(ModelError, match=match):
        load_bundle(bundle)
    assert main(["model", "info", str(bundle)]) == 2
    _one_error(capsys)


def test_nan_and_huge_cards_are_refused(bundle):
    text = (bundle / CARD).read_text().replace('"threshold": 0.5', '"threshold": NaN')
    (bundle / CARD).write_text(text)
    with pytest.raises(ModelError, match="cannot be read"):
        load_bundle(bundle)
    (bundle / CARD).write_bytes(b" " * (2 << 20))
    with pytest.raises(ModelError, match="larger than 1 MiB"):
        load_bundle(bundle)


def test_the_optional_sections_of_this_round_are_accepted(bundle):
    shutil.copy(DEMO / "ood.npz", bundle / "ood.npz")

    def edit(c):
        c["calibration"] = {"method": "temperature scaling", "temperature": 1.7, "n": 300,
                            "fitted_on": "val"}
        c["tta"] = {"crops": [[0, 0, 1.0], [-3, 2, 0.9], [3.5, -2, 1.1]], "note": "13 ROIs"}
        c["ood"] = {"file": "ood.npz", "threshold": 12.5, "percentile": 99}
        c["files"]["ood.npz"] = sha256_file(bundle / "ood.npz")

    _set_card(bundle, edit)
    b = load_bundle(bundle)
    assert b.card["tta"]["crops"][1] == [-3, 2, 0.9]
    # the extra file is hashed like the others
    with open(bundle / "ood.npz", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ModelError, match="ood.npz does not match"):
        load_bundle(bundle)


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks")
def test_symlinks_in_a_bundle_are_refused(bundle, tmp_path):
    outside = tmp_path / "elsewhere.npz"
    shutil.move(bundle / "head.npz", outside)
    (bundle / "head.npz").symlink_to(outside)
    with pytest.raises(ModelError, match="symbolic link"):
        load_bundle(bundle)


def test_install_records_the_digest_and_loading_verifies_it(bundle, capsys):
    dest = install_bundle(bundle)
    assert load_bundle(dest).sha256 == load_bundle(bundle).sha256
    rec = json.loads((dest.parent / "installed.json").read_text())
    assert rec["bundles"][dest.name]["sha256"] == load_bundle(bundle).sha256
    # the attack of the issue: replace head.npz together with its hash in the card
    import numpy as np

    np.savez(dest / "head.npz", w=np.zeros(3))
    _set_card(dest, lambda c: c["files"].update({"head.npz": sha256_file(dest / "head.npz")}))
    with pytest.raises(ModelError, match="recorded when it was installed"):
        load_bundle(dest)
    assert main(["model", "info"]) == 2  # the default model is now refused, clearly
    assert "recorded when it was installed" in _one_error(capsys)
    assert main(["model", "list"]) == 0
    assert "REFUSED" in capsys.readouterr().out


def test_installed_card_change_is_refused_and_not_recorded_ones_too(bundle):
    dest = install_bundle(bundle)
    _set_card(dest, lambda c: c.update(synthetic_training_data=False))
    with pytest.raises(ModelError, match="changed"):
        load_bundle(dest)
    stray = dest.parent / "copied-by-hand"
    shutil.copytree(bundle, stray)
    with pytest.raises(ModelError, match="install it again"):
        load_bundle(stray)


def test_evaluation_does_not_rewrite_installed_or_demo_cards(bundle):
    from tfesi_desktop.core.bundle import record_evaluation

    dest = install_bundle(bundle)
    result = {"scores": {"x": {"auc": {"auc": 0.8, "ci95": [0.7, 0.9]},
                               "table": {"accuracy": 0.7}}}, "n": 10, "favourable": 5}
    for b in (load_bundle(dest), load_bundle(DEMO)):
        with pytest.raises(ModelError, match="not changed in place"):
            record_evaluation(b, result, manifest="m.csv")
    record_evaluation(load_bundle(bundle), result, manifest="m.csv", platt=(1.3, -0.2))
    cal = load_bundle(bundle).card["calibration"]
    assert cal["temperature"] == 1.3 and cal["intercept"] == -0.2


def test_the_shown_performance_is_the_most_independent_one(bundle, tmp_path):
    """The window, the report and the CLI quote an evaluation on patients used neither in
    training nor in calibration when the card has one; one that calibrated the model on its
    own patients does not count, and the held-out split says its calibration was fitted on it."""
    import json

    from tfesi_desktop.core.bundle import record_evaluation

    card = _card(bundle)
    card["metrics"].pop("evaluations", None)
    (bundle / CARD).write_text(json.dumps(card))
    b = load_bundle(bundle)
    held_out = b.validated_performance()
    assert held_out.startswith("Validated AUC") and "calibration was fitted on them" in held_out
    cohort = tmp_path / "c"
    cohort.mkdir()
    (cohort / "cohort.json").write_text(json.dumps({"seed": 77, "generator_version": 2}))
    result = {"scores": {"x": {"auc": {"auc": 0.8956, "ci95": [0.86, 0.93]},
                               "table": {"accuracy": 0.81}}}, "n": 400, "favourable": 200,
              "best_achievable_auc": 0.914}
    record_evaluation(b, result, manifest=cohort / "manifest.csv", platt=(1.1, 0.0))
    assert load_bundle(bundle).validated_performance() == held_out  # calibrated on them
    record_evaluation(load_bundle(bundle), result, manifest=cohort / "manifest.csv")
    text = load_bundle(bundle).validated_performance()
    assert text.startswith("Validated AUC 0.896 (95 % CI 0.860-0.930), accuracy 81.0 %, on 400 ")
    assert "used neither in training nor in calibration (tfesi synth seed 77, generator " \
           "version 2" in text and text.endswith("best achievable AUC on these data 0.914.")


def test_sign_verify_and_trusted_keys(bundle, tmp_path, capsys):
    key = tmp_path / "keys" / "clinic.pem"
    key.parent.mkdir()
    assert main(["model", "sign", str(bundle), "--key", str(key), "--new-key"]) == 0
    assert (os.stat(key).st_mode & 0o777) == 0o600 or sys.platform == "win32"
    pub = key.with_name("clinic.pub.pem")
    capsys.readouterr()
    # valid, but its key is not trusted yet
    assert main(["model", "verify", str(bundle)]) == 2
    assert "not among the trusted keys" in _one_error(capsys)
    assert main(["model", "verify", str(bundle), "--key", str(pub)]) == 0
    trusted_keys_dir().mkdir(parents=True)
    shutil.copy(pub, trusted_keys_dir() / "clinic.pem")
    assert main(["model", "verify", str(bundle)]) == 0
    assert load_bundle(bundle).signer == "clinic.pem"
    # once keys are trusted, unsigned bundles are not installed
    unsigned = tmp_path / "unsigned"
    shutil.copytree(bundle, unsigned)
    (unsigned / "signature.json").unlink()
    with pytest.raises(ModelError, match="only bundles signed"):
        install_bundle(unsigned)
    dest = install_bundle(bundle)
    assert load_bundle(dest).signer == "clinic.pem"
    # changed after signing: refused, even outside the install folder
    _set_card(bundle, lambda c: c.update(threshold=0.3))
    with pytest.raises(ModelError, match="changed after it was signed"):
        load_bundle(bundle)
    # a forged signature: a changed card, with the signed digest edited to match it
    sig = json.loads((dest / "signature.json").read_text())
    _set_card(unsigned, lambda c: c.update(threshold=0.3))
    sig["bundle_sha256"] = bundle_mod._load(unsigned, check_signature=False).digest
    (unsigned / "signature.json").write_text(json.dumps(sig))
    with pytest.raises(ModelError, match="not valid"):
        load_bundle(unsigned)
    other = tmp_path / "other.pem"
    sign_bundle(unsigned, other, new_key=True)
    with pytest.raises(ModelError, match="not among the trusted"):
        verify_signature(unsigned)
    with pytest.raises(ModelError, match="another key"):
        verify_signature(unsigned, pub)


def test_unsigned_bundle_verify_is_exit_2(bundle, capsys):
    assert main(["model", "verify", str(bundle)]) == 2
    assert "not signed" in _one_error(capsys)


# --- issue 21, item 5: a clinic can lock models down ------------------------------------------

def _trust(tmp_path, bundle) -> None:
    key = tmp_path / "keys" / "clinic.pem"
    key.parent.mkdir()
    sign_bundle(bundle, key, new_key=True)
    trusted_keys_dir().mkdir(parents=True)
    shutil.copy(key.with_name("clinic.pub.pem"), trusted_keys_dir() / "clinic.pem")


def test_the_install_record_cannot_switch_signatures_off(bundle, tmp_path, capsys):
    _trust(tmp_path, bundle)
    dest = install_bundle(bundle)
    assert load_bundle(dest).signer == "clinic.pem"
    # the campaign's attack: edit the card, delete the signature, update the install record
    _set_card(dest, lambda c: c.update(threshold=0.9, synthetic_training_data=False))
    (dest / "signature.json").unlink()
    rec_file = dest.parent / "installed.json"
    rec = json.loads(rec_file.read_text())
    rec["bundles"][dest.name]["sha256"] = bundle_mod._load(dest, check_signature=False).digest
    rec_file.write_text(json.dumps(rec))
    with pytest.raises(ModelError, match="only bundles signed by one of them.*not signed"):
        load_bundle(dest)
    capsys.readouterr()
    assert main(["model", "info"]) == 2  # the default model
    assert "not signed" in _one_error(capsys)


def test_with_trusted_keys_every_path_needs_a_trusted_signature(bundle, base, tmp_path, capsys):
    from tfesi_desktop.core.runtime import Predictor

    _trust(tmp_path, bundle)
    unsigned = tmp_path / "unsigned"
    shutil.copytree(base, unsigned)
    for path in (unsigned, DEMO):  # --model, and the shipped demonstration model
        with pytest.raises(ModelError, match="not signed"):
            load_bundle(path)
        with pytest.raises(ModelError, match="not signed"):
            Predictor(path)  # what the window's model worker and `tfesi predict` call
    with pytest.raises(ModelError, match="not signed"):
        install_bundle(unsigned)
    other = tmp_path / "other.pem"
    sign_bundle(unsigned, other, new_key=True)  # validly signed, by a key nobody trusts
    with pytest.raises(ModelError, match="not among the trusted keys"):
        load_bundle(unsigned)
    assert load_bundle(bundle).signer == "clinic.pem"
    capsys.readouterr()
    from tfesi_desktop.core.paths import demo_study

    assert main(["predict", str(demo_study()), "--slice", "1", "--roi", "1,1,9,9", "--side",
                 "left", "--model", str(unsigned)]) == 2
    assert "not among the trusted keys" in _one_error(capsys)


def _rehash(b, name):
    _set_card(b, lambda c: c["files"].update({name: sha256_file(b / name)}))


@pytest.mark.parametrize("arrays, match", [
    ({"w": [0.0, 1.0]}, "lacks 'w1'"),
    ({"w1": [[0.0]], "b1": [0.0], "w2": [0.0], "b2": [0.0, 1.0]}, "do not fit"),
    ({"w1": [[float("nan")]], "b1": [0.0], "w2": [0.0], "b2": [0.0]}, "finite"),
    ({"w1": [0.0, 1.0], "b1": [0.0], "w2": [0.0], "b2": [0.0]}, "not \\(channels, units\\)"),
    (None, "not a readable array file"),
])
def test_a_malformed_head_is_a_clear_refusal(bundle, arrays, match, capsys):
    import numpy as np

    if arrays is None:
        (bundle / "head.npz").write_bytes(b"PK\x03\x04 not really a zip")
    else:
        np.savez(bundle / "head.npz", **{k: np.asarray(v) for k, v in arrays.items()})
    _rehash(bundle, "head.npz")
    with pytest.raises(ModelError, match=match):
        load_bundle(bundle)
    assert main(["model", "info", str(bundle)]) == 2
    _one_error(capsys)


@pytest.mark.parametrize("content", ["mean-only", "pickle", "wrong-channels", "nan"])
def test_a_malformed_ood_file_is_a_clear_refusal(bundle, content, capsys):
    import numpy as np

    f = bundle / "ood.npz"
    if content == "mean-only":
        np.savez(f, mean=np.zeros(4))
    elif content == "pickle":
        with open(f, "wb") as fh:
            np.save(fh, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    else:
        with np.load(DEMO / "ood.npz") as z:
            a = {k: z[k] for k in z.files}
        if content == "wrong-channels":
            a["features_mean"] = a["features_mean"][:7]
            a["features_components"] = a["features_components"][:, :7]
        else:
            a["features_components"] = a["features_components"].copy()
            a["features_components"][0, 0] = np.nan
        np.savez(f, **a)
    _set_card(bundle, lambda c: c["files"].update({"ood.npz": sha256_file(f)}))
    with pytest.raises(ModelError, match="ood.npz|training-image distribution"):
        load_bundle(bundle)
    assert main(["model", "info", str(bundle)]) == 2
    _one_error(capsys)


def test_a_card_with_20001_crops_is_refused(bundle, capsys):
    _set_card(bundle, lambda c: c.update(tta={"crops": [[0, 0, 1.0]] * 20001}))
    with pytest.raises(ModelError, match="20001 ROIs; at most 64"):
        load_bundle(bundle)
    _set_card(bundle, lambda c: c.update(tta={"crops": [[0, 0, 1.0], [1e9, 0, 1.0]]}))
    with pytest.raises(ModelError, match="at most 100 pixels"):
        load_bundle(bundle)
