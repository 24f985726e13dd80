import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def cohort(tmp_path_factory):
    """A small synthetic cohort with random storage variants (6 patients)."""
    from tfesi_desktop.core.synth.cohort import make_cohort

    out = tmp_path_factory.mktemp("cohort")
    summary = make_cohort(out, patients=6, seed=11, jobs=2)
    return out, summary


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """Installed models and saved state go to a temporary folder in every test."""
    monkeypatch.setenv("TFESI_HOME", str(tmp_path / "tfesi-home"))
