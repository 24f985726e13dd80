"""Hardened inputs and outputs (issue 12): hostile files, escapes, tampering, exit codes."""

import os
import stat
import sys

import pytest

from tfesi_desktop.cli import main
from tfesi_desktop.core.fileio import TEMP_MARK
from tfesi_desktop.core.manifest import read_manifest
from tfesi_desktop.core.paths import demo_manifest, demo_study

posix = pytest.mark.skipif(sys.platform == "win32", reason="POSIX only")


@pytest.fixture(scope="module")
def case():
    (c,) = read_manifest(demo_manifest())
    return c


def _predict_args(case, *extra):
    return ["predict", str(demo_study()), "--slice", case.slice_key, "--roi",
            ",".join(map(str, case.roi)), "--side", case.side, *extra]


def _one_error_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "internal error" not in lines[0] and "Traceback" not in err
    return lines[0]


# --- outputs ---------------------------------------------------------------------------------

def test_heatmap_into_a_missing_folder_or_onto_a_folder_is_exit_2(case, tmp_path, capsys):
    assert main(_predict_args(case, "--heatmap", str(tmp_path / "no" / "h.png"))) == 2
    assert "does not exist" in _one_error_line(capsys.readouterr().err)
    (tmp_path / "d").mkdir()
    assert main(_predict_args(case, "--heatmap", str(tmp_path / "d"))) == 2
    _one_error_line(capsys.readouterr().err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]  # no d.partial left
    assert list((tmp_path / "d").iterdir()) == []


@posix
def test_heatmap_is_private_and_leaves_no_temporary(case, tmp_path, capsys):
    png = tmp_path / "h.png"
    assert main(_predict_args(case, "--heatmap", str(png))) == 0
    assert stat.S_IMODE(png.stat().st_mode) == 0o600
    assert not [p for p in tmp_path.iterdir() if TEMP_MARK in p.name or "partial" in p.name]
