"""Where the program finds its bundled resources and keeps its own files.

Three folders per user, each where the operating system expects it (platformdirs):

- :func:`config_dir`: settings (window settings, PACS nodes, trusted signing keys);
- :func:`data_dir`: what the user made and must not lose (saved work per study, installed
  models, the anonymization map), private to the user (0700);
- :func:`cache_dir`: what can be fetched again (studies retrieved from a PACS), with a size limit
  (``core/pacs/cache.py``) and ``tfesi cache clear``.

``$TFESI_HOME`` puts all three under one folder (``data``, ``config`` and ``cache`` beside each
other would break the layout earlier versions wrote, so: the folder itself is the data folder, and
``config/`` and ``cache/`` are inside it). Earlier versions kept everything in the data folder;
:func:`migrate_once` moves the settings and the cache out of it, once.
"""

from __future__ import annotations

import logging
import os
import shutil
from importlib.resources import files
from pathlib import Path

APP = "tfesi-desktop"
log = logging.getLogger(__name__)


def resource_path(*parts: str) -> Path:
    """A file or folder shipped in ``resources/`` (installed as ``tfesi_desktop.resources``)."""
    return Path(str(files("tfesi_desktop.resources").joinpath(*parts)))


def demo_study() -> Path:
    """The bundled synthetic demonstration study (one patient, made-up name)."""
    return resource_path("demo", "P00000")


def demo_manifest() -> Path:
    return resource_path("demo", "manifest.csv")


def _home() -> Path | None:
    return Path(os.environ["TFESI_HOME"]) if os.environ.get("TFESI_HOME") else None


def data_dir() -> Path:
    """The user's own data (saved work, installed models, the anonymization map):
    ``$TFESI_HOME``, else the platform's user data folder (``~/.local/share/tfesi-desktop`` on
    Linux, ``%LOCALAPPDATA%\\tfesi-desktop`` on Windows, ``~/Library/Application
    Support/tfesi-desktop`` on macOS)."""
    if (home := _home()) is not None:
        return home
    from platformdirs import user_data_path

    return user_data_path(APP, appauthor=False)


def config_dir() -> Path:
    """Settings: ``$TFESI_HOME/config``, else the platform's user configuration folder
    (``~/.config/tfesi-desktop`` on Linux)."""
    if (home := _home()) is not None:
        return home / "config"
    from platformdirs import user_config_path

    return user_config_path(APP, appauthor=False)


def cache_dir() -> Path:
    """What can be fetched again: ``$TFESI_HOME/cache``, else the platform's user cache folder
    (``~/.cache/tfesi-desktop`` on Linux)."""
    if (home := _home()) is not None:
        return home / "cache"
    from platformdirs import user_cache_path

    return user_cache_path(APP, appauthor=False)


# what earlier versions kept in the data folder and where it lives now
_MOVED = {"settings.ini": config_dir, "pacs_nodes.json": config_dir,
          "trusted-keys": config_dir}


def migrate_once() -> list[str]:
    """Move the settings and the PACS cache that earlier versions kept in the data folder to
    their own folders; nothing already at the new place is overwritten. Returns what moved (also
    logged), empty when there was nothing to do. A move the file system refuses is logged as a
    warning and tried again at the next start."""
    try:
        moved = _migrate()
    except OSError as e:
        log.warning("could not move earlier settings or cache to their new folders: %s", e)
        return []
    for m in moved:
        log.info("moved %s", m)
    return moved


def _migrate() -> list[str]:
    data, moved = data_dir(), []
    if not data.is_dir():
        return moved
    for name, where in _MOVED.items():
        old, new = data / name, where() / name
        if old.exists() and not new.exists():
            new.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(old), str(new))
            moved.append(f"{name} -> {new.parent}")
    old_studies = data / "studies"
    if old_studies.is_dir():  # retrieved studies were folders beside the saved-work files
        cache = cache_dir() / "studies"
        for p in old_studies.iterdir():
            if p.is_dir() and not p.name.startswith(".") and not (cache / p.name).exists():
                cache.mkdir(parents=True, exist_ok=True)
                shutil.move(str(p), str(cache / p.name))
                moved.append(f"studies/{p.name} -> {cache}")
    return moved
