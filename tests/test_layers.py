"""docs/architecture.md, Layers: core never imports Qt, and nothing outside training imports
TensorFlow."""

import subprocess
import sys
from pathlib import Path


def _modules_after(code: str) -> set[str]:
    r = subprocess.run([sys.executable, "-c", code + "\nimport sys\nprint(' '.join(sys.modules))"],
                       capture_output=True, text=True, check=True)
    return set(r.stdout.split())


def test_core_and_cli_import_neither_qt_nor_tensorflow():
    mods = _modules_after(
        "import tfesi_desktop.core.dicom, tfesi_desktop.core.preprocess, "
        "tfesi_desktop.core.synth.cohort, tfesi_desktop.cli")
    assert "tensorflow" not in mods and "keras" not in mods
    assert "PySide6" not in mods and "pyqtgraph" not in mods


def test_desktop_program_imports_no_tensorflow():
    mods = _modules_after("import os; os.environ['QT_QPA_PLATFORM'] = 'offscreen'\n"
                          "import tfesi_desktop.gui.mainwindow, tfesi_desktop.gui.app")
    assert "tensorflow" not in mods and "keras" not in mods
    assert "PySide6.QtWidgets" in mods


def test_import_contracts_hold():
    lint_imports = Path(sys.executable).with_name("lint-imports")
    r = subprocess.run([str(lint_imports)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    import re
    import tomllib

    declared = len(tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())[
        "tool"]["importlinter"]["contracts"])
    m = re.search(r"Contracts: (\d+) kept, 0 broken", r.stdout)
    assert m and int(m.group(1)) == declared >= 4, r.stdout  # no circles is one of them
