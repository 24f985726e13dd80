"""Where the program finds its bundled resources and keeps its own files."""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path


def resource_path(*parts: str) -> Path:
    """A file or folder shipped in ``resources/`` (installed as ``tfesi_desktop.resources``)."""
    return Path(str(files("tfesi_desktop.resources").joinpath(*parts)))


def demo_study() -> Path:
    """The bundled synthetic demonstration study (one patient, made-up name)."""
    return resource_path("demo", "P00000")


def demo_manifest() -> Path:
    return resource_path("demo", "manifest.csv")


def data_dir() -> Path:
    """The user's own data folder (installed models, saved ROIs): ``$TFESI_HOME`` or
    ``$XDG_DATA_HOME/tfesi-desktop`` (``~/.local/share/tfesi-desktop``)."""
    if os.environ.get("TFESI_HOME"):
        return Path(os.environ["TFESI_HOME"])
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "tfesi-desktop"
