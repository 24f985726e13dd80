"""What a controller of the window may use (docs/architecture.md, "Session model"): the
session, the model, the workers, the one message area and the settings, never the window
itself, so a controller cannot reach into the window's widgets or state."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QWidget

from ..core.session import Session


@dataclass(frozen=True)
class AppContext:
    session: Session
    model: Callable[[], object]  # the loaded runtime.Predictor, or None
    run_worker: Callable  # (Worker, on_result, on_error=None, *, later, first, pause_later)
    notify: Callable[[str, str], None]  # (text, kind: error | note | info), replaces the last
    status: Callable[[str, int], None]  # (text, milliseconds) in the status bar
    settings: Callable[[], QSettings]
    parent: QWidget  # owner of the controller's dialogs
