import json
import subprocess
import sys

from tfesi_desktop.cli import main
from tfesi_desktop.core.paths import demo_study


def test_info_lists_the_demo_study(capsys):
    assert main(["info", str(demo_study())]) == 0
    out = capsys.readouterr().out
    assert "T2 TSE AX" in out and "axial" in out and "* series" in out


def test_info_json(capsys):
    assert main(["info", str(demo_study()), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    (study,) = data["studies"]
    proposed = [s for s in study["series"] if s["proposed"]]
    assert len(proposed) == 1 and proposed[0]["orientation"] == "axial"
    assert proposed[0]["edge_letters"] == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    assert data["skipped"] == []


def test_bad_input_is_an_error_line_and_status_2_without_traceback(tmp_path):
    for args in (["info", str(tmp_path / "missing")], ["info", str(tmp_path)], ["nonsense"]):
        r = subprocess.run([sys.executable, "-m", "tfesi_desktop.cli", *args],
                           capture_output=True, text=True)
        assert r.returncode == 2, args
        assert "error:" in r.stderr and "Traceback" not in r.stderr


def test_synth_writes_a_cohort(tmp_path, capsys):
    out = tmp_path / "c"
    assert main(["synth", str(out), "--patients", "2", "--seed", "4", "--jobs", "1",
                 "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["patients"] == 2
    assert (out / "manifest.csv").exists() and (out / "P00001").is_dir()
    # refuses to write into a non-empty folder
    assert main(["synth", str(out), "--patients", "1"]) == 2
