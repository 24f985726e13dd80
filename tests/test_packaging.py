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
    # what a packager reads: the licence, and a GUI script (no console window on Windows)
    (meta,) = [n for n in names if n.endswith(".dist-info/METADATA")]
    (entry,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    with zipfile.ZipFile(wheel) as z:
        metadata, scripts = z.read(meta).decode(), z.read(entry).decode()
    assert "License-Expression: Apache-2.0" in metadata
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "[gui_scripts]\ntfesi-desktop = tfesi_desktop.gui.app:main" in scripts
    assert "[console_scripts]\ntfesi = tfesi_desktop.cli:main" in scripts


def test_self_test_of_the_installed_program_passes():
    """What packaging/build.sh runs on the built application, here on the source install."""
    r = subprocess.run([sys.executable, "-m", "tfesi_desktop.gui.app", "--self-test"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "self-test passed" in r.stdout and "report" in r.stdout


def test_packaging_files_are_consistent():
    """The build is too slow for every CI run (about 90 s plus a clean environment); these
    checks keep its files honest in the meantime."""
    import ast
    import configparser

    spec = (REPO / "packaging" / "tfesi-desktop.spec").read_text()
    ast.parse(spec)
    for excluded in ('"tensorflow"', '"keras"', '"tfesi_desktop.core.training"'):
        assert excluded in spec
    # every module the window needs at run time, that PyInstaller cannot see, is named
    for hidden in ("PySide6.QtOpenGL", "ai_edge_litert.interpreter"):
        assert hidden in spec
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str
    entry.read(REPO / "packaging" / "tfesi-desktop.desktop")
    d = entry["Desktop Entry"]
    assert d["Type"] == "Application" and d["Exec"].startswith("tfesi-desktop")
    assert d["Icon"] == "tfesi-desktop" and (REPO / "resources" / "icon.png").exists()
    build = (REPO / "packaging" / "build.sh").read_text()
    assert "--self-test" in build and '".[gui]"' in build
