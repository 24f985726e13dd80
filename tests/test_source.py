"""A model trained on synthetic images only flags every image its generator did not make
(core/source.py): real scans are told apart from phantoms by what is known, not by a threshold
that their feature distances straddle."""

import json
import shutil
import subprocess
import sys

import pydicom

from tfesi_desktop.core.paths import demo_manifest, demo_study
from tfesi_desktop.core.source import GENERATOR_MANUFACTURER, source_note


def _row():
    import csv

    with demo_manifest().open() as f:
        (row,) = csv.DictReader(f)
    return row


def _predict(study, *extra):
    row = _row()
    roi = ",".join(row[k] for k in ("roi_x", "roi_y", "roi_w", "roi_h"))
    r = subprocess.run([sys.executable, "-m", "tfesi_desktop.cli", "predict", str(study),
                        "--slice", row["sop_instance_uid"], "--roi", roi, "--side", row["side"],
                        *extra], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_the_rule():
    assert source_note(True, GENERATOR_MANUFACTURER) is None
    assert source_note(False, "SIEMENS") is None  # a clinic's model: its own validation rules
    for other in ("SIEMENS", "", None):
        note = source_note(True, other)
        assert note and "never been validated on a real scanner" in note


def test_the_demo_model_flags_the_same_images_from_another_manufacturer(tmp_path):
    same = json.loads(_predict(demo_study(), "--json"))
    assert same["reliable"] is True and same["source_note"] is None
    study = tmp_path / "study"
    shutil.copytree(demo_study(), study)
    for f in study.rglob("*"):
        if f.is_file() and f.name != "DICOMDIR":
            try:
                ds = pydicom.dcmread(f)
            except Exception:  # noqa: BLE001 - not a DICOM file
                continue
            ds.Manufacturer = "ACME MR"
            ds.save_as(f)
    other = json.loads(_predict(study, "--json"))
    # the same pixels, so the same features and probability: only the source differs
    assert other["probability_favourable"] == same["probability_favourable"]
    assert other["in_distribution"] == same["in_distribution"]
    assert other["reliable"] is False and "ACME MR" in other["source_note"]
    text = _predict(study)
    assert "NOT RELIABLE" in text and "has never been validated on a real scanner" in text


def test_the_window_and_the_cli_search_the_canal_with_the_sagittal_as_guide(monkeypatch):
    """Both call the same search with the study's sagittal cord course (core/commands.py),
    decoded once per stack in the window's workers."""
    from types import SimpleNamespace

    from tfesi_desktop.gui import jobs

    calls, seen = [], []
    monkeypatch.setattr(jobs, "_GUIDES", {})
    monkeypatch.setattr(jobs, "sagittal_guide", lambda scan, stack: calls.append(stack) or "G")
    monkeypatch.setattr(jobs, "find_anatomy",
                        lambda values, geometry, guide=None: seen.append(guide) or "canal")
    monkeypatch.setattr(jobs, "find_anatomy_in_stack",
                        lambda stack, index, values=None, guide=None, candidates_of=None:
                        seen.append(("stack", index, guide)) or "canal")
    stack = SimpleNamespace(key="s1", slices=[SimpleNamespace(key="k0"), SimpleNamespace(key="k1")])
    assert jobs.find_canal("k1", None, None, "scan", stack) == ("k1", "canal")
    assert jobs.find_canal("k2", None, None, "scan", stack) == ("k2", "canal")
    # one decode of the sagittal per stack; a slice of the stack is judged with its neighbours
    # (core/stackcanal.py), another is searched alone
    assert len(calls) == 1 and seen == [("stack", 1, "G"), "G"]
    assert jobs.find_canal("k3", None, None) == ("k3", "canal") and seen[-1] is None
