"""The window's settings file (geometry, theme, recent folders, report defaults: paths can name
patients), in the user's private data folder (0700), readable by its owner only. A module of
its own so that the controllers need not import the main window (no import circles in gui)."""

from __future__ import annotations

import os

from PySide6.QtCore import QSettings

from ..core.fileio import private_dir
from ..core.paths import data_dir


def settings() -> QSettings:
    path = data_dir() / "settings.ini"
    private_dir(path.parent)
    s = QSettings(str(path), QSettings.Format.IniFormat)
    if path.exists():
        os.chmod(path, 0o600)
    else:
        path.touch(mode=0o600)
    return s
