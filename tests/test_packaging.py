"""`pip install .` (not only editable) carries every package and resources/ with it."""

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_wheel_holds_all_packages_and_the_resources(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                        "-q", "-w", str(tmp_path), str(REPO)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    (wheel,) = tmp_path.glob("tfesi_desktop-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    source_packages = {p.parent.relative_to(REPO).as_posix()
                       for p in (REPO / "tfesi_desktop").rglob("__init__.py")}
    for pkg in source_packages:
        assert f"{pkg}/__init__.py" in names, f"package {pkg} missing from the wheel"
    for f in (REPO / "resources").rglob("*"):
        if f.is_file() and "__pycache__" not in f.parts:
            rel = "tfesi_desktop/resources/" + f.relative_to(REPO / "resources").as_posix()
            assert rel in names, rel
