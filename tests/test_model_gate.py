"""The install floor (issue 24, item 3): ``tfesi model install`` refuses a bundle whose validated
AUC's lower bound is not above the floor or whose calibration is degenerate, unless forced, and
the installed card then says it was forced."""

import json
import shutil

import pytest

from tfesi_desktop.cli import main
from tfesi_desktop.core.bundle import CARD, DEMO_BUNDLE, default_bundle_path, load_bundle
from tfesi_desktop.core.model_gate import check
from tfesi_desktop.core.paths import resource_path

DEMO = resource_path(*DEMO_BUNDLE)


@pytest.fixture
def bundle(tmp_path):
    out = tmp_path / "b"
    out.mkdir()
    for f in DEMO.iterdir():
        if f.name != "model.keras":
            shutil.copy(f, out / f.name)
    return out


def _edit(b, edit):
    card = json.loads((b / CARD).read_text())
    edit(card)
    (b / CARD).write_text(json.dumps(card, indent=1))


def _useless(card):
    """The soft-label bundle of the issue: held-out AUC 0.476, Platt temperature 59,663."""
    card["metrics"].pop("evaluations", None)
    card["metrics"]["validation"].update(auc=0.476, auc_ci95=[0.33, 0.62])
    card["calibration"]["temperature"] = 59663.0


def test_the_demo_model_passes_and_installs(bundle, capsys):
    assert check(load_bundle(bundle).card).passed
    assert main(["model", "install", str(bundle)]) == 0
    assert "warning" not in capsys.readouterr().err
    assert "install_gate" not in load_bundle(default_bundle_path()).card


def test_a_useless_bundle_is_refused_with_both_reasons(bundle, capsys):
    _edit(bundle, _useless)
    before = default_bundle_path()
    assert main(["model", "install", str(bundle)]) == 2
    err = capsys.readouterr().err
    assert "not installed" in err and "lower 95 % bound of 0.330" in err
    assert "Platt temperature 5.966e+04" in err and "--force" in err
    assert default_bundle_path() == before


def test_the_floor_is_a_setting_and_applies_to_the_latest_independent_evaluation(bundle):
    card = load_bundle(bundle).card
    lower = card["metrics"]["evaluations"][-1]["auc_ci95"][0]  # 0.865, not validation's 0.846
    assert check(card, min_auc_lower=lower - 0.01).passed
    r = check(card, min_auc_lower=lower)
    assert not r.passed and f"{lower:.3f}" in r.sentence()


def test_degenerate_calibration_alone_is_refused(bundle):
    card = load_bundle(bundle).card
    card["calibration"]["temperature"] = 250.0
    assert "degenerate" in check(card).sentence()
    card["calibration"]["temperature"] = 1.0
    card["metrics"]["evaluations"][-1]["calibration"]["slope"] = 0.05
    assert "slope" in check(card).sentence()
    card["metrics"]["evaluations"][-1]["calibration"]["slope"] = 1.0
    card["metrics"]["evaluations"][-1]["calibration"]["probability_spread"] = 0.01
    assert "within 1.0 percentage points" in check(card).sentence()


def test_force_installs_and_the_installed_card_says_so(bundle, capsys):
    _edit(bundle, _useless)
    source_card = (bundle / CARD).read_bytes()
    assert main(["model", "install", str(bundle), "--force"]) == 0
    assert "installed with --force" in capsys.readouterr().err
    installed = load_bundle(default_bundle_path())  # verifies the recorded digest
    gate = installed.card["install_gate"]
    assert gate["forced"] and len(gate["reasons"]) == 2
    assert any("--force" in line for line in installed.card["limitations"])
    assert (bundle / CARD).read_bytes() == source_card  # the given folder is unchanged
    capsys.readouterr()
    assert main(["model", "info"]) == 0
    assert "Installed with --force" in capsys.readouterr().out
