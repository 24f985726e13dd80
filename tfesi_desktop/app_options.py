"""What both programs (``tfesi`` and ``tfesi-desktop``) share at their entry points: the
logging options DICOM tools have (``-v``, ``-q``, ``--log-level``), and the one sentence a user
gets when an optional extra is not installed.

The library itself logs to a ``NullHandler`` (``tfesi_desktop/__init__.py``); only these entry
points decide where messages go. Log records carry no patient data (names, IDs and dates are
never formatted into a log message).
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import sys

LEVELS = ("debug", "info", "warning", "error", "critical")

# the top-level module a missing import names -> the extra that brings it
EXTRA_OF = {
    "PySide6": "gui", "shiboken6": "gui", "pyqtgraph": "gui",
    "tensorflow": "train", "keras": "train", "matplotlib": "train", "sklearn": "train",
}


def add_logging_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("messages")
    g.add_argument("-v", "--verbose", action="count", default=0,
                   help="more messages on stderr: -v progress and decisions, -vv also the DICOM "
                        "network's association log (pynetdicom)")
    g.add_argument("-q", "--quiet", action="store_true",
                   help="no progress and no log messages on stderr; warnings about a result "
                        "and errors are still printed")
    g.add_argument("--log-level", choices=LEVELS, type=str.lower,
                   help="the level of messages on stderr (overrides -v and -q)")


def configure_logging(args: argparse.Namespace, prog: str) -> int:
    """Send the program's log records to stderr at the level the options ask for (default:
    warnings). pynetdicom's own log (every PDU of an association) joins at debug only, as in
    pynetdicom's and dcmtk's tools. Returns the level."""
    if getattr(args, "log_level", None):
        level = getattr(logging, args.log_level.upper())
    elif getattr(args, "quiet", False):
        level = logging.ERROR
    else:
        level = {0: logging.WARNING, 1: logging.INFO}.get(getattr(args, "verbose", 0),
                                                           logging.DEBUG)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{prog}: %(levelname)s: %(name)s: %(message)s"))
    root = logging.getLogger("tfesi_desktop")
    root.handlers = [h for h in root.handlers if isinstance(h, logging.NullHandler)]
    root.addHandler(handler)
    root.setLevel(level)
    net = logging.getLogger("pynetdicom")
    net.setLevel(logging.DEBUG if level <= logging.DEBUG else logging.CRITICAL)
    net.handlers = [handler] if level <= logging.DEBUG else []
    net.propagate = False
    return level


def missing_extra(e: ModuleNotFoundError) -> str | None:
    """The sentence for an optional dependency that is not installed, or None when ``e`` is not
    about one (a real bug, reported as such)."""
    top = (e.name or "").split(".")[0]
    extra = EXTRA_OF.get(top)
    if extra is None:
        return None
    what = {"gui": "the desktop program", "train": "training and validation"}[extra]
    return (f"{what} needs the optional '{extra}' dependencies ({top} is not installed); "
            f"install them with: pip install 'tfesi-desktop[{extra}]'")


def require_extra(extra: str) -> None:
    """Stop with the sentence of :func:`missing_extra` before a command starts work that needs
    ``extra`` (so that training does not read a cohort first and fail after)."""
    from .core.errors import TfesiError

    for module in (m for m, e in EXTRA_OF.items() if e == extra):
        try:
            found = importlib.util.find_spec(module) is not None
        except ValueError:  # in sys.modules as None: blocked
            found = False
        if not found:
            raise TfesiError(missing_extra(ModuleNotFoundError(name=module)))
