"""What the ``tfesi`` command modules share: the argument parser class, the progress printer,
the terminal guard, strict JSON and the model loader. A leaf: it imports no command module and
not the package's entry point, so that no import circle can form between them
(tests/test_cli_imports.py)."""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

from ..core.safe_text import printable

__all__ = ["Parser", "progress_printer", "say", "one_line", "safe_terminal", "finite",
           "load_predictor"]

QUIET = False  # -q: no progress on stderr (set by cli.main, cli/__init__.py)


class Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own errors: same form as ours, exit 2
        self.print_usage(sys.stderr)
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2)


def say(message: str) -> None:
    """A progress message on stderr, unless -q."""
    if not QUIET:
        print(message, file=sys.stderr, flush=True)


def progress_printer(label: str):
    """A progress printer for stderr (a single updating line on a terminal); silent with -q."""
    tty = sys.stderr.isatty()
    last = [0.0]

    def report(done: int, total: int):
        if QUIET:
            return
        now = time.monotonic()
        if done < total and now - last[0] < 0.5:
            return
        last[0] = now
        end = "\r" if tty and done < total else "\n"
        if tty or done == total:
            print(f"{label}: {done}/{total}", end=end, file=sys.stderr, flush=True)

    return report


def one_line(text: str) -> str:
    """``text`` on one line: control characters (from hostile file names or values) escaped."""
    return printable(text)


class _Escaping:
    """A text stream that escapes control characters in what is written (values from DICOM
    files and from the network reach the terminal through ``print``), except line ends and a
    lone carriage return (the progress line's own)."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        if text not in ("\r", "\n"):
            text = printable(text, keep="\n")
        return self._stream.write(text)

    def __getattr__(self, name):
        return getattr(self._stream, name)


@contextlib.contextmanager
def safe_terminal():
    """Within the block, everything printed to stdout and stderr has its control characters
    escaped (ESC, BEL, CR, bidirectional overrides: docs/architecture.md, invariant 5)."""
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _Escaping(out), _Escaping(err)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = out, err


def finite(obj):
    """``obj`` with every NaN or infinity replaced by None, so that the JSON is strict."""
    if isinstance(obj, float):
        return obj if obj == obj and abs(obj) != float("inf") else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def load_predictor(model: str | None):
    """The predictor of ``--model``, or of the model in use."""
    from ..core.bundle import default_bundle_path
    from ..core.runtime import Predictor

    return Predictor(Path(model) if model else default_bundle_path(), quiet=True)
