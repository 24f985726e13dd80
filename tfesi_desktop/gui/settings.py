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


def recent() -> list[str]:
    """File > Open recent: the folders and files opened last (newest first)."""
    v = settings().value("recent", [])
    return [v] if isinstance(v, str) else list(v or [])


def with_recent(items: list[str], paths) -> list[str]:
    """``items`` (File > Open recent) with ``paths`` put first."""
    key = " | ".join(str(p) for p in paths)
    return ([key] + [r for r in items if r != key])[:10]


def remember(paths) -> list[str]:
    """Put ``paths`` first in File > Open recent (written at once: the window does it in its
    writes' thread, core/writes.py); the list as written."""
    items = with_recent(recent(), paths)
    s = settings()
    s.setValue("recent", items)
    s.sync()
    return items


def fit_to_screen(win, *, force: bool = False) -> None:
    """Size a window to its screen's available geometry (what the task bar leaves, in
    device-independent pixels, so 100-200 % scaling alike): at most all of it, at most
    1600 x 1000 on a large screen; placed inside it. A geometry saved at another scaling or on
    another screen is fitted again (``force``: the default size)."""
    from PySide6.QtWidgets import QApplication

    screen = win.screen() or QApplication.primaryScreen()
    if screen is None:
        return
    avail = screen.availableGeometry()
    frame_w = max(win.frameGeometry().width() - win.geometry().width(), 0)
    frame_h = max(win.frameGeometry().height() - win.geometry().height(), 0)
    max_w, max_h = avail.width() - frame_w, avail.height() - frame_h
    w = min(win.width() if not force else 1600, max_w)
    h = min(win.height() if not force else 1000, max_h)
    if force or win.width() > max_w or win.height() > max_h:
        win.resize(max(w, 640), max(h, 480))
    x = min(max(win.x(), avail.x()), avail.right() - win.frameGeometry().width() + 1)
    y = min(max(win.y(), avail.y()), avail.bottom() - win.frameGeometry().height() + 1)
    win.move(max(x, avail.x()), max(y, avail.y()))
